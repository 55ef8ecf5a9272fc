"""The forecaster's composition of backbone, network, combination and conformal state
(``streamrnn._core._forecast.ForecastCore``), held bit for bit to a readable Python twin that
drives the same parts through their Python APIs in the documented order; and what a user sees:
forecasts, intervals, anomaly scores, state round trips, bad input, coverage."""
import copy
import math
import pickle

import numpy as np
import pytest
from river import datasets

import streamrnn
from streamrnn import _core
from streamrnn import checkpoint as ck
from streamrnn import spec as sp
from streamrnn._core._backbone import Backbone
from streamrnn._core._combine import Combiner, Conformal
from streamrnn.forecasting import CLIP, MAX_LAG

CLASSES = [streamrnn.RNNForecaster, streamrnn.LSTMForecaster, streamrnn.GRUForecaster]


def _clip(v, c):
    return c if v > c else (-c if v < -c else v)


class Twin:
    """The per-observation step of ForecastCore written out in Python (see _forecast.pyx)."""

    def __init__(self, model):
        H, W = model._H, model._window
        self.H, self.W, self.warm, self.model = H, W, model._warm, model
        self.bb = Backbone(H, model._periods, model._auto, MAX_LAG)
        self.comb = Combiner(4, H)
        self.comb.set_eligible(0, False)
        self.conf = Conformal(H)
        self.t, self.n, self.prev, self.lmean, self.lvar = 0, 0, 0.0, 0.0, 0.0
        self.pend = np.zeros(H)  # base and scale of step tau at tau % H
        self.pscale = np.zeros(H)
        self.rt = np.sqrt(np.arange(1.0, H + 1.0))
        self.net = None
        self.anomaly = self.pred = None
        self._refresh()

    def _refresh(self):
        self.bbf = self.bb.forecast(self.H)
        sc = self.bb.scale
        self.sc = sc if 1e-300 < sc < 1e300 else 1.0
        self.last = self.bb.last() if self.t > 0 else 0.0
        w = [(_clip(v, 10.0) if math.isfinite(v) else 0.0) for v in self.bb.window(self.W)]
        change = _clip((self.last - self.prev) / self.sc, 10.0) if self.t >= 2 else 0.0
        level = (_clip((self.last - self.lmean) / math.sqrt(self.lvar), 10.0)
                 if self.lvar > 0.0 else 0.0)
        self.lead = np.array(w + [change, level])

    def _level(self, y):
        r = max(1.0 / (self.t + 1), 1.0 / 200.0)
        d = y - self.lmean
        self.lmean = self.lmean + r * d
        self.lvar = min((1.0 - r) * (self.lvar + r * d * d), 1e300)

    def experts(self, o, j):
        net = self.last if o is None else self.last + self.sc * self.rt[j] * _clip(o[j], CLIP)
        return np.array([net, self.bbf[j], self.last, self.bb.snaive(j + 1)])

    def outputs(self):
        if self.net is None:
            return None
        out = np.zeros(self.H)
        self.net.predict(self.lead, out)
        return out

    def forecast(self, h):
        if self.t == 0:
            return [0.0] * h
        o = self.outputs()
        return [self.comb.combine(j + 1, self.experts(o, j)) for j in range(min(h, self.H))]

    def learn(self, y):
        H, t = self.H, self.t
        if t == 0:
            self._level(y)
            self.bb.update(y)
            self.t = 1
            self._refresh()
            return
        if self.net is None:
            m = self.model
            self.net = _core.Network(**m._network_config(self.W + 2, H))
            _core.initialize(self.net, np.random.default_rng(m.seed))
            self.net.set_optimizer(m._new_optimizer())
        tg = np.full(H, np.nan)
        tg[0] = _clip((y - self.last) / self.sc, CLIP)
        for j in range(1, H):
            if t - j >= 1:
                r = (t - j) % H
                tg[j] = _clip((y - self.pend[r]) / (self.pscale[r] * self.rt[j]), CLIP)
        assert self.net.learn_multi(self.lead, tg) >= 0
        o = self.net.last_output
        F = np.array([self.experts(o, j) for j in range(H)])
        self.comb.issue(F)
        c = np.array([self.comb.combine(j + 1, F[j]) for j in range(H)])
        self.conf.issue(c)
        self.pred = float(c[0])
        self.anomaly = 1.0 - self.conf.pvalue(abs(y - c[0])) if t >= 2 else None
        self.comb.observe(y)
        self.conf.observe(y)
        self.pend[t % H] = self.last
        self.pscale[t % H] = self.sc
        self.prev = self.last
        self._level(y)
        self.bb.update(y)
        self.t, self.n = t + 1, self.n + 1
        if self.n == self.warm:
            self.comb.set_eligible(0, True)
        self._refresh()


def _series(n, period=12, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return list(50 + 0.05 * t + 10 * np.sin(2 * np.pi * t / period) + rng.normal(0, 1, n))


@pytest.mark.parametrize("kw", [dict(seasonality=12), dict(seasonality=0, horizon=3),
                                dict(seasonality="auto", horizon=6),
                                dict(seasonality=(3, 12), horizon=4)])
def test_the_core_is_its_python_twin_bit_for_bit(kw):
    model = streamrnn.GRUForecaster(hidden_size=5, seed=7, **kw)
    twin = Twin(model)
    ys = _series(260)
    for t, y in enumerate(ys):
        f = model.forecast(model._H + 2)
        assert f[:model._H] == twin.forecast(model._H), t
        model.learn_one(y)
        twin.learn(y)
        assert model.last_prediction == twin.pred and model.last_anomaly == twin.anomaly, t
    assert np.array_equal(model.network.params, twin.net.params)
    core = model._core
    assert np.array_equal(core.lead_input, twin.lead)
    assert core.combiner.eligible == twin.comb.eligible == (True,) * 4
    for j in (1, model._H):
        assert core.conformal.halfwidth(j, 0.1) == twin.conf.halfwidth(j, 0.1)
    assert model.periods == twin.bb.periods


def _trained(cls=streamrnn.LSTMForecaster, n=150, features=False, **kw):
    kw.setdefault("seasonality", 12)
    model = cls(hidden_size=4, seed=3, **kw)
    for i, y in enumerate(_series(n)):
        model.learn_one(y, {"a": float(i % 5), "b": y * 0.01} if features else None)
    return model


def _outputs(model, features=False):
    xs = [{"a": 1.0, "b": 0.5}] * 30 if features else None
    return (model.forecast(30, xs), model.forecast_interval(30, 0.1, xs),
            model.forecast_interval(5, 0.05, xs), model.score_one(60.0), model.score_one(1e4),
            model.last_anomaly, model.last_prediction)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("features", [False, True])
def test_pickle_state_and_checkpoint_continue_bit_identically(cls, features, tmp_path):
    model = _trained(cls, features=features, seasonality="auto", horizon=6)
    spec = sp.spec_from_model(model)
    ck.save(tmp_path / "m.srnn", {"k": model}, spec)
    restored = model.clone()
    restored._import_state(model._export_state())
    twins = [pickle.loads(pickle.dumps(model)), copy.deepcopy(model), restored,
             ck.load(tmp_path / "m.srnn", spec).models["k"]]
    for i, y in enumerate(_series(120, seed=5)):
        x = {"a": float(i % 3), "b": 0.2} if features else None
        want = _outputs(model, features)
        for t in twins:
            assert _outputs(t, features) == want
        for m in [model] + twins:
            m.learn_one(y, x)
    before = pickle.dumps(model._export_state()["_core"])
    assert all(pickle.dumps(t._export_state()["_core"]) == before for t in twins)
    assert all(np.array_equal(t.network.params, model.network.params) for t in twins)


@pytest.mark.parametrize("cls", CLASSES)
def test_inference_changes_nothing(cls):
    model = _trained(cls, features=True)
    _outputs(model, True)
    before, state = pickle.dumps(model), model._export_state()
    for _ in range(3):
        _outputs(model, True)
        _outputs(model, False)
        model.forecast(1)
        model.forecast(0)
    assert pickle.dumps(model) == before
    assert pickle.dumps(model._export_state()) == pickle.dumps(state)


HOSTILE = [float("nan"), float("inf"), -float("inf"), 1e300, -1e101, "1.0", None, [1.0],
           {"y": 1.0}, complex(1, 1), True if False else object()]
HOSTILE_X = [{"a": float("nan")}, {"a": float("inf")}, {"a": 1e300}, {"a": "x"}, {"a": None},
             {"a": [1]}, [("a", 1.0)], "a=1", {"a": object()}, {"c": 1e200}]


@pytest.mark.parametrize("cls", CLASSES)
def test_bad_input_leaves_every_part_untouched(cls):
    model = _trained(cls, features=True)
    before = pickle.dumps(model)
    for y in HOSTILE:
        with pytest.raises((ValueError, TypeError)):
            model.learn_one(y)
        if isinstance(y, float) and math.isfinite(y):  # too large to learn, fine to score
            assert 0.9 < model.score_one(y) < 1.0
        else:
            with pytest.raises((ValueError, TypeError)):
                model.score_one(y)
        assert pickle.dumps(model) == before, y
    for x in HOSTILE_X:
        with pytest.raises((ValueError, TypeError)):
            model.learn_one(50.0, x)
        assert pickle.dumps(model) == before, x
    for h in (-1, 1.5, "3", None, True):
        with pytest.raises((ValueError, TypeError)):
            model.forecast(h)
        with pytest.raises((ValueError, TypeError)):
            model.forecast_interval(h)
    for a in (0.0, 1.0, -0.1, 2, float("nan"), "0.1", None, True):
        with pytest.raises((ValueError, TypeError)):
            model.forecast_interval(3, a)
    with pytest.raises(ValueError):
        model.forecast(3, [{"a": 1.0}])  # too few feature dicts
    with pytest.raises(ValueError):
        model.forecast(2, [{"a": 1.0}, {"a": float("nan")}])
    assert pickle.dumps(model) == before
    model.learn_one(50.0, {"a": 1.0})  # and it goes on
    assert model.last_prediction is not None


def test_intervals_cover_about_90_percent_on_a_long_seasonal_stream():
    model = streamrnn.GRUForecaster(hidden_size=8, seasonality=24, horizon=6, seed=1)
    ys = _series(3000, period=24, seed=11)
    pending = []  # (target index, low, high) per step
    hits = {1: [], 6: []}
    for t, y in enumerate(ys):
        iv = model.forecast_interval(6)
        if t > 500:
            for j in (1, 6):
                if t + j - 1 < len(ys):
                    lo, hi = iv[j - 1]
                    hits[j].append(lo <= ys[t + j - 1] <= hi)
        model.learn_one(y)
    for j, h in hits.items():
        assert 0.86 <= np.mean(h) <= 0.94, (j, np.mean(h))
    assert all(math.isfinite(v) for iv in model.forecast_interval(30) for v in iv)


def test_anomaly_scores():
    model = _trained(streamrnn.GRUForecaster, n=300)
    normal = model.forecast(1)[0]
    assert model.score_one(normal) < 0.5
    assert model.score_one(normal + 1e4) > 0.95
    s = model.score_one(normal + 3.0)
    model.learn_one(normal + 3.0)
    assert model.last_anomaly == s  # the score the value got before it was learned
    fresh = streamrnn.GRUForecaster(hidden_size=4)
    assert fresh.last_anomaly is None and fresh.score_one(1.0) == 0.0
    fresh.learn_one(1.0)
    fresh.learn_one(2.0)
    assert fresh.last_anomaly is None  # no scores to compare the second value with


def test_forecasts_beyond_the_horizon_and_before_data():
    model = streamrnn.LSTMForecaster(hidden_size=4, seasonality=12, seed=1)
    assert model.forecast(3) == [0.0] * 3 and model.forecast(0) == []
    assert all(lo == -math.inf and hi == math.inf for lo, hi in model.forecast_interval(2))
    model.learn_one(5.0)
    assert model.forecast(2) == pytest.approx([5.0, 5.0], rel=1e-12)
    model = _trained()
    f = model.forecast(40)
    assert len(f) == 40 and all(math.isfinite(v) for v in f)
    assert f[:12] == model.forecast(12)


def test_auto_detects_the_period_and_the_network_joins_later():
    model = streamrnn.GRUForecaster(hidden_size=4, horizon=4, seed=1)
    ys = _series(400, period=12, seed=2)
    for i, y in enumerate(ys):
        model.learn_one(y)
        if i + 1 < model._warm + 1:
            assert model._core.combiner.eligible[0] is False
    assert model.periods == (12,)
    assert model._core.combiner.eligible[0] is True


@pytest.mark.parametrize("bad", ["daily", -1, 1.5, (1,), (12, 12), (2, 3, 4, 5, 6), [0, 3],
                                 True, ("12",), {12}])
def test_bad_seasonality_is_refused(bad):
    with pytest.raises(ValueError, match="seasonality"):
        streamrnn.GRUForecaster(seasonality=bad)


@pytest.mark.parametrize("bad", [0, -2, 1.0, "12", True, 10 ** 6])
def test_bad_horizon_is_refused(bad):
    with pytest.raises(ValueError, match="horizon"):
        streamrnn.GRUForecaster(horizon=bad)


def test_horizon_defaults():
    assert streamrnn.GRUForecaster(seasonality=12)._H == 12
    assert streamrnn.GRUForecaster(seasonality=(24, 168))._H == 24
    assert streamrnn.GRUForecaster()._H == streamrnn.forecasting.DEFAULT_HORIZON
    assert streamrnn.GRUForecaster(seasonality=7, horizon=3)._H == 3


def test_a_0_1_forecaster_pickle_is_refused_with_what_to_do():
    state = pickle.loads(pickle.dumps(streamrnn.GRUForecaster(hidden_size=3))).__getstate__()
    state["params"] = dict(state["params"], differencing=True, damping=0.9)
    model = streamrnn.GRUForecaster.__new__(streamrnn.GRUForecaster)
    with pytest.raises(ValueError, match="streamrnn 0.1.*train a new one"):
        model.__setstate__(state)


def test_river_airline_runs_through_evaluate():
    import statistics

    from river import evaluate, metrics
    model = streamrnn.GRUForecaster(hidden_size=4, seasonality=12, seed=1)
    m = evaluate.evaluate(datasets.AirlinePassengers(), model, metrics.MAE(), horizon=12,
                          agg_func=statistics.mean)
    assert m.get() < 48.9  # the last value's MAE on it


def test_the_core_refuses_misuse_without_crashing():
    # the compiled core's own Python API, misused, in a child: an error, never a crash
    import subprocess
    import sys

    from _support import child_env
    code = r"""
import numpy as np
from streamrnn import _core
from streamrnn._core._forecast import ForecastCore, _rebuild_core
c = ForecastCore(4, (3,), False, 200, 5)
net = _core.Network(cell=_core.GRU, n_in=7, hidden_size=3, num_layers=1, n_out=4)
net.set_optimizer(_core.Optimizer(kind=_core.ADAM, lr=0.01))
wrong = _core.Network(cell=_core.GRU, n_in=7, hidden_size=3, num_layers=1, n_out=3)
refused = 0
calls = [lambda: c.learn(1.0), lambda: c.learn_with(net, np.zeros(7), 1.0),
         lambda: ForecastCore(0, (), False, 200, 5), lambda: ForecastCore(4, (), False, 200, 0),
         lambda: c.set_network(wrong, np.zeros(7), np.zeros(3)),
         lambda: c.set_network(net, np.zeros(2), np.zeros(4)),
         lambda: c.set_network(net, np.zeros(7, dtype=np.float32), np.zeros(4)),
         lambda: c.set_network(net, [0.0] * 7, np.zeros(4)),
         lambda: c.set_state(None), lambda: c.set_state({"t": 1}),
         lambda: _rebuild_core((4, (3,), False, 200, 5, 3.0), {"t": -1}),
         lambda: _rebuild_core((4, (1,), False, -5, 5, 3.0), {})]
for f in calls:
    try:
        f()
    except (ValueError, TypeError, RuntimeError):
        refused += 1
assert c.first(1e101) == -3 and c.t == 0
assert c.first(2.0) == 0
try:
    c.learn_with(net, np.zeros(3), 1.0)
except ValueError:
    refused += 1
assert c.learn_with(net, np.zeros(7), 1e300) == -3 and c.t == 1
c.set_network(net, np.zeros(7), np.zeros(4))
assert c.learn(3.0) >= 0 and c.t == 2
print("refused", refused, "ok", c.forecast(6))
assert refused == len(calls) + 1
"""
    proc = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout
