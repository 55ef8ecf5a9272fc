"""Model specs: a forecaster's configuration as plain JSON, and the factory that rebuilds it.

A spec is ``{"cell": "rnn"|"lstm"|"gru", "params": {...}, "optimizer": {"name", "lr", ...},
"loss": {"name", ...}}`` for the per-key forecasters (one model per series), and
``{"model": "global", "cell", "params", "optimizer"}`` for the multi-series
``streamrnn.GlobalForecaster`` (one model for every series of a partition; its ``params`` are
its constructor parameters other than ``cell``, ``optimizer`` and ``lr``; it has no loss
choice). ``params`` holds every constructor parameter of the forecaster other
than ``optimizer`` and ``loss`` (read from the constructor's signature, so a new parameter is
described without touching this module); the optimizer and the loss are named by their river
class as listed in :mod:`streamrnn._registry`. Specs made here are complete (every default
filled in), so two models are configured alike exactly when their specs are equal.

Nothing here trusts a spec: :func:`check_spec` validates one read from a file (known names, JSON
scalar values, sizes within ``_registry.LIMITS``) before :func:`build_model` calls a
constructor with it.
"""
from __future__ import annotations

import functools
import inspect
import json
import math
import numbers
import re

from streamrnn import _registry

__all__ = ["default_lr", "model_spec", "spec_from_model", "build_model", "spec_diff",
           "check_spec", "forecaster_parameters", "global_parameters", "is_global"]

_TASK = "forecaster"
_NOT_PARAMS = ("optimizer", "loss")  # described by the spec's own "optimizer" and "loss"
_SPEC_KEYS = {"cell", "params", "optimizer", "loss"}
_GLOBAL = "global"
_GLOBAL_KEYS = {"model", "cell", "params", "optimizer"}
_NOT_GLOBAL = ("cell", "optimizer", "lr")  # the spec's own "cell" and "optimizer" hold them
# parameters with a lower bound; the upper bounds are _registry.LIMITS
_MIN = {"hidden_size": 1, "num_layers": 1, "tbptt_steps": 1, "update_every": 1, "seasonality": 0,
        "max_features": 0, "horizon": 1, "learn_every": 1, "max_keys": 1, "max_batch": 1}
# limited parameters that may also be null
_NULLABLE = {"horizon": (None,)}
_MAX_PERIODS = 4


def _check_seasonality(v, exc):
    """``"auto"``, an int in [0, limit] or a list of 1 to 4 distinct ints in [2, limit]."""
    hi = _registry.LIMITS["seasonality"]
    if v == "auto" and isinstance(v, str) or _is_int(v) and 0 <= v <= hi:
        return
    if isinstance(v, (list, tuple)) and 1 <= len(v) <= _MAX_PERIODS and all(
            _is_int(m) and 2 <= m <= hi for m in v) and len(set(v)) == len(v):
        return
    raise _err(exc, f"params.seasonality must be \"auto\", an int in [0, {hi}] or a list of 1 to "
                    f"{_MAX_PERIODS} distinct ints in [2, {hi}], got {_short(v)}")


def _short(v, n=60):
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


# the JSON types a parameter may take, by the type of its default (when not annotated)
_KINDS = {bool: (bool,), int: (int,), float: (int, float), type(None): (type(None), int, float),
          str: (str,)}
_KIND_NAMES = {bool: "true/false", int: "an int", float: "a number", type(None): "null",
               str: "a string"}


def _cls(cell):
    return _registry.estimator_class(_TASK, cell)


def _kinds_of(p) -> tuple:
    """The JSON types parameter ``p`` takes: from its annotation (``int | None``), else from
    the type of its default."""
    ann = p.annotation if isinstance(p.annotation, str) else getattr(
        p.annotation, "__name__", "" if p.annotation is p.empty else str(p.annotation))
    words = set(re.findall(r"[A-Za-z_]+", ann))
    kinds = [k for name, k in (("bool", bool), ("int", int), ("float", float), ("str", str),
                               ("None", type(None))) if name in words]
    if float in kinds and int not in kinds:
        kinds.append(int)  # 1 is a fine float
    if not kinds:
        kinds = list(_KINDS.get(type(p.default), ()))
    return tuple(kinds)


@functools.lru_cache(maxsize=None)
def _parameters(cls, skip=_NOT_PARAMS) -> tuple:
    sig = inspect.signature(cls)
    return tuple((n, p.default, _kinds_of(p)) for n, p in sig.parameters.items()
                 if n not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _global_cls():
    return _registry.estimator_class(_GLOBAL, "gru")


def global_parameters() -> dict:
    """Constructor parameters of ``GlobalForecaster`` other than cell, optimizer and lr, with
    their defaults, in signature order."""
    return {n: d for n, d, _ in _parameters(_global_cls(), _NOT_GLOBAL)}


def is_global(spec) -> bool:
    """Whether ``spec`` describes the multi-series ``GlobalForecaster``."""
    return type(spec) is dict and spec.get("model") == _GLOBAL


def forecaster_parameters(cell: str = "gru") -> dict:
    """Constructor parameters of the ``cell`` forecaster (other than optimizer and loss) with
    their defaults, in signature order."""
    return {n: d for n, d, _ in _parameters(_cls(cell))}


def default_lr() -> float:
    """Adam's learning rate in the forecasters when no optimizer is given."""
    return float(_cls("gru")._default_lr)


def _err(exc, msg):
    return exc(f"malformed model spec: {msg}")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_number(where, v, exc):
    if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)):
        raise _err(exc, f"{where} must be a finite number, got {v!r}")


def check_spec(spec, exc=ValueError) -> None:
    """Validate a spec's structure, names, value types and sizes; raise ``exc`` naming the field.

    Does not build a model (see :func:`build_model`, which calls this first).
    """
    if is_global(spec):
        return _check_global(spec, exc)
    if not isinstance(spec, dict) or set(spec) != _SPEC_KEYS:
        got = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise _err(exc, f"a spec has exactly the fields {sorted(_SPEC_KEYS)}, got {got}")
    cell = spec["cell"]
    if not isinstance(cell, str) or cell not in _registry.CELLS:
        raise _err(exc, f"cell must be one of {sorted(_registry.CELLS)}, got {cell!r}")
    params = spec["params"]
    if not isinstance(params, dict):
        raise _err(exc, f"params must be an object, got {type(params).__name__}")
    _check_params(params, _parameters(_cls(cell)), "forecaster", exc)
    _check_named(spec, "optimizer", _registry.OPTIMIZERS, exc)
    _check_named(spec, "loss", _registry.LOSSES, exc)


def _check_params(params, parameters, what, exc, special=("seasonality",)):
    """Each of ``params`` a known parameter with a JSON value of its type, sizes within
    ``_registry.LIMITS``."""
    known = [n for n, _, _ in parameters]
    kinds_of = {n: k for n, _, k in parameters}
    unknown = sorted(set(params) - set(known), key=str)
    if unknown:
        raise _err(exc, f"unknown {what} parameters {unknown}; known: {known}")
    for name, v in params.items():
        if name in special:  # "auto", an int, or a list of ints (a tuple in Python)
            _check_seasonality(v, exc)
            continue
        if not (v is None or isinstance(v, (bool, int, float, str))):
            raise _err(exc, f"params.{name} must be a JSON scalar, got {type(v).__name__}")
        if isinstance(v, float) and not math.isfinite(v):
            raise _err(exc, f"params.{name} must be finite, got {v!r}")
        kinds = kinds_of[name]
        if kinds and type(v) not in kinds:
            what = " or ".join(_KIND_NAMES[k] for k in kinds if k is not int or float not in kinds)
            raise _err(exc, f"params.{name} must be {what}, got {v!r}")
        if name in _registry.LIMITS and not (v is None and None in _NULLABLE.get(name, ())):
            lo, hi = _MIN.get(name, 0), _registry.LIMITS[name]
            if not (_is_int(v) and lo <= v <= hi):
                raise _err(exc, f"params.{name} must be an int in [{lo}, {hi}], got {v!r}")


def _check_named(spec, name, table, exc):
    """The spec's optimizer or loss: a known name with its hyperparameters as numbers."""
    d = spec[name]
    if not isinstance(d, dict) or not isinstance(d.get("name"), str) or d["name"] not in table:
        raise _err(exc, f"{name} must be an object whose name is one of {sorted(table)}, "
                        f"got {d!r}")
    entry = table[d["name"]]
    if name == "loss" and entry.task != "regression":
        raise _err(exc, f"loss {entry.name} is not a forecasting loss")
    allowed = {"name", *entry.hyper} | ({"lr"} if name == "optimizer" else set())
    if set(d) - allowed:
        raise _err(exc, f"{name} {entry.name} takes {sorted(allowed)}, got {sorted(d)}")
    for k, v in d.items():
        if k != "name":
            _check_number(f"{name}.{k}", v, exc)


def _check_global(spec, exc):
    if set(spec) != _GLOBAL_KEYS:
        raise _err(exc, f"a global spec has exactly the fields {sorted(_GLOBAL_KEYS)}, got "
                        f"{sorted(spec)}")
    cell = spec["cell"]
    if not isinstance(cell, str) or cell not in _registry.CELLS:
        raise _err(exc, f"cell must be one of {sorted(_registry.CELLS)}, got {cell!r}")
    params = spec["params"]
    if not isinstance(params, dict):
        raise _err(exc, f"params must be an object, got {type(params).__name__}")
    _check_params(params, _parameters(_global_cls(), _NOT_GLOBAL), "GlobalForecaster", exc,
                  special=())
    _check_named(spec, "optimizer", _registry.OPTIMIZERS, exc)


def build_model(spec: dict):
    """A new, untrained forecaster from a spec (validated first: only known names are used).

    Raises ValueError (or TypeError from a constructor) for a spec that does not describe a
    valid forecaster.
    """
    check_spec(spec)
    o = dict(spec["optimizer"])
    opt = _registry.OPTIMIZERS[o.pop("name")].river(**o)
    if is_global(spec):
        return _global_cls()(cell=spec["cell"], optimizer=opt, **spec["params"])
    lo = dict(spec["loss"])
    loss = _registry.LOSSES[lo.pop("name")].river(**lo)
    params = dict(spec["params"])
    if isinstance(params.get("seasonality"), list):  # JSON has no tuples
        params["seasonality"] = tuple(params["seasonality"])
    return _cls(spec["cell"])(optimizer=opt, loss=loss, **params)


def spec_from_model(model) -> dict:
    """The complete spec of a streamrnn forecaster (untrained or trained)."""
    if isinstance(model, _global_cls()):
        return _global_spec(model)
    cell = getattr(model, "_cell", None)
    try:
        cls = _cls(cell)
    except ValueError:
        cls = None
    if cls is None or not isinstance(model, cls):
        raise ValueError(f"{type(model).__name__} is not a streamrnn forecaster")
    params = {n: getattr(model, n) for n in forecaster_parameters(cell)}
    for n, v in params.items():
        if isinstance(v, (tuple, list)):  # seasonality's periods: a JSON list
            params[n] = [int(m) for m in v]
        elif isinstance(v, numbers.Integral) and not isinstance(v, bool):
            params[n] = int(v)
        elif isinstance(v, numbers.Real) and not isinstance(v, bool):
            params[n] = float(v)
    from river import optim
    opt = model.optimizer if model.optimizer is not None else optim.Adam(default_lr())
    o = _registry.optimizer_settings(opt)
    entry = _registry.loss_entry(model.loss, "regression")
    lo = {"name": entry.name, **{k: float(getattr(model.loss, k)) for k in entry.hyper}}
    return {"cell": cell, "params": params, "optimizer": o, "loss": lo}


def _global_spec(model) -> dict:
    params = {}
    for n in global_parameters():
        v = getattr(model, n)
        if isinstance(v, numbers.Integral) and not isinstance(v, bool):
            v = int(v)
        elif isinstance(v, numbers.Real) and not isinstance(v, bool):
            v = float(v)
        params[n] = v
    a = model._opt_args
    entry = next(e for e in _registry.OPTIMIZERS.values() if e.code == a["kind"])
    o = {"name": entry.name, "lr": float(a["lr"]), **{k: float(a[k]) for k in entry.hyper}}
    return {"model": _GLOBAL, "cell": model.cell, "params": params, "optimizer": o}


def model_spec(cell: str = "gru", optimizer: str = "Adam", lr: float | None = None,
               loss: str = "Squared", *, model: str = "forecaster", **params) -> dict:
    """A complete spec: the cell, constructor parameters (see ``GRUForecaster``), the optimizer
    by its river name with its learning rate (default :func:`default_lr`), and the loss.

    ``model="global"``: the spec of a ``GlobalForecaster`` (its parameters, e.g.
    ``max_keys``, ``seasonality``; no loss choice: ``loss`` must stay "Squared")."""
    if model == _GLOBAL:
        if loss != "Squared":
            raise ValueError("GlobalForecaster trains the squared loss; a global spec has no "
                             f"loss choice, got {loss!r}")
        from streamrnn.multiseries import DEFAULT_LR
        partial = {"model": _GLOBAL, "cell": cell, "params": params,
                   "optimizer": {"name": optimizer, "lr": DEFAULT_LR if lr is None else lr}}
        return spec_from_model(build_model(partial))
    if model != "forecaster":
        raise ValueError(f"model must be 'forecaster' or 'global', got {model!r}")
    lr = default_lr() if lr is None else lr
    partial = {"cell": cell, "params": params, "optimizer": {"name": optimizer, "lr": lr},
               "loss": {"name": loss}}
    return spec_from_model(build_model(partial))  # complete, so equal models have equal specs


def canonical(spec) -> str:
    """The spec as canonical JSON (equal strings exactly for equal specs, ``1 != 1.0 != true``)."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def _flatten(d, prefix=""):
    if isinstance(d, dict) and d:
        out = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


_MISSING = object()


def spec_diff(a, b, a_name: str = "checkpoint", b_name: str = "this run") -> str:
    """One line per field in which specs ``a`` and ``b`` differ, e.g.
    ``params.hidden_size: 16 (checkpoint) != 32 (this run)``; empty when they are equal."""
    fa, fb = _flatten(a), _flatten(b)
    lines = []
    for k in sorted(set(fa) | set(fb)):
        va, vb = fa.get(k, _MISSING), fb.get(k, _MISSING)
        if va is not _MISSING and vb is not _MISSING and canonical(va) == canonical(vb):
            continue

        def show(v):
            return "(missing)" if v is _MISSING else json.dumps(v)
        lines.append(f"{k}: {show(va)} ({a_name}) != {show(vb)} ({b_name})")
    return "\n".join(lines)
