"""Kafka end to end against librdkafka's mock cluster on 127.0.0.1.

The command runs as a subprocess with a checkpoint directory, is SIGKILLed midway and
restarted: every observation must have been learned exactly once (final models bit-identical
to an uninterrupted run) and every input offset must have an output.
"""
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import confluent_kafka  # noqa: E402,F401  (the test extras install it)

from brokers import MockKafka, consume, produce  # noqa: E402

from streamrnn import checkpoint as ck  # noqa: E402
from _support import child_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_KEYS = 40
PARTITIONS = 4


@pytest.fixture(scope="module")
def kafka():
    k = MockKafka(1)
    yield k
    k.close()


def readings(n, n_keys=N_KEYS, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        k = int(rng.integers(n_keys))
        yield (f"sensor-{k}".encode(),
               {"y": round(10 * math.sin(i / (50 + k)) + rng.normal(), 4),
                "temp": round(float(rng.normal(20, 3)), 3), "site": "north",
                "ts": f"t{i}"})


def command(bootstrap, topic, group, tmp, name, *extra):
    return [sys.executable, "-m", "streamrnn", "forecast", "--per-key-models",
            "--source", f"kafka://{bootstrap}/{topic}?group={group}&session.timeout.ms=6000"
                        "&heartbeat.interval.ms=500",
            "--sink", str(tmp / f"{name}.jsonl"), "--checkpoint", str(tmp / f"{name}-ck"),
            "--checkpoint-every", "1500", "--hidden-size", "8", "--time", "ts",
            "--horizon", "2", "--quiet", *extra]


def run(cmd, timeout=120):
    env = child_env()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p


def outputs(path):
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:  # the line a SIGKILL cut short
                pass
    return rows


def final_models(directory):
    models, positions = {}, {}
    with ck.CheckpointStore(directory) as store:  # locks the directory while it reads
        for p in store.partitions():
            c = store.load(p)
            models.update(c.models)
            positions[int(p)] = c.position["offset"]
    return models, positions


def assert_identical(a, b):
    def eq(x, y, where):
        if isinstance(x, np.ndarray):
            # bit for bit (NaN marks what is not yet known, e.g. pending targets)
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), \
                where
        elif isinstance(x, dict):
            assert x.keys() == y.keys(), where
            for k in x:
                eq(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, (list, tuple)):
            assert len(x) == len(y), where
            for i, (u, v) in enumerate(zip(x, y)):
                eq(u, v, f"{where}[{i}]")
        else:
            assert x == y, where
    assert a.keys() == b.keys()
    for k in a:
        eq(a[k]._export_state(), b[k]._export_state(), k)


def test_sigkill_and_resume_learns_every_observation_exactly_once(kafka, tmp_path):
    n = 24000
    kafka.create_topic("readings", PARTITIONS)
    produce(kafka.bootstrap, "readings", readings(n))
    run(command(kafka.bootstrap, "readings", "ref", tmp_path, "ref", "--idle-exit", "6"))
    ref_rows = outputs(tmp_path / "ref.jsonl")
    ref_models, ref_pos = final_models(tmp_path / "ref-ck")
    assert len(ref_rows) == n and sum(ref_pos.values()) == n
    assert len(ref_models) == N_KEYS

    env = child_env()
    # idle-exit above the 6 s session timeout: after the kill, the group waits that long for
    # the dead member before the restarted one gets the partitions
    cmd = command(kafka.bootstrap, "readings", "crash", tmp_path, "crash", "--idle-exit", "12")
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    out = tmp_path / "crash.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if out.exists() and out.stat().st_size > 0.45 * n * 150 \
                and list((tmp_path / "crash-ck").glob("partition-*.srnn")):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = outputs(out)
    assert 0 < len(first) < n, "the kill did not land midway"
    _, pos_at_kill = final_models(tmp_path / "crash-ck")
    assert 0 < sum(pos_at_kill.values()) < n

    run(cmd)  # restart: resumes from the checkpoints
    rows = outputs(out)
    resumed = rows[len(first):]
    models, pos = final_models(tmp_path / "crash-ck")
    assert pos == ref_pos
    assert_identical(ref_models, models)

    # every input offset has an output; repeats only after the last checkpoint, and equal
    ref_by = {(r["partition"], r["offset"]): r for r in ref_rows}
    seen = {(r["partition"], r["offset"]) for r in rows}
    assert seen == set(ref_by)
    for r in resumed:
        assert r == ref_by[(r["partition"], r["offset"])]
    assert len(rows) - n < 1500 * PARTITIONS + 1000 * PARTITIONS
    r0 = ref_rows[-1]
    assert set(r0) == {"key", "time", "partition", "offset", "y", "prediction", "anomaly",
                       "forecast", "low", "high"}
    assert len(r0["low"]) == 2 and r0["low"][0] <= r0["forecast"][0] <= r0["high"][0]


def test_broker_outage_midstream_loses_nothing(kafka, tmp_path):
    n = 6000
    kafka.create_topic("outage", 2)
    items = list(readings(n, n_keys=10, seed=5))
    produce(kafka.bootstrap, "outage", items[:n // 2])
    env = child_env()
    cmd = command(kafka.bootstrap, "outage", "o", tmp_path, "o", "--idle-exit", "20",
                  "--horizon", "3")
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    out = tmp_path / "o.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or len(outputs(out)) < n // 2):
        time.sleep(0.05)
    kafka.down(1)
    time.sleep(3)
    producer = produce(kafka.bootstrap, "outage", items[n // 2:], flush=False)  # queued
    time.sleep(1)
    kafka.up(1)
    assert producer.flush(60) == 0
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    rows = outputs(out)
    assert sorted((r["partition"], r["offset"]) for r in rows) == sorted(
        {(r["partition"], r["offset"]) for r in rows})
    assert len(rows) == n and all(len(r["forecast"]) == 3 for r in rows)
    models, pos = final_models(tmp_path / "o-ck")
    assert sum(pos.values()) == n and len(models) == 10


BAD = [b"not json", b"[1,2]", b"{}", b'{"y": null}', b'{"y": "12"}', b'{"y": true}',
       b'{"y": NaN}', b'{"y": 1, "temp": Infinity}', b'{"y": 1e400}', b"\xff"]


def _mixed_and_clean(kafka, mixed_topic, clean_topic):
    """The same 2,000 good readings on two topics, one of them with about 5 % bad messages
    (from BAD, in turn) among them: the good readings, the mixed stream, the number of bad."""
    kafka.create_topic(mixed_topic, 2)
    kafka.create_topic(clean_topic, 2)
    good = list(readings(2000, n_keys=6, seed=9))
    rng = np.random.default_rng(1)
    mixed, n_bad = [], 0
    for key, value in good:
        mixed.append((key, value))
        if rng.random() < 0.05:
            mixed.append((key, BAD[n_bad % len(BAD)]))
            n_bad += 1
    produce(kafka.bootstrap, mixed_topic, mixed)
    produce(kafka.bootstrap, clean_topic, good)
    return good, mixed, n_bad


def test_bad_messages_are_counted_dead_lettered_and_change_no_model(kafka, tmp_path):
    good, mixed, n_bad = _mixed_and_clean(kafka, "mixed", "clean")
    cmd = command(kafka.bootstrap, "mixed", "m", tmp_path, "m", "--idle-exit", "5",
                  "--dead-letter", str(tmp_path / "dead.jsonl"))
    p = run([a for a in cmd if a != "--quiet"])  # keep the summary
    run(command(kafka.bootstrap, "clean", "c", tmp_path, "c", "--idle-exit", "5"))
    dead = outputs(tmp_path / "dead.jsonl")
    assert len(dead) == n_bad and f"{n_bad} bad" in p.stderr
    assert {d["payload"] for d in dead} >= {"not json", "{}", '{"y": "12"}'}
    assert all(isinstance(d["offset"], int) and "reason" in d for d in dead)
    mixed_models, pos = final_models(tmp_path / "m-ck")
    clean_models, _ = final_models(tmp_path / "c-ck")
    assert sum(pos.values()) == len(mixed)
    assert_identical(clean_models, mixed_models)
    assert len(outputs(tmp_path / "m.jsonl")) == len(good)


def test_hostile_messages_and_oversized_forecasts_lose_nothing(kafka, tmp_path):
    """A deeply nested message, a bad message over 1 MB dead-lettered to Kafka, and a message
    whose forecast record would exceed the broker's size limit: the command runs on, every
    input offset gets an output or a dead letter, and the checkpoint never passes one that
    got neither."""
    kafka.create_topic("hostile", 2)
    good = list(readings(400, n_keys=4, seed=3))
    items = good[:150] + [(b"sensor-1", b"[" * 100_000), (b"sensor-2", b"x" * 1_200_000),
                          (b"sensor-3", {"y": 1.5, "temp": 20.0, "ts": "T" * 1_500_000})] + \
        good[150:]
    produce(kafka.bootstrap, "hostile", items, config={"message.max.bytes": 5_000_000})
    n = len(items)

    def run_once(name, *extra):
        cmd = command(kafka.bootstrap, "hostile", name, tmp_path, name, "--idle-exit", "5",
                      "--dead-letter", f"kafka://{kafka.bootstrap}/{name}-dead", *extra)
        cmd[cmd.index("--sink") + 1] = f"kafka://{kafka.bootstrap}/{name}-out"
        p = run([a for a in cmd if a != "--quiet"])
        out = consume(kafka.bootstrap, f"{name}-out", lambda v: len(v) >= n - 3)
        dead = consume(kafka.bootstrap, f"{name}-dead", lambda v: len(v) >= 3)
        out = [json.loads(v) for _, _, v in out]
        dead = [json.loads(v) for _, _, v in dead]
        covered = {(r["partition"], r["offset"]) for r in out} | \
            {(d["partition"], d["offset"]) for d in dead}
        assert len(covered) == n, (len(covered), n, p.stderr[-3000:])
        _, pos = final_models(tmp_path / f"{name}-ck")
        assert sum(pos.values()) == n
        assert all(len(v) < 1_000_000 for v in map(json.dumps, dead))
        return p, out, dead

    # the defaults: the three are bad messages, each dead-lettered within bounds
    p, out, dead = run_once("h1")
    assert len(out) == n - 3 and "3 bad" in p.stderr
    kinds = sorted(d["kind"] for d in dead)
    assert kinds == ["too deep", "too large", "too large"], kinds
    big = [d for d in dead if d["payload_bytes"] >= 1_200_000]
    assert len(big) == 2 and all(d["truncated"] and len(d["payload"]) <= 65536 for d in big)

    # limits raised so that the 1.5 MB time stamp passes: its forecast cannot be produced
    # (over message.max.bytes) and is dead-lettered with the reason; nothing is lost
    p, out, dead = run_once("h2", "--max-message-bytes", "4000000", "--max-time-chars",
                            "2000000")
    assert len(out) == n - 3
    refused = [d for d in dead if d["kind"] == "undeliverable forecast"]
    assert len(refused) == 1 and "too large" in refused[0]["reason"].lower()
    assert refused[0]["truncated"] and refused[0]["payload_bytes"] > 1_500_000


# ---------------------------------------------------------------------------- the global model
def _global_built():
    from streamrnn import multiseries
    return multiseries.GlobalCore is not None


needs_core = pytest.mark.skipif(not _global_built(), reason="streamrnn._core._global is not "
                                "built (the global model's core)")


def global_command(bootstrap, topic, group, tmp, name, *extra):
    cmd = command(bootstrap, topic, group, tmp, name, "--batch", "256", "--max-wait", "60",
                  *extra)
    cmd.remove("--per-key-models")  # the default: one global model per partition
    return cmd


def global_models(directory):
    states, positions = {}, {}
    with ck.CheckpointStore(directory) as store:
        for p in store.partitions():
            c = store.load(p)
            assert set(c.models) == {ck.GLOBAL_KEY}
            states[int(p)] = c.models[ck.GLOBAL_KEY]._export_state()
            positions[int(p)] = c.position["offset"]
    return states, positions


@needs_core
def test_global_sigkill_and_resume_is_bit_identical(kafka, tmp_path):
    """One global model per partition: killed midway and restarted, every partition's model
    (shared weights and every key's state) and every record after the resume are those of
    an uninterrupted run, because the batches are cut where they would have been."""
    n = 24000
    kafka.create_topic("greadings", PARTITIONS)
    produce(kafka.bootstrap, "greadings", readings(n))
    run(global_command(kafka.bootstrap, "greadings", "gref", tmp_path, "gref", "--idle-exit",
                       "6"))
    ref_rows = outputs(tmp_path / "gref.jsonl")
    ref_states, ref_pos = global_models(tmp_path / "gref-ck")
    assert len(ref_rows) == n and sum(ref_pos.values()) == n and len(ref_states) == PARTITIONS

    env = child_env()
    cmd = global_command(kafka.bootstrap, "greadings", "gcrash", tmp_path, "gcrash",
                         "--idle-exit", "12")
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    out = tmp_path / "gcrash.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if out.exists() and out.stat().st_size > 0.45 * n * 150 \
                and list((tmp_path / "gcrash-ck").glob("partition-*.srnn")):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = outputs(out)
    assert 0 < len(first) < n, "the kill did not land midway"

    run(cmd)
    rows = outputs(out)
    resumed = rows[len(first):]
    states, pos = global_models(tmp_path / "gcrash-ck")
    assert pos == ref_pos
    for p in ref_states:
        assert_identical({p: _State(ref_states[p])}, {p: _State(states[p])})
    ref_by = {(r["partition"], r["offset"]): r for r in ref_rows}
    assert {(r["partition"], r["offset"]) for r in rows} == set(ref_by)
    for r in resumed:
        assert r == ref_by[(r["partition"], r["offset"])]
    r0 = ref_rows[-1]
    assert set(r0) == {"key", "time", "partition", "offset", "y", "prediction", "anomaly",
                       "forecast", "low", "high"}
    assert len(r0["low"]) == 2 and r0["low"][0] <= r0["forecast"][0] <= r0["high"][0]


class _State:
    def __init__(self, state):
        self.state = state

    def _export_state(self):
        return self.state


@needs_core
def test_global_bad_messages_are_dead_lettered_and_change_no_model(kafka, tmp_path):
    good, mixed, n_bad = _mixed_and_clean(kafka, "gmixed", "gclean")
    cmd = global_command(kafka.bootstrap, "gmixed", "gm", tmp_path, "gm", "--idle-exit", "5",
                         "--dead-letter", str(tmp_path / "gdead.jsonl"))
    p = run([a for a in cmd if a != "--quiet"])
    run(global_command(kafka.bootstrap, "gclean", "gc", tmp_path, "gc", "--idle-exit", "5"))
    dead = outputs(tmp_path / "gdead.jsonl")
    assert len(dead) == n_bad and f"{n_bad} bad" in p.stderr
    mixed_states, pos = global_models(tmp_path / "gm-ck")
    clean_states, _ = global_models(tmp_path / "gc-ck")
    assert sum(pos.values()) == len(mixed)
    assert_identical({p: _State(v) for p, v in clean_states.items()},
                     {p: _State(v) for p, v in mixed_states.items()})
    assert len(outputs(tmp_path / "gm.jsonl")) == len(good)
