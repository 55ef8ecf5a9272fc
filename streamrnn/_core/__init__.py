"""Numerics only: compiled kernels and their initialisation. Imports neither river nor the
rest of streamrnn."""
import os

import numpy as np


def _missing_kernels(err):
    """The ImportError for a streamrnn/_core folder without its compiled modules."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    if os.path.exists(os.path.join(root, "setup.py")):
        return ImportError(
            f"streamrnn was imported from its source folder {root}, and its compiled kernels "
            f"were never built there (no module {err.name}): Python looks in the current "
            f"folder first, so this folder hides an installed streamrnn. Either build the "
            f"kernels in place, `python setup.py build_ext --inplace` in {root} (`pip install "
            f".` there does it too), or run Python from another folder to use the installed "
            f"package.", name=err.name)
    return ImportError(
        f"streamrnn's compiled kernels are missing from {here} (no module {err.name}, "
        f"e.g. built for another Python version): reinstall streamrnn "
        f"(`pip install --force-reinstall streamrnn`).", name=err.name)


try:
    from streamrnn._core._network import (ABSOLUTE, BINARY_CE, ELMAN_RELU, ELMAN_TANH, GRU,
                                          HUBER, LSTM, SOFTMAX_CE, SQUARED, Network)
    from streamrnn._core._optim import (ADAGRAD, ADAM, MOMENTUM, NESTEROV, RMSPROP, SGD,
                                        Optimizer)
except ModuleNotFoundError as _err:
    if not (_err.name or "").startswith("streamrnn._core._"):
        raise
    raise _missing_kernels(_err) from None

__all__ = ["Network", "Optimizer", "initialize", "ELMAN_TANH", "ELMAN_RELU", "LSTM", "GRU",
           "SQUARED", "ABSOLUTE", "HUBER", "BINARY_CE", "SOFTMAX_CE", "SGD", "MOMENTUM",
           "NESTEROV", "RMSPROP", "ADAM", "ADAGRAD"]


def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def initialize(net, rng):
    """Seeded initialisation in place: Glorot-uniform input and head weights, orthogonal
    recurrent weights (one orthogonal block per gate), zero biases, LSTM forget bias 1."""
    H, G = net.hidden_size, net.G
    for l in range(net.num_layers):
        W_x = net.view(f"W_x{l}")
        limit = np.sqrt(6.0 / (W_x.shape[0] + H))
        W_x[:] = rng.uniform(-limit, limit, W_x.shape)
        W_h = net.view(f"W_h{l}")
        for k in range(G):
            W_h[:, k * H:(k + 1) * H] = _orthogonal(rng, H)
        b = net.view(f"b{l}")
        b[:] = 0.0
        if net.cell == LSTM:
            b[H:2 * H] = 1.0
        if net.cell == GRU:
            net.view(f"b_hn{l}")[:] = 0.0
    W_y = net.view("W_y")
    limit = np.sqrt(6.0 / (H + net.n_out))
    W_y[:] = rng.uniform(-limit, limit, W_y.shape)
    net.view("b_y")[:] = 0.0
