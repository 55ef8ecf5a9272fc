"""Recurrent forecasters: one network step per observed value, autoregressive roll-outs."""
from __future__ import annotations

import numbers

import numpy as np
from river import optim
from river.time_series.base import Forecaster

from streamrnn import _registry
from streamrnn._core._scaling import ForecastCore
from streamrnn.base import (PARAMETERS_DOC, SCALE_WINDOW, RecurrentEstimator, Scaler,
                            _old_scaler, _scale_error, check_target, numeric_features)

__all__ = ["RNNForecaster", "LSTMForecaster", "GRUForecaster"]


class _RecurrentForecaster(RecurrentEstimator, Forecaster):
    """Input at step t: the previous value, the previous residual, the season's phase (when
    ``seasonality``) and the exogenous features of step t. The network predicts the residual of
    step t over a baseline: the value one season back (``seasonality``), else the previous value
    (``differencing``), else zero; the forecast is baseline + residual.

    The per-observation arithmetic (scalers, the history ring, the lead inputs, the network
    calls) is ``streamrnn._core._scaling.ForecastCore``; this class decides and validates."""

    _task = "regression"
    _default_lr = 0.001

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, tbptt_steps: int = 16,
                 update_every: int = 1, optimizer: optim.base.Optimizer | None = None,
                 loss: optim.losses.RegressionLoss | None = None,
                 clip_gradient: float | None = None, clip_norm: float | None = 1.0,
                 seasonality: int = 0, differencing: bool = True, damping: float = 0.9,
                 scale_inputs: bool = True, scale_target: bool = True, max_features: int = 1000,
                 seed: int | None = None):
        self.seasonality = seasonality
        self.differencing = differencing
        self.damping = damping
        self.scale_target = scale_target
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, tbptt_steps=tbptt_steps,
                         update_every=update_every, optimizer=optimizer, loss=loss,
                         clip_gradient=clip_gradient, clip_norm=clip_norm,
                         scale_inputs=scale_inputs, max_features=max_features, seed=seed)

    @property
    def _n_lead(self):
        return 4 if self.seasonality else 2

    def _setup(self):
        s = self.seasonality
        if not (isinstance(s, numbers.Integral) and not isinstance(s, bool)
                and 0 <= s <= _registry.LIMITS["seasonality"]):
            raise ValueError(f"seasonality must be an int in [0, "
                             f"{_registry.LIMITS['seasonality']}], got {s!r}")
        d = self.damping
        if not (isinstance(d, numbers.Real) and not isinstance(d, bool) and 0.0 < d <= 1.0):
            raise ValueError(f"damping must be a number in (0, 1], got {d!r}")
        super()._setup()
        scale = bool(self.scale_target)
        self._core = ForecastCore(Scaler(scale, 3.0, SCALE_WINDOW),  # level (an input)
                                  Scaler(scale, 3.0, SCALE_WINDOW),  # residual (the target)
                                  int(s), bool(self.differencing), float(d))
        self.last_prediction = None  # one-step prediction made by the last learn_one
        self._network_changed()

    def _network_changed(self):
        net = self._net
        if net is not None:
            self._core.set_network(net, self._u, self._out)
        # the fast paths: a network and no feature columns
        self._fast_forecast = self._fast_learn = net is not None and not self._names

    # ------------------------------------------------------------------ river API
    def learn_one(self, y, x=None):
        if type(y) is not float or y - y != 0.0:
            y = check_target(y)
        if x:
            x = numeric_features(x, ignore_dates=True)  # dates (river's datasets) dropped
        if not x and self._fast_learn:
            core = self._core
            status = core.learn(y)
            if status < 0:
                raise self._refused(status, y, self._net)
            if status == 1 and self._sched is not None:
                self._next_rate(self._net, status)
            self.last_prediction = core.pred
            return
        self._learn(y, x or {})

    def _learn(self, y, feats):
        core = self._core
        if core.t == 0:  # the first value: nothing to predict it from
            status = core.first(y)
            if status < 0:
                raise _scale_error("y", y, status)
            self.last_prediction = None
            return
        cols, values, new, ignored = self._plan(feats)
        g = self._grown(new, 1)
        net, columns, u = (self._net, self._cols, self._u) if g is None else (g.net, g.cols, g.u)
        bad = columns.fill(u, cols, values, True)
        if bad >= 0:
            raise self._feature_error(cols[bad], values[bad], g)
        status = core.learn_with(net, u, y)
        if status < 0:
            raise self._refused(status, y, net)
        self._next_rate(net, status)
        columns.accept()
        if g is not None:
            self._commit_growth(g)
        self._count_ignored(ignored)
        self.last_prediction = core.pred

    def _refused(self, status, y, net):
        if status < -2:
            return _scale_error("y", y, status)
        return self._refusal(net, status)

    def forecast(self, horizon, xs=None):
        if xs is None and self._fast_forecast and type(horizon) is int and horizon == 1:
            return [self._core.forecast1()]
        if isinstance(horizon, numbers.Integral) and not isinstance(horizon, bool):
            horizon = int(horizon)
        if not (isinstance(horizon, int) and not isinstance(horizon, bool) and horizon >= 0):
            raise ValueError(f"horizon must be an int >= 0, got {horizon!r}")
        if xs is not None:
            xs = list(xs)
            if len(xs) < horizon:
                raise ValueError(f"xs holds {len(xs)} feature dicts for a horizon of {horizon}")
            feats = [numeric_features(x, ignore_dates=True, what=f"xs[{i}]") if x else {}
                     for i, x in enumerate(xs[:horizon])]
        else:
            feats = [{}] * horizon
        core = self._core
        if core.t == 0:
            return [0.0] * horizon
        if self._net is None:
            return [float(core.history[-1])] * horizon
        if horizon == 1:  # into the input buffer, whose forward pass learn_one may reuse
            cols, values = self._known(feats[0])
            self._cols.fill(self._u, cols, values, False)
            return [core.forecast1()]
        U = np.zeros((horizon, self._net.n_in))
        for k in range(horizon):
            cols, values = self._known(feats[k])
            self._cols.fill(U[k], cols, values, False)
        return core.forecast(U)

    # ------------------------------------------------------------------ state
    _task_keys = ("_core", "last_prediction")

    def _export_task(self):
        p = self.last_prediction
        return {"_core": self._core.get_state(), "last_prediction": None if p is None else float(p)}

    def _decode_task(self, tree):
        scale = bool(self.scale_target)
        core = ForecastCore(Scaler(scale, 3.0, SCALE_WINDOW), Scaler(scale, 3.0, SCALE_WINDOW),
                            int(self.seasonality), bool(self.differencing), float(self.damping))
        core.set_state(tree["_core"])
        p = tree["last_prediction"]
        if p is not None and type(p) is not float:
            raise TypeError("last_prediction must be None or a float")
        if p is not None and core.t <= 1:
            raise ValueError("last_prediction must be None until the second value")
        return {"n_out": 1, "_core": core, "last_prediction": p}

    def _upgrade_task(self, tree):
        scale = bool(self.scale_target)
        hist = tree.get("_hist")
        if type(hist) is dict and "__deque__" in hist:
            hist = hist["__deque__"]
        core = {"ys": _old_scaler(tree.get("_ys"), scale, 3.0, SCALE_WINDOW),
                "rs": _old_scaler(tree.get("_rs"), scale, 3.0, SCALE_WINDOW),
                "history": hist, "last_r": tree.get("_last_r"), "t": tree.get("_t")}
        return {"_core": core, "last_prediction": None}

    def _check_task(self, task, net):
        t = task["_core"].t
        if (net is None) != (t <= 1):
            raise ValueError(f"a forecaster that saw {t} values "
                             + ("needs a network" if net is None else "has no network yet"))
        if net is not None and net.t != t - 1:
            raise ValueError(f"the network learned {net.t} steps, the forecaster saw {t} values")


_DOC = """{summary}

The network takes one step per observed value, carrying its hidden state, and learns by
truncated back-propagation through time: every `update_every` values the gradient of the last
`update_every` one-step losses flows back through the last `tbptt_steps` steps.

At step t the input is the previous value, the previous residual, the phase of the season
(sine and cosine, when `seasonality` is set) and the exogenous numeric features of step t
(dates and times in `x` are ignored, as river's datasets send them). The network predicts the
residual of the value over a baseline: the value one season back when `seasonality` is set,
else the previous value when `differencing`, else zero. Values and residuals are standardised
online; a value more than 3 standard deviations out is clipped before it updates the scale,
so an outage does not inflate it for the rest of the stream, and past the first 200 values
each new value weighs 1/200 (a half-life of about 138 values), so the scale follows a level
shift. A value beyond +-1e100 is refused with a ValueError and the series goes on. `forecast(horizon, xs)` rolls forward from the committed state on a copy, feeding its
own forecasts back and using `xs` for the exogenous features; it never changes the model.

Parameters
----------
{params}seasonality
    Season length (0: none). The network then sees the phase of the season and predicts the
    change over the same point one season back.
differencing
    Without seasonality, predict the change over the previous value.
damping
    In a roll-out, the predicted change over a baseline that is itself a forecast is multiplied
    by `damping ** j` at the j-th such step, as a damped trend does (1: no damping).
scale_inputs
    Standardise the exogenous features online.
scale_target
    Standardise values and residuals online.
{extra}seed
    Seed of the weight initialisation.

Examples
--------

>>> import statistics
>>> from river import datasets, evaluate, metrics
>>> from streamrnn import {name}

>>> model = {name}(seasonality=12, seed=42)
>>> metric = evaluate.evaluate(datasets.AirlinePassengers(), model, metrics.MAE(),
...                            horizon=12, agg_func=statistics.mean)
>>> round(metric.get(), 2)
{result}

"""

_PARAMS = PARAMETERS_DOC.format(
    lr=_RecurrentForecaster._default_lr,
    loss="`optim.losses.Squared` (default), `Absolute` or `Huber`.")


_ACTIVATION_DOC = """activation
    `'tanh'` or `'relu'`.
"""


class RNNForecaster(_RecurrentForecaster):
    __doc__ = _DOC.format(params=_PARAMS, summary="Elman recurrent network forecaster.", name="RNNForecaster",
                          result="29.04", extra=_ACTIVATION_DOC)
    _cell = "rnn"

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, tbptt_steps: int = 16,
                 update_every: int = 1, optimizer: optim.base.Optimizer | None = None,
                 loss: optim.losses.RegressionLoss | None = None,
                 clip_gradient: float | None = None, clip_norm: float | None = 1.0,
                 seasonality: int = 0, differencing: bool = True, damping: float = 0.9,
                 scale_inputs: bool = True, scale_target: bool = True, max_features: int = 1000,
                 activation: str = "tanh", seed: int | None = None):
        self.activation = activation
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, tbptt_steps=tbptt_steps,
                         update_every=update_every, optimizer=optimizer, loss=loss,
                         clip_gradient=clip_gradient, clip_norm=clip_norm,
                         seasonality=seasonality, differencing=differencing, damping=damping,
                         scale_inputs=scale_inputs, scale_target=scale_target,
                         max_features=max_features, seed=seed)


class LSTMForecaster(_RecurrentForecaster):
    __doc__ = _DOC.format(params=_PARAMS, summary="LSTM forecaster.", name="LSTMForecaster",
                          result="30.21", extra="")
    _cell = "lstm"


class GRUForecaster(_RecurrentForecaster):
    __doc__ = _DOC.format(params=_PARAMS, summary="GRU forecaster.", name="GRUForecaster",
                          result="29.81", extra="")
    _cell = "gru"
