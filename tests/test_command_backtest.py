"""`streamrnn backtest`, the per-horizon scorer behind it and the summary, and `streamrnn
inspect`."""
import json
import math
import os
import random
import subprocess
import sys

import pytest

from _support import child_env
from streamrnn.streams.scoring import HorizonScore


def _per_key(args):
    """Today's per-key models (``--per-key-models``): these tests pin their behaviour."""
    args = list(args)
    if args and args[0] in ("forecast", "backtest"):
        return [args[0], "--per-key-models", *args[1:]]
    return args


def cmd(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "streamrnn", *_per_key(args)], env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------ the scorer
def _reference(series, forecasts, h, m):
    """Brute force: every (origin, step) pair whose target exists, per method."""
    out = {"model": [[] for _ in range(h)], "last value": [[] for _ in range(h)],
           "seasonal naive": [[] for _ in range(h)]}
    for s, fc in enumerate(forecasts):
        for j in range(1, h + 1):
            t = s + j
            if t >= len(series):
                break
            out["model"][j - 1].append(abs(series[t] - fc[j - 1]))
            out["last value"][j - 1].append(abs(series[t] - series[s]))
            if m:   # the last value stands in until a season of history exists
                lag = m * math.ceil(j / m)
                out["seasonal naive"][j - 1].append(
                    abs(series[t] - (series[t - lag] if t - lag >= 0 else series[s])))
    return out


@pytest.mark.parametrize("h,m", [(1, 0), (5, 0), (3, 7), (10, 4), (4, 4)])
def test_horizon_score_matches_brute_force_with_bounded_memory(h, m):
    rng = random.Random(h * 31 + m)
    series = {k: [rng.gauss(0, 1) for _ in range(60 + 7 * i)] for i, k in enumerate("abc")}
    fcs = {k: [[rng.gauss(0, 1) for _ in range(h)] for _ in v] for k, v in series.items()}
    sc = HorizonScore(h, m)
    order = [(k, i) for k, v in series.items() for i in range(len(v))]
    rng.shuffle(order)
    order.sort(key=lambda ki: ki[1])  # interleaved keys, each in its own order
    for k, i in order:
        sc.observe(k, series[k][i], fcs[k][i])
        assert len(sc._pending[k]) <= h and len(sc._hist[k]) <= max(h, m * math.ceil(h / m) if m else 1)
    ref = {meth: [[] for _ in range(h)] for meth in sc.methods}
    for k in series:
        r = _reference(series[k], fcs[k], h, m)
        for meth in sc.methods:
            for j in range(h):
                ref[meth][j] += r[meth][j]
    table = sc.table()
    for meth in sc.methods:
        for j in range(h):
            assert table[meth][j]["n"] == len(ref[meth][j])
            assert table[meth][j]["mae"] == pytest.approx(sum(ref[meth][j]) / len(ref[meth][j]))
    assert ("seasonal naive" in table) == bool(m)
    # per key too, and a forgotten key starts afresh
    a = sc.table("a")["model"][0]
    assert a["n"] == len(series["a"]) - 1
    sc.forget("a")
    sc.observe("a", 1.0, [1.0] * h)
    assert sc.table("a")["model"][0]["n"] == a["n"]


def test_horizon_score_mase_and_smape():
    sc = HorizonScore(1, 0)
    for y in [1.0, 2.0, 3.0, 4.0]:
        sc.observe("k", y, [y + 1.0])  # a perfect one-step forecast of a line
    row = sc.table()["model"][0]
    assert row["mae"] == 0 and row["mase"] == 0 and row["smape"] == 0
    lv = sc.table()["last value"][0]
    assert lv["mae"] == 1 and lv["mase"] == 1  # the scale is the naive one-step error
    assert math.isnan(lv["smape"])  # sMAPE is the model's only
    sc = HorizonScore(1, 0)
    for y in [1.0, 2.0, 3.0, 4.0]:
        sc.observe("k", y, [y])  # the last value, as the model's forecast
    assert sc.table()["model"][0]["smape"] == pytest.approx(100 * (2 / 3 + 2 / 5 + 2 / 7) / 3)


# ------------------------------------------------------------------ the command
def _shops(path, n=200, keys=3):
    with open(path, "w") as f:
        f.write("\ufefftimestamp,shop,sales\n")  # Excel's byte-order mark
        for i in range(n):
            for k in range(keys):
                v = 50 + 10 * k + 10 * math.sin(2 * math.pi * i / 12)
                f.write(f"2024-01-{1 + i // 24:02d}T{i % 24:02d}:00:00,shop{k},{v:.3f}\n")


def test_backtest_prints_a_table_per_step_and_per_key(tmp_path):
    pytest.importorskip("matplotlib")
    _shops(tmp_path / "shops.csv")
    p = cmd("backtest", "--source", str(tmp_path / "shops.csv"), "--key", "shop", "--time",
            "timestamp", "--target", "sales", "--horizon", "3", "--seasonality", "12",
            "--hidden-size", "4", "--plot", str(tmp_path / "bt.png"), "--table-keys", "2")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "600 messages, 3 keys, 0 bad" in out
    head = [line for line in out.splitlines() if line.strip().startswith("step")][0]
    assert "GRU" in head and "last value" in head and "seasonal naive" in head
    for step in ("1", "2", "3"):
        assert any(line.split()[:1] == [step] for line in out.splitlines())
    assert "shop0" in out and "shop1" in out and "1 more key only in 'all keys'" in out
    assert "lower MAE than last value at" in out
    assert "keys 'shop0', 'shop1', 'shop2'" in out and os.path.getsize(tmp_path / "bt.png") > 20e3


def test_backtest_json_agrees_with_the_forecast_records(tmp_path):
    _shops(tmp_path / "shops.csv", n=120, keys=2)
    common = ["--source", str(tmp_path / "shops.csv"), "--key", "shop", "--target", "sales",
              "--horizon", "2", "--seasonality", "12", "--hidden-size", "4"]
    p = cmd("backtest", *common, "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["messages"] == 240 and d["keys"] == 2 and d["horizon"] == 2
    assert set(d["overall"]) == {"model", "last value", "seasonal naive"}
    assert set(d["per_key"]) == {"shop0", "shop1"}
    # the same models, run by `forecast`: score its records by hand
    f = cmd("forecast", *common, "--quiet")
    recs = [json.loads(line) for line in f.stdout.splitlines()]
    errs = [[], []]
    for key in ("shop0", "shop1"):
        rs = [r for r in recs if r["key"] == key]
        for s, r in enumerate(rs):
            for j in (1, 2):
                if s + j < len(rs):
                    errs[j - 1].append(abs(rs[s + j]["y"] - r["forecast"][j - 1]))
    for j in (0, 1):
        row = d["overall"]["model"][j]
        assert row["n"] == len(errs[j])
        assert row["mae"] == pytest.approx(sum(errs[j]) / len(errs[j]), rel=1e-9)


def test_backtest_of_a_bad_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    p = cmd("backtest", "--source", str(tmp_path / "x.csv"))
    assert p.returncode == 2 and "no column 'y'" in p.stderr
    p = cmd("backtest", "--source", str(tmp_path / "missing.csv"))
    assert p.returncode == 2 and "the source" in p.stderr and "missing.csv" in p.stderr


def test_backtest_python_api():
    from streamrnn.backtest import backtest
    from streamrnn.spec import model_spec
    from streamrnn.streams import DatasetSource
    from river.datasets import WaterFlow
    r = backtest(DatasetSource(WaterFlow(), key="w"), model_spec("gru", hidden_size=4, seed=1),
                 horizon=2, seasonality=24, limit=300)
    assert r.messages == 300 and r.table()["model"][0]["n"] == 299
    assert json.dumps(r.to_dict())  # strict JSON


# ------------------------------------------------------------------ inspect
def test_inspect_shows_a_checkpoint_without_building_models(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"k": f"s{i % 3}", "y": i % 5}) + "\n"
                           for i in range(90)))
    assert cmd("forecast", "--source", str(src), "--key", "k", "--checkpoint",
               str(tmp_path / "ck"), "--hidden-size", "5", "--quiet",
               "--sink", os.devnull).returncode == 0
    p = cmd("inspect", str(tmp_path / "ck"))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "version 1" in out and "hidden_size=5" in out and "next offset 90" in out
    assert "3: 's0', 's1', 's2'" in out and "bytes" in out and "kind=file" in out
    j = json.loads(cmd("inspect", str(tmp_path / "ck" / "partition-0.srnn"), "--json").stdout)
    assert j["n_keys"] == 3 and j["position"] == {"partition": 0, "offset": 90}
    assert j["spec"]["params"]["hidden_size"] == 5 and j["created"] and j["version"] == 1
    assert j["file_bytes"] == os.path.getsize(tmp_path / "ck" / "partition-0.srnn")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"SRNN" + b"\0" * 64])
def test_inspect_of_a_bad_file_is_exit_2(tmp_path, content):
    (tmp_path / "bad.srnn").write_bytes(content)
    p = cmd("inspect", str(tmp_path / "bad.srnn"))
    assert p.returncode == 2 and p.stderr.startswith("streamrnn: error:")
    assert "Traceback" not in p.stderr
    p = cmd("inspect", str(tmp_path / "nothing-here"))
    assert p.returncode == 2 and "no such file" in p.stderr
    os.mkdir(tmp_path / "empty")
    p = cmd("inspect", str(tmp_path / "empty"))
    assert p.returncode == 2 and "without checkpoint files" in p.stderr


def test_backtest_docstring_example_runs():
    import doctest
    import streamrnn.backtest as bt
    runner = doctest.DocTestRunner()
    for t in doctest.DocTestFinder().find(bt):
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0


def test_backtest_reads_any_source_such_as_stdin():
    p = subprocess.run([sys.executable, "-m", "streamrnn", "backtest", "--per-key-models",
                        "--source", "-",
                        "--horizon", "2", "--hidden-size", "3", "--json"], env=child_env(),
                       input="".join(json.dumps({"y": i % 4}) + "\n" for i in range(60)),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["messages"] == 60 and [r["n"] for r in d["overall"]["model"]] == [59, 58]


def test_backtest_baseline_season_apart_from_the_models():
    p = cmd("backtest", "--limit", "200", "--horizon", "2", "--naive-seasonality", "24",
            "--hidden-size", "3", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["seasonality"] == 24 and d["model"]["params"]["seasonality"] == "auto"
    assert d["overall"]["seasonal naive"][0]["n"] == 200 - 1   # the model's rows
