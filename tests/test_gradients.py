"""Analytic gradients against central finite differences (float64, eps = 1e-6).

How the kernel's analytic gradient is read: a net with k1 = k2 = T and SGD with lr = 0 keeps
its parameters fixed; after the T-th ``learn`` its window covers every step from the zero
initial state, so ``net.grad`` is the gradient of the mean loss of the T steps.

The numerical side recomputes that mean loss with perturbed parameters on fresh kernel nets
(``net.last_loss`` is the per-step loss), so the kernel is checked against itself, not
against the reference. The truncated objectives of TBPTT (state entering the window held
constant, head-only gradient for steps older than the window) cannot be written with fresh
nets; for those the numerical side is the reference's ``sequence_loss`` with ``frozen``.
The reference's own gradients get the same finite-difference checks.

Kinks: relu and |.| are not differentiable at 0. The test data (fixed seeds) keep every relu
pre-activation and every absolute-loss residual at least 1e-3 away from 0, far more than a
1e-6 perturbation can move them: ``make_problem`` redraws the data until ``away_from_kinks``
holds, so this is checked rather than assumed.
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


EPS = 1e-6
TOL = 1e-6
N_IN, HIDDEN = 2, 3
T = 6

CELLS = {"elman_tanh": R.ELMAN_TANH, "elman_relu": R.ELMAN_RELU, "lstm": R.LSTM, "gru": R.GRU}
LOSSES = {"squared": R.SQUARED, "absolute": R.ABSOLUTE, "huber": R.HUBER,
          "binary_ce": R.BINARY_CE, "softmax_ce": R.SOFTMAX_CE}


def n_out_for(loss):
    return 3 if loss == R.SOFTMAX_CE else 1


def make_problem(cell, layers, loss, n_steps, seed):
    """Random parameters and data; redrawn (a few times at most) until away from kinks."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        params, xs, ys = _draw(rng, cell, layers, loss, n_steps)
        if away_from_kinks(cell, layers, loss, params, xs, ys):
            return params, xs, ys
    raise AssertionError("could not draw data away from the relu / |.| kinks")


def _draw(rng, cell, layers, loss, n_steps):
    size = R.make_layout(cell, N_IN, HIDDEN, layers, n_out_for(loss))[1]
    params = rng.uniform(-0.5, 0.5, size)
    xs = rng.normal(size=(n_steps, N_IN))
    if loss == R.SOFTMAX_CE:
        ys = rng.integers(0, 3, n_steps).astype(float)
    elif loss == R.BINARY_CE:
        ys = rng.integers(0, 2, n_steps).astype(float)
    else:
        # the Huber threshold is 0.1: this spread puts residuals on both sides of it
        ys = rng.normal(scale=0.3, size=n_steps)
    return params, xs, ys


def rel_error(a, n):
    return np.linalg.norm(a - n) / max(np.linalg.norm(a), np.linalg.norm(n), 1e-300)


def central_differences(f, params, eps=EPS):
    num = np.empty_like(params)
    for i in range(params.size):
        p = params.copy()
        p[i] += eps
        up = f(p)
        p[i] -= 2 * eps
        down = f(p)
        num[i] = (up - down) / (2 * eps)
    return num


def away_from_kinks(cell, layers, loss, params, xs, ys, margin=1e-3):
    """Every relu pre-activation and absolute-loss residual stays >= margin from 0."""
    if cell != R.ELMAN_RELU and loss != R.ABSOLUTE:
        return True
    n_out = n_out_for(loss)
    layout = R.make_layout(cell, N_IN, HIDDEN, layers, n_out)[0]
    P = R.unpack(params, layout, layers)
    h = np.zeros((layers, HIDDEN))
    c = np.zeros((layers, HIDDEN))
    for x, y in zip(xs, ys):
        out, h, c, caches = R.forward_step(cell, P, x, h, c)
        if cell == R.ELMAN_RELU and min(np.min(np.abs(k["a"])) for k in caches) <= margin:
            return False
        if loss == R.ABSOLUTE and abs(out[0] - y) <= margin:
            return False
    return True


# ---------------------------------------------------------------------------- kernel helpers
def kernel_net(cell, layers, loss, k1, k2, params):
    net = K.Network(cell, N_IN, HIDDEN, layers, n_out_for(loss), k1, k2, loss, huber_eps=0.1)
    net.params[:] = params
    # lr = 0: the parameters never move, so every update sees the same parameters.
    net.set_optimizer(KO.Optimizer(KO.SGD, 0.0, beta_1=0.9, beta_2=0.999, eps=1e-8, rho=0.9,
                                   clip_value=0.0, clip_norm=0.0))
    return net


def kernel_losses(cell, layers, loss, k1, k2, params, xs, ys):
    """Per-step losses of a fresh kernel net run over the sequence, and the net."""
    net = kernel_net(cell, layers, loss, k1, k2, params)
    losses = []
    for x, y in zip(xs, ys):
        assert net.learn(x, float(y)) >= 0
        losses.append(net.last_loss)
    return np.array(losses), net


# ---------------------------------------------------------------------------- kernel tests
FULL_CASES = list(itertools.product(CELLS, LOSSES, (1, 2)))


@pytest.mark.parametrize("cell,loss,layers", FULL_CASES)
def test_kernel_gradient_full_window(cell, loss, layers):
    """k1 = k2 = T: net.grad after the T-th learn is d/dθ mean(L_1..L_T)."""
    cell, loss = CELLS[cell], LOSSES[loss]
    seed = 100 * cell + 10 * loss + layers
    params, xs, ys = make_problem(cell, layers, loss, T, seed)

    net = kernel_net(cell, layers, loss, T, T, params)
    for step in range(T):
        status = net.learn(xs[step], float(ys[step]))
        assert status == (1 if step == T - 1 else 0)
    np.testing.assert_array_equal(net.params, params)
    analytic = net.grad.copy()

    def mean_loss(p):
        return kernel_losses(cell, layers, loss, T, T, p, xs, ys)[0].mean()

    numeric = central_differences(mean_loss, params)
    assert np.linalg.norm(analytic) > 1e-3
    assert rel_error(analytic, numeric) < TOL


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", (1, 2))
@pytest.mark.parametrize("loss", ("squared", "softmax_ce"))
def test_kernel_gradient_k1_lt_k2(cell, layers, loss):
    """k1 = 2 < k2 = 5: at the 4th learn the window (4 steps) reaches back to the zero state,
    so net.grad is exactly d/dθ mean(L_3, L_4)."""
    cell, loss = CELLS[cell], LOSSES[loss]
    k1, k2, n = 2, 5, 4
    params, xs, ys = make_problem(cell, layers, loss, n, 7 + cell + 10 * layers)

    net = kernel_net(cell, layers, loss, k1, k2, params)
    statuses = [net.learn(x, float(y)) for x, y in zip(xs, ys)]
    assert statuses == [0, 1, 0, 1]
    analytic = net.grad.copy()

    def mean_last_two(p):
        return kernel_losses(cell, layers, loss, k1, k2, p, xs, ys)[0][2:].mean()

    numeric = central_differences(mean_last_two, params)
    assert rel_error(analytic, numeric) < TOL


# (T, k1, k2): the window starts after step 1 (state entering it is a constant);
# k1 > k2: injected steps older than the window give their head gradient only.
TRUNCATED = [(6, 3, 5), (4, 4, 2), (6, 3, 1), (6, 6, 4)]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T_,k1,k2", TRUNCATED)
def test_kernel_gradient_truncated(cell, T_, k1, k2):
    """Truncated objectives, numerical side from reference.sequence_loss(frozen=...)."""
    cell, loss, layers = CELLS[cell], R.HUBER, 2
    params, xs, ys = make_problem(cell, layers, loss, T_, 31 + cell + T_ + k1 + k2)

    losses, net = kernel_losses(cell, layers, loss, k1, k2, params, xs, ys)
    assert net.t == T_ and T_ % k1 == 0
    analytic = net.grad.copy()

    def truncated(p):
        return R.sequence_loss(p, cell, N_IN, HIDDEN, layers, 1, loss, xs, ys,
                               n_loss=k1, window=min(k2, T_), frozen=params)

    # the kernel's own losses are the objective's
    assert abs(losses[-k1:].mean() - truncated(params)) <= 1e-12 * abs(truncated(params))
    numeric = central_differences(truncated, params)
    assert rel_error(analytic, numeric) < TOL


# ---------------------------------------------------------------------------- reference tests
def reference_grad(cell, layers, loss, k1, k2, params, xs, ys):
    net = R.RefNet(cell, N_IN, HIDDEN, layers, n_out_for(loss), k1, k2, loss, huber_eps=0.1)
    net.params[:] = params
    net.set_optimizer(R.RefOptimizer("sgd", 0.0))
    statuses = [net.learn(x, y) for x, y in zip(xs, ys)]
    assert statuses[-1] == 1
    np.testing.assert_array_equal(net.params, params)
    return net.grad.copy()


@pytest.mark.parametrize("cell,loss,layers", FULL_CASES)
def test_reference_gradient_full_window(cell, loss, layers):
    cell, loss = CELLS[cell], LOSSES[loss]
    params, xs, ys = make_problem(cell, layers, loss, T, 100 * cell + 10 * loss + layers)
    analytic = reference_grad(cell, layers, loss, T, T, params, xs, ys)
    numeric = central_differences(
        lambda p: R.sequence_loss(p, cell, N_IN, HIDDEN, layers, n_out_for(loss), loss, xs, ys),
        params)
    assert rel_error(analytic, numeric) < TOL


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T_,k1,k2", [(4, 2, 5)] + TRUNCATED)
def test_reference_gradient_truncated(cell, T_, k1, k2):
    cell, loss, layers = CELLS[cell], R.SQUARED, 2
    params, xs, ys = make_problem(cell, layers, loss, T_, 57 + cell + T_ + k1 + k2)
    analytic = reference_grad(cell, layers, loss, k1, k2, params, xs, ys)
    numeric = central_differences(
        lambda p: R.sequence_loss(p, cell, N_IN, HIDDEN, layers, 1, loss, xs, ys,
                                  n_loss=k1, window=min(k2, T_), frozen=params),
        params)
    assert rel_error(analytic, numeric) < TOL
