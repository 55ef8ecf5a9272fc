"""Recurrent regressors: every ``learn_one(x, y)`` is the next time step of one sequence.

"Do no harm": the prediction is an online combination of the network's prediction and the
running mean of the target (``streamrnn._core._combine.Combiner`` with two experts and one
step: soft-min of their exponentially weighted absolute errors, decay 0.995, eta 50; the
study in ``docs/research/seasonal/README.md``, point 8), so a stream the network cannot learn
falls back to the mean by itself. Each expert is scored on the value it predicted before the
target was learned: the network by the forward pass of the learning step itself (its input
standardised with the statistics that include that input, as learning uses it), the mean
before the target enters it.
"""
from __future__ import annotations

import math

import numpy as np
from river import base, optim

from streamrnn._core._combine import Combiner
from streamrnn.base import (PARAMETERS_DOC, SCALE_WINDOW, RecurrentEstimator, Scaler,
                            _check_keys, _is_old_tree, _old_scaler, _scale_error,
                            check_target, numeric_features)

# the combination with the running mean: one step, two experts (0: network, 1: mean)
COMBINE = {"n_experts": 2, "horizon": 1, "decay": 0.995, "eta": 50.0, "mix1": 0.0,
           "warm_n": 0}

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

    @staticmethod
    def _new_mean():
        return Scaler(False, 0.0, 0.0)  # the plain running mean (no forgetting)

    def _setup(self):
        super()._setup()
        self._ys = self._new_scaler()
        self._mean = self._new_mean()
        self._comb = Combiner(**COMBINE)
        self._two = np.zeros(2)  # scratch: the two experts' predictions (never state)

    def learn_one(self, x, y):
        feats = numeric_features(x, ignore_dates=False)
        y = check_target(y)
        ys, mean = self._ys, self._mean
        status = ys.propose(y)
        if status < 0:
            raise _scale_error("y", y, status)
        status = mean.propose(y)
        if status < 0:
            raise _scale_error("y", y, status)
        self._learn_features(feats, 1, ys.transform_pending(y))
        # committed from here on (nothing below can fail): the network's prediction of y made
        # by this step's forward pass, mapped back with the target scale before y
        # (the combination scores from the second value on, when both experts have a
        # forecast: before the first value the network's output maps back to 0)
        if mean.n:
            p = ys.inverse(self._net.last_output[0])
            f = self._two
            f[0] = p if math.isfinite(p) else math.nan
            f[1] = mean.mean
            self._comb.issue(f.reshape(1, 2))
        self._comb.observe(y)
        ys.accept()
        mean.accept()

    def predict_one(self, x):
        feats = numeric_features(x, ignore_dates=False)
        if self._net is None:
            return self._ys.mean
        p = float(self._ys.inverse(self._peek(feats)[0]))
        if not self._mean.n or not math.isfinite(p):
            return p
        f = self._two
        f[0] = p
        f[1] = self._mean.mean
        return self._comb.combine(1, f)

    @property
    def combination_weights(self):
        """The combination's current weights: ``{"network": w, "mean": 1 - w}``."""
        w = self._comb.weights(1) if self._mean.n else np.array([1.0, 0.0])
        return {"network": float(w[0]), "mean": float(w[1])}

    # ------------------------------------------------------------------ state
    _task_keys = ("_ys", "_mean", "_comb")

    def _export_task(self):
        comb = self._comb.get_state()
        comb["eligible"] = list(comb["eligible"])
        return {"_ys": self._ys.get_state(), "_mean": self._mean.get_state(), "_comb": comb}

    def _decode_task(self, tree):
        ys = self._new_scaler()
        ys.set_state(tree["_ys"])
        mean = self._new_mean()
        mean.set_state(tree["_mean"])
        comb = Combiner(**COMBINE)
        comb.set_state(tree["_comb"])
        return {"n_out": 1, "_ys": ys, "_mean": mean, "_comb": comb}

    @staticmethod
    def _fresh_combination():
        comb = Combiner(**COMBINE).get_state()
        comb["eligible"] = list(comb["eligible"])
        return {"_mean": _RecurrentRegressor._new_mean().get_state(), "_comb": comb}

    def _upgrade_task(self, tree):
        # 0.1.0 had no combination: it starts fresh (the mean from the next value on), so the
        # model predicts as it did until the mean has a value
        return {"_ys": _old_scaler(tree.get("_ys"), bool(self.scale_target), 0.0, SCALE_WINDOW),
                **self._fresh_combination()}

    def _import_state(self, tree):
        # a tree of today's layout written before the combination existed: a fresh one
        if type(tree) is dict and not _is_old_tree(tree) and "_comb" not in tree \
                and "_mean" not in tree:
            _check_keys(tree, ("_net", "_rng", "_cols", "n_ignored_features", "_ys"), "the state")
            tree = {**tree, **self._fresh_combination()}
        super()._import_state(tree)

    def _check_task(self, task, net):
        if task["_ys"].n != (0 if net is None else net.t):
            raise ValueError("the target scaler's count does not fit the network's steps")
        comb, mean = task["_comb"], task["_mean"]
        if comb.t != mean.n or mean.n > task["_ys"].n:
            raise ValueError("the combination's count does not fit the running mean's and the "
                             "target scaler's")
        state = comb.get_state()
        if state["issued"].any() or comb.eligible != (True, True):
            raise ValueError("the combination of a regressor holds nothing pending and both "
                             "experts are eligible")


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

Do no harm: `predict_one` returns an online combination of the network's prediction and the
running mean of the target, weighted by the soft-min of their exponentially weighted absolute
errors (decay 0.995, sharpness 50), so on a stream the network cannot learn (nearly noise)
the model falls back to the mean by itself; `combination_weights` shows the current split.

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
                          name="RNNRegressor", extra=_ACTIVATION_DOC, result="MAE: 0.573577")
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
                          name="LSTMRegressor", extra="", result="MAE: 0.570114")
    _cell = "lstm"


class GRURegressor(_RecurrentRegressor):
    __doc__ = _DOC.format(params=_PARAMS, summary="GRU regressor, trained online by truncated BPTT.",
                          name="GRURegressor", extra="", result="MAE: 0.574622")
    _cell = "gru"
