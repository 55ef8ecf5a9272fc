"""Stacked recurrent cells with a dense head, trained by truncated BPTT one step at a time.

The exact math is stated once, in ``docs/kernel.md``; ``tests/reference.py`` re-states it in
NumPy and the tests hold both equal step by step.

Layers of this module:
- point functions (``_axpy``, ``_dot``, ``_sigmoid``) and one forward and one backward function
  per cell; all ``nogil``, on raw pointers into buffers that Python allocated;
- ``Network``: one extension type that owns the flat parameter vector, the flat gradient, the
  carried state, a ring buffer of the last ``B = max(k1, k2)`` steps and scratch buffers. It
  allocates only in ``__init__``; ``learn``, ``predict`` and ``rollout_step`` allocate nothing.

Ring buffer record of one layer at one step (``rec`` doubles, ``G`` gate blocks of ``H``):
``[h_prev | c_prev | act (G*H) | ext | h | c]`` where ``act`` holds the gate activations
(Elman: h; LSTM: i f g o; GRU: r z n) and ``ext`` tanh(c) for the LSTM, ``h_prev @ W_hn + b_hn``
for the GRU.
"""
import numpy as np

cimport numpy as cnp
from libc.math cimport tanh, exp, log, fabs, isfinite
from libc.string cimport memcpy, memset

from streamrnn._core._optim cimport Optimizer
from streamrnn._core._optim import _array, _counter, _number, check_state

cnp.import_array()

ELMAN_TANH = 0
ELMAN_RELU = 1
LSTM = 2
GRU = 3
SQUARED = 0
ABSOLUTE = 1
HUBER = 2
BINARY_CE = 3
SOFTMAX_CE = 4

cdef int _ELMAN_TANH = 0, _ELMAN_RELU = 1, _LSTM = 2, _GRU = 3
cdef int _SQUARED = 0, _ABSOLUTE = 1, _HUBER = 2, _BINARY_CE = 3, _SOFTMAX_CE = 4

_GATES = {0: 1, 1: 1, 2: 4, 3: 3}
_CELL_NAMES = {0: "elman-tanh", 1: "elman-relu", 2: "lstm", 3: "gru"}


# ---------------------------------------------------------------- C helpers (restrict-qualified)

cdef extern from *:
    """
    #include <string.h>
    #if defined(__GNUC__) || defined(__clang__)
    #define SR_VEC 1
    typedef double sr_v8 __attribute__((vector_size(64)));
    typedef double sr_v8u __attribute__((vector_size(64), aligned(8), may_alias));
    static inline sr_v8 sr_ld(const double* p) { return *(const sr_v8u*)p; }
    static inline void sr_st(double* p, sr_v8 v) { *(sr_v8u*)p = v; }
    #else
    #define SR_VEC 0
    #endif

    /* C (d x m, row-major, written) = A^T B: C[i, j] = sum_{s < W} A[i*lda + s] * B[s*ldb + j],
       summed from 0 in the order s = 0, 1, ..., W-1. Rows of A are per-row coefficients over
       the steps (gathered transposed), rows of B the per-step gate gradients. */
    static void sr_gemm_tn(ptrdiff_t d, ptrdiff_t m, ptrdiff_t W, const double* restrict A, ptrdiff_t lda,
                           const double* restrict B, ptrdiff_t ldb, double* restrict C) {
        ptrdiff_t i = 0, j, s;
    #if SR_VEC
        for (; i + 4 <= d; i += 4) {
            const double* a0 = A + (size_t)i * lda;
            const double* a1 = a0 + lda;
            const double* a2 = a1 + lda;
            const double* a3 = a2 + lda;
            double* c0 = C + (size_t)i * m;
            for (j = 0; j + 16 <= m; j += 16) {
                sr_v8 p0 = {0}, q0 = {0}, p1 = {0}, q1 = {0}, p2 = {0}, q2 = {0}, p3 = {0}, q3 = {0};
                for (s = 0; s < W; s++) {
                    const double* b = B + (size_t)s * ldb + j;
                    sr_v8 bl = sr_ld(b), bh = sr_ld(b + 8);
                    p0 += a0[s] * bl; q0 += a0[s] * bh;
                    p1 += a1[s] * bl; q1 += a1[s] * bh;
                    p2 += a2[s] * bl; q2 += a2[s] * bh;
                    p3 += a3[s] * bl; q3 += a3[s] * bh;
                }
                sr_st(c0 + j, p0); sr_st(c0 + j + 8, q0);
                sr_st(c0 + m + j, p1); sr_st(c0 + m + j + 8, q1);
                sr_st(c0 + 2 * m + j, p2); sr_st(c0 + 2 * m + j + 8, q2);
                sr_st(c0 + 3 * m + j, p3); sr_st(c0 + 3 * m + j + 8, q3);
            }
            for (; j + 8 <= m; j += 8) {
                sr_v8 p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0};
                for (s = 0; s < W; s++) {
                    sr_v8 bl = sr_ld(B + (size_t)s * ldb + j);
                    p0 += a0[s] * bl; p1 += a1[s] * bl; p2 += a2[s] * bl; p3 += a3[s] * bl;
                }
                sr_st(c0 + j, p0); sr_st(c0 + m + j, p1);
                sr_st(c0 + 2 * m + j, p2); sr_st(c0 + 3 * m + j, p3);
            }
            for (; j < m; j++) {
                ptrdiff_t r;
                for (r = 0; r < 4; r++) {
                    double acc = 0.0;
                    for (s = 0; s < W; s++) acc += A[(size_t)(i + r) * lda + s] * B[(size_t)s * ldb + j];
                    C[(size_t)(i + r) * m + j] = acc;
                }
            }
        }
        for (; i < d; i++) {
            const double* a0 = A + (size_t)i * lda;
            double* c0 = C + (size_t)i * m;
            for (j = 0; j + 8 <= m; j += 8) {
                sr_v8 p0 = {0};
                for (s = 0; s < W; s++) p0 += a0[s] * sr_ld(B + (size_t)s * ldb + j);
                sr_st(c0 + j, p0);
            }
            for (; j < m; j++) {
                double acc = 0.0;
                for (s = 0; s < W; s++) acc += a0[s] * B[(size_t)s * ldb + j];
                c0[j] = acc;
            }
        }
    #else
        for (; i < d; i++)
            for (j = 0; j < m; j++) {
                double acc = 0.0;
                for (s = 0; s < W; s++) acc += A[(size_t)i * lda + s] * B[(size_t)s * ldb + j];
                C[(size_t)i * m + j] = acc;
            }
    #endif
    }

    /* out[i] = init[i] + sum_j W[i*m + j] v[j] for W (d x m) row-major (out += v @ W^T
       without transposing W; init NULL: 0; out may be init). Eight rows at a time share
       each load of v; per row the products go to eight lanes summed by a fixed tree. */
    static inline double sr_hsum(sr_v8 s) {
        return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
    }
    static void sr_matvec(ptrdiff_t d, ptrdiff_t m, const double* restrict W, const double* restrict v,
                          const double* init, double* out) {
        ptrdiff_t i = 0, j, r;
    #if SR_VEC
        for (; i + 8 <= d; i += 8) {
            sr_v8 acc[8];
            double tail[8];
            const double* w0 = W + (size_t)i * m;
            for (r = 0; r < 8; r++) { acc[r] = (sr_v8){0}; tail[r] = 0.0; }
            for (j = 0; j + 8 <= m; j += 8) {
                sr_v8 x = sr_ld(v + j);
                for (r = 0; r < 8; r++) acc[r] += sr_ld(w0 + (size_t)r * m + j) * x;
            }
            for (; j < m; j++)
                for (r = 0; r < 8; r++) tail[r] += w0[(size_t)r * m + j] * v[j];
            for (r = 0; r < 8; r++) {
                double e = sr_hsum(acc[r]) + tail[r];
                out[i + r] = init ? init[i + r] + e : e;
            }
        }
        for (; i < d; i++) {
            sr_v8 acc = {0};
            double e = 0.0;
            const double* w0 = W + (size_t)i * m;
            for (j = 0; j + 8 <= m; j += 8) acc += sr_ld(w0 + j) * sr_ld(v + j);
            for (; j < m; j++) e += w0[j] * v[j];
            e += sr_hsum(acc);
            out[i] = init ? init[i] + e : e;
        }
    #else
        for (; i < d; i++) {
            double e = 0.0;
            for (j = 0; j < m; j++) e += W[(size_t)i * m + j] * v[j];
            out[i] = init ? init[i] + e : e;
        }
    #endif
    }
    """
    void sr_gemm_tn(Py_ssize_t d, Py_ssize_t m, Py_ssize_t W, const double* A, Py_ssize_t lda, const double* B, Py_ssize_t ldb,
                    double* C) noexcept nogil
    void sr_matvec(Py_ssize_t d, Py_ssize_t m, const double* W, const double* v, const double* init,
                   double* out) noexcept nogil


# ---------------------------------------------------------------- argument fast path

cdef inline double* _array_data(object x, bint writable):
    """Data pointer of a 1-d, C-contiguous, aligned, native float64 ndarray (writable if asked),
    else NULL. Lets the per-step calls skip memoryview acquisition; anything else takes the
    typed-memoryview path, which accepts (and rejects) exactly what it did before."""
    if not cnp.PyArray_CheckExact(x):
        return NULL
    cdef cnp.ndarray a = <cnp.ndarray>x
    if (cnp.PyArray_NDIM(a) != 1 or cnp.PyArray_TYPE(a) != cnp.NPY_DOUBLE
            or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a)
            or not cnp.PyArray_ISNOTSWAPPED(a) or cnp.PyArray_DIM(a, 0) < 1
            or (writable and not cnp.PyArray_ISWRITEABLE(a))):
        return NULL
    return <double*>cnp.PyArray_DATA(a)


# ---------------------------------------------------------------- point functions

cdef inline double _sigmoid(double a) noexcept nogil:
    if a >= 0.0:
        return 1.0 / (1.0 + exp(-a))
    cdef double e = exp(a)
    return e / (1.0 + e)


cdef inline void _axpy(Py_ssize_t n, double alpha, const double* x, double* y) noexcept nogil:
    # y += alpha * x
    cdef Py_ssize_t j
    for j in range(n):
        y[j] += alpha * x[j]


cdef inline double _dot(Py_ssize_t n, const double* x, const double* y) noexcept nogil:
    # sixteen partial sums in a fixed order: the compiler keeps them in vector registers
    # without being allowed to reassociate, so the result is the same on every run
    cdef double acc[16]
    cdef double s
    cdef Py_ssize_t j = 0, k
    for k in range(16):
        acc[k] = 0.0
    while j + 16 <= n:
        for k in range(16):
            acc[k] += x[j + k] * y[j + k]
        j += 16
    s = 0.0
    while j < n:
        s += x[j] * y[j]
        j += 1
    for k in range(8):
        acc[k] += acc[k + 8]
    for k in range(4):
        acc[k] += acc[k + 4]
    return s + ((acc[0] + acc[2]) + (acc[1] + acc[3]))


cdef inline void _affine(Py_ssize_t d, Py_ssize_t m, const double* x, const double* W,
                         double* a) noexcept nogil:
    # a += x @ W for W of shape (d, m), row-major
    cdef Py_ssize_t i
    for i in range(d):
        if x[i] != 0.0:
            _axpy(m, x[i], W + i * m, a)


cdef inline void _affine_t(Py_ssize_t d, Py_ssize_t m, const double* W, const double* da,
                           double* out) noexcept nogil:
    # out += da @ W^T for W of shape (d, m)
    cdef Py_ssize_t i
    for i in range(d):
        out[i] += _dot(m, W + i * m, da)


cdef inline void _outer(Py_ssize_t d, Py_ssize_t m, const double* x, const double* da,
                        double* dW) noexcept nogil:
    # dW += x^T da
    cdef Py_ssize_t i
    for i in range(d):
        if x[i] != 0.0:
            _axpy(m, x[i], da, dW + i * m)


# ---------------------------------------------------------------- sizes (Python ints)

MAX_BYTES = 2 ** 31           # one network's buffers (params, grad, ring, moments, scratch)


def _int_arg(value, name, lo):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return v


def footprint(cell, n_in, hidden_size, num_layers, n_out, k1, k2):
    """Doubles one network allocates, by buffer group, computed with Python ints (no
    overflow): ``(P, total)`` where P is the parameter count and ``total`` counts params,
    grad, the two optimizer moments, the ring buffer, the state and every scratch buffer."""
    G, H, L = _GATES[cell], hidden_size, num_layers
    GH, R, B = G * H, 5 * hidden_size + _GATES[cell] * hidden_size, max(k1, k2)
    P = (n_in * GH + (L - 1) * H * GH + L * (H * GH + GH) + (L * H if cell == _GRU else 0)
         + H * n_out + n_out)
    state = 2 * L * H + B * (n_in + L * R + n_out) + n_out
    scratch = (2 * L * R + 4 * L * H + 2 * GH + 2 * H + n_in + L * R + 2 * n_out
               + 2 * k2 * L * GH + L * max(n_in, H) * k2 + L * H * k2)
    return P, 4 * P + state + scratch


def _check_config(cell, n_in, hidden_size, num_layers, n_out, k1, k2, loss, huber_eps):
    """Validated constructor arguments, or ValueError (sizes whose buffers would exceed
    MAX_BYTES are refused before anything is allocated)."""
    if isinstance(cell, (bool, np.bool_)) or not isinstance(cell, (int, np.integer)) \
            or int(cell) not in _GATES:
        raise ValueError(f"unknown cell code {cell!r}")
    if isinstance(loss, (bool, np.bool_)) or not isinstance(loss, (int, np.integer)) \
            or int(loss) not in (0, 1, 2, 3, 4):
        raise ValueError(f"unknown loss code {loss!r}")
    cell, loss = int(cell), int(loss)
    n_in, hidden_size, num_layers, n_out = (
        _int_arg(v, n, 1) for v, n in ((n_in, "n_in"), (hidden_size, "hidden_size"),
                                       (num_layers, "num_layers"), (n_out, "n_out")))
    k1, k2 = _int_arg(k1, "k1", 1), _int_arg(k2, "k2", 1)
    if loss == _BINARY_CE and n_out != 1:
        raise ValueError("binary cross-entropy needs n_out == 1")
    if isinstance(huber_eps, (bool, np.bool_)) or not isinstance(
            huber_eps, (int, float, np.integer, np.floating)):
        raise ValueError("huber_eps must be a number")
    try:
        huber_eps = float(huber_eps)
    except OverflowError:
        raise ValueError("huber_eps is out of range") from None
    if not (huber_eps > 0) or not isfinite(huber_eps):
        raise ValueError("huber_eps must be a finite number > 0")
    P, total = footprint(cell, n_in, hidden_size, num_layers, n_out, k1, k2)
    if 8 * total > MAX_BYTES:
        raise ValueError(
            f"this network would allocate {8 * total} bytes (P = {P} parameters), more than "
            f"the limit of {MAX_BYTES}: reduce hidden_size, num_layers, k1, k2, n_in or n_out")
    return cell, n_in, hidden_size, num_layers, n_out, k1, k2, loss, huber_eps


# ---------------------------------------------------------------- the network

cdef class Network:
    """Stacked recurrent cells and a linear head, trained online by TBPTT(k1, k2)."""

    cdef readonly int cell             # cell code
    cdef readonly int n_in             # d_0, width of the input
    cdef readonly int hidden_size      # H
    cdef readonly int num_layers       # L
    cdef readonly int n_out            # width of the head
    cdef readonly int k1               # update every k1 steps
    cdef readonly int k2               # backpropagate through the last k2 steps
    cdef readonly int loss             # loss code
    cdef readonly double huber_eps     # Huber threshold
    cdef readonly int G                # gate blocks per cell
    cdef readonly int B                # ring capacity, max(k1, k2)
    cdef readonly int rec              # doubles per layer record
    cdef readonly Py_ssize_t size      # P, number of parameters
    cdef public long long t            # committed steps
    cdef public double last_loss       # loss of the last learned step
    cdef readonly Optimizer optimizer  # bound to P (set_optimizer / set_state)
    cdef unsigned long long _version   # bumped by every change of params or committed state

    cdef object _arrays                # name -> ndarray, everything pickle must carry
    cdef object _scratch               # scratch ndarrays (not state)
    cdef double[::1] w                 # params (P,)
    cdef double[::1] dw                # grad (P,)
    cdef double[::1] h                 # carried hidden state (L*H,)
    cdef double[::1] c                 # carried cell state (L*H,)
    cdef double[::1] ring_x            # (B*n_in,)
    cdef double[::1] ring_r            # (B*L*rec,)
    cdef double[::1] ring_g            # (B*n_out,) dL/dout / k1
    cdef double[::1] out               # (n_out,) last head output (learn)
    cdef double[::1] s_rec             # scratch records (L*rec,)
    cdef double[::1] s_h               # scratch/rollout state (L*H,)
    cdef double[::1] s_c
    cdef double[::1] s_a               # (G*H,) pre-activations
    cdef double[::1] s_ah              # (G*H,) GRU recurrent part / backward dah
    cdef double[::1] s_dax             # (G*H,)
    cdef double[::1] s_dh              # (H,)
    cdef double[::1] s_dx              # (H,) gradient to the layer below
    cdef double[::1] s_dhc             # (L*H,) carried dh
    cdef double[::1] s_dcc             # (L*H,) carried dc
    cdef double[::1] s_dhead           # (H,)
    cdef double[::1] bk_o           # backup of the head output (roll-back)
    cdef double[::1] bk_x, bk_r, bk_g               # backup of one step for roll-back
    cdef double[::1] s_da              # (k2*L*G*H,) dax per window step and layer
    cdef double[::1] s_dah2            # (k2*L*G*H,) GRU dah per window step and layer
    cdef double[::1] s_xt              # (L*max(n_in,H)*k2,) layer inputs, transposed per layer
    cdef double[::1] s_ht              # (L*H*k2,) previous states, transposed per layer
    cdef Py_ssize_t[::1] o_wx, o_wh, o_b, o_bhn     # offsets per layer
    cdef Py_ssize_t o_wy, o_by

    def __init__(self, cell, n_in, hidden_size, num_layers, n_out, k1=1, k2=16, loss=0,
                 huber_eps=0.1):
        cell, n_in, hidden_size, num_layers, n_out, k1, k2, loss, huber_eps = _check_config(
            cell, n_in, hidden_size, num_layers, n_out, k1, k2, loss, huber_eps)
        self.cell, self.n_in, self.hidden_size, self.num_layers = cell, n_in, hidden_size, num_layers
        self.n_out, self.k1, self.k2, self.loss, self.huber_eps = n_out, k1, k2, loss, huber_eps
        self.G = _GATES[cell]
        self.B = max(k1, k2)
        cdef Py_ssize_t H = hidden_size, G = self.G, L = num_layers
        self.rec = 5 * H + G * H
        o_wx = np.zeros(L, dtype=np.intp)
        o_wh = np.zeros(L, dtype=np.intp)
        o_b = np.zeros(L, dtype=np.intp)
        o_bhn = np.zeros(L, dtype=np.intp)
        layout = {}
        cdef Py_ssize_t off = 0
        for l in range(L):
            d = n_in if l == 0 else H
            o_wx[l] = off; layout[f"W_x{l}"] = (off, (d, G * H)); off += d * G * H
            o_wh[l] = off; layout[f"W_h{l}"] = (off, (H, G * H)); off += H * G * H
            o_b[l] = off; layout[f"b{l}"] = (off, (G * H,)); off += G * H
            o_bhn[l] = off
            if cell == _GRU:
                layout[f"b_hn{l}"] = (off, (H,)); off += H
        self.o_wy = off; layout["W_y"] = (off, (H, n_out)); off += H * n_out
        self.o_by = off; layout["b_y"] = (off, (n_out,)); off += n_out
        self.size = off
        self.o_wx, self.o_wh, self.o_b, self.o_bhn = o_wx, o_wh, o_b, o_bhn
        self._layout = layout
        self.t = 0
        self.last_loss = 0.0
        self.optimizer = None
        self._version = 0
        B, R = self.B, self.rec
        arrays = {
            "params": np.zeros(off), "h": np.zeros((L, H)), "c": np.zeros((L, H)),
            "ring_x": np.zeros((B, n_in)), "ring_r": np.zeros((B, L, R)),
            "ring_g": np.zeros((B, n_out)), "out": np.zeros(n_out),
        }
        self._set_arrays(arrays)
        self._scratch = {
            "grad": np.zeros(off), "s_rec": np.zeros(L * R), "s_h": np.zeros(L * H),
            "s_c": np.zeros(L * H), "s_a": np.zeros(G * H), "s_ah": np.zeros(G * H),
            "s_dax": np.zeros(G * H), "s_dh": np.zeros(H), "s_dx": np.zeros(H),
            "s_dhc": np.zeros(L * H), "s_dcc": np.zeros(L * H), "s_dhead": np.zeros(H),
            "bk_x": np.zeros(n_in), "bk_r": np.zeros(L * R), "bk_g": np.zeros(n_out), "bk_o": np.zeros(n_out),
            "s_da": np.zeros(k2 * L * G * H),
            "s_dah2": np.zeros(k2 * L * G * H if cell == _GRU else 1),
            "s_xt": np.zeros(L * max(n_in, H) * k2), "s_ht": np.zeros(L * H * k2),
        }
        s = self._scratch
        self.dw = s["grad"]
        self.s_rec, self.s_h, self.s_c = s["s_rec"], s["s_h"], s["s_c"]
        self.s_a, self.s_ah, self.s_dax = s["s_a"], s["s_ah"], s["s_dax"]
        self.s_dh, self.s_dx, self.s_dhc, self.s_dcc = s["s_dh"], s["s_dx"], s["s_dhc"], s["s_dcc"]
        self.s_dhead = s["s_dhead"]
        self.bk_x, self.bk_r, self.bk_g, self.bk_o = s["bk_x"], s["bk_r"], s["bk_g"], s["bk_o"]
        self.s_da, self.s_dah2, self.s_xt, self.s_ht = (
            s["s_da"], s["s_dah2"], s["s_xt"], s["s_ht"])

    cdef object _layout

    def _shapes(self):
        L, H = self.num_layers, self.hidden_size
        return {"params": (self.size,), "h": (L, H), "c": (L, H),
                "ring_x": (self.B, self.n_in), "ring_r": (self.B, L, self.rec),
                "ring_g": (self.B, self.n_out), "out": (self.n_out,)}

    def _check_arrays(self, arrays):
        """Validated copies of the state arrays (exact float64 ndarrays, exact shapes, finite)."""
        return {name: _array(arrays[name], name, shape) for name, shape in self._shapes().items()}

    def _set_arrays(self, dict new):
        """Adopt validated state arrays (from ``_check_arrays``)."""
        self._arrays = new
        self.w = new["params"]
        self.h = new["h"].reshape(-1)
        self.c = new["c"].reshape(-1)
        self.ring_x = new["ring_x"].reshape(-1)
        self.ring_r = new["ring_r"].reshape(-1)
        self.ring_g = new["ring_g"].reshape(-1)
        self.out = new["out"]

    # ------------------------------------------------------------ Python views
    @property
    def params(self):
        self._version += 1  # a writable view is handed out: a cached forward pass is stale
        return self._arrays["params"]

    @property
    def grad(self):
        return self._scratch["grad"]

    @property
    def h(self):
        self._version += 1  # a writable view is handed out: a cached forward pass is stale
        return self._arrays["h"]

    @property
    def c(self):
        self._version += 1  # a writable view is handed out: a cached forward pass is stale
        return self._arrays["c"]

    @property
    def last_output(self):
        """Head output of the last learned step (the prediction made before its target was used)."""
        return self._arrays["out"]

    @property
    def layout(self):
        return dict(self._layout)

    def view(self, str name):
        """Named view into the flat parameter vector, e.g. ``view("W_h0")``."""
        off, shape = self._layout[name]
        n = int(np.prod(shape))
        self._version += 1
        return self._arrays["params"][off:off + n].reshape(shape)

    def set_optimizer(self, Optimizer opt):
        opt.bind(self.size)
        self.optimizer = opt

    # ------------------------------------------------------------ kernels
    cdef void _cell_forward(self, Py_ssize_t l, const double* x, const double* hp, const double* cp,
                            double* r) noexcept nogil:
        """One step of layer ``l``: fills record ``r`` (incl. copies of h_prev, c_prev, h, c)."""
        cdef Py_ssize_t H = self.hidden_size, G = self.G, GH = self.G * self.hidden_size
        cdef Py_ssize_t d = self.n_in if l == 0 else H
        cdef double* w = &self.w[0]
        cdef const double* Wx = w + self.o_wx[l]
        cdef const double* Wh = w + self.o_wh[l]
        cdef const double* b = w + self.o_b[l]
        cdef double* a = &self.s_a[0]
        cdef double* ah = &self.s_ah[0]
        cdef double* act = r + 2 * H
        cdef double* ext = r + 2 * H + GH
        cdef double* hn = r + 3 * H + GH
        cdef double* cn = r + 4 * H + GH
        cdef Py_ssize_t j
        cdef double ig, fg, gg, og, cc, rr, zz, nn
        memcpy(r, hp, H * sizeof(double))
        memcpy(r + H, cp, H * sizeof(double))
        memcpy(a, b, GH * sizeof(double))
        _affine(d, GH, x, Wx, a)
        if self.cell == _GRU:
            memset(ah, 0, GH * sizeof(double))
            _affine(H, GH, hp, Wh, ah)
            bhn = w + self.o_bhn[l]
            for j in range(H):
                rr = _sigmoid(a[j] + ah[j])
                zz = _sigmoid(a[H + j] + ah[H + j])
                ext[j] = ah[2 * H + j] + bhn[j]
                nn = tanh(a[2 * H + j] + rr * ext[j])
                act[j] = rr
                act[H + j] = zz
                act[2 * H + j] = nn
                hn[j] = (1.0 - zz) * nn + zz * hp[j]
                cn[j] = 0.0
            return
        _affine(H, GH, hp, Wh, a)
        if self.cell == _LSTM:
            for j in range(H):
                ig = _sigmoid(a[j])
                fg = _sigmoid(a[H + j])
                gg = tanh(a[2 * H + j])
                og = _sigmoid(a[3 * H + j])
                cc = fg * cp[j] + ig * gg
                act[j] = ig
                act[H + j] = fg
                act[2 * H + j] = gg
                act[3 * H + j] = og
                cn[j] = cc
                ext[j] = tanh(cc)
                hn[j] = og * ext[j]
        elif self.cell == _ELMAN_TANH:
            for j in range(H):
                act[j] = tanh(a[j])
                hn[j] = act[j]
                ext[j] = 0.0
                cn[j] = 0.0
        else:
            for j in range(H):
                act[j] = a[j] if a[j] > 0.0 else 0.0
                hn[j] = act[j]
                ext[j] = 0.0
                cn[j] = 0.0

    cdef void _forward(self, const double* x, const double* h0, const double* c0, double* recs,
                       double* h1, double* c1, double* out) noexcept nogil:
        """All layers for one step from state (h0, c0) to (h1, c1); head output into ``out``."""
        cdef Py_ssize_t H = self.hidden_size, L = self.num_layers, R = self.rec, GH = self.G * H
        cdef Py_ssize_t l
        cdef const double* xin = x
        for l in range(L):
            self._cell_forward(l, xin, h0 + l * H, c0 + l * H, recs + l * R)
            xin = recs + l * R + 3 * H + GH
        for l in range(L):
            memcpy(h1 + l * H, recs + l * R + 3 * H + GH, H * sizeof(double))
            memcpy(c1 + l * H, recs + l * R + 4 * H + GH, H * sizeof(double))
        cdef double* w = &self.w[0]
        memcpy(out, w + self.o_by, self.n_out * sizeof(double))
        _affine(H, self.n_out, xin, w + self.o_wy, out)

    cdef double _loss_grad(self, const double* out, double y, double* g) noexcept nogil:
        """Loss of one step; writes dL/dout into g."""
        cdef Py_ssize_t k, n = self.n_out, yi
        cdef double r, p, m, s, e = self.huber_eps
        if self.loss == _SQUARED:
            r = out[0] - y
            g[0] = 2.0 * r
            return r * r
        if self.loss == _ABSOLUTE:
            r = out[0] - y
            g[0] = 1.0 if r > 0 else (-1.0 if r < 0 else 0.0)
            return fabs(r)
        if self.loss == _HUBER:
            r = out[0] - y
            if fabs(r) <= e:
                g[0] = r
                return 0.5 * r * r
            g[0] = e if r > 0 else -e
            return e * (fabs(r) - 0.5 * e)
        if self.loss == _BINARY_CE:
            p = _sigmoid(out[0])
            g[0] = p - y
            # log(1 + exp(-|o|)) form, stable for large |o|
            m = out[0]
            s = (m if m > 0 else 0.0) - m * y + log(1.0 + exp(-fabs(m)))
            return s
        # softmax cross-entropy
        yi = <Py_ssize_t>y
        m = out[0]
        for k in range(1, n):
            if out[k] > m:
                m = out[k]
        s = 0.0
        for k in range(n):
            g[k] = exp(out[k] - m)
            s += g[k]
        for k in range(n):
            g[k] /= s
        r = -(out[yi] - m - log(s))
        g[yi] -= 1.0
        return r

    cdef void _backward(self) noexcept nogil:
        """Gradient of the mean loss of the last min(k1, t) steps through the last min(k2, t) steps.

        The window walk (newest to oldest) computes only what is sequential: the gate
        gradients ``dax``/``dah`` of every (step, layer), kept in ``s_da``/``s_dah2``, and the
        carried ``dh``/``dc``. The parameter gradients ``dW_x = X^T DA``, ``dW_h = H_prev^T DA``
        and ``db`` follow after the walk as small matrix products, each gradient row summed
        over the steps newest first (the order of the step-by-step accumulation), and written
        rather than accumulated, so the gradient needs no clearing.
        """
        cdef Py_ssize_t H = self.hidden_size, L = self.num_layers, R = self.rec, G = self.G
        cdef Py_ssize_t GH = G * H, n_out = self.n_out, B = self.B, k2 = self.k2
        cdef int cell = self.cell
        cdef Py_ssize_t n_in = self.n_in, D = n_in if n_in > H else H
        cdef long long t = self.t
        cdef Py_ssize_t n_inj = <Py_ssize_t>(self.k1 if self.k1 < t else t)
        cdef Py_ssize_t W = <Py_ssize_t>(self.k2 if self.k2 < t else t)
        cdef double* w = &self.w[0]
        cdef double* dw = &self.dw[0]
        cdef double* dhc = &self.s_dhc[0]
        cdef double* dcc = &self.s_dcc[0]
        cdef double* dh = &self.s_dh[0]
        cdef double* dx = &self.s_dx[0]
        cdef double* DA = &self.s_da[0]
        cdef double* DAH = &self.s_dah2[0]
        cdef double* XT = &self.s_xt[0]
        cdef double* HT = &self.s_ht[0]
        cdef double* dax
        cdef double* dah
        cdef double* r
        cdef double* act
        cdef double* ext
        cdef double* xt
        cdef double* ht
        cdef const double* x
        cdef const double* g
        cdef Py_ssize_t a, l, s, j, d, i
        cdef double ig, fg, gg, og, tc, dct, rr, zz, nn, dn, dan, acc
        memset(dhc, 0, L * H * sizeof(double))
        memset(dcc, 0, L * H * sizeof(double))
        # head gradient of every injected step
        memset(dw + self.o_wy, 0, (H * n_out + n_out) * sizeof(double))
        for a in range(n_inj):
            s = <Py_ssize_t>((t - 1 - a) % B)
            g = &self.ring_g[s * n_out]
            r = &self.ring_r[(s * L + L - 1) * R]
            _outer(H, n_out, r + 3 * H + GH, g, dw + self.o_wy)
            for j in range(n_out):
                dw[self.o_by + j] += g[j]
        for a in range(W):
            s = <Py_ssize_t>((t - 1 - a) % B)
            for l in range(L - 1, -1, -1):
                r = &self.ring_r[(s * L + l) * R]
                act = r + 2 * H
                ext = r + 2 * H + GH
                dax = DA + (a * L + l) * GH
                dah = DAH + (a * L + l) * GH if cell == _GRU else dax
                # total dh reaching h of (step s, layer l)
                memcpy(dh, dhc + l * H, H * sizeof(double))
                if l == L - 1:
                    if a < n_inj:
                        _affine_t(H, n_out, w + self.o_wy, &self.ring_g[s * n_out], dh)
                else:
                    for j in range(H):
                        dh[j] += dx[j]
                # cell backward: dax (input side), dah (recurrent side), new carried dh/dc
                if cell == _LSTM:
                    for j in range(H):
                        ig = act[j]; fg = act[H + j]; gg = act[2 * H + j]; og = act[3 * H + j]
                        tc = ext[j]
                        dct = dcc[l * H + j] + dh[j] * og * (1.0 - tc * tc)
                        dax[j] = dct * gg * ig * (1.0 - ig)
                        dax[H + j] = dct * r[H + j] * fg * (1.0 - fg)
                        dax[2 * H + j] = dct * ig * (1.0 - gg * gg)
                        dax[3 * H + j] = dh[j] * tc * og * (1.0 - og)
                        dcc[l * H + j] = dct * fg
                elif cell == _GRU:
                    for j in range(H):
                        rr = act[j]; zz = act[H + j]; nn = act[2 * H + j]
                        dn = dh[j] * (1.0 - zz)
                        dan = dn * (1.0 - nn * nn)
                        dax[j] = dan * ext[j] * rr * (1.0 - rr)
                        dax[H + j] = dh[j] * (r[j] - nn) * zz * (1.0 - zz)
                        dax[2 * H + j] = dan
                        dah[j] = dax[j]
                        dah[H + j] = dax[H + j]
                        dah[2 * H + j] = dan * rr
                        dhc[l * H + j] = dh[j] * zz
                elif cell == _ELMAN_TANH:
                    for j in range(H):
                        dax[j] = dh[j] * (1.0 - act[j] * act[j])
                else:
                    for j in range(H):
                        dax[j] = dh[j] if act[j] > 0.0 else 0.0
                # gather this step's layer input and previous state, transposed
                if l == 0:
                    x = &self.ring_x[s * n_in]
                    d = n_in
                else:
                    x = &self.ring_r[(s * L + l - 1) * R + 3 * H + GH]
                    d = H
                xt = XT + l * D * k2
                ht = HT + l * H * k2
                for i in range(d):
                    xt[i * k2 + a] = x[i]
                for i in range(H):
                    ht[i * k2 + a] = r[i]
                # to the older step (same layer) and to the layer below (same step)
                if cell == _GRU:
                    sr_matvec(H, GH, w + self.o_wh[l], dah, dhc + l * H, dhc + l * H)
                else:
                    sr_matvec(H, GH, w + self.o_wh[l], dah, NULL, dhc + l * H)
                if l > 0:
                    sr_matvec(H, GH, w + self.o_wx[l], dax, NULL, dx)
        # parameter gradients from the stored gate gradients
        for l in range(L):
            d = n_in if l == 0 else H
            sr_gemm_tn(d, GH, W, XT + l * D * k2, k2, DA + l * GH, L * GH, dw + self.o_wx[l])
            sr_gemm_tn(H, GH, W, HT + l * H * k2, k2, (DAH if cell == _GRU else DA) + l * GH,
                       L * GH, dw + self.o_wh[l])
            for j in range(GH):
                acc = 0.0
                for a in range(W):
                    acc += DA[(a * L + l) * GH + j]
                dw[self.o_b[l] + j] = acc
            if cell == _GRU:
                for j in range(H):
                    acc = 0.0
                    for a in range(W):
                        acc += DAH[(a * L + l) * GH + 2 * H + j]
                    dw[self.o_bhn[l] + j] = acc

    def learn(self, x, double y):
        """Commit one step with target ``y`` and update every k1 steps; returns a status code.

        ``x``: 1-d float64 buffer of ``n_in`` values. 0: learned; 1: learned and updated;
        -1: non-finite input or target (nothing changed); -2: non-finite output, loss or
        gradient (the step was rolled back).
        """
        cdef const double* xp = _array_data(x, False)
        if xp == NULL:
            return self._learn_buffer(x, y)
        return self._learn_checked(xp, cnp.PyArray_DIM(<cnp.ndarray>x, 0), y)

    cdef object _learn_buffer(self, const double[::1] x, double y):
        return self._learn_checked(&x[0] if x.shape[0] > 0 else NULL, x.shape[0], y)

    cdef object _learn_checked(self, const double* x, Py_ssize_t n, double y):
        if n != self.n_in:
            raise ValueError(f"the input has {n} values, the network expects {self.n_in}")
        cdef Py_ssize_t i
        for i in range(n):
            if not isfinite(x[i]):
                return -1
        if not isfinite(y):
            return -1
        if self.loss == _SOFTMAX_CE and not (0 <= y < self.n_out and y == <int>y):
            raise ValueError(f"class index {y} is out of range for {self.n_out} outputs")
        if self.loss == _BINARY_CE and not (y == 0.0 or y == 1.0):
            raise ValueError(f"binary target must be 0 or 1, got {y}")
        if self.optimizer is None:
            raise RuntimeError("no optimizer: call set_optimizer first")
        if self.optimizer.size != self.size:
            raise RuntimeError("the optimizer was re-bound to another size: call set_optimizer")
        cdef int status = 0
        with nogil:
            status = self._learn(x, y)
        return status

    cdef int _learn(self, const double* x, double y) noexcept nogil:
        cdef Py_ssize_t L = self.num_layers, H = self.hidden_size, R = self.rec, n_out = self.n_out
        cdef Py_ssize_t n_in = self.n_in, k
        cdef Py_ssize_t s = <Py_ssize_t>(self.t % self.B)
        cdef double* rx = &self.ring_x[s * n_in]
        cdef double* rr = &self.ring_r[s * L * R]
        cdef double* rg = &self.ring_g[s * n_out]
        cdef double* out = &self.out[0]
        cdef double loss
        # backup what this step overwrites
        memcpy(&self.bk_x[0], rx, n_in * sizeof(double))
        memcpy(&self.bk_r[0], rr, L * R * sizeof(double))
        memcpy(&self.bk_g[0], rg, n_out * sizeof(double))
        memcpy(&self.bk_o[0], out, n_out * sizeof(double))
        memcpy(rx, x, n_in * sizeof(double))
        # in place: the step's records keep copies of the previous h and c (for roll-back)
        self._forward(x, &self.h[0], &self.c[0], rr, &self.h[0], &self.c[0], out)
        loss = self._loss_grad(out, y, rg)
        for k in range(n_out):
            rg[k] /= self.k1
        if not isfinite(loss):
            self._rollback(s)
            return -2
        self.t += 1
        if self.t % self.k1 != 0:
            self.last_loss = loss
            return 0
        self._backward()
        if self.optimizer.clip(self.dw) < 0:
            self.t -= 1
            self._rollback(s)
            return -2
        self.optimizer.apply(self.w, self.dw)
        self.last_loss = loss
        return 1

    cdef void _rollback(self, Py_ssize_t s) noexcept nogil:
        cdef Py_ssize_t L = self.num_layers, H = self.hidden_size, R = self.rec, l
        cdef double* rr = &self.ring_r[s * L * R]
        for l in range(L):
            # the record of the failed step begins with the previous h and c of its layer
            memcpy(&self.h[l * H], rr + l * R, H * sizeof(double))
            memcpy(&self.c[l * H], rr + l * R + H, H * sizeof(double))
        memcpy(&self.ring_x[s * self.n_in], &self.bk_x[0], self.n_in * sizeof(double))
        memcpy(rr, &self.bk_r[0], L * R * sizeof(double))
        memcpy(&self.ring_g[s * self.n_out], &self.bk_g[0], self.n_out * sizeof(double))
        memcpy(&self.out[0], &self.bk_o[0], self.n_out * sizeof(double))

    def predict(self, x, out):
        """Head output for input ``x`` one step past the committed state; changes nothing.

        ``x``: 1-d float64 buffer of ``n_in`` values; ``out``: writable one of ``n_out``.
        """
        self._step_from(x, out, False)

    cdef void _step_from(self, x, out, bint rollout) except *:
        """One forward step into ``out``: from the committed state (its result goes to the
        rollout state) or, with ``rollout``, from the rollout state itself."""
        cdef const double* xp = _array_data(x, False)
        cdef double* op = _array_data(out, True)
        if xp == NULL or op == NULL:  # not a contiguous float64 ndarray: the buffer protocol
            self._step_buffer(x, out, rollout)
            return
        self._step_ptr(xp, cnp.PyArray_DIM(<cnp.ndarray>x, 0), op,
                       cnp.PyArray_DIM(<cnp.ndarray>out, 0), rollout)

    cdef void _step_buffer(self, const double[::1] x, double[::1] out, bint rollout) except *:
        self._step_ptr(&x[0] if x.shape[0] > 0 else NULL, x.shape[0],
                       &out[0] if out.shape[0] > 0 else NULL, out.shape[0], rollout)

    cdef void _step_ptr(self, const double* x, Py_ssize_t nx, double* out, Py_ssize_t no,
                        bint rollout) except *:
        if nx != self.n_in or no != self.n_out:
            raise ValueError("wrong input or output size")
        cdef double* h0 = &self.s_h[0] if rollout else &self.h[0]
        cdef double* c0 = &self.s_c[0] if rollout else &self.c[0]
        with nogil:
            self._forward(x, h0, c0, &self.s_rec[0], &self.s_h[0], &self.s_c[0], out)

    def rollout_begin(self):
        """Start a what-if rollout from the committed state (the committed state is not touched)."""
        self.s_h[:] = self.h
        self.s_c[:] = self.c

    def rollout_step(self, x, out):
        """Advance the rollout state by one step with input ``x``; head output into ``out``."""
        self._step_from(x, out, True)

    # ------------------------------------------------------------ state, pickling, growth
    def config(self):
        return dict(cell=self.cell, n_in=self.n_in, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, n_out=self.n_out, k1=self.k1, k2=self.k2,
                    loss=self.loss, huber_eps=self.huber_eps)

    def get_state(self):
        """Everything that defines the network, as plain numbers and float64 copies:
        ``{"params": (P,), "h": (L, H), "c": (L, H), "ring_x": (B, n_in), "ring_r": (B, L, rec),
        "ring_g": (B, n_out), "out": (n_out,), "t": int, "last_loss": float,
        "optimizer": Optimizer.get_state() or None}``. Scratch is never part of it."""
        state = {k: v.copy() for k, v in self._arrays.items()}
        state["t"] = int(self.t)
        state["last_loss"] = float(self.last_loss)
        state["optimizer"] = None if self.optimizer is None else self.optimizer.get_state()
        return state

    def set_state(self, state):
        """Take over ``state`` (as ``get_state`` returns it), validating all of it first.

        The keys must be exactly those of ``get_state``; every array a float64 ndarray of the
        exact shape with finite values; ``t`` an int in ``[0, 2**62)``; ``last_loss`` a
        finite number; ``optimizer`` None or a valid optimizer state for ``P`` parameters.
        Raises ValueError naming the field; on error nothing (network or optimizer) changes.
        An optimizer state of the kind already attached is loaded into that optimizer
        object; another kind replaces it by a new one.
        """
        if not isinstance(state, dict):
            raise ValueError(f"network state must be a dict, got {type(state).__name__}")
        if set(state) != _STATE_KEYS:
            raise ValueError(f"network state keys {sorted(map(str, state))} != {sorted(_STATE_KEYS)}")
        arrays = self._check_arrays(state)
        t = _counter(state["t"], "t")
        last_loss = _number(state["last_loss"], "last_loss")
        o = state["optimizer"]
        checked = None if o is None else check_state(o, self.size)
        # everything is valid: assign
        self._set_arrays(arrays)
        self.t = t
        self.last_loss = last_loss
        if checked is None:
            self.optimizer = None
        elif self.optimizer is not None and self.optimizer.kind == checked[0][0]:
            self.optimizer._set_checked(*checked)
        else:
            opt = Optimizer(*checked[0])
            opt._set_checked(*checked)
            self.optimizer = opt
        self._version += 1

    @staticmethod
    def from_state(config, state):
        """A network built from ``config()`` output and a ``get_state()`` state; ValueError
        if either is not valid."""
        if not isinstance(config, dict) or set(config) != _CONFIG_KEYS:
            raise ValueError(f"network config must be a dict with keys {sorted(_CONFIG_KEYS)}")
        net = Network(**config)
        net.set_state(state)
        return net

    def __reduce__(self):
        return (_network_from_state, (self.config(), self.get_state()))

    def __sizeof__(self):
        n = object.__sizeof__(self)
        n += sum(a.nbytes for a in self._arrays.values())
        n += sum(a.nbytes for a in self._scratch.values())
        if self.optimizer is not None:
            n += self.optimizer.__sizeof__()
        return n

    def adopt(self, Network old):
        """Take over ``old``'s parameters and state where they overlap; for growing inputs/outputs.

        Input columns and output units of ``old`` keep their indices; new ones keep the values
        this network already holds (its initialisation). Returns ``index`` such that old
        parameter ``j`` now lives at ``index[j]`` (to move optimizer moments along).
        """
        if (old.cell, old.hidden_size, old.num_layers, old.k1, old.k2) != (
                self.cell, self.hidden_size, self.num_layers, self.k1, self.k2):
            raise ValueError("can only adopt a network of the same cell, size and TBPTT")
        if old.n_in > self.n_in or old.n_out > self.n_out:
            raise ValueError("can only grow")
        index = np.empty(old.size, dtype=np.intp)
        new_params = self._arrays["params"]
        for name, (off, shape) in old._layout.items():
            noff, nshape = self._layout[name]
            src_idx = np.arange(off, off + int(np.prod(shape))).reshape(shape)
            dst_idx = np.arange(noff, noff + int(np.prod(nshape))).reshape(nshape)
            sl = tuple(slice(0, n) for n in shape)
            index[src_idx.ravel()] = dst_idx[sl].ravel()
        new_params[index] = old._arrays["params"]
        st = old._arrays
        arrays = {k: v for k, v in self._arrays.items()}
        arrays["h"] = st["h"]
        arrays["c"] = st["c"]
        rx = np.zeros((self.B, self.n_in)); rx[:, :old.n_in] = st["ring_x"]
        rg = np.zeros((self.B, self.n_out)); rg[:, :old.n_out] = st["ring_g"]
        out = np.zeros(self.n_out); out[:old.n_out] = st["out"]
        arrays.update(ring_x=rx, ring_g=rg, ring_r=st["ring_r"], out=out, params=new_params)
        self._set_arrays(self._check_arrays(arrays))  # copies: nothing is shared with old
        self.t = old.t
        self.last_loss = old.last_loss
        self._version += 1
        if old.optimizer is not None:
            old.optimizer.remap(index, self.size)
            self.set_optimizer(old.optimizer)
        return index

    def __repr__(self):
        return (f"Network({_CELL_NAMES[self.cell]}, n_in={self.n_in}, hidden={self.hidden_size}, "
                f"layers={self.num_layers}, n_out={self.n_out}, k1={self.k1}, k2={self.k2}, t={self.t})")


_STATE_KEYS = frozenset(("params", "h", "c", "ring_x", "ring_r", "ring_g", "out", "t",
                         "last_loss", "optimizer"))
_CONFIG_KEYS = frozenset(("cell", "n_in", "hidden_size", "num_layers", "n_out", "k1", "k2",
                          "loss", "huber_eps"))


def _network_from_state(config, state):
    """Unpickling entry point: ``Network.from_state``."""
    return Network.from_state(config, state)


def _rebuild_network(config, state, optimizer):
    """Unpickling entry point of pickles made before ``get_state`` carried the optimizer."""
    state = dict(state)
    state["optimizer"] = None if optimizer is None else optimizer.get_state()
    return Network.from_state(config, state)
