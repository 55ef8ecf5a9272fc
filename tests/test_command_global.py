"""The command's default, one global model per partition: the options that only per-key
models take fail fast with a clear message, the help says which options apply where, the
summary and the backtest work, and a checkpoint of one kind does not resume the other."""
import json
import math
import subprocess
import sys

from _support import child_env


def cmd(*args, stdin=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "streamrnn", *args], env=child_env(),
                          capture_output=True, text=True, timeout=timeout, input=stdin)


def _rows(n=600, keys=5):
    return "".join(json.dumps({"k": f"s{i % keys}", "y": round(5 * math.sin(i / 9) + i % keys,
                                                                3)}) + "\n"
                   for i in range(n))


def test_seasonality_auto_and_several_seasons_need_per_key_models(tmp_path):
    for season in ("auto", "24,168"):
        p = cmd("forecast", "--source", "-", "--seasonality", season, "--checkpoint",
                str(tmp_path / "ck"), stdin='{"y": 1}\n')
        assert p.returncode == 2 and "--per-key-models" in p.stderr, p.stderr
        assert not (tmp_path / "ck").exists()  # before anything was opened
    p = cmd("forecast", "--per-key-models", "--source", "-", "--seasonality", "auto",
            "--sink", "-", stdin=_rows(50), timeout=120)
    assert p.returncode == 0, p.stderr


def test_the_help_says_which_options_apply_to_which_mode():
    h = cmd("forecast", "--help").stdout
    assert "--per-key-models" in h and "global model" in h
    for opt in ("--batch", "--max-wait"):
        assert opt in h
    assert "Per-key models only: auto" in " ".join(h.split())


def test_the_global_command_forecasts_summarises_and_resumes(tmp_path):
    out = tmp_path / "out.jsonl"
    ck_dir = tmp_path / "ck"
    common = ["forecast", "--source", "-", "--key", "k", "--horizon", "3", "--seasonality",
              "9", "--hidden-size", "4", "--batch", "64", "--checkpoint", str(ck_dir),
              "--sink", str(out)]
    p = cmd(*common, stdin=_rows())
    assert p.returncode == 0, p.stderr
    assert "600 messages" in p.stderr and "5 keys" in p.stderr
    assert "one global model per partition (1); state per key" in p.stderr
    assert "forecasts by step ahead" in p.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 600 and [r["offset"] for r in rows] == list(range(600))
    assert all(len(r["forecast"]) == 3 for r in rows)
    p = cmd(*common, stdin=_rows(650))  # the same stream, 50 more: it resumes at 600
    assert p.returncode == 0, p.stderr
    assert "with its global model of 5 keys" in p.stderr and "50 messages" in p.stderr
    # the other kind of model refuses the checkpoint
    p = cmd("forecast", "--per-key-models", *common[1:], stdin=_rows(10))
    assert p.returncode == 2 and "streamrnn: error:" in p.stderr, p.stderr


def test_the_global_backtest_scores_every_step(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(_rows())
    p = cmd("backtest", "--source", str(src), "--key", "k", "--horizon", "2", "--seasonality",
            "9", "--hidden-size", "4", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["model"]["model"] == "global"
    n = [r["n"] for r in d["overall"]["model"]]
    assert n == [595, 590]
    # every baseline on the model's rows (the seasonal naive is the last value until a key
    # has a season of history)
    assert [r["n"] for r in d["overall"]["seasonal naive"]] == n
    assert [r["n"] for r in d["overall"]["last value"]] == n
    p = cmd("backtest", "--source", str(src), "--key", "k", "--horizon", "2", "--seasonality",
            "9", "--hidden-size", "4")
    assert p.returncode == 0 and "one global model per partition" in p.stdout, p.stderr
