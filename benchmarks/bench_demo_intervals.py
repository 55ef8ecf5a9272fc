"""The ``streamrnn forecast`` demo's 90 % intervals, global model against per-key models.

Runs the demo (built-in WaterFlow stream, one key) twice in this tree, once with the default
global model and once with ``--per-key-models``, each with a sink file, and prints per step
(1, 6, 24) the pooled coverage and the median width of each 200-value chunk of origins, and
the ratio global / per-key per chunk (issue 12: the global model's widths after an outage).

    PYTHONPATH=. python benchmarks/bench_demo_intervals.py [--keep DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

STEPS = (1, 6, 24)
CHUNK = 200


def run(sink, extra):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
               OPENBLAS_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "streamrnn", "forecast", "--sink", sink] + extra,
                   check=True, env=env, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL)
    return [json.loads(line) for line in open(sink)]


def table(rows):
    y = np.array([r["y"] for r in rows])
    T = len(rows)
    out = {}
    for j in STEPS:
        w, cov = [], []
        for t, r in enumerate(rows):
            if r["low"] and r["low"][j - 1] is not None and t + j < T:
                lo, hi = r["low"][j - 1], r["high"][j - 1]
                w.append((t, hi - lo))
                cov.append(lo <= y[t + j] <= hi)
        w = np.array(w)
        ch = [float(np.median(w[(w[:, 0] >= c) & (w[:, 0] < c + CHUNK), 1]))
              for c in range(0, T, CHUNK) if ((w[:, 0] >= c) & (w[:, 0] < c + CHUNK)).any()]
        out[j] = (100.0 * float(np.mean(cov)), ch, float(w[:, 1].max()))
    cv = []
    for j in range(1, len(rows[0]["low"] or [0] * 24) + 1):
        c = [rows[t]["low"][j - 1] <= y[t + j] <= rows[t]["high"][j - 1]
             for t in range(T - j) if rows[t]["low"] and rows[t]["low"][j - 1] is not None]
        cv += c
    return out, 100.0 * float(np.mean(cv))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="directory for the two sink files (default: a temporary one)")
    a = ap.parse_args()
    d = a.keep or tempfile.mkdtemp()
    os.makedirs(d, exist_ok=True)
    g, gp = table(run(os.path.join(d, "global.jsonl"), []))
    p, pp = table(run(os.path.join(d, "per_key.jsonl"), ["--per-key-models"]))
    print(f"pooled coverage, every step: global {gp:.1f} %, per-key models {pp:.1f} %")
    for j in STEPS:
        print(f"step {j:2d}  cover global {g[j][0]:.1f} %  per-key {p[j][0]:.1f} %  "
              f"widest global {g[j][2]:.1f}  per-key {p[j][2]:.1f}")
        print("   global  ", " ".join(f"{x:7.1f}" for x in g[j][1]))
        print("   per-key ", " ".join(f"{x:7.1f}" for x in p[j][1]))
        print("   ratio   ", " ".join(f"{x / y:7.2f}" for x, y in zip(g[j][1], p[j][1])))


if __name__ == "__main__":
    main()
