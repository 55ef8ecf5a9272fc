"""BatchScore (the global loop's scorer, a batch at a time in arrays) against HorizonScore
(one value at a time, the readable reference): the same counts, the same sums to rounding,
the same state, and a state loaded into either continues alike."""
import json
import math

import numpy as np
import pytest

from streamrnn.streams.scoring import BatchScore, HorizonScore


def _stream(rng, n, n_keys, h):
    keys = [f"k{int(rng.integers(n_keys))}" for _ in range(n)]
    ys = rng.normal(size=n).round(3) * 10
    fc = ys[:, None] + rng.normal(size=(n, h))
    fc[rng.random((n, h)) < 0.1] = np.nan
    lo, hi = fc - 1.5, fc + 1.5
    lo[rng.random((n, h)) < 0.1] = -np.inf
    return keys, ys, fc, lo, hi


def _lists(a):
    return [[float(v) if math.isfinite(v) else None for v in row] for row in a.tolist()]


def _feed_ref(sc, keys, ys, fc, lo, hi, part):
    for k, y, f, a, b in zip(keys, ys.tolist(), _lists(fc), _lists(lo), _lists(hi)):
        sc.observe(k, y, f, a, b, part=part)


def _same_tables(a, b, keys=()):
    for key in (None, *keys):
        ta, tb = a.table(key), b.table(key)
        assert ta.keys() == tb.keys()
        for m in ta:
            for ra, rb in zip(ta[m], tb[m]):
                assert ra["n"] == rb["n"] and ra["n_interval"] == rb["n_interval"], (key, m)
                for f in ("mae", "smape", "mase", "coverage", "width"):
                    assert ra[f] == pytest.approx(rb[f], rel=1e-9, nan_ok=True), (key, m, f)


@pytest.mark.parametrize("h,m", [(1, 0), (4, 0), (3, 2), (5, 7)])
def test_batch_scores_equal_the_one_at_a_time_scorer(h, m):
    rng = np.random.default_rng(h * 10 + m)
    ref, bat = HorizonScore(h, m, detail_keys=3, alpha=0.1), BatchScore(h, m, 3, 0.1)
    for step in range(12):
        keys, ys, fc, lo, hi = _stream(rng, int(rng.integers(1, 60)), 9, h)
        part = step % 2
        _feed_ref(ref, keys, ys, fc, lo, hi, part)
        bat.observe_many(keys, ys, fc, lo, hi, part=part)
        if step == 6:
            ref.forget("k3")
            bat.forget("k3")
    _same_tables(ref, bat, list(ref.per_key))
    assert ref.keys_seen == bat.keys_seen and ref.scored() == bat.scored()
    for k in [f"k{i}" for i in range(9)]:
        assert json.dumps(bat.key_state(k)) == json.dumps(ref.key_state(k)), k
    for p in (0, 1):
        assert ref.part_state(p)["keys_seen"] == bat.part_state(p)["keys_seen"]


def test_a_loaded_state_continues_as_the_reference_does():
    rng = np.random.default_rng(5)
    h, m = 3, 2
    ref = HorizonScore(h, m, detail_keys=2, alpha=0.1)
    keys, ys, fc, lo, hi = _stream(rng, 200, 6, h)
    _feed_ref(ref, keys, ys, fc, lo, hi, 0)
    parts = {0: json.loads(json.dumps(ref.part_state(0)))}
    states = {k: json.loads(json.dumps(ref.key_state(k))) for k in set(keys)}
    a, b = HorizonScore(h, m, 2, 0.1), BatchScore(h, m, 2, 0.1)
    a.load(parts, states)
    b.load(parts, states)
    keys, ys, fc, lo, hi = _stream(rng, 150, 6, h)
    _feed_ref(a, keys, ys, fc, lo, hi, 0)
    b.observe_many(keys, ys, fc, lo, hi, part=0)
    _same_tables(a, b, list(a.per_key))
    for k in set(keys):
        assert json.dumps(b.key_state(k)) == json.dumps(a.key_state(k))


def test_a_hostile_state_is_refused_before_anything_changes():
    b = BatchScore(2, 0, 2, 0.1)
    b.observe_many(["a"], [1.0], np.array([[1.0, 2.0]]), np.array([[0.0, 1.0]]),
                   np.array([[2.0, 3.0]]))
    before = json.dumps(b.key_state("a"))
    with pytest.raises(ValueError):
        b.load({}, {"a": {"hist": [1.0], "pending": [[0, [1.0, 2.0], None, [1.0, 2.0]]]}})
    with pytest.raises(ValueError):
        b.load({}, {"a": {"hist": ["x"], "pending": []}})
    assert json.dumps(b.key_state("a")) == before
