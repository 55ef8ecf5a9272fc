"""The per-partition multi-series forecasting model at C level: ``GlobalCore``.

One object holds everything a partition's many series need (issue 12): a ``SharedNetwork``
(shared weights, per-key recurrent slots) and, per key, one preallocated row of a slot array
(no Python object per key) with a light exponential-smoothing backbone, the history the
baselines need, the pending forecasts, and the key's combination errors. Shared by all keys
(one per core): the network, the running mean/variance of the user features, pooled
combination priors and the conformal state (scores normalised by each key's scale). The
readable twin is ``tests/reference_global.py``; the single-series stack it imitates is
``_backbone.pyx`` / ``_combine.pyx`` / ``_forecast.pyx``.

Time of a key: ``n`` values seen since its reset, y_0 .. y_{n-1}. "Origin s" is the key's
state right after y_s; a forecast of step j from origin s is a forecast of y_{s+j}.

Backbone (additive damped-trend Holt-Winters of period m with a bank of K level/trend
members sharing the key's m season indices; z = y; members alpha x beta over ``hw_alphas``
(0.1, 0.3, 0.7) with a period, (0.1, 0.3, 0.5) without one x ``hw_betas`` (0, 0.2),
alpha-major, K = 6, then the adaptive member (below), K + 1 in all; phi 0.98, gamma 0.15,
``hw_gamma_start`` g0 0.5):
    f_s(j) = l + phacc_j b + S[(s + j) mod m]          phacc_j = sum_{i=1..j} phi^i (S: m > 0)
    (l, b): the combined level and trend (what the origin ring keeps), sum_k w_k (l_k, b_k)
    y_0:                  l = l_k = y_0, b = b_k = 0, S = 0, err_k = 0
    y_t, t >= 1:          e = y_t - f_{t-1}(1)
       first cycle (m > 0 and t < m):  S[t] = y_t - l          (level, trend, members kept)
       else:  S[t mod m] += max(gamma, g0 / c) e  (c = t // m, the cycle: the early cycles
              average the first cycles' indices, whose first fill carries the trend's ramp);
              then per member k, e_k = y_t - (l_k + phi b_k + S_old):
              x_k = (1 - MS_MIX) |e_k| + MS_MIX a_k   (MS_MIX 0.5; x_k = |e_k| while no stored
                       origin is in reach), a_k = the mean over the stored origins s with
                       1 <= t - s <= H (ascending s) of |y_t - (l_k(s) + phacc_{t-s} b_k(s) +
                       the index of y_t's phase as it was at s)|: the member's error over the
                       steps (a member that only follows the last values is caught by its
                       longer-range errors); stored origins: every d-th (s mod d = 0, s >= t0),
                       the last Q = min(H, MQ) kept (MQ 3, d = ceil(H / Q)), 2 K values each
              err_k <- x_k at t = t0 (t0 = m, or 1 when m = 0), else
                       BANK_DECAY err_k + (1 - BANK_DECAY) x_k (0.97)
              l_k <- l_k + phi b_k + alpha_k e_k;  b_k <- phi b_k + alpha_k beta_k e_k
              at t mod d = 0 the ring keeps every member's new (l_k, b_k)
              w_k = exp(-hw_eta (err_k - min err) / max(min err, 1e-12)) (0 when >= 40),
              normalised; (l, b) <- sum_k w_k (l_k, b_k)   (hw_eta 20)
       The adaptive member (the last, k = K; state u, v, dl, db of 2 each): its
       (alpha, beta) = AD_LO + (AD_HI - AD_LO) / (1 + exp(-u)) (0.01, 0.99), u from (0.3, 0.1)
       at y_0 with a period, from (0.95, 0.2) without one (it takes the place of the naive
       with a drift, alpha 1 beta 0.2, that the grid had: a fixed alpha-1 member kept the
       weight on macro.cpi where the learned constants forecast better, but on many short
       series, ChickWeights' 12 values a chick, the fast start is what counts). At each of its updates, before it (e = its one-step error e_K above, phi the
       backbone's, shared season indices held fixed), for i = alpha, beta:
              de_i = -(dl_i + phi db_i);  g_i = e de_i = d(e^2/2)/dtheta_i
              dl_i <- dl_i + phi db_i + alpha de_i (+ e for alpha)
              db_i <- phi db_i + alpha beta de_i (+ beta e for alpha, + alpha e for beta)
       then its level/trend/error update with the old (alpha, beta); then
              gu_i = g_i (AD_HI - AD_LO) s (1 - s), s = 1 / (1 + exp(-u_i));  when gu_i^2 < 1e300:
              v_i <- 0.99 v_i + 0.01 gu_i^2;  u_i <- clip(u_i - 0.02 gu_i / sqrt(v_i), +-30)
       (acc11's per-series adaptive members on the global row: no own season, so 8 values
       more than a fixed member; the log member's bank has none: with a season it cost
       Airline 3 %, employment gained nothing; without one the log member is no expert)
       sc <- sc + r (min(|e|, 4 scale) - sc), r = max(1/t', 0.05)  (EW scale of the one-step
                             errors, robust: |e| enters clipped to 4 x the scale once t' > 2;
                             t' = t, or t - m + 2 from the first value after the first cycle:
                             the first cycle's errors, made before the season indices exist,
                             keep the weight of one value, so they do not inflate a young
                             key's scale for the next cycles)
    scale = max(sc, 1e-8 (1 + |l|))                          (> 0; every state value clamped
                                                              to +-1e150, +-1e36 for float32)
A season index changes only when its own phase arrives, so the backbone's forecast of step
j made at origin s is recomputed exactly at y_{s+j} from (l_s, b_s) (a ring of H origins) and
the index of y_{s+j}'s phase as it was at s: the current one for j <= m, else one of the
ceil(H/m) - 1 older levels kept per phase (the season history).
The log member: the same rules (first value, first cycle, its own bank of members) on
z = log y while every value is > 0, with its own constants: members ``hw_log_alphas``
(0.05, 0.15, 0.3) x ``hw_log_betas`` (0.03, 0.1) (slower levels, always a trend) and season
smoothing ``hw_log_gamma`` 0.5 (a multiplicative season that moves: Airline, UKgas);
forecast exp(clamp(z_s(j), -700, 690)); the first
value <= 0 retires it for good (a flag in the row); kept and recomputed like the backbone.

Experts, from origin s for step j (E = 5):
    network  f_s(j) + scale_s * c_s(min(j, n_out))     c: the network's output, clipped to +-clip
    backbone f_s(j);  last value y_s;  seasonal naive y_{s+j-m ceil(j/m)} (y_s before it exists;
    not eligible when m = 0);  log member (eligible while every value is > 0 and m > 0: without
    a season it is the backbone's level and trend on log y, and on nile it took 30 % of the
    weight while scoring worst; scored while every value is > 0)
The network (n_out = min(H, k2) outputs; steps beyond n_out use the last) reads, at origin s,
u = clip10([(y_s - l)/scale, S[(s+1) mod m]/scale, b/scale, sin, cos of 2 pi ((s+1) mod m)/m])
followed by the standardised user features of y_{s+1} (missing: 0); it is trained with
``step_multi`` delayed targets: output i of the step at origin s has the target
clip((y_{s+i+1} - f_s(i+1)) / scale_s) (NaN while s < WARM = 2, the scale not yet formed).

Combination per key and step j: L[j, e] of |y - f_e| (in y's units, so a key's experts rank
as their MAE ranks them; read as L / scale at the weighting) over the origins s >= WARM, a
running mean at first, then EW: L <- rho L + (1 - rho) |y - f_e| with rho = min(0.98,
c / (c + 1)), c the key's earlier scorings of step j (the first, rough forecasts do not
steer the weights for long; the season gate's long-run errors below do not: EW 0.999 from
the first, so an early outage cannot hold the gate open); pooled P[j, e] EW (0.999) of |y - f_e| / scale_s over every key's scorings
(counted per expert); with n_j = the key's scorings of step j, the key's score is
(n_j L / scale + 10 P) / (n_j + 10) (a young key uses the pooled errors; an expert neither
scored is left out); while the season gate (below) is closed (m > 0; no margin when m = 0:
there the backbones' level and trend are the model) every expert but
the last value then counts 25 % more (MARGIN: where no season shows, the last value is the
safe default and the others must beat it clearly: on a jumpy series the expert that just
led is the one about to miss); and where, besides, the last value has proven itself at
step j for this key (n_j >= 50 and its own L[j, last] <= 1.05 x the best other known
expert's own L[j, e]) they count (1 + (j - 1)/(H - 1)) times more again (PROVEN_MARGIN:
nothing at step 1, twice at step H; the long steps are where an expert that led on a calm
stretch misses most when the series jumps); rel_j = (score - min) / max(min, 1e-12), for
j > 1 blended with step 1's (known experts; 0 for one step 1 does not know):
rel = (rel_j + MIX1 rel_1) / (1 + MIX1) (MIX1 0.25: the long steps' errors are few and
noisy on a short series; 0.5 widened the demo's 6-step intervals after its outage);
w = exp(-10 (rel - min rel)) (0 when >= 40), normalised over the eligible experts (equal
weights before any scoring). Season gate: the seasonal naive is eligible only while its long-run
error (EW 0.999, in y's units, of the scorings min(|y - f| / scale_s, 8) scale_s, kept for
last value and seasonal naive at step g = min(ceil(m/2), H) only: 2 per row) is below
0.8 x the last value's (the pooled errors while the key has not scored step g; open before
any). The clip at 8 scales keeps one outage from opening the gate for good: on WaterFlow a
12-hour drop and recovery made the seasonal naive, which replays it a day later, look
better than the last value for the rest of the series. Combined c = sum w f / sum w, stored as
(c - f_s(j)) / scale_s: in float32 slots as IEEE float16 (rounded to nearest even from the
double, clamped to +-65504; the row's last H (H + 1) / 2 values, kept in a uint16 array: only
the conformal scores and the anomaly read them, and their 2^-11 relative precision moves an
interval by ~1e-3 of its width; the bench's sMAPE and coverage do not move in 3 digits).

Conformal (shared, per age group g of the origin and step j, levels 0.05/0.1/0.2): the
age group of origin s is 0 while s < m (the first cycle: no season indices yet, the scale
made of season-less errors), 1 while s < m + 20 (the scale forming; AGE_SPAN), else 2. Row
r = g H + j - 1 keeps the scores of its origins s >= WARM, the last ``window`` sorted, and its
ACI levels. A score is |y - c_s(j)| / max(scale_s, scale / SHOCK) (scale: the key's when y is
scored, before y enters; SHOCK 2: a miss made after the scale has more than doubled is not
counted twice, once over the old small scale and again in the grown scale that multiplies the
quantile; 1 cost employment coverage), entering its row winsorised at WINSOR = 6 x the row's
median (the ((n - 1) // 2)-th smallest) once the row holds WINSOR_N = 20 and the median is > 0:
one key's outage fills every step's row at once, and in a young row such a burst would be
the 90 % quantile for the whole window (WaterFlow demo: a 12-value outage of a series with a
one-step scale of 0.4 gave scores of 150-310 and 24-step intervals ~900 wide for ~100 values;
a formed row's 90 % quantile is 2-5 medians, so the clip rarely touches it). The ACI miss
below is the score before the clip; half-width q = the ceil((1 - a)(n + 1))-th smallest
(clipped to 1..n; a <= 0: 1.5 x the largest; fewer than 5 scores: none), a the row's ACI
level alpha_t: a += gamma (alpha - [score > q(a)]) with q from the row's scores before this
one (the shared quantile stands in for the one issued), clamped to [-1, 2] (gamma
``aci_gamma`` 0.002: every key's scoring moves it, so the pooled level moves about
gamma x keys per time step); other alphas are interpolated as in ``_combine.Conformal``.
The row that gives group g's interval at step j: its own while it holds MIN_FALL = 50 scores
(the window if smaller); else the nearest older group's that does; else its own from 5
scores; else the nearest younger group's with 50, borrowed at its widest (level 0: 1.5 x its
largest; a younger age's scores are not this age's: first-cycle scores are normalised by a
scale still inflated by season-less errors); else none. Interval = c +- scale * q. Anomaly
score of y_t: 1 - (1 + #{scores >= its score}) / (1 + n) among the step-1 scores of the row
its origin's interval uses, before its own score enters.

``step`` for B distinct keys (one nogil call, no allocation), in this order:
1. every row loaded; features standardised with the shared statistics of the call's start;
2. keys with n >= 1: input of origin n-1 and the delayed targets; one ``step_multi`` (or
   ``_advance`` for keys that do not learn on this value: learn_every); a refused network
   step resets those keys' network slots (their window would lose its alignment) and their
   corrections are 0 (status 2);
3. per key in batch order: the network's outputs become the pending corrections of origin
   n-1, the combined forecasts of origin n-1 are issued (pred = step 1), y is scored against
   every pending forecast (anomaly first, then the combination errors, pooled priors, ACI
   levels and conformal scores), the backbone and the history take y;
4. the feature statistics take the batch's features (Welford, row order);
5. one batched ``predict`` from the new states: fc, lo, hi of origin n.
Per-key rows are float32 or float64; arithmetic is float64 from the stored values and every
value is rounded where it is stored, so the recomputed forecasts equal the issued ones.
"""
import math

import numpy as np

cimport numpy as cnp
from libc.math cimport INFINITY, NAN, ceil, cos, fabs, isfinite, isinf, isnan, log, sin, sqrt
from libc.string cimport memcpy, memmove, memset

from streamrnn._core._shared cimport SharedNetwork
from streamrnn._core._optim cimport Optimizer
from streamrnn._core._combine cimport level_at, sorted_quantile
from streamrnn._core._shared import _dtype_arg
from streamrnn._core._network import _CELL_NAMES
from streamrnn._core._optim import _array, _counter, _number

cnp.import_array()

cdef extern from *:
    """
    #if defined(__clang__)
    #pragma STDC FP_CONTRACT OFF
    #elif defined(__GNUC__)
    #pragma GCC optimize ("fp-contract=off")
    #endif
    #include <stddef.h>
    /* branch-free binary searches over a sorted run v[0..n-1] (the conditional moves keep
       the pooled windows' searches free of mispredictions) */
    static ptrdiff_t gc_upper(const double* v, ptrdiff_t n, double s) {   /* first v > s */
        const double* base = v;
        if (n <= 0) return 0;
        while (n > 1) {
            ptrdiff_t half = n / 2;
            base = (base[half - 1] <= s) ? base + half : base;
            n -= half;
        }
        return (base - v) + (base[0] <= s);
    }
    static ptrdiff_t gc_lower(const double* v, ptrdiff_t n, double s) {   /* first v >= s */
        const double* base = v;
        if (n <= 0) return 0;
        while (n > 1) {
            ptrdiff_t half = n / 2;
            base = (base[half - 1] < s) ? base + half : base;
            n -= half;
        }
        return (base - v) + (base[0] < s);
    }
    /* IEEE binary16 from a double, rounded to nearest even directly from the double's bits
       (as numpy's float16 conversion), and back (exact) */
    #include <stdint.h>
    #include <string.h>
    static unsigned short gc_d2h(double d) {
        uint64_t x, a, mant, rem, half;
        unsigned short sign;
        int e, sh;
        uint32_t h;
        memcpy(&x, &d, 8);
        sign = (unsigned short)((x >> 48) & 0x8000u);
        a = x & 0x7fffffffffffffffULL;
        if (a >= 0x7ff0000000000000ULL)
            return (unsigned short)(sign | (a == 0x7ff0000000000000ULL ? 0x7c00u : 0x7e00u));
        e = (int)(a >> 52) - 1023;
        if (e > 15)
            return (unsigned short)(sign | 0x7c00u);
        if (e >= -14) {
            mant = a & 0xfffffffffffffULL;
            h = ((uint32_t)(e + 15) << 10) | (uint32_t)(mant >> 42);
            rem = mant & ((1ULL << 42) - 1);
            half = 1ULL << 41;
            if (rem > half || (rem == half && (h & 1u)))
                h += 1;      /* a carry into the exponent is right (up to inf) */
            return (unsigned short)(sign | h);
        }
        if (e < -25)
            return sign;
        mant = (a & 0xfffffffffffffULL) | (1ULL << 52);
        sh = 28 - e;         /* units of 2^-24 */
        h = (uint32_t)(mant >> sh);
        rem = mant & ((1ULL << sh) - 1);
        half = 1ULL << (sh - 1);
        if (rem > half || (rem == half && (h & 1u)))
            h += 1;
        return (unsigned short)(sign | h);
    }
    static double gc_h2d(unsigned short h) {
        unsigned int e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
        uint64_t p2;
        double v;
        if (e == 0) {
            v = (double)m * 5.9604644775390625e-08;      /* m 2^-24, exact */
        } else if (e == 31) {
            v = m ? NAN : INFINITY;
        } else {
            p2 = (uint64_t)(e + 998u) << 52;             /* 2^(e - 25) */
            memcpy(&v, &p2, 8);
            v = v * (double)(m | 0x400u);                /* exact */
        }
        return (h & 0x8000u) ? -v : v;
    }
    """
    unsigned short gc_d2h(double d) noexcept nogil
    double gc_h2d(unsigned short h) noexcept nogil
    Py_ssize_t gc_upper(const double* v, Py_ssize_t n, double s) noexcept nogil
    Py_ssize_t gc_lower(const double* v, Py_ssize_t n, double s) noexcept nogil

cdef extern from "_kernels.h":
    # exp without glibc's error-handling wrapper (sr_exp_nw in _kernels.h: the same bits for
    # every argument used here: the soft-min's (-40, 0] and the log member's [-700, 690])
    double exp "sr_exp_nw" (double x) noexcept nogil
    void _exp_init "sr_exp_nw_init" () noexcept nogil

_exp_init()

# ---------------------------------------------------------------- constants
cdef enum:
    AGES = 3        # conformal age groups of an origin: first cycle, scale forming, formed
    E = 5           # experts
    N_LEAD = 5      # network inputs the core computes
    NETWORK = 0
    BACKBONE = 1
    LAST = 2
    SNAIVE = 3
    LOGBB = 4
    AD_N = 8        # an adaptive member's state: u (2), v (2), dl/dtheta (2), db/dtheta (2)
EXPERTS = ("network", "backbone", "last value", "seasonal naive", "log backbone")
cdef double ZMAX = 690.0            # log-space forecasts are clamped before exp
cdef double ZMIN = -700.0
N_LEAD_INPUTS = N_LEAD
AGE_GROUPS = AGES
cdef long long WARM = 2             # origins s >= WARM are scored (the scale has 2 errors)
WARM_ORIGINS = WARM
cdef double DECAY = 0.98            # a key's EW combination errors (a running mean at first)
cdef double BANK_DECAY = 0.97       # a member's EW one-step errors
cdef int MQ = 3                     # members' (level, trend) kept at every d-th origin, the last
                                    # Q = min(H, MQ) (d = ceil(H / Q)): their errors over the steps
cdef double HALF_MAX = 65504.0      # float32 slots keep the pending combined offsets as float16
HW_ALPHAS = (0.1, 0.3, 0.7)         # the members' level constants with a period ...
HW_ALPHAS_FLAT = (0.1, 0.3, 0.5)    # ... and without one (the adaptive member covers faster levels)
cdef double MS_MIX = 0.5            # a member's error: (1 - MS_MIX) one-step + MS_MIX over the steps
cdef double AD_LO = 0.01            # the adaptive member's (alpha, beta) = AD_LO + (AD_HI - AD_LO) sigmoid(u)
cdef double AD_HI = 0.99
cdef double AD_LR = 0.02            # u_i -= AD_LR g_i / sqrt(v_i)
cdef double AD_V = 0.99             # v_i: EW mean of g_i^2
cdef double AD_UCLIP = 30.0
cdef double AD_A0 = 0.3             # the start (alpha, beta) with a period (acc11's) ...
cdef double AD_B0 = 0.1
cdef double AD_A0_FLAT = 0.95       # ... and without one: near the naive with a drift (on many
cdef double AD_B0_FLAT = 0.2        # short series, ChickWeights, the fast start is what counts)
cdef double MIX1 = 0.25             # a combination score: (rel_j + MIX1 rel_1) / (1 + MIX1)
cdef double POOL_DECAY = 0.999      # the pooled EW errors
cdef double N0 = 10.0               # prior weight of the pooled errors
cdef double ETA = 10.0              # soft-min sharpness
cdef double LO_FLOOR = 1e-12
cdef double CUT = 40.0
cdef double VMAX = 1e30             # normalised errors and scores are clamped here
cdef double INPUT_CLIP = 10.0
cdef double SCALE_RATE = 0.05
cdef double SCALE_FLOOR = 1e-8
cdef double SCALE_CLIP = 4.0        # once formed, the scale takes |e| clipped to 4 x itself
cdef double LONG_DECAY = 0.999      # a key's long-run EW errors
cdef double MARGIN = 0.25            # the other experts' errors count 25 % more than the last value's
cdef double GATE = 0.8              # the season gate's margin
cdef double GATE_CLIP = 8.0         # a scoring enters the gate's long-run errors clipped to 8 scales
cdef double PROVEN_N = 50.0         # scorings of step j before the last value can prove itself there
cdef double PROVEN_TOL = 1.05       # ... its own error within 5 % of the best other expert's
cdef double PROVEN_MARGIN = 1.0     # ... then the others count up to 100 % more at step H
cdef long long MIN_SCORES = 5
cdef long long AGE_SPAN = 20        # values after the first cycle before a key's scale is formed
cdef long long MIN_FALL = 50        # scores an age group needs to give its own intervals
cdef double SHOCK = 2.0             # a score over max(scale_s, current scale / SHOCK)
cdef double WINSOR = 6.0            # a score enters a row clipped to 6 x the row's median...
cdef long long WINSOR_N = 20        # ... once the row holds 20 scores (and the median is > 0)
cdef double AT_LO = -1.0
cdef double AT_HI = 2.0
cdef long long COUNT_LIMIT = 1 << 62
cdef double FEAT_LIMIT = 1e100
cdef double PI = 3.14159265358979323846

LEARNED = 1
NET_REFUSED = 2
BAD_INPUT = -1
MAX_HORIZON = 1000
MAX_PERIOD = 10000
MAX_FEATURES = 4096
MAX_WINDOW = 100000
MAX_ROW_BYTES = 2 ** 38


cdef inline double _clipv(double v, double c) noexcept nogil:
    if v > c:
        return c
    if v < -c:
        return -c
    return v


cdef inline void* _ptr(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline void* _fast(object a, int typenum, int ndim, Py_ssize_t d0, Py_ssize_t d1,
                        bint writable):
    """Data pointer of an exact ndarray of this type, ndim and shape (d0 < 0: any length),
    C-contiguous, aligned, native (writable if asked), else NULL (then the Python checks
    accept or refuse it with a message)."""
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


def _int(value, name, lo, hi):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def _flt(value, name, lo, hi, lo_open=False, hi_open=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    f = float(value)
    if not (f == f and (f > lo if lo_open else f >= lo) and (f < hi if hi_open else f <= hi)):
        raise ValueError(f"{name} must be in {'(' if lo_open else '['}{lo}, {hi}"
                         f"{')' if hi_open else ']'}, got {f}")
    return f


def _farg(value, name, shape, writable=False):
    """``value`` as it is: a C-contiguous aligned native float64 ndarray of ``shape``."""
    if type(value) is not np.ndarray:
        raise TypeError(f"{name} must be a float64 ndarray, got {type(value).__name__}")
    if value.dtype != np.float64:
        raise TypeError(f"{name} must have dtype float64, got {value.dtype}")
    if value.shape != tuple(shape):
        raise ValueError(f"{name} has shape {value.shape}, expected {tuple(shape)}")
    if not (value.flags.c_contiguous and value.flags.aligned) or value.dtype.byteorder == ">":
        raise ValueError(f"{name} must be C-contiguous, aligned and native-endian")
    if writable and not value.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return value


def _fresh(v):
    a = np.empty(v.shape, dtype=np.int64 if v.dtype.kind == "i" else np.float64)
    a[...] = v
    return a


def row_layout(horizon, period, k2, members=6):
    """Per-key row layout: ``(W, R, LS, n_out, parts, netl)``; ``parts`` maps each field to
    (offset, length) in the row; LS older season levels are kept; ``members`` level/trend
    members per backbone (3 values each, then the ring of Q = min(H, MQ) stored origins' 2
    per member); "comb" is last (float32 slots keep it as float16). Pure Python ints."""
    H, m = horizon, period
    n_out = min(H, k2)
    R = (m * ((H + m - 1) // m)) if m > 0 else H
    if R < m:
        R = m
    LS = (H + m - 1) // m - 1 if m > 0 else 0
    netl = [i + 1 for i in range(n_out - 1)] + [H]
    parts, off = {}, 0
    K = members
    Q = min(H, MQ)
    K1 = K + 1                      # the backbone's fixed members and its adaptive one
    for name, n in (("y", R), ("season", m), ("hw", 3), ("bank", 3 * K1 + 2 * K1 * Q),
                    ("ad", AD_N), ("origin", 3 * H), ("shist", LS * m), ("zhw", 3),
                    ("zbank", 3 * K + 2 * K * Q),
                    ("zseason", m), ("zshist", LS * m), ("zorigin", 2 * H), ("net", sum(netl)),
                    ("err", H * E + 2), ("comb", H * (H + 1) // 2)):
        parts[name] = (off, n)
        off += n
    return off, R, LS, n_out, parts, netl


_CONFIG_KEYS = ("cell", "hidden_size", "num_layers", "k2", "horizon", "period", "n_x",
                "capacity", "max_batch", "slot_dtype", "learn_every", "seed", "loss", "clip",
                "hw_alphas", "hw_betas", "hw_phi", "hw_gamma", "hw_eta", "window", "aci_gamma",
                "alphas", "hw_log_alphas", "hw_log_betas", "hw_log_gamma", "hw_gamma_start")
_SHARED_KEYS = frozenset(("t", "conf_raw", "conf_sorted", "conf_count", "conf_pos", "conf_at",
                          "pool", "pool_n", "feat_n", "feat_mean", "feat_m2"))
_STATE_KEYS = frozenset(("net", "shared", "rows", "half", "count"))


cdef inline double _gam(double g, double g0, long long n, Py_ssize_t m) noexcept nogil:
    """The season smoothing at value n (m > 0, n >= m): max(g, g0 / c) in cycle c = n // m."""
    cdef double c = <double>(n // m)
    return g if g0 / c <= g else g0 / c


cdef class GlobalCore:
    """Many series, one network: the per-partition model (see the module docstring).

    ``GlobalCore(cell, hidden_size, num_layers, k2, horizon, period, n_x, capacity,
    max_batch, slot_dtype="float32", learn_every=1, seed=0, optimizer=None, *,
    loss=SQUARED, clip=6.0, hw_alphas=None, hw_betas=(0.0, 0.2), hw_phi=0.98,
    hw_gamma=0.15, hw_eta=20.0, window=512, aci_gamma=0.002, alphas=(0.05, 0.1, 0.2),
    hw_log_alphas=(0.05, 0.15, 0.3), hw_log_betas=(0.03, 0.1), hw_log_gamma=0.5,
    hw_gamma_start=0.5)``; ``hw_alphas`` None: (0.1, 0.3, 0.7) with a period, (0.1, 0.3,
    0.5) without (HW_ALPHAS, HW_ALPHAS_FLAT); the log member's tuples as long as ``hw_alphas`` / ``hw_betas``
    (None: the same as those; ``hw_log_gamma`` None: ``hw_gamma``);
    ``optimizer`` a ``streamrnn._core.Optimizer`` (None: Adam, lr 1e-3).
    """

    def __init__(self, cell, hidden_size, num_layers, k2, horizon, period, n_x, capacity,
                 max_batch, slot_dtype="float32", learn_every=1, seed=0, optimizer=None, *,
                 loss=0, clip=6.0, hw_alphas=None, hw_betas=(0.0, 0.2), hw_phi=0.98,
                 hw_gamma=0.15, hw_eta=20.0, window=512, aci_gamma=0.002, alphas=(0.05, 0.1, 0.2),
                 hw_log_alphas=(0.05, 0.15, 0.3), hw_log_betas=(0.03, 0.1), hw_log_gamma=0.5,
                 hw_gamma_start=0.5):
        from streamrnn._core import ADAM, HUBER, ABSOLUTE, SQUARED, initialize
        self.n_in = 0  # refuses to run until the last line
        H = _int(horizon, "horizon", 1, MAX_HORIZON)
        m = _int(period, "period", 0, MAX_PERIOD)
        if m == 1:
            raise ValueError("period must be 0 (none) or >= 2, got 1")
        nx = _int(n_x, "n_x", 0, MAX_FEATURES)
        k2 = _int(k2, "k2", 1, 10000)
        cap = _int(capacity, "capacity", 1, 2 ** 40)
        mb = _int(max_batch, "max_batch", 1, 1 << 20)
        le = _int(learn_every, "learn_every", 1, 1 << 30)
        seed = _int(seed, "seed", 0, 2 ** 63 - 1)
        sd = _dtype_arg(slot_dtype)
        if isinstance(loss, (bool, np.bool_)) or loss not in (SQUARED, ABSOLUTE, HUBER):
            raise ValueError(f"loss must be a regression loss code (SQUARED, ABSOLUTE, HUBER), "
                             f"got {loss!r}")
        clip = _flt(clip, "clip", 0.0, 1e6, lo_open=True)
        if hw_alphas is None:
            hw_alphas = HW_ALPHAS if m > 0 else HW_ALPHAS_FLAT
        for v, name in ((hw_alphas, "hw_alphas"), (hw_betas, "hw_betas")):
            if not isinstance(v, (tuple, list)) or not 1 <= len(v) <= 8:
                raise TypeError(f"{name} must be a tuple of 1 to 8 numbers")
        a_ = tuple(_flt(a, "an hw_alphas value", 0.0, 1.0, lo_open=True) for a in hw_alphas)
        b_ = tuple(_flt(b, "an hw_betas value", 0.0, 1.0) for b in hw_betas)
        eta_ = _flt(hw_eta, "hw_eta", 0.0, 1000.0)
        if hw_log_betas is None:
            zb_ = b_
        else:
            if not isinstance(hw_log_betas, (tuple, list)) or len(hw_log_betas) != len(b_):
                raise TypeError("hw_log_betas must be None or a tuple as long as hw_betas")
            zb_ = tuple(_flt(b, "an hw_log_betas value", 0.0, 1.0) for b in hw_log_betas)
        if hw_log_alphas is None:
            za_ = a_
        else:
            if not isinstance(hw_log_alphas, (tuple, list)) or len(hw_log_alphas) != len(a_):
                raise TypeError("hw_log_alphas must be None or a tuple as long as hw_alphas")
            za_ = tuple(_flt(a, "an hw_log_alphas value", 0.0, 1.0, lo_open=True)
                        for a in hw_log_alphas)
        K = len(a_) * len(b_)
        p_ = _flt(hw_phi, "hw_phi", 0.0, 1.0)
        g_ = _flt(hw_gamma, "hw_gamma", 0.0, 1.0)
        zg_ = g_ if hw_log_gamma is None else _flt(hw_log_gamma, "hw_log_gamma", 0.0, 1.0)
        gs_ = _flt(hw_gamma_start, "hw_gamma_start", 0.0, 1.0)
        win = _int(window, "window", MIN_SCORES, MAX_WINDOW)
        ag = _flt(aci_gamma, "aci_gamma", 0.0, 1.0)
        if not isinstance(alphas, (tuple, list)) or not 1 <= len(alphas) <= 16:
            raise TypeError("alphas must be a tuple of 1 to 16 levels in (0, 1)")
        al = tuple(_flt(a, "an alpha", 0.0, 1.0, True, True) for a in alphas)
        if any(al[i] >= al[i + 1] for i in range(len(al) - 1)):
            raise ValueError("alphas must be increasing")
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a streamrnn._core.Optimizer, got "
                            f"{type(optimizer).__name__}")
        Wrow, R, LS, n_out, parts, netl = row_layout(H, m, k2, K)
        isz = 4 if sd == "float32" else 8
        Wh = parts["comb"][1] if sd == "float32" else 0   # float16 values per row
        if cap * ((Wrow - Wh) * isz + 2 * Wh + 8) > MAX_ROW_BYTES:
            raise ValueError(f"capacity {cap} x {(Wrow - Wh) * isz + 2 * Wh + 8} bytes per key is beyond "
                             f"{MAX_ROW_BYTES} bytes")
        if mb * (Wrow + 2 * (N_LEAD + nx) + 3 * H + nx) * 8 > 2 ** 31:
            raise ValueError("max_batch is too large for the batch scratch")
        net = SharedNetwork(cell, N_LEAD + nx, hidden_size, num_layers, n_out, k2, loss,
                            capacity=cap, max_batch=mb, slot_dtype=sd)
        initialize(net, np.random.default_rng(seed))
        net.set_optimizer(optimizer if optimizer is not None else Optimizer(ADAM, 1e-3))
        self._config = dict(cell=int(cell), hidden_size=int(hidden_size),
                            num_layers=int(num_layers), k2=k2, horizon=H, period=m, n_x=nx,
                            capacity=cap, max_batch=mb, slot_dtype=sd, learn_every=le,
                            seed=seed, loss=int(loss), clip=clip, hw_alphas=a_, hw_betas=b_,
                            hw_phi=p_, hw_gamma=g_, hw_eta=eta_, window=win, aci_gamma=ag,
                            alphas=al, hw_log_alphas=za_, hw_log_betas=zb_,
                            hw_log_gamma=zg_, hw_gamma_start=gs_)
        self.net = net
        self.hw_log_gamma, self.hw_gamma_start = zg_, gs_
        self.horizon, self.period, self.n_x, self.n_out = H, m, nx, n_out
        self.capacity, self.max_batch, self.learn_every = cap, mb, le
        self.f32 = sd == "float32"
        self.clip, self.hw_phi, self.hw_gamma, self.hw_eta = clip, p_, g_, eta_
        self.hw_alphas, self.hw_betas, self.n_members, self.n_bank = a_, b_, K, K + 1
        sg = ((AD_A0 if m > 0 else AD_A0_FLAT) - AD_LO) / (AD_HI - AD_LO)
        self.ad_u0a = math.log(sg / (1.0 - sg))
        sg = ((AD_B0 if m > 0 else AD_B0_FLAT) - AD_LO) / (AD_HI - AD_LO)
        self.ad_u0b = math.log(sg / (1.0 - sg))
        self.mq = min(H, MQ)
        self.md = (H + self.mq - 1) // self.mq
        ma = np.array([a for a in a_ for b in b_], dtype=np.float64)   # alpha-major
        mab = np.array([a * b for a in a_ for b in b_], dtype=np.float64)
        zma = np.array([a for a in za_ for b in zb_], dtype=np.float64)
        zmab = np.array([a * b for a in za_ for b in zb_], dtype=np.float64)
        self._malpha_arr, self._mab_arr, self._zmalpha_arr, self._zmab_arr = ma, mab, zma, zmab
        self.malpha, self.mab = <double*>_ptr(ma), <double*>_ptr(mab)
        self.zmalpha, self.zmab = <double*>_ptr(zma), <double*>_ptr(zmab)
        self.window, self.aci_gamma, self.alphas, self.n_levels = win, ag, al, len(al)
        self.age1, self.age2 = m, m + AGE_SPAN
        self.y_limit = 1e30 if self.f32 else 1e100
        self.big = 1e36 if self.f32 else 1e150
        self.W, self.R, self.LS = Wrow, R, LS
        self.Wh, self.Wf = Wh, Wrow - Wh
        self.o_y, self.o_s, self.o_hw = parts["y"][0], parts["season"][0], parts["hw"][0]
        self.o_org, self.o_sh, self.o_net = parts["origin"][0], parts["shist"][0], parts["net"][0]
        self.o_cmb, self.o_err = parts["comb"][0], parts["err"][0]
        self.o_zhw, self.o_zs, self.o_zsh = parts["zhw"][0], parts["zseason"][0], parts["zshist"][0]
        self.o_zorg = parts["zorigin"][0]
        self.o_bank, self.o_zbank = parts["bank"][0], parts["zbank"][0]
        self.o_ad = parts["ad"][0]
        neto = np.zeros(n_out, dtype=np.intp)
        off = self.o_net
        for i in range(n_out):
            neto[i] = off
            off += netl[i]
        ph = np.zeros(H + 1)
        acc, p = 0.0, 1.0
        for j in range(1, H + 1):
            p = p * p_
            acc = acc + p
            ph[j] = acc
        self._neto_arr = neto
        self._netl_arr, self._phacc_arr = np.array(netl, dtype=np.intp), ph
        self.neto = <Py_ssize_t*>_ptr(neto)
        self.netl = <Py_ssize_t*>_ptr(self._netl_arr)
        self.phacc = <double*>_ptr(ph)
        self._rows = np.zeros((cap, self.Wf), dtype=np.float32 if self.f32 else np.float64)
        self._half = np.zeros((cap, Wh), dtype=np.uint16)   # binary16 bits
        self._count = np.zeros(cap, dtype=np.int64)
        self.p_rows = <char*>_ptr(self._rows)
        self.p_half = <unsigned short*>_ptr(self._half)
        self.p_count = <long long*>_ptr(self._count)
        A = len(al)
        self._calpha = np.array(al, dtype=np.float64)
        self._assign_shared(dict(
            t=0, conf_raw=np.zeros((AGES * H, win)), conf_sorted=np.zeros((AGES * H, win)),
            conf_count=np.zeros(AGES * H, dtype=np.int64),
            conf_pos=np.zeros(AGES * H, dtype=np.int64),
            conf_at=np.repeat(self._calpha[:, None], AGES * H, axis=1), pool=np.zeros((H, E)),
            pool_n=np.zeros((H, E), dtype=np.int64), feat_n=np.zeros(nx, dtype=np.int64),
            feat_mean=np.zeros(nx), feat_m2=np.zeros(nx)))
        self.calpha = <double*>_ptr(self._calpha)
        nin = N_LEAD + nx
        s = {"row": np.zeros(mb * Wrow), "X": np.zeros(mb * nin), "Y": np.zeros(mb * n_out),
             "O": np.zeros(mb * n_out), "slot": np.zeros(mb, dtype=np.int64),
             "idx": np.zeros(mb, dtype=np.intp), "kmap": np.zeros(mb, dtype=np.intp), "fx": np.zeros(mb * max(nx, 1)),
             "f": np.zeros(E), "w": np.zeros(max(E, K + 1)), "c": np.zeros(H), "a": np.zeros(K + 1),
             "s1": np.zeros(E)}
        self._scratch = s
        self.srow, self.sX, self.sY = <double*>_ptr(s["row"]), <double*>_ptr(s["X"]), <double*>_ptr(s["Y"])
        self.sO, self.sslot = <double*>_ptr(s["O"]), <long long*>_ptr(s["slot"])
        self.sidx, self.sfx = <Py_ssize_t*>_ptr(s["idx"]), <double*>_ptr(s["fx"])
        self.skmap = <Py_ssize_t*>_ptr(s["kmap"])
        self.sf, self.sw, self.sc = <double*>_ptr(s["f"]), <double*>_ptr(s["w"]), <double*>_ptr(s["c"])
        self.sa = <double*>_ptr(s["a"])
        self.s1 = <double*>_ptr(s["s1"])
        self.s1_any = False
        self._busy = False
        self.n_in = nin

    def _assign_shared(self, d):
        """Take over checked shared arrays and bind their pointers (copied into fresh arrays
        of numpy's own dtype objects: an unpickled core then pickles to the same bytes)."""
        d = {k: (_fresh(v) if isinstance(v, np.ndarray) else v) for k, v in d.items()}
        self.t = d["t"]
        self._craw, self._csrt = d["conf_raw"], d["conf_sorted"]
        self._ccnt, self._cpos, self._cat = d["conf_count"], d["conf_pos"], d["conf_at"]
        self._pool, self._pooln = d["pool"], d["pool_n"]
        self._fn, self._fmean, self._fm2 = d["feat_n"], d["feat_mean"], d["feat_m2"]
        self.craw, self.csrt = <double*>_ptr(self._craw), <double*>_ptr(self._csrt)
        self.ccnt, self.cpos = <long long*>_ptr(self._ccnt), <long long*>_ptr(self._cpos)
        self.cat, self.pool = <double*>_ptr(self._cat), <double*>_ptr(self._pool)
        self.pooln, self.fn = <long long*>_ptr(self._pooln), <long long*>_ptr(self._fn)
        self.fmean, self.fm2 = <double*>_ptr(self._fmean), <double*>_ptr(self._fm2)

    # ------------------------------------------------------------ sizes
    @property
    def slot_bytes(self):
        """Committed bytes per key: the network's slot (``net.slot_bytes``, its 8-byte
        window count included) + the key's row (itemsize x W) + its count (8). With
        R = m ceil(H/m) (H when m = 0), LS = ceil(H/m) - 1 (0 when m = 0), n_out = min(H, k2):
        K = len(hw_alphas) len(hw_betas) members per backbone:
        Q = min(H, 3) stored origins of the members' states:
        W = R + 2 (m + LS m) + 6 + (2 K + 1) (3 + 2 Q) + 8 + 5H + (n_out(n_out-1)/2 + H) + 5H
            + 2 + H(H+1)/2
        (history; backbone and log member: indices, their history, level/trend/scale/flag,
        members with their stored states (the backbone's K + 1 with its adaptive member, whose
        u, v and sensitivities are the 8), origin rings of 3H and 2H; pending corrections;
        errors; pending combined: the last Wh = H(H+1)/2, float16 in float32 slots, which
        then take 4 (W - Wh) + 2 Wh bytes)."""
        return int(self.net.slot_bytes) + self.Wf * (4 if self.f32 else 8) + 2 * self.Wh + 8

    @property
    def slot_dtype(self):
        return "float32" if self.f32 else "float64"

    def __sizeof__(self):
        n = object.__sizeof__(self) + self._rows.nbytes + self._half.nbytes + self._count.nbytes
        n += sum(a.nbytes for a in self._scratch.values())
        n += sum(a.nbytes for a in (self._craw, self._csrt, self._ccnt, self._cpos, self._cat,
                                    self._pool, self._pooln, self._fn, self._fmean, self._fm2))
        return n + self.net.__sizeof__()

    # ------------------------------------------------------------ rows
    cdef void _load(self, Py_ssize_t slot, double* row) noexcept nogil:
        cdef Py_ssize_t i, W = self.Wf, Wh = self.Wh
        cdef const float* f
        cdef const unsigned short* h
        if self.f32:
            f = (<const float*>self.p_rows) + slot * W
            for i in range(W):
                row[i] = f[i]
            h = self.p_half + slot * Wh
            for i in range(Wh):      # the bits (decoded where read: _cget)
                row[W + i] = <double>h[i]
        else:
            memcpy(row, (<const double*>self.p_rows) + slot * W, W * sizeof(double))

    cdef void _store(self, Py_ssize_t slot, const double* row) noexcept nogil:
        cdef Py_ssize_t i, W = self.Wf, Wh = self.Wh
        cdef float* f
        cdef unsigned short* h
        if self.f32:
            f = (<float*>self.p_rows) + slot * W
            for i in range(W):
                f[i] = <float>row[i]
            h = self.p_half + slot * Wh
            for i in range(Wh):
                h[i] = <unsigned short>row[W + i]
        else:
            memcpy((<double*>self.p_rows) + slot * W, row, W * sizeof(double))

    cdef double _rc(self, double v) noexcept nogil:
        """A pending combined offset as stored: float16 of v clamped to +-65504 in float32
        slots (only the conformal scores and the anomaly read it), else as _rnd."""
        if not self.f32:
            return self._rnd(v)
        if v > HALF_MAX:
            v = HALF_MAX
        elif v < -HALF_MAX:
            v = -HALF_MAX
        return gc_h2d(gc_d2h(v))

    cdef void _cset(self, double* row, Py_ssize_t i, double v) noexcept nogil:
        """Row value i of the pending combined offsets takes v as stored (_rc); in float32
        slots the loaded row holds their float16 bits (converted only where used)."""
        if not self.f32:
            row[i] = self._rnd(v)
            return
        if v > HALF_MAX:
            v = HALF_MAX
        elif v < -HALF_MAX:
            v = -HALF_MAX
        row[i] = <double>gc_d2h(v)

    cdef double _cget(self, const double* row, Py_ssize_t i) noexcept nogil:
        """Row value i of the pending combined offsets (see _cset)."""
        if not self.f32:
            return row[i]
        return gc_h2d(<unsigned short>row[i])

    cdef double _rnd(self, double v) noexcept nogil:
        """The value as stored (every value written into a row goes through here)."""
        if v > self.big:
            v = self.big
        elif v < -self.big:
            v = -self.big
        if self.f32:
            return <double>(<float>v)
        return v

    # ------------------------------------------------------------ backbone and experts
    cdef double _scale(self, const double* row) noexcept nogil:
        cdef double sc = row[self.o_hw + 2]
        cdef double fl = SCALE_FLOOR * (1.0 + fabs(row[self.o_hw]))
        return self._rnd(sc if sc > fl else fl)

    cdef double _bb(self, const double* row, long long n, Py_ssize_t j) noexcept nogil:
        """The backbone's forecast of step j (1..H) from the committed origin n - 1."""
        cdef double v = row[self.o_hw] + self.phacc[j] * row[self.o_hw + 1]
        if self.period > 0:
            v = v + row[self.o_s + (n - 1 + j) % self.period]
        return v

    cdef double _bb_at(self, const double* row, long long t, Py_ssize_t j) noexcept nogil:
        """The backbone's forecast of step j made at origin s = t - j, read when y_t arrives
        (before it updates the row): recomputed from the origin's level and trend and the
        season index of y_t's phase as it was then: the current one for j <= m, else the
        one before the last ceil(j/m) - 1 updates of that phase (the season history)."""
        cdef long long s = t - j
        cdef Py_ssize_t q, m = self.period, u
        cdef double v
        q = self.o_org + 3 * (s % self.horizon)
        v = row[q] + self.phacc[j] * row[q + 1]
        if m > 0:
            u = (j + m - 1) // m - 1     # updates of the phase since origin s
            if u == 0:
                v = v + row[self.o_s + t % m]
            else:
                v = v + row[self.o_sh + (u - 1) * m + t % m]
        return v

    cdef double _zs_at(self, const double* row, long long t, Py_ssize_t j) noexcept nogil:
        """The log member's season index of y_t's phase as it was at origin t - j."""
        cdef Py_ssize_t m = self.period, u
        if m == 0:
            return 0.0
        u = (j + m - 1) // m - 1
        if u == 0:
            return row[self.o_zs + t % m]
        return row[self.o_zsh + (u - 1) * m + t % m]

    cdef void _experts(self, const double* row, long long n, Py_ssize_t j, double bb,
                       double corr, double ph, double* f) noexcept nogil:
        """The experts' forecasts of step j (any j >= 1) from origin n - 1 with backbone
        forecast bb and the (stored-form) network correction of that step."""
        cdef Py_ssize_t m = self.period, R = self.R
        cdef double ylast = row[self.o_y + (n - 1) % R]
        cdef long long idx
        f[NETWORK] = bb + self._scale(row) * corr
        f[BACKBONE] = bb
        f[LAST] = ylast
        f[SNAIVE] = ylast
        if m > 0:
            idx = n - 1 + j - m * ((j + m - 1) // m)
            if idx >= 0:
                f[SNAIVE] = row[self.o_y + idx % R]
        f[LOGBB] = 0.0   # (weight 0 unless the member is alive)
        if row[self.o_zhw + 2] == 1.0:
            f[LOGBB] = self._zfc(row[self.o_zhw], row[self.o_zhw + 1],
                                 row[self.o_zs + (n - 1 + j) % m] if m > 0 else 0.0, ph)

    cdef double _zfc(self, double zl, double zb, double zs, double ph) noexcept nogil:
        """The log member's forecast: exp of its z-space forecast (clamped)."""
        cdef double z = zl + ph * zb
        if self.period > 0:
            z = z + zs
        return exp(ZMIN if z < ZMIN else (ZMAX if z > ZMAX else z))

    cdef bint _seasonal(self, const double* row, long long n) noexcept nogil:
        """The season gate: the seasonal naive is eligible only while it beats the last value
        by GATE at step g = min(ceil(m/2), H) (where a season shows most) in the long run: the
        key's long EW errors once it scored step g, else the pooled ones, else open. A series
        whose value at the same phase a period ago is no better than its last value (level
        shifts, no season) would otherwise hand the weight to the seasonal naive in its calm
        stretches and pay a period of misses after every shift."""
        cdef Py_ssize_t g = (self.period + 1) // 2
        cdef long long pl, ps
        if g > self.horizon:
            g = self.horizon
        if n - g - WARM > 0:
            return (row[self.o_err + self.horizon * E + 1]
                    < GATE * row[self.o_err + self.horizon * E])
        pl = self.pooln[(g - 1) * E + LAST]
        ps = self.pooln[(g - 1) * E + SNAIVE]
        if pl > 0 and ps > 0:
            return self.pool[(g - 1) * E + SNAIVE] < GATE * self.pool[(g - 1) * E + LAST]
        return True

    cdef Py_ssize_t _scores(self, const double* row, long long n, Py_ssize_t jj, const bint* el,
                            bint* kn, double* L) noexcept nogil:
        """The key's scores L[e] of step jj for the known experts kn[e] (of the eligible el):
        the key's errors over its scale blended with the pooled ones, the margins applied;
        returns how many are known."""
        cdef long long nj = n - jj - WARM
        cdef long long pn
        cdef Py_ssize_t e, nk = 0
        cdef double s, sk, mg = 0.0, own
        cdef double fj = (<double>(jj - 1)) / (<double>(self.horizon - 1)) if self.horizon > 1 else 0.0
        if nj < 0:
            nj = 0
        for e in range(E):
            kn[e] = el[e] and (nj > 0 or self.pooln[(jj - 1) * E + e] > 0)
            nk += kn[e]
        if nk == 0:
            return 0
        sk = self._scale(row)
        if self.period != 0 and not el[SNAIVE] and nj >= PROVEN_N and kn[LAST]:
            # the last value has proven itself at step j for this key: the margin grows with j
            own = INFINITY
            for e in range(E):
                if kn[e] and e != LAST and row[self.o_err + (jj - 1) * E + e] < own:
                    own = row[self.o_err + (jj - 1) * E + e]
            if row[self.o_err + (jj - 1) * E + LAST] <= PROVEN_TOL * own:
                mg = PROVEN_MARGIN * fj
        for e in range(E):
            if not kn[e]:
                continue
            pn = self.pooln[(jj - 1) * E + e]
            if nj == 0:
                s = self.pool[(jj - 1) * E + e]
            elif pn == 0:
                s = row[self.o_err + (jj - 1) * E + e] / sk
            else:
                s = ((<double>nj) * (row[self.o_err + (jj - 1) * E + e] / sk)
                     + N0 * self.pool[(jj - 1) * E + e]) / (<double>nj + N0)
            if e != LAST and not el[SNAIVE] and self.period != 0:
                # a season is expected but does not show: the last value leads
                s = s * (1.0 + MARGIN)
                if mg > 0.0:
                    s = s * (1.0 + mg)
            L[e] = s
        return nk

    cdef void _weights(self, const double* row, long long n, Py_ssize_t j, double* w) noexcept nogil:
        """Combination weights of step j from origin n - 1. Eligible: network, backbone, last
        value; seasonal naive when m > 0; the log member while every value was > 0. An
        eligible expert is known when the key scored it (n_j > 0) or the pool did. Step 1's
        relative scores are kept (self.s1; -1: unknown) for the steps after it: every caller
        asks for steps 1, 2, ... of one row in turn."""
        cdef Py_ssize_t jj = j if j < self.horizon else self.horizon, e, ne = 0, nk
        cdef double lo = INFINITY, x, tot = 0.0, xmin = INFINITY
        cdef double L[E]
        cdef double r[E]
        cdef bint el[E]
        cdef bint kn[E]
        for e in range(E):
            el[e] = not ((e == SNAIVE and (self.period == 0 or not self._seasonal(row, n)))
                         or (e == LOGBB and (self.period == 0 or row[self.o_zhw + 2] != 1.0)))
            ne += el[e]
        nk = self._scores(row, n, jj, el, kn, L)
        if jj == 1:
            self.s1_any = nk > 0
        if nk == 0:
            for e in range(E):
                w[e] = 1.0 / ne if el[e] else 0.0
            return
        for e in range(E):
            if kn[e] and L[e] < lo:
                lo = L[e]
        for e in range(E):
            r[e] = (L[e] - lo) / (lo if lo > LO_FLOOR else LO_FLOOR) if kn[e] else 0.0
        if jj == 1:
            for e in range(E):
                self.s1[e] = r[e] if kn[e] else -1.0
        elif self.s1_any:   # blended with step 1's relative scores (0 where it knows none)
            for e in range(E):
                if kn[e]:
                    r[e] = (r[e] + MIX1 * (self.s1[e] if self.s1[e] >= 0.0 else 0.0)) / (1.0 + MIX1)
        for e in range(E):
            if kn[e] and r[e] < xmin:
                xmin = r[e]
        for e in range(E):
            if not kn[e]:
                w[e] = 0.0
                continue
            x = ETA * (r[e] - xmin)
            w[e] = 1.0 if x == 0.0 else (exp(-x) if x < CUT else 0.0)  # exp(-0) == 1
            tot = tot + w[e]
        for e in range(E):
            w[e] = w[e] / tot

    cdef double _combine(self, const double* row, long long n, Py_ssize_t j, double bb,
                         double corr, double ph) noexcept nogil:
        cdef double f[E]
        cdef double w[E]
        cdef double c = 0.0
        cdef Py_ssize_t e
        self._experts(row, n, j, bb, corr, ph, f)
        self._weights(row, n, j, w)
        for e in range(E):
            if w[e] > 0.0:
                c = c + w[e] * f[e]
        return c

    cdef void _features(self, const double* x, double* fx) noexcept nogil:
        """User features standardised by the shared statistics (missing or no spread: 0)."""
        cdef Py_ssize_t i
        cdef double v, var
        for i in range(self.n_x):
            fx[i] = 0.0
            if x == NULL or isnan(x[i]) or self.fn[i] < 2:
                continue
            var = self.fm2[i] / <double>self.fn[i]
            if var > 0.0:
                v = (x[i] - self.fmean[i]) / sqrt(var)
                fx[i] = _clipv(v, INPUT_CLIP) if isfinite(v) else 0.0

    cdef void _inputs(self, const double* row, long long n, const double* fx, double* u) noexcept nogil:
        """The network input at origin n - 1 (n >= 1): the lead columns, then fx."""
        cdef double sc = self._scale(row)
        cdef Py_ssize_t m = self.period, i
        cdef double ang
        u[0] = _clipv((row[self.o_y + (n - 1) % self.R] - row[self.o_hw]) / sc, INPUT_CLIP)
        u[2] = _clipv(row[self.o_hw + 1] / sc, INPUT_CLIP)
        if m > 0:
            u[1] = _clipv(row[self.o_s + n % m] / sc, INPUT_CLIP)
            ang = 2.0 * PI * <double>(n % m) / <double>m
            u[3] = sin(ang)
            u[4] = cos(ang)
        else:
            u[1] = 0.0
            u[3] = 0.0
            u[4] = 0.0
        for i in range(self.n_x):
            u[N_LEAD + i] = fx[i]

    cdef void _targets(self, const double* row, long long n, double y, double* Y) noexcept nogil:
        """Delayed targets for y_n: output i of the step at origin n - 1 - i (NaN: none)."""
        cdef Py_ssize_t i
        cdef long long s
        for i in range(self.n_out):
            s = n - 1 - i
            if s < WARM:
                Y[i] = NAN
            else:
                Y[i] = _clipv((y - self._bb_at(row, n, i + 1))
                              / row[self.o_org + 3 * (s % self.horizon) + 2], self.clip)

    # ------------------------------------------------------------ shared conformal
    cdef Py_ssize_t _group(self, long long s) noexcept nogil:
        """The age group of origin s: 0 in the first cycle (s < m), 1 while the scale forms
        (s < m + AGE_SPAN), else 2."""
        if s < self.age1:
            return 0
        if s < self.age2:
            return 1
        return 2

    cdef Py_ssize_t _crow(self, Py_ssize_t g, Py_ssize_t j0) noexcept nogil:
        """The conformal row (g H + j0) whose scores give the intervals of age group g at
        step j0: its own while it holds MIN_FALL scores (the window, if smaller), else the
        nearest older group that does, else its own while it holds MIN_SCORES, else the
        nearest younger group with MIN_FALL, returned as -(2 + row): borrowed, its
        intervals take that row's widest (level 0: 1.5 x its largest score: a younger
        key's scores are not this age's, e.g. first-cycle scores over a scale still
        inflated by the season-less errors); -1: none."""
        cdef Py_ssize_t H = self.horizon, u
        cdef long long need = MIN_FALL if MIN_FALL < self.window else self.window
        if self.ccnt[g * H + j0] >= need:
            return g * H + j0
        for u in range(g + 1, AGES):
            if self.ccnt[u * H + j0] >= need:
                return u * H + j0
        if self.ccnt[g * H + j0] >= MIN_SCORES:
            return g * H + j0
        for u in range(g - 1, -1, -1):
            if self.ccnt[u * H + j0] >= need:
                return -(2 + u * H + j0)
        return -1

    cdef double _quantile(self, Py_ssize_t r, double a) noexcept nogil:
        return sorted_quantile(self.csrt + r * self.window, self.ccnt[r], MIN_SCORES, a)

    cdef double _level(self, Py_ssize_t r, double alpha) noexcept nogil:
        return level_at(self.calpha, self.cat, self.n_levels, AGES * self.horizon, r, alpha)

    cdef double _halfwidth(self, Py_ssize_t g, Py_ssize_t j, double alpha) noexcept nogil:
        """Normalised half-width of step j (beyond H: step H's) for an origin of age group g;
        inf while unknown."""
        if j > self.horizon:
            j = self.horizon
        cdef Py_ssize_t r = self._crow(g, j - 1)
        if r == -1:
            return INFINITY
        if r < -1:       # borrowed from a younger group: its widest
            return self._quantile(-r - 2, 0.0)
        return self._quantile(r, self._level(r, alpha))

    cdef double _pvalue(self, Py_ssize_t g, double s) noexcept nogil:
        cdef Py_ssize_t r = self._crow(g, 0)
        if r == -1:
            return 1.0
        if r < -1:
            r = -r - 2
        cdef long long c = self.ccnt[r]
        if c == 0:
            return 1.0
        return (1.0 + <double>(c - gc_lower(self.csrt + r * self.window, <Py_ssize_t>c, s))) / (
            1.0 + <double>c)

    cdef void _insert(self, Py_ssize_t j0, double s) noexcept nogil:
        """Score s enters conformal row j0's window (g H + step - 1); the oldest leaves a
        full one: binary searches and one memmove of the values between the two positions."""
        cdef Py_ssize_t W = self.window, r0, q, c
        cdef double* r = self.craw + j0 * W
        cdef double* v = self.csrt + j0 * W
        cdef Py_ssize_t p = <Py_ssize_t>self.cpos[j0]
        c = <Py_ssize_t>self.ccnt[j0]
        q = gc_upper(v, c, s)              # the first index with a value > s
        if c < W:
            memmove(v + q + 1, v + q, (c - q) * sizeof(double))
            v[q] = s
            self.ccnt[j0] = c + 1
        else:
            r0 = gc_lower(v, W, r[p])      # the first index holding the oldest score's value
            if q > r0:    # the values in (r0, q) move down one place, s ends them
                memmove(v + r0, v + r0 + 1, (q - 1 - r0) * sizeof(double))
                v[q - 1] = s
            else:         # the values in [q, r0) move up one place, s starts them
                memmove(v + q + 1, v + q, (r0 - q) * sizeof(double))
                v[q] = s
        r[p] = s
        self.cpos[j0] = (p + 1) % W

    # ------------------------------------------------------------ one key's value
    cdef void _observe(self, double* row, long long n, double y, const double* o,
                       double* pred, double* score) noexcept nogil:
        """y_n (n >= 1) against the pending forecasts; o: the network's outputs at origin
        n - 1 (NULL: refused). The row still holds origin n - 1."""
        cdef Py_ssize_t H = self.horizon, m = self.period, R = self.R, j, i, e, a, A = self.n_levels
        cdef Py_ssize_t jo, q, jg, g = (m + 1) // 2
        cdef long long s, idx
        cdef double bb, c, sc, err, ylast, cn, ec, rho, rl, scur
        cdef double f[E]
        cdef double* cur = self.sc
        # the log member is scored while every value (this one too) is > 0: its pending
        # forecasts were then all issued with every update of its indices in place
        cdef bint logok = row[self.o_zhw + 2] == 1.0 and y > 0.0
        if g > H:
            g = H
        # 1. the corrections of origin n - 1 join the pending ones (stored form)
        for i in range(self.n_out):
            row[self.neto[i] + (n - 1) % self.netl[i]] = (
                self._rnd(_clipv(o[i], self.clip)) if o != NULL else 0.0)
        # 2. the combined forecasts of origin n - 1 (pred is step 1's)
        sc = self._scale(row)
        scur = sc
        for j in range(1, H + 1):
            jo = (j if j < self.n_out else self.n_out) - 1
            bb = self._bb(row, n, j)
            c = self._combine(row, n, j, bb, row[self.neto[jo] + (n - 1) % self.netl[jo]],
                              self.phacc[j])
            if j == 1:
                pred[0] = c
                cur[0] = bb
            self._cset(row, self.o_cmb + (j - 1) * j // 2 + (n - 1) % j, (c - bb) / sc)
        # 3. anomaly score of y_n (before its scores enter)
        score[0] = NAN
        if n - 1 >= WARM and self._crow(self._group(n - 1), 0) != -1:
            cn = fabs((y - cur[0]) / sc - self._cget(row, self.o_cmb + 0))
            score[0] = 1.0 - self._pvalue(self._group(n - 1), cn if cn <= VMAX else VMAX)
        # 4. every pending forecast of y_n
        for j in range(1, (H if H < n else n) + 1):
            s = n - j
            if s < WARM:
                break
            q = self.o_org + 3 * (s % H)
            sc = row[q + 2]
            bb = self._bb_at(row, n, j)
            jo = (j if j < self.n_out else self.n_out) - 1
            ylast = row[self.o_y + s % R]
            f[NETWORK] = bb + sc * row[self.neto[jo] + s % self.netl[jo]]
            f[BACKBONE] = bb
            f[LAST] = ylast
            f[SNAIVE] = ylast
            if m > 0:
                idx = n - m * ((j + m - 1) // m)
                if idx >= 0:
                    f[SNAIVE] = row[self.o_y + idx % R]
            # the key's errors of step j start as a running mean (s - WARM scorings before
            # this one), then EW: the first, rough forecasts must not steer the weights long.
            # The season gate's long-run errors do not (EW from the first): a running mean
            # would give an early outage, which the seasonal naive replays a period later,
            # the weight of a few values and open the gate for long (WaterFlow's demo)
            rho = (<double>(s - WARM)) / (<double>(s - WARM + 1))
            rl = LONG_DECAY
            if rho > DECAY:
                rho = DECAY
            if logok:
                q = self.o_zorg + 2 * (s % H)
                f[LOGBB] = self._zfc(row[q], row[q + 1], self._zs_at(row, n, j), self.phacc[j])
            for e in range(E):
                if e == LOGBB and not logok:
                    continue
                err = fabs(y - f[e]) / sc
                if not err <= VMAX:
                    err = VMAX
                # the key's own errors in y's units (ranked as MAE ranks them; read over the
                # current scale), the pool's normalised
                i = self.o_err + (j - 1) * E + e
                row[i] = self._rnd(err * sc if s == WARM
                                   else rho * row[i] + (1.0 - rho) * (err * sc))
                if (e == LAST or e == SNAIVE) and j == g:   # long-run errors: the season gate
                    # (robust: one outage must not open the gate for good)
                    i = self.o_err + H * E + (e - LAST)
                    ec = (err if err < GATE_CLIP else GATE_CLIP) * sc
                    row[i] = self._rnd(ec if s == WARM else
                                       rl * row[i] + (1.0 - rl) * ec)
                i = (j - 1) * E + e
                self.pool[i] = (err if self.pooln[i] == 0
                                else POOL_DECAY * self.pool[i] + (1.0 - POOL_DECAY) * err)
                if self.pooln[i] < COUNT_LIMIT - 1:
                    self.pooln[i] += 1
            cn = fabs((y - bb) / sc - self._cget(row, self.o_cmb + (j - 1) * j // 2 + s % j))
            if scur > SHOCK * sc:   # over max(scale_s, scale / SHOCK): not counted twice
                cn = cn * (SHOCK * sc / scur)
            if not cn <= VMAX:
                cn = VMAX
            # the origin's age group: its own scores and ACI levels (row jg of AGES H)
            jg = self._group(s) * H + j - 1
            for a in range(A):
                c = self._quantile(jg, self.cat[a * AGES * H + jg])
                if isfinite(c):
                    err = self.cat[a * AGES * H + jg] + self.aci_gamma * (
                        self.calpha[a] - (1.0 if cn > c else 0.0))
                    self.cat[a * AGES * H + jg] = AT_LO if err < AT_LO else (AT_HI if err > AT_HI else err)
            # winsorised: one burst (an outage's misses fill every step's row at once) cannot
            # become a young row's quantile; the ACI miss above is the score's own
            if self.ccnt[jg] >= WINSOR_N:
                c = WINSOR * self.csrt[jg * self.window + (self.ccnt[jg] - 1) // 2]
                if c > 0.0 and cn > c:
                    cn = c
            self._insert(jg, cn)

    cdef Py_ssize_t _mscore(self, const double* row, Py_ssize_t ob, Py_ssize_t K, Py_ssize_t os,
                            Py_ssize_t osh, long long n, double z, double* a) noexcept nogil:
        """The members' mean error at z (value n, n >= n0) over the stored origins s with
        1 <= n - s <= H (ascending s; each |z - f| clamped to big): a[k]; returns how many
        origins (0: none, a untouched); K members. Read before the row takes z: the season index of z's
        phase as it was at s is the current one (j <= m) or in the history (os, osh)."""
        cdef Py_ssize_t Q = self.mq, m = self.period, k, i, r, u, c = 0
        cdef long long d = self.md, top = (n - 1) // d, s0, j, n0 = self.period if self.period > 0 else 1
        cdef Py_ssize_t q
        cdef double sv, x
        for i in range(Q - 1, -1, -1):
            s0 = d * (top - i)
            j = n - s0
            if s0 < n0 or j < 1 or j > self.horizon:
                continue
            sv = 0.0
            if m > 0:
                u = (j + m - 1) // m - 1
                sv = row[os + n % m] if u == 0 else row[osh + (u - 1) * m + n % m]
            r = <Py_ssize_t>((s0 // d) % Q)
            q = ob + 3 * K + 2 * K * r
            for k in range(K):
                x = fabs(z - (row[q + 2 * k] + self.phacc[j] * row[q + 2 * k + 1] + sv))
                if not x <= self.big:
                    x = self.big
                a[k] = x if c == 0 else a[k] + x
            c += 1
        if c > 1:
            for k in range(K):
                a[k] = a[k] / <double>c
        return c

    cdef void _bank(self, double* row, Py_ssize_t hw, Py_ssize_t ob, Py_ssize_t oa,
                    long long n, double z, double sp, double* malpha,
                    double* mab, const double* a) noexcept nogil:
        """The members of a backbone (at row[ob], 3 per member: level, trend, EW error; then
        the ring of the stored origins' levels and trends) take z (n >= 1, past the first
        cycle; sp: the season index of z's phase before its update; a: the members' mean
        errors over the stored origins from ``_mscore``, NULL: none, then the one-step
        error); the combined level and trend row[hw], row[hw + 1] become their weighted
        means, the weights from the members' new errors; at n % d == 0 the ring keeps the
        new levels and trends. With oa >= 0 (the backbone's bank) the last member is the
        adaptive one (its state at row[oa]: its gradients and sensitivities from the state
        before z, its u stepped after its update; see the module docstring)."""
        cdef Py_ssize_t k, K = self.n_members, K1 = self.n_bank if oa >= 0 else self.n_members
        cdef Py_ssize_t q, r, i
        cdef double e1, phi = self.hw_phi, lo = INFINITY, x, tot = 0.0, L = 0.0, B = 0.0, eta
        cdef double al, be, ma, mb, dl, db, de, nl, nb, u, sg, gu, v
        cdef double gr[2]
        cdef long long n0 = self.period if self.period > 0 else 1
        al = be = 0.0
        if oa >= 0:
            al = AD_LO + (AD_HI - AD_LO) / (1.0 + exp(-row[oa]))
            be = AD_LO + (AD_HI - AD_LO) / (1.0 + exp(-row[oa + 1]))
        for k in range(K1):
            q = ob + 3 * k
            e1 = z - (row[q] + phi * row[q + 1] + sp)
            if k < K:
                ma, mb = malpha[k], mab[k]
            else:
                ma, mb = al, al * be
                for i in range(2):                # d(l, b)/d(alpha, beta) through this update
                    dl = row[oa + 4 + i]
                    db = row[oa + 6 + i]
                    de = -(dl + phi * db)
                    nl = (dl + phi * db) + al * de
                    nb = phi * db + (al * be) * de
                    if i == 0:
                        nl = nl + e1
                        nb = nb + be * e1
                    else:
                        nb = nb + al * e1
                    row[oa + 4 + i] = self._rnd(nl)
                    row[oa + 6 + i] = self._rnd(nb)
                    gr[i] = e1 * de
            x = fabs(e1)
            if not x <= self.big:
                x = self.big
            if a != NULL:
                x = (1.0 - MS_MIX) * x + MS_MIX * a[k]
            x = x if n == n0 else BANK_DECAY * row[q + 2] + (1.0 - BANK_DECAY) * x
            row[q + 2] = self._rnd(x)
            row[q] = self._rnd(row[q] + phi * row[q + 1] + ma * e1)
            row[q + 1] = self._rnd(phi * row[q + 1] + mb * e1)
            if row[q + 2] < lo:
                lo = row[q + 2]
            if k == K:                            # RMS-normalised steps of u
                for i in range(2):
                    u = row[oa + i]
                    sg = 1.0 / (1.0 + exp(-u))
                    gu = gr[i] * ((sg * (1.0 - sg)) * (AD_HI - AD_LO))
                    x = gu * gu
                    if x < 1e300:
                        v = AD_V * row[oa + 2 + i] + (1.0 - AD_V) * x
                        if v > 0.0:
                            u = _clipv(u - (AD_LR * gu) / sqrt(v), AD_UCLIP)
                        row[oa + 2 + i] = self._rnd(v)
                        row[oa + i] = self._rnd(u)
        if n % self.md == 0:
            r = <Py_ssize_t>((n // self.md) % self.mq)
            q = ob + 3 * K1 + 2 * K1 * r
            for k in range(K1):
                row[q + 2 * k] = row[ob + 3 * k]
                row[q + 2 * k + 1] = row[ob + 3 * k + 1]
        eta = self.hw_eta
        for k in range(K1):
            x = eta * ((row[ob + 3 * k + 2] - lo) / (lo if lo > LO_FLOOR else LO_FLOOR))
            self.sw[k] = 1.0 if x == 0.0 else (exp(-x) if x < CUT else 0.0)
            tot = tot + self.sw[k]
        for k in range(K1):
            x = self.sw[k] / tot
            L = L + x * row[ob + 3 * k]
            B = B + x * row[ob + 3 * k + 1]
        row[hw] = self._rnd(L)
        row[hw + 1] = self._rnd(B)

    cdef void _bank_start(self, double* row, Py_ssize_t ob, Py_ssize_t oa, double z) noexcept nogil:
        """Every member starts at level z (stored form), trend 0, error 0 (the ring: zeros);
        with oa >= 0, the adaptive member's u at its start, v and the sensitivities 0."""
        cdef Py_ssize_t k
        for k in range(self.n_bank if oa >= 0 else self.n_members):
            row[ob + 3 * k] = self._rnd(z)
            row[ob + 3 * k + 1] = 0.0
            row[ob + 3 * k + 2] = 0.0
        if oa < 0:
            return
        row[oa] = self._rnd(self.ad_u0a)
        row[oa + 1] = self._rnd(self.ad_u0b)
        for k in range(2, AD_N):
            row[oa + k] = 0.0

    cdef void _update(self, double* row, long long n, double y) noexcept nogil:
        """The backbone and the history take y_n; the origin n entries are written."""
        cdef Py_ssize_t m = self.period, H = self.horizon, j, p = 0
        cdef Py_ssize_t hw = self.o_hw
        cdef double l = row[hw], b = row[hw + 1], e, fit, r, phi = self.hw_phi, sp = 0.0
        cdef Py_ssize_t u, na = 0
        cdef long long tn
        if n >= 1 and (m == 0 or n >= m):   # the members' errors over the stored origins
            na = self._mscore(row, self.o_bank, self.n_bank, self.o_s, self.o_sh, n, y, self.sa)
        if m > 0 and self.LS > 0:  # the phase's index before this update joins its history
            p = n % m
            for u in range(self.LS - 1, 0, -1):
                row[self.o_sh + u * m + p] = row[self.o_sh + (u - 1) * m + p]
            row[self.o_sh + p] = row[self.o_s + p]
        if n == 0:
            row[hw] = self._rnd(y)
            row[hw + 1] = 0.0
            row[hw + 2] = 0.0
            self._bank_start(row, self.o_bank, self.o_ad, y)
        else:
            fit = l + phi * b
            if m > 0:
                p = n % m
                sp = row[self.o_s + p]
                fit = fit + sp
            e = y - fit
            if m > 0 and n < m:
                row[self.o_s + p] = self._rnd(y - l)
            else:
                if m > 0:
                    row[self.o_s + p] = self._rnd(sp + _gam(self.hw_gamma, self.hw_gamma_start, n, m) * e)
                self._bank(row, hw, self.o_bank, self.o_ad, n, y, sp, self.malpha, self.mab,
                           self.sa if na > 0 else NULL)
            # the scale's count restarts after the first cycle (whose errors, made before the
            # season indices exist, keep the weight of one value): a season-less first cycle
            # must not inflate a young key's scale for the next cycles
            tn = n - m + 2 if (m > 0 and n >= m) else n
            r = 1.0 / <double>tn
            if r < SCALE_RATE:
                r = SCALE_RATE
            e = fabs(e)
            if not e <= self.big:
                e = self.big
            if tn > WARM:   # robust: a jump or an outage moves the scale by at most 15 %
                fit = SCALE_CLIP * self._scale(row)
                if e > fit:
                    e = fit
            row[hw + 2] = self._rnd(row[hw + 2] + r * (e - row[hw + 2]))
        row[self.o_y + n % self.R] = self._rnd(y)
        p = self.o_org + 3 * (n % H)
        row[p] = row[hw]
        row[p + 1] = row[hw + 1]
        row[p + 2] = self._scale(row)
        self._zupdate(row, n, y)
        p = self.o_zorg + 2 * (n % H)
        row[p] = row[self.o_zhw]
        row[p + 1] = row[self.o_zhw + 1]

    cdef void _zupdate(self, double* row, long long n, double y) noexcept nogil:
        """The log member (the backbone's rules on z = log y) takes y_n while every value is
        > 0; the first value <= 0 retires it for good (flag 0)."""
        cdef Py_ssize_t m = self.period, zh = self.o_zhw, p = 0, u, na = 0
        cdef double z, e, fit, zl = row[zh], zb = row[zh + 1], phi = self.hw_phi, sp = 0.0
        if not (y > 0.0 and (n == 0 or row[zh + 2] == 1.0)):
            row[zh + 2] = 0.0
            return
        z = log(y)
        if n >= 1 and (m == 0 or n >= m):
            na = self._mscore(row, self.o_zbank, self.n_members, self.o_zs, self.o_zsh, n, z, self.sa)
        if m > 0 and self.LS > 0:
            p = n % m
            for u in range(self.LS - 1, 0, -1):
                row[self.o_zsh + u * m + p] = row[self.o_zsh + (u - 1) * m + p]
            row[self.o_zsh + p] = row[self.o_zs + p]
        row[zh + 2] = 1.0
        if n == 0:
            row[zh] = self._rnd(z)
            row[zh + 1] = 0.0
            self._bank_start(row, self.o_zbank, -1, z)
            return
        fit = zl + phi * zb
        if m > 0:
            p = n % m
            sp = row[self.o_zs + p]
            fit = fit + sp
        e = z - fit
        if m > 0 and n < m:
            row[self.o_zs + p] = self._rnd(z - zl)
        else:
            if m > 0:
                row[self.o_zs + p] = self._rnd(sp + _gam(self.hw_log_gamma, self.hw_gamma_start, n, m) * e)
            self._bank(row, zh, self.o_zbank, -1, n, z, sp, self.zmalpha, self.zmab,
                       self.sa if na > 0 else NULL)

    cdef void _outputs(self, const double* row, long long n, const double* o, double alpha,
                       double* fc, double* lo, double* hi) noexcept nogil:
        """Combined forecasts and intervals of steps 1..H from origin n - 1 (n >= 1)."""
        cdef Py_ssize_t H = self.horizon, j, jo, ag = self._group(n - 1)
        cdef double bb, c, q, sc = self._scale(row)
        for j in range(1, H + 1):
            jo = (j if j < self.n_out else self.n_out) - 1
            bb = self._bb(row, n, j)
            c = self._combine(row, n, j, bb, self._rnd(_clipv(o[jo], self.clip)), self.phacc[j])
            fc[j - 1] = c
            q = self._halfwidth(ag, j, alpha)
            if isfinite(q):
                lo[j - 1] = c - sc * q
                hi[j - 1] = c + sc * q
            else:
                lo[j - 1] = NAN
                hi[j - 1] = NAN

    cdef void _net_reset(self, Py_ssize_t slot) noexcept nogil:
        """The network slot back to its initial state (a refused network step)."""
        cdef Py_ssize_t isz = 4 if self.net.f32 else 8, L = self.net.num_layers
        cdef Py_ssize_t wh = L * self.net.hidden_size, wc = L * self.net.Hc
        cdef Py_ssize_t wx = self.net.nw * self.net.n_in
        memset(self.net.p_h + slot * wh * isz, 0, wh * isz)
        memset(self.net.p_h0 + slot * wh * isz, 0, wh * isz)
        if wc:
            memset(self.net.p_c + slot * wc * isz, 0, wc * isz)
            memset(self.net.p_c0 + slot * wc * isz, 0, wc * isz)
        if wx:
            memset(self.net.p_x + slot * wx * isz, 0, wx * isz)
        self.net.p_n[slot] = 0

    cdef int _step(self, Py_ssize_t B, const long long* slots, const double* ys,
                   const double* xs, double alpha, double* pred, double* score, double* fc,
                   double* lo, double* hi) noexcept nogil:
        cdef Py_ssize_t b, k, nl, na, i, W = self.W, nin = self.n_in, no = self.n_out
        cdef Py_ssize_t H = self.horizon, nx = self.n_x
        cdef long long n
        cdef int st, status = 1
        cdef double* row
        cdef double d
        # 0. last line of defence: nothing changes on a bad row
        for b in range(B):
            if not (fabs(ys[b]) <= self.y_limit):
                return -1
            for i in range(nx):
                d = xs[b * nx + i] if xs != NULL else NAN
                if isinf(d) or (not isnan(d) and not fabs(d) <= FEAT_LIMIT):
                    return -1
        # 1. rows and features
        for b in range(B):
            self._load(slots[b], self.srow + b * W)
            self._features(xs + b * nx if xs != NULL else NULL, self.sfx + b * nx)
        # 2. the network: learners first (rows 0..nl-1 of the scratch), then the others
        nl = 0
        for b in range(B):
            n = self.p_count[slots[b]]
            if n >= 1 and n % self.learn_every == 0:
                self.sidx[nl] = b
                nl += 1
        na = nl
        for b in range(B):
            n = self.p_count[slots[b]]
            if n >= 1 and n % self.learn_every != 0:
                self.sidx[na] = b
                na += 1
        for b in range(B):
            self.skmap[b] = -1
        for k in range(na):
            b = self.sidx[k]
            self.skmap[b] = k
            n = self.p_count[slots[b]]
            row = self.srow + b * W
            self.sslot[k] = slots[b]
            self._inputs(row, n, self.sfx + b * nx, self.sX + k * nin)
            self._targets(row, n, ys[b], self.sY + k * no)
        if nl > 0:
            st = self.net._step(nl, self.sslot, self.sX, self.sY, self.sO, True)
            if st != 1:
                status = 2
                for k in range(nl):
                    self._net_reset(self.sslot[k])
                    self.sslot[k] = -1
        if na > nl:
            st = self.net._advance(na - nl, self.sslot + nl, self.sX + nl * nin, self.sO + nl * no)
            if st != 1:
                status = 2
                for k in range(nl, na):
                    self._net_reset(self.sslot[k])
                    self.sslot[k] = -1
        # 3. every key's value, in batch order (k walks the network rows of each b)
        for b in range(B):
            row = self.srow + b * W
            n = self.p_count[slots[b]]
            pred[b] = NAN
            score[b] = NAN
            if n >= 1:
                k = self.skmap[b]
                self._observe(row, n, ys[b],
                              self.sO + k * no if self.sslot[k] >= 0 else NULL,
                              pred + b, score + b)
            self._update(row, n, ys[b])
            self._store(slots[b], row)
            self.p_count[slots[b]] = n + 1 if n + 1 < COUNT_LIMIT - 1 else n
        # 4. the feature statistics
        for b in range(B):
            for i in range(nx):
                if xs == NULL or isnan(xs[b * nx + i]) or self.fn[i] >= COUNT_LIMIT - 1:
                    continue
                self.fn[i] += 1
                d = xs[b * nx + i] - self.fmean[i]
                self.fmean[i] = self.fmean[i] + d / <double>self.fn[i]
                self.fm2[i] = self.fm2[i] + d * (xs[b * nx + i] - self.fmean[i])
                if not self.fm2[i] <= 1e300:
                    self.fm2[i] = 1e300
        # 5. forecasts of the next H values from the new states (features unknown: 0)
        for b in range(B):
            memset(self.sfx + b * nx, 0, nx * sizeof(double))
            self._inputs(self.srow + b * W, self.p_count[slots[b]], self.sfx + b * nx,
                         self.sX + b * nin)
        self.net._predict(B, slots, self.sX, self.sO)
        for b in range(B):
            self._outputs(self.srow + b * W, self.p_count[slots[b]], self.sO + b * no, alpha,
                          fc + b * H, lo + b * H, hi + b * H)
        if self.t < COUNT_LIMIT - 1:
            self.t += 1
        return status

    # ------------------------------------------------------------ Python entry points
    def _ready(self):
        if self.n_in == 0:
            raise RuntimeError("the core was not initialised")
        if self._busy or self.net._busy:
            raise RuntimeError("another thread is inside a step of this core: one call at a "
                               "time per GlobalCore")

    def _slots(self, slots, bint distinct, bint batch):
        self._ready()
        return self.net._slot_array(slots, distinct, batch)

    def _slot(self, slot):
        self._ready()
        if isinstance(slot, (bool, np.bool_)) or not isinstance(slot, (int, np.integer)):
            raise TypeError(f"slot must be an int, got {type(slot).__name__}")
        s = int(slot)
        if not 0 <= s < self.capacity:
            raise ValueError(f"slot {s} is out of range [0, {self.capacity})")
        return s

    def _alpha(self, alpha):
        return _flt(alpha, "alpha", 0.0, 1.0, True, True)

    def step(self, slots, ys, xs, pred, score, fc, lo, hi, alpha=0.1):
        """Learn one value of each of B distinct keys (see the module docstring); returns 1
        (learned), 2 (learned, but the network step was refused: only the per-key parts
        advanced, the batch's network slots were reset) or -1 (a non-finite y or feature,
        or |y| > ``y_limit``: nothing changed, no output written). Bad arguments raise
        ValueError/TypeError before anything runs."""
        cdef Py_ssize_t B, H = self.horizon, i, j
        cdef const long long* sp = <const long long*>_fast(slots, cnp.NPY_INT64, 1, -1, 0, False)
        self._ready()
        if sp == NULL:
            slots = self.net._slot_array(slots, True, True)   # converts, or raises the reason
            sp = <const long long*>_ptr(slots)
            B = slots.shape[0]
        else:
            B = cnp.PyArray_DIM(<cnp.ndarray>slots, 0)
            self.net._check_ptr(sp, B, True, True)
        cdef void* ptrs[7]
        cdef Py_ssize_t sizes[7]
        arrays = (pred, score, fc, lo, hi, ys, xs)
        shapes = ((B, 0, 1), (B, 0, 1), (B, H, 2), (B, H, 2), (B, H, 2), (B, 0, 1),
                  (B, self.n_x, 2))
        names = ("pred", "score", "fc", "lo", "hi", "ys", "xs")
        for i in range(7):
            if i == 6 and xs is None:
                ptrs[i] = NULL
                sizes[i] = 0
                continue
            d0, d1, nd = shapes[i]
            ptrs[i] = _fast(arrays[i], cnp.NPY_DOUBLE, nd, d0, d1, i < 5)
            if ptrs[i] == NULL:  # the Python checks raise the reason
                _farg(arrays[i], names[i], (d0,) if nd == 1 else (d0, d1), i < 5)
                ptrs[i] = _ptr(arrays[i])
            sizes[i] = cnp.PyArray_NBYTES(<cnp.ndarray>arrays[i])
        for i in range(5):  # contiguous arrays share memory exactly when their ranges overlap
            for j in range(i + 1, 7):
                if (sizes[i] and sizes[j] and <char*>ptrs[i] < <char*>ptrs[j] + sizes[j]
                        and <char*>ptrs[j] < <char*>ptrs[i] + sizes[i]):
                    raise ValueError("the output arrays must not overlap each other or the inputs")
        cdef double a
        if type(alpha) is float and 0.0 < <double>alpha < 1.0:
            a = alpha
        else:
            a = self._alpha(alpha)
        if self.net.optimizer is None or self.net.optimizer.size != self.net.size:
            raise RuntimeError("the network has no optimizer bound to its size")
        cdef const double* xp = <const double*>ptrs[6] if self.n_x else NULL
        cdef const double* yp = <const double*>ptrs[5]
        cdef double* pp = <double*>ptrs[0]
        cdef double* scp = <double*>ptrs[1]
        cdef double* fp = <double*>ptrs[2]
        cdef double* lp = <double*>ptrs[3]
        cdef double* hp = <double*>ptrs[4]
        cdef int st
        self._busy = True
        self.net._busy = True
        try:
            with nogil:
                st = self._step(B, sp, yp, xp, a, pp, scp, fp, lp, hp)
        finally:
            self._busy = False
            self.net._busy = False
        return st

    def _logical(self, slots):
        """Rows of the given slots as _load gives them (k, W) float64: the float rows, then
        the float16 part's bits (see _cset)."""
        return np.concatenate((self._rows[slots].astype(np.float64),
                               self._half[slots].astype(np.float64)), axis=-1)

    def _row(self, s):
        row = np.ascontiguousarray(self._logical(s), dtype=np.float64)
        return row, int(self._count[s])

    def _x_arg(self, xs, h):
        """The features of the next value from ``xs`` (None, (n_x,) or (h', n_x)): (n_x,) or None."""
        if xs is None or self.n_x == 0:
            return None
        if not isinstance(xs, np.ndarray) or xs.dtype != np.float64:
            raise TypeError("xs must be None or a float64 ndarray")
        if xs.ndim == 1:
            x = xs
        elif xs.ndim == 2 and xs.shape[0] >= 1:
            x = xs[0]
        else:
            raise ValueError(f"xs must have shape (n_x,) or (h, n_x), got {xs.shape}")
        if x.shape != (self.n_x,):
            raise ValueError(f"xs rows must hold n_x={self.n_x} features, got {x.shape}")
        if np.any(np.isinf(x)) or np.any(np.abs(x[~np.isnan(x)]) > FEAT_LIMIT):
            raise ValueError("xs holds infinite or huge features")
        return np.ascontiguousarray(x)

    def _forecast(self, s, Py_ssize_t h, xs):
        """(combined (h,), scale) from the key's committed state; NaN before its first value.
        The core is marked busy meanwhile (the network's predict releases the GIL: a step
        from another thread must not change the rows read here)."""
        x = self._x_arg(xs, h)
        self._ready()
        self._busy = True
        try:
            return self._forecast_rows(s, h, x)
        finally:
            self._busy = False

    def _hold(self, fn, *args):
        """fn(*args) with the core marked busy (steps from other threads are refused)."""
        self._ready()
        self._busy = True
        try:
            return fn(*args)
        finally:
            self._busy = False

    def _forecast_rows(self, s, Py_ssize_t h, x):
        row, n = self._row(s)
        out = np.full(h, np.nan)
        if n == 0:
            return out, 1.0
        cdef double[::1] rv = row
        cdef double* rp = &rv[0]
        fx = np.zeros(max(self.n_x, 1))
        cdef double[::1] fxv = fx
        cdef double[::1] xv
        if x is not None:
            xv = x
            self._features(&xv[0], &fxv[0])
        u = np.zeros((1, self.n_in))
        cdef double[::1] uv = u.reshape(-1)
        self._inputs(rp, n, &fxv[0], &uv[0])
        o = np.zeros((1, self.n_out))
        self.net.predict(np.array([s], dtype=np.int64), u, o)
        corr = np.array([self._rnd(min(max(v, -self.clip), self.clip)) for v in o[0]])
        cdef double[::1] cv = corr
        cdef Py_ssize_t j, H = self.horizon
        cdef double ph = 0.0, p = 1.0, bb
        for j in range(1, h + 1):
            p = p * self.hw_phi
            ph = ph + p
            if j <= H:
                bb = self._bb(rp, n, j)
            else:
                bb = row[self.o_hw] + ph * row[self.o_hw + 1]
                if self.period > 0:
                    bb = bb + row[self.o_s + (n - 1 + j) % self.period]
            out[j - 1] = self._combine(rp, n, j, bb, cv[(j if j < self.n_out else self.n_out) - 1],
                                       ph)
        return out, self._scale(rp)

    def forecast(self, slot, h, xs=None):
        """The combined forecasts of the key's next ``h`` values (any h >= 1; beyond H:
        backbone + the last correction, step H's weights); NaN before its first value.
        ``xs``: the features of the next value ((n_x,) or (h, n_x), first row used; None:
        missing). Changes nothing."""
        s = self._slot(slot)
        h = _int(h, "h", 1, 10 ** 6)
        return self._forecast(s, h, xs)[0]

    def interval(self, slot, h, alpha=0.1, xs=None):
        """``(lo, hi)`` of the 1 - alpha intervals of the next ``h`` values (steps beyond H:
        step H's half-width); NaN while unknown. Changes nothing."""
        s = self._slot(slot)
        h = _int(h, "h", 1, 10 ** 6)
        a = self._alpha(alpha)
        x = self._x_arg(xs, h)
        return self._hold(self._interval, s, h, a, x)

    def _interval(self, s, h, a, x):
        c, sc = self._forecast_rows(s, h, x)
        lo, hi = np.full(h, np.nan), np.full(h, np.nan)
        g = self._group(int(self._count[s]) - 1)
        for j in range(1, h + 1):
            q = self._halfwidth(g, j, a)
            if math.isfinite(q) and not math.isnan(c[j - 1]):
                lo[j - 1] = c[j - 1] - sc * q
                hi[j - 1] = c[j - 1] + sc * q
        return lo, hi

    def score(self, slot, y, x=None):
        """The anomaly score (1 - conformal p-value) ``y`` would get as the key's next value;
        NaN while unknown. Changes nothing."""
        s = self._slot(slot)
        y = _flt(y, "y", -self.y_limit, self.y_limit)
        x = self._x_arg(x, 1)
        return self._hold(self._score, s, y, x)

    def _score(self, s, y, x):
        row, n = self._row(s)
        if n - 1 < WARM or self._crow(self._group(n - 1), 0) == -1:
            return math.nan
        c, sc = self._forecast_rows(s, 1, x)
        cdef double[::1] rv = row
        bb = self._bb(&rv[0], n, 1)
        cn = self._rc((c[0] - bb) / sc)
        v = abs((y - bb) / sc - cn)
        return 1.0 - self._pvalue(self._group(n - 1), v if v <= VMAX else VMAX)

    def halfwidth(self, j, alpha=0.1, group=AGES - 1):
        """The shared normalised half-width of step ``j`` for origins of age ``group`` (0:
        the first cycle, 1: the scale forming, 2: formed; inf while unknown)."""
        self._ready()
        g = _int(group, "group", 0, AGES - 1)
        return float(self._halfwidth(g, _int(j, "j", 1, 10 ** 6), self._alpha(alpha)))

    def count(self, slot):
        """Values the key's slot has seen since its reset."""
        return int(self._count[self._slot(slot)])

    # ------------------------------------------------------------ slot management
    def reset(self, slots):
        """Back to a fresh key (the network slot too) for one slot or an array of slots."""
        return self._hold(self._reset, slots)

    def _reset(self, slots):
        slots = self.net._slot_array(slots, False, False)
        self.net.reset(slots)
        self._rows[slots] = 0
        self._half[slots] = 0
        self._count[slots] = 0

    def copy_slots(self, src, dst):
        """Slot ``dst[i]`` takes the state of ``src[i]`` (the targets distinct)."""
        return self._hold(self._copy_slots, src, dst)

    def _copy_slots(self, src, dst):
        src = self.net._slot_array(src, False, False)
        dst = self.net._slot_array(dst, True, False)
        if src.shape != dst.shape:
            raise ValueError("src and dst differ in length")
        self.net.copy_slots(src, dst)
        self._rows[dst] = self._rows[src]
        self._half[dst] = self._half[src]
        self._count[dst] = self._count[src]

    def row_parts(self):
        """Field -> (offset, length) of a per-key row."""
        return dict(row_layout(self.horizon, self.period, self.net.k2, self.n_members)[4])

    def get_slots(self, slots):
        """The state of the given slots: ``{"row": (k, Wf) float64, "half": (k, Wh) uint16
        (the bits of the rows' float16 part: float32 slots' pending combined offsets),
        "count": int64 (k,), "net": net.get_slots(slots)}`` (copies)."""
        return self._hold(self._get_slots, slots)

    def _get_slots(self, slots):
        slots = self.net._slot_array(slots, False, False)
        return {"row": self._rows[slots].astype(np.float64), "half": self._half[slots].copy(),
                "count": self._count[slots].copy(),
                "net": self.net.get_slots(slots)}

    def _joined(self, rows, half, k):
        """(k, Wf) float rows and the (k, Wh) uint16 bits of their float16 part as one
        (k, W) float64 array, else ValueError/TypeError."""
        if not isinstance(rows, np.ndarray) or rows.dtype not in (np.float32, np.float64):
            raise TypeError("row must be a float32 or float64 ndarray")
        if rows.shape != (k, self.Wf):
            raise ValueError(f"row has shape {rows.shape}, expected {(k, self.Wf)}")
        if (not isinstance(half, np.ndarray) or half.dtype != np.uint16
                or half.shape != (k, self.Wh)):
            raise ValueError(f"half must be a uint16 ndarray (float16 bits) of shape "
                             f"{(k, self.Wh)}")
        h = np.ascontiguousarray(half).view(np.float16).astype(np.float64)
        if not np.all(np.isfinite(h)):
            raise ValueError("half holds non-finite float16 values")
        return np.concatenate((rows.astype(np.float64), h), axis=1)

    def _check_rows(self, rows, count, k):
        """Validated rows (k, W) as loaded, split as stored (float rows, float16 values) with
        the counts of k keys, else ValueError/TypeError."""
        a = _array(rows, "rows", (k, self.W)) if not (
            isinstance(rows, np.ndarray) and rows.dtype == np.float32) else None
        if a is None:
            if rows.shape != (k, self.W):
                raise ValueError(f"rows has shape {rows.shape}, expected {(k, self.W)}")
            a = np.array(rows, dtype=np.float64, order="C", copy=True)
            if not np.all(np.isfinite(a)):
                raise ValueError("rows has non-finite values")
        # the limits as stored: float32 rounds 1e30 and 1e36 up (a value at the limit that
        # was learned must be taken back)
        big, ylim, vmax = self._rnd(self.big), self._rnd(self.y_limit), self._rnd(VMAX)
        if np.any(np.abs(a) > big):
            raise ValueError(f"rows hold values beyond +-{self.big:g}")
        parts = self.row_parts()
        o, n = parts["y"]
        if np.any(np.abs(a[:, o:o + n]) > ylim):
            raise ValueError("rows hold history values beyond the value limit")
        o, n = parts["hw"]
        if np.any(a[:, o + 2] < 0):
            raise ValueError("rows hold a negative scale")
        o, n = parts["origin"]
        if np.any(a[:, o + 2:o + n:3] < 0):
            raise ValueError("rows hold a negative origin scale")
        o, n = parts["err"]
        if np.any(a[:, o:o + n] < 0):   # in y's units: bounded by the clamp above
            raise ValueError("rows hold negative combination errors")
        for name, K in (("bank", self.n_bank), ("zbank", self.n_members)):
            o, n = parts[name]
            if np.any(a[:, o + 2:o + 3 * K:3] < 0):
                raise ValueError(f"rows hold a negative {name} member error")
        o, n = parts["ad"]
        if np.any(np.abs(a[:, o:o + 2]) > AD_UCLIP):
            raise ValueError(f"rows hold an adaptive member's u beyond +-{AD_UCLIP:g}")
        if np.any(a[:, o + 2:o + 4] < 0):
            raise ValueError("rows hold a negative adaptive member's v")
        o, n = parts["zhw"]
        if np.any((a[:, o + 2] != 0) & (a[:, o + 2] != 1)):
            raise ValueError("rows hold a log-member flag other than 0 or 1")
        if not isinstance(count, np.ndarray) or count.dtype != np.int64 or count.shape != (k,):
            raise ValueError(f"count must be an int64 ndarray of shape ({k},)")
        if k and (count.min() < 0 or count.max() >= COUNT_LIMIT):
            raise ValueError("count must hold values in [0, 2**62)")
        if np.any(a[count == 0] != 0):
            raise ValueError("a slot that saw no value must have an all-zero row")
        o, n = parts["comb"]
        if self.f32:
            if np.any(np.abs(a[:, o:o + n]) > HALF_MAX):
                raise ValueError("rows hold pending combined offsets beyond +-65504")
            return (a[:, :self.Wf].astype(np.float32),
                    np.ascontiguousarray(a[:, self.Wf:]).astype(np.float16).view(np.uint16),
                    np.array(count, dtype=np.int64, copy=True))
        return a, np.zeros((k, 0), dtype=np.uint16), np.array(count, dtype=np.int64, copy=True)

    def set_slots(self, slots, state):
        """Take over ``state`` (as ``get_slots`` returns it) for ``slots`` (distinct), all of
        it validated first (ValueError/TypeError, nothing changes otherwise)."""
        return self._hold(self._set_slots, slots, state)

    def _set_slots(self, slots, state):
        slots = self.net._slot_array(slots, True, False)
        if type(state) is not dict or set(state) != {"row", "half", "count", "net"}:
            raise ValueError("slot state must be a dict with keys ['count', 'half', 'net', 'row']")
        k = slots.shape[0]
        rows, half, count = self._check_rows(self._joined(state["row"], state["half"], k),
                                             state["count"], k)
        net_arrays = self.net._check_slots(state["net"], k)
        self.net.set_slots(slots, state["net"])
        self._rows[slots] = rows
        self._half[slots] = half
        self._count[slots] = count

    # ------------------------------------------------------------ state
    def _shared_state(self):
        return {"t": int(self.t), "conf_raw": self._craw.copy(), "conf_sorted": self._csrt.copy(),
                "conf_count": self._ccnt.copy(), "conf_pos": self._cpos.copy(),
                "conf_at": self._cat.copy(), "pool": self._pool.copy(),
                "pool_n": self._pooln.copy(), "feat_n": self._fn.copy(),
                "feat_mean": self._fmean.copy(), "feat_m2": self._fm2.copy()}

    def _check_shared(self, d):
        if type(d) is not dict or set(d) != _SHARED_KEYS:
            raise ValueError(f"the core's shared state must be a dict with keys "
                             f"{sorted(_SHARED_KEYS)}")
        H, Wn, A, nx = self.horizon, self.window, self.n_levels, self.n_x
        out = {"t": _counter(d["t"], "t")}

        def ints(name, shape, hi):
            v = d[name]
            if not isinstance(v, np.ndarray) or v.dtype != np.int64 or v.shape != shape:
                raise ValueError(f"{name} must be an int64 ndarray of shape {shape}")
            if v.size and (v.min() < 0 or v.max() > hi):
                raise ValueError(f"{name} must hold values in [0, {hi}]")
            return np.array(v, dtype=np.int64, copy=True)

        GH = AGES * H   # conformal rows: age group g, step j at g H + j - 1
        cnt = ints("conf_count", (GH,), Wn)
        pos = ints("conf_pos", (GH,), Wn - 1)
        raw = _array(d["conf_raw"], "conf_raw", (GH, Wn))
        srt = _array(d["conf_sorted"], "conf_sorted", (GH, Wn))
        if np.any(raw < 0) or np.any(raw > VMAX):
            raise ValueError("conf_raw holds scores out of [0, 1e30]")
        for j in range(GH):
            c = int(cnt[j])
            if c < Wn and pos[j] != c:
                raise ValueError("conf_pos must equal conf_count until a window is full")
            if np.any(raw[j, c:] != 0) or np.any(srt[j, c:] != 0):
                raise ValueError("conf_raw/conf_sorted hold values beyond conf_count")
            if not np.array_equal(np.sort(raw[j, :c]), srt[j, :c]):
                raise ValueError("conf_sorted is not the sorted conf_raw window")
        at = _array(d["conf_at"], "conf_at", (A, GH))
        if np.any(at < AT_LO) or np.any(at > AT_HI):
            raise ValueError("conf_at holds levels out of [-1, 2]")
        pool = _array(d["pool"], "pool", (H, E))
        if np.any(pool < 0) or np.any(pool > VMAX):
            raise ValueError("pool holds errors out of [0, 1e30]")
        pooln = ints("pool_n", (H, E), COUNT_LIMIT - 1)
        fn = ints("feat_n", (nx,), COUNT_LIMIT - 1)
        fmean = _array(d["feat_mean"], "feat_mean", (nx,))
        fm2 = _array(d["feat_m2"], "feat_m2", (nx,))
        if np.any(np.abs(fmean) > FEAT_LIMIT) or np.any(fm2 < 0) or np.any(fm2 > 1e300):
            raise ValueError("the feature statistics are out of range")
        if np.any((fn == 0) & ((fmean != 0) | (fm2 != 0))):
            raise ValueError("feature statistics without values must be zero")
        out.update(conf_raw=raw, conf_sorted=srt, conf_count=cnt, conf_pos=pos, conf_at=at,
                   pool=pool, pool_n=pooln, feat_n=fn, feat_mean=fmean, feat_m2=fm2)
        return out

    def get_shared_state(self):
        """Everything that is not a key's slot: ``{"net": net.get_shared_state(), "core":
        {...}}`` (weights, optimizer, counters, conformal, pooled priors, feature
        statistics; copies). With ``get_slots`` this checkpoints only the live keys."""
        return self._hold(self._get_shared_state)

    def _get_shared_state(self):
        return {"net": self.net.get_shared_state(), "core": self._shared_state()}

    def set_shared_state(self, state):
        """Take over ``get_shared_state()`` output, all of it validated first."""
        return self._hold(self._set_shared_state, state)

    def _set_shared_state(self, state):
        if type(state) is not dict or set(state) != {"net", "core"}:
            raise ValueError("a GlobalCore shared state must be a dict with keys ['core', 'net']")
        shared = self._check_shared(state["core"])
        self.net._check_shared(state["net"])
        if state["net"]["optimizer"] is None:
            raise ValueError("the network state has no optimizer")
        self.net.set_shared_state(state["net"])
        self._assign_shared(shared)

    def get_state(self):
        """``{"net": net.get_state(), "shared": ..., "rows": (capacity, W) as stored
        (float32 or float64), "count": int64 (capacity,)}`` (copies)."""
        return self._hold(self._get_state)

    def _get_state(self):
        return {"net": self.net.get_state(), "shared": self._shared_state(),
                "rows": self._rows.copy(), "half": self._half.copy(), "count": self._count.copy()}

    def set_state(self, state):
        """Take over a whole state (as ``get_state`` returns it); every field is validated
        before anything is assigned (ValueError/TypeError)."""
        return self._hold(self._set_state, state)

    def _set_state(self, state):
        if type(state) is not dict or set(state) != _STATE_KEYS:
            raise ValueError(f"a GlobalCore state must be a dict with keys {sorted(_STATE_KEYS)}")
        rows = state["rows"]
        want = np.float32 if self.f32 else np.float64
        if not isinstance(rows, np.ndarray) or rows.dtype != want:
            raise ValueError(f"rows must be a {np.dtype(want).name} ndarray")
        rows, half, count = self._check_rows(self._joined(rows, state["half"], self.capacity),
                                             state["count"], self.capacity)
        shared = self._check_shared(state["shared"])
        net_state = state["net"]
        if type(net_state) is not dict or set(net_state) != {"shared", "slots"}:
            raise ValueError("net state must be a dict with keys ['shared', 'slots']")
        self.net._check_shared(net_state["shared"])
        self.net._check_slots(net_state["slots"], self.capacity)
        if net_state["shared"]["optimizer"] is None:
            raise ValueError("the network state has no optimizer")
        self.net.set_state(net_state)   # validates again, assigns (nothing can fail below)
        self._assign_shared(shared)
        self._rows[...] = rows
        self._half[...] = half
        self._count[...] = count

    def config(self):
        return dict(self._config)

    @staticmethod
    def from_state(config, state):
        """A core built from ``config()`` and ``get_state()``; ValueError/TypeError if either
        is invalid."""
        if type(config) is not dict or set(config) != set(_CONFIG_KEYS):
            raise ValueError(f"a GlobalCore config must be a dict with keys {sorted(_CONFIG_KEYS)}")
        c = dict(config)
        args = [c.pop(k) for k in ("cell", "hidden_size", "num_layers", "k2", "horizon",
                                    "period", "n_x", "capacity", "max_batch")]
        core = GlobalCore(*args, **c)
        core.set_state(state)
        return core

    def __reduce__(self):
        return (_global_from_state, (self.config(), self.get_state()))

    def __repr__(self):
        return (f"GlobalCore({_CELL_NAMES[self.net.cell]}, "
                f"hidden={self.net.hidden_size}, H={self.horizon}, m={self.period}, "
                f"n_x={self.n_x}, capacity={self.capacity}, slots={self.slot_dtype}, t={self.t})")


def _half_bits(values):
    """The binary16 bits of each float64 value (rounded to nearest even from the double, as
    the rows store the pending combined offsets) and the value back, as float64: (bits
    uint16, values float64). For tests."""
    cdef cnp.ndarray v = np.ascontiguousarray(values, dtype=np.float64).ravel()
    cdef cnp.ndarray bits = np.empty(v.shape[0], dtype=np.uint16)
    cdef cnp.ndarray back = np.empty(v.shape[0], dtype=np.float64)
    cdef Py_ssize_t i
    cdef double* pv = <double*>cnp.PyArray_DATA(v)
    cdef unsigned short* pb = <unsigned short*>cnp.PyArray_DATA(bits)
    cdef double* pk = <double*>cnp.PyArray_DATA(back)
    for i in range(v.shape[0]):
        pb[i] = gc_d2h(pv[i])
        pk[i] = gc_h2d(pb[i])
    return bits, back


def _global_from_state(config, state):
    """Unpickling entry point: ``GlobalCore.from_state``."""
    return GlobalCore.from_state(config, state)




