"""The pending combined offsets of float32 slots are stored as IEEE binary16 (float16): the C
conversion equals numpy's bit for bit (round to nearest even straight from the double, every
half value back exactly), and the rounding moves only the conformal scores (the forecasts are
the same numbers; the intervals and anomaly scores move by about the float16 precision)."""
import math

import numpy as np
import pytest

import reference as R
import reference_global as RG
from streamrnn._core import ADAM, GRU, LSTM, Optimizer
from streamrnn._core._global import GlobalCore, _half_bits


def test_every_half_value_converts_back_exactly():
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    want = bits.view(np.float16).astype(np.float64)
    ok = ~np.isnan(want)
    back_bits, back = _half_bits(want[ok])
    assert np.array_equal(back_bits, bits[ok])          # -0.0 and the subnormals too
    assert np.array_equal(back.view(np.uint64), want[ok].view(np.uint64))
    nb, nv = _half_bits(np.array([math.nan, math.inf, -math.inf]))
    assert np.isnan(nv[0]) and nv[1] == math.inf and nv[2] == -math.inf


def test_doubles_round_to_nearest_even_like_numpy():
    rng = np.random.default_rng(0)
    finite = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    finite = np.sort(finite[np.isfinite(finite)].astype(np.float64))
    finite = np.unique(finite)
    mids = (finite[:-1] + finite[1:]) / 2.0          # exact ties in double
    near = np.concatenate([np.nextafter(mids, -np.inf), np.nextafter(mids, np.inf)])
    vals = np.concatenate([
        mids, near, rng.normal(0, 3, 20000), rng.normal(0, 1e-5, 20000),
        np.exp(rng.uniform(-40, 11.1, 20000)) * rng.choice([-1, 1], 20000),
        [0.0, -0.0, 2.0 ** -25, 2.0 ** -24, 2.0 ** -26, 65504.0, -65504.0, 65519.99, 1e-300]])
    with np.errstate(over="ignore"):
        want = vals.astype(np.float16)
    bits, back = _half_bits(vals)
    assert np.array_equal(bits, want.view(np.uint16))
    assert np.array_equal(back, want.astype(np.float64))


def _pair(cell, H, m, half):
    core = GlobalCore(cell, 6, 1, 4, H, m, 0, 8, 8, "float32", 1, 3, Optimizer(ADAM, 0.01))
    ref = RG.RefGlobal(cell, 6, 1, 4, H, m, 0, True, 1, 0, core.net.params.copy(),
                       R.RefOptimizer("adam", 0.01))
    if not half:   # the reference keeping the offsets as float32 (the old storage)
        ref.rc = ref.rnd
    return core, ref


@pytest.mark.parametrize("cell,H,m", [(LSTM, 6, 4), (GRU, 5, 0)])
def test_float16_offsets_move_the_intervals_only_by_their_precision(cell, H, m):
    rng = np.random.default_rng(4)
    core, ref = _pair(cell, H, m, True)
    _, old = _pair(cell, H, m, False)
    keys = list(range(6))
    t = np.arange(200)
    data = {k: 30 + 8 * np.sin(2 * np.pi * t / 4 + k) + 0.1 * k * t + rng.normal(0, 1, 200)
            for k in keys}
    gap = 0.0
    for i in range(200):
        ys = [float(data[k][i]) for k in keys]
        out = (np.zeros(6), np.zeros(6), np.zeros((6, H)), np.zeros((6, H)), np.zeros((6, H)))
        assert core.step(np.array(keys, dtype=np.int64), np.array(ys), None, *out) == 1
        _, a = ref.step(keys, ys)
        _, b = old.step(keys, ys)
        for x, y in zip(out, a):        # the core is the float16 reference, exactly
            x, y = np.asarray(x, float), np.asarray(y, float)
            assert np.array_equal(np.isnan(x), np.isnan(y))
            assert np.allclose(x[~np.isnan(x)], y[~np.isnan(y)], rtol=1e-10, atol=1e-10)
        # the forecasts are the same numbers; the intervals differ by the rounding's noise
        assert a[0] == b[0] and a[2] == b[2]
        lo_a, lo_b = np.array(a[3], float), np.array(b[3], float)
        hi_a, hi_b = np.array(a[4], float), np.array(b[4], float)
        ok = np.isfinite(lo_a) & np.isfinite(lo_b)
        if ok.any():
            width = np.maximum(hi_b[ok] - lo_b[ok], 1e-9)
            gap = max(gap, float(np.max(np.abs(lo_a[ok] - lo_b[ok]) / width)),
                      float(np.max(np.abs(hi_a[ok] - hi_b[ok]) / width)))
    assert gap < 0.02        # at most 2 % of an interval's width (measured ~1e-3)
