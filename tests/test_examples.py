"""Every example runs to completion (quick mode) and prints its metric."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _support import child_env

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# example -> a pattern its metric line matches
METRIC_LINES = {
    "sine_rnn.py": r"MAE over the last 200 steps: RNN \d+\.\d+",
    "stocks_lstm.py": r"2-layer LSTM\s+MAE: \d+\.\d+",
    "binary_sequence.py": r"GRU\s+accuracy over the last 300 steps: \d\.\d+",
    "sequence_labeller.py": r"LSTM sequence labeller\s+Accuracy: \d+\.\d+%",
    "optimizers.py": r"RMSprop\(0\.005\)\s+MAE: \d+\.\d+",
    "river_pipeline.py": r"LSTM regressor\s+MAE: \d+\.\d+",
    "intervals_anomalies.py": r"90 % intervals: coverage \d+\.\d %",
}


def _num(pattern, text):
    return float(re.search(pattern, text).group(1))


# example -> what its printed figures must show in quick mode (each can fail: the model against
# the anchor the example prints next to it, or a bound well inside what it reaches)
CLAIMS = {
    "sine_rnn.py": lambda out: _num(r"last 200 steps: RNN (\d+\.\d+)", out)
    < 0.5 * _num(r"last value (\d+\.\d+)\s*$", out),
    "stocks_lstm.py": lambda out: _num(r"2-layer LSTM\s+MAE: (\d+\.\d+)", out)
    < 1.1 * _num(r"running mean\s+MAE: (\d+\.\d+)", out),
    "binary_sequence.py": lambda out: _num(r"GRU\s+accuracy over the last 300 steps: (\d\.\d+)", out)
    > _num(r"at most (\d\.\d+)", out) + 0.2,
    "sequence_labeller.py": lambda out: _num(r"LSTM sequence labeller\s+Accuracy: (\d+\.\d+)%", out)
    > _num(r"GaussianNB\s+Accuracy: (\d+\.\d+)%", out),
    "optimizers.py": lambda out: _num(r"RMSprop\(0\.005\)\s+MAE: (\d+\.\d+)", out) < 0.6,
    "river_pipeline.py": lambda out: _num(r"LSTM regressor\s+MAE: (\d+\.\d+)", out)
    < 0.5 * _num(r"linear regression\s+MAE: (\d+\.\d+)", out),
    "intervals_anomalies.py": lambda out: 85.0 < _num(r"coverage (\d+\.\d) %", out) < 95.0
    and _num(r"spikes: min (\d\.\d+)", out) > 0.95 > _num(r"median (\d\.\d+)", out),
}


def test_every_example_is_covered():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(METRIC_LINES) == sorted(CLAIMS)


@pytest.mark.parametrize("name", sorted(METRIC_LINES))
def test_example_runs_and_prints_its_metric(name):
    env = child_env()
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(METRIC_LINES[name], proc.stdout), proc.stdout
    assert CLAIMS[name](proc.stdout), proc.stdout
