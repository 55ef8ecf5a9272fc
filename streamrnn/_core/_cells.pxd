# The cell layer: signatures, codes and the record layout; see _cells.pyx for the math.

from libc.math cimport exp

# cell codes (streamrnn._core.ELMAN_TANH ...), gate blocks per cell in CELL_GATES
cdef enum CellCode:
    CELL_ELMAN_TANH = 0
    CELL_ELMAN_RELU = 1
    CELL_LSTM = 2
    CELL_GRU = 3
    N_CELLS = 4

# loss codes (streamrnn._core.SQUARED ...)
cdef enum LossCode:
    LOSS_SQUARED = 0
    LOSS_ABSOLUTE = 1
    LOSS_HUBER = 2
    LOSS_BINARY_CE = 3
    LOSS_SOFTMAX_CE = 4
    N_LOSSES = 5

# One layer's record of one step, rec = REC_H_BLOCKS*H + G*H doubles:
#   [h_prev (H) | c_prev (H) | act (G*H) | ext (H) | h (H) | c (H)]
# act: the gate activations (Elman: h; LSTM: i f g o; GRU: r z n); ext: tanh(c) for the LSTM,
# h_prev @ W_hn + b_hn for the GRU. h_prev starts the record (offset 0).
cdef enum:
    REC_H_BLOCKS = 5

cdef inline double* rec_cprev(const double* r, Py_ssize_t H) noexcept nogil:
    return <double*>(r + H)

cdef inline double* rec_act(const double* r, Py_ssize_t H) noexcept nogil:
    return <double*>(r + 2 * H)

cdef inline double* rec_ext(const double* r, Py_ssize_t H, Py_ssize_t GH) noexcept nogil:
    return <double*>(r + 2 * H + GH)

cdef inline double* rec_h(const double* r, Py_ssize_t H, Py_ssize_t GH) noexcept nogil:
    return <double*>(r + 3 * H + GH)

cdef inline double* rec_c(const double* r, Py_ssize_t H, Py_ssize_t GH) noexcept nogil:
    return <double*>(r + 4 * H + GH)


# One step of one layer, input x (d,), previous state hp, cp (H,), weights W_x (d, GH),
# W_h (H, GH), b (GH,), b_hn (H,; GRU only, else unused); a, ah: (GH,) scratch for the
# pre-activations. Fills the whole record r (copies of hp and cp included).
ctypedef void (*cell_forward_t)(Py_ssize_t d, Py_ssize_t H, const double* x, const double* hp,
                                const double* cp, const double* Wx, const double* Wh,
                                const double* b, const double* bhn, double* a, double* ah,
                                double* r) noexcept nogil

# Backward through one step of one layer, from its record r and the total gradient dh (H,)
# reaching its h: writes the gate gradients dax (GH,) (input side, also the bias gradient)
# and, for the GRU, dah (GH,) (recurrent side; the other cells leave it alone, their
# recurrent side is dax), updates the carried cell-state gradient dc (H,; LSTM) in place and
# writes the gradient reaching h_prev into dh_prev (H,).
ctypedef void (*cell_backward_t)(Py_ssize_t H, const double* r, const double* Wh,
                                 const double* dh, double* dc, double* dax, double* dah,
                                 double* dh_prev) noexcept nogil

# Bias gradients of one layer from its stored gate gradients over the W window steps
# (newest first; step a of the layer at DA + a*stride): db (GH,) and, for the GRU, db_hn (H,).
ctypedef void (*cell_bias_t)(Py_ssize_t W, Py_ssize_t stride, Py_ssize_t H, const double* DA,
                             const double* DAH, double* db, double* dbhn) noexcept nogil

# Loss of one step for head output out (n,) and target y; writes dL/dout into g (n,).
ctypedef double (*loss_t)(const double* out, double y, Py_ssize_t n, double eps,
                          double* g) noexcept nogil

# The element-wise part of one step of one layer, from its pre-activations: a (GH,) = b +
# x @ W_x (+ h_prev @ W_h except for the GRU), ah (GH,) = h_prev @ W_h (GRU only); writes the
# whole record r (copies of hp and cp included). Each forward ends with its cell's gates;
# SharedNetwork calls them on its batched products.
ctypedef void (*cell_gates_t)(Py_ssize_t H, const double* a, const double* ah,
                              const double* hp, const double* cp, const double* bhn,
                              double* r) noexcept nogil

ctypedef struct CellKernels:
    Py_ssize_t G                 # gate blocks
    bint separate_dah            # the recurrent gate gradient differs from dax (GRU)
    bint has_bhn                 # a b_hn block per layer (GRU)
    cell_forward_t forward
    cell_gates_t gates
    cell_backward_t backward
    cell_bias_t bias_backward

cdef int cell_kernels(int code, CellKernels* out) noexcept nogil
cdef loss_t loss_function(int code) noexcept nogil


# ---------------------------------------------------------------- shared point functions


cdef inline double sigmoid(double a) noexcept nogil:
    if a >= 0.0:
        return 1.0 / (1.0 + exp(-a))
    cdef double e = exp(a)
    return e / (1.0 + e)


cdef inline void axpy(Py_ssize_t n, double alpha, const double* x, double* y) noexcept nogil:
    # y += alpha * x
    cdef Py_ssize_t j
    for j in range(n):
        y[j] += alpha * x[j]


cdef inline double dot(Py_ssize_t n, const double* x, const double* y) noexcept nogil:
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


cdef extern from "_kernels.h":
    # a (m,) += x (d,) @ W (d x m): the forward's matrix product, one of the C helpers chosen
    # at import (row by row in order, zero inputs skipped; see _kernels_impl.h)
    void sr_affine(Py_ssize_t d, Py_ssize_t m, const double* x, const double* W,
                   double* a) noexcept nogil


cdef inline void affine(Py_ssize_t d, Py_ssize_t m, const double* x, const double* W,
                        double* a) noexcept nogil:
    # a += x @ W for W of shape (d, m), row-major
    sr_affine(d, m, x, W, a)


cdef inline void affine_t(Py_ssize_t d, Py_ssize_t m, const double* W, const double* da,
                          double* out) noexcept nogil:
    # out += da @ W^T for W of shape (d, m)
    cdef Py_ssize_t i
    for i in range(d):
        out[i] += dot(m, W + i * m, da)


cdef inline void outer(Py_ssize_t d, Py_ssize_t m, const double* x, const double* da,
                       double* dW) noexcept nogil:
    # dW += x^T da
    cdef Py_ssize_t i
    for i in range(d):
        if x[i] != 0.0:
            axpy(m, x[i], da, dW + i * m)
