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
    comb = 24 * 25 // 2     # the pending combined offsets, kept as float16
    assert core.Wh == comb and core.Wf == core.W - comb
    assert core.slot_bytes == core.net.slot_bytes + 4 * (core.W - comb) + 2 * comb + 8
    assert core.slot_bytes == 3784   # 3,716 + the adaptive member (3 + 2 Q values, 8 of state)


@pytest.mark.parametrize("H,m,k2", [(24, 24, 16), (24, 12, 16), (24, 0, 16), (8, 3, 5),
                                    (1, 0, 16), (30, 7, 4)])
def test_slot_bytes_formula(H, m, k2):
    import math
    for dtype, isz in (("float32", 4), ("float64", 8)):
        core = GlobalCore(GRU, 8, 2, k2, H, m, 3, 4, 4, dtype, 1, 0, None)
        R = m * math.ceil(H / m) if m else H
        LS = math.ceil(H / m) - 1 if m else 0
        no = min(H, k2)
        K = core.n_members          # 6 level/trend members per backbone by default
        assert K == 6
        Q = min(H, 3)               # the members' states kept at Q stored origins
        comb = H * (H + 1) // 2
        AD = 8                      # the adaptive member's u, v and sensitivities
        W = (R + 2 * (m + LS * m) + 6 + (3 + 2 * Q) * (2 * K + 1) + AD + 5 * H
             + (no * (no - 1) // 2 + H) + comb + 5 * H + 2)
        net = isz * (2 * 2 * 8 + (k2 - 1) * (5 + 3)) + 8    # GRU: h, h0 of 2 layers of 8
        assert core.W == W and core.net.slot_bytes == net
        half = comb if dtype == "float32" else 0   # float32 slots: comb as float16
        assert core.slot_bytes == net + isz * (W - half) + 2 * half + 8


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


def related_series(kind, rng, n_keys, T, m):
    t = np.arange(T)
    out = []
    for k in range(n_keys):
        amp, lvl, ph = rng.uniform(2, 10), rng.uniform(20, 200), rng.uniform(0, 2 * np.pi)
        if kind == "seasonal":
            y = lvl + amp * np.sin(2 * np.pi * t / m + ph) + rng.normal(0, amp * 0.2, T)
        elif kind == "trend":  # growing trend and amplitude, like monthly sales
            y = (lvl + 0.05 * lvl / 100 * t * rng.uniform(0, 2)
                 + amp * np.sin(2 * np.pi * t / m + ph) * (1 + t / T)
                 + rng.normal(0, amp * 0.15, T))
        else:  # a random walk with a weak season
            y = lvl + np.cumsum(rng.normal(0, 1, T)) + amp * 0.3 * np.sin(2 * np.pi * t / m + ph)
        out.append(y)
    return np.array(out)


@pytest.mark.parametrize("kind", ["seasonal", "trend", "walk"])
def test_combination_not_worse_than_the_baselines(kind):
    """One-step MAE of the combined forecast over the second half, against seasonal naive
    and last value on the same values; 90 % intervals cover about 90 %."""
    m, H, n_keys, T = 12, 12, 20, 400
    Y = related_series(kind, np.random.default_rng(0), n_keys, T, m)
    core = GlobalCore(GRU, 16, 1, 12, H, m, 0, n_keys, n_keys, "float32", 1, 0,
                      Optimizer(ADAM, 3e-3))
    P = np.full_like(Y, np.nan)
    slots = np.arange(n_keys, dtype=np.int64)
    o = outputs(n_keys, H)
    covered = []
    for i in range(T):
        assert core.step(slots, Y[:, i].copy(), None, *o) == 1
        P[:, i] = o[0]
        if T // 2 < i < T - 1:
            covered.append(np.mean((o[3][:, 0] <= Y[:, i + 1]) & (Y[:, i + 1] <= o[4][:, 0])))
    s = slice(T // 2, T)
    mae = np.abs(P[:, s] - Y[:, s]).mean()
    snaive = np.abs(Y[:, T // 2 - m:T - m] - Y[:, s]).mean()
    last = np.abs(Y[:, T // 2 - 1:T - 1] - Y[:, s]).mean()
    assert mae <= 1.05 * min(snaive, last), (mae, snaive, last)
    assert 0.85 <= np.mean(covered) <= 0.95


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pred_and_score_are_what_forecast_and_score_said(dtype):
    """For a batch of one key, the step's one-step forecast and anomaly score equal, bit for
    bit, forecast(slot, 1, x) and score(slot, y, x) called just before it (same weights,
    same pooled state)."""
    core = make(n_x=2, dtype=dtype)
    rng = np.random.default_rng(3)
    H = core.horizon
    seen_score = 0
    for t in range(60):
        k = int(rng.integers(0, 5))
        y = 5 + np.sin(t / 2 + k) + rng.normal(0, 0.2)
        x = rng.normal(0, 1, 2)
        if rng.random() < 0.3:
            x[1] = np.nan
        f1 = core.forecast(k, 1, x)[0]
        s1 = core.score(k, y, x)
        out = outputs(1, H)
        assert core.step(np.array([k], dtype=np.int64), np.array([y]), x[None, :], *out) == 1
        assert np.array_equal(out[0], [f1], equal_nan=True)
        assert np.array_equal(out[1], [s1], equal_nan=True)
        seen_score += not np.isnan(s1)
    assert seen_score > 30


# ------------------------------------------------------------------ intervals by key age
def _conf_counts(core):
    c = core.get_shared_state()["core"]["conf_count"]
    return c.reshape(3, core.horizon)


def test_scores_go_to_the_age_group_of_their_origin():
    """One key, m = 4, H = 5: origins s < m (first cycle), m <= s < m + 20 (scale forming)
    and older each fill their own conformal rows (scores from origins s >= WARM = 2)."""
    H, m, n = 5, 4, 40
    core = make(H=H, m=m, cap=2, mb=2)
    for t in range(n):
        core.step(np.array([0], dtype=np.int64), np.array([10 + 3 * np.sin(t) + 0.1 * t]),
                  np.zeros((1, 0)), *outputs(1, H))
    c = _conf_counts(core)
    for j in range(1, H + 1):
        scored = [s for s in range(2, n - j)]          # origin s scored at y_{s+j}
        assert c[0, j - 1] == sum(1 for s in scored if s < m)
        assert c[1, j - 1] == sum(1 for s in scored if m <= s < m + 20)
        assert c[2, j - 1] == sum(1 for s in scored if s >= m + 20)
    # the old groups give the intervals of the formed origins; one key never has 50 scores
    # of its first cycle, so a young origin gets none until its own group has 5
    assert np.isfinite(core.halfwidth(1, 0.1, group=2))
    assert core.halfwidth(1, 0.1, group=0) == np.inf


def test_a_young_group_borrows_the_widest_of_a_younger_one():
    """30 keys time-major, m = 4: at origin 4 (scale forming) no score of that age exists
    yet, the first cycle has 60 at step 1: the interval takes 1.5 x the largest of them
    (a borrowed interval is the widest), and an older group, once it has 50, comes first."""
    H, m, K = 5, 4, 30
    core = make(H=H, m=m, cap=K, mb=K)
    keys = np.arange(K, dtype=np.int64)
    rng = np.random.default_rng(3)
    for t in range(5):
        o = outputs(K, H)
        core.step(keys, 10 + 3 * np.sin(t + keys) + rng.normal(0, 0.3, K), np.zeros((K, 0)), *o)
    c = _conf_counts(core)
    assert c[1, 0] == 0 and c[0, 0] == 60
    srt = core.get_shared_state()["core"]["conf_sorted"]
    hw = core.halfwidth(1, 0.1, group=1)
    assert hw == 1.5 * srt[0, 59]
    assert core.halfwidth(1, 0.1, group=1) == core.halfwidth(1, 0.3, group=1)  # any alpha
    # the step's own intervals used it: c +- scale x hw
    lo, hi, fc = o[3], o[4], o[2]
    row = core.get_slots(keys[:1])["row"][0]
    sc = max(row[core.row_parts()["hw"][0] + 2], 1e-8 * (1 + abs(row[core.row_parts()["hw"][0]])))
    assert hi[0, 0] - fc[0, 0] == pytest.approx(sc * hw, rel=1e-12)
    assert fc[0, 0] - lo[0, 0] == pytest.approx(sc * hw, rel=1e-12)


def test_the_scale_restarts_after_the_first_cycle():
    """A season-less first cycle (errors of a whole swing) no longer inflates the scale for
    the next cycles: on an exactly periodic series it falls to about 1/(t+1) of the first
    cycle's within t values (with the old rate 0.05 it kept 0.95^t of it)."""
    H, m = 3, 4
    core = make(H=H, m=m, cap=1, mb=1)
    ys = [0.0, 10.0, 0.0, -10.0] * 4
    o = core.row_parts()["hw"][0] + 2
    scales = []
    for y in ys:
        core.step(np.array([0], dtype=np.int64), np.array([y]), np.zeros((1, 0)), *outputs(1, H))
        scales.append(core.get_slots(np.array([0], dtype=np.int64))["row"][0][o])
    first = scales[m - 1]
    assert first > 5
    # 6 values after the first cycle: its weight is 1 of 7
    assert scales[m + 5] <= first / 7 * 1.0001
