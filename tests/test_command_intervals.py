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
                      ("٣", "write auto")):
        with pytest.raises(argparse.ArgumentTypeError, match=says):
            _seasonality(bad)


def test_alpha_option_parsing():
    import argparse
    from streamrnn.cli import _alpha
    assert _alpha("0.1") == 0.1 and _alpha("0.05") == 0.05
    for bad in ("0", "1", "-0.1", "nan", "inf", "ten"):
        with pytest.raises(argparse.ArgumentTypeError, match="between 0 and 1"):
            _alpha(bad)
