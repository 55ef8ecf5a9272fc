"""Hostile checkpoints: well-signed files that lie. Each is loaded in a child process, which must
end in CheckpointError (naming the field) or in models that learn normally, never in a signal,
and never use memory out of proportion to the file."""
import hashlib
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from _support import child_env
from streamrnn import checkpoint as ck
from streamrnn import spec as sp

CHILD_MEMORY = 2 << 30  # address-space cap of a child: a regression fails, it cannot swap the box

# The child: load each file given as an argument; print one JSON line per file:
# {"i", "result": "refused"|"ok", "message", "peak", "size"}; "start" lines before each load so a
# death by a signal names the file that caused it.
CHILD = r"""
import json, os, resource, sys, tracemalloc
resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))
from streamrnn import checkpoint as ck

def use(models):
    for m in models.values():
        for i in range(12):
            m.learn_one(float(i % 5) + 0.1 * i, {"a": 0.5 * i})
        f = m.forecast(3, [{"a": 1.0}] * 3)
        assert len(f) == 3 and all(isinstance(v, float) for v in f), f

for i, path in enumerate(sys.argv[1:]):
    print(json.dumps({"start": i}), flush=True)
    size = os.path.getsize(path)
    tracemalloc.start()
    try:
        c = ck.load(path)
    except ck.CheckpointError as e:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out = {"i": i, "result": "refused", "message": str(e), "peak": peak, "size": size}
    except Exception as e:  # not a signal, but not the documented refusal either
        tracemalloc.stop()
        import traceback
        out = {"i": i, "result": "error", "message": traceback.format_exc()[-1500:]}
    else:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        try:
            use(c.models)
        except Exception as e:
            out = {"i": i, "result": "broken", "message": f"{type(e).__name__}: {e}"}
        else:
            out = {"i": i, "result": "ok", "peak": peak, "size": size}
        del c
    print(json.dumps(out), flush=True)
"""


def run_child(paths, timeout=300):
    """Load ``paths`` in one child process; return its results, one dict per path. Fails the
    test when the child dies (a signal), naming the file it was loading."""
    env = child_env(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", CHILD.replace("CAP", str(CHILD_MEMORY)),
                        *map(str, paths)], capture_output=True, text=True, timeout=timeout,
                       env=env)
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    results = [x for x in lines if "result" in x]
    if r.returncode != 0 or len(results) != len(paths):
        started = [x["start"] for x in lines if "start" in x]
        last = paths[started[-1]] if started else None
        pytest.fail(f"the child ended with {r.returncode} while loading {last}:\n"
                    f"{r.stderr[-3000:]}")
    return results


def split(blob):
    hlen = struct.unpack_from("<Q", blob, 16)[0]
    header = json.loads(blob[24:24 + hlen])
    data = blob[24 + hlen + (-(24 + hlen) % 8):-32]
    return header, data


def sign(header_bytes, data):
    """A well-signed file of a (possibly crafted) header and data block."""
    if not isinstance(header_bytes, bytes):
        header_bytes = json.dumps(header_bytes).encode()
    n = len(header_bytes)
    body = struct.pack("<8sIIQ", b"SRNNCKPT", 1, 0, n) + header_bytes + b"\0" * (-(24 + n) % 8) \
        + bytes(data)
    return body + hashlib.sha256(body).digest()


def trained(spec, n=30, shift=0):
    m = sp.build_model(spec)
    for i in range(n):
        m.learn_one(float((i + shift) % 7) + 0.1 * i, {"a": i * 0.5})
    return m


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A real checkpoint of two trained models and one fresh one, as (header, data)."""
    d = tmp_path_factory.mktemp("base")
    spec = sp.model_spec("gru", hidden_size=4, seed=1)
    p = d / "base.srnn"
    ck.save(p, {"a": trained(spec), "b": trained(spec, 20, 3), "fresh": sp.build_model(spec)},
            spec, source={"kind": "kafka", "topic": "t", "partition": 0},
            position={"partition": 0, "offset": 42})
    return split(p.read_bytes())


def craft(tmp_path, base, name, mutate):
    """Write a file of ``base`` changed by ``mutate(header, data) -> data or None``."""
    header, data = json.loads(json.dumps(base[0])), bytearray(base[1])
    out = mutate(header, data)
    if isinstance(out, (bytes, bytearray)):
        data = out
    p = tmp_path / f"{name}.srnn"
    p.write_bytes(sign(header, data))
    return p


def net(h, i=0):
    return h["states"][i]["_net"]


CASES = {
    # counters the kernel indexes with (today: SIGSEGV / heap corruption)
    "net_t_negative": (lambda h, d: net(h)["state"].update(t=-5), r"_net\.state\.t"),
    "net_t_near_2_63": (lambda h, d: net(h)["state"].update(t=2 ** 63 - 1), r"_net\.state\.t"),
    "net_t_float": (lambda h, d: net(h)["state"].update(t=3.0), r"_net\.state\.t"),
    "opt_t_near_2_63": (lambda h, d: net(h)["state"]["optimizer"].update(t=2 ** 63 - 1),
                        r"optimizer\.t"),
    "opt_t_negative": (lambda h, d: net(h, 1)["state"]["optimizer"].update(t=-1), r"optimizer\.t"),
    # sizes: against the spec and the hard limits before anything is allocated
    "spec_hidden_65536": (lambda h, d: (h["spec"]["params"].update(hidden_size=65536),
                                        [net(h, i)["config"].update(hidden_size=65536)
                                         for i in (0, 1)]), "hidden_size"),
    "spec_layers_huge": (lambda h, d: h["spec"]["params"].update(num_layers=10 ** 9),
                         "num_layers"),
    "net_hidden_not_spec": (lambda h, d: net(h)["config"].update(hidden_size=4096),
                            r"config\.hidden_size"),
    "net_n_in_huge": (lambda h, d: net(h)["config"].update(n_in=10 ** 8),
                      r"config.*(parameters|limit)"),
    "net_n_in_not_arrays": (lambda h, d: net(h)["config"].update(n_in=5),
                            r"_net\.state\.(params|ring_x)"),
    "net_k2_not_spec": (lambda h, d: net(h)["config"].update(k2=4096), r"config\.k2"),
    "net_cell_other": (lambda h, d: net(h)["config"].update(cell=1), r"config\.cell"),
    # optimizer settings against the spec
    "opt_lr_not_spec": (lambda h, d: net(h)["state"]["optimizer"].update(lr=1e6), r"optimizer\.lr"),
    "opt_kind_other": (lambda h, d: net(h)["state"]["optimizer"].update(kind=0),
                       r"optimizer\.kind"),
    "opt_beta_not_spec": (lambda h, d: net(h)["state"]["optimizer"].update(beta_1=1.5),
                          r"optimizer\.beta_1"),
    "opt_clip_not_spec": (lambda h, d: net(h)["state"]["optimizer"].update(clip_norm=-1.0),
                          r"optimizer\.clip_norm"),
    # positions
    "offset_negative": (lambda h, d: h["position"].update(offset=-1), r"position\.offset"),
    "offset_2_63": (lambda h, d: h["position"].update(offset=2 ** 63), r"position\.offset"),
    "offset_float": (lambda h, d: h["position"].update(offset=4.5), r"position\.offset"),
    "offset_str": (lambda h, d: h["position"].update(offset="42"), r"position\.offset"),
    "offset_bool": (lambda h, d: h["position"].update(offset=True), r"position\.offset"),
    "position_extra": (lambda h, d: h["position"].update(more=1), "position"),
    # keys
    "key_int": (lambda h, d: h["keys"].__setitem__(0, 7), r"keys\[0\]"),
    "key_duplicate": (lambda h, d: h["keys"].__setitem__(1, "a"), "appears more than once"),
    "key_long": (lambda h, d: h["keys"].__setitem__(0, "k" * 5000), r"keys\[0\]"),
    "key_list": (lambda h, d: h["keys"].__setitem__(0, ["a"]), r"keys\[0\]"),
    # array descriptors and references
    "array_ref_twice": (lambda h, d: net(h, 1)["state"].update(h=net(h)["state"]["h"]),
                        "a second time"),
    "array_unreferenced": (lambda h, d: h["arrays"].append(
        {"dtype": "<f8", "shape": [0], "offset": len(d), "nbytes": 0}), "not referenced"),
    "array_overlap": (lambda h, d: h["arrays"][1].update(offset=0), r"arrays\[1\]\.offset"),
    "array_unaligned": (lambda h, d: h["arrays"][0].update(offset=4), r"arrays\[0\]\.offset"),
    "array_shape_float": (lambda h, d: h["arrays"][0].update(shape=[93.0]), r"arrays\[0\]\.shape"),
    "array_shape_ndim": (lambda h, d: h["arrays"][0].update(shape=[1] * 40), r"arrays\[0\]\.shape"),
    "array_dtype_int": (lambda h, d: h["arrays"][0].update(dtype="<i8"), r"_net\.state\.params"),
    "array_ref_bool": (lambda h, d: net(h)["state"].update(h={"$array": True}), "lacks"),
    "array_ref_extra": (lambda h, d: net(h)["state"].update(h={"$array": 1, "x": 2}), "lacks"),
    "too_many_arrays": (lambda h, d: h["arrays"].extend(
        [{"dtype": "<f8", "shape": [0], "offset": len(d), "nbytes": 0}] * 200), "arrays"),
    "data_trailing_bytes": (lambda h, d: d + bytes(16), "data block has"),
    "data_short": (lambda h, d: d[:-16], r"arrays\[\d+\]\.offset|data block has"),
    # header structure
    "header_unknown_field": (lambda h, d: h.update(payload=1), "unknown fields"),
    "header_missing_field": (lambda h, d: h.pop("extra"), "missing fields"),
    "states_not_objects": (lambda h, d: h["states"].__setitem__(0, [1, 2]), r"states\[0\]"),
    "deep_nesting": (lambda h, d: h["extra"].update(x=json.loads("[" * 40 + "]" * 40)),
                     "nested more than"),
    "feature_columns_beyond_inputs": (
        lambda h, d: h["states"][2]["_cols"]["names"].append("x"),
        "feature columns"),
}


@pytest.fixture(scope="module")
def crafted(tmp_path_factory, base):
    d = tmp_path_factory.mktemp("crafted")
    paths = [craft(d, base, name, mutate) for name, (mutate, _) in CASES.items()]
    return dict(zip(CASES, run_child(paths)))


@pytest.mark.parametrize("name", list(CASES))
def test_lying_header_is_refused_naming_the_field(crafted, name):
    r = crafted[name]
    assert r["result"] == "refused", r
    assert __import__("re").search(CASES[name][1], r["message"]), r["message"]


def test_unchanged_file_loads_and_learns_in_a_child(tmp_path, base):
    [r] = run_child([craft(tmp_path, base, "same", lambda h, d: None)])
    assert r["result"] == "ok", r


def test_bad_json_tokens_and_duplicate_keys_are_refused(tmp_path, base):
    text = json.dumps(base[0])
    cases = {
        "nan": text.replace('"offset": 42', '"offset": NaN', 1),
        "inf": text.replace('"offset": 42', '"offset": 1e999', 1),
        "dup": text.replace('"offset": 42', '"offset": 42, "offset": 7', 1),
        "bigint": text.replace('"offset": 42', '"offset": ' + "9" * 5000, 1),
        "deep": text.replace('"extra": {}', '"extra": ' + "[" * 100_000 + "]" * 100_000, 1),
        "utf8": text.replace('"fresh"', '"\\ud800"', 1).encode()[:-1] + b"\xff",
    }
    paths = []
    for name, t in cases.items():
        p = tmp_path / f"{name}.srnn"
        p.write_bytes(sign(t if isinstance(t, bytes) else t.encode(), base[1]))
        paths.append(p)
    for name, r in zip(cases, run_child(paths)):
        assert r["result"] == "refused", (name, r)
        assert "header" in r["message"] or "position" in r["message"], (name, r)


def _amplifier(base, n_refs, mib=8):
    """One array of ``mib`` MiB that a state refers to ``n_refs`` times (today: one copy per
    reference)."""
    header, data = json.loads(json.dumps(base[0])), bytearray(base[1])
    n = mib << 17
    header["arrays"].append({"dtype": "<f8", "shape": [n], "offset": len(data), "nbytes": 8 * n})
    i = len(header["arrays"]) - 1
    header["states"][2]["_core"]["history"] = [{"$array": i}] * n_refs
    return sign(header, data + bytes(8 * n))


def _aliases(base, n_aliases, mib=8):
    """``n_aliases`` descriptors, each referenced once, all over the same ``mib`` MiB."""
    header, data = json.loads(json.dumps(base[0])), bytearray(base[1])
    n = mib << 17
    first = len(header["arrays"])
    header["arrays"] += [{"dtype": "<f8", "shape": [n], "offset": len(data), "nbytes": 8 * n}
                         for _ in range(n_aliases)]
    header["states"][2]["_core"]["history"] = [{"$array": first + j} for j in range(n_aliases)]
    return sign(header, data + bytes(8 * n))


@pytest.mark.parametrize("make, n", [(_amplifier, 400), (_amplifier, 5000), (_aliases, 60)])
def test_one_array_many_times_is_refused_with_memory_bounded_by_the_file(tmp_path, base, make, n):
    p = tmp_path / "amp.srnn"
    p.write_bytes(make(base, n))
    [r] = run_child([p])
    assert r["result"] == "refused", r
    assert "second time" in r["message"] or "overlapping" in r["message"] or \
        "per key" in r["message"], r
    assert r["peak"] < 4 * r["size"] + (16 << 20), r


def test_loading_a_large_real_checkpoint_peaks_at_a_small_multiple_of_its_size(tmp_path):
    spec = sp.model_spec("lstm", hidden_size=256, num_layers=2, seed=1)
    models = {f"k{i}": trained(spec, 5, i) for i in range(4)}
    p = tmp_path / "big.srnn"
    ck.save(p, models, spec)
    [r] = run_child([p])
    assert r["result"] == "ok", r
    assert r["size"] > 20 << 20 and r["peak"] < 4 * r["size"] + (16 << 20), r


def test_json_bomb_in_the_header_is_refused_before_parsing(tmp_path, base):
    header = dict(base[0], extra={"x": "BOMB"})
    text = json.dumps(header).encode().replace(b'"BOMB"', b"[" + b"[]," * 3_000_000 + b"[]]")
    p = tmp_path / "bomb.srnn"
    p.write_bytes(sign(text, base[1]))
    [r] = run_child([p])
    assert r["result"] == "refused" and "too many" in r["message"], r
    assert r["peak"] < 4 * r["size"] + (16 << 20), r


def test_file_size_header_length_and_truncation_are_checked_before_reading(tmp_path, base):
    p = tmp_path / "huge.srnn"
    with open(p, "wb") as f:  # sparse: no disk or memory used
        f.write(sign(*base)[:24])
        f.truncate(ck.MAX_FILE + 1)
    with pytest.raises(ck.CheckpointError, match="limit"):
        ck.load(p)
    with pytest.raises(ck.CheckpointError, match="limit"):
        ck.read_header(p)
    blob = bytearray(sign(*base))
    blob[16:24] = struct.pack("<Q", 2 ** 40)
    p.write_bytes(bytes(blob))
    with pytest.raises(ck.CheckpointError, match="does not fit"):
        ck.load(p)
    blob[16:24] = struct.pack("<Q", 2 ** 64 - 1)
    p.write_bytes(bytes(blob))
    with pytest.raises(ck.CheckpointError, match="does not fit"):
        ck.load(p)
    with pytest.raises(ck.CheckpointError, match="not a regular file"):
        ck.load(tmp_path)
    fifo = tmp_path / "fifo.srnn"
    os.mkfifo(fifo)
    code = ("import sys\nfrom streamrnn import checkpoint as ck\n"
            "for p in sys.argv[1:]:\n"
            "    try:\n        ck.load(p)\n    except ck.CheckpointError as e:\n"
            "        print(e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(fifo), "/dev/zero"], timeout=120,
                       capture_output=True, text=True, env=child_env())  # a hang fails here
    assert r.stdout.count("not a regular file") == 2, (r.stdout, r.stderr)


def test_a_file_of_another_partition_is_refused_by_the_store(tmp_path):
    spec = sp.model_spec("gru", hidden_size=4)
    with ck.CheckpointStore(tmp_path / "d") as store:
        store.save(4, {"k": trained(spec, 5)}, spec, offset=9)
        os.replace(store.path(4), store.path(3))
        with pytest.raises(ck.CheckpointError, match=r"position\.partition"):
            store.load(3, spec)
        os.replace(store.path(3), store.path(4))
        assert store.load(4, spec).position == {"partition": 4, "offset": 9}
        assert store.load("4", spec).models.keys() == {"k"}
        store.save("topic/a b", {"k": trained(spec, 5)}, spec, offset=1)
        assert store.partitions() == ["4", "topic_a_b"]
        assert store.load("topic_a_b", spec).position == {"partition": "topic/a b", "offset": 1}
        ck.save(store.path(5), {}, spec)  # no position at all
        with pytest.raises(ck.CheckpointError, match=r"position\.partition"):
            store.load(5, spec)
        for bad in (-1, 2 ** 63, 1.5, "3"):
            with pytest.raises(ValueError, match="offset"):
                store.save(4, {}, spec, offset=bad)


def test_read_header_builds_no_model_and_keeps_no_arrays(tmp_path, base, monkeypatch):
    p = craft(tmp_path, base, "h", lambda h, d: h["spec"]["params"].update(hidden_size=65536))
    monkeypatch.setattr(sp, "build_model", lambda spec: pytest.fail("built a model"))
    h = ck.read_header(p)
    assert h["keys"] == ["a", "b", "fresh"] and h["position"] == {"partition": 0, "offset": 42}


def test_writer_refuses_what_the_reader_would_refuse(tmp_path):
    spec = sp.model_spec("gru", hidden_size=4)
    m = trained(spec, 3)
    with pytest.raises(ValueError, match="limit"):
        ck.save(tmp_path / "x.srnn", {"k" * 2000: m}, spec)
    with pytest.raises(ValueError, match="offset"):
        ck.save(tmp_path / "x.srnn", {"k": m}, spec, position={"partition": 0, "offset": -2})
    bad = dict(spec, params=dict(spec["params"], hidden_size=10 ** 6))
    with pytest.raises(ValueError, match="hidden_size"):
        ck.save(tmp_path / "x.srnn", {"k": m}, bad)
    assert not os.listdir(tmp_path)


def test_parameter_count_matches_the_kernel():
    # the reader's size check computes the parameter vector's length from the spec; it must be
    # the kernel's, or good files would be refused
    from streamrnn import _core, _registry
    for cell in _registry.CELLS:
        for H, L, n_in, n_out in ((3, 1, 2, 1), (5, 3, 7, 2)):
            spec = sp.model_spec(cell, hidden_size=H, num_layers=L, update_every=2,
                                 tbptt_steps=3)
            exp = ck._Expect(spec, sp.build_model(spec))
            net = _core.Network(exp.cell, n_in, H, L, n_out, 2, 3, exp.loss)
            assert exp.n_params(n_in, n_out) == net.size
            assert {k: v.shape for k, v in net.get_state().items()
                    if isinstance(v, np.ndarray)}["ring_r"] == (3, L, 5 * H + exp.gates * H)


@pytest.mark.parametrize("params", [{"hidden_size": 65536}, {"num_layers": 4096},
                                    {"tbptt_steps": 2 ** 31}, {"seasonality": 2 ** 40}])
def test_spec_beyond_the_limits_is_refused_even_for_fresh_models(tmp_path, params):
    # a fresh model holds no network: today the file loads and the first learn_one builds a
    # network of the spec's size (hidden_size=65536: SIGSEGV)
    spec = sp.model_spec("gru", hidden_size=4)
    p = tmp_path / "fresh.srnn"
    ck.save(p, {"fresh": sp.build_model(spec)}, spec)
    header, data = split(p.read_bytes())
    header["spec"]["params"].update(params)
    p.write_bytes(sign(header, data))
    [r] = run_child([p])
    assert r["result"] == "refused" and next(iter(params)) in r["message"], r
