"""A forecaster's state between observations and its per-observation arithmetic.

``streamrnn.forecasting`` decides and validates (targets, features, growth, errors) and hands
this module numbers and buffers; this module composes the parts:

- ``Backbone`` (``_backbone.pyx``): the bank of exponential-smoothing members and the period
  detector; it gives the forecasts of the next values, the scale of one step's change, and the
  de-seasonalised, level-normalised window of recent values the network reads.
- ``Network`` (``_network.pyx``): H outputs; output j of the step taken at y(t) is the
  residual of y(t+j) over the last value y(t-1), in units of ``scale * sqrt(j + 1)`` (the
  backbone's typical one-step change, grown as a random walk's), clipped to +-``clip``;
  learned by ``_learn_multi`` when y(t+j) arrives (delayed targets). The network expert is
  the last value plus that correction: it reads the backbone's de-seasonalised window, so it
  can learn the season and the level's pull from there, and it errs differently from the
  backbone, which the combination uses (measured: a correction of the backbone itself did
  not beat the backbone on WaterFlow or AirlinePassengers, this one improves the combination;
  see the notes of this change).
- ``Combiner`` (``_combine.pyx``): per horizon step, a soft-min of four experts by their
  recent error: the network-corrected backbone, the backbone, the last value, the seasonal
  naive. The network expert is held out (``set_eligible``) until it learned enough.
- ``Conformal`` (``_combine.pyx``): adaptive conformal intervals per step around the combined
  forecast, and the p-value of the newest value (the anomaly score).

One observation y(t) is one nogil call, ``_step``, in this order:

1. the network's lead input (the backbone window, the change over the last value, the last
   value's standardised level) into u;
2. the delayed targets: for output j of the step taken j values ago,
   ``clip((y(t) - base) / (scale sqrt(j + 1)))`` with that step's base (the last value then)
   and scale kept in rings of H (``pend``/``pscale``; output 0's is this step's own);
3. ``Network._learn_multi`` (forward of step t, reused from ``predict`` when ``forecast(1)``
   just ran it); on failure it rolls itself back and nothing here has changed yet;
4. the expert forecasts from that forward pass (issued as if before y(t): they are exactly
   what ``forecast`` returned from the same state) to the Combiner, the combined forecasts
   to Conformal;
5. the anomaly score of y(t) (p-value before y(t)'s score enters), then y(t) is observed by
   the Combiner and Conformal;
6. the ring of pending bases and scales, the level statistics, ``Backbone._update(y)``, and
   the caches for the next step (the backbone's forecasts, scale and window).

Nothing after step 3 can fail (every input was validated, the parts keep their outputs
finite), so a refused observation leaves every part as it was.
"""
import math

import numpy as np

cimport numpy as cnp
from libc.math cimport fabs, isfinite, NAN, isnan, sqrt
from libc.string cimport memcpy

from streamrnn._core._backbone cimport Backbone
from streamrnn._core._combine cimport Combiner, Conformal
from streamrnn._core._network cimport Network

cnp.import_array()

cdef extern from *:
    """
    #if defined(__clang__)
    #pragma STDC FP_CONTRACT OFF
    #elif defined(__GNUC__)
    #pragma GCC optimize ("fp-contract=off")
    #endif
    """

# the experts, in the Combiner's order
cdef enum:
    NETWORK = 0
    BACKBONE = 1
    LAST = 2
    SNAIVE = 3
EXPERT_NETWORK, EXPERT_BACKBONE, EXPERT_LAST, EXPERT_SNAIVE = NETWORK, BACKBONE, LAST, SNAIVE
EXPERTS = ("network", "backbone", "last value", "seasonal naive")
# statuses beyond the network's (-1, -2)
cdef enum:
    S_TOO_LARGE = -3     # |y| > VALUE_LIMIT
TOO_LARGE = S_TOO_LARGE
cdef double _VMAX = 1e100
# the lead inputs are clipped to this range (as the scalers clip theirs)
cdef double _INPUT_LIMIT = 10.0
# the level input: the last value standardised by an exponentially weighted mean and variance
# of the values (weight max(1/n, LEVEL_RATE) for the n-th value)
cdef double LEVEL_RATE = 1.0 / 200.0

COUNT_LIMIT = 1 << 62
_KEYS = frozenset(("backbone", "combiner", "conformal", "pend", "pscale", "t", "n_learned",
                   "prev", "level_mean", "level_var", "anomaly", "pred"))


cdef inline double _clipv(double v, double c) noexcept nogil:
    if v > c:
        return c
    if v < -c:
        return -c
    return v


cdef inline void _level(double y, long long t, double* mean, double* var) noexcept nogil:
    """The EW mean and variance after the (t+1)-th value y (West's update)."""
    cdef double r = 1.0 / <double>(t + 1)
    cdef double d
    if r < LEVEL_RATE:
        r = LEVEL_RATE
    d = y - mean[0]
    mean[0] = mean[0] + r * d
    var[0] = (1.0 - r) * (var[0] + r * d * d)
    if not (var[0] < 1e300):
        var[0] = 1e300


cdef inline double* _data(object a, Py_ssize_t n) except NULL:
    """Data pointer of an exact, 1-d, C-contiguous, writable float64 ndarray of >= n values."""
    if not cnp.PyArray_CheckExact(a):
        raise TypeError("expected a float64 ndarray")
    cdef cnp.ndarray x = <cnp.ndarray>a
    if (cnp.PyArray_TYPE(x) != cnp.NPY_DOUBLE or not cnp.PyArray_IS_C_CONTIGUOUS(x)
            or not cnp.PyArray_ISWRITEABLE(x) or cnp.PyArray_SIZE(x) < n):
        raise ValueError(f"expected a writable contiguous float64 array of >= {n} values")
    return <double*>cnp.PyArray_DATA(x)


def _count(v, what):
    if type(v) is not int or not 0 <= v < COUNT_LIMIT:
        raise ValueError(f"{what} must be an int in [0, 2**62), got {v!r}")
    return v


def _plain(node):
    """A part's state as its ``get_state`` made it: lists (a checkpoint stores tuples as lists)
    back to tuples. Arrays are passed on as they are: every part copies them keeping their
    dtype objects, so the state of an unpickled model pickles to the same bytes again."""
    t = type(node)
    if t is dict:
        return {k: _plain(v) for k, v in node.items()}
    if t is list or t is tuple:
        return tuple(_plain(v) for v in node)
    return node


def _opt_float(v, what, lo, hi):
    if v is None:
        return None
    if type(v) is not float or not (lo <= v <= hi):
        raise ValueError(f"{what} must be None or a float in [{lo}, {hi}], got {v!r}")
    return v


cdef class ForecastCore:
    """The backbone, the combination and the conformal state of one series, and the step that
    ties them to the network (see the module documentation for the order).

    ``ForecastCore(horizon, periods, auto, max_lag, window, clip=3.0)``: ``periods`` the
    declared periods (a tuple of ints > 1), ``auto`` detection of further ones, ``window`` the
    length of the backbone window in the network's input (which has ``window + 1`` lead
    columns: the window, the change over the last value in backbone scales, the last value
    standardised by an EW mean and variance of the values; then the feature columns the caller
    fills).
    """

    def __init__(self, int horizon, tuple periods, bint auto, int max_lag, int window,
                 double clip=3.0):
        if horizon < 1 or window < 1 or not (clip > 0.0 and isfinite(clip)):
            raise ValueError("horizon and window must be >= 1 and clip finite > 0")
        self.horizon, self.window, self.n_lead = horizon, window, window + 2
        self.n_experts = 4
        self.clip = clip
        self.periods0, self.auto, self.max_lag = periods, auto, max_lag
        self.backbone = Backbone(horizon, periods, auto, max_lag)
        self.combiner = Combiner(self.n_experts, horizon)
        self.combiner.set_eligible(NETWORK, False)
        self.conformal = Conformal(horizon)
        self.t = 0
        self.n_learned = 0
        self.prev = 0.0
        self.lmean = 0.0
        self.lvar = 0.0
        self._anomaly = NAN
        self._pred = NAN
        H = horizon
        self._pend, self._pscale = np.zeros(H), np.zeros(H)
        self.pend, self.pscale = _data(self._pend, H), _data(self._pscale, H)
        self._bbf = np.zeros(H)
        self.bbf = _data(self._bbf, H)
        self._lead = np.zeros(self.n_lead)
        self.lead = _data(self._lead, self.n_lead)
        self._F = np.zeros(H * self.n_experts)
        self._c, self._tg, self._f = np.zeros(H), np.zeros(H), np.zeros(self.n_experts)
        self.F, self.c = _data(self._F, H * self.n_experts), _data(self._c, H)
        self.tg, self.f = _data(self._tg, H), _data(self._f, self.n_experts)
        self._rt = np.sqrt(np.arange(1.0, H + 1.0))
        self.rt = _data(self._rt, H)
        self.net = None
        self._refresh()

    def config(self):
        return (self.horizon, self.periods0, bool(self.auto), self.max_lag, self.window,
                self.clip)

    def set_network(self, Network net, u, out):
        """Use ``net`` with the input buffer ``u`` (whose feature columns the caller fills) and
        the output buffer ``out``."""
        if net.n_in < self.n_lead or net.n_out != self.horizon:
            raise ValueError("the network does not fit this forecaster")
        self.up = _data(u, net.n_in)
        self.op = _data(out, net.n_out)
        self.net, self.u, self.out = net, u, out

    # ------------------------------------------------------------------ the C level
    cdef void _refresh(self) noexcept nogil:
        """The caches of the committed state: backbone forecasts, scale, last value, window."""
        cdef Py_ssize_t i, W = self.window
        cdef double sc
        self.backbone._forecast(self.bbf, self.horizon)
        sc = self.backbone._scale()
        if not (sc > 1e-300 and sc < 1e300):  # the backbone promises > 0; stay safe anyway
            sc = 1.0
        self.scale = sc
        self.last = self.backbone._last() if self.t > 0 else 0.0
        self.backbone._window(self.lead, W)
        for i in range(W):
            self.lead[i] = _clipv(self.lead[i], _INPUT_LIMIT) if isfinite(self.lead[i]) else 0.0
        self.lead[W] = (_clipv((self.last - self.prev) / sc, _INPUT_LIMIT)
                        if self.t >= 2 else 0.0)
        self.lead[W + 1] = (_clipv((self.last - self.lmean) / sqrt(self.lvar), _INPUT_LIMIT)
                            if self.lvar > 0.0 else 0.0)

    cdef void _experts(self, const double* o, Py_ssize_t j, double* f) noexcept nogil:
        """The experts' forecasts of step j (0-based, < horizon) from network outputs ``o``
        (NULL: none yet; the network expert is the backbone then)."""
        cdef double b = self.bbf[j]
        cdef double nb = self.last
        f[NETWORK] = nb if o == NULL else nb + self.scale * self.rt[j] * _clipv(o[j], self.clip)
        f[BACKBONE] = b
        f[LAST] = self.last
        f[SNAIVE] = self.backbone._snaive(j + 1)

    cdef int _step(self, Network net, double* u, double y) noexcept nogil:
        cdef Py_ssize_t H = self.horizon, E = self.n_experts, j
        cdef long long t = self.t
        cdef Py_ssize_t r
        cdef int st
        memcpy(u, self.lead, self.n_lead * sizeof(double))
        self.tg[0] = _clipv((y - self.last) / self.scale, self.clip)
        for j in range(1, H):
            if t - j >= 1:
                r = <Py_ssize_t>((t - j) % H)
                self.tg[j] = _clipv((y - self.pend[r]) / (self.pscale[r] * self.rt[j]), self.clip)
            else:
                self.tg[j] = NAN
        st = net._learn_multi(u, self.tg)
        if st < 0:
            return st
        # the forward pass of this step (computed before the update): the network's forecasts
        # issued from the committed state, as forecast() returned them
        for j in range(H):
            self._experts(&net.out[0], j, self.F + j * E)
        self.combiner._issue(self.F)
        self.combiner._combine_steps(self.F, self.c)  # c[j] = _combine(j + 1, F + j E)
        self.conformal._issue(self.c)
        self._pred = self.c[0]
        self._anomaly = (1.0 - self.conformal._pvalue(fabs(y - self.c[0]))) if t >= 2 else NAN
        self.combiner._observe(y)
        self.conformal._observe(y)
        # the backbone forecasts this step issued, kept until their values arrive
        r = <Py_ssize_t>(t % H)  # held the base of step t - H, whose last target came now
        self.pend[r] = self.last
        self.pscale[r] = self.scale
        self.prev = self.last
        _level(y, t, &self.lmean, &self.lvar)
        self.backbone._update(y)
        self.t = t + 1
        self.n_learned += 1
        self._refresh()
        return st

    # ------------------------------------------------------------------ Python level
    def first(self, double y):
        """Take the first value (no network step: nothing predicted it); returns a status."""
        if self.t != 0:
            raise RuntimeError("first() on a core that has seen values")
        if not (fabs(y) <= _VMAX):
            return S_TOO_LARGE
        with nogil:
            _level(y, 0, &self.lmean, &self.lvar)
            self.backbone._update(y)
            self.t = 1
            self._refresh()
        return 0

    def learn(self, double y):
        """One step with the network set by ``set_network``; see ``learn_with``."""
        return self._learn(self.net, self.up, y)

    def learn_with(self, Network net, u, double y):
        """One step of value ``y`` with ``net`` and input ``u`` (feature columns filled by the
        caller). Returns the network's status (0/1: learned; then ``pred`` is the combined
        one-step forecast, bit for bit what ``forecast(1)`` returned just before), TOO_LARGE
        for |y| beyond 1e100, or the network's negative status; nothing changes unless it was
        learned."""
        if net is None or net.n_in < self.n_lead or net.n_out != self.horizon:
            raise ValueError("the network does not fit this forecaster")
        return self._learn(net, _data(u, net.n_in), y)

    cdef object _learn(self, Network net, double* up, double y):
        if self.t < 1 or net is None:
            raise RuntimeError("learn() needs a first value and a network")
        if not (fabs(y) <= _VMAX):
            return S_TOO_LARGE
        cdef int st
        with nogil:
            st = self._step(net, up, y)
        return st

    cdef const double* _outputs(self) except? NULL:
        """Network outputs for the next step into ``out`` (NULL before there is a network):
        the lead input is written into ``u``, whose feature columns the caller filled."""
        if self.net is None:
            return NULL
        memcpy(self.up, self.lead, self.n_lead * sizeof(double))
        self.net._predict(self.up, self.op)  # sizes checked by set_network
        return self.op

    def forecast1(self):
        """The combined one-step forecast from the committed state (features filled)."""
        if self.t == 0:
            return 0.0
        cdef const double* o = self._outputs()
        self._experts(o, 0, self.f)
        return self.combiner._combine(1, self.f)

    def forecast(self, Py_ssize_t h):
        """The combined forecasts of the next ``h`` values, from the committed state (on the
        network's prediction buffers; nothing committed changes). Steps beyond the horizon H
        take the backbone's forecast of that step, the network's correction of step H and the
        combination weights of step H."""
        if h <= 0:
            return []
        if self.t == 0:
            return [0.0] * h
        cdef Py_ssize_t H = self.horizon, j
        cdef const double* o = self._outputs()
        cdef double[::1] bfull
        cdef double b
        out = []
        for j in range(min(h, H)):
            self._experts(o, j, self.f)
            out.append(self.combiner._combine(j + 1, self.f))
        if h > H:
            bfull = np.ascontiguousarray(self.backbone.forecast(h), dtype=np.float64)
            for j in range(H, h):
                b = bfull[j]
                self.f[NETWORK] = (self.last if o == NULL else self.last
                                   + self.scale * self.rt[H - 1] * _clipv(o[H - 1], self.clip))
                self.f[BACKBONE] = b
                self.f[LAST] = self.last
                self.f[SNAIVE] = self.backbone._snaive(j + 1)
                out.append(self.combiner._combine(j + 1, self.f))
        return out

    def halfwidths(self, Py_ssize_t h, double alpha):
        """Interval half-widths of steps 1..h at level ``alpha`` (steps beyond H: step H's;
        inf while the step has no scores)."""
        cdef Py_ssize_t j
        cdef double w
        out = []
        for j in range(h):
            w = self.conformal._halfwidth(min(j + 1, self.horizon), alpha)
            out.append(w if isfinite(w) and w >= 0.0 else math.inf)
        return out

    def score(self, double y):
        """1 - the conformal p-value of ``y`` as the next value (None before there are
        scores); the feature columns of ``u`` filled by the caller. Changes nothing."""
        if self.t < 2:
            return None
        c = self.forecast1()
        return 1.0 - self.conformal._pvalue(fabs(y - <double>c))

    @property
    def pred(self):
        """The combined one-step forecast of the last value learned (None: none)."""
        return None if isnan(self._pred) else self._pred

    @property
    def anomaly(self):
        """1 - p-value of the last value learned (None before there were scores)."""
        return None if isnan(self._anomaly) else self._anomaly

    @property
    def lead_input(self):
        return self._lead.copy()

    @property
    def backbone_forecast(self):
        return self._bbf.copy()

    # ------------------------------------------------------------------ state
    def get_state(self):
        return {"backbone": self.backbone.get_state(), "combiner": self.combiner.get_state(),
                "conformal": self.conformal.get_state(),
                "pend": self._pend.copy(), "pscale": self._pscale.copy(),
                "t": int(self.t), "n_learned": int(self.n_learned), "prev": float(self.prev),
                "level_mean": float(self.lmean), "level_var": float(self.lvar),
                "anomaly": self.anomaly, "pred": self.pred}

    def set_state(self, state):
        """Take over ``get_state()`` output after checking every value; nothing is assigned
        unless all of it fits (ValueError/TypeError)."""
        if type(state) is not dict or set(state) != _KEYS:
            raise ValueError(f"a forecaster core state is a dict with keys {sorted(_KEYS)}")
        cdef int H = self.horizon
        t = _count(state["t"], "the forecaster's t")
        n = _count(state["n_learned"], "the forecaster's n_learned")
        if n != max(0, t - 1):
            raise ValueError(f"the forecaster saw {t} values but took {n} network steps")
        prev = state["prev"]
        if type(prev) is not float or not (fabs(prev) <= _VMAX) or (t < 2 and prev != 0.0):
            raise ValueError(f"the value before the last must be a float in +-1e100 "
                             f"(0.0 before two values), got {prev!r}")
        lmean, lvar = state["level_mean"], state["level_var"]
        if (type(lmean) is not float or type(lvar) is not float or not fabs(lmean) <= _VMAX
                or not 0.0 <= lvar <= 1e300 or (t == 0 and (lmean != 0.0 or lvar != 0.0))):
            raise ValueError(f"the level's mean and variance must be floats in +-1e100 and "
                             f"[0, 1e300] (0.0 before any value), got {lmean!r}, {lvar!r}")
        anomaly = _opt_float(state["anomaly"], "the anomaly score", 0.0, 1.0)
        pred = _opt_float(state["pred"], "the last prediction", -1.7e308, 1.7e308)
        if (pred is None) != (t < 2) or (anomaly is None) != (t < 3):
            raise ValueError("the last prediction and anomaly score must be set exactly "
                             "once there were two and three values")
        arrays = []
        for key in ("pend", "pscale"):
            a = state[key]
            if type(a) is not np.ndarray or a.dtype != np.float64 or a.shape != (H,):
                raise ValueError(f"the forecaster's {key} must be a float64 array of shape "
                                 f"({H},)")
            if not np.all(np.isfinite(a)) or (key == "pend" and np.any(np.abs(a) > _VMAX)) or (
                    key == "pscale" and (np.any(a < 0.0) or np.any(a > 1e300))):
                raise ValueError(f"the forecaster's {key} holds values out of range")
            arrays.append(np.array(a, copy=True))
        bb = Backbone(H, self.periods0, self.auto, self.max_lag)
        bb.set_state(_plain(state["backbone"]))
        comb = Combiner(self.n_experts, H)
        comb.set_state(_plain(state["combiner"]))
        conf = Conformal(H)
        conf.set_state(_plain(state["conformal"]))
        if bb.t != t:
            raise ValueError(f"the backbone saw {bb.t} values, the forecaster {t}")
        # everything is checked: assign
        self.backbone, self.combiner, self.conformal = bb, comb, conf
        self._pend, self._pscale = arrays
        self.pend, self.pscale = _data(self._pend, H), _data(self._pscale, H)
        self.t, self.n_learned, self.prev = t, n, prev
        self.lmean, self.lvar = lmean, lvar
        self._anomaly = NAN if anomaly is None else anomaly
        self._pred = NAN if pred is None else pred
        self._refresh()

    def __reduce__(self):
        return (_rebuild_core, (self.config(), self.get_state()))

    def __sizeof__(self):
        return (object.__sizeof__(self) + sum(a.nbytes for a in (
            self._pend, self._pscale, self._bbf, self._lead, self._F, self._c, self._tg,
            self._f)) + self.backbone.__sizeof__() + self.combiner.__sizeof__()
            + self.conformal.__sizeof__())


def _rebuild_core(config, state):
    core = ForecastCore(*config)
    core.set_state(state)
    return core
