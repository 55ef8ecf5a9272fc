"""Predict a sine wave one step ahead with a simple (Elman) RNN, learning online.

Each value is forecast before it is seen, then learned: the error falls as the network picks up
the wave. Compared with repeating the last value.

    python examples/sine_rnn.py [--quick]
"""
import argparse
import math

from river import metrics, utils

from streamrnn import RNNForecaster


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a shorter stream")
    n = 600 if ap.parse_args().quick else 3000

    model = RNNForecaster(hidden_size=16, seed=1)
    rnn_mae = utils.Rolling(metrics.MAE, window_size=200)
    last_mae = utils.Rolling(metrics.MAE, window_size=200)
    last = 0.0
    for t in range(n):
        y = math.sin(0.2 * t) + 0.5 * math.sin(0.05 * t)
        y_pred = model.forecast(horizon=1)[0]  # forecast first ...
        rnn_mae.update(y, y_pred)
        last_mae.update(y, last)
        model.learn_one(y)                     # ... then learn the value
        last = y
        if (t + 1) % (n // 5) == 0:
            print(f"step {t + 1:5d}  rolling MAE  RNN {rnn_mae.get():.4f}  last value {last_mae.get():.4f}")

    print(f"MAE over the last 200 steps: RNN {rnn_mae.get():.4f}, last value {last_mae.get():.4f}")


if __name__ == "__main__":
    main()
