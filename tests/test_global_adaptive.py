"""The global backbone's adaptive member (issue 12): its gradient is the derivative of its
one-step squared error (finite differences), the C core carries its state exactly as
tests/reference_global.py does, it learns, it stays finite for any accepted value, and a
state with a bad adaptive part is refused."""
import math

import numpy as np
import pytest

import reference_global as RG
from streamrnn._core import GRU, LSTM
from streamrnn._core._global import GlobalCore
from test_global_core_exact import make_pair, run


def member_run(z, sp, u, phi):
    """The adaptive member's level/trend recursion with u held fixed (the start l = z_0,
    b = 0; sp: the season index each value meets): its one-step errors e_t (t >= 1) and the
    reference's gradients d(e_t^2 / 2)/d(alpha, beta), carried by RG.ad_sens."""
    al, be = RG.ad_theta(u)
    ad = list(u) + [0.0] * (RG.AD_N - 2)
    l, b = z[0], 0.0
    es, grads = [], []
    for t in range(1, len(z)):
        e = z[t] - (l + phi * b + sp[t])
        grads.append(RG.ad_sens(ad, e, al, be, phi))
        es.append(e)
        l, b = l + phi * b + al * e, phi * b + al * be * e
    return np.array(es), np.array(grads)


@pytest.mark.parametrize("phi", [0.98, 1.0, 0.8])
def test_the_gradient_is_the_derivative_of_the_one_step_squared_error(phi):
    rng = np.random.default_rng(3)
    n = 40
    z = np.cumsum(rng.normal(0.3, 1.0, n)) + 10.0
    sp = np.where(np.arange(n) % 4 == 0, 1.5, -0.5)      # a fixed season the member meets
    u = [0.4, -1.1]
    theta = np.array(RG.ad_theta(u))
    _, g = member_run(z, sp, u, phi)
    h = 1e-6
    for i in range(2):
        up, dn = theta.copy(), theta.copy()
        up[i] += h
        dn[i] -= h
        # theta back to u for the perturbed runs
        uu = [math.log((v - RG.AD_LO) / (RG.AD_HI - v)) for v in up]
        ud = [math.log((v - RG.AD_LO) / (RG.AD_HI - v)) for v in dn]
        eu, _ = member_run(z, sp, uu, phi)
        ed, _ = member_run(z, sp, ud, phi)
        fd = (eu ** 2 / 2 - ed ** 2 / 2) / (2 * h)
        assert np.allclose(g[:, i], fd, rtol=1e-5, atol=1e-6), i


def test_the_step_in_u_follows_the_chain_rule():
    # ad_step's d/du = d/dtheta x (AD_HI - AD_LO) sigmoid'(u), and the first step moves u by
    # AD_LR / sqrt(1 - AD_V) against the gradient's sign (v starts at 0)
    for g in (0.37, -2.5):
        ad = [0.2, -0.7, 0.0, 0.0] + [0.0] * 4
        RG.ad_step(ad, [g, g])
        for i, u in enumerate((0.2, -0.7)):
            step = RG.AD_LR / math.sqrt(1.0 - RG.AD_V)
            assert ad[i] == pytest.approx(u - math.copysign(step, g), rel=1e-12)
            h = 1e-6
            th = lambda v: RG.ad_theta([v, v])[0]            # noqa: E731
            dth = (th(u + h) - th(u - h)) / (2 * h)
            assert ad[2 + i] == pytest.approx((1 - RG.AD_V) * (g * dth) ** 2, rel=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("m", [4, 0])
def test_the_core_carries_the_adaptive_state_as_the_reference(dtype, m):
    core, ref = make_pair(cell=GRU, dtype=dtype, m=m, H=6)
    run(core, ref, np.random.default_rng(11), "seasonal" if m else "walk", steps=45)
    parts = core.row_parts()
    oa, na = parts["ad"]
    ob, nb = parts["bank"]
    K = core.n_members
    assert core.n_bank == K + 1 and na == RG.AD_N
    moved = 0
    for k, K_ in ref.keys.items():
        row = core.get_slots(np.array([k], dtype=np.int64))["row"][0]
        assert list(row[oa:oa + na]) == K_.ad, k               # bit for bit
        assert list(row[ob + 3 * K:ob + 3 * K + 3]) == K_.bank[K], k
        moved += K_.ad[0] != RG.ad_u0(m == 0)[0] if dtype == "float64" else True
    assert moved                                                # it learns


def test_the_adaptive_member_takes_weight_on_a_fast_trend():
    # a steep, smooth trend without a season: the fixed members (alphas up to 0.5) lag, the
    # adaptive one raises its alpha and beta and leads the bank
    core, ref = make_pair(cell=GRU, m=0, H=4)
    t = np.arange(120)
    y = 100 + 0.02 * t ** 2
    for v in y:
        ref.step([0], [float(v)])
    K_ = ref.keys[0]
    al, be = RG.ad_theta(K_.ad[:2])
    assert al > 0.5 and be > 0.1
    errs = [mb[2] for mb in K_.bank]
    assert errs[-1] == min(errs)


@pytest.mark.parametrize("dtype,big", [("float64", 1e100), ("float32", 1e30)])
def test_huge_values_keep_the_adaptive_state_finite(dtype, big):
    core = GlobalCore(LSTM, 4, 1, 4, 4, 0, 0, 2, 2, dtype, 1, 0, None)
    out = (np.zeros(1), np.zeros(1), np.zeros((1, 4)), np.zeros((1, 4)), np.zeros((1, 4)))
    for v in (0.0, big, -big, big, 1.0, -big, 0.5, big) * 3:
        assert core.step(np.array([0], dtype=np.int64), np.array([v]), None, *out) in (1, 2)
    row = core.get_slots(np.array([0], dtype=np.int64))["row"][0]
    oa, na = core.row_parts()["ad"]
    assert np.all(np.isfinite(row)) and np.all(np.abs(row[oa:oa + 2]) <= RG.AD_UCLIP)
    assert np.all(row[oa + 2:oa + 4] >= 0)


@pytest.mark.parametrize("where,value,match", [(0, 30.5, "u beyond"), (1, -31.0, "u beyond"),
                                               (2, -1e-3, "negative adaptive"),
                                               (3, -5.0, "negative adaptive")])
def test_a_bad_adaptive_state_is_refused_and_changes_nothing(where, value, match):
    core = GlobalCore(GRU, 4, 1, 4, 4, 3, 0, 3, 3, "float64", 1, 0, None)
    out = (np.zeros(2), np.zeros(2), np.zeros((2, 4)), np.zeros((2, 4)), np.zeros((2, 4)))
    for t in range(12):
        core.step(np.array([0, 1], dtype=np.int64), np.array([t % 3 + 1.0, 2.0 * t]), None, *out)
    slots = np.array([0, 1], dtype=np.int64)
    before = core.get_state()
    st = core.get_slots(slots)
    st["row"][1, core.row_parts()["ad"][0] + where] = value
    with pytest.raises(ValueError, match=match):
        core.set_slots(slots, st)
    after = core.get_state()
    assert np.array_equal(after["rows"], before["rows"])
    assert np.array_equal(after["count"], before["count"])
