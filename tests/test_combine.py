"""The compiled Combiner and Conformal against their readable twin (tests/reference_combine.py),
bit for bit over long random streams, and their behaviour: gating, steps beyond the horizon,
coverage of the adaptive intervals, the p-value, pickling."""
import copy
import math
import pickle

import numpy as np
import pytest

from reference_combine import RefCombiner, RefConformal
from streamrnn._core._combine import Combiner, Conformal


def _same(a, b):
    """Bitwise equality of two floats (NaN == NaN)."""
    return (math.isnan(a) and math.isnan(b)) or a == b


def _losses(ref):
    return np.array([[np.nan if v is None else v for v in row] for row in ref.L])


# ---------------------------------------------------------------- Combiner == reference

def _combiner_stream(seed, E, H, n, kw):
    rng = np.random.default_rng(seed)
    c, r = Combiner(E, H, **kw), RefCombiner(E, H, **kw)
    bias = rng.normal(0, 1, E)
    spread = rng.uniform(0.1, 3, E)
    y = 0.0
    for t in range(n):
        y = 0.9 * y + rng.normal()
        if rng.random() < 0.9:  # sometimes no issue at all
            F = y + bias[None, :] + spread[None, :] * rng.normal(size=(H, E))
            F[rng.random((H, E)) < 0.05] = np.nan
            if rng.random() < 0.02:
                F[:] = np.nan
            c.issue(F)
            r.issue(F)
            if rng.random() < 0.05:  # issued twice: the last one counts
                F = F + 1.0
                c.issue(F)
                r.issue(F)
        if rng.random() < 0.03:
            e = int(rng.integers(E))
            flag = bool(rng.random() < 0.6)
            if flag or sum(r.eligible) > 1 or not r.eligible[e]:
                c.set_eligible(e, flag)
                r.eligible[e] = flag
        for j in (1, 2, H, H + 1, H + 7):
            w, wr = c.weights(j), r.weights(j)
            assert all(_same(a, b) for a, b in zip(w, wr)), (t, j, w, wr)
            f = y + rng.normal(size=E)
            if rng.random() < 0.2:
                f[int(rng.integers(E))] = np.nan
            if any(r.eligible[e] and np.isfinite(f[e]) for e in range(E)):
                assert _same(c.combine(j, f), r.combine(j, f)), (t, j)
        # every step at once (the forecaster's path) == step by step, incl. missing ones
        G = y + rng.normal(size=(H, E))
        G[rng.random((H, E)) < 0.15] = np.nan
        if rng.random() < 0.05:
            G[int(rng.integers(H))] = np.nan
        got = c.combine_steps(G)
        for j in range(1, H + 1):
            if any(r.eligible[e] and np.isfinite(G[j - 1, e]) for e in range(E)):
                assert _same(got[j - 1], r.combine(j, G[j - 1])), (t, j)
                assert _same(got[j - 1], c.combine(j, G[j - 1])), (t, j)
            else:
                assert math.isnan(got[j - 1])
        yv = y + rng.normal()
        c.observe(yv)
        r.observe(yv)
    np.testing.assert_array_equal(c.losses, _losses(r))
    assert c.t == r.t == n
    assert list(c.get_state()["n_scored"]) == r.n_scored
    return c


@pytest.mark.parametrize("seed,E,H,kw", [
    (0, 4, 1, {}),
    (1, 4, 6, {}),
    (2, 2, 1, {"decay": 0.995, "eta": 50.0, "warm_n": 0}),
    (3, 5, 12, {"decay": 0.9, "eta": 6.0, "mix1": 0.0, "warm_n": 10}),
    (4, 1, 3, {}),
    (5, 3, 24, {"mix1": 1.5, "warm_n": 0.0}),
])
def test_combiner_equals_reference(seed, E, H, kw):
    _combiner_stream(seed, E, H, 1500, kw)


def test_combiner_large_values_stay_finite():
    c, r = Combiner(3, 2), RefCombiner(3, 2)
    rng = np.random.default_rng(7)
    for t in range(300):
        F = rng.choice([-1e308, 1e308, 0.0, 1e-300], size=(2, 3))
        c.issue(F)
        r.issue(F)
        y = float(rng.choice([-1e308, 1e308, 0.0]))
        c.observe(y)
        r.observe(y)
        w = c.weights(2)
        assert np.all(np.isfinite(w)) and abs(w.sum() - 1) < 1e-12
        assert all(_same(a, b) for a, b in zip(w, r.weights(2)))
    L = c.losses
    assert np.all(np.isfinite(L)) and np.all(L <= 1e300)
    Combiner.from_state(c.get_state())  # the state it reached is valid


# ---------------------------------------------------------------- Combiner behaviour

def test_combiner_prefers_the_better_expert_per_step():
    # expert 0 is exact at step 1 and bad at step 3; expert 1 the other way round
    rng = np.random.default_rng(0)
    ys = rng.normal(size=600)
    c = Combiner(2, 3, mix1=0.0)
    for t in range(597):
        F = np.empty((3, 2))
        for j in range(3):
            truth = ys[t + j]
            F[j, 0] = truth + (0.01 if j == 0 else 1.0) * rng.normal()
            F[j, 1] = truth + (1.0 if j == 0 else 0.01) * rng.normal()
        c.issue(F)
        c.observe(ys[t])
    assert c.weights(1)[0] > 0.99 and c.weights(3)[1] > 0.99
    assert c.weights(3)[1] == c.weights(50)[1]  # beyond the horizon: step H


def test_combiner_warm_up_and_first_weights():
    c = Combiner(3, 2)
    np.testing.assert_array_equal(c.weights(1), [1 / 3] * 3)  # no losses: equal
    c.issue(np.array([[1.0, 2.0, 5.0], [1.0, 2.0, 5.0]]))
    c.observe(0.0)
    # one loss with warm_n=50: eta_eff = 40/51; rel = 0, 1, 4 (the mix with step 1 is itself)
    want = np.exp(-40.0 * 1.0 / 51.0 * np.array([0.0, 1.0, 4.0]))
    np.testing.assert_allclose(c.weights(1), want / want.sum(), rtol=1e-14)
    # step 2 has no loss yet: equal weights
    np.testing.assert_array_equal(c.weights(2), [1 / 3] * 3)
    sharp = Combiner(3, 2, warm_n=0)
    sharp.issue(np.array([[1.0, 2.0, 5.0], [0.0, 1.0, 5.0]]))
    sharp.observe(0.0)
    # rel = (1-1)/1, (2-1)/1, (5-1)/1 -> exp(-40 rel)
    w = sharp.weights(1)
    want = np.array([1.0, math.exp(-40.0), math.exp(-160.0)])
    np.testing.assert_allclose(w, want / want.sum(), rtol=1e-15)


def test_eligibility_gates_but_tracks():
    rng = np.random.default_rng(1)
    c = Combiner(3, 2)
    c.set_eligible(2, False)
    for t in range(400):
        y = rng.normal()
        F = np.column_stack([np.full(2, y + rng.normal()), np.full(2, y + 2 * rng.normal()),
                             np.full(2, y + 0.01 * rng.normal())])
        c.issue(F)
        c.observe(y if t else y)
        assert c.weights(1)[2] == 0.0 and c.weights(2)[2] == 0.0
        f = np.array([1.0, 2.0, 1e6])
        assert c.combine(1, f) == pytest.approx(c.weights(1) @ np.array([1.0, 2.0, 0.0]))
    assert np.all(np.isfinite(c.losses[:, 2]))      # its losses were tracked all along
    assert c.eligible == (True, True, False)
    c.set_eligible(2, True)
    assert c.weights(1)[2] > 0.9                     # and it enters with its record
    c.set_eligible(0, False)
    c.set_eligible(1, False)
    with pytest.raises(ValueError, match="at least one"):
        c.set_eligible(2, False)


def test_combine_skips_missing_forecasts():
    c = Combiner(3, 1, warm_n=0)
    for y in (0.0, 0.1, -0.1) * 20:
        c.issue(np.array([[y, y + 1.0, y + 3.0]]))
        c.observe(y)
    # expert 0 (the best) has no forecast now: the weights are over experts 1 and 2
    v = c.combine(1, np.array([np.nan, 1.0, 3.0]))
    assert 1.0 <= v < 1.001
    with pytest.raises(ValueError, match="no eligible expert"):
        c.combine(1, np.array([np.nan, np.nan, np.nan]))


def test_combiner_pickle_round_trip_continues_bit_identically():
    c = _combiner_stream(11, 4, 5, 400, {})
    blob = pickle.dumps(c)
    d = pickle.loads(blob)
    e = copy.deepcopy(c)
    assert pickle.dumps(d) == blob
    rng = np.random.default_rng(3)
    for t in range(300):
        F = rng.normal(size=(5, 4))
        y = rng.normal()
        for m in (c, d, e):
            m.issue(F)
            m.observe(y)
        for j in range(1, 7):
            assert c.weights(j).tobytes() == d.weights(j).tobytes() == e.weights(j).tobytes()
    assert pickle.dumps(c) == pickle.dumps(d) == pickle.dumps(e)


def test_combiner_argument_errors():
    with pytest.raises(ValueError):
        Combiner(0, 1)
    with pytest.raises(ValueError):
        Combiner(2, 0)
    with pytest.raises(ValueError):
        Combiner(2, 1, decay=1.0)
    with pytest.raises(ValueError):
        Combiner(2, 1, eta=-1.0)
    with pytest.raises(TypeError):
        Combiner(2.0, 1)
    with pytest.raises(ValueError, match="bytes"):
        Combiner(64, 5000)
    c = Combiner(2, 3)
    with pytest.raises(ValueError, match="shape"):
        c.issue(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="infinite"):
        c.issue(np.full((3, 2), np.inf))
    for bad in (np.nan, np.inf, None, "1", True):
        with pytest.raises((ValueError, TypeError)):
            c.observe(bad)
    with pytest.raises(ValueError):
        c.weights(0)
    with pytest.raises(ValueError):
        c.combine(1, [1.0])
    with pytest.raises(TypeError):
        c.set_eligible(0, 1)
    with pytest.raises(ValueError):
        c.set_eligible(2, True)
    assert c.t == 0 and not np.any(c.get_state()["issued"])


# ---------------------------------------------------------------- Conformal == reference

ALPHAS_ASKED = (0.05, 0.1, 0.2, 0.01, 0.07, 0.15, 0.5)


def _conformal_stream(seed, H, n, kw):
    rng = np.random.default_rng(seed)
    c, r = Conformal(H, **kw), RefConformal(H, **kw)
    y = 0.0
    for t in range(n):
        scale = 1.0 if t < n // 2 else 3.0
        y = 0.8 * y + scale * rng.normal()
        if rng.random() < 0.92:
            cen = y + rng.normal(size=H)
            cen[rng.random(H) < 0.05] = np.nan
            if rng.random() < 0.05:  # ties among the scores
                cen = np.round(cen)
            c.issue(cen)
            r.issue(cen)
        for j in (1, 2, H, H + 3):
            for a in ALPHAS_ASKED + tuple(c.alphas):
                assert _same(c.halfwidth(j, a), r.halfwidth(j, a)), (t, j, a)
                assert _same(c.alpha_t(j, a), r.level(j, a))
        yv = float(np.round(y, 1)) if rng.random() < 0.1 else y + rng.normal()
        for s in (0.0, 0.5, abs(yv), 10.0):
            assert c.pvalue(s) == r.pvalue(s)
        assert c.pvalue_y(yv) == r.pvalue_y(yv)
        c.observe(yv)
        r.observe(yv)
    for j in range(1, H + 1):
        np.testing.assert_array_equal(c.scores(j), sorted(r.window[j - 1]))
        for a, alpha in enumerate(c.alphas):
            assert c.coverage(j, alpha) == (r.hits[a][j - 1], r.n[a][j - 1])
    return c


@pytest.mark.parametrize("seed,H,kw", [
    (0, 1, {}),
    (1, 5, {}),
    (2, 3, {"alphas": (0.1,), "window": 5, "gamma": 0.2}),
    (3, 12, {"alphas": (0.02, 0.1, 0.3, 0.5), "window": 20, "gamma": 0.01}),
    (4, 2, {"window": 200, "gamma": 0.0}),
])
def test_conformal_equals_reference(seed, H, kw):
    _conformal_stream(seed, H, 1200, kw)


# ---------------------------------------------------------------- Conformal behaviour

def _coverage(ys, centres_of, H, alpha=0.1, **kw):
    """Run a Conformal over ys; coverage per step of the intervals issued with a finite width,
    checked against the truth here (not the object's counters)."""
    c = Conformal(H, **kw)
    hits = np.zeros(H)
    n = np.zeros(H)
    issued = {}
    for t, y in enumerate(ys):
        cen = centres_of(t)      # forecasts of y[t], ..., y[t + H - 1], made before y[t]
        c.issue(cen)
        for j in range(1, H + 1):
            w = c.halfwidth(j, alpha)
            if math.isfinite(w):
                issued[(t + j - 1, j)] = (cen[j - 1] - w, cen[j - 1] + w)
        for j in range(1, H + 1):
            if (t, j) in issued:
                lo, hi = issued.pop((t, j))
                n[j - 1] += 1
                hits[j - 1] += lo <= y <= hi
        c.observe(y)
    for j in range(1, H + 1):
        assert c.coverage(j, alpha) == (hits[j - 1], n[j - 1])
    return hits / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aci_coverage_stationary_noise(seed):
    rng = np.random.default_rng(seed)
    ys = rng.normal(size=5000)
    cov = _coverage(ys, lambda t: np.zeros(3), 3)
    assert np.all((cov > 0.85) & (cov < 0.95)), cov
    cov80 = _coverage(ys, lambda t: np.zeros(3), 3, alpha=0.2)
    assert np.all((cov80 > 0.75) & (cov80 < 0.85)), cov80


@pytest.mark.parametrize("seed", [0, 1])
def test_aci_coverage_under_variance_shift(seed):
    rng = np.random.default_rng(seed)
    scale = np.where(np.arange(5000) < 2500, 1.0, 4.0)
    scale[3500:] = 0.5
    ys = rng.normal(size=5000) * scale
    cov = _coverage(ys, lambda t: np.zeros(2), 2)
    assert np.all((cov > 0.85) & (cov < 0.95)), cov
    # right after the jump the adaptive level recovers: coverage of the 500 values after
    c = Conformal(1, gamma=0.05)
    hit = []
    for t, y in enumerate(ys):
        c.issue(np.zeros(1))
        w = c.halfwidth(1, 0.1)
        if 2500 <= t < 3000:
            hit.append(abs(y) <= w)
        c.observe(y)
    assert 0.8 < np.mean(hit) < 0.95


def test_aci_on_a_biased_forecast():
    rng = np.random.default_rng(5)
    ys = rng.normal(size=5000) + np.linspace(0, 20, 5000)  # a trend the centre lags behind
    cov = _coverage(ys, lambda t: np.full(4, ys[t - 1] if t else 0.0), 4)
    assert np.all((cov > 0.85) & (cov < 0.95)), cov


def test_halfwidth_order_and_interpolation():
    rng = np.random.default_rng(2)
    c = Conformal(2)
    assert c.halfwidth(1, 0.1) == math.inf and c.pvalue(1.0) == 1.0
    for _ in range(4):
        c.issue(np.zeros(2))
        c.observe(rng.normal())
    assert c.halfwidth(1, 0.1) == math.inf  # 4 scores: not yet
    c.issue(np.zeros(2))
    c.observe(rng.normal())
    assert math.isfinite(c.halfwidth(1, 0.1))
    for _ in range(300):
        c.issue(np.zeros(2))
        c.observe(rng.normal())
    widths = [c.halfwidth(1, a) for a in (0.01, 0.05, 0.07, 0.1, 0.15, 0.2, 0.5, 0.9)]
    assert all(a >= b for a, b in zip(widths, widths[1:])), widths
    # interpolation: the learned level halfway between the two tracked ones
    a1, a2 = c.alpha_t(1, 0.1), c.alpha_t(1, 0.2)
    assert c.alpha_t(1, 0.15) == pytest.approx((a1 + a2) / 2, rel=1e-12)
    assert c.alpha_t(1, 0.5) == pytest.approx(a2 + 0.3, rel=1e-12)
    assert c.halfwidth(9, 0.1) == c.halfwidth(2, 0.1)


def test_misses_are_scored_against_what_was_issued():
    # the interval issued for step 2 is judged by the half-width of its issue, not today's
    c = Conformal(2, alphas=(0.1,), window=5, gamma=0.5)
    for y in (1.0, -1.0, 1.0, -1.0, 1.0, -1.0):
        c.issue(np.zeros(2))
        c.observe(y)
    # step 2 holds 5 scores of 1.0: a = 0.1 is beyond their range (below 1/6, where the
    # conformal rank reaches the largest), so the half-width is 1.0 x (1 + 1.25 (1/6 - 0.1))
    assert c.halfwidth(2, 0.1) == 1.0 * (1.0 + 1.25 * (1.0 / 6.0 - 0.1))
    c.issue(np.zeros(2))          # step 2 issued with half-width 1.083
    c.observe(100.0)              # step 2's window now holds a 100 as well
    before = c.alpha_t(2, 0.1)
    hits, n = c.coverage(2, 0.1)
    c.issue(np.zeros(2))
    c.observe(50.0)               # 50 > 1.08 (issued): a miss, though today's width is 100
    assert c.coverage(2, 0.1) == (hits, n + 1)
    assert c.alpha_t(2, 0.1) == before + 0.5 * (0.1 - 1.0)


def test_pvalue_uniform_under_the_null_and_small_for_an_outlier():
    rng = np.random.default_rng(0)
    c = Conformal(1, window=50, pwindow=50)
    ps = []
    for t in range(6000):
        y = rng.normal()
        c.issue(np.zeros(1))
        if t >= 50:
            ps.append(c.pvalue_y(y))
        c.observe(y)
    ps = np.array(ps)
    # discrete uniform on {1/51, ..., 51/51}: mean 26/51, deciles near their levels
    assert abs(ps.mean() - 26 / 51) < 0.02
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert abs(np.mean(ps <= q) - q) < 0.03, q
    c.issue(np.zeros(1))
    assert c.pvalue_y(10.0) == 1 / 51
    assert c.pvalue(0.0) == 1.0
    assert c.pvalue_y(10.0) == c.pvalue(10.0)


def test_conformal_pickle_round_trip_continues_bit_identically():
    c = _conformal_stream(9, 4, 400, {})
    blob = pickle.dumps(c)
    d = pickle.loads(blob)
    e = copy.deepcopy(c)
    assert pickle.dumps(d) == blob
    rng = np.random.default_rng(4)
    for t in range(300):
        cen = rng.normal(size=4)
        y = rng.normal()
        for m in (c, d, e):
            m.issue(cen)
        assert c.pvalue_y(y) == d.pvalue_y(y) == e.pvalue_y(y)
        for m in (c, d, e):
            m.observe(y)
        for j in range(1, 5):
            for a in (0.05, 0.1, 0.13):
                assert c.halfwidth(j, a) == d.halfwidth(j, a) == e.halfwidth(j, a)
    assert pickle.dumps(c) == pickle.dumps(d) == pickle.dumps(e)


def test_conformal_argument_errors():
    for kw in ({"alphas": ()}, {"alphas": (0.2, 0.1)}, {"alphas": (0.0,)}, {"alphas": (1.0,)},
               {"alphas": (0.1, 0.1)}, {"window": 4}, {"gamma": -0.1}, {"gamma": np.nan}):
        with pytest.raises((ValueError, TypeError)):
            Conformal(3, **kw)
    with pytest.raises(ValueError):
        Conformal(0)
    c = Conformal(3)
    with pytest.raises(ValueError):
        c.issue(np.zeros(2))
    with pytest.raises(ValueError):
        c.issue(np.array([0.0, np.inf, 0.0]))
    for bad in (np.nan, np.inf, None):
        with pytest.raises((ValueError, TypeError)):
            c.observe(bad)
    for bad in (0.0, 1.0, -0.5, np.nan):
        with pytest.raises(ValueError):
            c.halfwidth(1, bad)
    with pytest.raises(ValueError):
        c.pvalue(np.nan)
    with pytest.raises(ValueError, match="tracked"):
        c.coverage(1, 0.3)
    assert c.t == 0


def test_python_api_takes_array_likes_and_refuses_junk():
    c = Combiner(2, 2)
    c.issue([[1.0, 2.0], [3.0, 4.0]])                       # a list
    c.issue(np.asfortranarray([[1.0, 2.0], [3.0, 4.0]]))    # not C-contiguous
    c.issue(np.array([[1, 2], [3, 4]], dtype=np.int32))     # another dtype
    ro = np.array([[1.0, 2.0], [3.0, 4.0]])
    ro.flags.writeable = False
    c.issue(ro)                                             # read-only
    c.issue(np.array([[1.0, 2.0], [3.0, 4.0]]).view(np.matrix))
    c.issue(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=">f8"))  # byte-swapped
    for junk in ("abc", None, [[{}, 1.0], [1.0, 1.0]], np.zeros((2, 2, 1)), np.zeros(4),
                 [[1.0, 2.0]], [[1e400, 0.0], [0.0, 0.0]]):
        with pytest.raises((ValueError, TypeError)):
            c.issue(junk)
    c.observe(np.float64(2.5))
    c.observe(3)
    assert c.combine(1, [1.0, 2.0]) == c.combine(np.int64(1), np.array([1.0, 2.0]))
    for junk in ("abc", [1.0], [[1.0, 2.0]], [np.inf, 0.0]):
        with pytest.raises((ValueError, TypeError)):
            c.combine(1, junk)
    with pytest.raises(TypeError):
        c.weights(True)
    k = Conformal(2)
    k.issue([0.0, 1.0])
    k.issue(np.array([0.0, 0.0, 1.0, 1.0])[::2])
    for junk in ("abc", [0.0], [[0.0, 0.0]], [0.0, -np.inf]):
        with pytest.raises((ValueError, TypeError)):
            k.issue(junk)
    k.observe(1)
    assert k.t == 1 and c.t == 2
