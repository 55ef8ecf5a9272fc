"""Per-observation cost of the non-network parts, one component at a time (WaterFlow, H=24,
m=24, bank K=72, detector max_lag=200).  python cost.py"""
import os
import sys, time, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proto_forecaster import ESBank, ESGrad, PeriodDetector, Combiner, ACI, ProtoForecaster
from river import datasets
ys = [y for _, y in datasets.WaterFlow()]
def timeit(fn, reps=1):
    t = time.perf_counter()
    for _ in range(reps):
        for y in ys:
            fn(y)
    return (time.perf_counter() - t) / (reps * len(ys)) * 1e6
b = ESBank(24, [24]); print(f"ESBank K={b.K} learn (incl. K x H forecasts + loss update): {timeit(b.learn):.0f} us")
print(f"ESBank.forecast(24) (combination of K members): ", end="")
t = time.perf_counter(); [b.forecast(24) for _ in range(2000)]; print(f"{(time.perf_counter()-t)/2000*1e6:.0f} us")
b2 = ESBank(24, [24, 168]); print(f"ESBank K={b2.K} periods (24,168) learn: {timeit(b2.learn):.0f} us")
g = ESGrad(24); print(f"ESGrad learn: {timeit(g.learn):.0f} us")
d = PeriodDetector(max_lag=200); print(f"PeriodDetector(max_lag=200) update: {timeit(d.update):.0f} us")
d = PeriodDetector(max_lag=400); print(f"PeriodDetector(max_lag=400) update: {timeit(d.update):.0f} us")
c = Combiner(5, 24); F = np.random.default_rng(0).normal(size=(5, 24))
def comb(y):
    c.update(y); c.push(F); c.weights(np.ones((5, 24), bool))
print(f"Combiner E=5 H=24 update+push+weights: {timeit(comb):.0f} us")
a = ACI(24)
def aci(y):
    a.update(y); a.push(np.full(24, y), a.halfwidths())
print(f"ACI H=24 W=50 update+halfwidths: {timeit(aci):.0f} us")
for seas in (24, "auto", 0):
    p = ProtoForecaster(horizon=24, seasonality=seas)
    print(f"ProtoForecaster(horizon=24, seasonality={seas!r}) learn_one total: {timeit(p.learn_one):.0f} us")
