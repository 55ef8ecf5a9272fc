"""GlobalCore (streamrnn/_core/_global.pyx): smoke and memory checks; the exactness against
tests/reference_global.py is in test_global_core_exact.py, the state API in
test_global_core_state.py."""
import numpy as np
import pytest

from streamrnn._core import ADAM, GRU, LSTM, Optimizer
from streamrnn._core._global import GlobalCore


def make(cell=LSTM, hidden=8, k2=6, H=5, m=4, n_x=0, cap=20, mb=8, dtype="float64", **kw):
    return GlobalCore(cell, hidden, 1, k2, H, m, n_x, cap, mb, dtype, 1, 0,
                      Optimizer(ADAM, 1e-3), **kw)


def outputs(B, H):
    return (np.zeros(B), np.zeros(B), np.zeros((B, H)), np.zeros((B, H)), np.zeros((B, H)))


def test_slot_bytes_goal():
    core = GlobalCore(LSTM, 32, 1, 16, 24, 24, 0, 4, 4, "float32", 1, 0, None)
    assert core.slot_bytes <= 4096
    assert core.slot_bytes == core.net.slot_bytes + 4 * core.W + 8


def test_step_runs_and_outputs():
    core = make()
    B, H = 4, core.horizon
    slots = np.arange(B, dtype=np.int64)
    out = outputs(B, H)
    rng = np.random.default_rng(0)
    for t in range(30):
        ys = np.sin(t + np.arange(B)) + rng.normal(0, 0.1, B)
        assert core.step(slots, ys, None, *out) == 1
        if t == 0:
            assert np.all(np.isnan(out[0]))
    pred, score, fc, lo, hi = out
    assert np.all(np.isfinite(pred)) and np.all(np.isfinite(fc))
    assert np.all(lo <= fc) and np.all(fc <= hi)
    for b in range(B):  # forecast() from the committed state == what step returned
        assert np.array_equal(core.forecast(b, H), fc[b])
        lo_b, hi_b = core.interval(b, H)
        assert np.array_equal(lo_b, lo[b]) and np.array_equal(hi_b, hi[b])
    assert core.count(0) == 30
