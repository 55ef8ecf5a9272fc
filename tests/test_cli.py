"""The `streamrnn forecast` command: the built-in demo, files with checkpoints, dead letters."""
import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np

from streamrnn import checkpoint as ck
from _support import child_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, cwd=None, stdin=None):
    env = child_env()
    p = subprocess.run([sys.executable, "-m", "streamrnn", "forecast", "--per-key-models",
                        *args], env=env,
                       capture_output=True, text=True, timeout=120, cwd=cwd, input=stdin)
    assert p.returncode == 0, p.stderr
    return p


def test_default_demo_prints_json_lines_and_a_summary(tmp_path):
    p = run("--plot", str(tmp_path / "demo.png"))
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(rows) == 1268 and rows[0]["prediction"] is None
    assert set(rows[1]) == {"key", "time", "partition", "offset", "y", "prediction", "anomaly",
                            "forecast", "low", "high"}
    assert len(rows[-1]["forecast"]) == 24 and rows[-1]["offset"] == 1267
    assert "versus last value" in p.stderr and "bytes" in p.stderr
    # the one-step comparison reads as a size and a direction ("0.2% worse", not "-0.2% worse")
    assert re.search(r"\(\d+\.\d% (better|worse); [\d,]+ scored\)", p.stderr), p.stderr
    assert os.path.getsize(tmp_path / "demo.png") > 10_000


def _write(path, n):
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"station": f"s{i % 4}", "y": float(np.sin(i / 9) + rng.normal(0, .1)),
                                "t": i}) + "\n")
            if i % 97 == 0:
                f.write('{"station": "s1", "y": "broken"}\n')


def test_file_resume_is_bit_identical_and_bad_lines_are_dead_lettered(tmp_path):
    src = tmp_path / "in.jsonl"
    _write(src, 900)
    common = ["--source", str(src), "--key", "station", "--time", "t", "--hidden-size", "6",
              "--checkpoint-every", "100", "--horizon", "3", "--quiet"]
    run(*common, "--checkpoint", str(tmp_path / "full"), "--sink", str(tmp_path / "full.jsonl"))
    run(*common, "--checkpoint", str(tmp_path / "part"), "--sink", str(tmp_path / "part.jsonl"),
        "--limit", "333", "--dead-letter", str(tmp_path / "dead.jsonl"))
    run(*common, "--checkpoint", str(tmp_path / "part"), "--sink", str(tmp_path / "part.jsonl"),
        "--dead-letter", str(tmp_path / "dead.jsonl"))
    full = ck.CheckpointStore(tmp_path / "full").load(0)
    part = ck.CheckpointStore(tmp_path / "part").load(0)
    assert full.position == part.position == {"partition": 0, "offset": 900 + 10}
    for k in full.models:
        a, b = full.models[k]._export_state(), part.models[k]._export_state()
        assert pickle.dumps(a) == pickle.dumps(b)  # the whole learned state, bit for bit
        assert full.models[k].forecast(3) == part.models[k].forecast(3)
    # every record bit for bit, forecasts, intervals and anomaly scores included
    assert open(tmp_path / "full.jsonl").read() == open(tmp_path / "part.jsonl").read()
    last = json.loads(open(tmp_path / "part.jsonl").readlines()[-1])
    assert len(last["low"]) == len(last["high"]) == 3 and last["anomaly"] is not None
    dead = [json.loads(line) for line in open(tmp_path / "dead.jsonl")]
    assert len(dead) == 10 and all("'y'" in d["reason"] for d in dead)
    p = subprocess.run([sys.executable, "-m", "streamrnn", "forecast", "--per-key-models",
                        *common, "--checkpoint",
                        str(tmp_path / "part"), "--hidden-size", "7"],
                       env=child_env(), capture_output=True, text=True)
    assert p.returncode == 2 and "model spec" in p.stderr


def test_stdin_and_csv(tmp_path):
    p = run("--source", "-", "--quiet", stdin="".join(json.dumps({"y": i % 5}) + "\n"
                                                      for i in range(50)))
    assert len(p.stdout.splitlines()) == 50
    (tmp_path / "in.csv").write_text("y,x\n" + "".join(f"{i % 7},{i}\n" for i in range(40)))
    p = run("--source", str(tmp_path / "in.csv"), "--horizon", "2")
    assert len(p.stdout.splitlines()) == 40 and "last value" in p.stderr
