"""The online scalers: one Welford update in compiled code, winsorised, and forgetting."""
import math
import statistics

import numpy as np
import pytest

import streamrnn
from streamrnn.base import Scaler


def test_scaler_is_welford_with_population_variance_until_the_window():
    rng = np.random.default_rng(0)
    xs = list(rng.normal(5.0, 2.0, 50))
    s = Scaler(True, 0.0, 0.0)
    for x in xs:
        assert s.propose(x) == 0
        s.accept()
    assert s.n == 50
    assert s.mean == pytest.approx(statistics.mean(xs), rel=1e-13)
    assert s.std == pytest.approx(statistics.pstdev(xs), rel=1e-12)
    assert s.transform(9.0) == pytest.approx((9.0 - s.mean) / s.std, rel=1e-15)
    assert s.transform(1e9) == 10.0 and s.inverse(s.transform(6.0)) == pytest.approx(6.0)


def test_propose_changes_nothing_until_accept():
    s = Scaler(True, 3.0, 0.0)
    for x in (1.0, 2.0, 4.0):
        s.propose(x)
        s.accept()
    before = s.get_state()
    assert s.propose(100.0) == 0
    assert s.get_state() == before
    assert s.transform_pending(100.0) != s.transform(100.0)


def test_exponential_window_weights_new_values_by_one_over_the_window():
    w = 20.0
    s = Scaler(True, 0.0, w)
    xs = [float(i % 7) for i in range(200)]
    for x in xs:
        s.propose(x)
        s.accept()
    # the same recursion by hand: Welford up to w values, then mean += d/w, m2 decays by 1 - 1/w
    n, mean, m2 = 0, 0.0, 0.0
    for x in xs:
        n += 1
        d = x - mean
        if n > w:
            mean += d / w
            m2 = m2 * (1 - 1 / w) + d * (x - mean)
        else:
            mean += d / n
            m2 += d * (x - mean)
    assert s.mean == mean and s.m2 == m2 and s.std == math.sqrt(m2 / w)


def test_the_forecasters_scales_follow_a_level_shift():
    # zeros, then a jump to a new level with unit noise: the jump must not set the network's
    # normaliser (the backbone's typical one-step change) or its level input for good
    rng = np.random.default_rng(0)
    model = streamrnn.GRUForecaster(hidden_size=4, seasonality=0, horizon=2, seed=1)
    for _ in range(1000):
        model.learn_one(0.0)
    noise = rng.standard_normal(4000)
    for e in noise:
        model.learn_one(1000.0 + float(e))
    true = float(np.mean(np.abs(np.diff(noise))))  # the typical one-step change
    assert model._core.scale < 1.5 * true
    assert model._core.lmean == pytest.approx(1000.0, abs=1.0)
    assert math.sqrt(model._core.lvar) < 1.5 * float(np.std(noise))


def test_the_target_scale_of_a_regressor_follows_a_level_shift():
    rng = np.random.default_rng(1)
    model = streamrnn.LSTMRegressor(hidden_size=4, seed=1)
    for _ in range(1000):
        model.learn_one({"a": 1.0}, 0.0)
    for e in rng.standard_normal(4000):
        model.learn_one({"a": 1.0}, 1e4 + float(e))
    assert model._ys.std < 1.5 and model._ys.mean == pytest.approx(1e4, abs=1.0)
