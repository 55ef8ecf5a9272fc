"""The one table of what streamrnn implements: cells, optimizers, losses and estimator classes.

Everything that turns a name into something runnable reads this module: the estimators (a
river optimizer or loss -> a kernel code), the model specs of the checkpoints and the command
(``"gru"``, ``"Adam"``, ``"Huber"`` -> classes and codes), and the size limits that keep a
model (or a crafted checkpoint) from asking for more memory than a machine has.

Kernel codes come from ``streamrnn._core``; this module adds names and river classes to them.
"""
from __future__ import annotations

import importlib
import numbers
from typing import NamedTuple

from river import optim

from streamrnn import _core

__all__ = ["Cell", "OptimizerEntry", "LossEntry", "CELLS", "OPTIMIZERS", "LOSSES", "ESTIMATORS",
           "LIMITS", "cell_code", "optimizer_entry", "optimizer_settings", "loss_entry",
           "estimator_class", "network_size", "check_network_size"]


class Cell(NamedTuple):
    name: str     # the estimator prefix's lower case and the command's --model
    codes: dict   # activation -> kernel cell code
    gates: int    # gate blocks per cell (G)


class OptimizerEntry(NamedTuple):
    name: str     # river's class name, as written in a spec
    code: int     # kernel rule
    river: type   # the river class it stands for
    hyper: tuple  # names of the hyperparameters other than the learning rate (river attributes)


class LossEntry(NamedTuple):
    name: str
    code: int
    river: type
    hyper: tuple  # river attribute names of its hyperparameters
    task: str     # "regression" or "classification"


CELLS = {c.name: c for c in (
    Cell("rnn", {"tanh": _core.ELMAN_TANH, "relu": _core.ELMAN_RELU}, 1),
    Cell("lstm", {"tanh": _core.LSTM}, 4),
    Cell("gru", {"tanh": _core.GRU}, 3),
)}

OPTIMIZERS = {o.name: o for o in (
    OptimizerEntry("SGD", _core.SGD, optim.SGD, ()),
    OptimizerEntry("Momentum", _core.MOMENTUM, optim.Momentum, ("rho",)),
    OptimizerEntry("NesterovMomentum", _core.NESTEROV, optim.NesterovMomentum, ("rho",)),
    OptimizerEntry("RMSProp", _core.RMSPROP, optim.RMSProp, ("rho", "eps")),
    OptimizerEntry("Adam", _core.ADAM, optim.Adam, ("beta_1", "beta_2", "eps")),
    OptimizerEntry("AdaGrad", _core.ADAGRAD, optim.AdaGrad, ("eps",)),
)}

LOSSES = {e.name: e for e in (
    LossEntry("Squared", _core.SQUARED, optim.losses.Squared, (), "regression"),
    LossEntry("Absolute", _core.ABSOLUTE, optim.losses.Absolute, (), "regression"),
    LossEntry("Huber", _core.HUBER, optim.losses.Huber, ("epsilon",), "regression"),
    LossEntry("CrossEntropy", _core.SOFTMAX_CE, optim.losses.CrossEntropy, (), "classification"),
    LossEntry("Log", _core.SOFTMAX_CE, optim.losses.Log, (), "classification"),
)}

# (task, cell) -> (module, class); resolved lazily, the estimator modules import this one
ESTIMATORS = {
    ("forecaster", "rnn"): ("streamrnn.forecasting", "RNNForecaster"),
    ("forecaster", "lstm"): ("streamrnn.forecasting", "LSTMForecaster"),
    ("forecaster", "gru"): ("streamrnn.forecasting", "GRUForecaster"),
    ("regressor", "rnn"): ("streamrnn.regression", "RNNRegressor"),
    ("regressor", "lstm"): ("streamrnn.regression", "LSTMRegressor"),
    ("regressor", "gru"): ("streamrnn.regression", "GRURegressor"),
    ("classifier", "rnn"): ("streamrnn.classification", "RNNClassifier"),
    ("classifier", "lstm"): ("streamrnn.classification", "LSTMClassifier"),
    ("classifier", "gru"): ("streamrnn.classification", "GRUClassifier"),
    # the multi-series forecaster: one class, the cell is its parameter
    ("global", "rnn"): ("streamrnn.multiseries", "GlobalForecaster"),
    ("global", "lstm"): ("streamrnn.multiseries", "GlobalForecaster"),
    ("global", "gru"): ("streamrnn.multiseries", "GlobalForecaster"),
}

# Hard limits of a model's shape, checked by every constructor (and so by every checkpoint
# load, which builds its models through the constructors): far above any streaming use, far
# below what overflows an index or asks a machine for more memory than it has.
LIMITS = {
    "hidden_size": 4096,
    "num_layers": 16,
    "tbptt_steps": 4096,
    "update_every": 4096,
    "seasonality": 100_000,
    "horizon": 1_000,           # a forecaster's direct steps (network outputs; H x H pending targets)
    "forecast_steps": 100_000,  # steps of one forecast(key, h) of the multi-series forecaster
    "learn_every": 4096,        # the multi-series forecaster: a key learns every this many values
    "max_keys": 10_000_000,     # keys of one multi-series forecaster
    "max_batch": 4096,          # rows of one step of the multi-series forecaster
    "global_features": 1_000,   # feature columns of a multi-series forecaster
    "max_features": 100_000,    # feature columns of one model (its max_features parameter)
    "classes": 10_000,          # labels of one classifier
    "parameters": 1 << 26,      # entries of the flat parameter vector (512 MiB of float64)
    "state_bytes": 1 << 31,     # bytes the kernel may allocate for one network (2 GiB)
}


def cell_code(name: str, activation: str = "tanh") -> int:
    """The kernel code of cell ``name`` with ``activation`` (ValueError if unknown)."""
    cell = CELLS.get(name)
    if cell is None:
        raise ValueError(f"unknown cell {name!r}; use one of {sorted(CELLS)}")
    code = cell.codes.get(activation)
    if code is None:
        raise ValueError(f"the {name} cell takes activation {sorted(cell.codes)}, got "
                         f"{activation!r}")
    return code


def optimizer_entry(opt) -> tuple:
    """Map a river optimizer to ``(entry, lr, hyper, scheduler)``: its registry entry, the
    learning rate now, its other hyperparameters as floats, and its scheduler (None for a
    constant rate)."""
    entry = next((e for e in OPTIMIZERS.values() if type(opt) is e.river), None)
    if entry is None:
        names = ", ".join(f"optim.{e.river.__name__}" for e in OPTIMIZERS.values())
        raise ValueError(f"optimizer {type(opt).__name__} is not supported; use one of {names}")
    hyper = {n: float(getattr(opt, n)) for n in entry.hyper}
    lr = opt.lr
    if isinstance(lr, optim.schedulers.Constant):
        return entry, float(lr.learning_rate), hyper, None
    if isinstance(lr, numbers.Real) and not isinstance(lr, bool):
        return entry, float(lr), hyper, None
    if not hasattr(lr, "get"):
        raise ValueError(f"the learning rate must be a number or a river scheduler, got {lr!r}")
    return entry, float(lr.get(0)), hyper, lr


def optimizer_settings(opt) -> dict:
    """A river optimizer with a constant rate as JSON: ``{"name", "lr", <hyperparameters>}``."""
    entry, lr, hyper, sched = optimizer_entry(opt)
    if sched is not None:
        raise ValueError("a learning-rate scheduler cannot be described by a model spec")
    return {"name": entry.name, "lr": lr, **hyper}


def loss_entry(loss, task: str) -> LossEntry:
    """The registry entry of a river loss for ``task``; None means the task's default."""
    if loss is None:
        return LOSSES["CrossEntropy" if task == "classification" else "Squared"]
    entry = next((e for e in LOSSES.values() if type(loss) is e.river), None)
    if entry is None or entry.task != task:
        names = ", ".join(f"optim.losses.{e.name}" for e in LOSSES.values() if e.task == task)
        raise ValueError(f"loss {type(loss).__name__} is not supported here; use one of {names}")
    return entry


def estimator_class(task: str, cell: str) -> type:
    """The estimator class for ``task`` ("forecaster", "regressor", "classifier") and ``cell``."""
    where = ESTIMATORS.get((task, cell))
    if where is None:
        raise ValueError(f"no {task} with cell {cell!r}; cells: {sorted(CELLS)}")
    module, name = where
    return getattr(importlib.import_module(module), name)


def network_size(cell: str, n_in: int, hidden_size: int, num_layers: int, n_out: int, k1: int,
                 k2: int, delay: int = 0) -> tuple:
    """``(parameters, bytes)`` of a kernel network of this shape: the entries of its flat
    parameter vector, and the bytes its buffers take (parameters, gradient, two optimizer
    moments, carried state, TBPTT ring and backward scratch), in exact integers. ``delay``:
    how many calls late a target may arrive (``n_out - 1`` for a regression head, whose ring
    then holds ``max(k1 + delay, k2)`` steps; 0 for a classifier)."""
    G, H, L = CELLS[cell].gates, hidden_size, num_layers
    per_layer = H * G * H + G * H + (H if cell == "gru" else 0)
    params = n_in * G * H + (L - 1) * H * G * H + L * per_layer + H * n_out + n_out
    B, rec = max(k1 + delay, k2), 5 * H + G * H
    doubles = (4 * params + 2 * L * H + B * (n_in + L * rec + n_out) + 2 * k2 * L * G * H
               + L * max(n_in, H) * k2 + L * H * k2 + 2 * L * rec + 8 * G * H + 4 * n_out)
    return params, 8 * doubles


def check_network_size(cell: str, n_in: int, hidden_size: int, num_layers: int, n_out: int,
                       k1: int, k2: int, delay: int = 0) -> None:
    """ValueError when a network of this shape exceeds ``LIMITS["parameters"]`` or
    ``LIMITS["state_bytes"]``."""
    params, nbytes = network_size(cell, n_in, hidden_size, num_layers, n_out, k1, k2, delay)
    if params > LIMITS["parameters"]:
        raise ValueError(f"a {cell} network with {n_in} inputs, hidden_size={hidden_size}, "
                         f"num_layers={num_layers} and {n_out} outputs has {params:,} parameters; "
                         f"the limit is {LIMITS['parameters']:,}")
    if nbytes > LIMITS["state_bytes"]:
        raise ValueError(f"a {cell} network with {n_in} inputs, hidden_size={hidden_size}, "
                         f"num_layers={num_layers}, {n_out} outputs and k1={k1}, k2={k2} needs "
                         f"{nbytes:,} bytes; the limit is {LIMITS['state_bytes']:,}")
