"""A NumPy stand-in of GlobalCore's contract (per-key level, one shared weight), used only
until helper C's compiled core is merged; the estimator's own logic (keys, LRU, validation,
state) is what the tests exercise with it."""
import numpy as np


class StandInCore:
    def __init__(self, cell, hidden_size, num_layers, k2, horizon, period, n_x, capacity,
                 max_batch, slot_dtype, learn_every, seed, optimizer):
        self.H, self.n_x, self.capacity, self.max_batch = horizon, n_x, capacity, max_batch
        self.lr = optimizer.lr
        self._s = {"level": np.zeros(capacity), "count": np.zeros(capacity, dtype=np.int64)}
        self._w = np.array([0.0, 1.0])  # shared: bias, mean abs error
        self._t = 0

    slot_bytes = 16

    def step(self, slots, ys, xs, pred, score, fc, lo, hi, alpha=0.1):
        if not np.all(np.isfinite(ys)) or (xs is not None and np.any(np.isinf(xs))):
            return -1
        lv, cnt = self._s["level"], self._s["count"]
        p = np.where(cnt[slots] > 0, lv[slots] + self._w[0], np.nan)
        pred[:] = p
        err = np.abs(ys - p)
        score[:] = np.where(np.isnan(p), np.nan, np.minimum(err / (self._w[1] + 1e-9), 0.99))
        good = ~np.isnan(p)
        if good.any():
            self._w[0] += self.lr * np.mean((ys - p)[good])
            self._w[1] = 0.9 * self._w[1] + 0.1 * np.mean(err[good])
        lv[slots] = np.where(cnt[slots] > 0, 0.5 * lv[slots] + 0.5 * ys, ys)
        cnt[slots] += 1
        self._t += 1
        fc[:] = (lv[slots] + self._w[0])[:, None]
        lo[:] = fc - self._w[1]
        hi[:] = fc + self._w[1]
        return 1

    def forecast(self, slot, h, xs=None):
        return np.full(h, self._s["level"][slot] + self._w[0])

    def interval(self, slot, h, alpha=0.1, xs=None):
        f = self.forecast(slot, h)
        return f - self._w[1], f + self._w[1]

    def score(self, slot, y, x=None):
        return min(abs(y - self.forecast(slot, 1)[0]) / (self._w[1] + 1e-9), 0.99)

    def reset(self, slots):
        for a in self._s.values():
            a[slots] = 0

    def count(self, slot):
        return int(self._s["count"][slot])

    def get_slots(self, slots):
        return {k: a[slots].copy() for k, a in self._s.items()}

    def set_slots(self, slots, d):
        if set(d) != set(self._s):
            raise ValueError("bad slots")
        for k, a in d.items():
            if a.shape != (len(slots),):
                raise ValueError("bad slot shape")
        for k, a in d.items():
            self._s[k][slots] = a

    def get_shared_state(self):
        return {"w": self._w.copy(), "t": self._t}

    def set_shared_state(self, d):
        if set(d) != {"w", "t"} or np.shape(d["w"]) != (2,) or type(d["t"]) is not int:
            raise ValueError("bad shared state")
        self._w = np.array(d["w"], dtype=float)
        self._t = d["t"]

    def __sizeof__(self):
        return 100
