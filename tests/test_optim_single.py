"""Adam with float32 moments, the network's optimizer (``Optimizer.single``): exact against
the reference's float32 arithmetic, the same bits on every instruction set (saturated moments
included), finite whatever the gradient, and a state that round-trips bit for bit. A state
whose moments are not float32 values (a double optimizer's, a version before float32 moments)
loads with each moment rounded to the nearest float32; one beyond float32's range is refused.
"""
import pickle

import numpy as np
import pytest

from _support import digest_per_isa
from streamrnn import _core as C
from streamrnn._core import _cells
from streamrnn._core import _optim as KO

import reference as R

FLT_MAX = float(np.finfo(np.float32).max)
ADAM = dict(lr=0.01, beta_1=0.9, beta_2=0.999, eps=1e-8)


def _gradients(rng, n, steps, scale):
    gs = rng.normal(scale=scale, size=(steps, n))
    gs[:, 0] = 0.0
    return gs


@pytest.mark.parametrize("clip_value", [0.0, 0.02])
@pytest.mark.parametrize("scale", [0.2, 1e-22, 1e21, 1e100])
def test_single_adam_is_the_references_float32_arithmetic_bit_for_bit(clip_value, scale):
    # scale 1e21: (1 - b2) g^2 beyond FLT_MAX (v saturates); 1e100: the gradient itself does
    rng = np.random.default_rng(3)
    kopt = KO.Optimizer(KO.ADAM, clip_value=clip_value, single=True, **ADAM)
    ropt = R.RefOptimizer("adam", clip_value=clip_value, **ADAM)
    w_k = rng.normal(size=37)
    w_r = w_k.copy()
    for g in _gradients(rng, 37, 40, scale):
        g_k, g_r = g.copy(), g.copy()
        assert kopt.step(w_k, g_k) == 0
        ropt.step(w_r, g_r, single=True)
        assert kopt.m_arr.dtype == kopt.v_arr.dtype == np.float32
        assert np.array_equal(g_k, g_r)
        assert np.array_equal(w_k, w_r)
        assert np.array_equal(kopt.m_arr, ropt.s) and np.array_equal(kopt.v_arr, ropt.v)
    assert np.all(np.isfinite(kopt.m_arr)) and np.all(np.isfinite(kopt.v_arr))
    assert np.all(np.isfinite(w_k))
    if scale >= 1e21 and clip_value == 0.0:
        assert kopt.v_arr.max() == np.float32(FLT_MAX)   # saturated, not infinite
    KO.check_state(kopt.get_state(), single=True)       # and still a valid state


def test_the_norm_clip_rescales_in_double_before_the_float32_moments():
    rng = np.random.default_rng(4)
    kopt = KO.Optimizer(KO.ADAM, clip_norm=0.05, single=True, **ADAM)
    ropt = R.RefOptimizer("adam", clip_norm=0.05, **ADAM)
    w_k = rng.normal(size=50)
    w_r = w_k.copy()
    for g in _gradients(rng, 50, 30, 0.3):
        g_k, g_r = g.copy(), g.copy()
        kopt.step(w_k, g_k)
        ropt.step(w_r, g_r, single=True)
        # the kernel sums the norm in 16 lanes, the reference with a dot product
        np.testing.assert_allclose(g_k, g_r, rtol=1e-13, atol=0)
        np.testing.assert_allclose(w_k, w_r, rtol=1e-6, atol=1e-9)


_ISA_CODE = r"""
import hashlib, json, numpy as np
from streamrnn._core import _cells, _optim as KO
h = hashlib.sha256()
for scale in (0.2, 1e-22, 1e21, 1e100):
    for clip_norm in (0.0, 1e30):   # 1e30: the rescaling pass (sr_adam_scaled_m32)
        rng = np.random.default_rng(9)
        opt = KO.Optimizer(KO.ADAM, 0.01, clip_norm=clip_norm, single=True)
        w = rng.normal(size=203)
        for i in range(25):
            g = rng.normal(scale=scale, size=203)
            opt.step(w, g)
        for a in (w, opt.m_arr, opt.v_arr):
            h.update(a.tobytes())
print(json.dumps([_cells.ISA, h.hexdigest()]))
"""


def test_every_instruction_set_gives_the_same_single_adam_bits():
    got = digest_per_isa(_ISA_CODE)
    assert len(set(got.values())) == 1, got


# ------------------------------------------------------------------------------ the network
def _net(n_steps=120, seed=0, clip_norm=1.0):
    net = C.Network(C.LSTM, 3, 8, 1, 2, 1, 6, C.SQUARED)
    C.initialize(net, np.random.default_rng(seed))
    net.set_optimizer(C.Optimizer(C.ADAM, 0.01, clip_norm=clip_norm))
    _drive(net, 0, n_steps)
    return net


def _drive(net, start, n):
    rng = np.random.default_rng(1000 + start)
    for i in range(n):
        x = rng.normal(size=3)
        net.learn_multi(x, np.array([np.sin(0.3 * (start + i)), np.nan if i % 3 else 0.5]))


def _same_net(a, b):
    sa, sb = a.get_state(), b.get_state()
    for k in sa:
        if k == "optimizer":
            continue
        assert np.array_equal(np.asarray(sa[k]), np.asarray(sb[k])), k
    oa, ob = sa["optimizer"], sb["optimizer"]
    assert oa.keys() == ob.keys()
    for k in oa:
        assert np.array_equal(np.asarray(oa[k]), np.asarray(ob[k])), k


def test_a_network_keeps_adams_moments_in_float32_and_the_state_in_float64():
    net = _net()
    opt = net.optimizer
    assert opt.single and opt.m_arr.dtype == np.float32 and opt.v_arr.dtype == np.float32
    st = net.get_state()["optimizer"]
    assert st["m"].dtype == st["v"].dtype == np.float64
    assert np.array_equal(st["m"], opt.m_arr.astype(np.float64))   # exact: float32 values
    assert np.array_equal(st["m"].astype(np.float32).astype(np.float64), st["m"])


@pytest.mark.parametrize("how", ["pickle", "set_state", "from_state"])
def test_a_resumed_network_is_bit_identical(how):
    net = _net()
    if how == "pickle":
        twin = pickle.loads(pickle.dumps(net))
    elif how == "set_state":
        twin = C.Network(C.LSTM, 3, 8, 1, 2, 1, 6, C.SQUARED)
        C.initialize(twin, np.random.default_rng(5))
        twin.set_optimizer(C.Optimizer(C.ADAM, 0.01, clip_norm=1.0))
        twin.set_state(net.get_state())
    else:
        twin = C.Network.from_state(net.config(), net.get_state())
    assert twin.optimizer.single and twin.optimizer.m_arr.dtype == np.float32
    _same_net(net, twin)
    _drive(net, 120, 80)
    _drive(twin, 120, 80)
    _same_net(net, twin)


def test_a_state_with_float64_moments_loads_rounded_to_float32():
    net = _net()
    st = net.get_state()
    rng = np.random.default_rng(2)
    o = st["optimizer"]
    o["m"] = o["m"] + rng.normal(scale=1e-9, size=o["m"].shape)     # no longer float32 values
    o["v"] = o["v"] * (1.0 + 1e-12) + 1e-300
    assert not np.array_equal(o["m"].astype(np.float32).astype(np.float64), o["m"])
    a = C.Network.from_state(net.config(), st)
    assert np.array_equal(a.optimizer.m_arr, o["m"].astype(np.float32))   # nearest float32
    assert np.array_equal(a.optimizer.v_arr, o["v"].astype(np.float32))
    # exactly the run of a state that held those float32 values
    o2 = dict(o, m=o["m"].astype(np.float32).astype(np.float64),
              v=o["v"].astype(np.float32).astype(np.float64))
    b = C.Network.from_state(net.config(), dict(st, optimizer=o2))
    _drive(a, 120, 40)
    _drive(b, 120, 40)
    _same_net(a, b)


@pytest.mark.parametrize("field,value", [("m", -1e39), ("v", 3.5e38), ("v", 1e300)])
def test_a_moment_beyond_float32s_range_is_refused_and_nothing_changes(field, value):
    net = _net()
    before = pickle.dumps(net)
    st = net.get_state()
    st["optimizer"][field] = st["optimizer"][field].copy()
    st["optimizer"][field][3] = value
    with pytest.raises(ValueError, match=rf"optimizer {field} has values beyond float32's range"):
        net.set_state(st)
    assert pickle.dumps(net) == before
    with pytest.raises(ValueError, match="beyond float32's range"):
        C.Network.from_state(net.config(), st)
    # an optimizer holding such a moment cannot be attached either
    opt = C.Optimizer.from_state(st["optimizer"])
    assert not opt.single
    other = C.Network(C.LSTM, 3, 8, 1, 2, 1, 6, C.SQUARED)
    with pytest.raises(ValueError, match="beyond float32's range"):
        other.set_optimizer(opt)
    assert other.optimizer is None and not opt.single and opt.v_arr.dtype == np.float64
    # a moment that rounds to FLT_MAX itself is in range
    st["optimizer"][field][3] = FLT_MAX if field == "v" else -FLT_MAX
    net.set_state(st)
    assert abs(float(getattr(net.optimizer, field + "_arr")[3])) == FLT_MAX


def test_a_huge_gradient_leaves_moments_finite_and_the_state_exportable():
    net = C.Network(C.ELMAN_TANH, 2, 4, 1, 1, 1, 2, C.SQUARED)
    C.initialize(net, np.random.default_rng(0))
    net.set_optimizer(C.Optimizer(C.ADAM, 0.01))             # no norm clip
    assert net.learn(np.array([1e30, -1e30]), 1e30) == 1
    assert np.all(np.isfinite(net.optimizer.v_arr)) and net.optimizer.v_arr.max() == FLT_MAX
    C.Network.from_state(net.config(), net.get_state())      # valid


def test_a_standalone_optimizer_pickles_with_its_precision():
    for single in (False, True):
        opt = KO.Optimizer(KO.ADAM, 0.01, single=single)
        w = np.ones(9)
        opt.step(w, np.linspace(-1, 1, 9))
        back = pickle.loads(pickle.dumps(opt))
        assert back.single == single and back.m_arr.dtype == opt.m_arr.dtype
        assert np.array_equal(back.m_arr, opt.m_arr) and np.array_equal(back.v_arr, opt.v_arr)
        w2 = w.copy()
        opt.step(w, np.full(9, 0.3))
        back.step(w2, np.full(9, 0.3))
        assert np.array_equal(w, w2)
    # a pickle made before ``single`` (state only) unpickles as a double optimizer
    assert not KO._optimizer_from_state(opt.get_state()).single
    with pytest.raises(ValueError, match="single must be a bool"):
        KO.Optimizer(KO.ADAM, 0.01, single=1)


def test_the_other_rules_and_the_shared_network_keep_double_moments():
    from streamrnn._core._shared import SharedNetwork
    net = C.Network(C.GRU, 2, 4, 1, 1, 1, 2, C.SQUARED)
    net.set_optimizer(C.Optimizer(C.RMSPROP, 0.01))
    assert net.optimizer.single and net.optimizer.m_arr.dtype == np.float64  # ignored
    sh = SharedNetwork(C.GRU, 3, 5, 1, 1, 4, C.SQUARED, capacity=5, max_batch=4)
    sh.set_optimizer(C.Optimizer(C.ADAM, 0.01))
    assert not sh.optimizer.single and sh.optimizer.m_arr.dtype == np.float64
    sh2 = pickle.loads(pickle.dumps(sh))
    assert not sh2.optimizer.single and sh2.optimizer.v_arr.dtype == np.float64
