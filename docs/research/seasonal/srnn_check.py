"""Current streamrnn forecasters under river evaluate. Run: PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=. python srnn_check.py"""
import os
import sys, statistics, time
import streamrnn
print("streamrnn from", streamrnn.__file__)
from streamrnn.forecasting import LSTMForecaster, GRUForecaster, RNNForecaster
from river import datasets, evaluate, metrics
for name, ds, m, H in (("Airline", datasets.AirlinePassengers, 12, 12), ("WaterFlow", datasets.WaterFlow, 24, 24)):
    for cls in (LSTMForecaster, GRUForecaster, RNNForecaster):
        for s in (m, 0):
            t = time.perf_counter()
            r = evaluate.evaluate(ds(), cls(seasonality=s, seed=42), metrics.MAE(), horizon=H, agg_func=statistics.mean).get()
            print(f"{name} {cls.__name__}(seasonality={s}): {r:.3f}  ({time.perf_counter()-t:.1f}s)", flush=True)
