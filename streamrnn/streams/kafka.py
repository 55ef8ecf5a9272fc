"""Kafka source and sink through confluent-kafka (extra ``streamrnn[kafka]``).

The source never lets the client commit on its own (``enable.auto.commit=false``): offsets are
committed only by :meth:`KafkaSource.commit`, which the command calls with the offsets of the
checkpoint it has just written. On (re)assignment, ``on_assign`` (set by the owner of the
models) says where each partition starts, so a restart resumes exactly at the checkpoint.
"""
from __future__ import annotations

import logging
import sys

import numpy as np

from streamrnn._core._codec import decode_messages
from streamrnn._core._scaling import VALUE_LIMIT
from streamrnn.streams.columns import by_partition, from_decoded
from streamrnn.streams.messages import (BadMessages, Decoder, Sink, Source, Undeliverable,
                                        _default_loads)

__all__ = ["KafkaSource", "KafkaSink"]

log = logging.getLogger("streamrnn.streams")


def _reachable(ck, client, bootstrap, timeout):
    """Wait until a broker answers (a metadata request); else a ConnectionError."""
    try:
        client.list_topics(timeout=timeout)
    except ck.KafkaException as e:
        raise ConnectionError(f"Kafka brokers {bootstrap} did not answer within {timeout:g} s "
                              f"({e.args[0].str() if e.args else e})") from None


def _codec_args(d):
    """The arguments of the batch decoder for Decoder ``d`` (after the messages), or None
    when it does not cover it (a key from the MQTT topic, a parser of the user's, names or a
    default key it cannot match)."""
    kinds = {"none": 0, "field": 1, "message": 2}
    if d._key_kind not in kinds or d._loads is not _default_loads:
        return None
    try:
        target = d.target.encode("utf-8")
        key = (d.key or "").encode("utf-8") if d._key_kind == "field" else b""
        tfield = (d.time or "").encode("utf-8")
    except UnicodeEncodeError:
        return None
    dk = d.default_key
    if type(dk) is not str or len(dk) > d.max_key_chars or not dk.isascii():
        return None
    # the limits as the C types take them: a limit beyond what any payload can reach means
    # the same clamped (more than 64 fields: the full decoder's anyway)
    big = sys.maxsize
    return (kinds[d._key_kind], target, key, tfield, min(d.max_bytes, big),
            min(d.max_fields, 1 << 30), min(d.max_key_chars, big), min(d.max_time_chars, big),
            VALUE_LIMIT, dk)


def _client():
    try:
        import confluent_kafka
    except ImportError:
        raise ImportError("Kafka streams need confluent-kafka: pip install confluent-kafka (from a "
                          "checkout of streamrnn: pip install '.[kafka]')") \
            from None
    return confluent_kafka


class KafkaSource(Source):
    """Consume JSON messages from ``topic`` as a member of consumer group ``group``.

    Parameters
    ----------
    bootstrap
        ``HOST:PORT[,HOST:PORT...]``.
    topic
        The topic to read.
    group
        The consumer group; partitions are shared among the group's members.
    decoder, bad
        See :class:`~streamrnn.streams.Decoder` and :class:`~streamrnn.streams.BadMessages`.
    config
        Extra librdkafka settings.
    on_assign
        ``on_assign(partitions) -> {partition: offset}`` is called when partitions are
        assigned, before any of their messages is read; offsets it returns are where those
        partitions start (missing ones: the committed offset, else the earliest).
    on_revoke
        ``on_revoke(partitions)`` is called before partitions go to another member (or on
        close), to checkpoint them.
    batch
        Messages fetched per read.
    connect_timeout
        Seconds to wait for the first answer of a broker (the client retries with backoff
        meanwhile) before a ConnectionError naming the brokers.
    """

    def __init__(self, bootstrap, topic, group="streamrnn", decoder=None, bad=None,
                 config=None, on_assign=None, on_revoke=None, batch=1000, connect_timeout=10.0):
        ck = _client()
        self._ck = ck
        self.topic = topic
        self.group = group
        self.decoder = decoder or Decoder()
        self.bad = bad or BadMessages()
        self.on_assign = on_assign
        self.on_revoke = on_revoke
        self.batch = batch
        conf = {"bootstrap.servers": bootstrap, "group.id": group,
                "enable.auto.commit": False, "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest", "enable.partition.eof": False,
                "logger": logging.getLogger("streamrnn.kafka")}
        conf.update(config or {})
        self._consumer = ck.Consumer(conf)
        try:
            _reachable(ck, self._consumer, bootstrap, connect_timeout)
        except BaseException:
            self._consumer.close()
            raise
        self._consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked,
                                 on_lost=self._lost)
        self.assigned: set[int] = set()
        self._fast = None  # (decoder, its fast path)
        self._plan = None  # (decoder, the batch decoder's arguments for it)

    # ------------------------------------------------------------------ rebalancing
    def _assigned(self, consumer, partitions):
        ps = [tp.partition for tp in partitions]
        starts = self.on_assign(ps) if self.on_assign else {}
        for tp in partitions:
            if tp.partition in starts:
                tp.offset = int(starts[tp.partition])
        consumer.assign(partitions)
        self.assigned.update(ps)
        log.info("assigned partitions %s of %s (starts %s)", ps, self.topic, starts)

    def _revoked(self, consumer, partitions):
        ps = [tp.partition for tp in partitions]
        if self.on_revoke:
            self.on_revoke(ps)
        consumer.unassign()
        self.assigned.difference_update(ps)

    def _lost(self, consumer, partitions):
        ps = [tp.partition for tp in partitions]
        log.warning("partitions %s of %s were lost; their models will be reloaded from the "
                    "last checkpoint if they come back", ps, self.topic)
        if self.on_revoke:
            self.on_revoke(ps, lost=True)
        self.assigned.difference_update(ps)

    # ------------------------------------------------------------------ reading
    def read(self, timeout=1.0):
        msgs = self._consumer.consume(self.batch, timeout)
        out = []
        append = out.append
        decode = self.decoder.decode
        fast = self._fast
        if fast is None or fast[0] is not self.decoder:
            fast = self._fast = (self.decoder, self.decoder.fast_path())
        fast = fast[1]
        for m in msgs:
            if m.error() is not None:
                err = m.error()
                if err.code() != self._ck.KafkaError._PARTITION_EOF:
                    log.warning("Kafka: %s", err)
                continue
            value, partition, offset, key = m.value(), m.partition(), m.offset(), m.key()
            obs = fast(value, partition, offset, key)
            if obs is None:  # anything but the common message: the full decoder
                obs = decode(value, partition, offset, key, m.topic())
                if obs.error is not None:
                    obs.topic = m.topic()  # for the dead-letter record
            append(obs)
        return out

    def read_columns(self, timeout=1.0):
        """:meth:`read` as ``{partition: Columns}`` (see ``streamrnn.streams.columns``): the
        common message is decoded by the batch decoder straight into columns, anything else
        by the decoder, so the content is :meth:`read`'s."""
        plan = self._plan
        if plan is None or plan[0] is not self.decoder:
            plan = self._plan = (self.decoder, _codec_args(self.decoder))
        args = plan[1]
        if args is None:  # a decoder the batch decoder does not cover
            return by_partition(self.read(timeout))
        msgs = self._consumer.consume(self.batch, timeout)
        if not msgs:
            return {}
        status, part, off, y, keys, times, X, names = decode_messages(msgs, *args)
        deferred = {}
        if status.any():
            decode = self.decoder.decode
            for i in np.flatnonzero(status).tolist():
                m = msgs[i]
                err = m.error()
                if err is not None:
                    if err.code() != self._ck.KafkaError._PARTITION_EOF:
                        log.warning("Kafka: %s", err)
                    continue
                obs = decode(m.value(), m.partition(), m.offset(), m.key(), m.topic())
                if obs.error is not None:
                    obs.topic = m.topic()  # for the dead-letter record
                deferred[i] = obs
        return from_decoded(status, part, off, y, keys, times, X, names, deferred)

    def seek(self, positions):
        tps = [self._ck.TopicPartition(self.topic, int(p), int(o)) for p, o in positions.items()]
        for tp in tps:
            self._consumer.seek(tp)

    def commit(self, positions):
        if not positions:
            return
        tps = [self._ck.TopicPartition(self.topic, int(p), int(o))
               for p, o in positions.items() if p in self.assigned]
        if tps:
            try:
                self._consumer.commit(offsets=tps, asynchronous=False)
            except self._ck.KafkaException as e:  # the checkpoint stays the truth
                log.warning("Kafka: committing offsets %s failed: %s", positions, e)

    def describe(self, partition):
        return {"kind": "kafka", "topic": self.topic, "partition": partition}

    def close(self):
        try:
            self._consumer.close()
        except RuntimeError:
            pass


class KafkaSink(Sink):
    """Produce JSON records to ``topic``; the record's ``key`` field is the message key.

    A record the client refuses for good (larger than ``message.max.bytes``, or rejected by
    the broker as too large or invalid) is not retried: ``send`` raises
    :class:`~streamrnn.streams.Undeliverable` when the client refuses it at once, and
    ``take_undeliverable()`` hands out those the broker refused, as ``(record, reason)``, so the
    runner dead-letters them. Any other failed delivery makes ``flush()`` return False (and
    keep returning False: the record is gone, and only a replay from the last checkpoint
    produces it again).
    """

    def __init__(self, bootstrap, topic, config=None, connect_timeout=10.0):
        ck = _client()
        self._ck = ck
        self.topic = topic
        # delivery reports only for failures (what _report acts on): no Python callback per
        # delivered record; _report is the producer's callback for every message (set once
        # here rather than passed to each produce call, which costs 0.3-0.4 µs a record)
        conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
                "delivery.report.only.error": True, "on_delivery": self._report,
                "logger": logging.getLogger("streamrnn.kafka")}
        conf.update(config or {})
        self._producer = ck.Producer(conf)
        _reachable(ck, self._producer, bootstrap, connect_timeout)
        self._n = 0
        self.failed = 0
        self._refused = []
        E = ck.KafkaError
        self._permanent = {E.MSG_SIZE_TOO_LARGE, E.RECORD_LIST_TOO_LARGE, E.INVALID_MSG,
                           E.INVALID_MSG_SIZE, E.INVALID_RECORD}
        import json
        self._dumps = json.JSONEncoder(separators=(",", ":")).encode
        self._loads = json.loads

    def _report(self, err, msg):
        if err is None:
            return
        if err.code() in self._permanent:
            try:
                rec = self._loads(msg.value())
            except ValueError:
                rec = {"payload": msg.value()[:1024].decode("utf-8", "replace")}
            self._refused.append((rec, f"Kafka refused it: {err.str()}"))
            log.warning("Kafka: %s refused a record for good: %s", self.topic, err)
        else:
            self.failed += 1
            log.warning("Kafka: delivery to %s failed: %s", self.topic, err)

    def send(self, record, key=None):
        if key is None:
            key = record.get("key")
        value = self._dumps(record).encode()
        kbytes = None if key is None else str(key).encode("utf-8", "replace")
        while True:
            try:
                self._producer.produce(self.topic, value, kbytes)
                break
            except BufferError:  # local queue full: let deliveries drain
                self._producer.poll(0.1)
            except self._ck.KafkaException as e:
                err = e.args[0] if e.args else None
                if err is not None and hasattr(err, "code") and err.code() in self._permanent:
                    raise Undeliverable(f"Kafka refused it ({len(value):,d} bytes): "
                                        f"{err.str()}") from None
                raise
        self._n += 1
        if self._n % 1000 == 0:
            self._producer.poll(0)

    @property
    def nan_is_null(self):  # send_many encodes with orjson when installed
        from streamrnn.streams.messages import NAN_IS_NULL
        return NAN_IS_NULL

    def send_many(self, records, keys=None):
        """Produce ``records`` (encoded with orjson when installed); returns ``[(i, reason)]``
        of those the client refused for good at once."""
        from streamrnn.streams.messages import dumps_bytes
        produce, topic = self._producer.produce, self.topic
        refused = []
        for i, rec in enumerate(records):
            key = rec.get("key") if keys is None else keys[i]
            value = dumps_bytes(rec)
            kbytes = None if key is None else str(key).encode("utf-8", "replace")
            while True:
                try:
                    produce(topic, value, kbytes)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    self._producer.poll(0.1)
                except self._ck.KafkaException as e:
                    err = e.args[0] if e.args else None
                    if err is not None and hasattr(err, "code") and \
                            err.code() in self._permanent:
                        refused.append((i, f"Kafka refused it ({len(value):,d} bytes): "
                                        f"{err.str()}"))
                        break
                    raise
        self._n += len(records)
        self._producer.poll(0)
        return refused

    def send_encoded(self, values, keys):
        """Produce records already encoded as JSON bytes, ``keys[i]`` the message key (bytes or
        None) of ``values[i]``; returns ``[(i, reason)]`` of those the client refused for good
        at once."""
        produce, topic = self._producer.produce, self.topic
        refused = []
        i = 0
        n = len(values)
        while i < n:
            try:
                for i in range(i, n):
                    produce(topic, values[i], keys[i])
                i = n
            except BufferError:  # local queue full: let deliveries drain, then row i again
                self._producer.poll(0.1)
            except self._ck.KafkaException as e:
                err = e.args[0] if e.args else None
                if err is not None and hasattr(err, "code") and err.code() in self._permanent:
                    refused.append((i, f"Kafka refused it ({len(values[i]):,d} bytes): "
                                    f"{err.str()}"))
                    i += 1
                    continue
                raise
        self._n += n
        self._producer.poll(0)
        return refused

    def take_undeliverable(self):
        out, self._refused = self._refused, []
        return out

    def tick(self):
        self._producer.poll(0)

    def flush(self, timeout=30.0):
        """Wait for deliveries; True when every record sent so far has been delivered (or
        refused for good, see :meth:`take_undeliverable`)."""
        left = self._producer.flush(timeout)
        if left:
            log.warning("Kafka: %d messages not yet delivered to %s", left, self.topic)
        return left == 0 and self.failed == 0

    def close(self):
        self.flush()
