"""Direct multi-horizon regression with delayed targets: ``Network.learn_multi``.

``learn_multi(x, y)`` takes one step and, with it, ``y[j]`` = the target of output j of the
step taken j calls ago (NaN: none). The kernel is held equal to the NumPy reference
(``tests/reference.py``, ``RefNet.learn_multi``) step by step at rtol = atol = 1e-12, for every
cell, every regression loss, n_out in {1, 3, 12}, k1 in {1, 4}, k2 in {1, 5, 16}, 1 and 2
layers, with NaN targets masked; its gradient is checked against central finite differences
of the truncated delayed objective (``reference.delayed_loss``); failures leave the state
bit-identical; learn_multi with only ``y[0]`` is ``learn`` bit for bit.
"""
from __future__ import annotations

import copy
import itertools
import pickle

import numpy as np
import pytest

try:
    from . import reference as R
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    import reference as R

from streamrnn._core import _network as K
from streamrnn._core import _optim as KO


RTOL = ATOL = 1e-12
N_IN, HIDDEN = 3, 4
CELLS = {"elman_tanh": R.ELMAN_TANH, "elman_relu": R.ELMAN_RELU, "lstm": R.LSTM, "gru": R.GRU}
LOSSES = {"squared": R.SQUARED, "absolute": R.ABSOLUTE, "huber": R.HUBER}
KERNEL_OPT = {"sgd": "SGD", "momentum": "MOMENTUM", "nesterov": "NESTEROV",
              "rmsprop": "RMSPROP", "adam": "ADAM", "adagrad": "ADAGRAD"}
OPT_ARGS = {
    "sgd": dict(lr=0.05), "momentum": dict(lr=0.02, rho=0.9), "nesterov": dict(lr=0.02, rho=0.9),
    "rmsprop": dict(lr=0.01, rho=0.9, eps=1e-8),
    "adam": dict(lr=0.01, beta_1=0.9, beta_2=0.999, eps=1e-8), "adagrad": dict(lr=0.05, eps=1e-8),
}
CLIPS = ({}, dict(clip_value=0.02), dict(clip_norm=0.05))


def optimizer_args(opt, clip):
    args = dict(lr=0.01, beta_1=0.9, beta_2=0.999, eps=1e-8, rho=0.9, clip_value=0.0,
                clip_norm=0.0)
    args.update(OPT_ARGS[opt])
    args.update(CLIPS[clip])
    return args


def targets(rng, n_steps, n_out, p_nan=0.3):
    """Delayed targets with NaN holes (also whole rows of NaN and single y[0] rows)."""
    ys = rng.normal(scale=0.5, size=(n_steps, n_out))
    ys[rng.random((n_steps, n_out)) < p_nan] = np.nan
    ys[n_steps // 3] = np.nan
    return ys


def make_pair(cell, layers, n_out, k1, k2, loss, opt, clip, seed, n_in=N_IN, hidden=HIDDEN):
    rng = np.random.default_rng(seed)
    net = K.Network(cell, n_in, hidden, layers, n_out, k1, k2, loss, huber_eps=0.1)
    net.params[:] = rng.uniform(-0.5, 0.5, net.params.size)
    args = optimizer_args(opt, clip)
    net.set_optimizer(KO.Optimizer(getattr(KO, KERNEL_OPT[opt]), **args))
    ref = R.RefNet(cell, n_in, hidden, layers, n_out, k1, k2, loss, huber_eps=0.1)
    ref.params[:] = net.params
    ref.set_optimizer(R.RefOptimizer(opt, **args))
    return net, ref, rng


def assert_same(step, what, a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or not np.all(np.abs(a - b) <= ATOL + RTOL * np.abs(b)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{what} differs after learn_multi #{step}")


def assert_states_identical(a, b):
    assert set(a) == set(b)
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert a[k].tobytes() == b[k].tobytes(), k
        elif k == "optimizer":
            assert_states_identical(a[k], b[k]) if a[k] is not None else None
            assert (a[k] is None) == (b[k] is None)
        else:
            assert a[k] == b[k] and type(a[k]) is type(b[k]), k


# ------------------------------------------------------------------------------ vs reference
CASES = list(itertools.product(CELLS, (1, 2), (1, 3, 12), (1, 4), (1, 5, 16), LOSSES))


def _case_params():
    for i, (cell, layers, n_out, k1, k2, loss) in enumerate(CASES):
        opt = list(KERNEL_OPT)[i % len(KERNEL_OPT)]
        clip = (i // len(KERNEL_OPT)) % 3
        yield pytest.param(cell, layers, n_out, k1, k2, loss, opt, clip, i,
                           id=f"{cell}-L{layers}-H{n_out}-k1={k1}-k2={k2}-{loss}-{opt}-c{clip}")


@pytest.mark.parametrize("cell,layers,n_out,k1,k2,loss,opt,clip,seed", list(_case_params()))
def test_learn_multi_matches_reference(cell, layers, n_out, k1, k2, loss, opt, clip, seed):
    net, ref, rng = make_pair(CELLS[cell], layers, n_out, k1, k2, LOSSES[loss], opt, clip, seed)
    assert net.B == ref.B == max(k1 + n_out - 1, k2)
    n_steps = max(k2, n_out) + 2 * k1 + 6
    xs = rng.normal(size=(n_steps, N_IN))
    ys = targets(rng, n_steps, n_out)
    probe = rng.normal(size=N_IN)
    out = np.zeros(n_out)
    for step in range(n_steps):
        if step % 3 == 1:  # predict first (the cached forward must give the same numbers)
            net.predict(xs[step], out)
            assert_same(step, "predict", out, ref.predict(xs[step]))
        status = net.learn_multi(xs[step], ys[step])
        ref_status = ref.learn_multi(xs[step], ys[step])
        assert status == ref_status == (1 if (step + 1) % k1 == 0 else 0), step
        assert net.t == ref.t
        assert_same(step + 1, "last_loss", net.last_loss, ref.last_loss)
        assert_same(step + 1, "last_output", net.last_output, ref.last_output)
        assert_same(step + 1, "params", net.params, ref.params)
        if status == 1:
            assert_same(step + 1, "grad", net.grad, ref.grad)
        assert_same(step + 1, "h", net.h, ref.h)
        assert_same(step + 1, "c", net.c, ref.c)
    net.predict(probe, out)
    assert_same(n_steps, "predict", out, ref.predict(probe))


def test_last_output_is_the_forward_before_the_update():
    net, ref, rng = make_pair(R.LSTM, 1, 5, 1, 16, R.SQUARED, "adam", 0, 3)
    out = np.zeros(5)
    for _ in range(30):
        x = rng.normal(size=N_IN)
        net.predict(x, out)
        before = out.copy()
        assert net.learn_multi(x, rng.normal(size=5)) == 1
        assert net.last_output.tobytes() == before.tobytes()
        net.predict(x, out)
        assert out.tobytes() != before.tobytes()  # the update moved the head


# ------------------------------------------------------------------------------ learn == multi
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("n_out,k1,k2", [(1, 1, 16), (1, 4, 5), (1, 3, 1), (3, 1, 5), (3, 4, 2)])
@pytest.mark.parametrize("loss", LOSSES)
def test_only_y0_is_learn_bit_for_bit(cell, n_out, k1, k2, loss):
    a, _, rng = make_pair(CELLS[cell], 2, n_out, k1, k2, LOSSES[loss], "adam", 1, 11)
    b = K.Network.from_state(a.config(), a.get_state())
    nan = np.full(n_out, np.nan)
    for step in range(40):
        x, y = rng.normal(size=N_IN), float(rng.normal())
        yv = nan.copy()
        yv[0] = y
        assert a.learn(x, y) == b.learn_multi(x, yv)
        assert a.last_loss == b.last_loss
        assert a.last_output.tobytes() == b.last_output.tobytes()
    assert_states_identical(a.get_state(), b.get_state())


def test_learn_and_learn_multi_mix():
    """learn between learn_multi calls: its own step's row is fresh, delayed entries of older
    steps still arrive and are applied once (equal to the reference doing the same)."""
    net, ref, rng = make_pair(R.GRU, 2, 4, 2, 5, R.HUBER, "sgd", 0, 5)
    for step in range(40):
        x = rng.normal(size=N_IN)
        if step % 5 == 2:
            y = float(rng.normal())
            # the reference's learn is for n_out == 1; learn trains output 0 only
            yy = np.full(4, np.nan)
            yy[0] = y
            assert net.learn(x, y) == ref.learn_multi(x, yy)
        else:
            y = targets(rng, 1, 4, 0.2)[0] if step % 4 else rng.normal(size=4)
            assert net.learn_multi(x, y) == ref.learn_multi(x, y)
        assert_same(step, "params", net.params, ref.params)


# ------------------------------------------------------------------------------ finite differences
EPS, TOL = 1e-6, 1e-6
FD_IN, FD_H = 2, 3


def _fd_problem(cell, layers, n_out, k1, k2, loss, seed):
    """Parameters, inputs, targets (redrawn until away from the relu / |.| kinks) and T."""
    T = k1 * -(-(max(k2, n_out) + 3) // k1)
    rng = np.random.default_rng(seed)
    size = R.make_layout(cell, FD_IN, FD_H, layers, n_out)[1]
    for _ in range(50):
        params = rng.uniform(-0.5, 0.5, size)
        xs = rng.normal(size=(T, FD_IN))
        ys = rng.normal(scale=0.3, size=(T, n_out))
        ys[rng.random((T, n_out)) < 0.25] = np.nan
        terms = _terms(ys, T, k1, n_out)
        if terms and _away_from_kinks(cell, layers, n_out, loss, params, xs, terms):
            return params, xs, ys, terms, T
    raise AssertionError("no draw away from the kinks")


def _terms(ys, T, k1, n_out):
    """The (step, output, target) losses pending at the update after call T (0-based steps)."""
    terms = []
    for call in range(T - k1, T):
        for j in range(n_out):
            if not np.isnan(ys[call, j]) and call - j >= 0:
                terms.append((call - j, j, ys[call, j]))
    return terms


def _away_from_kinks(cell, layers, n_out, loss, params, xs, terms, margin=1e-3):
    layout = R.make_layout(cell, FD_IN, FD_H, layers, n_out)[0]
    P = R.unpack(params, layout, layers)
    h, c = np.zeros((layers, FD_H)), np.zeros((layers, FD_H))
    tops = []
    for x in xs:
        _, h, c, caches = R.forward_step(cell, P, x, h, c)
        if cell == R.ELMAN_RELU and min(np.min(np.abs(k["a"])) for k in caches) <= margin:
            return False
        tops.append(h[-1].copy())
    if loss == R.ABSOLUTE:
        for s, j, y in terms:
            if abs(tops[s] @ P.W_y[:, j] + P.b_y[j] - y) <= margin:
                return False
    return True


def _central(f, params):
    num = np.empty_like(params)
    for i in range(params.size):
        p = params.copy()
        p[i] += EPS
        up = f(p)
        p[i] -= 2 * EPS
        num[i] = (up - f(p)) / (2 * EPS)
    return num


def _rel(a, n):
    return np.linalg.norm(a - n) / max(np.linalg.norm(a), np.linalg.norm(n), 1e-300)


# every cell x loss x n_out, with (k1, k2, layers) rotating; then every k1 x k2 x n_out x layers
FD_CASES = [(cell, loss, n_out) + [(1, 1, 1), (4, 5, 2), (1, 16, 2), (4, 1, 1), (1, 5, 1),
                                   (4, 16, 2)][i % 6]
            for i, (cell, loss, n_out) in enumerate(itertools.product(CELLS, LOSSES, (1, 3, 12)))]
FD_CASES += [("lstm", "huber", n_out, k1, k2, layers)
             for n_out, k1, k2, layers in itertools.product((1, 3, 12), (1, 4), (1, 5, 16), (1, 2))]


@pytest.mark.parametrize("cell,loss,n_out,k1,k2,layers", sorted(set(FD_CASES)))
def test_learn_multi_gradient_finite_differences(cell, loss, n_out, k1, k2, layers):
    """SGD with lr = 0 keeps the parameters fixed; net.grad after call T is the gradient of
    the pending delayed losses (1/k1 of their sum) under TBPTT's truncation."""
    c, l = CELLS[cell], LOSSES[loss]
    seed = 1000 + 97 * c + 31 * l + 7 * n_out + 3 * k1 + k2 + layers
    params, xs, ys, terms, T = _fd_problem(c, layers, n_out, k1, k2, l, seed)
    net = K.Network(c, FD_IN, FD_H, layers, n_out, k1, k2, l, huber_eps=0.1)
    net.params[:] = params
    net.set_optimizer(KO.Optimizer(KO.SGD, 0.0, beta_1=0.9, beta_2=0.999, eps=1e-8, rho=0.9,
                                   clip_value=0.0, clip_norm=0.0))
    for call in range(T):
        status = net.learn_multi(xs[call], ys[call])
        assert status == (1 if (call + 1) % k1 == 0 else 0)
    assert terms, "the draw left nothing to learn"

    def objective(p):
        return R.delayed_loss(p, c, FD_IN, FD_H, layers, n_out, l, xs, terms, huber_eps=0.1,
                              scale=1.0 / k1, window=min(k2, T), frozen=params)

    # the kernel's summed loss of the last call is that call's share of the objective
    last = [tm for tm in terms if tm[0] + tm[1] == T - 1]
    last_loss = R.delayed_loss(params, c, FD_IN, FD_H, layers, n_out, l, xs, last, huber_eps=0.1)
    assert abs(net.last_loss - last_loss) <= 1e-12 * max(abs(last_loss), 1e-300)
    assert _rel(net.grad.copy(), _central(objective, params)) < TOL


@pytest.mark.parametrize("cell", CELLS)
def test_reference_multi_gradient_finite_differences(cell):
    c, l, n_out, k1, k2, layers = CELLS[cell], R.SQUARED, 3, 4, 5, 2
    params, xs, ys, terms, T = _fd_problem(c, layers, n_out, k1, k2, l, 77 + c)
    ref = R.RefNet(c, FD_IN, FD_H, layers, n_out, k1, k2, l)
    ref.params[:] = params
    ref.set_optimizer(R.RefOptimizer("sgd", 0.0))
    statuses = [ref.learn_multi(x, y) for x, y in zip(xs, ys)]
    assert statuses[-1] == 1
    numeric = _central(lambda p: R.delayed_loss(p, c, FD_IN, FD_H, layers, n_out, l, xs, terms,
                                                scale=1.0 / k1, window=min(k2, T),
                                                frozen=params), params)
    assert _rel(ref.grad, numeric) < TOL


# ------------------------------------------------------------------------------ guards, roll-back
def _running(n_out=4, k1=3, k2=5, steps=7, cell=R.LSTM, opt="adam", seed=2):
    """A net in the middle of a k1 window with delayed gradients pending."""
    net, _, rng = make_pair(cell, 2, n_out, k1, k2, R.SQUARED, opt, 0, seed)
    for _ in range(steps):
        assert net.learn_multi(rng.normal(size=N_IN), rng.normal(size=n_out)) >= 0
    return net, rng


@pytest.mark.parametrize("bad", ["x_nan", "x_inf", "y_inf", "y_-inf"])
def test_bad_input_changes_nothing(bad):
    net, rng = _running()
    before = net.get_state()
    x, y = rng.normal(size=N_IN), rng.normal(size=4)
    if bad.startswith("x"):
        x[1] = np.nan if bad == "x_nan" else np.inf
    else:
        y[2] = np.inf if bad == "y_inf" else -np.inf
    assert net.learn_multi(x, y) == -1
    assert_states_identical(net.get_state(), before)


@pytest.mark.parametrize("j", [0, 1, 3])
@pytest.mark.parametrize("k1,size,steps", [(1, 1e200, 6), (3, 1e200, 7), (3, 1e200, 8),
                                           (1, 1.3e154, 6)])
def test_divergence_rolls_back_everything(k1, j, size, steps):
    """A target so far off that the loss (1e200) or, in the update, the gradient's squared
    norm (1.3e154: its loss is finite) is not finite: -2, and the state, pending delayed
    gradients of earlier calls included, is bit-identical; the network then goes on exactly
    as one that never saw the call."""
    net, rng = _running(k1=k1, steps=steps)
    twin = K.Network.from_state(net.config(), net.get_state())
    before = net.get_state()
    x, y = rng.normal(size=N_IN), np.full(4, np.nan)
    y[j] = size
    assert net.learn_multi(x, y) == -2
    assert_states_identical(net.get_state(), before)
    for _ in range(8):
        x, y = rng.normal(size=N_IN), rng.normal(size=4)
        assert net.learn_multi(x, y) == twin.learn_multi(x, y)
    assert_states_identical(net.get_state(), twin.get_state())


def test_non_finite_output_without_target_is_refused():
    """A step whose outputs are not finite is not committed even when it has no target."""
    net, rng = _running(cell=R.ELMAN_RELU)
    net.view("W_x0")[:] = 1e200
    before = net.get_state()
    x = np.full(N_IN, 1e200)
    assert net.learn_multi(x, np.full(4, np.nan)) == -2
    assert_states_identical(net.get_state(), before)


def test_arguments_are_checked():
    net, rng = _running()
    x = rng.normal(size=N_IN)
    with pytest.raises(ValueError, match="targets have 3 values"):
        net.learn_multi(x, np.zeros(3))
    with pytest.raises(ValueError, match="input has 2 values"):
        net.learn_multi(np.zeros(2), np.zeros(4))
    with pytest.raises(ValueError):
        net.learn_multi(x, np.zeros(4, dtype=np.int64))
    with pytest.raises((ValueError, TypeError)):
        net.learn_multi(x, "abcd")
    for bad_x, bad_y in ((None, np.zeros(4)), (x, None), (x, [0.0] * 4),
                         (x, np.zeros(4, np.float32)), (x, np.zeros((2, 2)))):
        with pytest.raises((ValueError, TypeError)):
            net.learn_multi(bad_x, bad_y)
    # non-contiguous and list inputs take the buffer path and are checked the same way
    y = np.zeros(8)[::2]
    with pytest.raises(ValueError):
        net.learn_multi(x, y)
    before = net.get_state()
    for n_out, loss in ((1, R.BINARY_CE), (3, R.SOFTMAX_CE)):
        c = K.Network(R.LSTM, N_IN, 4, 1, n_out, 1, 5, loss)
        c.set_optimizer(KO.Optimizer(KO.SGD, 0.1))
        assert c.B == 5
        with pytest.raises(ValueError, match="regression loss"):
            c.learn_multi(x, np.zeros(n_out))
    bare = K.Network(R.LSTM, N_IN, 4, 1, 4, 1, 5, R.SQUARED)
    with pytest.raises(RuntimeError, match="no optimizer"):
        bare.learn_multi(x, np.zeros(4))
    assert_states_identical(net.get_state(), before)


def test_all_nan_steps_forward_only():
    """No target at all: the step is committed (state moves), nothing is learned from it."""
    net, rng = _running(k1=1, opt="sgd")
    p = net.params.copy()
    x = rng.normal(size=N_IN)
    status = net.learn_multi(x, np.full(4, np.nan))
    assert status == 1 and net.last_loss == 0.0
    assert net.params.tobytes() == p.tobytes()  # nothing pending: a zero gradient step (SGD)


# ------------------------------------------------------------------------------ state
@pytest.mark.parametrize("cut", range(0, 9))
def test_pickle_mid_window_continues_bit_identically(cut):
    net, rng = _running(n_out=6, k1=4, k2=3, steps=0, opt="momentum")
    data = [(rng.normal(size=N_IN), targets(rng, 1, 6)[0]) for _ in range(20)]
    twin = copy.deepcopy(net)
    for x, y in data[:cut]:
        net.learn_multi(x, y)
        twin.learn_multi(x, y)
    net = pickle.loads(pickle.dumps(net))
    for x, y in data[cut:]:
        assert net.learn_multi(x, y) == twin.learn_multi(x, y)
    assert_states_identical(net.get_state(), twin.get_state())


def _old_state(net):
    """What 0.1 saved for this network: rings of max(k1, k2) slots, step tau in tau % B."""
    st = net.get_state()
    B_old = max(net.k1, net.k2)
    for name in ("ring_x", "ring_r", "ring_g"):
        a = st[name]
        b = np.zeros((B_old,) + a.shape[1:])
        for tau in range(max(0, net.t - B_old), net.t):
            b[tau % B_old] = a[tau % net.B]
        st[name] = b
    return st


def test_old_states_load():
    """A 0.1 state (learn only, so no delayed entries) of a regression network whose ring now
    is longer loads and learns exactly like the network that made it."""
    net, _, rng = make_pair(R.GRU, 1, 8, 1, 4, R.SQUARED, "adam", 0, 9)
    assert net.B == 8
    for _ in range(13):
        net.learn(rng.normal(size=N_IN), float(rng.normal()))
    old = _old_state(net)
    assert old["ring_r"].shape[0] == 4
    loaded = K.Network.from_state(net.config(), old)
    for _ in range(10):
        x, y = rng.normal(size=N_IN), float(rng.normal())
        assert loaded.learn(x, y) == net.learn(x, y)
    st, st2 = loaded.get_state(), net.get_state()
    for k in ("params", "h", "c", "out"):
        assert st[k].tobytes() == st2[k].tobytes()
    # other ring lengths are refused with the field's name
    bad = dict(old)
    bad["ring_r"] = np.zeros((5,) + old["ring_r"].shape[1:])
    with pytest.raises(ValueError, match="ring_r"):
        loaded.set_state(bad)
    bad = dict(net.get_state())
    bad["ring_g"] = np.zeros((4, 8))
    with pytest.raises(ValueError, match="ring_x"):
        loaded.set_state(bad)


def test_ring_capacity():
    assert K.ring_capacity(1, 16, 1, K.SQUARED) == 16
    assert K.ring_capacity(1, 16, 24, K.HUBER) == 24
    assert K.ring_capacity(4, 5, 12, K.ABSOLUTE) == 15
    assert K.ring_capacity(4, 5, 12, K.SOFTMAX_CE) == 5
    for n_out, loss in ((1, K.SQUARED), (24, K.SQUARED), (7, K.SOFTMAX_CE)):
        net = K.Network(K.LSTM, 2, 3, 1, n_out, 2, 5, loss)
        assert net.B == K.ring_capacity(2, 5, n_out, loss)
        assert net.get_state()["ring_r"].shape[0] == net.B


def test_adopt_grows_the_head_and_the_ring():
    old, _, rng = make_pair(R.LSTM, 1, 2, 1, 3, R.SQUARED, "sgd", 0, 4)
    for _ in range(9):
        old.learn_multi(rng.normal(size=N_IN), rng.normal(size=2))
    new = K.Network(R.LSTM, N_IN + 1, HIDDEN, 1, 6, 1, 3, R.SQUARED)
    assert new.B == 6 and old.B == 3
    new.adopt(old)
    assert new.t == old.t
    st, so = new.get_state(), old.get_state()
    for tau in range(old.t - 3, old.t):
        assert st["ring_r"][tau % 6].tobytes() == so["ring_r"][tau % 3].tobytes()
    assert new.learn_multi(rng.normal(size=N_IN + 1), rng.normal(size=6)) == 1


# ------------------------------------------------------------------------------ the C entry point
_CALLER = '''
# cython: language_level=3
from streamrnn._core._network cimport Network

def run(Network net, const double[:, ::1] xs, const double[:, ::1] ys):
    """_learn_multi over the rows, without the GIL; the statuses."""
    cdef Py_ssize_t i, n = xs.shape[0]
    out = []
    cdef int s
    for i in range(n):
        with nogil:
            s = net._learn_multi(&xs[i, 0], &ys[i, 0])
        out.append(s)
    return out

def predict(Network net, const double[::1] x, double[::1] out):
    with nogil:
        net._predict(&x[0], &out[0])
'''


def test_the_nogil_entry_point_is_learn_multi(tmp_path):
    """A Cython module (as the forecasters' core) cimports Network from the .pxd and calls
    _learn_multi without the GIL: the same statuses and the same bits as learn_multi; -3 for
    a misuse the Python level would raise for."""
    import os
    import subprocess
    import sys
    pytest.importorskip("Cython")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    (tmp_path / "caller.pyx").write_text(_CALLER)
    (tmp_path / "setup.py").write_text(
        "from setuptools import setup, Extension\n"
        "from Cython.Build import cythonize\n"
        "setup(ext_modules=cythonize([Extension('caller', ['caller.pyx'])],\n"
        f"      include_path=[{root!r}], quiet=True))\n")
    env = dict(os.environ, PYTHONPATH=root)
    run = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    sys.path.insert(0, str(tmp_path))
    try:
        import caller
    finally:
        sys.path.pop(0)
    a, _, rng = make_pair(R.LSTM, 2, 5, 2, 4, R.SQUARED, "adam", 1, 21)
    b = K.Network.from_state(a.config(), a.get_state())
    xs = rng.normal(size=(30, N_IN))
    ys = targets(rng, 30, 5)
    xs[7, 1] = np.nan
    ys[9, 2] = np.inf
    ys[12, 0] = 1e200
    want = [a.learn_multi(x, y) for x, y in zip(xs, ys)]
    got = caller.run(b, xs, ys)
    assert got == want and {-1, -2, 0, 1} <= set(got)
    assert_states_identical(a.get_state(), b.get_state())
    # _predict: predict's numbers, and the next _learn_multi reuses its forward pass
    oa, ob = np.zeros(5), np.zeros(5)
    for x, y in zip(xs[:5], ys[:5]):
        a.predict(x, oa)
        caller.predict(b, x, ob)
        assert oa.tobytes() == ob.tobytes() and b._forward_cached
        assert caller.run(b, x[None, :].copy(), y[None, :].copy()) == [a.learn_multi(x, y)]
    assert_states_identical(a.get_state(), b.get_state())
    bare = K.Network(R.LSTM, N_IN, 4, 1, 5, 1, 4, R.SQUARED)
    assert caller.run(bare, xs[:1], ys[:1]) == [-3]
    clf = K.Network(R.LSTM, N_IN, 4, 1, 3, 1, 4, R.SOFTMAX_CE)
    clf.set_optimizer(KO.Optimizer(KO.SGD, 0.1))
    assert caller.run(clf, xs[:1], np.zeros((1, 3))) == [-3]
    assert bare.t == clf.t == 0
