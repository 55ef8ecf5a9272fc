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
                                                   [--cpu-time]

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-in", type=int, default=4)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with the thread's CPU time instead of the wall clock")
    args = ap.parse_args()
    global clock
    if args.cpu_time:
        clock = time.thread_time
    xs, ys = data(args.steps, args.n_in)
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
