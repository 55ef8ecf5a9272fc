/* streamrnn/_core/_kernels_impl.h: the bodies of the dispatched C helpers. Included by
   _kernels.h once per instruction set, each time under its own target (`#pragma GCC target`)
   and with SR_FN(name) naming that copy (name_default, name_avx2, name_avx512); no include
   guard on purpose. Every loop is written so that its result does not depend on the vector
   width: element-wise operations, or sums in a fixed number of lanes added by a fixed tree,
   and no FMA (the build passes -ffp-contract=off), so every copy gives the same bits.

   Contents:
   - sr_affine   a += x @ W (the forward pass: input and recurrent pre-activations, the head)
   - sr_gemm_tn  C = A^T B for the parameter gradients after the TBPTT walk
   - sr_gemm_rows  the same with A given by one row pointer per step (no transposed copy)
   - sr_matvec   out = init + W v (gradient to the previous state / the layer below)
   - sr_adam     the Adam update on flat vectors
   - sr_adam_scaled  the gradient norm clip's rescaling and the Adam update in one pass
   - sr_adam_m32, sr_adam_scaled_m32  the same with single-precision moments
   - sr_scale    the gradient norm clip's rescaling
   - sr_rule     the other optimizer rules (SGD, momentum, Nesterov, RMSprop, AdaGrad)
   - sr_sumsq    the squared norm of the gradient (sixteen lanes)
   - sr_sigmoid_n, sr_tanh_n  the cells' gate activations on arrays
   - sr_lstm_bwd, sr_sum_steps  the LSTM's element-wise backward, the bias gradients
*/

/* a (m,) += x (d,) @ W (d x m, row-major), row by row in the order i = 0, 1, ..., d-1,
   rows with x[i] == 0 skipped (so a zero input adds nothing, not even the sign of a zero).
   Four non-zero rows are added per pass over a: the same additions in the same order as
   one pass per row, with a quarter of the loads and stores of a. */
static void SR_FN(sr_affine)(ptrdiff_t d, ptrdiff_t m, const double* restrict x,
                             const double* restrict W, double* restrict a) {
    ptrdiff_t i, j, idx[4];
    int n = 0, k;
    for (i = 0; i < d; i++) {
        if (x[i] != 0.0) idx[n++] = i;
        if (n == 4) {
            const double* w0 = W + (size_t)idx[0] * m;
            const double* w1 = W + (size_t)idx[1] * m;
            const double* w2 = W + (size_t)idx[2] * m;
            const double* w3 = W + (size_t)idx[3] * m;
            const double x0 = x[idx[0]], x1 = x[idx[1]], x2 = x[idx[2]], x3 = x[idx[3]];
            for (j = 0; j < m; j++)
                a[j] = (((a[j] + x0 * w0[j]) + x1 * w1[j]) + x2 * w2[j]) + x3 * w3[j];
            n = 0;
        }
    }
    for (k = 0; k < n; k++) {
        const double* w0 = W + (size_t)idx[k] * m;
        const double x0 = x[idx[k]];
        for (j = 0; j < m; j++) a[j] += x0 * w0[j];
    }
}

/* C (d x m, row-major, written) = A^T B: C[i, j] = sum_{s < W} A[i*lda + s] * B[s*ldb + j],
   summed from 0 in the order s = 0, 1, ..., W-1. Rows of A are per-row coefficients over
   the steps (gathered transposed), rows of B the per-step gate gradients. */
static void SR_FN(sr_gemm_tn)(ptrdiff_t d, ptrdiff_t m, ptrdiff_t W, const double* restrict A, ptrdiff_t lda,
                       const double* restrict B, ptrdiff_t ldb, double* restrict C) {
    ptrdiff_t i = 0, j, s;
#if SR_VEC
    for (; i + 4 <= d; i += 4) {
        const double* a0 = A + (size_t)i * lda;
        const double* a1 = a0 + lda;
        const double* a2 = a1 + lda;
        const double* a3 = a2 + lda;
        double* c0 = C + (size_t)i * m;
        for (j = 0; j + 2 * SR_GW <= m; j += 2 * SR_GW) {
            SR_GV p0 = {0}, q0 = {0}, p1 = {0}, q1 = {0}, p2 = {0}, q2 = {0}, p3 = {0}, q3 = {0};
            for (s = 0; s < W; s++) {
                const double* b = B + (size_t)s * ldb + j;
                SR_GV bl = SR_GLD(b), bh = SR_GLD(b + SR_GW);
                p0 += a0[s] * bl; q0 += a0[s] * bh;
                p1 += a1[s] * bl; q1 += a1[s] * bh;
                p2 += a2[s] * bl; q2 += a2[s] * bh;
                p3 += a3[s] * bl; q3 += a3[s] * bh;
            }
            SR_GST(c0 + j, p0); SR_GST(c0 + j + SR_GW, q0);
            SR_GST(c0 + m + j, p1); SR_GST(c0 + m + j + SR_GW, q1);
            SR_GST(c0 + 2 * m + j, p2); SR_GST(c0 + 2 * m + j + SR_GW, q2);
            SR_GST(c0 + 3 * m + j, p3); SR_GST(c0 + 3 * m + j + SR_GW, q3);
        }
        for (; j + SR_GW <= m; j += SR_GW) {
            SR_GV p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0};
            for (s = 0; s < W; s++) {
                SR_GV bl = SR_GLD(B + (size_t)s * ldb + j);
                p0 += a0[s] * bl; p1 += a1[s] * bl; p2 += a2[s] * bl; p3 += a3[s] * bl;
            }
            SR_GST(c0 + j, p0); SR_GST(c0 + m + j, p1);
            SR_GST(c0 + 2 * m + j, p2); SR_GST(c0 + 3 * m + j, p3);
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
        for (j = 0; j + SR_GW <= m; j += SR_GW) {
            SR_GV p0 = {0};
            for (s = 0; s < W; s++) p0 += a0[s] * SR_GLD(B + (size_t)s * ldb + j);
            SR_GST(c0 + j, p0);
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

/* sr_gemm_tn with A^T given by its rows: C[i, j] = sum_{s < W} A[s][i] * B[s*ldb + j] (A[s]
   the row of step s, e.g. a ring slot), summed from 0 in the order s = 0, 1, ..., W-1: the
   same operations as sr_gemm_tn on the gathered transpose, bit for bit, without the strided
   gather. */
static void SR_FN(sr_gemm_rows)(ptrdiff_t d, ptrdiff_t m, ptrdiff_t W, const double* const* A,
                                const double* restrict B, ptrdiff_t ldb, double* restrict C) {
    ptrdiff_t i = 0, j, s;
#if SR_VEC
    for (; i + 4 <= d; i += 4) {
        double* c0 = C + (size_t)i * m;
        for (j = 0; j + 2 * SR_GW <= m; j += 2 * SR_GW) {
            SR_GV p0 = {0}, q0 = {0}, p1 = {0}, q1 = {0}, p2 = {0}, q2 = {0}, p3 = {0}, q3 = {0};
            for (s = 0; s < W; s++) {
                const double* a = A[s] + i;
                const double* b = B + (size_t)s * ldb + j;
                SR_GV bl = SR_GLD(b), bh = SR_GLD(b + SR_GW);
                p0 += a[0] * bl; q0 += a[0] * bh;
                p1 += a[1] * bl; q1 += a[1] * bh;
                p2 += a[2] * bl; q2 += a[2] * bh;
                p3 += a[3] * bl; q3 += a[3] * bh;
            }
            SR_GST(c0 + j, p0); SR_GST(c0 + j + SR_GW, q0);
            SR_GST(c0 + m + j, p1); SR_GST(c0 + m + j + SR_GW, q1);
            SR_GST(c0 + 2 * m + j, p2); SR_GST(c0 + 2 * m + j + SR_GW, q2);
            SR_GST(c0 + 3 * m + j, p3); SR_GST(c0 + 3 * m + j + SR_GW, q3);
        }
        for (; j + SR_GW <= m; j += SR_GW) {
            SR_GV p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0};
            for (s = 0; s < W; s++) {
                const double* a = A[s] + i;
                SR_GV bl = SR_GLD(B + (size_t)s * ldb + j);
                p0 += a[0] * bl; p1 += a[1] * bl; p2 += a[2] * bl; p3 += a[3] * bl;
            }
            SR_GST(c0 + j, p0); SR_GST(c0 + m + j, p1);
            SR_GST(c0 + 2 * m + j, p2); SR_GST(c0 + 3 * m + j, p3);
        }
        for (; j < m; j++) {
            ptrdiff_t r;
            for (r = 0; r < 4; r++) {
                double acc = 0.0;
                for (s = 0; s < W; s++) acc += A[s][i + r] * B[(size_t)s * ldb + j];
                C[(size_t)(i + r) * m + j] = acc;
            }
        }
    }
    for (; i < d; i++) {
        double* c0 = C + (size_t)i * m;
        for (j = 0; j + SR_GW <= m; j += SR_GW) {
            SR_GV p0 = {0};
            for (s = 0; s < W; s++) p0 += A[s][i] * SR_GLD(B + (size_t)s * ldb + j);
            SR_GST(c0 + j, p0);
        }
        for (; j < m; j++) {
            double acc = 0.0;
            for (s = 0; s < W; s++) acc += A[s][i] * B[(size_t)s * ldb + j];
            c0[j] = acc;
        }
    }
#else
    for (; i < d; i++)
        for (j = 0; j < m; j++) {
            double acc = 0.0;
            for (s = 0; s < W; s++) acc += A[s][i] * B[(size_t)s * ldb + j];
            C[(size_t)i * m + j] = acc;
        }
#endif
}

/* out[i] = init[i] + sum_j W[i*m + j] v[j] for W (d x m) row-major (out += v @ W^T
   without transposing W; init NULL: 0; out may be init). SR_MR rows at a time share each
   load of v (as many as the copy's registers hold); per row the products go to eight lanes
   summed by a fixed tree, whatever the copy. */
#if SR_VEC
/* the eight lanes l[0..7] summed by the fixed tree */
static inline double SR_FN(sr_hsum)(const double* l) {
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}
#endif
/* lane q of the eight is element q % SR_GW of vector q / SR_GW (SR_NL vectors per row) */
#define SR_NL (8 / SR_GW)
static void SR_FN(sr_matvec)(ptrdiff_t d, ptrdiff_t m, const double* restrict W, const double* restrict v,
                      const double* init, double* out) {
    ptrdiff_t i = 0, j, r;
#if SR_VEC
    int k;
    double lanes[8];
    for (; i + SR_MR <= d; i += SR_MR) {
        SR_GV acc[SR_MR][SR_NL];
        double tail[SR_MR];
        const double* w0 = W + (size_t)i * m;
        for (r = 0; r < SR_MR; r++) {
            for (k = 0; k < SR_NL; k++) acc[r][k] = (SR_GV){0};
            tail[r] = 0.0;
        }
        for (j = 0; j + 8 <= m; j += 8) {
            SR_GV x[SR_NL];
            for (k = 0; k < SR_NL; k++) x[k] = SR_GLD(v + j + k * SR_GW);
            for (r = 0; r < SR_MR; r++)
                for (k = 0; k < SR_NL; k++)
                    acc[r][k] += SR_GLD(w0 + (size_t)r * m + j + k * SR_GW) * x[k];
        }
        for (; j < m; j++)
            for (r = 0; r < SR_MR; r++) tail[r] += w0[(size_t)r * m + j] * v[j];
        for (r = 0; r < SR_MR; r++) {
            double e;
            for (k = 0; k < SR_NL; k++) SR_GST(lanes + k * SR_GW, acc[r][k]);
            e = SR_FN(sr_hsum)(lanes) + tail[r];
            out[i + r] = init ? init[i + r] + e : e;
        }
    }
    for (; i < d; i++) {
        SR_GV acc[SR_NL];
        double e = 0.0;
        const double* w0 = W + (size_t)i * m;
        for (k = 0; k < SR_NL; k++) acc[k] = (SR_GV){0};
        for (j = 0; j + 8 <= m; j += 8)
            for (k = 0; k < SR_NL; k++)
                acc[k] += SR_GLD(w0 + j + k * SR_GW) * SR_GLD(v + j + k * SR_GW);
        for (; j < m; j++) e += w0[j] * v[j];
        for (k = 0; k < SR_NL; k++) SR_GST(lanes + k * SR_GW, acc[k]);
        e += SR_FN(sr_hsum)(lanes);
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
#undef SR_NL

/* Adam on flat vectors: m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
   w -= a*m / (sqrt(v) + eps), with the IEEE square root and division (vectorised by the
   compiler; element-wise, so every copy gives the same bits). */
static void SR_FN(sr_adam)(ptrdiff_t n, double* restrict w, const double* restrict g,
                           double* restrict m, double* restrict v, double a, double b1,
                           double b2, double eps) {
    ptrdiff_t i;
    const double c1 = 1.0 - b1, c2 = 1.0 - b2;
    for (i = 0; i < n; i++) {
        double gi = g[i];
        double mi = b1 * m[i] + c1 * gi;
        double vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= a * mi / (sqrt(vi) + eps);
    }
}

/* Adam after the gradient norm clip, in one pass: g[i] *= scale (written back, as the clip's
   own loop does), then sr_adam's update with that value; the same bits as the two passes. */
static void SR_FN(sr_adam_scaled)(ptrdiff_t n, double* restrict w, double* restrict g,
                                  double* restrict m, double* restrict v, double a, double b1,
                                  double b2, double eps, double scale) {
    ptrdiff_t i;
    const double c1 = 1.0 - b1, c2 = 1.0 - b2;
    for (i = 0; i < n; i++) {
        double gi = g[i] * scale;
        double mi = b1 * m[i] + c1 * gi;
        double vi = b2 * v[i] + c2 * gi * gi;
        g[i] = gi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= a * mi / (sqrt(vi) + eps);
    }
}

/* Adam with single-precision moments (the network's optimizer: Optimizer.single):
   m and v are float arrays, the gradient and the weights double. With gf = sat((float)g[i]),
   m = sat(b1f*m + c1f*gf), v = min(b2f*v + c2f*gf*gf, FLT_MAX), q = m / (sqrtf(v) + ef) and
   w -= a * (double)q, where b1f, c1f, b2f, c2f, ef are the floats nearest b1, 1 - b1, b2,
   1 - b2, eps and sat clamps to [-FLT_MAX, FLT_MAX]. Each float operation is correctly
   rounded and nothing is fused (-ffp-contract=off), so every copy gives the same bits; the
   saturation keeps the moments finite (and exportable) whatever the gradient, which only a
   gradient coordinate beyond 1.8e19 (whose square overflows) can reach. Half the moments'
   bytes and twice the lanes of the double square root and division. */
static inline float SR_FN(sr_satf)(float x) {
    x = x > FLT_MAX ? FLT_MAX : x;
    return x < -FLT_MAX ? -FLT_MAX : x;
}

static void SR_FN(sr_adam_m32)(ptrdiff_t n, double* restrict w, const double* restrict g,
                               float* restrict m, float* restrict v, double a, double b1,
                               double b2, double eps) {
    ptrdiff_t i;
    const float b1f = (float)b1, c1f = (float)(1.0 - b1);
    const float b2f = (float)b2, c2f = (float)(1.0 - b2), ef = (float)eps;
    for (i = 0; i < n; i++) {
        float gi = SR_FN(sr_satf)((float)g[i]);
        float mi = SR_FN(sr_satf)(b1f * m[i] + c1f * gi);
        float vi = b2f * v[i] + c2f * gi * gi;
        vi = vi > FLT_MAX ? FLT_MAX : vi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= a * (double)(mi / (sqrtf(vi) + ef));
    }
}

/* sr_adam_m32 after the gradient norm clip, in one pass (g[i] *= scale in double, written
   back, as sr_adam_scaled) */
static void SR_FN(sr_adam_scaled_m32)(ptrdiff_t n, double* restrict w, double* restrict g,
                                      float* restrict m, float* restrict v, double a,
                                      double b1, double b2, double eps, double scale) {
    ptrdiff_t i;
    const float b1f = (float)b1, c1f = (float)(1.0 - b1);
    const float b2f = (float)b2, c2f = (float)(1.0 - b2), ef = (float)eps;
    for (i = 0; i < n; i++) {
        double gd = g[i] * scale;
        float gi = SR_FN(sr_satf)((float)gd);
        float mi = SR_FN(sr_satf)(b1f * m[i] + c1f * gi);
        float vi = b2f * v[i] + c2f * gi * gi;
        vi = vi > FLT_MAX ? FLT_MAX : vi;
        g[i] = gd;
        m[i] = mi;
        v[i] = vi;
        w[i] -= a * (double)(mi / (sqrtf(vi) + ef));
    }
}

/* g[i] *= scale (the gradient norm clip of the other rules) */
static void SR_FN(sr_scale)(ptrdiff_t n, double* restrict g, double scale) {
    ptrdiff_t i;
    for (i = 0; i < n; i++) g[i] *= scale;
}

/* The other rules on flat vectors (kind: SR_SGD ... as in _optim.pxd; Adam has sr_adam):
   SGD w -= lr*g; momentum s = rho*s + lr*g, w -= s; Nesterov s = rho*s + lr*g,
   w -= rho*s + lr*g; RMSprop s = rho*s + (1-rho)*g^2, w -= lr*g/sqrt(s + eps);
   AdaGrad s += g^2, w -= lr*g/sqrt(s + eps). */
static void SR_FN(sr_rule)(int kind, ptrdiff_t n, double* restrict w, const double* restrict g,
                           double* restrict s, double lr, double rho, double eps) {
    ptrdiff_t i;
    const double c = 1.0 - rho;
    switch (kind) {
    case SR_SGD:
        for (i = 0; i < n; i++) w[i] -= lr * g[i];
        break;
    case SR_MOMENTUM:
        for (i = 0; i < n; i++) { s[i] = rho * s[i] + lr * g[i]; w[i] -= s[i]; }
        break;
    case SR_NESTEROV:
        for (i = 0; i < n; i++) { s[i] = rho * s[i] + lr * g[i]; w[i] -= rho * s[i] + lr * g[i]; }
        break;
    case SR_RMSPROP:
        for (i = 0; i < n; i++) {
            double gi = g[i];
            s[i] = rho * s[i] + c * gi * gi;
            w[i] -= lr * gi / sqrt(s[i] + eps);
        }
        break;
    case SR_ADAGRAD:
        for (i = 0; i < n; i++) {
            double gi = g[i];
            s[i] += gi * gi;
            w[i] -= lr * gi / sqrt(s[i] + eps);
        }
        break;
    default:
        break;
    }
}

/* sum of g[i]^2 in sixteen lanes (lane k takes i = k mod 16 of the full blocks), the tail
   summed on its own, then the lanes by a fixed tree: the same bits for every vector width */
static double SR_FN(sr_sumsq)(ptrdiff_t n, const double* restrict g) {
    double acc[16], s = 0.0;
    ptrdiff_t j = 0;
    int k;
    for (k = 0; k < 16; k++) acc[k] = 0.0;
    for (; j + 16 <= n; j += 16)
        for (k = 0; k < 16; k++) acc[k] += g[j + k] * g[j + k];
    for (; j < n; j++) s += g[j] * g[j];
    for (k = 0; k < 8; k++) acc[k] += acc[k + 8];
    for (k = 0; k < 4; k++) acc[k] += acc[k + 4];
    return s + ((acc[0] + acc[2]) + (acc[1] + acc[3]));
}

/* The sigmoid and tanh on arrays for the cells' gates (sr_sigmoid_n, sr_tanh_n), without
   libm's per-call cost: element-wise loops the compiler turns into this copy's vectors, no
   FMA, so every copy gives the same bits. Both take exp(x) for x <= 0 only (exp(-|a|)):
   x is clamped to >= -700 (exp(-700) ~ 1e-304: a sigmoid or tanh that far out is 0 or 1 to
   double precision anyway), k = round(x / ln 2) by the 1.5 * 2^52 trick, r = x - k ln 2 in
   two parts (Cody-Waite: k * ln2_hi is exact), exp(r) by its Taylor polynomial of degree 13
   (|r| <= 0.35: truncation below 1e-17), times 2^k built in the exponent bits. The sigmoid is
   1 / (1 + e) for a >= 0 and e / (1 + e) below, e = exp(-|a|); tanh(|a|) is
   (1 - e) / (1 + e) with e = exp(-2|a|), or for |a| < 1/8 its Taylor polynomial (8 terms,
   no cancellation), with a's sign (tanh(-0) = -0). NaN stays NaN. The same algorithm as the
   shared network's sh_sigmoid_n/sh_tanh_n (the same bits); within a few ulps of libm's. */
static inline double SR_FN(sr_expneg)(double x) {
    const double shift = 6755399441055744.0;            /* 1.5 * 2^52 */
    double t, kd, r, p, s;
    int64_t ti;
    uint64_t sb;
    x = x < -700.0 ? -700.0 : x;
    t = x * 1.4426950408889634 + shift;
    kd = t - shift;
    memcpy(&ti, &t, sizeof ti);
    r = (x - kd * 6.93147180369123816490e-01) - kd * 1.90821492927058770002e-10;
    p = 1.6059043836821613e-10;
    p = p * r + 2.08767569878681e-09;
    p = p * r + 2.505210838544172e-08;
    p = p * r + 2.755731922398589e-07;
    p = p * r + 2.7557319223985893e-06;
    p = p * r + 2.48015873015873e-05;
    p = p * r + 0.0001984126984126984;
    p = p * r + 0.001388888888888889;
    p = p * r + 0.008333333333333333;
    p = p * r + 0.041666666666666664;
    p = p * r + 0.16666666666666666;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* ti - bits(shift) = k; 2^k = (k + 1023) << 52 */
    sb = (uint64_t)(ti - (int64_t)0x4338000000000000LL + 1023) << 52;
    memcpy(&s, &sb, sizeof s);
    return p * s;
}

static void SR_FN(sr_sigmoid_n)(ptrdiff_t n, const double* restrict a, double* restrict y) {
    ptrdiff_t j;
    for (j = 0; j < n; j++) {
        double aj = a[j];
        double e = SR_FN(sr_expneg)(-fabs(aj));
        y[j] = (aj >= 0.0 ? 1.0 : e) / (e + 1.0);
    }
}

static void SR_FN(sr_tanh_n)(ptrdiff_t n, const double* restrict a, double* restrict y) {
    ptrdiff_t j;
    for (j = 0; j < n; j++) {
        double aj = a[j], x = fabs(aj), x2 = x * x, p, e, t;
        e = SR_FN(sr_expneg)(x * -2.0);
        p = -0.0014558343870513183;
        p = p * x2 + 0.003592128036572481;
        p = p * x2 - 0.008863235529902197;
        p = p * x2 + 0.021869488536155203;
        p = p * x2 - 0.05396825396825397;
        p = p * x2 + 0.13333333333333333;
        p = p * x2 - 0.3333333333333333;
        p = p * x2 * x + x;
        t = x < 0.125 ? p : (1.0 - e) / (1.0 + e);
        y[j] = copysign(t, aj);
    }
}

/* The element-wise part of the LSTM's backward through one step (_cells' lstm_backward):
   per j, dct = dc + dh*og*(1 - tc^2); dax = (dct*gg*ig*(1 - ig), dct*c_prev*fg*(1 - fg),
   dct*ig*(1 - gg^2), dh*tc*og*(1 - og)); dc = dct*fg. Element-wise, the same operations in the
   same order per element in every copy (this copy's vectors instead of the baseline's). */
static void SR_FN(sr_lstm_bwd)(ptrdiff_t H, const double* restrict cp,
                               const double* restrict act, const double* restrict ext,
                               const double* restrict dh, double* restrict dc,
                               double* restrict dax) {
    ptrdiff_t j;
    for (j = 0; j < H; j++) {
        double ig = act[j], fg = act[H + j], gg = act[2 * H + j], og = act[3 * H + j];
        double tc = ext[j];
        double dct = dc[j] + ((dh[j] * og) * (1.0 - (tc * tc)));
        dax[j] = ((dct * gg) * ig) * (1.0 - ig);
        dax[H + j] = ((dct * cp[j]) * fg) * (1.0 - fg);
        dax[2 * H + j] = (dct * ig) * (1.0 - (gg * gg));
        dax[3 * H + j] = ((dh[j] * tc) * og) * (1.0 - og);
        dc[j] = dct * fg;
    }
}

/* out[j] = sum over the window steps a (newest first) of D[a*stride + j], each from 0.0 in
   the order a = 0, 1, ..., W-1 (the bias gradients); element-wise over j */
static void SR_FN(sr_sum_steps)(ptrdiff_t W, ptrdiff_t stride, ptrdiff_t n,
                                const double* restrict D, double* restrict out) {
    ptrdiff_t a, j;
    for (j = 0; j < n; j++) out[j] = 0.0;
    for (a = 0; a < W; a++) {
        const double* d = D + a * stride;
        for (j = 0; j < n; j++) out[j] = out[j] + d[j];
    }
}

/* speed12 */
/* The backbone's member weights (Backbone._weights in _backbone.pyx, which documents the
   rule; readable twin: tests/reference_backbone.py). The live members are the runs
   rlo[r] .. rhi[r]-1. Into lov/lod: each matured step's smallest loss and 1 / max(it, 1e-12);
   ra: every live member's relative loss summed over the matured steps (in step order); W:
   each step's weights exp(-(x - min x)) (0 where that exponent is >= cut, 1 where it is 0;
   `ex` is the caller's exp), wsum/fc: their sums and the weighted sums of the forecasts F,
   in member order. Element-wise loops, minima (exact in any order) in eight lanes, the sums
   as scalar chains: the same bits in every copy. */
static void SR_FN(sr_bb_weights)(ptrdiff_t H, ptrdiff_t Km, ptrdiff_t K, long long t, int nr,
                                 const ptrdiff_t* rlo, const ptrdiff_t* rhi, int dead_log,
                                 const double* restrict loss, const double* restrict F,
                                 double* restrict W, double* restrict ra,
                                 double* restrict lov, double* restrict lod,
                                 double* restrict wsum, double* restrict fc, double eta0,
                                 double warm_n, double mix_all, double cut,
                                 double (*ex)(double)) {
    ptrdiff_t j, k, jm, kk;
    int r, q;
    double l8[8];
    jm = (long long)H < t - 1 ? H : (ptrdiff_t)(t - 1);
    if (jm < 0) jm = 0;
    for (j = 0; j < jm; j++) {
        const double* lrow = loss + j * Km;
        double lo;
        for (q = 0; q < 8; q++) l8[q] = INFINITY;
        for (r = 0; r < nr; r++) {
            for (k = rlo[r]; k + 8 <= rhi[r]; k += 8)
                for (q = 0; q < 8; q++) l8[q] = lrow[k + q] < l8[q] ? lrow[k + q] : l8[q];
            for (; k < rhi[r]; k++) l8[0] = lrow[k] < l8[0] ? lrow[k] : l8[0];
        }
        lo = l8[0];
        for (q = 1; q < 8; q++) lo = l8[q] < lo ? l8[q] : lo;
        lov[j] = lo;
        lod[j] = 1.0 / (lo > 1e-12 ? lo : 1e-12);
    }
    if (jm > 0) {
        for (r = 0; r < nr; r++)
            for (k = rlo[r]; k < rhi[r]; k++) ra[k] = 0.0;
        for (j = 0; j < jm; j++) {
            const double* lrow = loss + j * Km;
            const double lo = lov[j], d = lod[j];
            for (r = 0; r < nr; r++)
                for (k = rlo[r]; k < rhi[r]; k++) ra[k] += (lrow[k] - lo) * d;
        }
    }
    for (j = 0; j < H; j++) {
        double* w = W + j * Km;
        const double* lrow = loss + j * Km;
        long long n = t - (j + 1);
        if (dead_log) {                      /* the gaps between the runs */
            kk = 0;
            for (r = 0; r < nr; r++) {
                memset(w + kk, 0, (size_t)(rlo[r] - kk) * sizeof(double));
                kk = rhi[r];
            }
            memset(w + kk, 0, (size_t)(K - kk) * sizeof(double));
        }
        if (n <= 0) {
            for (r = 0; r < nr; r++)
                for (k = rlo[r]; k < rhi[r]; k++) w[k] = 1.0;
        } else {
            const double lo = lov[j];
            const double eta = ((eta0 * (double)n) / ((double)n + warm_n)) / (1.0 + mix_all);
            const double d = eta * lod[j];
            const double e1 = eta * (mix_all / (double)jm);
            double xmin;
            for (q = 0; q < 8; q++) l8[q] = INFINITY;
            for (r = 0; r < nr; r++) {
                for (k = rlo[r]; k + 8 <= rhi[r]; k += 8)
                    for (q = 0; q < 8; q++) {
                        const double x = (lrow[k + q] - lo) * d + ra[k + q] * e1;
                        w[k + q] = x;
                        l8[q] = x < l8[q] ? x : l8[q];
                    }
                for (; k < rhi[r]; k++) {
                    const double x = (lrow[k] - lo) * d + ra[k] * e1;
                    w[k] = x;
                    l8[0] = x < l8[0] ? x : l8[0];
                }
            }
            xmin = l8[0];
            for (q = 1; q < 8; q++) xmin = l8[q] < xmin ? l8[q] : xmin;
            for (r = 0; r < nr; r++)
                for (k = rlo[r]; k < rhi[r]; k++) {
                    const double x = w[k] - xmin;
                    if (!(x < cut)) w[k] = 0.0;       /* below 4e-18 of the best member */
                    else if (x == 0.0) w[k] = 1.0;    /* exp(-0) exactly: the best member(s) */
                    else w[k] = ex(-x);
                }
        }
    }
    /* sums over the live members in member order, four steps at a time (eight chains) */
    j = 0;
    for (; j + 4 <= H; j += 4) {
        const double* w0 = W + j * Km;
        const double* w1 = w0 + Km;
        const double* w2 = w1 + Km;
        const double* w3 = w2 + Km;
        const double* f0 = F + j * Km;
        const double* f1 = f0 + Km;
        const double* f2 = f1 + Km;
        const double* f3 = f2 + Km;
        double t0 = 0.0, t1 = 0.0, t2 = 0.0, t3 = 0.0, a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
        for (r = 0; r < nr; r++)
            for (k = rlo[r]; k < rhi[r]; k++) {
                t0 += w0[k]; a0 += w0[k] * f0[k];
                t1 += w1[k]; a1 += w1[k] * f1[k];
                t2 += w2[k]; a2 += w2[k] * f2[k];
                t3 += w3[k]; a3 += w3[k] * f3[k];
            }
        wsum[j] = t0; wsum[j + 1] = t1; wsum[j + 2] = t2; wsum[j + 3] = t3;
        fc[j] = a0; fc[j + 1] = a1; fc[j + 2] = a2; fc[j + 3] = a3;
    }
    for (; j < H; j++) {
        const double* w0 = W + j * Km;
        const double* f0 = F + j * Km;
        double t0 = 0.0, a0 = 0.0;
        for (r = 0; r < nr; r++)
            for (k = rlo[r]; k < rhi[r]; k++) { t0 += w0[k]; a0 += w0[k] * f0[k]; }
        wsum[j] = t0;
        fc[j] = a0;
    }
}

/* speed12: the backbone's element-wise loops (the same operations per element as the
   Cython loops they replace, this copy's vectors) */
/* the matured losses of one run of members: lrow[k] = |row[k] - y| at a step's first
   loss (first != 0), else dec lrow[k] + dec1 |row[k] - y| */
static void SR_FN(sr_bb_loss)(ptrdiff_t n, double* restrict lrow, const double* restrict row,
                              double y, double dec, double dec1, int first) {
    ptrdiff_t k;
    if (first)
        for (k = 0; k < n; k++) lrow[k] = fabs(row[k] - y);
    else
        for (k = 0; k < n; k++) lrow[k] = dec * lrow[k] + dec1 * fabs(row[k] - y);
}

/* the detector's autocorrelations: dr[i] = (dC[i] / (dn - lagd[i]) - mu2) / var */
static void SR_FN(sr_bb_acf)(ptrdiff_t n, const double* restrict dC, const double* restrict lagd,
                             double dn, double mu2, double var, double* restrict dr) {
    ptrdiff_t i;
    for (i = 0; i < n; i++) dr[i] = (dC[i] / (dn - lagd[i]) - mu2) / var;
}

/* the detector's lag products: dC[i] += d * db[i] (db: the ring read backwards, given as
   its reversed run) */
static void SR_FN(sr_bb_lagprod)(ptrdiff_t n, double* restrict dC, double d,
                                 const double* restrict db, ptrdiff_t last) {
    ptrdiff_t i;
    for (i = 0; i < n; i++) dC[i] += d * db[last - i];
}
