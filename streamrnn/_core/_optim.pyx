"""Optimizers and gradient clipping on one flat parameter vector.

Layers:
- validation, in Python (``_number``, ``_counter``, ``_array``, ``check_state``): the checks
  every state from an untrusted file passes before anything is assigned; ``_network`` uses
  the same helpers;
- ``clip`` and ``apply`` are nogil loops over the flat gradient and parameter vectors; they
  allocate nothing. ``clip`` returns 0, or -1 when the gradient is not finite (nothing is
  touched then). The loops themselves are C helpers in ``_kernels.h`` (``sr_adam``,
  ``sr_rule``, ``sr_sumsq``), compiled per instruction set and chosen at import;
- ``Optimizer`` is one extension type for every rule; the rule is an int code chosen once in
  Python. Its moment buffers are NumPy arrays of the parameter vector's size, allocated in
  Python on first use; ``get_state``/``set_state``/``from_state`` carry them (and pickle
  goes through them).

The update rules follow river's ``optim`` classes of the same names (per coordinate, ``t`` is
the number of steps already taken):

- SGD:        w -= lr*g
- MOMENTUM:   s = rho*s + lr*g;  w -= s
- NESTEROV:   s = rho*s + lr*g;  w -= rho*s + lr*g   (river's look-ahead form, rewritten so that
              the gradient is taken at the stored weights)
- RMSPROP:    s = rho*s + (1-rho)*g^2;  w -= lr*g / sqrt(s + eps)
- ADAM:       m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
              w -= lr*sqrt(1-b2^(t+1))/(1-b1^(t+1)) * m / (sqrt(v) + eps)
- ADAGRAD:    s += g^2;  w -= lr*g / sqrt(s + eps)

Single-precision Adam moments (``single``, what ``Network.set_optimizer`` asks for; the shared
network keeps double ones): m and v are float32 arrays and each step computes, in float,
``gf = sat(float(g))``, ``m = sat(b1f*m + c1f*gf)``, ``v = min(b2f*v + c2f*gf*gf, FLT_MAX)``,
then ``w -= lr_t * double(m / (sqrtf(v) + ef))`` in double (``sr_adam_m32``; b1f, c1f, b2f,
c2f, ef the floats nearest b1, 1 - b1, b2, 1 - b2, eps; sat clamps to +-FLT_MAX, so the moments
stay finite whatever the gradient). Every float operation is correctly rounded, so every
instruction set gives the same bits; the moments' relative precision (2^-24) is far below
their change from step to step. The state keeps float64 arrays (each float32 moment exactly);
a state whose moments are not float32 values (a double optimizer's, an older version's) loads
with each moment rounded to the nearest float32 and is refused (ValueError) when a moment is
beyond float32's range (it would round to infinity). The other rules ignore ``single``.
"""
import numpy as np

from libc.math cimport sqrt, isfinite, pow


cdef extern from "_kernels.h":
    void sr_adam(Py_ssize_t n, double* w, const double* g, double* m, double* v, double a,
                 double b1, double b2, double eps) noexcept nogil
    void sr_rule(int kind, Py_ssize_t n, double* w, const double* g, double* s, double lr,
                 double rho, double eps) noexcept nogil
    double sr_sumsq(Py_ssize_t n, const double* g) noexcept nogil
    void sr_adam_scaled(Py_ssize_t n, double* w, double* g, double* m, double* v, double a,
                        double b1, double b2, double eps, double scale) noexcept nogil
    void sr_scale(Py_ssize_t n, double* g, double scale) noexcept nogil
    void sr_adam_m32(Py_ssize_t n, double* w, const double* g, float* m, float* v, double a,
                     double b1, double b2, double eps) noexcept nogil
    void sr_adam_scaled_m32(Py_ssize_t n, double* w, double* g, float* m, float* v,
                            double a, double b1, double b2, double eps,
                            double scale) noexcept nogil
    int sr_select(const char* name) noexcept nogil

from streamrnn._core._cells import ISA as _ISA

# this module's copy of the C helpers: the one _cells chose from STREAMRNN_ISA
sr_select(_ISA.encode("ascii"))

SGD = K_SGD
MOMENTUM = K_MOMENTUM
NESTEROV = K_NESTEROV
RMSPROP = K_RMSPROP
ADAM = K_ADAM
ADAGRAD = K_ADAGRAD

_NAMES = {SGD: "SGD", MOMENTUM: "Momentum", NESTEROV: "NesterovMomentum", RMSPROP: "RMSProp",
          ADAM: "Adam", ADAGRAD: "AdaGrad"}


# ---------------------------------------------------------------- validation (Python)
# States come from untrusted files: every check here runs before anything is assigned.

STEP_LIMIT = 2 ** 62          # step counters live in [0, STEP_LIMIT)

_OPT_KEYS = frozenset(("kind", "lr", "beta_1", "beta_2", "eps", "rho", "clip_value",
                       "clip_norm", "t", "m", "v"))


def _number(value, name):
    """A finite float from an int or float (never a bool, str or array), else ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    try:
        f = float(value)
    except OverflowError:
        raise ValueError(f"{name} is out of range") from None
    if not isfinite(f):
        raise ValueError(f"{name} must be finite, got {f}")
    return f


def _counter(value, name):
    """An int in [0, STEP_LIMIT) (never a bool or float), else ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    if not 0 <= v < STEP_LIMIT:
        raise ValueError(f"{name} must be in [0, 2**62), got {v}")
    return v


def _array(value, name, shape):
    """A C-contiguous float64 copy of ``value``, which must be a float64 ndarray of exactly
    ``shape`` with only finite values, else ValueError (no casting from other dtypes)."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name} must be a float64 ndarray, got {type(value).__name__}")
    if value.dtype != np.dtype(np.float64):
        raise ValueError(f"{name} must have dtype float64, got {value.dtype}")
    if value.shape != tuple(shape):
        raise ValueError(f"{name} has shape {value.shape}, expected {tuple(shape)}")
    # astype: a new array with NumPy's own float64 dtype object (an unpickled array carries
    # another, equal one, and a pickle of a state mixing the two differs in its memo)
    a = value.astype(np.float64, order="C")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite values")
    return a


def _check_hyper(kind, lr, beta_1, beta_2, eps, rho, clip_value, clip_norm):
    """Hyper-parameters as finite floats within the ranges their rule needs, else ValueError."""
    if isinstance(kind, (bool, np.bool_)) or not isinstance(kind, (int, np.integer)) \
            or int(kind) not in _NAMES:
        raise ValueError(f"unknown optimizer code {kind!r}")
    kind = int(kind)
    lr, beta_1, beta_2, eps, rho, clip_value, clip_norm = (
        _number(v, n) for v, n in ((lr, "lr"), (beta_1, "beta_1"), (beta_2, "beta_2"),
                                   (eps, "eps"), (rho, "rho"), (clip_value, "clip_value"),
                                   (clip_norm, "clip_norm")))
    if lr < 0.0:
        raise ValueError(f"the learning rate must be a finite number >= 0, got {lr}")
    if kind == K_ADAM and not (0.0 <= beta_1 < 1.0 and 0.0 <= beta_2 < 1.0):
        raise ValueError(f"Adam needs 0 <= beta_1, beta_2 < 1, got {beta_1}, {beta_2}")
    if eps < 0.0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if kind in (K_MOMENTUM, K_NESTEROV, K_RMSPROP) and not 0.0 <= rho < 1.0:
        raise ValueError(f"rho must be in [0, 1), got {rho}")
    if clip_value < 0 or clip_norm < 0:
        raise ValueError("clip_value and clip_norm must be >= 0 (0 switches them off)")
    return kind, lr, beta_1, beta_2, eps, rho, clip_value, clip_norm


_FLT_MAX = float(np.finfo(np.float32).max)
_EMPTY = np.zeros(0)
_EMPTY_F = np.zeros(0, dtype=np.float32)


def _single(a, name):
    """float64 ``a`` rounded to the nearest float32 values (IEEE round to nearest even), or
    ValueError if one of them is beyond float32's range (it would round to infinity)."""
    with np.errstate(over="ignore"):
        f = a.astype(np.float32)
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{name} has values beyond float32's range (|x| <= {_FLT_MAX:.9g}), "
                         f"in which a network keeps Adam's moments")
    return f


def check_state(state, size=None, kind=None, single=False):
    """Validate an optimizer state (see ``Optimizer.get_state``) for ``size`` parameters (any
    if None) and, if given, the rule ``kind``; returns the normalised values (hyper-parameter
    tuple, t, m, v) or raises ValueError naming the field. With ``single`` (an optimizer that
    keeps Adam's moments in float32), Adam's m and v come back as float32 arrays: each value
    rounded to the nearest float32 (exact for a state such an optimizer saved), ValueError if
    one is beyond float32's range."""
    if not isinstance(state, dict):
        raise ValueError(f"optimizer state must be a dict, got {type(state).__name__}")
    if set(state) != _OPT_KEYS:
        raise ValueError(f"optimizer state keys {sorted(map(str, state))} != {sorted(_OPT_KEYS)}")
    hyper = _check_hyper(*(state[k] for k in ("kind", "lr", "beta_1", "beta_2", "eps", "rho",
                                              "clip_value", "clip_norm")))
    if kind is not None and hyper[0] != kind:
        raise ValueError(f"optimizer state is for rule {hyper[0]}, expected {kind}")
    t = _counter(state["t"], "optimizer t")
    m = state["m"]
    if not isinstance(m, np.ndarray) or m.ndim != 1:
        raise ValueError("optimizer m must be a 1-d float64 ndarray")
    n = m.shape[0] if size is None else int(size)
    m = _array(m, "optimizer m", (n,))
    v = _array(state["v"], "optimizer v", (n if hyper[0] == K_ADAM else 0,))
    if hyper[0] == K_ADAM and np.any(v < 0.0):
        raise ValueError("optimizer v (Adam's second moment) must be >= 0")
    if hyper[0] in (K_RMSPROP, K_ADAGRAD) and np.any(m < 0.0):
        raise ValueError("optimizer m (squared-gradient accumulator) must be >= 0")
    if single and hyper[0] == K_ADAM:
        m = _single(m, "optimizer m")
        v = _single(v, "optimizer v")
    return hyper, t, m, v


cdef class Optimizer:
    """A first-order rule and clipping, applied in place to a flat parameter vector."""

    def __init__(self, kind, lr, beta_1=0.9, beta_2=0.999, eps=1e-8, rho=0.9,
                 clip_value=0.0, clip_norm=0.0, single=False):
        (self.kind, self.lr, self.beta_1, self.beta_2, self.eps, self.rho, self.clip_value,
         self.clip_norm) = _check_hyper(kind, lr, beta_1, beta_2, eps, rho, clip_value, clip_norm)
        if not isinstance(single, (bool, np.bool_)):
            raise ValueError(f"single must be a bool, got {type(single).__name__}")
        self.single = bool(single)
        self.t = 0
        self._assign(np.zeros(0, self._dtype()), np.zeros(0, self._dtype()))

    cdef bint _f32(self):
        return self.single and self.kind == K_ADAM

    def _dtype(self):
        return np.float32 if self._f32() else np.float64

    cdef void _assign(self, object m, object v):
        # m, v: validated arrays of the sizes get_state documents, float32 for single Adam
        # (_f32) and float64 otherwise
        self.m_arr = m
        self.v_arr = v
        if self._f32():
            self.mf = self.m_arr
            self.vf = self.v_arr
            self.m = _EMPTY
            self.v = _EMPTY
        else:
            self.m = self.m_arr
            self.v = self.v_arr
            self.mf = _EMPTY_F
            self.vf = _EMPTY_F
        self.size = self.m_arr.shape[0]

    cdef void _ensure(self, Py_ssize_t n):
        if self.size != n:
            self._assign(np.zeros(n, self._dtype()),
                         np.zeros(n if self.kind == K_ADAM else 0, self._dtype()))

    def use_single(self):
        """Keep Adam's moments in float32 from now on (``Network.set_optimizer`` does this; see
        the module docstring): the moments held are rounded to the nearest float32. ValueError,
        changing nothing, if one is beyond float32's range. The other rules ignore it."""
        if self.single:
            return
        if self.kind == K_ADAM:
            m = _single(self.m_arr, "optimizer m")
            v = _single(self.v_arr, "optimizer v")
            self.single = True
            self._assign(m, v)
        else:
            self.single = True

    def bind(self, Py_ssize_t n):
        """Allocate the moment buffers for a parameter vector of size ``n`` (keeps them if equal)."""
        if n < 0:
            raise ValueError("size must be >= 0")
        self._ensure(n)

    def remap(self, object index, Py_ssize_t n):
        """Move moments to a grown parameter vector: old coordinate ``j`` goes to ``index[j]``."""
        index = np.asarray(index, dtype=np.intp)
        if n < 0 or index.shape != (self.size,) or (
                self.size and (index.min() < 0 or index.max() >= n)):
            raise ValueError("remap needs one target index in [0, n) per bound coordinate")
        m = np.zeros(n, self._dtype())
        v = np.zeros(n if self.kind == K_ADAM else 0, self._dtype())
        if self.size:
            m[index] = self.m_arr
            if self.kind == K_ADAM:
                v[index] = self.v_arr
        self._assign(m, v)

    # ------------------------------------------------------------ state
    def get_state(self):
        """The rule, its hyper-parameters, the step count and float64 copies of the moments
        (exact for float32 ones): ``{"kind", "lr", "beta_1", "beta_2", "eps", "rho",
        "clip_value", "clip_norm", "t", "m": (P,), "v": (P,) for Adam else (0,)}`` with P the
        bound size (0 before ``bind``)."""
        return {"kind": int(self.kind), "lr": float(self.lr), "beta_1": float(self.beta_1),
                "beta_2": float(self.beta_2), "eps": float(self.eps), "rho": float(self.rho),
                "clip_value": float(self.clip_value), "clip_norm": float(self.clip_norm),
                "t": int(self.t), "m": np.array(self.m_arr, dtype=np.float64, copy=True),
                "v": np.array(self.v_arr, dtype=np.float64, copy=True)}

    def set_state(self, state, size=None):
        """Take over ``state`` (as ``get_state`` returns it) after validating all of it: the
        rule must be known, hyper-parameters finite and in range, ``t`` an int in
        ``[0, 2**62)``, the moments finite float64 of the documented sizes (``size`` if given;
        accumulators that feed a square root >= 0; for ``single``, moments rounded to float32
        as ``check_state`` says). Raises ValueError, changing nothing."""
        hyper, t, m, v = check_state(state, size, single=self.single)
        self._set_checked(hyper, t, m, v)

    cdef void _set_checked(self, tuple hyper, long long t, object m, object v):
        # values from check_state only (cdef: Python cannot hand it unchecked moments)
        (self.kind, self.lr, self.beta_1, self.beta_2, self.eps, self.rho, self.clip_value,
         self.clip_norm) = hyper
        self.t = t
        self._assign(m, v)

    @staticmethod
    def from_state(state, single=False):
        """A new optimizer (``single``: with float32 Adam moments) from ``get_state`` output;
        ValueError if the state is not valid."""
        if not isinstance(single, (bool, np.bool_)):
            raise ValueError(f"single must be a bool, got {type(single).__name__}")
        hyper, t, m, v = check_state(state, single=single)
        cdef Optimizer opt = Optimizer(*hyper, single=single)
        opt._set_checked(hyper, t, m, v)
        return opt

    # ------------------------------------------------------------ kernels
    cdef double _clip_factor(self, double[::1] g) noexcept nogil:
        """The value clip (in place), then the norm check: -1.0 when ``g`` is not finite, 0.0
        when no rescaling is due, else the factor the norm clip multiplies ``g`` by."""
        cdef Py_ssize_t i, n = g.shape[0]
        cdef double c = self.clip_value, s = 0.0
        if c > 0.0:
            for i in range(n):
                if g[i] > c:
                    g[i] = c
                elif g[i] < -c:
                    g[i] = -c
        s = sr_sumsq(n, &g[0])
        if not isfinite(s):
            return -1.0
        if self.clip_norm > 0.0 and s > self.clip_norm * self.clip_norm:
            return self.clip_norm / sqrt(s)
        return 0.0

    cdef int clip(self, double[::1] g) noexcept nogil:
        cdef double scale = self._clip_factor(g)
        if scale < 0.0:
            return -1
        if scale > 0.0:
            sr_scale(g.shape[0], &g[0], scale)
        return 0

    cdef int clip_apply(self, double[::1] wv, double[::1] gv) noexcept nogil:
        """``clip(g)`` then, unless it failed, ``apply(w, g)``; Adam rescales and updates in
        one pass over the vectors (the same bits as the two calls)."""
        cdef double scale = self._clip_factor(gv)
        cdef double a, b1 = self.beta_1, b2 = self.beta_2
        if scale < 0.0:
            return -1
        if scale > 0.0 and self.kind == K_ADAM:
            a = self.lr * sqrt(1.0 - pow(b2, <double>(self.t + 1))) / (1.0 - pow(b1, <double>(self.t + 1)))
            if self.single:
                sr_adam_scaled_m32(wv.shape[0], &wv[0], &gv[0], &self.mf[0], &self.vf[0], a,
                                   b1, b2, self.eps, scale)
            else:
                sr_adam_scaled(wv.shape[0], &wv[0], &gv[0], &self.m[0], &self.v[0], a, b1, b2,
                               self.eps, scale)
            self.t += 1
            return 0
        if scale > 0.0:
            sr_scale(gv.shape[0], &gv[0], scale)
        self.apply(wv, gv)
        return 0

    cdef void apply(self, double[::1] wv, double[::1] gv) noexcept nogil:
        cdef Py_ssize_t n = wv.shape[0]
        cdef double lr = self.lr, rho = self.rho, eps = self.eps
        cdef double b1 = self.beta_1, b2 = self.beta_2, a
        cdef int kind = self.kind
        cdef double* w = &wv[0]
        cdef const double* g = &gv[0]
        if kind == K_ADAM:
            a = lr * sqrt(1.0 - pow(b2, <double>(self.t + 1))) / (1.0 - pow(b1, <double>(self.t + 1)))
            if self.single:
                sr_adam_m32(n, w, g, &self.mf[0], &self.vf[0], a, b1, b2, eps)
            else:
                sr_adam(n, w, g, &self.m[0], &self.v[0], a, b1, b2, eps)
        else:
            sr_rule(kind, n, w, g, &self.m[0], lr, rho, eps)
        self.t += 1

    def step(self, double[::1] w, double[::1] g):
        """Clip ``g`` in place and update ``w``; returns -1 (and changes nothing) if ``g`` is not finite."""
        if w.shape[0] != g.shape[0]:
            raise ValueError("w and g differ in size")
        self._ensure(w.shape[0])
        cdef int status
        with nogil:
            status = self.clip(g)
            if status == 0:
                self.apply(w, g)
        return status

    @property
    def name(self):
        return _NAMES[self.kind]

    def __reduce__(self):
        return (_optimizer_from_state, (self.get_state(), bool(self.single)))

    def __sizeof__(self):
        return object.__sizeof__(self) + self.m_arr.nbytes + self.v_arr.nbytes

    def __repr__(self):
        single = ", single" if self.single else ""
        return f"Optimizer({self.name}, lr={self.lr}, t={self.t}{single})"


def _optimizer_from_state(state, single=False):
    """Unpickling entry point: ``Optimizer.from_state`` (pickles before ``single`` pass the
    state only)."""
    return Optimizer.from_state(state, single)


def _rebuild(kind, lr, beta_1, beta_2, eps, rho, clip_value, clip_norm, t, m, v):
    """Unpickling entry point of pickles made before ``get_state`` existed (validated too)."""
    m = np.asarray(m, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if kind != K_ADAM or v.shape[0] != m.shape[0]:
        v = v[:0] if kind != K_ADAM else v
    return Optimizer.from_state(dict(kind=kind, lr=lr, beta_1=beta_1, beta_2=beta_2, eps=eps,
                                     rho=rho, clip_value=clip_value, clip_norm=clip_norm, t=t,
                                     m=m, v=v))


cdef Optimizer restore_checked(Optimizer current, object checked, bint single=False):
    """The optimizer a network holds after taking over ``checked`` (``check_state`` output
    with the same ``single``, or None: no optimizer): ``current`` itself when it runs the same
    rule, else a new one; its ``single`` is then ``single``."""
    if checked is None:
        return None
    cdef Optimizer opt = current
    if opt is None or opt.kind != checked[0][0]:
        opt = Optimizer(*checked[0], single=single)
    opt.single = single
    opt._set_checked(checked[0], checked[1], checked[2], checked[3])
    return opt
