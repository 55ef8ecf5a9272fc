"""Two periods: synthetic hourly series with a daily and a weekly pattern (8 weeks), H=24.
Declared (24,), (24, 168), "auto" (max_lag 400), 0; hold-out sMAPE at 10 origins + coverage."""
import os
import sys, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tune import holdout
from proto_forecaster import ProtoForecaster
rng = np.random.default_rng(1)
n = 24 * 7 * 8
t = np.arange(n)
wk = np.where((t // 24) % 7 >= 5, -8.0, 0.0)            # weekend drop
y = 100 + 6 * np.sin(2 * np.pi * t / 24) + wk + np.cumsum(rng.normal(0, 0.3, n)) + rng.normal(0, 1.5, n)
for lab, seas, kw in (("0", 0, {}), ("24", 24, {}), ("(24,168)", (24, 168), {}),
                      ("auto max_lag=400", "auto", {"max_lag": 400})):
    mk = lambda: ProtoForecaster(horizon=24, seasonality=seas, **kw)
    s, c = holdout(mk, y, 168, 24, cov=True)
    m = mk()
    for v in y:
        m.learn_one(float(v))
    print(f"seasonality={lab:18s} sMAPE={s:.3f} cov={c:.3f} periods={m.periods}")
last = np.mean([np.mean(200 * np.abs(y[o:o+24] - y[o-1]) / (np.abs(y[o:o+24]) + abs(y[o-1]))) for o in np.linspace(max(int(.6*n), 3*168+48), n-24, 10).astype(int)])
print(f"last value sMAPE={last:.3f}")
