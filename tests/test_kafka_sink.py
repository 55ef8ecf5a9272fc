"""KafkaSink.send_encoded against librdkafka's mock cluster: records produced in chunks
(``Producer.produce_batch``) arrive exactly as with one ``produce`` call per record: the same
messages, keys and partitions (of keyed records), in the same order per partition; a record the client refuses
for good is reported with its row, as before; a queue smaller than a batch never loses or
reorders a record."""
import json

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")

from brokers import MockKafka  # noqa: E402

from streamrnn.streams.kafka import KafkaSink, _queue_limits  # noqa: E402


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


def records(n, big=()):
    values = [json.dumps({"i": i, "pad": "x" * (30_000 if i in big else i % 17)}).encode()
              for i in range(n)]
    keys = [None if i % 5 == 0 else f"k{i % 13}".encode() for i in range(n)]
    return values, keys


@pytest.mark.parametrize("queue", [None, 7, 300])
def test_batches_arrive_as_one_call_each(kafka, queue):
    """The same records through both paths: per partition the same keyed messages in the
    same order, the same unkeyed ones, the same rows refused for good."""
    n, big = 2500, (3, 1200, 2499)
    values, keys = records(n, big)
    cfg = {"message.max.bytes": 10_000}
    if queue:
        cfg["queue.buffering.max.messages"] = queue
    out = {}
    for mode in ("batch", "each"):
        topic = f"s-{mode}-{queue}"
        kafka.create_topic(topic, 3)
        sink = KafkaSink(kafka.bootstrap, topic, config=cfg)
        if mode == "each":
            sink._batch_room = None  # one produce call per record: the peer
        else:
            assert sink._batch_room is not None
        refused = []
        for s in range(0, n, 1024):  # as the runner does: one call per learned batch
            refused += [(s + i, why) for i, why in
                        sink.send_encoded(values[s:s + 1024], keys[s:s + 1024])]
        assert sink.flush() is True and sink.take_undeliverable() == []
        assert [i for i, _ in refused] == list(big)
        assert all("too large" in why.lower() for _, why in refused), refused
        out[mode] = read_all(kafka.bootstrap, topic, n - len(big))
    # keyed records: the same partition and order as one call each; unkeyed ones go to a
    # partition the client picks at random, so: the same records
    def keyed(by_part):
        return {p: [m for m in part if m[0] is not None] for p, part in by_part.items()}

    def unkeyed(by_part):
        return sorted(m for part in by_part.values() for m in part if m[0] is None)
    assert keyed(out["batch"]) == keyed(out["each"])
    assert unkeyed(out["batch"]) == unkeyed(out["each"])
    sent = sorted(json.loads(v)["i"] for part in out["batch"].values() for _, v in part)
    assert sent == [i for i in range(n) if i not in big]
    for part in out["batch"].values():  # in order within each partition
        rows = [json.loads(v)["i"] for _, v in part]
        assert rows == sorted(rows)


def test_queue_limits_of_the_settings():
    assert _queue_limits({}) == (100_000, 1_048_576 * 1024)
    assert _queue_limits({"queue.buffering.max.messages": "50",
                          "queue.buffering.max.kbytes": 2}) == (50, 2048)
    assert _queue_limits({"queue.buffering.max.messages": "many"}) is None
    assert _queue_limits({"queue.buffering.max.kbytes": 0}) is None


def test_small_byte_queue_keeps_every_record_in_order(kafka):
    """A queue bounded by bytes (64 KB) much smaller than a batch: every record arrives,
    in order per partition."""
    n = 3000
    values = [json.dumps({"i": i, "pad": "y" * 200}).encode() for i in range(n)]
    keys = [f"k{i % 7}".encode() for i in range(n)]
    kafka.create_topic("s-bytes", 2)
    sink = KafkaSink(kafka.bootstrap, "s-bytes", config={"queue.buffering.max.kbytes": 64})
    assert sink.send_encoded(values, keys) == []
    assert sink.flush() is True
    got = read_all(kafka.bootstrap, "s-bytes", n)
    rows = {p: [json.loads(v)["i"] for _, v in part] for p, part in got.items()}
    assert sum(map(len, rows.values())) == n
    assert all(r == sorted(r) for r in rows.values())
