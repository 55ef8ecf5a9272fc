"""A two-layer LSTM regressor on river's SP500Stocks, evaluated by progressive validation.

Each day's ten stock returns are one time step; the target is the next day's return of an
equal-weighted portfolio. Compared with predicting the running mean.

    python examples/stocks_lstm.py [--quick]
"""
import argparse
import itertools

from river import datasets, dummy, evaluate, metrics, stats

from streamrnn import LSTMRegressor


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the first 300 days only")
    quick = ap.parse_args().quick

    def days():
        data = datasets.SP500Stocks()
        return itertools.islice(data, 300) if quick else data

    model = LSTMRegressor(hidden_size=16, num_layers=2, seed=1)
    lstm = evaluate.progressive_val_score(days(), model, metrics.MAE())
    mean = evaluate.progressive_val_score(days(), dummy.StatisticRegressor(stats.Mean()),
                                          metrics.MAE())
    print(f"running mean    {mean}")
    print(f"2-layer LSTM    {lstm}")


if __name__ == "__main__":
    main()
