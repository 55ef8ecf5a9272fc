"""The combination with a real network in the network's slot: current streamrnn forecasters
(wt-est, seasonality=0 and =m) combined with the backbone, last value and seasonal naive.
Run: PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=. python net_combo_check.py"""
import os
import sys, statistics
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proto_forecaster import ProtoForecaster
from river import datasets, evaluate, metrics
from streamrnn.forecasting import LSTMForecaster, GRUForecaster, RNNForecaster
for name, ds, m, H in (("Airline", datasets.AirlinePassengers, 12, 12), ("WaterFlow", datasets.WaterFlow, 24, 24)):
    for cls in (LSTMForecaster, GRUForecaster, RNNForecaster):
        for s in (m, 0):
            net = cls(seasonality=s, seed=42)
            mod = ProtoForecaster(horizon=H, seasonality=m, net=net)
            r = evaluate.evaluate(ds(), mod, metrics.MAE(), horizon=H, agg_func=statistics.mean).get()
            print(f"{name} proto(seasonality={m}) + {cls.__name__}(seasonality={s}) as expert: {r:.3f}", flush=True)
