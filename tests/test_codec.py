"""The batch decoder (streamrnn._core._codec) gives what the full decoder gives, message by
message, or leaves the message to it; and GlobalForecaster.learn_columns learns exactly what
learn_many learns from the same rows as dicts."""
import json
import math
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from streamrnn import GlobalForecaster
from streamrnn._core._codec import decode_messages
from streamrnn.streams import Decoder
from streamrnn.streams.columns import by_partition, from_decoded
from streamrnn.streams.kafka import _codec_args

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from codec_fuzz import Msg  # noqa: E402


@pytest.mark.parametrize("seed", [11, 12])
def test_random_and_hostile_payloads_decode_as_the_full_decoder_in_a_child_process(seed):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, os.path.join(HERE, "codec_fuzz.py"), str(seed), "2500"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert int(p.stdout.split()[-1]) > 2000  # the batch decoder took many of them itself


def _decode(payloads, **conf):
    d = Decoder(**conf)
    msgs = [Msg(v, k, 0, i) for i, (v, k) in enumerate(payloads)]
    return decode_messages(msgs, *_codec_args(d))


def test_the_common_message_is_decoded_here_and_the_rest_left_to_the_full_decoder():
    good = [json.dumps({"k": "s1", "y": 1.5, "temp": 20, "on": True, "ts": "t0"}).encode(),
            b'{"k":"s2","y":-0,"temp":2.5e-3,"note":"x","ts":17}']
    left = [b'{"k":"s1","y":1,"y":2}',                       # duplicate field
            b'{"k":"s\\u0031","y":1}',                       # an escape
            b'{"k":"s1","y":NaN}', b'{"k":"s1","y":Infinity}', b'{"k":"s1","y":1e400}',
            b'{"k":"s1","y":12345678901234567890}',          # beyond 18 digits
            b'{"k":"s1","y":1,"v":[1]}',                     # nesting
            b'{"k":"\xff","y":1}',                           # bad UTF-8
            b'{"k":"' + b"k" * 300 + b'","y":1}',            # a key beyond max_key_chars
            b'{"k":"s1","y":1,"f":1e200}',                   # a feature beyond range
            b'{"k":"s1","y":1} x', b'{"k":"s1","y":01}', b'{"k":"s1"}', b'[1]', b'']
    status, part, off, y, keys, times, X, names = _decode([(v, None) for v in good + left],
                                                          key="k", time="ts")
    assert status.tolist() == [0, 0] + [1] * len(left)
    assert keys[:2] == ["s1", "s2"] and times[:2] == ["t0", 17]
    assert y[0] == 1.5 and y[1] == 0.0 and math.copysign(1, y[1]) == 1.0  # -0 is the int 0
    assert names == ["temp", "on"]
    assert X[:2].tolist() == [[20.0, 1.0], [2.5e-3, math.nan]] or \
        (X[0].tolist() == [20.0, 1.0] and X[1, 0] == 2.5e-3 and math.isnan(X[1, 1]))


def test_the_message_key_is_the_series_key_when_asked():
    status, _, _, _, keys, _, _, _ = _decode([(b'{"y":1}', b"sensor-1"), (b'{"y":1}', None),
                                              (b'{"y":1}', b"\xc3\xa9")], key="@key")
    assert status.tolist() == [0, 0, 1] and keys[:2] == ["sensor-1", "series"]


def test_kafka_errors_make_no_row():
    err = type("E", (), {"code": lambda self: -191})()
    msgs = [Msg(b'{"y":1}', None, 0, 0), Msg(None, None, 0, 1, err), Msg(b'{"y":2}', None, 1, 2)]
    st = decode_messages(msgs, *_codec_args(Decoder()))
    assert st[0].tolist() == [0, 2, 0]
    cols = from_decoded(*st, {})
    assert sorted(cols) == [0, 1] and cols[0].offset.tolist() == [0] and \
        cols[1].offset.tolist() == [2]


def _rows(rng, n, n_keys):
    keys, ys, xs = [], [], []
    for i in range(n):
        keys.append(f"s{rng.integers(n_keys)}")
        ys.append(float(np.round(rng.normal(10, 3), 3)))
        x = {}
        for name in ("a", "b", "c"):
            if rng.random() < 0.7:
                x[name] = float(np.round(rng.normal(), 3))
        if rng.random() < 0.05:
            x["late"] = 1.0
        xs.append(x)
    return keys, ys, xs


def _as_columns(xs):
    names = []
    for x in xs:
        for k in x:
            if k not in names:
                names.append(k)
    X = np.full((len(xs), len(names)), np.nan)
    for i, x in enumerate(xs):
        for k, v in x.items():
            X[i, names.index(k)] = v
    return X, names


@pytest.mark.parametrize("max_features", [0, 2, 64])
def test_learn_columns_learns_exactly_what_learn_many_learns(max_features):
    rng = np.random.default_rng(3)
    kw = dict(cell="gru", hidden_size=4, horizon=3, seasonality=4, max_keys=15, max_batch=16,
              max_features=max_features, seed=1)
    a, b = GlobalForecaster(**kw), GlobalForecaster(**kw)
    for step in range(12):
        keys, ys, xs = _rows(rng, 60, 20)  # keys repeat within a batch; evictions beyond 15
        if step == 5:  # rows the model refuses: y and a feature out of range, a bad key
            ys[3] = 1e300
            xs[7] = {"a": 1e150, "b": 2e150}
            keys[9] = 3.5
        X, names = _as_columns(xs)
        with _no_check():
            ra = a.learn_many(keys, ys, xs)
            rb = b.learn_columns(keys, np.array(ys), X, names,
                                 slow={7: xs[7]} if step == 5 else None)
        assert ra.errors == rb.errors
        assert np.array_equal(ra.ok, rb.ok)
        for f in ("prediction", "anomaly", "forecast", "low", "high"):
            assert np.array_equal(getattr(ra, f), getattr(rb, f), equal_nan=True), f
    assert a.keys() == b.keys() and a.n_evicted == b.n_evicted > 0
    assert a.n_ignored_features == b.n_ignored_features
    assert pickle.dumps(a) == pickle.dumps(b)


class _no_check:
    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def test_columns_of_observations_keep_every_row_in_order():
    d = Decoder(key="k")
    obs = [d.decode(json.dumps({"k": "a", "y": i, "t": i}).encode(), i % 2, i) for i in range(6)]
    obs.insert(3, d.decode(b"not json", 1, 99))
    cols = by_partition(obs)
    assert cols[1].offset.tolist() == [1, 99, 3, 5] and cols[1].n_good == 3
    head, tail = cols[1].cut(2)
    assert head.offset.tolist() == [1, 99, 3] and tail.offset.tolist() == [5]
    assert head.bad[0][0] == 1 and head.bad[0][1].error.startswith("not JSON")
    assert head.observation(2).x == {"t": 3.0}


def _floats(rng, n):
    special = [0.0, -0.0, 1.0, 0.1, 1e-4, 9.999e-5, 1e-5, 1e15, 9999999999999998.0, 1e16,
               1e22, 5e-324, 1.7976931348623157e308, -1e300, math.nan, math.inf, -math.inf,
               123456789.123, 2.5, 1 / 3]
    out = []
    for _ in range(n):
        u = rng.random()
        if u < 0.3:
            out.append(special[rng.integers(len(special))])
        elif u < 0.6:
            out.append(float(rng.normal(0, 10.0 ** int(rng.integers(-8, 20)))))
        elif u < 0.8:
            out.append(float(np.frombuffer(rng.bytes(8), dtype=np.float64)[0]))
        else:
            out.append(round(float(rng.normal(0, 100)), int(rng.integers(0, 8))))
    return np.array(out)


@pytest.mark.parametrize("h", [0, 1, 5])
def test_encoded_records_are_byte_equal_to_orjson(h):
    orjson = pytest.importorskip("orjson")
    from streamrnn._core._codec import encode_records
    rng = np.random.default_rng(h)
    n = 3000
    key_pool = ["s1", "sensor-42", "", 'a"b', "back\\slash", "tab\t", "\x01", "é", "\u2028",
                "k" * 300, 7, -(2 ** 63)]
    time_pool = [None, "2024-01-01T00:00:00Z", "", 'q"', "ü", 17, -1, 2 ** 62, -(2 ** 63),
                 True, False, 1.5, 1e-7, 1e20, -0.0]
    keys = [key_pool[i] for i in rng.integers(len(key_pool), size=n)]
    times = [time_pool[i] for i in rng.integers(len(time_pool), size=n)]
    offs = rng.integers(0, 2 ** 62, size=n)
    ys, pred, anom = _floats(rng, n), _floats(rng, n), _floats(rng, n)
    H = max(h, 1) + 2
    fc, lo, hi = (_floats(rng, n * H).reshape(n, H) for _ in range(3))
    from streamrnn.streams.messages import dumps_floats
    for partition, floats in ((0, None), (3, dumps_floats), ("p", None), (None, dumps_floats)):
        values, mkeys = encode_records(keys, times, partition, offs, ys, pred, anom, fc, lo, hi,
                                       h, orjson.dumps, floats)
        for i in range(n):
            rec = {"key": keys[i], "time": times[i], "partition": partition,
                   "offset": int(offs[i]), "y": float(ys[i]), "prediction": float(pred[i]),
                   "anomaly": float(anom[i]), "forecast": fc[i, :h].tolist(),
                   "low": lo[i, :h].tolist(), "high": hi[i, :h].tolist()}
            assert values[i] == orjson.dumps(rec), (values[i], orjson.dumps(rec))
            assert mkeys[i] == str(keys[i]).encode("utf-8", "replace")


def test_encoded_records_refuse_what_orjson_refuses():
    orjson = pytest.importorskip("orjson")
    from streamrnn._core._codec import encode_records
    one = np.zeros(1)
    with pytest.raises(TypeError):  # an int beyond 64 bits, as orjson.dumps raises
        encode_records(["k"], [2 ** 70], 0, np.zeros(1, dtype=np.int64), one, one, one,
                       np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), 1, orjson.dumps)
    with pytest.raises(ValueError):
        encode_records(["k", "j"], [None], 0, np.zeros(1, dtype=np.int64), one, one, one,
                       np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), 1, orjson.dumps)


def test_encoding_refuses_a_negative_horizon_and_a_dumps_that_does_not_return_bytes():
    from streamrnn._core._codec import encode_records
    one, offs, m = np.arange(3.0), np.arange(3, dtype=np.int64), np.zeros((3, 1))
    with pytest.raises(ValueError, match="h must be >= 0"):
        encode_records(["a"] * 3, [None] * 3, 0, offs, one, one, one, m, m, m, -1, json.dumps)
    # json.dumps returns str: refused, never its object's bytes copied into the record
    with pytest.raises(TypeError, match="bytes"):
        encode_records(['a"b'] * 3, [1.5] * 3, 0, offs, one, one, one, m, m, m, 0,
                       lambda v: json.dumps(v).encode() if isinstance(v, list) else json.dumps(v))


def test_limits_beyond_the_c_types_decode_as_the_largest_ones():
    payloads = [(b'{"k":"s1","y":1.5,"t":2}', None), (b'{"k":"s2","y":2.5}', None)]
    base = _decode(payloads, key="k")
    huge = _decode(payloads, key="k", max_fields=2 ** 31, max_bytes=2 ** 63,
                   max_key_chars=2 ** 63, max_time_chars=2 ** 64)
    for a, b in zip(base, huge):
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b, equal_nan=True)
        else:
            assert a == b
