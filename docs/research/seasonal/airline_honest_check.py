"""Airline: river-shifted vs honest MAE of current streamrnn nets and proto. Run with PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=.."""
import os
import sys, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proto_forecaster import ProtoForecaster
from river import datasets
from streamrnn.forecasting import RNNForecaster, GRUForecaster, LSTMForecaster
ys = [y for _, y in datasets.AirlinePassengers()]
def hon(f, H=12, shift=1):
    e = []
    for t, y in enumerate(ys):
        if shift == 1 and t >= H and t + 1 + H <= len(ys):
            e.append(np.mean(np.abs(np.array(f.forecast(H)) - ys[t + 1:t + 1 + H])))
        f.learn_one(y)
        if shift == 0 and t + 1 >= H and t + 1 + H <= len(ys):
            e.append(np.mean(np.abs(np.array(f.forecast(H)) - ys[t + 1:t + 1 + H])))
    return np.mean(e)
for lab, mk in (("RNN12", lambda: RNNForecaster(seasonality=12, seed=42)), ("GRU12", lambda: GRUForecaster(seasonality=12, seed=42)),
                ("proto", lambda: ProtoForecaster(horizon=12, seasonality=12)),
                ("proto+RNN12", lambda: ProtoForecaster(horizon=12, seasonality=12, net=RNNForecaster(seasonality=12, seed=42)))):
    print(lab, "river-shift", round(hon(mk(), shift=1), 3), "honest", round(hon(mk(), shift=0), 3))
