"""Accuracy of streamrnn's recurrent models against simple and classical anchors.

Forecasting (river's ``evaluate.evaluate(dataset, model, metrics.MAE(), horizon=h)``):

- AirlinePassengers, h=12: streamrnn RNN/LSTM/GRU forecasters with default settings plus
  ``seasonality=12``; last value; seasonal naive (m=12); ``HoltWinters(alpha=0.3, beta=0.1,
  gamma=0.6, seasonality=12, multiplicative=True)``; ``SNARIMAX(p=12, d=1, q=12, m=12, sd=1)``.
- WaterFlow, h=24: streamrnn with default settings, and with ``seasonality=24``; last value;
  seasonal naive (m=24); ``HoltWinters(alpha=0.1)``; ``SNARIMAX(24, 1, 24, m=24, sd=1)``,
  which diverges and is reported as such.

Regression (river's ``evaluate.progressive_val_score``, MAE): TrumpApproval, streamrnn
RNN/LSTM/GRU regressors with default settings against ``StandardScaler() | LinearRegression()``.

streamrnn runs over seeds 1..5; the tables give the mean and the worst seed of the MAE
averaged over the horizon. deep-river (when ``benchmarks/.venv-peers`` exists, see
``setup_peers.sh``) runs its RNN/LSTM/GRU forecasters and RNN/LSTM regressors with default
settings over the same seeds, in a subprocess.

Protocol note: river's ``evaluate`` asks for the forecast *before* learning y_t and scores it
against y_{t+1} .. y_{t+h}; "step 1" is therefore two steps after the last value learned. This
is the same for every model here.

    PYTHONPATH=. python benchmarks/bench_accuracy.py [--seeds 5] [--no-peers] [--no-plots]

Writes docs/img/horizon_mae.png and docs/img/waterflow_live.png.
"""
from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
import warnings
from collections import deque
from pathlib import Path

from river import datasets, evaluate, linear_model, metrics, preprocessing, time_series
from river.time_series.base import Forecaster

import streamrnn
from streamrnn import (GRUForecaster, GRURegressor, LSTMForecaster, LSTMRegressor, RNNForecaster,
                       RNNRegressor)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"

FORECASTERS = {"RNN": RNNForecaster, "LSTM": LSTMForecaster, "GRU": GRUForecaster}
REGRESSORS = {"RNN": RNNRegressor, "LSTM": LSTMRegressor, "GRU": GRURegressor}
DIVERGED = 1e6  # a horizon-mean MAE above this many times the series' scale is divergence


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
        self.seasonality = seasonality
        self._hist = deque(maxlen=seasonality)

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


# ------------------------------------------------------------------------------ runs
def horizon_mae(dataset, model, horizon):
    """Per-step MAE list, or ``(None, reason)`` when the model blows up."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            hm = evaluate.evaluate(dataset, model, metrics.MAE(), horizon=horizon)
        except (OverflowError, FloatingPointError, ZeroDivisionError, ValueError) as e:
            return None, f"{type(e).__name__}: {e}"
    maes = [m.get() for m in hm.metrics]
    return maes, None


def fmt(v, digits=2):
    if v is None:
        return "-"
    if not math.isfinite(v) or abs(v) >= 1e6:
        return f"{v:.1e}"
    return f"{v:.{digits}f}"


def table(headers, rows, text_columns=2):
    """A Markdown table; the first ``text_columns`` columns and the last are left-aligned."""
    n = len(headers)
    align = ["---" if i < text_columns or (i == n - 1 and headers[i] == "note") else "---:"
             for i in range(n)]
    cell = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


class Row:
    """One model on one protocol: per-seed per-step MAE (or a failure note)."""

    def __init__(self, name, settings, per_seed=None, seconds=None, note=""):
        self.name, self.settings = name, settings
        self.per_seed = per_seed or []   # [[mae step 1..h] per seed]
        self.seconds = seconds or []
        self.note = note

    @property
    def means(self):  # horizon-mean MAE per seed
        return [statistics.fmean(s) for s in self.per_seed]

    @property
    def curve(self):  # per-step MAE averaged over seeds
        return [statistics.fmean(c) for c in zip(*self.per_seed)] if self.per_seed else []

    def cells(self, n_seeds_max):
        if not self.per_seed:
            return [self.name, self.settings, "-", "-", "-", "-", "-", self.note]
        means, curve = self.means, self.curve
        worst = max(means) if len(means) > 1 else None
        secs = statistics.fmean(self.seconds) if self.seconds else None
        return [self.name, self.settings, fmt(statistics.fmean(means)), fmt(worst),
                fmt(curve[0]), fmt(curve[-1]), fmt(secs, 2), self.note]


def run_forecasting(name, dataset_cls, horizon, seeds, streamrnn_settings, anchors,
                    peer_rows):
    rows = []
    for label, kwargs in streamrnn_settings:
        for cell, cls in FORECASTERS.items():
            per_seed, secs = [], []
            for seed in seeds:
                t0 = time.perf_counter()
                maes, err = horizon_mae(dataset_cls(), cls(seed=seed, **kwargs), horizon)
                secs.append(time.perf_counter() - t0)
                if maes is None:
                    raise RuntimeError(f"streamrnn {cell} failed on {name}: {err}")
                per_seed.append(maes)
            rows.append(Row(f"streamrnn {cell}Forecaster", label, per_seed, secs))
    rows.extend(peer_rows)
    scale = statistics.fmean(abs(y) for _, y in dataset_cls())
    for label, settings, make in anchors:
        t0 = time.perf_counter()
        maes, err = horizon_mae(dataset_cls(), make(), horizon)
        secs = time.perf_counter() - t0
        if maes is None:
            rows.append(Row(label, settings, note=f"diverged ({err})"))
        elif not all(math.isfinite(m) for m in maes) or statistics.fmean(maes) > DIVERGED * scale:
            worst = max(maes) if all(math.isfinite(m) for m in maes) else float("inf")
            rows.append(Row(label, settings,
                            note=f"diverged: MAE {fmt(maes[0])} at step 1, {fmt(worst)} at step {horizon}"))
        else:
            rows.append(Row(label, settings, [maes], [secs]))
    return rows


def print_forecast_table(title, rows, n_seeds, horizon):
    print(f"\n### {title}\n")
    headers = ["model", "settings", f"MAE, mean of steps 1..{horizon} (mean over seeds)",
               "worst seed", "step 1", f"step {horizon}", "s / run", "note"]
    print(table(headers, [r.cells(n_seeds) for r in rows]))


def deep_river_forecast_rows(dataset, horizon, seeds, use_peers):
    if not use_peers:
        return [], "deep-river skipped: --no-peers"
    res, why = peers.run("forecast", dataset=dataset, horizon=horizon, seeds=list(seeds),
                         models=list(peers.DEEP_RIVER_FORECASTERS))
    if res is None:
        return [], why
    rows = []
    for name, r in res["results"].items():
        rows.append(Row(f"deep-river {name}", f"defaults (x dropped), deep-river {res['deep_river']}",
                        r["per_seed"], r["seconds"], note="raw target, no scaling by default"))
    return rows, None


def run_trump(seeds, use_peers):
    rows = []
    for cell, cls in REGRESSORS.items():
        scores, secs = [], []
        for seed in seeds:
            t0 = time.perf_counter()
            m = evaluate.progressive_val_score(datasets.TrumpApproval(), cls(seed=seed),
                                               metrics.MAE())
            secs.append(time.perf_counter() - t0)
            scores.append(m.get())
        rows.append((f"streamrnn {cell}Regressor", "defaults", scores, secs))
    note = None
    if use_peers:
        res, note = peers.run("regress", dataset="TrumpApproval", seeds=list(seeds),
                              models=list(peers.DEEP_RIVER_REGRESSORS))
        if res is not None:
            for name, r in res["results"].items():
                rows.append((f"deep-river {name}", f"defaults, deep-river {res['deep_river']}",
                             r["mae"], r["seconds"]))
    else:
        note = "deep-river skipped: --no-peers"
    t0 = time.perf_counter()
    m = evaluate.progressive_val_score(datasets.TrumpApproval(),
                                       preprocessing.StandardScaler() | linear_model.LinearRegression(),
                                       metrics.MAE())
    rows.append(("StandardScaler | LinearRegression", "river defaults", [m.get()],
                 [time.perf_counter() - t0]))
    print("\n### TrumpApproval, progressive validation (MAE)\n")
    out = []
    for name, settings, scores, secs in rows:
        out.append([name, settings, fmt(statistics.fmean(scores), 3),
                    fmt(max(scores), 3) if len(scores) > 1 else "-", fmt(statistics.fmean(secs))])
    print(table(["model", "settings", "MAE (mean over seeds)", "worst seed", "s / run"], out))
    if note:
        print(f"\n{note}")
    return rows


# ------------------------------------------------------------------------------ plots
def plot_horizons(panels, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8))
    for ax, (title, rows) in zip(axes, panels):
        ax.set_prop_cycle(color=plt.cm.tab20.colors)
        for r in rows:
            if not r.per_seed:
                continue
            curve = r.curve
            steps = range(1, len(curve) + 1)
            style = "-" if r.name.startswith("streamrnn") else (
                "-." if r.name.startswith("deep-river") else "--")
            label = r.name.replace("streamrnn ", "").replace("Forecaster", "")
            if r.settings not in ("defaults", ""):
                label += f" ({r.settings})" if r.name.startswith("streamrnn") else ""
            ax.plot(steps, curve, style, marker="o", ms=3, lw=1.4, label=label)
            if len(r.per_seed) > 1 and r.name.startswith("streamrnn"):
                lo = [min(c) for c in zip(*r.per_seed)]
                hi = [max(c) for c in zip(*r.per_seed)]
                ax.fill_between(steps, lo, hi, alpha=0.12)
        ax.set_title(title)
        ax.set_yscale("log")
        ax.set_xlabel("forecast step (river's horizon index)")
        ax.set_ylabel("MAE (log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Per-step MAE, river evaluate.evaluate (streamrnn: mean of seeds 1-5, band = min/max)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def live_forecasts(model, ys, horizon):
    """After learning each y_t: the forecast of y_{t+1} and of y_{t+horizon}."""
    one, far = [], []
    for y in ys:
        model.learn_one(y)
        f = model.forecast(horizon)
        one.append(f[0])
        far.append(f[-1])
    return one, far


def plot_waterflow_live(path, seed=1, window=(760, 1010)):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = 24
    ys = [y for _, y in datasets.WaterFlow()]
    series = {"last value": live_forecasts(LastValue(), ys, h),
              "streamrnn LSTM": live_forecasts(LSTMForecaster(seed=seed), ys, h),
              "streamrnn GRU": live_forecasts(GRUForecaster(seed=seed), ys, h)}

    a, b = window
    # The regime change in this window: an outage, the flow collapses to ~24 for ~12 hours.
    low = [i for i in range(a, b) if ys[i] < 60]
    fig, axes = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    for ax, k, title in ((axes[0], 0, "one step ahead"), (axes[1], 1, f"{h} steps ahead")):
        ax.plot(range(a, b), ys[a:b], color="black", lw=1.6, label="actual")
        for name, preds in series.items():
            p = preds[k]
            shift = 1 if k == 0 else h  # forecast made after y_t is for y_{t+shift}
            xs = [t + shift for t in range(a - shift, b - shift)]
            ax.plot(xs, p[a - shift:b - shift], lw=1.0, alpha=0.9, label=name)
        if low:
            ax.axvspan(low[0], low[-1] + 1, color="red", alpha=0.08, label="outage (regime change)")
        ax.set_ylim(0, 115)
        ax.set_title(f"WaterFlow: forecast vs actual, {title} (seed {seed})", fontsize=10)
        ax.set_ylabel("flow")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=3, loc="lower left")
    axes[1].set_xlabel("hour")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="streamrnn seeds 1..N (default 5)")
    ap.add_argument("--no-peers", action="store_true", help="skip deep-river")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    args = ap.parse_args(argv)
    seeds = range(1, args.seeds + 1)
    use_peers = not args.no_peers

    print(f"## Accuracy (streamrnn {streamrnn.__version__}, Python {platform.python_version()}, "
          f"river {__import__('river').__version__}, seeds {seeds.start}..{seeds.stop - 1})")

    notes = []
    air_peers, why = deep_river_forecast_rows("AirlinePassengers", 12, seeds, use_peers)
    notes.append(why)
    air = run_forecasting(
        "AirlinePassengers", datasets.AirlinePassengers, 12, seeds,
        [("seasonality=12", {"seasonality": 12})],
        [("last value", "", LastValue),
         ("seasonal naive", "m=12", lambda: SeasonalNaive(12)),
         ("HoltWinters", "alpha=0.3, beta=0.1, gamma=0.6, seasonality=12, multiplicative",
          lambda: time_series.HoltWinters(alpha=0.3, beta=0.1, gamma=0.6, seasonality=12,
                                          multiplicative=True)),
         ("SNARIMAX", "p=12, d=1, q=12, m=12, sd=1 (x dropped)",
          lambda: WithoutX(time_series.SNARIMAX(p=12, d=1, q=12, m=12, sd=1)))],
        air_peers)
    print_forecast_table("AirlinePassengers, horizon 12 (MAE, passengers in thousands)", air,
                         len(seeds), 12)

    wf_peers, why = deep_river_forecast_rows("WaterFlow", 24, seeds, use_peers)
    notes.append(why)
    wf = run_forecasting(
        "WaterFlow", datasets.WaterFlow, 24, seeds,
        [("defaults", {}), ("seasonality=24", {"seasonality": 24})],
        [("last value", "", LastValue),
         ("seasonal naive", "m=24", lambda: SeasonalNaive(24)),
         ("HoltWinters", "alpha=0.1", lambda: time_series.HoltWinters(alpha=0.1)),
         ("SNARIMAX", "p=24, d=1, q=24, m=24, sd=1 (x dropped)",
          lambda: WithoutX(time_series.SNARIMAX(p=24, d=1, q=24, m=24, sd=1)))],
        wf_peers)
    print_forecast_table("WaterFlow, horizon 24 (MAE)", wf, len(seeds), 24)
    for n in dict.fromkeys(n for n in notes if n):
        print(f"\n{n}")

    run_trump(seeds, use_peers)

    if not args.no_plots:
        IMG.mkdir(parents=True, exist_ok=True)
        plot_horizons([("AirlinePassengers (h=12)", air), ("WaterFlow (h=24)", wf)],
                      IMG / "horizon_mae.png")
        plot_waterflow_live(IMG / "waterflow_live.png")
        print(f"\nwrote {(IMG / 'horizon_mae.png').relative_to(ROOT)}, "
              f"{(IMG / 'waterflow_live.png').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
