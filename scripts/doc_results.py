"""Re-run the docstring examples and write their printed results into the docstrings.

Run after a change that moves the numbers (the doctests then check them):
    PYTHONPATH=. python scripts/doc_results.py
"""
import re
import statistics
from pathlib import Path

from river import datasets, evaluate, metrics

import streamrnn

root = Path(__file__).resolve().parent.parent / "streamrnn"
res = {}
for name in ("RNNRegressor", "LSTMRegressor", "GRURegressor"):
    model = getattr(streamrnn, name)(hidden_size=16, seed=42)
    res[name] = str(evaluate.progressive_val_score(datasets.TrumpApproval(), model, metrics.MAE()))
for name in ("RNNClassifier", "LSTMClassifier", "GRUClassifier"):
    model = getattr(streamrnn, name)(hidden_size=16, seed=42)
    res[name] = str(evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy()))
for name in ("RNNForecaster", "LSTMForecaster", "GRUForecaster"):
    model = getattr(streamrnn, name)(seasonality=12, seed=42)
    m = evaluate.evaluate(datasets.AirlinePassengers(), model, metrics.MAE(), horizon=12,
                          agg_func=statistics.mean)
    res[name] = str(round(m.get(), 2))
for module in ("regression.py", "classification.py", "forecasting.py"):
    path = root / module
    text = path.read_text()
    for name, value in res.items():
        text = re.sub(r'(name="%s",[^)]*?result=")[^"]*(")' % name,
                      lambda m: m.group(1) + value + m.group(2), text, flags=re.S)
    path.write_text(text)
print(res)
