"""Backtest: replay a stream through the models and score every forecast step against the
last value and the seasonal naive forecast.

This is ``streamrnn backtest``, usable from Python. It runs the same loop as
``streamrnn forecast`` (:class:`streamrnn.streams.Runner`: each value is forecast before it
is learned, so every score is out of sample) and scores each forecast of ``horizon`` steps
when its targets arrive (:class:`streamrnn.streams.scoring.HorizonScore`)::

    >>> import json, os, tempfile
    >>> from streamrnn.backtest import backtest
    >>> from streamrnn.spec import model_spec
    >>> from streamrnn.streams import open_source
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "in.csv"), "w") as f:
    ...     _ = f.write("y\\n" + "".join(f"{i % 7}\\n" for i in range(300)))
    >>> r = backtest(open_source(os.path.join(d, "in.csv")), model_spec("gru", hidden_size=4,
    ...              seasonality=7, seed=1), horizon=3)
    >>> [row["n"] for row in r.table()["model"]]   # forecasts whose targets arrived
    [299, 298, 297]
    >>> [row["n"] for row in r.table()["seasonal naive"]]   # the same rows as the model
    [299, 298, 297]
    >>> [round(row["mae"], 3) for row in r.table()["seasonal naive"]]   # a period-7 pattern:
    [0.02, 0.034, 0.04]

(errors only in the first season, where the seasonal naive is the last value.)
"""
from __future__ import annotations

import time

from streamrnn.streams.messages import NullSink
from streamrnn.streams.runner import ALPHA, MAX_KEYS, Runner
from streamrnn.streams.scoring import BatchScore, HorizonScore, naive_season

__all__ = ["backtest", "Backtest"]


class Backtest:
    """The result: ``runner`` (models, counters, trace), ``scorer``, ``elapsed`` seconds and
    ``messages`` read; :meth:`table` and :meth:`to_dict` give the scores."""

    def __init__(self, runner, scorer, messages, elapsed):
        self.runner = runner
        self.scorer = scorer
        self.messages = messages
        self.elapsed = elapsed

    def table(self, key=None):
        """{method: [{"step", "n", "mae", "smape", "mase", "n_interval", "coverage", "width"},
        ...]} overall or for one key (coverage in %, of the model's intervals)."""
        return self.scorer.table(key)

    def to_dict(self):
        """Everything as JSON-ready data (non-finite numbers as None)."""
        def clean(t):
            return {m: [{k: (None if isinstance(v, float) and v != v else v)
                         for k, v in row.items()} for row in rows] for m, rows in t.items()}
        t = self.runner.totals()
        return {"messages": self.messages, "bad": t["bad"], "keys": self.scorer.keys_seen,
                "horizon": self.scorer.h, "seasonality": self.scorer.m,
                "alpha": self.scorer.alpha,
                "seconds": round(self.elapsed, 3), "overall": clean(self.table()),
                "per_key": {k: clean(self.table(k)) for k in self.scorer.per_key},
                "per_key_limit": self.scorer.detail_keys}


def backtest(source, spec=None, horizon=1, seasonality=None, *, model_factory=None,
             detail_keys=10, plot_keys=0, max_keys=MAX_KEYS, alpha=ALPHA, limit=0,
             idle_exit=0.0, progress=None, sink=None, bad=None, runner_hook=None,
             global_model=False, batch=None, max_wait=None) -> Backtest:
    """Replay ``source`` through one model per key and score the forecasts.

    Parameters
    ----------
    source
        Any :class:`~streamrnn.streams.Source` (a file, stdin, Kafka or MQTT).
    spec, model_factory
        The models, as for :class:`~streamrnn.streams.Runner`.
    horizon
        Steps forecast after each value (>= 1); each step is scored separately.
    seasonality
        Season length of the seasonal naive baseline (default: the spec's first declared
        season; 0 for none, as with ``seasonality="auto"``).
    detail_keys
        Keys (the first seen) also scored one by one.
    alpha
        The forecasts' intervals have level 1 - alpha; their coverage and width are scored.
    plot_keys, max_keys, limit, idle_exit, progress, bad
        As for :class:`~streamrnn.streams.Runner` and its ``run``.
    sink
        Where the forecast records go (default: nowhere).
    runner_hook
        Called with the runner before it runs (e.g. to install signal handlers).
    global_model, batch, max_wait
        ``global_model``: one multi-series model per partition
        (:class:`~streamrnn.streams.batched.GlobalRunner`, which takes ``batch`` and
        ``max_wait``; None: its defaults) instead of one model per key.
    """
    if seasonality is None:
        seasonality = naive_season(spec)
    score = BatchScore if global_model else HorizonScore
    scorer = score(horizon, seasonality, detail_keys=detail_keys, alpha=alpha)
    kw = dict(horizon=horizon, plot_keys=plot_keys, max_keys=max_keys,
              model_factory=model_factory, scorer=scorer, bad=bad, alpha=alpha)
    sink = sink if sink is not None else NullSink()
    if global_model:
        from streamrnn.streams.batched import BATCH, MAX_WAIT, GlobalRunner
        runner = GlobalRunner(spec, source, sink, batch=BATCH if batch is None else batch,
                              max_wait=MAX_WAIT if max_wait is None else max_wait, **kw)
    else:
        runner = Runner(spec, source, sink, **kw)
    if runner_hook is not None:
        runner_hook(runner)
    t0 = time.monotonic()
    n = runner.run(limit=limit, idle_exit=idle_exit, progress=progress)
    return Backtest(runner, scorer, n, time.monotonic() - t0)
