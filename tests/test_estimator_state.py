"""The one state API: pickle, deepcopy and checkpoints go through _export_state/_import_state;
inference never changes the state; a crafted state is refused before anything is assigned."""
import copy
import pickle
import subprocess
import sys

import numpy as np
import pytest
from _support import child_env
from river import datasets, optim

import streamrnn

ALL = [getattr(streamrnn, n) for n in streamrnn.__all__]


def _kind(cls):
    return ("forecaster" if "Forecaster" in cls.__name__ else
            "classifier" if "Classifier" in cls.__name__ else "regressor")


def _learn(model, x, y):
    k = _kind(type(model))
    if k == "forecaster":
        model.learn_one(y, x)
    elif k == "classifier":
        model.learn_one(x, y > 40.5)
    else:
        model.learn_one(x, y)


def _trained(cls, n=60, **kw):
    model = cls(hidden_size=6, seed=3, **kw)
    for x, y in datasets.TrumpApproval().take(n):
        _learn(model, x, y)
    return model


def _infer(model):
    x = {"gallup": 41.0, "ipsos": 40.0, "unseen": 1.0}
    k = _kind(type(model))
    if k == "forecaster":
        model.forecast(1)
        model.forecast(1, [x])
        model.forecast(5, [x] * 5)
    elif k == "classifier":
        model.predict_proba_one(x)
        model.predict_one(x)
    else:
        model.predict_one(x)


def _tree_equal(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            _tree_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_tree_equal, a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("cls", ALL)
def test_inference_leaves_pickle_bytes_and_state_unchanged(cls):
    model = _trained(cls)
    _infer(model)  # once, so that any scratch a prediction allocates exists before comparing
    before, state = pickle.dumps(model), model._export_state()
    _infer(model)
    assert pickle.dumps(model) == before
    assert _tree_equal(model._export_state(), state)
    # and the very first prediction after learning changes nothing either
    _learn(model, {"gallup": 40.0, "ipsos": 41.0}, 41.0)
    before, state = pickle.dumps(model), model._export_state()
    _infer(model)
    assert pickle.dumps(model) == before
    assert _tree_equal(model._export_state(), state)


@pytest.mark.parametrize("cls", ALL)
def test_pickle_and_deepcopy_go_through_the_state_api(cls):
    model = _trained(cls)
    seen = []
    original = cls._import_state

    def spy(self, tree):
        seen.append(tree)
        return original(self, tree)

    cls._import_state = spy
    try:
        twin = pickle.loads(pickle.dumps(model))
        other = copy.deepcopy(model)
    finally:
        cls._import_state = original
    assert len(seen) == 2
    for t in (twin, other):
        assert _tree_equal(t._export_state(), model._export_state())
        assert "_u" not in t.__getstate__()["state"] and "_out" not in t.__getstate__()["state"]


def _bad_states(model):
    """(description, mutate) pairs; each mutation makes the tree invalid for ``model``."""
    k = _kind(type(model))

    def setter(path, value):
        def f(tree):
            node = tree
            for p in path[:-1]:
                node = node[p]
            node[path[-1]] = value
        return f

    cases = [
        ("extra key", lambda t: t.__setitem__("junk", 1)),
        ("missing key", lambda t: t.pop("_cols")),
        ("rng kind", setter(("_rng", "bit_generator"), "MT19937")),
        ("rng even inc", setter(("_rng", "state", "inc"), 2)),
        ("ignored negative", setter(("n_ignored_features",), -1)),
        ("ignored float", setter(("n_ignored_features",), 1.0)),
        ("duplicate names", lambda t: t["_cols"]["names"].extend(t["_cols"]["names"][:1])),
        ("col count", setter(("_cols", "n"), np.array([-1.0] * len(model._names)))),
        ("col nan", setter(("_cols", "mean"), np.array([np.nan] * len(model._names)))),
        ("col length", setter(("_cols", "m2"), np.zeros(len(model._names) + 1))),
        ("hidden size", setter(("_net", "config", "hidden_size"), 65536)),
        ("k1", setter(("_net", "config", "k1"), 7)),
        ("n_in", setter(("_net", "config", "n_in"), 99)),
        ("optimizer kind", setter(("_net", "state", "optimizer", "kind"), 0)),
        ("optimizer lr", setter(("_net", "state", "optimizer", "lr"), 0.5)),
        ("optimizer beta", setter(("_net", "state", "optimizer", "beta_1"), 0.5)),
        ("optimizer eps", setter(("_net", "state", "optimizer", "eps"), 1.0)),
        ("optimizer clip", setter(("_net", "state", "optimizer", "clip_norm"), 0.0)),
        ("optimizer t", setter(("_net", "state", "optimizer", "t"), 10 ** 6)),
        ("network t", setter(("_net", "state", "t"), 3)),
        ("params nan", lambda t: t["_net"]["state"]["params"].__setitem__(0, np.nan)),
        ("params short", setter(("_net", "state", "params"), np.zeros(3))),
    ]
    if k == "forecaster":
        cases += [
            ("t negative", setter(("_core", "t"), -1)),
            ("t huge", setter(("_core", "t"), 2 ** 70)),
            ("n_learned", setter(("_core", "n_learned"), 3)),
            ("prev nan", setter(("_core", "prev"), float("nan"))),
            ("prev str", setter(("_core", "prev"), "1")),
            ("prev huge", setter(("_core", "prev"), 1e300)),
            ("anomaly out of range", setter(("_core", "anomaly"), 1.5)),
            ("anomaly missing", setter(("_core", "anomaly"), None)),
            ("pred nan", setter(("_core", "pred"), float("nan"))),
            ("pend shape", setter(("_core", "pend"), np.zeros((4, 4)))),
            ("pend nan", lambda t: t["_core"]["pend"].__setitem__(0, np.nan)),
            ("pscale negative", lambda t: t["_core"]["pscale"].__setitem__(0, -1.0)),
            ("pend list", setter(("_core", "pend"), [[0.0]])),
            ("extra key", lambda t: t["_core"].__setitem__("extra", 1)),
            ("backbone t", lambda t: t["_core"]["backbone"].__setitem__(
                "t", t["_core"]["backbone"]["t"] + 1)),
            ("backbone junk", setter(("_core", "backbone"), {"t": 3})),
            ("combiner junk", setter(("_core", "combiner"), {})),
            ("combiner horizon", lambda t: t["_core"]["combiner"].__setitem__("horizon", 7)),
            ("conformal window", lambda t: t["_core"]["conformal"].__setitem__("window", 3)),
            ("conformal junk", setter(("_core", "conformal"), None)),
            ("eligibility lost", lambda t: t["_core"]["combiner"].__setitem__(
                "eligible", (False, True, True, True))),
            ("pend huge", lambda t: t["_core"]["pend"].__setitem__(0, 1e200)),
            ("no network", setter(("_net",), None)),
        ]
    elif k == "classifier":
        cases += [
            ("duplicate class", lambda t: t["_classes"].append(t["_classes"][0])),
            ("nan class", lambda t: t["_classes"].__setitem__(0, float("nan"))),
            ("class count", lambda t: t["_classes"].append("extra")),
            ("class type", lambda t: t["_classes"].__setitem__(0, [1])),
        ]
    else:
        cases += [("target n", setter(("_ys", "n"), 2)),
                  ("target mean", setter(("_ys", "mean"), float("inf")))]
    return cases


@pytest.mark.parametrize("cls", ALL)
def test_a_crafted_state_is_refused_and_changes_nothing(cls):
    model = _trained(cls, seasonality=4) if _kind(cls) == "forecaster" else _trained(cls)
    before = pickle.dumps(model)
    for what, mutate in _bad_states(model):
        tree = copy.deepcopy(model._export_state())
        mutate(tree)
        target = model.clone()
        for m in (model, target):
            with pytest.raises((ValueError, TypeError)):
                m._import_state(tree)
        assert pickle.dumps(model) == before, what
        assert target.network is None, what
    # the untouched tree is accepted, by a fresh model too
    fresh = model.clone()
    fresh._import_state(model._export_state())
    assert pickle.dumps(fresh) == before


def test_the_optimizer_must_be_the_models_own():
    model = _trained(streamrnn.GRURegressor)
    other = streamrnn.GRURegressor(hidden_size=6, seed=3, optimizer=optim.Adam(0.01))
    with pytest.raises(ValueError, match="lr"):
        other._import_state(model._export_state())
    other = streamrnn.GRURegressor(hidden_size=6, seed=3, clip_gradient=1.0)
    with pytest.raises(ValueError, match="clip_value"):
        other._import_state(model._export_state())
    assert other.network is None


def test_crafted_states_never_crash_the_process():
    # anything that reaches compiled code runs in a child: a crash would kill it, not us
    code = r"""
import copy, numpy as np, streamrnn
from river import datasets
m = streamrnn.LSTMForecaster(hidden_size=4, seasonality=3, horizon=4, seed=1)
for x, y in datasets.AirlinePassengers().take(40):
    m.learn_one(y)
good = m._export_state()
bad = []
for key in ("params", "h", "c", "ring_x", "ring_r", "ring_g", "out"):
    for v in (np.zeros(0), np.zeros((2, 2, 2)), np.full(3, np.nan), np.zeros(10**6),
              np.zeros(5, dtype=np.int64), "x", None):
        t = copy.deepcopy(good); t["_net"]["state"][key] = v; bad.append(t)
for key, v in (("m", np.zeros(1)), ("v", np.zeros(10**5)), ("t", -5), ("t", 2**80)):
    t = copy.deepcopy(good); t["_net"]["state"]["optimizer"][key] = v; bad.append(t)
for v in (10**9, -1, 2**31 + 5):
    t = copy.deepcopy(good); t["_net"]["config"]["n_in"] = v; bad.append(t)
for key, v in (("pend", np.zeros((10**4, 10**4 // 8))), ("pend", np.full(4, 1e308)),
               ("t", 2**62 - 1), ("prev", 1e308), ("backbone", {"t": -1}),
               ("combiner", {"loss": np.zeros(10**6)}), ("conformal", [1.0])):
    t = copy.deepcopy(good); t["_core"][key] = v; bad.append(t)
refused = 0
for t in bad:
    fresh = m.clone()
    try:
        fresh._import_state(t)
    except (ValueError, TypeError):
        refused += 1
        assert fresh.network is None
print("refused", refused, "of", len(bad))
assert refused == len(bad)
m.learn_one(400.0)
print("ok", m.forecast(2))
"""
    proc = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_numpy_integer_parameters_round_trip():
    model = streamrnn.LSTMForecaster(hidden_size=np.int64(4), update_every=np.int32(2), seed=1)
    for t in range(20):
        model.learn_one(float(t % 5))
    twin = pickle.loads(pickle.dumps(model))
    assert twin.forecast(3) == model.forecast(3)


@pytest.mark.parametrize("cls", ALL)
def test_memory_accounting_counts_the_compiled_state(cls):
    model = _trained(cls)
    assert model._raw_memory_usage > model.network.__sizeof__()
    assert model._cols.__sizeof__() >= 7 * 8 * len(model._names)


@pytest.mark.parametrize("cls", [streamrnn.GRURegressor, streamrnn.LSTMClassifier,
                                 streamrnn.RNNForecaster])
def test_growth_is_built_aside_and_a_refusal_leaves_the_old_network_untouched(cls):
    model = _trained(cls)
    net, before = model.network, pickle.dumps(model)
    opt = net.optimizer.get_state()
    with pytest.raises(ValueError, match="too large"):
        _learn(model, {"gallup": 41.0, "brand_new": 1e160}, 41.0)
    assert model.network is net and net.n_in == len(model._names) + model._n_lead
    assert _tree_equal(net.optimizer.get_state(), opt)
    assert pickle.dumps(model) == before
    _learn(model, {"gallup": 41.0, "brand_new": 1.0}, 41.0)  # accepted: grown and swapped in
    assert model.network is not net and "brand_new" in model._index


@pytest.mark.parametrize("cls", [streamrnn.RNNForecaster, streamrnn.LSTMForecaster,
                                 streamrnn.GRUForecaster])
def test_last_prediction_is_none_on_the_first_value_and_survives_pickle(cls):
    model = cls(hidden_size=4, seed=1)
    model.learn_one(3.0, {"a": 1.0})
    assert model.last_prediction is None
    assert pickle.loads(pickle.dumps(model)).last_prediction is None
    f = model.forecast(1, [{"a": 2.0}])[0]
    model.learn_one(4.0, {"a": 2.0})
    assert model.last_prediction == f
    with pytest.raises(ValueError):
        model.learn_one(float("nan"))
    assert model.last_prediction == f  # a refused value leaves it as it was
    assert pickle.loads(pickle.dumps(model)).last_prediction == f


@pytest.mark.parametrize("cls", [streamrnn.RNNRegressor, streamrnn.RNNForecaster])
def test_a_refused_step_under_a_schedule_changes_nothing(cls):
    sched = optim.schedulers.InverseScaling(1e300, power=0.1)
    extra = {} if _kind(cls) == "forecaster" else {"scale_target": False}
    model = cls(hidden_size=4, seed=0, optimizer=optim.SGD(sched), clip_norm=None, **extra)
    refused = 0
    for i in range(30):
        before = pickle.dumps(model)
        try:
            _learn(model, {"a": float(i)} if _kind(cls) != "forecaster" else None,
                   1e90 * (-1) ** i)
        except ValueError:
            refused += 1
            assert pickle.dumps(model) == before
    assert refused > 0
    opt = model.network.optimizer
    assert opt.lr == pytest.approx(sched.get(opt.t))  # the rate of the next update
