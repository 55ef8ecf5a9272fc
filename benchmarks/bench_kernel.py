"""Microseconds per observation through the compiled kernel's Python API.

For every cell (rnn = Elman tanh, lstm, gru), hidden size 8/32/64, TBPTT k2 = 16 and k1 in
{1, 16}, with Adam, this times ``net.learn(x, y)`` in a plain Python loop over precomputed
inputs (one forward step, and every k1 steps one TBPTT update and one Adam step) and, in a
separate column, ``net.predict(x, out)``, and in a third the forecasters' loop
``net.predict(x, out); net.learn(x, y)`` (a one-step forecast, then learning that step: the
kernel reuses the forward pass of the predict). Each number is the best of ``--repeats`` runs of
``--steps`` observations. The last column is ``Network.__sizeof__`` (bytes, optimizer
moments included); its peak over the table is printed at the end.

    PYTHONPATH=. python benchmarks/bench_kernel.py [--steps 20000] [--repeats 3] [--n-in 4]
                                                   [--cpu-time] [--table all|learn|multi]

The second table (``--table multi``) is the direct multi-horizon head: an LSTM-32 with
``n_out = H`` outputs, H in {1, 12, 24}, k1 = 1, k2 = 16, times ``learn(x, y)`` (one target,
output 0) against ``learn_multi(x, y)`` with all H delayed targets given (every call: H losses,
up to H injected steps) and the forecasters' loop ``predict`` + ``learn_multi``, on the same
network in the same run; the ratio column is learn_multi / learn.

``--cpu-time`` times with the thread's CPU time (``time.thread_time``) instead of the wall
clock: steadier on a machine other processes load.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

clock = time.perf_counter

from streamrnn._core import ADAM, ELMAN_TANH, GRU, LSTM, SQUARED, Network, Optimizer, initialize
from streamrnn._core import _cells

CELLS = {"rnn": ELMAN_TANH, "lstm": LSTM, "gru": GRU}
HIDDEN = (8, 32, 64)
K1S = (1, 16)
K2 = 16


def make(cell, hidden, k1, n_in, seed=0):
    net = Network(cell, n_in, hidden, 1, 1, k1=k1, k2=K2, loss=SQUARED)
    initialize(net, np.random.default_rng(seed))
    net.set_optimizer(Optimizer(ADAM, 1e-3))
    return net


def data(n_steps, n_in, seed=1):
    rng = np.random.default_rng(seed)
    xs = [np.ascontiguousarray(row) for row in rng.normal(size=(n_steps, n_in))]
    ys = [float(v) for v in rng.normal(scale=0.5, size=n_steps)]
    return xs, ys


def time_learn(cell, hidden, k1, n_in, xs, ys, repeats):
    best = float("inf")
    for r in range(repeats):
        net = make(cell, hidden, k1, n_in)
        learn = net.learn
        # warm the ring buffer so every timed step has a full window
        for i in range(K2):
            learn(xs[i], ys[i])
        t0 = clock()
        for x, y in zip(xs, ys):
            learn(x, y)
        dt = clock() - t0
        best = min(best, dt / len(xs))
    return best * 1e6, net


def time_predict_learn(cell, hidden, k1, n_in, xs, ys, repeats):
    best = float("inf")
    for r in range(repeats):
        net = make(cell, hidden, k1, n_in)
        out = np.zeros(net.n_out)
        learn, predict = net.learn, net.predict
        for i in range(K2):
            learn(xs[i], ys[i])
        t0 = clock()
        for x, y in zip(xs, ys):
            predict(x, out)
            learn(x, y)
        dt = clock() - t0
        best = min(best, dt / len(xs))
    return best * 1e6


def time_predict(net, xs, repeats):
    out = np.zeros(net.n_out)
    predict = net.predict
    best = float("inf")
    for r in range(repeats):
        t0 = clock()
        for x in xs:
            predict(x, out)
        dt = clock() - t0
        best = min(best, dt / len(xs))
    return best * 1e6


MULTI_HIDDEN, MULTI_HORIZONS = 32, (1, 12, 24)


def make_multi(H, n_in, seed=0):
    net = Network(LSTM, n_in, MULTI_HIDDEN, 1, H, k1=1, k2=K2, loss=SQUARED)
    initialize(net, np.random.default_rng(seed))
    net.set_optimizer(Optimizer(ADAM, 1e-3))
    return net


def time_multi(H, n_in, xs, ys, repeats, mode):
    """Per-call microseconds of ``learn`` / ``learn_multi`` / ``predict`` + ``learn_multi``."""
    rng = np.random.default_rng(2)
    Y = [np.ascontiguousarray(row) for row in rng.normal(scale=0.5, size=(len(xs), H))]
    best = float("inf")
    for r in range(repeats):
        net = make_multi(H, n_in)
        out = np.zeros(H)
        learn, multi, predict = net.learn, net.learn_multi, net.predict
        for i in range(K2 + H):  # a full ring: every timed call has all its delayed steps
            multi(xs[i], Y[i])
        t0 = clock()
        if mode == "learn":
            for x, y in zip(xs, ys):
                learn(x, y)
        elif mode == "multi":
            for x, y in zip(xs, Y):
                multi(x, y)
        else:
            for x, y in zip(xs, Y):
                predict(x, out)
                multi(x, y)
        best = min(best, (clock() - t0) / len(xs))
    return best * 1e6


def multi_table(args, xs, ys):
    print(f"# direct multi-horizon head: lstm H={MULTI_HIDDEN}, n_in={args.n_in}, k1=1, k2={K2}, "
          f"squared loss, Adam, best of {args.repeats} x {args.steps} calls, "
          f"{'thread CPU time' if args.cpu_time else 'wall clock'}")
    print(f"{'n_out':>5} {'B':>3} {'learn us':>9} {'learn_multi us':>14} {'ratio':>6} "
          f"{'pred+multi us':>13}")
    for H in MULTI_HORIZONS:
        us_l = time_multi(H, args.n_in, xs, ys, args.repeats, "learn")
        us_m = time_multi(H, args.n_in, xs, ys, args.repeats, "multi")
        us_pm = time_multi(H, args.n_in, xs, ys, args.repeats, "predict+multi")
        print(f"{H:>5} {make_multi(H, args.n_in).B:>3} {us_l:>9.2f} {us_m:>14.2f} "
              f"{us_m / us_l:>6.2f} {us_pm:>13.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-in", type=int, default=4)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with the thread's CPU time instead of the wall clock")
    ap.add_argument("--table", choices=("all", "learn", "multi"), default="all",
                    help="the per-cell table, the multi-horizon table, or both")
    args = ap.parse_args()
    global clock
    if args.cpu_time:
        clock = time.thread_time
    xs, ys = data(args.steps + K2 + max(MULTI_HORIZONS), args.n_in)
    if args.table != "learn":
        multi_table(args, xs[:args.steps + K2 + max(MULTI_HORIZONS)], ys)
        if args.table == "multi":
            return
    xs, ys = xs[:args.steps], ys[:args.steps]
    print(f"# streamrnn kernel, {platform.python_implementation()} {platform.python_version()}, "
          f"n_in={args.n_in}, n_out=1, squared loss, Adam, k2={K2}, "
          f"best of {args.repeats} x {args.steps} steps, kernels {_cells.BUILD}, "
          f"{'thread CPU time' if args.cpu_time else 'wall clock'}")
    print(f"{'cell':<5} {'H':>3} {'k1':>3} {'P':>7} {'learn us':>9} {'predict us':>10} "
          f"{'pred+learn us':>13} {'sizeof B':>10}")
    peak = (0, None)
    t_start = clock()
    for name in args.cells.split(","):
        cell = CELLS[name]
        for hidden in HIDDEN:
            for k1 in K1S:
                us, net = time_learn(cell, hidden, k1, args.n_in, xs, ys, args.repeats)
                us_p = time_predict(net, xs, args.repeats)
                us_pl = time_predict_learn(cell, hidden, k1, args.n_in, xs, ys, args.repeats)
                size = net.__sizeof__()
                if size > peak[0]:
                    peak = (size, f"{name} H={hidden} k1={k1}")
                print(f"{name:<5} {hidden:>3} {k1:>3} {net.size:>7} {us:>9.2f} {us_p:>10.2f} "
                      f"{us_pl:>13.2f} {size:>10}", flush=True)
    print(f"# peak Network.__sizeof__: {peak[0]} bytes ({peak[0] / 2**20:.2f} MiB) at {peak[1]}")
    print(f"# wall time {clock() - t_start:.1f} s")


if __name__ == "__main__":
    main()
