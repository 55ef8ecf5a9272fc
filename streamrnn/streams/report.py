"""What the command shows: the per-horizon table and the plot of a :class:`Runner`'s trace.

Presentation only (text and pictures); the numbers come from
:class:`~streamrnn.streams.scoring.HorizonScore` and the runner's bounded trace.
"""
from __future__ import annotations

import datetime as _dt
import math

__all__ = ["parse_time", "horizon_table", "coverage_sentence", "plot_trace", "need_matplotlib"]


def need_matplotlib():
    """Import matplotlib for files (Agg), or raise ImportError saying what to install."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install matplotlib (or the extra: "
                          "pip install \".[plot]\")") from None
    return plt


def parse_time(t):
    """A time stamp as a datetime (ISO 8601 text; epoch seconds or milliseconds as numbers), a
    plain number (other numbers), or None (anything else)."""
    if t is None or isinstance(t, bool):
        return None
    if isinstance(t, (int, float)):
        v = float(t)
        if not math.isfinite(v):
            return None
        if 1e12 <= abs(v) < 1e14:      # epoch milliseconds
            v /= 1000.0
        if 1e8 <= abs(v) < 1e11:       # epoch seconds (1973..5138)
            return _dt.datetime.fromtimestamp(v, _dt.timezone.utc)
        return float(t)
    if isinstance(t, str):
        s = t.strip()
        try:
            v = float(s)
        except ValueError:
            pass
        else:
            return parse_time(v)
        try:
            d = _dt.datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        return d
    return None


def _axis(entries):
    """x positions for a key's trace: ("time", datetimes) when every time stamp is a date
    (all naive or all aware), ("number", floats) when every one is a plain number, else
    ("step", the key's step index)."""
    ts = [parse_time(e[1]) for e in entries]
    if ts and all(isinstance(t, _dt.datetime) for t in ts):
        aware = {t.tzinfo is not None for t in ts}
        if len(aware) == 1:
            return "time", ts
    if ts and all(type(t) is float for t in ts):
        return "number", ts
    return "step", [e[0] for e in entries]


def _ahead(kind, xs, last_x, n):
    """x positions of the n steps after ``last_x``, spaced by the median step of ``xs``."""
    if kind == "step" or len(xs) < 2:
        if kind == "time":
            return None
        return [last_x + j for j in range(1, n + 1)]
    tail = xs[-200:]
    gaps = sorted(b - a for a, b in zip(tail, tail[1:]))
    gap = gaps[len(gaps) // 2]
    return [last_x + gap * j for j in range(1, n + 1)]


def _band(xs, low, high):
    """``(x, low, high)`` for ``fill_between`` over the points where both bounds are known
    (None when there are none); gaps are left as gaps."""
    if xs is None:
        return None
    pts = [(x, a, b) for x, a, b in zip(xs, low, high) if a is not None and b is not None]
    if not pts:
        return None
    return [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]


def plot_trace(runner, path, target="y", title=None):
    """One panel per traced key: actual, the one-step prediction made before each value (with
    its interval shaded, when the forecasts have intervals), and the last forecast with its
    interval; on the time axis when the keys' time stamps parse. Returns ``(drawn_keys,
    not_drawn)`` where not_drawn counts the keys seen but not drawn."""
    plt = need_matplotlib()
    alpha = getattr(runner, "alpha", None)
    level = f"{100 * (1 - alpha):g}%" if alpha else "the"
    keys = list(runner.trace)
    held = runner.models if runner.models else ()
    not_drawn = max(0, runner.n_keys - (sum(k in held for k in keys) if held else len(keys)))
    if not keys:
        return [], not_drawn
    height = 2.9 * len(keys) + 0.9
    fig, axes = plt.subplots(len(keys), 2, figsize=(13, height), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1.2]})
    handles = None
    for (ax, zoom), key in zip(axes, keys):
        tr = list(runner.trace[key])
        kind, xs = _axis(tr)
        lf = runner.last_forecast.get(key)
        fc = fx = None
        band = None
        if lf is not None and lf[0] == tr[-1][0]:
            fc = list(lf[2])
            fx = _ahead(kind, xs, xs[-1], len(fc))
            if len(lf) > 4 and lf[3] and lf[4]:
                band = _band(fx, lf[3], lf[4])
        n_zoom = max(48, 4 * len(fc)) if fc else 96
        for a, lo, zoomed in ((ax, 0, False), (zoom, max(0, len(tr) - n_zoom), True)):
            zx, ztr = xs[lo:], tr[lo:]
            a.plot(zx, [e[2] for e in ztr], color="black", lw=1.1, label="actual")
            one = _band(zx, [e[5] if len(e) > 6 else None for e in ztr],
                        [e[6] if len(e) > 6 else None for e in ztr])
            if one is not None:
                a.fill_between(*one, color="tab:orange", alpha=0.18, lw=0, step="mid",
                               label=f"{level} interval of the one-step prediction")
            pts = [(x, e[3]) for x, e in zip(zx, ztr) if e[3] is not None]
            if pts:
                a.plot([p for p, _ in pts], [q for _, q in pts], color="tab:orange", lw=0.9,
                       alpha=0.9, label="one-step prediction (made before the value arrived)")
            far = [(x, e[4]) for x, e in zip(zx, ztr) if len(e) > 4 and e[4] is not None]
            if far and fc and len(fc) > 1:
                a.plot([p for p, _ in far], [q for _, q in far], color="tab:green", lw=0.9,
                       alpha=0.8, label=f"forecast made {len(fc)} steps before")
            if fx is not None and band is not None:
                a.fill_between(*band, color="tab:blue", alpha=0.18, lw=0,
                               label=f"{level} interval of the forecast")
            if fx is not None:
                a.plot([xs[-1]] + fx, [tr[-1][2]] + fc, color="tab:blue", ls="--", lw=1.2,
                       marker="." if zoomed else None, ms=4,
                       label=f"forecast of the next {len(fc)} steps")
            a.grid(alpha=0.25)
            if kind == "time":
                import matplotlib.dates as mdates
                loc = mdates.AutoDateLocator(minticks=3, maxticks=7 if zoomed else 11)
                a.xaxis.set_major_locator(loc)
                a.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
        first = tr[0][0]
        span = (f"values {first + 1:,d}-{tr[-1][0] + 1:,d} of this run" if first
                else f"{len(tr):,d} values")
        ax.set_title(f"{key}  ({span})", fontsize=10, loc="left")
        zoom.set_title(f"the last {min(n_zoom, len(tr)):,d} values and the forecast",
                       fontsize=9, loc="left")
        ax.set_xlabel({"time": "time", "number": "time stamp",
                       "step": "step (this key's values in order)"}[kind])
        ax.set_ylabel(target)
        if not handles:
            handles = ax.get_legend_handles_labels()
    top = 1 - 0.62 / height  # room for the title and one legend for every panel
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.12 / height, va="top")
    if handles:
        fig.legend(*handles, loc="upper center", ncol=4, fontsize=9, frameon=False,
                   bbox_to_anchor=(0.5, 1 - 0.38 / height))
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return keys, not_drawn


def _fmt(v, width=10):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-".rjust(width)
    return f"{v:>{width}.4g}"


def pick_steps(h):
    """The steps a table shows: all up to 12, else 1, 2, 3, 6, 12, 24, ... and the last."""
    if h <= 12:
        return list(range(1, h + 1))
    out, s = [1, 2, 3, 6], 12
    while s < h:
        out.append(s)
        s *= 2
    return [s for s in out if s < h] + [h]


def _best(values, names):
    fin = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    return names[min(fin)[1]] if fin else "-"


def horizon_table(table, model_name="model", indent="  ", steps=None, alpha=None):
    """Lines of text: per step ahead, n and the MAE of the model and the baselines, then the
    model's sMAPE (%) and MASE, which method did best, and, when the forecasts came with
    intervals, their coverage (%) and mean width (the header names the nominal level, 1 -
    ``alpha``)."""
    methods = list(table)
    names = [model_name if m == "model" else m for m in methods]
    rows = table["model"]
    steps = steps or pick_steps(len(rows))
    intervals = any(r.get("n_interval") for r in rows)
    head = (f"{indent}{'step':>4} {'n':>8}  " + " ".join(f"{n:>14}" for n in names)
            + f"  {'sMAPE %':>8} {'MASE':>6}  {'best':<14}")
    top = f"{indent}{'':13}  " + f"{'MAE':^{15 * len(names) - 1}}"
    if intervals:
        level = f"{100 * (1 - alpha):g}% interval" if alpha else "interval"
        top += " " * (2 + 8 + 1 + 6 + 2 + 14) + f"  {level:^17}"
        head += f"  {'cover %':>8} {'width':>8}"
    lines = [top.rstrip(), head.rstrip()]
    for s in steps:
        j = s - 1
        maes = [table[m][j]["mae"] for m in methods]
        line = (f"{indent}{s:>4} {rows[j]['n']:>8,d}  " + " ".join(_fmt(v, 14) for v in maes)
                + f"  {_fmt(rows[j]['smape'], 8)} {_fmt(rows[j]['mase'], 6)}  "
                f"{_best(maes, names):<14}")
        if intervals:
            c = rows[j].get("coverage")
            cover = "-" if c is None or not math.isfinite(c) else f"{c:.1f}"
            line += f"  {cover:>8} {_fmt(rows[j].get('width'), 8)}"
        lines.append(line.rstrip())
    return lines


def coverage_sentence(table, alpha=None):
    """One sentence on the intervals: the coverage over all steps ahead against the nominal
    level, and the range over the steps; empty when no interval was scored."""
    rows = [r for r in table["model"] if r.get("n_interval")]
    if not rows:
        return ""
    n = sum(r["n_interval"] for r in rows)
    hits = sum(r["coverage"] * r["n_interval"] / 100 for r in rows)
    lo, hi = min(r["coverage"] for r in rows), max(r["coverage"] for r in rows)
    nominal = f" (nominal {100 * (1 - alpha):g}%)" if alpha else ""
    spread = f", {lo:.1f}-{hi:.1f}% by step" if len(rows) > 1 else ""
    return (f"intervals covered {100 * hits / n:.1f}% of {n:,d} targets{nominal}{spread}")


def mean_mae(table):
    """{method: MAE averaged over the steps ahead that were scored}."""
    out = {}
    for m, rows in table.items():
        v = [r["mae"] for r in rows if r["n"]]
        out[m] = sum(v) / len(v) if v else math.nan
    return out


def verdict(table, model_name="model"):
    """One sentence: at how many steps ahead the model beat each baseline."""
    rows = table["model"]
    parts = []
    for m in table:
        if m == "model":
            continue
        pairs = [(a["mae"], b["mae"]) for a, b in zip(rows, table[m]) if a["n"] and b["n"]]
        wins = sum(a < b for a, b in pairs)
        parts.append(f"{m} at {wins} of {len(pairs)}")
    return f"{model_name} has the lower MAE than " + ", and than ".join(parts) + " steps ahead"


def key_table(per_key, model_name="model", indent="  "):
    """Lines of text: per key, the MAE averaged over the steps ahead, per method."""
    if not per_key:
        return []
    methods = list(next(iter(per_key.values())))
    names = [model_name if m == "model" else m for m in methods]
    w = min(30, max(4, max(len(str(k)) for k in per_key)))
    lines = [f"{indent}{'key':<{w}} {'n':>8}  " + " ".join(f"{n:>14}" for n in names) + "  best"]
    for k, tab in per_key.items():
        n = tab["model"][0]["n"]
        mm = mean_mae(tab)
        maes = [mm[m] for m in methods]
        lines.append(f"{indent}{str(k)[:w]:<{w}} {n:>8,d}  " + " ".join(_fmt(v, 14) for v in maes)
                     + f"  {_best(maes, names)}")
    return lines
