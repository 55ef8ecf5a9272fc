"""Recurrent regressors: every ``learn_one(x, y)`` is the next time step of one sequence."""
from __future__ import annotations

from river import base, optim

from streamrnn.base import (PARAMETERS_DOC, RecurrentEstimator, Standardizer, check_target,
                            numeric_features)

__all__ = ["RNNRegressor", "LSTMRegressor", "GRURegressor"]


class _RecurrentRegressor(RecurrentEstimator, base.Regressor):
    _task = "regression"

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, tbptt_steps: int = 16,
                 update_every: int = 1, optimizer: optim.base.Optimizer | None = None,
                 loss: optim.losses.RegressionLoss | None = None,
                 clip_gradient: float | None = None, clip_norm: float | None = 1.0,
                 scale_inputs: bool = True, scale_target: bool = True, seed: int | None = None):
        self.scale_target = scale_target
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, tbptt_steps=tbptt_steps,
                         update_every=update_every, optimizer=optimizer, loss=loss,
                         clip_gradient=clip_gradient, clip_norm=clip_norm,
                         scale_inputs=scale_inputs, seed=seed)

    _state_attrs = RecurrentEstimator._state_attrs + ("_ys",)

    def _setup(self):
        super()._setup()
        self._ys = Standardizer(bool(self.scale_target))

    def learn_one(self, x, y):
        feats = numeric_features(x, ignore_dates=False)
        y = check_target(y)
        old_y = self._ys.__getstate__()

        def step():
            self._ys.commit(self._ys.updated(y))
            self._learn_step(self._ys.transform(y))

        self._learn_all_or_nothing(feats, 1, step, lambda: self._ys.__setstate__(old_y))

    def predict_one(self, x):
        feats = numeric_features(x, ignore_dates=False)
        if self._net is None:
            return self._ys.mean
        self._cols.fill(feats, self._u, update=False)
        return float(self._ys.inverse(self._peek()[0]))


_DOC = """{summary}

Each call to `learn_one(x, y)` is the next time step of one sequence: the hidden state is
carried from one observation to the next, and every `update_every` steps the gradient of the
last `update_every` losses flows back through the last `tbptt_steps` steps (truncated
back-propagation through time). `predict_one(x)` predicts the target of the step `x` belongs
to, from the committed state, without advancing it.

Inputs and the target are standardised online (Welford) and the prediction is mapped back.
Features are given columns in sorted-name order; features seen later grow the input weights,
missing ones are filled with their running mean.

Parameters
----------
{params}scale_inputs
    Standardise the features online.
scale_target
    Standardise the target online.
{extra}seed
    Seed of the weight initialisation.

Examples
--------

>>> from river import datasets, evaluate, metrics
>>> from streamrnn import {name}

>>> model = {name}(hidden_size=16, seed=42)
>>> evaluate.progressive_val_score(datasets.TrumpApproval(), model, metrics.MAE())
{result}

"""

_PARAMS = PARAMETERS_DOC.format(
    lr=RecurrentEstimator._default_lr,
    loss="`optim.losses.Squared` (default), `Absolute` or `Huber`.")

_ACTIVATION_DOC = """activation
    `'tanh'` or `'relu'`.
"""


class RNNRegressor(_RecurrentRegressor):
    __doc__ = _DOC.format(params=_PARAMS, summary="Elman recurrent network regressor, trained online by truncated BPTT.",
                          name="RNNRegressor", extra=_ACTIVATION_DOC, result="MAE: 0.585224")
    _cell = "rnn"

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, tbptt_steps: int = 16,
                 update_every: int = 1, optimizer: optim.base.Optimizer | None = None,
                 loss: optim.losses.RegressionLoss | None = None,
                 clip_gradient: float | None = None, clip_norm: float | None = 1.0,
                 scale_inputs: bool = True, scale_target: bool = True,
                 activation: str = "tanh", seed: int | None = None):
        self.activation = activation
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, tbptt_steps=tbptt_steps,
                         update_every=update_every, optimizer=optimizer, loss=loss,
                         clip_gradient=clip_gradient, clip_norm=clip_norm,
                         scale_inputs=scale_inputs, scale_target=scale_target, seed=seed)


class LSTMRegressor(_RecurrentRegressor):
    __doc__ = _DOC.format(params=_PARAMS, summary="LSTM regressor, trained online by truncated BPTT.",
                          name="LSTMRegressor", extra="", result="MAE: 0.564968")
    _cell = "lstm"


class GRURegressor(_RecurrentRegressor):
    __doc__ = _DOC.format(params=_PARAMS, summary="GRU regressor, trained online by truncated BPTT.",
                          name="GRURegressor", extra="", result="MAE: 0.590237")
    _cell = "gru"
