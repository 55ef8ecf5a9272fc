"""Many series, one network: the multi-series forecaster.

``GlobalForecaster`` keeps one recurrent network for every series it sees and, per series
key, only the state that cannot be shared (see ``docs/global.md``). The per-observation
arithmetic is ``streamrnn._core._global.GlobalCore`` (the network, the per-key backbone, the
combination and the pooled intervals, in preallocated slot arrays); this module decides and
validates:

- keys: a key -> slot map in least-recently-seen order (``streamrnn._core._keymap.KeyMap``:
  the ``OrderedDict`` it replaced, in C, one dict probe per key of a batch), a free list of
  reset slots, eviction of the least recently seen key beyond ``max_keys``, and slot arrays
  that grow by doubling (so a model with few keys, or a checkpoint of one, takes memory in
  proportion to its keys, not to ``max_keys``);
- validation of y and x with the rules and messages of the single-series forecasters
  (``streamrnn.base.check_target`` and ``numeric_features``), before anything is changed;
- the feature name -> column map: the network's feature columns are fixed by the first step
  (the sorted names of the features of its rows, at most ``max_features``);
  features first seen later are ignored and counted in ``n_ignored_features``;
- ``learn_many``: the valid rows of a batch, in order, cut into sub-batches of distinct keys
  (a new one starts when a key repeats, or at ``max_batch`` rows), one core step (one
  optimizer step) per sub-batch; a bad row is reported and changes nothing;
- compute-then-commit: a sub-batch's new keys take free slots, the core step runs, and only
  when it succeeds are the keys entered into the map (and the least recently seen evicted);
- the state API ``_export_state`` / ``_import_state`` (the live keys only, in LRU order, and
  the core's shared part), which pickle, ``copy.deepcopy`` and ``streamrnn.checkpoint`` use.
"""
from __future__ import annotations

import copy
import math
import numbers
import sys
import threading
import warnings

import numpy as np
from river import base as river_base
from river import optim

from streamrnn import _registry
from streamrnn._core import _scaling
from streamrnn._core._scaling import VALUE_LIMIT
from streamrnn.base import (_canonical, _check_keys, _decode_key, _encode_key, _int_param,
                            _scale_error, check_target, numeric_features)

from streamrnn._core._global import MAX_PERIOD, N_LEAD_INPUTS, GlobalCore, row_layout
from streamrnn._core._keymap import KeyMap
from streamrnn._core._shared import MAX_SCRATCH_BYTES, footprint

__all__ = ["GlobalForecaster", "BatchResult", "MAX_KEY_LEN"]

# horizon=None without a period: this many steps (the single-series forecasters' default)
DEFAULT_HORIZON = 24
# Adam's learning rate when none is given
DEFAULT_LR = 0.001
# characters of a str key, bytes of a bytes key (what a checkpoint stores)
MAX_KEY_LEN = 1024
# int keys: the int64 range
_INT_KEY = 1 << 63
# slots allocated at first (then doubled as keys arrive, up to max_keys + a spare sub-batch)
INITIAL_CAPACITY = 1024
# slots copied at a time when the slot arrays grow or are exported (bounds the temporary
# float64 copies: 8,192 slots of about 4 KB as float64 are 64 MB)
_GROW_CHUNK = 1 << 13
_SLOT_DTYPES = ("float32", "float64")
_FLOAT = {float}
# the largest |y| of float32 slots (GlobalCore.y_limit; float64 slots: VALUE_LIMIT, 1e100)
F32_LIMIT = 1e30


def _normalise_key(k):
    """A series key as stored: str, bytes or int (numpy strings and integers converted).
    TypeError / ValueError for anything else."""
    t = type(k)
    if t is str or t is bytes:
        if len(k) > MAX_KEY_LEN:
            raise ValueError(f"a series key has at most {MAX_KEY_LEN} characters, got one of "
                             f"{len(k)}: {k[:40]!r}...")
        return k
    if t is int:
        if not -_INT_KEY <= k < _INT_KEY:
            raise ValueError(f"an int series key must fit in 64 bits, got {k}")
        return k
    if isinstance(k, str):
        return _normalise_key(str(k))
    if isinstance(k, bytes):
        return _normalise_key(bytes(k))
    if isinstance(k, numbers.Integral) and not isinstance(k, (bool, np.bool_)):
        return _normalise_key(int(k))
    raise TypeError(f"a series key must be a str, bytes or int, got {t.__name__} ({k!r})")


def _encode_series_key(k):
    """A key as a state tree value. Strings are interned: pickle writes a string object seen
    twice as a reference, so equal models must share equal strings alike to pickle to equal
    bytes (CPython shares one-character strings anyway)."""
    t = type(k)
    if t is str:
        return sys.intern(k)
    if t is bytes:
        return {"bytes": sys.intern(k.decode("latin-1"))}
    return k


def _interned(node):
    """A feature name's tree value with its strings interned (see _encode_series_key)."""
    t = type(node)
    if t is str:
        return sys.intern(node)
    if t is dict:
        return {k: _interned(v) for k, v in node.items()}
    if t is list:
        return [_interned(v) for v in node]
    return node


def _decode_series_key(t, where):
    if type(t) is dict:
        if set(t) != {"bytes"} or type(t["bytes"]) is not str:
            raise ValueError(f"{where}: a bytes key must be {{'bytes': str}}, got {t!r:.80}")
        try:
            k = t["bytes"].encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"{where}: a bytes key holds a character beyond \\xff") from None
        return _normalise_key(k)
    if type(t) in (str, int):
        return _normalise_key(t)
    raise TypeError(f"{where}: a series key must be a str, an int or {{'bytes': str}}, got "
                    f"{type(t).__name__}")


def _shared_of(core):
    """The core's shared part (everything but the per-slot rows)."""
    return core.get_shared_state()


def _set_shared(core, state):
    core.set_shared_state(state)


def _rows_fit(node, n, floats, depth=0):
    """Whether ``node`` is a dict tree whose leaves are all arrays of ``n`` rows, its float
    arrays of dtype ``floats``."""
    if type(node) is dict and node and depth < 4:
        return all(_rows_fit(v, n, floats, depth + 1) for v in node.values())
    return (isinstance(node, np.ndarray) and node.ndim >= 1 and node.shape[0] == n
            and (node.dtype.kind != "f" or node.dtype == floats))


def _slot_floats(node, dtype):
    """The slot tree with its float arrays as ``dtype`` (float32 slots are stored as float32:
    exact, half the bytes of the float64 copies get_slots returns)."""
    if type(node) is dict:
        return {k: _slot_floats(v, dtype) for k, v in node.items()}
    if isinstance(node, np.ndarray) and node.dtype.kind == "f":
        return node.astype(dtype)
    return node


def _rows_of(node, i, j):
    """Rows ``i:j`` of every array of a slot tree (views)."""
    if type(node) is dict:
        return {k: _rows_of(v, i, j) for k, v in node.items()}
    return node[i:j]


def _fill(out, part, i):
    """Write the slot tree ``part`` into rows ``i:`` of the slot tree ``out``."""
    for k, v in part.items():
        if type(v) is dict:
            _fill(out[k], v, i)
        else:
            out[k][i:i + len(v)] = v


def _empty_like(node, n, dtype):
    """A slot tree of ``n`` rows shaped like ``node``, its floats as ``dtype``."""
    if type(node) is dict:
        return {k: _empty_like(v, n, dtype) for k, v in node.items()}
    return np.empty((n,) + node.shape[1:], dtype=dtype if node.dtype.kind == "f" else node.dtype)


def _get_slots(core, slots, dtype):
    """``core.get_slots(slots)`` with the floats as ``dtype``, copied a chunk at a time (the
    float64 copies of a million float32 slots would double the memory)."""
    if len(slots) <= _GROW_CHUNK:
        return _slot_floats(core.get_slots(slots), dtype)
    first = core.get_slots(slots[:1])
    out = _empty_like(first, len(slots), dtype)
    for i in range(0, len(slots), _GROW_CHUNK):
        _fill(out, core.get_slots(slots[i:i + _GROW_CHUNK]), i)
    return out


def _set_slots(core, slots, tree):
    """``core.set_slots`` a chunk at a time, each chunk's floats as float64."""
    for i in range(0, len(slots), _GROW_CHUNK):
        core.set_slots(slots[i:i + _GROW_CHUNK],
                       _slot_floats(_rows_of(tree, i, i + _GROW_CHUNK), np.float64))


def _check_feature_range(feats):
    """ValueError (the single-series message) for a feature beyond +-VALUE_LIMIT."""
    if feats and not max(map(abs, feats.values())) <= VALUE_LIMIT:
        for name, v in feats.items():
            if not -VALUE_LIMIT <= v <= VALUE_LIMIT:
                raise _scale_error(f"feature {name!r}", v, _scaling.TOO_LARGE)


def _column_rows(Xs, names, index, n_x):
    """The (rows, n_x) feature matrix of the model's columns ``index`` from the matrix ``Xs``
    of the columns ``names`` (NaN: absent), and the count of feature values without a column
    (as _feature_rows gives for the same rows as dicts)."""
    cols = [index.get(k, -1) for k in names]
    have = [j for j, c in enumerate(cols) if c >= 0]
    ignored = 0
    if len(have) < len(cols):
        lost = [j for j, c in enumerate(cols) if c < 0]
        ignored = int((~np.isnan(Xs[:, lost])).sum())
    if not n_x:
        return None, ignored
    if cols == list(range(n_x)):
        return np.ascontiguousarray(Xs), ignored
    X = np.full((len(Xs), n_x), np.nan)
    if have:
        X[:, [cols[j] for j in have]] = Xs[:, have]
    return X, ignored


def _check_alpha(alpha):
    if not (isinstance(alpha, numbers.Real) and not isinstance(alpha, bool) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


def _check_horizon(horizon):
    if isinstance(horizon, numbers.Integral) and not isinstance(horizon, bool):
        horizon = int(horizon)
    if not (type(horizon) is int and 0 <= horizon <= _registry.LIMITS["forecast_steps"]):
        raise ValueError(f"horizon must be an int in [0, {_registry.LIMITS['forecast_steps']}], "
                         f"got {horizon!r}")
    return horizon


def _optimizer_name(name):
    """The registry's optimizer entry for a name, case-insensitive ("adam" -> Adam)."""
    if isinstance(name, str):
        for entry in _registry.OPTIMIZERS.values():
            if entry.name.lower() == name.lower():
                return entry
    raise ValueError(f"optimizer must be a river optimizer or one of "
                     f"{[e.name.lower() for e in _registry.OPTIMIZERS.values()]}, got {name!r}")


class _Held:
    """Releases a lock taken by ``_one_call`` at the end of a ``with`` block."""

    __slots__ = ("lock",)

    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.lock.release()


class BatchResult:
    """What ``learn_many`` returns, one row per input row, in input order.

    ``ok`` (bool): the row was learned. ``prediction``: the one-step combined forecast that was
    made for the row's value before it was learned (NaN on a key's first value). ``anomaly``:
    its anomaly score, 1 - its conformal p-value (NaN until there are scores). ``forecast``,
    ``low``, ``high`` (rows x horizon): the forecast of the key's next steps after learning the
    value, and its ``1 - alpha`` interval (NaN where unknown). ``errors``: ``(row, message)``
    of every row that was not learned (it changed nothing). A refused row has NaN everywhere.
    """

    __slots__ = ("ok", "prediction", "anomaly", "forecast", "low", "high", "errors")

    def __init__(self, n, horizon):
        self.ok = np.zeros(n, dtype=bool)
        self.prediction = np.full(n, np.nan)
        self.anomaly = np.full(n, np.nan)
        self.forecast = np.full((n, horizon), np.nan)
        self.low = np.full((n, horizon), np.nan)
        self.high = np.full((n, horizon), np.nan)
        self.errors = []

    def __len__(self):
        return len(self.ok)

    def __repr__(self):
        return (f"BatchResult({len(self.ok)} rows, {int(self.ok.sum())} learned, "
                f"{len(self.errors)} errors)")


def _key_list(keys):
    """A batch's keys as a list (one str or bytes is refused: it is one key, not a batch)."""
    if isinstance(keys, (str, bytes)):
        raise TypeError(f"keys must be a sequence of series keys, got one {type(keys).__name__}")
    return keys if type(keys) is list else list(keys)


class GlobalForecaster(river_base.Estimator):
    """One recurrent forecaster shared by many series.

    Every series (a *key*: a str, bytes or int) is forecast by one network whose weights all
    series train together; each key keeps only its own small state: its place in the
    network's recurrence (hidden state and the last `tbptt_steps` inputs), a light
    exponential-smoothing backbone that normalises it, its pending forecasts, and its
    per-step errors for the combination. A new series can draw on what the network learned
    from the others, and a million series fit in one process: `slot_bytes` is 3,784 bytes per
    key for an LSTM of 32 units with `tbptt_steps=16`, `horizon=24`, `seasonality=24` and
    float32 slots (about 4.0 KB per key in all, with the key map).

    The forecast of each step ahead combines, per key, the backbone corrected by the network,
    the backbone, the last value, the seasonal naive and the backbone on log values (while
    the key's values are positive, with a season), weighted by their recent errors;
    intervals are conformal, pooled over the keys on errors normalised by each key's scale.
    `docs/global.md` states the semantics: what is shared and what is per key, batches (one
    optimizer step per sub-batch of distinct keys), eviction, `learn_every`.

    `learn_one(key, y, x)` learns one value; `learn_many(keys, ys, xs)` learns a batch
    (the rows of distinct keys in one step) and returns a `BatchResult` with the prediction,
    anomaly score, forecast and interval of every row. `forecast(key, horizon)`,
    `forecast_interval(key, horizon, alpha)` and `score_one(key, y)` read a key's committed
    state and change nothing; an unknown key raises KeyError. A bad value or feature raises
    ValueError/TypeError in `learn_one` and is reported per row by `learn_many`; either way
    it changes no key's state and no shared weight.

    Parameters
    ----------
    cell
        `"lstm"`, `"gru"` or `"rnn"` (Elman, tanh).
    hidden_size
        Units per recurrent layer.
    num_layers
        Number of stacked recurrent layers.
    horizon
        The steps the network forecasts directly (its outputs, H). None: the period, else
        24. Forecasts beyond it hold the correction of step H on the backbone.
    seasonality
        The period in steps, the same for every key (12 for monthly data, 24 for hourly); 0
        or 1: none.
    tbptt_steps
        How many steps back the gradient flows (k2); each key keeps its last k2 - 1 inputs.
    learn_every
        A key takes part in the network's update every this many of its own values (the
        others only advance its state), dividing the cost of learning.
    optimizer
        `"adam"`, `"sgd"`, `"momentum"`, `"nesterovmomentum"`, `"rmsprop"`, `"adagrad"` (with
        `lr`) or a river optimizer with a constant rate, such as `optim.Adam(0.001)`.
    lr
        The learning rate of a named optimizer (None: {lr}).
    clip_norm
        Rescale each batch gradient to this global L2 norm when it is larger (None: off).
    max_keys
        At most this many keys are kept; a new key beyond them evicts the least recently
        seen one, whose state is dropped (`n_evicted` counts them). A returning evicted key
        starts afresh: a new backbone, an empty window, with the shared weights it helped
        train.
    max_batch
        At most this many rows per step of `learn_many`.
    slot_dtype
        `"float32"` (half the memory per key) or `"float64"` storage of the per-key state;
        the arithmetic is float64 either way.
    max_features
        At most this many feature columns. They are fixed by the first step (the sorted
        names of the features of the first sub-batch learned, or of the first `learn_one`'s
        `x`): a feature first seen later is ignored and
        counted in `n_ignored_features` (the first one raises a UserWarning), a known one
        missing from an `x` is treated as missing for that step.
    seed
        Seed of the weight initialisation (an int).

    Examples
    --------

    Fifty chicks weighed every few days (river's `ChickWeights`): one series per chick (the
    key is the chick's number), learned a day at a time; each row's `prediction` is the
    forecast that was made for it before it was learned.

    >>> from river import datasets, metrics
    >>> from streamrnn import GlobalForecaster

    >>> days = {{}}
    >>> for x, y in datasets.ChickWeights():
    ...     days.setdefault(x["time"], []).append((x["chick"], float(y)))

    >>> model = GlobalForecaster(cell="gru", hidden_size=16, seed=1)
    >>> mae = metrics.MAE()
    >>> for rows in days.values():
    ...     chicks, weights = zip(*rows)
    ...     result = model.learn_many(chicks, weights)
    ...     for w, p in zip(weights, result.prediction):
    ...         if p == p:  # NaN: a chick's first weight, nothing predicted it
    ...             mae.update(w, p)
    >>> mae
    {mae}

    >>> len(model), model.keys()[:3]
    (50, [18, 16, 15])
    >>> low, high = model.forecast_interval(1, 1)[0]
    >>> bool(low < model.forecast(1, 1)[0] < high)
    True

    The evaluators of `river.evaluate` take models of one series; the loop above is the
    multi-series one, and `learn_one(key, y)` learns a single value.

    """

    def __init__(self, cell: str = "lstm", hidden_size: int = 32, num_layers: int = 1,
                 horizon: int | None = None, seasonality: int = 0, tbptt_steps: int = 16,
                 learn_every: int = 1, optimizer: str | optim.base.Optimizer = "adam",
                 lr: float | None = None, clip_norm: float | None = 1.0,
                 max_keys: int = 100_000, max_batch: int = 256, slot_dtype: str = "float32",
                 max_features: int = 64, seed: int = 0):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.horizon = horizon
        self.seasonality = seasonality
        self.tbptt_steps = tbptt_steps
        self.learn_every = learn_every
        self.optimizer = optimizer
        self.lr = lr
        self.clip_norm = clip_norm
        self.max_keys = max_keys
        self.max_batch = max_batch
        self.slot_dtype = slot_dtype
        self.max_features = max_features
        self.seed = seed
        self._setup()

    # ------------------------------------------------------------------ configuration
    def _setup(self):
        """Validate the constructor parameters; create the empty model (no slots yet)."""
        lim = _registry.LIMITS
        if not isinstance(self.cell, str) or self.cell not in _registry.CELLS:
            raise ValueError(f"cell must be one of {sorted(_registry.CELLS)}, got {self.cell!r}")
        self._cell_code = _registry.cell_code(self.cell)
        _int_param("hidden_size", self.hidden_size, 1, lim["hidden_size"])
        _int_param("num_layers", self.num_layers, 1, lim["num_layers"])
        _int_param("seasonality", self.seasonality, 0, MAX_PERIOD)
        _int_param("tbptt_steps", self.tbptt_steps, 1, lim["tbptt_steps"])
        _int_param("learn_every", self.learn_every, 1, lim["learn_every"])
        _int_param("max_keys", self.max_keys, 1, lim["max_keys"])
        _int_param("max_batch", self.max_batch, 1, lim["max_batch"])
        _int_param("max_features", self.max_features, 0, lim["global_features"])
        _int_param("seed", self.seed, 0, (1 << 63) - 1)
        h = self.horizon
        if h is not None:
            _int_param("horizon", h, 1, lim["horizon"])
        m = int(self.seasonality) if self.seasonality > 1 else 0
        if h is None and m > lim["horizon"]:
            raise ValueError(f"the period {m} is a horizon beyond {lim['horizon']}: set horizon")
        self._m = m
        self._H = int(h) if h is not None else (m or DEFAULT_HORIZON)
        if self.slot_dtype not in _SLOT_DTYPES:
            raise ValueError(f"slot_dtype must be one of {list(_SLOT_DTYPES)}, got "
                             f"{self.slot_dtype!r}")
        c = self.clip_norm
        if c is not None and not (isinstance(c, numbers.Real) and not isinstance(c, bool)
                                  and 0 < c < math.inf):
            raise ValueError(f"clip_norm must be None or a finite number > 0, got {c!r}")
        self._opt_args = self._optimizer_args()
        # |y| and |x| beyond this are refused (the core's limit: float32 slots hold the scale)
        self._y_limit = F32_LIMIT if self.slot_dtype == "float32" else VALUE_LIMIT
        self._slot_floats = np.float32 if self.slot_dtype == "float32" else np.float64
        # the sub-batch: distinct keys, at most max_batch, never more keys than are kept
        self._batch = min(int(self.max_batch), int(self.max_keys))
        self._check_sizes()
        self._lock = threading.Lock()
        self._core = None       # built by the first learned observation
        self._slot = KeyMap()   # key -> slot, least recently seen first
        self._free = []         # reset slots, the next one is taken from the end
        self._pred = np.zeros(0)     # per slot: the last one-step prediction (NaN: none)
        self._anom = np.zeros(0)     # per slot: the last anomaly score (NaN: none)
        self._names = []        # column -> feature name
        self._index = {}        # feature name -> column
        self.n_ignored_features = 0  # feature values ignored (first seen after the columns)
        self.n_evicted = 0      # keys evicted for max_keys
        self.n_skipped_updates = 0   # sub-batches whose network update was refused

    def _check_sizes(self):
        """ValueError now, not at the first value, for a network or a batch scratch beyond
        the kernels' limits (the largest the features may ask for)."""
        n_in = N_LEAD_INPUTS + int(self.max_features)
        n_out = min(self._H, int(self.tbptt_steps))
        _registry.check_network_size(self.cell, n_in, self.hidden_size, self.num_layers, n_out,
                                     1, self.tbptt_steps)
        itemsize = 4 if self.slot_dtype == "float32" else 8
        _, _, _, scratch = footprint(self._cell_code, n_in, self.hidden_size, self.num_layers,
                                     n_out, self.tbptt_steps, 1, self._batch, itemsize)
        width = row_layout(self._H, self._m, int(self.tbptt_steps))[0]
        core_scratch = 8 * self._batch * (width + 2 * n_in + 3 * self._H + self.max_features)
        if scratch > MAX_SCRATCH_BYTES or core_scratch > MAX_SCRATCH_BYTES:
            raise ValueError(f"a step of {self._batch} keys with hidden_size={self.hidden_size}"
                             f", num_layers={self.num_layers}, tbptt_steps={self.tbptt_steps} "
                             f"and {self.max_features} features needs more than "
                             f"{MAX_SCRATCH_BYTES} bytes of scratch: lower max_batch or the "
                             "sizes")

    def _optimizer_args(self):
        opt, lr = self.optimizer, self.lr
        if lr is not None and not (isinstance(lr, numbers.Real) and not isinstance(lr, bool)
                                   and 0 < lr < math.inf):
            raise ValueError(f"lr must be None or a finite number > 0, got {lr!r}")
        if isinstance(opt, optim.base.Optimizer):
            if lr is not None:
                raise ValueError("lr is for a named optimizer; a river optimizer carries its "
                                 "own learning rate")
            entry, rate, hyper, sched = _registry.optimizer_entry(copy.deepcopy(opt))
            if sched is not None:
                raise ValueError("GlobalForecaster takes a constant learning rate, not a "
                                 "scheduler")
        else:
            entry = _optimizer_name(opt)
            river_opt = entry.river(DEFAULT_LR if lr is None else float(lr))
            entry, rate, hyper, _ = _registry.optimizer_entry(river_opt)
        return dict(kind=entry.code, lr=rate, **hyper, clip_value=0.0,
                    clip_norm=float(self.clip_norm or 0.0))

    def _core_config(self, n_x, capacity):
        return dict(cell=int(self._cell_code), hidden_size=int(self.hidden_size),
                    num_layers=int(self.num_layers), k2=int(self.tbptt_steps),
                    horizon=int(self._H), period=int(self._m), n_x=int(n_x),
                    capacity=int(capacity), max_batch=int(self._batch),
                    slot_dtype=str(self.slot_dtype), learn_every=int(self.learn_every),
                    seed=int(self.seed))

    def _new_core(self, n_x, capacity):
        from streamrnn import _core
        return GlobalCore(**self._core_config(n_x, capacity),
                          optimizer=_core.Optimizer(**self._opt_args))

    @property
    def _most_slots(self):
        """Slots the arrays may grow to: every key kept plus one sub-batch of new keys, which
        take free slots before the least recently seen keys are evicted."""
        return int(self.max_keys) + self._batch

    def _first_capacity(self, n):
        return min(self._most_slots, max(INITIAL_CAPACITY, n + self._batch))

    # ------------------------------------------------------------------ properties
    @property
    def H(self):
        """The steps forecast directly: ``horizon``, or its default (the period, else 24)."""
        return self._H

    @property
    def n_keys(self):
        return len(self._slot)

    @property
    def slot_bytes(self):
        """Bytes of per-key state in the core's slot arrays (None before the first value)."""
        return None if self._core is None else int(self._core.slot_bytes)

    @property
    def features(self):
        """The feature columns, in column order (empty before the first value)."""
        return list(self._names)

    def __len__(self):
        return len(self._slot)

    def __contains__(self, key):
        try:
            return _normalise_key(key) in self._slot
        except (TypeError, ValueError):
            return False

    def keys(self):
        """The keys kept, least recently seen (learned) first."""
        return list(self._slot)

    def _slot_of(self, key):
        k = _normalise_key(key)
        s = self._slot.get(k)
        if s is None:
            raise KeyError(f"unknown series key {key!r}")
        return s

    def last_prediction(self, key):
        """The one-step forecast that was made for the value of ``key`` learned last (None on
        its first value); KeyError for an unknown key."""
        v = float(self._pred[self._slot_of(key)])
        return None if v != v else v

    def last_anomaly(self, key):
        """The anomaly score the value of ``key`` learned last got before it was learned (None
        while there were no scores); KeyError for an unknown key."""
        v = float(self._anom[self._slot_of(key)])
        return None if v != v else v

    def forget(self, key):
        """Drop a key's state (KeyError if unknown); if it comes back it starts afresh."""
        k = _normalise_key(key)
        if k not in self._slot:
            raise KeyError(f"unknown series key {key!r}")
        with self._one_call():
            self._release([self._slot.pop(k)])

    def _release(self, slots):
        """Reset ``slots`` and put them on the free list."""
        arr = np.asarray(slots, dtype=np.int64)
        self._core.reset(arr)
        self._pred[arr] = np.nan
        self._anom[arr] = np.nan
        self._free.extend(slots)

    # ------------------------------------------------------------------ validation
    def _row(self, key, y, x):
        """``(key, y, feats)`` of a valid row; raises TypeError/ValueError otherwise."""
        k = key if type(key) is str and len(key) <= MAX_KEY_LEN else _normalise_key(key)
        if type(y) is not float or y - y != 0.0:
            y = check_target(y)
        lim = self._y_limit
        if not -lim <= y <= lim:
            raise self._too_large("y", y)
        feats = numeric_features(x, ignore_dates=True) if x else None
        if feats:
            _check_feature_range(feats)
        return k, y, feats or None

    def _too_large(self, what, v):
        if self._y_limit == VALUE_LIMIT:
            return _scale_error(what, v, _scaling.TOO_LARGE)
        return ValueError(f"{what} = {v!r} is beyond +-{self._y_limit:g}, the range of float32 "
                          "slots; it was not learned (use slot_dtype='float64' or rescale the "
                          "data)")

    def _columns_of(self, rows):
        """Names and index of the columns the first learned rows fix (sorted, at most
        max_features)."""
        names = set()
        for _, _, _, feats in rows:
            if feats:
                names.update(feats)
        # by their text, then their type: equal texts (1 and "1") never depend on set order
        names = sorted(names, key=lambda k: (str(k), type(k).__name__))[:self.max_features]
        return names, {k: j for j, k in enumerate(names)}

    # ------------------------------------------------------------------ learning
    def learn_one(self, key, y, x=None):
        """Learn the value ``y`` (with features ``x``) of series ``key``.

        A bad value or feature raises ValueError/TypeError and changes nothing."""
        row = self._row(key, y, x)
        errors = []
        with self._one_call():
            self._learn_rows([(0, *row)], None, 0.1, errors)
        if errors:
            raise errors[0][1]

    def learn_many(self, keys, ys, xs=None, alpha=0.1) -> BatchResult:
        """Learn a batch of values: ``keys[i]``, ``ys[i]``, ``xs[i]`` (a dict or None; ``xs``
        None: no features). Rows are learned in order per key: the valid rows are cut into
        sub-batches of distinct keys, each learned in one step. A bad row does not raise: it
        is reported in the result's ``errors`` and changes nothing. Returns a
        :class:`BatchResult`; its intervals are ``1 - alpha``."""
        alpha = _check_alpha(alpha)
        keys = _key_list(keys)
        n = len(keys)
        if isinstance(ys, np.ndarray):
            if ys.ndim != 1:
                raise ValueError(f"ys must be one-dimensional, got shape {ys.shape}")
            ys = ys.tolist()
        elif type(ys) is not list:
            ys = list(ys)
        if len(ys) != n:
            raise ValueError(f"{n} keys but {len(ys)} values")
        if xs is not None:
            xs = xs if type(xs) is list else list(xs)
            if len(xs) != n:
                raise ValueError(f"{n} keys but {len(xs)} feature dicts")
        res = BatchResult(n, self._H)
        rows, errors = [], []
        row, lim, most = self._row, self._y_limit, MAX_KEY_LEN
        for i in range(n):
            k, y = keys[i], ys[i]
            x = None if xs is None else xs[i]
            # the common rows, fast: a str key, a float in range (not NaN), no features or a
            # dict of finite floats in range
            if type(k) is str and type(y) is float and -lim <= y <= lim and len(k) <= most:
                if not x:
                    rows.append((i, k, y, None))
                    continue
                if type(x) is dict and set(map(type, x.values())) == _FLOAT:
                    total = sum(x.values())  # finite (no NaN/inf; an overflow: the slow path)
                    if total - total == 0.0 and max(map(abs, x.values())) <= VALUE_LIMIT:
                        rows.append((i, k, y, x))
                        continue
            try:
                rows.append((i, *row(k, y, x)))
            except (TypeError, ValueError) as e:
                errors.append((i, e))
        if rows:
            with self._one_call():
                self._learn_rows(rows, res, alpha, errors)
        errors.sort(key=lambda e: e[0])
        res.errors = [(i, str(e)) for i, e in errors]
        return res

    def learn_columns(self, keys, ys, X=None, names=None, alpha=0.1, slow=None) -> BatchResult:
        """:meth:`learn_many` with the features as columns: ``X[i, j]`` is feature
        ``names[j]`` of row ``i``, NaN where the row has no such feature (a feature given as
        NaN in a dict is an error; here it means absent). The same rows, in the same order,
        learn exactly what ``learn_many(keys, ys, xs)`` learns with ``xs[i]`` the dict of row
        ``i``'s non-NaN features, with the same result and the same errors; no Python object
        is made per row but the key map's. ``slow`` (``{row: x}``, optional): the original
        feature dict of a row whose features are beyond range, for its error message."""
        alpha = _check_alpha(alpha)
        keys = _key_list(keys)
        n = len(keys)
        ys = np.asarray(ys, dtype=np.float64)
        if ys.shape != (n,):
            raise ValueError(f"{n} keys but values of shape {ys.shape}")
        names = [] if names is None else list(names)
        if X is None or not names:
            X = np.empty((n, 0))
        else:
            X = np.ascontiguousarray(X, dtype=np.float64)
            if X.shape != (n, len(names)):
                raise ValueError(f"X must have shape ({n}, {len(names)}), got {X.shape}")
            if len(set(names)) != len(names):
                raise ValueError("the feature names of the columns must be distinct")
        res = BatchResult(n, self._H)
        errors = []
        # the common rows: a str key within MAX_KEY_LEN, y within range, features in range
        lim = self._y_limit
        with np.errstate(invalid="ignore"):
            ok = np.abs(ys) <= lim
            if X.shape[1]:
                ok &= ~(np.abs(X) > VALUE_LIMIT).any(axis=1)
        if n and not (set(map(type, keys)) == {str} and max(map(len, keys)) <= MAX_KEY_LEN):
            ok &= np.fromiter((type(k) is str and len(k) <= MAX_KEY_LEN for k in keys),
                              dtype=bool, count=n)
        if slow:
            ok[list(slow)] = False
        if not ok.all():  # the others through the checks of learn_many, one by one
            keys = list(keys)
            for i in np.flatnonzero(~ok).tolist():
                x = (slow or {}).get(i)
                if x is None and X.shape[1]:
                    x = {k: v for k, v in zip(names, X[i].tolist()) if v == v}
                try:
                    keys[i] = self._row(keys[i], float(ys[i]), x)[0]
                    ok[i] = True
                except (TypeError, ValueError) as e:
                    errors.append((i, e))
        if errors:
            idx = np.flatnonzero(ok)
            keys = [keys[i] for i in idx.tolist()]
            ys, X = ys[idx], X[idx]
        else:
            idx = None
        if keys:
            with self._one_call():
                self._learn_columns(idx, keys, ys, X, names, res, alpha, errors)
        errors.sort(key=lambda e: e[0])
        res.errors = [(i, str(e)) for i, e in errors]
        return res

    def _learn_columns(self, idx, keys, ys, X, names, res, alpha, errors):
        """Learn valid rows (``idx``: their rows in the result, None: 0..n-1) in order,
        sub-batch by sub-batch, as _learn_rows does."""
        n = len(keys)
        start = 0
        while start < n:
            stop = min(n, start + self._batch)
            if len(set(keys[start:stop])) != stop - start:
                stop = self._cut([(None, k) for k in keys[start:stop]], 0) + start
            rows = np.arange(start, stop) if idx is None else idx[start:stop]
            Xs = X[start:stop]

            def feats(index, n_x, Xs=Xs):
                return _column_rows(Xs, names, index, n_x)
            first = None
            if self._core is None:  # the first step: its rows fix the feature columns
                present = [k for j, k in enumerate(names) if not np.isnan(Xs[:, j]).all()]
                cols = sorted(present, key=lambda k: (str(k), type(k).__name__))
                cols = cols[:self.max_features]
                first = (self._new_core(len(cols), self._first_capacity(0)), cols,
                         {k: j for j, k in enumerate(cols)})
            self._step(rows, keys[start:stop], ys[start:stop], feats, res, alpha, errors,
                       first)
            start = stop

    def _one_call(self):
        """The model's lock, taken without waiting: a second thread gets RuntimeError (the key
        map and the core serve one call at a time)."""
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("another thread is learning with this GlobalForecaster: one call "
                               "at a time per model (use one model per thread)")
        return _Held(self._lock)

    def _learn_rows(self, rows, res, alpha, errors):
        """Learn valid ``rows`` ``(row, key, y, feats)`` in order, sub-batch by sub-batch."""
        start = 0
        while start < len(rows):
            stop = self._cut(rows, start)
            first = None
            if self._core is None:  # the first step: its rows fix the feature columns
                names, index = self._columns_of(rows[start:stop])
                first = (self._new_core(len(names), self._first_capacity(0)), names, index)
            self._step_sub(rows[start:stop], res, alpha, errors, first)
            start = stop

    def _cut(self, rows, start):
        """End of the sub-batch of ``rows`` that starts at ``start``: distinct keys, at most
        the sub-batch size."""
        seen = set()
        stop = min(len(rows), start + self._batch)
        for j in range(start, stop):
            k = rows[j][1]
            if k in seen:
                return j
            seen.add(k)
        return stop

    def _grow(self, need):
        """Make ``need`` free slots (the arrays double, up to ``_most_slots``)."""
        core = self._core
        cap = int(core.capacity)
        most = self._most_slots
        # doubling; once a doubling would pass half the most, straight to the most: a growth
        # holds the old and the new arrays at once, so its peak stays near 4/3 of the final
        # arrays instead of 5/3
        new_cap = 2 * cap if 4 * cap <= most else most
        new_cap = min(most, max(new_cap, cap - len(self._free) + need))
        grown = self._new_core(len(self._names), new_cap)
        _set_shared(grown, _shared_of(core))
        live = np.fromiter(self._slot.values(), dtype=np.int64, count=len(self._slot))
        for i in range(0, len(live), _GROW_CHUNK):
            part = live[i:i + _GROW_CHUNK]
            grown.set_slots(part, core.get_slots(part))
        self._core = grown
        self._pred = np.concatenate([self._pred, np.full(new_cap - cap, np.nan)])
        self._anom = np.concatenate([self._anom, np.full(new_cap - cap, np.nan)])
        self._free[:0] = range(new_cap - 1, cap - 1, -1)  # taken after the old free slots

    @staticmethod
    def _feature_rows(rows, index, n_x):
        """The (rows, n_x) feature matrix of ``rows`` (NaN: missing) and the count of feature
        values without a column. Rows of one schema (the same names in the same order, as
        a stream's messages usually are) take one array conversion."""
        feats = [r[3] for r in rows]
        first = feats[0]
        if first:
            names_t = tuple(first)
            if all(f is not None and len(f) == len(names_t) and tuple(f) == names_t
                   for f in feats):
                cols = [index.get(k, -1) for k in names_t]
                if -1 not in cols:
                    vals = np.array([list(f.values()) for f in feats], dtype=np.float64)
                    if cols == list(range(n_x)):
                        return vals, 0
                    X = np.full((len(rows), n_x), np.nan)
                    X[:, cols] = vals
                    return X, 0
        empty = [math.nan] * n_x
        plans = {}  # the columns of each tuple of feature names
        lines, ignored = [], 0
        for f in feats:
            if not f:
                lines.append(empty)
                continue
            names_t = tuple(f)
            cols = plans.get(names_t)
            if cols is None:
                cols = plans[names_t] = [index.get(k, -1) for k in names_t]
            line = empty.copy()
            for c, v in zip(cols, f.values()):
                if c >= 0:
                    line[c] = v
                else:
                    ignored += 1
            lines.append(line)
        return np.array(lines, dtype=np.float64), ignored

    def _step_sub(self, rows, res, alpha, errors, first):
        """One core step for ``rows`` ``(row, key, y, feats)`` (distinct keys), all or
        nothing (see _step)."""
        return self._step([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                          lambda index, n_x: self._feature_rows(rows, index, n_x)
                          if n_x else (None, sum(len(r[3]) for r in rows if r[3])),
                          res, alpha, errors, first)

    def _step(self, rows, ks, ys, feats, res, alpha, errors, first):
        """One core step for the keys ``ks`` (distinct) with values ``ys``, all or nothing;
        ``rows``: their rows in ``res``; ``feats(index, n_x) -> (X, ignored)`` their feature
        matrix for the columns ``index``. ``first``: the core, columns of a model that learns
        its first values (committed only on success). Returns whether the rows were
        learned."""
        b = len(ks)
        ks = ks if type(ks) is list else list(ks)
        slots = np.empty(b, dtype=np.int64)
        if first is not None:
            core, names, index = first
            free = list(range(int(core.capacity) - 1, -1, -1))
            slots.fill(-1)
            new = b
        else:
            core, names, index = self._core, self._names, self._index
            free = self._free
            new = self._slot.lookup(ks, slots)  # -1: a new key
            if new > len(free):
                self._grow(new)
                core, free = self._core, self._free
        taken = []
        if new:
            for j in np.flatnonzero(slots < 0).tolist():
                s = free.pop()
                slots[j] = s
                taken.append(s)
        ys = np.array(ys, dtype=np.float64)
        n_x = len(names)
        X, ignored = feats(index, n_x)
        H = self._H
        pred, score = np.empty(b), np.empty(b)
        fc, lo, hi = np.empty((b, H)), np.empty((b, H)), np.empty((b, H))
        try:
            status = core.step(slots, ys, X, pred, score, fc, lo, hi, alpha)
        except BaseException:  # (a bug, an interrupt): the core changed nothing, nor do we
            free.extend(reversed(taken))
            raise
        if status < 0:  # the core's last line: nothing changed
            free.extend(reversed(taken))
            e = ValueError("the core refused this sub-batch (a value or feature not finite "
                           "after scaling); it was not learned")
            errors.extend((int(r), e) for r in rows)
            return False
        # commit
        if first is not None:
            cap = int(core.capacity)
            self._core, self._names, self._index, self._free = core, names, index, free
            self._pred, self._anom = np.full(cap, np.nan), np.full(cap, np.nan)
        slot_of = self._slot
        if status == 2:
            self.n_skipped_updates += 1
        # each key to the end in row order (a new one enters there): least recently seen first
        slot_of.touch(ks, slots)
        self._pred[slots] = pred
        self._anom[slots] = score
        if ignored:
            self._count_ignored(ignored)
        over = len(slot_of) - int(self.max_keys)
        if over > 0:
            gone = slot_of.pop_oldest(over)
            self._release(gone)
            self.n_evicted += over
        if res is not None:
            idx = np.asarray(rows, dtype=np.intp)
            res.ok[idx] = True
            res.prediction[idx] = pred
            res.anomaly[idx] = score
            res.forecast[idx] = fc
            res.low[idx] = lo
            res.high[idx] = hi
        return True

    def _count_ignored(self, ignored):
        if not self.n_ignored_features:
            warnings.warn(f"GlobalForecaster's feature columns are {self._names} (fixed by its "
                          f"first step, max_features={self.max_features}); features first seen "
                          "later are ignored (counted in n_ignored_features)",
                          UserWarning, stacklevel=5)
        self.n_ignored_features += ignored

    # ------------------------------------------------------------------ reading
    def _x_row(self, x, what):
        """The feature row of ``x`` for the core: (n_x,) with NaN for missing, or None."""
        feats = numeric_features(x, ignore_dates=True, what=what) if x else {}
        _check_feature_range(feats)
        n_x = len(self._names)
        if not n_x:
            return None
        row = np.full(n_x, np.nan)
        for name, v in feats.items():
            c = self._index.get(name)
            if c is not None:
                row[c] = v
        return row

    def _xs_first(self, xs, horizon):
        if xs is None:
            return self._x_row(None, "xs[0]")
        xs = list(xs)
        if len(xs) < horizon:
            raise ValueError(f"xs holds {len(xs)} feature dicts for a horizon of {horizon}")
        for i, x in enumerate(xs[1:horizon], 1):
            if x:
                _check_feature_range(numeric_features(x, ignore_dates=True, what=f"xs[{i}]"))
        return self._x_row(xs[0] if xs else None, "xs[0]")

    def forecast(self, key, horizon, xs=None):
        """Forecasts of the next ``horizon`` values of ``key`` (KeyError if unknown); ``xs``:
        one feature dict per step, the first is the network's input. Changes nothing."""
        s = self._slot_of(key)
        horizon = _check_horizon(horizon)
        xrow = self._xs_first(xs, horizon)
        if horizon == 0:
            return []
        return [float(v) for v in self._core.forecast(s, horizon, xrow)]

    def forecast_interval(self, key, horizon, alpha=0.1, xs=None):
        """``(low, high)`` of each of the next ``horizon`` values of ``key``, each meant to
        hold the value with probability ``1 - alpha`` (conformal, pooled over the keys on
        errors normalised by each key's scale; ``(-inf, inf)`` at a step before it has
        scores). Changes nothing."""
        s = self._slot_of(key)
        alpha = _check_alpha(alpha)
        horizon = _check_horizon(horizon)
        xrow = self._xs_first(xs, horizon)
        if horizon == 0:
            return []
        lo, hi = self._core.interval(s, horizon, alpha, xrow)
        # no half-width yet (fewer than 5 scores of that step): the whole line
        return [(-math.inf, math.inf) if a != a else (float(a), float(b))
                for a, b in zip(lo.tolist(), hi.tolist())]

    def score_one(self, key, y, x=None):
        """Anomaly score of ``y`` as the next value of ``key``: 1 - its conformal p-value, in
        [0, 1), higher is more anomalous (0 while there are no scores). Changes nothing."""
        s = self._slot_of(key)
        y = check_target(y)
        if not -self._y_limit <= y <= self._y_limit:
            raise self._too_large("y", y)
        v = float(self._core.score(s, y, self._x_row(x, "x")))
        return 0.0 if v != v else v

    # ------------------------------------------------------------------ state
    # The tree holds dicts with str keys, lists, str, int, float, bool, None and ndarrays:
    # what streamrnn.checkpoint stores without pickle. Only the live keys' slots are in it,
    # in least-recently-seen order, so equal models export equal trees whatever slots their
    # keys happen to occupy.
    _STATE_KEYS = ("revision", "core", "keys", "prediction", "anomaly", "features",
                   "n_ignored_features", "n_evicted", "n_skipped_updates")
    # the rules the core's arithmetic follows; a state saved under other rules is refused
    # (it would load but not continue as it would have): 2 = the combination errors that
    # start as a running mean and the clipped conformal scores of stop 18; 3 = the members'
    # errors over the steps (a ring of stored origins: a longer row), the combination
    # scores blended with step 1's, alphas (0.1, 0.3, 1.0) without a period and the
    # pending combined offsets kept as float16 in float32 slots (stop 19); 4 = the backbone's
    # adaptive member (a longer row: its level, trend, error, stored states, u, v and
    # sensitivities), alphas (0.1, 0.3, 0.5) without a period and no log expert without a
    # period (stop 20)
    _REVISION = 4

    def _export_state(self) -> dict:
        core = self._core
        live = np.fromiter(self._slot.values(), dtype=np.int64, count=len(self._slot))
        tree = {"revision": self._REVISION, "core": None if core is None else {
                    "shared": _shared_of(core),
                    "slots": _get_slots(core, live, self._slot_floats)},
                "keys": [_encode_series_key(k) for k in self._slot],
                "prediction": self._pred[live].copy(), "anomaly": self._anom[live].copy(),
                "features": [_interned(_encode_key(k)) for k in self._names],
                "n_ignored_features": int(self.n_ignored_features),
                "n_evicted": int(self.n_evicted),
                "n_skipped_updates": int(self.n_skipped_updates)}
        return _canonical(tree)

    def _import_state(self, tree: dict):
        """Take over a tree made by ``_export_state`` of a model configured like this one.

        Every field is decoded and checked (by the core for its parts) before anything is
        assigned; ValueError/TypeError otherwise, and the model is as it was."""
        with self._one_call():
            self._take_state(tree)

    def _take_state(self, tree):
        rev = tree.get("revision") if type(tree) is dict else None
        if type(tree) is dict and (type(rev) is not int or rev != self._REVISION):
            got = tree.get("revision", 1)
            raise ValueError(f"the state was saved by a streamrnn whose GlobalForecaster follows "
                             f"other rules (revision {got!r}, this one reads {self._REVISION}): "
                             f"its model cannot continue here; start it afresh")
        _check_keys(tree, self._STATE_KEYS, "the state")
        keys = tree["keys"]
        if type(keys) is not list:
            raise TypeError("the state's keys must be a list")
        if len(keys) > self.max_keys:
            raise ValueError(f"the state has {len(keys)} keys, more than max_keys="
                             f"{self.max_keys}")
        order = KeyMap()
        for j, t in enumerate(keys):
            k = _decode_series_key(t, f"the state's keys[{j}]")
            if k in order:
                raise ValueError(f"the key {k!r} appears twice in the state")
            order[k] = j
        n = len(order)
        arrays = {}
        for name in ("prediction", "anomaly"):
            a = tree[name]
            if not (isinstance(a, np.ndarray) and a.dtype == np.float64 and a.shape == (n,)):
                raise ValueError(f"the state's {name} must be a float64 array of shape ({n},)")
            arrays[name] = a
        if type(tree["features"]) is not list:
            raise TypeError("the state's features must be a list")
        names = [_decode_key(k) for k in tree["features"]]
        if len(names) > self.max_features:
            raise ValueError(f"the state has {len(names)} feature columns, more than "
                             f"max_features={self.max_features}")
        index = {}
        for j, k in enumerate(names):
            if k in index:
                raise ValueError(f"the feature {k!r} appears twice in the state")
            index[k] = j
        counts = {}
        for name in ("n_ignored_features", "n_evicted", "n_skipped_updates"):
            _scaling._check_count(tree[name], name)
            counts[name] = tree[name]
        node = tree["core"]
        core = None
        if node is None:
            if n or names:
                raise ValueError("the state has keys or feature columns but no core")
        else:
            _check_keys(node, ("shared", "slots"), "the state's core")
            slots = node["slots"]
            if not _rows_fit(slots, n, self._slot_floats):
                # checked before the core is built: its slot arrays are in proportion to them
                raise ValueError(f"the state's core slots must be arrays of {n} rows (floats "
                                 f"as {np.dtype(self._slot_floats).name})")
            cap = self._first_capacity(n)
            core = self._new_core(len(names), cap)
            _set_shared(core, node["shared"])
            if n:
                _set_slots(core, np.arange(n, dtype=np.int64), slots)
        # everything is checked: assign
        self._core = core
        self._slot = order
        self._names, self._index = names, index
        if core is None:
            self._free, self._pred, self._anom = [], np.zeros(0), np.zeros(0)
        else:
            cap = int(core.capacity)
            self._free = list(range(cap - 1, n - 1, -1))
            self._pred, self._anom = np.full(cap, np.nan), np.full(cap, np.nan)
            self._pred[:n] = arrays["prediction"]
            self._anom[:n] = arrays["anomaly"]
        for k, v in counts.items():
            setattr(self, k, v)

    # pickle and copy.deepcopy go through the state API
    def _init_params(self):
        return {name: getattr(self, name) for name in (
            "cell", "hidden_size", "num_layers", "horizon", "seasonality", "tbptt_steps",
            "learn_every", "optimizer", "lr", "clip_norm", "max_keys", "max_batch",
            "slot_dtype", "max_features", "seed")}

    def __getstate__(self):
        return {"params": self._init_params(), "state": self._export_state()}

    def __setstate__(self, state):
        self.__init__(**state["params"])
        self._import_state(state["state"])

    def __sizeof__(self):
        core = 0 if self._core is None else self._core.__sizeof__()
        return object.__sizeof__(self) + core + self._pred.nbytes + self._anom.nbytes

    @classmethod
    def _unit_test_params(cls):
        yield {"cell": "gru", "hidden_size": 4, "seed": 1}
        yield {"cell": "lstm", "hidden_size": 4, "seasonality": 4, "horizon": 3,
               "max_keys": 3, "slot_dtype": "float64", "seed": 2}


GlobalForecaster.__doc__ = GlobalForecaster.__doc__.format(lr=DEFAULT_LR, mae="MAE: 14.849426")
