"""streamrnn.streams.GlobalRunner, the batched loop with one multi-series model per partition:
its records equal the per-message Runner's when the model behind the batch API is one
forecaster per key (so batching, grouping by partition, the statistics and the dead letters
are those of the per-message loop), bad messages and rejected rows change nothing, and the
batch cuts are deterministic."""
import json
import math

import numpy as np
import pytest

from streamrnn import GRUForecaster
from streamrnn.streams import BadMessages, Decoder, JsonLinesSource, Runner, Sink
from streamrnn.streams.batched import GlobalRunner


class ListSink(Sink):
    def __init__(self):
        self.records = []

    def send(self, record, key=None):
        self.records.append(record)


class _Result:
    def __init__(self, n, h):
        self.ok = np.zeros(n, dtype=bool)
        self.prediction = np.full(n, np.nan)
        self.anomaly = np.full(n, np.nan)
        self.forecast = np.full((n, h), np.nan)
        self.low = np.full((n, h), np.nan)
        self.high = np.full((n, h), np.nan)
        self.errors = []


class PerKeyBatch:
    """The multi-series batch API (learn_many and the counters the runner reads) over one
    real GRUForecaster per key: its records must be the per-message Runner's."""

    def __init__(self, h, factory):
        self.h = h
        self.factory = factory
        self.models = {}
        self.n_ignored_features = 0
        self.n_evicted = 0
        self.slot_bytes = 1

    def __len__(self):
        return len(self.models)

    def __contains__(self, key):
        return key in self.models

    def keys(self):
        return list(self.models)

    def learn_many(self, keys, ys, xs=None, alpha=0.1):
        r = _Result(len(keys), self.h)
        for i, (k, y) in enumerate(zip(keys, ys)):
            m = self.models.get(k)
            if m is None:
                m = self.models[k] = self.factory()
            try:
                m.learn_one(y, None if xs is None else xs[i])
            except (ValueError, TypeError) as e:
                r.errors.append((i, str(e)))
                continue
            r.ok[i] = True
            nan = math.nan
            r.prediction[i] = nan if m.last_prediction is None else m.last_prediction
            a = m.last_anomaly
            r.anomaly[i] = nan if a is None else a
            r.forecast[i] = m.forecast(self.h)
            iv = m.forecast_interval(self.h, alpha)
            r.low[i] = [b[0] for b in iv]
            r.high[i] = [b[1] for b in iv]
        return r


def _rows(n, n_keys, bad_every=0):
    out = []
    for i in range(n):
        if bad_every and i % bad_every == bad_every - 1:
            out.append("not json" if i % 2 else json.dumps({"k": "a", "y": "x"}))
            continue
        out.append(json.dumps({"k": f"s{i % n_keys}", "y": round(math.sin(i / 7) * 5, 3),
                               "temp": i % 5, "ts": i}))
    return out


def _factory():
    return GRUForecaster(hidden_size=4, horizon=3, seed=1)


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_batched_records_equal_the_per_message_runner(tmp_path, batch):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(_rows(300, 5, bad_every=37)) + "\n")
    per = ListSink()
    bad1 = BadMessages()
    r1 = Runner(None, JsonLinesSource(str(path), Decoder(key="k", time="ts"), bad1), per,
                horizon=3, model_factory=_factory)
    r1.run()
    glob = ListSink()
    bad2 = BadMessages()
    g = GlobalRunner(None, JsonLinesSource(str(path), Decoder(key="k", time="ts"), bad2), glob,
                     horizon=3, model_factory=lambda: PerKeyBatch(3, _factory), batch=batch)
    assert g.run() == 300
    assert glob.records == per.records
    assert bad2.count == bad1.count > 0 and bad2.by_reason == bad1.by_reason
    assert g.positions == {0: 300}
    t, t1 = g.totals(), r1.totals()
    assert t["messages"] == 300 and t["bad"] == bad1.count and t["scored"] > 0
    assert t == pytest.approx(t1, rel=1e-12)  # a key repeating within a batch included
    sc, sc1 = g.scorer.table(), r1.scorer.table()
    assert [r["n"] for r in sc["model"]] == [r["n"] for r in sc1["model"]]
    assert [r["mae"] for r in sc["model"]] == pytest.approx([r["mae"] for r in sc1["model"]])
    assert set(glob.records[-1]) == {"key", "time", "partition", "offset", "y", "prediction",
                                     "anomaly", "forecast", "low", "high"}
    assert g.n_keys == 5


def test_a_partition_learns_in_batches_of_exactly_batch_messages(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(_rows(100, 3)) + "\n")
    calls = []

    class Spy(PerKeyBatch):
        def learn_many(self, keys, ys, xs=None, alpha=0.1):
            calls.append(len(keys))
            return super().learn_many(keys, ys, xs, alpha)
    g = GlobalRunner(None, JsonLinesSource(str(path), Decoder(key="k")), ListSink(), horizon=1,
                     model_factory=lambda: Spy(1, _factory), batch=32)
    g.run()
    assert calls == [32, 32, 32, 4]


# ---------------------------------------------------------------------------- the real model
@pytest.fixture
def core():
    """The compiled core when it is built, else the stand-in of its contract (helper E's)."""
    from streamrnn import multiseries as ms
    if ms.GlobalCore is None:
        from _global_standin import StandInCore
        ms.GlobalCore = StandInCore
        yield
        ms.GlobalCore = None
    else:
        yield


def _gspec(**kw):
    from streamrnn.spec import model_spec
    kw.setdefault("hidden_size", 4)
    kw.setdefault("tbptt_steps", 4)
    kw.setdefault("horizon", 3)
    kw.setdefault("seed", 1)
    return model_spec("gru", model="global", **kw)


class Crash(Exception):
    pass


class CrashingSink(ListSink):
    """Raises (as a broken sink would) once ``after`` records were sent."""

    def __init__(self, after=None):
        super().__init__()
        self.after = after

    def send(self, record, key=None):
        if self.after is not None and len(self.records) >= self.after:
            raise Crash("the sink broke")
        self.records.append(record)


def _exported(runner):
    import pickle
    return {p: pickle.dumps(m._export_state()) for p, m in runner.parts.items()}


def _global_run(path, store_dir, sink, batch=16, every=50, limit=0):
    from streamrnn import checkpoint as ck
    store = ck.CheckpointStore(str(store_dir))
    src = JsonLinesSource(str(path), Decoder(key="k", time="ts"), BadMessages())
    g = GlobalRunner(_gspec(), src, sink, horizon=3, store=store, checkpoint_every=every,
                     batch=batch, max_wait=1e9)
    starts = g.restore([0])
    if starts.get(0, 0) > 0:
        src.seek({0: starts[0]})
    try:
        g.run(limit=limit)
    finally:
        store.close()
    return g


def test_a_crash_and_resume_is_bit_identical_to_an_uninterrupted_run(core, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(_rows(700, 9, bad_every=41)) + "\n")
    ref_sink = ListSink()
    ref = _global_run(path, tmp_path / "ref", ref_sink)
    with pytest.raises(Crash):
        _global_run(path, tmp_path / "crash", CrashingSink(after=380))
    resumed_sink = ListSink()
    res = _global_run(path, tmp_path / "crash", resumed_sink)
    assert res.positions == ref.positions == {0: 700}
    assert _exported(res) == _exported(ref)
    by = {r["offset"]: r for r in ref_sink.records}
    assert resumed_sink.records and resumed_sink.records[0]["offset"] < 380
    assert all(r == by[r["offset"]] for r in resumed_sink.records)
    assert res.totals() == ref.totals()


def test_bad_messages_change_no_batch_and_no_model(core, tmp_path):
    clean, mixed = tmp_path / "clean.jsonl", tmp_path / "mixed.jsonl"
    rows = _rows(400, 7)
    clean.write_text("\n".join(rows) + "\n")
    with_bad = []
    for i, r in enumerate(rows):
        with_bad.append(r)
        if i % 13 == 5:
            with_bad.append('{"k": "s1", "y": null}' if i % 2 else "not json")
    mixed.write_text("\n".join(with_bad) + "\n")
    a = _global_run(clean, tmp_path / "a", ListSink())
    b = _global_run(mixed, tmp_path / "b", ListSink())
    assert _exported(a) == _exported(b)
    assert b.totals()["bad"] == len(with_bad) - len(rows) and b.positions == {0: len(with_bad)}


def test_a_row_the_model_rejects_is_dead_lettered_and_counted(core, tmp_path):
    path = tmp_path / "in.jsonl"
    rows = _rows(100, 4)
    rows.insert(50, json.dumps({"k": "s1", "y": 1e300}))
    path.write_text("\n".join(rows) + "\n")
    dead = ListSink()
    sink = ListSink()
    g = GlobalRunner(_gspec(), JsonLinesSource(str(path), Decoder(key="k"), BadMessages(dead)),
                     sink, horizon=3, batch=16)
    assert g.run() == 101
    assert g.totals()["bad"] == 1 and len(sink.records) == 100
    assert dead.records[0]["kind"] == "rejected by the model" and dead.records[0]["offset"] == 50
    assert g.positions == {0: 101}


def test_the_checkpoint_refuses_the_other_kind_of_model(core, tmp_path):
    from streamrnn import checkpoint as ck
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(_rows(60, 3)) + "\n")
    _global_run(path, tmp_path / "g", ListSink())
    store = ck.CheckpointStore(str(tmp_path / "g"))
    try:
        r = Runner(_factory_spec(), JsonLinesSource(str(path), Decoder(key="k")), ListSink(),
                   horizon=3, store=store)
        with pytest.raises(ck.CheckpointError):
            r.restore([0])
    finally:
        store.close()


def _factory_spec():
    from streamrnn.spec import model_spec
    return model_spec("gru", hidden_size=4, horizon=3, seed=1)


def test_the_records_are_strict_json_with_nulls(core, tmp_path):
    from streamrnn.streams import JsonLinesSink
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(_rows(80, 4)) + "\n")
    out = tmp_path / "out.jsonl"
    sink = JsonLinesSink(str(out))
    GlobalRunner(_gspec(), JsonLinesSource(str(path), Decoder(key="k", time="ts")), sink,
                 horizon=3, batch=16).run()
    sink.close()

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    rows = [json.loads(line, parse_constant=refuse) for line in out.read_text().splitlines()]
    assert len(rows) == 80 and rows[0]["prediction"] is None and rows[0]["anomaly"] is None
    assert all(len(r["forecast"]) == 3 for r in rows) and rows[-1]["prediction"] is not None


@pytest.mark.parametrize("series", [{"ghost": 1.0}, {"s0": "x"}, {"s0": float("inf")}, [1, 2],
                                    {"s0": [1.0]}])
def test_a_malformed_run_record_in_a_global_checkpoint_is_refused(core, tmp_path, series):
    from streamrnn import checkpoint as ck
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(_rows(60, 3)) + "\n")
    g = _global_run(path, tmp_path / "g", ListSink())
    store = ck.CheckpointStore(str(tmp_path / "g"))
    try:
        extra = {"stats": g.stats[0], "series": series}
        try:
            store.save(0, {ck.GLOBAL_KEY: g.parts[0]}, g.spec,
                       g.source.describe(0) if g.source else {"kind": "JsonLinesSource",
                                                              "partition": 0}, 60, extra=extra)
        except (ValueError, TypeError):
            assert series == {"s0": float("inf")}  # JSON has no infinity: refused at once
            return
        r = GlobalRunner(_gspec(), JsonLinesSource(str(path), Decoder(key="k")), ListSink(),
                         horizon=3, store=store)
        with pytest.raises(ck.CheckpointError):
            r.restore([0])
        assert r.parts == {} and r.positions == {}
    finally:
        store.close()


def test_the_module_docstring_example_runs(core):
    import doctest

    from streamrnn.streams import batched
    r = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in doctest.DocTestFinder().find(batched) if t.examples]
    assert tests
    for t in tests:
        r.run(t)
    assert r.summarize(verbose=False).failed == 0


def test_a_crash_and_resume_with_evictions_is_bit_identical(core, tmp_path):
    """More keys than max_keys: the model evicts (its LRU order is checkpointed), the scores
    forget the evicted keys, and a resumed run still ends bit-identical."""
    from streamrnn import checkpoint as ck

    def run(store_dir, sink):
        store = ck.CheckpointStore(str(store_dir))
        src = JsonLinesSource(str(path), Decoder(key="k", time="ts"), BadMessages())
        g = GlobalRunner(_gspec(max_keys=6), src, sink, horizon=3, store=store,
                         checkpoint_every=40, batch=16, max_wait=1e9, max_keys=6)
        starts = g.restore([0])
        if starts.get(0, 0) > 0:
            src.seek({0: starts[0]})
        try:
            g.run()
        finally:
            store.close()
        return g
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(_rows(500, 11)) + "\n")
    ref_sink = ListSink()
    ref = run(tmp_path / "ref", ref_sink)
    assert ref.evicted > 0 and ref.n_keys == 6
    with pytest.raises(Crash):
        run(tmp_path / "crash", CrashingSink(after=230))
    res_sink = ListSink()
    res = run(tmp_path / "crash", res_sink)
    assert _exported(res) == _exported(ref)
    by = {r["offset"]: r for r in ref_sink.records}
    assert all(r == by[r["offset"]] for r in res_sink.records)
    assert res.totals() == ref.totals()
    assert res.scorer.table()["model"][0]["n"] == ref.scorer.table()["model"][0]["n"]
    for g in (ref, res):  # nothing is kept of an evicted key
        assert set(g.scorer._rows) == set(g.parts[0].keys()) == set(g.last_of[0])
