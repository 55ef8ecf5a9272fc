"""The recurrent estimator: what every streamrnn model shares.

Decisions live here, arithmetic in ``streamrnn._core``. This module owns
- validation of user input (numbers only, finite, clear messages),
- the feature -> column map (sorted names, grown deterministically),
- online standardisation of inputs and targets,
- the mapping of river optimizers and losses onto the compiled kernels,
- "peek versus commit": predictions read the committed state; only ``learn_one`` advances it,
  and it changes nothing unless the observation is accepted.
"""
from __future__ import annotations

import copy
import datetime as _dt
import math
import numbers

import numpy as np
from river import optim

from streamrnn import _core

__all__ = ["RecurrentEstimator", "Standardizer", "numeric_features", "check_target"]

CELLS = {"rnn": _core.ELMAN_TANH, "rnn-relu": _core.ELMAN_RELU, "lstm": _core.LSTM,
         "gru": _core.GRU}

# Scaled values are clipped to this range, so that a wild first few observations (when the
# running standard deviation rests on two or three values) cannot saturate the network.
SCALED_LIMIT = 10.0


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) or isinstance(v, (bool, np.bool_))


def _to_float(v, what):
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"{what} is too large for a float64") from None


def numeric_features(x, *, ignore_dates: bool, what: str = "x") -> dict:
    """Validate a feature dict and return ``{name: float}``.

    Raises TypeError for a non-dict or a non-numeric value, ValueError for NaN or infinity.
    Dates and times are dropped when ``ignore_dates`` (river sends them to forecasters).
    """
    if x is None:
        return {}
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


class Standardizer:
    """Online mean and standard deviation (Welford, population variance) of one value.

    ``transform`` maps to ``(v - mean) / std`` clipped to +-SCALED_LIMIT (0 while std is 0);
    ``inverse`` maps back. ``enabled=False`` makes both the identity. With ``winsorize=c``, a
    value further than ``c`` standard deviations from the mean (once 10 values were seen) is
    clipped to that bound before it updates the statistics, so that an outage or a spike does
    not inflate the scale for the rest of the stream.
    """

    __slots__ = ("enabled", "winsorize", "n", "mean", "m2", "std")

    def __init__(self, enabled=True, winsorize=0.0):
        self.enabled = enabled
        self.winsorize = winsorize
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.std = 0.0

    def updated(self, v):
        """The state after seeing ``v`` (the instance is left untouched)."""
        c = self.winsorize
        if c and self.n >= 10 and self.std > 0.0:
            lo, hi = self.mean - c * self.std, self.mean + c * self.std
            v = lo if v < lo else (hi if v > hi else v)
        n = self.n + 1
        d = v - self.mean
        mean = self.mean + d / n
        m2 = self.m2 + d * (v - mean)
        if not (math.isfinite(mean) and math.isfinite(m2) and m2 >= 0.0):
            raise ValueError(f"the value {v!r} is too large to standardise online; it was not "
                             "learned (rescale the data or set scale_target=False)")
        return n, mean, m2

    def commit(self, state):
        self.n, self.mean, self.m2 = state
        self.std = math.sqrt(self.m2 / self.n) if self.n > 1 else 0.0

    def transform(self, v):
        if not self.enabled:
            return v
        s = self.std
        if s <= 0.0:
            return 0.0
        z = (v - self.mean) / s
        return SCALED_LIMIT if z > SCALED_LIMIT else (-SCALED_LIMIT if z < -SCALED_LIMIT else z)

    def inverse(self, z):
        if not self.enabled:
            return z
        s = self.std
        return self.mean + z * s if s > 0.0 else self.mean

    def __getstate__(self):
        return (self.enabled, self.winsorize, self.n, self.mean, self.m2)

    def __setstate__(self, state):
        self.enabled, self.winsorize = state[0], state[1]
        self.commit(state[2:])


class _Columns:
    """Feature name -> input column, with online standardisation per column.

    Columns are given in sorted-name order; features first seen later are appended, sorted
    among themselves, so the map never depends on dict order. Missing features are filled with
    their running mean (0 after scaling). The statistics are Python lists: per observation only
    a few scalars change, which lists do faster than small arrays.
    """

    def __init__(self, offset, scale):
        self.offset = offset  # columns before the features (e.g. lagged targets)
        self.scale = scale
        self.index = {}       # name -> column
        self.n = []           # values seen per column
        self.mean = []        # running mean per column
        self.m2 = []          # running sum of squared deviations per column

    def __len__(self):
        return len(self.index)

    def new_names(self, feats):
        return sorted((k for k in feats if k not in self.index), key=str)

    def add(self, names):
        for k in names:
            self.index[k] = len(self.index)
            self.n.append(0.0)
            self.mean.append(0.0)
            self.m2.append(0.0)

    def fill(self, feats, u, update):
        """Write the features, scaled with the statistics seen so far, into ``u`` (in place).

        The statistics before the observation are used both when predicting and when learning,
        so the forward pass of ``learn_one`` is exactly the prediction a ``predict_one`` made
        just before it. With ``update``, also return the updated statistics of the features
        present, as ``[(column, n, mean, m2), ...]`` (not committed: the caller commits them
        once the observation is accepted).
        """
        index = self.index
        if not index:
            return None
        off = self.offset
        n, mean, m2 = self.n, self.mean, self.m2
        # a missing feature is its running mean: 0 once scaled, the mean itself otherwise
        u[off:off + len(index)] = 0.0 if self.scale else mean
        changes = [] if update else None
        for k, v in feats.items():
            j = index.get(k)
            if j is None:
                continue  # unseen at prediction time: ignored
            nj, mj = n[j], mean[j]
            if self.scale:
                sd = math.sqrt(m2[j] / nj) if nj > 1 else 0.0
                z = (v - mj) / sd if sd > 0 else 0.0
                u[off + j] = SCALED_LIMIT if z > SCALED_LIMIT else (
                    -SCALED_LIMIT if z < -SCALED_LIMIT else z)
            else:
                u[off + j] = v
            if update:
                nj += 1.0
                d = v - mj
                mj += d / nj
                sj = m2[j] + d * (v - mj)
                if not (math.isfinite(mj) and math.isfinite(sj) and sj >= 0.0):
                    raise ValueError(f"feature {k!r} = {v!r} is too large to standardise online; "
                                     "the observation was not learned")
                changes.append((j, nj, mj, sj))
        return changes

    def commit(self, changes):
        if changes:
            n, mean, m2 = self.n, self.mean, self.m2
            for j, nj, mj, sj in changes:
                n[j], mean[j], m2[j] = nj, mj, sj


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
"""


def _optimizer_spec(opt):
    """Map a river optimizer to (kernel code, kwargs, scheduler or None)."""
    table = {
        optim.SGD: (_core.SGD, ()),
        optim.Momentum: (_core.MOMENTUM, ("rho",)),
        optim.NesterovMomentum: (_core.NESTEROV, ("rho",)),
        optim.RMSProp: (_core.RMSPROP, ("rho", "eps")),
        optim.Adam: (_core.ADAM, ("beta_1", "beta_2", "eps")),
        optim.AdaGrad: (_core.ADAGRAD, ("eps",)),
    }
    entry = table.get(type(opt))
    if entry is None:
        names = ", ".join(f"optim.{c.__name__}" for c in table)
        raise ValueError(f"optimizer {type(opt).__name__} is not supported; use one of {names}")
    code, names = entry
    kwargs = {n: float(getattr(opt, n)) for n in names}
    lr = opt.lr
    if isinstance(lr, optim.schedulers.Constant):
        return code, float(lr.learning_rate), kwargs, None
    if isinstance(lr, numbers.Real):
        return code, float(lr), kwargs, None
    if not hasattr(lr, "get"):
        raise ValueError(f"the learning rate must be a number or a river scheduler, got {lr!r}")
    return code, float(lr.get(0)), kwargs, lr


def _loss_spec(loss, task):
    from river.optim import losses
    if task == "classification":
        if loss is None or isinstance(loss, (losses.CrossEntropy, losses.Log)):
            return _core.SOFTMAX_CE, 0.1
        raise ValueError("classifiers use a softmax head trained with cross-entropy: pass "
                         "loss=None, optim.losses.CrossEntropy() or optim.losses.Log()")
    if loss is None or isinstance(loss, losses.Squared):
        return _core.SQUARED, 0.1
    if isinstance(loss, losses.Absolute):
        return _core.ABSOLUTE, 0.1
    if isinstance(loss, losses.Huber):
        return _core.HUBER, float(loss.epsilon)
    raise ValueError(f"loss {type(loss).__name__} is not supported; use optim.losses.Squared, "
                     "Absolute or Huber")


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
                 seed: int | None = None):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.tbptt_steps = tbptt_steps
        self.update_every = update_every
        self.optimizer = optimizer
        self.loss = loss
        self.clip_gradient = clip_gradient
        self.clip_norm = clip_norm
        self.scale_inputs = scale_inputs
        self.seed = seed
        self._setup()

    def _setup(self):
        """Validate the constructor parameters and create the (untrained) learned state."""
        if not (isinstance(self.hidden_size, numbers.Integral) and self.hidden_size >= 1):
            raise ValueError(f"hidden_size must be an int >= 1, got {self.hidden_size!r}")
        if not (isinstance(self.num_layers, numbers.Integral) and self.num_layers >= 1):
            raise ValueError(f"num_layers must be an int >= 1, got {self.num_layers!r}")
        if not (isinstance(self.tbptt_steps, numbers.Integral) and self.tbptt_steps >= 1):
            raise ValueError(f"tbptt_steps must be an int >= 1, got {self.tbptt_steps!r}")
        if not (isinstance(self.update_every, numbers.Integral) and self.update_every >= 1):
            raise ValueError(f"update_every must be an int >= 1, got {self.update_every!r}")
        for name in ("clip_gradient", "clip_norm"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, numbers.Real) and v > 0):
                raise ValueError(f"{name} must be None or a number > 0, got {v!r}")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {self.activation!r}")
        self._optimizer = (optim.Adam(self._default_lr) if self.optimizer is None
                           else copy.deepcopy(self.optimizer))
        self._opt_spec = _optimizer_spec(self._optimizer)
        self._loss_code, self._huber_eps = _loss_spec(self.loss, self._task)
        self._rng = np.random.default_rng(self.seed)
        self._net = None
        self._cols = _Columns(self._n_lead, self.scale_inputs)
        self._u = np.zeros(max(1, self._n_lead))
        self._out = np.zeros(1)

    # ------------------------------------------------------------------ network
    def _cell_code(self):
        if self._cell == "rnn":
            return CELLS["rnn-relu"] if self.activation == "relu" else CELLS["rnn"]
        return CELLS[self._cell]

    def _new_network(self, n_in, n_out):
        net = _core.Network(self._cell_code(), n_in, self.hidden_size, self.num_layers, n_out,
                            self.update_every, self.tbptt_steps, self._loss_code, self._huber_eps)
        _core.initialize(net, self._rng)
        return net

    def _new_optimizer(self):
        code, lr, kwargs, _ = self._opt_spec
        return _core.Optimizer(code, lr, clip_value=self.clip_gradient or 0.0,
                               clip_norm=self.clip_norm or 0.0, **kwargs)

    def _resize(self, n_in, n_out):
        """Create or grow the network to ``n_in`` inputs and ``n_out`` outputs."""
        n_in = max(1, n_in)
        old = self._net
        if old is None:
            net = self._new_network(n_in, n_out)
            net.set_optimizer(self._new_optimizer())
        elif n_in > old.n_in or n_out > old.n_out:
            net = self._new_network(max(n_in, old.n_in), max(n_out, old.n_out))
            net.adopt(old)
        else:
            return
        self._net = net
        if self._u.shape[0] != net.n_in:
            u = np.zeros(net.n_in)
            u[:min(net.n_in, self._u.shape[0])] = self._u[:net.n_in]
            self._u = u
        self._out = np.zeros(net.n_out)

    def _snapshot(self):
        """What a rejected observation must be able to restore; taken only before growth."""
        return (self._net, copy.deepcopy(self._net.optimizer) if self._net is not None else None,
                self._u, self._out, copy.deepcopy(self._cols), copy.deepcopy(self._rng))

    def _restore(self, snap):
        net, opt, self._u, self._out, self._cols, self._rng = snap
        if net is not None:
            net.set_optimizer(opt)
        self._net = net

    def _prepare_features(self, feats, n_out):
        """Grow columns/outputs for a learned observation; returns a snapshot if anything grew."""
        if not feats and self._net is not None and n_out <= self._net.n_out:
            return None
        new = self._cols.new_names(feats)
        if not new and self._net is not None and n_out <= self._net.n_out:
            return None
        snap = self._snapshot()
        try:
            self._cols.add(new)
            self._resize(self._n_lead + len(self._cols), n_out)
        except BaseException:
            self._restore(snap)
            raise
        return snap

    def _learn_all_or_nothing(self, feats, n_out, step, undo=None):
        """Learn one observation completely or not at all.

        Grows the network for new features and ``n_out`` outputs, writes the scaled features
        into the input, then runs ``step()``, the task's own part (targets, scalers, the kernel
        step), whose result is returned. The feature statistics are committed only when it
        succeeds; on any error ``undo()`` restores the task's own state, growth is rolled back,
        and the error propagates.
        """
        snap = self._prepare_features(feats, n_out)
        try:
            stats = self._cols.fill(feats, self._u, update=True)
            result = step()
        except BaseException:
            if undo is not None:
                undo()
            if snap is not None:
                self._restore(snap)
            raise
        self._cols.commit(stats)
        return result

    def _learn_step(self, target):
        """Commit the prepared input ``self._u`` with ``target``; raises on rejection."""
        net = self._net
        sched = self._opt_spec[3]
        lr = net.optimizer.lr
        if sched is not None:
            net.optimizer.lr = float(sched.get(net.optimizer.t))
        status = net.learn(self._u, target)
        if status < 0:
            net.optimizer.lr = lr
            if not np.all(np.isfinite(net.params)):
                raise ValueError("the model's weights are no longer finite (a learning rate far "
                                 "too large with clipping switched off); it cannot learn or "
                                 "predict any more: build a new model")
            if status == -1:
                raise ValueError("the observation is not finite after scaling; it was not learned")
            raise ValueError("the update produced a non-finite loss or gradient; the observation "
                             "was not learned and the model is unchanged (lower the learning rate "
                             "or set clip_norm)")
        return status

    def _peek(self):
        """Head output for ``self._u`` from the committed state (no state change)."""
        self._net.predict(self._u, self._out)
        return self._out

    # ------------------------------------------------------------------ state trees
    # A state tree holds only dicts with str keys, lists, str, int, float, bool, None and NumPy
    # arrays: what ``streamrnn.checkpoint`` stores without pickle. Together with the
    # constructor parameters it rebuilds the model exactly.
    _state_attrs = ("_net", "_cols", "_rng")  # _u and _out are scratch buffers

    def _export_state(self) -> dict:
        tree = {}
        for name in self._state_attrs:
            tree[name] = _to_tree(getattr(self, name))
        return tree

    def _import_state(self, tree: dict):
        """Take over a state tree made by ``_export_state`` of a model configured like this one.

        Everything is decoded and checked before anything is assigned: a state that does not
        fit this model's configuration raises ValueError and leaves the model as it was.
        """
        missing = [n for n in self._state_attrs if n not in tree]
        if missing:
            raise ValueError(f"the state misses {missing} for {type(self).__name__}")
        values = {name: _from_tree(tree[name]) for name in self._state_attrs}
        self._check_state(values)
        for name, value in values.items():
            setattr(self, name, value)
        if self._net is not None:
            self._u = np.zeros(self._net.n_in)
            self._out = np.zeros(self._net.n_out)
        self._after_import()

    def _after_import(self):
        pass

    def _check_state(self, values):
        net, cols = values["_net"], values["_cols"]
        if not isinstance(cols, _Columns) or cols.offset != self._n_lead:
            raise ValueError("the state's feature map does not fit this model")
        if net is None:
            return
        want = dict(cell=self._cell_code(), hidden_size=self.hidden_size,
                    num_layers=self.num_layers, k1=self.update_every, k2=self.tbptt_steps,
                    loss=self._loss_code)
        have = {k: net.config()[k] for k in want}
        if have != want:
            raise ValueError(f"the state's network {have} does not fit this model {want}")
        if net.n_in != max(1, self._n_lead + len(cols)):
            raise ValueError("the state's network input width does not fit its feature map")
        opt = net.optimizer
        if opt is None or opt.kind != self._opt_spec[0]:
            raise ValueError("the state's optimizer does not fit this model's optimizer")

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


def _to_tree(v):
    """Convert learned state to a plain tree (see ``RecurrentEstimator._export_state``)."""
    from collections import deque
    if isinstance(v, _core.Network):
        opt = v.optimizer
        return {"__network__": v.config(), "state": v.get_state(),
                "optimizer": None if opt is None else {
                    "kind": opt.kind, "lr": opt.lr, "beta_1": opt.beta_1, "beta_2": opt.beta_2,
                    "eps": opt.eps, "rho": opt.rho, "clip_value": opt.clip_value,
                    "clip_norm": opt.clip_norm, "t": int(opt.t),
                    "m": np.array(opt.m_arr), "v": np.array(opt.v_arr)}}
    if isinstance(v, Standardizer):
        return {"__standardizer__": list(v.__getstate__())}
    if isinstance(v, _Columns):
        return {"__columns__": [v.offset, v.scale, [_to_tree(k) for k in v.index],
                                np.array(v.n, dtype=np.float64),
                                np.array(v.mean, dtype=np.float64),
                                np.array(v.m2, dtype=np.float64)]}
    if isinstance(v, np.random.Generator):
        return {"__rng__": v.bit_generator.state}
    if isinstance(v, deque):
        return {"__deque__": list(v), "maxlen": v.maxlen}
    if isinstance(v, np.ndarray):
        return v.copy()
    if isinstance(v, tuple):
        return {"__tuple__": [_to_tree(e) for e in v]}
    if isinstance(v, list):
        return [_to_tree(e) for e in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"cannot export {type(v).__name__} to a state tree")


def _from_tree(t, current=None):
    from collections import deque
    if isinstance(t, dict):
        if "__network__" in t:
            net = _core.Network(**t["__network__"])
            net.set_state(t["state"])
            o = t["optimizer"]
            if o is not None:
                opt = _core.Optimizer(o["kind"], o["lr"], o["beta_1"], o["beta_2"], o["eps"],
                                      o["rho"], o["clip_value"], o["clip_norm"])
                opt.bind(net.size)
                m, v = np.asarray(o["m"], dtype=np.float64), np.asarray(o["v"], dtype=np.float64)
                opt.remap(np.arange(m.shape[0]), net.size)
                opt.m_arr[:] = m
                if v.shape[0] == opt.v_arr.shape[0]:
                    opt.v_arr[:] = v
                opt.t = int(o["t"])
                net.set_optimizer(opt)
            return net
        if "__standardizer__" in t:
            s = Standardizer()
            s.__setstate__(tuple(t["__standardizer__"]))
            return s
        if "__columns__" in t:
            offset, scale, names, n, mean, m2 = t["__columns__"]
            c = _Columns(offset, scale)
            c.add([_from_tree(k) for k in names])
            c.n, c.mean, c.m2 = ([float(e) for e in a] for a in (n, mean, m2))
            if not len(c.n) == len(c.mean) == len(c.m2) == len(c.index):
                raise ValueError("inconsistent feature statistics in the state")
            return c
        if "__rng__" in t:
            g = np.random.default_rng()
            g.bit_generator.state = t["__rng__"]
            return g
        if "__tuple__" in t:
            return tuple(_from_tree(e) for e in t["__tuple__"])
        if "__deque__" in t:
            return deque(t["__deque__"], maxlen=t["maxlen"])
        raise ValueError(f"unknown state node with keys {sorted(t)}")
    if isinstance(t, np.ndarray):
        return t.copy()
    if isinstance(t, list):
        return [_from_tree(e) for e in t]
    return t
