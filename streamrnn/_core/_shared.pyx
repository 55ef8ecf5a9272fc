"""One network shared by many sequences: shared weights, per-key slots, batched steps.

``SharedNetwork`` separates what every sequence shares (the flat parameter vector, its
gradient, the optimizer moments) from what belongs to one sequence, which lives in
preallocated slot arrays of ``capacity`` rows (no Python object per key):

    h, c     the committed state of every layer (c for the LSTM only)     (L, H) each
    h0, c0   the state at the start of the TBPTT window                    (L, H) each
    x        the window's past inputs, oldest first                         (k2 - 1, n_in)
    n        how many of them are held (0 right after a reset, then k2-1)   int64

Nothing else is kept per key: the forward pass of the window is recomputed (replayed) from
(h0, c0) during the backward pass. ``slot_dtype="float32"`` stores these arrays in float32
(half the memory; the step computes in float64 and rounds what it commits).

The batched step (``step``), for B distinct slots k_1..k_B with inputs x_b and targets y_b,
with theta the shared parameters when the call starts:

1. Forecast: out_b = head(f_theta(h_b, c_b; x_b)) from the committed state (what ``predict``
   returns for the same input). The new committed state is (h_b', c_b') of that step.
2. Replay: the key's window is its held past inputs followed by x_b (W_b = n_b + 1 <= k2
   steps); it is run again from (h0_b, c0_b) with theta, giving yhat_b at its last step.
3. Loss of the batch: J(theta) = (1/B) * sum_b L(yhat_b, y_b) (the MEAN over the keys;
   for n_out > 1 with a regression loss, L sums the per-output losses). The gradient is the
   exact gradient of J through the replayed windows (TBPTT truncated at each window's start,
   whose state is a constant), summed over the keys and divided by B.
4. One optimizer step on that gradient (clipping by value/norm applies to the batch
   gradient): ``optimizer.t`` and ``self.t`` advance by one per batch.
5. Commit: (h_b, c_b) <- (h_b', c_b'); x_b joins the window; when the window was full
   (W_b == k2) its oldest step leaves it and (h0_b, c0_b) becomes the replayed state after
   that oldest step.

``step_multi`` (delayed targets, direct multi-horizon regression): Y[b, j] is the target of
output j of key b's step taken j calls ago (NaN: none). Step 3 becomes
J = (1/B) * sum_b sum_j L(yhat_bj(t - j), y_bj), yhat(t - j) the head at that step of the
replayed window, each gradient entering the window at its own step; k2 >= n_out keeps every
target inside the window (targets for steps before a slot's first are ignored). This is
``Network.learn_multi``'s objective with the window replayed instead of read from records.

yhat_b equals out_b bit for bit whenever the replay starts from the committed state: a
window of one step (k2 = 1, or the first step after a reset), or theta unchanged since the
window began. Otherwise they differ by the drift of theta over the window: the forecast is
the online forward (like ``Network``), the loss trained is that of the window replayed
with the current weights (the exact gradient of a stated objective; ``Network`` instead
back-propagates through the records it stored with the weights of their own time).

One call at a time per network: ``step`` and ``predict`` release the GIL, and a call made
from another thread while one runs raises RuntimeError (so do the slot and state methods),
rather than sharing the scratch. Networks are independent: one thread per network (for
example one per stream partition) runs in parallel.

A step that fails (non-finite input or target: BAD_INPUT; non-finite output, loss,
gradient or new state: DIVERGED; with float32 slots also an input, or a new state, beyond
the float32 range, which the slot would hold as inf) changes nothing: every result is
computed in scratch and committed only after the checks, and the optimizer runs only then.

``advance`` is the step without learning (for keys that learn only every k-th
observation): step 1 and step 5 above, with the new window start of a full window replayed
with theta, so a later ``step`` replays the key's last k2 inputs as if it had stepped.

Layers of this module: Python validates (sizes, dtypes, slot ranges, distinctness, state
dicts); the nogil methods compute. The forward runs as matrix-matrix products over the rows
of the batch (``_gemm_acc``: each output element summed in the order of the inner index,
the order of the single-series kernel) and the cells' element-wise gates on this module's
vector sigmoid and tanh (``sh_sigmoid_n``/``sh_tanh_n``, within a few ulps of libm's; the
relu cell uses _cells' own gates). So one key follows ``Network`` to rounding (about 1e-14),
and every instruction set gives the same bits; the
backward walks the windows newest to oldest over the active rows (``perm`` sorts the rows
by window length, so the rows active at each replay step are a prefix), each step's rows
together: their element-wise gate gradients, then the gradient reaching the previous state
(and the layer below) as one product with the transposed weights over the step's rows; the
parameter gradients are one ``X^T DA`` product over every (step, key) row. Replay and
backward run ``CHUNK`` (64) sorted rows at a time, so their records stay in cache; the
gradients of later chunks are added to the first's. No allocation
happens after ``__init__``. The parameter gradients take the rows of X and H_prev by pointer
(``sr_gemm_rows``: the sums of ``sr_gemm_tn`` on the transposed copies, bit for bit).

Threads (``threads``, default 1, or ``set_threads(n)`` for the networks built after it): the
chunks of a step's replay and backward are shared with a process-wide pool of worker
threads. Each thread claims the next chunk (the calling thread too, so a worker that is not
scheduled takes nothing and the caller runs every chunk itself); each chunk writes its
gradient, its loss and its head terms to its own buffers, and the calling thread adds them
in chunk order, the additions of the one-thread loop term by term: any number of threads
gives the same bits (``tests/test_shared_threads.py``). One step uses the pool at a time; a
network stepping meanwhile in another Python thread runs its chunks alone. It pays only
with idle cores: on 2 cores shared with other work it measured 0.7x to 1.4x.
"""
import numpy as np

cimport numpy as cnp
from libc.math cimport fabs, isfinite, isinf, isnan
from libc.float cimport FLT_MAX
from libc.string cimport memcpy, memmove, memset
from libc.stdlib cimport calloc, free

from streamrnn._core._cells cimport (
    CELL_ELMAN_TANH, CELL_GRU, CELL_LSTM, LOSS_BINARY_CE, LOSS_SOFTMAX_CE, REC_H_BLOCKS,
    CellKernels, cell_kernels, loss_function, rec_act, rec_cprev, rec_ext, rec_h, rec_c,
    affine_t, outer)
from streamrnn._core._optim cimport Optimizer, restore_checked
from streamrnn._core._optim import _array, _counter, _number, check_state
from streamrnn._core._network import _check_config, _int_arg, _CELL_NAMES

cnp.import_array()

from streamrnn._core._kernels cimport sr_gemm_rows, sr_select

from streamrnn._core._cells import ISA as _ISA

sr_select(_ISA.encode("ascii"))
sh_select(_ISA.encode("ascii"))  # this module's own batched gemm: the same copy

# status codes, as Network.learn's
LEARNED = 0
UPDATED = 1
BAD_INPUT = -1
DIVERGED = -2

CHUNK = 64                     # rows replayed together (their records stay in L2)
MAX_SCRATCH_BYTES = 2 ** 31    # the shared part and the batch scratch
MAX_SLOT_BYTES = 2 ** 38       # the slot arrays (256 GB: a guard against absurd configs)
_FLT_MAX = float(np.finfo(np.float32).max)


# ---------------------------------------------------------------- nogil point kernels

cdef extern from *:
    """
    /* C (nb x m, row stride ldc) += A (nb x d, row stride lda) @ W (d x m): each element of C
       summed in the order i = 0..d-1 (the single-series kernel's order), four rows of C at a
       time (each load of W serves four keys). Compiled once per instruction
       set like _kernels.h's helpers (element-wise, no FMA: -ffp-contract=off), so every copy
       gives the same bits; sh_select picks the copy _cells chose. */
    #include <stddef.h>
    /* register-blocked: for 4 rows of C and one vector of columns at a time the partial sums stay in
       registers over the whole i loop (each element still starts from C and adds
       A[b, i] * W[i, j] for i = 0, 1, ..., d-1 in order) */
    /* one vector register of the copy's instruction set: 2, 4 or 8 doubles */
    typedef double sh_v2 __attribute__((vector_size(16)));
    typedef double sh_v2u __attribute__((vector_size(16), aligned(8), may_alias));
    typedef double sh_v4 __attribute__((vector_size(32)));
    typedef double sh_v4u __attribute__((vector_size(32), aligned(8), may_alias));
    typedef double sh_v8 __attribute__((vector_size(64)));
    typedef double sh_v8u __attribute__((vector_size(64), aligned(8), may_alias));
    typedef long long sh_i2 __attribute__((vector_size(16)));
    typedef long long sh_i4 __attribute__((vector_size(32)));
    typedef long long sh_i8 __attribute__((vector_size(64)));
    #define SH_LD(VU, p) (*(const VU*)(p))
    #define SH_ST(VU, p, x) (*(VU*)(p) = (x))
    #define SH_GEMM_BODY(V, VU, WD)                                                       \
        ptrdiff_t b = 0, i, j, r;                                                         \
        for (; b + 4 <= nb; b += 4) {                                                     \
            const double* a0 = A + b * lda;                                               \
            const double* a1 = a0 + lda;                                                  \
            const double* a2 = a1 + lda;                                                  \
            const double* a3 = a2 + lda;                                                  \
            double* c0 = C + b * ldc;                                                     \
            for (j = 0; j + WD <= m; j += WD) {                                           \
                V s0 = SH_LD(VU, c0 + j), s1 = SH_LD(VU, c0 + ldc + j);                   \
                V s2 = SH_LD(VU, c0 + 2 * ldc + j), s3 = SH_LD(VU, c0 + 3 * ldc + j);     \
                for (i = 0; i < d; i++) {                                                 \
                    const V wv = SH_LD(VU, W + i * m + j);                                \
                    s0 += a0[i] * wv; s1 += a1[i] * wv;                                   \
                    s2 += a2[i] * wv; s3 += a3[i] * wv;                                   \
                }                                                                         \
                SH_ST(VU, c0 + j, s0); SH_ST(VU, c0 + ldc + j, s1);                       \
                SH_ST(VU, c0 + 2 * ldc + j, s2); SH_ST(VU, c0 + 3 * ldc + j, s3);         \
            }                                                                             \
            for (; j < m; j++)                                                            \
                for (r = 0; r < 4; r++) {                                                 \
                    const double* ar = A + (b + r) * lda;                                 \
                    double acc = C[(b + r) * ldc + j];                                    \
                    for (i = 0; i < d; i++) acc += ar[i] * W[i * m + j];                  \
                    C[(b + r) * ldc + j] = acc;                                           \
                }                                                                         \
        }                                                                                 \
        for (; b < nb; b++) {                                                             \
            const double* a0 = A + b * lda;                                               \
            double* c0 = C + b * ldc;                                                     \
            for (j = 0; j + WD <= m; j += WD) {                                           \
                V s0 = SH_LD(VU, c0 + j);                                                 \
                for (i = 0; i < d; i++) s0 += a0[i] * SH_LD(VU, W + i * m + j);           \
                SH_ST(VU, c0 + j, s0);                                                    \
            }                                                                             \
            for (; j < m; j++) {                                                          \
                double acc = c0[j];                                                       \
                for (i = 0; i < d; i++) acc += a0[i] * W[i * m + j];                      \
                c0[j] = acc;                                                              \
            }                                                                             \
        }
    /* exp, the sigmoid and tanh on arrays, element-wise on vectors of WD doubles (SIMD
       without libm's per-call cost). One body per instruction set, no FMA
       (-ffp-contract=off) and the same operations in every lane and in the tail (which
       runs the vector code on a zero-padded copy), so every copy gives the same bits.
       exp is only needed for x <= 0 here (the sigmoid and tanh take exp(-|a|)):
       x is clamped to >= -700 (exp(-700) ~ 1e-304: a sigmoid or tanh that far out is 0 or
       1 to double precision anyway), k = round(x / ln 2) by the 1.5 * 2^52 trick,
       r = x - k ln 2 in two parts (Cody-Waite: k * SH_LN2HI is exact), exp(r) by the Taylor
       polynomial of degree 13 (|r| <= 0.35, truncation < 1e-17), times 2^k made in the
       exponent bits. NaN stays NaN. Accurate to about 1 ulp against libm's exp. */
    #define SH_VMATH(SUF, V, VI, VU, WD, ATTR)                                             \
    ATTR static inline V sh_vexpneg_##SUF(V x) {                                           \
        const V zero = {0};                                                                \
        const V lo = zero - 700.0, shift = zero + 6755399441055744.0;                      \
        VI m = (VI)(x < lo);                                                               \
        x = (V)((m & (VI)lo) | (~m & (VI)x));                                              \
        V t = x * 1.4426950408889634 + shift;                                              \
        V kd = t - shift;                                                                  \
        VI ki = (VI)t - (VI)shift;                                                         \
        V r = (x - kd * 6.93147180369123816490e-01) - kd * 1.90821492927058770002e-10;     \
        V p = zero + 1.6059043836821613e-10;                                               \
        p = p * r + 2.08767569878681e-09;                                                  \
        p = p * r + 2.505210838544172e-08;                                                 \
        p = p * r + 2.755731922398589e-07;                                                 \
        p = p * r + 2.7557319223985893e-06;                                                \
        p = p * r + 2.48015873015873e-05;                                                  \
        p = p * r + 0.0001984126984126984;                                                 \
        p = p * r + 0.001388888888888889;                                                  \
        p = p * r + 0.008333333333333333;                                                  \
        p = p * r + 0.041666666666666664;                                                  \
        p = p * r + 0.16666666666666666;                                                   \
        p = p * r + 0.5;                                                                   \
        p = p * r + 1.0;                                                                   \
        p = p * r + 1.0;                                                                   \
        return p * (V)((ki + 1023) << 52);                                                 \
    }                                                                                      \
    ATTR static inline V sh_vsigmoid_##SUF(V a) {                                          \
        const V zero = {0};                                                                \
        const VI sign = (VI){0} - 0x7fffffffffffffffLL - 1;                                \
        V e = sh_vexpneg_##SUF((V)((VI)a | sign));      /* exp(-|a|) */                    \
        V d = e + 1.0;                                                                     \
        VI m = (VI)(a >= zero);                         /* 1/d or e/d: one division */     \
        const V one = zero + 1.0;                                                          \
        return (V)((m & (VI)one) | (~m & (VI)e)) / d;                                      \
    }                                                                                      \
    ATTR static inline V sh_vtanh_##SUF(V a) {                                             \
        const V zero = {0};                                                                \
        const VI sign = (VI){0} - 0x7fffffffffffffffLL - 1;                                \
        V x = (V)((VI)a & ~sign);                       /* |a| */                          \
        V e = sh_vexpneg_##SUF(x * -2.0);                                                  \
        V big = (1.0 - e) / (1.0 + e);                                                     \
        V x2 = x * x;                                   /* |a| < 1/8: Taylor, 8 terms */   \
        V p = zero - 0.0014558343870513183;                                                \
        p = p * x2 + 0.003592128036572481;                                                 \
        p = p * x2 - 0.008863235529902197;                                                 \
        p = p * x2 + 0.021869488536155203;                                                 \
        p = p * x2 - 0.05396825396825397;                                                  \
        p = p * x2 + 0.13333333333333333;                                                  \
        p = p * x2 - 0.3333333333333333;                                                   \
        p = p * x2 * x + x;                                                                \
        VI m = (VI)(x < zero + 0.125);                                                     \
        V t = (V)((m & (VI)p) | (~m & (VI)big));                                           \
        return (V)((VI)t | ((VI)a & sign));                                                \
    }                                                                                      \
    ATTR static void sh_sigmoid_n_##SUF(ptrdiff_t n, const double* x, double* y) {         \
        ptrdiff_t j = 0, q;                                                                \
        for (; j + WD <= n; j += WD) SH_ST(VU, y + j, sh_vsigmoid_##SUF(SH_LD(VU, x + j))); \
        if (j < n) {                                                                       \
            double buf[WD];                                                                \
            for (q = 0; q < WD; q++) buf[q] = j + q < n ? x[j + q] : 0.0;                  \
            SH_ST(VU, buf, sh_vsigmoid_##SUF(SH_LD(VU, buf)));                             \
            for (q = 0; j + q < n; q++) y[j + q] = buf[q];                                 \
        }                                                                                  \
    }                                                                                      \
    ATTR static void sh_tanh_n_##SUF(ptrdiff_t n, const double* x, double* y) {            \
        ptrdiff_t j = 0, q;                                                                \
        for (; j + WD <= n; j += WD) SH_ST(VU, y + j, sh_vtanh_##SUF(SH_LD(VU, x + j)));   \
        if (j < n) {                                                                       \
            double buf[WD];                                                                \
            for (q = 0; q < WD; q++) buf[q] = j + q < n ? x[j + q] : 0.0;                  \
            SH_ST(VU, buf, sh_vtanh_##SUF(SH_LD(VU, buf)));                                \
            for (q = 0; j + q < n; q++) y[j + q] = buf[q];                                 \
        }                                                                                  \
    }
    /* the element-wise part of the LSTM's and the GRU's backward through one step of one
       layer (the math of _cells' lstm_backward/gru_backward without their W_h product, which
       SharedNetwork forms over the rows of a step), one copy per instruction set so the loop
       runs in that set's vectors; element-wise, no FMA: every copy gives the same bits.
       Record r: [h_prev | c_prev | act (G*H) | ext | h | c]. */
    #define SH_BW(SUF, ATTR)                                                                   \
    ATTR static void sh_lstm_bw_##SUF(ptrdiff_t H, const double* restrict r,                   \
            const double* restrict dh, double* restrict dc, double* restrict dax,              \
            double* dah, double* restrict dhp) {                                               \
        const double* cp = r + H;                                                              \
        const double* act = r + 2 * H;                                                         \
        const double* ext = r + 6 * H;                                                         \
        ptrdiff_t j;                                                                           \
        (void)dah;                                                                             \
        for (j = 0; j < H; j++) {                                                              \
            double ig = act[j], fg = act[H + j], gg = act[2 * H + j], og = act[3 * H + j];     \
            double tc = ext[j];                                                                \
            double dct = dc[j] + dh[j] * og * (1.0 - tc * tc);                                 \
            dax[j] = dct * gg * ig * (1.0 - ig);                                               \
            dax[H + j] = dct * cp[j] * fg * (1.0 - fg);                                        \
            dax[2 * H + j] = dct * ig * (1.0 - gg * gg);                                       \
            dax[3 * H + j] = dh[j] * tc * og * (1.0 - og);                                     \
            dc[j] = dct * fg;                                                                  \
            dhp[j] = 0.0;                                                                      \
        }                                                                                      \
    }                                                                                          \
    ATTR static void sh_gru_bw_##SUF(ptrdiff_t H, const double* restrict r,                    \
            const double* restrict dh, double* dc, double* restrict dax,                       \
            double* restrict dah, double* restrict dhp) {                                      \
        const double* hp = r;                                                                  \
        const double* act = r + 2 * H;                                                         \
        const double* ext = r + 5 * H;                                                         \
        ptrdiff_t j;                                                                           \
        (void)dc;                                                                              \
        for (j = 0; j < H; j++) {                                                              \
            double rr = act[j], zz = act[H + j], nn = act[2 * H + j];                          \
            double dn = dh[j] * (1.0 - zz);                                                    \
            double dan = dn * (1.0 - nn * nn);                                                 \
            double d0 = dan * ext[j] * rr * (1.0 - rr);                                        \
            double d1 = dh[j] * (hp[j] - nn) * zz * (1.0 - zz);                                \
            dax[j] = d0;                                                                       \
            dax[H + j] = d1;                                                                   \
            dax[2 * H + j] = dan;                                                              \
            dah[j] = d0;                                                                       \
            dah[H + j] = d1;                                                                   \
            dah[2 * H + j] = dan * rr;                                                         \
            dhp[j] = dh[j] * zz;                                                               \
        }                                                                                      \
    }
    #define SH_BW_ARGS ptrdiff_t, const double*, const double*, double*, double*, double*, double*
    #define SH_GEMM_ARGS ptrdiff_t nb, ptrdiff_t d, ptrdiff_t m, const double* A, \
                         ptrdiff_t lda, const double* W, double* C, ptrdiff_t ldc
    static void sh_gemm_acc_default(SH_GEMM_ARGS) { SH_GEMM_BODY(sh_v2, sh_v2u, 2) }
    static void (*sh_gemm_acc)(SH_GEMM_ARGS) = sh_gemm_acc_default;
    SH_VMATH(default, sh_v2, sh_i2, sh_v2u, 2, )
    SH_BW(default, )
    static void (*sh_lstm_bw)(SH_BW_ARGS) = sh_lstm_bw_default;
    static void (*sh_gru_bw)(SH_BW_ARGS) = sh_gru_bw_default;
    static void (*sh_sigmoid_n)(ptrdiff_t, const double*, double*) = sh_sigmoid_n_default;
    static void (*sh_tanh_n)(ptrdiff_t, const double*, double*) = sh_tanh_n_default;
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(_M_X64))
    __attribute__((target("avx2"))) static void sh_gemm_acc_avx2(SH_GEMM_ARGS) { SH_GEMM_BODY(sh_v4, sh_v4u, 4) }
    __attribute__((target("avx512f"))) static void sh_gemm_acc_avx512(SH_GEMM_ARGS) { SH_GEMM_BODY(sh_v8, sh_v8u, 8) }
    SH_VMATH(avx2, sh_v4, sh_i4, sh_v4u, 4, __attribute__((target("avx2"))))
    SH_VMATH(avx512, sh_v8, sh_i8, sh_v8u, 8, __attribute__((target("avx512f"))))
    SH_BW(avx2, __attribute__((target("avx2"))))
    SH_BW(avx512, __attribute__((target("avx512f"))))
    static int sh_select(const char* isa) {
        if (strcmp(isa, "avx512") == 0) {
            sh_gemm_acc = sh_gemm_acc_avx512;
            sh_sigmoid_n = sh_sigmoid_n_avx512; sh_tanh_n = sh_tanh_n_avx512;
            sh_lstm_bw = sh_lstm_bw_avx512; sh_gru_bw = sh_gru_bw_avx512;
            return 2;
        }
        if (strcmp(isa, "avx2") == 0) {
            sh_gemm_acc = sh_gemm_acc_avx2;
            sh_sigmoid_n = sh_sigmoid_n_avx2; sh_tanh_n = sh_tanh_n_avx2;
            sh_lstm_bw = sh_lstm_bw_avx2; sh_gru_bw = sh_gru_bw_avx2;
            return 1;
        }
        sh_gemm_acc = sh_gemm_acc_default;
        sh_sigmoid_n = sh_sigmoid_n_default; sh_tanh_n = sh_tanh_n_default;
        sh_lstm_bw = sh_lstm_bw_default; sh_gru_bw = sh_gru_bw_default;
        return 0;
    }
    #else
    static int sh_select(const char* isa) { sh_gemm_acc = sh_gemm_acc_default; return 0; }
    #endif
    """
    void sh_gemm_acc(Py_ssize_t nb, Py_ssize_t d, Py_ssize_t m, const double* A,
                     Py_ssize_t lda, const double* W, double* C, Py_ssize_t ldc) noexcept nogil
    int sh_select(const char* isa) noexcept nogil
    void sh_sigmoid_n(Py_ssize_t n, const double* x, double* y) noexcept nogil
    void sh_tanh_n(Py_ssize_t n, const double* x, double* y) noexcept nogil
    void (*sh_lstm_bw)(Py_ssize_t H, const double* r, const double* dh, double* dc,
                       double* dax, double* dah, double* dhp) noexcept nogil
    void (*sh_gru_bw)(Py_ssize_t H, const double* r, const double* dh, double* dc,
                      double* dax, double* dah, double* dhp) noexcept nogil


cdef inline void _gemm_acc(Py_ssize_t nb, Py_ssize_t d, Py_ssize_t m, const double* A,
                           Py_ssize_t lda, const double* W, double* C) noexcept nogil:
    """C (nb x m) += A (nb x d, row stride lda) @ W (d x m), see sh_gemm_acc above."""
    sh_gemm_acc(nb, d, m, A, lda, W, C, m)


cdef inline void _gemm_acc_ld(Py_ssize_t nb, Py_ssize_t d, Py_ssize_t m, const double* A,
                              Py_ssize_t lda, const double* W, double* C,
                              Py_ssize_t ldc) noexcept nogil:
    """``_gemm_acc`` into rows of C of stride ldc."""
    sh_gemm_acc(nb, d, m, A, lda, W, C, ldc)


# the cells' element-wise gates on the vector sigmoid and tanh above (the math and the
# record of _cells' gates; the Elman relu cell, without transcendentals, uses _cells' own)

cdef void _lstm_gates(Py_ssize_t H, const double* a, const double* ah, const double* hp,
                      const double* cp, const double* bhn, double* r) noexcept nogil:
    # gates i f g o; c = f*c_prev + i*g; h = o*tanh(c)
    cdef Py_ssize_t j, GH = 4 * H
    cdef double* act = rec_act(r, H)
    cdef double* ext = rec_ext(r, H, GH)
    cdef double* hn = rec_h(r, H, GH)
    cdef double* cn = rec_c(r, H, GH)
    memcpy(r, hp, H * sizeof(double))
    memcpy(rec_cprev(r, H), cp, H * sizeof(double))
    sh_sigmoid_n(2 * H, a, act)
    sh_tanh_n(H, a + 2 * H, act + 2 * H)
    sh_sigmoid_n(H, a + 3 * H, act + 3 * H)
    for j in range(H):
        cn[j] = act[H + j] * cp[j] + act[j] * act[2 * H + j]
    sh_tanh_n(H, cn, ext)
    for j in range(H):
        hn[j] = act[3 * H + j] * ext[j]


cdef void _gru_gates(Py_ssize_t H, const double* a, const double* ah, const double* hp,
                     const double* cp, const double* bhn, double* r) noexcept nogil:
    # gates r z n; n = tanh(ax_n + r*(ah_n + b_hn)); h = (1-z)*n + z*h_prev
    cdef Py_ssize_t j, GH = 3 * H
    cdef double* act = rec_act(r, H)
    cdef double* ext = rec_ext(r, H, GH)
    cdef double* hn = rec_h(r, H, GH)
    cdef double* cn = rec_c(r, H, GH)
    memcpy(r, hp, H * sizeof(double))
    memcpy(rec_cprev(r, H), cp, H * sizeof(double))
    for j in range(2 * H):
        act[j] = a[j] + ah[j]
    sh_sigmoid_n(2 * H, act, act)
    for j in range(H):
        ext[j] = ah[2 * H + j] + bhn[j]
        act[2 * H + j] = a[2 * H + j] + act[j] * ext[j]
    sh_tanh_n(H, act + 2 * H, act + 2 * H)
    for j in range(H):
        hn[j] = (1.0 - act[H + j]) * act[2 * H + j] + act[H + j] * hp[j]
        cn[j] = 0.0


cdef void _elman_tanh_gates(Py_ssize_t H, const double* a, const double* ah, const double* hp,
                            const double* cp, const double* bhn, double* r) noexcept nogil:
    # h = tanh(a)
    cdef Py_ssize_t j
    cdef double* act = rec_act(r, H)
    memcpy(r, hp, H * sizeof(double))
    memcpy(rec_cprev(r, H), cp, H * sizeof(double))
    sh_tanh_n(H, a, act)
    memcpy(rec_h(r, H, H), act, H * sizeof(double))
    memset(rec_ext(r, H, H), 0, H * sizeof(double))
    memset(rec_c(r, H, H), 0, H * sizeof(double))


# the element-wise part of the cells' backward (the math of _cells' backward, whose W_h
# product SharedNetwork forms over the rows of a replay step instead); the LSTM's and the
# GRU's are the C copies sh_lstm_bw/sh_gru_bw above

cdef void _elman_tanh_bw(Py_ssize_t H, const double* r, const double* dh, double* dc,
                         double* dax, double* dah, double* dhp) noexcept nogil:
    cdef const double* act = rec_act(r, H)
    cdef Py_ssize_t j
    for j in range(H):
        dax[j] = dh[j] * (1.0 - act[j] * act[j])
        dhp[j] = 0.0


cdef void _elman_relu_bw(Py_ssize_t H, const double* r, const double* dh, double* dc,
                         double* dax, double* dah, double* dhp) noexcept nogil:
    cdef const double* act = rec_act(r, H)
    cdef Py_ssize_t j
    for j in range(H):
        dax[j] = dh[j] if act[j] > 0.0 else 0.0
        dhp[j] = 0.0


cdef inline void _sum_rows(Py_ssize_t N, Py_ssize_t stride, Py_ssize_t n, const double* D,
                           double* out) noexcept nogil:
    """out[j] = sum over the rows a = 0..N-1 (in that order) of D[a*stride + j]: the bias
    gradients, summed in the order of _cells' (row by row here, so the loop vectorises)."""
    cdef Py_ssize_t a, j
    cdef const double* d
    for j in range(n):
        out[j] = 0.0
    for a in range(N):
        d = D + a * stride
        for j in range(n):
            out[j] += d[j]


cdef inline bint _all_finite(Py_ssize_t n, const double* v) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        if not isfinite(v[j]):
            return False
    return True


cdef extern from *:
    """
    /* The step's thread pool: one process-wide set of worker threads (started on first
       need, never stopped) and one open job at a time. A job is a step's chunks: the
       calling thread and the workers w = 1..threads-1 claim chunk indices under the lock
       (so a worker that is not scheduled takes nothing and the caller runs every chunk
       itself); the caller closes the job once no chunk is left and waits only for the
       chunks workers took. A second network stepping meanwhile (another Python thread)
       finds the job open and runs its chunks alone. After fork() the child has no workers
       (pthread_atfork resets the pool). */
    #include <pthread.h>
    #include <stdint.h>
    typedef void (*sh_chunk_fn)(void* net, int w, ptrdiff_t c);
    static pthread_mutex_t sh_mu = PTHREAD_MUTEX_INITIALIZER;
    static pthread_cond_t sh_cv_job = PTHREAD_COND_INITIALIZER;
    static pthread_cond_t sh_cv_done = PTHREAD_COND_INITIALIZER;
    static void* sh_job_net = NULL;
    static sh_chunk_fn sh_job_fn = NULL;
    static ptrdiff_t sh_job_next = 0, sh_job_n = 0;
    static int sh_job_threads = 0, sh_inflight = 0, sh_workers = 0, sh_atfork = 0;
    static long long sh_chunks_pool = 0, sh_chunks_all = 0;  /* chunks run by workers, by all */
    static void sh_pool_child(void) {
        pthread_mutex_init(&sh_mu, NULL);
        pthread_cond_init(&sh_cv_job, NULL);
        pthread_cond_init(&sh_cv_done, NULL);
        sh_job_net = NULL; sh_job_next = sh_job_n = 0;
        sh_job_threads = sh_inflight = sh_workers = 0;
    }
    static void* sh_worker_main(void* arg) {
        int w = (int)(intptr_t)arg;
        pthread_mutex_lock(&sh_mu);
        for (;;) {
            while (sh_job_net == NULL || sh_job_next >= sh_job_n || w >= sh_job_threads)
                pthread_cond_wait(&sh_cv_job, &sh_mu);
            ptrdiff_t c = sh_job_next++;
            void* net = sh_job_net;
            sh_chunk_fn fn = sh_job_fn;
            sh_inflight++;
            sh_chunks_pool++;
            pthread_mutex_unlock(&sh_mu);
            fn(net, w, c);
            pthread_mutex_lock(&sh_mu);
            if (--sh_inflight == 0) pthread_cond_broadcast(&sh_cv_done);
        }
        return NULL;
    }
    /* workers 1..n-1 running (started as needed); returns how many threads a job may use */
    static int sh_pool_start(int n) {
        pthread_attr_t attr;
        pthread_t t;
        pthread_mutex_lock(&sh_mu);
        if (!sh_atfork) { pthread_atfork(NULL, NULL, sh_pool_child); sh_atfork = 1; }
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        while (sh_workers < n - 1) {
            if (pthread_create(&t, &attr, sh_worker_main, (void*)(intptr_t)(sh_workers + 1)))
                break;
            sh_workers++;
        }
        pthread_attr_destroy(&attr);
        n = sh_workers + 1 < n ? sh_workers + 1 : n;
        pthread_mutex_unlock(&sh_mu);
        return n;
    }
    /* open a job of n chunks for `threads` threads; 0 if another job is open */
    static int sh_pool_open(void* net, sh_chunk_fn fn, ptrdiff_t n, int threads) {
        pthread_mutex_lock(&sh_mu);
        if (sh_job_net != NULL) { pthread_mutex_unlock(&sh_mu); return 0; }
        sh_job_net = net; sh_job_fn = fn; sh_job_next = 0; sh_job_n = n;
        sh_job_threads = threads; sh_inflight = 0;
        sh_chunks_all += n;
        pthread_cond_broadcast(&sh_cv_job);
        pthread_mutex_unlock(&sh_mu);
        return 1;
    }
    static ptrdiff_t sh_pool_claim(void) {
        ptrdiff_t c = -1;
        pthread_mutex_lock(&sh_mu);
        if (sh_job_next < sh_job_n) c = sh_job_next++;
        pthread_mutex_unlock(&sh_mu);
        return c;
    }
    static void sh_pool_stats(long long* out) {
        pthread_mutex_lock(&sh_mu);
        out[0] = sh_workers; out[1] = sh_chunks_all; out[2] = sh_chunks_pool;
        pthread_mutex_unlock(&sh_mu);
    }
    static void sh_pool_close(void) {
        pthread_mutex_lock(&sh_mu);
        sh_job_next = sh_job_n;
        while (sh_inflight > 0) pthread_cond_wait(&sh_cv_done, &sh_mu);
        sh_job_net = NULL;
        pthread_mutex_unlock(&sh_mu);
    }
    """
    ctypedef void (*sh_chunk_fn)(void* net, int w, Py_ssize_t c) noexcept nogil
    int sh_pool_start(int n) noexcept nogil
    int sh_pool_open(void* net, sh_chunk_fn fn, Py_ssize_t n, int threads) noexcept nogil
    Py_ssize_t sh_pool_claim() noexcept nogil
    void sh_pool_close() noexcept nogil
    void sh_pool_stats(long long* out) noexcept nogil


def pool_stats():
    """``(workers, chunks, by_workers)``: the step pool's threads started in this process,
    the chunks of the threaded steps so far and how many of them the pool's threads ran
    (the calling threads ran the rest)."""
    cdef long long out[3]
    sh_pool_stats(out)
    return int(out[0]), int(out[1]), int(out[2])


cdef void _pool_chunk(void* net, int w, Py_ssize_t c) noexcept nogil:
    """A pool thread's chunk c of the open step (``SharedNetwork._run_chunk``)."""
    (<SharedNetwork>net)._run_chunk(w, c)


MAX_THREADS = 16
_default_threads = 1


def set_threads(n):
    """Threads the replay and backward of a step are shared by, for the networks built from
    now on (each network's ``threads`` can also be set). The results are the same bits for
    any number: each thread takes whole chunks of rows and the calling thread adds their
    gradients, losses and head terms in the one-thread order. Returns the previous value."""
    global _default_threads
    n = _int_arg(n, "threads", 1)
    if n > MAX_THREADS:
        raise ValueError(f"threads must be at most {MAX_THREADS}, got {n}")
    old, _default_threads = _default_threads, n
    return old


def _vector_math(x):
    """``(sigmoid(x), tanh(x))`` of a float64 array by this module's vector functions (the
    ones the forward uses), for the tests; ``x`` is not changed."""
    cdef double[::1] xv = np.ascontiguousarray(x, dtype=np.float64).ravel()
    s = np.empty(xv.shape[0])
    t = np.empty(xv.shape[0])
    cdef double[::1] sv = s, tv = t
    if xv.shape[0]:
        sh_sigmoid_n(xv.shape[0], &xv[0], &sv[0])
        sh_tanh_n(xv.shape[0], &xv[0], &tv[0])
    return s, t


# ---------------------------------------------------------------- sizes and arguments

def footprint(cell, n_in, hidden_size, num_layers, n_out, k2, capacity, max_batch,
              itemsize=8):
    """Bytes by part, computed with Python ints: ``(P, slot_bytes, slots_total,
    scratch_total)``: P parameters; ``slot_bytes`` of committed state per slot (plus 8
    bytes of per-slot scratch, the distinctness stamp, counted in ``slots_total``);
    ``scratch_total`` counts params, grad, both optimizer moments and the batch scratch."""
    from streamrnn._core._network import CELL_GATES, GRU, LSTM
    G, H, L = CELL_GATES[cell], hidden_size, num_layers
    GH, R, K, Bm = G * H, 5 * H + G * H, k2, max_batch
    CB = min(max_batch, CHUNK)
    Hc = H if cell == LSTM else 0
    D = max(n_in, H)
    P = (n_in * GH + (L - 1) * H * GH + L * (H * GH + GH) + (L * H if cell == GRU else 0)
         + H * n_out + n_out)
    slot_bytes = itemsize * (2 * L * H + 2 * L * Hc + (k2 - 1) * n_in) + 8
    slots_total = capacity * (slot_bytes + 8)
    scratch = (5 * P + 2 * Bm + K + 4 * Bm * L * H + Bm * L * R + Bm * n_out + 2 * Bm * GH
               + K * CB * n_in + K * CB * L * R + 2 * K * CB * n_out + 4 * CB * L * H + 2 * H
               + K * CB * L * GH * (2 if cell == GRU else 1) + 2 * L * K * CB
               + CB * H - H + 2 * L * GH * H)
    return P, slot_bytes, slots_total, 8 * scratch


def _dtype_arg(slot_dtype):
    if isinstance(slot_dtype, str) and slot_dtype in ("float64", "float32"):
        return slot_dtype
    try:
        dt = np.dtype(slot_dtype)
    except TypeError:
        dt = None
    if dt == np.float64:
        return "float64"
    if dt == np.float32:
        return "float32"
    raise ValueError(f"slot_dtype must be 'float64' or 'float32', got {slot_dtype!r}")


cdef inline void* _data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline void* _fast(object a, int typenum, int ndim, Py_ssize_t d0, Py_ssize_t d1,
                        bint writable):
    """Data pointer of an exact ndarray of this type, ndim and shape (d0 < 0: any length),
    C-contiguous, aligned, native (writable if asked), else NULL: the per-call fast path;
    anything else takes the Python checks, which accept or refuse it with a message."""
    if not cnp.PyArray_CheckExact(a):
        return NULL
    cdef cnp.ndarray x = <cnp.ndarray>a
    if (cnp.PyArray_NDIM(x) != ndim or cnp.PyArray_TYPE(x) != typenum
            or not cnp.PyArray_IS_C_CONTIGUOUS(x) or not cnp.PyArray_ISALIGNED(x)
            or not cnp.PyArray_ISNOTSWAPPED(x) or (writable and not cnp.PyArray_ISWRITEABLE(x))):
        return NULL
    if (d0 >= 0 and cnp.PyArray_DIM(x, 0) != d0) or (ndim == 2 and cnp.PyArray_DIM(x, 1) != d1):
        return NULL
    return cnp.PyArray_DATA(x)


def _float_rows(value, name, rows, cols, writable=False):
    """``value`` as a C-contiguous float64 ndarray of shape (rows, cols) (or (rows,) when
    cols is None), without copying: anything else raises TypeError/ValueError."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a float64 ndarray, got {type(value).__name__}")
    if value.dtype != np.float64:
        raise TypeError(f"{name} must have dtype float64, got {value.dtype}")
    shape = (rows,) if cols is None else (rows, cols)
    if value.shape != shape:
        raise ValueError(f"{name} has shape {value.shape}, expected {shape}")
    if not (value.flags.c_contiguous and value.flags.aligned) or value.dtype.byteorder == ">":
        raise ValueError(f"{name} must be C-contiguous, aligned and native-endian")
    if writable and not value.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return value


_SLOT_KEYS = frozenset(("h", "c", "h0", "c0", "x", "n"))
_SHARED_KEYS = frozenset(("params", "t", "last_loss", "optimizer"))
_STATE_KEYS = frozenset(("shared", "slots"))
_CONFIG_KEYS = frozenset(("cell", "n_in", "hidden_size", "num_layers", "n_out", "k2", "loss",
                          "huber_eps", "capacity", "max_batch", "slot_dtype"))


# ---------------------------------------------------------------- the network

cdef class SharedNetwork:
    """Stacked recurrent cells and a linear head shared by ``capacity`` sequences (slots).

    ``SharedNetwork(cell, n_in, hidden_size, num_layers, n_out, k2=16, loss=0,
    huber_eps=0.1, capacity=1024, max_batch=256, slot_dtype="float64")`` with the cell and
    loss codes of ``streamrnn._core``. The semantics of ``step`` are stated in the module
    docstring; typed attributes are declared with their shapes in ``_shared.pxd``.
    """

    def __init__(self, cell, n_in, hidden_size, num_layers, n_out, k2=16, loss=0,
                 huber_eps=0.1, capacity=1024, max_batch=256, slot_dtype="float64"):
        cell, n_in, hidden_size, num_layers, n_out, _, k2, loss, huber_eps = _check_config(
            cell, n_in, hidden_size, num_layers, n_out, 1, k2, loss, huber_eps)
        capacity = _int_arg(capacity, "capacity", 1)
        max_batch = _int_arg(max_batch, "max_batch", 1)
        slot_dtype = _dtype_arg(slot_dtype)
        itemsize = 4 if slot_dtype == "float32" else 8
        P, _, slots_total, scratch_total = footprint(
            cell, n_in, hidden_size, num_layers, n_out, k2, capacity, max_batch, itemsize)
        if scratch_total > MAX_SCRATCH_BYTES:
            raise ValueError(f"the shared part and batch scratch would take {scratch_total} "
                             f"bytes, more than {MAX_SCRATCH_BYTES}: reduce max_batch, k2 "
                             f"or the sizes")
        if slots_total > MAX_SLOT_BYTES:
            raise ValueError(f"{capacity} slots would take {slots_total} bytes, more than "
                             f"{MAX_SLOT_BYTES}")
        self.n_in = 0  # refuses to run until the last line
        self._busy = False
        self.size = 0
        if cell_kernels(cell, &self.kern) != 0:
            raise ValueError(f"unknown cell code {cell}")
        self.loss_fn = loss_function(loss)
        # the element-wise part of the forward: _cells' math on the vector sigmoid/tanh
        if cell == CELL_LSTM:
            self.gates = _lstm_gates
        elif cell == CELL_GRU:
            self.gates = _gru_gates
        elif cell == CELL_ELMAN_TANH:
            self.gates = _elman_tanh_gates
        else:
            self.gates = self.kern.gates
        self.bw = (sh_lstm_bw if cell == CELL_LSTM else sh_gru_bw if cell == CELL_GRU else
                   _elman_tanh_bw if cell == CELL_ELMAN_TANH else _elman_relu_bw)
        self.cell, self.hidden_size, self.num_layers, self.n_out = (
            cell, hidden_size, num_layers, n_out)
        self.k2, self.loss, self.huber_eps = k2, loss, huber_eps
        self.capacity, self.max_batch, self.f32 = capacity, max_batch, itemsize == 4
        self.G = self.kern.G
        cdef Py_ssize_t H = hidden_size, G = self.G, L = num_layers, GH = G * H
        self.rec = REC_H_BLOCKS * H + GH
        self.Hc = H if cell == CELL_LSTM else 0
        self.nw = k2 - 1
        o_wx = np.zeros(L, dtype=np.intp)
        o_wh = np.zeros(L, dtype=np.intp)
        o_b = np.zeros(L, dtype=np.intp)
        o_bhn = np.zeros(L, dtype=np.intp)
        layout = {}
        off = 0
        for l in range(L):
            d = n_in if l == 0 else H
            o_wx[l] = off; layout[f"W_x{l}"] = (off, (d, GH)); off += d * GH
            o_wh[l] = off; layout[f"W_h{l}"] = (off, (H, GH)); off += H * GH
            o_b[l] = off; layout[f"b{l}"] = (off, (GH,)); off += GH
            o_bhn[l] = off
            if self.kern.has_bhn:
                layout[f"b_hn{l}"] = (off, (H,)); off += H
        self.o_wy = off; layout["W_y"] = (off, (H, n_out)); off += H * n_out
        self.o_by = off; layout["b_y"] = (off, (n_out,)); off += n_out
        assert off == P
        self.size = off
        self.o_wx, self.o_wh, self.o_b, self.o_bhn = o_wx, o_wh, o_b, o_bhn
        self._layout = layout
        self._params = np.zeros(off)
        self.w = self._params
        self.t = 0
        self.last_loss = 0.0
        self.optimizer = None
        # slot arrays: allocated and written now (np.empty + fill), so the memory they take
        # is resident from the start rather than at first touch
        dt = np.float32 if self.f32 else np.float64
        slots = {}
        for name, width in (("h", L * H), ("c", L * self.Hc), ("h0", L * H),
                            ("c0", L * self.Hc), ("x", self.nw * n_in)):
            a = np.empty((capacity, width), dtype=dt)
            a.fill(0)
            slots[name] = a
        slots["n"] = np.empty(capacity, dtype=np.int64)
        slots["n"].fill(0)
        self._slots = slots
        self.p_h = <char*>_data(slots["h"])
        self.p_c = <char*>_data(slots["c"])
        self.p_h0 = <char*>_data(slots["h0"])
        self.p_c0 = <char*>_data(slots["c0"])
        self.p_x = <char*>_data(slots["x"])
        self.p_n = <long long*>_data(slots["n"])
        cdef Py_ssize_t Bm = max_batch, K = k2, R = self.rec, D = max(n_in, H)
        cdef Py_ssize_t CB = min(max_batch, CHUNK)
        self.chunk = CB
        sep = self.kern.separate_dah
        stamp = np.empty(capacity, dtype=np.int64)
        stamp.fill(0)
        self._scratch = s = {
            "grad": np.zeros(off), "stamp": stamp,
            "perm": np.zeros(Bm, dtype=np.intp), "win": np.zeros(Bm, dtype=np.intp),
            "act": np.zeros(K, dtype=np.intp),
            "ch": np.zeros(Bm * L * H), "cc": np.zeros(Bm * L * H),
            "frec": np.zeros(Bm * L * R), "fout": np.zeros(Bm * n_out),
            "sA": np.zeros(Bm * GH), "sAH": np.zeros(Bm * GH),
            "xr": np.zeros(K * CB * n_in), "rrec": np.zeros(K * CB * L * R),
            "rh": np.zeros(CB * L * H), "rc": np.zeros(CB * L * H),
            "yhat": np.zeros(K * CB * n_out), "gy": np.zeros(K * CB * n_out),
            "dhc": np.zeros(CB * L * H), "dcc": np.zeros(CB * L * H),
            "sdh": np.zeros(H), "sdx": np.zeros(CB * H), "wT": np.zeros(2 * L * GH * H),
            "DA": np.zeros(K * CB * L * GH), "DAH2": np.zeros(K * CB * L * GH if sep else 1),
            "XT": np.zeros(L * K * CB, dtype=np.intp), "HT": np.zeros(L * K * CB, dtype=np.intp),
            "dwc": np.zeros(off), "nh0": np.zeros(Bm * L * H), "nc0": np.zeros(Bm * L * H),
        }
        self.dw, self.stamp, self.epoch = s["grad"], s["stamp"], 0
        self.perm, self.win, self.act = s["perm"], s["win"], s["act"]
        self.ch, self.cc, self.frec, self.fout = s["ch"], s["cc"], s["frec"], s["fout"]
        self.sA, self.sAH, self.xr, self.rrec = s["sA"], s["sAH"], s["xr"], s["rrec"]
        self.rh, self.rc, self.yhat, self.gy = s["rh"], s["rc"], s["yhat"], s["gy"]
        self.dhc, self.dcc, self.sdh, self.sdx = s["dhc"], s["dcc"], s["sdh"], s["sdx"]
        self.DA, self.DAH2 = s["DA"], s["DAH2"]
        self.dwc, self.nh0, self.nc0, self.wT = s["dwc"], s["nh0"], s["nc0"], s["wT"]
        self.p_dah = &self.DAH2[0] if sep else &self.DA[0]
        self.work = <Work*>calloc(MAX_THREADS, sizeof(Work))
        if self.work == NULL:
            raise MemoryError()
        self._point_work(0, s)
        self.work[0].DAH = self.p_dah
        self.nthreads = 1
        self._thread_scratch = []   # the workers' scratch dicts, then the chunks' buffers
        self.n_in = n_in
        self.threads = _default_threads

    def __cinit__(self):
        self.work = NULL
        self.nthreads = 1

    def __dealloc__(self):
        free(self.work)

    def _point_work(self, Py_ssize_t i, dict s):
        """work[i]'s scratch pointers at the arrays of ``s`` (kept alive by the caller)."""
        cdef Work* ws = &self.work[i]
        cdef Py_ssize_t[::1] act = s["act"]
        cdef double[::1] a
        ws.act = &act[0]
        a = s["sA"]; ws.sA = &a[0]
        a = s["sAH"]; ws.sAH = &a[0]
        a = s["xr"]; ws.xr = &a[0]
        a = s["rrec"]; ws.rrec = &a[0]
        a = s["rh"]; ws.rh = &a[0]
        a = s["rc"]; ws.rc = &a[0]
        a = s["yhat"]; ws.yhat = &a[0]
        a = s["gy"]; ws.gy = &a[0]
        a = s["dhc"]; ws.dhc = &a[0]
        a = s["dcc"]; ws.dcc = &a[0]
        a = s["sdh"]; ws.sdh = &a[0]
        a = s["sdx"]; ws.sdx = &a[0]
        a = s["DA"]; ws.DA = &a[0]
        a = s["DAH2"]; ws.DAH = &a[0] if self.kern.separate_dah else ws.DA
        act = s["XT"]; ws.XT = <const double**>&act[0]
        act = s["HT"]; ws.HT = <const double**>&act[0]
        ws.hb = NULL
        ws.nh = 0

    @property
    def threads(self):
        """Threads the replay and backward of a ``step`` are shared by, whole chunks of
        ``chunk`` rows each (1: the calling thread only). Any number gives the same bits.
        Setting it allocates the extra threads' scratch (no allocation per step)."""
        return self.nthreads

    @threads.setter
    def threads(self, n):
        n = _int_arg(n, "threads", 1)
        if n > MAX_THREADS:
            raise ValueError(f"threads must be at most {MAX_THREADS}, got {n}")
        if self._busy:
            raise RuntimeError("the network is in use by another thread")
        cdef Py_ssize_t H = self.hidden_size, L = self.num_layers, GH = self.G * H
        cdef Py_ssize_t K = self.k2, CB = self.chunk, R = self.rec, n_in = self.n_in
        cdef Py_ssize_t D = max(n_in, H), nch = (self.max_batch + CB - 1) // CB
        cdef double[::1] a
        cdef Py_ssize_t[::1] ia
        sep = self.kern.separate_dah
        if n > 1:
            n = sh_pool_start(n)
        old = self._thread_scratch
        scratch = []
        for i in range(n - 1):
            scratch.append(old[i] if i < len(old) and "act" in old[i] else {
                "act": np.zeros(K, dtype=np.intp),
                "sA": np.zeros(CB * GH), "sAH": np.zeros(CB * GH),
                "xr": np.zeros(K * CB * n_in), "rrec": np.zeros(K * CB * L * R),
                "rh": np.zeros(CB * L * H), "rc": np.zeros(CB * L * H),
                "yhat": np.zeros(K * CB * self.n_out), "gy": np.zeros(K * CB * self.n_out),
                "dhc": np.zeros(CB * L * H), "dcc": np.zeros(CB * L * H),
                "sdh": np.zeros(H), "sdx": np.zeros(CB * H),
                "DA": np.zeros(K * CB * L * GH), "DAH2": np.zeros(K * CB * L * GH if sep else 1),
                "XT": np.zeros(L * K * CB, dtype=np.intp),
                "HT": np.zeros(L * K * CB, dtype=np.intp)})
        chunks = None
        if n > 1:  # each chunk's results, added in chunk order after the threads
            chunks = {"cg": np.zeros(nch * self.o_wy + 1),
                      "chb": np.zeros(nch * K * CB * (H + self.n_out)),
                      "cpart": np.zeros(nch), "cnh": np.zeros(nch, dtype=np.intp),
                      "cst": np.zeros(nch, dtype=np.intp)}
            scratch.append(chunks)
        self._thread_scratch = scratch
        for i in range(1, n):
            self._point_work(i, scratch[i - 1])
        if chunks is not None:
            a = chunks["cg"]; self.cg = &a[0]
            a = chunks["chb"]; self.chb = &a[0]
            a = chunks["cpart"]; self.cpart = &a[0]
            ia = chunks["cnh"]; self.cnh = &ia[0]
            ia = chunks["cst"]; self.cst = &ia[0]
        self.nthreads = n

    # ------------------------------------------------------------ views and sizes
    @property
    def params(self):
        """The flat parameter vector (a writable view)."""
        return self._params

    @property
    def grad(self):
        """The clipped batch gradient of the last step that got that far (scratch)."""
        return self._scratch["grad"]

    @property
    def layout(self):
        return dict(self._layout)

    def view(self, str name):
        """Named view into the flat parameter vector, e.g. ``view("W_h0")``."""
        off, shape = self._layout[name]
        return self._params[off:off + int(np.prod(shape))].reshape(shape)

    @property
    def slot_dtype(self):
        return "float32" if self.f32 else "float64"

    @property
    def slot_bytes(self):
        """Bytes of committed state per slot (h, c, h0, c0, the past inputs, n)."""
        return sum(a.itemsize * (a.shape[1] if a.ndim == 2 else 1)
                   for a in self._slots.values())

    def set_optimizer(self, Optimizer opt):
        opt.bind(self.size)
        self.optimizer = opt

    def __sizeof__(self):
        n = object.__sizeof__(self) + self._params.nbytes
        n += sum(a.nbytes for a in self._slots.values())
        n += sum(a.nbytes for a in self._scratch.values())
        n += sum(a.nbytes for s in self._thread_scratch for a in s.values())
        if self.optimizer is not None:
            n += self.optimizer.__sizeof__()
        return n

    # ------------------------------------------------------------ slot storage
    cdef void _load(self, const char* base, Py_ssize_t row, Py_ssize_t width,
                    double* dst) noexcept nogil:
        cdef Py_ssize_t j
        cdef const float* f
        if self.f32:
            f = (<const float*>base) + row * width
            for j in range(width):
                dst[j] = f[j]
        else:
            memcpy(dst, (<const double*>base) + row * width, width * sizeof(double))

    cdef void _store(self, char* base, Py_ssize_t row, Py_ssize_t width,
                     const double* src) noexcept nogil:
        cdef Py_ssize_t j
        cdef float* f
        if self.f32:
            f = (<float*>base) + row * width
            for j in range(width):
                f[j] = <float>src[j]
        else:
            memcpy((<double*>base) + row * width, src, width * sizeof(double))

    cdef void _push_full(self, Py_ssize_t k, const double* x) noexcept nogil:
        """Slot k's full window of past inputs drops its oldest and takes x as its newest."""
        cdef Py_ssize_t nw = self.nw, n_in = self.n_in
        if nw == 0:
            return
        if self.f32:
            memmove((<float*>self.p_x) + k * nw * n_in, (<float*>self.p_x) + k * nw * n_in + n_in,
                    (nw - 1) * n_in * sizeof(float))
        else:
            memmove((<double*>self.p_x) + k * nw * n_in,
                    (<double*>self.p_x) + k * nw * n_in + n_in, (nw - 1) * n_in * sizeof(double))
        self._store(self.p_x, k * nw + nw - 1, n_in, x)

    cdef bint _storable(self, Py_ssize_t n, const double* v) noexcept nogil:
        """Every v[j] finite and, with float32 slots, within the float32 range (it would
        round to inf in the slot, poisoning the key's later steps)."""
        cdef Py_ssize_t j
        if not self.f32:
            return _all_finite(n, v)
        for j in range(n):
            if not fabs(v[j]) <= FLT_MAX:
                return False
        return True

    cdef bint _state_ok(self, const double* r) noexcept nogil:
        """The new h and c of a layer record can be committed (``_storable``)."""
        cdef Py_ssize_t H = self.hidden_size, GH = self.G * H
        return self._storable(H, rec_h(r, H, GH)) and self._storable(H, rec_c(r, H, GH))

    # ------------------------------------------------------------ forward kernels
    cdef void _layer(self, Py_ssize_t nb, Py_ssize_t l, const double* xin, Py_ssize_t ldx,
                     const double* hp, const double* cp, double* recs) noexcept nogil:
        """Layer ``l`` for ``nb`` rows: input rows xin (stride ldx), previous states hp, cp
        (stride L*H), records into recs (stride L*R)."""
        self._layer_w(nb, l, xin, ldx, hp, cp, recs, &self.sA[0], &self.sAH[0])

    cdef void _layer_w(self, Py_ssize_t nb, Py_ssize_t l, const double* xin, Py_ssize_t ldx,
                       const double* hp, const double* cp, double* recs, double* A,
                       double* AH) noexcept nogil:
        """``_layer`` with the pre-activation scratch A, AH (nb x GH each) given."""
        cdef Py_ssize_t H = self.hidden_size, GH = self.G * H, LH = self.num_layers * H
        cdef Py_ssize_t LR = self.num_layers * self.rec, b
        cdef Py_ssize_t d = self.n_in if l == 0 else H
        cdef double* w = &self.w[0]
        for b in range(nb):
            memcpy(A + b * GH, w + self.o_b[l], GH * sizeof(double))
        _gemm_acc(nb, d, GH, xin, ldx, w + self.o_wx[l], A)
        if self.kern.separate_dah:
            memset(AH, 0, nb * GH * sizeof(double))
            _gemm_acc(nb, H, GH, hp, LH, w + self.o_wh[l], AH)
        else:
            _gemm_acc(nb, H, GH, hp, LH, w + self.o_wh[l], A)
        for b in range(nb):
            self.gates(H, A + b * GH, AH + b * GH, hp + b * LH, cp + b * LH,
                       w + self.o_bhn[l], recs + b * LR)

    cdef void _head(self, Py_ssize_t nb, const double* recs, double* out) noexcept nogil:
        """Head output (nb, n_out) from the top layer's h in the records (stride L*R)."""
        cdef Py_ssize_t H = self.hidden_size, GH = self.G * H, L = self.num_layers
        cdef Py_ssize_t LR = L * self.rec, n_out = self.n_out, b
        cdef double* w = &self.w[0]
        for b in range(nb):
            memcpy(out + b * n_out, w + self.o_by, n_out * sizeof(double))
        _gemm_acc(nb, H, n_out, rec_h(recs + (L - 1) * self.rec, H, GH), LR, w + self.o_wy,
                  out)

    cdef void _forward_committed(self, Py_ssize_t B, const long long* slots,
                                 const double* X) noexcept nogil:
        """One step of every row from its slot's committed state: records in frec, head in fout."""
        cdef Py_ssize_t H = self.hidden_size, L = self.num_layers, LH = L * H, R = self.rec
        cdef Py_ssize_t GH = self.G * H, LHc = L * self.Hc, b, l
        cdef double* ch = &self.ch[0]
        cdef double* cc = &self.cc[0]
        cdef double* frec = &self.frec[0]
        for b in range(B):
            self._load(self.p_h, slots[b], LH, ch + b * LH)
            if LHc:
                self._load(self.p_c, slots[b], LHc, cc + b * LH)
            else:
                memset(cc + b * LH, 0, LH * sizeof(double))
        for l in range(L):
            if l == 0:
                self._layer(B, 0, X, self.n_in, ch, cc, frec)
            else:
                self._layer(B, l, rec_h(frec + (l - 1) * R, H, GH), L * R, ch + l * H,
                            cc + l * H, frec + l * R)
        self._head(B, frec, &self.fout[0])

    cdef void _predict(self, Py_ssize_t B, const long long* slots, const double* X,
                       double* out) noexcept nogil:
        self._forward_committed(B, slots, X)
        memcpy(out, &self.fout[0], B * self.n_out * sizeof(double))

    cdef int _step_multi(self, Py_ssize_t B, const long long* slots, const double* X,
                         const double* Y, double* out) noexcept nogil:
        """``step_multi`` at C level (preconditions in _shared.pxd)."""
        return self._step(B, slots, X, Y, out, True)

    # ------------------------------------------------------------ the batched step
    cdef int _step(self, Py_ssize_t B, const long long* slots, const double* X,
                   const double* Y, double* out, bint multi) noexcept nogil:
        cdef Py_ssize_t H = self.hidden_size, L = self.num_layers, LH = L * H, R = self.rec
        cdef Py_ssize_t GH = self.G * H, LR = L * R, n_in = self.n_in
        cdef Py_ssize_t n_out = self.n_out, K = self.k2, nw = self.nw
        cdef Py_ssize_t LHc = L * self.Hc
        cdef Py_ssize_t n_y = 1 if (self.loss == LOSS_BINARY_CE or
                                    self.loss == LOSS_SOFTMAX_CE) else n_out
        cdef Py_ssize_t b, i, l, k, Wb, cnt, c0, nc, nch
        cdef Py_ssize_t* perm = &self.perm[0]
        cdef Py_ssize_t* win = &self.win[0]
        cdef double* dw = &self.dw[0]
        cdef double* dwc = &self.dwc[0]
        cdef double* frec = &self.frec[0]
        cdef double* r
        cdef double total = 0.0
        # ---- 0. inputs finite, targets finite (delayed targets: finite or NaN for none)
        if not self._storable(B * n_in, X):
            return -1
        if multi:
            for k in range(B * n_y):
                if isinf(Y[k]):
                    return -1
        elif not _all_finite(B * n_y, Y):
            return -1
        # ---- 1. forecast from the committed states
        self._forward_committed(B, slots, X)
        if not _all_finite(B * n_out, &self.fout[0]):
            return -2
        for b in range(B):
            for l in range(L):
                r = frec + b * LR + l * R
                if not self._state_ok(r):
                    return -2
        # ---- 2. rows sorted by window length, longest first (stable)
        cnt = 0
        for Wb in range(K, 0, -1):
            for b in range(B):
                if self.p_n[slots[b]] + 1 == Wb:
                    perm[cnt] = b
                    win[cnt] = Wb
                    cnt += 1
        # ---- 3. replay, loss and backward, `chunk` sorted rows at a time (their replay
        # records stay in cache); the first chunk writes the gradient, the others add to it
        memset(dw + self.o_wy, 0, (H * n_out + n_out) * sizeof(double))
        self._transpose_weights()
        nch = (B + self.chunk - 1) // self.chunk
        if self.nthreads > 1 and nch > 1:
            if self._chunks_threaded(nch, B, slots, X, Y, &total, multi) != 0:
                return -2
        else:
            c0 = 0
            while c0 < B:
                nc = B - c0 if B - c0 < self.chunk else self.chunk
                if self._chunk(&self.work[0], c0, nc, B, slots, X, Y, dw if c0 == 0 else dwc,
                               &total, multi, False) != 0:
                    return -2
                if c0 > 0:
                    for k in range(self.o_wy):
                        dw[k] += dwc[k]
                c0 += nc
        # ---- 4. clip (non-finite gradient: nothing changes), update, commit
        if self.optimizer.clip(self.dw) < 0:
            return -2
        self.optimizer.apply(self.w, self.dw)
        for b in range(B):
            for l in range(L):
                r = frec + b * LR + l * R
                self._store(self.p_h, slots[b] * L + l, H, rec_h(r, H, GH))
                if LHc:
                    self._store(self.p_c, slots[b] * L + l, H, rec_c(r, H, GH))
        for i in range(B):
            b = perm[i]
            k = slots[b]
            if win[i] == K:
                # the oldest step leaves the window: its replayed state starts the next one
                self._store(self.p_h0, k, LH, &self.nh0[i * LH])
                if LHc:
                    self._store(self.p_c0, k, LH, &self.nc0[i * LH])
                self._push_full(k, X + b * n_in)
            else:
                self._store(self.p_x, k * nw + self.p_n[k], n_in, X + b * n_in)
                self.p_n[k] += 1
        memcpy(out, &self.fout[0], B * n_out * sizeof(double))
        self.t += 1
        self.last_loss = total / B
        return 1

    cdef int _chunks_threaded(self, Py_ssize_t nch, Py_ssize_t B, const long long* slots,
                              const double* X, const double* Y, double* total,
                              bint multi) noexcept nogil:
        """The chunk loop of ``_step`` shared with the pool's threads: each thread claims
        the next chunk (the calling thread too, so it runs every chunk when no worker is
        scheduled), writing the chunk's gradient, loss and head inputs to the chunk's own
        buffers; then the calling thread adds them in chunk order, the sums of the
        one-thread loop term by term: the same bits. Returns 0, or -2 as ``_chunk`` (every
        chunk runs; nothing is committed here)."""
        cdef Py_ssize_t c, k, q, P = self.o_wy, H = self.hidden_size, n_out = self.n_out
        cdef Py_ssize_t NO = H + n_out, HB = self.k2 * self.chunk * NO
        cdef double* dw = &self.dw[0]
        cdef double* g
        cdef double* rec
        self.job_B, self.job_slots, self.job_X, self.job_Y, self.job_multi = (
            B, slots, X, Y, multi)
        if sh_pool_open(<void*>self, _pool_chunk, nch, self.nthreads):
            c = sh_pool_claim()
            while c >= 0:
                self._run_chunk(0, c)
                c = sh_pool_claim()
            sh_pool_close()
        else:  # another network's step has the pool
            for c in range(nch):
                self._run_chunk(0, c)
        for c in range(nch):
            if self.cst[c] != 0:
                return -2
        memcpy(dw, self.cg, P * sizeof(double))
        for c in range(nch):
            g = self.cg + c * P
            if c > 0:
                for k in range(P):
                    dw[k] += g[k]
            total[0] += self.cpart[c]
            for q in range(self.cnh[c]):
                rec = self.chb + c * HB + q * NO
                outer(H, n_out, rec, rec + H, dw + self.o_wy)
                for k in range(n_out):
                    dw[self.o_by + k] += rec[H + k]
        if not isfinite(total[0]):
            return -2
        return 0

    cdef void _run_chunk(self, int w, Py_ssize_t c) noexcept nogil:
        """Chunk c of the open threaded step on thread w's scratch, into chunk c's buffers."""
        cdef Py_ssize_t CB = self.chunk, c0 = c * CB, B = self.job_B
        cdef Py_ssize_t nc = B - c0 if B - c0 < CB else CB
        cdef Work* ws = &self.work[w]
        cdef double part = 0.0
        ws.hb = self.chb + c * self.k2 * CB * (self.hidden_size + self.n_out)
        ws.nh = 0
        self.cst[c] = self._chunk(ws, c0, nc, B, self.job_slots, self.job_X, self.job_Y,
                                  self.cg + c * self.o_wy, &part, self.job_multi, True)
        self.cpart[c] = part
        self.cnh[c] = ws.nh

    cdef void _transpose_weights(self) noexcept nogil:
        """wT <- W_h^T and (layers above the first) W_x^T, (GH, H) each, for the backward."""
        cdef Py_ssize_t H = self.hidden_size, GH = self.G * H, l, i, j
        cdef double* w = &self.w[0]
        cdef double* wT = &self.wT[0]
        cdef const double* Wh
        cdef const double* Wx
        for l in range(self.num_layers):
            Wh = w + self.o_wh[l]
            Wx = w + self.o_wx[l]
            for i in range(H):
                for j in range(GH):
                    wT[2 * l * GH * H + j * H + i] = Wh[i * GH + j]
                    if l > 0:
                        wT[(2 * l + 1) * GH * H + j * H + i] = Wx[i * GH + j]

    cdef int _chunk(self, Work* ws, Py_ssize_t c0, Py_ssize_t nc, Py_ssize_t B,
                    const long long* slots, const double* X, const double* Y, double* gw,
                    double* total, bint multi, bint defer) noexcept nogil:
        """Replay, loss and backward of the sorted rows c0..c0+nc-1: the recurrent and bias
        gradients written into gw, the head gradient added to dw, the rows' losses added to
        total; the replayed state after the oldest step of each full window kept in nh0/nc0.
        With ``multi``, Y[b, j] is the target of output j of the row's step j calls ago (NaN:
        none), entering the replay at that step. ``ws``: the scratch; ``defer`` (an extra
        thread): the head's inputs are appended to ws.hb instead of added to dw. Returns 0,
        or -2 for a non-finite loss or loss gradient."""
        cdef Py_ssize_t H = self.hidden_size, L = self.num_layers, LH = L * H, R = self.rec
        cdef Py_ssize_t G = self.G, GH = G * H, LR = L * R, n_in = self.n_in
        cdef Py_ssize_t n_out = self.n_out, K = self.k2, nw = self.nw, CB = self.chunk
        cdef Py_ssize_t LHc = L * self.Hc, D = n_in if n_in > H else H, NM = K * CB
        cdef Py_ssize_t n_y = 1 if (self.loss == LOSS_BINARY_CE or
                                    self.loss == LOSS_SOFTMAX_CE) else n_out
        cdef Py_ssize_t b, q, j, l, s, T, ns, k, N, d
        cdef Py_ssize_t* perm = &self.perm[c0]
        cdef Py_ssize_t* win = &self.win[c0]
        cdef Py_ssize_t* act = ws.act
        cdef double* w = &self.w[0]
        cdef double* dw = &self.dw[0]
        cdef double* xr = ws.xr
        cdef double* rrec = ws.rrec
        cdef double* rh = ws.rh
        cdef double* rc = ws.rc
        cdef double* yh0 = ws.yhat
        cdef double* gy0 = ws.gy
        cdef double* yhat
        cdef double* gy
        cdef double* dhc = ws.dhc
        cdef double* dcc = ws.dcc
        cdef double* dh = ws.sdh
        cdef double* dx = ws.sdx
        cdef double* wT = &self.wT[0]
        cdef double* DA = ws.DA
        cdef double* DAH = ws.DAH
        cdef const double** XT = ws.XT
        cdef const double** HT = ws.HT
        cdef double* sA = ws.sA
        cdef double* sAH = ws.sAH
        cdef double* hrec
        cdef double* r
        cdef double* rs
        cdef const double* xin
        cdef double lv, part = 0.0, yv
        cdef Py_ssize_t s_lo, CO = CB * n_out
        # ---- replay, aligned at the newest step: at replay step s the active rows are the
        # first act[s] (the rows are sorted by window length)
        T = win[0]
        for s in range(T):
            ns = 0
            while ns < nc and win[ns] >= T - s:
                ns += 1
            act[s] = ns
        for q in range(nc):
            b = perm[q]
            self._load(self.p_h0, slots[b], LH, rh + q * LH)
            if LHc:
                self._load(self.p_c0, slots[b], LHc, rc + q * LH)
            else:
                memset(rc + q * LH, 0, LH * sizeof(double))
        for s in range(T):
            ns = act[s]
            for q in range(ns):
                b = perm[q]
                j = s - (T - win[q])              # the row's own window step
                if j < win[q] - 1:
                    self._load(self.p_x, slots[b] * nw + j, n_in, xr + (s * CB + q) * n_in)
                else:
                    memcpy(xr + (s * CB + q) * n_in, X + b * n_in, n_in * sizeof(double))
            rs = rrec + s * CB * LR
            for l in range(L):
                if l == 0:
                    self._layer_w(ns, 0, xr + s * CB * n_in, n_in, rh, rc, rs, sA, sAH)
                else:
                    self._layer_w(ns, l, rec_h(rs + (l - 1) * R, H, GH), LR, rh + l * H,
                                  rc + l * H, rs + l * R, sA, sAH)
                for q in range(ns):
                    r = rs + q * LR + l * R
                    memcpy(rh + q * LH + l * H, rec_h(r, H, GH), H * sizeof(double))
                    memcpy(rc + q * LH + l * H, rec_c(r, H, GH), H * sizeof(double))
        # ---- head outputs: at the newest step, or (multi) at every step of the window; the
        # rows' losses; dL/dyhat over B (the batch mean)
        s_lo = 0 if multi else T - 1
        for s in range(s_lo, T):
            self._head(act[s], rrec + s * CB * LR, yh0 + s * CO)
        memset(gy0 + s_lo * CO, 0, (T - s_lo) * CO * sizeof(double))
        rs = rrec + (T - 1) * CB * LR
        yhat = yh0 + (T - 1) * CO
        gy = gy0 + (T - 1) * CO
        for q in range(nc):
            b = perm[q]
            if multi:
                lv = 0.0
                for k in range(n_out):
                    yv = Y[b * n_out + k]
                    if isnan(yv) or k >= win[q]:
                        continue  # no target, or one for a step before the slot's first
                    s = T - 1 - k
                    lv += self.loss_fn(yh0 + s * CO + q * n_out + k, yv, 1,
                                       self.huber_eps, gy0 + s * CO + q * n_out + k)
                    gy0[s * CO + q * n_out + k] /= B
                part += lv
                continue
            if n_y == 1:
                lv = self.loss_fn(yhat + q * n_out, Y[b * n_y], n_out, self.huber_eps,
                                  gy + q * n_out)
            else:
                lv = 0.0
                for k in range(n_out):
                    lv += self.loss_fn(yhat + q * n_out + k, Y[b * n_y + k], 1, self.huber_eps,
                                       gy + q * n_out + k)
            part += lv
            for k in range(n_out):
                gy[q * n_out + k] /= B
        total[0] += part
        if not isfinite(total[0]) or not _all_finite((T - s_lo) * CO, gy0 + s_lo * CO):
            return -2
        # ---- backward, newest step first; N counts the (step, row) pairs in that order
        memset(dhc, 0, nc * LH * sizeof(double))
        memset(dcc, 0, nc * LH * sizeof(double))
        for s in range(T - 1, s_lo - 1, -1):
            rs = rrec + s * CB * LR
            gy = gy0 + s * CO
            for q in range(act[s]):
                if defer:
                    hrec = ws.hb + ws.nh * (H + n_out)
                    memcpy(hrec, rec_h(rs + q * LR + (L - 1) * R, H, GH), H * sizeof(double))
                    memcpy(hrec + H, gy + q * n_out, n_out * sizeof(double))
                    ws.nh += 1
                    continue
                outer(H, n_out, rec_h(rs + q * LR + (L - 1) * R, H, GH), gy + q * n_out,
                      dw + self.o_wy)
                for k in range(n_out):
                    dw[self.o_by + k] += gy[q * n_out + k]
        # the rows of a step together, layer by layer: each row's element-wise gate
        # gradients (and its dh_prev's own term), then dh_prev += DAH @ W_h^T and, below the
        # top layer, the gradient reaching the layer below, dx = DA @ W_x^T, each one product
        # over the step's rows (W^T transposed once per call, in wT)
        N = 0
        for s in range(T - 1, -1, -1):
            ns = act[s]
            rs = rrec + s * CB * LR
            for l in range(L - 1, -1, -1):
                for q in range(ns):
                    r = rs + q * LR + l * R
                    memcpy(dh, dhc + q * LH + l * H, H * sizeof(double))
                    if l == L - 1:
                        if s >= s_lo:
                            affine_t(H, n_out, w + self.o_wy, gy0 + s * CO + q * n_out, dh)
                    else:
                        for j in range(H):
                            dh[j] += dx[q * H + j]
                    self.bw(H, r, dh, dcc + q * LH + l * H, DA + ((N + q) * L + l) * GH,
                            DAH + ((N + q) * L + l) * GH, dhc + q * LH + l * H)
                    if l == 0:
                        xin = xr + (s * CB + q) * n_in
                        d = n_in
                    else:
                        xin = rec_h(r - R, H, GH)
                        d = H
                    XT[l * NM + N + q] = xin      # the rows of X^T and H_prev^T, by pointer
                    HT[l * NM + N + q] = r        # (the record starts with h_prev)
                _gemm_acc_ld(ns, GH, H, DAH + (N * L + l) * GH, L * GH, wT + 2 * l * GH * H,
                             dhc + l * H, LH)
                if l > 0:
                    memset(dx, 0, ns * H * sizeof(double))
                    _gemm_acc(ns, GH, H, DA + (N * L + l) * GH, L * GH,
                              wT + (2 * l + 1) * GH * H, dx)
            N += ns
        for l in range(L):
            d = n_in if l == 0 else H
            sr_gemm_rows(d, GH, N, XT + l * NM, DA + l * GH, L * GH, gw + self.o_wx[l])
            sr_gemm_rows(H, GH, N, HT + l * NM, DAH + l * GH, L * GH, gw + self.o_wh[l])
            _sum_rows(N, L * GH, GH, DA + l * GH, gw + self.o_b[l])
            if self.kern.has_bhn:
                _sum_rows(N, L * GH, H, DAH + l * GH + 2 * H, gw + self.o_bhn[l])
        # ---- full windows: the replayed state after their oldest step (replay step 0)
        for q in range(nc):
            if win[q] == K:
                for l in range(L):
                    r = rrec + q * LR + l * R
                    if not self._state_ok(r):
                        return -2
                    memcpy(&self.nh0[(c0 + q) * LH + l * H], rec_h(r, H, GH), H * sizeof(double))
                    memcpy(&self.nc0[(c0 + q) * LH + l * H], rec_c(r, H, GH), H * sizeof(double))
        return 0

    # ------------------------------------------------------------ Python entry points
    def _slot_array(self, slots, bint distinct, bint batch):
        """``slots`` as a validated int64 ndarray (each in [0, capacity); distinct if asked)."""
        if self.n_in == 0:
            raise RuntimeError("the network was not initialised")
        if self._busy:
            raise RuntimeError("another thread is inside a step or predict of this network: "
                               "one call at a time per SharedNetwork")
        if isinstance(slots, (int, np.integer)) and not isinstance(slots, (bool, np.bool_)):
            slots = np.array([slots], dtype=np.int64)
        if not isinstance(slots, np.ndarray):
            raise TypeError(f"slots must be an int64 ndarray, got {type(slots).__name__}")
        if slots.dtype != np.int64:
            raise TypeError(f"slots must have dtype int64, got {slots.dtype}")
        if slots.ndim != 1:
            raise ValueError(f"slots must be 1-d, got shape {slots.shape}")
        slots = np.ascontiguousarray(slots)
        self._check_ptr(<const long long*>_data(slots), slots.shape[0], distinct, batch)
        return slots

    cdef int _check_ptr(self, const long long* p, Py_ssize_t B, bint distinct,
                        bint batch) except -1:
        """Every slot in [0, capacity), distinct if asked, 1 <= B <= max_batch if a batch."""
        if batch and not 1 <= B <= self.max_batch:
            raise ValueError(f"a batch holds 1 to max_batch={self.max_batch} slots, got {B}")
        cdef Py_ssize_t b
        for b in range(B):
            if not 0 <= p[b] < self.capacity or p[b] >= self.stamp.shape[0]:
                raise ValueError(f"slot {p[b]} is out of range [0, {self.capacity})")
        if distinct and B > 1:
            self.epoch += 1
            for b in range(B):
                if self.stamp[p[b]] == self.epoch:
                    raise ValueError(f"slot {p[b]} appears twice in one batch: the slots of "
                                     f"a batch must be distinct")
                self.stamp[p[b]] = self.epoch
        return 0

    def step_multi(self, slots, X, Y, out):
        """``step`` with delayed targets (direct multi-horizon regression): ``Y`` float64
        (B, n_out), ``Y[b, j]`` the target of output j of slot b's step taken j calls ago
        (j = 0: this call's), NaN for none; targets for steps before the slot's first (or
        its last reset) are ignored. The loss is J = (1/B) sum_b sum_j L(yhat_j(t - j), y_bj)
        with yhat(t - j) the head at replay step t - j: each gradient enters the replayed
        window at its own step. Needs k2 >= n_out (every target lands in the window) and a
        regression loss. With n_out = 1 it equals ``step``. Statuses as ``step``
        (-1 also for an infinite target)."""
        if self.loss == LOSS_BINARY_CE or self.loss == LOSS_SOFTMAX_CE:
            raise ValueError("delayed targets need a regression loss")
        if self.k2 < self.n_out:
            raise ValueError(f"delayed targets need k2 >= n_out (every target inside the "
                             f"window), got k2={self.k2}, n_out={self.n_out}")
        return self._step_py(slots, X, Y, out, True)

    def step(self, slots, X, Y, out):
        """Learn one batched step; returns 1 (committed and updated), -1 (a non-finite input
        or target) or -2 (non-finite output, loss, gradient or state); on -1/-2 nothing
        changed (no slot, no weight, no optimizer moment, ``out`` not written).

        ``slots``: int64 (B,), distinct, 1 <= B <= max_batch; ``X``: float64 (B, n_in);
        ``Y``: float64 (B, n_out) for the regression losses ((B,) when n_out == 1), (B,)
        class indices / 0-1 labels for the cross-entropies; ``out``: writable float64
        (B, n_out), receives the forecasts made from the committed states before the update.
        """
        return self._step_py(slots, X, Y, out, False)

    cdef object _call_slots(self, object slots, bint distinct, Py_ssize_t* B,
                            const long long** sp):
        """A call's slot argument: its length into B and its data into sp, through the fast
        path (a valid int64 array, used as it is) or `_slot_array`'s conversion, which raises
        the reason for a bad one. Returns the array sp points into: keep it while sp is used."""
        sp[0] = <const long long*>_fast(slots, cnp.NPY_INT64, 1, -1, 0, False)
        if sp[0] == NULL or self._busy or self.n_in == 0:
            slots = self._slot_array(slots, distinct, True)  # converts, or raises the reason
            sp[0] = <const long long*>_data(slots)
            B[0] = slots.shape[0]
        else:
            B[0] = cnp.PyArray_DIM(<cnp.ndarray>slots, 0)
            self._check_ptr(sp[0], B[0], distinct, True)
        return slots

    cdef int _call_rows(self, object X, object out, Py_ssize_t B, const double** xp,
                        double** op) except -1:
        """A call's inputs X (B, n_in) and writable output out (B, n_out): their data into xp
        and op, or the ValueError/TypeError that says what is wrong with them."""
        xp[0] = <const double*>_fast(X, cnp.NPY_DOUBLE, 2, B, self.n_in, False)
        op[0] = <double*>_fast(out, cnp.NPY_DOUBLE, 2, B, self.n_out, True)
        if xp[0] == NULL or op[0] == NULL:
            _float_rows(X, "X", B, self.n_in)
            _float_rows(out, "out", B, self.n_out, True)
            xp[0] = <const double*>_data(X)
            op[0] = <double*>_data(out)
        return 0

    def _step_py(self, slots, X, Y, out, bint multi):
        cdef Py_ssize_t B, b
        cdef const long long* sp = NULL
        slots = self._call_slots(slots, True, &B, &sp)
        cdef bint classes = self.loss == LOSS_BINARY_CE or self.loss == LOSS_SOFTMAX_CE
        cdef const double* xp = <const double*>_fast(X, cnp.NPY_DOUBLE, 2, B, self.n_in, False)
        cdef const double* yp = NULL
        if not classes:
            yp = <const double*>_fast(Y, cnp.NPY_DOUBLE, 2, B, self.n_out, False)
        if classes or (yp == NULL and self.n_out == 1 and not multi):
            yp = <const double*>_fast(Y, cnp.NPY_DOUBLE, 1, B, 0, False)
        cdef double* op = <double*>_fast(out, cnp.NPY_DOUBLE, 2, B, self.n_out, True)
        if xp == NULL or yp == NULL or op == NULL:
            _float_rows(X, "X", B, self.n_in)
            if classes or (self.n_out == 1 and isinstance(Y, np.ndarray) and Y.ndim == 1
                           and not multi):
                _float_rows(Y, "Y", B, None)
            else:
                _float_rows(Y, "Y", B, self.n_out)
            _float_rows(out, "out", B, self.n_out, True)
            xp = <const double*>_data(X)
            yp = <const double*>_data(Y)
            op = <double*>_data(out)
        if classes:
            for b in range(B):
                if not isfinite(yp[b]):
                    continue  # BAD_INPUT below
                if self.loss == LOSS_SOFTMAX_CE and not (
                        0 <= yp[b] < self.n_out and yp[b] == <Py_ssize_t>yp[b]):
                    raise ValueError(f"class index {yp[b]} is out of range for {self.n_out} outputs")
                if self.loss == LOSS_BINARY_CE and not (yp[b] == 0.0 or yp[b] == 1.0):
                    raise ValueError(f"binary target must be 0 or 1, got {yp[b]}")
        if self.optimizer is None:
            raise RuntimeError("no optimizer: call set_optimizer first")
        if self.optimizer.size != self.size:
            raise RuntimeError("the optimizer was re-bound to another size: call set_optimizer")
        cdef int status
        self._busy = True
        try:
            with nogil:
                status = self._step(B, sp, xp, yp, op, multi)
        finally:
            self._busy = False
        return status

    def predict(self, slots, X, out):
        """Forecasts for inputs ``X`` one step past the committed states of ``slots`` into
        ``out`` (float64 (B, n_out)); changes nothing. Slots may repeat."""
        cdef Py_ssize_t B
        cdef const long long* sp = NULL
        slots = self._call_slots(slots, False, &B, &sp)
        cdef const double* xp = NULL
        cdef double* op = NULL
        self._call_rows(X, out, B, &xp, &op)
        self._busy = True
        try:
            with nogil:
                self._predict(B, sp, xp, op)
        finally:
            self._busy = False

    def rollout_step(self, slots, X, out):
        """Advance the committed state (h, c) of ``slots`` (distinct) by one forward step with
        inputs ``X``, forecasts into ``out``, without learning: the window (h0, c0, x, n),
        the weights and the optimizer are not touched. Meant for scratch slots (a what-if
        roll-out: ``copy_slots`` a key into a spare slot, roll it forward, ``reset`` it), not
        for slots that ``step`` keeps learning on. Returns 1, or -1 (non-finite input) / -2
        (non-finite output or state), changing nothing then."""
        if self.n_in == 0:
            raise RuntimeError("the network was not initialised")
        slots = self._slot_array(slots, True, True)
        cdef Py_ssize_t B = slots.shape[0]
        _float_rows(X, "X", B, self.n_in)
        _float_rows(out, "out", B, self.n_out, True)
        cdef const long long* sp = <const long long*>_data(slots)
        cdef const double* xp = <const double*>_data(X)
        cdef double* op = <double*>_data(out)
        cdef int status
        self._busy = True
        try:
            with nogil:
                status = self._rollout(B, sp, xp, op)
        finally:
            self._busy = False
        return status

    cdef int _rollout(self, Py_ssize_t B, const long long* slots, const double* X,
                      double* out) noexcept nogil:
        cdef Py_ssize_t H = self.hidden_size, L = self.num_layers, R = self.rec
        cdef Py_ssize_t GH = self.G * H, LR = L * R, LHc = L * self.Hc, b, l
        cdef double* r
        if not self._storable(B * self.n_in, X):
            return -1
        self._forward_committed(B, slots, X)
        if not _all_finite(B * self.n_out, &self.fout[0]):
            return -2
        for b in range(B):
            for l in range(L):
                r = &self.frec[b * LR + l * R]
                if not self._state_ok(r):
                    return -2
        for b in range(B):
            for l in range(L):
                r = &self.frec[b * LR + l * R]
                self._store(self.p_h, slots[b] * L + l, H, rec_h(r, H, GH))
                if LHc:
                    self._store(self.p_c, slots[b] * L + l, H, rec_c(r, H, GH))
        memcpy(out, &self.fout[0], B * self.n_out * sizeof(double))
        return 1

    def advance(self, slots, X, out):
        """Step the slots forward without learning: ``out`` (float64 (B, n_out)) receives
        the forecasts from the committed states (what ``predict`` returns), then (h, c)
        commit the new state and x_b joins the key's window; a full window (k2 steps with
        x_b) drops its oldest step and (h0, c0) moves one step forward, replayed from the
        old (h0, c0) with the current weights, exactly as ``step`` commits it. A later
        ``step``/``step_multi`` of the key then replays the right window (its last k2
        inputs). Weights, optimizer, ``t`` and ``last_loss`` are not touched.

        ``slots``: int64 (B,), distinct, 1 <= B <= max_batch; ``X``: float64 (B, n_in).
        Returns 1, or -1 (a non-finite input) / -2 (a non-finite output or new state),
        changing nothing then (``out`` not written)."""
        cdef Py_ssize_t B
        cdef const long long* sp = NULL
        slots = self._call_slots(slots, True, &B, &sp)
        cdef const double* xp = NULL
        cdef double* op = NULL
        self._call_rows(X, out, B, &xp, &op)
        cdef int status
        self._busy = True
        try:
            with nogil:
                status = self._advance(B, sp, xp, op)
        finally:
            self._busy = False
        return status

    cdef int _advance(self, Py_ssize_t B, const long long* slots, const double* X,
                      double* out) noexcept nogil:
        """``advance`` at C level (preconditions in _shared.pxd). The oldest step of the
        full windows is replayed ``chunk`` rows at a time in the replay scratch (xr, rh, rc,
        rrec), its state kept in nh0/nc0 until every check has passed."""
        cdef Py_ssize_t H = self.hidden_size, L = self.num_layers, LH = L * H, R = self.rec
        cdef Py_ssize_t GH = self.G * H, LR = L * R, LHc = L * self.Hc, n_in = self.n_in
        cdef Py_ssize_t nw = self.nw, CB = self.chunk, b, l, q, i, k, nf, c0, nc
        cdef Py_ssize_t* perm = &self.perm[0]
        cdef double* xr = &self.xr[0]
        cdef double* rh = &self.rh[0]
        cdef double* rc = &self.rc[0]
        cdef double* rrec = &self.rrec[0]
        cdef double* frec = &self.frec[0]
        cdef double* r
        # ---- 0. inputs finite
        if not self._storable(B * n_in, X):
            return -1
        # ---- 1. forecast and new committed state
        self._forward_committed(B, slots, X)
        if not _all_finite(B * self.n_out, &self.fout[0]):
            return -2
        for b in range(B):
            for l in range(L):
                r = frec + b * LR + l * R
                if not self._state_ok(r):
                    return -2
        # ---- 2. full windows: the state after their oldest step, from (h0, c0)
        nf = 0
        for b in range(B):
            if self.p_n[slots[b]] == nw:
                perm[nf] = b
                nf += 1
        c0 = 0
        while c0 < nf:
            nc = nf - c0 if nf - c0 < CB else CB
            for q in range(nc):
                b = perm[c0 + q]
                k = slots[b]
                self._load(self.p_h0, k, LH, rh + q * LH)
                if LHc:
                    self._load(self.p_c0, k, LHc, rc + q * LH)
                else:
                    memset(rc + q * LH, 0, LH * sizeof(double))
                if nw > 0:
                    self._load(self.p_x, k * nw, n_in, xr + q * n_in)
                else:
                    memcpy(xr + q * n_in, X + b * n_in, n_in * sizeof(double))
            for l in range(L):
                if l == 0:
                    self._layer(nc, 0, xr, n_in, rh, rc, rrec)
                else:
                    self._layer(nc, l, rec_h(rrec + (l - 1) * R, H, GH), LR, rh + l * H,
                                rc + l * H, rrec + l * R)
            for q in range(nc):
                for l in range(L):
                    r = rrec + q * LR + l * R
                    if not self._state_ok(r):
                        return -2
                    memcpy(&self.nh0[(c0 + q) * LH + l * H], rec_h(r, H, GH), H * sizeof(double))
                    memcpy(&self.nc0[(c0 + q) * LH + l * H], rec_c(r, H, GH), H * sizeof(double))
            c0 += nc
        # ---- 3. commit
        for b in range(B):
            for l in range(L):
                r = frec + b * LR + l * R
                self._store(self.p_h, slots[b] * L + l, H, rec_h(r, H, GH))
                if LHc:
                    self._store(self.p_c, slots[b] * L + l, H, rec_c(r, H, GH))
        for i in range(nf):
            b = perm[i]
            k = slots[b]
            self._store(self.p_h0, k, LH, &self.nh0[i * LH])
            if LHc:
                self._store(self.p_c0, k, LH, &self.nc0[i * LH])
            self._push_full(k, X + b * n_in)
        for b in range(B):
            k = slots[b]
            if self.p_n[k] < nw:
                self._store(self.p_x, k * nw + self.p_n[k], n_in, X + b * n_in)
                self.p_n[k] += 1
        memcpy(out, &self.fout[0], B * self.n_out * sizeof(double))
        return 1

    # ------------------------------------------------------------ slot management
    def reset(self, slots):
        """Back to the initial state (zeros, empty window) for one slot or an array of slots."""
        slots = self._slot_array(slots, False, False)
        for a in self._slots.values():
            a[slots] = 0

    def copy_slots(self, src, dst):
        """Slot ``dst[i]`` takes the state of ``src[i]`` (ints or int64 arrays; the targets
        distinct; read before written, so overlapping moves are safe)."""
        src = self._slot_array(src, False, False)
        dst = self._slot_array(dst, True, False)
        if src.shape != dst.shape:
            raise ValueError("src and dst differ in length")
        for a in self._slots.values():
            a[dst] = a[src]

    def move_slots(self, src, dst):
        """``copy_slots(src, dst)``, then the sources that are not also targets are reset."""
        src = self._slot_array(src, False, False)
        dst = self._slot_array(dst, True, False)
        self.copy_slots(src, dst)
        self.reset(np.setdiff1d(src, dst).astype(np.int64))

    def window_length(self, slots):
        """Steps the next ``step`` of each slot replays (held past inputs + 1), int64."""
        slots = self._slot_array(slots, False, False)
        return self._slots["n"][slots] + 1

    def _slot_shapes(self, k):
        L, H = self.num_layers, self.hidden_size
        return {"h": (k, L, H), "c": (k, L, self.Hc), "h0": (k, L, H), "c0": (k, L, self.Hc),
                "x": (k, self.nw, self.n_in)}

    def get_slots(self, slots):
        """State of the given slots as float64/int64 copies: ``{"h": (k, L, H), "c": (k, L,
        Hc), "h0": (k, L, H), "c0": (k, L, Hc), "x": (k, k2-1, n_in), "n": int64 (k,)}``
        (Hc = H for the LSTM, else 0)."""
        slots = self._slot_array(slots, False, False)
        k = slots.shape[0]
        st = {name: self._slots[name][slots].astype(np.float64).reshape(shape)
              for name, shape in self._slot_shapes(k).items()}
        st["n"] = self._slots["n"][slots].copy()
        return st

    def _check_slots(self, state, k):
        """Validated slot arrays for k slots (as stored: float64 or rounded float32)."""
        if not isinstance(state, dict):
            raise ValueError(f"slot state must be a dict, got {type(state).__name__}")
        if set(state) != _SLOT_KEYS:
            raise ValueError(f"slot state keys {sorted(map(str, state))} != {sorted(_SLOT_KEYS)}")
        arrays = {}
        for name, shape in self._slot_shapes(k).items():
            width = int(np.prod(shape[1:]))
            a = _array(state[name], f"slot {name}", shape).reshape(k, width)
            if self.f32:
                if np.any(np.abs(a) > _FLT_MAX):
                    raise ValueError(f"slot {name} has values beyond the float32 range")
                a = a.astype(np.float32)
            arrays[name] = a
        n = state["n"]
        if not isinstance(n, np.ndarray) or n.dtype != np.int64 or n.shape != (k,):
            raise ValueError(f"slot n must be an int64 ndarray of shape ({k},)")
        if np.any(n < 0) or np.any(n > self.nw):
            raise ValueError(f"slot n must be in [0, k2-1 = {self.nw}]")
        n = n.copy()
        # past inputs beyond n are never used and kept zero (one canonical state per window)
        x = arrays["x"].reshape(k, self.nw, self.n_in)
        unused = np.arange(self.nw)[None, :] >= n[:, None]
        if np.any(x[unused] != 0):
            raise ValueError("slot x holds values beyond its n past inputs")
        arrays["n"] = n
        return arrays

    def set_slots(self, slots, state):
        """Take over ``state`` (as ``get_slots`` returns it) for ``slots`` (distinct),
        validating all of it first; ValueError/TypeError and nothing changes otherwise.
        float32 storage rounds the values (and refuses values beyond its range)."""
        slots = self._slot_array(slots, True, False)
        arrays = self._check_slots(state, slots.shape[0])
        for name, a in arrays.items():
            self._slots[name][slots] = a

    # ------------------------------------------------------------ shared state
    def get_shared_state(self):
        """``{"params": (P,), "t": int, "last_loss": float, "optimizer": state or None}``."""
        return {"params": self._params.copy(), "t": int(self.t),
                "last_loss": float(self.last_loss),
                "optimizer": None if self.optimizer is None else self.optimizer.get_state()}

    def _check_shared(self, state):
        if not isinstance(state, dict):
            raise ValueError(f"shared state must be a dict, got {type(state).__name__}")
        if set(state) != _SHARED_KEYS:
            raise ValueError(f"shared state keys {sorted(map(str, state))} != {sorted(_SHARED_KEYS)}")
        params = _array(state["params"], "params", (self.size,))
        t = _counter(state["t"], "t")
        last_loss = _number(state["last_loss"], "last_loss")
        o = state["optimizer"]
        checked = None if o is None else check_state(o, self.size)
        return params, t, last_loss, checked

    cdef _assign_shared(self, tuple checked_all):
        params, t, last_loss, checked = checked_all
        self._params[:] = params
        self.t = t
        self.last_loss = last_loss
        self.optimizer = restore_checked(self.optimizer, checked)

    def set_shared_state(self, state):
        """Take over the shared part (as ``get_shared_state`` returns it), validated first."""
        self._slot_array(np.zeros(0, dtype=np.int64), False, False)  # initialised, not busy
        self._assign_shared(self._check_shared(state))

    def get_state(self):
        """``{"shared": get_shared_state(), "slots": get_slots(all slots)}``."""
        return {"shared": self.get_shared_state(),
                "slots": self.get_slots(np.arange(self.capacity, dtype=np.int64))}

    def set_state(self, state):
        """Take over a whole state (as ``get_state`` returns it), every field validated
        before anything is assigned."""
        if not isinstance(state, dict) or set(state) != _STATE_KEYS:
            raise ValueError(f"shared-network state must be a dict with keys {sorted(_STATE_KEYS)}")
        self._slot_array(np.zeros(0, dtype=np.int64), False, False)  # initialised, not busy
        shared = self._check_shared(state["shared"])
        arrays = self._check_slots(state["slots"], self.capacity)
        self._assign_shared(shared)
        for name, a in arrays.items():
            self._slots[name][...] = a

    def config(self):
        return dict(cell=self.cell, n_in=self.n_in, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, n_out=self.n_out, k2=self.k2, loss=self.loss,
                    huber_eps=self.huber_eps, capacity=int(self.capacity),
                    max_batch=self.max_batch, slot_dtype=self.slot_dtype)

    @staticmethod
    def from_state(config, state):
        """A network built from ``config()`` and ``get_state()``; ValueError if either is invalid."""
        if not isinstance(config, dict) or set(config) != _CONFIG_KEYS:
            raise ValueError(f"shared-network config must be a dict with keys {sorted(_CONFIG_KEYS)}")
        net = SharedNetwork(**config)
        net.set_state(state)
        return net

    def __reduce__(self):
        return (_shared_from_state, (self.config(), self.get_state()))

    def __repr__(self):
        return (f"SharedNetwork({_CELL_NAMES[self.cell]}, n_in={self.n_in}, "
                f"hidden={self.hidden_size}, layers={self.num_layers}, n_out={self.n_out}, "
                f"k2={self.k2}, capacity={self.capacity}, slots={self.slot_dtype}, t={self.t})")


def _shared_from_state(config, state):
    """Unpickling entry point: ``SharedNetwork.from_state``."""
    return SharedNetwork.from_state(config, state)
