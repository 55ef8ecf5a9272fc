"""Prototype study: online seasonal backbone + combination + ACI vs baselines.

python study.py [--only NAME,...] [--no-river] [--no-extra] > results.txt   (~4 min, 1 core)

Hold-out protocol: 10 forecast origins evenly spaced over the last 40 % of each series; online
models stream the whole series and are asked forecast(H) at each origin (having learned
y_0..y_{t-1}); statsmodels ETS(A,Ad,M|A|N) and Theta are refitted offline on y_0..y_{t-1} at
each origin.  sMAPE, and MASE scaled by the in-sample seasonal-naive MAE before the first origin.
Coverage: proto's 90 % intervals at every step from half the first origin on, all H steps.
Columns: bank = ESBank alone, grad = ESGrad alone, proto = ProtoForecaster(seasonality=declared
m or 0), proto-auto = seasonality="auto", proto+lin* = proto + NLMS linear stand-in for the
network (a stand-in, not the network), proto-m12! = a declared period 12 the data lacks.
"""
from __future__ import annotations

import os
import argparse
import math
import statistics
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proto_forecaster import ESBank, ESGrad, ProtoForecaster, RunningMeanCombo  # noqa: E402


# ---------------------------------------------------------------------------------------------
def load_collection():
    from river import datasets
    import statsmodels.api as sm
    import pandas as pd

    D = []
    D.append(("Airline(M)", np.array([y for _, y in datasets.AirlinePassengers()], float), 12, 12))
    D.append(("WaterFlow(H)", np.array([y for _, y in datasets.WaterFlow()], float), 24, 24))
    D.append(("Trump(D)", np.array([y for _, y in datasets.TrumpApproval()], float), 1, 7))
    co2 = sm.datasets.co2.load_pandas().data["co2"].interpolate().bfill()
    D.append(("co2(W)", co2.values.astype(float), 52, 13))
    D.append(("co2(M)", co2.resample("MS").mean().dropna().values.astype(float), 12, 12))
    ss = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].values.astype(float)
    D.append(("sunspots(Y)", ss, 1, 6))
    el = sm.datasets.elnino.load_pandas().data.iloc[:, 1:].values.ravel().astype(float)
    D.append(("elnino(M)", el, 12, 12))
    D.append(("nile(Y)", sm.datasets.nile.load_pandas().data["volume"].values.astype(float), 1, 6))
    md = sm.datasets.macrodata.load_pandas().data
    for c in ("realgdp", "cpi", "unemp", "infl", "m1"):
        D.append((f"macro.{c}(Q)", md[c].values.astype(float), 1, 8))
    ii = sm.datasets.interest_inflation.load_pandas().data
    D.append(("intinfl.R(Q)", ii["R"].values.astype(float), 1, 8))
    return D


# ---------------------------------------------------------------------------------------------
class LastValue:
    def __init__(self):
        self.y = None

    def learn_one(self, y, x=None):
        self.y = y

    def forecast(self, horizon, xs=None):
        return [self.y if self.y is not None else 0.0] * horizon


class SeasonalNaive:
    def __init__(self, m):
        self.m, self.buf = max(int(m), 1), []

    def learn_one(self, y, x=None):
        self.buf.append(y)
        self.buf = self.buf[-self.m:]

    def forecast(self, horizon, xs=None):
        if len(self.buf) < self.m:
            return [self.buf[-1] if self.buf else 0.0] * horizon
        return [self.buf[h % self.m] for h in range(horizon)]


class Wrap:
    """river-style wrapper around ESBank / ESGrad."""

    def __init__(self, core, H):
        self.core, self.H = core, H

    def learn_one(self, y, x=None):
        self.core.learn(y)

    def forecast(self, horizon, xs=None):
        return list(self.core.forecast(horizon))


def river_hw(name, m, positive):
    from river import time_series
    if name.startswith("Airline"):
        return time_series.HoltWinters(alpha=0.3, beta=0.1, gamma=0.6, seasonality=12, multiplicative=True)
    if name.startswith("WaterFlow"):
        return time_series.HoltWinters(alpha=0.1)
    if m > 1:
        return time_series.HoltWinters(alpha=0.3, beta=0.1, gamma=0.6, seasonality=m, multiplicative=positive)
    return time_series.HoltWinters(alpha=0.3, beta=0.1)


class NoX:
    """Hide the dataset's features (datetimes) from SNARIMAX's regressor."""

    def __init__(self, model):
        self.model = model

    def learn_one(self, y, x=None):
        self.model.learn_one(y)

    def forecast(self, horizon, xs=None):
        return self.model.forecast(horizon)


def river_snarimax(m):
    from river import time_series
    if m > 1:
        p = min(m, 24)
        return NoX(time_series.SNARIMAX(p=p, d=1, q=p, m=m, sd=1))  # river's doc settings
    return NoX(time_series.SNARIMAX(p=2, d=1, q=1))


def smape(y, f):
    y, f = np.asarray(y, float), np.asarray(f, float)
    d = np.abs(y) + np.abs(f)
    return float(np.mean(np.where(d > 0, 200 * np.abs(y - f) / np.where(d > 0, d, 1), 0.0)))


def mase_scale(y, m):
    m = max(m, 1)
    d = np.abs(y[m:] - y[:-m])
    return float(d.mean()) if len(d) and d.mean() > 0 else 1.0


def offline(kind, hist, m, H):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from statsmodels.tsa.forecasting.theta import ThetaModel
    pos = bool((hist > 0).all())
    try:
        if kind == "ets":
            seas = None if m <= 1 or len(hist) < 2 * m + 2 else ("mul" if pos else "add")
            mod = ETSModel(hist, error="add", trend="add", damped_trend=True, seasonal=seas,
                           seasonal_periods=m if seas else None)
            return np.asarray(mod.fit(disp=False, maxiter=200).forecast(H))
        if kind == "theta":
            ds = m > 1 and len(hist) >= 2 * m
            mod = ThetaModel(hist, period=m if m > 1 else None, deseasonalize=ds,
                             method="multiplicative" if pos else "additive")
            return np.asarray(mod.fit().forecast(H))
    except Exception as e:  # pragma: no cover
        print("  offline", kind, "failed:", e, file=sys.stderr)
    return np.full(H, hist[-1])


def online_models(name, m, H, positive, with_river=True, extra=True):
    per = m if m > 1 else 0
    M = {
        "last": lambda: LastValue(),
        "snaive": lambda: SeasonalNaive(m),
    }
    if with_river:
        M["rvHW"] = lambda: river_hw(name, m, positive)
        M["rvSNARIMAX"] = lambda: river_snarimax(m)
    M["bank"] = lambda: Wrap(ESBank(H, [per] if per else []), H)
    if extra:
        M["grad"] = lambda: Wrap(ESGrad(per, log=positive), H)
    M["proto"] = lambda: ProtoForecaster(horizon=H, seasonality=per)
    M["proto-auto"] = lambda: ProtoForecaster(horizon=H, seasonality="auto")
    if m == 1:  # a declared period the data does not have
        M["proto-m12!"] = lambda: ProtoForecaster(horizon=H, seasonality=12)
    if extra:
        M["proto+lin*"] = lambda: ProtoForecaster(horizon=H, seasonality=per, correction=True)
    return M


def run_dataset(name, y, m, H, n_orig=10, with_river=True, extra=True):
    n = len(y)
    start = max(int(0.6 * n), 3 * m + 2 * H, 20)
    origins = sorted(set(np.linspace(start, n - H, n_orig).astype(int)))
    scale = mase_scale(y[:origins[0]], m)
    positive = bool((y > 0).all())
    res, info = {}, {}
    for key, mk in online_models(name, m, H, positive, with_river, extra).items():
        model = mk()
        fc = {}
        cov = []
        wid = []
        t0 = time.perf_counter()
        tl = 0.0
        for t in range(n):
            if t in origins:
                fc[t] = np.asarray(model.forecast(H), float)
            if key == "proto" and t >= start // 2 and t + H <= n and t > 0:
                iv = model.forecast_interval(H, alpha=0.1)
                for j, (lo, hi) in enumerate(iv):
                    if np.isfinite(lo):
                        cov.append(lo <= y[t + j] <= hi)
                        wid.append((hi - lo) / max(scale, 1e-12))
            a = time.perf_counter()
            model.learn_one(float(y[t]))
            tl += time.perf_counter() - a
        errs = [smape(y[t:t + H], fc[t]) for t in origins]
        mae = [np.mean(np.abs(y[t:t + H] - fc[t])) for t in origins]
        res[key] = (float(np.mean(errs)), float(np.mean(mae)) / scale)
        info[key] = tl / n * 1e6
        if key == "proto":
            info["cov"] = (float(np.mean(cov)) if cov else float("nan"), float(np.mean(wid)) if wid else float("nan"))
        if key == "proto-auto":
            info["auto_periods"] = list(model.periods)
    for kind in ("ets", "theta"):
        errs, mae = [], []
        for t in origins:
            f = offline(kind, y[:t], m, H)
            errs.append(smape(y[t:t + H], f))
            mae.append(np.mean(np.abs(y[t:t + H] - f)))
        res["sm" + kind.upper()] = (float(np.mean(errs)), float(np.mean(mae)) / scale)
    return res, info


# ---------------------------------------------------------------------------------------------
def river_protocol(name, ds_fn, m, H, positive):
    """river's evaluate.evaluate(horizon=H, agg_func=mean, MAE): the forecast is made after
    learning y_0..y_{t-1} and scored against y_{t+1..t+H} (one step offset)."""
    from river import evaluate, metrics
    out = {}
    models = {
        "last": LastValue(), "snaive": SeasonalNaive(m), "rvHW": river_hw(name, m, positive),
        "rvSNARIMAX": river_snarimax(m),
        "proto(m)": ProtoForecaster(horizon=H, seasonality=m),
        "proto(auto)": ProtoForecaster(horizon=H, seasonality="auto"),
        "proto(0)": ProtoForecaster(horizon=H, seasonality=0),
        "proto+lin*(m)": ProtoForecaster(horizon=H, seasonality=m, correction=True),
    }
    try:
        from streamrnn.forecasting import LSTMForecaster
        models["streamrnn.LSTM(m)"] = LSTMForecaster(seasonality=m, seed=42)
    except Exception as e:
        print("  streamrnn unavailable:", repr(e)[:100], file=sys.stderr)
    import copy
    ys = [y for _, y in ds_fn()]
    for k, mod in models.items():
        fresh = copy.deepcopy(mod)
        t0 = time.perf_counter()
        try:
            r = evaluate.evaluate(ds_fn(), mod, metrics.MAE(), horizon=H, agg_func=statistics.mean).get()
        except Exception as e:
            r = float("nan")
            print("  ", k, "failed", repr(e)[:120], file=sys.stderr)
        dt = time.perf_counter() - t0
        # honest protocol: forecast after learning y_0..y_t, scored against y_{t+1..t+H}
        errs = []
        try:
            for t, y in enumerate(ys):
                fresh.learn_one(y)
                if t + 1 >= H and t + 1 + H <= len(ys):
                    f = np.asarray(fresh.forecast(H), float)
                    errs.append(np.mean(np.abs(f - np.asarray(ys[t + 1:t + 1 + H]))))
            hon = float(np.mean(errs))
        except Exception as e:
            hon = float("nan")
            print("  ", k, "honest failed", repr(e)[:120], file=sys.stderr)
        out[k] = (r, hon, dt)
    return out


def sp500_regression():
    from river import datasets, linear_model, preprocessing, metrics
    reg = preprocessing.StandardScaler() | linear_model.LinearRegression()
    combo = RunningMeanCombo()
    mae_r, mae_m, mae_c = metrics.MAE(), metrics.MAE(), metrics.MAE()
    mean, n = 0.0, 0
    for x, y in datasets.SP500Stocks():
        p = reg.predict_one(x)
        c = combo.predict(p)
        mae_r.update(y, p)
        mae_m.update(y, mean)
        mae_c.update(y, c)
        reg.learn_one(x, y)
        combo.learn(y)
        n += 1
        mean += (y - mean) / n
    return mae_r.get(), mae_m.get(), mae_c.get()


def pickle_check():
    """State exactness: pickle mid-stream, resume both copies, compare forecasts bit for bit."""
    import pickle
    from river import datasets
    ys = [y for _, y in datasets.AirlinePassengers()]
    a = ProtoForecaster(horizon=12, seasonality="auto", correction=True)
    for y in ys[:70]:
        a.learn_one(y)
    b = pickle.loads(pickle.dumps(a))
    same = True
    for y in ys[70:]:
        a.learn_one(y)
        b.learn_one(y)
        same &= a.forecast(15) == b.forecast(15) and a.forecast_interval(12) == b.forecast_interval(12)
        same &= a.anomaly_score() == b.anomaly_score()
    return same, len(pickle.dumps(a))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--no-river", action="store_true")
    ap.add_argument("--no-extra", action="store_true")
    a = ap.parse_args()
    from river import datasets

    if not a.no_river:
        print("== river evaluate.evaluate protocol (MAE, agg mean over horizon) ==")
        for name, fn, m, H in (("Airline h12", datasets.AirlinePassengers, 12, 12),
                               ("WaterFlow h24", datasets.WaterFlow, 24, 24)):
            r = river_protocol(name, fn, m, H, True)
            print(f"{name}  [river protocol MAE / honest next-H MAE / seconds]")
            for k, (v, hon, sec) in r.items():
                print(f"   {k:20s} {v:9.3f} {hon:9.3f} {sec:6.1f}s")
        r, mm, c = sp500_regression()
        print(f"SP500Stocks regression MAE: LinearRegression={r:.4f} running-mean={mm:.4f} "
              f"combo(reg,mean)={c:.4f}")
        sys.stdout.flush()

    ok, size = pickle_check()
    print(f"pickle mid-stream resume bit-identical: {ok} (state {size} bytes, Airline auto+corr)")
    D = load_collection()
    only = set(a.only.split(",")) if a.only else None
    rows, infos = [], []
    for name, y, m, H in D:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        res, info = run_dataset(name, y, m, H, with_river=True, extra=not a.no_extra)
        rows.append((name, len(y), m, H, res))
        infos.append(info)
        print(f"  [{name}: {time.perf_counter() - t0:.1f}s]", file=sys.stderr)
    keys = []
    for r in rows:
        keys += [k for k in r[4] if k not in keys]
    for r in rows:
        for k in keys:
            r[4].setdefault(k, (float("nan"), float("nan")))
    hdr = f"{'dataset':15s} {'n':>5s} {'m':>3s} {'H':>3s} " + " ".join(f"{k:>10s}" for k in keys)
    for idx, title in ((0, "sMAPE (%)"), (1, "MASE")):
        print(f"\n== hold-out, 10 rolling origins in the last 40 %: {title} ==")
        print(hdr)
        for (name, n, m, H, res) in rows:
            best = np.nanmin([res[k][idx] for k in keys])
            print(f"{name:15s} {n:5d} {m:3d} {H:3d} " + " ".join(
                f"{res[k][idx]:9.3f}{'*' if res[k][idx] == best else ' '}" for k in keys))
        g = {k: math.exp(np.mean([math.log(max(r[4][k][idx], 1e-9)) for r in rows])) for k in keys}
        g["proto-m12!"] = float("nan")
        print(f"{'geo-mean':15s} {'':15s}" + " ".join(f"{g[k]:9.3f} " for k in keys))
    print("\n== proto: 90% ACI coverage / mean width (in MASE-scale units) / auto periods / "
          "us per learn_one ==")
    for (name, *_), info in zip(rows, infos):
        c, w = info["cov"]
        us = "  ".join(f"{k}={info[k]:.0f}" for k in keys if k in info)
        print(f"{name:15s} cov={c:.3f} width={w:.2f} auto={info['auto_periods']}  us/obs: {us}")


if __name__ == "__main__":
    main()
