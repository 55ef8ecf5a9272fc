"""`streamrnn forecast --threads N` (the global model's network step shared by N threads):
the same records and the same checkpoint as one thread, also across a resume that changes
the number; out-of-range values are refused before anything is read."""
import json
import pickle
import subprocess
import sys

import numpy as np

from streamrnn import checkpoint as ck
from _support import child_env


def run(*args, ok=True):
    p = subprocess.run([sys.executable, "-m", "streamrnn", "forecast", *args], env=child_env(),
                       capture_output=True, text=True, timeout=180)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def _write(path, keys=150, values=9):
    # 150 keys: sub-batches of up to 150 distinct keys, 3 chunks of 64 rows for the threads
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        for t in range(values):
            for k in rng.permutation(keys):
                f.write(json.dumps({"station": f"s{k}", "y": float(np.sin(t / 3 + k) +
                                                                 rng.normal(0, .1)),
                                    "temp": float(rng.normal()), "t": t}) + "\n")


def _state(path):
    store = ck.CheckpointStore(path)
    try:
        c = store.load(0)  # all but its path and time of creation
        return pickle.dumps((c.models, c.position, c.extra, c.spec, c.source))
    finally:
        store.close()


def test_threads_give_the_same_records_and_checkpoints_also_across_a_resume(tmp_path):
    src = tmp_path / "in.jsonl"
    _write(src)
    common = ["--source", str(src), "--key", "station", "--time", "t", "--hidden-size", "6",
              "--horizon", "2", "--batch", "256", "--checkpoint-every", "256", "--quiet"]
    outs = {}
    for threads in ("1", "2", "3"):
        d = tmp_path / f"t{threads}"
        run(*common, "--threads", threads, "--checkpoint", str(d / "ck"),
            "--sink", str(d / "out.jsonl"))
        outs[threads] = ((d / "out.jsonl").read_bytes(), _state(d / "ck"))
    assert outs["2"] == outs["1"] and outs["3"] == outs["1"]
    assert len(outs["1"][0].splitlines()) == 150 * 9
    # stopped with 2 threads after 3 whole batches, resumed with 1: the uninterrupted run's
    # records and state
    d = tmp_path / "resumed"
    run(*common, "--threads", "2", "--limit", "768", "--checkpoint", str(d / "ck"),
        "--sink", str(d / "out.jsonl"))
    run(*common, "--threads", "1", "--checkpoint", str(d / "ck"), "--sink", str(d / "out.jsonl"))
    assert ((d / "out.jsonl").read_bytes(), _state(d / "ck")) == outs["1"]


def test_threads_out_of_range_are_refused(tmp_path):
    src = tmp_path / "in.jsonl"
    _write(src, keys=3, values=2)
    for bad in ("0", "-1", "17", "two"):
        p = run("--source", str(src), "--threads", bad, "--sink", str(tmp_path / "o.jsonl"),
                ok=False)
        assert p.returncode == 2 and "--threads" in p.stderr, p.stderr
        assert not (tmp_path / "o.jsonl").exists()
