"""Checkpoints: exact round trips, atomic writes, and clear refusals of bad files."""
import json
import os
import struct

import numpy as np
import pytest

from streamrnn import checkpoint as ck
from streamrnn import spec as sp


def _trained(spec, n=60, shift=0):
    m = sp.build_model(spec)
    for i in range(n):
        m.learn_one(float((i + shift) % 7) + 0.1 * i, {"a": i * 0.5, "b": float(i % 3)})
    return m


def _same_state(a, b):
    ta, tb = a._export_state(), b._export_state()

    def eq(x, y):
        if isinstance(x, np.ndarray):
            return isinstance(y, np.ndarray) and x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
        if isinstance(x, dict):
            return isinstance(y, dict) and x.keys() == y.keys() and all(eq(x[k], y[k]) for k in x)
        if isinstance(x, (list, tuple)):
            return len(x) == len(y) and all(eq(u, v) for u, v in zip(x, y))
        return type(x) is type(y) and x == y or (x != x and y != y)
    return eq(ta, tb)


@pytest.fixture(params=["rnn", "lstm", "gru"])
def spec(request):
    return sp.model_spec(request.param, hidden_size=6, num_layers=2, update_every=3,
                         tbptt_steps=5, seasonality=4, seed=3)


def test_round_trip_is_exact_and_continues_bit_identically(tmp_path, spec):
    models = {"a": _trained(spec), "b": _trained(spec, 25, 3), "fresh": sp.build_model(spec)}
    path = tmp_path / "c.srnn"
    size = ck.save(path, models, spec, source={"kind": "file"},
                   position={"partition": 0, "offset": 85}, extra={"n": 1})
    assert size == os.path.getsize(path)
    c = ck.load(path, spec)
    assert list(c.models) == ["a", "b", "fresh"]
    assert c.position == {"partition": 0, "offset": 85} and c.extra == {"n": 1}
    for k in models:
        assert _same_state(models[k], c.models[k])
        for i in range(40):
            x = {"a": -i * 0.25, "c": 1.0}
            models[k].learn_one(np.sin(i), x)
            c.models[k].learn_one(np.sin(i), x)
        assert models[k].forecast(5) == c.models[k].forecast(5)
        assert _same_state(models[k], c.models[k])


def test_spec_is_complete_and_compared(tmp_path):
    a = sp.model_spec("gru", hidden_size=8)
    assert a == sp.spec_from_model(sp.build_model(a))
    assert a["params"]["tbptt_steps"] == 16 and a["optimizer"]["name"] == "Adam"
    ck.save(tmp_path / "c.srnn", {"k": _trained(a, 10)}, a)
    with pytest.raises(ck.CheckpointError, match="model spec"):
        ck.load(tmp_path / "c.srnn", sp.model_spec("gru", hidden_size=9))
    with pytest.raises(ValueError, match="unknown"):
        sp.model_spec("gru", hidden=8)


def test_format_is_documented_layout(tmp_path):
    spec = sp.model_spec("gru", hidden_size=4)
    ck.save(tmp_path / "c.srnn", {"k": _trained(spec, 10)}, spec)
    blob = (tmp_path / "c.srnn").read_bytes()
    magic, version, reserved, hlen = struct.unpack_from("<8sIIQ", blob)
    assert (magic, version, reserved) == (b"SRNNCKPT", 1, 0)
    header = json.loads(blob[24:24 + hlen])
    assert header["format"] == "streamrnn-checkpoint" and header["keys"] == ["k"]
    assert all(d["dtype"] in ("<f8", "<i8") for d in header["arrays"])
    import hashlib
    assert hashlib.sha256(blob[:-32]).digest() == blob[-32:]
    assert b"pickle" not in blob and ck.read_header(tmp_path / "c.srnn")["version"] == 1


def test_truncated_corrupt_and_foreign_files_are_refused(tmp_path):
    spec = sp.model_spec("lstm", hidden_size=4)
    good = tmp_path / "good.srnn"
    ck.save(good, {"k": _trained(spec, 20)}, spec)
    blob = good.read_bytes()
    bad = tmp_path / "bad.srnn"
    for cut in (0, 5, 23, 24, 100, len(blob) // 2, len(blob) - 1):
        bad.write_bytes(blob[:cut])
        with pytest.raises(ck.CheckpointError, match="truncated|not a streamrnn|corrupt"):
            ck.load(bad)
    for pos in (30, len(blob) // 2, len(blob) - 40, len(blob) - 3):
        flipped = bytearray(blob)
        flipped[pos] ^= 0x40
        bad.write_bytes(bytes(flipped))
        with pytest.raises(ck.CheckpointError, match="corrupt"):
            ck.load(bad)
    bad.write_bytes(b"\x80\x04\x95" + b"x" * 200)  # a pickle is a foreign file
    with pytest.raises(ck.CheckpointError, match="not a streamrnn checkpoint"):
        ck.load(bad)
    newer = bytearray(blob)
    newer[8:12] = struct.pack("<I", 99)
    bad.write_bytes(bytes(newer))
    with pytest.raises(ck.CheckpointError, match="version 99"):
        ck.load(bad)
    with pytest.raises(ck.CheckpointError, match="cannot read"):
        ck.load(tmp_path / "missing.srnn")


def _rewrite(path, mutate):
    """Re-sign a checkpoint after changing its header (as a malicious writer could)."""
    import hashlib
    blob = path.read_bytes()
    hlen = struct.unpack_from("<Q", blob, 16)[0]
    header = json.loads(blob[24:24 + hlen])
    data = blob[24 + hlen + (-(24 + hlen) % 8):-32]
    mutate(header)
    h = json.dumps(header).encode()
    body = struct.pack("<8sIIQ", b"SRNNCKPT", 1, 0, len(h)) + h + b"\0" * (-(24 + len(h)) % 8) \
        + data
    path.write_bytes(body + hashlib.sha256(body).digest())


def test_well_signed_but_inconsistent_headers_never_half_load(tmp_path):
    spec = sp.model_spec("gru", hidden_size=4)
    p = tmp_path / "c.srnn"

    def fresh():
        ck.save(p, {"a": _trained(spec, 20), "b": _trained(spec, 20, 1)}, spec)

    cases = [
        (lambda h: h["arrays"][0].update(dtype="|O"), "not allowed"),
        (lambda h: h["arrays"][-1].update(offset=10 ** 9), "outside"),
        (lambda h: h["states"][1]["_net"].update(state={"$array": 10 ** 6}), "lacks|does not fit"),
        (lambda h: h["states"][1].pop("_net"), "does not fit|network has 0 inputs"),
        (lambda h: h.update(keys=["a"]), "differ in length"),
        (lambda h: h.update(format="other"), "not a streamrnn"),
        (lambda h: h["spec"].update(cell="transformer"), "malformed model spec|spec"),
        (lambda h: h["spec"]["optimizer"].update(name="__import__"), "optimizer"),
    ]
    for mutate, message in cases:
        fresh()
        _rewrite(p, mutate)
        with pytest.raises(ck.CheckpointError, match=message):
            ck.load(p)


def test_atomic_write_leaves_no_temporary_and_keeps_old_file_on_failure(tmp_path):
    spec = sp.model_spec("gru", hidden_size=4)
    store = ck.CheckpointStore(tmp_path / "dir")
    store.save(3, {"k": _trained(spec, 10)}, spec, {"kind": "kafka", "topic": "t"}, offset=10)
    before = (tmp_path / "dir" / "partition-3.srnn").read_bytes()

    class Broken:
        def _export_state(self):
            return {"x": object()}

    with pytest.raises(TypeError):
        store.save(3, {"k": _trained(spec, 10), "bad": Broken()}, spec, offset=99)
    assert (tmp_path / "dir" / "partition-3.srnn").read_bytes() == before
    assert sorted(os.listdir(tmp_path / "dir")) == [".lock", "partition-3.srnn"]
    assert store.partitions() == ["3"]
    c = store.load(3, spec)
    assert c.position == {"partition": 3, "offset": 10} and store.load(4) is None


def test_non_finite_floats_and_numpy_scalars_are_stored(tmp_path):
    arrays = []
    tree = {"a": float("nan"), "b": [float("-inf"), np.float64(2.5), np.int64(7), np.bool_(True)],
            "c": np.arange(6, dtype=np.int32).reshape(2, 3)}
    enc = ck._encode_tree(tree, arrays)
    json.dumps(enc, allow_nan=False)
    back = ck._decode_tree(json.loads(json.dumps(enc)), arrays)
    assert back["a"] != back["a"] and back["b"] == [float("-inf"), 2.5, 7, True]
    assert np.array_equal(back["c"], tree["c"])


def test_bytes_per_model_is_reported():
    spec = sp.model_spec("gru", hidden_size=16)
    n = ck.state_nbytes(_trained(spec, 40))
    assert 1000 < n < 400_000  # GRU-16, horizon 24: network 78 kB, backbone 70, conformal 58


@pytest.mark.parametrize("optimizer", ["SGD", "Momentum", "NesterovMomentum", "RMSProp", "Adam",
                                       "AdaGrad"])
@pytest.mark.parametrize("loss", ["Squared", "Absolute", "Huber"])
def test_every_optimizer_and_loss_round_trips(tmp_path, optimizer, loss):
    spec = sp.model_spec("lstm", optimizer=optimizer, lr=0.01, loss=loss, hidden_size=3,
                         clip_gradient=2.0, seasonality=2, seed=4)
    m = _trained(spec, 20)
    ck.save(tmp_path / "c.srnn", {"k": m}, spec)
    back = ck.load(tmp_path / "c.srnn", spec).models["k"]
    for i in range(10):
        m.learn_one(float(i), {"a": 1.0})
        back.learn_one(float(i), {"a": 1.0})
    assert _same_state(m, back) and m.forecast(2) == back.forecast(2)
