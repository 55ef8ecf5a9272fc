"""Forecast intervals and anomaly scores on a stream with a daily cycle and a few outliers.

An hourly series (a daily cycle, a slow drift, noise) streams through a GRUForecaster with
`seasonality="auto"`: before each value arrives it asks for the 90 % interval of the next
value, and `last_anomaly` tells how unusual the value was once it is learned. Five values are
replaced by spikes; the example prints the interval coverage over the normal values, the
period it found, and the anomaly scores of the spikes against those of the normal values.

    python examples/intervals_anomalies.py [--quick]
"""
import argparse
import math
import random
import statistics

from streamrnn import GRUForecaster


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a shorter stream")
    n = 1500 if ap.parse_args().quick else 4000
    rng = random.Random(0)
    spikes = {n // 2 + 97 * k for k in range(5)}
    model = GRUForecaster(hidden_size=16, horizon=6, seed=1)
    covered, normal_scores, spike_scores = [], [], []
    for t in range(n):
        y = 20 + 0.001 * t + 5 * math.sin(2 * math.pi * t / 24) + rng.gauss(0, 1)
        if t in spikes:
            y += 15.0
        low, high = model.forecast_interval(1, alpha=0.1)[0]
        model.learn_one(y)
        if t >= n // 3:
            if t in spikes:
                spike_scores.append(model.last_anomaly)
            else:
                covered.append(low <= y <= high)
                normal_scores.append(model.last_anomaly)
    print(f"periods found: {model.periods}")
    print(f"90 % intervals: coverage {100 * statistics.mean(covered):.1f} % of the normal values")
    print(f"anomaly score of the spikes: min {min(spike_scores):.3f}; "
          f"of the normal values: median {statistics.median(normal_scores):.3f}")


if __name__ == "__main__":
    main()
