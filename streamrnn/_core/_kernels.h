/* streamrnn/_core/_kernels.h: the few C helpers Cython cannot express (restrict-qualified
   pointers, GCC/Clang vector types, AVX-512 intrinsics). Included by _network.pyx (sr_gemm_tn,
   sr_matvec) and _optim.pyx (sr_adam); every helper is a leaf loop on raw pointers with
   ptrdiff_t sizes and a fixed summation order, so results are reproducible run to run.

   Contents:
   - sr_gemm_tn  C = A^T B for the parameter gradients after the TBPTT walk
   - sr_matvec   out = init + W v (gradient to the previous state / the layer below)
   - sr_adam     the Adam update on flat vectors
*/
#ifndef STREAMRNN_KERNELS_H
#define STREAMRNN_KERNELS_H

#include <math.h>
#include <stddef.h>
/* what this build's arithmetic depends on besides the source: compiler and vector ISA
   (exposed as streamrnn._core._cells.BUILD; bit-exact digests are only comparable within one) */
#if defined(__AVX512F__)
#define SR_ISA "avx512f"
#elif defined(__AVX2__) && defined(__FMA__)
#define SR_ISA "avx2+fma"
#elif defined(__FMA__)
#define SR_ISA "fma"
#else
#define SR_ISA "base"
#endif
#if defined(__VERSION__)
#define SR_BUILD SR_ISA " " __VERSION__
#else
#define SR_BUILD SR_ISA
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SR_UNUSED __attribute__((unused))
#else
#define SR_UNUSED
#endif

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
SR_UNUSED static void sr_gemm_tn(ptrdiff_t d, ptrdiff_t m, ptrdiff_t W, const double* restrict A, ptrdiff_t lda,
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
#if SR_VEC
static inline double sr_hsum(sr_v8 s) {
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}
#endif
SR_UNUSED static void sr_matvec(ptrdiff_t d, ptrdiff_t m, const double* restrict W, const double* restrict v,
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
SR_UNUSED static void sr_adam(ptrdiff_t n, double* restrict w, const double* restrict g,
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

#endif /* STREAMRNN_KERNELS_H */
