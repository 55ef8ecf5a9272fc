"""Recurrent classifiers with a softmax head: every ``learn_one(x, y)`` is the next time step."""
from __future__ import annotations

import math

import numpy as np
from river import base, optim

from streamrnn.base import PARAMETERS_DOC, RecurrentEstimator, numeric_features

__all__ = ["RNNClassifier", "LSTMClassifier", "GRUClassifier"]


def _label(y):
    """Validate a label; numpy scalars become Python values so that keys compare and hash alike."""
    if y is None:
        raise TypeError("the label is None; pass a label (bool, int, str, ...)")
    if isinstance(y, np.generic):
        y = y.item()
    if isinstance(y, float) and not math.isfinite(y):
        raise ValueError(f"the label is {y}; labels must be finite")
    try:
        hash(y)
    except TypeError:
        raise TypeError(f"the label must be hashable, got {type(y).__name__}") from None
    return y


class _RecurrentClassifier(RecurrentEstimator, base.Classifier):
    _task = "classification"

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, tbptt_steps: int = 16,
                 update_every: int = 1, optimizer: optim.base.Optimizer | None = None,
                 loss: optim.losses.MultiClassLoss | None = None,
                 clip_gradient: float | None = None, clip_norm: float | None = 1.0,
                 scale_inputs: bool = True, seed: int | None = None):
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, tbptt_steps=tbptt_steps,
                         update_every=update_every, optimizer=optimizer, loss=loss,
                         clip_gradient=clip_gradient, clip_norm=clip_norm,
                         scale_inputs=scale_inputs, seed=seed)

    _state_attrs = RecurrentEstimator._state_attrs + ("_classes",)

    def _after_import(self):
        self._index = {c: i for i, c in enumerate(self._classes)}

    def _setup(self):
        super()._setup()
        self._classes = []   # output unit -> label, in order of first appearance
        self._index = {}     # label -> output unit

    @property
    def _multiclass(self):
        return True

    @property
    def classes(self):
        return list(self._classes)

    def learn_one(self, x, y):
        feats = numeric_features(x, ignore_dates=False)
        y = _label(y)
        new_labels = [] if y in self._index else ([False, True] if isinstance(y, bool) else [y])
        new_labels = [c for c in new_labels if c not in self._index]
        classes, index = list(self._classes), dict(self._index)

        def step():
            for c in new_labels:
                self._index[c] = len(self._classes)
                self._classes.append(c)
            self._learn_step(float(self._index[y]))

        def undo():
            self._classes, self._index = classes, index

        self._learn_all_or_nothing(feats, len(classes) + len(new_labels), step, undo)

    def predict_proba_one(self, x):
        feats = numeric_features(x, ignore_dates=False)
        if self._net is None or not self._classes:
            return {}
        self._cols.fill(feats, self._u, update=False)
        out = self._peek()
        e = np.exp(out - out.max())
        p = e / e.sum()
        return {c: float(p[i]) for i, c in enumerate(self._classes)}


_DOC = """{summary}

Each call to `learn_one(x, y)` is the next time step of one sequence; the hidden state is
carried from one observation to the next and trained by truncated back-propagation through
time. The head is a softmax over the labels seen so far: a new label grows the head, and a
boolean label brings both `False` and `True` at once, so binary streams always get both
probabilities. `predict_proba_one(x)` reads the committed state and changes nothing.

Parameters
----------
{params}scale_inputs
    Standardise the features online.
{extra}seed
    Seed of the weight initialisation.

Examples
--------

>>> from river import datasets, evaluate, metrics
>>> from streamrnn import {name}

>>> model = {name}(hidden_size=16, seed=42)
>>> evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy())
{result}

"""

_PARAMS = PARAMETERS_DOC.format(
    lr=RecurrentEstimator._default_lr,
    loss="Cross-entropy on the softmax head (None, `optim.losses.CrossEntropy()` or\n"
         "    `optim.losses.Log()`).")


class RNNClassifier(_RecurrentClassifier):
    __doc__ = _DOC.format(params=_PARAMS, summary="Elman recurrent network classifier, trained online by truncated BPTT.",
                          name="RNNClassifier", result="Accuracy: 86.87%",
                          extra="activation\n    `'tanh'` or `'relu'`.\n")
    _cell = "rnn"

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, tbptt_steps: int = 16,
                 update_every: int = 1, optimizer: optim.base.Optimizer | None = None,
                 loss: optim.losses.MultiClassLoss | None = None,
                 clip_gradient: float | None = None, clip_norm: float | None = 1.0,
                 scale_inputs: bool = True, activation: str = "tanh", seed: int | None = None):
        self.activation = activation
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, tbptt_steps=tbptt_steps,
                         update_every=update_every, optimizer=optimizer, loss=loss,
                         clip_gradient=clip_gradient, clip_norm=clip_norm,
                         scale_inputs=scale_inputs, seed=seed)


class LSTMClassifier(_RecurrentClassifier):
    __doc__ = _DOC.format(params=_PARAMS, summary="LSTM classifier, trained online by truncated BPTT.",
                          name="LSTMClassifier", result="Accuracy: 86.79%", extra="")
    _cell = "lstm"


class GRUClassifier(_RecurrentClassifier):
    __doc__ = _DOC.format(params=_PARAMS, summary="GRU classifier, trained online by truncated BPTT.",
                          name="GRUClassifier", result="Accuracy: 85.67%", extra="")
    _cell = "gru"
