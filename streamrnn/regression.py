"""Recurrent regressors: every ``learn_one(x, y)`` is the next time step of one sequence."""
from __future__ import annotations

from river import base, optim

from streamrnn.base import (PARAMETERS_DOC, SCALE_WINDOW, RecurrentEstimator, Scaler,
                            _old_scaler, _scale_error, check_target, numeric_features)

__all__ = ["RNNRegressor", "LSTMRegressor", "GRURegressor"]


class _RecurrentRegressor(RecurrentEstimator, base.Regressor):
    _task = "regression"

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, tbptt_steps: int = 16,
                 update_every: int = 1, optimizer: optim.base.Optimizer | None = None,
                 loss: optim.losses.RegressionLoss | None = None,
                 clip_gradient: float | None = None, clip_norm: float | None = 1.0,
                 scale_inputs: bool = True, scale_target: bool = True, max_features: int = 1000,
                 seed: int | None = None):
        self.scale_target = scale_target
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, tbptt_steps=tbptt_steps,
                         update_every=update_every, optimizer=optimizer, loss=loss,
                         clip_gradient=clip_gradient, clip_norm=clip_norm,
                         scale_inputs=scale_inputs, max_features=max_features, seed=seed)

    def _new_scaler(self):
        return Scaler(bool(self.scale_target), 0.0, SCALE_WINDOW)

    def _setup(self):
        super()._setup()
        self._ys = self._new_scaler()

    def learn_one(self, x, y):
        feats = numeric_features(x, ignore_dates=False)
        y = check_target(y)
        ys = self._ys
        status = ys.propose(y)
        if status < 0:
            raise _scale_error("y", y, status)
        self._learn_features(feats, 1, ys.transform_pending(y))
        ys.accept()

    def predict_one(self, x):
        feats = numeric_features(x, ignore_dates=False)
        if self._net is None:
            return self._ys.mean
        return float(self._ys.inverse(self._peek(feats)[0]))

    # ------------------------------------------------------------------ state
    _task_keys = ("_ys",)

    def _export_task(self):
        return {"_ys": self._ys.get_state()}

    def _decode_task(self, tree):
        ys = self._new_scaler()
        ys.set_state(tree["_ys"])
        return {"n_out": 1, "_ys": ys}

    def _upgrade_task(self, tree):
        return {"_ys": _old_scaler(tree.get("_ys"), bool(self.scale_target), 0.0, SCALE_WINDOW)}

    def _check_task(self, task, net):
        if task["_ys"].n != (0 if net is None else net.t):
            raise ValueError("the target scaler's count does not fit the network's steps")


_DOC = """{summary}

Each call to `learn_one(x, y)` is the next time step of one sequence: the hidden state is
carried from one observation to the next, and every `update_every` steps the gradient of the
last `update_every` losses flows back through the last `tbptt_steps` steps (truncated
back-propagation through time). `predict_one(x)` predicts the target of the step `x` belongs
to, from the committed state, without advancing it.

Inputs and the target are standardised online (Welford) and the prediction is mapped back;
past its first 200 values the target's scale forgets (each new value weighs 1/200, a half-life
of about 138 values), so it follows a level shift. Values beyond +-1e100 are refused.
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
                          name="RNNRegressor", extra=_ACTIVATION_DOC, result="MAE: 0.576374")
    _cell = "rnn"

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, tbptt_steps: int = 16,
                 update_every: int = 1, optimizer: optim.base.Optimizer | None = None,
                 loss: optim.losses.RegressionLoss | None = None,
                 clip_gradient: float | None = None, clip_norm: float | None = 1.0,
                 scale_inputs: bool = True, scale_target: bool = True, max_features: int = 1000,
                 activation: str = "tanh", seed: int | None = None):
        self.activation = activation
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, tbptt_steps=tbptt_steps,
                         update_every=update_every, optimizer=optimizer, loss=loss,
                         clip_gradient=clip_gradient, clip_norm=clip_norm,
                         scale_inputs=scale_inputs, scale_target=scale_target,
                         max_features=max_features, seed=seed)


class LSTMRegressor(_RecurrentRegressor):
    __doc__ = _DOC.format(params=_PARAMS, summary="LSTM regressor, trained online by truncated BPTT.",
                          name="LSTMRegressor", extra="", result="MAE: 0.569631")
    _cell = "lstm"


class GRURegressor(_RecurrentRegressor):
    __doc__ = _DOC.format(params=_PARAMS, summary="GRU regressor, trained online by truncated BPTT.",
                          name="GRURegressor", extra="", result="MAE: 0.575792")
    _cell = "gru"
