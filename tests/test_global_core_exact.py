"""GlobalCore equals tests/reference_global.py (a readable loop over keys that keeps every
issued forecast, with tests/reference_shared.py for the network) to ~1e-10: random and
seasonal series, several keys in ragged batches, resets, copies, features with gaps, float32
and float64 slots, learn_every 1 and 3."""
import math

import numpy as np
import pytest

import reference as R
import reference_global as RG
from streamrnn._core import ADAM, GRU, LSTM, ELMAN_TANH, SQUARED, HUBER, Optimizer
from streamrnn._core._global import GlobalCore

TOL = 1e-10


def make_pair(cell=LSTM, hidden=5, k2=4, H=6, m=4, n_x=0, cap=12, mb=8, dtype="float64",
              learn_every=1, loss=SQUARED, lr=0.01, **kw):
    core = GlobalCore(cell, hidden, 1, k2, H, m, n_x, cap, mb, dtype, learn_every, 3,
                      Optimizer(ADAM, lr), loss=loss, **kw)
    ref = RG.RefGlobal(cell, hidden, 1, k2, H, m, n_x, dtype == "float32", learn_every, loss,
                       core.net.params.copy(), R.RefOptimizer("adam", lr), **kw)
    return core, ref


def close(a, b, what):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, what
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{what}: NaN pattern\n{a}\n{b}"
    ok = ~np.isnan(a)
    err = np.abs(a[ok] - b[ok]) / np.maximum(1.0, np.abs(b[ok]))
    assert err.size == 0 or err.max() <= TOL, f"{what}: max rel err {err.max():.3g}"


def series(kind, rng, n, key):
    t = np.arange(n)
    if kind == "seasonal":
        return (50 + 10 * np.sin(2 * np.pi * t / 4 + key) + 0.05 * t * (key % 3)
                + rng.normal(0, 1.0, n))
    if kind == "cross":  # positive for a while, then crossing zero: the log member retires
        return 4 + 3 * np.sin(2 * np.pi * t / 4 + key) - 0.05 * t * (key % 2) + rng.normal(0, .5, n)
    if kind == "walk":
        return np.cumsum(rng.normal(0, 1, n)) + 5 * key
    return rng.normal(key, 1 + key % 2, n)


def run(core, ref, rng, kind="seasonal", steps=40, n_keys=7, n_x=0, resets=(), copies=(),
        gaps=0.2):
    H = core.horizon
    data = {k: series(kind, rng, steps * 2, k) for k in range(n_keys)}
    pos = {k: 0 for k in range(n_keys)}
    for it in range(steps):
        B = int(rng.integers(1, min(n_keys, core.max_batch) + 1))
        keys = [int(k) for k in rng.choice(n_keys, B, replace=False)]
        ys = np.array([data[k][pos[k]] for k in keys])
        for k in keys:
            pos[k] += 1
        xs = None
        if n_x:
            xs = rng.normal(2.0, 3.0, (B, n_x))
            xs[rng.random((B, n_x)) < gaps] = np.nan
        out = (np.zeros(B), np.zeros(B), np.zeros((B, H)), np.zeros((B, H)), np.zeros((B, H)))
        st = core.step(np.array(keys, dtype=np.int64), ys, xs, *out)
        rst, rout = ref.step(keys, list(ys), None if xs is None else [list(r) for r in xs])
        assert st == rst == 1
        for name, a, b in zip(("pred", "score", "fc", "lo", "hi"), out, rout):
            close(a, b, f"batch {it} {name}")
        close(core.net.params, ref.net.params, f"batch {it} params")
        if it in resets:
            k = keys[0]
            core.reset(np.array([k], dtype=np.int64))
            ref.reset(k)
        if it in copies:
            src, dst = keys[0], (keys[0] + 1) % n_keys
            if src != dst:
                core.copy_slots(np.array([src], dtype=np.int64), np.array([dst], dtype=np.int64))
                ref.copy(src, dst)
                pos[dst] = pos[src]
                data[dst] = data[src].copy()
    for k in range(n_keys):
        for h in (1, H, H + 5):
            x = None
            if n_x:
                x = rng.normal(2.0, 3.0, n_x)
                x[0] = np.nan
            close(core.forecast(k, h, x), ref.forecast(k, h, x), f"forecast {k} {h}")


@pytest.mark.parametrize("cell", [LSTM, GRU, ELMAN_TANH])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_seasonal_keys(cell, dtype):
    core, ref = make_pair(cell=cell, dtype=dtype)
    run(core, ref, np.random.default_rng(1), "seasonal", steps=45)


@pytest.mark.parametrize("kind", ["walk", "noise"])
def test_other_series_no_season(kind):
    core, ref = make_pair(m=0, H=5, k2=7, hw_phi=0.9, hw_betas=(0.05,),
                          hw_log_betas=None)   # damped trends, both banks alike
    run(core, ref, np.random.default_rng(2), kind, steps=40)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_long_walk_where_the_last_value_proves_itself(dtype):
    # a random walk with a declared period: the season gate closes and, after PROVEN_N
    # scorings of a step, the last value's growing margin (and the clipped gate errors) act
    core, ref = make_pair(m=4, H=6, dtype=dtype)
    run(core, ref, np.random.default_rng(5), "walk", steps=90, n_keys=2)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_values_crossing_zero_retire_the_log_member(dtype):
    core, ref = make_pair(dtype=dtype)
    run(core, ref, np.random.default_rng(8), "cross", steps=45)
    alive = [ref.keys[k].alive for k in ref.keys]
    assert any(alive) and not all(alive)


def test_period_shorter_than_horizon_uses_season_history():
    # H > m: steps beyond the period read the season history (two older levels here)
    core, ref = make_pair(m=3, H=8, k2=5, dtype="float32")
    assert core.LS == 2
    run(core, ref, np.random.default_rng(3), "seasonal", steps=40)


def test_features_with_gaps_huber():
    core, ref = make_pair(n_x=3, loss=HUBER)
    run(core, ref, np.random.default_rng(4), "seasonal", steps=40, n_x=3)


def test_resets_and_copies():
    core, ref = make_pair(dtype="float32", hw_phi=0.95)
    run(core, ref, np.random.default_rng(5), "seasonal", steps=45, resets=(10, 25),
        copies=(15, 30))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_learn_every_three(dtype):
    core, ref = make_pair(learn_every=3, dtype=dtype, k2=6)
    run(core, ref, np.random.default_rng(6), "seasonal", steps=45)


def test_other_hyper_parameters():
    kw = dict(clip_=2.0, hw_alphas=(0.5, 0.2), hw_betas=(0.2, 0.0, 0.05), hw_phi=1.0,
              hw_gamma=0.4, hw_eta=12.0, window=7, hw_log_alphas=(0.3, 0.1),
              hw_log_betas=(0.1, 0.0, 0.3), hw_log_gamma=0.6, hw_gamma_start=0.9,
              aci_gamma=0.05, alphas=(0.1, 0.3))
    core = GlobalCore(GRU, 4, 1, 3, 4, 2, 1, 10, 6, "float64", 1, 5, Optimizer(ADAM, 0.02),
                      clip=2.0, hw_alphas=(0.5, 0.2), hw_betas=(0.2, 0.0, 0.05), hw_phi=1.0,
                      hw_gamma=0.4, hw_eta=12.0, window=7, hw_log_alphas=(0.3, 0.1),
                      hw_log_betas=(0.1, 0.0, 0.3), hw_log_gamma=0.6, hw_gamma_start=0.9,
                      aci_gamma=0.05, alphas=(0.1, 0.3))
    ref = RG.RefGlobal(GRU, 4, 1, 3, 4, 2, 1, False, 1, SQUARED, core.net.params.copy(),
                       R.RefOptimizer("adam", 0.02), **kw)
    run(core, ref, np.random.default_rng(7), "walk", steps=40, n_keys=5, n_x=1)
