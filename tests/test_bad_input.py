"""Bad input raises a clear error and leaves the model exactly as it was."""
import copy
import math
import pickle

import numpy as np
import pytest
from river import datasets

import streamrnn



def _same(a, b):
    return pickle.dumps(a) == pickle.dumps(b) and pickle.dumps(a._export_state()) == pickle.dumps(b._export_state())


def _trained(cls, **kw):
    model = cls(hidden_size=8, seed=1, **kw)
    for x, y in datasets.TrumpApproval().take(50):
        if issubclass(cls, streamrnn.forecasting._RecurrentForecaster):
            model.learn_one(y, x)
        elif issubclass(cls, streamrnn.classification._RecurrentClassifier):
            model.learn_one(x, y > 40)
        else:
            model.learn_one(x, y)
    return model


BAD_X = [
    ({"gallup": float("nan")}, ValueError, "nan"),
    ({"gallup": float("inf")}, ValueError, "inf"),
    ({"gallup": None}, TypeError, "None"),
    ({"gallup": "42"}, TypeError, "str"),
    ({"gallup": [1.0]}, TypeError, "list"),
    ([1.0, 2.0], TypeError, "dict"),
]


@pytest.mark.parametrize("cls", [streamrnn.LSTMRegressor, streamrnn.GRUClassifier, streamrnn.RNNRegressor])
@pytest.mark.parametrize("x, error, words", BAD_X)
def test_bad_features_are_rejected_and_change_nothing(cls, x, error, words):
    model = _trained(cls)
    before = copy.deepcopy(model)
    y = True if "Classifier" in cls.__name__ else 40.0
    with pytest.raises(error, match=words):
        model.learn_one(x, y)
    with pytest.raises(error):
        model.predict_one(x)
    assert _same(model, before)


@pytest.mark.parametrize("cls", [streamrnn.LSTMRegressor, streamrnn.GRUForecaster])
@pytest.mark.parametrize("y, error", [(float("nan"), ValueError), (float("inf"), ValueError),
                                      (None, TypeError), ("40", TypeError), ([40.0], TypeError)])
def test_bad_targets_are_rejected_and_change_nothing(cls, y, error):
    model = _trained(cls)
    before = copy.deepcopy(model)
    x = {"gallup": 41.0, "ipsos": 40.0}
    with pytest.raises(error):
        if "Forecaster" in cls.__name__:
            model.learn_one(y, x)
        else:
            model.learn_one(x, y)
    assert _same(model, before)


@pytest.mark.parametrize("y, error", [(None, TypeError), (float("nan"), ValueError), ([1], TypeError)])
def test_bad_labels_are_rejected(y, error):
    model = _trained(streamrnn.LSTMClassifier)
    before = copy.deepcopy(model)
    with pytest.raises(error):
        model.learn_one({"gallup": 41.0}, y)
    assert _same(model, before)
    assert model.classes == [False, True]


def test_a_rejected_new_feature_does_not_grow_the_model():
    model = _trained(streamrnn.GRURegressor)
    before = copy.deepcopy(model)
    with pytest.raises(ValueError):
        model.learn_one({"gallup": 41.0, "brand_new": 1.0}, float("nan"))
    assert model.network.n_in == before.network.n_in
    assert _same(model, before)


def test_non_finite_update_is_rolled_back():
    # An absurd learning rate drives the gradient to overflow: the step is refused, the model
    # is what it was, and the next good observation is learned.
    from river import optim
    model = streamrnn.RNNRegressor(hidden_size=4, seed=0, optimizer=optim.SGD(1e300),
                                   clip_norm=None, scale_target=False)
    model.learn_one({"a": 1.0}, 1.0)
    rejected = 0
    for i in range(20):
        before = copy.deepcopy(model)
        try:
            model.learn_one({"a": float(i)}, 1e200)
        except ValueError as e:
            assert "not learned" in str(e)
            assert _same(model, before)
            rejected += 1
    assert rejected > 0
    assert np.all(np.isfinite(model.network.params))


def test_predictions_and_forecasts_change_nothing():
    reg = _trained(streamrnn.LSTMRegressor)
    fc = _trained(streamrnn.GRUForecaster, seasonality=7)
    clf = _trained(streamrnn.RNNClassifier)
    snaps = [copy.deepcopy(m) for m in (reg, fc, clf)]
    x = {"gallup": 41.0, "ipsos": 40.0, "never_seen": 3.0}
    reg.predict_one(x)
    fc.forecast(10, [x] * 10)
    clf.predict_proba_one(x)
    clf.predict_one(x)
    for m, s in zip((reg, fc, clf), snaps):
        assert _same(m, s)


def test_forecast_rejects_short_xs_and_bad_horizon():
    fc = _trained(streamrnn.LSTMForecaster)
    with pytest.raises(ValueError, match="horizon"):
        fc.forecast(3, [{}])
    with pytest.raises(ValueError):
        fc.forecast(-1)
    with pytest.raises(TypeError):
        fc.forecast(2, [{"a": "x"}, {}])


def test_unknown_optimizer_and_loss_get_a_clear_error():
    from river import optim
    with pytest.raises(ValueError, match="not supported"):
        streamrnn.LSTMRegressor(optimizer=optim.FTRLProximal())
    with pytest.raises(ValueError, match="not supported"):
        streamrnn.LSTMRegressor(loss=optim.losses.Hinge())


def test_long_noisy_sine_never_diverges():
    # Default settings, a long stream with outliers: everything stays finite.
    rng = np.random.default_rng(0)
    model = streamrnn.LSTMForecaster(seed=0)
    for t in range(50_000):
        y = math.sin(t / 10) + 0.3 * rng.standard_normal() + (50.0 if t % 997 == 0 else 0.0)
        model.learn_one(y)
    assert np.all(np.isfinite(model.network.params))
    assert all(math.isfinite(v) for v in model.forecast(20))
