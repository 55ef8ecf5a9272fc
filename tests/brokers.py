"""Real brokers on 127.0.0.1 for the tests: librdkafka's mock Kafka cluster and mosquitto.

The mock cluster is librdkafka's own in-process Kafka (shipped in the confluent-kafka wheel),
driven through its C API with ctypes: create topics with N partitions, take brokers down and
up. It lives in the process that creates it (the pytest process); subprocesses reach it through
its bootstrap address.
"""
from __future__ import annotations

import ctypes
import glob
import os
import shutil
import socket
import subprocess
import time


def _librdkafka_path():
    import confluent_kafka
    site = os.path.dirname(os.path.dirname(confluent_kafka.__file__))
    found = sorted(glob.glob(os.path.join(site, "confluent_kafka.libs", "librdkafka*.so*")))
    found += sorted(glob.glob(os.path.join(os.path.dirname(confluent_kafka.__file__),
                                           "librdkafka*.so*")))
    if found:
        return found[0]
    from ctypes.util import find_library
    return find_library("rdkafka")


class MockKafka:
    """A mock Kafka cluster of ``brokers`` brokers (ids 1..brokers)."""

    def __init__(self, brokers: int = 1):
        path = _librdkafka_path()
        if not path:
            raise RuntimeError("librdkafka not found in the confluent-kafka wheel")
        lib = ctypes.CDLL(path)
        lib.rd_kafka_conf_new.restype = ctypes.c_void_p
        lib.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                          ctypes.c_char_p, ctypes.c_size_t]
        lib.rd_kafka_new.restype = ctypes.c_void_p
        lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                                     ctypes.c_size_t]
        lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
        lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
        lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
        lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
        lib.rd_kafka_mock_topic_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                   ctypes.c_int, ctypes.c_int]
        lib.rd_kafka_mock_broker_set_down.argtypes = [ctypes.c_void_p, ctypes.c_int32]
        lib.rd_kafka_mock_broker_set_up.argtypes = [ctypes.c_void_p, ctypes.c_int32]
        lib.rd_kafka_mock_cluster_destroy.argtypes = [ctypes.c_void_p]
        lib.rd_kafka_destroy.argtypes = [ctypes.c_void_p]
        self._lib = lib
        conf = lib.rd_kafka_conf_new()
        err = ctypes.create_string_buffer(512)
        lib.rd_kafka_conf_set(conf, b"log_level", b"0", err, 512)
        self._rk = lib.rd_kafka_new(0, conf, err, 512)  # a producer handle owns the cluster
        if not self._rk:
            raise RuntimeError(f"rd_kafka_new failed: {err.value.decode()}")
        self._mc = lib.rd_kafka_mock_cluster_new(self._rk, brokers)
        if not self._mc:
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        self.bootstrap = lib.rd_kafka_mock_cluster_bootstraps(self._mc).decode()
        self.brokers = brokers

    def create_topic(self, name: str, partitions: int, replication: int = 1):
        rc = self._lib.rd_kafka_mock_topic_create(self._mc, name.encode(), partitions,
                                                  replication)
        if rc != 0:
            raise RuntimeError(f"rd_kafka_mock_topic_create({name}) failed with {rc}")

    def down(self, broker_id: int = 1):
        self._lib.rd_kafka_mock_broker_set_down(self._mc, broker_id)

    def up(self, broker_id: int = 1):
        self._lib.rd_kafka_mock_broker_set_up(self._mc, broker_id)

    def close(self):
        if self._mc:
            self._lib.rd_kafka_mock_cluster_destroy(self._mc)
            self._lib.rd_kafka_destroy(self._rk)
            self._mc = self._rk = None


def produce(bootstrap, topic, items, flush=True, config=None):
    """Produce ``(key, value)`` pairs (value: dict, bytes or str); returns the producer.
    ``config``: extra producer settings (e.g. ``{"message.max.bytes": 5000000}``)."""
    import json

    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 0,
                  **(config or {})})
    for key, value in items:
        if isinstance(value, dict):
            value = json.dumps(value)
        while True:
            try:
                p.produce(topic, value, None if key is None else key)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    if flush:
        assert p.flush(30) == 0
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """mosquitto on a free port of 127.0.0.1, anonymous, no persistence to disk."""

    def __init__(self, workdir):
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                            if os.path.exists("/usr/sbin/mosquitto") else None)
        if exe is None:
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        self.port = free_port()
        conf = os.path.join(workdir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 100000\nmax_inflight_messages 100\n")
        self.proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()}")
                time.sleep(0.05)
        self.address = f"127.0.0.1:{self.port}"

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def consume(bootstrap, topic, until, timeout=60.0):
    """Read ``topic`` from the beginning until ``until(values)`` is true or ``timeout``
    passes; returns the list of (partition, offset, value bytes)."""
    import uuid

    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "log_level": 0})
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(out):
            for m in c.consume(1000, 0.5):
                if m.error() is None:
                    out.append((m.partition(), m.offset(), m.value()))
    finally:
        c.close()
    return out
