"""Decode and validate stream messages; encode forecasts; count and dead-letter bad messages.

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
position and send it to a dead-letter sink, and move on.
"""
from __future__ import annotations

import json
import logging
import math

__all__ = ["Observation", "Decoder", "BadMessages", "Source", "Sink", "encode", "output_record"]

log = logging.getLogger("streamrnn.streams")

_BIG = 2 ** 1023  # ints beyond this do not fit a float


class Observation:
    """One decoded message: ``key, x, y = obs`` unpacks what a model needs.

    Attributes: ``key`` (str), ``x`` (dict of features), ``y`` (float), ``time`` (as sent, or
    None), ``partition`` and ``offset`` (where it came from), ``error`` (None, or the reason the
    message is bad, in which case ``x`` and ``y`` are None) and ``raw`` (the payload bytes, kept
    only for bad messages).
    """

    __slots__ = ("key", "x", "y", "time", "partition", "offset", "error", "raw")

    def __init__(self, key, x, y, time=None, partition=0, offset=0, error=None, raw=None):
        self.key = key
        self.x = x
        self.y = y
        self.time = time
        self.partition = partition
        self.offset = offset
        self.error = error
        self.raw = raw

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
    """Turn a payload into an :class:`Observation`.

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
    """

    def __init__(self, target: str = "y", key: str | None = None, time: str | None = None,
                 default_key: str = "series"):
        if not target:
            raise ValueError("the target field must be named")
        self.target = target
        self.key = key
        self.time = time
        self.default_key = default_key
        self._key_kind, self._key_detail = _parse_key_spec(key)
        skip = {target}
        if self._key_kind == "field":
            skip.add(key)
        if time:
            skip.add(time)
        self._skip = frozenset(skip)
        self._loads = json.JSONDecoder().decode

    def decode(self, payload, partition=0, offset=0, message_key=None, topic=None) -> Observation:
        """Decode ``payload`` (bytes or str). Never raises for bad content: the returned
        observation carries ``error`` instead."""
        try:
            text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload
            d = self._loads(text)
        except (UnicodeDecodeError, ValueError, TypeError, AttributeError) as e:
            return self._bad(f"not JSON: {e}", payload, partition, offset)
        if type(d) is not dict:
            return self._bad(f"not a JSON object but {type(d).__name__}", payload, partition,
                             offset)
        return self.from_dict(d, partition, offset, message_key, topic, payload)

    def from_dict(self, d, partition=0, offset=0, message_key=None, topic=None, payload=None):
        """Validate an already parsed record (a dict), as :meth:`decode` does."""
        y = d.get(self.target)
        ty = type(y)
        if ty is not float and ty is not int:
            if y is None:
                why = (f"target {self.target!r} is missing" if self.target not in d
                       else f"target {self.target!r} is null")
            else:
                why = f"target {self.target!r} is a {ty.__name__}, not a number"
            return self._bad(why, payload if payload is not None else d, partition, offset)
        try:
            y = float(y)
        except OverflowError:
            y = math.inf
        if not math.isfinite(y):
            return self._bad(f"target {self.target!r} is {y}", payload if payload is not None
                             else d, partition, offset)
        kind = self._key_kind
        if kind == "none":
            key = self.default_key
        elif kind == "field":
            key = d.get(self.key)
            if type(key) is not str:
                if key is None or type(key) not in (int, float):
                    return self._bad(f"key field {self.key!r} is missing or not a string or number",
                                     payload if payload is not None else d, partition, offset)
                key = str(key)
        elif kind == "message":
            if message_key is None:
                key = self.default_key
            else:
                key = (message_key.decode("utf-8", "replace")
                       if isinstance(message_key, (bytes, bytearray)) else str(message_key))
        elif self._key_detail is None:
            key = topic if topic is not None else self.default_key
        else:
            levels = (topic or "").split("/")
            if self._key_detail >= len(levels):
                return self._bad(f"topic {topic!r} has no level {self._key_detail}",
                                 payload if payload is not None else d, partition, offset)
            key = levels[self._key_detail]
        x = {}
        skip = self._skip
        for k, v in d.items():
            tv = type(v)
            if (tv is float or tv is int or tv is bool) and k not in skip:
                if (tv is float and not math.isfinite(v)) or (tv is int and not -_BIG < v < _BIG):
                    return self._bad(f"feature {k!r} is {v}", payload if payload is not None
                                     else d, partition, offset)
                x[k] = v
        t = d.get(self.time) if self.time else None
        return Observation(key, x, y, t, partition, offset)

    @staticmethod
    def _bad(reason, payload, partition, offset):
        return Observation(None, None, None, None, partition, offset, reason, payload)


def encode(record: dict) -> bytes:
    """One output message: compact JSON (NaN and infinity become null)."""
    try:
        return json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        clean = {k: (_finite_or_none(v) if not isinstance(v, list)
                     else [_finite_or_none(e) for e in v]) for k, v in record.items()}
        return json.dumps(clean, separators=(",", ":")).encode()


def _finite_or_none(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def output_record(obs: Observation, prediction, forecast) -> dict:
    """The forecast message for ``obs``: key, time, partition, offset, prediction, forecast."""
    return {"key": obs.key, "time": obs.time, "partition": obs.partition, "offset": obs.offset,
            "prediction": prediction, "forecast": forecast}


class BadMessages:
    """Count bad messages by reason, log each with its position, and optionally publish it to a
    dead-letter sink as ``{"reason", "partition", "offset", "payload"}``.

    Logging is throttled: the first ``log_first`` bad messages are logged one by one, then one
    line every ``log_every``.
    """

    def __init__(self, sink=None, log_first: int = 20, log_every: int = 1000):
        self.sink = sink
        self.count = 0
        self.by_reason: dict[str, int] = {}
        self.log_first = log_first
        self.log_every = log_every

    def __call__(self, obs: Observation, reason: str | None = None):
        reason = reason or obs.error or "unknown"
        self.count += 1
        kind = reason.split(":")[0]
        self.by_reason[kind] = self.by_reason.get(kind, 0) + 1
        if self.count <= self.log_first or self.count % self.log_every == 0:
            log.warning("bad message #%d at partition %s offset %s: %s", self.count,
                        obs.partition, obs.offset, reason)
        if self.sink is not None:
            raw = obs.raw
            if isinstance(raw, (bytes, bytearray)):
                raw = raw.decode("utf-8", "replace")
            elif raw is not None and not isinstance(raw, str):
                raw = json.dumps(raw, default=str)
            self.sink.send({"reason": reason, "partition": obs.partition, "offset": obs.offset,
                            "payload": raw}, key=None)


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
    ``flush()`` (wait until everything sent is delivered) and ``close()``."""

    def send(self, record: dict, key=None):
        raise NotImplementedError

    def tick(self):
        pass

    def flush(self):
        pass

    def close(self):
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
