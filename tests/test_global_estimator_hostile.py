"""Hostile arguments to GlobalForecaster, in a child process: thousands of random calls with
wrong types, shapes, dtypes, huge and non-finite values, odd keys. Each ends in a result or in
TypeError/ValueError/KeyError, never in a crash; the model then still learns, forecasts and
pickles to the bytes it had before the refused calls changed... nothing."""
import json
import subprocess
import sys

from _support import child_env

CHILD = r"""
import json, math, pickle, random, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
from streamrnn import GlobalForecaster

rng = random.Random(int(sys.argv[1]))
N = int(sys.argv[2])
m = GlobalForecaster(cell=sys.argv[3], hidden_size=4, tbptt_steps=4, seasonality=3, horizon=4,
                     max_keys=6, max_batch=4, max_features=3, seed=1)
for t in range(8):
    m.learn_many(["a", "b", "c"], [float(t), 2.0 + t, 3.0], [{"u": 1.0, "v": 2.0}] * 3)

KEYS = ["a", "b", "c", "d", "", "x" * 1025, b"a", b"\xff" * 3, 7, -1, 2 ** 63, -2 ** 63,
        np.int64(3), np.str_("a"), np.bytes_(b"b"), 1.5, None, True, ("a",), [1], {"a": 1},
        float("nan"), object(), np.float64(2.0)]
YS = [0.0, -3.5, 1e30, 1e31, -1e100, 1e101, 1e308, float("nan"), float("inf"), -float("inf"),
      "1", None, True, 5, 2 ** 2000, np.float32(2.0), np.int8(3), [1.0], {}, 1j, np.nan]
XS = [None, {}, {"u": 1.0}, {"v": -2.0, "u": 0.5}, {"w": 1.0}, {"u": float("nan")},
      {"u": float("inf")}, {"u": 1e101}, {"u": "x"}, {"u": None}, {"u": [1.0]}, {1: 2.0},
      {("a", 1): 3.0}, [1.0], "u", 3, {"u": True}, {"u": 2 ** 2000}, {"u": np.float32(1.0)}]
OK = (TypeError, ValueError, KeyError)
counts = {"ok": 0, "refused": 0}


def pick(pool):
    return rng.choice(pool)


def call():
    kind = rng.random()
    if kind < 0.45:
        n = rng.choice([0, 1, 2, 3, 5, 9])
        keys = [pick(KEYS) for _ in range(n)]
        ys = [pick(YS) for _ in range(n)]
        xs = None if rng.random() < 0.3 else [pick(XS) for _ in range(n)]
        shape = rng.random()
        if shape < 0.1:
            with np.errstate(all="ignore"):
                ys = np.array([y if isinstance(y, float) else 1.0 for y in ys]).astype(
                    rng.choice(["f8", "f4", ">f8", "i8"]))
        elif shape < 0.15:
            ys = np.zeros((n, 2))
        elif shape < 0.2:
            ys = ys[:-1]
        elif shape < 0.25:
            keys = "abc"
        elif shape < 0.3:
            xs = (x for x in [None] * n)
        alpha = rng.choice([0.1, 0.1, 0.0, 1.0, -1, float("nan"), "0.1", None])
        r = m.learn_many(keys, ys, xs, alpha=alpha)
        assert len(r) == n and r.ok.sum() + len(r.errors) == n
    elif kind < 0.65:
        m.learn_one(pick(KEYS), pick(YS), pick(XS))
    elif kind < 0.8:
        h = rng.choice([0, 1, 4, 9, -1, 1.5, None, "2", 10 ** 9, np.int32(3), True])
        xs = rng.choice([None, [], [{"u": 1.0}] * 12, [pick(XS)] * 12, "x", [None]])
        if rng.random() < 0.5:
            f = m.forecast(pick(KEYS), h, xs)
        else:
            f = m.forecast_interval(pick(KEYS), h, rng.choice([0.1, 0.5, 0.0, 2.0, None]), xs)
        assert isinstance(f, list)
    elif kind < 0.9:
        s = m.score_one(pick(KEYS), pick(YS), pick(XS))
        assert 0.0 <= s <= 1.0, s
    elif kind < 0.95:
        m.last_prediction(pick(KEYS)), m.last_anomaly(pick(KEYS)), pick(KEYS) in m
    else:
        m.forget(pick(KEYS))


for i in range(N):
    try:
        call()
        counts["ok"] += 1
    except OK:
        counts["refused"] += 1
# the model still works and round-trips
m.learn_many(["a", "q"], [1.0, 2.0], [{"u": 1.0}, None])
assert len(m.forecast("q", 6)) == 6 and len(m.forecast("a", 6)) == 6
assert pickle.dumps(pickle.loads(pickle.dumps(m))) == pickle.dumps(m)
print(json.dumps(counts))
"""


def test_random_hostile_calls_never_crash():
    for seed, cell in ((1, "gru"), (2, "lstm")):
        r = subprocess.run([sys.executable, "-c", CHILD, str(seed), "1500", cell],
                           capture_output=True, text=True, timeout=600, env=child_env())
        assert r.returncode == 0, r.stderr[-3000:]
        counts = json.loads(r.stdout.strip().splitlines()[-1])
        assert counts["ok"] > 100 and counts["refused"] > 100, counts
