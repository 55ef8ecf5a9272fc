"""The exactly-once stream loop with one shared-network model per source partition.

:class:`GlobalRunner` is the default loop of ``streamrnn forecast`` (``--per-key-models``
selects :class:`~streamrnn.streams.Runner`, one forecaster per key). Each partition of the
source gets one multi-series model (``streamrnn.GlobalForecaster``: one network whose weights
all the partition's series train together, a small state per key), so a partition stays the
unit of state: its checkpoint holds its model and its position, exactly as with per-key models.

    >>> import json, os, tempfile
    >>> from streamrnn.spec import model_spec
    >>> from streamrnn.streams import Decoder, GlobalRunner, JsonLinesSink, open_source
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "in.jsonl"), "w") as f:
    ...     for i in range(300):
    ...         _ = f.write(json.dumps({"station": f"s{i % 3}", "y": i % 7}) + "\\n")
    >>> spec = model_spec("gru", model="global", hidden_size=4, seasonality=7, horizon=3,
    ...                   seed=1)
    >>> source = open_source(os.path.join(d, "in.jsonl"), Decoder(key="station"))
    >>> sink = JsonLinesSink(os.path.join(d, "out.jsonl"))
    >>> runner = GlobalRunner(spec, source, sink, horizon=3, batch=64)
    >>> runner.run()
    300
    >>> sink.close()
    >>> runner.n_keys, runner.totals()["scored"]
    (3, 297)
    >>> last = json.loads(open(os.path.join(d, "out.jsonl")).readlines()[-1])
    >>> last["key"], last["offset"], len(last["forecast"])
    ('s2', 299, 3)

Batches
-------
Messages are read in batches, grouped by partition and learned ``batch`` at a time with one
learning call per partition batch (which cuts it into sub-batches of distinct keys, one network
step each); the records of a batch are encoded and produced together.

The loop holds a batch as columns (:class:`~streamrnn.streams.columns.Columns`: keys, values,
time stamps, a feature matrix, the bad messages at their rows), not as one object per
message: from Kafka, ``KafkaSource.read_columns`` decodes the common message straight into
them (the batch decoder ``streamrnn._core._codec``; any other message goes through
:class:`~streamrnn.streams.Decoder`, with the same result); the model learns them with
``GlobalForecaster.learn_columns`` (``learn_many``'s rows as a matrix, the same result); and
inside :meth:`GlobalRunner.run` the records' JSON is encoded from the result's arrays in one
pass per batch (the bytes orjson writes for the record's dict) and handed to the sink's
``send_encoded``, with no record dict. :meth:`GlobalRunner.feed` returns the record dicts
(``records=False``: it encodes them as ``run`` does and returns nothing).

Because the network takes one optimizer step per sub-batch, what a model learns depends on how
its stream is cut into batches. The cut is made deterministic: a partition's messages are
learned in consecutive batches of exactly ``batch`` good messages (with the bad ones among
them, which are dead-lettered and never reach the model, so they change nothing), counted from
where the partition started; only the end of the stream (or a
stop, or ``--limit``) and a partition that has waited ``max_wait`` seconds with a part-filled
batch learn a shorter one. A checkpoint holds only whole learned batches (the position is just
after the last one; buffered messages are read again after a restart), so a run that crashes
and resumes learns the same batches as an uninterrupted one, and ends with bit-identical models
and the same records. (A short batch cut by ``max_wait``, as on a trickling live stream, or by a
stop, moves the later cuts: every message is still learned exactly once.)

The guarantees of :class:`~streamrnn.streams.Runner` hold, with these differences:

- ``max_keys`` bounds the keys of each partition's model (its ``max_keys``): a new key beyond
  it evicts that model's least recently seen key, which, if it returns, starts afresh with the
  shared weights it helped train.
- A key's state lives in the model of the partition it arrives in; a key sent to two
  partitions is two series (Kafka sends one message key to one partition).
- Features: the model's feature columns are fixed by the first batch it learns (at most its
  ``max_features``); features first seen later are ignored and counted (``ignored_features``).
- Records are the same ``{key, time, partition, offset, y, prediction, anomaly, forecast, low,
  high}``; a forecast record comes out when its batch is learned (after at most ``max_wait``
  seconds), not message by message.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import repeat

import numpy as np

from streamrnn._core._codec import encode_records
from streamrnn.streams.columns import Columns, by_partition
from streamrnn.streams.messages import NAN_IS_NULL, dumps_bytes, dumps_floats
from streamrnn.streams.runner import ALPHA, MAX_KEYS, Runner
from streamrnn.streams.scoring import BatchScore, naive_season

__all__ = ["GlobalRunner", "BATCH", "MAX_WAIT", "tune_gc"]

log = logging.getLogger("streamrnn")

BATCH = 1024      # messages of one partition learned together
MAX_WAIT = 1.0    # seconds a part-filled batch may wait


def _none_list(a):
    """``a`` (1-D or rows) as lists, NaN and infinities as None."""
    if np.isfinite(a).all():
        return a.tolist()
    return np.where(np.isfinite(a), a, None).tolist()


class GlobalRunner(Runner):
    # with the learning thread, run() lowers the interpreter's thread switch interval to this
    # (seconds) for its duration (None: leave it): the learning thread takes the GIL back
    # sooner after each network step it ran without it
    switch_interval = 0.0005

    """One multi-series model per partition of ``source``, learned in batches, published to
    ``sink``.

    Parameters are those of :class:`~streamrnn.streams.Runner`, and:

    model_factory
        ``model_factory() -> GlobalForecaster`` builds the model of a new partition (default:
        ``streamrnn.spec.build_model(spec)``, with a spec of the global model).
    max_keys
        Only reported here: the keys of each partition are bounded by its model's own
        ``max_keys`` (the spec's; the command sets it from ``--max-keys``).
    batch
        Good messages of one partition learned together (>= 1).
    max_wait
        Seconds a partition's part-filled batch may wait for more messages before it is
        learned as it is (0: learn whatever each read brought; batch cuts then depend on
        timing).
    learn_thread
        Inside :meth:`run`, learn each batch in a second thread while this one settles the
        batch before it (records, scores) and reads on (the network's step runs without
        the GIL, so the two overlap on two cores). The same batches are learned in the same
        order with the same results, and the records come out in the same order
        (see :meth:`run`). Off by default: on a shared 2-core machine it measured 0.82x to
        1.40x of the one-thread loop (``benchmarks/bench_stream.py``, modes global and
        global-thread), the handing over of the GIL costing about what the overlap saves.
    """

    def __init__(self, spec, source, sink, horizon=0, store=None, checkpoint_every=0, bad=None,
                 plot_keys=0, max_keys=MAX_KEYS, model_factory=None, scorer=None,
                 trace_len=2000, alpha=ALPHA, batch=BATCH, max_wait=MAX_WAIT,
                 learn_thread=False):
        if scorer is None and type(horizon) is int and horizon > 0:
            scorer = BatchScore(horizon, naive_season(spec), alpha=alpha)
        super().__init__(spec, source, sink, horizon=horizon, store=store,
                         checkpoint_every=checkpoint_every, bad=bad, plot_keys=plot_keys,
                         max_keys=max_keys, model_factory=model_factory, scorer=scorer,
                         trace_len=trace_len, alpha=alpha)
        if type(batch) is not int or batch < 1:
            raise ValueError(f"batch must be an int >= 1, got {batch!r}")
        if not (isinstance(max_wait, (int, float)) and math.isfinite(max_wait)
                and max_wait >= 0):
            raise ValueError(f"max_wait must be a number >= 0, got {max_wait!r}")
        self.batch = batch
        self.max_wait = float(max_wait)
        self.parts = {}        # partition -> its model
        self.last_of = {}      # partition -> {key: last value learned}
        self._buf = {}         # partition -> observations read, not learned yet
        self._since = {}       # partition -> when its buffer's first observation was read
        self._good = {}        # partition -> good observations in its buffer
        self._lean = False     # inside run(): records are encoded, not returned
        self.learn_thread = bool(learn_thread)
        self._pool = None      # inside run() with learn_thread: the learning thread
        self._inflight = None  # the job the learning thread has (see _begin, _settle)

    # ------------------------------------------------------------------ keys and state
    @property
    def n_keys(self):
        return sum(len(m) for m in self.parts.values())

    def state_bytes(self):
        """Bytes of state per key of the models (their ``slot_bytes``; None without keys)."""
        for m in self.parts.values():
            if len(m):
                return int(m.slot_bytes)
        return None

    def keys(self):
        """Every key held, partition by partition (least recently seen first)."""
        out = []
        for p in sorted(self.parts, key=repr):
            out.extend(self.parts[p].keys())
        return out

    def _model(self, p):
        m = self.parts.get(p)
        if m is None:
            m = self.parts[p] = self._build()
            self.last_of[p] = {}
        return m

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self, partitions=None, force=False):
        self._drain()  # the models and positions of whole settled batches only
        return super().checkpoint(partitions, force)

    def revoke(self, partitions, lost=False):
        self._drain()
        return super().revoke(partitions, lost)

    def restore(self, partitions):
        self._drain()
        return super().restore(partitions)

    def _finish(self):
        self._drain()
        super()._finish()

    def _adopt(self, c, p):
        from streamrnn.checkpoint import CheckpointError
        m = _global_of(c)
        keys = set(m.keys())
        series = c.extra.get("series") or {}
        if type(series) is not dict or not set(series) <= keys:
            raise CheckpointError(f"{c.path}: extra.series must map keys of its model to "
                                  "their last values")
        last = {}
        for k, v in series.items():
            if not (type(v) in (int, float) and math.isfinite(v)):
                raise CheckpointError(f"{c.path}: the last value of key {k!r} is malformed")
            last[k] = float(v)
        self._restore_scores(c, p, keys)
        self.parts[p] = m
        self.last_of[p] = last
        self._buf.pop(p, None)
        self._since.pop(p, None)
        self._good.pop(p, None)
        return len(m)

    def _restored(self, partitions, starts):
        pass  # each model keeps its own recency order

    def _save(self, p):
        m = self._model(p)
        keys = m.keys()
        last = self.last_of.get(p, {})
        extra = {"stats": self.stats[p], "series": {k: last[k] for k in keys if k in last}}
        sc = self.scorer
        if sc is not None:
            states = ((k, sc.key_state(k)) for k in keys)
            extra["scores"] = {"part": sc.part_state(p),
                               "keys": {k: v for k, v in states if v is not None}}
        _save_global(self.store, p, m, self.spec, self.source.describe(p), self.positions[p],
                     extra)

    def _drop(self, p):
        m = self.parts.pop(p, None)
        self.last_of.pop(p, None)
        self._buf.pop(p, None)
        self._since.pop(p, None)
        self._good.pop(p, None)
        if m is not None and self.scorer is not None:
            for k in m.keys():
                self.scorer.forget(k)

    # ------------------------------------------------------------------ the loop body
    def process(self, obs):
        """Read one observation: it is learned with its partition's batch (see
        :meth:`flush`); returns the records learned by this call."""
        return self.feed([obs])

    def feed(self, batch, records=True):
        """Buffer ``batch`` (observations in source order, or ``{partition: Columns}`` as
        ``KafkaSource.read_columns`` gives); learn every partition batch that is full, in the
        order they fill. Returns the records produced; with ``records=False``, an empty list
        (the sink may then get them as JSON bytes encoded from the columns, with no record
        dict: what :meth:`run` does)."""
        lean, self._lean = self._lean, not records
        try:
            return self._feed(batch)
        finally:
            self._lean = lean

    def _feed(self, batch):
        groups = batch if type(batch) is dict else by_partition(batch)
        buf, since, good, size = self._buf, self._since, self._good, self.batch
        now = None
        ready = []  # (where in the read the batch filled, partition, its pieces)
        for p, c in groups.items():
            if not len(c):
                continue
            b = buf.get(p)
            if b is None:
                b = buf[p] = []
                good[p] = 0
            while c is not None:
                if not b:
                    if now is None:
                        now = time.monotonic()
                    since[p] = now
                head, c = c.cut(size - good[p])  # a bad message does not count
                b.append(head)
                n = good[p] = good[p] + head.n_good
                if n >= size:
                    ready.append((int(head.at[-1]), p, b))
                    b = buf[p] = []
                    good[p] = 0
        out = []
        if len(ready) > 1:
            ready.sort(key=lambda r: r[0])
        for _, p, b in ready:
            out.extend(self._learn(p, Columns.concat(b)))
        return out

    def flush(self, partitions=None, waited=None, records=True):
        """Learn the part-filled batches (of ``partitions``; with ``waited``, only those that
        have waited that many seconds). Returns the records produced (see :meth:`feed`)."""
        lean, self._lean = self._lean, not records
        try:
            return self._flush(partitions, waited)
        finally:
            self._lean = lean

    def _flush(self, partitions, waited):
        out = []
        now = time.monotonic()
        for p in list(self._buf if partitions is None else partitions):
            b = self._buf.get(p)
            if b and (waited is None or now - self._since[p] >= waited):
                self._buf[p] = []
                self._good[p] = 0
                out.extend(self._learn(p, Columns.concat(b)))
        return out

    def _learn(self, p, chunk):
        """Learn partition ``p``'s rows ``chunk`` (a Columns, in order) with one learning call;
        publish their records; returns them. With the learning thread (inside :meth:`run`),
        the batch is learned there while this thread settles the batch before it (see
        :meth:`run`); returns []."""
        if self._pool is None:
            return self._settle(self._begin(p, chunk))
        before = self._inflight
        if before is not None and before[0] == p:  # its model must be idle: settle first
            self._inflight = None
            self._settle(before)
            before = None
        self._inflight = self._begin(p, chunk, self._pool)
        if before is not None:  # (another partition's model) while this batch learns
            self._settle(before)
        return []

    def _drain(self):
        """Settle the batch the learning thread has (if any): its records out, its position
        moved on."""
        job, self._inflight = self._inflight, None
        if job is not None:
            self._settle(job)

    def _begin(self, p, chunk, pool=None):
        """Start learning ``chunk``'s good rows (in ``pool``'s thread, or now); returns the
        job for :meth:`_settle`."""
        m = self._model(p)
        if not chunk.n_good:
            return p, chunk, m, None, None
        c = chunk
        if c.bad:
            idx = np.flatnonzero(c.good)
            il = idx.tolist()
            keys, times = [c.key[i] for i in il], [c.time[i] for i in il]
            ys, X, offs = c.y[idx], c.X[idx], c.offset[idx]
            at = {r: j for j, r in enumerate(il)}
            slow = {at[r]: x for r, x in c.slow.items()}
            xs = None if c.xs is None else [c.xs[i] for i in il]
        else:
            keys, times, ys, X, offs, slow, xs = c.key, c.time, c.y, c.X, c.offset, c.slow, c.xs
        rows = (keys, times, ys, offs, m.n_ignored_features, m.n_evicted)
        learn = getattr(m, "learn_columns", None)
        if learn is not None:
            args = (learn, keys, ys, X, c.names)
            kw = {"alpha": self.alpha, "slow": slow}
        else:  # a model with only the dict API
            if xs is None:
                xs = [{k: v for k, v in zip(c.names, row) if v == v} for row in X.tolist()]
            args = (m.learn_many, keys, ys.tolist(), xs if any(xs) else None)
            kw = {"alpha": self.alpha}
        res = pool.submit(*args, **kw) if pool is not None else args[0](*args[1:], **kw)
        return p, chunk, m, rows, res

    def _settle(self, job):
        """The rest of a learned batch, in the order the batches were begun: statistics, dead
        letters, records, scores, the partition's position, the checkpoint when due."""
        p, chunk, m, rows, res = job
        st = self.stats.get(p)
        if st is None:
            st = self.stats[p] = self._new_stats()
        st["messages"] += len(chunk)
        self.dirty.add(p)
        for _, o in chunk.bad:
            st["bad"] += 1
            self.bad(o)
        records = []
        if rows is not None:
            if isinstance(res, Future):  # the learning thread's
                res = res.result()
            records = self._learn_good(p, st, m, rows, res)
        # every message of the chunk is learned (or dead-lettered), and its record is out
        self.positions[p] = int(chunk.offset[-1]) + 1
        self.since_checkpoint += len(chunk)
        if self.checkpoint_every and self.since_checkpoint >= self.checkpoint_every:
            self.checkpoint()
        return records

    def _learn_good(self, p, st, m, rows, res):
        keys, times, ys, offs, ign, ev = rows
        if res.errors:  # rows the model refused: it is unchanged by them
            from streamrnn.streams.messages import Observation
            for i, why in res.errors:
                st["bad"] += 1
                o = Observation(keys[i], None, float(ys[i]), times[i], p, int(offs[i]))
                self.bad(o, f"rejected by the model: {why}", "rejected by the model")
        st["ignored_features"] += m.n_ignored_features - ign
        try:
            return self._after(p, st, m, keys, ys, times, offs, res)
        finally:
            # after the batch's scores: what is kept of a key the batch evicted goes with it
            if m.n_evicted != ev:
                self._evicted(p, st, m, m.n_evicted - ev)

    def _after(self, p, st, m, keys, yv, times, offs, res):
        """Statistics, records, produce and scores of a learned batch."""
        last_of = self.last_of[p]
        ok = res.ok
        n_ok = int(ok.sum())
        if n_ok == 0:
            return []
        if n_ok < len(keys):
            idx = np.flatnonzero(ok)
            il = idx.tolist()
            keys, times = [keys[i] for i in il], [times[i] for i in il]
            yv, offs = yv[idx], offs[idx]
            pred, anom = res.prediction[idx], res.anomaly[idx]
            fc, lo, hi = res.forecast[idx], res.low[idx], res.high[idx]
        else:
            pred, anom, fc, lo, hi = res.prediction, res.anomaly, res.forecast, res.low, res.high
        # the one-step errors against the last value, summed for the summary
        ys = yv.tolist()
        get = last_of.get
        if len(set(keys)) == len(keys):
            lastv = np.array(list(map(get, keys, repeat(math.nan))), dtype=np.float64)
            last_of.update(zip(keys, ys))
        else:
            lastv = np.empty(len(keys))
            for i, (k, y) in enumerate(zip(keys, ys)):  # in order: a key may repeat
                lastv[i] = get(k, math.nan)
                last_of[k] = y
        scored = np.isfinite(pred) & np.isfinite(lastv)
        n_sc = int(scored.sum())
        if n_sc:
            st["scored"] += n_sc
            st["abs_error"] += float(np.abs(yv - pred)[scored].sum())
            st["abs_error_last"] += float(np.abs(yv - lastv)[scored].sum())
        if self._encoded():  # the records' JSON straight from the columns
            values, mkeys = encode_records(keys, times, p, offs, yv, pred, anom, fc, lo, hi,
                                           min(self.horizon, fc.shape[1]), dumps_bytes,
                                           dumps_floats)
            for i, why in self.sink.send_encoded(values, mkeys):  # never deliverable
                st["undeliverable"] += 1
                rec = self._records(p, keys[i:i + 1], times[i:i + 1], offs[i:i + 1],
                                    ys[i:i + 1], pred[i:i + 1], anom[i:i + 1], fc[i:i + 1],
                                    lo[i:i + 1], hi[i:i + 1])[0]
                self.bad.undeliverable(rec, why)
            self._score(p, None, keys, yv, fc, lo, hi)
            return []
        records = self._records(p, keys, times, offs, ys, pred, anom, fc, lo, hi)
        self._publish(st, records, keys)
        self._score(p, records, keys, yv, fc, lo, hi)
        return records

    def _encoded(self):
        """Whether a batch's records go to the sink as JSON bytes encoded from the columns,
        with no record dict: when the caller does not take them (``records=False``; the
        batches of :meth:`run`), for a sink
        that takes them, when nothing else reads the records (plots, a per-record scorer)
        and NaN is written as null."""
        return (self._lean and NAN_IS_NULL and hasattr(self.sink, "send_encoded") and
                not self.plot_keys and
                (self.scorer is None or isinstance(self.scorer, BatchScore)))

    def _records(self, p, keys, times, offs, ys, pred, anom, fc, lo, hi):
        """The records of learned rows from the model's results."""
        h = self.horizon
        # NaN and infinities become None, unless the sink's encoder writes them as null
        nulls = (not getattr(self.sink, "nan_is_null", False) or self.plot_keys or
                 (self.scorer is not None and not isinstance(self.scorer, BatchScore)))
        conv = _none_list if nulls else np.ndarray.tolist
        preds, anoms = conv(pred), conv(anom)
        if h:
            fcs, los, his = (conv(a[:, :h]) for a in (fc, lo, hi))
        else:
            fcs = los = his = repeat([])
        return [{"key": k, "time": t, "partition": p, "offset": o, "y": y, "prediction": pr,
                 "anomaly": an, "forecast": f, "low": lw, "high": hg}
                for k, t, o, y, pr, an, f, lw, hg in zip(keys, times, offs.tolist(), ys, preds,
                                                         anoms, fcs, los, his)]

    def _publish(self, st, records, keys):
        refused = self.sink.send_many(records, keys)
        for i, why in refused:  # never deliverable (e.g. too large): dead-letter it
            st["undeliverable"] += 1
            self.bad.undeliverable(records[i], why)

    def _score(self, p, records, keys=None, ys=None, fc=None, lo=None, hi=None):
        sc = self.scorer
        h = self.horizon
        if isinstance(sc, BatchScore) and fc is not None:
            sc.observe_many(keys, ys, fc[:, :h], lo[:, :h], hi[:, :h], part=p)
        elif sc is not None:
            observe = sc.observe
            for r in records:
                observe(r["key"], r["y"], r["forecast"], r["low"], r["high"], part=p)
        if self.plot_keys:
            for r in records:
                self._trace(r["key"], r["time"], r["y"], r["prediction"], r["forecast"],
                            r["low"], r["high"])

    def _evicted(self, p, st, m, n):
        """``n`` keys of partition ``p``'s model were evicted: forget what is kept of them."""
        st["evicted"] += n
        before = self.evicted
        self.evicted += n
        last_of = self.last_of[p]
        gone = [k for k in last_of if k not in m]
        for k in gone:
            del last_of[k]
            self._made.pop(k, None)
            if self.scorer is not None:
                self.scorer.forget(k)
        if before < 10 or self.evicted // 1000 != before // 1000:
            log.warning("more than %d keys in partition %s: evicted its least recently seen "
                        "keys (%d evicted so far); a returning key starts afresh with the "
                        "shared weights", self.max_keys, p, self.evicted)

    # ------------------------------------------------------------------ the loop
    def run(self, limit=0, idle_exit=0.0, progress=None):
        """As :meth:`Runner.run`; part-filled batches are learned after ``max_wait`` seconds
        and at the end.

        With ``learn_thread``, a batch is learned in a second thread while this one settles
        the batch begun before it (its statistics, dead letters, records, scores and
        position) and reads the next messages. One batch at most is in that thread, and
        batches are settled in the order they were begun, so records and dead letters come
        out in the order of a run without it; a batch of the partition whose model is being
        learned waits for that model. A checkpoint, a revocation, an assignment and the end
        of the run first settle the batch in the thread: a checkpoint holds whole settled
        batches, with their records out, as without it. While the thread runs, the
        interpreter's switch interval is at most ``switch_interval`` (restored at the end)."""
        n = 0
        last_msg = time.monotonic()
        # columns straight from the source when it can (Kafka), unless --limit cuts a read
        columns = None if limit else getattr(self.source, "read_columns", None)
        read = columns or self.source.read
        lean, self._lean = self._lean, True
        switch = sys.getswitchinterval()
        if self.learn_thread:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="streamrnn-learn")
            if self.switch_interval is not None:
                sys.setswitchinterval(min(switch, self.switch_interval))
        try:
            while not self.stop:
                timeout = 0.5 if not idle_exit else max(0.0, min(0.5, idle_exit))
                if self._buf and self.max_wait < timeout:
                    timeout = max(0.0, self.max_wait)
                batch = read(timeout)
                if batch is None:
                    break
                if batch:
                    last_msg = time.monotonic()
                    if columns is not None:
                        n += sum(map(len, batch.values()))
                    else:
                        if limit and n + len(batch) >= limit:
                            batch = batch[:limit - n]
                            self.stop = True
                        n += len(batch)
                    self.feed(batch, records=False)
                    self.sink.tick()
                    self._dead_letter_refused()
                elif idle_exit and time.monotonic() - last_msg >= idle_exit:
                    log.info("nothing arrived for %.1f s: stopping", idle_exit)
                    break
                if self._buf:
                    self.flush(waited=self.max_wait, records=False)
                if progress is not None:
                    progress(self)
            self.flush(records=False)
            self.sink.tick()
            self._finish()
        except BaseException:
            self.failed = True
            raise
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:
                # after an error the batch in the thread is not settled (no checkpoint
                # moves past it); the thread finishes its step first
                self._inflight = None
                pool.shutdown(wait=True)
                sys.setswitchinterval(switch)
            self._lean = lean
        return n


def tune_gc(young=50_000):
    """Collect garbage less often in a streaming process: what lives for the whole run (the
    models, the modules) is frozen out of the collector's scans, and a young-generation
    collection runs every ``young`` new container objects instead of 700, so the many
    short-lived ones of each batch (observations, feature dicts, records) are not scanned
    again and again. The loop makes few reference cycles; ``streamrnn forecast`` and
    ``backtest`` call this (a library user decides for their own process)."""
    import gc
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(young, g1, g2)


def _global_of(c):
    """The GlobalForecaster a checkpoint holds."""
    from streamrnn.checkpoint import GLOBAL_KEY, CheckpointError
    models = c.models
    if set(models) != {GLOBAL_KEY}:
        raise CheckpointError(f"{c.path} holds per-key models (--per-key-models), not one "
                              "global model")
    return models[GLOBAL_KEY]


def _save_global(store, p, model, spec, source, offset, extra):
    from streamrnn.checkpoint import GLOBAL_KEY
    store.save(p, {GLOBAL_KEY: model}, spec, source, offset, extra=extra)
