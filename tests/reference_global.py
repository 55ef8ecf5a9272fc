"""A readable restatement of ``streamrnn._core._global.GlobalCore`` (many series, one network).

Nothing here is fast or compact: every key is an explicit loop iteration with its whole
history in Python lists and dicts, and every forecast a key issued is kept as issued (the
core keeps only rings and recomputes the backbone's forecasts; the tests hold the two equal,
which proves the recomputation exact). The network is ``tests/reference_shared.py``.

Per key (all values "as stored": rounded to float32 for float32 slots, clamped to +-big):
    ys              the values y_0 .. y_{n-1}
    l, b, sc, S     the backbone: level, trend, EW scale of one-step errors, m season indices;
                    l and b are the weighted means of the K members' (bank: [level, trend,
                    EW one-step error] each)
    zl, zb, zS      the log member (the same rules on log y, its own bank zbank), alive
                    while every y > 0
    issued[s]       what origin s (the state after y_s) forecast for steps 1..H: bb (H,)
                    backbone and scale (when y_s is learned), corr (n_out,) network
                    corrections and cn (H,) combined minus backbone over the scale (when
                    y_{s+1} arrives: the network's forward from origin s runs then)
    err (H, 5)      EW normalised absolute errors of the experts per step
Shared: conformal scores per age group of the origin and step (last ``window``; row
g H + j - 1), their ACI levels, pooled errors, feature statistics, the network.

The order of one batch is the module docstring's of ``_global.pyx`` (steps 1-5).
"""
from __future__ import annotations

import math

import numpy as np

from reference_shared import RefShared

WARM = 2
E = 5
ZMIN, ZMAX = -700.0, 690.0
N_LEAD = 5
DECAY = 0.98          # the key's combination errors (a running mean at first)
BANK_DECAY = 0.97     # a member's one-step errors
POOL_DECAY = 0.999
N0 = 10.0
ETA = 10.0
MQ = 3                # the members' (level, trend) are kept at every d-th origin, the last
                      # Q = min(H, MQ) of them (d = ceil(H / Q)): their errors over the steps
HALF_MAX = 65504.0    # float32 slots keep the pending combined offsets as float16
MS_MIX = 0.5          # a member's error: the mean of its one-step error and its error over the steps
MIX1 = 0.25           # a combination score: (rel at step j + MIX1 rel at step 1) / (1 + MIX1)
HW_ALPHAS, HW_ALPHAS_FLAT = (0.1, 0.3, 0.7), (0.1, 0.3, 0.5)   # with / without a period
LO_FLOOR = 1e-12
CUT = 40.0
VMAX = 1e30
INPUT_CLIP = 10.0
SCALE_RATE = 0.05
SCALE_FLOOR = 1e-8
SCALE_CLIP = 4.0
LONG_DECAY = 0.999
GATE = 0.8
MARGIN = 0.25
GATE_CLIP = 8.0         # a scoring enters the gate's long-run errors clipped to 8 scales
PROVEN_N = 50           # the last value proves itself at step j after 50 scorings of it...
PROVEN_TOL = 1.05       # ... its own error within 5 % of the best other expert's
PROVEN_MARGIN = 1.0     # ... then the others count up to 100 % more (at step H)
MIN_SCORES = 5
AGES = 3                # conformal age groups of an origin s: s < m, s < m + AGE_SPAN, older
AGE_SPAN = 20
MIN_FALL = 50           # scores an age group needs to give its own intervals
SHOCK = 2.0             # a score over max(scale_s, current scale / SHOCK)
WINSOR = 6.0            # a score enters a row clipped to 6 x the row's median ...
WINSOR_N = 20           # ... once the row holds 20 scores (and the median is > 0)
AT_LO, AT_HI = -1.0, 2.0
# the adaptive member, one more member at the end of the backbone's bank (not the log
# member's): its (alpha, beta) = AD_LO + (AD_HI - AD_LO) sigmoid(u), u from AD_THETA0 (with a
# period; AD_THETA0_FLAT without); after
# each value it takes, u_i -= AD_LR g_i / sqrt(v_i), g_i = d(e^2 / 2) / du_i of its one-step
# error e through its level/trend equations (the sensitivities of l and b to (alpha, beta)
# carried as a recursion from 0; the key's shared season indices held fixed),
# v_i <- AD_V v_i + (1 - AD_V) g_i^2; u clipped to +-AD_UCLIP; a step whose g_i^2 is not
# below 1e300 is skipped. State per bank (AD_N values): u (2), v (2), dl/dtheta (2), db/dtheta (2)
AD_LO, AD_HI = 0.01, 0.99
AD_LR = 0.02
AD_V = 0.99
AD_UCLIP = 30.0
AD_THETA0 = (0.3, 0.1)         # the start with a period ...
AD_THETA0_FLAT = (0.95, 0.2)   # ... and without one (near the naive with a drift)
AD_N = 8


def ad_u0(flat=False):
    out = []
    for th in (AD_THETA0_FLAT if flat else AD_THETA0):
        sg = (th - AD_LO) / (AD_HI - AD_LO)
        out.append(math.log(sg / (1.0 - sg)))
    return out


def ad_theta(u):
    return tuple(AD_LO + (AD_HI - AD_LO) / (1.0 + math.exp(-v)) for v in u)


def ad_sens(ad, e, al, be, phi):
    """The adaptive member's gradients (e de/dtheta_i, i = alpha, beta) at its one-step error
    e, and its sensitivities carried through this value's update (l' = l + phi b + alpha e,
    b' = phi b + alpha beta e; clamps ignored). ad: [u0, u1, v0, v1, dl0, dl1, db0, db1]
    (sensitivities updated in place, unrounded). Returns [g0, g1]."""
    gr = [0.0, 0.0]
    for i in range(2):
        dl, db = ad[4 + i], ad[6 + i]
        de = -(dl + phi * db)
        nl = (dl + phi * db) + al * de
        nb = phi * db + (al * be) * de
        if i == 0:
            nl = nl + e
            nb = nb + be * e
        else:
            nb = nb + al * e
        ad[4 + i], ad[6 + i] = nl, nb
        gr[i] = e * de
    return gr


def ad_step(ad, gr):
    """RMS-normalised steps of u (in place, unrounded)."""
    for i in range(2):
        u = ad[i]
        sg = 1.0 / (1.0 + math.exp(-u))
        gu = gr[i] * ((sg * (1.0 - sg)) * (AD_HI - AD_LO))
        q = gu * gu
        if q < 1e300:
            ad[2 + i] = AD_V * ad[2 + i] + (1.0 - AD_V) * q
            if ad[2 + i] > 0.0:
                ad[i] = clip(u - (AD_LR * gu) / math.sqrt(ad[2 + i]), AD_UCLIP)


def clip(v, c):
    return c if v > c else (-c if v < -c else v)


class Key:
    def __init__(self, m, H, K):
        self.n = 0
        self.bank = [[0.0, 0.0, 0.0] for _ in range(K + 1)]   # level, trend, error
        self.zbank = [[0.0, 0.0, 0.0] for _ in range(K)]      # (bank's last: adaptive)
        self.ad = [0.0] * AD_N            # the adaptive member's u, v, sensitivities
        # the members' (level, trend) at the stored origins s (s % d == 0, s >= n0) and the
        # season indices as they were there (the bank's own: S or zS)
        self.ring, self.zring, self.Sat, self.zSat = {}, {}, {}, {}
        self.ys = []
        self.l = self.b = self.sc = 0.0
        self.S = [0.0] * m
        self.zl = self.zb = 0.0           # the log member (z = log y) while every y > 0
        self.zS = [0.0] * m
        self.alive = False
        self.issued = {}
        self.err = np.zeros((H, E))       # EW errors in y's units
        self.errl = np.zeros(2)           # long-run EW errors of last value, seasonal naive
                                          # at the season gate's step g


class RefGlobal:
    def __init__(self, cell, hidden, layers, k2, H, m, n_x, f32, learn_every, loss, params,
                 optimizer, clip_=6.0, hw_alphas=None, hw_betas=(0.0, 0.2),
                 hw_phi=0.98, hw_gamma=0.15, hw_eta=20.0, window=512, aci_gamma=0.002, alphas=(0.05, 0.1, 0.2),
                 hw_log_alphas=(0.05, 0.15, 0.3), hw_log_betas=(0.03, 0.1), hw_log_gamma=0.5,
                 hw_gamma_start=0.5):
        self.H, self.m, self.n_x, self.f32, self.le = H, m, n_x, f32, learn_every
        self.n_out = min(H, k2)
        self.clip = clip_
        if hw_alphas is None:
            hw_alphas = HW_ALPHAS if m > 0 else HW_ALPHAS_FLAT
        self.members = [(a, a * b) for a in hw_alphas for b in hw_betas]   # (alpha, alpha beta)
        zb = hw_betas if hw_log_betas is None else hw_log_betas       # the log bank's betas
        za = hw_alphas if hw_log_alphas is None else hw_log_alphas    # and alphas
        self.zmembers = [(a, a * b) for a in za for b in zb]
        self.zgamma = hw_gamma if hw_log_gamma is None else hw_log_gamma
        self.g0 = hw_gamma_start             # early cycles: max(gamma, g0 / cycle)
        self.phi, self.gamma, self.eta = hw_phi, hw_gamma, hw_eta
        self.Q = min(H, MQ)               # member states kept ...
        self.d = -(-H // self.Q)          # ... at every d-th origin
        self.window, self.aci_gamma, self.alphas = window, aci_gamma, tuple(alphas)
        self.big = 1e36 if f32 else 1e150
        self.y_limit = 1e30 if f32 else 1e100
        self.net = RefShared(cell, N_LEAD + n_x, hidden, layers, self.n_out, k2, loss)
        self.net.params = np.array(params, dtype=float)
        self.net.optimizer = optimizer
        self.phacc = [0.0] * (H + 1)
        acc, p = 0.0, 1.0
        for j in range(1, H + 1):
            p = p * hw_phi
            acc = acc + p
            self.phacc[j] = acc
        self.keys = {}
        # per conformal row g H + j0 (age group g of the origin, step j0 + 1): arrival order,
        # the last `window`
        self.scores = [[] for _ in range(AGES * H)]
        self.at = [[a] * (AGES * H) for a in self.alphas]
        self.pool = np.zeros((H, E))
        self.pool_n = np.zeros((H, E), dtype=np.int64)
        self.fn = [0] * n_x
        self.fmean = [0.0] * n_x
        self.fm2 = [0.0] * n_x
        self.t = 0

    # ---------------------------------------------------------------- storage precision
    def rnd(self, v):
        v = min(max(v, -self.big), self.big)
        return float(np.float32(v)) if self.f32 else float(v)

    def rc(self, v):
        """A pending combined offset as stored: float16 (clamped to +-65504) in float32
        slots (only the conformal scores read it), else as rnd."""
        if not self.f32:
            return self.rnd(v)
        return float(np.float16(min(max(v, -HALF_MAX), HALF_MAX)))

    def round_net_slot(self, key):
        """The network slot as the kernel stores it (float32 slots round every field)."""
        if not self.f32 or key not in self.net.slots:
            return
        st = self.net.slots[key]
        for f in ("h", "c", "h0", "c0"):
            st[f] = st[f].astype(np.float32).astype(np.float64)
        st["past"] = [x.astype(np.float32).astype(np.float64) for x in st["past"]]

    def key(self, k):
        if k not in self.keys:
            self.keys[k] = Key(self.m, self.H, len(self.members))
        return self.keys[k]

    def reset(self, k):
        self.keys.pop(k, None)
        self.net.reset(k)

    def copy(self, src, dst):
        """Key dst takes key src's state (the network slot too)."""
        import copy as _copy
        self.keys[dst] = _copy.deepcopy(self.key(src))
        self.net.slots[dst] = _copy.deepcopy(self.net.slot(src))

    # ---------------------------------------------------------------- one key's model
    def scale(self, K):
        fl = SCALE_FLOOR * (1.0 + abs(K.l))
        return self.rnd(K.sc if K.sc > fl else fl)

    def bb_raw(self, K, j):
        """The backbone's forecast of step j from the key's current origin."""
        v = K.l + self.phacc_of(j) * K.b
        if self.m > 0:
            v = v + K.S[(K.n - 1 + j) % self.m]
        return v

    def phacc_of(self, j):
        if j <= self.H:
            return self.phacc[j]
        acc, p = 0.0, 1.0
        for _ in range(j):
            p = p * self.phi
            acc = acc + p
        return acc

    def bb(self, K, j):
        return self.bb_raw(K, j)

    def zfc(self, zl, zb, zs, j):
        z = zl + self.phacc_of(j) * zb
        if self.m > 0:
            z = z + zs
        return math.exp(min(max(z, ZMIN), ZMAX))

    def experts(self, K, j, bb, corr):
        """network, backbone, last value, seasonal naive, log member of step j from the
        current origin."""
        ylast = K.ys[-1]
        sn = ylast
        if self.m > 0:
            idx = K.n - 1 + j - self.m * math.ceil(j / self.m)
            if idx >= 0:
                sn = K.ys[idx]
        zs = K.zS[(K.n - 1 + j) % self.m] if self.m > 0 else 0.0
        return [bb + self.scale(K) * corr, bb, ylast, sn, self.zfc(K.zl, K.zb, zs, j)]

    def seasonal(self, K):
        """The season gate: seasonal naive eligible while its long-run error at step
        g = min(ceil(m/2), H) is below GATE x the last value's (the key's once it scored step
        g, else the pooled ones, else open)."""
        g = min((self.m + 1) // 2, self.H)
        if K.n - g - WARM > 0:
            return K.errl[1] < GATE * K.errl[0]
        if self.pool_n[g - 1, 2] > 0 and self.pool_n[g - 1, 3] > 0:
            return self.pool[g - 1, 3] < GATE * self.pool[g - 1, 2]
        return True

    def expert_scores(self, K, jj, eligible):
        """The key's scores of step jj for its known experts: {expert: score}."""
        nj = max(0, K.n - jj - WARM)
        known = [eligible[e] and (nj > 0 or self.pool_n[jj - 1, e] > 0) for e in range(E)]
        L = {}
        sk = self.scale(K)        # the key's errors are in y's units
        fj = (jj - 1) / (self.H - 1) if self.H > 1 else 0.0
        mg = 0.0
        if self.m > 0 and not eligible[3] and nj >= PROVEN_N and known[2]:
            others = [K.err[jj - 1, e] for e in range(E) if known[e] and e != 2]
            best = min(others) if others else math.inf
            if K.err[jj - 1, 2] <= PROVEN_TOL * best:   # the last value has proven itself
                mg = PROVEN_MARGIN * fj                   # at step j: the margin grows with j
        for e in range(E):
            if not known[e]:
                continue
            if nj == 0:
                L[e] = self.pool[jj - 1, e]
            elif self.pool_n[jj - 1, e] == 0:
                L[e] = K.err[jj - 1, e] / sk
            else:
                L[e] = (float(nj) * (K.err[jj - 1, e] / sk) + N0 * self.pool[jj - 1, e]) / (nj + N0)
            if e != 2 and self.m > 0 and not eligible[3]:   # a season is expected but does not
                L[e] = L[e] * (1.0 + MARGIN)   # show: the last value leads, the others must beat it
                if mg > 0.0:
                    L[e] = L[e] * (1.0 + mg)
        return L

    def weights(self, K, j):
        jj = min(j, self.H)
        # the log member is an expert only with a season (without one it is the additive
        # backbone's level and trend on log y: on nile it took 30 % of the weight, scoring worst)
        eligible = [True, True, True, self.m > 0 and self.seasonal(K), K.alive and self.m > 0]
        L = self.expert_scores(K, jj, eligible)
        known = [e in L for e in range(E)]
        if not L:
            ne = sum(eligible)
            return [1.0 / ne if eligible[e] else 0.0 for e in range(E)]
        lo = min(L.values())
        rel = {e: (L[e] - lo) / (lo if lo > LO_FLOOR else LO_FLOOR) for e in L}
        if jj > 1:
            # blended with step 1's relative scores (0 for an expert step 1 does not know)
            L1 = self.expert_scores(K, 1, eligible)
            if L1:
                lo1 = min(L1.values())
                for e in rel:
                    r1 = (L1[e] - lo1) / (lo1 if lo1 > LO_FLOOR else LO_FLOOR) if e in L1 else 0.0
                    rel[e] = (rel[e] + MIX1 * r1) / (1.0 + MIX1)
        rmin = min(rel.values())
        w = []
        for e in range(E):
            if not known[e]:
                w.append(0.0)
                continue
            x = ETA * (rel[e] - rmin)
            w.append(math.exp(-x) if x < CUT else 0.0)
        tot = 0.0
        for v in w:
            tot = tot + v
        return [v / tot for v in w]

    def combine(self, K, j, bb, corr):
        f = self.experts(K, j, bb, corr)
        w = self.weights(K, j)
        c = 0.0
        for e in range(E):
            if w[e] > 0.0:
                c = c + w[e] * f[e]
        return c

    def features(self, x):
        out = []
        for i in range(self.n_x):
            v = 0.0
            if x is not None and not math.isnan(x[i]) and self.fn[i] >= 2:
                var = self.fm2[i] / self.fn[i]
                if var > 0.0:
                    z = (x[i] - self.fmean[i]) / math.sqrt(var)
                    v = clip(z, INPUT_CLIP) if math.isfinite(z) else 0.0
            out.append(v)
        return out

    def inputs(self, K, fx):
        sc = self.scale(K)
        u = [clip((K.ys[-1] - K.l) / sc, INPUT_CLIP), 0.0, clip(K.b / sc, INPUT_CLIP), 0.0, 0.0]
        if self.m > 0:
            u[1] = clip(K.S[K.n % self.m] / sc, INPUT_CLIP)
            ang = 2.0 * math.pi * float(K.n % self.m) / float(self.m)
            u[3], u[4] = math.sin(ang), math.cos(ang)
        return np.array(u + list(fx))

    def targets(self, K, y):
        Y = []
        for i in range(self.n_out):
            s = K.n - 1 - i
            if s < WARM:
                Y.append(math.nan)
            else:
                iss = K.issued[s]
                Y.append(clip((y - iss["bb"][i]) / iss["scale"], self.clip))
        return Y

    # ---------------------------------------------------------------- shared conformal
    def quantile(self, j0, a):
        v = sorted(self.scores[j0])
        c = len(v)
        if c < MIN_SCORES:
            return math.inf
        if not a > 0.0:
            return 1.5 * v[-1]
        if a >= 1.0:
            return v[0]
        k = min(max(int(math.ceil((1.0 - a) * (c + 1))), 1), c)
        return v[k - 1]

    def level(self, j0, alpha):
        al, at = self.alphas, self.at
        for i, a in enumerate(al):
            if alpha == a:
                return at[i][j0]
        if alpha < al[0]:
            return at[0][j0] + (alpha - al[0])
        if alpha > al[-1]:
            return at[-1][j0] + (alpha - al[-1])
        i = 0
        while i < len(al) - 2 and not alpha < al[i + 1]:
            i += 1
        u = (alpha - al[i]) / (al[i + 1] - al[i])
        return at[i][j0] + u * (at[i + 1][j0] - at[i][j0])

    def group(self, s):
        """Age group of origin s: the first cycle, the scale forming, formed."""
        return 0 if s < self.m else (1 if s < self.m + AGE_SPAN else 2)

    def crow(self, g, j0):
        """(row, borrowed) whose scores give group g's intervals at step j0: its own while it
        has MIN_FALL scores (the window if smaller), else the nearest older group that has,
        else its own while it has MIN_SCORES, else the nearest younger group with MIN_FALL
        (borrowed: its widest, level 0), else (None, False)."""
        H, need = self.H, min(MIN_FALL, self.window)
        n = lambda u: len(self.scores[u * H + j0])   # noqa: E731
        if n(g) >= need:
            return g * H + j0, False
        for u in range(g + 1, AGES):
            if n(u) >= need:
                return u * H + j0, False
        if n(g) >= MIN_SCORES:
            return g * H + j0, False
        for u in range(g - 1, -1, -1):
            if n(u) >= need:
                return u * H + j0, True
        return None, False

    def halfwidth(self, j, alpha, g=AGES - 1):
        r, borrowed = self.crow(g, min(j, self.H) - 1)
        if r is None:
            return math.inf
        return self.quantile(r, 0.0 if borrowed else self.level(r, alpha))

    def pvalue(self, s, g):
        v = self.scores[self.crow(g, 0)[0]]
        if not v:
            return 1.0
        return (1.0 + sum(1 for x in v if x >= s)) / (1.0 + len(v))

    def insert(self, j0, s):
        self.scores[j0].append(s)
        if len(self.scores[j0]) > self.window:
            self.scores[j0].pop(0)

    # ---------------------------------------------------------------- one value of a key
    def observe(self, K, y, o):
        """y_n (n >= 1) against everything pending; o: the network's outputs at origin n - 1
        (None: refused). Returns (pred, anomaly)."""
        H, n = self.H, K.n
        s0 = n - 1
        corr = [self.rnd(clip(v, self.clip)) if o is not None else 0.0 for v in
                (o if o is not None else [0.0] * self.n_out)]
        iss = K.issued[s0]
        sc, bbs, cns, pred = iss["scale"], iss["bb"], [], None
        scur = self.scale(K)   # the key's scale when y is scored (before y enters)
        for j in range(1, H + 1):
            c = self.combine(K, j, bbs[j - 1], corr[min(j, self.n_out) - 1])
            if j == 1:
                pred = c
            cns.append(self.rc((c - bbs[j - 1]) / sc))
        iss["corr"], iss["cn"] = corr, cns
        anomaly = math.nan
        if n - 1 >= WARM and self.crow(self.group(n - 1), 0)[0] is not None:
            v = abs((y - bbs[0]) / sc - cns[0])
            anomaly = 1.0 - self.pvalue(min(v, VMAX), self.group(n - 1))
        for j in range(1, min(H, n) + 1):
            s = n - j
            if s < WARM:
                break
            iss = K.issued[s]
            scs, bb = iss["scale"], iss["bb"][j - 1]
            ylast = K.ys[s]
            sn = ylast
            if self.m > 0:
                idx = n - self.m * math.ceil(j / self.m)
                if idx >= 0:
                    sn = K.ys[idx]
            f = [bb + scs * iss["corr"][min(j, self.n_out) - 1], bb, ylast, sn, iss["log"][j - 1]]
            log_ok = K.alive and y > 0.0
            for e in range(E):
                if e == 4 and not log_ok:   # scored while every value is > 0
                    continue
                err = abs(y - f[e]) / scs
                if not err <= VMAX:
                    err = VMAX
                # a running mean of the key's s - WARM earlier scorings, then EW
                c = (s - WARM) / (s - WARM + 1)
                rho, rl = min(DECAY, c), LONG_DECAY
                K.err[j - 1, e] = self.rnd(err * scs if s == WARM else
                                           rho * K.err[j - 1, e] + (1.0 - rho) * (err * scs))
                if e in (2, 3) and j == min((self.m + 1) // 2, H):
                    ec = min(err, GATE_CLIP) * scs   # robust: one outage cannot open the gate
                    K.errl[e - 2] = self.rnd(
                        ec if s == WARM else
                        rl * K.errl[e - 2] + (1.0 - rl) * ec)
                self.pool[j - 1, e] = (err if self.pool_n[j - 1, e] == 0 else
                                       POOL_DECAY * self.pool[j - 1, e] + (1.0 - POOL_DECAY) * err)
                self.pool_n[j - 1, e] += 1
            cn = abs((y - bb) / scs - iss["cn"][j - 1])
            if scur > SHOCK * scs:   # over max(origin's scale, current scale / SHOCK)
                cn = cn * (SHOCK * scs / scur)
            if not cn <= VMAX:
                cn = VMAX
            r = self.group(s) * H + j - 1    # the origin's own age group
            for a in range(len(self.alphas)):
                q = self.quantile(r, self.at[a][r])
                if math.isfinite(q):
                    v = self.at[a][r] + self.aci_gamma * (self.alphas[a] - (1.0 if cn > q else 0.0))
                    self.at[a][r] = min(max(v, AT_LO), AT_HI)
            if len(self.scores[r]) >= WINSOR_N:   # winsorised at 6 x the row's median
                med = sorted(self.scores[r])[(len(self.scores[r]) - 1) // 2]
                if med > 0.0:
                    cn = min(cn, WINSOR * med)
            self.insert(r, cn)
        return pred, anomaly

    def ad_start(self, ad):
        ad[:] = [self.rnd(u) for u in ad_u0(self.m == 0)] + [0.0] * (AD_N - 2)

    def bank_step(self, bank, n, z, sp, S, members, ring, Sat, ad=None):
        """The members (level, trend, EW error) take z; sp: the season index of z's phase
        before its update, S: the indices after it; ring / Sat: the members' (level, trend)
        at the stored origins and the indices as they were there. A member's error at z is
        (1 - MS_MIX) |its one-step error| + MS_MIX x the mean, over the stored origins s with
        1 <= n - s <= H, of |z - its forecast of step n - s from s| (ascending s; none yet:
        the one-step error alone), each clamped to big; the EW (BANK_DECAY) of those from
        its first. With ad (the backbone's bank), the last member is the adaptive one (ad:
        its state; its gradients from the state before z, its u stepped after its update).
        Returns the combined
        (level, trend): the
        means of the members' weighted by exp(-eta (err - min) / min) of their new errors;
        at a stored origin (n % d == 0) the members' new (level, trend) and S are kept."""
        m = self.m
        n0 = m if m > 0 else 1
        mem = list(members)
        if ad is not None:
            al, be = ad_theta(ad[:2])
            mem.append((al, al * be))
        for k, (a, ab) in enumerate(mem):
            l, b, err = bank[k]
            e = z - (l + self.phi * b + sp)
            if k == len(members):
                gr = ad_sens(ad, e, al, be, self.phi)
            tot, c = 0.0, 0
            for s0 in sorted(ring):
                j = n - s0
                if 1 <= j <= self.H:
                    ls, bs = ring[s0][k]
                    f = ls + self.phacc[j] * bs + (Sat[s0][n % m] if m > 0 else 0.0)
                    tot = tot + min(abs(z - f), self.big)
                    c += 1
            x = min(abs(e), self.big)
            if c:
                x = (1.0 - MS_MIX) * x + MS_MIX * (tot / c)
            x = x if n == n0 else BANK_DECAY * err + (1.0 - BANK_DECAY) * x
            l = self.rnd(l + self.phi * b + a * e)
            b = self.rnd(self.phi * b + ab * e)
            bank[k] = [l, b, self.rnd(x)]
            if k == len(members):
                for i in range(4, AD_N):
                    ad[i] = self.rnd(ad[i])
                ad_step(ad, gr)
                for i in range(4):
                    ad[i] = self.rnd(ad[i])
        if n % self.d == 0:
            ring[n] = [(mb[0], mb[1]) for mb in bank]
            Sat[n] = list(S)
            for s0 in [s0 for s0 in ring if s0 < n - self.d * (self.Q - 1)]:
                del ring[s0], Sat[s0]       # (the last Q stored origins are kept)
        lo = min(mb[2] for mb in bank)
        eta = self.eta
        w = []
        for mb in bank:
            x = eta * ((mb[2] - lo) / (lo if lo > LO_FLOOR else LO_FLOOR))
            w.append(1.0 if x == 0.0 else (math.exp(-x) if x < CUT else 0.0))
        tot = 0.0
        for v in w:
            tot = tot + v
        L = B = 0.0
        for v, mb in zip(w, bank):
            u = v / tot
            L = L + u * mb[0]
            B = B + u * mb[1]
        return self.rnd(L), self.rnd(B)

    def update(self, K, y):
        """The backbone (a bank of additive level/trend members sharing the season indices,
        first cycle = indices) takes y."""
        n, m = K.n, self.m
        if n == 0:
            K.l, K.b, K.sc = self.rnd(y), 0.0, 0.0
            K.bank = [[self.rnd(y), 0.0, 0.0] for _ in range(len(self.members) + 1)]
            self.ad_start(K.ad)
        else:
            fit = K.l + self.phi * K.b
            p = n % m if m > 0 else 0
            sp = K.S[p] if m > 0 else 0.0
            fit = fit + sp
            e = y - fit
            if m > 0 and n < m:
                K.S[p] = self.rnd(y - K.l)
            else:
                if m > 0:
                    K.S[p] = self.rnd(sp + max(self.gamma, self.g0 / (n // m)) * e)
                K.l, K.b = self.bank_step(K.bank, n, y, sp, K.S, self.members, K.ring, K.Sat,
                                          K.ad)
            # the count restarts after the first cycle (its errors weigh one value)
            tn = n - m + 2 if (m > 0 and n >= m) else n
            r = max(1.0 / tn, SCALE_RATE)
            ae = min(abs(e), self.big)
            if tn > WARM:
                ae = min(ae, SCALE_CLIP * self.scale(K))
            K.sc = self.rnd(K.sc + r * (ae - K.sc))
        K.ys.append(self.rnd(y))
        self.zupdate(K, n, y)
        K.n += 1
        # what origin n forecasts with the backbone and the log member (the network part
        # comes with y_{n+1})
        K.issued[n] = {"bb": [self.bb(K, j) for j in range(1, self.H + 1)],
                       "log": [self.zfc(K.zl, K.zb, K.zS[(n + j) % m] if m > 0 else 0.0, j)
                               for j in range(1, self.H + 1)],
                       "scale": self.scale(K)}

    def zupdate(self, K, n, y):
        """The log member: the same rules on z = log y while every value is > 0."""
        m = self.m
        if not (y > 0.0 and (n == 0 or K.alive)):
            K.alive = False
            return
        z = math.log(y)
        K.alive = True
        if n == 0:
            K.zl, K.zb = self.rnd(z), 0.0
            K.zbank = [[self.rnd(z), 0.0, 0.0] for _ in self.zmembers]
            return
        p = n % m if m > 0 else 0
        sp = K.zS[p] if m > 0 else 0.0
        e = z - (K.zl + self.phi * K.zb + sp)
        if m > 0 and n < m:
            K.zS[p] = self.rnd(z - K.zl)
        else:
            if m > 0:
                K.zS[p] = self.rnd(sp + max(self.zgamma, self.g0 / (n // m)) * e)
            K.zl, K.zb = self.bank_step(K.zbank, n, z, sp, K.zS, self.zmembers, K.zring,
                                          K.zSat)

    def outputs(self, K, o, alpha):
        corr = [self.rnd(clip(v, self.clip)) for v in o]
        sc = self.scale(K)
        fc, lo, hi = [], [], []
        g = self.group(K.n - 1)
        for j in range(1, self.H + 1):
            c = self.combine(K, j, self.bb(K, j), corr[min(j, self.n_out) - 1])
            q = self.halfwidth(j, alpha, g)
            fc.append(c)
            lo.append(c - sc * q if math.isfinite(q) else math.nan)
            hi.append(c + sc * q if math.isfinite(q) else math.nan)
        return fc, lo, hi

    # ---------------------------------------------------------------- the batch
    def step(self, keys, ys, xs=None, alpha=0.1):
        """Returns (status, pred, anomaly, fc, lo, hi) as lists per row (None on -1)."""
        keys = list(keys)
        assert len(set(keys)) == len(keys)
        B = len(keys)
        for b in range(B):
            if not abs(ys[b]) <= self.y_limit:
                return -1, None
            for i in range(self.n_x):
                v = xs[b][i] if xs is not None else math.nan
                if math.isinf(v) or (not math.isnan(v) and abs(v) > 1e100):
                    return -1, None
        Ks = [self.key(k) for k in keys]
        fx = [self.features(xs[b] if xs is not None else None) for b in range(B)]
        learn = [b for b in range(B) if Ks[b].n >= 1 and Ks[b].n % self.le == 0]
        adv = [b for b in range(B) if Ks[b].n >= 1 and Ks[b].n % self.le != 0]
        outs, status = {}, 1
        if learn:
            X = [self.inputs(Ks[b], fx[b]) for b in learn]
            Y = [self.targets(Ks[b], ys[b]) for b in learn]
            st, o = self.net.step([keys[b] for b in learn], X, Y, delayed=True)
            if st == 1:
                outs.update({b: o[i] for i, b in enumerate(learn)})
            else:
                status = 2
                for b in learn:
                    self.net.reset(keys[b])
        if adv:
            X = [self.inputs(Ks[b], fx[b]) for b in adv]
            st, o = self.net.advance([keys[b] for b in adv], X)
            if st == 1:
                outs.update({b: o[i] for i, b in enumerate(adv)})
            else:
                status = 2
                for b in adv:
                    self.net.reset(keys[b])
        for b in learn + adv:
            self.round_net_slot(keys[b])
        pred, anomaly = [math.nan] * B, [math.nan] * B
        for b in range(B):
            K = Ks[b]
            if K.n >= 1:
                pred[b], anomaly[b] = self.observe(K, ys[b], outs.get(b))
            self.update(K, ys[b])
        for b in range(B):
            for i in range(self.n_x):
                v = xs[b][i] if xs is not None else math.nan
                if math.isnan(v):
                    continue
                self.fn[i] += 1
                d = v - self.fmean[i]
                self.fmean[i] = self.fmean[i] + d / self.fn[i]
                self.fm2[i] = min(self.fm2[i] + d * (v - self.fmean[i]), 1e300)
        X = [self.inputs(K, [0.0] * self.n_x) for K in Ks]
        o = self.net.predict(keys, X)
        fc, lo, hi = [], [], []
        for b in range(B):
            f, l_, h_ = self.outputs(Ks[b], o[b], alpha)
            fc.append(f)
            lo.append(l_)
            hi.append(h_)
        self.t += 1
        return status, (pred, anomaly, fc, lo, hi)

    def forecast(self, k, h, x=None):
        K = self.keys.get(k)
        if K is None or K.n == 0:
            return [math.nan] * h
        o = self.net.predict([k], [self.inputs(K, self.features(x))])[0]
        corr = [self.rnd(clip(v, self.clip)) for v in o]
        out = []
        for j in range(1, h + 1):
            bb = self.bb(K, j) if j <= self.H else self.bb_raw(K, j)
            out.append(self.combine(K, j, bb, corr[min(j, self.n_out) - 1]))
        return out
