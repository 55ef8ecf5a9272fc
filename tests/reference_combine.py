"""Readable twin of ``streamrnn._core._combine`` (plain Python, one float operation at a time in
the kernel's order, so the tests can ask for equality, not closeness).

Derived from the study's prototype (``docs/research/seasonal/proto_forecaster.py``: Combiner in
"softmin" mode with ``mix1``, ACI, the p-value), with the choices the kernel adds: a warm-up of
the soft-min's sharpness, eligibility, pending forecasts keyed by their target, several tracked
levels per step, errors and scores clamped to 1e300.

Time: ``t`` values observed. ``issue`` made at time t forecasts value ``t + j - 1`` at step j;
``observe(y)`` is value t and scores, for every step j, what was issued for it j steps before.
"""
import math

VMAX = 1e300
LO_FLOOR = 1e-12
MIN_SCORES = 5
EXTEND = 1.25
COUNT_LIMIT = 2 ** 62


class RefCombiner:
    def __init__(self, n_experts, horizon, decay=0.98, eta=40.0, mix1=3.0, warm_n=50):
        self.E, self.H = n_experts, horizon
        self.decay, self.eta, self.mix1, self.warm_n = decay, eta, mix1, float(warm_n)
        self.t = 0
        self.L = [[None] * n_experts for _ in range(horizon)]   # None: no loss yet
        self.n_scored = [0] * horizon
        self.nL = [[0] * n_experts for _ in range(horizon)]   # losses seen per expert
        self.pending = {}                  # (target, j) -> list of E forecasts (None: none)
        self.eligible = [True] * n_experts

    def issue(self, F):
        for j in range(1, self.H + 1):
            row = [float(v) if math.isfinite(v) else None for v in F[j - 1]]
            self.pending[(self.t + j - 1, j)] = row

    def observe(self, y):
        for j in range(1, self.H + 1):
            row = self.pending.pop((self.t, j), None)
            if row is None:
                continue
            scored = False
            for e, f in enumerate(row):
                if f is None:
                    continue
                err = min(abs(f - y), VMAX)
                old = self.L[j - 1][e]
                if old is None:
                    self.L[j - 1][e] = err
                else:
                    # running mean of the first errors, then EW once n / (n + 1) >= decay
                    n = self.nL[j - 1][e]
                    rho = n / (n + 1.0)
                    if not rho < self.decay:
                        rho = self.decay
                    self.L[j - 1][e] = min(rho * old + (1.0 - rho) * err, VMAX)
                self.nL[j - 1][e] = min(self.nL[j - 1][e] + 1, COUNT_LIMIT - 1)
                scored = True
            if scored:
                self.n_scored[j - 1] += 1
        self.t += 1

    def _rel(self, j, avail):
        """Relative losses at step j of the available experts that have one (else None)."""
        have = [e for e in range(self.E) if avail[e] and self.L[j - 1][e] is not None]
        if not have:
            return None
        lo = min(self.L[j - 1][e] for e in have)
        den = max(lo, LO_FLOOR)
        return [(self.L[j - 1][e] - lo) / den if e in have else None for e in range(self.E)]

    def weights(self, j, f=None):
        j = max(1, min(j, self.H))
        avail = [self.eligible[e] and (f is None or math.isfinite(f[e])) for e in range(self.E)]
        if not any(avail):
            return [0.0] * self.E
        rel = self._rel(j, avail)
        w = [0.0] * self.E
        if rel is not None:
            r1 = self._rel(1, avail)
            if self.mix1 > 0.0:
                rel = [None if r is None else
                       (r + self.mix1 * (0.0 if r1 is None or r1[e] is None else r1[e]))
                       / (1.0 + self.mix1) for e, r in enumerate(rel)]
            n = float(self.n_scored[j - 1])
            eta = self.eta * n / (n + self.warm_n) if n + self.warm_n > 0.0 else self.eta
            w = [0.0 if r is None else math.exp(-eta * r) for r in rel]
        s = 0.0
        for v in w:
            s += v
        if not s > 0.0:
            w = [1.0 if a else 0.0 for a in avail]
            s = 0.0
            for v in w:
                s += v
        return [v / s for v in w]

    def combine(self, j, f):
        w = self.weights(j, f)
        acc = 0.0
        for e in range(self.E):
            if self.eligible[e] and math.isfinite(f[e]):
                acc += w[e] * f[e]
        return acc


class RefConformal:
    def __init__(self, horizon, alphas=(0.05, 0.1, 0.2), window=20, gamma=0.46, pwindow=None):
        self.H, self.alphas, self.W, self.gamma = horizon, tuple(alphas), window, gamma
        self.P = max(window, 100) if pwindow is None else pwindow
        self.pscores = []                            # the last P step-1 scores, oldest first
        self.t = 0
        self.window = [[] for _ in range(horizon)]   # scores of step j, oldest first
        self.at = [[a] * horizon for a in self.alphas]
        self.pending = {}                            # (target, j) -> (centre, [half-widths])
        self.hits = [[0] * horizon for _ in self.alphas]
        self.n = [[0] * horizon for _ in self.alphas]

    def _quantile(self, j, a):
        s = sorted(self.window[j - 1])
        c = len(s)
        if c < MIN_SCORES:
            return math.inf
        a0 = 1.0 / float(c + 1)
        if a < a0:  # beyond the largest: linear in the level
            return s[-1] * (1.0 + EXTEND * (a0 - a))
        if a > 1.0:
            return s[0] / (1.0 + EXTEND * (a - 1.0))
        if not a > 0.0:  # NaN
            return 1.5 * s[-1]
        if a >= 1.0:
            return s[0]
        k = int(math.ceil((1.0 - a) * float(c + 1)))
        return s[min(max(k, 1), c) - 1]

    def level(self, j, alpha):
        j = max(1, min(j, self.H))
        al, at = self.alphas, [row[j - 1] for row in self.at]
        if alpha in al:
            return at[al.index(alpha)]
        if alpha < al[0]:
            return at[0] + (alpha - al[0])
        if alpha > al[-1]:
            return at[-1] + (alpha - al[-1])
        i = max(i for i in range(len(al) - 1) if al[i] < alpha)
        u = (alpha - al[i]) / (al[i + 1] - al[i])
        return at[i] + u * (at[i + 1] - at[i])

    def halfwidth(self, j, alpha):
        j = max(1, min(j, self.H))
        return self._quantile(j, self.level(j, alpha))

    def issue(self, centres):
        for j in range(1, self.H + 1):
            c = centres[j - 1]
            if math.isfinite(c):
                hws = [self._quantile(j, self.at[a][j - 1]) for a in range(len(self.alphas))]
                self.pending[(self.t + j - 1, j)] = (float(c), hws)
            else:
                self.pending.pop((self.t + j - 1, j), None)

    def observe(self, y):
        for j in range(1, self.H + 1):
            item = self.pending.pop((self.t, j), None)
            if item is None:
                continue
            c, hws = item
            s = min(abs(y - c), VMAX)
            for a, h in enumerate(hws):
                if math.isfinite(h):
                    miss = 1.0 if s > h else 0.0
                    self.at[a][j - 1] += self.gamma * (self.alphas[a] - miss)
                    self.n[a][j - 1] += 1
                    self.hits[a][j - 1] += miss == 0.0
            w = self.window[j - 1]
            w.append(s)
            if len(w) > self.W:
                del w[0]
            if j == 1:
                self.pscores.append(s)
                if len(self.pscores) > self.P:
                    del self.pscores[0]
        self.t += 1

    def pvalue(self, score):
        s = self.pscores
        if not s:
            return 1.0
        return (1.0 + sum(1 for v in s if v >= score)) / (1.0 + len(s))

    def pvalue_y(self, y):
        item = self.pending.get((self.t, 1))
        if item is None:
            return 1.0
        return self.pvalue(min(abs(y - item[0]), VMAX))


class RefShrunkWeight:
    """The regressors' weight of the network against the running mean (``regression._Weight``),
    from the whole history rather than running sums: term ``k`` (age ``k``, 0 = newest) weighs
    ``decay ** k`` in the least-squares sums and ``decay ** (2 k)`` in the sandwich variance.

        w_ls = sum_k g^k d_k r_k / sum_k g^k d_k^2
        se   = sqrt(sum_k g^(2k) d_k^2 (r_k - w_ls d_k)^2) / sum_k g^k d_k^2
        z    = n_se sqrt(1 + prior / n),   n values scored
        w    = clip(w_ls (1 - (z se / w_ls)^2), 0, 1)   (0 if w_ls <= 0),
               0 while fewer than min_n values are scored

    d = network's prediction - mean, r = value - mean (both before the value). Sums in another
    order than the running ones: equal to rounding, not bit for bit."""

    def __init__(self, decay=0.995, min_n=20, n_se=2.0, prior=200.0):
        self.decay, self.min_n, self.n_se, self.prior = decay, min_n, n_se, prior
        self.hist = []          # (d, r), oldest first

    def observe(self, p, m, y):
        self.hist.append((p - m, y - m))

    def weight(self):
        if len(self.hist) < self.min_n:
            return 0.0
        pairs = list(reversed(self.hist))           # newest first: age k
        a = sum(self.decay ** k * d * d for k, (d, r) in enumerate(pairs))
        if not a > 0.0:
            return 0.0
        w = sum(self.decay ** k * d * r for k, (d, r) in enumerate(pairs)) / a
        if w <= 0.0:
            return 0.0
        v = sum(self.decay ** (2 * k) * d * d * (r - w * d) ** 2 for k, (d, r) in enumerate(pairs))
        se = math.sqrt(v) / a
        z = self.n_se * math.sqrt(1.0 + self.prior / len(pairs))
        return min(max(w * (1.0 - (z * se / w) ** 2), 0.0), 1.0)
