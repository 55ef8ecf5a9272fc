"""Recurrent forecasters: an exponential-smoothing backbone corrected by a recurrent network,
combined per horizon step with the naive forecasts, with conformal intervals."""
from __future__ import annotations

import math
import numbers

import numpy as np
from river import optim
from river.time_series.base import Forecaster

from streamrnn import _registry
from streamrnn._core._forecast import ForecastCore
from streamrnn.base import (PARAMETERS_DOC, RecurrentEstimator, _scale_error, check_target,
                            numeric_features)

__all__ = ["RNNForecaster", "LSTMForecaster", "GRUForecaster"]

# horizon=None: the smallest declared period, else this many steps (benchmarks/, see the notes)
DEFAULT_HORIZON = 24
# the network reads the last WINDOW backbone-normalised values (12, 24 and 48 measured alike on
# AirlinePassengers and WaterFlow; 12 is the cheapest)
WINDOW = 12
# the network expert joins the combination after this many learned steps per window value
WARM_PER_WINDOW = 3
# the longest lag the period detector of seasonality="auto" looks at (periods up to half of it)
MAX_LAG = 200
# outputs and targets of the network are clipped to this many backbone scales
CLIP = 3.0
# parameters of streamrnn 0.1 forecasters that 0.2 no longer has
_OLD_PARAMS = ("differencing", "damping", "scale_target")
_OLD_MESSAGE = ("this is a forecaster of streamrnn 0.1 (it has {what}); streamrnn 0.2 "
                "forecasts with a different model (a seasonal backbone, direct multi-step "
                "outputs, intervals) and cannot continue it: train a new one on the history "
                "(or keep streamrnn 0.1 to use the old one)")


def _periods(seasonality):
    """``(declared periods, auto)`` of a validated ``seasonality``."""
    if seasonality == "auto":
        return (), True
    if isinstance(seasonality, (tuple, list)):
        return tuple(int(m) for m in seasonality), False
    m = int(seasonality)
    return ((m,) if m > 1 else ()), False


def _check_seasonality(s):
    lim = _registry.LIMITS["seasonality"]
    if isinstance(s, str):
        if s == "auto":
            return
    elif isinstance(s, numbers.Integral) and not isinstance(s, bool):
        if 0 <= s <= lim:
            return
    elif isinstance(s, (tuple, list)) and 1 <= len(s) <= 4 and all(
            isinstance(m, numbers.Integral) and not isinstance(m, bool) and 2 <= m <= lim
            for m in s) and len(set(s)) == len(s):
        return
    raise ValueError(f"seasonality must be 'auto', an int in [0, {lim}] (0 or 1: none) or a "
                     f"tuple of 1 to 4 distinct ints in [2, {lim}], got {s!r}")


class _RecurrentForecaster(RecurrentEstimator, Forecaster):
    """The backbone, the network, the combination and the intervals of one series.

    The per-observation arithmetic is ``streamrnn._core._forecast.ForecastCore``; this class
    decides and validates."""

    _task = "regression"
    _default_lr = 0.001

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, tbptt_steps: int = 16,
                 update_every: int = 1, optimizer: optim.base.Optimizer | None = None,
                 loss: optim.losses.RegressionLoss | None = None,
                 clip_gradient: float | None = None, clip_norm: float | None = 1.0,
                 seasonality: int | str | tuple = "auto", horizon: int | None = None,
                 scale_inputs: bool = True, max_features: int = 1000, seed: int | None = None):
        self.seasonality = seasonality
        self.horizon = horizon
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, tbptt_steps=tbptt_steps,
                         update_every=update_every, optimizer=optimizer, loss=loss,
                         clip_gradient=clip_gradient, clip_norm=clip_norm,
                         scale_inputs=scale_inputs, max_features=max_features, seed=seed)

    # ------------------------------------------------------------------ configuration
    @property
    def _n_lead(self):
        return self._window + 2

    def _configure(self):
        """Validate seasonality and horizon; set the periods, H and the window."""
        _check_seasonality(self.seasonality)
        h = self.horizon
        lim = _registry.LIMITS["horizon"]
        if h is not None and not (isinstance(h, numbers.Integral) and not isinstance(h, bool)
                                  and 1 <= h <= lim):
            raise ValueError(f"horizon must be None or an int in [1, {lim}], got {h!r}")
        self._periods, self._auto = _periods(self.seasonality)
        m = min(self._periods, default=0)
        self._H = int(h) if h is not None else (m if m else DEFAULT_HORIZON)
        if self._H > lim:
            raise ValueError(f"the smallest period {m} is a horizon beyond {lim}: set horizon")
        self._window = WINDOW
        self._warm = WARM_PER_WINDOW * self._window

    def _setup(self):
        self._configure()
        super()._setup()
        self._core = self._new_core()
        self._network_changed()

    def _new_core(self):
        return ForecastCore(self._H, self._periods, self._auto, MAX_LAG, self._window, CLIP)

    def _network_changed(self):
        net = self._net
        if net is not None:
            self._core.set_network(net, self._u, self._out)
        # the fast paths: a network and no feature columns
        self._fast_forecast = self._fast_learn = net is not None and not self._names

    @property
    def periods(self):
        """The periods the backbone models: the declared ones, then those detected."""
        return tuple(self._core.backbone.periods)

    @property
    def last_prediction(self):
        """The combined one-step forecast of the value ``learn_one`` learned last (bit for bit
        ``forecast(1)`` just before it; None before the second value)."""
        return self._core.pred

    @property
    def last_anomaly(self):
        """``score_one`` of the value ``learn_one`` learned last, computed before it was
        learned (None while there were no scores to compare it with)."""
        return self._core.anomaly

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
            if core.n_learned == self._warm:
                core.combiner.set_eligible(0, True)
            return
        self._learn(y, x or {})

    def _learn(self, y, feats):
        core = self._core
        if core.t == 0:  # the first value: nothing predicted it, no network step
            status = core.first(y)
            if status < 0:
                raise _scale_error("y", y, status)
            return
        cols, values, new, ignored = self._plan(feats)
        g = self._grown(new, self._H)
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
        if core.n_learned == self._warm:
            core.combiner.set_eligible(0, True)

    def _refused(self, status, y, net):
        if status < -2:
            return _scale_error("y", y, status)
        return self._refusal(net, status)

    def _fill(self, x, what):
        """Write the known features of ``x`` into the input buffer (no statistics change)."""
        feats = numeric_features(x, ignore_dates=True, what=what) if x else {}
        if self._net is not None:
            cols, values = self._known(feats)
            self._cols.fill(self._u, cols, values, False)

    def forecast(self, horizon, xs=None):
        """Forecasts of the next ``horizon`` values (see the class documentation); changes
        nothing."""
        if xs is None and self._fast_forecast and type(horizon) is int and horizon == 1:
            return [self._core.forecast1()]
        horizon = self._check_horizon(horizon)
        self._check_xs(xs, horizon)
        return self._core.forecast(horizon)

    def forecast_interval(self, horizon, alpha=0.1, xs=None):
        """``(low, high)`` of each of the next ``horizon`` values, each meant to hold the value
        with probability ``1 - alpha`` (adaptive conformal intervals around ``forecast``;
        ``(-inf, inf)`` at a step before it has scores); changes nothing."""
        if not (isinstance(alpha, numbers.Real) and not isinstance(alpha, bool)
                and 0.0 < alpha < 1.0):
            raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
        horizon = self._check_horizon(horizon)
        self._check_xs(xs, horizon)
        core = self._core
        centres = core.forecast(horizon)
        return [(c - w, c + w) for c, w in zip(centres, core.halfwidths(horizon, float(alpha)))]

    def score_one(self, y, x=None):
        """Anomaly score of ``y`` as the next value: 1 - its conformal p-value among the
        recent one-step errors, in [0, 1), higher is more anomalous (0 while there are no
        scores). Changes nothing."""
        y = check_target(y)
        self._fill(x, "x")
        s = self._core.score(y)
        return 0.0 if s is None else s

    def _check_horizon(self, horizon):
        if isinstance(horizon, numbers.Integral) and not isinstance(horizon, bool):
            horizon = int(horizon)
        if not (isinstance(horizon, int) and not isinstance(horizon, bool) and horizon >= 0):
            raise ValueError(f"horizon must be an int >= 0, got {horizon!r}")
        return horizon

    def _check_xs(self, xs, horizon):
        """Validate ``xs`` (one feature dict per step); the first one's features are the
        network's input (the network forecasts every step directly from the next one)."""
        if xs is None:
            self._fill(None, "xs[0]")
            return
        xs = list(xs)
        if len(xs) < horizon:
            raise ValueError(f"xs holds {len(xs)} feature dicts for a horizon of {horizon}")
        for i, x in enumerate(xs[1:horizon], 1):
            if x:
                numeric_features(x, ignore_dates=True, what=f"xs[{i}]")
        self._fill(xs[0] if xs else None, "xs[0]")

    # ------------------------------------------------------------------ state
    _task_keys = ("_core",)

    def _export_task(self):
        return {"_core": self._core.get_state()}

    def _decode_task(self, tree):
        core = self._new_core()
        core.set_state(tree["_core"])
        return {"n_out": self._H, "_core": core}

    def _upgrade_state(self, tree):
        raise ValueError(_OLD_MESSAGE.format(what="a 0.1 state layout"))

    def _check_task(self, task, net):
        core = task["_core"]
        t = core.t
        if (net is None) != (t <= 1):
            raise ValueError(f"a forecaster that saw {t} values "
                             + ("needs a network" if net is None else "has no network yet"))
        if net is not None and net.t != core.n_learned:
            raise ValueError(f"the network learned {net.t} steps, the forecaster "
                             f"{core.n_learned}")
        if core.combiner.eligible[0] != (core.n_learned >= self._warm):
            raise ValueError("the network expert's eligibility does not fit the steps learned")

    def __setstate__(self, state):
        params = state.get("params") if type(state) is dict else None
        old = [k for k in _OLD_PARAMS if type(params) is dict and k in params]
        if old:
            raise ValueError(_OLD_MESSAGE.format(what=f"the parameters {old}"))
        super().__setstate__(state)

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 8, "seed": 1}
        yield {"hidden_size": 4, "num_layers": 2, "tbptt_steps": 4, "update_every": 2,
               "optimizer": optim.RMSProp(0.01), "seasonality": 3, "horizon": 4, "seed": 2}
        yield {"hidden_size": 4, "seasonality": (2, 6), "seed": 3}


_DOC = """{summary}

The forecast of each step ahead is an online combination of four experts: an
exponential-smoothing backbone corrected by the recurrent network, the backbone itself, the last
value and the seasonal naive (the value one period before). Each step's weights follow the
experts' recent absolute errors at that step, so a series the network cannot learn falls back to
what works on it.

The backbone is a bank of exponential-smoothing members (level, damped trend, the seasonal
indices of every period; on log values while the series is positive), weighted per step by their
recent errors. With `seasonality="auto"` a period is detected online (from its autocorrelation,
strictly, so that a period the data does not have is not used); detected periods add seasonal
members, and the non-seasonal ones stay.

The network takes one step per observed value, carrying its hidden state, learning by truncated
back-propagation through time. Its input is the backbone's window of recent values
(de-seasonalised, level-normalised by the backbone's best member, scaled by the typical change of
one step), the change over the last value, the last value standardised by a running mean and
variance, and the exogenous numeric features of the step (dates and times in `x` are ignored, as
river's datasets send them). Its `horizon` outputs are the changes of the next `horizon` values
over the last one, in units of the typical change of as many steps (clipped to +-3); output j of
a step is learned when its value arrives, j steps later. The network expert is the last value
plus these changes; it joins the combination once it has learned three times its window.

`forecast(h)` is direct for h <= `horizon`: the combination of step j of the experts' forecasts
made now. Beyond `horizon` the backbone forecasts the step directly, the network's correction of
step `horizon` is held, and the weights of step `horizon` are used. `xs` gives one feature dict
per step; the first one is the network's input (the others are checked, not used: the network
forecasts every step from the next one). `forecast_interval(h, alpha)` returns `(low, high)` per
step, adaptive conformal intervals around the forecast (scores of the last 20 forecasts of that
step, the level adapted as each interval is scored, so coverage holds under drift). `score_one(y)`
is the anomaly score of `y` as the next value: 1 - its conformal p-value among the last 100
one-step errors; after `learn_one`, `last_anomaly` holds the score the value got. None of these
changes the model. A value beyond +-1e100 is refused with a ValueError and the series goes on.

Parameters
----------
{params}seasonality
    `"auto"` (detect periods online), 0 (none), a period in steps (12 for monthly data, 24 for
    hourly) or a tuple of periods, such as `(24, 168)` for hourly data with a weekly cycle.
horizon
    The largest step the network forecasts directly, H (its number of outputs). None: the
    smallest declared period, else {default_h}.
scale_inputs
    Standardise the exogenous features online.
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

Intervals and anomaly scores, on the same series:

>>> model = {name}(seasonality=12, seed=42)
>>> for x, y in datasets.AirlinePassengers():
...     model.learn_one(y)
>>> low, high = model.forecast_interval(1)[0]
>>> bool(low < model.forecast(1)[0] < high)
True
>>> round(model.score_one(10_000.0), 2)
{score}

"""

_PARAMS = PARAMETERS_DOC.format(
    lr=_RecurrentForecaster._default_lr,
    loss="`optim.losses.Squared` (default), `Absolute` or `Huber`.")


_ACTIVATION_DOC = """activation
    `'tanh'` or `'relu'`.
"""


class RNNForecaster(_RecurrentForecaster):
    __doc__ = _DOC.format(params=_PARAMS, summary="Elman recurrent network forecaster.",
                          name="RNNForecaster", result="29.61", score="0.99",
                          extra=_ACTIVATION_DOC, default_h=DEFAULT_HORIZON)
    _cell = "rnn"

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, tbptt_steps: int = 16,
                 update_every: int = 1, optimizer: optim.base.Optimizer | None = None,
                 loss: optim.losses.RegressionLoss | None = None,
                 clip_gradient: float | None = None, clip_norm: float | None = 1.0,
                 seasonality: int | str | tuple = "auto", horizon: int | None = None,
                 scale_inputs: bool = True, max_features: int = 1000, activation: str = "tanh",
                 seed: int | None = None):
        self.activation = activation
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, tbptt_steps=tbptt_steps,
                         update_every=update_every, optimizer=optimizer, loss=loss,
                         clip_gradient=clip_gradient, clip_norm=clip_norm,
                         seasonality=seasonality, horizon=horizon, scale_inputs=scale_inputs,
                         max_features=max_features, seed=seed)


class LSTMForecaster(_RecurrentForecaster):
    __doc__ = _DOC.format(params=_PARAMS, summary="LSTM forecaster.", name="LSTMForecaster",
                          result="29.61", score="0.99", extra="", default_h=DEFAULT_HORIZON)
    _cell = "lstm"


class GRUForecaster(_RecurrentForecaster):
    __doc__ = _DOC.format(params=_PARAMS, summary="GRU forecaster.", name="GRUForecaster",
                          result="29.61", score="0.99", extra="", default_h=DEFAULT_HORIZON)
    _cell = "gru"
