"""MQTT source and sink through paho-mqtt (extra ``streamrnn[mqtt]``).

The source subscribes at QoS 1 with a persistent session (``clean_session=False`` and a fixed
client id): while it is disconnected the broker keeps the messages of its subscriptions and
delivers them on reconnection, so a short network outage loses nothing (a QoS 1 message may
then arrive twice). The client reconnects by itself.

MQTT has no offsets to seek to: the source numbers the messages it receives (partition 0,
offset = running count, continued from a checkpoint). After a crash, the models restart from
the last checkpoint, and messages received since then are not replayed. Use Kafka where every
observation must be learned exactly once across crashes.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid

from streamrnn.streams.messages import BadMessages, Decoder, Sink, Source, Undeliverable

__all__ = ["MqttSource", "MqttSink"]

log = logging.getLogger("streamrnn.streams")


def _paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise ImportError("MQTT streams need paho-mqtt: pip install paho-mqtt (from a checkout "
                          "of streamrnn: pip install '.[mqtt]')") from None
    return mqtt


def _host_port(hosts):
    host, _, port = hosts.rpartition(":")
    if not host:
        return hosts, 1883
    return host, int(port)


def _connect(client, hosts, keepalive, timeout):
    """``client.connect`` retried with backoff (0.1 s doubling to 2 s) for up to ``timeout``
    seconds; then a ConnectionError naming the broker."""
    host, port = _host_port(hosts)
    deadline = time.monotonic() + timeout
    delay, tries = 0.1, 0
    while True:
        tries += 1
        try:
            client.connect(host, port, keepalive)
            return
        except (OSError, ValueError) as e:  # refused, unreachable, unknown host
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectionError(f"MQTT broker {host}:{port} unreachable after {tries} "
                                      f"tries in {timeout:g} s: {e}") from None
            log.info("MQTT: %s:%s: %s; retrying in %.1f s", host, port, e, min(delay, left))
            time.sleep(min(delay, left))
            delay = min(2.0, delay * 2)


def _new_client(mqtt, client_id, clean):
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                       clean_session=clean, protocol=mqtt.MQTTv311)


class MqttSource(Source):
    """Subscribe to ``topic`` (wildcards allowed) and decode each message.

    Parameters
    ----------
    hosts
        ``HOST:PORT`` of the broker.
    topic
        Topic filter, e.g. ``sensors/+/reading``; ``Decoder(key="@topic:1")`` then takes the
        series key from the second level.
    client_id
        The persistent session's name; keep it across restarts so the broker keeps queuing.
        Default: ``streamrnn-<host name>-<topic>``.
    qos
        Subscription QoS (1: at least once).
    connect_timeout
        Seconds to keep retrying the first connection (with backoff) before a
        ConnectionError naming the broker.
    """

    def __init__(self, hosts, topic, decoder=None, bad=None, client_id=None, qos=1,
                 keepalive=30, connect_timeout=10.0):
        mqtt = _paho()
        self.topic = topic
        self.qos = qos
        self.decoder = decoder or Decoder()
        self.bad = bad or BadMessages()
        self.client_id = client_id or f"streamrnn-{socket.gethostname()}-{topic}"[:200]
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._next = 0
        self._connected = threading.Event()
        self.connects = 0
        c = _new_client(mqtt, self.client_id, clean=False)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.reconnect_delay_set(0.05, 2.0)
        t0 = time.monotonic()
        _connect(c, hosts, keepalive, connect_timeout)
        c.loop_start()
        self._client = c
        if not self._connected.wait(max(1.0, connect_timeout - (time.monotonic() - t0))):
            c.loop_stop()
            raise ConnectionError(f"MQTT broker {hosts} accepted no session within "
                                  f"{connect_timeout:g} s")

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.warning("MQTT: connection refused: %s", reason_code)
            return
        self.connects += 1
        # Subscribing again is harmless with a kept session and needed with a new one. The
        # source counts as connected once the broker has acknowledged the subscription
        # (_on_subscribe): a message published before that could be lost on a new session.
        client.subscribe(self.topic, qos=self.qos)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if any(getattr(rc, "is_failure", False) for rc in reason_codes):
            log.warning("MQTT: the broker refused the subscription to %s: %s", self.topic,
                        reason_codes)
            return
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self._connected.clear()
        log.info("MQTT: disconnected (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg):
        self._q.put((msg.topic, msg.payload))

    def read(self, timeout=1.0):
        out = []
        q = self._q
        try:
            item = q.get(timeout=timeout) if timeout > 0 else q.get_nowait()
        except queue.Empty:
            return out
        decode = self.decoder.decode
        while True:
            topic, payload = item
            obs = decode(payload, 0, self._next, None, topic)
            if obs.error is not None:
                obs.topic = topic  # for the dead-letter record
            out.append(obs)
            self._next += 1
            if len(out) >= 1000:
                break
            try:
                item = q.get_nowait()
            except queue.Empty:
                break
        return out

    def seek(self, positions):
        # No replay in MQTT: continue the numbering where the checkpoint left it.
        self._next = int(positions.get(0, 0))

    def describe(self, partition):
        return {"kind": "mqtt", "topic": self.topic, "partition": partition}

    def close(self):
        self._client.disconnect()  # a clean DISCONNECT keeps the persistent session
        self._client.loop_stop()


_NOT_IN_TOPICS = str.maketrans({"+": "_", "#": "_", "\0": "_"})


class MqttSink(Sink):
    """Publish each record as JSON to ``topic``; ``{key}`` in the topic is replaced by the
    record's key (e.g. ``forecasts/{key}``), with the characters a topic name cannot hold
    (``+``, ``#``, NUL) replaced by ``_``. A record whose topic is still invalid is
    :class:`~streamrnn.streams.Undeliverable`."""

    def __init__(self, hosts, topic, qos=1, client_id=None, connect_timeout=10.0):
        mqtt = _paho()
        self.topic = topic
        self.qos = qos
        cid = client_id or f"streamrnn-sink-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._client = _new_client(mqtt, cid, clean=True)
        self._client.max_queued_messages_set(0)
        self._client.max_inflight_messages_set(1000)
        _connect(self._client, hosts, 30, connect_timeout)
        self._client.loop_start()
        import json
        self._dumps = json.JSONEncoder(separators=(",", ":")).encode
        self._pending = []
        self.failed = 0  # publishes that did not complete (sticky: see flush)
        self._timeout = connect_timeout

    def send(self, record, key=None):
        topic = self.topic
        if "{key}" in topic:
            k = str(record.get("key") if key is None else key)
            topic = topic.replace("{key}", k.translate(_NOT_IN_TOPICS))
        try:
            info = self._client.publish(topic, self._dumps(record), qos=self.qos)
        except ValueError as e:  # e.g. an empty topic, or a payload over MQTT's 256 MB
            raise Undeliverable(f"MQTT refused topic {topic[:80]!r}: {e}") from None
        self._pending.append(info)
        if len(self._pending) > 5000:
            self.flush()

    def flush(self):
        """Wait for the pending publishes; True when every record sent so far was published."""
        for info in self._pending:
            try:
                info.wait_for_publish(self._timeout)
            except (RuntimeError, ValueError) as e:
                log.warning("MQTT: a publish did not complete: %s", e)
            if not info.is_published():
                self.failed += 1
        self._pending = []
        return self.failed == 0

    def close(self):
        self.flush()
        self._client.disconnect()
        self._client.loop_stop()
