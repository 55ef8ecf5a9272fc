"""The regressors against the running mean on river's SP500Stocks and TrumpApproval, many seeds.

Usage: ``PYTHONPATH=. OPENBLAS_NUM_THREADS=1 python benchmarks/bench_regression.py [--seeds 20]``

Every streamrnn regressor (RNN, LSTM, GRU, defaults, seeds 1..N) runs through river's
``evaluate.progressive_val_score`` (MAE), next to ``dummy.StatisticRegressor(stats.Mean())``
on the same stream, in the same run. Two rules for the network's weight against the mean are
run side by side: the default (``2 sqrt(1 + WEIGHT_PRIOR / n)`` robust standard errors after
``n`` scored values, ``streamrnn.regression``) and the flat two standard errors of earlier
releases (``WEIGHT_PRIOR = 0``), so the table shows what the small-sample bar buys on the
stream that is nearly noise (SP500Stocks: a run above the mean's MAE fails issue 8's goal)
and what it costs where the network wins (TrumpApproval).
"""
import argparse
import statistics
import sys
import time

from river import datasets, dummy, evaluate, metrics, stats

import streamrnn
from streamrnn import regression

CELLS = {"RNN": streamrnn.RNNRegressor, "LSTM": streamrnn.LSTMRegressor,
         "GRU": streamrnn.GRURegressor}
STREAMS = {"SP500Stocks": datasets.SP500Stocks, "TrumpApproval": datasets.TrumpApproval}


def mae(stream, model):
    return evaluate.progressive_val_score(stream(), model, metrics.MAE()).get()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="seeds 1..N per cell (default 20)")
    args = ap.parse_args(argv)
    seeds = range(1, args.seeds + 1)
    prior = regression.WEIGHT_PRIOR
    rules = (("default", prior), ("flat 2 SE", 0.0))
    t0 = time.perf_counter()
    print(f"## Regressors against the running mean (streamrnn {streamrnn.__version__}, "
          f"seeds 1..{args.seeds}, progressive validation MAE)\n")
    for name, stream in STREAMS.items():
        ref = mae(stream, dummy.StatisticRegressor(stats.Mean()))
        print(f"### {name}: running mean {ref:.6f}\n")
        print("| cell | rule | mean MAE | vs mean | worst seed | runs above the mean |")
        print("|---|---|---:|---:|---:|---:|")
        for cell, cls in CELLS.items():
            for label, value in rules:
                regression.WEIGHT_PRIOR = value
                try:
                    got = [mae(stream, cls(seed=s)) for s in seeds]
                finally:
                    regression.WEIGHT_PRIOR = prior
                above = sum(g > ref for g in got)
                m = statistics.fmean(got)
                print(f"| {cell} | {label} | {m:.6f} | {100 * (m / ref - 1):+.3f} % | "
                      f"{max(got):.6f} | {above} of {len(got)} |")
            print(f"[{name} {cell}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)
        print()
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
