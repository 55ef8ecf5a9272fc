"""Peers that live outside the main environment, run in a subprocess.

deep-river 0.3.4 pins river<0.26 and torch<2.6, so it cannot share the main environment
(river 0.26). ``benchmarks/setup_peers.sh`` creates ``benchmarks/.venv-peers`` for it; this
file is both

- the client the benchmarks import (``run(task, **params)``), which starts this same file
  with the venv's interpreter and reads one JSON line back, or returns ``None`` with the
  reason when the venv is absent or the run failed; and
- the worker that runs inside the venv (``python peers.py TASK JSON``), which imports only
  river, torch and deep_river, never streamrnn.

The worker runs deep-river's models with their DEFAULT settings (window_size=10,
hidden_size=16, Adam, lr=1e-3, gradient_clip_value=1.0) through the same river protocols as
the main benchmarks. Forecasters get ``x`` dropped: river's datasets put datetimes in ``x``
and deep-river would try to turn them into floats.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-peers"
SETUP_HINT = "run `bash benchmarks/setup_peers.sh` to create it"

DEEP_RIVER_FORECASTERS = ("RNNForecaster", "LSTMForecaster", "GRUForecaster")
DEEP_RIVER_REGRESSORS = ("RNNRegressor", "LSTMRegressor")


# ---------------------------------------------------------------------------------- client
def venv_python() -> Path | None:
    p = VENV / "bin" / "python"
    return p if p.exists() else None


def run(task: str, timeout: float = 3600, **params):
    """Run ``task`` in the peers venv. Returns ``(result, None)`` or ``(None, reason)``."""
    py = venv_python()
    if py is None:
        return None, f"deep-river skipped: {VENV} is absent ({SETUP_HINT})"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # keep streamrnn out
    env.setdefault("OMP_NUM_THREADS", "1")
    try:
        proc = subprocess.run([str(py), str(Path(__file__).resolve()), task, json.dumps(params)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, f"deep-river skipped: task {task!r} ran over {timeout:.0f} s"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"deep-river skipped: task {task!r} failed ({tail})"
    return json.loads(lines[-1]), None


# ---------------------------------------------------------------------------------- worker
def _worker(task: str, params: dict) -> dict:
    import torch
    from river import datasets, evaluate, metrics
    from river.time_series.base import Forecaster

    torch.set_num_threads(1)
    import deep_river
    from deep_river import forecasting, regression

    class DropX(Forecaster):
        """Forward only y to the wrapped forecaster."""

        def __init__(self, model):
            self.model = model

        def learn_one(self, y, x=None):
            self.model.learn_one(y)

        def forecast(self, horizon, xs=None):
            return self.model.forecast(horizon)

    versions = {"deep_river": deep_river.__version__, "torch": torch.__version__}

    if task == "versions":
        import river
        return {**versions, "river": river.__version__}

    if task == "forecast":
        out = {}
        for name in params["models"]:
            per_seed, seconds = [], []
            for seed in params["seeds"]:
                torch.manual_seed(seed)
                model = DropX(getattr(forecasting, name)(seed=seed))
                ds = getattr(datasets, params["dataset"])()
                t0 = time.perf_counter()
                hm = evaluate.evaluate(ds, model, metrics.MAE(), horizon=params["horizon"])
                seconds.append(time.perf_counter() - t0)
                per_seed.append([m.get() for m in hm.metrics])
            out[name] = {"per_seed": per_seed, "seconds": seconds}
        return {**versions, "results": out}

    if task == "regress":
        out = {}
        for name in params["models"]:
            scores, seconds = [], []
            for seed in params["seeds"]:
                torch.manual_seed(seed)
                model = getattr(regression, name)(seed=seed)
                ds = getattr(datasets, params["dataset"])()
                t0 = time.perf_counter()
                m = evaluate.progressive_val_score(ds, model, metrics.MAE())
                seconds.append(time.perf_counter() - t0)
                scores.append(m.get())
            out[name] = {"mae": scores, "seconds": seconds}
        return {**versions, "results": out}

    if task == "speed":  # forecast(1) then learn_one(y), like bench_speed.py
        import math
        n, repeats = params["steps"], params["repeats"]
        ys = [math.sin(0.3 * i) + 0.1 * math.sin(1.7 * i) for i in range(n)]
        out = {}
        for name in params["models"]:
            for hidden in params["hidden"]:
                best = float("inf")
                for r in range(repeats):
                    model = getattr(forecasting, name)(hidden_size=hidden, seed=r)
                    for y in ys[:50]:  # warm-up: fill the window, build the optimizer
                        model.forecast(1)
                        model.learn_one(y)
                    t0 = time.perf_counter()
                    for y in ys:
                        model.forecast(1)
                        model.learn_one(y)
                    best = min(best, time.perf_counter() - t0)
                out[f"{name}/{hidden}"] = 1e6 * best / n
        return {**versions, "us_per_obs": out}

    raise SystemExit(f"unknown task {task!r}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python peers.py TASK JSON_PARAMS  (run by the benchmarks)")
    print(json.dumps(_worker(sys.argv[1], json.loads(sys.argv[2]))))
