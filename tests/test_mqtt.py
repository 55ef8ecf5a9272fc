"""MQTT against a real mosquitto on 127.0.0.1: QoS 1 and a persistent session carry a sensor
stream whole through a subscriber reconnect."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

import paho.mqtt.client  # noqa: E402,F401  (the test extras install it)

from brokers import Mosquitto  # noqa: E402

from streamrnn.streams import Decoder, open_sink, open_source  # noqa: E402
from _support import child_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(str(tmp_path))  # scripts/test.sh installs mosquitto where it is missing
    yield b
    b.close()


def publisher(address, client_id):
    import paho.mqtt.client as mqtt
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    c.max_inflight_messages_set(100)
    host, port = address.split(":")
    c.connect(host, int(port))
    c.loop_start()
    return c


def test_stream_arrives_whole_through_a_subscriber_reconnect(broker):
    n = 3000
    src = open_source(f"mqtt://{broker.address}/plant/+/reading?client_id=fc-test",
                      Decoder(key="@topic:1"))
    pub = publisher(broker.address, "sensor-pub")
    got = []

    def publish(lo, hi):
        infos = [pub.publish(f"plant/s{i % 5}/reading", json.dumps({"y": i * 0.1, "seq": i}),
                             qos=1) for i in range(lo, hi)]
        for info in infos:
            info.wait_for_publish(10)

    def drain(until, timeout=20):
        deadline = time.monotonic() + timeout
        while len({o.x["seq"] for o in got}) < until and time.monotonic() < deadline:
            got.extend(o for o in src.read(0.2) if o.error is None)

    publish(0, n // 3)
    drain(n // 3)
    # the network drops: the socket dies under the subscriber, which reconnects by itself
    connects = src.connects
    src._client.socket().shutdown(socket.SHUT_RDWR)
    publish(n // 3, 2 * n // 3)  # published while the subscriber is away
    publish(2 * n // 3, n)
    drain(n)
    src.close()
    pub.loop_stop()
    assert src.connects > connects, "the subscriber never reconnected"
    seqs = {o.x["seq"] for o in got}
    assert seqs == set(range(n)), f"{n - len(seqs)} messages lost"
    assert {o.key for o in got} == {f"s{i}" for i in range(5)}
    offsets = [o.offset for o in got]
    assert offsets == list(range(len(got)))  # numbered in arrival order (duplicates allowed)


def test_command_reads_mqtt_and_publishes_forecasts(broker, tmp_path):
    import paho.mqtt.client as mqtt
    received = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fc-reader")
    sub.on_message = lambda c, u, m: received.append((m.topic, json.loads(m.payload)))
    host, port = broker.address.split(":")
    sub.connect(host, int(port))
    sub.subscribe("forecasts/#", qos=1)
    sub.loop_start()
    env = child_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamrnn", "forecast", "--per-key-models",
         "--source", f"mqtt://{broker.address}/meters/#", "--key", "@topic:1",
         "--sink", f"mqtt://{broker.address}/forecasts/{{key}}", "--horizon", "2",
         "--idle-exit", "3", "--checkpoint", str(tmp_path / "ck"), "--quiet"],
        env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)  # the command subscribes (its session queues from then on)
    pub = publisher(broker.address, "meter-pub")
    for i in range(200):
        pub.publish(f"meters/m{i % 2}", json.dumps({"y": float(i % 10)}), qos=1).wait_for_publish(5)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    deadline = time.monotonic() + 5
    while len(received) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    sub.loop_stop()
    pub.loop_stop()
    assert len(received) == 200
    assert {t for t, _ in received} == {"forecasts/m0", "forecasts/m1"}
    assert all(len(r["forecast"]) == len(r["low"]) == len(r["high"]) == 2 for _, r in received)
    last = [r for _, r in received][-1]
    assert last["low"][1] <= last["forecast"][1] <= last["high"][1]
    assert 0 <= last["anomaly"] <= 1
    assert os.path.exists(tmp_path / "ck" / "partition-0.srnn")


def test_keys_that_are_not_topic_names_do_not_stop_the_sink(broker):
    import paho.mqtt.client as mqtt

    from streamrnn.streams import Undeliverable
    received = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="key-reader")
    sub.on_message = lambda c, u, m: received.append(m.topic)
    host, port = broker.address.split(":")
    sub.connect(host, int(port))
    sub.subscribe("fc/#", qos=1)
    sub.loop_start()
    time.sleep(0.5)
    sink = open_sink(f"mqtt://{broker.address}/fc/{{key}}")
    for key in ["a#", "b/+", "c\0d", "plain"]:
        sink.send({"key": key, "prediction": 1.0})
    assert sink.flush() is True
    bare = open_sink(f"mqtt://{broker.address}/{{key}}")
    with pytest.raises(Undeliverable):
        bare.send({"key": "", "prediction": 1.0})  # an empty topic
    bare.close()
    sink.close()
    deadline = time.monotonic() + 5
    while len(received) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    sub.loop_stop()
    assert sorted(received) == ["fc/a_", "fc/b/_", "fc/c_d", "fc/plain"]
