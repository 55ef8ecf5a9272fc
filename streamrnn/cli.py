"""The ``streamrnn`` command.

``streamrnn forecast`` reads observations from a source, keeps one forecaster per series key,
writes for every observation the one-step prediction made *before* learning it (and, with
``--horizon``, the forecast of the next steps after learning it), and checkpoints the models
together with the source position. Without ``--source`` it replays river's WaterFlow dataset
(1,268 hourly flow readings of a water pipe) as a demo.

The processing loop is :class:`streamrnn.streams.Runner`, usable from Python; this module only
parses arguments and prints.
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
from streamrnn.streams import messages as _msg
from streamrnn.streams.files import MAX_LINE_BYTES, DatasetSource
from streamrnn.streams.runner import MAX_FEATURES, MAX_KEYS, Runner

from streamrnn.spec import default_lr, model_spec

__all__ = ["main", "build_parser"]

log = logging.getLogger("streamrnn")


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
        if runner.evicted:
            line = line.rstrip() + f"  evicted {runner.evicted:,d}   "
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
    fmt = _DefaultsShown
    sub = ap.add_subparsers(dest="command", required=True)
    f = sub.add_parser("forecast", help="learn and forecast a stream, one model per key",
                       description="Learn and forecast a stream, one model per series key. "
                       "Forecast records go to --sink as JSON lines; progress and the summary go "
                       "to stderr.", formatter_class=fmt)
    f.add_argument("--source", help="file.csv, file.jsonl, - (stdin), "
                   "kafka://HOST:PORT/TOPIC?group=NAME or mqtt://HOST:PORT/TOPIC "
                   "(default: replay river's WaterFlow dataset)")
    f.add_argument("--sink", help="- (stdout, default), file.jsonl, kafka://HOST:PORT/TOPIC or "
                   "mqtt://HOST:PORT/TOPIC")
    f.add_argument("--model", choices=["rnn", "lstm", "gru"], default="gru",
                   help="the recurrent cell")
    f.add_argument("--hidden-size", type=int, default=16, help="units per layer")
    f.add_argument("--num-layers", type=int, default=1, help="stacked recurrent layers")
    f.add_argument("--tbptt-steps", type=int, default=16,
                   help="steps of truncated backpropagation through time")
    f.add_argument("--update-every", type=int, default=1,
                   help="learn (one truncated-BPTT update) every N values")
    f.add_argument("--lr", type=float, default=None,
                   help="Adam's learning rate (default: the forecasters' default, 0.001)")
    f.add_argument("--seasonality", type=int, default=0, help="season length (default 0)")
    f.add_argument("--seed", type=int, default=42, help="seed of the initial weights")
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
    f.add_argument("--dead-letter", metavar="URL", help="sink for bad messages and for "
                   "forecasts the sink refused for good")
    lim = f.add_argument_group("limits", "what one message or the whole run may cost; a message "
                               "over a limit is a bad message (counted, dead-lettered)")
    lim.add_argument("--max-keys", type=_positive, default=MAX_KEYS, metavar="N",
                     help="models kept at once; a new key beyond this evicts the least "
                     "recently seen key (which, if it returns, starts with a fresh model)")
    lim.add_argument("--max-features", type=_positive, default=MAX_FEATURES, metavar="N",
                     help="distinct feature names one key's model may learn")
    lim.add_argument("--max-message-bytes", type=_positive, default=_msg.MAX_BYTES, metavar="B",
                     help="largest message")
    lim.add_argument("--max-line-bytes", type=_positive, default=MAX_LINE_BYTES, metavar="B",
                     help="longest line of a file or stdin (a longer line is "
                     "skipped without being buffered whole)")
    lim.add_argument("--max-depth", type=_positive, default=_msg.MAX_DEPTH, metavar="N",
                     help="deepest nesting of JSON arrays and objects")
    lim.add_argument("--max-fields", type=_positive, default=_msg.MAX_FIELDS, metavar="N",
                     help="most fields in a message")
    lim.add_argument("--max-key-chars", type=_positive, default=_msg.MAX_KEY_CHARS, metavar="N",
                     help="longest series key")
    lim.add_argument("--max-time-chars", type=_positive, default=_msg.MAX_TIME_CHARS,
                     metavar="N", help="longest time stamp (copied into each forecast record)")
    lim.add_argument("--dead-letter-bytes", type=_nonnegative, default=_msg.DEAD_LETTER_BYTES,
                     metavar="B", help="payload bytes kept in a dead-letter record (the rest is "
                     "cut; payload_bytes gives the original size)")
    f.add_argument("--plot", metavar="FILE.png", help="plot forecast versus actual")
    f.add_argument("--quiet", action="store_true", help="no progress line and no summary")
    f.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING or ERROR")
    return ap


class _DefaultsShown(argparse.HelpFormatter):
    """Show each option's default, unless its help already says it or there is none."""

    def _get_help_string(self, action):
        h = action.help or ""
        if "default" in h or action.default in (None, False, argparse.SUPPRESS) \
                or not action.option_strings:
            return h
        return h + " (default: %(default)s)"


def _positive(text):
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _nonnegative(text):
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def forecast_command(args) -> int:
    demo = args.source is None
    lr = args.lr if args.lr is not None else default_lr()
    horizon = args.horizon if args.horizon is not None else (24 if demo else 0)
    spec = model_spec(args.model, lr=lr, hidden_size=args.hidden_size,
                      num_layers=args.num_layers, tbptt_steps=args.tbptt_steps,
                      update_every=args.update_every, seasonality=args.seasonality,
                      seed=args.seed)
    # the checkpoint directory first: a locked or read-only one fails before anything is read
    store = ck.CheckpointStore(args.checkpoint) if args.checkpoint else None
    opened = [store]
    try:
        return _forecast(args, demo, horizon, spec, store, opened)
    finally:
        for thing in reversed(opened):  # close what was opened, even after an error
            if thing is not None:
                try:
                    thing.close()
                except Exception as e:  # noqa: BLE001 - the first error is the one to report
                    log.debug("closing %s: %s", type(thing).__name__, e)


def _forecast(args, demo, horizon, spec, store, opened):
    dead = open_sink(args.dead_letter) if args.dead_letter else None
    opened.append(dead)
    bad = BadMessages(dead, max_payload_bytes=args.dead_letter_bytes)
    if demo:
        from river.datasets import WaterFlow
        source = DatasetSource(WaterFlow(), key="waterflow", bad=bad)
    else:
        scheme = parse_address(args.source)["scheme"]
        key = args.key
        if key is None:
            key = {"kafka": "@key", "mqtt": "@topic"}.get(scheme)
        decoder = Decoder(args.target, key, args.time, max_bytes=args.max_message_bytes,
                          max_depth=args.max_depth, max_fields=args.max_fields,
                          max_key_chars=args.max_key_chars, max_time_chars=args.max_time_chars)
        source = open_source(args.source, decoder, bad, max_line_bytes=args.max_line_bytes)
    sink = open_sink(args.sink)
    opened.append(sink)
    runner = Runner(spec, source, sink, horizon=horizon, store=store,
                    checkpoint_every=args.checkpoint_every if store else 0, bad=bad,
                    plot_keys=3 if args.plot else 0, max_keys=args.max_keys,
                    max_features=args.max_features)
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
        source.close()  # Kafka: the group revokes, the runner checkpoints (unless it failed)
    # the sinks are closed (flushed, fsync-ed) before the summary
    for s in (sink, dead):
        if s is not None:
            opened.remove(s)
            s.close()
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
    kinds = {k: v for k, v in runner.bad.by_reason.items() if k != "undeliverable forecast"}
    if kinds:
        w(" (" + ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) + ")")
    if t["undeliverable"]:
        w(f", {t['undeliverable']:,d} forecasts the sink refused (dead-lettered)")
    if runner.evicted:
        w(f", {runner.evicted:,d} keys evicted (over --max-keys {runner.max_keys:,d}; a "
          "returning key starts afresh)")
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
    except BrokenPipeError as e:
        # the reader of the output went away: stop (the last checkpoint stays as it is)
        _silence_stdout()
        sys.stderr.write(f"streamrnn: error: the sink's reader closed it ({e}); the last "
                         "checkpoint is kept, a restart replays from it\n")
        return 2
    except (ck.CheckpointError, ImportError, ValueError, ConnectionError, OSError) as e:
        sys.stderr.write(f"streamrnn: error: {e}\n")
        return 2
    return 1


def _silence_stdout():
    """After a broken pipe on stdout, point it at /dev/null so the interpreter's own final
    flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
