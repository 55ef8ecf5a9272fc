"""The ``streamrnn`` command.

``streamrnn forecast`` reads observations from a source, keeps one global model per source
partition (one network shared by the partition's series keys, ``streamrnn.GlobalForecaster``,
learned in batches; ``--per-key-models``: one forecaster per key), writes for every
observation the one-step prediction made *before* learning it and the anomaly score of the
value against it (and, with ``--horizon``, the forecast of the next steps after
learning it with its interval), and checkpoints the models together with the source position.
Without ``--source`` it replays river's WaterFlow dataset (1,268 hourly flow readings of a water
pipe) as a demo.

``streamrnn backtest`` replays a source the same way and scores every step ahead against the
last value and the seasonal naive forecast, and the intervals by coverage and width
(:mod:`streamrnn.backtest`); ``streamrnn inspect``
shows what a checkpoint holds without building a model.

The processing loops are :class:`streamrnn.streams.batched.GlobalRunner` and
:class:`streamrnn.streams.Runner`, usable from Python; this module only parses arguments and
prints.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import time
import warnings

from streamrnn import _registry
from streamrnn import checkpoint as ck
from streamrnn.streams import (BadMessages, Decoder, NullSink, open_sink, open_source,
                               parse_address)
from streamrnn.streams import messages as _msg
from streamrnn.streams.files import MAX_LINE_BYTES, DatasetSource
from streamrnn.streams.report import (coverage_sentence, horizon_table, key_table,
                                      need_matplotlib, plot_trace, verdict)
from streamrnn.streams.batched import BATCH, MAX_WAIT, GlobalRunner, tune_gc
from streamrnn.streams.runner import ALPHA, MAX_FEATURES, MAX_KEYS, Runner
from streamrnn.streams.scoring import BASELINE_NOTE, BatchScore, naive_season

from streamrnn.spec import default_lr, model_spec

__all__ = ["main", "build_parser"]

GLOBAL_MAX_FEATURES = 64  # GlobalForecaster's default max_features
GLOBAL_LR = 0.001         # and its Adam learning rate

log = logging.getLogger("streamrnn")


# ---------------------------------------------------------------------------- presentation
class Progress:
    """A live status line on stderr (only on a terminal, and never while records go to the
    same terminal)."""

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
        t = runner.run_totals()
        rate = (t["messages"] - self.last_n) / max(1e-9, now - self.last_t)
        self.last, self.last_n, self.last_t = now, t["messages"], now
        mae = t["abs_error"] / t["scored"] if t["scored"] else float("nan")
        ck_txt = ("" if runner.store is None else "  checkpoint " + (
            "never" if runner.last_checkpoint is None
            else f"{time.time() - runner.last_checkpoint:.0f}s ago"))
        line = (f"{t['messages']:>10,d} msgs {rate:>9,.0f}/s  keys {runner.n_keys:,d}  "
                f"MAE {mae:.4g}  bad {t['bad']:,d}{ck_txt}")
        if runner.evicted:
            line += f"  evicted {runner.evicted:,d}"
        # \r and erase-to-end-of-line: a shorter line leaves nothing of the previous one
        self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        self.stream.flush()


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(text):
    v = str(text).upper()
    if v not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)} "
                                         "(any case)")
    return v


# ---------------------------------------------------------------------------- command line
class _Parser(argparse.ArgumentParser):
    """An error in a subcommand's options prints that subcommand's usage, not the top one."""

    def parse_args(self, args=None, namespace=None):
        args, extra = self.parse_known_args(args, namespace)
        if extra:
            sub = self._subparser_for(args)
            (sub or self).error(f"unrecognized arguments: {' '.join(extra)}")
        return args

    def _subparser_for(self, args):
        for a in self._actions:
            if isinstance(a, argparse._SubParsersAction):
                return a.choices.get(getattr(args, "command", None))
        return None


class _Version(argparse.Action):
    """``--version`` on one line (argparse's own action wraps it at the terminal's width)."""

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(_version() + "\n")
        parser.exit()


def _version():
    from streamrnn import __version__
    from streamrnn.streams.messages import json_backend
    try:
        from streamrnn._core import _cells
        kernels = f", kernels {_cells.ISA}"
    except (ImportError, AttributeError):
        kernels = ""
    return (f"streamrnn {__version__} (Python {sys.version.split()[0]}{kernels}, JSON parser "
            f"{json_backend}, checkpoint format {ck.FORMAT_VERSION})")


def _stream_options(f, demo_horizon):
    """The options forecast and backtest share: the source, the model, the fields, limits."""
    f.add_argument("--source", help="file.csv, file.jsonl, - (stdin), "
                   "kafka://HOST:PORT/TOPIC?group=NAME or mqtt://HOST:PORT/TOPIC "
                   "(default: replay river's WaterFlow dataset)")
    f.add_argument("--target", default="y", help="field (CSV: column) holding the value")
    f.add_argument("--key", default=None, help="field naming the series; @key: the Kafka "
                   "message key (default for Kafka); @topic or @topic:N: the MQTT topic or one "
                   "of its levels (default for MQTT: @topic); none: a single series")
    f.add_argument("--time", default=None, help="field holding the time stamp (ISO 8601 or "
                   "epoch seconds/milliseconds; copied into each record; the plot's x-axis)")
    m = f.add_argument_group(
        "model", "By default each source partition gets one global model: one network shared "
        "by all the partition's series, with a small state per key (streamrnn."
        "GlobalForecaster), learned in batches. --per-key-models gives each key a forecaster "
        "of its own instead (streamrnn.GRUForecaster etc., one message at a time). Every "
        "option below applies to both unless it says otherwise.")
    m.add_argument("--per-key-models", action="store_true",
                   help="one forecaster per key instead of one global model per partition "
                   "(tens of KB per key against under 1 KB, each key learning alone; "
                   "--seasonality auto and several seasons need it); the summary gives the "
                   "state per key")
    m.add_argument("--model", choices=sorted(_registry.CELLS), default="gru",
                   help="the recurrent cell")
    m.add_argument("--hidden-size", type=int, default=16, help="units per layer")
    m.add_argument("--num-layers", type=int, default=1, help="stacked recurrent layers")
    m.add_argument("--tbptt-steps", type=int, default=16,
                   help="steps of truncated backpropagation through time")
    m.add_argument("--update-every", type=int, default=1,
                   help="learn (one truncated-BPTT update) every N values (global model: a key "
                   "takes part in the network's update every N of its values, its learn_every)")
    m.add_argument("--threads", type=_threads, default=1,
                   help="global model: threads a batch's network step is shared by (the "
                   "same results for any number; more only pays with idle cores: on 2 "
                   "cores shared with other work it measured from 0.7x to 1.4x)")
    m.add_argument("--lr", type=float, default=None,
                   help="Adam's learning rate (default: the models' own, "
                   f"{default_lr():g} per key, {GLOBAL_LR:g} for the global model)")
    m.add_argument("--seasonality", type=_seasonality, default=None, metavar="auto|M|M1,M2",
                   help="season length(s) in steps: M declares one (24 for hourly data with a "
                   "daily cycle), the same for every key; 0: none. Per-key models only: auto "
                   "finds the period of each series as it streams, and a comma list declares "
                   "several (24,168: daily and weekly). Default: 0 for the global model (24 in "
                   "the built-in demo), auto for per-key models. The first declared season is "
                   "also the seasonal naive baseline's")
    m.add_argument("--seed", type=int, default=42, help="seed of the initial weights")
    m.add_argument("--horizon", type=_horizon, default=None, help="steps forecast after "
                   "each observation, with an interval each, and the steps the model's head "
                   f"learns directly (default {demo_horizon[0]}; {demo_horizon[1]} for the "
                   "built-in demo" + ("; 0: no forecast, a one-step head" if
                                      not demo_horizon[0] else "") + ")")
    m.add_argument("--alpha", type=_alpha, default=ALPHA, help="the intervals' miss rate: "
                   "low and high bound a 1 - alpha interval (0.1: 90%%)")
    f.add_argument("--limit", type=_nonnegative, default=0, metavar="N",
                   help="stop after N messages (0: no limit)")
    f.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                   help="stop when nothing has arrived for this long (default: never for "
                   "forecast; 5 for a backtest of Kafka or MQTT)")
    f.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="keep retrying a first connection to Kafka or MQTT (with backoff) for "
                   "this long, then fail naming the address")
    f.add_argument("--dead-letter", metavar="URL", help="sink for bad messages and for "
                   "forecasts the sink refused for good")
    lim = f.add_argument_group("limits", "what one message or the whole run may cost; a message "
                               "over a limit is a bad message (counted, dead-lettered), except "
                               "for --max-keys and --max-features (see each)")
    lim.add_argument("--max-keys", type=_positive, default=MAX_KEYS, metavar="N",
                     help="keys kept at once (global model: per partition, its max_keys; "
                     "per-key models: models in all); a new key beyond this evicts the least "
                     "recently seen key (which, if it returns, starts afresh)")
    lim.add_argument("--max-features", type=_nonnegative, default=None, metavar="N",
                     help="feature columns a model may learn (its max_features; per-key "
                     f"models: each key's, default {MAX_FEATURES}; global model: fixed by the "
                     f"first batch a partition learns, default {GLOBAL_MAX_FEATURES}); "
                     "features first seen beyond them are ignored, and counted in the summary")
    lim.add_argument("--batch", type=_positive, default=BATCH, metavar="N",
                     help="global model: messages of one partition learned together (the "
                     "batch cuts are deterministic, so a resumed run learns what an "
                     "uninterrupted one would)")
    lim.add_argument("--max-wait", type=_seconds, default=MAX_WAIT, metavar="SECONDS",
                     help="global model: a part-filled batch is learned after waiting this "
                     "long for more messages (its records come out then)")
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
    out = f.add_argument_group("output")
    out.add_argument("--plot", metavar="FILE.png", help="plot, per key, actual, the one-step "
                     "prediction and the last forecast, each with its interval shaded (on the "
                     "--time axis when given); needs matplotlib, checked before anything is "
                     "read")
    out.add_argument("--plot-keys", type=_positive, default=6, metavar="N",
                     help="keys drawn by --plot (the first N seen; the output names them)")
    out.add_argument("--quiet", action="store_true", help="no progress line and no summary "
                     "(errors are still printed)")
    out.add_argument("--log-level", type=_log_level, default="WARNING",
                     help=f"{', '.join(LOG_LEVELS)}: how much is logged to stderr")
    return out


def build_parser():
    ap = _Parser(prog="streamrnn", description="Recurrent forecasters that keep learning while "
                 "the data streams in.")
    ap.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    fmt = _DefaultsShown
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    f = sub.add_parser("forecast", help="learn and forecast a stream of many series",
                       description="Learn and forecast a stream of series (keys): one "
                       "global model per source partition, shared by its keys (the default), "
                       "or one model per key (--per-key-models). "
                       "Forecast records go to --sink as JSON lines {key, time, partition, "
                       "offset, y, prediction, anomaly, forecast, low, high}: prediction was "
                       "made before y arrived, anomaly (0 to 1, higher is rarer) scores y "
                       "against it, forecast holds the next --horizon steps and low/high their "
                       "1 - alpha intervals. Progress and the summary go to stderr. Exit status: "
                       "0 done, 2 an error (a message says what), 130 stopped by Ctrl-C (after "
                       "a final checkpoint).", formatter_class=fmt)
    out = _stream_options(f, (0, 24))
    out.add_argument("--sink", help="- (stdout, the default; the demo writes nothing when stdout "
                     "is a terminal), file.jsonl, kafka://HOST:PORT/TOPIC or "
                     "mqtt://HOST:PORT/TOPIC[{key}]")
    c = f.add_argument_group("checkpoints")
    c.add_argument("--checkpoint", metavar="DIR", help="directory of per-partition checkpoints; "
                   "resumes from it when it holds some")
    c.add_argument("--checkpoint-every", type=int, default=10000, metavar="N",
                   help="checkpoint after every N messages (and at the end)")

    b = sub.add_parser("backtest", help="replay a file (or any source) and score the forecasts "
                       "per step ahead against last value and seasonal naive",
                       description="Replay a source through the models (one global model "
                       "per partition, or with --per-key-models one per key), forecasting "
                       "each value before learning it, and score every step ahead (MAE, sMAPE, "
                       "MASE, the intervals' coverage and width) against the last value and, "
                       "with a declared season, the seasonal naive forecast. The table goes to "
                       "stdout (--json: as JSON); exit 0.",
                       formatter_class=fmt)
    out = _stream_options(b, (1, 24))
    out.add_argument("--naive-seasonality", type=_nonnegative, default=None, metavar="M",
                     help="season length of the seasonal naive baseline only, leaving the "
                     "model's --seasonality as it is (default: --seasonality)")
    out.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    out.add_argument("--table-keys", type=_nonnegative, default=20, metavar="N",
                     help="keys (the first seen) also scored and shown one by one")

    i = sub.add_parser("inspect", help="what a checkpoint holds, without building models",
                       description="Show what a checkpoint file (or each file of a checkpoint "
                       "directory) holds: format version, streamrnn version, creation time, "
                       "model spec, source, position, keys and sizes. Nothing is built; a file "
                       "that is not a valid checkpoint gives a clear error and exit 2.",
                       formatter_class=fmt)
    i.add_argument("checkpoint", metavar="CHECKPOINT", help="a .srnn file or a directory of them")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.add_argument("--keys", type=_nonnegative, default=10, metavar="N",
                   help="keys listed per file (JSON lists them all)")
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


def _threads(text):
    from streamrnn._core._shared import MAX_THREADS
    v = _positive(text)
    if v > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_THREADS}, got {v}")
    return v


def _nonnegative(text):
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


MAX_PERIODS = 4  # the forecasters' limit on declared periods


def _horizon(text):
    v = _nonnegative(text)
    limit = _registry.LIMITS.get("horizon")
    if limit is not None and v > limit:
        raise argparse.ArgumentTypeError(f"must be at most {limit:,d}, got {v}")
    return v


def _seasonality(text):
    """``auto``, ``0`` (none), a season length ``M`` >= 2, or distinct lengths ``M1,M2,...``
    (returned as "auto", an int, or a tuple of ints)."""
    t = str(text).strip()
    if t.lower() == "auto":
        return "auto"
    parts = [q.strip() for q in t.split(",")]
    usage = ("write auto, 0 (none), a season length such as 24, or several such as 24,168")
    if not all(q.isdigit() and q.isascii() for q in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: {usage}")
    vals = [int(q) for q in parts]
    limit = _registry.LIMITS["seasonality"]
    if vals == [0]:
        return 0
    for v in vals:
        if not 2 <= v <= limit:
            raise argparse.ArgumentTypeError(
                f"{text!r}: a season length is an int in [2, {limit:,d}] (0 alone: none), "
                f"got {v}")
    if len(set(vals)) != len(vals):
        raise argparse.ArgumentTypeError(f"{text!r}: a season length is given twice")
    if len(vals) > MAX_PERIODS:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_PERIODS} season lengths")
    return vals[0] if len(vals) == 1 else tuple(vals)


def _seconds(text):
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds >= 0")
    return v


def _alpha(text):
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number between 0 and 1 "
                                         "(0.1: 90% intervals)")
    return v


class _Stopped:
    """SIGINT/SIGTERM stop the runner (it checkpoints and the summary is printed); the exit
    status is then 128 + the signal number (130 for Ctrl-C)."""

    def __init__(self):
        self.signum = None
        self.runner = None

    def __call__(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signum = signum
        if self.runner is not None:
            self.runner.stop = True

    def install(self):
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)
        return self

    def status(self):
        return 0 if self.signum is None else 128 + int(self.signum)


class _Models:
    """What the options say about the models: ``spec`` (checkpointed), ``factory`` (None: the
    spec's), ``per_key``, and ``cell``, ``params`` for the reports."""

    def __init__(self, spec, factory, per_key, cell, params):
        self.spec, self.factory, self.per_key = spec, factory, per_key
        self.cell, self.params = cell, params
        self.naive_season = naive_season({"params": params})

    def describe(self):
        return self.spec

    def runner(self, args, source, sink, horizon, **kw):
        if self.per_key:
            return Runner(self.spec, source, sink, horizon=horizon, max_keys=args.max_keys,
                          alpha=args.alpha, model_factory=self.factory, **kw)
        scorer = (BatchScore(horizon, self.naive_season, alpha=args.alpha) if horizon
                  else None)
        from streamrnn._core._shared import set_threads
        set_threads(getattr(args, "threads", 1))  # for the networks the runner builds
        return GlobalRunner(self.spec, source, sink, horizon=horizon, max_keys=args.max_keys,
                            alpha=args.alpha, model_factory=self.factory, batch=args.batch,
                            max_wait=args.max_wait, scorer=scorer, **kw)


def _spec(args, horizon, demo=False):
    """The models of the options; ``horizon`` (>= 1) is also the model's head size (0: no
    forecast, so a head of one step: the one-step predictions are all the records need, and a
    one-step model costs about half a 24-step one per message and in the checkpoint)."""
    lr = args.lr if args.lr is not None else default_lr()
    if args.per_key_models:
        season = args.seasonality if args.seasonality is not None else "auto"
        max_f = args.max_features if args.max_features is not None else MAX_FEATURES
        spec = model_spec(args.model, lr=lr, hidden_size=args.hidden_size,
                          num_layers=args.num_layers, tbptt_steps=args.tbptt_steps,
                          update_every=args.update_every, seasonality=season,
                          horizon=horizon or 1, max_features=max_f, seed=args.seed)
        return _Models(spec, None, True, spec["cell"], spec["params"])
    season = args.seasonality
    if season is None:
        season = 24 if demo else 0  # WaterFlow is hourly
    elif season == "auto":
        raise ValueError("--seasonality auto finds each series' own period, which only "
                         "per-key models do: the global model shares one declared period "
                         "among its keys. Give the period (--seasonality 24 for hourly data "
                         "with a daily cycle; 0 for none), or add --per-key-models")
    elif isinstance(season, tuple):
        raise ValueError(f"--seasonality {','.join(map(str, season))}: the global model takes "
                         "one period; several seasons need --per-key-models")
    max_f = args.max_features if args.max_features is not None else GLOBAL_MAX_FEATURES
    spec = model_spec(args.model, model="global", lr=args.lr, hidden_size=args.hidden_size,
                      num_layers=args.num_layers, tbptt_steps=args.tbptt_steps,
                      learn_every=args.update_every, seasonality=season,
                      horizon=horizon or 1, max_keys=args.max_keys, max_features=max_f,
                      seed=args.seed)
    return _Models(spec, None, False, spec["cell"], spec["params"])


def _where(role, address):
    return f"the {role} {address}"


def _open_role(role, address, fn):
    """Run ``fn()``; a connection or file error names the role and address."""
    try:
        return fn()
    except ConnectionError as e:
        raise ConnectionError(f"cannot connect to {_where(role, address)}: {e}") from None
    except (OSError, ValueError) as e:
        if isinstance(e, (ck.CheckpointError,)):
            raise
        msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        if isinstance(e, OSError) and e.filename and address not in msg:
            msg = f"{msg}: {e.filename}"
        if msg.startswith(address):  # e.g. a file's own error, which names it already
            msg = msg[len(address):].lstrip(": ")
        raise type(e)(f"{_where(role, address)}: {msg}") from None


def _open_source(args, demo, bad):
    if demo:
        from river.datasets import WaterFlow
        return DatasetSource(WaterFlow(), key="waterflow", bad=bad)
    scheme = parse_address(args.source)["scheme"]
    key = args.key
    if key is None:
        key = {"kafka": "@key", "mqtt": "@topic"}.get(scheme)
    elif key.lower() == "none":
        key = None
    decoder = Decoder(args.target, key, args.time, max_bytes=args.max_message_bytes,
                      max_depth=args.max_depth, max_fields=args.max_fields,
                      max_key_chars=args.max_key_chars, max_time_chars=args.max_time_chars)
    extra = {"connect_timeout": args.connect_timeout} if scheme in ("kafka", "mqtt") else {}
    return _open_role("source", args.source, lambda: open_source(
        args.source, decoder, bad, max_line_bytes=args.max_line_bytes, **extra))


def _stdout_is_terminal():
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _stderr_is_terminal():
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def forecast_command(args) -> int:
    demo = args.source is None
    horizon = args.horizon if args.horizon is not None else (24 if demo else 0)
    if args.plot:
        _check_plot(args.plot)  # before anything is read, not after the whole run
    spec = _spec(args, horizon, demo)  # the models: a bad combination fails here
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
    timeout = args.connect_timeout
    dead = (_open_role("dead-letter sink", args.dead_letter,
                       lambda: open_sink(args.dead_letter, connect_timeout=timeout))
            if args.dead_letter else None)
    opened.append(dead)
    bad = BadMessages(dead, max_payload_bytes=args.dead_letter_bytes)
    source = _open_source(args, demo, bad)
    opened.append(source)
    to_terminal = args.sink in (None, "-") and _stdout_is_terminal()
    note = None
    if demo and args.sink is None and to_terminal:
        sink = NullSink()  # 1,268 records of JSON would flood the screen
        note = ("the demo writes no records to a terminal (--sink - shows them, --sink FILE "
                "keeps them, a pipe or redirection gets them)")
    else:
        sink = _open_role("sink", args.sink or "-",
                          lambda: open_sink(args.sink, connect_timeout=timeout))
    opened.append(sink)
    stopped = _Stopped().install()
    runner = spec.runner(args, source, sink, horizon, store=store,
                         checkpoint_every=args.checkpoint_every if store else 0, bad=bad,
                         plot_keys=args.plot_keys if args.plot else 0)
    stopped.runner = runner
    if hasattr(source, "on_assign"):  # Kafka: partitions arrive through the group
        source.on_assign = _announcing(runner, args.quiet)
        source.on_revoke = runner.revoke
    else:
        starts = _announcing(runner, args.quiet)([0])
        if starts.get(0, 0) > 0:
            source.seek({0: starts[0]})
    # a progress line only where it cannot interleave with the records
    show = not args.quiet and _stderr_is_terminal() and not (to_terminal and
                                                             not isinstance(sink, NullSink))
    progress = Progress() if show else None
    if note and not args.quiet:
        sys.stderr.write(f"streamrnn: {note}\n")
    t0 = time.monotonic()
    tune_gc()
    try:
        n = runner.run(limit=args.limit, idle_exit=args.idle_exit or 0.0, progress=progress)
    finally:
        runner.closing = True
        opened.remove(source)
        source.close()  # Kafka: the group revokes, the runner checkpoints (unless it failed)
    # the sinks are closed (flushed, fsync-ed) before the summary
    for s in (sink, dead):
        if s is not None:
            opened.remove(s)
            s.close()
    elapsed = time.monotonic() - t0
    if progress is not None:
        progress(runner, final=True)
    drawn, failed = _draw(runner, args, "forecast")
    if not args.quiet:
        _summary(runner, n, elapsed, args, spec, drawn, stopped)
    if failed:  # after the summary, which a failed plot must not take with it
        sys.stderr.write(f"streamrnn: error: {failed}\n")
        return 2
    return stopped.status()


def _check_plot(path):
    need_matplotlib()
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise FileNotFoundError(f"--plot {path}: no directory {d}")
    if not os.access(d, os.W_OK):
        raise PermissionError(f"--plot {path}: {d} is not writable")


def _draw(runner, args, command):
    """Plot if asked: ``(drawn, None)``, or ``(None, message)`` when the plot failed."""
    if not args.plot:
        return None, None
    try:
        return plot_trace(runner, args.plot, args.target,
                          title=f"streamrnn {command}: {_source_name(args)}"), None
    except (OSError, ValueError, RuntimeError) as e:
        return None, f"--plot {args.plot}: {e}"


def _source_name(args):
    return {None: "the WaterFlow demo", "-": "standard input"}.get(args.source, args.source)


def _announcing(runner, quiet):
    """``runner.restore`` that says on stderr what it resumed (not only in the log)."""
    def restore(partitions):
        starts = runner.restore(partitions)
        for p in partitions:
            if p in runner.resumed and not quiet:
                off, nm = runner.resumed.pop(p)
                what = (f"its global model of {_plural(nm, 'key')}"
                        if isinstance(runner, GlobalRunner) else _plural(nm, "model"))
                sys.stderr.write(f"streamrnn: resuming partition {p} from "
                                 f"{runner.store.path(p)} at offset {off:,d} with {what}\n")
        return starts
    return restore


def _plural(n, word):
    return f"{n:,d} {word}{'' if n == 1 else 's'}"


def _bad_text(runner, t):
    txt = f"{t['bad']:,d} bad"
    kinds = {k: v for k, v in runner.bad.by_reason.items() if k != "undeliverable forecast"}
    if kinds:
        txt += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) + ")"
    return txt


def _summary(runner, n, elapsed, args, spec, drawn, stopped):
    w = sys.stderr.write
    t, cum = runner.run_totals(), runner.totals()
    stop = " (stopped by a signal)" if stopped.signum is not None else ""
    w(f"streamrnn forecast: {n:,d} messages in {elapsed:.1f} s ({n / max(elapsed, 1e-9):,.0f}/s)"
      f"{stop}, {_plural(runner.n_keys, 'key')}, {_bad_text(runner, t)}")
    if t["undeliverable"]:
        w(f", {t['undeliverable']:,d} forecasts the sink refused (dead-lettered)")
    if runner.evicted:
        w(f", {runner.evicted:,d} keys evicted (over --max-keys {runner.max_keys:,d}; a "
          "returning key starts afresh)")
    if t["ignored_features"]:
        w(f", {t['ignored_features']:,d} feature values ignored (features first seen after a "
          f"key's model had --max-features {args.max_features:,d})")
    w("\n")
    if cum["messages"] != t["messages"]:
        w(f"  with the resumed checkpoints: {cum['messages']:,d} messages in all, "
          f"{cum['bad']:,d} bad\n")
    if t["scored"]:
        mae, naive = t["abs_error"] / t["scored"], t["abs_error_last"] / t["scored"]
        gain = (1 - mae / naive) * 100 if naive > 0 else math.nan
        w(f"  one-step MAE (this run): {spec.cell.upper()} {mae:.4f}  versus "
          f"last value {naive:.4f}  ({abs(gain):.1f}% {'better' if gain >= 0 else 'worse'}; "
          f"{t['scored']:,d} scored)\n")
    sc = runner.scorer
    if sc is not None and sc.scored():
        runs = "with the resumed checkpoints" if runner.scores_resumed else "this run"
        w(f"  forecasts by step ahead ({runs}; each scored when its target arrived):\n")
        for line in horizon_table(sc.table(), spec.cell.upper(), indent="    ",
                                  alpha=runner.alpha):
            w(line + "\n")
        cover = coverage_sentence(sc.table(), runner.alpha)
        if cover:
            w(f"    {cover}\n")
        if sc.m:
            w(f"    {BASELINE_NOTE[0].upper()}{BASELINE_NOTE[1:]}.\n")
    nbytes = runner.state_bytes()
    if nbytes is not None:
        what = ("state per model" if spec.per_key else
                f"one global model per partition ({len(runner.parts):,d}); state per key")
        w(f"  {what}: {nbytes:,d} bytes\n")
    if runner.store is not None:
        w(f"  checkpoints in {runner.store.directory} (positions {runner.positions})\n")
    if drawn:
        _plot_note(w, args.plot, drawn, runner)


def _plot_note(w, path, drawn, runner):
    keys, not_drawn = drawn
    if not keys:
        w(f"  --plot: nothing to plot ({path} not written)\n")
        return
    shown = ", ".join(repr(k) for k in keys)
    w(f"  plot written to {path}: key{'s' if len(keys) > 1 else ''} {shown}")
    if not_drawn:
        w(f"; {not_drawn:,d} other key{'s' if not_drawn > 1 else ''} not drawn "
          "(--plot-keys N draws the first N)")
    last = max(len(runner.trace[k]) for k in keys)
    if last >= runner.trace_len:
        w(f"; each key's last {runner.trace_len:,d} values")
    w("\n")


# ---------------------------------------------------------------------------- backtest
def backtest_command(args) -> int:
    from streamrnn.backtest import backtest
    demo = args.source is None
    horizon = args.horizon if args.horizon is not None else (24 if demo else 1)
    if horizon < 1:
        raise ValueError("backtest needs --horizon >= 1")
    if args.plot:
        _check_plot(args.plot)
    spec = _spec(args, horizon, demo)
    opened = []
    try:
        dead = (_open_role("dead-letter sink", args.dead_letter,
                           lambda: open_sink(args.dead_letter,
                                             connect_timeout=args.connect_timeout))
                if args.dead_letter else None)
        opened.append(dead)
        bad = BadMessages(dead, max_payload_bytes=args.dead_letter_bytes)
        source = _open_source(args, demo, bad)
        opened.append(source)
        stopped = _Stopped().install()
        show = not args.quiet and _stderr_is_terminal()

        def hook(runner):
            stopped.runner = runner
        idle = args.idle_exit
        if idle is None:
            idle = 5.0 if not demo and parse_address(args.source)["scheme"] in ("kafka",
                                                                               "mqtt") else 0.0
        naive = args.naive_seasonality  # None: the spec's first declared season
        tune_gc()
        if naive is None:
            naive = spec.naive_season
        r = backtest(source, spec.spec, horizon, naive, detail_keys=args.table_keys,
                     idle_exit=idle, alpha=args.alpha,
                     plot_keys=args.plot_keys if args.plot else 0, max_keys=args.max_keys,
                     limit=args.limit, bad=bad, model_factory=spec.factory,
                     progress=Progress() if show else None, runner_hook=hook,
                     global_model=not spec.per_key, batch=args.batch, max_wait=args.max_wait)
        if show:
            sys.stderr.write("\r\x1b[K")
    finally:
        for thing in reversed(opened):
            if thing is not None:
                try:
                    thing.close()
                except Exception as e:  # noqa: BLE001
                    log.debug("closing %s: %s", type(thing).__name__, e)
    drawn, failed = _draw(r.runner, args, "backtest")
    if args.json:
        d = r.to_dict()
        d["model"] = spec.describe()
        if drawn:
            d["plot"] = {"path": args.plot, "keys": drawn[0], "not_drawn": drawn[1]}
        sys.stdout.write(json.dumps(d, indent=1) + "\n")
    else:
        _backtest_report(r, args, spec, drawn, stopped)
    if failed:
        sys.stderr.write(f"streamrnn: error: {failed}\n")
        return 2
    return stopped.status()


def _backtest_report(r, args, spec, drawn, stopped):
    w = sys.stdout.write
    t = r.runner.totals()
    sc = r.scorer
    name = spec.cell.upper()
    w(f"streamrnn backtest of {_source_name(args)}: {r.messages:,d} messages, "
      f"{_plural(sc.keys_seen, 'key')}, {_bad_text(r.runner, t)}; {r.elapsed:.1f} s"
      f"{' (stopped by a signal)' if stopped.signum is not None else ''}\n")
    naive = (f"seasonal naive with season {sc.m} (the last value until a key has a season "
             "of history: every method is scored on the same forecasts)" if sc.m else
             "no seasonal naive baseline (--naive-seasonality M adds one)")
    w(f"  {name} hidden_size={spec.params.get('hidden_size')}, "
      f"{'per-key models' if spec.per_key else 'one global model per partition'}, "
      f"seasonality {_season_text(spec.params.get('seasonality'))}, horizon {sc.h}, "
      f"{100 * (1 - args.alpha):g}% intervals; each value forecast before it was learned\n"
      f"  {naive}\n")
    if not sc.scored():
        w("  nothing scored: a key needs at least 2 values\n")
    else:
        w("\nall keys, by step ahead\n")
        for line in horizon_table(sc.table(), name, alpha=args.alpha):
            w(line + "\n")
        w(f"  {verdict(sc.table(), name)}.\n")
        cover = coverage_sentence(sc.table(), args.alpha)
        if cover:
            w(f"  The {cover}.\n")
        if sc.keys_seen > 1 and sc.per_key:
            w("\nby key (MAE averaged over the steps ahead)\n")
            for line in key_table({k: sc.table(k) for k in sc.per_key}, name):
                w(line + "\n")
            rest = sc.keys_seen - len(sc.per_key)
            if rest > 0:
                w(f"  ({rest:,d} more key{'s' if rest > 1 else ''} only in 'all keys'; "
                  "--table-keys N lists the first N)\n")
        w("\nMAE: mean absolute error. The model's sMAPE: symmetric mean absolute percentage "
          "error (%);\nits MASE: its MAE over the in-sample MAE of the naive forecast one "
          f"{'season' if sc.m else 'step'} back (below 1 beats it);\ncover %: the share of "
          "its intervals that held their target; width: their mean width (high - low).\n")
    if drawn:
        _plot_note(w, args.plot, drawn, r.runner)


def _season_text(v):
    if v in (None, 0):
        return "none"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return str(v)


# ---------------------------------------------------------------------------- inspect
def _inspect_one(path):
    h = ck.read_header(path)
    arrays = h.get("arrays") or []
    size = os.path.getsize(path)
    keys = list(h.get("keys") or [])
    return {"path": os.path.abspath(path), "format": h.get("format"),
            "version": h.get("version"), "streamrnn": h.get("streamrnn"),
            "created": h.get("created"), "spec": h.get("spec"), "source": h.get("source"),
            "position": h.get("position"), "keys": keys, "n_keys": len(keys),
            "file_bytes": size, "array_bytes": sum(int(a.get("nbytes", 0)) for a in arrays),
            "bytes_per_key": (size // len(keys)) if keys else None,
            "extra": h.get("extra") or {}}


def inspect_command(args) -> int:
    path = args.checkpoint
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if f.endswith(".srnn") and not f.startswith("."))
        if not files:
            raise ck.CheckpointError(f"{path}: a directory without checkpoint files "
                                     "(partition-*.srnn)")
    elif os.path.exists(path):
        files = [path]
    else:
        raise ck.CheckpointError(f"{path}: no such file or directory")
    infos = [_inspect_one(f) for f in files]
    if args.json:
        sys.stdout.write(json.dumps(infos[0] if not os.path.isdir(path) else
                                    {"directory": os.path.abspath(path), "files": infos},
                                    indent=1) + "\n")
        return 0
    from streamrnn.spec import canonical
    w = sys.stdout.write
    for i, d in enumerate(infos):
        if i:
            w("\n")
        w(f"{d['path']}\n")
        w(f"  format       {d['format']} version {d['version']}, written by streamrnn "
          f"{d['streamrnn']} at {d['created']}\n")
        s = d["spec"] or {}
        params = ", ".join(f"{k}={v}" for k, v in sorted((s.get("params") or {}).items()))
        opt = s.get("optimizer") or {}
        w(f"  model        {str(s.get('cell', '?')).upper()}  {params}\n")
        loss = (s.get("loss") or {}).get("name")
        w(f"  optimizer    {opt.get('name')} lr={opt.get('lr')}  loss {loss}\n")
        src = d["source"] or {}
        w(f"  source       {', '.join(f'{k}={v}' for k, v in src.items())}\n")
        pos = d["position"] or {}
        w(f"  position     partition {pos.get('partition')}, next offset "
          f"{pos.get('offset', 0):,d}\n")
        keys = d["keys"]
        shown = ", ".join(repr(k) for k in keys[:args.keys])
        more = f", ... ({len(keys) - args.keys:,d} more)" if len(keys) > args.keys else ""
        w(f"  keys         {len(keys):,d}: {shown}{more}\n")
        per = f", {d['bytes_per_key']:,d} per key" if d["bytes_per_key"] else ""
        w(f"  size         {d['file_bytes']:,d} bytes ({d['array_bytes']:,d} of arrays{per})\n")
        st = (d["extra"] or {}).get("stats")
        if isinstance(st, dict) and "messages" in st:
            ign = st.get("ignored_features", 0)
            w(f"  counters     {st.get('messages', 0):,d} messages, {st.get('bad', 0):,d} bad, "
              f"{st.get('evicted', 0):,d} keys evicted"
              + (f", {ign:,d} feature values ignored" if isinstance(ign, int) and ign else "")
              + "\n")
        sc = (d["extra"] or {}).get("scores")
        part = sc.get("part") if isinstance(sc, dict) else None
        if isinstance(part, dict) and isinstance(part.get("config"), dict):
            cfg = part["config"]
            keys = sc.get("keys") if isinstance(sc.get("keys"), dict) else {}
            alpha = cfg.get("alpha")
            level = (f", {100 * (1 - alpha):g}% intervals" if isinstance(alpha, float)
                     and 0 < alpha < 1 else "")
            w(f"  scores       by step ahead, horizon {cfg.get('horizon')}{level}; pending "
              f"forecasts of {len(keys):,d} key{'s' if len(keys) != 1 else ''} (the summary "
              "goes on from them)\n")
        if i == 0 and len(infos) > 1:
            same = all(canonical(x["spec"]) == canonical(d["spec"]) for x in infos)
            w(f"  ({len(infos)} files; {'all with this spec' if same else 'specs differ'})\n")
    return 0


# ---------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # a model reaching --max-features warns once; the summary counts every ignored value
    warnings.filterwarnings("ignore", message=r".*max_features=.*ignored", category=UserWarning)
    level = getattr(args, "log_level", "WARNING")
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "forecast":
            return forecast_command(args)
        if args.command == "backtest":
            return backtest_command(args)
        if args.command == "inspect":
            return inspect_command(args)
    except BrokenPipeError as e:
        # the reader of the output went away: stop (the last checkpoint stays as it is)
        _silence_stdout()
        if args.command == "forecast":
            sys.stderr.write(f"streamrnn: error: the sink's reader closed it ({e}); the last "
                             "checkpoint is kept, a restart replays from it\n")
        else:
            sys.stderr.write(f"streamrnn: error: the reader of the output closed it ({e})\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("streamrnn: interrupted (the last checkpoint is kept)\n")
        return 130
    except (ck.CheckpointError, ImportError, ValueError, ConnectionError, OSError) as e:
        sys.stderr.write(f"streamrnn: error: {e}\n")
        hint = _options_for(str(e)) if isinstance(e, ck.CheckpointError) else ""
        if hint:
            sys.stderr.write(f"streamrnn: the options that set these fields: {hint}\n")
        return 2
    return 1


_SPEC_OPTIONS = {"cell": "--model", "optimizer.lr": "--lr"}


def _options_for(message):
    """The command options behind the fields a spec difference lists (``params.hidden_size:
    16 (checkpoint) != 32 (this run)`` -> ``--hidden-size``)."""
    opts = []
    known = {a.dest for a in _forecast_actions()}
    for line in message.splitlines():
        field, sep, rest = line.partition(": ")
        if not sep or " != " not in rest:
            continue
        opt = _SPEC_OPTIONS.get(field)
        if opt is None and field.startswith("params."):
            name = field[len("params."):]
            opt = "--" + name.replace("_", "-") if name in known else None
        if opt and opt not in opts:
            opts.append(opt)
    return ", ".join(opts)


def _forecast_actions():
    ap = build_parser()
    for a in ap._actions:
        if isinstance(a, argparse._SubParsersAction):
            return a.choices["forecast"]._actions
    return []


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
