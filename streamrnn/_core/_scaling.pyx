"""Per-observation arithmetic of the estimators: online scaling, input filling, the forecaster step.

``streamrnn.base`` makes the decisions (validation, the feature -> column map, growth, errors)
and hands this module arrays and numbers; feature dicts never reach it.

Layers:
- ``Scaler``: online mean and standard deviation of one value. Welford's update, written
  once here (``_welford``), optionally exponentially weighted once ``window`` values were seen
  (weight ``1/window`` per new value, so the scale follows level shifts), and winsorised: a
  value further than ``winsorize`` standard deviations from the mean (once 10 values were
  seen) is clipped before it updates the statistics.
- ``Columns``: the same statistics per input column, and the writing of the scaled features
  (or their running means, when missing) into the network's input.
(A forecaster's per-observation arithmetic is ``streamrnn._core._forecast.ForecastCore``.)

Every update is compute-then-commit: ``propose`` computes the new statistics into a pending
slot (scratch, never state) and ``accept`` commits them, so a rejected observation leaves
everything as it was without any backup.

The arithmetic gives the same bits as the Python it replaced (the same operations in the same
order; FMA contraction is switched off for this file).
"""
import numpy as np

cimport numpy as cnp
from libc.math cimport sqrt, isfinite, fabs

cnp.import_array()

cdef extern from *:
    """
    #if defined(__clang__)
    #pragma STDC FP_CONTRACT OFF
    #elif defined(__GNUC__)
    #pragma GCC optimize ("fp-contract=off")
    #endif
    """

# Scaled values are clipped to this range, so that a wild first few observations (when the
# running standard deviation rests on two or three values) cannot saturate the network.
SCALED_LIMIT = 10.0
cdef double _LIMIT = 10.0
# Values further from 0 are refused before they touch a scaler: below it, squared deviations
# summed over any realistic stream stay far from overflow.
VALUE_LIMIT = 1e100
cdef double _VMAX = 1e100
# counters (values seen) are ints in [0, COUNT_LIMIT)
COUNT_LIMIT = 1 << 62

# status codes of propose / learn (the network's own are -1 and -2)
cdef enum:
    S_OK = 0
    S_TOO_LARGE = -3     # |value| > VALUE_LIMIT
    S_NOT_FINITE = -4    # the statistics would not be finite
OK = S_OK
TOO_LARGE = S_TOO_LARGE
NOT_FINITE = S_NOT_FINITE


cdef inline double* _data(object a, Py_ssize_t n):
    """Data pointer of an exact, 1-d, C-contiguous, writable float64 ndarray of >= n values."""
    if not cnp.PyArray_CheckExact(a):
        raise TypeError("expected a float64 ndarray")
    cdef cnp.ndarray x = <cnp.ndarray>a
    if (cnp.PyArray_NDIM(x) != 1 or cnp.PyArray_TYPE(x) != cnp.NPY_DOUBLE
            or not cnp.PyArray_IS_C_CONTIGUOUS(x) or not cnp.PyArray_ISWRITEABLE(x)
            or cnp.PyArray_DIM(x, 0) < n):
        raise ValueError(f"expected a writable contiguous float64 array of >= {n} values")
    return <double*>cnp.PyArray_DATA(x)


cdef inline double _clip(double z) noexcept nogil:
    return _LIMIT if z > _LIMIT else (-_LIMIT if z < -_LIMIT else z)


cdef inline int _welford(double v, long long n, double mean, double m2, double window,
                         long long* n1, double* mean1, double* m21) noexcept nogil:
    """The statistics after ``v``: Welford's update, exponentially weighted past ``window``."""
    if not (fabs(v) <= _VMAX):
        return S_TOO_LARGE
    cdef long long k = n + 1
    cdef double d = v - mean, mu, s
    if window > 0.0 and k > window:
        mu = mean + d / window
        s = m2 * (1.0 - 1.0 / window) + d * (v - mu)
    else:
        mu = mean + d / <double>k
        s = m2 + d * (v - mu)
    if not (isfinite(mu) and isfinite(s) and s >= 0.0):
        return S_NOT_FINITE
    n1[0] = k
    mean1[0] = mu
    m21[0] = s
    return S_OK


cdef inline double _std(long long n, double m2, double window) noexcept nogil:
    if n <= 1:
        return 0.0
    if window > 0.0 and n > window:
        return sqrt(m2 / window)
    return sqrt(m2 / <double>n)


def _check_count(v, what):
    if type(v) is not int or not 0 <= v < COUNT_LIMIT:
        raise ValueError(f"{what} must be an int in [0, 2**62), got {v!r}")


def _check_float(v, what, lo=-_VMAX, hi=_VMAX):
    if type(v) is not float or not (lo <= v <= hi):
        raise ValueError(f"{what} must be a float in [{lo}, {hi}], got {v!r}")


cdef class Scaler:
    """Online mean and standard deviation (population variance) of one value.

    ``transform`` maps to ``(v - mean) / std`` clipped to +-SCALED_LIMIT (0 while std is 0);
    ``inverse`` maps back; ``enabled=False`` makes both the identity (the statistics are kept).
    """

    cdef readonly bint enabled       # scale (else transform/inverse are the identity)
    cdef readonly double winsorize   # clip to mean +- winsorize*std once 10 values were seen (0: off)
    cdef readonly double window      # exponential weighting 1/window past window values (0: off)
    cdef readonly long long n        # values seen
    cdef readonly double mean        # running mean
    cdef readonly double m2          # (weighted) sum of squared deviations
    cdef readonly double std         # running standard deviation
    cdef long long p_n               # pending statistics (scratch)
    cdef double p_mean, p_m2, p_std

    def __init__(self, bint enabled=True, double winsorize=0.0, double window=0.0):
        self.enabled = enabled
        self.winsorize = winsorize
        self.window = window
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.std = 0.0

    cdef int _propose(self, double v) noexcept:
        cdef double c = self.winsorize, lo, hi
        if not (fabs(v) <= _VMAX):
            return S_TOO_LARGE
        if c != 0.0 and self.n >= 10 and self.std > 0.0:
            lo = self.mean - c * self.std
            hi = self.mean + c * self.std
            v = lo if v < lo else (hi if v > hi else v)
        cdef int st = _welford(v, self.n, self.mean, self.m2, self.window, &self.p_n,
                               &self.p_mean, &self.p_m2)
        if st == S_OK:
            self.p_std = _std(self.p_n, self.p_m2, self.window)
        return st

    cdef void _accept(self) noexcept:
        self.n, self.mean, self.m2, self.std = self.p_n, self.p_mean, self.p_m2, self.p_std

    cdef inline double _transform(self, double v) noexcept:
        if not self.enabled:
            return v
        if self.std <= 0.0:
            return 0.0
        return _clip((v - self.mean) / self.std)

    cdef inline double _transform_pending(self, double v) noexcept:
        if not self.enabled:
            return v
        if self.p_std <= 0.0:
            return 0.0
        return _clip((v - self.p_mean) / self.p_std)

    cdef inline double _inverse(self, double z) noexcept:
        if not self.enabled:
            return z
        return self.mean + z * self.std if self.std > 0.0 else self.mean

    def propose(self, double v):
        """Compute the statistics after ``v`` into the pending slot; returns a status (0: ok)."""
        return self._propose(v)

    def accept(self):
        """Commit what the last successful ``propose`` computed."""
        self._accept()

    def transform(self, double v):
        return self._transform(v)

    def transform_pending(self, double v):
        """``transform`` with the statistics the last ``propose`` computed."""
        return self._transform_pending(v)

    def inverse(self, double z):
        return self._inverse(z)

    def get_state(self):
        return {"n": int(self.n), "mean": float(self.mean), "m2": float(self.m2)}

    def set_state(self, state):
        """Take over ``get_state()`` output after checking every value (ValueError/TypeError;
        nothing is assigned on error)."""
        if type(state) is not dict or set(state) != {"n", "mean", "m2"}:
            raise ValueError("a scaler state is a dict with keys n, mean, m2")
        n, mean, m2 = state["n"], state["mean"], state["m2"]
        _check_count(n, "the scaler's n")
        _check_float(mean, "the scaler's mean")
        _check_float(m2, "the scaler's m2", 0.0, 1.7e308)
        if n == 0 and (mean != 0.0 or m2 != 0.0) or n == 1 and m2 != 0.0:
            raise ValueError(f"inconsistent scaler state {state}")
        self.n, self.mean, self.m2 = n, mean, m2
        self.std = _std(self.n, self.m2, self.window)

    def __reduce__(self):
        return (_rebuild_scaler, (self.enabled, self.winsorize, self.window, self.get_state()))

    def __repr__(self):
        return f"Scaler(n={self.n}, mean={self.mean}, std={self.std})"

    def __sizeof__(self):
        return object.__sizeof__(self)


def _rebuild_scaler(enabled, winsorize, window, state):
    s = Scaler(enabled, winsorize, window)
    s.set_state(state)
    return s


cdef class Columns:
    """Online statistics of the feature columns and the writing of features into the input.

    Columns ``offset .. offset + size`` of the input hold the features; a missing feature is
    written as its running mean (0 once scaled). The statistics before an observation are used
    both to predict and to learn it, so ``learn_one``'s forward pass is exactly the prediction
    made just before it.
    """

    cdef readonly Py_ssize_t offset  # input columns before the features
    cdef readonly Py_ssize_t size    # feature columns
    cdef readonly bint scale
    cdef readonly double window
    cdef object _n, _mean, _m2       # (size,) float64: values seen, mean, sum of squared deviations
    cdef double[::1] n, mean, m2
    cdef object _pj, _pn, _pmean, _pm2   # pending updates (scratch), one per present feature
    cdef Py_ssize_t p_count

    def __init__(self, Py_ssize_t offset, bint scale, Py_ssize_t size=0, double window=0.0):
        self.offset = offset
        self.scale = scale
        self.window = window
        self._alloc(size)
        self.p_count = 0

    cdef void _alloc(self, Py_ssize_t size):
        self.size = size
        self._n, self._mean, self._m2 = np.zeros(size), np.zeros(size), np.zeros(size)
        self.n, self.mean, self.m2 = self._n, self._mean, self._m2
        self._pj = np.zeros(size, dtype=np.intp)
        self._pn, self._pmean, self._pm2 = np.zeros(size), np.zeros(size), np.zeros(size)

    def __len__(self):
        return self.size

    def grown(self, Py_ssize_t k):
        """A copy with ``k`` more columns (new statistics 0); this object is not changed."""
        cdef Columns c = Columns(self.offset, self.scale, self.size + k, self.window)
        c._n[:self.size] = self._n
        c._mean[:self.size] = self._mean
        c._m2[:self.size] = self._m2
        return c

    def fill(self, u, list cols, list values, bint update):
        """Write the features ``values[i]`` of columns ``cols[i]`` (-1: no column, skipped),
        scaled with the committed statistics, into ``u`` (missing columns: their mean, 0 once
        scaled). With ``update``, also compute the statistics after them (pending until
        ``accept``). Returns -1, or the position ``i`` of a value that cannot be standardised
        (nothing is pending then)."""
        cdef Py_ssize_t off = self.offset, m = len(cols), i, j, p = 0
        cdef double* up = _data(u, off + self.size)
        cdef double* n = &self.n[0] if self.size else NULL
        cdef double* mean = &self.mean[0] if self.size else NULL
        cdef double* m2 = &self.m2[0] if self.size else NULL
        cdef double v, z, sd, nj
        cdef long long k
        cdef double mu, s
        cdef cnp.intp_t[::1] pj = self._pj
        cdef double[::1] pn = self._pn, pmean = self._pmean, pm2 = self._pm2
        if len(values) != m:
            raise ValueError("cols and values differ in length")
        self.p_count = 0
        for j in range(self.size):
            up[off + j] = 0.0 if self.scale else mean[j]
        for i in range(m):
            j = <Py_ssize_t>cols[i]
            if j < 0:
                continue
            if j >= self.size or p >= self.size:
                raise IndexError(f"column {j} out of range or given twice")
            v = <double>values[i]
            nj = n[j]
            if self.scale:
                sd = _std(<long long>nj, m2[j], self.window)
                z = (v - mean[j]) / sd if sd > 0 else 0.0
                up[off + j] = _clip(z)
            else:
                up[off + j] = v
            if update:
                if _welford(v, <long long>nj, mean[j], m2[j], self.window, &k, &mu, &s) != S_OK:
                    return i
                pj[p], pn[p], pmean[p], pm2[p] = j, <double>k, mu, s
                p += 1
        if update:
            self.p_count = p
        return -1

    def accept(self):
        """Commit the statistics the last ``fill(update=True)`` computed."""
        cdef Py_ssize_t i, j
        cdef cnp.intp_t[::1] pj = self._pj
        cdef double[::1] pn = self._pn, pmean = self._pmean, pm2 = self._pm2
        for i in range(self.p_count):
            j = pj[i]
            self.n[j], self.mean[j], self.m2[j] = pn[i], pmean[i], pm2[i]
        self.p_count = 0

    @property
    def means(self):
        return self._mean.copy()

    def get_state(self):
        return {"n": self._n.copy(), "mean": self._mean.copy(), "m2": self._m2.copy()}

    def set_state(self, state):
        """Take over ``get_state()`` output of as many columns (checked; nothing assigned on error)."""
        if type(state) is not dict or set(state) != {"n", "mean", "m2"}:
            raise ValueError("a column state is a dict with keys n, mean, m2")
        arrays = {}
        for key in ("n", "mean", "m2"):
            a = state[key]
            if type(a) is not np.ndarray or a.dtype != np.float64 or a.shape != (self.size,):
                raise ValueError(f"the column state's {key} must be a float64 array of "
                                 f"shape ({self.size},)")
            if not np.all(np.abs(a) <= _VMAX) if key != "m2" else not np.all(
                    (a >= 0.0) & (a <= 1.7e308)):
                raise ValueError(f"the column state's {key} holds values out of range")
            arrays[key] = np.array(a, dtype=np.float64, copy=True)
        n = arrays["n"]
        if not np.all((n >= 0) & (n < 2.0 ** 62) & (n == np.floor(n))):
            raise ValueError("the column state's counts must be whole numbers in [0, 2**62)")
        if np.any((n == 0) & ((arrays["mean"] != 0) | (arrays["m2"] != 0))) or np.any(
                (n == 1) & (arrays["m2"] != 0)):
            raise ValueError("inconsistent column statistics")
        self._n, self._mean, self._m2 = arrays["n"], arrays["mean"], arrays["m2"]
        self.n, self.mean, self.m2 = self._n, self._mean, self._m2
        self.p_count = 0

    def __sizeof__(self):
        return object.__sizeof__(self) + sum(a.nbytes for a in (
            self._n, self._mean, self._m2, self._pj, self._pn, self._pmean, self._pm2))

    def __reduce__(self):
        return (_rebuild_columns, (self.offset, self.scale, self.size, self.window,
                                   self.get_state()))


def _rebuild_columns(offset, scale, size, window, state):
    c = Columns(offset, scale, size, window)
    c.set_state(state)
    return c
