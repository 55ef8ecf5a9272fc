"""What a river user relies on beyond river's own checks."""
import collections
import datetime as dt
import statistics

import numpy as np
import pytest
from river import compose, datasets, evaluate, metrics, optim, preprocessing

import streamrnn


def test_forecaster_inside_river_evaluate_and_iter_evaluate():
    model = streamrnn.GRUForecaster(seasonality=12, seed=1)
    steps = list(evaluate.iter_evaluate(datasets.AirlinePassengers(), model, metrics.MAE(),
                                        horizon=12))
    assert len(steps) == 144 - 2 * 12
    assert all(len(y_pred) == 12 for _, _, y_pred, _ in steps)
    assert model.n_steps == 144 - 12 - 1  # every value learned (the first has no input)


def test_forecast_accepts_a_deque_with_dates_and_does_not_keep_it():
    model = streamrnn.LSTMForecaster(seed=1)
    for t in range(30):
        model.learn_one(int(t % 7), {"when": dt.datetime(2024, 1, 1) + dt.timedelta(hours=t),
                                     "temp": float(t)})
    xs = collections.deque([{"when": dt.datetime(2024, 2, 1), "temp": 31.0}] * 3, maxlen=3)
    f1 = model.forecast(3, xs)
    xs.clear()
    assert model.forecast(3, [{"temp": 31.0}] * 3) == f1


def test_regressor_in_a_river_pipeline():
    model = compose.Select("gallup", "ipsos", "rasmussen") | streamrnn.LSTMRegressor(seed=1)
    metric = evaluate.progressive_val_score(datasets.TrumpApproval(), model, metrics.MAE())
    assert metric.get() < 1.31  # StandardScaler | LinearRegression scores 1.31


def test_classifier_grows_its_head_for_new_labels_and_keeps_probabilities_proper():
    model = streamrnn.GRUClassifier(seed=1)
    rng = np.random.default_rng(0)
    for t in range(300):
        label = ["a", "b"][t % 2] if t < 150 else ["a", "b", "c"][t % 3]
        model.learn_one({"v": float(rng.normal())}, label)
        if t == 149:
            assert model.classes == ["a", "b"] and model.network.n_out == 2
    assert model.classes == ["a", "b", "c"] and model.network.n_out == 3
    proba = model.predict_proba_one({"v": 0.1})
    assert set(proba) == {"a", "b", "c"}
    assert all(type(p) is float for p in proba.values())
    assert abs(sum(proba.values()) - 1.0) < 1e-12


def test_binary_stream_always_returns_both_labels():
    model = streamrnn.LSTMClassifier(seed=1)
    model.learn_one({"v": 1.0}, True)  # only True seen so far
    assert set(model.predict_proba_one({"v": 1.0})) == {False, True}
    model = streamrnn.LSTMClassifier(seed=1)
    model.learn_one({"v": 1.0}, np.bool_(False))
    assert set(model.predict_proba_one({"v": 1.0})) == {False, True}


def test_new_features_grow_the_input_weights_deterministically():
    def run(order):
        model = streamrnn.RNNRegressor(seed=5)
        for t in range(40):
            x = {"a": float(t)}
            if t >= 20:
                extra = {"z": 1.0, "b": -1.0, "m": 0.5}
                x.update({k: extra[k] for k in order})
            model.learn_one(x, float(t % 3))
        return model
    m1, m2 = run(["z", "b", "m"]), run(["m", "z", "b"])
    assert m1.network.n_in == 4
    assert np.array_equal(m1.network.params, m2.network.params)
    assert m1._index == {"a": 0, "b": 1, "m": 2, "z": 3}
    # missing features are filled with their running mean: no error, a finite prediction
    assert np.isfinite(m1.predict_one({"a": 3.0}))


def test_clone_is_fresh_and_untrained():
    model = streamrnn.GRURegressor(seed=2, hidden_size=8)
    for x, y in datasets.TrumpApproval().take(50):
        model.learn_one(x, y)
    fresh = model.clone()
    assert fresh.network is None and fresh.n_steps == 0
    assert fresh._get_params() == model._get_params()


def test_memory_accounting_sees_the_compiled_buffers():
    sizes = []
    for hidden in (8, 32, 64):
        model = streamrnn.LSTMForecaster(hidden_size=hidden, seed=1)
        for t in range(30):
            model.learn_one(float(t))
        params = model.network.params.nbytes
        assert model.network.__sizeof__() > 2 * params
        assert model._raw_memory_usage > model.network.__sizeof__()
        sizes.append(model._raw_memory_usage)
    assert sizes[0] < sizes[1] < sizes[2]


def test_river_optimizers_and_schedulers_drive_the_kernel():
    sched = optim.schedulers.InverseScaling(0.05, power=0.5)
    model = streamrnn.LSTMRegressor(optimizer=optim.SGD(sched), seed=1, update_every=2)
    for t in range(21):
        model.learn_one({"a": float(t)}, float(t))
    opt = model.network.optimizer
    assert opt.t == 10  # one optimizer step every 2 observations
    assert opt.lr == pytest.approx(sched.get(10))  # the rate of the next step, river's t = 10
    # the user's optimizer object is a parameter and is never mutated
    assert model.optimizer.n_iterations == 0
    for river_opt, name in [(optim.Momentum(0.01, rho=0.8), "Momentum"),
                            (optim.NesterovMomentum(0.01), "NesterovMomentum"),
                            (optim.RMSProp(0.01, rho=0.95), "RMSProp"),
                            (optim.AdaGrad(0.01), "AdaGrad"), (optim.Adam(0.01, beta_1=0.8), "Adam")]:
        m = streamrnn.GRURegressor(optimizer=river_opt, seed=1)
        m.learn_one({"a": 1.0}, 1.0)
        assert m.network.optimizer.name == name


@pytest.mark.parametrize("scale", [False, True])
def test_scaling_feeds_the_network_the_expected_values(scale):
    # the input the network learned from and the prediction mapped back, computed by hand
    model = streamrnn.LSTMRegressor(scale_inputs=scale, scale_target=scale, seed=1,
                                    tbptt_steps=4)
    xs = [7e5 + 3.0 * t + (t % 4) for t in range(20)]
    ys = [3.0 + 0.5 * t for t in range(20)]
    for x, y in zip(xs, ys):
        model.learn_one({"a": x}, y)
    net = model.network
    seen = net.get_state()["ring_x"][(net.t - 1) % 4][0]  # the input of the last step
    prior = xs[:-1]  # the last value is scaled with the statistics before it
    z = (xs[-1] - statistics.mean(prior)) / statistics.pstdev(prior)
    assert seen == pytest.approx(max(-10.0, min(10.0, z)) if scale else xs[-1], rel=1e-12)
    x_new = 7e5 + 100.0
    u = max(-10.0, min(10.0, (x_new - statistics.mean(xs)) / statistics.pstdev(xs)))
    out = np.zeros(1)
    net.predict(np.array([u if scale else x_new]), out)
    want = statistics.mean(ys) + out[0] * statistics.pstdev(ys) if scale else out[0]
    # the prediction combines the network's with the running mean of y (regression.py)
    w = model.combination_weights
    want = w["network"] * want + w["mean"] * statistics.mean(ys)
    assert model.predict_one({"a": x_new}) == pytest.approx(want, rel=1e-9)


def test_scaling_handles_large_raw_values():
    # airline-sized targets and 7e5-sized features are standardised online by default
    model = streamrnn.GRURegressor(seed=1)
    metric = metrics.MAE()
    for t in range(2000):
        x = {"big": 7e5 + 1e4 * np.sin(t / 5)}
        y = 300.0 + 100.0 * np.sin(t / 5)
        metric.update(y, model.predict_one(x))
        model.learn_one(x, y)
    assert metric.get() < 20.0


@pytest.mark.parametrize("cls", [streamrnn.RNNForecaster, streamrnn.LSTMForecaster,
                                 streamrnn.GRUForecaster])
def test_learn_one_prediction_is_the_forecast_made_just_before(cls):
    model = cls(seasonality=5, seed=1)
    rng = np.random.default_rng(0)
    for t in range(200):
        x = {"temp": float(rng.normal()), "load": float(t % 7)}
        y = float(np.sin(t / 3) + rng.normal() * 0.1)
        before = model.forecast(1, [x])[0] if t > 0 else None
        model.learn_one(y, x)
        assert model.last_prediction == before  # bit for bit, from the same forward pass
