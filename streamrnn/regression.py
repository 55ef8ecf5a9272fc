"""Recurrent regressors: every ``learn_one(x, y)`` is the next time step of one sequence.

"Do no harm": the prediction is ``m + w (p - m)``, the network's prediction ``p`` shrunk toward
the running mean ``m`` of the target. ``w`` starts from the least-squares weight of the
combination, ``w_ls = sum d r / sum d d`` (``d = p - m``, ``r = y - m`` over the values seen,
each term weighted ``0.995 ** age``), and keeps the share ``1 - (z se / w_ls) ** 2`` of it,
``se`` its heteroskedasticity-robust (sandwich) standard error: 0 unless ``w_ls`` is more than
``z`` standard errors above 0 (the evidence that the network helps), near ``w_ls`` when it is
many; clipped to [0, 1], and 0 until 20 values have scored it. The bar is
``z = 2 sqrt(1 + 200 / n)`` after ``n`` scored values: the sandwich error is unreliable on few
values of heavy-tailed data, and the test is repeated at every value, so early on the evidence
must be far stronger (z = 6.6 at 20 values, 3.5 at 100, 2.2 at 1,000; two standard errors, the
usual test, in the long run). So on a stream the network cannot learn the prediction is the
mean, and where the network is much better ``w`` is near 1. Each expert is scored on the value it predicted before
the target was learned: the network by the forward pass of the learning step itself (its
input standardised with the statistics that include that input, as learning uses it), the
mean before the target enters it.
"""
from __future__ import annotations

import math

from river import base, optim

from streamrnn.base import (PARAMETERS_DOC, SCALE_WINDOW, RecurrentEstimator, Scaler,
                            _check_keys, _is_old_tree, _old_scaler, _scale_error,
                            check_target, numeric_features)

# the network's weight in its combination with the running mean (_Weight)
WEIGHT_DECAY = 0.995    # each past value's term weighs 0.995 ** age (the study's decay)
WEIGHT_MIN_N = 20       # values scored before the network can have any weight
WEIGHT_SE = 2.0         # w_ls must be WEIGHT_SE * sqrt(1 + WEIGHT_PRIOR / n) standard errors
WEIGHT_PRIOR = 200.0    # above 0 after n scored values (a small-sample bar, notes in the docs)
_CLAMP = 1e50           # |d|, |r| beyond this are clamped, so every sum stays finite


class _Weight:
    """The network's weight ``w`` in ``m + w (p - m)`` (module docstring), from five
    exponentially weighted sums of the scored values: ``a = sum d^2``, ``b = sum d r`` (decay
    ``WEIGHT_DECAY``) and, for the sandwich variance ``sum d^2 (r - w d)^2 / a^2``,
    ``c1 = sum d^2 r^2``, ``c2 = sum d^3 r``, ``c3 = sum d^4`` (decay squared); ``n`` counts the
    scored values. Plain Python floats: the state is exact."""

    _FIELDS = ("a", "b", "c1", "c2", "c3")

    def __init__(self):
        self.n = 0
        self.a = self.b = self.c1 = self.c2 = self.c3 = 0.0

    def weight(self):
        if self.n < WEIGHT_MIN_N or not self.a > 0.0:
            return 0.0
        w = self.b / self.a
        if not w > 0.0:
            return 0.0
        v = self.c1 - 2.0 * w * self.c2 + w * w * self.c3
        z = WEIGHT_SE * math.sqrt(1.0 + WEIGHT_PRIOR / self.n)
        q = z * math.sqrt(v if v > 0.0 else 0.0) / (self.a * w)   # z se / w_ls
        w *= 1.0 - q * q
        return 0.0 if not w > 0.0 else (1.0 if w > 1.0 else w)   # NaN: 0

    def observe(self, p, m, y):
        """Scores the network's prediction p and the mean m of the value y (all finite)."""
        d = min(max(p - m, -_CLAMP), _CLAMP)
        r = min(max(y - m, -_CLAMP), _CLAMP)
        g, q, dd = WEIGHT_DECAY, WEIGHT_DECAY * WEIGHT_DECAY, d * d
        self.a = g * self.a + dd
        self.b = g * self.b + d * r
        self.c1 = q * self.c1 + dd * r * r
        self.c2 = q * self.c2 + dd * d * r
        self.c3 = q * self.c3 + dd * dd
        self.n += 1

    def get_state(self):
        return {"n": self.n, **{k: getattr(self, k) for k in self._FIELDS}}

    def set_state(self, state):
        if type(state) is not dict or set(state) != {"n", *self._FIELDS}:
            raise ValueError(f"the combination's state must be a dict with the keys n, "
                             f"{', '.join(self._FIELDS)}")
        n = state["n"]
        if type(n) is not int or n < 0:
            raise ValueError("the combination's n must be an int >= 0")
        vals = {}
        for k in self._FIELDS:
            v = state[k]
            if type(v) is not float or not math.isfinite(v):
                raise ValueError(f"the combination's {k} must be a finite float")
            vals[k] = v
        if vals["a"] < 0.0 or vals["c1"] < 0.0 or vals["c3"] < 0.0:
            raise ValueError("the combination's a, c1, c3 are sums of squares (>= 0)")
        if n == 0 and any(vals.values()):
            raise ValueError("the combination's sums must be 0 before any value is scored")
        self.n = n
        for k, v in vals.items():
            setattr(self, k, v)

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
        self._comb = _Weight()

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
            p = float(ys.inverse(self._net.last_output[0]))
            if math.isfinite(p):
                self._comb.observe(p, float(mean.mean), float(y))
        ys.accept()
        mean.accept()

    def predict_one(self, x):
        feats = numeric_features(x, ignore_dates=False)
        if self._net is None:
            return self._ys.mean
        p = float(self._ys.inverse(self._peek(feats)[0]))
        if not self._mean.n or not math.isfinite(p):
            return p
        w, m = self._comb.weight(), float(self._mean.mean)
        return m + w * (p - m) if w > 0.0 else m

    @property
    def combination_weights(self):
        """The combination's current weights: ``{"network": w, "mean": 1 - w}``."""
        w = self._comb.weight() if self._mean.n else 1.0
        return {"network": w, "mean": 1.0 - w}

    # ------------------------------------------------------------------ state
    _task_keys = ("_ys", "_mean", "_comb")

    def _export_task(self):
        return {"_ys": self._ys.get_state(), "_mean": self._mean.get_state(),
                "_comb": self._comb.get_state()}

    def _decode_task(self, tree):
        ys = self._new_scaler()
        ys.set_state(tree["_ys"])
        mean = self._new_mean()
        mean.set_state(tree["_mean"])
        comb = _Weight()
        comb.set_state(tree["_comb"])
        return {"n_out": 1, "_ys": ys, "_mean": mean, "_comb": comb}

    @staticmethod
    def _fresh_combination():
        return {"_mean": _RecurrentRegressor._new_mean().get_state(),
                "_comb": _Weight().get_state()}

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
        if comb.n > max(mean.n - 1, 0) or mean.n > task["_ys"].n:
            raise ValueError("the combination's count does not fit the running mean's and the "
                             "target scaler's")


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

Do no harm: `predict_one` returns the network's prediction shrunk toward the running mean of
the target, by the least-squares weight of the two (exponentially weighted, decay 0.995) kept
only as far as it is more than two robust standard errors above 0, and not before 20 values.
On a stream the network cannot learn (nearly noise) the model predicts the mean; where the
network is clearly better it follows the network. `combination_weights` shows the split.

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
                          name="RNNRegressor", extra=_ACTIVATION_DOC, result="MAE: 0.586144")
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
                          name="LSTMRegressor", extra="", result="MAE: 0.580082")
    _cell = "lstm"


class GRURegressor(_RecurrentRegressor):
    __doc__ = _DOC.format(params=_PARAMS, summary="GRU regressor, trained online by truncated BPTT.",
                          name="GRURegressor", extra="", result="MAE: 0.584969")
    _cell = "gru"
