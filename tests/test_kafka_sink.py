"""KafkaSink.send_encoded against librdkafka's mock cluster: every record arrives once, in
order per partition (a keyed record where its key goes), through a local queue far smaller
than a batch; a record the client refuses for good is reported with its row and the others
still arrive."""
import json

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")

from brokers import MockKafka  # noqa: E402

from streamrnn.streams.kafka import KafkaSink  # noqa: E402


@pytest.fixture(scope="module")
def kafka():
    k = MockKafka(1)
    yield k
    k.close()


def read_all(bootstrap, topic, n):
    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{topic}",
                                  "auto.offset.reset": "earliest", "log_level": 0,
                                  "enable.partition.eof": False})
    c.subscribe([topic])
    got = []
    for _ in range(200):
        got += [m for m in c.consume(1000, 0.2) if m.error() is None]
        if len(got) >= n:
            break
    extra = c.consume(1000, 0.5)  # nothing more than expected
    c.close()
    assert not extra
    by_part = {}
    for m in got:
        by_part.setdefault(m.partition(), []).append((m.key(), m.value()))
    return by_part


@pytest.mark.parametrize("queue", [None, 7])
def test_every_record_arrives_once_in_order(kafka, queue):
    n, big = 2500, (3, 1200, 2499)
    values = [json.dumps({"i": i, "pad": "x" * (30_000 if i in big else i % 17)}).encode()
              for i in range(n)]
    keys = [None if i % 5 == 0 else f"k{i % 13}".encode() for i in range(n)]
    cfg = {"message.max.bytes": 10_000}
    if queue:
        cfg["queue.buffering.max.messages"] = queue
    topic = f"s-{queue}"
    kafka.create_topic(topic, 3)
    sink = KafkaSink(kafka.bootstrap, topic, config=cfg)
    refused = []
    for s in range(0, n, 1024):  # as the runner does: one call per learned batch
        refused += [(s + i, why) for i, why in
                    sink.send_encoded(values[s:s + 1024], keys[s:s + 1024])]
    assert sink.flush() is True and sink.take_undeliverable() == []
    assert [i for i, _ in refused] == list(big)
    assert all("too large" in why.lower() for _, why in refused), refused
    got = read_all(kafka.bootstrap, topic, n - len(big))
    rows = sorted(json.loads(v)["i"] for part in got.values() for _, v in part)
    assert rows == [i for i in range(n) if i not in big]
    where = {}
    for p, part in got.items():
        order = [json.loads(v)["i"] for _, v in part]
        assert order == sorted(order)
        for k, _ in part:
            if k is not None:
                where.setdefault(k, set()).add(p)
    assert all(len(ps) == 1 for ps in where.values())
    for (k, v) in (m for part in got.values() for m in part):
        i = json.loads(v)["i"]
        assert k == keys[i] and v == values[i]


def test_a_delivery_that_fails_later_is_reported_by_the_producer_callback():
    # the sink's report is the producer's own delivery callback (not passed per produce
    # call): a delivery that fails after the call (the broker down past message.timeout.ms)
    # still reaches it, for every path that produces, and flush() tells the truth
    k = MockKafka(1)
    try:
        k.create_topic("late", 1)
        sink = KafkaSink(k.bootstrap, "late", config={"message.timeout.ms": 300,
                                                      "enable.idempotence": False})
        assert sink.send_encoded([b'{"i":0}'], [b"a"]) == []
        assert sink.flush(10) is True and sink.failed == 0
        k.down(1)
        sink.send_encoded([b'{"i":1}', b'{"i":2}'], [b"a", None])
        sink.send({"i": 3}, "b")
        sink.send_many([{"i": 4}], ["c"])
        assert sink.flush(10) is False
        assert sink.failed == 4
    finally:
        k.close()
