"""streamrnn.streams.Runner, the exactly-once loop as a Python API: its example, the model
factory, the key limit, forecasts a sink refuses, and no checkpoint after a failure."""
import doctest
import json
import math
import os
import pickle
import subprocess
import sys
import warnings

import pytest

import streamrnn
from streamrnn import checkpoint as ck
from streamrnn import spec as spec_mod
from streamrnn.streams import (BadMessages, Decoder, JsonLinesSink, JsonLinesSource, Runner,
                               Sink, Undeliverable, runner as runner_mod)
from _support import child_env


class ListSink(Sink):
    def __init__(self, refuse=()):
        self.records = []
        self.refuse = set(refuse)
        self.flushes = 0

    def send(self, record, key=None):
        if record["offset"] in self.refuse:
            raise Undeliverable("too large for the broker")
        self.records.append(record)

    def flush(self):
        self.flushes += 1
        return True


def _write(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def _states(models):
    return {k: pickle.dumps(m._export_state()) for k, m in models.items()}


def test_the_runner_docstring_example_runs():
    finder = doctest.DocTestFinder()
    r = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(runner_mod) if t.examples]
    assert tests
    for t in tests:
        r.run(t)
    assert r.summarize(verbose=False).failed == 0


def test_runner_is_public_and_the_command_only_parses():
    import streamrnn.cli as cli
    assert Runner is runner_mod.Runner and "Runner" in streamrnn.streams.__all__
    assert not hasattr(cli, "Runner") or cli.Runner is Runner
    assert Runner.__doc__ and "model_factory" in Runner.__doc__


def test_the_runner_reads_last_prediction_not_private_history(tmp_path):
    class Spy(streamrnn.GRUForecaster):
        def __getattribute__(self, name):
            if name == "_hist" and sys._getframe(1).f_globals.get("__name__") == \
                    runner_mod.__name__:
                raise AssertionError("the runner read the private _hist")
            return super().__getattribute__(name)

    _write(tmp_path / "in.jsonl", [{"y": math.sin(i)} for i in range(30)])
    sink = ListSink()
    r = Runner(None, JsonLinesSource(tmp_path / "in.jsonl"), sink,
               model_factory=lambda: Spy(hidden_size=3, seed=1))
    assert r.run() == 30
    assert sink.records[0]["prediction"] is None
    assert all(isinstance(x["prediction"], float) for x in sink.records[1:])
    assert r.totals()["scored"] == 29


def test_the_default_factory_is_build_model_of_the_spec(tmp_path):
    _write(tmp_path / "in.jsonl", [{"y": float(i % 3)} for i in range(10)])
    spec = spec_mod.model_spec("lstm", hidden_size=3, seed=2)
    r = Runner(spec, JsonLinesSource(tmp_path / "in.jsonl"), ListSink())
    r.run()
    assert spec_mod.spec_from_model(r.models["series"]) == spec
    with pytest.raises(ValueError):
        Runner(spec, None, None, max_keys=0)


def _keys_rows(n, n_keys):
    return [{"y": math.sin(i / 5) + (i % n_keys), "k": f"key-{(i * 7) % n_keys}"}
            for i in range(n)]


def _run_file(spec, path, store_dir, max_keys, limit=0, sink=None):
    source = JsonLinesSource(path, Decoder(key="k"))
    sink = sink or ListSink()
    r = Runner(spec, source, sink, store=ck.CheckpointStore(str(store_dir)),
               checkpoint_every=25, max_keys=max_keys)
    starts = r.restore([0])
    if starts.get(0, 0) > 0:
        source.seek({0: starts[0]})
    r.run(limit=limit)
    r.store.close()
    return r, sink


def test_max_keys_evicts_the_least_recently_seen_and_resumes_identically(tmp_path, caplog):
    path = tmp_path / "in.jsonl"
    _write(path, _keys_rows(600, 40))
    spec = spec_mod.model_spec("gru", hidden_size=3, seed=1)
    full, fsink = _run_file(spec, path, tmp_path / "full", max_keys=10)
    assert len(full.models) == 10 and full.evicted > 0
    assert full.totals()["evicted"] == full.evicted
    assert "evicted the least recently seen key" in caplog.text
    # the ten kept are the ten most recently seen
    last_seen = {}
    for i, row in enumerate(_keys_rows(600, 40)):
        last_seen[row["k"]] = i
    assert set(full.models) == set(sorted(last_seen, key=last_seen.get)[-10:])
    stored = ck.CheckpointStore(tmp_path / "full").load(0)
    assert set(stored.models) == set(full.models)  # evicted keys left the checkpoint
    # cut in two: the same evictions, the same models, the same outputs
    _run_file(spec, path, tmp_path / "part", max_keys=10, limit=277)
    part, psink = _run_file(spec, path, tmp_path / "part", max_keys=10)
    assert _states(part.models) == _states(full.models)
    ref = {r["offset"]: r for r in fsink.records}
    assert all(r == ref[r["offset"]] for r in psink.records)
    assert list(part.models) == list(full.models)  # the recency order survives the checkpoint


def test_a_returning_key_gets_a_fresh_model(tmp_path):
    rows = [{"y": float(i), "k": "a"} for i in range(5)] + [{"y": 1.0, "k": "b"}] + \
        [{"y": 7.0, "k": "a"}]
    _write(tmp_path / "in.jsonl", rows)
    sink = ListSink()
    r = Runner(spec_mod.model_spec("gru", hidden_size=3, seed=1),
               JsonLinesSource(tmp_path / "in.jsonl", Decoder(key="k")), sink, max_keys=1)
    r.run()
    assert r.evicted == 2 and list(r.models) == ["a"]
    assert sink.records[-1]["prediction"] is None  # "a" starts afresh: no prediction yet


def test_an_undeliverable_forecast_is_dead_lettered_and_the_position_moves_past_it(tmp_path):
    _write(tmp_path / "in.jsonl", [{"y": float(i)} for i in range(30)])
    dead = JsonLinesSink(tmp_path / "dead.jsonl")
    sink = ListSink(refuse={12})
    r = Runner(spec_mod.model_spec("gru", hidden_size=3, seed=1),
               JsonLinesSource(tmp_path / "in.jsonl"), sink,
               store=ck.CheckpointStore(str(tmp_path / "ck")), checkpoint_every=10,
               bad=BadMessages(dead))
    r.restore([0])
    r.run()
    r.store.close()
    dead.close()
    rows = [json.loads(line) for line in open(tmp_path / "dead.jsonl")]
    assert [(d["offset"], d["kind"]) for d in rows] == [(12, "undeliverable forecast")]
    assert "too large" in rows[0]["reason"] and json.loads(rows[0]["payload"])["offset"] == 12
    assert sorted([x["offset"] for x in sink.records] + [12]) == list(range(30))
    assert ck.CheckpointStore(tmp_path / "ck").load(0).position["offset"] == 30
    assert r.totals()["undeliverable"] == 1


def test_refusals_reported_later_are_dead_lettered_before_the_checkpoint(tmp_path):
    class Later(ListSink):
        def __init__(self):
            super().__init__()
            self.refused = []

        def send(self, record, key=None):
            if record["offset"] == 4:
                self.refused.append((record, "broker: too large"))
            else:
                self.records.append(record)

        def take_undeliverable(self):
            out, self.refused = self.refused, []
            return out

    _write(tmp_path / "in.jsonl", [{"y": float(i)} for i in range(10)])
    dead = ListSink()
    r = Runner(spec_mod.model_spec("gru", hidden_size=3, seed=1),
               JsonLinesSource(tmp_path / "in.jsonl"), Later(),
               store=ck.CheckpointStore(str(tmp_path / "ck")), checkpoint_every=5,
               bad=BadMessages(dead))
    r.restore([0])
    r.run()
    assert [d["offset"] for d in dead.records] == [4] and dead.flushes >= 1


def test_after_a_failure_nothing_is_checkpointed_not_even_on_revoke(tmp_path):
    class Breaks(ListSink):
        def send(self, record, key=None):
            if record["offset"] == 17:
                raise BrokenPipeError("gone")
            super().send(record, key)

    _write(tmp_path / "in.jsonl", [{"y": float(i)} for i in range(40)])
    store = ck.CheckpointStore(str(tmp_path / "ck"))
    r = Runner(spec_mod.model_spec("gru", hidden_size=3, seed=1),
               JsonLinesSource(tmp_path / "in.jsonl"), Breaks(), store=store,
               checkpoint_every=10)
    r.restore([0])
    with pytest.raises(BrokenPipeError):
        r.run()
    assert store.load(0).position["offset"] == 10
    r.revoke([0])  # e.g. the Kafka group revoking partitions as the consumer closes
    assert r.checkpoint(force=True) is False
    assert store.load(0).position["offset"] == 10


def test_the_command_reports_evictions(tmp_path):
    _write(tmp_path / "in.jsonl", _keys_rows(300, 30))
    p = subprocess.run([sys.executable, "-m", "streamrnn", "forecast", "--per-key-models",
                        "--source",
                        str(tmp_path / "in.jsonl"), "--key", "k", "--max-keys", "5",
                        "--hidden-size", "3", "--sink", os.devnull],
                       env=child_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "5 keys" in p.stderr and "keys evicted" in p.stderr


def test_a_second_command_on_a_locked_checkpoint_directory_is_refused(tmp_path):
    env = child_env()
    ck_dir = str(tmp_path / "ck")
    cmd = [sys.executable, "-m", "streamrnn", "forecast", "--per-key-models", "--source", "-",
           "--checkpoint",
           ck_dir, "--quiet", "--hidden-size", "3"]
    first = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        first.stdin.write(b'{"y": 1}\n')
        first.stdin.flush()
        assert first.stdout.readline()  # it runs, and holds the directory
        second = subprocess.run(cmd, env=env, input=b'{"y": 2}\n{"y": 3}\n',
                                capture_output=True, timeout=60)
        assert second.returncode == 2, second.stderr.decode()
        err = second.stderr.decode()
        assert "streamrnn: error:" in err and str(first.pid) in err, err
        assert second.stdout == b""  # refused before consuming anything
    finally:
        first.stdin.close()
        first.wait(60)
    assert first.returncode == 0
    assert ck.CheckpointStore(ck_dir).load(0).position["offset"] == 1


def test_an_unwritable_checkpoint_directory_fails_before_anything_is_consumed(tmp_path):
    # /proc/self is a directory nobody can create files in, not even root
    p = subprocess.run([sys.executable, "-m", "streamrnn", "forecast", "--per-key-models",
                        "--source", "-",
                        "--checkpoint", "/proc/self", "--hidden-size", "3"], env=child_env(),
                       input=b"".join(b'{"y": %d}\n' % i for i in range(50)),
                       capture_output=True, timeout=60)
    assert p.returncode == 2 and b"streamrnn: error:" in p.stderr, p.stderr
    assert p.stdout == b""


def test_a_key_cannot_grow_its_model_without_bound(tmp_path):
    # one limit, the model's max_features: features first seen beyond it are ignored by the
    # model (every message is still learned) and counted by the runner
    rows = [{"y": float(i % 5), f"f{i}": 1.0, "common": 2.0} for i in range(20)]
    _write(tmp_path / "in.jsonl", rows)
    spec = spec_mod.model_spec("gru", hidden_size=3, seed=1, max_features=4)

    def go(store_dir, limit=0):
        src = JsonLinesSource(tmp_path / "in.jsonl")
        sink = ListSink()
        with ck.CheckpointStore(str(store_dir)) as store:
            r = Runner(spec, src, sink, store=store, checkpoint_every=3)
            start = r.restore([0]).get(0, 0)
            if start > 0:
                src.seek({0: start})
            r.run(limit=limit)
        return r, sink

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r, sink = go(tmp_path / "a")
        assert [x["offset"] for x in sink.records] == list(range(20))
        m = r.models["series"]
        assert len(m._index) == 4 and "common" in m._index
        assert r.totals()["bad"] == 0 and r.totals()["ignored_features"] == \
            m.n_ignored_features >= 15
        assert not hasattr(r, "features")  # no second copy of the names in the runner
        # the count is checkpointed: a resumed run ends with the same model and count
        go(tmp_path / "b", limit=2)
        r2, sink2 = go(tmp_path / "b")
    assert [x["offset"] for x in sink2.records] == list(range(2, 20))
    assert r2.totals()["ignored_features"] == r.totals()["ignored_features"]
    assert _states(r2.models) == _states(r.models)


def _scored_run(tmp_path, store_dir, limit=0, alpha=0.1):
    src = JsonLinesSource(tmp_path / "in.jsonl", Decoder(key="k"))
    sink = ListSink()
    spec = spec_mod.model_spec("gru", hidden_size=3, seed=1)
    with ck.CheckpointStore(str(store_dir)) as store:
        r = Runner(spec, src, sink, horizon=2, store=store, checkpoint_every=10, alpha=alpha)
        start = r.restore([0]).get(0, 0)
        if start > 0:
            src.seek({0: start})
        r.run(limit=limit)
    return r, sink


def test_the_scores_resume_with_the_checkpoint_and_a_hostile_score_state_is_refused(tmp_path,
                                                                                  caplog):
    _write(tmp_path / "in.jsonl", [{"k": f"k{i % 2}", "y": math.sin(i / 3)} for i in range(80)])
    full, _ = _scored_run(tmp_path, tmp_path / "a")
    _scored_run(tmp_path, tmp_path / "b", limit=37)
    part, _ = _scored_run(tmp_path, tmp_path / "b")
    assert part.scores_resumed == {0}
    assert json.dumps(part.scorer.table()) == json.dumps(full.scorer.table())
    # another alpha: the carried scores do not fit, this run's start afresh (and say so)
    _scored_run(tmp_path, tmp_path / "c", limit=37)
    other, _ = _scored_run(tmp_path, tmp_path / "c", alpha=0.2)
    assert other.scores_resumed == set() and "start with this run" in caplog.text
    # a checkpoint whose scores were tampered with is refused, naming the field
    with ck.CheckpointStore(str(tmp_path / "b")) as store:
        c = store.load(0)
    for bad, says in ((lambda e: e["scores"].update(part=[1]), "extra.scores.part"),
                      (lambda e: e["scores"]["part"].update(keys_seen=-2), "keys_seen"),
                      (lambda e: e["scores"]["keys"].update(ghost={}), "without a model"),
                      (lambda e: e["scores"]["keys"]["k0"].update(hist="x"), "hist"),
                      (lambda e: e.update(scores=5), "extra.scores")):
        extra = json.loads(json.dumps(c.extra))
        bad(extra)
        d = tmp_path / f"bad-{len(says)}-{says[:5]}"
        with ck.CheckpointStore(str(d)) as store:
            store.save(0, c.models, c.spec, c.source, c.position["offset"], extra=extra)
        with pytest.raises(ck.CheckpointError, match=says):
            _scored_run(tmp_path, d)
