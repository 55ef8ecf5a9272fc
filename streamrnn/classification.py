"""Recurrent classifiers with a softmax head: every ``learn_one(x, y)`` is the next time step."""
from __future__ import annotations

import numpy as np
from river import base, optim

from streamrnn import _registry
from streamrnn.base import (PARAMETERS_DOC, RecurrentEstimator, _decode_key, _encode_key,
                            numeric_features)

__all__ = ["RNNClassifier", "LSTMClassifier", "GRUClassifier"]


class _Bool:
    """The class key of a bool label: True and False are never equal to 1 and 0."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return type(other) is _Bool and other.value is self.value

    def __hash__(self):
        return hash((_Bool, self.value))


def _has_nan(y):
    if isinstance(y, tuple):
        return any(_has_nan(e) for e in y)
    try:
        return bool(y != y)
    except Exception:  # noqa: BLE001 - a label whose comparison fails is not NaN
        return False


def _label(y):
    """Validate a label; NumPy scalars become Python values. Returns ``(label, key)``."""
    if y is None:
        raise TypeError("the label is None; pass a label (bool, int, str, ...)")
    if isinstance(y, np.generic):
        y = y.item()
    try:
        hash(y)
    except TypeError:
        raise TypeError(f"the label must be hashable, got {type(y).__name__}") from None
    if _has_nan(y):
        raise ValueError(f"the label is {y!r}; NaN is not a label")
    return y, (_Bool(y) if isinstance(y, bool) else y)


class _RecurrentClassifier(RecurrentEstimator, base.Classifier):
    _task = "classification"

    def __init__(self, hidden_size: int = 32, num_layers: int = 1, tbptt_steps: int = 16,
                 update_every: int = 1, optimizer: optim.base.Optimizer | None = None,
                 loss: optim.losses.MultiClassLoss | None = None,
                 clip_gradient: float | None = None, clip_norm: float | None = 1.0,
                 scale_inputs: bool = True, max_features: int = 1000, seed: int | None = None):
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, tbptt_steps=tbptt_steps,
                         update_every=update_every, optimizer=optimizer, loss=loss,
                         clip_gradient=clip_gradient, clip_norm=clip_norm,
                         scale_inputs=scale_inputs, max_features=max_features, seed=seed)

    def _setup(self):
        super()._setup()
        self._classes = []   # output unit -> label, in order of first appearance
        self._keys = {}      # class key -> output unit

    @property
    def _multiclass(self):
        return True

    @property
    def classes(self):
        return list(self._classes)

    def learn_one(self, x, y):
        feats = numeric_features(x, ignore_dates=False)
        y, key = _label(y)
        keys = self._keys
        unit = keys.get(key)
        new = ()
        if unit is None:
            new = [(False, _Bool(False)), (True, _Bool(True))] if type(y) is bool else [(y, key)]
            new = [(c, k) for c, k in new if k not in keys]
            if len(self._classes) + len(new) > _registry.LIMITS["classes"]:
                raise ValueError(f"the label {y!r} would be class number "
                                 f"{len(self._classes) + len(new)}; the limit is "
                                 f"{_registry.LIMITS['classes']}")
            unit = len(self._classes) + next(i for i, (_, k) in enumerate(new) if k == key)
        self._learn_features(feats, len(self._classes) + len(new), float(unit))
        for c, k in new:
            keys[k] = len(self._classes)
            self._classes.append(c)

    def predict_proba_one(self, x):
        feats = numeric_features(x, ignore_dates=False)
        if self._net is None or not self._classes:
            return {}
        out = self._peek(feats)
        e = np.exp(out - out.max())
        p = e / e.sum()
        return {c: float(p[i]) for i, c in enumerate(self._classes)}

    # ------------------------------------------------------------------ state
    _task_keys = ("_classes",)

    def _export_task(self):
        return {"_classes": [_encode_key(c) for c in self._classes]}

    def _decode_task(self, tree):
        labels = tree["_classes"]
        if type(labels) is not list:
            raise TypeError("the state's classes must be a list")
        if len(labels) > _registry.LIMITS["classes"]:
            raise ValueError("the state has more classes than the limit")
        classes, keys = [], {}
        for t in labels:
            c, k = _label(_decode_key(t))
            if k in keys:
                raise ValueError(f"the class {c!r} appears twice in the state")
            keys[k] = len(classes)
            classes.append(c)
        return {"n_out": max(1, len(classes)), "_classes": classes, "_keys": keys}

    def _upgrade_task(self, tree):
        return {"_classes": tree.get("_classes")}

    def _check_task(self, task, net):
        if (net is None) != (not task["_classes"]):
            raise ValueError("a classifier has classes exactly when it has a network")


_DOC = """{summary}

Each call to `learn_one(x, y)` is the next time step of one sequence; the hidden state is
carried from one observation to the next and trained by truncated back-propagation through
time. The head is a softmax over the labels seen so far: a new label grows the head, and a
boolean label brings both `False` and `True` at once, so binary streams always get both
probabilities. `predict_proba_one(x)` reads the committed state and changes nothing.

Labels are any hashable values but NaN (refused with a ValueError, also inside a tuple), and
two labels are the same class when they compare equal, with one exception: a bool is its own
type, so `True` and `False` are never the classes `1` and `0`. Thus `1` and `1.0` are one class,
reported as the label first seen; NumPy scalars count as the Python values they hold.

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
                 scale_inputs: bool = True, max_features: int = 1000, activation: str = "tanh",
                 seed: int | None = None):
        self.activation = activation
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, tbptt_steps=tbptt_steps,
                         update_every=update_every, optimizer=optimizer, loss=loss,
                         clip_gradient=clip_gradient, clip_norm=clip_norm,
                         scale_inputs=scale_inputs, max_features=max_features, seed=seed)


class LSTMClassifier(_RecurrentClassifier):
    __doc__ = _DOC.format(params=_PARAMS, summary="LSTM classifier, trained online by truncated BPTT.",
                          name="LSTMClassifier", result="Accuracy: 86.79%", extra="")
    _cell = "lstm"


class GRUClassifier(_RecurrentClassifier):
    __doc__ = _DOC.format(params=_PARAMS, summary="GRU classifier, trained online by truncated BPTT.",
                          name="GRUClassifier", result="Accuracy: 85.67%", extra="")
    _cell = "gru"
