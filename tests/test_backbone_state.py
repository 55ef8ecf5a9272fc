"""The backbone's state API: plain values and copies out, strict validation in (every field,
cross-field consistency), nothing changed on refusal, and hostile states that cannot crash the
process (random mutations of a valid state, run in a child process)."""
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import streamrnn
from streamrnn._core._backbone import Backbone


def _trained(H=3, periods=(5,), auto=True, max_lag=40, n=300, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    bb = Backbone(H, periods, auto, max_lag)
    for y in 10 + 3 * np.sin(2 * np.pi * t / 8) + rng.normal(0, .3, n):
        bb.update(float(y))
    return bb


def test_state_is_plain_values_and_copies():
    bb = _trained()
    st = bb.get_state()
    assert bb.periods == (5, 8)            # the declared 5 and the detected 8
    for k, v in st.items():
        assert isinstance(v, (bool, int, float, tuple, np.ndarray)), k
        if isinstance(v, np.ndarray):
            assert v.dtype == np.float64, k
            v[...] = 123.0                 # a copy: the backbone does not see it
    assert bb.get_state()["l"][0] != 123.0
    assert st["detected"] == (8,)


def _refused(bb, state, match=None):
    before = pickle.dumps(bb.get_state())
    with pytest.raises(ValueError, match=match):
        bb.set_state(state)
    assert pickle.dumps(bb.get_state()) == before


def test_every_field_is_validated_and_nothing_changes_on_refusal():
    bb = _trained()
    good = bb.get_state()
    other = _trained(seed=1)
    K = bb.n_members

    def w(**kw):
        return dict(good, **kw)

    _refused(other, [], "dict")
    _refused(other, {k: v for k, v in good.items() if k != "l"}, "keys")
    _refused(other, w(extra=1), "keys")
    _refused(other, w(horizon=4), "horizon")
    _refused(other, w(periods=(6,)), "periods")
    _refused(other, w(auto=False), "auto")
    _refused(other, w(max_lag=41), "max_lag")
    _refused(other, w(horizon=3.0))
    _refused(other, w(t=-1), "t")
    _refused(other, w(t=2 ** 62), "t")
    _refused(other, w(t=True), "t")
    _refused(other, w(t=good["t"] + 1), "det_n")
    _refused(other, w(alive_log=1), "alive_log")
    _refused(other, w(l=good["l"].astype(np.float32)), "dtype")
    _refused(other, w(l=good["l"][:-1]), "shape")
    _refused(other, w(l=np.append(good["l"], [0.0] * 48)), "shape")
    _refused(other, w(l=np.where(np.arange(K) == 3, np.nan, good["l"])), "non-finite")
    _refused(other, w(l=good["l"] + 1e151), "beyond")
    _refused(other, w(b=good["b"] + 1.0), "without trend")
    _refused(other, w(season=good["season"][:-1]), "shape")
    _refused(other, w(loss=-good["loss"] - 1), ">= 0")
    _refused(other, w(loss=good["loss"].T.copy()), "shape")
    _refused(other, w(ring=good["ring"] * np.inf), "non-finite")
    _refused(other, w(recent=-good["recent"]), "<= 0")
    _refused(other, w(hist=good["hist"] + 2e100), "beyond")
    _refused(other, w(scale_ew=-1.0), "scale_ew")
    _refused(other, w(scale_ew=float("nan")), "finite")
    _refused(other, w(detected=(8, 9)), "multiple")
    _refused(other, w(detected=(30,)), "impossible")
    _refused(other, w(detected=()), "shape")      # 48 members too many for no detection
    _refused(other, w(detected=[8]), "tuple")
    _refused(other, w(det_C=good["det_C"] * 2), "inconsistent")
    _refused(other, w(det_S0=1e100), "inconsistent")
    _refused(other, w(det_cand=41), "det_cand")
    _refused(other, w(det_cand=0, det_cand_n=3), "det_cand")
    _refused(other, w(ad_u=good["ad_u"][:1]), "shape")
    _refused(other, w(ad_u=good["ad_u"] + 31.0), "beyond")
    _refused(other, w(ad_v=-good["ad_v"] - 1.0), "ad_v")
    _refused(other, w(ad_dl=good["ad_dl"] * np.nan), "non-finite")
    _refused(other, w(ad_db=good["ad_db"] + 2e150), "beyond")
    _refused(other, w(ad_ds=good["ad_ds"][:, :, :-1]), "shape")
    fresh = Backbone(3, (5,), True, 40)
    for y in (1.0, 2.0):
        fresh.update(y)
    early = fresh.get_state()
    _refused(fresh, dict(early, loss=early["loss"] + 1.0), "matured")
    _refused(fresh, dict(early, ring=early["ring"] + 1.0), "not yet made")
    _refused(fresh, dict(early, recent=early["recent"] + 1.0), "not yet seen")
    _refused(fresh, dict(early, hist=early["hist"] + 1.0), "hist")
    first = Backbone(3, (5,), True, 40)
    first.update(1.0)
    one = first.get_state()
    _refused(first, dict(one, ad_v=one["ad_v"] + 1.0), "adaptive")
    _refused(first, dict(one, ad_u=one["ad_u"] + 1.0), "adaptive")
    # the good state itself is accepted and reproduces the source exactly
    other.set_state(good)
    assert pickle.dumps(other.get_state()) == pickle.dumps(good)
    assert np.array_equal(other.forecast(9), bb.forecast(9))


def test_from_state_refuses_garbage_with_value_error():
    good = _trained().get_state()
    for bad in (None, 1, {}, dict(good, horizon="3"), dict(good, periods=5),
                dict(good, max_lag=10 ** 9), dict(good, horizon=10 ** 6)):
        with pytest.raises(ValueError):
            Backbone.from_state(bad)


CHILD = r"""
import pickle, sys
import numpy as np
from streamrnn._core._backbone import Backbone

rng = np.random.default_rng(int(sys.argv[1]))
def source(H, periods, auto, max_lag, n):
    t = np.arange(n)
    bb = Backbone(H, periods, auto, max_lag)
    for y in 10 + 3 * np.sin(2 * np.pi * t / 8) + rng.normal(0, .3, n):
        bb.update(float(y))
    return bb

GOODS = [source(3, (5,), True, 40, 300).get_state(), source(4, (), True, 40, 200).get_state(),
         source(2, (3, 7), False, 200, 60).get_state(), source(5, (12,), False, 200, 8).get_state()]
WEIRD = [None, "x", b"x", [], (), {}, True, -1, 0, 1, 2 ** 40, 2 ** 63, -2 ** 63, 1.5, -0.0,
         float("nan"), float("inf"), 1e308, -1e308, 5e-324, np.float32(1), np.int8(3),
         np.zeros(0), np.zeros((2, 2)), np.full(3, np.nan), np.arange(5), object()]

def mutate(st):
    st = dict(st)
    for _ in range(rng.integers(1, 4)):
        key = list(st)[rng.integers(len(st))]
        v = st[key]
        op = rng.integers(11)
        if op == 0:
            st[key] = WEIRD[rng.integers(len(WEIRD))]
        elif op == 1:
            del st[key]
        elif isinstance(v, np.ndarray) and v.size:
            v = v.copy()
            if op == 2:
                v.flat[rng.integers(v.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e300, -1e300, 0.0, -1.0])
            elif op == 3:
                v *= rng.choice([-1.0, 1e10, 1e-10, 0.0, 1e200])
            elif op == 4:
                st[key] = v.reshape(-1)[:-1] if v.ndim == 1 else v.T.copy()
                continue
            elif op == 5:
                v = rng.normal(0, 1.0, v.shape) * 10.0 ** rng.integers(0, 120)
            elif op == 6:
                rng.shuffle(v.reshape(-1))
            elif op >= 9:                  # plausible but inconsistent values (often valid)
                v *= rng.uniform(0.1, 10.0, v.shape)
            else:
                v = np.concatenate([v.reshape(-1), v.reshape(-1)])
            st[key] = v
        elif isinstance(v, (bool, np.bool_)):
            st[key] = not v
        elif isinstance(v, int):
            st[key] = int(rng.choice([v + 1, v - 1, 0, -v, v * 2, 2 ** 62 - 2, 3, 1]))
        elif isinstance(v, float):
            st[key] = float(rng.choice([-v, v * 1e200, 0.0, 1e300, -1e-300, v + 1]))
        elif isinstance(v, tuple):
            st[key] = tuple(rng.choice([2, 3, 5, 7, 8, 10, 12, 16, 20, 24, 32, 1, 0, -4],
                                       rng.integers(0, 4)).tolist())
    return st

accepted = refused = 0
for i in range(int(sys.argv[2])):
    good = GOODS[i % len(GOODS)]
    st = mutate(good)
    try:
        bb = Backbone.from_state(st)
    except (ValueError, TypeError):
        refused += 1
        continue
    accepted += 1
    for y in rng.choice([1e100, -1e100, 0.0, 3.0, 5e-324, -2.5, 1e-300], 60):
        bb.update(float(y))
        f = bb.forecast(bb.horizon + 3)
        w = bb.window(50)
        assert np.all(np.isfinite(f)) and np.all(np.isfinite(w)), st
        assert np.isfinite(bb.scale) and bb.scale > 0
        assert np.isfinite(bb.snaive(3)) and np.isfinite(bb.last())
    Backbone.from_state(bb.get_state())
    pickle.loads(pickle.dumps(bb))
print("survived", accepted, refused)
"""


@pytest.mark.parametrize("seed", [0, 1])
def test_random_mutations_of_a_valid_state_cannot_crash_a_process(seed):
    root = os.path.dirname(os.path.dirname(os.path.abspath(streamrnn.__file__)))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), str(seed), "200"],
                          capture_output=True, text=True, timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("survived")
    accepted = int(proc.stdout.split()[1])
    assert accepted >= 20            # some mutations keep the state valid (and were exercised)
