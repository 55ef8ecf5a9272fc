"""The recurrent estimator: what every streamrnn model shares.

Decisions live here, arithmetic in ``streamrnn._core``. This module owns
- validation of user input (numbers only, finite, clear messages) and of the constructor
  parameters against ``streamrnn._registry.LIMITS``,
- the feature -> column map (sorted names, grown deterministically, at most ``max_features``),
- the mapping of river optimizers and losses onto the compiled kernels (through the registry),
- "peek versus commit": predictions read the committed state; only ``learn_one`` advances it,
  compute-then-commit: every new statistic is computed aside, the network step runs (the
  kernel rolls itself back when it refuses), and only then is anything committed (a scheduled
  learning rate is set after an update, for the next); growth builds the grown network aside
  and swaps it in on success,
- the one state API: ``_export_state`` / ``_import_state`` (a plain tree, validated on the
  way in), which pickle and ``copy.deepcopy`` go through.

Feature dicts stop here: ``streamrnn._core._scaling`` takes column indices and numbers.
"""
from __future__ import annotations

import copy
import datetime as _dt
import inspect
import math
import numbers
import warnings
from itertools import repeat

import numpy as np
from river import optim

from streamrnn import _core, _registry
from streamrnn._core import _scaling
from streamrnn._core._scaling import SCALED_LIMIT, VALUE_LIMIT, Columns, Scaler

__all__ = ["RecurrentEstimator", "Scaler", "Columns", "numeric_features", "check_target",
           "SCALED_LIMIT", "VALUE_LIMIT"]


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) or isinstance(v, (bool, np.bool_))


def _to_float(v, what):
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"{what} is too large for a float64") from None


_FLOAT = {float}


def numeric_features(x, *, ignore_dates: bool, what: str = "x") -> dict:
    """Validate a feature dict and return ``{name: float}``.

    Raises TypeError for a non-dict or a non-numeric value, ValueError for NaN or infinity.
    Dates and times are dropped when ``ignore_dates`` (river sends them to forecasters).
    """
    if x is None:
        return {}
    if type(x) is dict and set(map(type, x.values())) <= _FLOAT:  # only floats: one C pass
        s = sum(x.values())
        if s - s == 0.0:  # all finite (an overflowing sum takes the exact path below)
            return x      # read, never changed or kept
    if not isinstance(x, dict):
        raise TypeError(f"{what} must be a dict of feature name -> number, got {type(x).__name__}")
    out = {}
    for k, v in x.items():
        t = type(v)
        if t is float or (t is int and -2**1023 < v < 2**1023):  # the common case, fast
            f = float(v)
            if f - f == 0.0:  # finite
                out[k] = f
                continue
        if isinstance(v, (_dt.date, _dt.time, _dt.timedelta, np.datetime64)):
            if ignore_dates:
                continue
            raise TypeError(f"feature {k!r} is a {type(v).__name__}; this estimator takes numbers only")
        if v is None:
            raise TypeError(f"feature {k!r} is None; pass a number or leave the feature out")
        if not _is_number(v):
            raise TypeError(f"feature {k!r} is a {type(v).__name__} ({v!r}); only numbers are accepted")
        f = _to_float(v, f"feature {k!r}")
        if not math.isfinite(f):
            raise ValueError(f"feature {k!r} is {f}; only finite numbers are accepted")
        out[k] = f
    return out


def check_target(y, what: str = "y") -> float:
    t = type(y)
    if t is float or (t is int and -2**1023 < y < 2**1023):  # the common case, fast
        f = float(y)
        if f - f == 0.0:
            return f
    if y is None:
        raise TypeError(f"{what} is None; a number is required")
    if not _is_number(y):
        raise TypeError(f"{what} must be a number, got {type(y).__name__} ({y!r})")
    f = _to_float(y, what)
    if not math.isfinite(f):
        raise ValueError(f"{what} is {f}; only finite numbers are accepted")
    return f


# The parameters every estimator shares, for the docstrings of the task modules.
PARAMETERS_DOC = """hidden_size
    Units per recurrent layer.
num_layers
    Number of stacked recurrent layers.
tbptt_steps
    How many steps back the gradient flows (k2).
update_every
    An update every this many observations (k1); the loss is the mean over them.
optimizer
    A river optimizer: `optim.SGD`, `Momentum`, `NesterovMomentum`, `RMSProp`, `Adam` or
    `AdaGrad`, with a constant learning rate or a river scheduler. Defaults to
    `optim.Adam({lr})`.
loss
    {loss}
clip_gradient
    Clip every gradient coordinate to this absolute value (None: off).
clip_norm
    Rescale the gradient to this global L2 norm when it is larger (None: off).
max_features
    At most this many feature columns. Features first seen once the model has them all are
    ignored (not learned, not an error) and counted in `n_ignored_features`; the first one
    raises a `UserWarning`.
"""


# Exponential forgetting of the target scalers (a forecaster's level and residual, a
# regressor's target): once this many values were seen, each new value has weight
# 1/SCALE_WINDOW, a half-life of about 138 values (ln 2 / -ln(1 - 1/200)), so the scale follows
# a level shift instead of remembering the stream's whole past. 0 switches forgetting off.
SCALE_WINDOW = 200.0
# The same for the feature columns (the input scale): off, since forgetting there made
# TrumpApproval worse (benchmarks/bench_accuracy.py; see the notes of this change).
INPUT_SCALE_WINDOW = 0.0


def _scale_error(what, v, status):
    if status == _scaling.TOO_LARGE:
        return ValueError(f"{what} = {v!r} is beyond +-{VALUE_LIMIT:g}, too large to standardise "
                          "online; it was not learned (rescale the data)")
    return ValueError(f"{what} = {v!r} is too large to standardise online; it was not learned "
                      "(rescale the data or switch scaling off)")


def _int_param(name, v, lo, hi):
    if not (isinstance(v, numbers.Integral) and not isinstance(v, bool) and lo <= v <= hi):
        raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {v!r}")


# ---------------------------------------------------------------------- state tree values
def _encode_key(k):
    """A feature name or label as a tree value (tuples as {"__tuple__": [...]})."""
    if isinstance(k, tuple):
        return {"__tuple__": [_encode_key(e) for e in k]}
    if k is None or isinstance(k, (bool, int, float, str)):
        return k
    raise TypeError(f"cannot store the name or label {k!r} ({type(k).__name__}) in a state")


def _decode_key(t):
    if type(t) is dict:
        if set(t) != {"__tuple__"} or type(t["__tuple__"]) is not list:
            raise ValueError(f"bad name or label in the state: {t!r}")
        return tuple(_decode_key(e) for e in t["__tuple__"])
    if t is None or type(t) in (bool, int, float, str):
        if type(t) is float and not math.isfinite(t):
            raise ValueError(f"a name or label in the state is {t}")
        return t
    raise TypeError(f"bad name or label in the state: {type(t).__name__}")


_RNG_KEYS = {"bit_generator", "state", "has_uint32", "uinteger"}


def _decode_rng(st):
    """A PCG64 generator from its ``bit_generator.state``, after checking every field."""
    if type(st) is not dict or set(st) != _RNG_KEYS or st["bit_generator"] != "PCG64":
        raise ValueError("the random generator state must be a PCG64 state dict")
    inner = st["state"]
    if type(inner) is not dict or set(inner) != {"state", "inc"}:
        raise ValueError("the PCG64 state must hold 'state' and 'inc'")
    for k in ("state", "inc"):
        v = inner[k]
        if type(v) is not int or not 0 <= v < 1 << 128:
            raise ValueError(f"the PCG64 {k} must be an int in [0, 2**128)")
    if inner["inc"] % 2 != 1:
        raise ValueError("the PCG64 increment must be odd")
    if st["has_uint32"] not in (0, 1) or type(st["has_uint32"]) is not int:
        raise ValueError("has_uint32 must be 0 or 1")
    if type(st["uinteger"]) is not int or not 0 <= st["uinteger"] < 1 << 32:
        raise ValueError("uinteger must be an int in [0, 2**32)")
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = st
    return rng


def _check_keys(tree, keys, what):
    if type(tree) is not dict:
        raise TypeError(f"{what} must be a dict, got {type(tree).__name__}")
    if set(tree) != set(keys):
        raise ValueError(f"{what} has keys {sorted(map(str, tree))}, expected {sorted(keys)}")


def _is_old_tree(tree):
    """A state tree of streamrnn 0.1.0: its network and columns were tagged nodes."""
    net, cols = tree.get("_net"), tree.get("_cols")
    return (type(net) is dict and "__network__" in net) or (
        type(cols) is dict and "__columns__" in cols)


def _old_scaler(node, enabled, winsorize, window):
    """A 0.1.0 ``{"__standardizer__": [enabled, winsorize, n, mean, m2]}`` as a scaler state;
    with forgetting, m2 is rescaled so that the standard deviation is the one it had."""
    if type(node) is not dict or type(node.get("__standardizer__")) is not list \
            or len(node["__standardizer__"]) != 5:
        return node
    was_enabled, was_winsorize, n, mean, m2 = node["__standardizer__"]
    if bool(was_enabled) != enabled or was_winsorize != winsorize:
        raise ValueError("the state's scaling does not fit this model")
    if window and type(n) is int and n > window and type(m2) is float:
        m2 = m2 * window / n
    return {"n": n, "mean": mean, "m2": m2}


def _canonical(node):
    """The tree with every array a fresh copy on numpy's own dtype object: a loaded state keeps
    the dtype objects pickle made, and pickle writes a tree of arrays on one dtype object and a
    tree of arrays on two differently, so without this a resumed model's state would pickle to
    other bytes than the original's (the same numbers)."""
    t = type(node)
    if t is dict:
        return {k: _canonical(v) for k, v in node.items()}
    if t is list:
        return [_canonical(v) for v in node]
    if t is tuple:
        return tuple(_canonical(v) for v in node)
    if t is np.ndarray:
        return node.astype(node.dtype.type)
    return node


class _Growth:
    """A grown network, columns and generator, built aside; swapped in only on success."""

    __slots__ = ("net", "cols", "names", "rng", "u", "out")

    def __init__(self, net, cols, names, rng):
        self.net, self.cols, self.names, self.rng = net, cols, names, rng
        self.u = np.zeros(net.n_in)
        self.out = np.zeros(net.n_out)


class RecurrentEstimator:
    """Shared machinery of every streamrnn estimator (mixed into river's base classes).

    Subclasses set ``_cell`` ("rnn", "lstm", "gru") and ``_task``.
    """

    _cell = "lstm"
    _task = "regression"
    _n_lead = 0  # input columns before the features
    _default_lr = 0.002  # Adam's learning rate when no optimizer is given (see benchmarks/)
    activation = "tanh"

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, tbptt_steps: int = 16,
                 update_every: int = 1, optimizer: optim.base.Optimizer | None = None,
                 loss: optim.losses.Loss | None = None, clip_gradient: float | None = None,
                 clip_norm: float | None = 1.0, scale_inputs: bool = True,
                 max_features: int = 1000, seed: int | None = None):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.tbptt_steps = tbptt_steps
        self.update_every = update_every
        self.optimizer = optimizer
        self.loss = loss
        self.clip_gradient = clip_gradient
        self.clip_norm = clip_norm
        self.scale_inputs = scale_inputs
        self.max_features = max_features
        self.seed = seed
        self._setup()

    def _setup(self):
        """Validate the constructor parameters and create the (untrained) learned state."""
        lim = _registry.LIMITS
        _int_param("hidden_size", self.hidden_size, 1, lim["hidden_size"])
        _int_param("num_layers", self.num_layers, 1, lim["num_layers"])
        _int_param("tbptt_steps", self.tbptt_steps, 1, lim["tbptt_steps"])
        _int_param("update_every", self.update_every, 1, lim["update_every"])
        _int_param("max_features", self.max_features, 0, lim["max_features"])
        for name in ("clip_gradient", "clip_norm"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, numbers.Real) and not isinstance(v, bool)
                                      and 0 < v < math.inf):
                raise ValueError(f"{name} must be None or a finite number > 0, got {v!r}")
        self._cell_code = _registry.cell_code(self._cell, self.activation)
        # the largest network this model may grow to (classifiers also check at every new label)
        _registry.check_network_size(self._cell, max(1, self._n_lead + self.max_features),
                                     self.hidden_size, self.num_layers,
                                     2 if self._task == "classification" else 1,
                                     self.update_every, self.tbptt_steps)
        self._optimizer = (optim.Adam(self._default_lr) if self.optimizer is None
                           else copy.deepcopy(self.optimizer))
        entry, lr, hyper, self._sched = _registry.optimizer_entry(self._optimizer)
        self._opt_args = dict(kind=entry.code, lr=lr, **hyper,
                              clip_value=float(self.clip_gradient or 0.0),
                              clip_norm=float(self.clip_norm or 0.0))
        loss = _registry.loss_entry(self.loss, self._task)
        self._loss_code = loss.code
        self._huber_eps = float(self.loss.epsilon) if "epsilon" in loss.hyper else 0.1
        self._rng = np.random.default_rng(self.seed)
        self._net = None
        self._names = []     # column -> feature name
        self._index = {}     # feature name -> column
        self._cols = Columns(self._n_lead, bool(self.scale_inputs), 0, INPUT_SCALE_WINDOW)
        self.n_ignored_features = 0  # feature values ignored because max_features was reached
        # scratch: the network's input and output buffers (never state)
        self._u = np.zeros(max(1, self._n_lead))
        self._out = np.zeros(1)

    # ------------------------------------------------------------------ network
    def _new_optimizer(self):
        return _core.Optimizer(**self._opt_args)

    def _network_config(self, n_in, n_out):
        return dict(cell=int(self._cell_code), n_in=int(n_in), hidden_size=int(self.hidden_size),
                    num_layers=int(self.num_layers), n_out=int(n_out), k1=int(self.update_every),
                    k2=int(self.tbptt_steps), loss=int(self._loss_code),
                    huber_eps=float(self._huber_eps))

    def _plan(self, feats):
        """Columns for a learned observation's features, new names within ``max_features``.

        Returns ``(cols, values, new, ignored)``: per feature its column (new names get the
        next columns in sorted-name order; -1 for a feature ignored for lack of room), its
        value, the new names, and how many features were ignored.
        """
        names, values = list(feats), list(feats.values())
        index = self._index
        cols = list(map(index.get, names, repeat(-1, len(names))))
        if -1 not in cols:
            return cols, values, (), 0
        new = sorted((k for k, j in zip(names, cols) if j < 0), key=str)
        keep = new[:max(0, self.max_features - len(index))]
        pos = {k: len(index) + i for i, k in enumerate(keep)}
        cols = [j if j >= 0 else pos.get(k, -1) for k, j in zip(names, cols)]
        return cols, values, keep, len(new) - len(keep)

    def _known(self, feats):
        """Columns (-1: none, ignored when predicting) and values of the features."""
        return (list(map(self._index.get, feats, repeat(-1, len(feats)))),
                list(feats.values()))

    def _grown(self, new, n_out):
        """The network, columns and generator for ``new`` features and ``n_out`` outputs, built
        aside (None when the committed ones fit). Nothing of the model is changed."""
        net = self._net
        if net is not None and not new and n_out <= net.n_out:
            return None
        n_in = max(1, self._n_lead + len(self._names) + len(new))
        if net is not None:
            n_in, n_out = max(n_in, net.n_in), max(n_out, net.n_out)
        _registry.check_network_size(self._cell, n_in, self.hidden_size, self.num_layers, n_out,
                                     self.update_every, self.tbptt_steps,
                                     n_out - 1 if self._task == "regression" else 0)
        rng = copy.deepcopy(self._rng)
        grown = _core.Network(**self._network_config(n_in, n_out))
        _core.initialize(grown, rng)
        if net is None:
            grown.set_optimizer(self._new_optimizer())
        else:
            # adopt moves the optimizer it is given: it gets a copy of the network
            grown.adopt(_core.Network.from_state(net.config(), net.get_state()))
        return _Growth(grown, self._cols.grown(len(new)) if new else self._cols,
                       self._names + list(new), rng)

    def _commit_growth(self, g):
        self._net, self._cols, self._rng, self._u, self._out = g.net, g.cols, g.rng, g.u, g.out
        if len(g.names) != len(self._names):
            self._names = g.names
            self._index = {k: j for j, k in enumerate(g.names)}
        self._network_changed()

    def _network_changed(self):
        """Hook: the network, its buffers or the columns were replaced."""

    def _count_ignored(self, ignored):
        if ignored:
            if not self.n_ignored_features:
                warnings.warn(f"{type(self).__name__} has max_features={self.max_features} "
                              "feature columns; features first seen from now on are ignored "
                              "(counted in n_ignored_features)", UserWarning, stacklevel=4)
            self.n_ignored_features += ignored

    def _next_rate(self, net, status):
        """After a step that updated the weights (status 1), set the scheduled learning rate of
        the next update (river's rate for step ``t``); nothing is set before a step, so a
        refused one leaves the rate as it was."""
        if status == 1 and self._sched is not None:
            opt = net.optimizer
            opt.lr = float(self._sched.get(opt.t))

    def _refusal(self, net, status):
        """The error of a kernel step that returned ``status`` < 0 (the kernel rolled back)."""
        if not np.all(np.isfinite(net.params)):
            return ValueError("the model's weights are no longer finite (a learning rate far too "
                              "large with clipping switched off); it cannot learn or predict any "
                              "more: build a new model")
        if status == -1:
            return ValueError("the observation is not finite after scaling; it was not learned")
        return ValueError("the update produced a non-finite loss or gradient; the observation "
                          "was not learned and the model is unchanged (lower the learning rate "
                          "or set clip_norm)")

    def _learn_features(self, feats, n_out, target):
        """Learn one observation of a regressor or classifier, all or nothing.

        Plans the columns, builds any growth aside, writes the scaled features into the input
        (the new statistics pending), runs the kernel step with ``target`` and then commits
        the statistics and the growth. On any error nothing of the model has changed.
        """
        cols, values, new, ignored = self._plan(feats)
        g = self._grown(new, n_out)
        net, columns, u = (self._net, self._cols, self._u) if g is None else (g.net, g.cols, g.u)
        bad = columns.fill(u, cols, values, True)
        if bad >= 0:
            raise self._feature_error(cols[bad], values[bad], g)
        status = net.learn(u, target)
        if status < 0:
            raise self._refusal(net, status)
        self._next_rate(net, status)
        columns.accept()
        if g is not None:
            self._commit_growth(g)
        self._count_ignored(ignored)
        return status

    def _feature_error(self, col, value, g):
        names = self._names if g is None else g.names
        return _scale_error(f"feature {names[col]!r}", value, _scaling.NOT_FINITE
                            if abs(value) <= VALUE_LIMIT else _scaling.TOO_LARGE)

    def _peek(self, feats):
        """Head output for ``feats`` from the committed state (no state change)."""
        cols, values = self._known(feats)
        self._cols.fill(self._u, cols, values, False)
        self._net.predict(self._u, self._out)
        return self._out

    # ------------------------------------------------------------------ the state API
    # A state tree holds only dicts with str keys, lists, str, int, float, bool, None and
    # float64 NumPy arrays: what ``streamrnn.checkpoint`` stores without pickle. Together with
    # the constructor parameters it rebuilds the model exactly. Scratch (the input and output
    # buffers, pending statistics) is never in it.
    def _export_state(self) -> dict:
        net = self._net
        tree = {"_net": None if net is None else {"config": net.config(),
                                                   "state": net.get_state()},
                "_rng": self._rng.bit_generator.state,
                "_cols": {"names": [_encode_key(k) for k in self._names],
                          **self._cols.get_state()},
                "n_ignored_features": int(self.n_ignored_features)}
        tree.update(self._export_task())
        return _canonical(tree)

    def _import_state(self, tree: dict):
        """Take over a state tree made by ``_export_state`` of a model configured like this one.

        Every value is decoded and checked before anything is assigned: types, counters in
        range, lengths that agree with the configuration, the network's configuration and the
        optimizer's kind and hyperparameters equal to this model's own. A state that does not
        fit raises ValueError or TypeError and leaves the model as it was. A tree of streamrnn
        0.1.0 (before this layout) is upgraded first (``_upgrade_state``), then checked alike.
        """
        if type(tree) is dict and _is_old_tree(tree):
            tree = self._upgrade_state(tree)
        _check_keys(tree, ("_net", "_rng", "_cols", "n_ignored_features") + self._task_keys,
                    "the state")
        staged = {"_rng": _decode_rng(tree["_rng"])}
        cols = tree["_cols"]
        _check_keys(cols, ("names", "n", "mean", "m2"), "the state's columns")
        if type(cols["names"]) is not list:
            raise TypeError("the state's feature names must be a list")
        names = [_decode_key(k) for k in cols["names"]]
        if len(names) > self.max_features:
            raise ValueError(f"the state has {len(names)} feature columns, more than "
                             f"max_features={self.max_features}")
        index = {}
        for j, k in enumerate(names):
            if k in index:
                raise ValueError(f"the feature {k!r} appears twice in the state")
            index[k] = j
        columns = Columns(self._n_lead, bool(self.scale_inputs), len(names), INPUT_SCALE_WINDOW)
        columns.set_state({k: cols[k] for k in ("n", "mean", "m2")})
        ign = tree["n_ignored_features"]
        _scaling._check_count(ign, "n_ignored_features")
        staged.update(_names=names, _index=index, _cols=columns, n_ignored_features=ign)
        task = self._decode_task(tree)
        n_out = task.pop("n_out")
        netree = tree["_net"]
        net = None
        if netree is not None:
            _check_keys(netree, ("config", "state"), "the state's network")
            want = self._network_config(max(1, self._n_lead + len(names)), n_out)
            if netree["config"] != want or any(type(netree["config"][k]) is not type(v)
                                               for k, v in want.items()):
                raise ValueError(f"the state's network {netree['config']} does not fit this "
                                 f"model {want}")
            state = netree["state"]
            if type(state) is not dict or "optimizer" not in state:
                raise ValueError("the state's network misses its optimizer")
            self._check_optimizer(state["optimizer"])
            net = _core.Network.from_state(netree["config"], state)
            if net.optimizer is None or net.optimizer.t != net.t // net.k1:
                raise ValueError("the state's optimizer steps do not fit the network's steps")
        elif names:
            raise ValueError("the state has feature columns but no network")
        staged["_net"] = net
        self._check_task(task, net)
        # everything is checked: assign
        for k, v in staged.items():
            setattr(self, k, v)
        self._assign_task(task)
        self._u = np.zeros(max(1, self._n_lead) if net is None else net.n_in)
        self._out = np.zeros(1 if net is None else net.n_out)
        self._network_changed()

    def _upgrade_state(self, tree):
        """Today's layout of a 0.1.0 state tree (``{"__network__": ...}``, ``{"__columns__":
        ...}`` nodes); nothing is trusted here, ``_import_state`` checks the result."""
        rng = tree.get("_rng")
        if type(rng) is dict and set(rng) == {"__rng__"}:
            rng = rng["__rng__"]
        out = {"_rng": rng, "n_ignored_features": 0}
        net = tree.get("_net")
        if type(net) is dict and "__network__" in net:
            state = dict(net.get("state") or {})
            o = net.get("optimizer")
            if type(o) is dict and o.get("kind") != _core.ADAM:
                o = dict(o, v=np.zeros(0))  # 0.1.0 kept a (1,) placeholder
            state["optimizer"] = o
            net = {"config": net["__network__"], "state": state}
        out["_net"] = net
        cols = tree.get("_cols")
        if type(cols) is dict and type(cols.get("__columns__")) is list \
                and len(cols["__columns__"]) == 6:
            _, _, names, n, mean, m2 = cols["__columns__"]
            cols = {"names": names, "n": n, "mean": mean, "m2": m2}
        out["_cols"] = cols
        out.update(self._upgrade_task(tree))
        return out

    def _upgrade_task(self, tree) -> dict:
        return {}

    def _check_optimizer(self, o):
        _check_keys(o, ("kind", "lr", "beta_1", "beta_2", "eps", "rho", "clip_value",
                        "clip_norm", "t", "m", "v"), "the state's optimizer")
        _scaling._check_count(o["t"], "the optimizer's t")
        want = self._new_optimizer()
        want = {"kind": want.kind, "lr": want.lr, "beta_1": want.beta_1, "beta_2": want.beta_2,
                "eps": want.eps, "rho": want.rho, "clip_value": want.clip_value,
                "clip_norm": want.clip_norm}
        if self._sched is not None:  # the rate follows the schedule
            want.pop("lr")
            if type(o.get("lr")) is not float or not 0.0 <= o["lr"] < math.inf:
                raise ValueError("the state's learning rate must be a finite float >= 0")
        for k, v in want.items():
            if o.get(k) != v or type(o.get(k)) is not type(v):
                raise ValueError(f"the state's optimizer has {k}={o.get(k)!r}, this model "
                                 f"{k}={v!r}")

    # task hooks: the task's part of the tree
    _task_keys = ()

    def _export_task(self) -> dict:
        return {}

    def _decode_task(self, tree) -> dict:
        """Decode and check the task's part of ``tree`` into new objects; must hold "n_out"."""
        return {"n_out": 1}

    def _check_task(self, task, net):
        """Check the decoded task state against the decoded network (None: not built yet)."""

    def _assign_task(self, task):
        for k, v in task.items():
            setattr(self, k, v)

    # pickle and copy.deepcopy go through the state API
    def _init_params(self):
        return {name: getattr(self, name)
                for name in inspect.signature(type(self).__init__).parameters if name != "self"}

    def __getstate__(self):
        return {"params": self._init_params(), "state": self._export_state()}

    def __setstate__(self, state):
        self.__init__(**state["params"])
        self._import_state(state["state"])

    # ------------------------------------------------------------------ river hooks
    @property
    def network(self):
        """The compiled network (None before the first observation)."""
        return self._net

    @property
    def n_steps(self):
        return 0 if self._net is None else self._net.t

    def _more_tags(self):
        return set()

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 8, "seed": 1}
        yield {"hidden_size": 4, "num_layers": 2, "tbptt_steps": 4, "update_every": 2,
               "optimizer": optim.RMSProp(0.01), "seed": 2}
