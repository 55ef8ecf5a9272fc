"""Decoding cost per message: the standard library's json, orjson and msgspec (when
installed), through the parser alone and through the whole Decoder (limits, validation,
features), against the batch decoder of the Kafka path (streamrnn._core._codec, which parses
the common message straight into columns; here fed by stand-in message objects whose five
accessors are Python methods, dearer than confluent-kafka's C ones).

    PYTHONPATH=. python benchmarks/bench_decode.py [--messages 200000]

Messages: typical sensor readings (a key, a time stamp, a target and three numeric features,
about 120 bytes), and a wide one with 50 features (about 1.2 kB). Prints µs per message.
"""
import argparse
import json
import time

from streamrnn.streams import Decoder


def typical(n):
    return [json.dumps({"station": f"s{i % 40}", "ts": f"2024-01-01T{i % 24:02d}:{i % 60:02d}:00Z",
                        "y": round(i * 0.37 % 50, 3), "temp": 20.5 + i % 7,
                        "humidity": 0.4 + (i % 11) / 100, "on": i % 2 == 0}).encode()
            for i in range(n)]


def wide(n):
    return [json.dumps({"station": f"s{i % 40}", "y": i * 0.5,
                        **{f"f{j}": (i * j) % 97 / 7 for j in range(50)}}).encode()
            for i in range(n)]


def per_message(f, msgs, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for m in msgs:
            f(m)
        best = min(best, time.perf_counter() - t0)
    return best / len(msgs) * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    n = ap.parse_args().messages
    std = json.JSONDecoder().decode

    def std_loads(b):
        return std(b.decode("utf-8"))

    parsers = [("json", std_loads)]
    try:
        import orjson
        parsers.append((f"orjson {orjson.__version__}", orjson.loads))
    except ImportError:
        print("orjson is not installed")
    try:
        import msgspec
        parsers.append((f"msgspec {msgspec.__version__}", msgspec.json.Decoder().decode))
    except ImportError:
        print("msgspec is not installed")
    print(f"\nstreamrnn decode benchmark: {n:,d} messages per kind, best of 3\n")
    print(f"{'messages':<22}{'parser':<16}{'parse µs/msg':>14}{'Decoder µs/msg':>16}")
    for kind, msgs in (("typical (~130 B)", typical(n)), ("wide (50 features)", wide(n // 4))):
        for name, loads in parsers:
            d = Decoder(key="station", time="ts", loads=loads)
            print(f"{kind:<22}{name:<16}{per_message(loads, msgs):>14.2f}"
                  f"{per_message(d.decode, msgs):>16.2f}")
        d = Decoder(key="station", time="ts")
        print(f"{kind:<22}{'fast_path':<16}{'':>14}"
              f"{per_message(lambda m, f=d.fast_path(): f(m, 0, 0, None), msgs):>16.2f}")
        print(f"{kind:<22}{'batch decoder':<16}{'':>14}{batch(d, msgs):>16.2f}")


class _Msg:
    __slots__ = ("v", "o")

    def __init__(self, v, o):
        self.v, self.o = v, o

    def error(self):
        return None

    def value(self):
        return self.v

    def key(self):
        return None

    def partition(self):
        return 0

    def offset(self):
        return self.o


def batch(d, msgs, size=1000, repeat=3):
    """µs per message of the batch decoder, ``size`` messages a call (as KafkaSource reads)."""
    from streamrnn._core._codec import decode_messages
    from streamrnn.streams.kafka import _codec_args
    args = _codec_args(d)
    wrapped = [_Msg(m, i) for i, m in enumerate(msgs)]
    chunks = [wrapped[i:i + size] for i in range(0, len(wrapped), size)]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for c in chunks:
            st = decode_messages(c, *args)
        best = min(best, time.perf_counter() - t0)
    assert not st[0].any()  # every message decoded by the batch decoder itself
    return best / len(msgs) * 1e6


if __name__ == "__main__":
    main()
