"""The exactly-once stream loop: one forecaster per key, fed from a source, published to a sink,
checkpointed together with the source position.

This is the loop of ``streamrnn forecast``, usable from Python::

    >>> import json, os, tempfile
    >>> from streamrnn import GRUForecaster
    >>> from streamrnn.streams import Decoder, JsonLinesSink, Runner, open_source
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "in.jsonl"), "w") as f:
    ...     for i in range(200):
    ...         _ = f.write(json.dumps({"station": f"s{i % 2}", "y": i % 7}) + "\\n")
    >>> source = open_source(os.path.join(d, "in.jsonl"), Decoder(key="station"))
    >>> sink = JsonLinesSink(os.path.join(d, "out.jsonl"))
    >>> runner = Runner(None, source, sink, horizon=3,
    ...                 model_factory=lambda: GRUForecaster(hidden_size=4, seed=1))
    >>> runner.run()
    200
    >>> sink.close()
    >>> sorted(runner.models), runner.totals()["scored"]
    (['s0', 's1'], 198)
    >>> last = json.loads(open(os.path.join(d, "out.jsonl")).readlines()[-1])
    >>> last["key"], last["offset"], len(last["forecast"])
    ('s1', 199, 3)

With a model spec (``streamrnn.spec.model_spec("gru", hidden_size=4)``, whose
``build_model`` is then the default factory) and ``store=CheckpointStore(directory)``, the
runner restores each partition's models and
position (:meth:`Runner.restore`, which returns where to start each partition) and checkpoints
them every ``checkpoint_every`` messages and at the end.

The guarantees
--------------
- A message counts as consumed once its model has learned it (or it was found bad, or its
  forecast was dead-lettered); a checkpoint holds exactly the models and the position that
  belong together.
- No checkpoint moves a position past a forecast that was neither delivered nor dead-lettered:
  before writing one, the runner flushes the sink (and the dead-letter sink) and writes nothing
  if either reports an undelivered record. After an error that stops the loop, nothing more
  is checkpointed (not even when a Kafka group revokes partitions on the way out), so a
  restart replays from the last checkpoint and repeats outputs rather than losing any.
- At most ``max_keys`` models are kept. A new key beyond that evicts the least recently seen
  key (logged, counted as ``evicted``): its model is dropped, and leaves its partition's
  checkpoint at the next checkpoint. If the key comes back it gets a fresh, untrained model.
  Each message is still learned exactly once by the model its key had at the time; the
  recency order is checkpointed too, so a resumed single-partition run evicts the same keys
  as an uninterrupted one (with several partitions the order of eviction follows the order
  in which partitions' messages interleave, which a restart may change).
- A key's model learns at most its own ``max_features`` feature columns (the spec's, or the
  model factory's); features first seen beyond them are ignored by the model, and the runner
  counts them (``ignored_features``), so a key's memory stays bounded without a second limit.
- Records carry the forecast's interval (``low``, ``high``, at level ``1 - alpha``; null
  where the model's interval is still unbounded, before it has scored forecasts) and the
  anomaly score of ``y`` against the forecast made before it (``anomaly``, the model's
  ``last_anomaly``); with a scorer, each checkpoint also carries the
  scores of its partition and what its keys still have pending, so a resumed run's summary
  goes on where the checkpoint left it, as an uninterrupted run's would.
"""
from __future__ import annotations

import logging
import math
import time
from collections import deque

from streamrnn.streams.messages import BadMessages, Undeliverable
from streamrnn.streams.scoring import HorizonScore, naive_season

from streamrnn.spec import build_model

__all__ = ["Runner", "OFFSET_BEGINNING", "MAX_KEYS", "MAX_FEATURES", "ALPHA"]

log = logging.getLogger("streamrnn")

OFFSET_BEGINNING = -2  # librdkafka's "earliest"
MAX_KEYS = 10_000
MAX_FEATURES = 256  # the command's default for the models' max_features
ALPHA = 0.1        # records' intervals: 90 %


def _checkpoint_error(msg):
    from streamrnn.checkpoint import CheckpointError
    return CheckpointError(msg)


def _series_entry(path, key, v):
    """``[last_seen, last_value]`` of a key as checkpointed (older checkpoints have none, or
    a third item, the feature names of 0.1's own limit, which is ignored)."""
    v = list(v) if isinstance(v, list) else []
    seen = v[0] if v else 0
    last = v[1] if len(v) > 1 else None
    if type(seen) is not int or seen < 0 or (last is not None and (
            type(last) not in (int, float) or not math.isfinite(last))):
        raise _checkpoint_error(f"{path}: the run record of key {key!r} is malformed")
    return seen, None if last is None else float(last)


def _finite(v):
    """A number for a strict-JSON record: None for None and for NaN or infinity."""
    return v if v is not None and math.isfinite(v) else None


def _finite_list(vs):
    vs = [float(v) for v in vs]
    if all(map(math.isfinite, vs)):
        return vs
    return [v if math.isfinite(v) else None for v in vs]


class Runner:
    """One forecaster per key, fed from ``source`` and published to ``sink``.

    Parameters
    ----------
    spec
        The model spec (``streamrnn.spec.model_spec(...)``); checkpoints record it and refuse
        to resume with another. May be None when ``model_factory`` is given and there is no
        ``store``.
    source, sink
        A :class:`~streamrnn.streams.Source` and a :class:`~streamrnn.streams.Sink`.
    horizon
        Steps forecast after learning each observation (the record's ``forecast``, ``low``
        and ``high``).
    alpha
        The records' intervals have level ``1 - alpha`` (default 0.1: 90 %).
    store
        A ``CheckpointStore`` (None: no checkpoints).
    checkpoint_every
        Checkpoint after every N messages (0: only at the end and on revocation).
    bad
        The :class:`~streamrnn.streams.BadMessages` that counts and dead-letters bad messages
        and undeliverable forecasts (default: the source's).
    plot_keys
        Keep a trace of the first N keys for plotting (:attr:`trace`: per key the last
        ``trace_len`` ``(step, time, y, prediction, far, low, high)``, ``step`` counting that
        key's values in this run, ``far`` the forecast of ``y`` made ``horizon`` steps before,
        ``low``, ``high`` the interval of ``prediction``, each None when unknown;
        :attr:`last_forecast`: per key ``(step, time, forecast, low, high)``).
    scorer
        A :class:`~streamrnn.streams.scoring.HorizonScore` that scores each forecast when its
        targets arrive (default with ``horizon`` >= 1: one with the spec's first declared
        season as the seasonal naive baseline's, none with ``"auto"``).
    max_keys
        The most models kept at once; a new key beyond it evicts the least recently seen one.
    model_factory
        ``model_factory() -> forecaster`` builds the model of a new key (default:
        ``streamrnn.spec.build_model(spec)``). With a store, it must build models that
        ``spec`` describes, since checkpoints are loaded through the spec.

    Positions (partition -> next offset), per-partition counters and the key -> partition map
    (a key lives in the checkpoint of the partition it was first seen in) are kept so that a
    checkpoint of a partition holds exactly the models and the position that belong together.
    """

    def __init__(self, spec, source, sink, horizon=0, store=None, checkpoint_every=0, bad=None,
                 plot_keys=0, max_keys=MAX_KEYS, model_factory=None, scorer=None,
                 trace_len=2000, alpha=ALPHA):
        if type(max_keys) is not int or max_keys < 1:
            raise ValueError(f"max_keys must be an int >= 1, got {max_keys!r}")
        if type(horizon) is not int or horizon < 0:
            raise ValueError(f"horizon must be an int >= 0, got {horizon!r}")
        if not (type(alpha) is float and 0 < alpha < 1):
            raise ValueError(f"alpha must be a float in (0, 1), got {alpha!r}")
        if spec is None:
            if model_factory is None or store is not None:
                raise ValueError("a spec is needed unless model_factory is given without a store")
        self.spec = spec
        self.source = source
        self.sink = sink
        self.horizon = horizon
        self.store = store
        self.checkpoint_every = checkpoint_every
        self.bad = bad if bad is not None else getattr(source, "bad", None) or BadMessages()
        self.max_keys = max_keys
        self.alpha = alpha
        self.models = {}                    # key -> model, least recently seen first
        self.home = {}                      # key -> partition
        self.keys_of = {}                   # partition -> {key: None} (an ordered set)
        self.last_y = {}                    # key -> last value learned
        self.seen = {}                      # key -> clock when last seen
        self.clock = 0
        self.positions = {}                 # partition -> next offset
        self.stats = {}                     # partition -> counters
        self.dirty = set()
        self.since_checkpoint = 0
        self.last_checkpoint = None         # time of the last checkpoint
        self.checkpoints = 0
        self.evicted = 0
        self.stop = False
        self.closing = False
        self.failed = False                 # an error stopped the loop: checkpoint no more
        self.plot_keys = plot_keys
        self.trace = {}                     # key -> deque of (step, time, y, prediction)
        self.trace_len = trace_len
        self.last_forecast = {}             # key -> (step, time, forecast)
        self._steps = {}                    # traced key -> values seen in this run
        self._made = {}                     # traced key -> its last `horizon` forecasts
        self.resumed = {}                   # partition -> (offset, models) loaded at start
        self._carried = self._new_stats()   # counters loaded from checkpoints
        self._dropped = self._new_stats()   # counters of partitions revoked since
        if scorer is None and horizon:
            scorer = HorizonScore(horizon, naive_season(spec), alpha=alpha)
        self.scorer = scorer
        self.scores_resumed = set()         # partitions whose checkpoint carried the scores
        self._warned_split = set()
        self._build = model_factory if model_factory is not None else (lambda: build_model(spec))

    # ------------------------------------------------------------------ checkpoints
    def restore(self, partitions):
        """Load the checkpoints of ``partitions``; returns {partition: offset to start at}."""
        starts = {}
        for p in partitions:
            c = self.store.load(p, self.spec) if self.store is not None else None
            if c is None:
                if self.store is not None:
                    starts[p] = OFFSET_BEGINNING  # no checkpoint: learn from the beginning
                continue
            want = {k: v for k, v in self.source.describe(p).items() if k != "partition"}
            have = {k: v for k, v in (c.source or {}).items() if k != "partition"}
            if have != want:
                raise _checkpoint_error(f"{c.path} belongs to source {have}, not {want}")
            n_models = self._adopt(c, p)
            self.positions[p] = int(c.position["offset"])
            self.stats[p] = {**self._new_stats(), **dict(c.extra.get("stats", {}))}
            for k in self._carried:
                self._carried[k] += self.stats[p].get(k, 0)
            starts[p] = self.positions[p]
            self.resumed[p] = (starts[p], n_models)
            log.info("resumed partition %s at offset %s with %d models", p, starts[p],
                     n_models)
        self._restored(partitions, starts)
        return starts

    def _adopt(self, c, p):
        """Take the models (and what goes with them) of checkpoint ``c`` of partition ``p``;
        returns how many models (keys) it held."""
        series = c.extra.get("series") or {}
        entries = {key: _series_entry(c.path, key, series.get(key)) for key in c.models}
        self._restore_scores(c, p)
        for key, m in c.models.items():
            self.models.pop(key, None)
            self.models[key] = m
            self.home[key] = p
            seen, last = entries[key]
            self.seen[key] = seen
            if last is not None:
                self.last_y[key] = last
            self.clock = max(self.clock, seen)
        self.keys_of[p] = dict.fromkeys(c.models)
        return len(c.models)

    def _restored(self, partitions, starts):
        """After the checkpoints of ``partitions`` were adopted: the recency order."""
        if any(p in starts and starts[p] != OFFSET_BEGINNING for p in partitions):
            seen = self.seen
            self.models = dict(sorted(self.models.items(), key=lambda kv: seen.get(kv[0], 0)))
            while len(self.models) > self.max_keys:
                self._evict()

    def _restore_scores(self, c, p, keys=None):
        """The scores a checkpoint carries, into the scorer (when it was made with the same
        horizon, seasonal baseline and alpha; otherwise this run's scores start afresh).
        ``keys``: the keys the checkpoint holds (default: its models')."""
        sc, d = self.scorer, c.extra.get("scores")
        if sc is None or d is None:
            return
        if type(d) is not dict or set(d) != {"part", "keys"} or type(d["keys"]) is not dict:
            raise _checkpoint_error(f"{c.path}: extra.scores must hold exactly part and keys")
        if d["part"] is None:
            return
        if type(d["part"]) is not dict or "config" not in d["part"]:
            raise _checkpoint_error(f"{c.path}: extra.scores.part must be an object with a "
                                    "config")
        if not sc.check_config(d["part"]):
            log.warning("%s: its scores were made with %.200r, not %r: the summary's scores "
                        "start with this run", c.path, d["part"]["config"], sc.config())
            return
        unknown = set(d["keys"]) - set(c.models if keys is None else keys)
        if unknown:
            raise _checkpoint_error(f"{c.path}: extra.scores has keys without a model, e.g. "
                                    f"{str(next(iter(unknown)))[:80]!r}")
        try:
            sc.load({p: d["part"]}, d["keys"])
        except ValueError as e:
            raise _checkpoint_error(f"{c.path}: extra.{e}") from None
        self.scores_resumed.add(p)

    def _deliver(self):
        """Flush the sink, dead-letter what it refused, flush the dead-letter sink; True when
        every record so far was delivered or dead-lettered."""
        ok = self.sink.flush() is not False
        self._dead_letter_refused()
        dead = getattr(self.bad, "sink", None)
        if dead is not None:
            ok = (dead.flush() is not False) and ok
        return ok

    def _dead_letter_refused(self):
        for rec, reason in self.sink.take_undeliverable():
            p = rec.get("partition")
            if p in self.stats:
                self.stats[p]["undeliverable"] += 1
            self.bad.undeliverable(rec, reason)

    def checkpoint(self, partitions=None, force=False):
        """Checkpoint the partitions that changed (all of ``partitions`` with ``force``);
        True when written (or nothing to write), False when the sinks had undelivered
        records or an error has stopped the loop."""
        if self.store is None or self.failed:
            return not self.failed
        parts = [p for p in (self.positions if partitions is None else partitions)
                 if p in self.positions and (force or p in self.dirty)]
        if not parts:
            return True
        # forecasts up to the checkpoint must be out before positions move on: a sink that
        # could not deliver them gets no checkpoint, so a restart from the previous one
        # produces them again
        if not self._deliver():
            log.error("the sink did not deliver every forecast: no checkpoint is written, so a "
                      "restart replays from the previous one")
            return False
        for p in parts:
            self._save(p)
            self.dirty.discard(p)
        self.source.commit({p: self.positions[p] for p in parts})
        self.since_checkpoint = 0
        self.last_checkpoint = time.time()
        self.checkpoints += 1
        return True

    def _save(self, p):
        """Write the checkpoint of partition ``p``: its models and its position."""
        keys = self.keys_of.get(p, {})
        models = {k: self.models[k] for k in keys}
        series = {k: [self.seen.get(k, 0), self.last_y.get(k)] for k in keys}
        extra = {"stats": self.stats[p], "series": series}
        sc = self.scorer
        if sc is not None:
            states = ((k, sc.key_state(k)) for k in keys)
            extra["scores"] = {"part": sc.part_state(p),
                               "keys": {k: v for k, v in states if v is not None}}
        self.store.save(p, models, self.spec, self.source.describe(p), self.positions[p],
                        extra=extra)

    def revoke(self, partitions, lost=False):
        """Partitions leave this process: checkpoint them (unless lost) and drop their models."""
        if not lost:
            self.checkpoint(partitions)
        if self.closing:
            return  # shutting down: keep models and counters for the summary
        for p in partitions:
            self._drop(p)
            self.positions.pop(p, None)
            st = self.stats.pop(p, None) or {}
            for k in self._dropped:
                self._dropped[k] += st.get(k, 0)
            self.dirty.discard(p)

    def _drop(self, p):
        """Partition ``p`` left this process: drop its models."""
        for key in self.keys_of.pop(p, ()):
            self._forget(key)

    @property
    def n_keys(self):
        """Keys (series) whose state is held now."""
        return len(self.models)

    def state_bytes(self):
        """Bytes of state per key (None without keys)."""
        if not self.models:
            return None
        from streamrnn.checkpoint import state_nbytes
        return state_nbytes(next(iter(self.models.values())))

    def _forget(self, key):
        self.models.pop(key, None)
        self.home.pop(key, None)
        self.last_y.pop(key, None)
        self.seen.pop(key, None)
        self._made.pop(key, None)
        if self.scorer is not None:
            self.scorer.forget(key)

    def _evict(self):
        """Drop the least recently seen key's model (it leaves its partition's checkpoint)."""
        key = next(iter(self.models))
        p = self.home.get(key)
        self._forget(key)
        self.keys_of.get(p, {}).pop(key, None)
        self.dirty.add(p)
        if p in self.stats:
            self.stats[p]["evicted"] += 1
        self.evicted += 1
        if self.evicted <= 10 or self.evicted % 1000 == 0:
            log.warning("more than %d keys: evicted the least recently seen key %.80r of "
                        "partition %s (%d evicted so far); if it comes back it starts with a "
                        "fresh model", self.max_keys, key, p, self.evicted)

    @staticmethod
    def _new_stats():
        return {"messages": 0, "bad": 0, "scored": 0, "abs_error": 0.0, "abs_error_last": 0.0,
                "evicted": 0, "undeliverable": 0, "ignored_features": 0}

    # ------------------------------------------------------------------ the loop body
    def process(self, obs):
        """Learn one observation and publish its forecast record ``{"key", "time",
        "partition", "offset", "y", "prediction", "anomaly", "forecast", "low", "high"}``
        (returned; None for a bad message)."""
        p = obs.partition
        st = self.stats.get(p)
        if st is None:
            st = self.stats[p] = self._new_stats()
        st["messages"] += 1
        self.dirty.add(p)
        if obs.error is not None:
            st["bad"] += 1
            self.bad(obs)
            self.positions[p] = obs.offset + 1
            return None
        key, x, y = obs.key, obs.x, obs.y
        models = self.models
        m = models.pop(key, None)  # put back last: the most recently seen
        if m is None:
            if len(models) >= self.max_keys:
                self._evict()
            m = self._build()
            self.home[key] = p
            self.keys_of.setdefault(p, {})[key] = None
        elif self.home[key] != p and key not in self._warned_split:
            self._warned_split.add(key)
            log.warning("key %.80r appears in partitions %s and %s; its model is checkpointed "
                        "with partition %s only (exactly-once needs each key in one partition)",
                        key, self.home[key], p, self.home[key])
        models[key] = m
        self.clock += 1
        self.seen[key] = self.clock
        last = self.last_y.get(key)
        ignored = getattr(m, "n_ignored_features", 0)
        try:
            m.learn_one(y, x)  # its forward pass is the prediction made before learning y
        except (ValueError, TypeError) as e:  # the model rejected it and is unchanged
            st["bad"] += 1
            self.bad(obs, f"rejected by the model: {e}", "rejected by the model")
            self.positions[p] = obs.offset + 1
            return None
        if x:
            # the model's max_features bounds its columns; what it ignored is counted here
            st["ignored_features"] += getattr(m, "n_ignored_features", 0) - ignored
        pred = _finite(m.last_prediction)  # None on a series' first value
        anomaly = _finite(getattr(m, "last_anomaly", None))  # None before there are scores
        self.last_y[key] = y
        if pred is not None and last is not None:
            st["scored"] += 1
            st["abs_error"] += abs(y - pred)
            st["abs_error_last"] += abs(y - last)
        h = self.horizon
        if h:
            fc = _finite_list(m.forecast(h))
            interval = getattr(m, "forecast_interval", None)  # a factory's own model may lack it
            if interval is not None:
                iv = interval(h, self.alpha)
                low, high = _finite_list([b[0] for b in iv]), _finite_list([b[1] for b in iv])
            else:
                low = high = [None] * len(fc)
        else:
            fc, low, high = [], [], []
        rec = {"key": key, "time": obs.time, "partition": p, "offset": obs.offset, "y": y,
               "prediction": pred, "anomaly": anomaly, "forecast": fc, "low": low,
               "high": high}
        try:
            self.sink.send(rec, key)
        except Undeliverable as e:  # never deliverable (e.g. too large): dead-letter it
            st["undeliverable"] += 1
            self.bad.undeliverable(rec, str(e))
        # the model holds this message and its forecast is out (or dead-lettered): a
        # checkpoint must place the position after it
        self.positions[p] = obs.offset + 1
        if self.scorer is not None:
            self.scorer.observe(key, y, fc, low, high, part=p)
        if self.plot_keys:
            self._trace(key, obs.time, y, pred, fc, low, high)
        self.since_checkpoint += 1
        if self.checkpoint_every and self.since_checkpoint >= self.checkpoint_every:
            self.checkpoint()
        return rec

    def _trace(self, key, t, y, pred, fc, low, high):
        tr = self.trace.get(key)
        if tr is None and len(self.trace) < self.plot_keys:
            tr = self.trace[key] = deque(maxlen=self.trace_len)
        if tr is None:
            return
        step = self._steps.get(key, -1) + 1
        self._steps[key] = step
        # the forecasts of the last `horizon` steps: the one made `horizon` steps before this
        # value (the hardest step), and the interval of the one made just before it
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = deque(maxlen=max(1, self.horizon))
        far = lo1 = hi1 = None
        h = self.horizon
        if h and len(made) == h and made[0][0] and len(made[0][0]) >= h:
            far = made[0][0][h - 1]
        if made and made[-1][1]:
            lo1, hi1 = made[-1][1][0], made[-1][2][0]
        made.append((fc, low, high))
        tr.append((step, t, y, pred, far, lo1, hi1))
        if fc:
            self.last_forecast[key] = (step, t, fc, low, high)

    def totals(self):
        """The counters summed over partitions, cumulative over resumed runs: messages, bad,
        scored, abs_error, abs_error_last, evicted, undeliverable, ignored_features."""
        t = self._new_stats()
        for st in self.stats.values():
            for k in t:
                t[k] += st.get(k, 0)
        return t

    def run_totals(self):
        """The counters of this run only (:meth:`totals` less what checkpoints carried in)."""
        t = self.totals()
        return {k: t[k] + self._dropped[k] - self._carried[k] for k in t}

    def run(self, limit=0, idle_exit=0.0, progress=None):
        """Read until the source ends, ``limit`` messages, ``idle_exit`` seconds without a
        message, or ``stop`` is set; then write a final checkpoint. Returns the number of
        messages read. An exception stops the loop with the last checkpoint left as it is."""
        n = 0
        last_msg = time.monotonic()
        read = self.source.read
        process = self.process
        try:
            while not self.stop:
                timeout = 0.5 if not idle_exit else max(0.0, min(0.5, idle_exit))
                batch = read(timeout)
                if batch is None:
                    break
                if batch:
                    last_msg = time.monotonic()
                    for obs in batch:
                        process(obs)
                        n += 1
                        if (limit and n >= limit) or self.stop:
                            self.stop = True
                            break
                    self.sink.tick()
                    self._dead_letter_refused()
                elif idle_exit and time.monotonic() - last_msg >= idle_exit:
                    log.info("nothing arrived for %.1f s: stopping", idle_exit)
                    break
                if progress is not None:
                    progress(self)
            self._finish()
        except BaseException:
            # an error escaped (e.g. the sink broke): keep the last checkpoint as it is, so a
            # restart replays from there and repeats outputs rather than losing any
            self.failed = True
            raise
        return n

    def _finish(self):
        """The end of a run: the last checkpoint, or without a store the outputs delivered."""
        if self.store is not None:
            self.checkpoint()
        else:
            self._deliver()
