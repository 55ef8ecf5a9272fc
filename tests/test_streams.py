"""Decoding, file and stdin sources, sinks and addresses."""
import json
import os
import sys

import pytest

from streamrnn.streams import (BadMessages, CsvSource, DatasetSource, Decoder, JsonLinesSink,
                               JsonLinesSource, StdinSource, open_sink, open_source,
                               parse_address)

BAD = [b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"{}", b'{"y": null}', b'{"y": "3.5"}',
       b'{"y": true}', b'{"y": NaN}', b'{"y": Infinity}', b'{"y": 1, "a": NaN}',
       b'{"y": 1e999}', b'{"y": 1, "k": [1]}', b'{"y": {"v": 1}}']


def test_decoder_good_message():
    d = Decoder(target="v", key="station", time="ts")
    o = d.decode(b'{"v": 2, "station": "s1", "ts": "2024-01-01", "t": 20.5, "on": true, '
                 b'"note": "x", "nested": {"a": 1}}', 4, 17)
    key, x, y = o
    assert (key, x, y, o.time, o.partition, o.offset) == ("s1", {"t": 20.5, "on": True}, 2.0,
                                                           "2024-01-01", 4, 17)
    assert type(y) is float and o.error is None
    assert Decoder(key="id").decode('{"y": 1, "id": 7}').key == "7"


@pytest.mark.parametrize("payload", BAD)
def test_decoder_bad_messages_carry_a_reason(payload):
    o = Decoder(key="k").decode(payload, 1, 9)
    if payload == b'{"y": 1, "k": [1]}':
        assert "key field" in o.error
    else:
        assert o.error and o.x is None and o.y is None and (o.partition, o.offset) == (1, 9)


def test_message_key_and_topic_levels():
    assert Decoder(key="@key").decode(b'{"y": 1}', message_key=b"dev-1").key == "dev-1"
    assert Decoder(key="@key", default_key="d").decode(b'{"y": 1}').key == "d"
    assert Decoder(key="@topic:1").decode(b'{"y": 1}', topic="plant/p7/temp").key == "p7"
    assert Decoder(key="@topic").decode(b'{"y": 1}', topic="a/b").key == "a/b"
    assert "no level" in Decoder(key="@topic:5").decode(b'{"y": 1}', topic="a/b").error
    with pytest.raises(ValueError):
        Decoder(key="@partition")


def test_bad_messages_are_counted_logged_and_dead_lettered(tmp_path, caplog):
    sink = JsonLinesSink(tmp_path / "dead.jsonl")
    bad = BadMessages(sink)
    dec = Decoder()
    for i, p in enumerate(BAD):
        bad(dec.decode(p, 0, i))
    sink.close()
    rows = [json.loads(line) for line in open(tmp_path / "dead.jsonl")]
    assert bad.count == len(BAD) == len(rows)
    assert [r["offset"] for r in rows] == list(range(len(BAD)))
    assert rows[0]["payload"] == "not json" and "not JSON" in rows[0]["reason"]
    assert "offset 3" in caplog.text


def _write_jsonl(path, n, bad_every=0):
    with open(path, "w") as f:
        for i in range(n):
            if bad_every and i % bad_every == bad_every - 1:
                f.write("oops\n")
            else:
                f.write(json.dumps({"y": i * 0.5, "key": f"k{i % 3}", "x1": i}) + "\n")
            if i == 5:
                f.write("\n")  # blank lines are skipped, not records


def test_jsonl_source_positions_resume_and_iteration(tmp_path):
    path = tmp_path / "in.jsonl"
    _write_jsonl(path, 1200, bad_every=100)
    src = JsonLinesSource(path, Decoder(key="key"))
    all_obs = []
    while (batch := src.read(0.1)) is not None:
        all_obs.extend(batch)
    assert [o.offset for o in all_obs] == list(range(1200))
    assert sum(o.error is not None for o in all_obs) == 12
    src2 = JsonLinesSource(path, Decoder(key="key"))
    src2.seek({0: 777})
    rest = [o.offset for o in src2]
    assert rest == [i for i in range(777, 1200) if i % 100 != 99]
    assert src2.bad.count == 5
    key, x, y = next(iter(JsonLinesSource(path, Decoder(key="key"))))
    assert (key, x, y) == ("k0", {"x1": 0}, 0.0)


def test_csv_source(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("when,station,y,temp,label\n2024-01-01,a,1.5,20,x\n2024-01-02,b,,21,x\n"
                    "2024-01-03,a,oops,22,x\n2024-01-04,a,2,,x\n")
    src = CsvSource(path, Decoder(key="station", time="when"))
    obs = src.read()
    assert [o.error is None for o in obs] == [True, False, False, True]
    assert (obs[0].key, obs[0].x, obs[0].y, obs[0].time) == ("a", {"temp": 20}, 1.5, "2024-01-01")
    assert obs[3].x == {} and obs[3].offset == 3 and src.read() is None
    src = CsvSource(path, Decoder(key="station"))
    src.seek({0: 3})
    assert [o.offset for o in src.read()] == [3]


def test_stdin_source_reads_a_pipe_with_timeouts():
    r, w = os.pipe()
    src = StdinSource(Decoder(), fd=r)
    assert src.read(0.05) == []  # nothing yet: an empty batch, not the end
    os.write(w, b'{"y": 1}\n{"y": 2}\n{"y"')
    got = src.read(0.5)
    assert [o.y for o in got] == [1.0, 2.0]
    os.write(w, b': 3}\n')
    os.close(w)
    assert [o.y for o in src.read(0.5)] == [3.0]
    assert src.read(0.5) is None
    os.close(r)


def test_dataset_source_replays_river():
    from river.datasets import WaterFlow
    src = DatasetSource(WaterFlow(), key="w")
    first = src.read()
    assert first[0].key == "w" and first[0].time.startswith("2022-03-20") and first[0].x == {}
    n = len(first)
    while (b := src.read()) is not None:
        n += len(b)
    assert n == 1268


def test_sinks_and_addresses(tmp_path, capsys):
    s = open_sink(str(tmp_path / "o.jsonl"))
    s.send({"key": "a", "prediction": 1.0})
    s.close()
    assert json.loads((tmp_path / "o.jsonl").read_text()) == {"key": "a", "prediction": 1.0}
    assert parse_address("mqtt://h:1883/plant/+/t#x?qos=1") == {
        "scheme": "mqtt", "hosts": "h:1883", "topic": "plant/+/t#x", "query": {"qos": "1"}}
    assert parse_address("kafka://a:1,b:2/top?group=g")["hosts"] == "a:1,b:2"
    assert parse_address("-")["scheme"] == "stdio"
    with pytest.raises(ValueError, match="scheme"):
        parse_address("amqp://h/q")
    assert isinstance(open_source(str(tmp_path / "o.jsonl")), JsonLinesSource)


def test_missing_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)
    with pytest.raises(ImportError, match=r"pip install confluent-kafka .*\.\[kafka\]"):
        open_source("kafka://127.0.0.1:1/t")
    monkeypatch.setitem(sys.modules, "paho", None)
    monkeypatch.setitem(sys.modules, "paho.mqtt", None)
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    with pytest.raises(ImportError, match=r"pip install paho-mqtt .*\.\[mqtt\]"):
        open_sink("mqtt://127.0.0.1:1/t")


def test_the_fast_decoding_path_equals_the_full_decoder_or_defers_to_it():
    """Decoder.fast_path (the Kafka source's per-message path): for every message, good or
    hostile, it returns what decode returns, or None (decode then handles it)."""
    import random

    from streamrnn.streams import Decoder
    rng = random.Random(7)
    values = [1, 1.5, -0.0, 2 ** 70, 2 ** 1100, True, None, "x", [1], {"a": 1}, float("nan"),
              1e308, "é", "t" * 80]
    payloads = [b"not json", b"[1,2]", b"{}", b'{"y": NaN}', b'{"y": Infinity}', b"\xff",
                b"[" * 50 + b"]" * 50, b'{"y": 1e400}', b'{"y": 1, "y": 2}', "é".encode()]
    for _ in range(3000):
        d = {}
        for name in rng.sample(["y", "temp", "k", "ts", "v", "é"], rng.randint(0, 6)):
            d[name] = rng.choice(values)
        try:
            payloads.append(json.dumps(d).encode())
        except ValueError:
            pass
    keys = [None, b"sensor-1", b"\xff\xfe", "a-str", b"k" * 2000]
    n = 0
    for key_spec, time_field in (("@key", None), ("k", "ts"), (None, "ts"), ("k", None)):
        dec = Decoder(key=key_spec, time=time_field, max_depth=8, max_bytes=4096,
                      max_key_chars=64, max_time_chars=40)
        fast = dec.fast_path()
        for i, p in enumerate(payloads):
            mk = keys[i % len(keys)]
            got = fast(p, 3, i, mk)
            full = dec.decode(p, 3, i, mk)
            if got is None:
                continue
            n += 1
            assert full.error is None, (p, full.error)
            for f in ("key", "x", "y", "time", "partition", "offset", "error", "kind"):
                a, b = getattr(got, f), getattr(full, f)
                assert a == b and type(a) is type(b), (p, f, a, b)
    assert n > 200
    common = json.dumps({"y": 1.25, "temp": 20, "on": True, "site": "n", "ts": "t1"}).encode()
    dec = Decoder(key="@key", time="ts")
    assert dec.fast_path()(common, 0, 5, b"s1") is not None  # the common message takes it
