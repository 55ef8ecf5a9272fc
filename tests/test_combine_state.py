"""The state API of Combiner and Conformal: get_state/set_state/from_state round trips, every
field checked before anything is assigned, and hostile states (random mutations of real ones)
refused or harmless, in a child process so that a crash would fail the test instead of the run."""
import json
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from _support import child_env
from streamrnn._core._combine import Combiner, Conformal


def _run_combiner(c, n, seed=0):
    rng = np.random.default_rng(seed)
    for t in range(n):
        c.issue(rng.normal(size=(c.horizon, c.n_experts)))
        c.observe(rng.normal())
    c.issue(rng.normal(size=(c.horizon, c.n_experts)))
    return c


def _run_conformal(c, n, seed=0):
    rng = np.random.default_rng(seed)
    for t in range(n):
        c.issue(rng.normal(size=c.horizon))
        c.observe(rng.normal())
    c.issue(rng.normal(size=c.horizon))
    return c


def _equal_states(a, b):
    assert set(a) == set(b)
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k
        else:
            assert a[k] == b[k] and type(a[k]) is type(b[k]), k


def test_round_trips():
    c = _run_combiner(Combiner(3, 4), 30)
    s = c.get_state()
    _equal_states(Combiner.from_state(s).get_state(), s)
    d = Combiner(3, 4)
    d.set_state(s)
    _equal_states(d.get_state(), s)
    # a checkpoint hands back lists for tuples
    d.set_state(dict(s, eligible=list(s["eligible"])))
    k = _run_conformal(Conformal(3), 80)
    s = k.get_state()
    _equal_states(Conformal.from_state(s).get_state(), s)
    m = Conformal(3)
    m.set_state(dict(s, alphas=list(s["alphas"])))
    _equal_states(m.get_state(), s)


def test_set_state_needs_the_same_configuration():
    s = _run_combiner(Combiner(3, 4), 10).get_state()
    with pytest.raises(ValueError, match="Combiner"):
        Combiner(3, 4, eta=6.0).set_state(s)
    s = _run_conformal(Conformal(3), 10).get_state()
    with pytest.raises(ValueError, match="Conformal"):
        Conformal(3, window=40).set_state(s)


def _combiner_bad():
    """(name, state mutation) pairs, each of which must be refused."""
    def f(**kw):
        return kw
    H, E = 4, 3
    return [
        ("missing key", lambda s: s.pop("t")),
        ("extra key", lambda s: s.update(x=1)),
        ("t float", lambda s: s.update(t=30.0)),
        ("t negative", lambda s: s.update(t=-1)),
        ("t bool", lambda s: s.update(t=True)),
        ("t huge", lambda s: s.update(t=2 ** 62)),
        ("loss dtype", lambda s: s.update(loss=s["loss"].astype(np.float32))),
        ("loss shape", lambda s: s.update(loss=s["loss"][:, :2])),
        ("loss list", lambda s: s.update(loss=s["loss"].tolist())),
        ("loss nan", lambda s: s["loss"].__setitem__((0, 0), np.nan)),
        ("loss inf", lambda s: s["loss"].__setitem__((0, 0), np.inf)),
        ("loss negative", lambda s: s["loss"].__setitem__((0, 0), -1.0)),
        ("loss huge", lambda s: s["loss"].__setitem__((0, 0), 1e305)),
        ("loss without count", lambda s: s["n_loss"].__setitem__((1, 1), 0)),
        ("n_loss dtype", lambda s: s.update(n_loss=s["n_loss"].astype(np.float64))),
        ("n_loss negative", lambda s: s["n_loss"].__setitem__((0, 0), -3)),
        ("n_loss > n_scored", lambda s: s["n_loss"].__setitem__((0, 0), s["n_scored"][0] + 1)),
        ("n_scored > t", lambda s: s["n_scored"].__setitem__(0, s["t"] + 1)),
        ("pending inf", lambda s: s["pending"].__setitem__((0, 0, 0), np.inf)),
        ("pending shape", lambda s: s.update(pending=s["pending"][:, :, :2])),
        ("pending future", lambda s: (s["pending"].__setitem__(((s["t"] + 2) % H, 0, 0), 1.0),
                                      s["issued"].__setitem__(((s["t"] + 2) % H, 0, 0), 1))),
        ("pending not issued", lambda s: s["pending"].__setitem__(((s["t"] + 2) % H, 0, 0), 1.0)),
        ("pending nan", lambda s: s["pending"].__setitem__((s["t"] % H, 0, 0), np.nan)),
        ("issued 2", lambda s: s["issued"].__setitem__((s["t"] % H, 0, 0), 2)),
        ("issued float", lambda s: s.update(issued=s["issued"].astype(np.float64))),
        ("eligible none", lambda s: s.update(eligible=(False,) * E)),
        ("eligible ints", lambda s: s.update(eligible=(1, 1, 1))),
        ("eligible length", lambda s: s.update(eligible=(True, True))),
        ("eligible array", lambda s: s.update(eligible=np.ones(3, dtype=bool))),
        ("decay", lambda s: s.update(decay=1.5)),
        ("eta nan", lambda s: s.update(eta=float("nan"))),
        ("horizon", lambda s: s.update(horizon=0)),
        ("n_experts", lambda s: s.update(n_experts=65)),
        ("not a dict", None),
    ]


@pytest.mark.parametrize("name,mutate", _combiner_bad(), ids=[n for n, _ in _combiner_bad()])
def test_combiner_refuses_bad_states(name, mutate):
    c = _run_combiner(Combiner(3, 4), 30)
    target = Combiner(3, 4)
    _run_combiner(target, 7, seed=5)
    before = target.get_state()
    s = c.get_state()
    if mutate is None:
        s = list(s.items())
    else:
        mutate(s)
    with pytest.raises((ValueError, TypeError)):
        target.set_state(s)
    with pytest.raises((ValueError, TypeError)):
        Combiner.from_state(s)
    _equal_states(target.get_state(), before)


def _newest_p_changed(s):
    # the newest p-value score (also in step 1's window) changed, both copies consistent
    P = s["pwindow"]
    k = (s["ppos"] - 1) % P
    v = s["pscores"][k]
    s["pscores"][k] = v + 1.0
    s["psorted"][:s["pcount"]] = np.sort(s["pscores"][:s["pcount"]])


def _conformal_bad():
    H = 3
    def first_full(s):
        return int(np.argmax(s["count"] == s["window"]))
    return [
        ("missing key", lambda s: s.pop("sorted")),
        ("alphas unsorted", lambda s: s.update(alphas=(0.2, 0.1, 0.05))),
        ("alphas out of range", lambda s: s.update(alphas=(0.05, 0.1, 1.2))),
        ("window small", lambda s: s.update(window=2)),
        ("gamma", lambda s: s.update(gamma=-0.1)),
        ("t", lambda s: s.update(t=-5)),
        ("scores negative", lambda s: s["scores"].__setitem__((0, 0), -1.0)),
        ("scores nan", lambda s: s["scores"].__setitem__((0, 0), np.nan)),
        ("sorted unsorted", lambda s: s["sorted"].__setitem__(0, s["sorted"][0][::-1].copy())),
        ("sorted differs", lambda s: s["sorted"].__setitem__((0, 3), s["sorted"][0, 3] + 1e-9)),
        ("raw differs", lambda s: s["scores"].__setitem__((1, 4), s["scores"][1, 4] * 2 + 1)),
        ("count > window", lambda s: s["count"].__setitem__(0, s["window"] + 1)),
        ("count > t", lambda s: (s.update(t=3), s["count"].__setitem__(0, 4))),
        ("count wrong", lambda s: s["count"].__setitem__(0, s["count"][0] - 1)),
        ("pos out of range", lambda s: s["pos"].__setitem__(0, s["window"])),
        ("pos negative", lambda s: s["pos"].__setitem__(0, -1)),
        ("pos dtype", lambda s: s.update(pos=s["pos"].astype(np.int32))),
        ("alpha_t inf", lambda s: s["alpha_t"].__setitem__((0, 0), np.inf)),
        ("alpha_t huge", lambda s: s["alpha_t"].__setitem__((0, 0), 1e301)),
        ("alpha_t shape", lambda s: s.update(alpha_t=s["alpha_t"][:2])),
        ("centres inf", lambda s: s["centres"].__setitem__((0, 0), -np.inf)),
        ("centres future", lambda s: (s["centres"].__setitem__(((s["t"] + 2) % H, 0), 1.0),
                                      s["issued"].__setitem__(((s["t"] + 2) % H, 0), 1))),
        ("centre not issued", lambda s: s["centres"].__setitem__(((s["t"] + 2) % H, 0), 1.0)),
        ("centres nan", lambda s: s["centres"].__setitem__((s["t"] % H, 0), np.nan)),
        ("issued 2", lambda s: s["issued"].__setitem__((s["t"] % H, 0), 2)),
        ("bounded without centre", lambda s: s["bounded"].__setitem__(
            ((s["t"] + 2) % H, 0, 0), 1)),
        ("halfwidth not bounded", lambda s: s["bounded"].__setitem__((s["t"] % H, 0, 1), 0)),
        ("halfwidth negative", lambda s: s["halfwidths"].__setitem__((s["t"] % H, 0, 1), -1.0)),
        ("halfwidth inf", lambda s: s["halfwidths"].__setitem__((s["t"] % H, 0, 1), np.inf)),
        ("hits > n", lambda s: s["hits"].__setitem__((0, 0), s["n_scored"][0, 0] + 1)),
        ("n > t", lambda s: s["n_scored"].__setitem__((0, 0), s["t"] + 1)),
        ("hits float", lambda s: s.update(hits=s["hits"].astype(np.float64))),
        ("pwindow below window", lambda s: s.update(pwindow=5)),
        ("pwindow other", lambda s: s.update(pwindow=30)),
        ("pscores negative", lambda s: s["pscores"].__setitem__(0, -1.0)),
        ("pscores shape", lambda s: s.update(pscores=s["pscores"][:5])),
        ("psorted unsorted", lambda s: s.update(psorted=s["psorted"][::-1].copy())),
        ("pcount > pwindow", lambda s: s.update(pcount=s["pwindow"] + 1)),
        ("pcount wrong", lambda s: s.update(pcount=s["pcount"] - 1)),
        ("pcount float", lambda s: s.update(pcount=float(s["pcount"]))),
        ("ppos out of range", lambda s: s.update(ppos=s["pwindow"])),
        ("ppos shifted", lambda s: s.update(ppos=(s["ppos"] + 1) % s["pwindow"])),
        ("p-value window not step 1's", _newest_p_changed),
    ]


@pytest.mark.parametrize("name,mutate", _conformal_bad(), ids=[n for n, _ in _conformal_bad()])
def test_conformal_refuses_bad_states(name, mutate):
    c = _run_conformal(Conformal(3, window=10, pwindow=20), 45)
    target = _run_conformal(Conformal(3, window=10, pwindow=20), 9, seed=3)
    before = target.get_state()
    s = c.get_state()
    mutate(s)
    with pytest.raises((ValueError, TypeError)):
        target.set_state(s)
    with pytest.raises((ValueError, TypeError)):
        Conformal.from_state(s)
    _equal_states(target.get_state(), before)


def test_states_are_finite():
    for obj in (_run_combiner(Combiner(3, 4), 2), _run_conformal(Conformal(4, window=30), 3),
                Combiner(2, 1), Conformal(2)):
        for k, v in obj.get_state().items():
            if isinstance(v, np.ndarray):
                assert v.dtype in (np.float64, np.int64) and np.all(np.isfinite(v)), k


def test_a_partly_filled_window_round_trips():
    k = _run_conformal(Conformal(4, window=30), 12)
    s = k.get_state()
    assert list(s["count"]) == [12, 11, 10, 9] and list(s["pos"]) == [12, 11, 10, 9]
    _equal_states(Conformal.from_state(s).get_state(), s)


CHILD = textwrap.dedent(r"""
    import json, sys
    import numpy as np
    from streamrnn._core._combine import Combiner, Conformal

    rng = np.random.default_rng(int(sys.argv[1]))
    VALUES = [0, 1, -1, 2 ** 62 - 1, 2 ** 62, -2 ** 63, 3.5, -0.0, 1e300, -1e300, 1e-320,
              float("nan"), float("inf"), -float("inf"), True, None, "x", (), [1], {}]

    def mutate(s):
        k = list(s)[rng.integers(len(s))]
        v = s[k]
        r = rng.random()
        if isinstance(v, np.ndarray) and v.size and r < 0.6:
            v = v.copy()
            idx = tuple(rng.integers(n) for n in v.shape)
            if v.dtype == np.int64:
                v[idx] = rng.choice([0, 1, -1, 2, 7, 50, 2 ** 62 - 1, -2 ** 63, 2 ** 40,
                                     int(v[idx]) + 1, int(v[idx]) - 1])
            else:
                v[idx] = rng.choice([0.0, -0.0, 1.0, -1.0, 1e300, -1e300, 1e308, np.nan,
                                     np.inf, -np.inf, 1e-320, float(v[idx]) * 2,
                                     float(v[idx]) + 1e-9])
        elif isinstance(v, np.ndarray) and r < 0.8:
            options = [v.astype(np.float32), v.ravel(), v[:1], v.T.copy(), v.tolist(),
                       np.zeros((0,)), v.astype(np.int64) if v.dtype != np.int64
                       else v.astype(np.float64)]
            v = options[rng.integers(len(options))]
        else:
            v = VALUES[rng.integers(len(VALUES))]
        s[k] = v
        return s

    def use_combiner(c):
        for t in range(20):
            c.issue(rng.normal(size=(c.horizon, c.n_experts)) * 10.0 ** rng.integers(-5, 300))
            c.observe(float(rng.normal() * 10.0 ** rng.integers(-5, 300)))
            for j in (1, c.horizon, c.horizon + 5):
                w = c.weights(j)
                assert np.all(np.isfinite(w)) and abs(w.sum() - 1.0) < 1e-9, w
        assert np.all(np.isfinite(c.get_state()["loss"]))
        Combiner.from_state(c.get_state())

    def use_conformal(c):
        for t in range(20):
            c.issue(rng.normal(size=c.horizon) * 10.0 ** rng.integers(-5, 300))
            p = c.pvalue_y(float(rng.normal()))
            assert 0.0 < p <= 1.0
            c.observe(float(rng.normal() * 10.0 ** rng.integers(-5, 300)))
            for j in (1, c.horizon, c.horizon + 5):
                for a in (0.01, 0.05, 0.1, 0.3, 0.9):
                    h = c.halfwidth(j, a)
                    assert h >= 0.0, h
        Conformal.from_state(c.get_state())

    def base_combiner():
        c = Combiner(int(rng.integers(1, 5)), int(rng.integers(1, 6)))
        for t in range(int(rng.integers(0, 40))):
            c.issue(rng.normal(size=(c.horizon, c.n_experts)))
            c.observe(float(rng.normal()))
        return c

    def base_conformal():
        w = int(rng.integers(5, 12))
        c = Conformal(int(rng.integers(1, 6)), window=w, pwindow=int(rng.integers(w, 16)))
        for t in range(int(rng.integers(0, 40))):
            c.issue(rng.normal(size=c.horizon))
            c.observe(float(rng.normal()))
        return c

    counts = {"refused": 0, "accepted": 0}
    for i in range(int(sys.argv[2])):
        kind = i % 2
        c = base_combiner() if kind == 0 else base_conformal()
        s = c.get_state()
        for _ in range(int(rng.integers(1, 4))):
            s = mutate(s)
        cls = Combiner if kind == 0 else Conformal
        try:
            d = cls.from_state(s)
        except (ValueError, TypeError):
            counts["refused"] += 1
            try:
                c.set_state(s)
            except (ValueError, TypeError):
                pass
            else:
                raise AssertionError("set_state took what from_state refused")
            continue
        counts["accepted"] += 1
        (use_combiner if kind == 0 else use_conformal)(d)
    print(json.dumps(counts))
""")


@pytest.mark.parametrize("seed", [1, 2])
def test_hostile_states_never_crash(seed):
    r = subprocess.run([sys.executable, "-c", CHILD, str(seed), "1500"], capture_output=True,
                       text=True, timeout=600, env=child_env(OPENBLAS_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    counts = json.loads(r.stdout.strip().splitlines()[-1])
    assert counts["refused"] > 500 and counts["accepted"] > 50, counts


def test_conformal_state_with_a_half_width_beyond_the_largest_score_round_trips():
    # a level pushed far below 0 widens the interval past 1.5e300 (the continued quantile);
    # such a state is legitimate and must load and continue bit-identically
    c = Conformal(1, alphas=(0.1,), window=5, gamma=0.5)
    for _ in range(5):
        c.issue(np.zeros(1))
        c.observe(1e300)
    s = c.get_state()
    s["alpha_t"] = np.full_like(s["alpha_t"], -10.0)
    c.set_state(s)
    c.issue(np.zeros(1))
    hw = c.halfwidth(1, 0.1)
    assert hw == 1e300 * (1.0 + 1.25 * (1.0 / 6.0 + 10.0)) and hw > 1.5e300
    d = Conformal.from_state(c.get_state())
    assert pickle.dumps(d) == pickle.dumps(c)
    for m in (c, d):
        m.observe(0.0)
    assert pickle.dumps(d) == pickle.dumps(c)


def test_an_old_p_value_score_outside_step_1s_window_is_free():
    # the p-value window's scores older than step 1's window are its own: any value in range
    c = _run_conformal(Conformal(3, window=10, pwindow=20), 45)
    s = c.get_state()
    k = s["ppos"]  # the oldest of a full ring
    s["pscores"][k] = 123.0
    s["psorted"][:] = np.sort(s["pscores"])
    d = Conformal.from_state(s)
    assert d.pvalue(100.0) == 2 / 21


def test_the_p_value_window_is_longer_than_the_intervals():
    rng = np.random.default_rng(3)
    c = Conformal(1)
    assert (c.window, c.pwindow) == (20, 100)
    for _ in range(300):
        c.issue(np.zeros(1))
        c.observe(rng.normal())
    assert len(c.scores(1)) == 20
    assert c.pvalue(1e9) == 1 / 101      # the resolution of 100 scores, not 25
    with pytest.raises(ValueError, match="pwindow"):
        Conformal(1, window=30, pwindow=20)
