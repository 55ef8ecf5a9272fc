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
    Runner(None, JsonLinesSource(str(path), Decoder(key="k", time="ts"), bad1), per,
           horizon=3, model_factory=_factory).run()
    glob = ListSink()
    bad2 = BadMessages()
    g = GlobalRunner(None, JsonLinesSource(str(path), Decoder(key="k", time="ts"), bad2), glob,
                     horizon=3, model_factory=lambda: PerKeyBatch(3, _factory), batch=batch)
    assert g.run() == 300
    assert glob.records == per.records
    assert bad2.count == bad1.count > 0 and bad2.by_reason == bad1.by_reason
    assert g.positions == {0: 300}
    t = g.totals()
    assert t["messages"] == 300 and t["bad"] == bad1.count and t["scored"] > 0
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
