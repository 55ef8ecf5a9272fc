"""Readable NumPy/Python twin of ``streamrnn._core._backbone.Backbone``.

Derived from the prototype study (``docs/research/seasonal/proto_forecaster.py``: ``ESBank``
and ``PeriodDetector``, with ``ProtoForecaster``'s way of feeding the detector and adding the
periods it finds). Differences from the prototype, all deliberate and mirrored in the kernel:

- pending member forecasts are kept as one ring per horizon step j (length j: the forecasts of
  step j issued in the last j steps), K * H (H + 1) / 2 numbers instead of the (H, K, H) history;
  every forecast is still scored against the value it was made for;
- declared periods are sorted and every declared period is initialised from its first cycle
  (the prototype kept only 2 m_0 values, so a longer second period started from zero indices);
- members that are dead (log members after a value <= 0) are not updated any more (their
  weight was zero already);
- sums run in a fixed order (plain loops) and exp/log are the C library's (``math``), so the
  kernel reproduces this file to the last bit;
- finiteness guards for extreme input (|y| up to 1e100): states clamped to +-1e150, log-space
  forecasts clamped to [-700, 690] before exp, a constant detector signal has no ACF.

Per member k (transform tr: 1 = log while every value is positive, 0 = additive; alpha, beta,
phi, gamma; its periods P_k), in z-space:
    zhat = l + phi b + sum_{p in P_k} s_p[t mod m_p];   e = z - zhat
    l <- l + phi b + alpha e;   b <- phi b + alpha beta e;   s_p[t mod m_p] += gamma e / |P_k|
The bank's forecast of step j: soft-min of the members by loss[k, j] (absolute error in y units
of the forecast member k made j steps before: the running mean of the first ones, then an EW
average with decay 0.98 once n / (n + 1) reaches it). Member k's score at step j is
x_k = eta_j (rel_kj + ra_k) / 2, rel_kj = (L_kj - L_min,j) / L_min,j and ra_k its mean over the
matured steps (a member good at every step counts more than one lucky at this one), eta_j =
60 n_j / (n_j + 50), n_j the number of matured losses of step j; weight exp(-(x_k - min x))
(0 when that exponent is below -40: such a member cannot count next to the best one's 1).
"""
import math

import numpy as np

ALPHAS = (0.1, 0.3, 0.6, 1.0)
TRENDS = ((0.0, 1.0), (0.1, 0.9), (0.1, 0.98))   # (beta, phi)
GAMMAS = (0.2, 0.5)
TRANSFORMS = (1, 0)                               # log first, then additive
LOSS_DECAY = 0.98
ETA = 60.0
WARM_N = 50.0
MIX_ALL = 1.0          # weight of the mean relative loss over the matured steps in a score
SCALE_DECAY = 0.97
BIG = 1e150            # clamp of level, trend and seasonal indices
ZMAX, ZMIN = 690.0, -700.0
WINDOW_CLIP = 100.0
CUT = 40.0             # member weights exp(-x) with x >= 40 are 0
# detector (the study's defaults)
EW = 0.5          # the detector's EWMA rate (a linear trend lags it 1 / EW - 1 steps)
MIN_CYCLES = 3
R_MIN = 0.15
PROM_MIN = 0.3
ZCRIT = 5.0
FRAC = 0.7
MARGIN = 0.15
BQ = 3
MAX_DETECTED = 2
N_BASE = len(ALPHAS) * len(TRENDS) * len(TRANSFORMS)   # 24 non-seasonal members
# adaptive members (after the fixed ones: additive, then log; damped trend; every declared
# period): theta = (alpha, beta, gamma) = AD_LO + (AD_HI - AD_LO) sigmoid(u); after each value
# u_i -= AD_LR g_i / sqrt(v_i), g_i = d(e^2 / 2) / du_i through the smoothing equations (the
# sensitivities of l, b, s to theta carried as a recursion, from 0 at every (re)initialisation
# of the indices), v_i <- AD_V v_i + (1 - AD_V) g_i^2; u clipped to +-30; gamma only with a
# period; a step whose g_i^2 is not below 1e300 is skipped
N_AD = 2
AD_TRANSFORMS = (0, 1)
AD_PHI = 0.98
AD_LO, AD_HI = 0.01, 0.99
AD_LR = 0.02
AD_V = 0.99
AD_UCLIP = 30.0
AD_THETA0 = (0.3, 0.1, 0.6)


def ad_u0():
    out = []
    for th in AD_THETA0:
        sg = (th - AD_LO) / (AD_HI - AD_LO)
        out.append(math.log(sg / (1.0 - sg)))
    return out


def ad_theta(u):
    return tuple(AD_LO + (AD_HI - AD_LO) / (1.0 + math.exp(-v)) for v in u)


def clamp(x, lo, hi):
    return lo if x < lo else (hi if x > hi else x)


def seq_sum(values):
    acc = 0.0
    for v in values:
        acc += v
    return acc


class Detector:
    """The study's PeriodDetector ("ewres" signal): running ACF of u_t = z_t - EWMA_{t-1}(z)."""

    def __init__(self, max_lag):
        self.L = max_lag
        self.n = 0                       # signal values seen
        self.started = False
        self.ewm = 0.0
        self.buf = np.zeros(self.L + 1)  # buf[i]: signal value i steps back (newest i = 0)
        self.S0 = 0.0
        self.S2 = 0.0
        self.C = np.zeros(self.L + 1)    # C[k] = sum_t u_t u_{t-k}
        self.cand = 0
        self.cand_n = 0
        self.periods = []

    def cnt(self):
        return np.maximum(self.n - np.arange(self.L + 1), 0).astype(float)

    def update(self, z):
        if len(self.periods) >= MAX_DETECTED:
            return                       # nothing more to find
        if not self.started:
            self.started = True
            self.ewm = z
            return
        d = z - self.ewm
        self.ewm += EW * (z - self.ewm)
        self.buf = np.roll(self.buf, 1)
        self.buf[0] = d
        self.n += 1
        k = min(self.n, self.L + 1)
        for i in range(k):
            self.C[i] += d * self.buf[i]
        self.S0 += d
        self.S2 += d * d
        self.detect()

    def acf(self):
        n = self.n
        mu = self.S0 / n
        var = self.S2 / n - mu * mu
        if not (var > 1e-12 * (self.S2 / n)):
            return np.zeros(self.L + 1)  # constant signal: no ACF
        cnt = self.cnt()
        r = (self.C / np.maximum(cnt, 1.0) - mu * mu) / var
        r[cnt < 2] = 0.0
        return r

    def detect(self):
        L, n = self.L, self.n
        r = self.acf()
        # prominence over the running minimum of the shorter lags, Bartlett threshold
        runmin = np.empty(L + 1)
        runmin[0] = math.inf
        for m in range(1, L + 1):
            runmin[m] = min(runmin[m - 1], r[m])
        cs = np.zeros(L + 1)             # cs[m] = sum_{1 <= i < m} r_i^2
        for m in range(2, L + 1):
            cs[m] = cs[m - 1] + r[m - 1] * r[m - 1]
        cq = cs[min(BQ, L)]
        cand = []
        for m in range(2, L):
            if MIN_CYCLES * m > n or 2 * m > L:
                break
            if not (r[m] >= r[m - 1] and r[m] >= r[m + 1]):
                continue
            prom = r[m] - runmin[m - 1]
            bart = 1.0 + 2.0 * min(cs[m], cq)
            thr = max(PROM_MIN, ZCRIT * math.sqrt(2.0 * bart / max(n - m, 1)))
            if not (prom > thr and r[m] > R_MIN):
                continue
            r2 = r[2 * m]
            if r2 > (1.0 / 3.0) * r[m] and r2 > 0.5 * R_MIN:
                cand.append((m, prom))
        if not cand:
            self.cand, self.cand_n = 0, 0
            return
        if not self.periods:
            best = max(p for _, p in cand)
            m0 = [m for m, p in cand if p >= FRAC * best][0]
            lo, hi = max(2, m0 - m0 // 4), min(L, m0 + m0 // 4, n // MIN_CYCLES)
            m, bestc = lo, -math.inf
            for c in range(lo, hi + 1):
                v = r[c] + (r[2 * c] if 2 * c <= L else 0.0)
                if v > bestc:
                    m, bestc = c, v
            self.cand_n = self.cand_n + 1 if m == self.cand else 1
            self.cand = m
            if 2 * self.cand_n >= m:
                self.periods.append(m)
        else:
            m0 = self.periods[0]
            for c, _ in cand:
                if c % m0 == 0 and c >= 4 * m0 and r[c] > r[m0] + MARGIN:
                    self.periods.append(c)
                    break


class RefBackbone:
    def __init__(self, horizon, periods=(), auto=False, max_lag=200):
        self.H = int(horizon)
        self.declared = sorted(set(int(m) for m in periods))
        self.auto = bool(auto)
        self.L = int(max_lag)
        self.periods = list(self.declared)          # declared, then detected
        self.hist_len = max([2 * self.declared[0]] + self.declared) if self.declared else 0
        self.R = max(512, 2 * max(self.declared, default=0), 2 * self.L if self.auto else 0)
        # members: (tr, alpha, beta, phi, gamma, period indices)
        self.members = []
        for tr in TRANSFORMS:
            for a in ALPHAS:
                for be, ph in TRENDS:
                    self.members.append((tr, a, be, ph, 0.0, ()))
                    for i in range(len(self.declared)):
                        for g in GAMMAS:
                            self.members.append((tr, a, be, ph, g, tuple(range(i + 1))))
        self.k_ad = len(self.members)
        self.au = [ad_u0() for _ in range(N_AD)]
        self.av = [[0.0] * 3 for _ in range(N_AD)]
        self.adl = [[0.0] * 3 for _ in range(N_AD)]
        self.adb = [[0.0] * 3 for _ in range(N_AD)]
        self.ads = [[[np.zeros(m) for m in self.declared] for _ in range(3)] for _ in range(N_AD)]
        for a, tr in enumerate(AD_TRANSFORMS):
            al, be, g = ad_theta(self.au[a])
            self.members.append((tr, al, be, AD_PHI, g, tuple(range(len(self.declared)))))
        K = len(self.members)
        self.l = np.zeros(K)
        self.b = np.zeros(K)
        self.s = [np.zeros((K, m)) for m in self.periods]
        self.loss = np.zeros((K, self.H))
        # ring[j-1][i, k]: forecast of step j by member k issued at a time s with s % j == i
        self.ring = [np.zeros((j, K)) for j in range(1, self.H + 1)]
        self.t = 0
        self.alive_log = True
        self.hist = np.zeros(self.hist_len)         # the first values (seasonal initialisation)
        self.recent = []                            # the last R values
        self.scale_ew = 0.0
        self.det = Detector(self.L) if self.auto else None
        self.F = np.zeros((K, self.H))              # member forecasts issued now

    # -- helpers -----------------------------------------------------------------------------
    @property
    def K(self):
        return len(self.members)

    def dead(self, k):
        return self.members[k][0] == 1 and not self.alive_log

    def seasonal(self, k, tau):
        acc = 0.0
        for p in self.members[k][5]:
            acc += self.s[p][k, tau % self.periods[p]]
        return acc

    @staticmethod
    def phisum(phi, j):
        acc, p = 0.0, 1.0
        for _ in range(j):
            p *= phi
            acc += p
        return acc

    def member_forecast(self, k, j):
        """Forecast of member k, in y units, of the value j steps ahead."""
        tr, _, _, phi, _, _ = self.members[k]
        z = (self.l[k] + self.b[k] * self.phisum(phi, j)) + self.seasonal(k, self.t + j - 1)
        return math.exp(clamp(z, ZMIN, ZMAX)) if tr == 1 else z

    def nmat(self, j):
        """Matured losses of step j (1-based)."""
        return max(0, self.t - j)

    # -- learning ----------------------------------------------------------------------------
    def update(self, y):
        y = float(y)
        H, tau = self.H, self.t
        if y <= 0 and self.alive_log:
            self.alive_log = False
        alive = [k for k in range(self.K) if not self.dead(k)]
        # 1. score the forecasts made for this value, j steps before
        for j in range(1, min(H, tau) + 1):
            row = self.ring[j - 1][(tau + 1) % j]
            for k in alive:
                err = abs(row[k] - y)
                nn = self.nmat(j)
                if nn == 0:
                    self.loss[k, j - 1] = err
                else:
                    # running mean of the matured errors, then (once n/(n+1) >= decay) EW
                    dec = nn / (nn + 1.0)
                    if not dec < LOSS_DECAY:
                        dec = LOSS_DECAY
                    self.loss[k, j - 1] = dec * self.loss[k, j - 1] + (1.0 - dec) * err
        # 2. error-correction update of every live member; the adaptive members' sensitivities
        # first (from the state before it), their constants after it
        grads = {}
        if tau > 0:
            for a in range(N_AD):
                k = self.k_ad + a
                if self.dead(k):
                    continue
                grads[a] = self.adapt_grad(a, k, y, tau)
        for k in alive:
            tr, a, be, ph, g, ps = self.members[k]
            z = math.log(y) if tr == 1 else y
            if tau == 0:
                self.l[k] = clamp(z, -BIG, BIG)
                continue
            zhat = (self.l[k] + ph * self.b[k]) + self.seasonal(k, tau)
            e = z - zhat
            lk, bk = self.l[k], self.b[k]
            self.l[k] = clamp((lk + ph * bk) + a * e, -BIG, BIG)
            self.b[k] = clamp(ph * bk + (a * be) * e, -BIG, BIG)
            for p in ps:
                m = self.periods[p]
                if p >= len(self.declared) or tau >= m:      # initialised
                    v = self.s[p][k, tau % m] + (g * e) / len(ps)
                    self.s[p][k, tau % m] = clamp(v, -BIG, BIG)
        for a, gr in grads.items():
            self.adapt_step(a, self.k_ad + a, gr)
        if tau < self.hist_len:
            self.hist[tau] = y
        if tau >= 1:
            diff = abs(y - self.recent[-1])
            self.scale_ew = diff if tau == 1 else SCALE_DECAY * self.scale_ew + (1.0 - SCALE_DECAY) * diff
        self.recent.append(y)
        if len(self.recent) > self.R:
            del self.recent[0]
        self.t = tau + 1
        # 3. seasonal initialisation of the declared periods at t = m, re-initialisation at 2 m_0
        inited = False
        for p, m in enumerate(self.declared):
            if self.t == m:
                self.init_period(p, m)
                inited = True
        if self.declared and self.t == 2 * self.declared[0]:
            self.reinit_first()
            inited = True
        if inited:                     # the adaptive members' state was replaced
            for a in range(N_AD):
                self.adl[a] = [0.0] * 3
                self.adb[a] = [0.0] * 3
                for i in range(3):
                    for arr in self.ads[a][i]:
                        arr[:] = 0.0
        # 4. member forecasts issued now: step j matures at index t + j - 1
        for k in range(self.K):
            if self.dead(k):
                continue
            for j in range(1, H + 1):
                self.F[k, j - 1] = self.member_forecast(k, j)
                self.ring[j - 1][self.t % j, k] = self.F[k, j - 1]
        # 5. period detector on log y while every value is positive
        if self.det is not None:
            self.det.update(math.log(y) if self.alive_log else y)
            for m in self.det.periods:
                if m not in self.periods:
                    self.add_period(m)

    def adapt_grad(self, a, k, y, tau):
        """Carry adaptive member k's sensitivities d(l, b, s)/d(alpha, beta, gamma) through
        this value's update (clamps ignored); the gradients e de/dtheta of e^2 / 2."""
        tr, al, be, ph, g, ps = self.members[k]
        z = math.log(y) if tr == 1 else y
        e = z - ((self.l[k] + ph * self.b[k]) + self.seasonal(k, tau))
        gr = [0.0] * 3
        for i in range(3):
            ds = self.ads[a][i]
            dsum = 0.0
            for p in ps:
                dsum += ds[p][tau % self.periods[p]]
            dbase = self.adl[a][i] + ph * self.adb[a][i]
            de = -(dbase + dsum)
            nl = dbase + al * de                       # l' = base + alpha e
            nb = ph * self.adb[a][i] + (al * be) * de  # b' = phi b + alpha beta e
            if i == 0:
                nl = nl + e
                nb = nb + be * e
            elif i == 1:
                nb = nb + al * e
            for p in ps:                               # s' = s + gamma e / |P_k|
                m = self.periods[p]
                if tau >= m:
                    v = g * de
                    if i == 2:
                        v = v + e
                    ds[p][tau % m] = clamp(ds[p][tau % m] + v / len(ps), -BIG, BIG)
            self.adl[a][i] = clamp(nl, -BIG, BIG)
            self.adb[a][i] = clamp(nb, -BIG, BIG)
            gr[i] = e * de
        return gr

    def adapt_step(self, a, k, gr):
        tr, _, _, ph, _, ps = self.members[k]
        for i in range(3 if ps else 2):
            u = self.au[a][i]
            sg = 1.0 / (1.0 + math.exp(-u))
            gu = gr[i] * ((sg * (1.0 - sg)) * (AD_HI - AD_LO))   # d/du = d/dtheta dtheta/du
            q = gu * gu
            if q < 1e300:
                self.av[a][i] = AD_V * self.av[a][i] + (1.0 - AD_V) * q
                if self.av[a][i] > 0.0:
                    self.au[a][i] = clamp(u - (AD_LR * gu) / math.sqrt(self.av[a][i]),
                                          -AD_UCLIP, AD_UCLIP)
        al, be, g = ad_theta(self.au[a])
        self.members[k] = (tr, al, be, ph, g, ps)

    def _zhist(self, tr, n):
        zh = self.hist[:n]
        return np.array([math.log(v) for v in zh]) if tr == 1 else zh.copy()

    def _sel(self, tr, p):
        return [k for k, mem in enumerate(self.members) if mem[0] == tr and p in mem[5]]

    def init_period(self, p, m):
        """One-cycle indices: deviations of the first m values from their mean, minus the
        (shorter, already initialised) periods of the same member."""
        for tr in (0, 1):
            if tr == 1 and not self.alive_log:
                continue
            zh = self._zhist(tr, m)
            mean = seq_sum(zh) / m
            dev = zh - mean
            for k in self._sel(tr, p):
                self.s[p][k] = dev
                for q in self.members[k][5]:
                    if q < p:
                        self.s[p][k] -= self.s[q][k][np.arange(m) % self.periods[q]]
                self.l[k] = zh[m - 1] - self.seasonal(k, m - 1)
                self.b[k] = 0.0

    def reinit_first(self):
        """Two-cycle indices of the first period around a fitted trend line."""
        m = self.declared[0]
        for tr in (0, 1):
            if tr == 1 and not self.alive_log:
                continue
            zh = self._zhist(tr, 2 * m)
            c1 = seq_sum(zh[:m]) / m
            c2 = seq_sum(zh[m:]) / m
            slope = (c2 - c1) / m
            line = c1 + slope * (np.arange(2 * m) - (m - 1) / 2.0)
            dev = ((zh[:m] - line[:m]) + (zh[m:] - line[m:])) / 2.0
            dev = dev - seq_sum(dev) / m
            for k in self._sel(tr, 0):
                self.s[0][k] = dev
                self.l[k] = line[-1]
                self.b[k] = slope if self.members[k][2] > 0 else 0.0

    def add_period(self, m):
        """A detected period: copies of every non-seasonal member, one per gamma, with indices
        from the last (up to 4) cycles, losses and pending forecasts copied from the parent."""
        P = len(self.periods)
        self.periods.append(m)
        K = self.K
        parents = [k for k in range(K) if not self.members[k][5] and
                   not self.k_ad <= k < self.k_ad + N_AD]
        new = [(k, g) for k in parents for g in GAMMAS]
        idx = [k for k, _ in new]
        for k, g in new:
            tr, a, be, ph, _, _ = self.members[k]
            self.members.append((tr, a, be, ph, g, (P,)))
        self.l = np.concatenate([self.l, self.l[idx]])
        self.b = np.concatenate([self.b, self.b[idx]])
        for p in range(P):
            self.s[p] = np.concatenate([self.s[p], np.zeros((len(new), self.periods[p]))])
        self.s.append(np.zeros((self.K, m)))
        self.loss = np.concatenate([self.loss, self.loss[idx]])
        self.ring = [np.concatenate([r, r[:, idx]], axis=1) for r in self.ring]
        self.F = np.concatenate([self.F, np.zeros((len(new), self.H))])
        nrec = min(len(self.recent), 4 * m)
        n = (nrec // m) * m
        y = np.array(self.recent[len(self.recent) - n:])
        t0 = self.t - n
        for tr in (0, 1):
            if tr == 1 and not self.alive_log:
                continue
            z = np.array([math.log(v) for v in y]) if tr == 1 else y
            dev = np.zeros(m)
            for c in range(n // m):
                cyc = z[c * m:(c + 1) * m]
                dev += cyc - seq_sum(cyc) / m
            dev /= n // m
            sidx = np.zeros(m)
            sidx[(t0 + np.arange(m)) % m] = dev
            for k in range(K, self.K):
                if self.members[k][0] == tr:
                    self.s[P][k] = sidx
                    self.l[k] = z[-1] - sidx[(self.t - 1) % m]
        for k in range(K, self.K):
            if not self.dead(k):
                for j in range(1, self.H + 1):
                    self.F[k, j - 1] = self.member_forecast(k, j)

    # -- reading -----------------------------------------------------------------------------
    def raw_weights(self, j):
        """Unnormalised member weights of step j (1-based; j > H uses step H) and their sum."""
        j = min(j, self.H)
        alive = [k for k in range(self.K) if not self.dead(k)]
        w = np.zeros(self.K)
        n = self.nmat(j)
        if n == 0:
            for k in alive:
                w[k] = 1.0
        else:
            jm = min(self.H, self.t - 1)            # matured steps: at least one loss
            lo = [min(self.loss[k, i] for k in alive) for i in range(jm)]
            iv = [1.0 / max(v, 1e-12) for v in lo]
            eta = ((ETA * n) / (n + WARM_N)) / (1.0 + MIX_ALL)
            c = eta * iv[j - 1]
            e1 = eta * (MIX_ALL / jm)
            x = {}
            for k in alive:
                acc = 0.0                            # relative losses summed over the steps
                for i in range(jm):
                    acc += (self.loss[k, i] - lo[i]) * iv[i]
                # ((rel_j + MIX_ALL * acc / jm) / (1 + MIX_ALL)) * eta_j, as the kernel sums it
                x[k] = (self.loss[k, j - 1] - lo[j - 1]) * c + acc * e1
            xmin = min(x.values())
            for k in alive:
                v = x[k] - xmin
                w[k] = math.exp(-v) if v < CUT else 0.0  # below 4.3e-18 of the best: out
        return w, seq_sum(w)

    def weights(self, j):
        w, tot = self.raw_weights(j)
        return w / tot

    def forecast(self, h):
        out = np.zeros(h)
        if self.t == 0:
            return out
        for j in range(1, h + 1):
            w, tot = self.raw_weights(j)
            acc = 0.0
            for k in range(self.K):
                if w[k] > 0:
                    f = self.F[k, j - 1] if j <= self.H else self.member_forecast(k, j)
                    acc += w[k] * f
            out[j - 1] = acc / tot
        return out

    def best(self):
        alive = [k for k in range(self.K) if not self.dead(k)]
        if self.nmat(1) == 0:
            return alive[0]
        return min(alive, key=lambda k: (self.loss[k, 0], k))

    def window(self, n):
        out = np.zeros(n)
        if self.t == 0:
            return out
        k = self.best()
        tr = self.members[k][0]
        navail = min(n, len(self.recent))
        v = np.zeros(navail)
        for i in range(navail):
            tau = self.t - navail + i
            y = self.recent[len(self.recent) - navail + i]
            z = math.log(y) if tr == 1 else y
            v[i] = z - self.seasonal(k, tau)
        sc = seq_sum(abs(v[i + 1] - v[i]) for i in range(navail - 1)) / max(navail - 1, 1)
        sc = max(sc, 1e-9 * abs(self.l[k]), 1e-300)
        for i in range(navail):
            out[n - navail + i] = clamp((v[i] - self.l[k]) / sc, -WINDOW_CLIP, WINDOW_CLIP)
        return out

    @property
    def scale(self):
        if self.t == 0:
            return 1.0
        last = abs(self.recent[-1])
        if self.t == 1:
            return max(last, 1e-300) if last > 0 else 1.0
        return max(self.scale_ew, 1e-9 * last, 1e-300)

    def last(self):
        return self.recent[-1] if self.t else 0.0

    def snaive(self, j):
        if self.t == 0:
            return 0.0
        if not self.periods:
            return self.recent[-1]
        m = self.periods[0]
        if self.t < m:
            return self.recent[-1]
        return self.recent[len(self.recent) - m + (j - 1) % m]
