"""Model specs: complete, read from the registry and the constructor, validated, diffed."""
import json
import inspect

import pytest
from river import optim

from streamrnn import _registry
from streamrnn import spec as sp


def test_spec_lists_every_constructor_parameter_and_round_trips():
    for cell in _registry.CELLS:
        s = sp.model_spec(cell, hidden_size=5, seed=2)
        cls = _registry.estimator_class("forecaster", cell)
        names = set(inspect.signature(cls).parameters) - {"optimizer", "loss"}
        assert set(s["params"]) == names
        assert sp.spec_from_model(sp.build_model(s)) == s
        assert s["optimizer"] == {"name": "Adam", "lr": sp.default_lr(), "beta_1": 0.9,
                                  "beta_2": 0.999, "eps": 1e-08}


def test_every_registered_optimizer_and_forecasting_loss_is_described():
    for name in _registry.OPTIMIZERS:
        s = sp.model_spec("gru", optimizer=name, lr=0.01, hidden_size=3)
        m = sp.build_model(s)
        assert type(m.optimizer) is _registry.OPTIMIZERS[name].river
        assert s["optimizer"]["lr"] == 0.01 and sp.spec_from_model(m) == s
    for name, entry in _registry.LOSSES.items():
        if entry.task == "regression":
            assert sp.build_model(sp.model_spec("lstm", loss=name)).loss.__class__ is entry.river
        else:
            with pytest.raises(ValueError, match="loss"):
                sp.model_spec("lstm", loss=name)
    m = sp.build_model(sp.model_spec("rnn"))
    m.optimizer = optim.Adam(optim.schedulers.InverseScaling(0.1))
    with pytest.raises(ValueError, match="scheduler"):
        sp.spec_from_model(m)


@pytest.mark.parametrize("bad, field", [
    ({"cell": "transformer"}, "cell"),
    ({"params": {"hidden": 3}}, "unknown"),
    ({"params": {"hidden_size": 65536}}, "hidden_size"),
    ({"params": {"hidden_size": 0}}, "hidden_size"),
    ({"params": {"num_layers": 10 ** 6}}, "num_layers"),
    ({"params": {"tbptt_steps": 2.0}}, "tbptt_steps"),
    ({"params": {"seasonality": -1}}, "seasonality"),
    ({"params": {"seed": [1]}}, "seed"),
    ({"params": {"seed": True}}, "seed"),
    ({"params": {"scale_target": True}}, "scale_target"),  # a 0.1 parameter: unknown now
    ({"params": {"differencing": True}}, "differencing"),
    ({"params": {"seasonality": "weekly"}}, "seasonality"),
    ({"params": {"seasonality": [24, 24]}}, "seasonality"),
    ({"params": {"seasonality": [1]}}, "seasonality"),
    ({"params": {"seasonality": [12, "x"]}}, "seasonality"),
    ({"params": {"seasonality": [2, 3, 4, 5, 6]}}, "seasonality"),
    ({"params": {"seasonality": {"m": 12}}}, "seasonality"),
    ({"params": {"horizon": 0}}, "horizon"),
    ({"params": {"horizon": 10 ** 6}}, "horizon"),
    ({"params": {"horizon": 2.0}}, "horizon"),
    ({"params": {"horizon": [12]}}, "horizon"),
    ({"params": {"clip_norm": False}}, "clip_norm"),
    ({"optimizer": {"name": "__import__", "lr": 0.1}}, "optimizer"),
    ({"optimizer": {"name": "Adam", "lr": "0.1"}}, "optimizer.lr"),
    ({"optimizer": {"name": "SGD", "lr": 0.1, "rho": 0.5}}, "optimizer"),
    ({"loss": {"name": "Huber", "epsilon": float("nan")}}, "loss.epsilon"),
    ({"loss": {"name": "Log"}}, "loss"),
    ({"extra": 1}, "fields"),
])
def test_bad_specs_are_refused_naming_the_field(bad, field):
    s = sp.model_spec("gru", hidden_size=4)
    for k, v in bad.items():
        if isinstance(v, dict) and k == "params":
            s["params"].update(v)
        else:
            s[k] = v
    with pytest.raises(ValueError, match=field):
        sp.build_model(s)
    with pytest.raises(ValueError, match=field):
        sp.check_spec(s)


def test_spec_diff_names_each_differing_field():
    a = sp.model_spec("gru", hidden_size=16)
    b = sp.model_spec("gru", hidden_size=32, optimizer="SGD", lr=0.5)
    lines = sp.spec_diff(a, b).splitlines()
    assert "params.hidden_size: 16 (checkpoint) != 32 (this run)" in lines
    assert 'optimizer.name: "Adam" (checkpoint) != "SGD" (this run)' in lines
    assert "optimizer.beta_1: 0.9 (checkpoint) != (missing) (this run)" in lines
    assert sp.spec_diff(a, a) == ""
    c = sp.model_spec("gru", hidden_size=16)
    c["params"]["scale_inputs"] = 1  # 1 == True in Python, but a different spec
    assert sp.spec_diff(a, c) == "params.scale_inputs: true (checkpoint) != 1 (this run)"


@pytest.mark.parametrize("seasonality", ["auto", 0, 1, 12, (24, 168), [7, 30]])
def test_seasonality_round_trips_through_a_spec(seasonality):
    s = sp.model_spec("lstm", hidden_size=3, seasonality=seasonality, horizon=5)
    want = list(seasonality) if isinstance(seasonality, (tuple, list)) else seasonality
    assert s["params"]["seasonality"] == want and s["params"]["horizon"] == 5
    assert json.loads(json.dumps(s)) == s  # plain JSON
    m = sp.build_model(s)
    assert m.seasonality == (tuple(want) if isinstance(want, list) else want)
    assert sp.spec_from_model(m) == s


def test_a_spec_without_a_newer_parameter_takes_its_default(tmp_path):
    from test_checkpoint_hostile import sign, split

    from streamrnn import checkpoint as ck
    s = sp.model_spec("gru", hidden_size=3, seed=5)
    ck.save(tmp_path / "c.srnn", {"k": sp.build_model(s)}, s)
    header, data = split((tmp_path / "c.srnn").read_bytes())
    del header["spec"]["params"]["max_features"]  # as written before that parameter existed
    (tmp_path / "c.srnn").write_bytes(sign(header, data))
    c = ck.load(tmp_path / "c.srnn", s)
    assert c.spec == s and c.models["k"].max_features == s["params"]["max_features"]
    header["spec"]["params"]["max_features"] = 7  # present but not canonical: the run decides
    header["spec"]["params"]["seed"] = 5.0
    (tmp_path / "c.srnn").write_bytes(sign(header, data))
    with pytest.raises(ck.CheckpointError, match="seed"):
        ck.load(tmp_path / "c.srnn")


def test_resuming_with_other_model_options_lists_each_difference(tmp_path):
    from streamrnn import checkpoint as ck
    a = sp.model_spec("gru", hidden_size=16, seed=1)
    ck.save(tmp_path / "c.srnn", {"k": sp.build_model(a)}, a)
    b = sp.model_spec("gru", hidden_size=32, seed=1, lr=0.01)
    with pytest.raises(ck.CheckpointError) as e:
        ck.load(tmp_path / "c.srnn", b)
    lines = str(e.value).splitlines()
    assert "params.hidden_size: 16 (checkpoint) != 32 (this run)" in lines
    assert "optimizer.lr: 0.001 (checkpoint) != 0.01 (this run)" in lines
    assert "empty checkpoint directory or the same model options" in lines[-1]
