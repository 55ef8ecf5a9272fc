"""Random and hostile payloads through the batch decoder (streamrnn._core._codec) against the
full decoder (Decoder.decode), message by message: every row the batch decoder takes must be
exactly what the full decoder makes of the same message (key, y to the bit, time stamp with
its type, the features), and whatever it leaves goes to the full decoder. Run in a child
process by tests/test_codec.py (a crash there fails the test instead of the suite):

    python tests/codec_fuzz.py SEED N
"""
import json
import math
import random
import struct
import sys

import numpy as np

from streamrnn._core._codec import decode_messages
from streamrnn._core._scaling import VALUE_LIMIT
from streamrnn.streams import Decoder
from streamrnn.streams.columns import from_decoded
from streamrnn.streams.kafka import _codec_args


class Msg:
    """What the batch decoder reads of a confluent_kafka Message."""

    def __init__(self, value, key=None, partition=0, offset=0, err=None):
        self._v, self._k, self._p, self._o, self._e = value, key, partition, offset, err

    def error(self):
        return self._e

    def value(self):
        return self._v

    def key(self):
        return self._k

    def partition(self):
        return self._p

    def offset(self):
        return self._o

    def topic(self):
        return "t"


NUMBERS = ["0", "-0", "1", "-1", "0.5", "-0.0", "1e5", "1E5", "1e+5", "1e-5", "1.5e300",
           "1e308", "1e309", "-1e309", "1e-400", "123456789012345678", "1234567890123456789",
           "99999999999999999999999", "0.1", "0.30000000000000004", "2.2250738585072014e-308",
           "4.9e-324", "1.7976931348623157e308", "01", "1.", ".5", "+1", "-", "1e", "1e+",
           "NaN", "Infinity", "-Infinity", "nan", "inf", "0x10", "1_000", "1.0e0001",
           "9007199254740993", "1e100", "1.0000000000000001e100", "1e101", "-1e101",
           "123.456e-7", "3.141592653589793238462643383279"]
STRINGS = ['"a"', '"sensor-1"', '""', '"\\u00e9"', '"\\n"', '"a\\"b"', '"\xe9"', '"\x01"',
           '"' + "k" * 300 + '"', '"2024-01-01T00:00:00Z"', '"' + "t" * 70 + '"', '"[{"',
           '"\\ud800"']
OTHERS = ["true", "false", "null", "[]", "[1,2]", "{}", '{"a":1}', "[[[[[[]]]]]]"]
NAMES = ["y", "k", "ts", "temp", "hum", "on", "x", "y ", "Y", "", "é", "a\\u0079", "t" * 40]


def rand_value(r):
    u = r.random()
    if u < 0.45:
        return r.choice(NUMBERS) if r.random() < 0.5 else repr(r.uniform(-1e6, 1e6))
    if u < 0.7:
        return r.choice(STRINGS)
    if u < 0.85:
        return r.choice(OTHERS)
    return str(r.randint(-10 ** 6, 10 ** 6))


def rand_payload(r):
    u = r.random()
    if u < 0.4:  # the common message
        d = {"k": f"s{r.randint(0, 50)}", "y": round(r.uniform(-100, 100), r.randint(0, 6)),
             "temp": r.choice([r.randint(-5, 40), round(r.uniform(-5, 40), 2), True]),
             "ts": r.choice([r.randint(0, 10 ** 9), "2024-01-01", None, 1.5])}
        if r.random() < 0.3:
            d["hum" + str(r.randint(0, 3))] = r.random()
        if r.random() < 0.1:
            d["big"] = r.choice([1e150, -1e101, 1e99])
        return json.dumps(d, separators=r.choice([(",", ":"), (", ", ": ")])).encode()
    if u < 0.85:  # fields of random kinds and spellings
        ws = r.choice(["", " ", "\n", "\t", "\r\n "])
        fields = [f'"{r.choice(NAMES)}"{ws}:{ws}{rand_value(r)}' for _ in range(r.randint(0, 8))]
        text = ws + "{" + ws + ("," + ws).join(fields) + ws + "}" + r.choice(["", " ", "\n", "x",
                                                                            ",", "}"])
        data = text.encode("utf-8", "surrogatepass")
    else:
        data = json.dumps({"y": r.random(), "k": "s"}).encode()
    # mutations: a byte changed, cut, doubled, bad UTF-8
    v = r.random()
    if v < 0.1 and data:
        i = r.randrange(len(data))
        data = data[:i] + bytes([r.randrange(256)]) + data[i + 1:]
    elif v < 0.15:
        data = data[:r.randrange(len(data) + 1)]
    elif v < 0.18:
        data = data + data
    elif v < 0.2:
        data = data.replace(b"s", b"\xff\xfe", 1)
    elif v < 0.21:
        data = b"[" * 40 + data + b"]" * 40
    return data


def same(a, b):
    """Equal floats to the bit (0.0 and -0.0 differ)."""
    return struct.pack("<d", a) == struct.pack("<d", b)


DECODERS = [dict(key="k", time="ts"), dict(key="@key"), dict(), dict(key="k", max_fields=3),
            dict(key="k", time="ts", max_key_chars=8, max_time_chars=5, max_bytes=80),
            dict(key="k", target="temp", time="y"), dict(key="k", time="k")]


def check(seed, n):
    r = random.Random(seed)
    taken = 0
    for conf in DECODERS:
        d = Decoder(**conf)
        args = _codec_args(d)
        assert args is not None, conf
        msgs = []
        for i in range(n):
            mk = r.choice([None, b"s1", b"sensor-" + str(i % 9).encode(), b"\xe9t\xe9",
                           b"k" * 300, "str"])
            err = None
            if r.random() < 0.01:
                err = type("E", (), {"code": lambda self: -1, "__str__": lambda self: "e"})()
            val = rand_payload(r) if r.random() < 0.99 else r.choice([None, "text", 5])
            msgs.append(Msg(val, mk, r.randint(0, 3), i, err))
        status, part, off, y, keys, times, X, names = decode_messages(msgs, *args)
        assert len(names) == X.shape[1] == len(set(names))
        deferred = {}
        for i, m in enumerate(msgs):
            if m.error() is not None:
                assert status[i] == 2
                continue
            want = d.decode(m.value(), m.partition(), m.offset(), m.key(), m.topic())
            if status[i] == 1:
                deferred[i] = want
                continue
            assert status[i] == 0
            taken += 1
            assert want.error is None, (m.value(), want.error)
            assert keys[i] == want.key and type(keys[i]) is str, (m.value(), keys[i], want.key)
            assert same(y[i], want.y), (m.value(), y[i], want.y)
            assert type(times[i]) is type(want.time) and (
                times[i] == want.time if type(want.time) is not float
                else same(times[i], want.time)), (m.value(), times[i], want.time)
            assert part[i] == m.partition() and off[i] == m.offset()
            got = {k: X[i, j] for j, k in enumerate(names) if not math.isnan(X[i, j])}
            assert set(got) == set(want.x), (m.value(), got, want.x)
            for k, v in want.x.items():
                assert same(got[k], float(v)), (m.value(), k, got[k], v)
                assert abs(v) <= VALUE_LIMIT
        # the columns hold, per partition, every message but the Kafka errors, in order
        cols = from_decoded(status, part, off, y, keys, times, X, names, deferred)
        for p, c in cols.items():
            mine = [i for i, m in enumerate(msgs) if m.error() is None and m.partition() == p]
            assert c.offset.tolist() == mine
            for j, i in enumerate(mine):
                o = c.observation(j)
                want = deferred.get(i) or d.decode(msgs[i].value(), p, i, msgs[i].key(), "t")
                assert o.error == want.error
                if want.error is None:
                    assert (o.key, o.time) == (want.key, want.time)
                    assert same(o.y, want.y)
                    assert {k: float(v) for k, v in want.x.items()} == \
                        {k: float(v) for k, v in o.x.items()}, (msgs[i].value(), o.x)
    return taken


if __name__ == "__main__":
    seed, n = int(sys.argv[1]), int(sys.argv[2])
    print("taken", check(seed, n))
