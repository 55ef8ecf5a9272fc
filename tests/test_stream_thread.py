"""GlobalRunner's learning thread (``learn_thread``, inside ``run``): a run with it equals a
run without it, message for message, on several partitions whose batches interleave: the
same records and dead letters in the same order, the same models (pickle bytes of their
state), positions, statistics and checkpoints; an error in the learning thread stops the
run, and a resume from its checkpoints ends exactly as an uninterrupted run."""
import json
import math
import pickle
import random

import pytest

from streamrnn import checkpoint as ck
from streamrnn.spec import build_model, model_spec
from streamrnn.streams import BadMessages, Decoder, Sink, Source
from streamrnn.streams.batched import GlobalRunner


class Events(Sink):
    """Records (as the encoded bytes the runner hands over) and dead letters, in one list."""

    def __init__(self, events, kind):
        self.events = events
        self.kind = kind

    def send(self, record, key=None):
        self.events.append((self.kind, json.dumps(record, sort_keys=True)))

    def send_encoded(self, values, keys):
        self.events.extend((self.kind, v, k) for v, k in zip(values, keys))
        return []


class Interleaved(Source):
    """Messages of several partitions, read in batches of random sizes (a fixed seed)."""

    def __init__(self, items, seed, bad):
        self.items = items  # (partition, payload)
        self.rng = random.Random(seed)
        self.at = 0
        self.next_offset = {}
        self.decoder = Decoder(key="k", time="ts")
        self.bad = bad
        self.start = {}

    def seek(self, positions):
        self.start = {p: o for p, o in positions.items() if o >= 0}

    def read(self, timeout=1.0):
        if self.at >= len(self.items):
            return None
        n = self.rng.randint(1, 300)
        out = []
        for p, value in self.items[self.at:self.at + n]:
            off = self.next_offset.get(p, 0)
            self.next_offset[p] = off + 1
            if off >= self.start.get(p, 0):
                out.append(self.decoder.decode(value, p, off))
        self.at += n
        return out


def stream(n=6000, parts=3, keys=40, seed=0):
    rng = random.Random(seed)
    items = []
    for i in range(n):
        p = rng.choices(range(parts), weights=[5, 3, 1][:parts])[0]
        if i % 97 == 13:
            value = b"not json" if i % 2 else json.dumps({"k": "a", "y": "x"}).encode()
        elif i % 211 == 7:
            value = json.dumps({"k": f"s{p}-0", "y": 1e300}).encode()  # the model rejects it
        else:
            k = rng.randrange(keys)
            value = json.dumps({"k": f"s{p}-{k}", "y": round(math.sin(i / 9 + k) * 4, 3),
                                "temp": rng.choice([None, round(rng.random(), 3)]),
                                "ts": i}).encode()
            value = value.replace(b', "temp": null', b"")
        items.append((p, value))
    return items


def spec(**kw):
    return model_spec("gru", model="global", hidden_size=4, tbptt_steps=3, horizon=2, seed=3,
                      max_keys=25, **kw)


def run(tmp_path, name, items, thread, factory=None, every=700, resume=False):
    events = []
    bad = BadMessages(Events(events, "dead"))
    store = ck.CheckpointStore(str(tmp_path / name))
    src = Interleaved(items, 5, bad)
    g = GlobalRunner(spec(), src, Events(events, "record"), horizon=2,
                     store=store, checkpoint_every=every, bad=bad, batch=64, max_wait=1e9,
                     max_keys=25, learn_thread=thread, model_factory=factory)
    try:
        if resume:
            src.seek(g.restore(sorted({p for p, _ in items})))
        g.run()
    finally:
        store.close()
    return g, events


def saved(directory):
    out = {}
    with ck.CheckpointStore(str(directory)) as store:
        for p in store.partitions():
            c = store.load(p)
            out[p] = (pickle.dumps(c.models[ck.GLOBAL_KEY]._export_state()),
                      c.position["offset"])
    return out


def test_a_run_with_the_learning_thread_equals_one_without(tmp_path):
    items = stream()
    a, ea = run(tmp_path, "thread", items, True)
    b, eb = run(tmp_path, "plain", items, False)
    assert len(ea) == len(items) and ea == eb  # every message: a record or a dead letter
    assert sum(e[0] == "dead" for e in ea) > 60
    assert a.positions == b.positions and sum(a.positions.values()) == len(items)
    assert {p: pickle.dumps(m._export_state()) for p, m in a.parts.items()} == \
        {p: pickle.dumps(m._export_state()) for p, m in b.parts.items()}
    assert a.totals() == b.totals() and a.evicted == b.evicted > 0
    assert saved(tmp_path / "thread") == saved(tmp_path / "plain")
    assert a.checkpoints > 3 and a._pool is None and a._inflight is None


class Broken(Exception):
    pass


def test_an_error_in_the_learning_thread_stops_the_run_and_resume_is_exact(tmp_path):
    """The 9th learned batch raises in the thread: run raises it, no checkpoint passes a
    batch that was not settled, and a resume from the checkpoints ends with the models and
    records of an uninterrupted run."""
    items = stream(3000)
    counts = {}

    def factory():
        m = build_model(spec())
        learn = m.learn_columns

        def failing(*args, **kw):
            counts["n"] = counts.get("n", 0) + 1
            if counts["n"] == 9:
                raise Broken("the model broke")
            return learn(*args, **kw)
        m.learn_columns = failing
        return m
    ref, ref_events = run(tmp_path, "ref", items, False, every=100)
    by = {}
    for e in ref_events:
        if e[0] == "record":
            r = json.loads(e[1])
            by[r["partition"], r["offset"]] = e
    for thread in (True, False):
        counts.clear()
        with pytest.raises(Broken):
            run(tmp_path, f"broken-{thread}", items, thread, factory, every=100)
        assert saved(tmp_path / f"broken-{thread}")  # some checkpoints before the error
        g, events = run(tmp_path, f"broken-{thread}", items, thread, every=100, resume=True)
        assert {p: pickle.dumps(m._export_state()) for p, m in g.parts.items()} == \
            {p: pickle.dumps(m._export_state()) for p, m in ref.parts.items()}
        records = [e for e in events if e[0] == "record"]
        assert records and all(by[json.loads(e[1])["partition"],
                                  json.loads(e[1])["offset"]] == e for e in records)
        assert g.positions == ref.positions
