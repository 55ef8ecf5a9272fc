"""The command's intervals and anomaly scores: the scorer's coverage and width per step ahead
(against a brute-force count), its checkpointed state (a resumed scorer ends equal to an
uninterrupted one; a hostile state is refused whole), the tables that show them, and the
`--seasonality` / `--alpha` options."""
import copy
import json
import math
import random

import pytest

from streamrnn.streams.report import coverage_sentence, horizon_table
from streamrnn.streams.scoring import HorizonScore, naive_season


def _per_key(args):
    """Today's per-key models (``--per-key-models``): these tests pin their behaviour."""
    args = list(args)
    if args and args[0] in ("forecast", "backtest"):
        return [args[0], "--per-key-models", *args[1:]]
    return args


def _stream(h, n=80, keys="abc", seed=0):
    """Interleaved keys, each with values, forecasts and intervals (some None, some short)."""
    rng = random.Random(seed)
    data = {}
    for i, k in enumerate(keys):
        ys = [rng.gauss(0, 1) for _ in range(n + 5 * i)]
        fcs, ivs = [], []
        for _ in ys:
            fc = [rng.gauss(0, 1) for _ in range(h)]
            w = [abs(rng.gauss(1.2, 0.5)) for _ in range(h)]
            lo = [f - a for f, a in zip(fc, w)]
            hi = [f + a for f, a in zip(fc, w)]
            if rng.random() < 0.1:
                lo = hi = None          # a model without intervals at that step
            elif rng.random() < 0.1:
                j = rng.randrange(h)
                lo[j] = None            # a non-finite bound, written as null
            fcs.append(fc)
            ivs.append((lo, hi))
        data[k] = (ys, fcs, ivs)
    order = [(k, t) for k, (ys, _, _) in data.items() for t in range(len(ys))]
    rng.shuffle(order)
    order.sort(key=lambda kt: kt[1])
    return data, order


def _brute(data, h):
    n, hits, width = [0] * h, [0] * h, [0.0] * h
    for ys, fcs, ivs in data.values():
        for s, (lo, hi) in enumerate(ivs):
            for j in range(1, h + 1):
                if s + j >= len(ys) or lo is None or lo[j - 1] is None:
                    continue
                n[j - 1] += 1
                hits[j - 1] += lo[j - 1] <= ys[s + j] <= hi[j - 1]
                width[j - 1] += hi[j - 1] - lo[j - 1]
    return n, hits, width


@pytest.mark.parametrize("h,m", [(1, 0), (4, 0), (6, 4)])
def test_coverage_and_width_per_step_match_a_brute_force_count(h, m):
    data, order = _stream(h)
    sc = HorizonScore(h, m, alpha=0.1)
    for k, t in order:
        ys, fcs, ivs = data[k]
        sc.observe(k, ys[t], fcs[t], *ivs[t])
    n, hits, width = _brute(data, h)
    rows = sc.table()["model"]
    for j in range(h):
        assert rows[j]["n_interval"] == n[j] > 0
        assert rows[j]["coverage"] == pytest.approx(100 * hits[j] / n[j])
        assert rows[j]["width"] == pytest.approx(width[j] / n[j])
    # the baselines have no interval
    assert all(math.isnan(r["coverage"]) for r in sc.table()["last value"])
    text = "\n".join(horizon_table(sc.table(), "GRU", alpha=0.1))
    assert "90% interval" in text and "cover %" in text and "width" in text
    first = [line for line in text.splitlines() if line.split()[:1] == ["1"]][0]
    assert f"{100 * hits[0] / n[0]:.1f}" in first.split()
    s = coverage_sentence(sc.table(), 0.1)
    assert f"{100 * sum(hits) / sum(n):.1f}% of {sum(n):,d} targets (nominal 90%)" in s


@pytest.mark.parametrize("h,m", [(1, 4), (6, 4), (3, 7), (5, 2)])
@pytest.mark.parametrize("batch", [False, True])
def test_every_baseline_is_scored_on_the_models_rows(h, m, batch):
    """Like for like: the seasonal naive is the last value until a key has a season of
    history, so all three methods are scored on the same (origin, step) pairs; their sums
    equal a brute-force count over those pairs (HorizonScore and BatchScore alike)."""
    from streamrnn.streams.scoring import BASELINE_NOTE, BatchScore
    import numpy as np
    data, order = _stream(h, n=30, seed=h + m)
    sc = (BatchScore if batch else HorizonScore)(h, m, alpha=0.1)
    for k, t in order:
        ys, fcs, ivs = data[k]
        if batch:
            sc.observe_many([k], [ys[t]], np.array([fcs[t]]), np.full((1, h), np.nan),
                            np.full((1, h), np.nan))
        else:
            sc.observe(k, ys[t], fcs[t])
    ref = {meth: [0.0] * h for meth in METHODS_}
    cnt = [0] * h
    for ys, fcs, _ in data.values():
        for s in range(len(ys)):
            for j in range(1, h + 1):
                t = s + j
                if t >= len(ys):
                    break
                lag = m * math.ceil(j / m)
                cnt[j - 1] += 1
                ref["model"][j - 1] += abs(ys[t] - fcs[s][j - 1])
                ref["last value"][j - 1] += abs(ys[t] - ys[s])
                ref["seasonal naive"][j - 1] += abs(ys[t] - (ys[t - lag] if t - lag >= 0
                                                            else ys[s]))
    table = sc.table()
    for meth in METHODS_:
        for j in range(h):
            assert table[meth][j]["n"] == cnt[j] == table["model"][j]["n"]
            assert table[meth][j]["mae"] == pytest.approx(ref[meth][j] / cnt[j], rel=1e-12)
    assert "same" in BASELINE_NOTE and "season" in BASELINE_NOTE


METHODS_ = ("model", "last value", "seasonal naive")


def test_scores_of_the_previous_version_are_not_mixed_in():
    """A checkpoint's scores made before the baselines were scored like for like (a config
    without ``version``) do not match: the command warns and starts its scores afresh."""
    part, keys = _states()
    old = copy.deepcopy(part)
    old["config"].pop("version")
    sc = HorizonScore(3, 2, alpha=0.1)
    assert sc.check_config(part) and not sc.check_config(old)
    with pytest.raises(ValueError, match="made with"):
        sc.load({0: old}, keys)


def test_a_table_without_intervals_has_no_interval_columns():
    sc = HorizonScore(2, 0)
    for t in range(10):
        sc.observe("k", float(t), [t + 1.0, t + 2.0])
    text = "\n".join(horizon_table(sc.table(), "GRU"))
    assert "cover" not in text and coverage_sentence(sc.table()) == ""


@pytest.mark.parametrize("h,m", [(1, 0), (5, 0), (4, 7)])
@pytest.mark.parametrize("cut", [1, 37, 150])
def test_a_scorer_resumed_from_its_state_ends_equal_to_an_uninterrupted_one(h, m, cut):
    data, order = _stream(h, seed=cut + h)
    full = HorizonScore(h, m, detail_keys=2, alpha=0.1)
    part = HorizonScore(h, m, detail_keys=2, alpha=0.1)
    for i, (k, t) in enumerate(order):
        ys, fcs, ivs = data[k]
        if i == cut:
            # as a checkpoint carries it: JSON, then into a new scorer
            blob = json.loads(json.dumps({"part": part.part_state(0),
                                          "keys": {q: part.key_state(q) for q in data
                                                   if part.key_state(q) is not None}}))
            part = HorizonScore(h, m, detail_keys=2, alpha=0.1)
            part.load({0: blob["part"]}, blob["keys"])
        full.observe(k, ys[t], fcs[t], *ivs[t])
        part.observe(k, ys[t], fcs[t], *ivs[t])
    assert json.dumps(part.table()) == json.dumps(full.table())  # bit for bit (NaN too)
    assert part.keys_seen == full.keys_seen and set(part.per_key) == set(full.per_key)
    for k in full.per_key:
        assert json.dumps(part.table(k)) == json.dumps(full.table(k))


def test_a_carried_state_is_bounded_by_the_horizon():
    h = 24
    sc = HorizonScore(h, 24, alpha=0.1)
    for t in range(500):
        sc.observe("k", float(t), [1.0] * h, [0.0] * h, [2.0] * h)
    st = sc.key_state("k")
    numbers = sum(len(e[1]) + len(e[2]) + len(e[3]) for e in st["pending"]) + len(st["hist"])
    assert numbers == 3 * h * (h + 1) // 2 + 24
    assert len(json.dumps(sc.part_state(0))) < 4000


def _states():
    sc = HorizonScore(3, 2, alpha=0.1)
    for t in range(20):
        sc.observe("k", float(t % 5), [1.0, 2.0, 3.0], [0.0] * 3, [4.0] * 3)
    return sc.part_state(0), {"k": sc.key_state("k")}


def _hostile():
    part, keys = _states()
    cases = []

    def case(fn):
        p, k = copy.deepcopy(part), copy.deepcopy(keys)
        fn(p, k)
        cases.append((p, k))
    case(lambda p, k: p.update(config={"horizon": 4, "seasonality": 2, "alpha": 0.1}))
    case(lambda p, k: p.update(keys_seen=-1))
    case(lambda p, k: p["sums"].update(n=[[1, 2, 3]] * 2))
    case(lambda p, k: p["sums"]["n"][0].__setitem__(0, 1.5))
    case(lambda p, k: p["sums"]["abs"][0].__setitem__(1, float("nan")))
    case(lambda p, k: p["sums"]["width"][0].__setitem__(1, -1.0))
    case(lambda p, k: p["sums"].update(scale="big"))
    case(lambda p, k: p["sums"].pop("cover"))
    case(lambda p, k: k["k"].update(hist=[1.0] * 1000))
    case(lambda p, k: k["k"].update(hist=[None]))
    case(lambda p, k: k["k"].update(pending=[None] * 4))
    case(lambda p, k: k["k"]["pending"][-1].__setitem__(0, 1))
    case(lambda p, k: k["k"]["pending"][-1].__setitem__(1, [1.0] * 9))
    case(lambda p, k: k["k"]["pending"][-1].__setitem__(2, None))
    case(lambda p, k: k["k"]["pending"][-1].__setitem__(2, [1.0]))
    case(lambda p, k: k["k"]["pending"][-1].__setitem__(1, [float("inf")] * 3))
    case(lambda p, k: k["k"].update(extra=1))
    case(lambda p, k: k.__setitem__("k", [1, 2]))
    return cases


@pytest.mark.parametrize("part,keys", _hostile())
def test_a_hostile_state_is_refused_whole(part, keys):
    sc = HorizonScore(3, 2, alpha=0.1)
    sc.observe("other", 1.0, [1.0, 1.0, 1.0])
    before = json.dumps(sc.table()), sc.key_state("other"), sc.keys_seen
    with pytest.raises(ValueError):
        sc.load({0: part}, keys)
    assert (json.dumps(sc.table()), sc.key_state("other"), sc.keys_seen) == before
    assert sc.key_state("k") is None


def test_the_seasonal_naive_season_of_a_spec():
    def spec(v):
        return {"params": {"seasonality": v}}
    assert [naive_season(spec(v)) for v in ("auto", 0, 24, (24, 168), [12, 4], "24,168",
                                            None, True)] == [0, 0, 24, 24, 12, 24, 0, 0]
    assert naive_season(None) == 0


# ------------------------------------------------------------------ options
def test_seasonality_option_parsing():
    import argparse
    from streamrnn.cli import _seasonality
    assert _seasonality("auto") == "auto" and _seasonality("AUTO") == "auto"
    assert _seasonality("0") == 0 and _seasonality("24") == 24
    assert _seasonality("24,168") == (24, 168) and _seasonality(" 7 , 30 ") == (7, 30)
    for bad, says in (("", "write auto"), ("abc", "write auto"), ("-3", "write auto"),
                      ("24,", "write auto"), ("1", r"in \[2,"), ("24,24", "twice"),
                      ("0,24", r"in \[2,"), ("2.5", "write auto"), ("10000000", r"in \[2,"),
                      ("٣", "write auto"), ("2,3,4,5,6", "at most 4")):
        with pytest.raises(argparse.ArgumentTypeError, match=says):
            _seasonality(bad)


def test_alpha_option_parsing():
    import argparse
    from streamrnn.cli import _alpha
    assert _alpha("0.1") == 0.1 and _alpha("0.05") == 0.05
    for bad in ("0", "1", "-0.1", "nan", "inf", "ten"):
        with pytest.raises(argparse.ArgumentTypeError, match="between 0 and 1"):
            _alpha(bad)


# ------------------------------------------------------------------ the command, end to end
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from _support import child_env  # noqa: E402


def cmd(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "streamrnn", *_per_key(args)], env=child_env(),
                          capture_output=True, text=True, timeout=300, input=stdin)


def test_the_demo_records_carry_an_interval_around_each_forecast_and_an_anomaly_score():
    p = cmd("forecast", "--sink", "-", "--hidden-size", "8")
    assert p.returncode == 0, p.stderr
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(recs) == 1268
    late = recs[300:]
    for r in late:
        assert len(r["forecast"]) == len(r["low"]) == len(r["high"]) == 24
        for f, lo, hi in zip(r["forecast"], r["low"], r["high"]):
            assert math.isfinite(lo) and math.isfinite(hi) and lo <= f <= hi
        assert 0 <= r["anomaly"] <= 1
    assert recs[0]["anomaly"] is None and recs[0]["prediction"] is None
    # wider intervals further ahead (on average over the run)
    w1 = sum(r["high"][0] - r["low"][0] for r in late)
    w24 = sum(r["high"][23] - r["low"][23] for r in late)
    assert w24 > w1
    # the summary reports coverage next to the MAE rows, and the default is auto
    err = p.stderr
    assert "90% interval" in err and "cover %" in err and "intervals covered" in err
    cover = float(err.split("intervals covered ")[1].split("%")[0])
    assert 75 <= cover <= 99  # calibrated (the benchmark holds the 88-92 % figure)


def _series(path, n=600, keys=3):
    rng = random.Random(5)
    with open(path, "w") as f:
        for i in range(n):
            k = i % keys
            f.write(json.dumps({"k": f"s{k}", "t": i // keys,
                                "y": 10 * k + 3 * math.sin(2 * math.pi * (i // keys) / 12)
                                + rng.gauss(0, 0.5)}) + "\n")


def _table(stderr):
    """The summary's per-step table and coverage sentence (not the timings)."""
    lines = stderr.splitlines()
    i = [j for j, line in enumerate(lines) if "forecasts by step ahead" in line][0]
    out = []
    for line in lines[i + 1:]:
        if not line.startswith("    "):
            break
        out.append(line)
    return out


def test_a_resumed_run_writes_the_same_records_and_summary_as_an_uninterrupted_one(tmp_path):
    src = tmp_path / "in.jsonl"
    _series(src)
    common = ["forecast", "--source", str(src), "--key", "k", "--time", "t", "--hidden-size",
              "4", "--horizon", "4", "--seasonality", "12", "--checkpoint-every", "50"]
    full = cmd(*common, "--checkpoint", str(tmp_path / "a"), "--sink", str(tmp_path / "a.jsonl"))
    assert full.returncode == 0, full.stderr
    for extra in (["--limit", "233"], ["--limit", "101"], []):
        p = cmd(*common, "--checkpoint", str(tmp_path / "b"), "--sink",
                str(tmp_path / "b.jsonl"), *extra)
        assert p.returncode == 0, p.stderr
    a = open(tmp_path / "a.jsonl").read()
    assert a == open(tmp_path / "b.jsonl").read()  # low, high and anomaly bit for bit
    assert '"low":[' in a and '"anomaly":0.' in a
    assert "resuming partition 0" in p.stderr
    assert "with the resumed checkpoints; each scored" in p.stderr
    assert _table(p.stderr) == _table(full.stderr)  # the scores went on where they stopped
    assert "seasonal naive" in _table(full.stderr)[1]


def test_coverage_in_backtest_agrees_with_the_records(tmp_path):
    src = tmp_path / "in.jsonl"
    _series(src, n=450)
    common = ["--source", str(src), "--key", "k", "--hidden-size", "4", "--horizon", "3",
              "--alpha", "0.2"]
    b = cmd("backtest", *common, "--json")
    assert b.returncode == 0, b.stderr
    d = json.loads(b.stdout)
    assert d["alpha"] == 0.2 and d["model"]["params"]["seasonality"] == "auto"
    f = cmd("forecast", *common, "--quiet")
    recs = [json.loads(line) for line in f.stdout.splitlines()]
    for j in range(3):
        n = hits = 0
        width = 0.0
        for key in ("s0", "s1", "s2"):
            rs = [r for r in recs if r["key"] == key]
            for s, r in enumerate(rs[:len(rs) - j - 1]):
                lo, hi = r["low"][j], r["high"][j]
                if lo is None or hi is None:
                    continue
                n += 1
                hits += lo <= rs[s + j + 1]["y"] <= hi
                width += hi - lo
        row = d["overall"]["model"][j]
        assert row["n_interval"] == n > 0
        assert row["coverage"] == pytest.approx(100 * hits / n)
        assert row["width"] == pytest.approx(width / n)
    t = cmd("backtest", *common)
    assert "80% interval" in t.stdout and "intervals covered" in t.stdout
    assert "seasonality auto" in t.stdout


@pytest.mark.parametrize("value,says", [("weekly", "write auto"), ("24,24", "twice"),
                                        ("1", "in [2,"), ("-1", "write auto"),
                                        ("24,", "write auto")])
def test_a_bad_seasonality_is_a_usage_error_naming_the_option(value, says):
    p = cmd("forecast", "--seasonality", value, "--limit", "1")
    assert p.returncode == 2 and p.stdout == ""
    assert "argument --seasonality" in p.stderr and says in p.stderr
    assert "usage: streamrnn forecast" in p.stderr


def test_seasonality_lists_and_the_horizon_reach_the_model(tmp_path):
    src = tmp_path / "in.jsonl"
    _series(src, n=120, keys=1)
    p = cmd("forecast", "--source", str(src), "--key", "k", "--hidden-size", "3",
            "--seasonality", "12,24", "--horizon", "5", "--checkpoint", str(tmp_path / "ck"),
            "--sink", os.devnull)
    assert p.returncode == 0, p.stderr
    i = cmd("inspect", str(tmp_path / "ck"), "--json")
    params = json.loads(i.stdout)["files"][0]["spec"]["params"]
    assert params["seasonality"] == [12, 24] and params["horizon"] == 5
    text = cmd("inspect", str(tmp_path / "ck")).stdout
    assert "seasonality=[12, 24]" in text
    assert "scores       by step ahead, horizon 5, 90% intervals; pending forecasts of 1 key" \
        in text
    # another horizon is another model: refused, naming the option
    p = cmd("forecast", "--source", str(src), "--key", "k", "--hidden-size", "3",
            "--seasonality", "12,24", "--horizon", "6", "--checkpoint", str(tmp_path / "ck"),
            "--sink", os.devnull)
    assert p.returncode == 2 and "--horizon" in p.stderr
    h = cmd("forecast", "--help").stdout
    h = " ".join(h.split())
    # the default is now per mode: auto for per-key models, 0 for the global model
    assert "auto|M|M1,M2" in h and "auto for per-key models" in h and "--alpha" in h
    assert "1 - alpha interval (0.1: 90%) (default: 0.1)" in h


def test_each_record_holds_the_models_own_interval_and_anomaly_score(tmp_path):
    # a twin of the runner's model, driven by hand: the record's anomaly is score_one(y) of the
    # model before it learned y, and low/high are its forecast_interval after learning y
    from streamrnn import GRUForecaster
    from streamrnn.streams import JsonLinesSource, Runner, Sink

    class Keep(Sink):
        def __init__(self):
            self.records = []

        def send(self, record, key=None):
            self.records.append(record)

        def flush(self):
            return True

    ys = [10 + 3 * math.sin(i / 4) + (8 if i == 150 else 0) for i in range(200)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"y": y}) + "\n" for y in ys))
    sink = Keep()
    r = Runner(None, JsonLinesSource(tmp_path / "in.jsonl"), sink, horizon=3, alpha=0.2,
               model_factory=lambda: GRUForecaster(hidden_size=4, horizon=3, seed=3))
    assert r.run() == 200
    twin = GRUForecaster(hidden_size=4, horizon=3, seed=3)
    for y, rec in zip(ys, sink.records):
        before = twin.score_one(y) if twin.last_prediction is not None else None
        twin.learn_one(y)
        assert rec["anomaly"] == twin.last_anomaly
        if before is not None and twin.last_anomaly is not None:
            assert rec["anomaly"] == before
        iv = twin.forecast_interval(3, alpha=0.2)

        def json_number(v):  # before it has scores the model's interval is unbounded: null
            return v if math.isfinite(v) else None
        assert rec["low"] == [json_number(a) for a, _ in iv]
        assert rec["high"] == [json_number(b) for _, b in iv]
        assert rec["forecast"] == twin.forecast(3)
    # the spike at 150 gets the highest score a conformal p-value allows (others may tie)
    top = max(rec["anomaly"] for rec in sink.records if rec["anomaly"] is not None)
    assert sink.records[150]["anomaly"] == top > 0.95
