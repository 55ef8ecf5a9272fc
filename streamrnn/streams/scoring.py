"""Score forecasts when their targets arrive, per horizon step, against two baselines, and
the forecasts' intervals by coverage and width.

For every key, a forecast of ``h`` steps made after learning step ``s`` is scored at steps
``s+1 .. s+h``, each against the value that then arrives. The baselines are scored on the same
steps from the same origins:

- *last value*: ``y[s]`` for every step ahead;
- *seasonal naive* (with a season length ``m``): ``y[s + j - m * ceil(j / m)]``, the value one
  season (or as many seasons as needed) before the target, known at the origin; while the key
  has no such value yet (its first season), the last value ``y[s]`` stands in.

So every method is scored on the same rows (the model's): the baselines' ``n`` equals the
model's at every step, and their MAE compare like for like (:data:`BASELINE_NOTE`, the
sentence the command's summary prints). Before, the seasonal naive was scored only once a
season of history existed, while the model was scored from a key's second value: a short
series' hard first season counted against the model only.

When the forecast comes with an interval per step (``low``, ``high``), the interval of step
``j`` covers the target when ``low[j-1] <= y <= high[j-1]``; the table gives, per step, the
share of intervals that covered their target (%) and their mean width.

Memory is bounded per key: the forecasts (and intervals) of the last ``h`` steps and the last
``max(h, m * ceil(h / m))`` values. Error sums are kept per partition (``part``, so that each
partition's checkpoint can carry its own, see :meth:`HorizonScore.part_state`) and, for the
first ``detail_keys`` keys, per key.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

__all__ = ["HorizonScore", "BatchScore", "METHODS", "naive_season", "BASELINE_NOTE"]

METHODS = ("model", "last value", "seasonal naive")

#: How the baselines are scored, for a report's text.
BASELINE_NOTE = ("every method is scored on the same targets as the model; the seasonal naive "
                 "is the last value while a key has less than a season of history")
#: Bumped when the meaning of the sums changes: a checkpoint's scores of another version are
#: not mixed with this run's (version 2: the seasonal naive falls back to the last value).
SCORES_VERSION = 2

_COUNTS = ("n", "nsmape", "ncover")     # per method (ncover, cover: the model only), per step
_SUMS = ("abs", "smape", "cover", "width")
_MAX_STEPS = 10_000                     # horizon of a state read from a checkpoint


class _Sums:
    __slots__ = ("n", "abs", "smape", "nsmape", "ncover", "cover", "width", "scale", "nscale")

    def __init__(self, h):
        for name in _COUNTS:
            setattr(self, name, {m: [0] * h for m in METHODS})
        for name in _SUMS:
            setattr(self, name, {m: [0.0] * h for m in METHODS})
        self.scale = 0.0    # sum of |y[t] - y[t - m or 1]|: the in-sample naive error (MASE)
        self.nscale = 0

    def add(self, other):
        for name in _COUNTS + _SUMS:
            mine, theirs = getattr(self, name), getattr(other, name)
            for m in METHODS:
                a, b = mine[m], theirs[m]
                for j in range(len(a)):
                    a[j] += b[j]
        self.scale += other.scale
        self.nscale += other.nscale

    def table(self, methods):
        """{method: [{"step", "n", "mae", "smape", "mase", "n_interval", "coverage", "width"},
        ...]} (sMAPE and the interval's coverage (%) and width for the model only)."""
        q = self.scale / self.nscale if self.nscale else math.nan
        out = {}
        for m in methods:
            rows = []
            for j in range(len(self.n[m])):
                n = self.n[m][j]
                mae = self.abs[m][j] / n if n else math.nan
                sm = 100 * self.smape[m][j] / self.nsmape[m][j] if self.nsmape[m][j] else math.nan
                nc = self.ncover[m][j]
                rows.append({"step": j + 1, "n": n, "mae": mae, "smape": sm,
                             "mase": mae / q if q > 0 else math.nan, "n_interval": nc,
                             "coverage": 100 * self.cover[m][j] / nc if nc else math.nan,
                             "width": self.width[m][j] / nc if nc else math.nan})
            out[m] = rows
        return out

    # the state: plain lists (JSON), validated whole before anything is assigned
    def state(self):
        d = {name: [getattr(self, name)[m] for m in METHODS] for name in _COUNTS + _SUMS}
        d["scale"], d["nscale"] = self.scale, self.nscale
        return d

    @classmethod
    def from_state(cls, d, h, where):
        if type(d) is not dict or set(d) != set(_COUNTS + _SUMS + ("scale", "nscale")):
            raise ValueError(f"{where}: must hold exactly {sorted(_COUNTS + _SUMS)}, scale "
                             "and nscale")
        s = cls(h)
        for name in _COUNTS + _SUMS:
            rows = d[name]
            if type(rows) is not list or len(rows) != len(METHODS) or any(
                    type(r) is not list or len(r) != h for r in rows):
                raise ValueError(f"{where}.{name}: must be {len(METHODS)} lists of {h} numbers")
            for r in rows:
                if name in _COUNTS:
                    if not all(type(v) is int and 0 <= v < 1 << 62 for v in r):
                        raise ValueError(f"{where}.{name}: counts must be ints in [0, 2**62)")
                elif not all(type(v) in (int, float) and math.isfinite(v) and v >= 0 for v in r):
                    raise ValueError(f"{where}.{name}: sums must be finite numbers >= 0")
            setattr(s, name, {m: [float(v) if name in _SUMS else v for v in r]
                              for m, r in zip(METHODS, rows)})
        sc, ns = d["scale"], d["nscale"]
        if not (type(sc) in (int, float) and math.isfinite(sc) and sc >= 0):
            raise ValueError(f"{where}.scale: must be a finite number >= 0")
        if not (type(ns) is int and 0 <= ns < 1 << 62):
            raise ValueError(f"{where}.nscale: must be an int in [0, 2**62)")
        s.scale, s.nscale = float(sc), ns
        return s


def naive_season(spec) -> int:
    """The season of the seasonal naive baseline for a model spec: its ``seasonality`` when
    that is one period, the first of several (a list, a tuple or text such as ``"24,168"``),
    0 for none and for ``"auto"`` (the period the model detects is its own and may differ by
    key and over time)."""
    v = ((spec or {}).get("params") or {}).get("seasonality", 0)
    if isinstance(v, str):
        v = v.split(",")[0].strip()
        v = int(v) if v.isdigit() else 0
    elif isinstance(v, (list, tuple)):
        v = v[0] if v else 0
    return int(v) if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def _numbers(v, n, where):
    """A list of at most ``n`` finite numbers or None, as read from a state."""
    if type(v) is not list or len(v) > n or not all(
            x is None or (type(x) in (int, float) and math.isfinite(x)) for x in v):
        raise ValueError(f"{where}: must be a list of at most {n} finite numbers or null")
    return [None if x is None else float(x) for x in v]


class HorizonScore:
    """Per-horizon-step errors of a model's forecasts and of the baselines, and the coverage
    and width of the model's intervals.

    Call :meth:`observe` with each key's value (in order) and the forecast (and interval) made
    after learning it; :meth:`table` gives MAE and MASE per step and method, and the model's
    sMAPE (in %), interval coverage (in %) and mean interval width. It costs about 2 µs a
    message at horizon 1 and 20-35 µs at horizon 24, intervals included (CPU time, 200
    keys, on a loaded 2-core machine).

    Parameters
    ----------
    horizon
        Steps forecast after each value (>= 1).
    seasonality
        Season length ``m`` for the seasonal naive baseline (0: no such baseline); the MASE
        scale is the in-sample MAE of the naive forecast one season back (one step back
        when 0).
    detail_keys
        Keys (the first seen) whose errors are also kept separately.
    alpha
        The intervals' nominal miss rate (for the reports only: a 1 - alpha interval should
        cover 100 (1 - alpha) % of its targets); None when unknown.
    """

    def __init__(self, horizon: int, seasonality: int = 0, detail_keys: int = 20,
                 alpha: float | None = None):
        if type(horizon) is not int or horizon < 1:
            raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
        if type(seasonality) is not int or seasonality < 0:
            raise ValueError(f"seasonality must be an int >= 0, got {seasonality!r}")
        if alpha is not None and not (isinstance(alpha, float) and 0 < alpha < 1):
            raise ValueError(f"alpha must be a float in (0, 1) or None, got {alpha!r}")
        self.h = horizon
        self.m = seasonality
        self.alpha = alpha
        self.methods = METHODS if seasonality else METHODS[:2]
        self.detail_keys = detail_keys
        m = seasonality
        self._keep = max(horizon, m * -(-horizon // m) if m else 0, m or 1)
        self._pending = {}   # key -> deque of the last h (forecast, low, high) or None, newest last
        self._hist = {}      # key -> deque of the last values, newest last
        self.totals = {}     # part -> _Sums
        self.per_key = {}    # key -> _Sums (the first detail_keys keys)
        self._seen = {}      # part -> series started (a key forgotten and seen again counts twice)

    @property
    def keys_seen(self):
        """Series started, over all partitions."""
        return sum(self._seen.values())

    @property
    def total(self):
        """The sums over all partitions (a new object)."""
        t = _Sums(self.h)
        for p in sorted(self.totals, key=repr):
            t.add(self.totals[p])
        return t

    def observe(self, key, y: float, forecast=None, low=None, high=None, part=0):
        """Score the pending forecasts (and intervals) of ``key`` whose target is ``y``, then
        remember ``forecast`` (a list of up to ``horizon`` values, or None), its interval
        ``low``, ``high`` (lists as long as ``forecast``, or None) and ``y``. ``part`` is the
        partition whose sums the scores go to."""
        hist = self._hist.get(key)
        tot = self.totals.get(part)
        if tot is None:
            tot = self.totals[part] = _Sums(self.h)
        if hist is None:
            hist = self._hist[key] = deque(maxlen=self._keep)
            self._pending[key] = deque(maxlen=self.h)
            self._seen[part] = self._seen.get(part, 0) + 1
            if key not in self.per_key and len(self.per_key) < self.detail_keys:
                self.per_key[key] = _Sums(self.h)
        pend = self._pending[key]
        nh, m = len(hist), self.m
        back = m or 1
        det = self.per_key.get(key)
        if nh >= back:
            d = abs(y - hist[-back])
            tot.scale += d
            tot.nscale += 1
            if det is not None:
                det.scale += d
                det.nscale += 1
        if pend:
            self._score(tot, pend, hist, y)
            if det is not None:
                self._score(det, pend, hist, y)
        if forecast:
            ok = (low is not None and high is not None and len(low) >= len(forecast)
                  and len(high) >= len(forecast))
            pend.append((forecast, low if ok else None, high if ok else None))
        else:
            pend.append(None)
        hist.append(y)

    def _score(self, s, pend, hist, y):
        """Add the scores of the forecasts in ``pend`` that target ``y`` to the sums ``s``.

        The forecast made j steps ago (``pend[-j]``, made after ``hist[-j]``) targets this step
        with its step j. Inlined and with the lists bound to locals: it runs for every message
        and step ahead."""
        n_m, a_m, sm_m, ns_m = s.n["model"], s.abs["model"], s.smape["model"], s.nsmape["model"]
        nc_m, c_m, w_m = s.ncover["model"], s.cover["model"], s.width["model"]
        n_l, a_l = s.n["last value"], s.abs["last value"]
        m = self.m
        if m:
            n_s, a_s = s.n["seasonal naive"], s.abs["seasonal naive"]
            nh = len(hist)
        ay = abs(y)
        i = -1
        for made, last in zip(reversed(pend), reversed(hist)):
            i += 1  # step j = i + 1
            if made is None:
                continue
            fc, lo, hi = made
            if len(fc) <= i:
                continue
            f = fc[i]
            if f is None:
                continue
            e = abs(y - f)
            n_m[i] += 1
            a_m[i] += e
            d = ay + abs(f)
            if d > 0:
                sm_m[i] += 2.0 * e / d
                ns_m[i] += 1
            if lo is not None:
                a, b = lo[i], hi[i]
                if a is not None and b is not None:
                    nc_m[i] += 1
                    if a <= y <= b:
                        c_m[i] += 1.0
                    w_m[i] += b - a
            n_l[i] += 1
            a_l[i] += abs(y - last)
            if m:   # the value a season back, or the last value before one exists
                lag = m * -(-(i + 1) // m)
                n_s[i] += 1
                a_s[i] += abs(y - (hist[-lag] if lag <= nh else last))

    def forget(self, key):
        """Drop what is pending for ``key`` (e.g. its model was evicted)."""
        self._pending.pop(key, None)
        self._hist.pop(key, None)

    def table(self, key=None):
        """{method: [{"step", "n", "mae", "smape", "mase", "n_interval", "coverage", "width"},
        ...]} overall or for ``key``."""
        return (self.total if key is None else self.per_key[key]).table(self.methods)

    def scored(self):
        return sum(sum(t.n["model"]) for t in self.totals.values())

    # ------------------------------------------------------------------ state
    def config(self):
        """What a carried state must agree with: {"horizon", "seasonality", "alpha",
        "version"} (``version``: :data:`SCORES_VERSION`, how the sums are made)."""
        return {"horizon": self.h, "seasonality": self.m, "alpha": self.alpha,
                "version": SCORES_VERSION}

    def part_state(self, part):
        """The sums of partition ``part`` as plain JSON data ({"config", "sums", "keys_seen"}),
        or None when it has none."""
        t = self.totals.get(part)
        if t is None:
            return None
        return {"config": self.config(), "sums": t.state(), "keys_seen": self._seen.get(part, 0)}

    def key_state(self, key):
        """What is pending for ``key`` as plain JSON data, or None when nothing is: the values
        the baselines still need, and of each forecast of the last ``h`` steps only the steps
        whose targets are still to come (at most h (h + 1) / 2 numbers for each of forecast,
        low and high, plus at most ``max(h, m ceil(h / m))`` values)."""
        hist = self._hist.get(key)
        if hist is None:
            return None
        pend = []
        L = len(self._pending[key])
        for age, made in enumerate(self._pending[key]):
            if made is None:
                pend.append(None)
                continue
            skip = L - 1 - age  # made `L - age` steps ago: step `skip + 1` is scored next
            fc, lo, hi = made
            pend.append([skip, list(fc[skip:]), None if lo is None else list(lo[skip:]),
                         None if hi is None else list(hi[skip:])])
        d = {"hist": list(hist), "pending": pend}
        if key in self.per_key:
            d["detail"] = self.per_key[key].state()
        return d

    def check_config(self, state):
        """True when a part state (from :meth:`part_state`) was made with this configuration."""
        return type(state) is dict and state.get("config") == self.config()

    def load(self, parts, keys):
        """Take the sums of ``parts`` ({part: part_state}) and the pending forecasts of ``keys``
        ({key: key_state}), e.g. read back from a checkpoint. Everything is validated before
        anything is assigned; ValueError names the field."""
        staged_parts = {}
        for p, d in parts.items():
            where = f"scores of partition {p!r}"
            if type(d) is not dict or set(d) != {"config", "sums", "keys_seen"}:
                raise ValueError(f"{where}: must hold exactly config, sums and keys_seen")
            if not self.check_config(d):
                raise ValueError(f"{where}: made with {d['config']!r}, not {self.config()!r}")
            ks = d["keys_seen"]
            if type(ks) is not int or not 0 <= ks < 1 << 62:
                raise ValueError(f"{where}.keys_seen: must be an int in [0, 2**62)")
            staged_parts[p] = (_Sums.from_state(d["sums"], self.h, where + ".sums"), ks)
        staged_keys = {}
        h = self.h
        for key, d in keys.items():
            where = f"scores of key {str(key)[:80]!r}"
            if type(d) is not dict or not {"hist", "pending"} <= set(d) <= {"hist", "pending",
                                                                               "detail"}:
                raise ValueError(f"{where}: must hold hist, pending and optionally detail")
            hist = _numbers(d["hist"], self._keep, where + ".hist")
            if None in hist:
                raise ValueError(f"{where}.hist: values must be numbers")
            pend_in = d["pending"]
            if type(pend_in) is not list or len(pend_in) > h:
                raise ValueError(f"{where}.pending: must be a list of at most {h} entries")
            pend = deque(maxlen=h)
            L = len(pend_in)
            for age, e in enumerate(pend_in):
                w = f"{where}.pending[{age}]"
                if e is None:
                    pend.append(None)
                    continue
                skip = L - 1 - age
                if type(e) is not list or len(e) != 4 or e[0] != skip or type(e[0]) is not int:
                    raise ValueError(f"{w}: must be [{skip}, forecast, low, high]")
                fc = _numbers(e[1], h - skip, w + ".forecast")
                lo = None if e[2] is None else _numbers(e[2], len(fc), w + ".low")
                hi = None if e[3] is None else _numbers(e[3], len(fc), w + ".high")
                if (lo is None) != (hi is None) or (lo is not None and (
                        len(lo) != len(fc) or len(hi) != len(fc))):
                    raise ValueError(f"{w}: low and high must both be lists as long as the "
                                     "forecast, or both null")
                pad = [None] * skip
                pend.append((pad + fc, None if lo is None else pad + lo,
                             None if hi is None else pad + hi))
            detail = d.get("detail")
            if detail is not None:
                detail = _Sums.from_state(detail, h, where + ".detail")
            staged_keys[key] = (deque(hist, maxlen=self._keep), pend, detail)
        for p, (t, ks) in staged_parts.items():
            self.totals[p], self._seen[p] = t, ks
        for key, (hist, pend, detail) in staged_keys.items():
            self._hist[key], self._pending[key] = hist, pend
            if detail is not None:
                self.per_key[key] = detail


class BatchScore(HorizonScore):
    """:class:`HorizonScore` computed a batch at a time (:meth:`observe_many`), for the loop
    of the global model: the same sums (up to the order in which floating-point errors are
    added), the same state (:meth:`key_state`, :meth:`load`), with each key's last values and
    pending forecasts in preallocated arrays (row per key) instead of Python objects.

    ``observe_many(keys, ys, forecast, low, high, part)`` takes a batch in stream order:
    ``forecast``, ``low``, ``high`` are arrays (rows x horizon) with NaN (or an infinity in
    an interval) where a value is unknown, as a record's null.
    """

    def __init__(self, horizon: int, seasonality: int = 0, detail_keys: int = 20,
                 alpha: float | None = None):
        super().__init__(horizon, seasonality, detail_keys, alpha)
        self._rows = {}      # key -> row of the arrays
        self._free = []
        self._cap = 0
        self._grow(256)

    def _grow(self, cap):
        h, keep, old = self.h, self._keep, self._cap

        def more(a, shape, fill, dtype=float):
            b = np.full((cap,) + shape, fill, dtype=dtype)
            if old:
                b[:old] = a
            return b
        self._C = more(getattr(self, "_C", None), (), 0, np.int64)    # values seen
        self._NH = more(getattr(self, "_NH", None), (), 0, np.int64)  # values kept (<= keep)
        self._NP = more(getattr(self, "_NP", None), (), 0, np.int64)  # pending kept (<= h)
        self._H = more(getattr(self, "_H", None), (keep,), np.nan)    # value idx at idx % keep
        self._F = more(getattr(self, "_F", None), (h, h), np.nan)     # forecast made after
        self._LO = more(getattr(self, "_LO", None), (h, h), np.nan)   # value idx at idx % h
        self._HI = more(getattr(self, "_HI", None), (h, h), np.nan)
        self._M = more(getattr(self, "_M", None), (h,), False, bool)  # a forecast was made
        self._IV = more(getattr(self, "_IV", None), (h,), False, bool)  # with an interval
        self._free.extend(range(cap - 1, old - 1, -1))
        self._cap = cap

    def _new_row(self, key):
        if not self._free:
            self._grow(2 * self._cap)
        r = self._free.pop()
        self._C[r] = self._NH[r] = self._NP[r] = 0
        self._M[r] = self._IV[r] = False
        self._rows[key] = r
        return r

    def _row_of(self, key, part):
        r = self._rows.get(key)
        if r is None:
            r = self._new_row(key)
            self._seen[part] = self._seen.get(part, 0) + 1
            if key not in self.per_key and len(self.per_key) < self.detail_keys:
                self.per_key[key] = _Sums(self.h)
        return r

    @property
    def _hist(self):  # the keys that have values (HorizonScore's view, for its callers)
        return self._rows

    @_hist.setter
    def _hist(self, v):
        pass  # HorizonScore.__init__ sets it; the arrays hold the values

    def forget(self, key):
        r = self._rows.pop(key, None)
        if r is not None:
            self._free.append(r)

    def observe(self, key, y, forecast=None, low=None, high=None, part=0):
        h = self.h

        def row(v):
            a = np.full((1, h), np.nan)
            if v:
                vals = [math.nan if x is None else float(x) for x in v[:h]]
                a[0, :len(vals)] = vals
            return a
        ok = (forecast and low is not None and high is not None and len(low) >= len(forecast)
              and len(high) >= len(forecast))
        self._observe_distinct([key], np.array([float(y)]), row(forecast),
                               row(low if ok else None), row(high if ok else None), part,
                               made=bool(forecast), iv=bool(ok))

    def observe_many(self, keys, ys, forecast, low, high, part=0):
        """Score and remember a batch (keys in stream order; a key may repeat)."""
        ys = np.asarray(ys, dtype=float)
        n, start = len(keys), 0
        if len(set(keys)) == n:  # distinct keys (the common batch): one pass
            self._observe_distinct(keys, ys, forecast, low, high, part)
            return
        while start < n:
            seen = set()
            stop = start
            while stop < n and keys[stop] not in seen:
                seen.add(keys[stop])
                stop += 1
            self._observe_distinct(keys[start:stop], ys[start:stop], forecast[start:stop],
                                   low[start:stop], high[start:stop], part)
            start = stop

    def _observe_distinct(self, keys, y, F, LO, HI, part, made=True, iv=True):
        h, m, keep = self.h, self.m, self._keep
        tot = self.totals.get(part)
        if tot is None:
            tot = self.totals[part] = _Sums(h)
        rows = np.fromiter((self._row_of(k, part) for k in keys), dtype=np.int64,
                           count=len(keys))
        C, NH, NP = self._C[rows], self._NH[rows], self._NP[rows]
        j = np.arange(1, h + 1)
        idx = C[:, None] - j[None, :]                       # the origin's value index
        slot = idx % h
        R = rows[:, None]
        mask = (j[None, :] <= np.minimum(NP, NH)[:, None]) & self._M[R, slot]
        f = self._F[R, slot, j - 1]
        mask &= np.isfinite(f)
        yc = y[:, None]
        e = np.abs(yc - f)
        last = self._H[R, idx % keep]
        parts = {"mask": mask, "e": e, "f": f, "el": np.abs(yc - last)}
        a, b = self._LO[R, slot, j - 1], self._HI[R, slot, j - 1]
        cmask = mask & self._IV[R, slot] & np.isfinite(a) & np.isfinite(b)
        parts.update(cmask=cmask, inside=cmask & (a <= yc) & (yc <= b),
                     width=np.where(cmask, b - a, 0.0))
        if m:
            lag = m * -(-j // m)
            # the value a season back, or the last value before one exists (same rows)
            sv = np.where(lag[None, :] <= NH[:, None],
                          self._H[R, (C[:, None] - lag[None, :]) % keep], last)
            parts.update(smask=mask, es=np.abs(yc - sv))
        back = m or 1
        okb = NH >= back
        parts["okb"] = okb
        parts["d"] = np.abs(y - self._H[rows, (C - back) % keep])
        parts["y"] = yc
        self._add(tot, parts, slice(None))
        if self.per_key:
            for i, k in enumerate(keys):
                det = self.per_key.get(k)
                if det is not None:
                    self._add(det, parts, slice(i, i + 1))
        # remember this value and the forecast made after it
        s = C % h
        self._F[rows, s] = F[:, :h]
        self._LO[rows, s] = LO[:, :h]
        self._HI[rows, s] = HI[:, :h]
        self._M[rows, s] = made
        self._IV[rows, s] = iv
        self._H[rows, C % keep] = y
        self._C[rows] = C + 1
        self._NH[rows] = np.minimum(NH + 1, keep)
        self._NP[rows] = np.minimum(NP + 1, h)

    def _add(self, s, q, sel):
        mask = q["mask"][sel]
        if q["okb"][sel].any():
            okb = q["okb"][sel]
            s.scale += float(q["d"][sel][okb].sum())
            s.nscale += int(okb.sum())
        if not mask.any():
            return
        e, f, yc = q["e"][sel], q["f"][sel], q["y"][sel]
        cnt = mask.sum(0)
        dd = np.abs(yc) + np.abs(f)
        sm_mask = mask & (dd > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            sm = np.where(sm_mask, 2.0 * e / np.where(sm_mask, dd, 1.0), 0.0).sum(0)
        cols = {"n": cnt, "abs": np.where(mask, e, 0.0).sum(0), "smape": sm,
                "nsmape": sm_mask.sum(0), "ncover": q["cmask"][sel].sum(0),
                "cover": q["inside"][sel].sum(0).astype(float), "width": q["width"][sel].sum(0)}
        for name, v in cols.items():
            lst = getattr(s, name)["model"]
            for i, x in enumerate(v.tolist()):
                lst[i] += x
        nl, al = s.n["last value"], s.abs["last value"]
        for i, (c, x) in enumerate(zip(cnt.tolist(),
                                       np.where(mask, q["el"][sel], 0.0).sum(0).tolist())):
            nl[i] += c
            al[i] += x
        if self.m:
            smask = q["smask"][sel]
            ns, as_ = s.n["seasonal naive"], s.abs["seasonal naive"]
            for i, (c, x) in enumerate(zip(smask.sum(0).tolist(),
                                           np.where(smask, q["es"][sel], 0.0).sum(0).tolist())):
                ns[i] += c
                as_[i] += x

    # ------------------------------------------------------------------ state
    def key_state(self, key):
        r = self._rows.get(key)
        if r is None:
            return None
        h, keep = self.h, self._keep
        C, nh, L = int(self._C[r]), int(self._NH[r]), int(self._NP[r])
        hist = [float(self._H[r, (C - nh + i) % keep]) for i in range(nh)]

        def vals(a):
            return [float(v) if math.isfinite(v) else None for v in a.tolist()]
        pend = []
        for age in range(L):
            s = (C - L + age) % h
            if not self._M[r, s]:
                pend.append(None)
                continue
            skip = L - 1 - age
            iv = bool(self._IV[r, s])
            pend.append([skip, vals(self._F[r, s, skip:]),
                         vals(self._LO[r, s, skip:]) if iv else None,
                         vals(self._HI[r, s, skip:]) if iv else None])
        d = {"hist": hist, "pending": pend}
        if key in self.per_key:
            d["detail"] = self.per_key[key].state()
        return d

    def load(self, parts, keys):
        staged = HorizonScore(self.h, self.m, self.detail_keys, self.alpha)
        HorizonScore.load(staged, parts, keys)  # validates everything first
        self.totals.update(staged.totals)
        self._seen.update(staged._seen)
        self.per_key.update(staged.per_key)
        h, keep = self.h, self._keep
        for key, hist in staged._hist.items():
            pend = staged._pending[key]
            self.forget(key)
            r = self._new_row(key)
            nh, L = len(hist), len(pend)
            C = max(nh, L)
            for i, v in enumerate(hist):
                self._H[r, (C - nh + i) % keep] = v
            for age, made in enumerate(pend):
                s = (C - L + age) % h
                if made is None:
                    continue
                fc, lo, hi = made

                def put(a, v):
                    a[:] = np.nan
                    if v is not None:
                        a[:len(v)] = [math.nan if x is None else x for x in v]
                put(self._F[r, s], fc)
                self._M[r, s] = True
                if lo is not None:
                    put(self._LO[r, s], lo)
                    put(self._HI[r, s], hi)
                    self._IV[r, s] = True
            self._C[r], self._NH[r], self._NP[r] = C, nh, L
