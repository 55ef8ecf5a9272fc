"""The per-series statistical backbone: a bank of online exponential-smoothing members and an
online period detector (issue 8; the prototype study is ``docs/research/seasonal/``).

Layers:
- configuration, member structure and state validation in Python (``__init__``,
  ``_set_structure``, ``_check_state``); every buffer is a NumPy array allocated at
  construction for the largest bank (the declared periods plus up to two detected ones);
- the per-observation path, ``_update``, and the readers ``_forecast``, ``_window``,
  ``_scale``, ``_last``, ``_snaive`` are ``noexcept nogil`` C-level methods that allocate
  nothing (the forecaster kernel calls them directly);
- thin Python wrappers for tests and slow paths.

The math (readable twin: ``tests/reference_backbone.py``). K members, each with a transform
(log while every value is positive, else additive), alpha, (beta, phi), gamma and a set P_k of
periods; in z-space (z = log y or y):
    zhat = l + phi b + sum_{p in P_k} s_p[t mod m_p];   e = z - zhat
    l <- l + phi b + alpha e;   b <- phi b + alpha beta e;   s_p[t mod m_p] += gamma e / |P_k|
Grid: alpha {0.1, 0.3, 0.6, 1.0} x (beta, phi) {(0, 1), (0.1, 0.9), (0.1, 0.98)} x
{log, additive} = 24 non-seasonal members; each declared period i adds two members per
non-seasonal one (gamma 0.2, 0.5) carrying periods 0..i; then two adaptive members (additive,
then log; phi 0.98; every declared period) whose (alpha, beta, gamma) = 0.01 + 0.98 sigmoid(u)
start at (0.3, 0.1, 0.6) and learn online: after each value u_i -= 0.02 g_i / sqrt(v_i), g_i =
d(e^2 / 2) / du_i through the smoothing equations (sensitivities of l, b and the indices to the
constants carried as a recursion, reset to 0 when the indices are (re)initialised), v_i the EW
(0.99) mean of g_i^2, u clipped to +-30 (K = 74 for one period, 122 for two). They are no
parents of detected-period members.
Log members are dropped for good at the first value <= 0. Declared periods (sorted) get
one-cycle indices at t = m, the first one is re-initialised at t = 2 m from two cycles around a
fitted trend line. A detected period adds two copies (gamma 0.2, 0.5) of every non-seasonal
member, indices from the last (up to 4) cycles, losses and pending forecasts copied.

Member weights per horizon step j: loss[j, k] is the absolute error, in y units, of the
forecast of step j member k issued j steps before the value: the running mean of its first
errors, then (once n / (n + 1) reaches 0.98) the EW average with decay 0.98. Member k's score
x_k = eta_j (rel_jk + ra_k) / 2: rel_jk = (L_jk - L_min,j) / max(L_min,j, 1e-12), ra_k its mean
over the matured steps (a member good at every step counts for more than one that was lucky
at this one), eta_j = 60 n_j / (n_j + 50), n_j = matured losses of step j; weight
exp(-(x_k - min x)), 0 where that exponent is >= 40 (below 4.3e-18 of the best member's 1:
no exp for members that cannot count); equal weights before the first. Pending forecasts: one ring per step j of
length j (row j (j - 1) / 2 + (issue time mod j)), K H (H + 1) / 2 numbers: every forecast is
scored against the value it was made for.

Detector (auto): ACF of u_t = z_t - EWMA_{t-1}(z) (rate 0.5, z = log y while positive) as
cumulative sums at lags 0..L; a lag m is a candidate when 3 m <= n, r_m is a local maximum,
its prominence over min_{k<m} r_k exceeds max(0.3, 5 sqrt(2 B / (n - m))), B = 1 + 2 (r_1^2 +
r_2^2), r_m > 0.15, 2 m <= L and r_2m > max(r_m / 3, 0.075); the first period is the smallest
candidate with >= 0.7 of the best prominence, refined to the highest r_m + r_2m within +-25 %,
accepted after m / 2 consecutive checks; a second one must be a candidate multiple >= 4 m with
r above r_m + 0.15. It stops after two periods.

Finiteness for any finite input with |y| <= 1e100: level, trend and indices are clamped to
+-1e150, log-space forecasts to [-700, 690] before exp, a constant detector signal has no ACF,
window values are clipped to +-100.
"""
import math

import numpy as np

from libc.string cimport memcpy, memset
from libc.math cimport log, fabs, sqrt, fmax, INFINITY

cdef extern from "_kernels.h":
    # exp without glibc's error-handling wrapper (sr_exp_nw in _kernels.h: the same bits)
    double exp "sr_exp_nw" (double x) noexcept nogil
    void _exp_init "sr_exp_nw_init" () noexcept nogil

_exp_init()

cdef extern from "_kernels.h":
    ctypedef double (*exp_fn)(double) noexcept nogil
    # Backbone._weights' loops (sr_bb_weights in _kernels_impl.h, one copy per instruction
    # set, the same bits in each; see _weights)
    void sr_bb_weights(Py_ssize_t H, Py_ssize_t Km, Py_ssize_t K, long long t, int nr,
                       const Py_ssize_t* rlo, const Py_ssize_t* rhi, int dead_log,
                       const double* loss, const double* F, double* W, double* ra,
                       double* lov, double* lod, double* wsum, double* fc, double eta0,
                       double warm_n, double mix_all, double cut, exp_fn ex) noexcept nogil
    # _update's and the detector's element-wise loops (the same operations per element)
    void sr_bb_loss(Py_ssize_t n, double* lrow, const double* row, double y, double dec,
                    double dec1, int first) noexcept nogil
    void sr_bb_acf(Py_ssize_t n, const double* dC, const double* lagd, double dn, double mu2,
                   double var, double* dr) noexcept nogil
    void sr_bb_lagprod(Py_ssize_t n, double* dC, double d, const double* db,
                       Py_ssize_t last) noexcept nogil
    int sr_select12(const char* name) noexcept nogil

cdef extern from *:
    exp_fn _exp_ptr "sr_exp_nw"            # the exp above, as the pointer it is

from streamrnn._core._cells import ISA as _ISA

# this module's copy of the C helpers: the one _cells chose from STREAMRNN_ISA
sr_select12(_ISA.encode("ascii"))

from streamrnn._core._optim import _array, _number, _counter, STEP_LIMIT


# ---------------------------------------------------------------- constants (the study's defaults)
cdef double LOSS_DECAY = 0.98
cdef double ETA = 60.0
cdef double WARM_N = 50.0
cdef double MIX_ALL = 1.0       # weight of the mean relative loss over the steps in a score
cdef double SCALE_DECAY = 0.97
cdef double BIG = 1e150
cdef double ZMAX = 690.0
cdef double ZMIN = -700.0
cdef double WINDOW_CLIP = 100.0
cdef double CUT = 40.0          # weights exp(-x) with x >= 40 (< 4.3e-18 of the best's 1) are 0
cdef double EW = 0.5            # the detector's EWMA rate (a linear trend lags it 1 / EW - 1 steps)
cdef long long MIN_CYCLES = 3
cdef double R_MIN = 0.15
cdef double PROM_MIN = 0.3
cdef double ZCRIT = 5.0
cdef double FRAC = 0.7
cdef double MARGIN = 0.15
cdef int BQ = 3
cdef int N_BASE = 24            # non-seasonal members (4 alphas x 3 trends x 2 transforms)
cdef int N_G = 2                # gammas
# adaptive members (one additive, one log; damped trend phi 0.98; all declared periods): their
# alpha, beta, gamma = AD_LO + (AD_HI - AD_LO) sigmoid(u), each u moved by AD_LR g / sqrt(v),
# g = d(e^2 / 2) / du through the smoothing equations, v its EW mean square (rate 1 - AD_V)
cdef int N_AD = 2
cdef double AD_PHI = 0.98
cdef double AD_LO = 0.01
cdef double AD_HI = 0.99
cdef double AD_LR = 0.02
cdef double AD_V = 0.99
cdef double AD_UCLIP = 30.0
AD_THETA0 = (0.3, 0.1, 0.6)     # alpha, beta, gamma at the start

MAX_HORIZON = 400
MAX_PERIOD = 10000
MAX_DECLARED = 4
MAX_LAG = 10000
Y_LIMIT = 1e100

_KEYS = frozenset((
    "horizon", "periods", "auto", "max_lag", "t", "alive_log", "detected", "l", "b",
    "season", "loss", "ring", "hist", "recent", "scale_ew", "det_n", "det_ewm", "det_S0",
    "det_S2", "det_buf", "det_C", "det_cand", "det_cand_n", "ad_u", "ad_v", "ad_dl", "ad_db",
    "ad_ds"))


def _u0():
    """The adaptive members' starting unconstrained constants (logits of AD_THETA0)."""
    out = []
    for th in AD_THETA0:
        sg = (th - AD_LO) / (AD_HI - AD_LO)
        out.append(math.log(sg / (1.0 - sg)))
    return tuple(out)


cdef inline double clampd(double x, double lo, double hi) noexcept nogil:
    return lo if x < lo else (hi if x > hi else x)


def _config(horizon, periods, auto, max_lag):
    """Validated (horizon, sorted declared periods, auto, max_lag), else ValueError/TypeError."""
    for v, name in ((horizon, "horizon"), (max_lag, "max_lag")):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    horizon, max_lag = int(horizon), int(max_lag)
    if not 1 <= horizon <= MAX_HORIZON:
        raise ValueError(f"horizon must be in [1, {MAX_HORIZON}], got {horizon}")
    if not 4 <= max_lag <= MAX_LAG:
        raise ValueError(f"max_lag must be in [4, {MAX_LAG}], got {max_lag}")
    if not isinstance(auto, (bool, np.bool_)):
        raise TypeError(f"auto must be a bool, got {type(auto).__name__}")
    if not isinstance(periods, (tuple, list)):
        raise TypeError(f"periods must be a tuple of ints, got {type(periods).__name__}")
    ps = []
    for m in periods:
        if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)):
            raise TypeError(f"periods must be ints, got {type(m).__name__}")
        if not 2 <= int(m) <= MAX_PERIOD:
            raise ValueError(f"a period must be in [2, {MAX_PERIOD}], got {int(m)}")
        ps.append(int(m))
    ps = tuple(sorted(set(ps)))
    if len(ps) > MAX_DECLARED:
        raise ValueError(f"at most {MAX_DECLARED} declared periods, got {len(ps)}")
    return horizon, ps, bool(auto), max_lag


def _farray(value, name, shape, limit):
    """_optim._array's checked float64 copy, whose values must also be within +-limit."""
    a = _array(value, name, shape)
    if a.size and np.max(np.abs(a)) > limit:
        raise ValueError(f"{name} has values beyond +-{limit:g}")
    return a


def _restore(state):
    return Backbone.from_state(state)


cdef class Backbone:
    """Bank of online exponential-smoothing members with per-step soft-min weights, and an
    optional online period detector. ``update(y)`` learns one value; ``forecast(h)`` reads."""

    def __init__(self, horizon, periods=(), auto=False, max_lag=200):
        horizon, periods, auto, max_lag = _config(horizon, periods, auto, max_lag)
        self.horizon, self.declared, self.auto, self.max_lag = horizon, periods, auto, max_lag
        cdef int H = horizon, L = max_lag
        self.P_decl = len(periods)
        self.k_ad = N_BASE * (1 + N_G * self.P_decl)
        self.K0 = self.k_ad + N_AD
        self.S_A = sum(periods)
        self.K_max = self.K0 + (2 * N_BASE * N_G if auto else 0)
        self.P_max = self.P_decl + (2 if auto else 0)
        self.hist_len = max([2 * periods[0]] + list(periods)) if periods else 0
        self.R = max(512, 2 * max(periods, default=0), 2 * L if auto else 0)
        self.n_ring = H * (H + 1) // 2
        # member structure: declared members, then the rows a detection would add
        Km, Pm = self.K_max, max(self.P_max, 1)
        self._per = np.zeros(Pm, dtype=np.int64)
        self._tr = np.zeros(Km, dtype=np.intc)
        self._alpha = np.zeros(Km)
        self._beta = np.zeros(Km)
        self._phi = np.zeros(Km)
        self._gamma = np.zeros(Km)
        self._npk = np.zeros(Km, dtype=np.intc)
        self._pk = np.zeros((Km, Pm), dtype=np.intc)
        self._soff = np.zeros((Km, Pm), dtype=np.int64)
        self._par = np.zeros(Km, dtype=np.intc)
        rows, cur = [], 0
        for tr in (1, 0):
            for a in (0.1, 0.3, 0.6, 1.0):
                for be, ph in ((0.0, 1.0), (0.1, 0.9), (0.1, 0.98)):
                    rows.append((tr, a, be, ph, 0.0, ()))
                    for i in range(self.P_decl):
                        for g in (0.2, 0.5):
                            rows.append((tr, a, be, ph, g, tuple(range(i + 1))))
        parents = [k for k, r in enumerate(rows) if not r[5]]
        # the adaptive members: additive first (its row joins the additive run before it)
        for tr in (0, 1):
            rows.append((tr, AD_THETA0[0], AD_THETA0[1], AD_PHI, AD_THETA0[2],
                         tuple(range(self.P_decl))))
        for slot in range(2 if auto else 0):
            for k in parents:
                for g in (0.2, 0.5):
                    rows.append(rows[k][:4] + (g, (self.P_decl + slot,)))
                    self._par[len(rows) - 1] = k
        for k, (tr, a, be, ph, g, ps) in enumerate(rows):
            self._tr[k], self._alpha[k], self._beta[k], self._phi[k], self._gamma[k] = tr, a, be, ph, g
            self._npk[k] = len(ps)
            for q, p in enumerate(ps):
                self._pk[k, q] = p
                if k < self.K0:
                    self._soff[k, q] = cur
                    cur += periods[p]
        for p, m in enumerate(periods):
            self._per[p] = m
        # the additive members as runs of consecutive rows (the log members come first in
        # every block: the declared one and each detection slot's): the loops over the live
        # members once the log ones are dropped
        runs = []
        for k in range(Km):
            if rows[k][0] == 0:
                if runs and runs[len(runs) - 1][1] == k:
                    runs[len(runs) - 1][1] = k + 1
                else:
                    runs.append([k, k + 1])
        if len(runs) > 4:
            raise AssertionError("more than four runs of additive members")
        self.n_add = len(runs)
        for i, (a, b) in enumerate(runs):
            self.add_lo[i], self.add_hi[i] = a, b
        self.S_max = cur + (2 * N_BASE * N_G * (L // 2) if auto else 0)
        # trend multipliers sum_{i<=j} phi^i of member k, step j, by the very recurrence the
        # forecasts used (p *= phi; acc += p), so the same bits, computed once
        self._phacc = np.zeros((Km, H))
        for k in range(Km):
            p, acc = 1.0, 0.0
            for j in range(H):
                p *= float(self._phi[k])
                acc += p
                self._phacc[k, j] = acc
        self._bind_structure()
        # state and scratch
        self._l = np.zeros(Km)
        self._b = np.zeros(Km)
        self._s = np.zeros(max(self.S_max, 1))
        self._loss = np.zeros((H, Km))
        self._ring = np.zeros((self.n_ring, Km))
        self._hist = np.zeros(max(self.hist_len, 1))
        self._recent = np.zeros(self.R)
        self._dbuf = np.zeros(L + 1)
        self._dC = np.zeros(L + 1)
        self._dr = np.zeros(L + 1)
        self._dp = np.zeros(L + 1)
        self._lagd = np.arange(L + 1, dtype=np.float64)   # the lags as doubles (exact)
        self._F = np.zeros((H, Km))
        self._W = np.zeros((H, Km))
        self._rowoff = np.zeros(H, dtype=np.intp)
        self._wsum = np.ones(H)
        self._fc = np.zeros(H)
        self._ra = np.zeros(Km)
        self._lov = np.zeros(H)
        self._lod = np.zeros(H)
        self._au = np.zeros((N_AD, 3))
        self._av = np.zeros((N_AD, 3))
        self._adl = np.zeros((N_AD, 3))
        self._adb = np.zeros((N_AD, 3))
        self._ads = np.zeros((N_AD, 3, max(self.S_A, 1)))
        self._agr = np.zeros((N_AD, 3))
        self._bind_state()
        self._reset()

    # ------------------------------------------------------------ buffers (Python)
    def _bind_structure(self):
        cdef long long[::1] per = self._per
        cdef int[::1] tr = self._tr, npk = self._npk, par = self._par
        cdef double[::1] alpha = self._alpha, beta = self._beta, phi = self._phi, gamma = self._gamma
        cdef double[:, ::1] phacc = self._phacc
        self.phacc = &phacc[0, 0]
        cdef int[:, ::1] pk = self._pk
        cdef long long[:, ::1] soff = self._soff
        self.per = &per[0]
        self.tr = &tr[0]
        self.npk = &npk[0]
        self.par = &par[0]
        self.alpha = &alpha[0]
        self.beta = &beta[0]
        self.phi = &phi[0]
        self.gamma = &gamma[0]
        self.pk = &pk[0, 0]
        self.soff = &soff[0, 0]

    def _bind_state(self):
        cdef double[::1] l = self._l, b = self._b, s = self._s, hist = self._hist
        cdef double[::1] recent = self._recent, dbuf = self._dbuf, dC = self._dC
        cdef double[::1] dr = self._dr, dp = self._dp, lagd = self._lagd
        cdef double[:, ::1] loss = self._loss, ring = self._ring, F = self._F, W = self._W
        cdef Py_ssize_t[::1] rowoff = self._rowoff
        cdef double[::1] wsum = self._wsum, fc = self._fc
        cdef double[::1] ra = self._ra, lov = self._lov, lod = self._lod
        cdef double[:, ::1] au = self._au, av = self._av, adl = self._adl, adb = self._adb
        cdef double[:, ::1] agr = self._agr
        cdef double[:, :, ::1] ads = self._ads
        self.au = &au[0, 0]
        self.av = &av[0, 0]
        self.adl = &adl[0, 0]
        self.adb = &adb[0, 0]
        self.ads = &ads[0, 0, 0]
        self.agr = &agr[0, 0]
        self.ra = &ra[0]
        self.lov = &lov[0]
        self.lod = &lod[0]
        self.fc = &fc[0]
        self.wsum = &wsum[0]
        self.rowoff = &rowoff[0]
        self.l = &l[0]
        self.b = &b[0]
        self.s = &s[0]
        self.hist = &hist[0]
        self.recent = &recent[0]
        self.dbuf = &dbuf[0]
        self.dC = &dC[0]
        self.dr = &dr[0]
        self.dp = &dp[0]
        self.lagd = &lagd[0]
        self.loss = &loss[0, 0]
        self.ring = &ring[0, 0]
        self.F = &F[0, 0]
        self.W = &W[0, 0]

    def _reset(self):
        self.t = 0
        self.alive_log = True
        self.scale_ew = 0.0
        self.dn = 0
        self.ewm = self.S0 = self.S2 = 0.0
        self.cand = self.cand_n = 0
        self.n_det = 0
        self.det_per[0] = self.det_per[1] = 0
        for a in (self._l, self._b, self._s, self._loss, self._ring, self._hist, self._recent,
                  self._dbuf, self._dC, self._F, self._W, self._av, self._adl, self._adb,
                  self._ads, self._agr):
            a[...] = 0.0
        self._au[...] = _u0()
        self._adapt_theta()
        self._set_structure(())
        self.wdirty = True

    cdef void _set_structure(self, tuple added):
        """Members and periods for the declared periods plus the detected ones in ``added``."""
        cdef Py_ssize_t i, k, cur
        cdef int m
        self.P = self.P_decl + len(added)
        self.K = self.K0 + N_BASE * N_G * len(added)
        # seasonal indices in use by the declared members
        cur = 0
        for k in range(self.K0):
            for i in range(self.npk[k]):
                cur += self.per[self.pk[k * max(self.P_max, 1) + i]]
        for i, m in enumerate(added):
            self.per[self.P_decl + i] = m
            for k in range(self.K0 + N_BASE * N_G * i, self.K0 + N_BASE * N_G * (i + 1)):
                self.soff[k * max(self.P_max, 1)] = cur
                cur += m
        self.S = cur

    # ------------------------------------------------------------ C level: one value
    cdef double _seas(self, Py_ssize_t k, long long tau) noexcept nogil:
        cdef double acc = 0.0
        cdef int q, p
        cdef int Pm = self.P_max if self.P_max > 0 else 1
        for q in range(self.npk[k]):
            p = self.pk[k * Pm + q]
            acc += self.s[self.soff[k * Pm + q] + tau % self.per[p]]
        return acc

    cdef double _member(self, Py_ssize_t k, Py_ssize_t j) noexcept nogil:
        """Member k's forecast, y units, of the value j steps ahead."""
        cdef double ph = self.phi[k], p = 1.0, acc = 0.0, z
        cdef Py_ssize_t i
        for i in range(j):
            p *= ph
            acc += p
        z = (self.l[k] + self.b[k] * acc) + self._seas(k, self.t + j - 1)
        return exp(clampd(z, ZMIN, ZMAX)) if self.tr[k] == 1 else z

    cdef void _issue(self, Py_ssize_t k0, Py_ssize_t k1, bint to_ring) noexcept nogil:
        """Member forecasts of steps 1..H made now (into F, and the rings if to_ring).
        Seasonal phases: one modulo per period, then they advance by one per step; the exps of
        a log member run in a loop of their own after its H log-space values."""
        cdef Py_ssize_t k, j, Km = self.K_max, H = self.horizon
        cdef double ph, p, acc, z, f, lk, bk, seas, zp, fp
        cdef long long t = self.t
        cdef int q, nq, pp, Pm = self.P_max if self.P_max > 0 else 1
        cdef long long phase[8]
        cdef long long mlen[8]
        cdef long long pphase[8]
        cdef const double* sb[8]
        cdef double* Fk
        cdef const double* A
        cdef bint lg
        cdef int r, nr
        cdef Py_ssize_t a, e
        cdef Py_ssize_t rlo[4]
        cdef Py_ssize_t rhi[4]
        cdef Py_ssize_t i, seg, ph0
        cdef const double* sp
        for pp in range(self.P):
            pphase[pp] = t % self.per[pp]
        if to_ring:
            for j in range(1, H + 1):
                self.rowoff[j - 1] = ((j - 1) * j // 2 + t % j) * Km
        for k in range(k0, k1):
            lg = self.tr[k] == 1
            if lg and not self.alive_log:
                continue
            nq = self.npk[k]
            for q in range(nq):
                pp = self.pk[k * Pm + q]
                mlen[q] = self.per[pp]
                phase[q] = pphase[pp]
                sb[q] = self.s + self.soff[k * Pm + q]
            lk, bk = self.l[k], self.b[k]
            A = self.phacc + k * H
            Fk = self.F + k
            if nq == 0:
                for j in range(H):
                    Fk[j * Km] = (lk + bk * A[j]) + 0.0
            elif nq == 1:                    # runs of steps up to each wrap of the phase
                j = 0
                ph0 = phase[0]
                while j < H:
                    seg = mlen[0] - ph0
                    if seg > H - j:
                        seg = H - j
                    sp = sb[0] + ph0
                    for i in range(seg):
                        Fk[(j + i) * Km] = (lk + bk * A[j + i]) + (0.0 + sp[i])
                    j += seg
                    ph0 = 0
            else:
                for j in range(H):
                    seas = 0.0
                    for q in range(nq):
                        seas += sb[q][phase[q]]
                        phase[q] += 1
                        if phase[q] == mlen[q]:
                            phase[q] = 0
                    Fk[j * Km] = (lk + bk * A[j]) + seas
            if lg:                           # a value equal to the step before's: same exp
                zp = Fk[0]
                fp = exp(clampd(zp, ZMIN, ZMAX))
                Fk[0] = fp
                for j in range(1, H):
                    z = Fk[j * Km]
                    if z != zp:
                        zp = z
                        fp = exp(clampd(z, ZMIN, ZMAX))
                    Fk[j * Km] = fp
        if to_ring:                          # row copies of the live members' runs
            nr = self._live(rlo, rhi)
            for r in range(nr):
                a = rlo[r] if rlo[r] > k0 else k0
                e = rhi[r] if rhi[r] < k1 else k1
                if a < e:
                    for j in range(H):
                        memcpy(self.ring + self.rowoff[j] + a, self.F + j * Km + a,
                               (e - a) * sizeof(double))

    cdef void _update(self, double y) noexcept nogil:
        cdef Py_ssize_t j, k, Km = self.K_max, H = self.horizon, K = self.K, jmax
        cdef int q, p, Pm = self.P_max if self.P_max > 0 else 1
        cdef long long tau = self.t, m, idx
        cdef double* row
        cdef double* lrow
        cdef double err, z, zhat, e, lk, bk, g, ly = 0.0, diff, seas
        cdef int before, r, nr
        cdef long long pphase[8]
        cdef Py_ssize_t rlo[4]
        cdef Py_ssize_t rhi[4]
        cdef double dec, dec1, nn
        for p in range(self.P):              # one modulo per period, not per member
            pphase[p] = tau % self.per[p]
        if y <= 0.0 and self.alive_log:
            self.alive_log = False
        if y > 0.0:
            ly = log(y)
        # 1. score the forecasts made for this value j steps before, member runs at a time
        # (contiguous, branch-free, the constants in locals: vectorised across members)
        nr = self._live(rlo, rhi)
        jmax = H if H < tau else tau
        for j in range(1, jmax + 1):
            row = self.ring + ((j - 1) * j // 2 + (tau + 1) % j) * Km
            lrow = self.loss + (j - 1) * Km
            # the running mean of the matured errors until it would forget faster than the
            # EW average (n / (n + 1) > decay), then the EW average
            nn = <double> (tau - j)
            dec = nn / (nn + 1.0)
            if not (dec < LOSS_DECAY):
                dec = LOSS_DECAY
            dec1 = 1.0 - dec
            for r in range(nr):
                sr_bb_loss(rhi[r] - rlo[r], lrow + rlo[r], row + rlo[r], y, dec, dec1,
                           1 if tau == j else 0)
        # 2. error-correction update of every live member (the adaptive members' sensitivities
        # first, from the state before it; their constants move after it)
        if tau > 0:
            self._adapt_grad(tau, y, ly, pphase)
        for k in range(K):
            if self.tr[k] == 1:
                if not self.alive_log:
                    continue
                z = ly
            else:
                z = y
            if tau == 0:
                self.l[k] = clampd(z, -BIG, BIG)
                continue
            lk, bk = self.l[k], self.b[k]
            seas = 0.0
            for q in range(self.npk[k]):
                seas += self.s[self.soff[k * Pm + q] + pphase[self.pk[k * Pm + q]]]
            zhat = (lk + self.phi[k] * bk) + seas
            e = z - zhat
            self.l[k] = clampd((lk + self.phi[k] * bk) + self.alpha[k] * e, -BIG, BIG)
            self.b[k] = clampd(self.phi[k] * bk + (self.alpha[k] * self.beta[k]) * e, -BIG, BIG)
            g = self.gamma[k]
            for q in range(self.npk[k]):
                p = self.pk[k * Pm + q]
                m = self.per[p]
                if p >= self.P_decl or tau >= m:
                    idx = self.soff[k * Pm + q] + pphase[p]
                    self.s[idx] = clampd(self.s[idx] + (g * e) / self.npk[k], -BIG, BIG)
        if tau > 0:
            self._adapt_step(tau)
        if tau < self.hist_len:
            self.hist[tau] = y
        if tau >= 1:
            diff = fabs(y - self.recent[(tau - 1) % self.R])
            if tau == 1:
                self.scale_ew = diff
            else:
                self.scale_ew = SCALE_DECAY * self.scale_ew + (1.0 - SCALE_DECAY) * diff
        self.recent[tau % self.R] = y
        self.t = tau + 1
        # 3. seasonal initialisation of the declared periods (the adaptive members' state is
        # replaced: their sensitivities restart from 0)
        before = 0
        for p in range(self.P_decl):
            if self.t == self.per[p]:
                self._init_period(p)
                before = 1
        if self.P_decl > 0 and self.t == 2 * self.per[0]:
            self._reinit_first()
            before = 1
        if before:
            memset(self.adl, 0, N_AD * 3 * sizeof(double))
            memset(self.adb, 0, N_AD * 3 * sizeof(double))
            memset(self.ads, 0, N_AD * 3 * self.S_A * sizeof(double))
        # 4. member forecasts issued now
        self._issue(0, K, True)
        self.wdirty = True
        # 5. period detector
        if self.auto and self.n_det < 2:
            before = self.n_det
            self._detect_update(ly if self.alive_log else y)
            if self.n_det > before:
                m = self.det_per[self.n_det - 1]
                for p in range(self.P):
                    if self.per[p] == m:
                        m = 0
                        break
                if m > 0:
                    self._add_period(m)

    cdef void _adapt_grad(self, long long tau, double y, double ly, long long* pphase) noexcept nogil:
        """The adaptive members' sensitivities d(l, b, s)/d(alpha, beta, gamma) carried
        through this value's update (from the state before it; the clamps are ignored), and
        the gradients g = e de/dtheta of e^2 / 2 into agr."""
        cdef Py_ssize_t a, k, i, q, nq, off, ai
        cdef int Pm = self.P_max if self.P_max > 0 else 1
        cdef double z, e, al, be, g, ph, seas, dsum, dbase, de, nl, nb, v
        cdef double* ds
        for a in range(N_AD):
            k = self.k_ad + a
            if self.tr[k] == 1:
                if not self.alive_log:
                    continue
                z = ly
            else:
                z = y
            al, be, g, ph = self.alpha[k], self.beta[k], self.gamma[k], self.phi[k]
            nq = self.npk[k]                 # its periods are the declared ones, in order
            seas = 0.0
            for q in range(nq):
                seas += self.s[self.soff[k * Pm + q] + pphase[q]]
            e = z - ((self.l[k] + ph * self.b[k]) + seas)
            for i in range(3):
                ai = a * 3 + i
                ds = self.ads + ai * self.S_A
                dsum = 0.0
                off = 0
                for q in range(nq):
                    dsum += ds[off + pphase[q]]
                    off += self.per[q]
                dbase = self.adl[ai] + ph * self.adb[ai]
                de = -(dbase + dsum)
                nl = dbase + al * de
                nb = ph * self.adb[ai] + (al * be) * de
                if i == 0:
                    nl = nl + e
                    nb = nb + be * e
                elif i == 1:
                    nb = nb + al * e
                off = 0
                for q in range(nq):
                    if tau >= self.per[q]:
                        v = g * de
                        if i == 2:
                            v = v + e
                        ds[off + pphase[q]] = clampd(ds[off + pphase[q]] + v / nq, -BIG, BIG)
                    off += self.per[q]
                self.adl[ai] = clampd(nl, -BIG, BIG)
                self.adb[ai] = clampd(nb, -BIG, BIG)
                self.agr[ai] = e * de

    cdef void _adapt_step(self, long long tau) noexcept nogil:
        """One RMS-normalised gradient step of each live adaptive member's unconstrained
        constants (gamma only with a period); a gradient whose square is not below 1e300 is
        skipped."""
        cdef Py_ssize_t a, k, i, ni, ai
        cdef double sg, gu, q
        for a in range(N_AD):
            k = self.k_ad + a
            if self.tr[k] == 1 and not self.alive_log:
                continue
            ni = 3 if self.npk[k] > 0 else 2
            for i in range(ni):
                ai = a * 3 + i
                sg = 1.0 / (1.0 + exp(-self.au[ai]))
                gu = self.agr[ai] * ((sg * (1.0 - sg)) * (AD_HI - AD_LO))
                q = gu * gu
                if q < 1e300:
                    self.av[ai] = AD_V * self.av[ai] + (1.0 - AD_V) * q
                    if self.av[ai] > 0.0:
                        self.au[ai] = clampd(self.au[ai] - (AD_LR * gu) / sqrt(self.av[ai]),
                                             -AD_UCLIP, AD_UCLIP)
        self._adapt_theta()

    cdef void _adapt_theta(self) noexcept nogil:
        """alpha, beta, gamma of the adaptive members from their unconstrained constants."""
        cdef Py_ssize_t a, k
        for a in range(N_AD):
            k = self.k_ad + a
            self.alpha[k] = AD_LO + (AD_HI - AD_LO) / (1.0 + exp(-self.au[a * 3]))
            self.beta[k] = AD_LO + (AD_HI - AD_LO) / (1.0 + exp(-self.au[a * 3 + 1]))
            self.gamma[k] = AD_LO + (AD_HI - AD_LO) / (1.0 + exp(-self.au[a * 3 + 2]))

    cdef void _init_period(self, int p) noexcept nogil:
        """One-cycle indices of declared period p (at t = m_p): deviations of the first m
        values from their mean, minus the member's shorter periods."""
        cdef long long m = self.per[p], i, mq
        cdef int trf, q, qq, Pm = self.P_max if self.P_max > 0 else 1
        cdef Py_ssize_t k
        cdef double mean, zi
        cdef double* sp
        cdef double* sq
        for trf in range(2):
            if trf == 1 and not self.alive_log:
                continue
            mean = 0.0
            for i in range(m):
                mean += log(self.hist[i]) if trf == 1 else self.hist[i]
            mean = mean / m
            for k in range(self.K):
                if self.tr[k] != trf:
                    continue
                sp = NULL
                for q in range(self.npk[k]):
                    if self.pk[k * Pm + q] == p:
                        sp = self.s + self.soff[k * Pm + q]
                if sp == NULL:
                    continue
                for i in range(m):
                    zi = log(self.hist[i]) if trf == 1 else self.hist[i]
                    sp[i] = zi - mean
                for q in range(self.npk[k]):
                    qq = self.pk[k * Pm + q]
                    if qq < p:
                        sq = self.s + self.soff[k * Pm + q]
                        mq = self.per[qq]
                        for i in range(m):
                            sp[i] = sp[i] - sq[i % mq]
                zi = log(self.hist[m - 1]) if trf == 1 else self.hist[m - 1]
                self.l[k] = zi - self._seas(k, m - 1)
                self.b[k] = 0.0

    cdef void _reinit_first(self) noexcept nogil:
        """Two-cycle indices of the first period around a fitted trend line (at t = 2 m_0)."""
        cdef long long m = self.per[0], i
        cdef int trf, Pm = self.P_max if self.P_max > 0 else 1
        cdef Py_ssize_t k, first
        cdef double c1, c2, slope, a0, a1, dm
        cdef double* sp
        cdef double* d = NULL
        for trf in range(2):
            if trf == 1 and not self.alive_log:
                continue
            c1 = 0.0
            for i in range(m):
                c1 += log(self.hist[i]) if trf == 1 else self.hist[i]
            c1 = c1 / m
            c2 = 0.0
            for i in range(m, 2 * m):
                c2 += log(self.hist[i]) if trf == 1 else self.hist[i]
            c2 = c2 / m
            slope = (c2 - c1) / m
            d = NULL
            for k in range(self.K):
                if self.tr[k] != trf or self.npk[k] == 0 or self.pk[k * Pm] != 0:
                    continue
                sp = self.s + self.soff[k * Pm]
                if d == NULL:
                    d = sp
                    for i in range(m):
                        a0 = (log(self.hist[i]) if trf == 1 else self.hist[i]) - (
                            c1 + slope * (<double> i - (m - 1) / 2.0))
                        a1 = (log(self.hist[m + i]) if trf == 1 else self.hist[m + i]) - (
                            c1 + slope * (<double> (m + i) - (m - 1) / 2.0))
                        d[i] = (a0 + a1) / 2.0
                    dm = 0.0
                    for i in range(m):
                        dm += d[i]
                    dm = dm / m
                    for i in range(m):
                        d[i] = d[i] - dm
                else:
                    for i in range(m):
                        sp[i] = d[i]
                self.l[k] = c1 + slope * (<double> (2 * m - 1) - (m - 1) / 2.0)
                self.b[k] = slope if self.beta[k] > 0 else 0.0

    cdef int _detect_update(self, double z) noexcept nogil:
        """One signal value into the running ACF, then the detection rules."""
        cdef Py_ssize_t L = self.max_lag, i, kk, pos, ix, mm, lo, hi, c
        cdef long long n, m, m0
        cdef double d, mu, var, cnt, runmin, cs, cq, prom, bart, thr, r2, best, v, bestc, mu2, dn
        cdef const double* lagd
        cdef double* dC
        cdef double* dr
        cdef const double* db
        cdef Py_ssize_t lim
        cdef bint anyc
        if self.t == 1:                      # first value: start the EWMA
            self.ewm = z
            return 0
        d = z - self.ewm
        self.ewm += EW * (z - self.ewm)
        pos = self.dn % (L + 1)
        self.dbuf[pos] = d
        self.dn += 1
        n = self.dn
        kk = n if n < L + 1 else L + 1
        dC = self.dC
        db = self.dbuf
        lim = kk if kk < pos + 1 else pos + 1
        sr_bb_lagprod(lim, dC, d, db, pos)   # ring positions pos .. 0 (contiguous)
        if kk > lim:                         # then L .. pos + 1
            sr_bb_lagprod(kk - lim, dC + lim, d, db, pos - lim + L + 1)
        self.S0 += d
        self.S2 += d * d
        # ACF
        mu = self.S0 / n
        var = self.S2 / n - mu * mu
        if not (var > 1e-12 * (self.S2 / n)):
            for i in range(L + 1):
                self.dr[i] = 0.0
        else:
            mu2 = mu * mu
            dr = self.dr
            dC = self.dC
            lim = n - 1 if n - 1 < L + 1 else L + 1
            if lim < 0:
                lim = 0
            if n < (<long long> 1 << 53):    # then n - i is n - (double) i exactly
                dn = <double> n
                lagd = self.lagd
                # n - i >= 2 here; vectorised (no int conversion; this ISA's vectors)
                sr_bb_acf(lim, dC, lagd, dn, mu2, var, dr)
            else:
                for i in range(lim):
                    dr[i] = (dC[i] / (<double> (n - i)) - mu2) / var
            for i in range(lim, L + 1):
                dr[i] = 0.0
        # candidates
        cq = 0.0
        for i in range(1, (BQ if BQ < L else L)):
            cq += self.dr[i] * self.dr[i]
        runmin = INFINITY
        cs = 0.0
        anyc = False
        best = -INFINITY
        for mm in range(L + 1):
            self.dp[mm] = -1.0
        runmin = self.dr[1]
        for mm in range(2, L):
            if MIN_CYCLES * mm > n or 2 * mm > L:
                break
            cs = cs + self.dr[mm - 1] * self.dr[mm - 1]
            if mm - 1 >= 2:
                runmin = runmin if runmin < self.dr[mm - 1] else self.dr[mm - 1]
            if not (self.dr[mm] >= self.dr[mm - 1] and self.dr[mm] >= self.dr[mm + 1]):
                continue
            prom = self.dr[mm] - runmin
            bart = 1.0 + 2.0 * (cs if cs < cq else cq)
            thr = fmax(PROM_MIN, ZCRIT * sqrt(2.0 * bart / <double> (n - mm if n - mm > 1 else 1)))
            if not (prom > thr and self.dr[mm] > R_MIN):
                continue
            r2 = self.dr[2 * mm]
            if r2 > (1.0 / 3.0) * self.dr[mm] and r2 > 0.5 * R_MIN:
                self.dp[mm] = prom
                anyc = True
                if prom > best:
                    best = prom
        if not anyc:
            self.cand = 0
            self.cand_n = 0
            return 0
        if self.n_det == 0:
            m0 = 0
            for mm in range(2, L):
                if self.dp[mm] >= 0.0 and self.dp[mm] >= FRAC * best:
                    m0 = mm
                    break
            lo = m0 - m0 // 4
            if lo < 2:
                lo = 2
            hi = m0 + m0 // 4
            if hi > L:
                hi = L
            if hi > n // MIN_CYCLES:
                hi = n // MIN_CYCLES
            m = lo
            bestc = -INFINITY
            for c in range(lo, hi + 1):
                v = self.dr[c] + (self.dr[2 * c] if 2 * c <= L else 0.0)
                if v > bestc:
                    m = c
                    bestc = v
            if m == self.cand:
                self.cand_n += 1
            else:
                self.cand_n = 1
            self.cand = m
            if 2 * self.cand_n >= m:
                self.det_per[0] = m
                self.n_det = 1
                return 1
        else:
            m0 = self.det_per[0]
            for mm in range(2, L):
                if self.dp[mm] >= 0.0 and mm % m0 == 0 and mm >= 4 * m0 and \
                        self.dr[mm] > self.dr[m0] + MARGIN:
                    self.det_per[1] = mm
                    self.n_det = 2
                    return 1
        return 0

    cdef void _add_period(self, long long m) noexcept nogil:
        """A detected period: the next 48 prepared members get copies of their parent's level,
        trend, losses and pending forecasts, and indices from the last (up to 4) cycles."""
        cdef Py_ssize_t K = self.K, Kn = N_BASE * N_G, k, kp, j, i, first, nrec, n, c, Km = self.K_max
        cdef int P = self.P, trf, Pm = self.P_max if self.P_max > 0 else 1
        cdef long long t0, tau, slot
        cdef double mean, zl
        cdef double* d
        cdef double* sp
        self.per[P] = m
        self.P = P + 1
        for i in range(Kn):
            k = K + i
            kp = self.par[k]
            self.soff[k * Pm] = self.S + i * m
            self.l[k] = self.l[kp]
            self.b[k] = self.b[kp]
            for j in range(self.horizon):
                self.loss[j * Km + k] = self.loss[j * Km + kp]
            for j in range(self.n_ring):
                self.ring[j * Km + k] = self.ring[j * Km + kp]
            sp = self.s + self.S + i * m
            for j in range(m):
                sp[j] = 0.0
        self.S += Kn * m
        self.K = K + Kn
        nrec = self.t if self.t < self.R else self.R
        if nrec > 4 * m:
            nrec = 4 * m
        n = (nrec // m) * m
        t0 = self.t - n
        for trf in range(2):
            if trf == 1 and not self.alive_log:
                continue
            d = NULL
            for k in range(K, K + Kn):
                if self.tr[k] != trf:
                    continue
                sp = self.s + self.soff[k * Pm]
                if d == NULL:
                    d = sp
                    for c in range(n // m):
                        mean = 0.0
                        for j in range(m):
                            tau = t0 + c * m + j
                            mean += log(self.recent[tau % self.R]) if trf == 1 else self.recent[tau % self.R]
                        mean = mean / m
                        for j in range(m):
                            tau = t0 + c * m + j
                            slot = (t0 + j) % m
                            d[slot] += (log(self.recent[tau % self.R]) if trf == 1 else
                                        self.recent[tau % self.R]) - mean
                    for j in range(m):
                        d[j] = d[j] / (n // m)
                else:
                    for j in range(m):
                        sp[j] = d[j]
                tau = self.t - 1
                zl = log(self.recent[tau % self.R]) if trf == 1 else self.recent[tau % self.R]
                self.l[k] = zl - sp[tau % m]
        self._issue(K, K + Kn, False)
        self.wdirty = True

    # ------------------------------------------------------------ C level: reading
    cdef void _weights(self) noexcept nogil:
        """Unnormalised member weights per step into W, their sums into wsum, and the
        weighted sums of the member forecasts of each step into fc (both in member order).
        The loops are sr_bb_weights (_kernels_impl.h, this instruction set's vectors where
        they are element-wise; minima in any order, sums in member order: the same bits in
        every copy): over the matured steps (at least one loss) their smallest loss and
        every member's relative loss summed over them; per step the score, this step's
        relative loss blended with that mean (ra / jm), times the sharpness, and the weights
        exp(-(score - best score)); the sums over the live members. A zero weight adds +-0
        to a sum that is +0 or nonzero: no bit changes, so the cut members need no test,
        and the dead log members (weight 0, written; a finite forecast) none either."""
        cdef int nr
        cdef Py_ssize_t rlo[4]
        cdef Py_ssize_t rhi[4]
        nr = self._live(rlo, rhi)
        sr_bb_weights(self.horizon, self.K_max, self.K, self.t, nr, rlo, rhi,
                      0 if self.alive_log else 1, self.loss, self.F, self.W, self.ra, self.lov,
                      self.lod, self.wsum, self.fc, ETA, WARM_N, MIX_ALL, CUT, _exp_ptr)
        self.wdirty = False

    cdef void _forecast(self, double* out, Py_ssize_t h) noexcept nogil:
        """The bank's forecast of the next h values (steps beyond H use step H's weights)."""
        cdef Py_ssize_t j, k, i, K = self.K, Km = self.K_max, H = self.horizon
        cdef double acc, wk, ph, p, ps, z, f
        cdef double* w
        cdef double* Fj
        if self.t == 0:                       # nothing seen: 0
            for j in range(h):
                out[j] = 0.0
            return
        if self.wdirty:
            self._weights()
        for j in range(h if h < H else H):
            out[j] = self.fc[j] / self.wsum[j]
        if h > H:
            for j in range(H, h):
                out[j] = 0.0
            w = self.W + (H - 1) * Km
            for k in range(K):
                wk = w[k]
                if not (wk > 0):
                    continue
                ph, p, ps = self.phi[k], 1.0, 0.0
                for j in range(1, h + 1):
                    p *= ph
                    ps += p
                    if j > H:
                        z = (self.l[k] + self.b[k] * ps) + self._seas(k, self.t + j - 1)
                        f = exp(clampd(z, ZMIN, ZMAX)) if self.tr[k] == 1 else z
                        out[j - 1] += wk * f
            for j in range(H, h):
                out[j] = out[j] / self.wsum[H - 1]

    cdef int _live(self, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
        """The live members of the K in use as runs lo[r] .. hi[r]-1 in member order (at most
        four): all of them while the log members live, else the additive ones."""
        cdef int r, n = 0
        if self.alive_log:
            lo[0], hi[0] = 0, self.K
            return 1
        for r in range(self.n_add):
            if self.add_lo[r] >= self.K:
                break
            lo[n] = self.add_lo[r]
            hi[n] = self.add_hi[r] if self.add_hi[r] < self.K else self.K
            n += 1
        return n

    cdef Py_ssize_t _best(self) noexcept nogil:
        cdef Py_ssize_t k, best = -1
        cdef double lo = INFINITY
        for k in range(self.K):
            if self.tr[k] == 1 and not self.alive_log:
                continue
            if self.t <= 1:
                return k
            if best < 0 or self.loss[k] < lo:
                best, lo = k, self.loss[k]
        return best

    cdef void _window(self, double* out, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t i, k, navail, o
        cdef long long tau
        cdef double y, z, sc, lk, seas
        cdef int q, nq, Pm = self.P_max if self.P_max > 0 else 1
        cdef long long phase[8]
        cdef long long mlen[8]
        cdef const double* sb[8]
        for i in range(n):
            out[i] = 0.0
        if self.t == 0 or n <= 0:
            return
        k = self._best()
        navail = n
        if navail > self.t:
            navail = self.t
        if navail > self.R:
            navail = self.R
        o = n - navail
        nq = self.npk[k]
        tau = self.t - navail
        for q in range(nq):                  # one modulo per period, then phases advance
            mlen[q] = self.per[self.pk[k * Pm + q]]
            phase[q] = tau % mlen[q]
            sb[q] = self.s + self.soff[k * Pm + q]
        for i in range(navail):
            tau = self.t - navail + i
            y = self.recent[tau % self.R]
            z = log(y) if self.tr[k] == 1 else y
            seas = 0.0
            for q in range(nq):
                seas += sb[q][phase[q]]
                phase[q] += 1
                if phase[q] == mlen[q]:
                    phase[q] = 0
            out[o + i] = z - seas
        sc = 0.0
        for i in range(navail - 1):
            sc += fabs(out[o + i + 1] - out[o + i])
        sc = sc / (navail - 1 if navail > 1 else 1)
        lk = self.l[k]
        sc = fmax(fmax(sc, 1e-9 * fabs(lk)), 1e-300)
        for i in range(navail):
            out[o + i] = clampd((out[o + i] - lk) / sc, -WINDOW_CLIP, WINDOW_CLIP)

    cdef double _scale(self) noexcept nogil:
        cdef double last
        if self.t == 0:
            return 1.0
        last = fabs(self.recent[(self.t - 1) % self.R])
        if self.t == 1:
            return fmax(last, 1e-300) if last > 0 else 1.0
        return fmax(fmax(self.scale_ew, 1e-9 * last), 1e-300)

    cdef double _last(self) noexcept nogil:
        if self.t == 0:
            return 0.0
        return self.recent[(self.t - 1) % self.R]

    cdef double _snaive(self, Py_ssize_t j) noexcept nogil:
        cdef long long m
        if self.t == 0:
            return 0.0
        if self.P == 0 or self.t < self.per[0]:
            return self.recent[(self.t - 1) % self.R]
        m = self.per[0]
        if j < 1:
            j = 1
        return self.recent[(self.t - m + (j - 1) % m) % self.R]

    # ------------------------------------------------------------ Python level
    def _ready(self):
        if self._l is None:
            raise ValueError("this Backbone was not initialised (use Backbone(...) or from_state)")

    def update(self, y):
        """Learn one value (finite, |y| <= 1e100)."""
        self._ready()
        cdef double v = _number(y, "y")
        if not fabs(v) <= Y_LIMIT:
            raise ValueError(f"y must be within +-1e100, got {v}")
        if self.t >= STEP_LIMIT - 1:
            raise ValueError("the backbone has seen 2**62 values")
        with nogil:
            self._update(v)

    def forecast(self, h):
        """The bank's combined forecast of the next h values, as a float64 array (h,)."""
        self._ready()
        cdef Py_ssize_t hh = self._count(h, "h", 1)
        out = np.zeros(hh)
        cdef double[::1] o = out
        with nogil:
            self._forecast(&o[0], hh)
        return out

    def window(self, n):
        """The last n values de-seasonalised and level-normalised by the step-1 best member,
        oldest first: clip((z - s - l) / sc, +-100), sc = mean |change of z - s| over the
        window; 0 where there is no history."""
        self._ready()
        cdef Py_ssize_t nn = self._count(n, "n", 0)
        out = np.zeros(nn)
        cdef double[::1] o = out
        if nn:
            with nogil:
                self._window(&o[0], nn)
        return out

    @staticmethod
    def _count(v, name, lo):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        v = int(v)
        if not lo <= v <= 10 ** 7:
            raise ValueError(f"{name} must be in [{lo}, 10**7], got {v}")
        return v

    @property
    def scale(self):
        """Typical size of a one-step change in y units (> 0): EW mean |y_t - y_{t-1}|."""
        self._ready()
        return self._scale()

    def last(self, j=1):
        """The last value (the same for every step j; 0 before any value)."""
        self._ready()
        self._count(j, "j", 1)
        return self._last()

    def snaive(self, j):
        """The value one (first) period before step j ahead; the last value without a period."""
        self._ready()
        j = self._count(j, "j", 1)
        return self._snaive(j)

    @property
    def periods(self):
        """Declared periods (sorted), then the detected ones."""
        return tuple(int(self._per[p]) for p in range(self.P))

    @property
    def n_members(self):
        return self.K

    def weights(self, j):
        """Member weights of step j (j > H uses step H), float64 (n_members,)."""
        self._ready()
        j = min(self._count(j, "j", 1), self.horizon)
        if self.wdirty:
            self._weights()
        return self._W[j - 1, :self.K] / self._wsum[j - 1]

    def member_forecasts(self):
        """(H, n_members) member forecasts issued after the last value (0 for dead members)."""
        self._ready()
        return self._F[:, :self.K].copy()

    # ------------------------------------------------------------ state
    def get_state(self):
        self._ready()
        K, S = self.K, self.S
        return {
            "horizon": self.horizon, "periods": self.declared, "auto": bool(self.auto),
            "max_lag": self.max_lag, "t": int(self.t), "alive_log": bool(self.alive_log),
            "detected": tuple(int(self.det_per[i]) for i in range(self.n_det)),
            "l": self._l[:K].copy(), "b": self._b[:K].copy(), "season": self._s[:S].copy(),
            "loss": self._loss[:, :K].copy(), "ring": self._ring[:, :K].copy(),
            "hist": self._hist[:self.hist_len].copy(), "recent": self._recent.copy(),
            "scale_ew": float(self.scale_ew), "det_n": int(self.dn), "det_ewm": float(self.ewm),
            "det_S0": float(self.S0), "det_S2": float(self.S2), "det_buf": self._dbuf.copy(),
            "det_C": self._dC.copy(), "det_cand": int(self.cand), "det_cand_n": int(self.cand_n),
            "ad_u": self._au.copy(), "ad_v": self._av.copy(), "ad_dl": self._adl.copy(),
            "ad_db": self._adb.copy(), "ad_ds": self._ads[:, :, :self.S_A].copy(),
        }

    def _check_state(self, d):
        """Every field of a state for this configuration, validated; returns a dict of
        normalised values or raises ValueError naming the field."""
        self._ready()
        if not isinstance(d, dict):
            raise ValueError(f"backbone state must be a dict, got {type(d).__name__}")
        if set(d) != _KEYS:
            raise ValueError(f"backbone state keys {sorted(map(str, d))} != {sorted(_KEYS)}")
        try:
            cfg = _config(d["horizon"], d["periods"], d["auto"], d["max_lag"])
        except TypeError as exc:
            raise ValueError(f"backbone state: {exc}") from None
        if cfg != (self.horizon, self.declared, bool(self.auto), self.max_lag) or \
                tuple(d["periods"]) != self.declared:
            raise ValueError(f"backbone state is for horizon/periods/auto/max_lag {cfg}, this "
                             f"backbone has {(self.horizon, self.declared, bool(self.auto), self.max_lag)}")
        H, L, R = self.horizon, self.max_lag, self.R
        t = _counter(d["t"], "t")
        if t >= STEP_LIMIT - 1:
            raise ValueError("t is out of range")
        alive = d["alive_log"]
        if not isinstance(alive, (bool, np.bool_)):
            raise ValueError("alive_log must be a bool")
        alive = bool(alive)
        if t == 0 and not alive:
            raise ValueError("alive_log must be True before any value")
        det = d["detected"]
        if not isinstance(det, tuple) or len(det) > 2:
            raise ValueError("detected must be a tuple of at most 2 periods")
        det = tuple(_counter(m, "a detected period") for m in det)
        if det and not self.auto:
            raise ValueError("detected periods without auto")
        dn = _counter(d["det_n"], "det_n")
        for m in det:
            if not 2 <= m <= L // 2 or 3 * m > dn:
                raise ValueError(f"detected period {m} is impossible (max_lag {L}, {dn} values)")
        if len(det) == 2 and (det[1] % det[0] or det[1] < 4 * det[0]):
            raise ValueError("the second detected period must be a multiple >= 4x the first")
        nsig = max(t - 1, 0) if self.auto else 0
        if (len(det) < 2 and dn != nsig) or dn > nsig:
            raise ValueError(f"det_n {dn} is inconsistent with t {t}")
        added = tuple(m for m in det if m not in self.declared)
        K = self.K0 + N_BASE * N_G * len(added)
        S_decl = 0
        for k in range(self.K0):
            for q in range(self._npk[k]):
                S_decl += int(self._per[self._pk[k, q]])
        S = S_decl + N_BASE * N_G * sum(added)
        out = {"t": t, "alive": alive, "det": det, "added": added, "dn": dn}
        out["l"] = _farray(d["l"], "l", (K,), BIG)
        out["b"] = _farray(d["b"], "b", (K,), BIG)
        if np.any(out["b"][self._beta[:K] == 0.0] != 0.0):
            raise ValueError("b must be 0 for the members without trend")
        out["season"] = _farray(d["season"], "season", (S,), BIG)
        loss = _farray(d["loss"], "loss", (H, K), 1e300)
        if np.any(loss < 0):
            raise ValueError("loss must be >= 0")
        for j in range(1, H + 1):
            if t - j <= 0 and np.any(loss[j - 1] != 0.0):
                raise ValueError(f"loss of step {j} must be 0 before it has matured")
        out["loss"] = loss
        ring = _farray(d["ring"], "ring", (self.n_ring, K), 1e300)
        for j in range(1, H + 1):
            if t < j:
                for i in range(j):
                    if not 1 <= i <= t and np.any(ring[(j - 1) * j // 2 + i] != 0.0):
                        raise ValueError(f"ring of step {j} holds forecasts not yet made")
        out["ring"] = ring
        hist = _farray(d["hist"], "hist", (self.hist_len,), Y_LIMIT)
        nh = min(t, self.hist_len)
        if np.any(hist[nh:] != 0.0) or (alive and np.any(hist[:nh] <= 0.0)):
            raise ValueError("hist is inconsistent with t / alive_log")
        out["hist"] = hist
        recent = _farray(d["recent"], "recent", (R,), Y_LIMIT)
        if t < R and np.any(recent[t:] != 0.0):
            raise ValueError("recent holds values not yet seen")
        if alive and np.any(recent[:min(t, R)] <= 0.0):
            raise ValueError("recent has a value <= 0 while alive_log is True")
        out["recent"] = recent
        sc = _number(d["scale_ew"], "scale_ew")
        if not 0.0 <= sc <= 1e300 or (t <= 1 and sc != 0.0):
            raise ValueError("scale_ew is out of range")
        out["scale_ew"] = sc
        ewm, S0, S2 = (_number(d[k], k) for k in ("det_ewm", "det_S0", "det_S2"))
        if not abs(ewm) <= Y_LIMIT or not 0.0 <= S2 <= 1e300 or not abs(S0) <= 1e150:
            raise ValueError("det_ewm/det_S0/det_S2 out of range")
        buf = _farray(d["det_buf"], "det_buf", (L + 1,), 1e101)
        C = _farray(d["det_C"], "det_C", (L + 1,), 1e300)
        if dn < L + 1 and np.any(buf[dn:] != 0.0):
            raise ValueError("det_buf holds values not yet seen")
        if C[0] != S2 or np.any(np.abs(C) > S2 * (1.0 + 1e-9)) or \
                not S0 * S0 <= dn * S2 * (1.0 + 1e-9):
            raise ValueError("det_C/det_S0/det_S2 are inconsistent")
        if not self.auto and (ewm != 0.0 or S0 != 0.0 or S2 != 0.0 or np.any(buf != 0.0)):
            raise ValueError("detector state without auto")
        cand, cand_n = _counter(d["det_cand"], "det_cand"), _counter(d["det_cand_n"], "det_cand_n")
        if cand > L or cand_n > dn or (cand == 0) != (cand_n == 0):
            raise ValueError("det_cand/det_cand_n out of range")
        out.update(ewm=ewm, S0=S0, S2=S2, buf=buf, C=C, cand=cand, cand_n=cand_n)
        au = _farray(d["ad_u"], "ad_u", (N_AD, 3), AD_UCLIP)
        av = _farray(d["ad_v"], "ad_v", (N_AD, 3), 1e300)
        if np.any(av < 0):
            raise ValueError("ad_v must be >= 0")
        adl = _farray(d["ad_dl"], "ad_dl", (N_AD, 3), BIG)
        adb = _farray(d["ad_db"], "ad_db", (N_AD, 3), BIG)
        ads = _farray(d["ad_ds"], "ad_ds", (N_AD, 3, self.S_A), BIG)
        if t <= 1 and (np.any(au != np.array(_u0())) or np.any(av != 0) or np.any(adl != 0)
                       or np.any(adb != 0) or np.any(ads != 0)):
            raise ValueError("adaptive-member state before the second value must be the start")
        out.update(au=au, av=av, adl=adl, adb=adb, ads=ads)
        return out

    def set_state(self, d):
        """Replace the whole state by a validated copy of ``d`` (see get_state); on any error
        nothing changes."""
        v = self._check_state(d)
        self._reset()
        K = self.K0 + N_BASE * N_G * len(v["added"])
        self._set_structure(v["added"])
        self.t = v["t"]
        self.alive_log = v["alive"]
        self.n_det = len(v["det"])
        for i, m in enumerate(v["det"]):
            self.det_per[i] = m
        self._l[:K] = v["l"]
        self._b[:K] = v["b"]
        self._s[:self.S] = v["season"]
        self._loss[:, :K] = v["loss"]
        self._ring[:, :K] = v["ring"]
        self._hist[:self.hist_len] = v["hist"]
        self._recent[:] = v["recent"]
        self.scale_ew = v["scale_ew"]
        self.dn, self.ewm, self.S0, self.S2 = v["dn"], v["ewm"], v["S0"], v["S2"]
        self._dbuf[:] = v["buf"]
        self._dC[:] = v["C"]
        self.cand, self.cand_n = v["cand"], v["cand_n"]
        self._au[...] = v["au"]
        self._av[...] = v["av"]
        self._adl[...] = v["adl"]
        self._adb[...] = v["adb"]
        self._ads[:, :, :self.S_A] = v["ads"]
        with nogil:
            self._adapt_theta()
            self._issue(0, self.K, False)
        self.wdirty = True

    @classmethod
    def from_state(cls, d):
        if not isinstance(d, dict) or not _KEYS <= set(d):
            raise ValueError("backbone state must be a dict with the keys of get_state()")
        try:
            obj = cls(d["horizon"], d["periods"], d["auto"], d["max_lag"])
        except TypeError as exc:
            raise ValueError(f"backbone state: {exc}") from None
        obj.set_state(d)
        return obj

    def __reduce__(self):
        return (_restore, (self.get_state(),))

    def __sizeof__(self):
        return object.__sizeof__(self) + sum(
            a.nbytes for a in (self._per, self._tr, self._alpha, self._beta, self._phi,
                               self._gamma, self._npk, self._pk, self._soff, self._par,
                               self._l, self._b, self._s, self._loss, self._ring, self._hist,
                               self._recent, self._dbuf, self._dC, self._dr, self._dp,
                               self._lagd, self._F, self._W, self._phacc, self._ra, self._lov,
                               self._lod, self._au, self._av, self._adl, self._adb,
                               self._ads, self._agr))

    def __repr__(self):
        return (f"Backbone(horizon={self.horizon}, periods={self.declared}, auto={bool(self.auto)}, "
                f"max_lag={self.max_lag})")
