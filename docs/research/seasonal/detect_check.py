"""Period detector check: detected periods and the observation count at detection, on the
collection and on synthetic noise / random walks / AR(1) (false-alarm rate)."""
import os
import sys, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proto_forecaster import PeriodDetector
from study import load_collection
kw = eval(sys.argv[1]) if len(sys.argv) > 1 else {}
def run(y):
    d = PeriodDetector(**kw); at = []
    for t, v in enumerate(y):
        k = len(d.periods); d.update(float(v))
        if len(d.periods) > k: at.append(t + 1)
    return d.periods, at
for name, y, m, H in load_collection():
    print(f"{name:15s} true={m:3d} detected={run(y)}")
rng = np.random.default_rng(0)
fa = {"noise": 0, "rw": 0, "ar.9": 0}
N = 30
for i in range(N):
    e = rng.standard_normal(1000)
    ar = np.zeros(1000)
    for t in range(1, 1000): ar[t] = 0.9 * ar[t-1] + e[t]
    for k, y in (("noise", e), ("rw", np.cumsum(e)), ("ar.9", ar)):
        fa[k] += bool(run(y)[0])
print("false alarms over", N, "series of 1000:", fa)
t = np.arange(600)
for amp in (0.3, 0.5, 1.0):
    hits = [run(amp * np.sin(2 * np.pi * t / 24) + rng.standard_normal(600)) for _ in range(10)]
    print(f"sine24 amp={amp} (noise sd 1):", [(p, a[:1]) for p, a in hits])
