/* streamrnn/_core/_kernels.h: the few C helpers Cython cannot express (restrict-qualified
   pointers, GCC/Clang vector types, per-function instruction sets), dispatched at run time.

   The bodies live in _kernels_impl.h, which is compiled here once per instruction set:
   "default" (the build's own flags: the x86-64 baseline, SSE2, unless STREAMRNN_NATIVE=1),
   and on x86-64 with GCC or Clang also "avx2" and "avx512" (AVX-512F), each under its own
   target. sr_select() picks one copy ONCE, when a module that uses them is imported: the best
   this CPU runs, or the one the environment variable STREAMRNN_ISA names (default, avx2,
   avx512). The helpers are then called through function pointers of the same names
   (sr_affine, sr_gemm_tn, sr_gemm_rows, sr_matvec, sr_adam, sr_rule, sr_sumsq,
   sr_adam_scaled, sr_scale, sr_adam_m32, sr_adam_scaled_m32, sr_sigmoid_n, sr_tanh_n, sr_lstm_bwd,
   sr_sum_steps).

   Every copy computes the same bits: the loops are element-wise or sum in a fixed number of
   lanes, and the build passes -ffp-contract=off, so no copy fuses a*b + c into an FMA (which
   rounds once instead of twice). tests/test_kernel_exact.py checks every copy against the
   recorded digests.
*/
#ifndef STREAMRNN_KERNELS_H
#define STREAMRNN_KERNELS_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define SR_UNUSED __attribute__((unused))
#else
#define SR_UNUSED
#endif

/* the compiler of this build (exposed as streamrnn._core._cells.COMPILER) */
#if defined(__VERSION__)
#define SR_COMPILER __VERSION__
#else
#define SR_COMPILER "unknown"
#endif

/* optimizer codes, as K_SGD ... in _optim.pxd */
#define SR_SGD 0
#define SR_MOMENTUM 1
#define SR_NESTEROV 2
#define SR_RMSPROP 3
#define SR_ADAGRAD 5

#if defined(__GNUC__) || defined(__clang__)
#define SR_VEC 1
typedef double sr_v8 __attribute__((vector_size(64)));
typedef double sr_v8u __attribute__((vector_size(64), aligned(8), may_alias));
#define SR_LD(p) (*(const sr_v8u*)(p))
#define SR_ST(p, x) (*(sr_v8u*)(p) = (x))
/* sr_gemm_tn blocks its columns in vectors of one register of the copy's instruction set
   (SR_GV, SR_GW doubles wide): any blocking gives the same bits there, since every element
   sums over the steps in order, and a block that fits the registers avoids spills;
   sr_matvec likewise takes SR_MR rows at a time */
typedef double sr_v2 __attribute__((vector_size(16)));
typedef double sr_v2u __attribute__((vector_size(16), aligned(8), may_alias));
typedef double sr_v4 __attribute__((vector_size(32)));
typedef double sr_v4u __attribute__((vector_size(32), aligned(8), may_alias));
#define SR_GLD(p) (*(const SR_GVU*)(p))
#define SR_GST(p, x) (*(SR_GVU*)(p) = (x))
#else
#define SR_VEC 0
#endif

/* SR_DISPATCH: compile the avx2 and avx512 copies (x86-64 with GCC or Clang; -DSR_DISPATCH=0
   builds the default copy only) */
#ifndef SR_DISPATCH
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(_M_X64))
#define SR_DISPATCH 1
#else
#define SR_DISPATCH 0
#endif
#endif

/* instruction sets, in the order of preference */
#define SR_ISA_DEFAULT 0
#define SR_ISA_AVX2 1
#define SR_ISA_AVX512 2
#define SR_N_ISA 3
static const char* const sr_isa_names[SR_N_ISA] SR_UNUSED = {"default", "avx2", "avx512"};

/* ---- the copies ---- */
#define SR_FN(name) name##_default
#define SR_GV sr_v2
#define SR_GVU sr_v2u
#define SR_GW 2
#define SR_MR 2
#include "_kernels_impl.h"
#undef SR_FN
#undef SR_GV
#undef SR_GVU
#undef SR_GW
#undef SR_MR

#if SR_DISPATCH
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif
#define SR_FN(name) name##_avx2
#define SR_GV sr_v4
#define SR_GVU sr_v4u
#define SR_GW 4
#define SR_MR 4
#include "_kernels_impl.h"
#undef SR_FN
#undef SR_GV
#undef SR_GVU
#undef SR_GW
#undef SR_MR
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f")
#endif
#define SR_FN(name) name##_avx512
#define SR_GV sr_v8
#define SR_GVU sr_v8u
#define SR_GW 8
#define SR_MR 8
#include "_kernels_impl.h"
#undef SR_FN
#undef SR_GV
#undef SR_GVU
#undef SR_GW
#undef SR_MR
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

/* ---- the function pointers the modules call, set by sr_select ---- */
static void (*sr_affine)(ptrdiff_t, ptrdiff_t, const double*, const double*, double*)
    SR_UNUSED = sr_affine_default;
static void (*sr_gemm_tn)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const double*, ptrdiff_t,
                          const double*, ptrdiff_t, double*) SR_UNUSED = sr_gemm_tn_default;
static void (*sr_matvec)(ptrdiff_t, ptrdiff_t, const double*, const double*, const double*,
                         double*) SR_UNUSED = sr_matvec_default;
static void (*sr_adam)(ptrdiff_t, double*, const double*, double*, double*, double, double,
                       double, double) SR_UNUSED = sr_adam_default;
static void (*sr_rule)(int, ptrdiff_t, double*, const double*, double*, double, double, double)
    SR_UNUSED = sr_rule_default;
static double (*sr_sumsq)(ptrdiff_t, const double*) SR_UNUSED = sr_sumsq_default;
static void (*sr_adam_scaled)(ptrdiff_t, double*, double*, double*, double*, double, double,
                              double, double, double) SR_UNUSED = sr_adam_scaled_default;
static void (*sr_scale)(ptrdiff_t, double*, double) SR_UNUSED = sr_scale_default;
static void (*sr_adam_m32)(ptrdiff_t, double*, const double*, float*, float*, double, double,
                           double, double) SR_UNUSED = sr_adam_m32_default;
static void (*sr_adam_scaled_m32)(ptrdiff_t, double*, double*, float*, float*, double, double,
                                  double, double, double) SR_UNUSED = sr_adam_scaled_m32_default;
static void (*sr_sigmoid_n)(ptrdiff_t, const double*, double*) SR_UNUSED = sr_sigmoid_n_default;
static void (*sr_tanh_n)(ptrdiff_t, const double*, double*) SR_UNUSED = sr_tanh_n_default;
static void (*sr_lstm_bwd)(ptrdiff_t, const double*, const double*, const double*, const double*,
                           double*, double*) SR_UNUSED = sr_lstm_bwd_default;
static void (*sr_sum_steps)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const double*, double*) SR_UNUSED =
    sr_sum_steps_default;
static void (*sr_gemm_rows)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const double* const*, const double*,
                            ptrdiff_t, double*) SR_UNUSED = sr_gemm_rows_default;

/* 1 if this CPU (and its operating system) runs the copy `isa`, else 0 */
SR_UNUSED static int sr_isa_supported(int isa) {
    if (isa == SR_ISA_DEFAULT) return 1;
#if SR_DISPATCH
    __builtin_cpu_init();
    if (isa == SR_ISA_AVX2) return __builtin_cpu_supports("avx2") ? 1 : 0;
    if (isa == SR_ISA_AVX512) return __builtin_cpu_supports("avx512f") ? 1 : 0;
#endif
    return 0;
}

/* Point the helpers at one copy: the one named by `name` (NULL or "" or "auto": the best this
   CPU runs). Returns the chosen code, -1 for an unknown name, -2 for a copy this build has
   not compiled or this CPU cannot run (the helpers are left as they were). */
SR_UNUSED static int sr_select(const char* name) {
    int isa = -1, k;
    if (name == NULL || name[0] == '\0' || strcmp(name, "auto") == 0) {
        for (k = SR_N_ISA - 1; k > 0 && !sr_isa_supported(k); k--) {}
        isa = k;
    } else {
        for (k = 0; k < SR_N_ISA; k++)
            if (strcmp(name, sr_isa_names[k]) == 0) isa = k;
        if (isa < 0) return -1;
        if (!sr_isa_supported(isa)) return -2;
    }
    switch (isa) {
#if SR_DISPATCH
    case SR_ISA_AVX2:
        sr_affine = sr_affine_avx2; sr_gemm_tn = sr_gemm_tn_avx2; sr_matvec = sr_matvec_avx2;
        sr_adam = sr_adam_avx2; sr_rule = sr_rule_avx2; sr_sumsq = sr_sumsq_avx2;
        sr_adam_scaled = sr_adam_scaled_avx2; sr_scale = sr_scale_avx2;
        sr_gemm_rows = sr_gemm_rows_avx2;
        sr_adam_m32 = sr_adam_m32_avx2; sr_adam_scaled_m32 = sr_adam_scaled_m32_avx2;
        sr_sigmoid_n = sr_sigmoid_n_avx2; sr_tanh_n = sr_tanh_n_avx2;
        sr_lstm_bwd = sr_lstm_bwd_avx2; sr_sum_steps = sr_sum_steps_avx2;
        break;
    case SR_ISA_AVX512:
        sr_affine = sr_affine_avx512; sr_gemm_tn = sr_gemm_tn_avx512;
        sr_matvec = sr_matvec_avx512; sr_adam = sr_adam_avx512; sr_rule = sr_rule_avx512;
        sr_sumsq = sr_sumsq_avx512; sr_adam_scaled = sr_adam_scaled_avx512;
        sr_scale = sr_scale_avx512; sr_gemm_rows = sr_gemm_rows_avx512;
        sr_adam_m32 = sr_adam_m32_avx512; sr_adam_scaled_m32 = sr_adam_scaled_m32_avx512;
        sr_sigmoid_n = sr_sigmoid_n_avx512; sr_tanh_n = sr_tanh_n_avx512;
        sr_lstm_bwd = sr_lstm_bwd_avx512; sr_sum_steps = sr_sum_steps_avx512;
        break;
#endif
    default:
        sr_affine = sr_affine_default; sr_gemm_tn = sr_gemm_tn_default;
        sr_matvec = sr_matvec_default; sr_adam = sr_adam_default; sr_rule = sr_rule_default;
        sr_sumsq = sr_sumsq_default; sr_adam_scaled = sr_adam_scaled_default;
        sr_scale = sr_scale_default; sr_gemm_rows = sr_gemm_rows_default;
        sr_adam_m32 = sr_adam_m32_default; sr_adam_scaled_m32 = sr_adam_scaled_m32_default;
        sr_sigmoid_n = sr_sigmoid_n_default; sr_tanh_n = sr_tanh_n_default;
        sr_lstm_bwd = sr_lstm_bwd_default; sr_sum_steps = sr_sum_steps_default;
        isa = SR_ISA_DEFAULT;
        break;
    }
    return isa;
}

/* speed12 */
/* helpers of the backbone (sr_bb_weights), pointed at the copy sr_select chose by
   sr_select12 (which calls sr_select and returns what it returned) */
static void (*sr_bb_weights)(ptrdiff_t, ptrdiff_t, ptrdiff_t, long long, int, const ptrdiff_t*,
                             const ptrdiff_t*, int, const double*, const double*, double*,
                             double*, double*, double*, double*, double*, double, double,
                             double, double, double (*)(double)) SR_UNUSED =
    sr_bb_weights_default;
static void (*sr_bb_loss)(ptrdiff_t, double*, const double*, double, double, double, int)
    SR_UNUSED = sr_bb_loss_default;
static void (*sr_bb_acf)(ptrdiff_t, const double*, const double*, double, double, double,
                         double*) SR_UNUSED = sr_bb_acf_default;
static void (*sr_bb_lagprod)(ptrdiff_t, double*, double, const double*, ptrdiff_t) SR_UNUSED =
    sr_bb_lagprod_default;

SR_UNUSED static int sr_select12(const char* name) {
    int isa = sr_select(name);
    switch (isa) {
#if SR_DISPATCH
    case SR_ISA_AVX2:
        sr_bb_weights = sr_bb_weights_avx2;
        sr_bb_loss = sr_bb_loss_avx2;
        sr_bb_acf = sr_bb_acf_avx2;
        sr_bb_lagprod = sr_bb_lagprod_avx2;
        break;
    case SR_ISA_AVX512:
        sr_bb_weights = sr_bb_weights_avx512;
        sr_bb_loss = sr_bb_loss_avx512;
        sr_bb_acf = sr_bb_acf_avx512;
        sr_bb_lagprod = sr_bb_lagprod_avx512;
        break;
#endif
    case SR_ISA_DEFAULT:
        sr_bb_weights = sr_bb_weights_default;
        sr_bb_loss = sr_bb_loss_default;
        sr_bb_acf = sr_bb_acf_default;
        sr_bb_lagprod = sr_bb_lagprod_default;
        break;
    default:
        break;
    }
    return isa;
}

/* speed12 */
/* exp without glibc's error-handling wrapper (the backbone's member weights, the combiner's
   expert weights). An extension module that does not link libm calls `exp` through a wrapper
   (exp@GLIBC_2.2.5, the SVID one) that calls the core through a second indirection and then
   checks the result for overflow/underflow; glibc also exports that core itself,
   `__exp_finite` (an ifunc: the same FMA/non-FMA variant the wrapper and Python's math.exp
   pick). The same bits for every argument: the wrapper only acts on results that overflow
   or underflow (setting errno, which nothing here reads). Found by sr_exp_nw_init (at a
   module's import) with dlvsym; elsewhere plain exp. */
#if defined(__GLIBC__)
#include <dlfcn.h>
#endif
static double (*sr_exp_nw)(double) SR_UNUSED = exp;
SR_UNUSED static void sr_exp_nw_init(void) {
#if defined(__GLIBC__) && defined(RTLD_DEFAULT)
    static const char* versions[] = {"GLIBC_2.15", "GLIBC_2.17", "GLIBC_2.18", NULL};
    int i;
    void* f = NULL;
    for (i = 0; versions[i] != NULL && f == NULL; i++)
        f = dlvsym(RTLD_DEFAULT, "__exp_finite", versions[i]);
    if (f != NULL) sr_exp_nw = (double (*)(double))f;
#endif
}

#endif /* STREAMRNN_KERNELS_H */
