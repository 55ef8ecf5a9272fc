"""Recurrent forecasters: one network step per observed value, autoregressive roll-outs."""
from __future__ import annotations

import math
import numbers
from collections import deque

from river import optim
from river.time_series.base import Forecaster

from streamrnn.base import (PARAMETERS_DOC, RecurrentEstimator, Standardizer, check_target,
                            numeric_features)

__all__ = ["RNNForecaster", "LSTMForecaster", "GRUForecaster"]


def _inverse(scaler_state, z):
    """``Standardizer.inverse`` for a saved ``Standardizer.__getstate__()``."""
    enabled, _, n, mean, m2 = scaler_state
    if not enabled:
        return z
    return mean + z * math.sqrt(m2 / n) if n > 1 and m2 > 0.0 else mean


class _RecurrentForecaster(RecurrentEstimator, Forecaster):
    """Input at step t: the previous value, the previous residual, the season's phase (when
    ``seasonality``) and the exogenous features of step t. The network predicts the residual of
    step t over a baseline: the value one season back (``seasonality``), else the previous value
    (``differencing``), else zero; the forecast is baseline + residual."""

    _task = "regression"
    _default_lr = 0.001

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, tbptt_steps: int = 16,
                 update_every: int = 1, optimizer: optim.base.Optimizer | None = None,
                 loss: optim.losses.RegressionLoss | None = None,
                 clip_gradient: float | None = None, clip_norm: float | None = 1.0,
                 seasonality: int = 0, differencing: bool = True, damping: float = 0.9,
                 scale_inputs: bool = True, scale_target: bool = True, seed: int | None = None):
        self.seasonality = seasonality
        self.differencing = differencing
        self.damping = damping
        self.scale_target = scale_target
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, tbptt_steps=tbptt_steps,
                         update_every=update_every, optimizer=optimizer, loss=loss,
                         clip_gradient=clip_gradient, clip_norm=clip_norm,
                         scale_inputs=scale_inputs, seed=seed)

    _state_attrs = RecurrentEstimator._state_attrs + ("_ys", "_rs", "_hist", "_last_r", "_t")

    def _check_state(self, values):
        super()._check_state(values)
        hist = values["_hist"]
        if not isinstance(hist, deque) or hist.maxlen != max(1, self.seasonality):
            raise ValueError("the state's history does not fit this model's seasonality")

    @property
    def _n_lead(self):
        return 4 if self.seasonality else 2

    def _setup(self):
        s = self.seasonality
        if not (isinstance(s, int) and not isinstance(s, bool) and s >= 0):
            raise ValueError(f"seasonality must be an int >= 0, got {s!r}")
        if not (isinstance(self.damping, (int, float)) and 0.0 < self.damping <= 1.0):
            raise ValueError(f"damping must be a number in (0, 1], got {self.damping!r}")
        super()._setup()
        scale = bool(self.scale_target)
        self._ys = Standardizer(scale, winsorize=3.0)  # level of the series (an input)
        self._rs = Standardizer(scale, winsorize=3.0)  # residual over the baseline (the target)
        self._hist = deque(maxlen=max(1, s))  # the last max(1, s) values, oldest first
        self._last_r = 0.0                     # last residual, scaled
        self._t = 0                            # values seen
        self.last_prediction = None            # one-step prediction made by the last learn_one

    # ------------------------------------------------------------------ helpers
    def _baseline(self, hist):
        s = self.seasonality
        if s and len(hist) == s:
            return hist[0]
        if self.differencing or s:
            return hist[-1]
        return 0.0

    def _fill_lead(self, u, last, last_r, t):
        u[0] = self._ys.transform(last)
        u[1] = last_r
        if self.seasonality:
            a = 2.0 * math.pi * (t % self.seasonality) / self.seasonality
            u[2] = math.sin(a)
            u[3] = math.cos(a)

    # ------------------------------------------------------------------ river API
    def learn_one(self, y, x=None):
        y = check_target(y)
        feats = numeric_features(x, ignore_dates=True) if x else {}
        if not self._hist:  # the first value: nothing to predict it from
            self._ys.commit(self._ys.updated(y))
            self._hist.append(y)
            self._t = 1
            return
        old = (self._ys.__getstate__(), self._rs.__getstate__())
        base = self._baseline(self._hist)

        def step():
            r = y - base
            self._fill_lead(self._u, self._hist[-1], self._last_r, self._t)
            self._rs.commit(self._rs.updated(r))
            z = self._rs.transform(r)
            self._learn_step(z)
            self._ys.commit(self._ys.updated(y))
            # the forward pass of this step, read with the scale it had before this value:
            # exactly what forecast(1, [x]) returned just before this call
            return z, base + _inverse(old[1], float(self._net.last_output[0]))

        def undo():
            self._ys.__setstate__(old[0])
            self._rs.__setstate__(old[1])

        z, pred = self._learn_all_or_nothing(feats, 1, step, undo)
        self._hist.append(y)
        self._last_r = z
        self._t += 1
        self.last_prediction = pred

    def forecast(self, horizon, xs=None):
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
        if not self._hist:
            return [0.0] * horizon
        if self._net is None:
            return [float(self._hist[-1])] * horizon
        net, u, out = self._net, self._u, self._out
        # the committed history is only read; a copy is needed once forecasts are appended
        hist = self._hist if horizon == 1 else deque(self._hist, maxlen=self._hist.maxlen)
        last_r, t = self._last_r, self._t
        preds = []
        s = self.seasonality
        if horizon > 1:
            net.rollout_begin()
        for k in range(horizon):
            self._fill_lead(u, hist[-1], last_r, t)
            self._cols.fill(feats[k], u, update=False)
            if horizon == 1:
                net.predict(u, out)  # one step from the committed state
            else:
                net.rollout_step(u, out)
            last_r = float(out[0])
            r = self._rs.inverse(last_r)
            # steps whose baseline is itself a forecast (none without a baseline)
            j = k - s + 1 if s else (k if self.differencing else 0)
            if j > 0 and self.damping != 1.0:
                r *= self.damping ** j
            y_hat = self._baseline(hist) + r
            preds.append(y_hat)
            if k + 1 < horizon:
                hist.append(y_hat)
            t += 1
        return preds


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
so an outage does not inflate it for the rest of the stream. `forecast(horizon, xs)` rolls forward from the committed state on a copy, feeding its
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
seed
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


class RNNForecaster(_RecurrentForecaster):
    __doc__ = _DOC.format(params=_PARAMS, summary="Elman recurrent network forecaster.", name="RNNForecaster",
                          result="29.04")
    _cell = "rnn"


class LSTMForecaster(_RecurrentForecaster):
    __doc__ = _DOC.format(params=_PARAMS, summary="LSTM forecaster.", name="LSTMForecaster",
                          result="30.21")
    _cell = "lstm"


class GRUForecaster(_RecurrentForecaster):
    __doc__ = _DOC.format(params=_PARAMS, summary="GRU forecaster.", name="GRUForecaster",
                          result="29.81")
    _cell = "gru"
