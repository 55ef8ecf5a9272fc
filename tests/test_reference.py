"""The compiled kernel equals the NumPy reference (tests/reference.py) step by step.

After every ``learn`` the status, step counter, loss, parameters, gradient, carried h/c and a
prediction are compared to rtol = atol = 1e-12, for every cell, 1 and 2 layers, TBPTT(k1, k2)
with k1 in {1, 3} and k2 in {1, 5} (so k1 < k2, k1 == k2 and k1 > k2 all occur), every loss
and every optimizer. The clipping mode (none / by value / by norm) rotates with the loss and
optimizer so that each optimizer and each loss meets all three modes.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

try:
    from . import reference as R
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    import reference as R

from streamrnn._core import _network as K
from streamrnn._core import _optim as KO


RTOL = ATOL = 1e-12
N_STEPS = 40
N_IN, HIDDEN = 3, 4

CELLS = {"elman_tanh": R.ELMAN_TANH, "elman_relu": R.ELMAN_RELU, "lstm": R.LSTM, "gru": R.GRU}
LOSSES = {"squared": R.SQUARED, "absolute": R.ABSOLUTE, "huber": R.HUBER,
          "binary_ce": R.BINARY_CE, "softmax_ce": R.SOFTMAX_CE}
KERNEL_OPT = {"sgd": "SGD", "momentum": "MOMENTUM", "nesterov": "NESTEROV",
              "rmsprop": "RMSPROP", "adam": "ADAM", "adagrad": "ADAGRAD"}
# Hyper-parameters, always passed explicitly (river's defaults differ per optimizer).
OPT_ARGS = {
    "sgd": dict(lr=0.05),
    "momentum": dict(lr=0.02, rho=0.9),
    "nesterov": dict(lr=0.02, rho=0.9),
    "rmsprop": dict(lr=0.01, rho=0.9, eps=1e-8),
    "adam": dict(lr=0.01, beta_1=0.9, beta_2=0.999, eps=1e-8),
    "adagrad": dict(lr=0.05, eps=1e-8),
}
# Small enough that most updates are clipped.
CLIPS = {"noclip": {}, "clipvalue": dict(clip_value=0.02), "clipnorm": dict(clip_norm=0.05)}
CLIP_NAMES = list(CLIPS)


def n_out_for(loss):
    return 3 if loss == R.SOFTMAX_CE else 1


def make_data(loss, n_steps, rng):
    xs = rng.normal(size=(n_steps, N_IN))
    if loss == R.SOFTMAX_CE:
        ys = rng.integers(0, 3, n_steps).astype(float)
    elif loss == R.BINARY_CE:
        ys = rng.integers(0, 2, n_steps).astype(float)
    else:
        ys = rng.normal(scale=0.5, size=n_steps)
    return xs, ys


def optimizer_args(opt, clip):
    args = dict(lr=0.01, beta_1=0.9, beta_2=0.999, eps=1e-8, rho=0.9,
                clip_value=0.0, clip_norm=0.0)
    args.update(OPT_ARGS[opt])
    args.update(CLIPS[clip])
    return args


def make_pair(cell, num_layers, k1, k2, loss, opt, clip, seed):
    """A kernel network and a reference network with the same parameters and optimizer."""
    rng = np.random.default_rng(seed)
    n_out = n_out_for(loss)
    net = K.Network(cell, N_IN, HIDDEN, num_layers, n_out, k1, k2, loss, huber_eps=0.1)
    net.params[:] = rng.uniform(-0.5, 0.5, net.params.size)
    args = optimizer_args(opt, clip)
    net.set_optimizer(KO.Optimizer(getattr(KO, KERNEL_OPT[opt]), **args))

    ref = R.RefNet(cell, N_IN, HIDDEN, num_layers, n_out, k1, k2, loss, huber_eps=0.1)
    ref.params[:] = net.params
    ref.set_optimizer(R.RefOptimizer(opt, **args))
    return net, ref, rng


def assert_same(step, what, kernel_value, ref_value):
    a, b = np.asarray(kernel_value), np.asarray(ref_value)
    # cheap check first; assert_allclose (slow, but with a good message) only on a mismatch
    if a.shape != b.shape or not np.all(np.abs(a - b) <= ATOL + RTOL * np.abs(b)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{what} differs after learn #{step}")


def assert_nets_equal(step, net, ref, x_probe):
    assert net.t == ref.t, f"t differs after learn #{step}"
    assert_same(step, "params", net.params, ref.params)
    assert_same(step, "grad", net.grad, ref.grad)
    assert_same(step, "h", net.h, ref.h)
    assert_same(step, "c", net.c, ref.c)
    out = np.zeros(ref.n_out)
    net.predict(x_probe, out)
    assert_same(step, "predict", out, ref.predict(x_probe))


# ------------------------------------------------------------------------------------------
CASES = list(itertools.product(CELLS, (1, 2), (1, 3), (1, 5), LOSSES, KERNEL_OPT))


def _case_params():
    for i, (cell, layers, k1, k2, loss, opt) in enumerate(CASES):
        # rotate clipping so every optimizer and every loss meets all three modes
        clip = CLIP_NAMES[(list(LOSSES).index(loss) + list(KERNEL_OPT).index(opt)) % 3]
        yield pytest.param(cell, layers, k1, k2, loss, opt, clip, i,
                           id=f"{cell}-L{layers}-k1={k1}-k2={k2}-{loss}-{opt}-{clip}")


@pytest.mark.parametrize("cell,layers,k1,k2,loss,opt,clip,seed", list(_case_params()))
def test_kernel_matches_reference(cell, layers, k1, k2, loss, opt, clip, seed):
    net, ref, rng = make_pair(CELLS[cell], layers, k1, k2, LOSSES[loss], opt, clip, seed)
    xs, ys = make_data(LOSSES[loss], N_STEPS, rng)
    probes = rng.normal(size=(N_STEPS, N_IN))
    assert_nets_equal(0, net, ref, probes[0])
    n_updates = 0
    for step in range(N_STEPS):
        status = net.learn(xs[step], float(ys[step]))
        ref_status = ref.learn(xs[step], ys[step])
        assert status == ref_status, f"status {status} != {ref_status} at learn #{step + 1}"
        assert status == (1 if (step + 1) % k1 == 0 else 0)
        n_updates += status
        assert_same(step + 1, "last_loss", net.last_loss, ref.last_loss)
        assert_nets_equal(step + 1, net, ref, probes[step])
    assert n_updates == N_STEPS // k1


@pytest.mark.parametrize("clip", CLIP_NAMES)
def test_clipping_engages(clip):
    """The clipping thresholds above are small enough to change most gradients."""
    net, ref, rng = make_pair(R.LSTM, 2, 1, 5, R.SQUARED, "sgd", clip, 0)
    xs, ys = make_data(R.SQUARED, 10, rng)
    changed = 0
    for x, y in zip(xs, ys):
        p0 = ref.params.copy()
        ref.learn(x, y)
        net.learn(x, float(y))
        # with SGD the applied gradient is (p0 - p1) / lr; compare it to the stored one
        applied = (p0 - ref.params) / OPT_ARGS["sgd"]["lr"]
        np.testing.assert_allclose(applied, ref.grad, rtol=1e-9, atol=1e-12)
        if clip == "clipvalue":
            changed += np.max(np.abs(ref.grad)) <= 0.02 + 1e-15
            assert np.max(np.abs(net.grad)) <= 0.02 + 1e-15
        elif clip == "clipnorm":
            changed += abs(np.linalg.norm(ref.grad) - 0.05) < 1e-12
            assert np.linalg.norm(net.grad) <= 0.05 * (1 + 1e-12)
        assert_same(0, "grad", net.grad, ref.grad)
    if clip != "noclip":
        assert changed >= 8


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", (1, 2))
def test_layout(cell, layers):
    for loss in (R.SQUARED, R.SOFTMAX_CE):
        n_out = n_out_for(loss)
        net = K.Network(CELLS[cell], N_IN, HIDDEN, layers, n_out, 2, 3, loss)
        layout, size = R.make_layout(CELLS[cell], N_IN, HIDDEN, layers, n_out)
        assert net.params.size == net.grad.size == size
        assert {k: (int(o), tuple(s)) for k, (o, s) in net.layout.items()} == layout
        assert net.h.shape == net.c.shape == (layers, HIDDEN)


def test_codes_match_docs():
    assert (K.ELMAN_TANH, K.ELMAN_RELU, K.LSTM, K.GRU) == (R.ELMAN_TANH, R.ELMAN_RELU,
                                                             R.LSTM, R.GRU)
    assert (K.SQUARED, K.ABSOLUTE, K.HUBER, K.BINARY_CE, K.SOFTMAX_CE) == (
        R.SQUARED, R.ABSOLUTE, R.HUBER, R.BINARY_CE, R.SOFTMAX_CE)


# ------------------------------------------------------------------------------------------
# Optimizers alone
@pytest.mark.parametrize("opt", list(KERNEL_OPT))
@pytest.mark.parametrize("clip", CLIP_NAMES)
def test_kernel_optimizer_matches_reference(opt, clip):
    rng = np.random.default_rng(7)
    args = optimizer_args(opt, clip)
    kopt = KO.Optimizer(getattr(KO, KERNEL_OPT[opt]), **args)
    ropt = R.RefOptimizer(opt, **args)
    w_k = rng.normal(size=13)
    w_r = w_k.copy()
    for step in range(30):
        g = rng.normal(scale=0.2, size=13)
        g[step % 13] = 0.0
        g_k, g_r = g.copy(), g.copy()
        assert kopt.step(w_k, g_k) == 0
        ropt.step(w_r, g_r)
        assert_same(step, "clipped gradient", g_k, g_r)
        assert_same(step, "weights", w_k, w_r)


def _river_optimizer(opt):
    from river import optim
    a = OPT_ARGS[opt]
    return {
        "sgd": lambda: optim.SGD(lr=a["lr"]),
        "momentum": lambda: optim.Momentum(lr=a["lr"], rho=a["rho"]),
        "nesterov": lambda: optim.NesterovMomentum(lr=a["lr"], rho=a["rho"]),
        "rmsprop": lambda: optim.RMSProp(lr=a["lr"], rho=a["rho"], eps=a["eps"]),
        "adam": lambda: optim.Adam(lr=a["lr"], beta_1=a["beta_1"], beta_2=a["beta_2"],
                                   eps=a["eps"]),
        "adagrad": lambda: optim.AdaGrad(lr=a["lr"], eps=a["eps"]),
    }[opt]()


@pytest.mark.parametrize("opt", list(KERNEL_OPT))
def test_reference_optimizer_matches_river(opt):
    """RefOptimizer is river's per-coordinate math (river's dict path, one key per coordinate).

    For Nesterov, river's loop is ``look_ahead(w)``, gradient, ``step(w, g)``; the reference
    keeps the vector at the look-ahead point, i.e. its step is river's step + look_ahead.
    """
    river_opt = _river_optimizer(opt)
    rng = np.random.default_rng(3)
    n = 9
    w = rng.normal(size=n)
    w_river = {i: float(v) for i, v in enumerate(w)}
    ref = R.RefOptimizer(opt, **optimizer_args(opt, "noclip"))
    for step in range(25):
        g = rng.normal(scale=0.3, size=n)
        river_opt.step(w_river, {i: float(v) for i, v in enumerate(g)})
        if opt == "nesterov":
            river_opt.look_ahead(w_river)
        ref.step(w, g.copy())
        assert ref.n_iterations == river_opt.n_iterations
        np.testing.assert_allclose(w, [w_river[i] for i in range(n)], rtol=1e-12, atol=1e-14,
                                   err_msg=f"{opt} differs from river at step {step}")


# ------------------------------------------------------------------------------------------
# Guards
@pytest.mark.parametrize("cell", CELLS)
def test_guards_match_reference(cell):
    net, ref, rng = make_pair(CELLS[cell], 2, 2, 3, R.SQUARED, "adam", "noclip", 11)
    xs, ys = make_data(R.SQUARED, 7, rng)
    for step in range(5):
        assert net.learn(xs[step], float(ys[step])) == ref.learn(xs[step], ys[step])
    snapshot = (net.params.copy(), net.h.copy(), net.c.copy(), net.t)

    def unchanged():
        assert net.t == ref.t == snapshot[3]
        for a, r, s in ((net.params, ref.params, snapshot[0]), (net.h, ref.h, snapshot[1]),
                        (net.c, ref.c, snapshot[2])):
            np.testing.assert_array_equal(a, s)
            assert_same(5, "state", a, r)

    bad_x = xs[5].copy()
    bad_x[1] = np.nan
    assert net.learn(bad_x, 0.0) == ref.learn(bad_x, 0.0) == -1
    assert net.learn(xs[5], np.inf) == ref.learn(xs[5], np.inf) == -1
    unchanged()

    # A huge head bias: the output is finite but the squared loss overflows -> rolled back
    # (this step, t = 6, is also an update step for k1 = 2).
    b_y = R.make_layout(CELLS[cell], N_IN, HIDDEN, 2, 1)[0]["b_y"][0]
    saved = net.params[b_y]
    net.params[b_y] = ref.params[b_y] = 1e200
    snapshot[0][b_y] = 1e200
    assert net.learn(xs[5], float(ys[5])) == ref.learn(xs[5], ys[5]) == -2
    unchanged()
    net.params[b_y] = ref.params[b_y] = saved

    # After the roll-back both carry on identically.
    for step in (5, 6):
        assert net.learn(xs[step], float(ys[step])) == ref.learn(xs[step], ys[step])
        assert_nets_equal(step + 1, net, ref, xs[0])
