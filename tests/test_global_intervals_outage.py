"""Issue 12: the global model's intervals through an outage (the `streamrnn forecast` demo's
WaterFlow stream drops from ~100 to 24 for 11 values on a series with a one-step scale of
0.4). A score enters its row over max(scale_s, scale / SHOCK) and winsorised at WINSOR x the
row's median, so one burst of misses cannot become a young row's quantile and then be
multiplied by the scale the same misses inflated. The previous rules (neither) are the
readable reference with both constants at infinity."""
import math

import numpy as np

import reference as R
import reference_global as RG
from streamrnn._core import ADAM, GRU, SQUARED, Optimizer
from streamrnn._core._global import GlobalCore

H, M, N = 6, 12, 260
DROP = 75.0


def outage():
    t = np.arange(N)
    y = 100 + 5 * np.sin(2 * np.pi * t / M) + np.random.default_rng(3).normal(0, 0.3, N)
    y[100:110] = 100 - DROP
    return y


def core():
    return GlobalCore(GRU, 4, 1, 4, H, M, 0, 2, 2, "float64", 1, 3, Optimizer(ADAM, 0.01),
                      loss=SQUARED)


def widths_core(y):
    c = core()
    out = (np.zeros(1), np.zeros(1), np.zeros((1, H)), np.zeros((1, H)), np.zeros((1, H)))
    w = []
    for v in y:
        c.step(np.array([0], dtype=np.int64), np.array([v]), np.zeros((1, 0)), *out)
        w.append(out[4][0, H - 1] - out[3][0, H - 1])
    return np.array(w), c


def widths_ref(y, params):
    ref = RG.RefGlobal(GRU, 4, 1, 4, H, M, 0, False, 1, SQUARED, params,
                       R.RefOptimizer("adam", 0.01))
    w = []
    for v in y:
        _, (pred, anomaly, fc, lo, hi) = ref.step([0], [v])
        w.append(hi[0][H - 1] - lo[0][H - 1])
    return np.array(w, dtype=float), ref


def test_widths_after_an_outage_stay_bounded_by_its_own_miss(monkeypatch):
    y = outage()
    w, c = widths_core(y)
    params = core().net.params.copy()
    wr, ref = widths_ref(y, params)
    assert np.allclose(w, wr, rtol=1e-10, atol=1e-10, equal_nan=True)   # C == reference
    after = w[110:]
    # no interval after the outage is wider than the outage's own miss in y
    assert np.all(np.isfinite(after)) and after.max() < DROP
    assert np.median(after) < 0.3 * DROP
    # every score in the rows is at most WINSOR x its row's median when it entered: the
    # largest of a formed row is bounded by a few medians of that row
    st = c.get_shared_state()["core"]
    cnt, srt = st["conf_count"], st["conf_sorted"]
    for r in range(2 * H, 3 * H):
        v = srt[r, :cnt[r]]
        assert v.size >= 100 and v[-1] <= RG.WINSOR * 3 * np.median(v)
    # the previous rules (score over scale_s only, no winsorising) blow up: the test tells
    monkeypatch.setattr(RG, "SHOCK", math.inf)
    monkeypatch.setattr(RG, "WINSOR", math.inf)
    old, _ = widths_ref(y, params)
    assert old[110:].max() > 5 * DROP and np.median(old[110:]) > 0.6 * DROP
