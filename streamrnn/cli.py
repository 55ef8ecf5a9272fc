"""The ``streamrnn`` command.

``streamrnn forecast`` reads observations from a source, keeps one forecaster per series key,
writes for every observation the one-step prediction made *before* learning it (and, with
``--horizon``, the forecast of the next steps after learning it), and checkpoints the models
together with the source position. Without ``--source`` it replays river's WaterFlow dataset
(1,268 hourly flow readings of a water pipe) as a demo.

The processing loop is :class:`Runner`, usable from Python (the benchmark drives it).
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import time

from streamrnn import checkpoint as ck
from streamrnn.streams import BadMessages, Decoder, open_sink, open_source, parse_address
from streamrnn.streams.files import DatasetSource

__all__ = ["main", "Runner", "build_parser"]

log = logging.getLogger("streamrnn")

OFFSET_BEGINNING = -2  # librdkafka's "earliest"


class Runner:
    """One forecaster per key, fed from ``source`` and published to ``sink``.

    Positions (partition -> next offset), per-partition counters and the key -> partition map
    (a key lives in the checkpoint of the partition it was first seen in) are kept so that a
    checkpoint of a partition holds exactly the models and the position that belong together.
    """

    def __init__(self, spec, source, sink, horizon=0, store=None, checkpoint_every=0, bad=None,
                 plot_keys=0):
        self.spec = spec
        self.source = source
        self.sink = sink
        self.horizon = horizon
        self.store = store
        self.checkpoint_every = checkpoint_every
        self.bad = bad if bad is not None else getattr(source, "bad", None) or BadMessages()
        self.models = {}
        self.home = {}                      # key -> partition
        self.keys_of = {}                   # partition -> [keys]
        self.positions = {}                 # partition -> next offset
        self.stats = {}                     # partition -> counters
        self.dirty = set()
        self.since_checkpoint = 0
        self.last_checkpoint = None         # time of the last checkpoint
        self.checkpoints = 0
        self.stop = False
        self.closing = False
        self.plot_keys = plot_keys
        self.trace = {}                     # key -> [(offset, y, prediction)]
        self.last_forecast = {}
        self._warned_split = set()
        self._build = lambda: ck.build_model(spec)

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
                raise ck.CheckpointError(f"{c.path} belongs to source {have}, not {want}")
            for key, m in c.models.items():
                self.models[key] = m
                self.home[key] = p
            self.keys_of[p] = list(c.models)
            self.positions[p] = int(c.position["offset"])
            self.stats[p] = dict(c.extra.get("stats", {})) or self._new_stats()
            starts[p] = self.positions[p]
            log.info("resumed partition %s at offset %s with %d models", p, starts[p],
                     len(c.models))
        return starts

    def checkpoint(self, partitions=None, force=False):
        if self.store is None:
            return
        parts = [p for p in (self.positions if partitions is None else partitions)
                 if p in self.positions and (force or p in self.dirty)]
        if not parts:
            return
        # forecasts up to the checkpoint must be out before positions move on: a sink that
        # could not deliver them (returns False) gets no checkpoint, so a restart from the
        # previous one produces them again
        if self.sink.flush() is False:
            log.error("the sink did not deliver every forecast: no checkpoint is written, so a "
                      "restart replays from the previous one")
            return
        for p in parts:
            models = {k: self.models[k] for k in self.keys_of.get(p, ())}
            self.store.save(p, models, self.spec, self.source.describe(p), self.positions[p],
                            extra={"stats": self.stats[p]})
            self.dirty.discard(p)
        self.source.commit({p: self.positions[p] for p in parts})
        self.since_checkpoint = 0
        self.last_checkpoint = time.time()
        self.checkpoints += 1

    def revoke(self, partitions, lost=False):
        """Partitions leave this process: checkpoint them (unless lost) and drop their models."""
        if not lost:
            self.checkpoint(partitions)
        if self.closing:
            return  # shutting down: keep models and counters for the summary
        for p in partitions:
            for key in self.keys_of.pop(p, ()):
                self.models.pop(key, None)
                self.home.pop(key, None)
            self.positions.pop(p, None)
            self.stats.pop(p, None)
            self.dirty.discard(p)

    @staticmethod
    def _new_stats():
        return {"messages": 0, "bad": 0, "scored": 0, "abs_error": 0.0, "abs_error_last": 0.0}

    # ------------------------------------------------------------------ the loop body
    def process(self, obs):
        """Learn one observation and publish its forecast record."""
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
        m = self.models.get(key)
        if m is None:
            m = self.models[key] = self._build()
            self.home[key] = p
            self.keys_of.setdefault(p, []).append(key)
        elif self.home[key] != p and key not in self._warned_split:
            self._warned_split.add(key)
            log.warning("key %r appears in partitions %s and %s; its model is checkpointed with "
                        "partition %s only (exactly-once needs each key in one partition)", key,
                        self.home[key], p, self.home[key])
        hist = m._hist
        last = hist[-1] if hist else None
        try:
            m.learn_one(y, x)  # its forward pass is the prediction made before learning y
            pred = m.last_prediction if last is not None else None
            # the model now holds this message: a checkpoint must place the position after it
            self.positions[p] = obs.offset + 1
        except (ValueError, TypeError) as e:  # the model rejected it and is unchanged
            st["bad"] += 1
            self.bad(obs, f"rejected by the model: {e}")
            self.positions[p] = obs.offset + 1
            return None
        if last is not None:
            st["scored"] += 1
            st["abs_error"] += abs(y - pred)
            st["abs_error_last"] += abs(y - last)
        fc = m.forecast(self.horizon) if self.horizon else []
        rec = {"key": key, "time": obs.time, "partition": p, "offset": obs.offset,
               "prediction": pred, "forecast": fc}
        self.sink.send(rec, key)
        self.positions[p] = obs.offset + 1
        if self.plot_keys:
            tr = self.trace.get(key)
            if tr is None and len(self.trace) < self.plot_keys:
                tr = self.trace[key] = []
            if tr is not None:
                tr.append((obs.offset, y, pred))
                if fc:
                    self.last_forecast[key] = (obs.offset, fc)
        self.since_checkpoint += 1
        if self.checkpoint_every and self.since_checkpoint >= self.checkpoint_every:
            self.checkpoint()
        return rec

    def totals(self):
        t = self._new_stats()
        for st in self.stats.values():
            for k in t:
                t[k] += st[k]
        return t

    def run(self, limit=0, idle_exit=0.0, progress=None):
        """Read until the source ends, ``limit`` messages, ``idle_exit`` seconds without a
        message, or ``stop`` is set; then write a final checkpoint."""
        n = 0
        last_msg = time.monotonic()
        read = self.source.read
        process = self.process
        failed = False
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
                elif idle_exit and time.monotonic() - last_msg >= idle_exit:
                    log.info("nothing arrived for %.1f s: stopping", idle_exit)
                    break
                if progress is not None:
                    progress(self)
        except BaseException:
            # an error escaped (e.g. the sink broke): keep the last checkpoint as it is, so a
            # restart replays from there and repeats outputs rather than losing any
            failed = True
            raise
        finally:
            if not failed:
                self.checkpoint()
                self.sink.flush()
        return n


# ---------------------------------------------------------------------------- presentation
class Progress:
    """A live status line on stderr (only on a terminal)."""

    def __init__(self, stream=sys.stderr, every=0.5):
        self.stream = stream
        self.every = every
        self.t0 = time.monotonic()
        self.last = 0.0
        self.last_n = 0
        self.last_t = self.t0

    def __call__(self, runner, final=False):
        now = time.monotonic()
        if not final and now - self.last < self.every:
            return
        t = runner.totals()
        rate = (t["messages"] - self.last_n) / max(1e-9, now - self.last_t)
        self.last, self.last_n, self.last_t = now, t["messages"], now
        mae = t["abs_error"] / t["scored"] if t["scored"] else float("nan")
        ck_txt = ("never" if runner.last_checkpoint is None
                  else f"{time.time() - runner.last_checkpoint:.0f}s ago")
        line = (f"\r{t['messages']:>10,d} msgs {rate:>9,.0f}/s  keys {len(runner.models):,d}  "
                f"MAE {mae:.4g}  bad {t['bad']:,d}  checkpoint {ck_txt}   ")
        self.stream.write(line + ("\n" if final else ""))
        self.stream.flush()


def _plot(runner, path, target):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'streamrnn[plot]'") from None
    keys = list(runner.trace)
    if not keys:
        log.warning("--plot: nothing to plot")
        return
    fig, axes = plt.subplots(len(keys), 1, figsize=(11, 3.2 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        tr = runner.trace[key][-600:]
        off = [t[0] for t in tr]
        ax.plot(off, [t[1] for t in tr], color="black", lw=1.2, label="actual")
        pts = [(t[0], t[2]) for t in tr if t[2] is not None]
        ax.plot([a for a, _ in pts], [b for _, b in pts], color="tab:orange", lw=1,
                label="one-step prediction (before learning)")
        if key in runner.last_forecast:
            o, fc = runner.last_forecast[key]
            ax.plot(range(o + 1, o + 1 + len(fc)), fc, color="tab:blue", ls="--",
                    label=f"forecast, next {len(fc)} steps")
        ax.set_title(f"{key}")
        ax.set_xlabel("offset")
        ax.set_ylabel(target)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- command line
def build_parser():
    ap = argparse.ArgumentParser(prog="streamrnn", description="Recurrent forecasters that "
                                 "keep learning while the data streams in.")
    sub = ap.add_subparsers(dest="command", required=True)
    f = sub.add_parser("forecast", help="learn and forecast a stream, one model per key",
                       description="Learn and forecast a stream, one model per series key. "
                       "Forecast records go to --sink as JSON lines; progress and the summary go "
                       "to stderr.")
    f.add_argument("--source", help="file.csv, file.jsonl, - (stdin), "
                   "kafka://HOST:PORT/TOPIC?group=NAME or mqtt://HOST:PORT/TOPIC "
                   "(default: replay river's WaterFlow dataset)")
    f.add_argument("--sink", help="- (stdout, default), file.jsonl, kafka://HOST:PORT/TOPIC or "
                   "mqtt://HOST:PORT/TOPIC")
    f.add_argument("--model", choices=["rnn", "lstm", "gru"], default="gru")
    f.add_argument("--hidden-size", type=int, default=16)
    f.add_argument("--num-layers", type=int, default=1)
    f.add_argument("--tbptt-steps", type=int, default=16)
    f.add_argument("--update-every", type=int, default=1)
    f.add_argument("--lr", type=float, default=None,
                   help="Adam's learning rate (default: the forecasters' default, 0.001)")
    f.add_argument("--seasonality", type=int, default=0, help="season length (default 0)")
    f.add_argument("--seed", type=int, default=42)
    f.add_argument("--horizon", type=int, default=None, help="steps forecast after each "
                   "observation (default 0; 24 for the built-in demo)")
    f.add_argument("--target", default="y", help="field holding the value (default y)")
    f.add_argument("--key", default=None, help="field naming the series; @key: the Kafka "
                   "message key (default for Kafka); @topic or @topic:N: the MQTT topic or one "
                   "of its levels (default for MQTT: @topic)")
    f.add_argument("--time", default=None, help="field holding the time stamp")
    f.add_argument("--checkpoint", metavar="DIR", help="directory of per-partition checkpoints; "
                   "resumes from it when it holds some")
    f.add_argument("--checkpoint-every", type=int, default=10000, metavar="N",
                   help="checkpoint after every N messages (default 10000)")
    f.add_argument("--limit", type=int, default=0, metavar="N", help="stop after N messages")
    f.add_argument("--idle-exit", type=float, default=0.0, metavar="SECONDS",
                   help="stop when nothing has arrived for this long")
    f.add_argument("--dead-letter", metavar="URL", help="sink for bad messages")
    f.add_argument("--plot", metavar="FILE.png", help="plot forecast versus actual")
    f.add_argument("--quiet", action="store_true", help="no progress line and no summary")
    f.add_argument("--log-level", default="WARNING")
    return ap


def forecast_command(args) -> int:
    demo = args.source is None
    lr = args.lr if args.lr is not None else ck.default_lr()
    horizon = args.horizon if args.horizon is not None else (24 if demo else 0)
    spec = ck.model_spec(args.model, lr=lr, hidden_size=args.hidden_size,
                         num_layers=args.num_layers, tbptt_steps=args.tbptt_steps,
                         update_every=args.update_every, seasonality=args.seasonality,
                         seed=args.seed)
    dead = open_sink(args.dead_letter) if args.dead_letter else None
    bad = BadMessages(dead)
    if demo:
        from river.datasets import WaterFlow
        source = DatasetSource(WaterFlow(), key="waterflow", bad=bad)
    else:
        scheme = parse_address(args.source)["scheme"]
        key = args.key
        if key is None:
            key = {"kafka": "@key", "mqtt": "@topic"}.get(scheme)
        source = open_source(args.source, Decoder(args.target, key, args.time), bad)
    sink = open_sink(args.sink)
    store = ck.CheckpointStore(args.checkpoint) if args.checkpoint else None
    runner = Runner(spec, source, sink, horizon=horizon, store=store,
                    checkpoint_every=args.checkpoint_every if store else 0, bad=bad,
                    plot_keys=3 if args.plot else 0)
    if hasattr(source, "on_assign"):  # Kafka: partitions arrive through the group
        source.on_assign = runner.restore
        source.on_revoke = runner.revoke
    else:
        starts = runner.restore([0])
        if starts.get(0, 0) > 0:
            source.seek({0: starts[0]})

    def _stop(signum, frame):
        runner.stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    show = not args.quiet and sys.stderr.isatty()
    progress = Progress() if show else None
    t0 = time.monotonic()
    try:
        n = runner.run(limit=args.limit, idle_exit=args.idle_exit, progress=progress)
    finally:
        runner.closing = True
        source.close()
        sink.close()
        if dead is not None:
            dead.close()
    elapsed = time.monotonic() - t0
    if progress is not None:
        progress(runner, final=True)
    if args.plot:
        _plot(runner, args.plot, args.target)
    if not args.quiet:
        _summary(runner, n, elapsed, args, spec)
    return 0


def _summary(runner, n, elapsed, args, spec):
    t = runner.totals()
    w = sys.stderr.write
    w(f"streamrnn forecast: {n:,d} messages in {elapsed:.1f} s ({n / max(elapsed, 1e-9):,.0f}/s), "
      f"{len(runner.models):,d} keys, {t['bad']:,d} bad")
    if runner.bad.by_reason:
        w(" (" + ", ".join(f"{k}: {v}" for k, v in sorted(runner.bad.by_reason.items())) + ")")
    w("\n")
    if t["scored"]:
        mae, naive = t["abs_error"] / t["scored"], t["abs_error_last"] / t["scored"]
        gain = (1 - mae / naive) * 100 if naive > 0 else math.nan
        w(f"  running MAE of the one-step predictions: {spec['cell'].upper()} {mae:.4f}  versus "
          f"last value {naive:.4f}  ({gain:+.1f}% {'better' if gain >= 0 else 'worse'}; "
          f"{t['scored']:,d} scored)\n")
    if runner.models:
        one = next(iter(runner.models.values()))
        w(f"  state per model: {ck.state_nbytes(one):,d} bytes\n")
    if runner.store is not None:
        w(f"  checkpoints in {runner.store.directory} (positions {runner.positions})\n")
    if args.plot:
        w(f"  plot written to {args.plot}\n")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        if args.command == "forecast":
            return forecast_command(args)
    except (ck.CheckpointError, ImportError, ValueError, ConnectionError, OSError) as e:
        sys.stderr.write(f"streamrnn: error: {e}\n")
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
