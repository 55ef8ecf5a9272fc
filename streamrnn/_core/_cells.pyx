"""The cell layer: one forward and one backward function per recurrent cell, one point
function per loss. The math is stated once in ``docs/kernel.md``.

Layers of this module:
- nogil functions on raw pointers into buffers that Python allocated: ``*_forward`` (one step
  of one layer, filling its record), ``*_backward`` (that step's gate gradients and the
  gradient reaching the previous state), ``*_bias`` (bias gradients summed over the window),
  and ``*_loss`` (value and gradient of one step's loss);
- ``cell_kernels`` and ``loss_function``: the tables the network reads ONCE, at construction,
  into function pointers, so no step branches on the cell or the loss.

Adding a cell means one forward, one backward and one bias function here, one row in
``cell_kernels`` (its gate count included), a code in ``_cells.pxd``, and its math in
docs/kernel.md and tests/reference.py.

Summation orders are part of the contract (results are bit-identical across releases): every
loop below sums in the order it is written.
"""
from libc.math cimport tanh, exp, log, fabs
from libc.string cimport memcpy, memset


import os

cdef extern from "_kernels.h":
    const char* SR_COMPILER
    const char* sr_isa_names[]
    int SR_N_ISA
    int sr_isa_supported(int isa) noexcept nogil
    int sr_select(const char* name) noexcept nogil
    void sr_matvec(Py_ssize_t d, Py_ssize_t m, const double* W, const double* v,
                   const double* init, double* out) noexcept nogil
    void sr_sigmoid_n(Py_ssize_t n, const double* a, double* y) noexcept nogil
    void sr_tanh_n(Py_ssize_t n, const double* a, double* y) noexcept nogil
    void sr_lstm_bwd(Py_ssize_t H, const double* cp, const double* act, const double* ext,
                     const double* dh, double* dc, double* dax) noexcept nogil
    void sr_sum_steps(Py_ssize_t W, Py_ssize_t stride, Py_ssize_t n, const double* D,
                      double* out) noexcept nogil


def _choose_isa():
    """The copy of the C helpers this process uses, read ONCE from STREAMRNN_ISA (auto, or
    one of default, avx2, avx512); every _core module then points its helpers at it."""
    names = tuple(sr_isa_names[k].decode("ascii") for k in range(SR_N_ISA))
    runs = tuple(names[k] for k in range(SR_N_ISA) if sr_isa_supported(k))
    wanted = os.environ.get("STREAMRNN_ISA", "").strip().lower()
    code = sr_select(wanted.encode("ascii", "replace"))
    if code == -1:
        raise ImportError(f"STREAMRNN_ISA={wanted!r} is not one of auto, "
                          f"{', '.join(names)}; unset it to use the best this CPU runs")
    if code < 0:
        raise ImportError(f"STREAMRNN_ISA={wanted!r}: this CPU or this build cannot run the "
                          f"{wanted} kernels; it runs {', '.join(runs)} (unset STREAMRNN_ISA "
                          f"to use the best)")
    return names[code], runs


# ISA: the copy of the C helpers in use (default, avx2 or avx512); ISAS: the copies this CPU
# runs. Every copy gives the same bits (see _kernels.h).
ISA, ISAS = _choose_isa()
# the compiler of this build; BUILD = ISA and compiler, for reports
COMPILER = SR_COMPILER.decode("ascii", "replace")
BUILD = f"{ISA} {COMPILER}"


# ---------------------------------------------------------------- forward

cdef inline void _preact(Py_ssize_t d, Py_ssize_t GH, const double* x, const double* Wx,
                         const double* b, double* a) noexcept nogil:
    # a = b + x @ W_x
    memcpy(a, b, GH * sizeof(double))
    affine(d, GH, x, Wx, a)


cdef inline void _copy_state(Py_ssize_t H, const double* hp, const double* cp,
                             double* r) noexcept nogil:
    # record the previous state
    memcpy(r, hp, H * sizeof(double))
    memcpy(rec_cprev(r, H), cp, H * sizeof(double))


cdef void elman_tanh_gates(Py_ssize_t H, const double* a, const double* ah, const double* hp,
                           const double* cp, const double* bhn, double* r) noexcept nogil:
    # h = tanh(a)
    cdef Py_ssize_t j
    cdef double* act = rec_act(r, H)
    cdef double* ext = rec_ext(r, H, H)
    cdef double* hn = rec_h(r, H, H)
    cdef double* cn = rec_c(r, H, H)
    _copy_state(H, hp, cp, r)
    sr_tanh_n(H, a, act)
    for j in range(H):
        hn[j] = act[j]
        ext[j] = 0.0
        cn[j] = 0.0


cdef void elman_relu_gates(Py_ssize_t H, const double* a, const double* ah, const double* hp,
                           const double* cp, const double* bhn, double* r) noexcept nogil:
    # h = relu(a)
    cdef Py_ssize_t j
    cdef double* act = rec_act(r, H)
    cdef double* ext = rec_ext(r, H, H)
    cdef double* hn = rec_h(r, H, H)
    cdef double* cn = rec_c(r, H, H)
    _copy_state(H, hp, cp, r)
    for j in range(H):
        act[j] = a[j] if a[j] > 0.0 else 0.0
        hn[j] = act[j]
        ext[j] = 0.0
        cn[j] = 0.0


cdef void lstm_gates(Py_ssize_t H, const double* a, const double* ah, const double* hp,
                     const double* cp, const double* bhn, double* r) noexcept nogil:
    # gates i f g o; c = f*c_prev + i*g; h = o*tanh(c)
    cdef Py_ssize_t j, GH = 4 * H
    cdef double* act = rec_act(r, H)
    cdef double* ext = rec_ext(r, H, GH)
    cdef double* hn = rec_h(r, H, GH)
    cdef double* cn = rec_c(r, H, GH)
    _copy_state(H, hp, cp, r)
    sr_sigmoid_n(2 * H, a, act)
    sr_tanh_n(H, a + 2 * H, act + 2 * H)
    sr_sigmoid_n(H, a + 3 * H, act + 3 * H)
    for j in range(H):
        cn[j] = act[H + j] * cp[j] + act[j] * act[2 * H + j]
    sr_tanh_n(H, cn, ext)
    for j in range(H):
        hn[j] = act[3 * H + j] * ext[j]


cdef void gru_gates(Py_ssize_t H, const double* a, const double* ah, const double* hp,
                    const double* cp, const double* bhn, double* r) noexcept nogil:
    # gates r z n; n = tanh(ax_n + r*(ah_n + b_hn)); h = (1-z)*n + z*h_prev
    cdef Py_ssize_t j, GH = 3 * H
    cdef double* act = rec_act(r, H)
    cdef double* ext = rec_ext(r, H, GH)
    cdef double* hn = rec_h(r, H, GH)
    cdef double* cn = rec_c(r, H, GH)
    cdef double zz, nn
    _copy_state(H, hp, cp, r)
    # ext, h and c follow each other in the record: ext and h hold the r and z
    # pre-activations, then h the n one, until each is written
    for j in range(2 * H):
        ext[j] = a[j] + ah[j]
    sr_sigmoid_n(2 * H, ext, act)
    for j in range(H):
        ext[j] = ah[2 * H + j] + bhn[j]
        hn[j] = a[2 * H + j] + act[j] * ext[j]
    sr_tanh_n(H, hn, act + 2 * H)
    for j in range(H):
        zz = act[H + j]
        nn = act[2 * H + j]
        hn[j] = (1.0 - zz) * nn + zz * r[j]      # r begins with h_prev's copy
        cn[j] = 0.0


cdef void elman_tanh_forward(Py_ssize_t d, Py_ssize_t H, const double* x, const double* hp,
                             const double* cp, const double* Wx, const double* Wh,
                             const double* b, const double* bhn, double* a, double* ah,
                             double* r) noexcept nogil:
    # a = x @ W_x + h_prev @ W_h + b
    _preact(d, H, x, Wx, b, a)
    affine(H, H, hp, Wh, a)
    elman_tanh_gates(H, a, ah, hp, cp, bhn, r)


cdef void elman_relu_forward(Py_ssize_t d, Py_ssize_t H, const double* x, const double* hp,
                             const double* cp, const double* Wx, const double* Wh,
                             const double* b, const double* bhn, double* a, double* ah,
                             double* r) noexcept nogil:
    _preact(d, H, x, Wx, b, a)
    affine(H, H, hp, Wh, a)
    elman_relu_gates(H, a, ah, hp, cp, bhn, r)


cdef void lstm_forward(Py_ssize_t d, Py_ssize_t H, const double* x, const double* hp,
                       const double* cp, const double* Wx, const double* Wh, const double* b,
                       const double* bhn, double* a, double* ah, double* r) noexcept nogil:
    _preact(d, 4 * H, x, Wx, b, a)
    affine(H, 4 * H, hp, Wh, a)
    lstm_gates(H, a, ah, hp, cp, bhn, r)


cdef void gru_forward(Py_ssize_t d, Py_ssize_t H, const double* x, const double* hp,
                      const double* cp, const double* Wx, const double* Wh, const double* b,
                      const double* bhn, double* a, double* ah, double* r) noexcept nogil:
    # a = b + x @ W_x, ah = h_prev @ W_h (the n gate needs them apart)
    _preact(d, 3 * H, x, Wx, b, a)
    memset(ah, 0, 3 * H * sizeof(double))
    affine(H, 3 * H, hp, Wh, ah)
    gru_gates(H, a, ah, hp, cp, bhn, r)


# ---------------------------------------------------------------- backward

cdef void elman_tanh_backward(Py_ssize_t H, const double* r, const double* Wh,
                              const double* dh, double* dc, double* dax, double* dah,
                              double* dh_prev) noexcept nogil:
    cdef const double* act = rec_act(r, H)
    cdef Py_ssize_t j
    for j in range(H):
        dax[j] = dh[j] * (1.0 - act[j] * act[j])
    sr_matvec(H, H, Wh, dax, NULL, dh_prev)


cdef void elman_relu_backward(Py_ssize_t H, const double* r, const double* Wh,
                              const double* dh, double* dc, double* dax, double* dah,
                              double* dh_prev) noexcept nogil:
    cdef const double* act = rec_act(r, H)
    cdef Py_ssize_t j
    for j in range(H):
        dax[j] = dh[j] if act[j] > 0.0 else 0.0
    sr_matvec(H, H, Wh, dax, NULL, dh_prev)


cdef void lstm_backward(Py_ssize_t H, const double* r, const double* Wh, const double* dh,
                        double* dc, double* dax, double* dah, double* dh_prev) noexcept nogil:
    # per j: dct = dc + dh*og*(1 - tc^2); dax = (dct*gg*ig*(1 - ig), dct*c_prev*fg*(1 - fg),
    # dct*ig*(1 - gg^2), dh*tc*og*(1 - og)); dc = dct*fg (in C: sr_lstm_bwd); then W_h dax
    cdef Py_ssize_t GH = 4 * H
    sr_lstm_bwd(H, rec_cprev(r, H), rec_act(r, H), rec_ext(r, H, GH), dh, dc, dax)
    sr_matvec(H, GH, Wh, dax, NULL, dh_prev)


cdef void gru_backward(Py_ssize_t H, const double* r, const double* Wh, const double* dh,
                       double* dc, double* dax, double* dah, double* dh_prev) noexcept nogil:
    cdef Py_ssize_t j, GH = 3 * H
    cdef const double* hp = r  # h_prev starts the record
    cdef const double* act = rec_act(r, H)
    cdef const double* ext = rec_ext(r, H, GH)
    cdef double rr, zz, nn, dn, dan
    for j in range(H):
        rr = act[j]; zz = act[H + j]; nn = act[2 * H + j]
        dn = dh[j] * (1.0 - zz)
        dan = dn * (1.0 - nn * nn)
        dax[j] = dan * ext[j] * rr * (1.0 - rr)
        dax[H + j] = dh[j] * (hp[j] - nn) * zz * (1.0 - zz)
        dax[2 * H + j] = dan
        dah[j] = dax[j]
        dah[H + j] = dax[H + j]
        dah[2 * H + j] = dan * rr
        dh_prev[j] = dh[j] * zz
    sr_matvec(H, GH, Wh, dah, dh_prev, dh_prev)


cdef inline void _sum_steps(Py_ssize_t W, Py_ssize_t stride, Py_ssize_t n, const double* D,
                            double* out) noexcept nogil:
    # out[j] = sum over the window steps a (newest first) of D[a*stride + j], each from 0.0
    # in the order a = 0, 1, ... (sr_sum_steps: one pass over out per step, in this copy's
    # vectors)
    sr_sum_steps(W, stride, n, D, out)


cdef void elman_bias(Py_ssize_t W, Py_ssize_t stride, Py_ssize_t H, const double* DA,
                     const double* DAH, double* db, double* dbhn) noexcept nogil:
    _sum_steps(W, stride, H, DA, db)


cdef void lstm_bias(Py_ssize_t W, Py_ssize_t stride, Py_ssize_t H, const double* DA,
                    const double* DAH, double* db, double* dbhn) noexcept nogil:
    _sum_steps(W, stride, 4 * H, DA, db)


cdef void gru_bias(Py_ssize_t W, Py_ssize_t stride, Py_ssize_t H, const double* DA,
                   const double* DAH, double* db, double* dbhn) noexcept nogil:
    # b gets dax; b_hn, which sits inside r*(...), gets the recurrent n-gate gradient
    _sum_steps(W, stride, 3 * H, DA, db)
    _sum_steps(W, stride, H, DAH + 2 * H, dbhn)


# ---------------------------------------------------------------- losses

cdef double squared_loss(const double* out, double y, Py_ssize_t n, double eps,
                         double* g) noexcept nogil:
    cdef double r = out[0] - y
    g[0] = 2.0 * r
    return r * r


cdef double absolute_loss(const double* out, double y, Py_ssize_t n, double eps,
                          double* g) noexcept nogil:
    cdef double r = out[0] - y
    g[0] = 1.0 if r > 0 else (-1.0 if r < 0 else 0.0)
    return fabs(r)


cdef double huber_loss(const double* out, double y, Py_ssize_t n, double eps,
                       double* g) noexcept nogil:
    cdef double r = out[0] - y
    if fabs(r) <= eps:
        g[0] = r
        return 0.5 * r * r
    g[0] = eps if r > 0 else -eps
    return eps * (fabs(r) - 0.5 * eps)


cdef double binary_ce_loss(const double* out, double y, Py_ssize_t n, double eps,
                           double* g) noexcept nogil:
    cdef double p = sigmoid(out[0]), m = out[0]
    g[0] = p - y
    # log(1 + exp(-|o|)) form, stable for large |o|
    return (m if m > 0 else 0.0) - m * y + log(1.0 + exp(-fabs(m)))


cdef double softmax_ce_loss(const double* out, double y, Py_ssize_t n, double eps,
                            double* g) noexcept nogil:
    # y is a class index in [0, n), checked by the caller
    cdef Py_ssize_t k, yi = <Py_ssize_t>y
    cdef double m = out[0], s = 0.0, r
    for k in range(1, n):
        if out[k] > m:
            m = out[k]
    for k in range(n):
        g[k] = exp(out[k] - m)
        s += g[k]
    for k in range(n):
        g[k] /= s
    r = -(out[yi] - m - log(s))
    g[yi] -= 1.0
    return r


# ---------------------------------------------------------------- tables

cdef int cell_kernels(int code, CellKernels* out) noexcept nogil:
    """Fill ``out`` with the kernels of cell ``code``; returns 0, or -1 for an unknown code."""
    out.separate_dah = False
    out.has_bhn = False
    if code == CELL_ELMAN_TANH:
        out.G = 1
        out.forward, out.backward, out.bias_backward = (
            elman_tanh_forward, elman_tanh_backward, elman_bias)
        out.gates = elman_tanh_gates
    elif code == CELL_ELMAN_RELU:
        out.G = 1
        out.forward, out.backward, out.bias_backward = (
            elman_relu_forward, elman_relu_backward, elman_bias)
        out.gates = elman_relu_gates
    elif code == CELL_LSTM:
        out.G = 4
        out.forward, out.backward, out.bias_backward = lstm_forward, lstm_backward, lstm_bias
        out.gates = lstm_gates
    elif code == CELL_GRU:
        out.G = 3
        out.separate_dah = True
        out.has_bhn = True
        out.forward, out.backward, out.bias_backward = gru_forward, gru_backward, gru_bias
        out.gates = gru_gates
    else:
        return -1
    return 0


cdef loss_t loss_function(int code) noexcept nogil:
    """The point function of loss ``code``, or NULL for an unknown code."""
    if code == LOSS_SQUARED:
        return squared_loss
    if code == LOSS_ABSOLUTE:
        return absolute_loss
    if code == LOSS_HUBER:
        return huber_loss
    if code == LOSS_BINARY_CE:
        return binary_ce_loss
    if code == LOSS_SOFTMAX_CE:
        return softmax_ce_loss
    return NULL


def _vector_activation(str name, const double[::1] x, double[::1] y):
    """Test hook: ``y = sigmoid(x)`` (``name`` "sigmoid") or ``tanh(x)`` ("tanh") by the
    cells' array functions (sr_sigmoid_n, sr_tanh_n of the copy in use)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError("x and y differ in size")
    if name not in ("sigmoid", "tanh"):
        raise ValueError(f"unknown activation {name!r}")
    if x.shape[0] == 0:
        return
    with nogil:
        if name == "sigmoid":
            sr_sigmoid_n(x.shape[0], &x[0], &y[0])
        else:
            sr_tanh_n(x.shape[0], &x[0], &y[0])
