"""Hostile input cannot hurt: size limits, extreme values, unbounded features, odd labels."""
import math
import warnings

import numpy as np
import pytest

import streamrnn
from streamrnn import _registry


@pytest.mark.parametrize("name", streamrnn.__all__)
@pytest.mark.parametrize("params", [{"hidden_size": 65536}, {"num_layers": 17},
                                    {"tbptt_steps": 5000}, {"update_every": 0},
                                    {"hidden_size": 2048, "num_layers": 16},
                                    {"max_features": 10 ** 6}, {"hidden_size": True},
                                    {"clip_norm": math.inf}])
def test_constructors_refuse_sizes_past_the_limits(name, params):
    with pytest.raises(ValueError):
        getattr(streamrnn, name)(**params)


def test_network_size_is_checked_against_the_worst_case_growth():
    with pytest.raises(ValueError, match="parameters"):
        streamrnn.LSTMRegressor(hidden_size=1024, max_features=100_000)
    streamrnn.LSTMRegressor(hidden_size=1024, max_features=10)  # fits
    p, _ = _registry.network_size("lstm", 3, 8, 2, 1, 1, 16)
    assert p == 4 * 8 * (3 + 8 + 1) + 4 * 8 * (8 + 8 + 1) + 8 + 1
    for cell, code in (("rnn", streamrnn._core.ELMAN_TANH), ("lstm", streamrnn._core.LSTM),
                       ("gru", streamrnn._core.GRU)):
        net = streamrnn._core.Network(code, 7, 5, 3, 2, 4, 6)
        assert _registry.network_size(cell, 7, 5, 3, 2, 4, 6)[0] == net.size


def test_rnn_forecaster_takes_an_activation():
    model = streamrnn.RNNForecaster(activation="relu", seed=1)
    for t in range(30):
        model.learn_one(math.sin(t / 3))
    assert model.network.cell == streamrnn._core.ELMAN_RELU
    assert model._get_params()["activation"] == "relu"
    with pytest.raises(ValueError, match="activation"):
        streamrnn.RNNForecaster(activation="sigmoid")


@pytest.mark.parametrize("first", [1e160, -1e200, 1e101])
def test_one_extreme_value_does_not_brick_a_series(first):
    model = streamrnn.GRUForecaster(seed=1)
    with pytest.raises(ValueError, match="too large"):
        model.learn_one(first)
    assert model._core.t == 0
    for t in range(50):  # every ordinary value after it is learned
        model.learn_one(10.0 + math.sin(t / 4))
    assert model.n_steps == 49
    with pytest.raises(ValueError, match="too large"):
        model.learn_one(1e160)  # refused later too, and the series goes on
    model.learn_one(10.0)
    assert model.n_steps == 50 and all(math.isfinite(v) for v in model.forecast(3))


def test_extreme_feature_and_target_values_are_refused_cleanly():
    model = streamrnn.LSTMRegressor(seed=1)
    for t in range(10):
        model.learn_one({"a": float(t)}, float(t))
    with pytest.raises(ValueError, match="too large"):
        model.learn_one({"a": 1e160}, 1.0)
    with pytest.raises(ValueError, match="too large"):
        model.learn_one({"a": 1.0}, 1e160)
    model.learn_one({"a": 2.0}, 2.0)
    assert model.n_steps == 11


def test_features_past_max_features_are_ignored_counted_and_warned_once():
    model = streamrnn.LSTMRegressor(hidden_size=4, max_features=5, seed=1)
    with pytest.warns(UserWarning, match="max_features"):
        model.learn_one({f"f{i:03d}": 1.0 for i in range(8)}, 1.0)
    assert model.network.n_in == 5
    assert sorted(model._index) == [f"f{i:03d}" for i in range(5)]  # sorted-name order
    assert model.n_ignored_features == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        model.learn_one({"g": 2.0, "f000": 1.0}, 1.0)
    assert model.n_ignored_features == 4 and model.network.n_in == 5


def test_a_huge_message_costs_bounded_memory():
    model = streamrnn.GRUClassifier(hidden_size=4, seed=1)
    with pytest.warns(UserWarning):
        model.learn_one({i: float(i) for i in range(100_000)}, "a")
    assert model.network.n_in == 1000
    assert model.network.__sizeof__() < 50_000_000
    assert model.n_ignored_features == 99_000


def test_bool_labels_are_never_the_numbers_1_and_0():
    model = streamrnn.LSTMClassifier(hidden_size=4, seed=1)
    for y in (1, True, 1.0, np.int64(1), 0, np.bool_(False)):
        model.learn_one({"v": 1.0}, y)
    # 1, 1.0 and np.int64(1) are one class (the first seen, 1); True/False come as a pair; 0
    assert model.classes == [1, False, True, 0]
    assert [type(c) for c in model.classes] == [int, bool, bool, int]
    assert set(model.predict_proba_one({"v": 1.0})) == {1, False, True, 0}
    assert model.network.n_out == 4


@pytest.mark.parametrize("y", [float("nan"), np.float32("nan"), (1, float("nan"))])
def test_nan_labels_are_refused_and_make_no_class(y):
    model = streamrnn.GRUClassifier(hidden_size=4, seed=1)
    model.learn_one({"v": 1.0}, "a")
    for _ in range(3):
        with pytest.raises(ValueError, match="NaN"):
            model.learn_one({"v": 1.0}, y)
    assert model.classes == ["a"]


def test_feature_dicts_are_read_never_changed():
    for x in ({"a": 1.0, "b": 2.0}, {"a": 1e308, "b": 1e308}, {"a": 1, "when": 2.0}):
        kept = dict(x)
        model = streamrnn.GRURegressor(hidden_size=4, seed=1)
        try:
            model.learn_one(x, 1.0)
        except ValueError as e:  # 1e308 is beyond the value limit
            assert "too large" in str(e) and model.network is None
        model.predict_one(x)
        assert x == kept
    with pytest.raises(ValueError, match="nan"):
        streamrnn.GRURegressor().learn_one({"a": 1.0, "b": float("nan")}, 1.0)


def test_labels_past_the_class_limit_are_refused_and_change_nothing(monkeypatch):
    import pickle
    monkeypatch.setitem(_registry.LIMITS, "classes", 3)
    model = streamrnn.LSTMClassifier(hidden_size=4, seed=1)
    for y in "abc":
        model.learn_one({"v": 1.0}, y)
    before = pickle.dumps(model)
    with pytest.raises(ValueError, match="limit"):
        model.learn_one({"v": 1.0}, "d")
    assert pickle.dumps(model) == before and model.classes == ["a", "b", "c"]
    model.learn_one({"v": 2.0}, "a")
