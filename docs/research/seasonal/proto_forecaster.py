"""Prototype of the non-network parts of a seasonal online forecaster (pure Python/NumPy).

Everything is learned one observation at a time; all state is plain numbers, lists and
NumPy arrays (see ``state()`` / ``ProtoForecaster.__getstate__``), so pickle round-trips are
bit-identical.  Written from scratch for the streamrnn prototype study.

Parts
-----
ESBank          vectorised bank of K error-correction ETS(A, Ad, A) members in a transformed
                space (identity, or log for positive series), one or more seasonal periods; the
                bank's forecast per horizon step is a soft-min combination of the members by
                their recent (exponentially weighted) absolute error at that horizon step.
ESGrad          one ETS member whose smoothing constants follow the online gradient of the
                one-step squared error through the smoothing equations (forward-mode).
PeriodDetector  running autocorrelation of first differences at lags 2..max_lag.
Combiner        per-horizon online combination (soft-min of EW absolute error, or Hedge).
ACI             per-horizon adaptive conformal intervals (Gibbs & Candes 2021) + p-value.
LinearCorrection  NLMS stand-in for the network: de-seasonalised, level-normalised window ->
                correction of the backbone for each horizon step (delayed targets).
ProtoForecaster river-style learn_one / forecast / forecast_interval / anomaly score.
"""
from __future__ import annotations

import os
import math

import numpy as np


# ----------------------------------------------------------------------------------------------
# Bank of exponential-smoothing members
# ----------------------------------------------------------------------------------------------
class ESBank:
    """K members, each: transform (0 = additive, 1 = log), alpha, beta, phi, gamma per period.

    State per member: level l, trend b, seasonal indices s[p] (K x m_p). Error-correction form:
        zhat = l + phi b + sum_p s_p[t mod m_p];   e = z - zhat
        l <- l + phi b + alpha e;   b <- phi b + alpha beta e;   s_p[t mod m_p] += gamma_p e
    Seasonal members are initialised after one full cycle of their period (before that they act
    as non-seasonal members).  Member losses: EW mean absolute error per horizon step, in y
    units, of the forecasts each member made j steps before.
    """

    def __init__(self, H, periods=(), alphas=(0.1, 0.3, 0.6, 1.0),
                 trends=((0.0, 1.0), (0.1, 0.9), (0.1, 0.98)),
                 gammas=(0.2, 0.5), log=True, additive=True, loss_decay=0.97, eta=20.0,
                 per_horizon=True, select="softmin", reinit2=True, mix1=0.0, fallback=False,
                 warm_n=50, split_gamma=True):
        self.H = int(H)
        self.periods = [int(m) for m in periods]
        self.loss_decay, self.eta = float(loss_decay), float(eta)
        self.per_horizon, self.select, self.reinit2 = bool(per_horizon), select, reinit2
        self.mix1 = float(mix1)
        self.fallback = bool(fallback)
        self.warm_n = float(warm_n)
        self.split_gamma = bool(split_gamma)
        self.nmat = np.zeros(self.H)  # matured losses per step
        self.base_grid = [(a, be, ph) for a in alphas for (be, ph) in trends]
        self.gammas = tuple(gammas)
        tr = ([1] if log else []) + ([0] if additive else [])
        self.transforms = tr
        rows = []
        for t in tr:
            for (a, be, ph) in self.base_grid:
                rows.append((t, a, be, ph, ()))
                # seasonal members: all declared periods at once (nested season sets for >1)
                for i in range(len(self.periods)):
                    for g in self.gammas:
                        rows.append((t, a, be, ph,
                                     tuple(g if q <= i else 0.0 for q in range(len(self.periods)))))
        self._build(rows)
        self.t = 0
        self.z_hist = {0: [], 1: []}  # only the first max(period) values (for initialisation)
        self.alive_log = True

    def _build(self, rows):
        P = len(self.periods)
        self.tr = np.array([r[0] for r in rows], dtype=np.int64)
        self.alpha = np.array([r[1] for r in rows], dtype=float)
        self.beta = np.array([r[2] for r in rows], dtype=float)
        self.phi = np.array([r[3] for r in rows], dtype=float)
        g = np.zeros((len(rows), P))
        for k, r in enumerate(rows):
            if r[4]:
                g[k] = r[4]
        self.gamma = g
        K = len(rows)
        self.l = np.zeros(K)
        self.b = np.zeros(K)
        self.s = [np.zeros((K, m)) for m in self.periods]
        self.inited = np.zeros(P, dtype=bool)
        self.loss = np.full((K, self.H), np.nan)
        self.dead = np.zeros(K, dtype=bool)
        self.Fhist = np.full((self.H, K, self.H), np.nan)  # Fhist[i] = forecasts made i+1 steps ago
        self.phisum = np.cumsum(self.phi[:, None] ** np.arange(1, self.H + 1)[None, :], axis=1)

    @property
    def K(self):
        return len(self.alpha)

    # -- transforms --------------------------------------------------------------------------
    def _z(self, y):
        z = np.full(self.K, float(y))
        if y > 0:
            z[self.tr == 1] = math.log(y)
        return z

    def _seasonal_at(self, idx):
        out = np.zeros(self.K)
        for p, m in enumerate(self.periods):
            out += self.s[p][:, idx % m]
        return out

    def add_period(self, m, recent_y):
        """Add a detected period: new seasonal members (copies of each non-seasonal member with
        each gamma), initialised from the recent values (>= 2 cycles).  O(K m)."""
        P = len(self.periods)
        self.periods.append(int(m))
        K = self.K
        self.gamma = np.concatenate([self.gamma, np.zeros((K, 1))], axis=1)
        self.s.append(np.zeros((K, m)))
        self.inited = np.append(self.inited, True)
        parents = np.where(~self.gamma[:, :P].any(axis=1))[0] if P else np.arange(K)
        y = np.asarray(recent_y, dtype=float)
        n = (len(y) // m) * m
        y = y[-n:]
        t0 = self.t - n  # time index of y[0]
        new = []
        for k in parents:
            for g in self.gammas:
                new.append((k, g))
        idx = np.array([k for k, _ in new], dtype=np.int64)
        for name in ("tr", "alpha", "beta", "phi", "l", "b", "dead"):
            arr = getattr(self, name)
            setattr(self, name, np.concatenate([arr, arr[idx]]))
        gnew = np.zeros((len(new), P + 1))
        gnew[:, P] = [g for _, g in new]
        self.gamma = np.concatenate([self.gamma, gnew])
        for p in range(P + 1):
            self.s[p] = np.concatenate([self.s[p], self.s[p][idx]])
        self.loss = np.concatenate([self.loss, self.loss[idx]])
        self.Fhist = np.concatenate([self.Fhist, self.Fhist[:, idx]], axis=1)
        self.phisum = np.concatenate([self.phisum, self.phisum[idx]])
        # seasonal indices of the new members from the recent cycles
        Kn = len(new)
        for tflag in (0, 1):
            sel = np.arange(K, K + Kn)[self.tr[K:] == tflag]
            if not len(sel) or (tflag == 1 and (y <= 0).any()):
                continue
            z = np.log(y) if tflag == 1 else y
            cyc = z.reshape(-1, m)
            dev = (cyc - cyc.mean(axis=1, keepdims=True)).mean(axis=0)  # phase j <-> t0 + j
            sidx = np.zeros(m)
            sidx[(t0 + np.arange(m)) % m] = dev
            self.s[P][sel] = sidx
            last_phase = (self.t - 1) % m
            self.l[sel] = z[-m:].mean() + 0.0 * sidx[last_phase]
            self.l[sel] = z[-1] - sidx[last_phase]
        self.dead[K:] |= (self.tr[K:] == 1) & (not self.alive_log)

    # -- learning ----------------------------------------------------------------------------
    def learn(self, y):
        y = float(y)
        if y <= 0 and self.alive_log:
            self.alive_log = False
            self.dead |= self.tr == 1
        # losses of the forecasts that mature now
        H = self.H
        err = np.abs(self.Fhist[np.arange(H), :, np.arange(H)] - y)  # (H, K)
        err = err.T  # K x H  (column j: forecast made j+1 steps ago at horizon j+1)
        ok = ~np.isnan(err)
        first = np.isnan(self.loss) & ok
        self.loss[first] = err[first]
        upd = ok & ~first
        self.loss[upd] = self.loss_decay * self.loss[upd] + (1 - self.loss_decay) * err[upd]
        self.nmat += ok.any(axis=0)
        z = self._z(y)
        if self.t == 0:
            self.l[:] = z
        else:
            zhat = self.l + self.phi * self.b + self._seasonal_at(self.t)
            e = z - zhat
            e[self.dead] = 0.0
            self.l = self.l + self.phi * self.b + self.alpha * e
            self.b = self.phi * self.b + self.alpha * self.beta * e
            # several periods share one error: split it so the seasonal parts do not
            # over-react together (split_gamma)
            nact = np.maximum((self.gamma > 0).sum(axis=1), 1) if self.split_gamma else 1.0
            for p, m in enumerate(self.periods):
                if self.inited[p]:
                    self.s[p][:, self.t % m] += self.gamma[:, p] * e / nact
        # one-cycle initialisation of the declared periods
        for tf in (0, 1):
            if tf == 1 and not (y > 0):
                continue
            if self.periods and self.t < 2 * self.periods[0]:
                self.z_hist[tf].append(math.log(y) if tf == 1 else y)
        self.t += 1
        for p, m in enumerate(self.periods):
            if not self.inited[p] and self.t == m:
                self.inited[p] = True
                for tf in (0, 1):
                    zh = np.asarray(self.z_hist[tf][:m])
                    if len(zh) < m:
                        continue
                    sel = (self.tr == tf) & (self.gamma[:, p] > 0)
                    dev = zh - zh.mean()
                    # other, already initialised periods are shorter: remove them first
                    self.s[p][sel] = dev[None, :]
                    for q in range(p):
                        self.s[p][sel] -= self.s[q][sel][:, np.arange(m) % self.periods[q]]
                    self.l[sel] = zh[-1] - self._seasonal_at(m - 1)[sel]
                    self.b[sel] = 0.0
        # two-cycle re-initialisation of the first period with a trend line (the one-cycle
        # indices carry the within-cycle trend)
        if self.periods and self.reinit2 and self.t == 2 * self.periods[0]:
            m = self.periods[0]
            for tf in (0, 1):
                zh = np.asarray(self.z_hist[tf][:2 * m])
                if len(zh) < 2 * m:
                    continue
                sel = (self.tr == tf) & (self.gamma[:, 0] > 0)
                c1, c2 = zh[:m].mean(), zh[m:].mean()
                slope = (c2 - c1) / m
                line = c1 + slope * (np.arange(2 * m) - (m - 1) / 2.0)
                dev = (zh - line).reshape(2, m).mean(axis=0)
                dev -= dev.mean()
                self.s[0][sel] = dev[None, :]  # phase j <-> time j (t0 = 0)
                self.l[sel] = line[-1]
                self.b[sel] = np.where(self.beta[sel] > 0, slope, 0.0)
        if self.periods and self.t >= 2 * self.periods[0]:
            self.z_hist = {0: [], 1: []}
        F = self.member_forecasts(H)
        self.Fhist = np.roll(self.Fhist, 1, axis=0)
        self.Fhist[0] = F

    def member_forecasts(self, h):
        """K x h matrix of member forecasts (y units) for the next h values."""
        steps = np.arange(1, h + 1)
        if h <= self.H:
            ps = self.phisum[:, :h]
        else:
            ps = np.cumsum(self.phi[:, None] ** steps[None, :], axis=1)
        Z = self.l[:, None] + self.b[:, None] * ps
        for p, m in enumerate(self.periods):
            Z = Z + self.s[p][:, (self.t + steps - 1) % m]
        Y = Z.copy()
        lg = self.tr == 1
        Y[lg] = np.exp(np.clip(Z[lg], -700, 700))
        return Y

    def weights(self):
        """K x H member weights per horizon step (soft-min of relative loss), vectorised."""
        L = self.loss.copy()
        if not self.per_horizon:
            L[:] = L[:, :1]
        L[self.dead] = np.nan
        if self.fallback:
            # a step whose losses have not matured yet borrows the losses of the longest
            # matured step (at the start only step 1 has any)
            mat = (~np.isnan(L)).any(axis=0)
            if mat.any() and not mat.all():
                last = -1
                for j in range(self.H):
                    if mat[j]:
                        last = j
                    elif last >= 0:
                        L[:, j] = L[:, last]
        fin = ~np.isnan(L)
        anyf = fin.any(axis=0)
        Lf = np.where(fin, L, np.inf)
        lo = Lf.min(axis=0)
        lo = np.where(np.isfinite(lo), lo, 0.0)
        if self.select == "best":
            W = np.zeros_like(L)
            W[np.argmin(Lf, axis=0), np.arange(self.H)] = 1.0
        else:
            r = np.where(fin, Lf - lo, 0.0) / np.maximum(lo, 1e-12)
            if self.mix1 > 0:
                r = (r + self.mix1 * np.where(fin[:, 0], r[:, 0], 0.0)[:, None]) / (1 + self.mix1)
            eta = self.eta
            if self.warm_n > 0:  # sharpen as evidence accumulates: eta n/(n + n0)
                eta = self.eta * self.nmat / (self.nmat + self.warm_n)
            W = np.where(fin, np.exp(-eta[None, :] * r if np.ndim(eta) else -eta * r), 0.0)
        W[:, ~anyf] = (~self.dead)[:, None] * 1.0
        return W / W.sum(axis=0, keepdims=True)

    def forecast(self, h):
        F = self.member_forecasts(h)
        W = self.weights()
        if h > self.H:
            W = np.concatenate([W, np.repeat(W[:, -1:], h - self.H, axis=1)], axis=1)
        else:
            W = W[:, :h]
        F = np.where(W > 0, F, 0.0)
        return (W * F).sum(axis=0)

    def best_member(self):
        L = np.where(self.dead | np.isnan(self.loss[:, 0]), np.inf, self.loss[:, 0])
        return int(np.argmin(L)) if np.isfinite(L).any() else int(np.argmin(self.dead))


# ----------------------------------------------------------------------------------------------
# One ES member with smoothing constants adapted by online gradient
# ----------------------------------------------------------------------------------------------
def _sig(u):
    return 1.0 / (1.0 + math.exp(-u))


class ESGrad:
    """ETS(A, Ad, A) in z = log y (positive series) or y; alpha, beta, gamma = sigmoid(u),
    u follows Adam-normalised gradient of 0.5 e_1^2 (one-step error), derivatives of the state
    propagated forward (RTRL through the smoothing equations).  phi fixed."""

    def __init__(self, period=0, log=True, phi=0.95, lr=0.02, init=(0.3, 0.05, 0.2), trend=True):
        self.m, self.log, self.phi, self.lr, self.trend = int(period), bool(log), phi, lr, trend
        self.u = np.array([math.log(p / (1 - p)) for p in init])
        self.l = 0.0
        self.b = 0.0
        self.s = np.zeros(max(self.m, 1))
        self.dl = np.zeros(3)
        self.db = np.zeros(3)
        self.ds = np.zeros((3, max(self.m, 1)))
        self.v = np.zeros(3)
        self.t = 0
        self.hist = []
        self.scale = None

    def _z(self, y):
        return math.log(y) if self.log else y

    def learn(self, y):
        if self.log and y <= 0:
            self.log = False  # (prototype: give up the transform; a real one would reset)
        z = self._z(y)
        if self.t == 0:
            self.l = z
            self.t = 1
            self.hist.append(z)
            return
        a, be, g = (_sig(x) for x in self.u)
        if not self.trend:
            be = 0.0
        m = self.m
        i = self.t % m if m else 0
        si = self.s[i] if m else 0.0
        zhat = self.l + self.phi * self.b + si
        e = z - zhat
        if self.scale is None:
            self.scale = abs(e) + 1e-9
        self.scale = 0.99 * self.scale + 0.01 * abs(e)
        ec = max(-4 * self.scale, min(4 * self.scale, e))  # huberised
        dsi = self.ds[:, i] if m else np.zeros(3)
        de = -(self.dl + self.phi * self.db + dsi)
        onehot = np.eye(3)
        # gradient of 0.5 e^2 wrt (alpha, beta, gamma), chain through sigmoid
        grad = ec * de * np.array([a * (1 - a), be * (1 - be), g * (1 - g)])
        if self.t > 2 * max(m, 4):
            self.v = 0.99 * self.v + 0.01 * grad ** 2
            self.u -= self.lr * grad / (np.sqrt(self.v) + 1e-12)
            self.u = np.clip(self.u, -6, 4)
        dl_new = self.dl + self.phi * self.db + a * de + ec * onehot[0]
        db_new = self.phi * self.db + a * be * de + ec * (be * onehot[0] + a * onehot[1])
        self.l, self.b = self.l + self.phi * self.b + a * ec, self.phi * self.b + a * be * ec
        self.dl, self.db = dl_new, (db_new if self.trend else np.zeros(3))
        if m:
            self.ds[:, i] = dsi + g * de + ec * onehot[2]
            self.s[i] += g * ec
        self.t += 1
        if m and self.t <= m:
            self.hist.append(z)
            if self.t == m:
                h = np.array(self.hist)
                self.s[:] = h - h.mean()
                self.l = h[-1] - self.s[(m - 1) % m]
                self.b = 0.0
                self.hist = []

    def forecast(self, h):
        steps = np.arange(1, h + 1)
        ps = np.cumsum(self.phi ** steps)
        z = self.l + self.b * ps
        if self.m:
            z = z + self.s[(self.t + steps - 1) % self.m]
        return np.exp(z) if self.log else z

    def params(self):
        return [round(_sig(x), 3) for x in self.u]


# ----------------------------------------------------------------------------------------------
# Online period detector
# ----------------------------------------------------------------------------------------------
class PeriodDetector:
    """Online period detector: running autocorrelation r_k, k = 1..max_lag, of a high-passed
    signal u_t, kept as cumulative sums (O(max_lag) per step, state = arrays of max_lag+1).

    signal="ewres" (default): u_t = y_t - EWMA_{t-1}(y) with EWMA rate `ew` (removes level and
    slow trend, keeps the season); signal="diff": u_t = y_t - y_{t-1} (kills smooth seasonality
    under noise: kept only for the comparison).  A lag m is accepted when
      (i)  n >= min_cycles * m;
      (ii) r_m is a local maximum and its prominence r_m - min_{1<=k<m} r_k exceeds
           max(prom_min, z * sqrt(2 / n_m)) (under white noise the prominence of the best of
           ~max_lag lags is about 6/sqrt(n): z = 8 keeps false alarms rare), and r_m > r_min;
      (iii) it is the smallest such lag whose prominence is >= frac of the best (no multiples),
           refined to the highest r_m + r_2m within +-25 %;
      (iv) the period repeats: 2m <= max_lag and r_{2m} > max(r_m / 3, r_min / 2) (so the
           longest detectable period is max_lag / 2; weekly-in-hourly needs max_lag >= 336);
      (v)  it stays the candidate for confirm * m consecutive checks.
    A second period k*m is accepted when r_{km} > r_m + margin and it also passes (ii)."""

    def __init__(self, max_lag=200, min_cycles=3, r_min=0.15, prom_min=0.3, z=5.0, frac=0.7,
                 margin=0.15, every=1, max_periods=2, signal="ewres", ew=0.1, bartlett=True,
                 confirm=0.5, bq=3, r2_frac=1.0 / 3.0):
        self.L = int(max_lag)
        self.min_cycles, self.r_min, self.prom_min, self.zc = min_cycles, r_min, prom_min, z
        self.frac, self.margin, self.every, self.max_periods = frac, margin, every, max_periods
        self.signal, self.ew, self.bartlett, self.confirm, self.bq = signal, ew, bartlett, confirm, bq
        self.r2_frac = r2_frac
        self.cand, self.cand_n = 0, 0  # candidate first period and for how many checks
        self.buf = np.zeros(self.L + 1)  # last L+1 signal values, newest at index 0
        self.n = 0
        self.S0 = 0.0
        self.S2 = 0.0
        self.C = np.zeros(self.L + 1)
        self.cnt = np.zeros(self.L + 1)
        self.prev = None
        self.ewm = None
        self.periods = []

    def update(self, y):
        if self.prev is None:
            self.prev = y
            self.ewm = y
            return self.periods
        if self.signal == "diff":
            d = y - self.prev
        else:
            d = y - self.ewm
            self.ewm += self.ew * (y - self.ewm)
        self.prev = y
        self.buf = np.roll(self.buf, 1)
        self.buf[0] = d
        self.n += 1
        k = min(self.n, self.L + 1)
        self.C[:k] += d * self.buf[:k]
        self.cnt[:k] += 1
        self.S0 += d
        self.S2 += d * d
        if self.n % self.every == 0 and len(self.periods) < self.max_periods:
            self._detect()
        return self.periods

    def acf(self):
        mu = self.S0 / max(self.n, 1)
        var = self.S2 / max(self.n, 1) - mu * mu
        r = (self.C / np.maximum(self.cnt, 1) - mu * mu) / max(var, 1e-300)
        r[self.cnt < 2] = 0.0
        return r

    def _detect(self):
        r = self.acf()
        n = self.n
        lags = np.arange(self.L + 1)
        runmin = np.minimum.accumulate(np.concatenate([[np.inf], r[1:]]))  # min_{1<=k<=m}
        prom = np.zeros_like(r)
        prom[2:] = r[2:] - runmin[1:-1]
        # Bartlett: var(r_k) ~ (1 + 2 sum_{i<k} r_i^2) / n  (persistent series -> higher bar)
        # (sum over the first `bq` lags only: the short-memory part, not the season itself)
        cs = np.concatenate([[0.0, 0.0], np.cumsum(r[1:] ** 2)])[:self.L + 1]
        bart = 1.0 + 2.0 * np.minimum(cs, cs[min(self.bq, self.L)]) if self.bartlett else 1.0
        thr = np.maximum(self.prom_min, self.zc * np.sqrt(2.0 * bart / np.maximum(self.cnt, 1)))
        ok = (lags >= 2) & (lags * self.min_cycles <= n)
        ok[1:-1] &= (r[1:-1] >= r[:-2]) & (r[1:-1] >= r[2:])
        ok[-1] = False
        ok &= (prom > thr) & (r > self.r_min)
        # (iv) a period must repeat: r at 2m is positive and at least a third of r_m
        two = 2 * lags
        inside = two <= self.L
        r2 = np.where(inside, r[np.minimum(two, self.L)], -1.0)
        ok &= inside & (r2 > self.r2_frac * r) & (r2 > 0.5 * self.r_min)
        cand = lags[ok]
        if not len(cand):
            self.cand, self.cand_n = 0, 0
            return
        if not self.periods:
            best = prom[cand].max()
            m0 = int(cand[prom[cand] >= self.frac * best][0])
            # refine: the highest r within +-25 % of the smallest strong peak (a broad peak
            # carries several noisy local maxima; taking the first biased the lag low)
            lo_, hi_ = max(2, m0 - m0 // 4), min(self.L, m0 + m0 // 4, n // self.min_cycles)
            seg = np.arange(lo_, hi_ + 1)
            comb = r[seg] + np.where(2 * seg <= self.L, r[np.minimum(2 * seg, self.L)], 0.0)
            m = int(seg[np.argmax(comb)])  # r_m + r_2m: the harmonic sum pins the lag
            # must stay the candidate for confirm * m consecutive checks
            self.cand_n = self.cand_n + 1 if m == self.cand else 1
            self.cand = m
            if self.cand_n >= max(1, self.confirm * m / self.every):
                self.periods.append(m)
        else:
            m0 = self.periods[-1]
            mult = [c for c in cand if c % m0 == 0 and c >= 4 * m0 and r[c] > r[m0] + self.margin]
            if mult:
                self.periods.append(int(mult[0]))


# ----------------------------------------------------------------------------------------------
# Combination, intervals, correction stand-in
# ----------------------------------------------------------------------------------------------
class Combiner:
    """Per-horizon online combination of E experts.  loss = EW absolute error (decay rho) of the
    forecast each expert made j steps before; weight = exp(-eta * (L - min L) / min L) ('softmin')
    or Hedge on cumulative discounted losses normalised by the running scale ('hedge')."""

    def __init__(self, E, H, rho=0.95, eta=6.0, mode="softmin", prior=None, mix1=0.0):
        self.E, self.H, self.rho, self.eta, self.mode = E, H, rho, eta, mode
        self.mix1 = mix1  # weight of the (fresher) one-step relative loss in every step's score
        self.prior = np.ones(E) if prior is None else np.asarray(prior, float)
        self.L = np.full((E, H), np.nan)
        self.G = np.zeros((E, H))      # Hedge: cumulative (discounted) scaled losses
        self.scale = np.full(H, np.nan)
        self.hist = np.full((H, E, H), np.nan)  # hist[i]: expert forecasts made i+1 steps ago

    def update(self, y):
        H = self.H
        err = np.abs(self.hist[np.arange(H), :, np.arange(H)] - y).T  # E x H
        ok = ~np.isnan(err)
        first = np.isnan(self.L) & ok
        self.L[first] = err[first]
        u = ok & ~first
        self.L[u] = self.rho * self.L[u] + (1 - self.rho) * err[u]
        cnt = ok.sum(axis=0)
        has = cnt > 0
        e = np.where(ok, err, 0.0).sum(axis=0) / np.maximum(cnt, 1)
        newsc = np.where(np.isnan(self.scale), e, 0.99 * self.scale + 0.01 * e)
        self.scale = np.where(has, newsc, self.scale)
        sc = np.where(np.isnan(self.scale), 1.0, np.maximum(self.scale, 1e-12))
        self.G = np.where(has[None, :], self.rho * self.G + np.where(ok, err, 0.0) / sc[None, :], self.G)

    def push(self, F):
        """F: E x H forecasts (NaN = expert unavailable) made now."""
        self.hist = np.roll(self.hist, 1, axis=0)
        self.hist[0] = F

    def weights(self, avail):
        if self.mode == "hedge":
            g = np.where(avail, self.G, np.inf)
            lo = g.min(axis=0)
            lo = np.where(np.isfinite(lo), lo, 0.0)
            w = np.where(avail, np.exp(-self.eta * (1 - self.rho) * np.where(avail, g - lo, 0.0)), 0.0)
        else:
            fin = avail & ~np.isnan(self.L)
            Lf = np.where(fin, self.L, np.inf)
            lo = Lf.min(axis=0)
            lo = np.where(np.isfinite(lo), lo, 0.0)
            rel = np.where(fin, Lf - lo, 0.0) / np.maximum(lo, 1e-12)
            if self.mix1 > 0:
                r1 = np.where(fin[:, 0], rel[:, 0], 0.0)
                rel = (rel + self.mix1 * r1[:, None]) / (1 + self.mix1)
            w = np.where(fin, np.exp(-self.eta * rel), 0.0)
            nof = ~fin.any(axis=0)
            w[:, nof] = avail[:, nof]
        w = w * self.prior[:, None]
        s = w.sum(axis=0, keepdims=True)
        return np.where(s > 0, w / np.where(s > 0, s, 1), avail / np.maximum(avail.sum(axis=0, keepdims=True), 1))


class ACI:
    """Per-horizon adaptive conformal intervals.  Score = |y - yhat_j| / scale, where scale = 1
    (plain) or the EW mean absolute one-step error at issue time (normalised=True, adapts the
    width to the local volatility); half-width = scale * empirical quantile of the last W scores
    of step j at level 1 - alpha_t[j]; alpha_t[j] <- alpha_t[j] + gamma (alpha - miss) when the
    interval issued j steps before is scored (Gibbs & Candes 2021, delayed by j steps).
    Also the conformal p-value of the newest value's one-step score (anomaly score)."""

    def __init__(self, H, alpha=0.1, gamma=0.03, window=50, normalised=False, scale_rate=0.05):
        self.H, self.alpha, self.gamma, self.W = H, alpha, gamma, window
        self.normalised, self.scale_rate = normalised, scale_rate
        self.at = np.full(H, alpha)
        self.scores = np.full((H, window), np.nan)
        self.pos = np.zeros(H, dtype=np.int64)
        self.hist = np.full((H, H, 3), np.nan)   # hist[i, j] = (yhat, halfwidth, scale) made i+1 ago
        self.pvalue = 1.0
        self.miss = np.zeros(H)
        self.count = np.zeros(H)
        self.scale = np.nan

    def update(self, y):
        idx = np.arange(self.H)
        yh = self.hist[idx, idx, 0]
        hw = self.hist[idx, idx, 1]
        scl = self.hist[idx, idx, 2] if self.normalised else np.ones(self.H)
        scl = np.where(np.isnan(scl) | (scl <= 0), 1.0, scl)
        valid = ~np.isnan(yh)
        err = np.abs(y - yh)
        sc = err / scl
        if valid[0]:
            prev = self.scores[0][~np.isnan(self.scores[0])]
            self.pvalue = (1 + (prev >= sc[0]).sum()) / (1 + len(prev))
            self.scale = err[0] if np.isnan(self.scale) else (
                (1 - self.scale_rate) * self.scale + self.scale_rate * err[0])
        hv = valid & ~np.isnan(hw)
        miss = (err > hw) & hv
        self.at[hv] += self.gamma * (self.alpha - miss[hv])
        self.miss += miss
        self.count += hv
        rows = idx[valid]
        self.scores[rows, self.pos[rows] % self.W] = sc[rows]
        self.pos[rows] += 1

    def current_scale(self):
        if not self.normalised:
            return 1.0
        return self.scale if (not np.isnan(self.scale) and self.scale > 0) else 1.0

    def halfwidths(self, alpha=None):
        srt = np.sort(self.scores, axis=1)  # NaN last
        c = (~np.isnan(self.scores)).sum(axis=1)
        a = self.at + ((alpha - self.alpha) if alpha is not None else 0.0)
        k = np.ceil((1 - a) * (c + 1)).astype(np.int64)
        k = np.clip(k, 1, np.maximum(c, 1)) - 1
        out = srt[np.arange(self.H), k]
        mx = np.where(c > 0, srt[np.arange(self.H), np.maximum(c - 1, 0)], np.nan)
        out = np.where(a <= 0, 1.5 * mx, out)
        return np.where(c < 5, np.nan, out) * self.current_scale()

    def push(self, yhat, hw):
        self.hist = np.roll(self.hist, 1, axis=0)
        self.hist[0, :, 0] = yhat
        self.hist[0, :, 1] = hw
        self.hist[0, :, 2] = self.current_scale()


class LinearCorrection:
    """Stand-in for the network: NLMS linear model per horizon step on a window of the
    de-seasonalised, level-normalised recent values ((z - s - l) / sc of the best backbone
    member, sc = mean |diff z| of the window), predicting the backbone's normalised error
    (z_{t+j} - zhat_{t+j}) / sc, clipped to +-clip.  Delayed targets; the combination sees it
    only after `warm` updates."""

    def __init__(self, H, window=24, mu=0.05, clip=3.0, warm=None):
        self.H, self.w, self.mu, self.clip = H, window, mu, clip
        self.warm = 3 * window if warm is None else warm
        self.n_upd = 0
        self.Wt = np.zeros((H, window + 1))
        self.xhist = np.full((H, window + 1), np.nan)  # input vectors made i+1 steps ago
        self.zhist = np.full((H, H), np.nan)            # backbone z forecasts made i+1 ago
        self.ready = False

    def update(self, z_now):
        for j in range(self.H):
            x = self.xhist[j]
            if np.isnan(x).any() or np.isnan(self.zhist[j, j]):
                continue
            target = z_now - self.zhist[j, j]
            pred = self.Wt[j] @ x
            self.Wt[j] += self.mu * (target - pred) * x / (1e-6 + x @ x)
            self.ready = True

    def push(self, x, zf):
        self.xhist = np.roll(self.xhist, 1, axis=0)
        self.xhist[0] = x
        self.zhist = np.roll(self.zhist, 1, axis=0)
        self.zhist[0] = zf

    def correction(self, x):
        return self.Wt @ x


# ----------------------------------------------------------------------------------------------
# The forecaster
# ----------------------------------------------------------------------------------------------
class ProtoForecaster:
    """river-style forecaster: backbone bank + last value + seasonal naive (+ correction),
    combined per horizon step; ACI intervals; anomaly p-value.

    seasonality: 0, int, tuple of ints, or "auto"."""

    def __init__(self, horizon=12, seasonality="auto", alpha=0.1, aci_gamma=0.05,
                 comb_rate=0.98, comb_eta=20.0, comb_mode="softmin", correction=False,
                 prior=(1.0, 1.0, 1.0, 1.0, 1.0), aci_window=50, aci_norm=False, comb_mix1=3.0,
                 window=24, max_lag=200, bank_kw=None, use_grad=False,
                 use=("backbone", "last", "snaive", "corr", "grad"), det_kw=None, net=None):
        self.H = int(horizon)
        self.auto = seasonality == "auto"
        if self.auto:
            per = []
        elif isinstance(seasonality, (tuple, list)):
            per = [int(m) for m in seasonality if m and m > 1]
        else:
            per = [int(seasonality)] if seasonality and int(seasonality) > 1 else []
        self.bank = ESBank(self.H, periods=per, **(bank_kw or {}))
        self.grad = ESGrad(period=per[0] if per else 0) if use_grad else None
        self.det = PeriodDetector(max_lag=max_lag, **(det_kw or {})) if self.auto else None
        self.use = tuple(use)
        self.maxbuf = max([max_lag * 3 if self.auto else 0] + [4 * m for m in per] + [window + 2, 8])
        self.y = []   # recent values (ring, trimmed)
        self.n = 0
        self.experts = ["backbone", "last", "snaive", "corr", "grad"]
        self.comb = Combiner(len(self.experts), self.H, rho=comb_rate, eta=comb_eta, mode=comb_mode,
                             prior=prior, mix1=comb_mix1)
        self.aci = ACI(self.H, alpha=alpha, gamma=aci_gamma, window=aci_window, normalised=aci_norm)
        self.corr = LinearCorrection(self.H, window=window) if correction else None
        self.window = window
        self.net = net  # an external river forecaster in the network's slot (e.g. a streamrnn model)
        self._fc = None
        self._bb = None
        self._det_pos = True  # detector works on log y while every value so far is positive

    @property
    def periods(self):
        return list(self.bank.periods)

    def _snaive(self, h):
        if not self.y:
            return np.full(h, np.nan)
        m = self.bank.periods[0] if self.bank.periods else 1
        if len(self.y) < m:
            return np.full(h, self.y[-1])
        return np.array([self.y[-m + ((i) % m)] for i in range(h)])

    def _corr_input(self):
        bk = self.bank
        k = bk.best_member()
        ys = np.array(self.y[-self.window:], dtype=float)
        if len(ys) < self.window:
            return None, None, None
        tf = bk.tr[k]
        z = np.log(ys) if tf == 1 else ys.copy()
        idx = bk.t - self.window + np.arange(self.window)
        for p, m in enumerate(bk.periods):
            z = z - bk.s[p][k, idx % m]
        sc = max(float(np.mean(np.abs(np.diff(z)))) if len(z) > 1 else 1.0, 1e-9)
        x = np.append((z - bk.l[k]) / sc, 1.0)
        zf = bk.member_forecasts(self.H)[k]
        zf = np.log(zf) if tf == 1 else zf
        return x, zf, (k, tf, sc)

    def learn_one(self, y, x=None):
        y = float(y)
        self.comb.update(y)
        self.aci.update(y)
        if self.corr is not None and self._corr_meta is not None:
            k, tf, sc = self._corr_meta
            if tf == 1:
                if y > 0:
                    self._corr_update_add(math.log(y), sc)
            else:
                self._corr_update_add(y, sc)
        self.bank.learn(y)
        if self.net is not None:
            self.net.learn_one(y, x)
        if self.grad is not None:
            self.grad.learn(y)
        self.y.append(y)
        if len(self.y) > self.maxbuf:
            del self.y[: len(self.y) - self.maxbuf]
        self.n += 1
        if self.det is not None:
            before = len(self.det.periods)
            self._det_pos = self._det_pos and y > 0
            per = self.det.update(math.log(y) if self._det_pos else y)
            if len(per) > before:
                self.bank.add_period(per[-1], self.y[-min(len(self.y), 4 * per[-1]):])
        self._issue()

    _corr_meta = None

    def _corr_update_add(self, zn, sc):
        # additive member: targets/inputs in level-normalised units (divide by sc)
        for j in range(self.corr.H):
            xj = self.corr.xhist[j]
            if np.isnan(xj).any() or np.isnan(self.corr.zhist[j, j]):
                continue
            target = (zn - self.corr.zhist[j, j]) / sc
            target = max(-self.corr.clip, min(self.corr.clip, target))
            pred = self.corr.Wt[j] @ xj
            self.corr.Wt[j] += self.corr.mu * (target - pred) * xj / (1e-6 + xj @ xj)
            if j == 0:
                self.corr.n_upd += 1

    def _issue(self):
        H = self.H
        F = np.full((len(self.experts), H), np.nan)
        F[0] = self.bank.forecast(H)
        if self.grad is not None and self.grad.t > 2 * max(self.grad.m, 4):
            F[4] = self.grad.forecast(H)
        F[1] = self.y[-1]
        if self.bank.periods and len(self.y) >= self.bank.periods[0]:
            F[2] = self._snaive(H)
        if self.corr is not None:
            x, zf, meta = self._corr_input()
            if x is not None:
                c = self.corr.correction(x)
                k, tf, sc = meta
                c = np.clip(c, -self.corr.clip, self.corr.clip)
                if self.corr.n_upd >= self.corr.warm:
                    F[3] = np.exp(zf + c * sc) if tf == 1 else zf + c * sc
                self.corr.push(x, zf)
                self._corr_meta = meta
        if self.net is not None and self.n > 2 * self.H:
            F[3] = np.asarray(self.net.forecast(H), float)
        for i, e in enumerate(self.experts):
            if e not in self.use:
                F[i] = np.nan
        self.comb.push(F)
        avail = ~np.isnan(F)
        W = self.comb.weights(avail)
        fc = (np.nan_to_num(F) * W).sum(axis=0)
        self._fc = fc
        self._F = F
        hw = self.aci.halfwidths()
        self.aci.push(fc, hw)

    # -- API ---------------------------------------------------------------------------------
    def forecast(self, horizon, xs=None):
        if self._fc is None:
            return [0.0] * horizon
        if horizon <= self.H:
            return [float(v) for v in self._fc[:horizon]]
        # beyond H: backbone/last/snaive have any horizon; reuse the weights of step H
        out = [float(v) for v in self._fc]
        W = self.comb.weights(~np.isnan(self._F))[:, -1]
        bb = self.bank.forecast(horizon)
        sn = self._snaive(horizon)
        for h in range(self.H, horizon):
            parts = [bb[h], self.y[-1], sn[h] if not np.isnan(sn[h]) else self.y[-1], bb[h], bb[h]]
            out.append(float(sum(w * p for w, p in zip(W, parts))))
        return out

    def forecast_interval(self, horizon, alpha=0.1, xs=None):
        fc = self.forecast(horizon)
        hw = self.aci.halfwidths(alpha)
        res = []
        for h in range(horizon):
            w = hw[min(h, self.H - 1)]
            w = np.inf if np.isnan(w) else w
            res.append((float(fc[h] - w), float(fc[h] + w)))
        return res

    def anomaly_score(self):
        """Conformal p-value of the newest value's one-step score (small = anomalous)."""
        return float(self.aci.pvalue)


class RunningMeanCombo:
    """'Do no harm' for regressors: combine a regressor's prediction with the running mean of y
    by soft-min of EW absolute error (one horizon step)."""

    def __init__(self, rho=0.995, eta=50.0):
        self.comb = Combiner(2, 1, rho=rho, eta=eta)
        self.mean = 0.0
        self.n = 0

    def predict(self, p):
        F = np.array([[p], [self.mean if self.n else p]])
        self._F = F
        W = self.comb.weights(np.ones_like(F, dtype=bool))
        return float((F * W).sum())

    def learn(self, y):
        self.comb.push(self._F)
        self.comb.update(y)
        self.n += 1
        self.mean += (y - self.mean) / self.n
