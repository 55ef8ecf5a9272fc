"""Optimizers and gradient clipping on one flat parameter vector.

Layers:
- ``clip`` and ``apply`` are nogil loops over the flat gradient and parameter vectors; they
  allocate nothing. ``clip`` returns 0, or -1 when the gradient is not finite (nothing is
  touched then).
- ``Optimizer`` is one extension type for every rule; the rule is an int code chosen once in
  Python. Its moment buffers are NumPy arrays of the parameter vector's size, allocated in
  Python on first use and carried by pickle.

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
"""
import numpy as np

from libc.math cimport sqrt, isfinite, pow


cdef extern from *:
    """
    #include <math.h>
    #include <stddef.h>
    #if defined(__AVX512F__)
    #include <immintrin.h>
    #endif

    /* Adam on flat vectors: m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
       w -= a*m / (sqrt(v) + eps).  The divider is the bottleneck of this loop (a vector
       division costs about twice a vector square root here), so with AVX-512 the quotient
       q = num/den is formed as num * (1/den), 1/den from rcp14 refined by two Newton steps,
       and then corrected once with the exact residual num - den*q (q += r*(num - den*q)),
       which leaves q within an ulp of the correctly rounded quotient (bit-equal in practice).
       Lanes where that is not safe (den outside [1e-300, 1e300] or num not finite, e.g.
       eps = 0 with v = 0) take the exact IEEE division. */
    static void sr_adam(ptrdiff_t n, double* restrict w, const double* restrict g,
                        double* restrict m, double* restrict v, double a, double b1,
                        double b2, double eps) {
        ptrdiff_t i = 0;
        const double c1 = 1.0 - b1, c2 = 1.0 - b2;
    #if defined(__AVX512F__)
        const __m512d vb1 = _mm512_set1_pd(b1), vc1 = _mm512_set1_pd(c1);
        const __m512d vb2 = _mm512_set1_pd(b2), vc2 = _mm512_set1_pd(c2);
        const __m512d va = _mm512_set1_pd(a), veps = _mm512_set1_pd(eps);
        const __m512d one = _mm512_set1_pd(1.0), lo = _mm512_set1_pd(1e-300);
        const __m512d hi = _mm512_set1_pd(1e300);
        const __m512d absmask = _mm512_castsi512_pd(_mm512_set1_epi64(0x7fffffffffffffffLL));
        for (; i + 8 <= n; i += 8) {
            __m512d gi = _mm512_loadu_pd(g + i);
            __m512d mi = _mm512_fmadd_pd(vb1, _mm512_loadu_pd(m + i), _mm512_mul_pd(vc1, gi));
            __m512d vi = _mm512_fmadd_pd(vb2, _mm512_loadu_pd(v + i),
                                         _mm512_mul_pd(_mm512_mul_pd(vc2, gi), gi));
            __m512d den = _mm512_add_pd(_mm512_sqrt_pd(vi), veps);
            __m512d num = _mm512_mul_pd(va, mi);
            __mmask8 ok = _mm512_cmp_pd_mask(den, lo, _CMP_GE_OQ)
                        & _mm512_cmp_pd_mask(den, hi, _CMP_LE_OQ)
                        & _mm512_cmp_pd_mask(_mm512_and_pd(num, absmask), hi, _CMP_LE_OQ);
            __m512d q;
            if (ok == 0xFF) {
                __m512d r = _mm512_rcp14_pd(den);
                r = _mm512_fmadd_pd(r, _mm512_fnmadd_pd(den, r, one), r);
                r = _mm512_fmadd_pd(r, _mm512_fnmadd_pd(den, r, one), r);
                q = _mm512_mul_pd(num, r);
                q = _mm512_fmadd_pd(r, _mm512_fnmadd_pd(den, q, num), q);
            } else {
                q = _mm512_div_pd(num, den);
            }
            _mm512_storeu_pd(m + i, mi);
            _mm512_storeu_pd(v + i, vi);
            _mm512_storeu_pd(w + i, _mm512_sub_pd(_mm512_loadu_pd(w + i), q));
        }
    #endif
        for (; i < n; i++) {
            double gi = g[i];
            m[i] = b1 * m[i] + c1 * gi;
            v[i] = b2 * v[i] + c2 * gi * gi;
            w[i] -= a * m[i] / (sqrt(v[i]) + eps);
        }
    }
    """
    void sr_adam(Py_ssize_t n, double* w, const double* g, double* m, double* v, double a,
                 double b1, double b2, double eps) noexcept nogil

SGD = K_SGD
MOMENTUM = K_MOMENTUM
NESTEROV = K_NESTEROV
RMSPROP = K_RMSPROP
ADAM = K_ADAM
ADAGRAD = K_ADAGRAD

_NAMES = {SGD: "SGD", MOMENTUM: "Momentum", NESTEROV: "NesterovMomentum", RMSPROP: "RMSProp",
          ADAM: "Adam", ADAGRAD: "AdaGrad"}


cdef inline double _sumsq(Py_ssize_t n, const double* g) noexcept nogil:
    # sixteen partial sums in a fixed order (vectorisable, reproducible)
    cdef double acc[16]
    cdef double s = 0.0
    cdef Py_ssize_t j = 0, k
    for k in range(16):
        acc[k] = 0.0
    while j + 16 <= n:
        for k in range(16):
            acc[k] += g[j + k] * g[j + k]
        j += 16
    while j < n:
        s += g[j] * g[j]
        j += 1
    for k in range(8):
        acc[k] += acc[k + 8]
    for k in range(4):
        acc[k] += acc[k + 4]
    return s + ((acc[0] + acc[2]) + (acc[1] + acc[3]))


cdef class Optimizer:
    """A first-order rule and clipping, applied in place to a flat parameter vector."""

    def __init__(self, int kind, double lr, double beta_1=0.9, double beta_2=0.999,
                 double eps=1e-8, double rho=0.9, double clip_value=0.0, double clip_norm=0.0):
        if kind not in _NAMES:
            raise ValueError(f"unknown optimizer code {kind}")
        if not (lr >= 0.0) or not isfinite(lr):
            raise ValueError(f"the learning rate must be a finite number >= 0, got {lr}")
        if clip_value < 0 or clip_norm < 0:
            raise ValueError("clip_value and clip_norm must be >= 0 (0 switches them off)")
        self.kind = kind
        self.lr = lr
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.eps = eps
        self.rho = rho
        self.clip_value = clip_value
        self.clip_norm = clip_norm
        self.t = 0
        self.size = 0
        self.m_arr = np.zeros(1)
        self.v_arr = np.zeros(1)
        self.m = self.m_arr
        self.v = self.v_arr

    cdef void _ensure(self, Py_ssize_t n):
        if self.size != n:
            self.m_arr = np.zeros(n)
            self.v_arr = np.zeros(n if self.kind == K_ADAM else 1)
            self.m = self.m_arr
            self.v = self.v_arr
            self.size = n

    def bind(self, Py_ssize_t n):
        """Allocate the moment buffers for a parameter vector of size ``n`` (keeps them if equal)."""
        self._ensure(n)

    def remap(self, object index, Py_ssize_t n):
        """Move moments to a grown parameter vector: old coordinate ``j`` goes to ``index[j]``."""
        m = np.zeros(n)
        v = np.zeros(n if self.kind == K_ADAM else 1)
        if self.size:
            m[index] = self.m_arr
            if self.kind == K_ADAM:
                v[index] = self.v_arr
        self.m_arr, self.v_arr = m, v
        self.m = self.m_arr
        self.v = self.v_arr
        self.size = n

    cdef int clip(self, double[::1] g) noexcept nogil:
        cdef Py_ssize_t i, n = g.shape[0]
        cdef double c = self.clip_value, s = 0.0, scale
        if c > 0.0:
            for i in range(n):
                if g[i] > c:
                    g[i] = c
                elif g[i] < -c:
                    g[i] = -c
        s = _sumsq(n, &g[0])
        if not isfinite(s):
            return -1
        if self.clip_norm > 0.0 and s > self.clip_norm * self.clip_norm:
            scale = self.clip_norm / sqrt(s)
            for i in range(n):
                g[i] *= scale
        return 0

    cdef void apply(self, double[::1] wv, double[::1] gv) noexcept nogil:
        cdef Py_ssize_t i, n = wv.shape[0]
        cdef double lr = self.lr, rho = self.rho, eps = self.eps
        cdef double b1 = self.beta_1, b2 = self.beta_2, a, gi
        cdef int kind = self.kind
        cdef double* w = &wv[0]
        cdef const double* g = &gv[0]
        cdef double* m = &self.m[0]
        cdef double* v
        if kind == K_SGD:
            for i in range(n):
                w[i] -= lr * g[i]
        elif kind == K_MOMENTUM:
            for i in range(n):
                m[i] = rho * m[i] + lr * g[i]
                w[i] -= m[i]
        elif kind == K_NESTEROV:
            for i in range(n):
                m[i] = rho * m[i] + lr * g[i]
                w[i] -= rho * m[i] + lr * g[i]
        elif kind == K_RMSPROP:
            for i in range(n):
                gi = g[i]
                m[i] = rho * m[i] + (1.0 - rho) * gi * gi
                w[i] -= lr * gi / sqrt(m[i] + eps)
        elif kind == K_ADAM:
            v = &self.v[0]
            a = lr * sqrt(1.0 - pow(b2, <double>(self.t + 1))) / (1.0 - pow(b1, <double>(self.t + 1)))
            sr_adam(n, w, g, m, v, a, b1, b2, eps)
        elif kind == K_ADAGRAD:
            for i in range(n):
                gi = g[i]
                m[i] += gi * gi
                w[i] -= lr * gi / sqrt(m[i] + eps)
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
        return (_rebuild, (self.kind, self.lr, self.beta_1, self.beta_2, self.eps, self.rho,
                           self.clip_value, self.clip_norm, self.t,
                           np.array(self.m_arr, copy=True), np.array(self.v_arr, copy=True)))

    def __sizeof__(self):
        return object.__sizeof__(self) + self.m_arr.nbytes + self.v_arr.nbytes

    def __repr__(self):
        return f"Optimizer({self.name}, lr={self.lr}, t={self.t})"


def _rebuild(kind, lr, beta_1, beta_2, eps, rho, clip_value, clip_norm, t, m, v):
    cdef Optimizer opt = Optimizer(kind, lr, beta_1, beta_2, eps, rho, clip_value, clip_norm)
    opt.t = t
    opt.m_arr = np.ascontiguousarray(m, dtype=np.float64)
    opt.v_arr = np.ascontiguousarray(v, dtype=np.float64)
    opt.m = opt.m_arr
    opt.v = opt.v_arr
    opt.size = opt.m_arr.shape[0]
    return opt
