"""Small tuning harness: hold-out sMAPE (10 origins) of ProtoForecaster variants."""
import os
import sys, math, time, json, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from study import load_collection, smape, mase_scale
from proto_forecaster import ProtoForecaster, ESBank
def holdout(mk, y, m, H, n_orig=10, cov=False):
    n = len(y); start = max(int(0.6 * n), 3 * m + 2 * H, 20)
    origins = sorted(set(np.linspace(start, n - H, n_orig).astype(int)))
    model = mk(); fc = {}; cv = []
    for t in range(n):
        if t in origins: fc[t] = np.asarray(model.forecast(H), float)
        if cov and t >= start // 2 and t + H <= n and t > 0:
            for j, (lo, hi) in enumerate(model.forecast_interval(H)):
                if np.isfinite(lo): cv.append(lo <= y[t + j] <= hi)
        model.learn_one(float(y[t]))
    s = np.mean([smape(y[t:t + H], fc[t]) for t in origins])
    return s, (np.mean(cv) if cv else float('nan'))
if __name__ == "__main__":
    variants = json.loads(sys.argv[1])   # {"label": {kwargs}}
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else None
    D = [d for d in load_collection() if names is None or d[0] in names]
    res = {}
    for lab, kw in variants.items():
        row = []; covs = []
        for name, y, m, H in D:
            k = dict(kw); seas = k.pop("seasonality", "m")
            seas = (m if m > 1 else 0) if seas == "m" else seas
            cov = k.pop('_cov', False)
            s, c = holdout(lambda: ProtoForecaster(horizon=H, seasonality=seas, **k), y, m, H, cov=cov)
            row.append(s); covs.append(c)
        res[lab] = row
        print(f"{lab:28s} geo={math.exp(np.mean(np.log(row))):7.3f} " + " ".join(f"{v:7.2f}" for v in row), flush=True)
        if not np.isnan(covs).all(): print(f"{'  coverage':28s}     {'':7s} " + " ".join(f"{v:7.3f}" for v in covs), flush=True)
    print("datasets:", [d[0] for d in D])
