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
}


def test_every_example_is_covered():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(METRIC_LINES)


@pytest.mark.parametrize("name", sorted(METRIC_LINES))
def test_example_runs_and_prints_its_metric(name):
    env = child_env()
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(METRIC_LINES[name], proc.stdout), proc.stdout
