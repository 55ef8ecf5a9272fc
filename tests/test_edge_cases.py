"""Edge cases found in review: each once let a rejected or unusual input change a model, or
lose exactly-once in the command."""
import copy
import json
import math
import pickle

import numpy as np
import pytest
from river import optim

import streamrnn
from streamrnn import checkpoint as ck
from streamrnn import spec as spec_mod
from streamrnn.streams import Runner
from streamrnn.streams import Decoder, JsonLinesSource, Sink


class ListSink(Sink):
    def __init__(self, fail_at=None):
        self.records = []
        self.fail_at = fail_at

    def send(self, record, key=None):
        if record["offset"] == self.fail_at:
            raise BrokenPipeError("downstream closed")
        self.records.append(record)


def _write(path, values):
    with open(path, "w") as f:
        for v in values:
            f.write(json.dumps({"y": v}) + "\n")


def _run(spec, path, store_dir, fail_at=None):
    source, sink = JsonLinesSource(str(path), Decoder()), ListSink(fail_at)
    runner = Runner(spec, source, sink, store=ck.CheckpointStore(str(store_dir)),
                    checkpoint_every=10)
    starts = runner.restore([0])
    if starts.get(0, 0) > 0:
        source.seek({0: starts[0]})
    try:
        runner.run()
    except BrokenPipeError:
        pass
    return runner, sink


def test_a_broken_sink_does_not_break_exactly_once(tmp_path):
    path = tmp_path / "data.jsonl"
    _write(path, [math.sin(i / 3) for i in range(60)])
    spec = spec_mod.model_spec("gru", hidden_size=4, seed=1)
    reference, _ = _run(spec, path, tmp_path / "a")
    _run(spec, path, tmp_path / "b", fail_at=25)  # the sink breaks mid-stream
    resumed, sink = _run(spec, path, tmp_path / "b")
    a = reference.models["series"]._export_state()
    b = resumed.models["series"]._export_state()
    assert pickle.dumps(a) == pickle.dumps(b)
    assert sink.records[0]["offset"] <= 25  # the lost output is produced again


def test_a_checkpoint_of_another_file_is_refused(tmp_path):
    _write(tmp_path / "A.jsonl", range(30))
    _write(tmp_path / "B.jsonl", range(30))
    spec = spec_mod.model_spec("gru", hidden_size=4, seed=1)
    _run(spec, tmp_path / "A.jsonl", tmp_path / "ck")
    with pytest.raises(ck.CheckpointError, match="belongs to source"):
        _run(spec, tmp_path / "B.jsonl", tmp_path / "ck")


def test_a_rejected_bool_label_leaves_the_classes_as_they_were():
    model = streamrnn.LSTMClassifier(seed=1, hidden_size=4)
    for t in range(10):
        model.learn_one({"a": float(t)}, "x" if t % 2 else "y")
    before = copy.deepcopy(model)
    with pytest.raises(ValueError):
        model.learn_one({"a": 1e300, "b": 1.0}, True)  # too large to standardise
    assert model.classes == before.classes == ["y", "x"]
    assert model.network.n_out == 2 and model.network.n_in == before.network.n_in
    assert set(model.predict_proba_one({"a": 1.0})) == {"x", "y"}


@pytest.mark.parametrize("value", [1e300, -1.7e308, 10 ** 400])
def test_values_too_large_to_standardise_are_rejected(value):
    reg = streamrnn.GRURegressor(seed=1, hidden_size=4)
    fc = streamrnn.GRUForecaster(seed=1, hidden_size=4)
    for t in range(5):
        reg.learn_one({"a": float(t)}, float(t))
        fc.learn_one(float(t))
    snaps = copy.deepcopy(reg), copy.deepcopy(fc)
    for _ in range(2):  # the second time, statistics that already absorbed one would overflow
        with pytest.raises(ValueError):
            reg.learn_one({"a": 1.0}, value)
        with pytest.raises(ValueError):
            fc.learn_one(value)
        with pytest.raises(ValueError):
            reg.learn_one({"a": value}, 1.0)
    assert math.isfinite(reg.predict_one({"a": 1.0}))
    assert all(math.isfinite(v) for v in fc.forecast(3))
    assert pickle.dumps(reg._export_state()) == pickle.dumps(snaps[0]._export_state())
    assert pickle.dumps(fc._export_state()) == pickle.dumps(snaps[1]._export_state())


def test_unscaled_missing_features_are_filled_with_their_mean():
    model = streamrnn.RNNRegressor(scale_inputs=False, seed=1, hidden_size=4)
    for t in range(20):
        model.learn_one({"a": 100.0 + t, "b": 1.0}, 1.0)
    model.predict_one({"b": 1.0})
    assert model._u[0] == pytest.approx(109.5)


def test_state_of_another_configuration_is_refused_whole():
    lstm = streamrnn.LSTMForecaster(hidden_size=4, seed=1)
    for t in range(20):
        lstm.learn_one(float(t), {"a": 1.0})
    gru = streamrnn.GRUForecaster(hidden_size=16, seed=1)
    before = pickle.dumps(gru._export_state())
    with pytest.raises(ValueError, match="does not fit"):
        gru._import_state(lstm._export_state())
    assert pickle.dumps(gru._export_state()) == before
    seasonal = streamrnn.LSTMForecaster(hidden_size=4, seasonality=7, seed=1)
    with pytest.raises(ValueError):  # the wording is the estimators' own
        seasonal._import_state(lstm._export_state())


def test_tuple_labels_and_features_survive_a_checkpoint(tmp_path):
    model = streamrnn.GRUClassifier(seed=1, hidden_size=4)
    for t in range(20):
        model.learn_one({("sensor", 1): float(t)}, ("a", t % 2))
    restored = model.clone()
    restored._import_state(model._export_state())
    assert restored.classes == model.classes
    x = {("sensor", 1): 3.0}
    assert restored.predict_proba_one(x) == model.predict_proba_one(x)


def test_checkpoint_keys_must_be_str(tmp_path):
    spec = spec_mod.model_spec("gru", hidden_size=4, seed=1)
    with pytest.raises(TypeError, match="str"):
        ck.save(tmp_path / "k.srnn", {7: spec_mod.build_model(spec)}, spec)


def test_numpy_horizon_and_rejected_scheduled_step():
    model = streamrnn.LSTMForecaster(seed=1, hidden_size=4,
                                     optimizer=optim.SGD(optim.schedulers.InverseScaling(0.1)))
    for t in range(10):
        model.learn_one(float(t))
    assert len(model.forecast(np.int64(3))) == 3
    with pytest.raises(ValueError):
        model.forecast(True)
    before = pickle.dumps(model._export_state())
    with pytest.raises(ValueError):
        model.learn_one(1e300)
    assert pickle.dumps(model._export_state()) == before


def test_weights_that_overflow_get_a_clear_error():
    model = streamrnn.RNNRegressor(optimizer=optim.SGD(1e300), clip_norm=None, seed=0,
                                   hidden_size=4)
    with pytest.raises(ValueError, match="not learned|no longer finite"):
        for t in range(50):
            model.learn_one({"a": float(t)}, float(t) * 1e3)


def test_no_checkpoint_while_the_sink_has_undelivered_forecasts(tmp_path):
    class Undelivered(ListSink):
        def flush(self):
            return False  # e.g. Kafka deliveries that failed

    path = tmp_path / "data.jsonl"
    _write(path, range(30))
    spec = spec_mod.model_spec("gru", hidden_size=4, seed=1)
    source = JsonLinesSource(str(path), Decoder())
    runner = Runner(spec, source, Undelivered(), store=ck.CheckpointStore(str(tmp_path / "ck")),
                    checkpoint_every=10)
    runner.restore([0])
    runner.run()
    assert not list((tmp_path / "ck").glob("*.srnn"))
