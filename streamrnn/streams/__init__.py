"""Live streams: sources that yield decoded observations, sinks that publish forecasts.

>>> from streamrnn import GRUForecaster
>>> from streamrnn.streams import Decoder, open_source, open_sink   # doctest: +SKIP
>>> models = {}
>>> with open_source("kafka://127.0.0.1:9092/readings?group=fc",
...                  Decoder(target="y", key="@key")) as source, \\
...         open_sink("kafka://127.0.0.1:9092/forecasts") as sink:    # doctest: +SKIP
...     for key, x, y in source:
...         model = models.setdefault(key, GRUForecaster(hidden_size=16, seed=1))
...         sink.send({"key": key, "prediction": model.forecast(1, [x])[0]})
...         model.learn_one(y, x)

Addresses understood by :func:`open_source` and :func:`open_sink`:

- ``file.csv``, ``file.jsonl`` (any other name: JSON lines), ``-`` (standard input/output);
- ``kafka://HOST:PORT[,HOST:PORT...]/TOPIC?group=NAME`` (extra ``streamrnn[kafka]``); other
  query parameters are passed to librdkafka, e.g. ``?group=g&session.timeout.ms=6000``;
- ``mqtt://HOST:PORT/TOPIC`` (extra ``streamrnn[mqtt]``); the topic may hold ``+`` and ``#``
  and the query may set ``client_id=NAME`` (the persistent session's name) and ``qos=0|1|2``.

The Kafka and MQTT clients are imported only when such an address is opened.

:class:`GlobalRunner` is the default loop of ``streamrnn forecast`` (one multi-series model per
source partition, learned in batches) and :class:`Runner` its ``--per-key-models`` loop (one
model per key); both keep exactly-once checkpoints and bounded memory, for use from Python.
"""
from __future__ import annotations

from urllib.parse import parse_qsl, unquote

from streamrnn.streams.files import (MAX_LINE_BYTES, CsvSource, DatasetSource, JsonLinesSink,
                                     JsonLinesSource, StdinSource, file_source)
from streamrnn.streams.messages import (REASON_KINDS, BadMessages, Decoder, NullSink,
                                        Observation, Sink, Source, Undeliverable)

__all__ = ["Observation", "Decoder", "BadMessages", "Source", "Sink", "Undeliverable",
           "REASON_KINDS", "NullSink", "CsvSource", "JsonLinesSource", "StdinSource",
           "DatasetSource", "JsonLinesSink", "file_source", "open_source", "open_sink",
           "parse_address", "Runner", "GlobalRunner"]


def parse_address(address: str) -> dict:
    """Split an address into ``{"scheme", "hosts", "topic", "query"}`` (``scheme`` is "file"
    or "stdio" for plain paths). MQTT wildcards (``#``) are kept in the topic."""
    if address == "-":
        return {"scheme": "stdio", "hosts": None, "topic": None, "query": {}}
    scheme, sep, rest = address.partition("://")
    if not sep:
        return {"scheme": "file", "hosts": None, "topic": address, "query": {}}
    scheme = scheme.lower()
    if scheme not in ("kafka", "mqtt"):
        raise ValueError(f"unknown address scheme {scheme!r} in {address!r}; use a file name, "
                         "'-', kafka://HOST:PORT/TOPIC or mqtt://HOST:PORT/TOPIC")
    rest, _, query = rest.partition("?")
    hosts, _, topic = rest.partition("/")
    if not hosts or not topic:
        raise ValueError(f"{address!r}: write {scheme}://HOST:PORT/TOPIC")
    return {"scheme": scheme, "hosts": hosts, "topic": unquote(topic),
            "query": dict(parse_qsl(query, keep_blank_values=True))}


def open_source(address: str, decoder: Decoder | None = None, bad: BadMessages | None = None,
                **options) -> Source:
    """A source for ``address`` (see the module docstring). ``max_line_bytes`` applies to
    JSON lines on files and stdin; other options (e.g. ``connect_timeout``) go to the Kafka or
    MQTT source."""
    a = parse_address(address)
    decoder = decoder or Decoder()
    max_line = options.pop("max_line_bytes", MAX_LINE_BYTES)
    if a["scheme"] in ("stdio", "file"):
        options.pop("connect_timeout", None)
    if a["scheme"] == "stdio":
        return StdinSource(decoder, bad, max_line_bytes=max_line)
    if a["scheme"] == "file":
        return file_source(a["topic"], decoder, bad, max_line)
    if a["scheme"] == "kafka":
        from streamrnn.streams.kafka import KafkaSource
        q = dict(a["query"])
        group = q.pop("group", None) or "streamrnn"
        return KafkaSource(a["hosts"], a["topic"], group, decoder, bad, config=q, **options)
    from streamrnn.streams.mqtt import MqttSource
    q = dict(a["query"])
    return MqttSource(a["hosts"], a["topic"], decoder, bad, client_id=q.pop("client_id", None),
                      qos=int(q.pop("qos", 1)), **options)


def open_sink(address: str | None, connect_timeout: float = 10.0) -> Sink:
    """A sink for ``address``; None or ``-`` is standard output. A Kafka or MQTT sink retries
    its first connection for ``connect_timeout`` seconds, then raises ConnectionError."""
    if address is None:
        return JsonLinesSink(None)
    a = parse_address(address)
    if a["scheme"] == "stdio":
        return JsonLinesSink(None)
    if a["scheme"] == "file":
        return JsonLinesSink(a["topic"])
    if a["scheme"] == "kafka":
        from streamrnn.streams.kafka import KafkaSink
        return KafkaSink(a["hosts"], a["topic"], config=a["query"],
                         connect_timeout=connect_timeout)
    from streamrnn.streams.mqtt import MqttSink
    q = dict(a["query"])
    return MqttSink(a["hosts"], a["topic"], qos=int(q.pop("qos", 1)),
                    client_id=q.pop("client_id", None), connect_timeout=connect_timeout)


def __getattr__(name):
    # the runner imports the model factory (and through it the estimators) only when used
    if name == "Runner":
        from streamrnn.streams.runner import Runner
        return Runner
    if name == "GlobalRunner":
        from streamrnn.streams.batched import GlobalRunner
        return GlobalRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
