"""Online combination of experts per horizon step, and adaptive conformal intervals.

The readable twin of this module is ``tests/reference_combine.py``; the study that chose the
rules and defaults is ``docs/research/seasonal/README.md`` (``proto_forecaster.py``: Combiner,
ACI). Both objects are fed the same way: ``issue(...)`` with what is forecast now for the next
``horizon`` values, then ``observe(y)`` when the next value arrives. An issue made when ``t``
values had been observed forecasts value ``t + j - 1`` (0-based) at step ``j = 1..H``; the
observation of value ``n`` scores, for every step j, what was issued for it j steps before
(when ``n - j + 1`` values had been seen). Several issues between two observations: the last
one counts. Pending forecasts live in a ring keyed by the target: row ``target % H``, column
``j - 1``.

Layers:
- validation, in Python: constructor arguments and ``set_state``, which checks every field
  (types, shapes, ranges, the sorted windows against the raw ones, pending slots that could
  not have been issued yet, counters against each other) before anything is assigned;
- ``Combiner`` and ``Conformal``: extension types whose nogil methods (``_issue``,
  ``_observe``, ``_weights``, ``_combine``, ``_halfwidth``, ``_pvalue``) allocate nothing;
  the Python methods of the same names validate their arguments and call them.

Combiner (soft-min of EW absolute errors, per step j = 1..H, E experts):

    err        = min(|f_e - y|, 1e300)         f_e: expert e's forecast of y issued j steps before
    L[j, e]    = err at its first loss, then rho*L + (1 - rho)*err   (clamped to 1e300),
                 rho = min(decay, n / (n + 1)), n: its losses so far (the running mean of
                 the first errors, so the first one does not outweigh the next ~1/(1-decay))
    among the experts that are available (eligible, with a finite forecast when combining)
    and have a loss at step j ("fin"):
    lo         = min L[j, .];  rel_e = (L[j, e] - lo) / max(lo, 1e-12)
    rel_e     <- (rel_e + mix1 * r1_e) / (1 + mix1)   r1: step 1's rel (0 where step 1 has no loss)
    eta_eff    = eta * n_j / (n_j + warm_n)        n_j: observations that scored step j
    w_e        = exp(-eta_eff * rel_e) for fin experts, 0 for the others, normalised;
    no fin expert: equal weights over the available ones.

Conformal (adaptive conformal inference per step j and tracked level alpha):

    score      = min(|y - c|, 1e300)            c: the centre issued j steps before
    half-width = the ceil((1 - a)(n + 1))-th smallest of the last ``window`` scores of step j
                 (clipped to 1..n), a = alpha_t[level, j]; beyond the scores' range it goes on
                 linearly: a < a0 = 1/(n + 1): the largest x (1 + 1.25 (a0 - a)); a > 1: the
                 smallest / (1 + 1.25 (a - 1)) (so a level pushed out of (0, 1) keeps widening or
                 narrowing the interval until the misses stop or start, and alpha_t stays
                 bounded); fewer than 5 scores: +inf (no interval);
    scoring    : alpha_t += gamma * (alpha - miss), miss = score > the half-width issued with
                 the centre (only when that half-width was finite; then counted in coverage).
    other alphas (``halfwidth(j, alpha)``): the level a is interpolated linearly in alpha between
    the two tracked levels around it (a = at_i + (alpha - alpha_i)/(alpha_k - alpha_i) (at_k -
    at_i)), or shifted from the nearest tracked one outside their range (a = at_i + alpha -
    alpha_i); exact for a tracked alpha.
    p-value    : (1 + #{s >= score}) / (1 + n) among the last ``pwindow`` step-1 scores (n of
                 them; pwindow >= window, None: max(window, 100)), 1.0 when n = 0: a longer
                 window than the intervals' so that the anomaly score 1 - p resolves finer
                 (up to 1 - 1/(pwindow + 1)).
"""
import numpy as np

cimport numpy as cnp
from libc.math cimport INFINITY, NAN, ceil, fabs, isfinite, isinf, isnan

cdef extern from "_kernels.h":
    # exp without glibc's error-handling wrapper (sr_exp_nw in _kernels.h: the same bits)
    double exp "sr_exp_nw" (double x) noexcept nogil
    void _exp_init "sr_exp_nw_init" () noexcept nogil

_exp_init()

cnp.import_array()

cdef double VMAX = 1e300            # errors, scores and losses are clamped here
cdef double LO_FLOOR = 1e-12        # denominator floor of the relative losses
cdef Py_ssize_t MIN_SCORES = 5      # scores a step needs before it issues a finite half-width
P_WINDOW = 100                      # the p-value window when none is given: max(window, this)
cdef double EXTEND = 1.25           # slope of the half-width in the level beyond the scores' range
cdef long long COUNT_LIMIT = 2 ** 62  # counters saturate below this

MAX_BYTES = 2 ** 28                 # one object's buffers
MAX_EXPERTS = 64
MAX_LEVELS = 16
STEP_LIMIT = 2 ** 62


# ---------------------------------------------------------------- validation (Python)

def _int(value, name, lo, hi):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def _float(value, name, lo, hi, lo_open=False, hi_open=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    try:
        f = float(value)
    except OverflowError:
        raise ValueError(f"{name} is out of range") from None
    if not (f == f and (f > lo if lo_open else f >= lo) and (f < hi if hi_open else f <= hi)):
        raise ValueError(f"{name} must be in {'(' if lo_open else '['}{lo}, {hi}"
                         f"{')' if hi_open else ']'}, got {f}")
    return f


def _farray(value, name, shape, nan=False):
    """A C-contiguous float64 copy of ``value`` (a float64 ndarray of exactly ``shape``), no
    infinities, NaN only if ``nan``; else ValueError/TypeError."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a float64 ndarray, got {type(value).__name__}")
    if value.dtype != np.dtype(np.float64):
        raise ValueError(f"{name} must have dtype float64, got {value.dtype}")
    if value.shape != tuple(shape):
        raise ValueError(f"{name} has shape {value.shape}, expected {tuple(shape)}")
    # a copy keeps the dtype object of the value (pickle memoises one per file: an object
    # loaded from a pickle then pickles to the same bytes)
    a = np.array(value, dtype=np.float64, order="C", copy=True)
    if np.any(np.isinf(a)) or (not nan and np.any(np.isnan(a))):
        raise ValueError(f"{name} has non-finite values")
    return a


def _iarray(value, name, shape, hi=STEP_LIMIT - 1):
    """A C-contiguous int64 copy of ``value`` (an int64 ndarray of exactly ``shape``, values in
    [0, hi]); else ValueError/TypeError."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be an int64 ndarray, got {type(value).__name__}")
    if value.dtype != np.dtype(np.int64):
        raise ValueError(f"{name} must have dtype int64, got {value.dtype}")
    if value.shape != tuple(shape):
        raise ValueError(f"{name} has shape {value.shape}, expected {tuple(shape)}")
    a = np.array(value, dtype=np.int64, order="C", copy=True)
    if a.size and (a.min() < 0 or a.max() > hi):
        raise ValueError(f"{name} must hold values in [0, {hi}]")
    return a


def _keys(state, keys, what):
    if type(state) is not dict:
        raise TypeError(f"a {what} state must be a dict, got {type(state).__name__}")
    if set(state) != set(keys):
        raise ValueError(f"a {what} state has keys {sorted(map(str, state))}, expected "
                         f"{sorted(keys)}")


def _future_slots(H, t):
    """(H, H) bool: the pending slots [target % H, j - 1] that no issue made before value
    ``t`` could have filled (the issue would be in the future or before the first value)."""
    r = np.arange(H, dtype=np.int64)
    m = t + (r - t) % H                       # the pending target held by row r, in [t, t + H)
    issued = m[:, None] - r[None, :]          # values seen when step j0 + 1 of it was issued
    return (issued > t) | (issued < 0)


def _step(j, H):
    if type(j) is int and 1 <= j <= H:  # the common case, fast
        return j
    j = _int(j, "j", 1, STEP_LIMIT)
    return min(j, H)


cdef inline double _finite(object y, str name) except? -1.0:
    """y as a finite double (a float fast, else through _float's checks)."""
    cdef double v
    if type(y) is float:
        v = y
        if isfinite(v):
            return v
    return _float(y, name, -np.inf, np.inf, True, True)


cdef object _values(object x, Py_ssize_t n0, Py_ssize_t n1, str name):
    """``x`` as a C-contiguous, aligned, native float64 ndarray of shape (n0,) (n1 < 0) or
    (n0, n1) with no infinity (NaN allowed): ``x`` itself when it is one, else a converted
    copy; ValueError otherwise. The per-call path of the Python API, without NumPy calls."""
    cdef cnp.ndarray a
    cdef Py_ssize_t i, n
    cdef const double* p
    cdef bint ok = False
    if cnp.PyArray_CheckExact(x):
        a = <cnp.ndarray>x
        ok = (cnp.PyArray_TYPE(a) == cnp.NPY_DOUBLE and cnp.PyArray_IS_C_CONTIGUOUS(a)
              and cnp.PyArray_ISALIGNED(a) and cnp.PyArray_ISNOTSWAPPED(a)
              and cnp.PyArray_NDIM(a) == (1 if n1 < 0 else 2) and cnp.PyArray_DIM(a, 0) == n0
              and (n1 < 0 or cnp.PyArray_DIM(a, 1) == n1))
    if not ok:
        b = np.ascontiguousarray(x, dtype=np.float64)
        want = (int(n0),) if n1 < 0 else (int(n0), int(n1))
        if b.shape != want:
            raise ValueError(f"{name} must have shape {want}, got {b.shape}")
        a = b
    n = n0 * (1 if n1 < 0 else n1)
    p = <const double*>cnp.PyArray_DATA(a)
    for i in range(n):
        if isinf(p[i]):
            raise ValueError(f"{name} holds an infinite value (NaN marks a missing one)")
    return a


def _combiner_config(n_experts, horizon, decay, eta, mix1, warm_n):
    E = _int(n_experts, "n_experts", 1, MAX_EXPERTS)
    H = _int(horizon, "horizon", 1, 2 ** 20)
    if 8 * (H * H * E + 3 * H * E + H + 5 * E) > MAX_BYTES:
        raise ValueError(f"a Combiner of horizon {H} and {E} experts needs more than "
                         f"{MAX_BYTES} bytes: reduce the horizon")
    return (E, H, _float(decay, "decay", 0.0, 1.0, hi_open=True),
            _float(eta, "eta", 0.0, 1e300), _float(mix1, "mix1", 0.0, 1e300),
            _float(warm_n, "warm_n", 0.0, 1e300))


_COMBINER_KEYS = ("n_experts", "horizon", "decay", "eta", "mix1", "warm_n", "t", "loss",
                  "n_loss", "n_scored", "pending", "issued", "eligible")


# ---------------------------------------------------------------- Combiner

cdef class Combiner:
    """Per-step soft-min of ``n_experts`` experts by the EW absolute error of the forecast each
    made j steps before (see the module docstring for the rule).

    ``issue(F)`` takes the forecasts made now, ``F[j - 1, e]`` for steps ``j = 1..horizon``
    (NaN: expert e has none for that step); ``observe(y)`` scores what was issued for ``y``.
    ``weights(j)`` and ``combine(j, f)`` read the committed state. An expert marked not
    eligible (``set_eligible(e, False)``) gets weight 0 while its losses are still tracked, so
    it enters with its record when it is marked eligible again; at least one stays eligible.
    """

    def __init__(self, n_experts, horizon, decay=0.98, eta=40.0, mix1=3.0, warm_n=50):
        (self.n_experts, self.horizon, self.decay, self.eta, self.mix1,
         self.warm_n) = _combiner_config(n_experts, horizon, decay, eta, mix1, warm_n)
        E, H = self.n_experts, self.horizon
        self.t = 0
        self._loss_arr = np.zeros((H, E))
        self._nloss_arr = np.zeros((H, E), dtype=np.int64)
        self._nstep_arr = np.zeros(H, dtype=np.int64)
        self._pend_arr = np.full((H, H, E), np.nan)
        self._elig_arr = np.ones(E, dtype=np.int64)
        self._scratch_arr = np.zeros(4 * E)
        self._bind()

    cdef void _bind(self):
        cdef cnp.ndarray a
        a = self._loss_arr; self.L = <double*>cnp.PyArray_DATA(a)
        a = self._nloss_arr; self.nL = <long long*>cnp.PyArray_DATA(a)
        a = self._nstep_arr; self.nS = <long long*>cnp.PyArray_DATA(a)
        a = self._pend_arr; self.P = <double*>cnp.PyArray_DATA(a)
        a = self._elig_arr; self.elig = <long long*>cnp.PyArray_DATA(a)
        a = self._scratch_arr
        self.s_rel = <double*>cnp.PyArray_DATA(a)
        self.s_rel1 = self.s_rel + self.n_experts
        self.s_mask = self.s_rel + 2 * self.n_experts

    # ------------------------------------------------------------ kernels
    cdef void _issue(self, const double* F) noexcept nogil:
        cdef Py_ssize_t E = self.n_experts, H = self.horizon, j0, e, row
        cdef double* p
        for j0 in range(H):
            row = <Py_ssize_t>((self.t + j0) % H)
            p = self.P + (row * H + j0) * E
            for e in range(E):
                p[e] = F[j0 * E + e] if isfinite(F[j0 * E + e]) else NAN

    cdef void _observe(self, double y) noexcept nogil:
        if not isfinite(y):
            return
        cdef Py_ssize_t E = self.n_experts, H = self.horizon, j0, e, k
        cdef Py_ssize_t row = <Py_ssize_t>(self.t % H)
        cdef double rho, err, f
        cdef double* p
        cdef bint scored
        for j0 in range(H):
            p = self.P + (row * H + j0) * E
            scored = False
            for e in range(E):
                f = p[e]
                if isfinite(f):
                    err = fabs(f - y)
                    if not err <= VMAX:
                        err = VMAX
                    k = j0 * E + e
                    if self.nL[k] == 0:
                        self.L[k] = err
                    else:
                        # the running mean of the first errors, then (once n / (n + 1)
                        # reaches the decay) the EW average
                        rho = <double> self.nL[k] / (<double> self.nL[k] + 1.0)
                        if not (rho < self.decay):
                            rho = self.decay
                        self.L[k] = rho * self.L[k] + (1.0 - rho) * err
                        if self.L[k] > VMAX:
                            self.L[k] = VMAX
                    if self.nL[k] < COUNT_LIMIT - 1:
                        self.nL[k] += 1
                    scored = True
                p[e] = NAN
            if scored and self.nS[j0] < COUNT_LIMIT - 1:
                self.nS[j0] += 1
        if self.t < COUNT_LIMIT - 1:
            self.t += 1

    cdef void _masked(self, Py_ssize_t j, const double* f, double* w) noexcept nogil:
        # weights of step j over the experts in s_mask (written here: eligible, and with a
        # finite f[e] when f is not NULL) into w; all 0 when the mask is empty
        cdef Py_ssize_t E = self.n_experts, H = self.horizon, j0, e, k, navail = 0
        cdef double lo, lo1, den, s, n, eta_eff
        cdef double* rel = self.s_rel
        cdef double* rel1 = self.s_rel1
        cdef double* mask = self.s_mask
        cdef bint anyfin = False, anyfin1 = False
        if j > H:
            j = H
        if j < 1:
            j = 1
        j0 = j - 1
        for e in range(E):
            mask[e] = 1.0 if self.elig[e] != 0 and (f == NULL or isfinite(f[e])) else 0.0
            if mask[e] != 0.0:
                navail += 1
        if navail == 0:
            for e in range(E):
                w[e] = 0.0
            return
        lo = INFINITY
        lo1 = INFINITY
        for e in range(E):
            if mask[e] != 0.0 and self.nL[j0 * E + e] > 0:
                anyfin = True
                if self.L[j0 * E + e] < lo:
                    lo = self.L[j0 * E + e]
            if mask[e] != 0.0 and self.nL[e] > 0:
                anyfin1 = True
                if self.L[e] < lo1:
                    lo1 = self.L[e]
        s = 0.0
        if anyfin:
            den = lo if lo > LO_FLOOR else LO_FLOOR
            for e in range(E):
                k = j0 * E + e
                rel[e] = (self.L[k] - lo) / den if mask[e] != 0.0 and self.nL[k] > 0 else 0.0
            if self.mix1 > 0.0:
                den = lo1 if lo1 > LO_FLOOR else LO_FLOOR
                for e in range(E):
                    rel1[e] = ((self.L[e] - lo1) / den if anyfin1 and mask[e] != 0.0
                               and self.nL[e] > 0 else 0.0)
                for e in range(E):
                    rel[e] = (rel[e] + self.mix1 * rel1[e]) / (1.0 + self.mix1)
            eta_eff = self._eta_eff(j0)
            for e in range(E):
                k = j0 * E + e
                w[e] = exp(-eta_eff * rel[e]) if mask[e] != 0.0 and self.nL[k] > 0 else 0.0
                s += w[e]
        if not s > 0.0:  # no expert with a loss: equal weights over the available ones
            s = 0.0
            for e in range(E):
                w[e] = mask[e]
                s += w[e]
        for e in range(E):
            w[e] = w[e] / s

    cdef double _eta_eff(self, Py_ssize_t j0) noexcept nogil:
        """eta * n / (n + warm_n), n the observations that scored step j0 + 1."""
        cdef double n = <double>self.nS[j0]
        if n + self.warm_n > 0.0:
            return self.eta * n / (n + self.warm_n)
        return self.eta

    cdef void _weights(self, Py_ssize_t j, double* w) noexcept nogil:
        self._masked(j, NULL, w)

    cdef double _combine(self, Py_ssize_t j, const double* f) noexcept nogil:
        cdef Py_ssize_t E = self.n_experts, e
        cdef double* w = self.s_rel + 3 * E
        cdef double acc = 0.0
        cdef bint any = False
        self._masked(j, f, w)
        for e in range(E):
            if self.s_mask[e] != 0.0:
                acc += w[e] * f[e]
                any = True
        return acc if any else NAN

    cdef void _combine_steps(self, const double* F, double* c) noexcept nogil:
        """c[j0] = _combine(j0 + 1, F + j0 E) for every step j0 < H, bit for bit (the same
        operations on every element), in one pass: step 1's part of the scores (mix1 times
        its relative losses) is computed once per set of available experts, not per step."""
        cdef Py_ssize_t E = self.n_experts, H = self.horizon, j0, e, k
        cdef const double* f
        cdef double* rel = self.s_rel
        cdef double* r1m = self.s_rel1
        cdef double* w = self.s_rel + 3 * E
        cdef double lo, lo1, den, s, n, eta_eff, acc, mix1 = self.mix1, div = 1.0 + self.mix1
        cdef unsigned long long mask, have, last = 0
        cdef bint anyfin, anyfin1, cached = False
        for j0 in range(H):
            f = F + j0 * E
            mask = 0
            for e in range(E):
                if self.elig[e] != 0 and isfinite(f[e]):
                    mask |= (<unsigned long long>1) << e
            if mask == 0:
                c[j0] = NAN
                continue
            # the experts of the mask with a loss at this step, and their smallest loss
            have = 0
            lo = INFINITY
            k = j0 * E
            for e in range(E):
                if (mask >> e) & 1 and self.nL[k + e] > 0:
                    have |= (<unsigned long long>1) << e
                    if self.L[k + e] < lo:
                        lo = self.L[k + e]
            anyfin = have != 0
            s = 0.0
            if anyfin:
                if mix1 > 0.0 and not (cached and mask == last):
                    # mix1 times step 1's relative losses over this mask
                    lo1 = INFINITY
                    anyfin1 = False
                    for e in range(E):
                        if (mask >> e) & 1 and self.nL[e] > 0:
                            anyfin1 = True
                            if self.L[e] < lo1:
                                lo1 = self.L[e]
                    den = lo1 if lo1 > LO_FLOOR else LO_FLOOR
                    for e in range(E):
                        r1m[e] = mix1 * ((self.L[e] - lo1) / den if anyfin1 and (mask >> e) & 1
                                         and self.nL[e] > 0 else 0.0)
                    cached, last = True, mask
                den = lo if lo > LO_FLOOR else LO_FLOOR
                eta_eff = self._eta_eff(j0)
                for e in range(E):
                    if (have >> e) & 1:
                        rel[e] = (self.L[k + e] - lo) / den
                        if mix1 > 0.0:
                            rel[e] = (rel[e] + r1m[e]) / div
                        w[e] = exp(-eta_eff * rel[e])
                    else:
                        w[e] = 0.0
                    s += w[e]
            if not s > 0.0:  # no expert with a loss: equal weights over the available ones
                s = 0.0
                for e in range(E):
                    w[e] = 1.0 if (mask >> e) & 1 else 0.0
                    s += w[e]
            acc = 0.0
            for e in range(E):
                if (mask >> e) & 1:
                    acc += (w[e] / s) * f[e]
            c[j0] = acc

    # ------------------------------------------------------------ Python API
    def issue(self, F):
        """Take the expert forecasts made now: ``F[j - 1, e]`` for steps 1..horizon
        (a (horizon, n_experts) array; NaN: no forecast of that expert for that step)."""
        cdef cnp.ndarray a = _values(F, self.horizon, self.n_experts, "F")
        self._issue(<const double*>cnp.PyArray_DATA(a))

    def observe(self, y):
        """Score the forecasts issued for the value ``y`` (finite) and advance one value."""
        self._observe(_finite(y, "y"))

    def weights(self, j):
        """The weights of step ``j`` (>= 1; j > horizon uses step horizon) over the eligible
        experts, an (n_experts,) array summing to 1."""
        cdef Py_ssize_t jj = _step(j, self.horizon)
        w = np.zeros(self.n_experts)
        cdef double[::1] v = w
        with nogil:
            self._weights(jj, &v[0])
        return w

    def combine(self, j, f):
        """The combination at step ``j`` of the expert forecasts ``f`` ((n_experts,); NaN:
        the expert has none, and the weights are taken over the others)."""
        cdef Py_ssize_t jj = _step(j, self.horizon)
        cdef cnp.ndarray a = _values(f, self.n_experts, -1, "f")
        cdef double out = self._combine(jj, <const double*>cnp.PyArray_DATA(a))
        if isnan(out):
            raise ValueError("no eligible expert has a forecast")
        return out

    def combine_steps(self, F):
        """The combinations of every step at once: ``out[j - 1] = combine(j, F[j - 1])`` for
        j = 1..horizon, bit for bit (NaN where no eligible expert has a forecast); the path
        the forecaster takes once per value."""
        cdef cnp.ndarray a = _values(F, self.horizon, self.n_experts, "F")
        out = np.empty(self.horizon)
        cdef double[::1] o = out
        self._combine_steps(<const double*>cnp.PyArray_DATA(a), &o[0])
        return out

    def set_eligible(self, e, eligible):
        """Mark expert ``e`` eligible (True) or not (False: weight 0, losses still tracked)."""
        e = _int(e, "e", 0, self.n_experts - 1)
        if not isinstance(eligible, (bool, np.bool_)):
            raise TypeError(f"eligible must be a bool, got {type(eligible).__name__}")
        if not eligible and int(self._elig_arr.sum()) - int(self._elig_arr[e] != 0) == 0:
            raise ValueError("at least one expert must stay eligible")
        self.elig[e] = 1 if eligible else 0

    @property
    def eligible(self):
        return tuple(bool(v) for v in self._elig_arr)

    @property
    def losses(self):
        """Copy of the EW absolute errors, (horizon, n_experts) (NaN: no loss yet)."""
        out = np.array(self._loss_arr, copy=True)
        out[self._nloss_arr == 0] = np.nan
        return out

    # ------------------------------------------------------------ state
    def get_state(self):
        """``{"n_experts", "horizon", "decay", "eta", "mix1", "warm_n", "t", "loss": (H, E),
        "n_loss": (H, E) int64, "n_scored": (H,) int64, "pending": (H, H, E) (0 where none),
        "issued": (H, H, E) int64 (1: a forecast is pending there), "eligible": tuple of E
        bools}`` (arrays are copies; every value finite)."""
        issued = ~np.isnan(self._pend_arr)
        pending = np.array(self._pend_arr, copy=True)  # dtypes follow the held arrays'
        pending[~issued] = 0.0
        return {"n_experts": int(self.n_experts), "horizon": int(self.horizon),
                "decay": float(self.decay), "eta": float(self.eta), "mix1": float(self.mix1),
                "warm_n": float(self.warm_n), "t": int(self.t),
                "loss": np.array(self._loss_arr, copy=True),
                "n_loss": np.array(self._nloss_arr, copy=True),
                "n_scored": np.array(self._nstep_arr, copy=True),
                "pending": pending,
                "issued": issued.astype(self._nloss_arr.dtype),
                "eligible": self.eligible}

    @staticmethod
    def _check(state):
        """The validated, normalised fields of a state (any configuration), or an error."""
        _keys(state, _COMBINER_KEYS, "Combiner")
        cfg = _combiner_config(*(state[k] for k in _COMBINER_KEYS[:6]))
        E, H = cfg[0], cfg[1]
        t = _int(state["t"], "the Combiner's t", 0, STEP_LIMIT - 1)
        L = _farray(state["loss"], "the Combiner's loss", (H, E))
        nL = _iarray(state["n_loss"], "the Combiner's n_loss", (H, E))
        nS = _iarray(state["n_scored"], "the Combiner's n_scored", (H,))
        P = _farray(state["pending"], "the Combiner's pending", (H, H, E))
        iss = _iarray(state["issued"], "the Combiner's issued", (H, H, E), 1)
        if np.any(P[iss == 0] != 0.0):
            raise ValueError("the Combiner's pending must be 0 where nothing was issued")
        el = state["eligible"]
        if type(el) not in (tuple, list) or len(el) != E or any(
                type(v) is not bool for v in el):
            raise TypeError(f"the Combiner's eligible must be a tuple of {E} bools")
        if not any(el):
            raise ValueError("the Combiner's eligible has no eligible expert")
        if np.any(L < 0.0) or np.any(L > VMAX):
            raise ValueError(f"the Combiner's loss must be in [0, {VMAX}]")
        if np.any(L[nL == 0] != 0.0):
            raise ValueError("the Combiner's loss is nonzero where no loss has matured")
        if np.any(nL > nS[:, None]) or np.any(nS > t):
            raise ValueError("the Combiner's counters do not fit (n_loss <= n_scored <= t)")
        future = _future_slots(H, t)
        if np.any(iss[future] != 0):
            raise ValueError("the Combiner's pending holds a forecast that cannot have been "
                             "issued yet")
        P[iss == 0] = np.nan
        return cfg, t, L, nL, nS, P, np.array([1 if v else 0 for v in el], dtype=np.int64)

    def set_state(self, state):
        """Take over ``get_state()`` output of a Combiner configured like this one, after
        checking all of it (ValueError/TypeError; nothing is assigned on error)."""
        cfg, t, L, nL, nS, P, el = Combiner._check(state)
        mine = (self.n_experts, self.horizon, self.decay, self.eta, self.mix1, self.warm_n)
        if cfg != mine:
            raise ValueError(f"the state is for a Combiner{cfg}, this one is Combiner{mine}")
        self._take(t, L, nL, nS, P, el)

    def _take(self, t, L, nL, nS, P, el):
        self.t = t
        self._loss_arr, self._nloss_arr, self._nstep_arr = L, nL, nS
        self._pend_arr, self._elig_arr = P, el
        self._bind()

    @classmethod
    def from_state(cls, state):
        """A new Combiner from ``get_state()`` output (validated as ``set_state``)."""
        cfg, t, L, nL, nS, P, el = Combiner._check(state)
        cdef Combiner c = Combiner(*cfg)
        c._take(t, L, nL, nS, P, el)
        return c

    def __reduce__(self):
        return (_combiner_from_state, (self.get_state(),))

    def __sizeof__(self):
        return object.__sizeof__(self) + sum(a.nbytes for a in (
            self._loss_arr, self._nloss_arr, self._nstep_arr, self._pend_arr, self._elig_arr,
            self._scratch_arr))

    def __repr__(self):
        return (f"Combiner(n_experts={self.n_experts}, horizon={self.horizon}, "
                f"decay={self.decay}, eta={self.eta}, mix1={self.mix1}, warm_n={self.warm_n}, "
                f"t={self.t})")


def _combiner_from_state(state):
    """Unpickling entry point: ``Combiner.from_state``."""
    return Combiner.from_state(state)


# ---------------------------------------------------------------- Conformal

cdef inline double _extended_quantile(const double* s, long long c, double a) noexcept nogil:
    """``sorted_quantile`` of the c ascending scores s, continued linearly beyond their range:
    the largest x (1 + EXTEND (a0 - a)) for a < a0 = 1/(c + 1) (where the conformal rank
    reaches the largest), the smallest / (1 + EXTEND (a - 1)) for a > 1; inf below MIN_SCORES
    scores."""
    cdef double a0
    if c < MIN_SCORES:
        return INFINITY
    a0 = 1.0 / <double>(c + 1)
    if a < a0:
        return s[c - 1] * (1.0 + EXTEND * (a0 - a))
    if a > 1.0:
        return s[0] / (1.0 + EXTEND * (a - 1.0))
    return sorted_quantile(s, c, MIN_SCORES, a)


def _conformal_config(horizon, alphas, window, gamma, pwindow):
    H = _int(horizon, "horizon", 1, 2 ** 20)
    if type(alphas) not in (tuple, list) or not 1 <= len(alphas) <= MAX_LEVELS:
        raise TypeError(f"alphas must be a tuple of 1 to {MAX_LEVELS} levels")
    al = tuple(_float(a, "an alpha", 0.0, 1.0, True, True) for a in alphas)
    if any(b <= a for a, b in zip(al, al[1:])):
        raise ValueError(f"alphas must be strictly increasing, got {al}")
    W = _int(window, "window", MIN_SCORES, 2 ** 20)
    P = max(W, P_WINDOW) if pwindow is None else _int(pwindow, "pwindow", W, 2 ** 20)
    A = len(al)
    if 8 * (2 * H * W + 2 * P + 2 * H + 3 * A * H + H * H * (1 + A) + A) > MAX_BYTES:
        raise ValueError(f"a Conformal of horizon {H}, window {W} and pwindow {P} needs more "
                         f"than {MAX_BYTES} bytes: reduce the horizon or the windows")
    return H, al, W, _float(gamma, "gamma", 0.0, 1.0), P


_CONFORMAL_KEYS = ("horizon", "alphas", "window", "gamma", "pwindow", "t", "scores", "sorted",
                   "count", "pos", "alpha_t", "centres", "issued", "halfwidths", "bounded",
                   "hits", "n_scored", "pscores", "psorted", "pcount", "ppos")


cdef void _ring_insert(double* r, double* v, long long* cnt, long long* pos, Py_ssize_t W,
                       double s) noexcept nogil:
    # the score s enters a window of W scores (the oldest leaves when it is full): the raw
    # ring r (next write at pos) and the sorted copy v (first cnt used), O(W)
    cdef Py_ssize_t lo, hi, mid, k
    cdef long long c = cnt[0]
    cdef Py_ssize_t p = <Py_ssize_t>pos[0]
    cdef double old
    if c < W:
        k = <Py_ssize_t>c
        while k > 0 and v[k - 1] > s:
            v[k] = v[k - 1]
            k -= 1
        v[k] = s
        cnt[0] = c + 1
    else:
        old = r[p]
        lo = 0
        hi = W
        while lo < hi:  # first index with v >= old (the oldest score is there)
            mid = (lo + hi) // 2
            if v[mid] < old:
                lo = mid + 1
            else:
                hi = mid
        k = lo if lo < W else W - 1
        if s >= old:
            while k + 1 < W and v[k + 1] < s:
                v[k] = v[k + 1]
                k += 1
        else:
            while k > 0 and v[k - 1] > s:
                v[k] = v[k - 1]
                k -= 1
        v[k] = s
    r[p] = s
    pos[0] = (p + 1) % W


def _check_ring(raw, srt, c, p, W, t, what):
    """The checks of one score window (raw ring, sorted copy, count c, position p)."""
    if c > t:
        raise ValueError("the Conformal holds more scores than values observed")
    if c < W and p != c:
        raise ValueError(f"the Conformal's pos does not fit its count ({what})")
    if np.any(raw[c:] != 0.0) or np.any(srt[c:] != 0.0):
        raise ValueError(f"the Conformal's unused score slots must be 0 ({what})")
    if not np.array_equal(np.sort(raw[:c]), srt[:c]):
        raise ValueError(f"the Conformal's sorted window of {what} is not its scores sorted")


def _arrival(raw, c, p, W):
    """The scores of a window in arrival order, oldest first."""
    return raw[:c] if c < W else np.concatenate([raw[p:], raw[:p]])


cdef class Conformal:
    """Adaptive conformal intervals per horizon step (see the module docstring for the rule).

    ``issue(centres)`` takes the combined forecasts made now for steps 1..horizon and stores
    them with the half-widths issued for every tracked level; ``observe(y)`` scores them (the
    miss is judged against the half-width that was issued, not today's); ``halfwidth(j,
    alpha)``, ``pvalue(score)``, ``pvalue_y(y)`` and ``coverage(j, alpha)`` read the state.
    """

    def __init__(self, horizon, alphas=(0.05, 0.1, 0.2), window=20, gamma=0.46, pwindow=None):
        self.horizon, self.alphas, self.window, self.gamma, self.pwindow = _conformal_config(
            horizon, alphas, window, gamma, pwindow)
        H, W, A = self.horizon, self.window, len(self.alphas)
        self.n_levels = A
        self.t = 0
        self._alpha_arr = np.array(self.alphas, dtype=np.float64)
        self._raw_arr = np.zeros((H, W))
        self._sorted_arr = np.zeros((H, W))
        self._count_arr = np.zeros(H, dtype=np.int64)
        self._pos_arr = np.zeros(H, dtype=np.int64)
        self._at_arr = np.repeat(self._alpha_arr[:, None], H, axis=1)
        self._cen_arr = np.full((H, H), np.nan)
        self._hw_arr = np.full((H, H, A), np.nan)
        self._hits_arr = np.zeros((A, H), dtype=np.int64)
        self._nsc_arr = np.zeros((A, H), dtype=np.int64)
        self._praw_arr = np.zeros(self.pwindow)
        self._psorted_arr = np.zeros(self.pwindow)
        self._pcp_arr = np.zeros(2, dtype=np.int64)
        self._bind()

    cdef void _bind(self):
        cdef cnp.ndarray a
        a = self._alpha_arr; self.alpha = <double*>cnp.PyArray_DATA(a)
        a = self._raw_arr; self.raw = <double*>cnp.PyArray_DATA(a)
        a = self._sorted_arr; self.srt = <double*>cnp.PyArray_DATA(a)
        a = self._count_arr; self.cnt = <long long*>cnp.PyArray_DATA(a)
        a = self._pos_arr; self.pos = <long long*>cnp.PyArray_DATA(a)
        a = self._at_arr; self.at = <double*>cnp.PyArray_DATA(a)
        a = self._cen_arr; self.cen = <double*>cnp.PyArray_DATA(a)
        a = self._hw_arr; self.hw = <double*>cnp.PyArray_DATA(a)
        a = self._hits_arr; self.hits = <long long*>cnp.PyArray_DATA(a)
        a = self._nsc_arr; self.nsc = <long long*>cnp.PyArray_DATA(a)
        a = self._praw_arr; self.praw = <double*>cnp.PyArray_DATA(a)
        a = self._psorted_arr; self.psrt = <double*>cnp.PyArray_DATA(a)
        a = self._pcp_arr; self.pcp = <long long*>cnp.PyArray_DATA(a)

    # ------------------------------------------------------------ kernels
    cdef double _quantile(self, Py_ssize_t j0, double a) noexcept nogil:
        return _extended_quantile(self.srt + j0 * self.window, self.cnt[j0], a)

    cdef double _level(self, Py_ssize_t j0, double alpha) noexcept nogil:
        return level_at(self.alpha, self.at, self.n_levels, self.horizon, j0, alpha)

    cdef void _insert(self, Py_ssize_t j0, double s) noexcept nogil:
        # the score s enters step j0's window (the raw ring and the sorted copy); step 1's also
        # enters the p-value window
        _ring_insert(self.raw + j0 * self.window, self.srt + j0 * self.window, self.cnt + j0,
                     self.pos + j0, self.window, s)
        if j0 == 0:
            _ring_insert(self.praw, self.psrt, self.pcp, self.pcp + 1, self.pwindow, s)

    cdef void _issue(self, const double* centres) noexcept nogil:
        cdef Py_ssize_t H = self.horizon, A = self.n_levels, j0, a, row
        cdef double c
        for j0 in range(H):
            row = <Py_ssize_t>((self.t + j0) % H)
            c = centres[j0]
            if isfinite(c):
                self.cen[row * H + j0] = c
                for a in range(A):
                    self.hw[(row * H + j0) * A + a] = self._quantile(j0, self.at[a * H + j0])
            else:
                self.cen[row * H + j0] = NAN
                for a in range(A):
                    self.hw[(row * H + j0) * A + a] = NAN

    cdef void _observe(self, double y) noexcept nogil:
        if not isfinite(y):
            return
        cdef Py_ssize_t H = self.horizon, A = self.n_levels, j0, a, k
        cdef Py_ssize_t row = <Py_ssize_t>(self.t % H)
        cdef double c, s, h, miss
        for j0 in range(H):
            c = self.cen[row * H + j0]
            if isnan(c):
                continue
            s = fabs(y - c)
            if not s <= VMAX:
                s = VMAX
            for a in range(A):
                h = self.hw[(row * H + j0) * A + a]
                if isfinite(h):
                    miss = 1.0 if s > h else 0.0
                    k = a * H + j0
                    self.at[k] += self.gamma * (self.alpha[a] - miss)
                    if self.nsc[k] < COUNT_LIMIT - 1:
                        self.nsc[k] += 1
                        if miss == 0.0:
                            self.hits[k] += 1
                self.hw[(row * H + j0) * A + a] = NAN
            self._insert(j0, s)
            self.cen[row * H + j0] = NAN
        if self.t < COUNT_LIMIT - 1:
            self.t += 1

    cdef double _halfwidth(self, Py_ssize_t j, double alpha) noexcept nogil:
        if j > self.horizon:
            j = self.horizon
        if j < 1:
            j = 1
        return self._quantile(j - 1, self._level(j - 1, alpha))

    cdef double _pvalue(self, double score) noexcept nogil:
        cdef long long c = self.pcp[0]
        cdef Py_ssize_t lo = 0, hi, mid
        cdef const double* v = self.psrt
        if c == 0 or isnan(score):
            return 1.0
        hi = <Py_ssize_t>c
        while lo < hi:  # first index with v >= score
            mid = (lo + hi) // 2
            if v[mid] < score:
                lo = mid + 1
            else:
                hi = mid
        return (1.0 + <double>(c - lo)) / (1.0 + <double>c)

    cdef double _pvalue_y(self, double y) noexcept nogil:
        cdef double c = self.cen[(self.t % self.horizon) * self.horizon]
        cdef double s
        if isnan(c) or isnan(y):
            return 1.0
        s = fabs(y - c)
        if not s <= VMAX:
            s = VMAX
        return self._pvalue(s)

    # ------------------------------------------------------------ Python API
    def issue(self, centres):
        """Take the combined forecasts made now for steps 1..horizon ((horizon,); NaN: none
        for that step) and the half-widths issued with them."""
        cdef cnp.ndarray a = _values(centres, self.horizon, -1, "centres")
        self._issue(<const double*>cnp.PyArray_DATA(a))

    def observe(self, y):
        """Score the intervals issued for the value ``y`` (finite) and advance one value."""
        self._observe(_finite(y, "y"))

    def halfwidth(self, j, alpha=0.1):
        """Half-width of the interval at level 1 - ``alpha`` of step ``j`` (>= 1; j > horizon
        uses step horizon) from the current state: +inf until the step has 5 scores."""
        cdef Py_ssize_t jj = _step(j, self.horizon)
        cdef double a = _float(alpha, "alpha", 0.0, 1.0, True, True)
        return float(self._halfwidth(jj, a))

    def alpha_t(self, j, alpha):
        """The learned level used for ``alpha`` at step ``j`` (interpolated if not tracked)."""
        cdef Py_ssize_t jj = _step(j, self.horizon)
        cdef double a = _float(alpha, "alpha", 0.0, 1.0, True, True)
        return float(self._level(jj - 1, a))

    def pvalue(self, score):
        """``(1 + #{s >= score}) / (1 + n)`` among the n step-1 scores of the p-value window
        (the last ``pwindow``; 1.0 when none)."""
        cdef double s = _float(score, "score", -np.inf, np.inf)
        return float(self._pvalue(s))

    def pvalue_y(self, y):
        """The p-value of ``y`` as the next value: ``pvalue(|y - c|)`` with c the step-1
        centre issued for it (1.0 when none was issued)."""
        cdef double yy = _float(y, "y", -np.inf, np.inf, True, True)
        return float(self._pvalue_y(yy))

    def coverage(self, j, alpha):
        """``(hits, n)``: of the n intervals of step ``j`` at the tracked level ``alpha``
        scored with a finite half-width, how many covered the value."""
        jj = _step(j, self.horizon)
        alpha = _float(alpha, "alpha", 0.0, 1.0, True, True)
        if alpha not in self.alphas:
            raise ValueError(f"alpha={alpha} is not a tracked level {self.alphas}")
        a = self.alphas.index(alpha)
        return int(self._hits_arr[a, jj - 1]), int(self._nsc_arr[a, jj - 1])

    def scores(self, j):
        """Copy of the scores held for step ``j``, sorted."""
        jj = _step(j, self.horizon)
        return np.array(self._sorted_arr[jj - 1, :self._count_arr[jj - 1]], copy=True)

    # ------------------------------------------------------------ state
    def get_state(self):
        """``{"horizon", "alphas": tuple, "window", "gamma", "t", "scores": (H, W) raw rings,
        "sorted": (H, W), "count": (H,) int64, "pos": (H,) int64, "alpha_t": (A, H),
        "centres": (H, H) (0 where none), "issued": (H, H) int64 (1: a centre is pending),
        "halfwidths": (H, H, A) (0 where none or unbounded), "bounded": (H, H, A) int64 (1:
        the half-width issued is finite), "hits": (A, H) int64, "n_scored": (A, H) int64,
        "pwindow", "pscores": (pwindow,) the p-value window's raw ring, "psorted": (pwindow,),
        "pcount", "ppos"}`` (arrays are copies; every value finite)."""
        issued = ~np.isnan(self._cen_arr)
        bounded = np.isfinite(self._hw_arr)
        centres = np.array(self._cen_arr, copy=True)  # dtypes follow the held arrays'
        centres[~issued] = 0.0
        hw = np.array(self._hw_arr, copy=True)
        hw[~bounded] = 0.0
        return {"horizon": int(self.horizon), "alphas": tuple(self.alphas),
                "window": int(self.window), "gamma": float(self.gamma),
                "pwindow": int(self.pwindow), "t": int(self.t),
                "scores": np.array(self._raw_arr, copy=True),
                "sorted": np.array(self._sorted_arr, copy=True),
                "count": np.array(self._count_arr, copy=True),
                "pos": np.array(self._pos_arr, copy=True),
                "alpha_t": np.array(self._at_arr, copy=True),
                "centres": centres,
                "issued": issued.astype(self._count_arr.dtype),
                "halfwidths": hw,
                "bounded": bounded.astype(self._count_arr.dtype),
                "hits": np.array(self._hits_arr, copy=True),
                "n_scored": np.array(self._nsc_arr, copy=True),
                "pscores": np.array(self._praw_arr, copy=True),
                "psorted": np.array(self._psorted_arr, copy=True),
                "pcount": int(self._pcp_arr[0]), "ppos": int(self._pcp_arr[1])}

    @staticmethod
    def _check(state):
        _keys(state, _CONFORMAL_KEYS, "Conformal")
        cfg = _conformal_config(*(state[k] for k in _CONFORMAL_KEYS[:5]))
        H, al, W, _, P = cfg
        A = len(al)
        t = _int(state["t"], "the Conformal's t", 0, STEP_LIMIT - 1)
        raw = _farray(state["scores"], "the Conformal's scores", (H, W))
        srt = _farray(state["sorted"], "the Conformal's sorted", (H, W))
        cnt = _iarray(state["count"], "the Conformal's count", (H,), W)
        pos = _iarray(state["pos"], "the Conformal's pos", (H,), W - 1)
        at = _farray(state["alpha_t"], "the Conformal's alpha_t", (A, H))
        cen = _farray(state["centres"], "the Conformal's centres", (H, H))
        iss = _iarray(state["issued"], "the Conformal's issued", (H, H), 1)
        hw = _farray(state["halfwidths"], "the Conformal's halfwidths", (H, H, A))
        bnd = _iarray(state["bounded"], "the Conformal's bounded", (H, H, A), 1)
        hits = _iarray(state["hits"], "the Conformal's hits", (A, H))
        nsc = _iarray(state["n_scored"], "the Conformal's n_scored", (A, H))
        praw = _farray(state["pscores"], "the Conformal's pscores", (P,))
        psrt = _farray(state["psorted"], "the Conformal's psorted", (P,))
        pc = _int(state["pcount"], "the Conformal's pcount", 0, P)
        pp = _int(state["ppos"], "the Conformal's ppos", 0, P - 1)
        if (np.any(raw < 0.0) or np.any(raw > VMAX) or np.any(praw < 0.0)
                or np.any(praw > VMAX)):
            raise ValueError(f"the Conformal's scores must be in [0, {VMAX}]")
        for j0 in range(H):
            _check_ring(raw[j0], srt[j0], int(cnt[j0]), int(pos[j0]), W, t, f"step {j0 + 1}")
        _check_ring(praw, psrt, pc, pp, P, t, "the p-values")
        # both windows hold the newest step-1 scores: the same ones where they overlap
        c0 = int(cnt[0])
        if c0 != min(pc, W) or not np.array_equal(
                _arrival(raw[0], c0, int(pos[0]), W),
                _arrival(praw, pc, pp, P)[pc - c0:]):
            raise ValueError("the Conformal's p-value window does not end with step 1's scores")
        if np.any(np.abs(at) > 1e300):
            raise ValueError("the Conformal's alpha_t is out of range")
        if np.any(hits > nsc) or np.any(nsc > t):
            raise ValueError("the Conformal's counters do not fit (hits <= n_scored <= t)")
        if np.any(cen[iss == 0] != 0.0):
            raise ValueError("the Conformal's centres must be 0 where nothing was issued")
        if np.any(bnd[iss == 0] != 0):
            raise ValueError("the Conformal's bounded must be 0 where no centre is pending")
        if np.any(hw[bnd == 0] != 0.0):
            raise ValueError("the Conformal's halfwidths must be 0 where none is bounded")
        if np.any(hw < 0.0):
            raise ValueError("the Conformal's halfwidths must be >= 0")
        if np.any(iss[_future_slots(H, t)] != 0):
            raise ValueError("the Conformal's centres hold one that cannot have been issued "
                             "yet")
        cen[iss == 0] = np.nan
        hw[bnd == 0] = np.inf
        hw[iss == 0] = np.nan
        return (cfg, t, raw, srt, cnt, pos, at, cen, hw, hits, nsc, praw, psrt,
                np.array([pc, pp], dtype=np.int64))

    def set_state(self, state):
        """Take over ``get_state()`` output of a Conformal configured like this one, after
        checking all of it (ValueError/TypeError; nothing is assigned on error)."""
        checked = Conformal._check(state)
        cfg = checked[0]
        mine = (self.horizon, self.alphas, self.window, self.gamma, self.pwindow)
        if cfg != mine:
            raise ValueError(f"the state is for a Conformal{cfg} (horizon, alphas, window, "
                             f"gamma, pwindow), this one is Conformal{mine}")
        self._take(*checked[1:])

    def _take(self, t, raw, srt, cnt, pos, at, cen, hw, hits, nsc, praw, psrt, pcp):
        self.t = t
        self._raw_arr, self._sorted_arr, self._count_arr, self._pos_arr = raw, srt, cnt, pos
        self._at_arr, self._cen_arr, self._hw_arr = at, cen, hw
        self._hits_arr, self._nsc_arr = hits, nsc
        self._praw_arr, self._psorted_arr, self._pcp_arr = praw, psrt, pcp
        self._bind()

    @classmethod
    def from_state(cls, state):
        """A new Conformal from ``get_state()`` output (validated as ``set_state``)."""
        checked = Conformal._check(state)
        cdef Conformal c = Conformal(*checked[0])
        c._take(*checked[1:])
        return c

    def __reduce__(self):
        return (_conformal_from_state, (self.get_state(),))

    def __sizeof__(self):
        return object.__sizeof__(self) + sum(a.nbytes for a in (
            self._alpha_arr, self._raw_arr, self._sorted_arr, self._count_arr, self._pos_arr,
            self._at_arr, self._cen_arr, self._hw_arr, self._hits_arr, self._nsc_arr,
            self._praw_arr, self._psorted_arr, self._pcp_arr))

    def __repr__(self):
        return (f"Conformal(horizon={self.horizon}, alphas={self.alphas}, "
                f"window={self.window}, gamma={self.gamma}, pwindow={self.pwindow}, "
                f"t={self.t})")


def _conformal_from_state(state):
    """Unpickling entry point: ``Conformal.from_state``."""
    return Conformal.from_state(state)
