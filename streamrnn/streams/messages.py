"""Decode and validate stream messages; count and dead-letter bad messages.

A message is a JSON object. One field holds the target (``y`` unless told otherwise), one may
name the series (the *key*) and one may carry a time stamp; every other field with a number
(or a bool) is an exogenous feature. Fields holding strings, lists, objects or null are not
features and are ignored. The key may also come from outside the payload:

``"@key"``
    the Kafka message key (decoded as UTF-8; a message without a key goes to the default
    series);
``"@topic"``
    the whole MQTT topic;
``"@topic:N"``
    level N (0-based) of the MQTT topic, e.g. ``sensors/+/temp`` with ``@topic:1``.

Nothing here touches a model. A message that cannot be learned is turned into an
:class:`Observation` whose ``error`` says why, so that the caller can count it, log it with its
position and send it to a dead-letter sink, and move on. The decoder never raises for what a
sender put in a message: every failure (including ones the JSON parser itself could not
foresee) becomes a bad message, and the limits below bound what one message may cost.

Limits (:class:`Decoder` parameters; each has a ``streamrnn forecast`` option)
    ``max_bytes`` (1 MiB) the payload size; ``max_depth`` (32) the nesting depth of arrays and
    objects, checked before parsing, so no parser ever recurses deeper; ``max_fields`` (1,000)
    the fields of the top-level object; ``max_key_chars`` (256) the series key;
    ``max_time_chars`` (64) a time stamp (a string, number or null; anything else is bad).
    A message over a limit is a bad message of that kind.
"""
from __future__ import annotations

import json
import logging
import math

__all__ = ["Observation", "Decoder", "BadMessages", "Source", "Sink", "NullSink",
           "Undeliverable", "REASON_KINDS", "json_backend"]

log = logging.getLogger("streamrnn.streams")

_BIG = 2 ** 1023  # ints beyond this do not fit a float

#: The kinds bad messages are counted by (a fixed set: counting never keeps sender text).
REASON_KINDS = ("not JSON", "not an object", "too large", "too deep", "too many fields",
                "too many features", "line too long", "target missing", "target not a number",
                "target not finite", "bad key", "bad time", "feature not finite",
                "rejected by the model", "undeliverable forecast", "other")

MAX_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_FIELDS = 1000
MAX_KEY_CHARS = 256
MAX_TIME_CHARS = 64
DEAD_LETTER_BYTES = 64 << 10


def _loads_backend():
    """orjson when it is installed (it parses typical messages 4-5x faster, which halves the
    decoder's cost; see benchmarks/bench_decode.py), else the standard library's json."""
    try:
        import orjson
    except ImportError:
        dec = json.JSONDecoder().decode

        def loads(payload):
            if isinstance(payload, (bytes, bytearray, memoryview)):
                payload = bytes(payload).decode("utf-8")
            return dec(payload)
        return "json", loads
    return "orjson", orjson.loads


json_backend, _default_loads = _loads_backend()


def _dumps_backend():
    """Records to JSON bytes: orjson when installed (NaN and infinity become null), else the
    standard library's (compact; NaN would be written as NaN, so callers pass None)."""
    try:
        import orjson
    except ImportError:
        enc = json.JSONEncoder(separators=(",", ":")).encode

        def dumps(record):
            return enc(record).encode()
        return False, dumps
    return True, orjson.dumps


#: dumps_bytes(record) -> JSON bytes; NAN_IS_NULL: it writes NaN and infinities as null
NAN_IS_NULL, dumps_bytes = _dumps_backend()


def _floats_backend():
    """dumps_floats(float64 array) -> the JSON bytes dumps_bytes writes for its list of
    floats, without a float object per value (orjson's numpy serialisation), or None."""
    try:
        import orjson
        opt = orjson.OPT_SERIALIZE_NUMPY
    except (ImportError, AttributeError):
        return None

    def dumps_floats(a):
        return orjson.dumps(a, option=opt)
    return dumps_floats


dumps_floats = _floats_backend()


def _short(text, n=64):
    """A sender-chosen name quoted for a reason or a log line, at most ``n`` characters."""
    r = repr(text)
    return r if len(r) <= n else r[:n - 4] + "...'"


class Undeliverable(ValueError):
    """Raised by a sink's ``send`` for a record it can never deliver (e.g. larger than the
    broker accepts); the runner dead-letters the record with this reason and moves on."""


def nesting_depth(data: bytes, limit: int) -> int:
    """A number above ``limit`` exactly when arrays and objects in JSON text ``data`` nest
    deeper than ``limit``; brackets inside strings do not count.

    Linear and vectorised (no recursion, no backtracking pattern): a quote is a string's
    delimiter unless an odd run of backslashes precedes it, and a bracket is structural when
    an even number of delimiters precedes it. For the text before a JSON parser's first
    syntax error this is exactly the parser's view, so no parser ever nests deeper."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return 0  # fast path: not enough brackets to go deeper
    import numpy as np
    a = np.frombuffer(data, dtype=np.uint8)
    opens = (a == 0x5B) | (a == 0x7B)
    closes = (a == 0x5D) | (a == 0x7D)
    if b'"' in data:
        quote = a == 0x22
        if b"\\" in data:
            bs = a == 0x5C
            count = np.cumsum(bs, dtype=np.int64)
            run = count - np.maximum.accumulate(np.where(bs, 0, count))  # backslashes ending here
            quote[1:] &= (run[:-1] & 1) == 0
        inside = (np.cumsum(quote, dtype=np.int64) & 1) == 1
        opens &= ~inside
        closes &= ~inside
    steps = opens.astype(np.int32) - closes.astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


class Observation:
    """One decoded message: ``key, x, y = obs`` unpacks what a model needs.

    Attributes: ``key`` (str), ``x`` (dict of features), ``y`` (float), ``time`` (as sent, or
    None), ``partition`` and ``offset`` (where it came from), ``error`` (None, or the reason the
    message is bad, in which case ``x`` and ``y`` are None), ``kind`` (the reason's kind, one of
    :data:`REASON_KINDS`), ``raw`` (the payload, kept only for bad messages) and ``topic``
    (the MQTT or Kafka topic of a bad message, else None).
    """

    __slots__ = ("key", "x", "y", "time", "partition", "offset", "error", "raw", "kind", "topic")

    def __init__(self, key, x, y, time=None, partition=0, offset=0, error=None, raw=None,
                 kind=None, topic=None):
        self.key = key
        self.x = x
        self.y = y
        self.time = time
        self.partition = partition
        self.offset = offset
        self.error = error
        self.raw = raw
        self.kind = kind if kind is not None or error is None else "other"
        self.topic = topic

    def __iter__(self):
        return iter((self.key, self.x, self.y))

    def __repr__(self):
        if self.error is not None:
            return (f"Observation(error={self.error!r}, partition={self.partition!r}, "
                    f"offset={self.offset})")
        return (f"Observation(key={self.key!r}, x={self.x!r}, y={self.y!r}, time={self.time!r}, "
                f"partition={self.partition!r}, offset={self.offset})")


def _parse_key_spec(key):
    """Return (kind, detail): ("none", None), ("field", name), ("message", None), ("topic", n)."""
    if key is None or key == "":
        return "none", None
    if key == "@key":
        return "message", None
    if key == "@topic":
        return "topic", None
    if key.startswith("@topic:"):
        try:
            level = int(key[len("@topic:"):])
        except ValueError:
            level = -1
        if level < 0:
            raise ValueError(f"key {key!r}: write @topic:N with N a topic level >= 0")
        return "topic", level
    if key.startswith("@"):
        raise ValueError(f"key {key!r}: use a field name, @key (Kafka message key), @topic or "
                         "@topic:N")
    return "field", key


class Decoder:
    """Turn a payload into an :class:`Observation`; never raises for what a message holds.

    Parameters
    ----------
    target
        Field holding the value to learn and forecast.
    key
        Field naming the series, ``"@key"`` or ``"@topic:N"`` (see the module docstring); None
        puts every message in one series named ``default_key``.
    time
        Field holding the time stamp, passed through to the output and never a feature.
    default_key
        The series name when ``key`` is None.
    max_bytes, max_depth, max_fields, max_key_chars, max_time_chars
        Limits on one message (see the module docstring); a message over one is bad.
    loads
        The JSON parser, ``loads(bytes_or_str) -> object`` (default: orjson if installed,
        else json). Payloads reach it only once they are within ``max_bytes`` and
        ``max_depth``; anything it raises makes the message bad.
    """

    def __init__(self, target: str = "y", key: str | None = None, time: str | None = None,
                 default_key: str = "series", max_bytes: int = MAX_BYTES,
                 max_depth: int = MAX_DEPTH, max_fields: int = MAX_FIELDS,
                 max_key_chars: int = MAX_KEY_CHARS, max_time_chars: int = MAX_TIME_CHARS,
                 loads=None):
        if not target:
            raise ValueError("the target field must be named")
        for name, v in (("max_bytes", max_bytes), ("max_depth", max_depth),
                        ("max_fields", max_fields), ("max_key_chars", max_key_chars),
                        ("max_time_chars", max_time_chars)):
            if type(v) is not int or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        self.target = target
        self.key = key
        self.time = time
        self.default_key = default_key
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.max_fields = max_fields
        self.max_key_chars = max_key_chars
        self.max_time_chars = max_time_chars
        self._key_kind, self._key_detail = _parse_key_spec(key)
        skip = {target}
        if self._key_kind == "field":
            skip.add(key)
        if time:
            skip.add(time)
        self._skip = frozenset(skip)
        self._loads = loads or _default_loads

    def decode(self, payload, partition=0, offset=0, message_key=None, topic=None) -> Observation:
        """Decode ``payload`` (bytes or str). Never raises for bad content: the returned
        observation carries ``error`` instead."""
        try:
            if isinstance(payload, str):
                try:
                    data = payload.encode("utf-8")
                except UnicodeEncodeError as e:
                    return self._bad("not JSON", f"not JSON: {e.reason}", payload, partition,
                                     offset)
            elif isinstance(payload, (bytes, bytearray, memoryview)):
                data = bytes(payload)
            else:
                return self._bad("not JSON", f"not JSON: a {type(payload).__name__} payload",
                                 payload, partition, offset)
            if len(data) > self.max_bytes:
                return self._bad("too large", f"too large: {len(data):,d} bytes (the limit is "
                                 f"{self.max_bytes:,d})", data, partition, offset)
            if nesting_depth(data, self.max_depth) > self.max_depth:
                return self._bad("too deep", f"too deep: nested deeper than {self.max_depth} "
                                 "levels", data, partition, offset)
            try:
                d = self._loads(data)
            except Exception as e:  # noqa: BLE001 - whatever the parser raises
                return self._bad("not JSON", f"not JSON: {str(e)[:200]}", data, partition,
                                 offset)
            if type(d) is not dict:
                return self._bad("not an object", f"not a JSON object but {type(d).__name__}",
                                 data, partition, offset)
            return self.from_dict(d, partition, offset, message_key, topic, data)
        except Exception as e:  # noqa: BLE001 - a bad message must never stop the stream
            return self._bad("other", f"undecodable: {type(e).__name__}: {str(e)[:200]}",
                             payload, partition, offset)

    def fast_path(self):
        """``fast(data, partition, offset, message_key) -> Observation | None``: the decoding of
        the common message (a bytes payload within every limit, a finite number as the target,
        numbers as features, a key from the payload or the message key), with the same result
        as :meth:`decode`; None for anything else, which :meth:`decode` then handles (bad
        messages included). It saves the generic checks and calls of the full path."""
        loads, target, skip, tfield = self._loads, self.target, self._skip, self.time
        max_bytes, max_depth, max_fields = self.max_bytes, self.max_depth, self.max_fields
        max_key, max_time = self.max_key_chars, self.max_time_chars
        kind, kfield, default_key = self._key_kind, self.key, self.default_key
        if kind not in ("none", "field", "message"):
            return lambda data, partition, offset, message_key: None
        cut = 4 * max_key + 4
        big = _BIG
        isfinite = math.isfinite

        def fast(data, partition, offset, message_key):
            if type(data) is not bytes or len(data) > max_bytes or \
                    data.count(b"[") + data.count(b"{") > max_depth:
                return None
            try:
                d = loads(data)
            except Exception:  # noqa: BLE001 - the full path makes the bad message
                return None
            if type(d) is not dict or len(d) > max_fields:
                return None
            y = d.get(target)
            ty = type(y)
            if ty is float:
                if y - y != 0.0:
                    return None
            elif ty is int and -big < y < big:
                y = float(y)
                if y - y != 0.0:
                    return None
            else:
                return None
            if kind == "message":
                if message_key is None:
                    key = default_key
                elif type(message_key) is bytes:
                    key = message_key[:cut].decode("utf-8", "replace")
                else:
                    return None
            elif kind == "field":
                key = d.get(kfield)
                if type(key) is not str:
                    return None
            else:
                key = default_key
            if len(key) > max_key or not key.isascii():
                return None
            x = {}
            for k, v in d.items():
                tv = type(v)
                if (tv is float or tv is int or tv is bool) and k not in skip:
                    if (tv is float and not isfinite(v)) or (tv is int and not -big < v < big):
                        return None
                    x[k] = v
            t = d.get(tfield) if tfield else None
            if t is not None:
                tt = type(t)
                if tt is str:
                    if len(t) > max_time:
                        return None
                elif not (tt is int or tt is float or tt is bool) or \
                        (tt is int and not -big < t < big) or (tt is float and not isfinite(t)):
                    return None
            return Observation(key, x, y, t, partition, offset)
        return fast

    def from_dict(self, d, partition=0, offset=0, message_key=None, topic=None, payload=None):
        """Validate an already parsed record (a dict), as :meth:`decode` does."""
        raw = payload if payload is not None else d
        if len(d) > self.max_fields:
            return self._bad("too many fields", f"too many fields: {len(d):,d} (the limit is "
                             f"{self.max_fields:,d})", raw, partition, offset)
        y = d.get(self.target)
        ty = type(y)
        if ty is not float and ty is not int:
            if y is None:
                why = (f"target {_short(self.target)} is missing" if self.target not in d
                       else f"target {_short(self.target)} is null")
                return self._bad("target missing", why, raw, partition, offset)
            return self._bad("target not a number", f"target {_short(self.target)} is a "
                             f"{ty.__name__}, not a number", raw, partition, offset)
        try:
            y = float(y)
        except OverflowError:
            y = math.inf
        if not math.isfinite(y):
            return self._bad("target not finite", f"target {_short(self.target)} is {y}", raw,
                             partition, offset)
        kind = self._key_kind
        if kind == "none":
            key = self.default_key
        elif kind == "field":
            key = d.get(self.key)
            if type(key) is not str:
                if key is None or type(key) not in (int, float):
                    return self._bad("bad key", f"key field {_short(self.key)} is missing or "
                                     "not a string or number", raw, partition, offset)
                key = str(key)
        elif kind == "message":
            if message_key is None:
                key = self.default_key
            else:
                key = (bytes(message_key[:4 * self.max_key_chars + 4]).decode("utf-8", "replace")
                       if isinstance(message_key, (bytes, bytearray)) else str(message_key))
        elif self._key_detail is None:
            key = topic if topic is not None else self.default_key
        else:
            levels = (topic or "").split("/")
            if self._key_detail >= len(levels):
                return self._bad("bad key", f"topic {_short(topic)} has no level "
                                 f"{self._key_detail}", raw, partition, offset)
            key = levels[self._key_detail]
        if len(key) > self.max_key_chars:
            return self._bad("bad key", f"key longer than {self.max_key_chars} characters", raw,
                             partition, offset)
        if not key.isascii():
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                return self._bad("bad key", "key is not valid Unicode", raw, partition, offset)
        x = {}
        skip = self._skip
        for k, v in d.items():
            tv = type(v)
            if (tv is float or tv is int or tv is bool) and k not in skip:
                if (tv is float and not math.isfinite(v)) or (tv is int and not -_BIG < v < _BIG):
                    return self._bad("feature not finite", f"feature {_short(k)} is "
                                     f"{_short(v, 32)}", raw, partition, offset)
                x[k] = v
        t = d.get(self.time) if self.time else None
        if t is not None:
            tt = type(t)
            if tt is str:
                if len(t) > self.max_time_chars:
                    return self._bad("bad time", f"time field {_short(self.time)} is longer than "
                                     f"{self.max_time_chars} characters", raw, partition, offset)
            elif not (tt is int or tt is float or tt is bool) or \
                    (tt is int and not -_BIG < t < _BIG):
                return self._bad("bad time", f"time field {_short(self.time)} is a "
                                 f"{tt.__name__}, not a string or number", raw, partition, offset)
            elif tt is float and not math.isfinite(t):
                return self._bad("bad time", f"time field {_short(self.time)} is {t}", raw,
                                 partition, offset)
        return Observation(key, x, y, t, partition, offset)

    def too_long(self, nbytes, limit, partition=0, offset=0, head=b""):
        """The bad observation for a line of ``nbytes`` bytes that was not buffered whole."""
        return self._bad("line too long", f"line too long: {nbytes:,d} bytes (the limit is "
                         f"{limit:,d}); skipped", head, partition, offset)

    @staticmethod
    def _bad(kind, reason, payload, partition, offset):
        return Observation(None, None, None, None, partition, offset, reason, payload, kind)


def _classify(reason: str) -> str:
    """The kind of a free-text reason (for reasons not made by :class:`Decoder`)."""
    for kind in REASON_KINDS:
        if reason.startswith(kind):
            return kind
    return "other"


class BadMessages:
    """Count bad messages by kind, log each with its position, and optionally publish it to a
    dead-letter sink as ``{"reason", "kind", "partition", "offset", "payload",
    "payload_bytes", "truncated"}``, with ``"topic"`` too for messages from MQTT or Kafka.

    Counting is by kind (one of :data:`REASON_KINDS`, never sender text), so a flood of
    distinct reasons keeps the counters small. A dead-letter record carries at most
    ``max_payload_bytes`` bytes of the payload (UTF-8, cut at a character boundary);
    ``payload_bytes`` is the original size and ``truncated`` says whether it was cut. Logging is
    throttled: the first ``log_first`` bad messages are logged one by one, then one line every
    ``log_every``.

    Forecasts a sink could not deliver come through :meth:`undeliverable` and are dead-lettered
    the same way, with ``kind`` ``"undeliverable forecast"`` and the record as payload.
    """

    def __init__(self, sink=None, log_first: int = 20, log_every: int = 1000,
                 max_payload_bytes: int = DEAD_LETTER_BYTES):
        if type(max_payload_bytes) is not int or max_payload_bytes < 0:
            raise ValueError(f"max_payload_bytes must be an int >= 0, got {max_payload_bytes!r}")
        self.sink = sink
        self.count = 0
        self.by_reason: dict[str, int] = {}
        self.log_first = log_first
        self.log_every = log_every
        self.max_payload_bytes = max_payload_bytes

    def __call__(self, obs: Observation, reason: str | None = None, kind: str | None = None):
        if reason is None:
            reason, kind = obs.error or "unknown", kind or obs.kind
        kind = kind if kind in REASON_KINDS else _classify(reason)
        self._record(kind, reason, obs.partition, obs.offset, obs.raw, obs.topic)

    def undeliverable(self, record: dict, reason: str):
        """A forecast ``record`` that the sink refused for good: count and dead-letter it."""
        self._record("undeliverable forecast", f"undeliverable forecast: {reason}",
                     record.get("partition"), record.get("offset"), record)

    def _record(self, kind, reason, partition, offset, raw, topic=None):
        self.count += 1
        self.by_reason[kind] = self.by_reason.get(kind, 0) + 1
        reason = reason if len(reason) <= 300 else reason[:297] + "..."
        if self.count <= self.log_first or self.count % self.log_every == 0:
            log.warning("bad message #%d at partition %s offset %s: %s", self.count,
                        partition, offset, reason)
        if self.sink is not None:
            payload, size, cut = self._payload(raw)
            rec = {"reason": reason, "kind": kind, "partition": partition, "offset": offset,
                   "payload": payload, "payload_bytes": size, "truncated": cut}
            if topic is not None:
                rec["topic"] = topic
            try:
                self.sink.send(rec, key=None)
            except Undeliverable as e:  # even the cut payload is too large for it: drop it
                log.warning("the dead-letter sink refused the record of partition %s offset "
                            "%s (%s): sending it without its payload", partition, offset, e)
                rec.update(payload=None, truncated=True)
                self.sink.send(rec, key=None)

    def _payload(self, raw):
        if raw is None:
            return None, 0, False
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        elif isinstance(raw, memoryview):
            raw = bytes(raw)
        elif not isinstance(raw, (bytes, bytearray)):
            try:
                raw = json.dumps(raw, default=str, separators=(",", ":")).encode("utf-8",
                                                                                "surrogatepass")
            except (ValueError, TypeError, RecursionError):
                raw = repr(raw).encode("utf-8", "surrogatepass")
        size, limit = len(raw), self.max_payload_bytes
        if size <= limit:
            return bytes(raw).decode("utf-8", "replace"), size, False
        head = bytes(raw[:limit])
        head = head[:len(head) - _partial_tail(head)]  # no character cut in two
        return head.decode("utf-8", "replace"), size, True


def _partial_tail(b: bytes) -> int:
    """How many bytes at the end of ``b`` start a UTF-8 sequence that is cut off (0..3)."""
    for i in range(1, min(4, len(b)) + 1):
        c = b[-i]
        if c < 0x80:
            return 0
        if c >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if c < 0xE0 else 3 if c < 0xF0 else 4
            return i if need > i else 0
    return 0


class Source:
    """What every source offers.

    ``read(timeout)`` returns the next batch of observations, bad ones included (their
    ``error`` is set), an empty list when nothing arrived within ``timeout`` seconds, or None
    when the stream has ended. Iterating a source yields only the good observations, each
    unpacking as ``key, x, y``; bad ones go to ``self.bad`` (a :class:`BadMessages`).

    Positions: every observation carries ``partition`` and ``offset``; a position is the map
    partition -> next offset to read. ``seek(positions)`` moves there (before reading), and
    ``commit(positions)`` records it with the source where the source can (Kafka).
    """

    bad: BadMessages
    idle_timeout = 1.0

    def read(self, timeout: float = 1.0):
        raise NotImplementedError

    def seek(self, positions: dict):
        raise NotImplementedError(f"{type(self).__name__} cannot seek")

    def commit(self, positions: dict):
        pass

    def describe(self, partition) -> dict:
        """What a checkpoint records about ``partition`` of this source (to refuse a resume
        against another source)."""
        return {"kind": type(self).__name__, "partition": partition}

    def close(self):
        pass

    def __iter__(self):
        while True:
            batch = self.read(self.idle_timeout)
            if batch is None:
                return
            for obs in batch:
                if obs.error is None:
                    yield obs
                else:
                    self.bad(obs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Sink:
    """Publishes JSON records: ``send(record, key=None)``, ``tick()`` (cheap, after each batch),
    ``flush()`` and ``close()``.

    ``flush()`` waits until everything sent so far is delivered and returns True, or returns
    False when some record was not (and may be sent again after a restart); a sink that can
    no longer deliver anything (a closed pipe, a full disk) raises instead. ``send`` raises
    :class:`Undeliverable` for a record it can never deliver; records refused that way
    asynchronously are handed out by ``take_undeliverable()`` as ``(record, reason)`` pairs.
    """

    #: True when the sink writes NaN and infinities as null (records may then carry them)
    nan_is_null = False

    def send(self, record: dict, key=None):
        raise NotImplementedError

    def send_many(self, records, keys=None) -> list:
        """Send ``records`` (``keys[i]`` the key of ``records[i]``; None: each record's
        ``key``); returns ``[(i, reason)]`` of the records refused for good at once
        (:class:`Undeliverable`), which the caller dead-letters."""
        refused = []
        send = self.send
        for i, rec in enumerate(records):
            try:
                send(rec, None if keys is None else keys[i])
            except Undeliverable as e:
                refused.append((i, str(e)))
        return refused

    def tick(self):
        pass

    def flush(self) -> bool:
        return True

    def take_undeliverable(self) -> list:
        return []

    def close(self):
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NullSink(Sink):
    """Drops every record (a backtest, or a demo on a terminal, keeps only the summary)."""

    nan_is_null = True

    def send(self, record, key=None):
        pass

    def send_many(self, records, keys=None):
        return []
