"""Each estimator, with default settings, learns tasks that need memory."""
import numpy as np
import pytest
from river import metrics

import streamrnn


@pytest.mark.parametrize("cls", [streamrnn.RNNClassifier, streamrnn.LSTMClassifier,
                                 streamrnn.GRUClassifier])
def test_classifier_remembers_the_bit_four_steps_back(cls):
    # A model without memory scores 50%; the label is the bit seen 4 steps earlier.
    bits = np.random.default_rng(0).integers(0, 2, 30_000)
    model = cls(seed=1)
    hits = []
    for i in range(4, len(bits)):
        x, y = {"bit": int(bits[i])}, bool(bits[i - 4])
        hits.append(model.predict_one(x) == y)
        model.learn_one(x, y)
    assert np.mean(hits[-1000:]) >= 0.95


@pytest.mark.parametrize("cls", [streamrnn.RNNRegressor, streamrnn.LSTMRegressor,
                                 streamrnn.GRURegressor])
def test_regressor_learns_the_sum_of_the_last_five_inputs(cls):
    # Knowing only the current input gives an MAE of 0.92.
    u = np.random.default_rng(0).uniform(-1, 1, 30_005)
    model = cls(seed=1)
    online = metrics.MAE()
    for i in range(4, len(u)):
        x, y = {"u": float(u[i])}, float(u[i - 4:i + 1].sum())
        online.update(y, model.predict_one(x))
        model.learn_one(x, y)
    assert online.get() < 0.25


@pytest.mark.parametrize("cls", [streamrnn.RNNForecaster, streamrnn.LSTMForecaster,
                                 streamrnn.GRUForecaster])
def test_forecaster_follows_a_noisy_sine(cls):
    rng = np.random.default_rng(3)
    y = np.sin(np.arange(3000) * 2 * np.pi / 25) + 0.05 * rng.standard_normal(3000)
    model = cls(seasonality=25, seed=1)
    err_model, err_naive = metrics.MAE(), metrics.MAE()
    for t in range(len(y) - 5):
        if t > 2000:
            f = model.forecast(5)
            err_model.update(y[t + 4], f[4])
            err_naive.update(y[t + 4], y[t - 1])
        model.learn_one(float(y[t]))
    assert err_model.get() < 0.5 * err_naive.get()
