"""GlobalForecaster in checkpoints: one model per partition file, resumed bit-identically;
hostile files (crafted lies and random structural mutations, well signed) end in
CheckpointError or in a model that learns normally, in a child process, never in a crash."""
import json
import os
import pickle
import random
import re
import subprocess
import sys

import pytest

from _support import child_env
from test_checkpoint_fuzz import lie, mutate
from test_checkpoint_hostile import CHILD_MEMORY, sign, split
from streamrnn import checkpoint as ck
from streamrnn import multiseries as ms
from streamrnn import spec as sp

G = ck.GLOBAL_KEY


def gspec(**kw):
    kw = {"hidden_size": 4, "tbptt_steps": 4, "seasonality": 4, "horizon": 3, "seed": 5, **kw}
    return sp.model_spec("gru", model="global", **kw)


def trained(spec, steps=10, n_keys=6, shift=0):
    m = sp.build_model(spec)
    keys = [f"k{i}" for i in range(n_keys)]
    for t in range(steps):
        m.learn_many(keys, [float((t + i + shift) % 4) + 0.1 * i for i in range(n_keys)],
                     [{"a": 0.5 * t}] * n_keys)
    return m


def test_spec_round_trip_and_validation():
    s = gspec(max_keys=7)
    assert sp.is_global(s) and s["params"]["max_keys"] == 7 and "loss" not in s
    m = sp.build_model(s)
    assert isinstance(m, ms.GlobalForecaster) and sp.spec_from_model(m) == s
    assert sp.spec_from_model(ms.GlobalForecaster(cell="gru", hidden_size=4, tbptt_steps=4,
                                                  seasonality=4, horizon=3, seed=5,
                                                  max_keys=7)) == s
    for bad, match in [(dict(s, loss={"name": "Squared"}), "exactly the fields"),
                       (dict(s, params={**s["params"], "update_every": 2}), "unknown"),
                       (dict(s, params={**s["params"], "max_keys": 0}), "max_keys"),
                       (dict(s, params={**s["params"], "seasonality": "auto"}), "seasonality"),
                       (dict(s, params={**s["params"], "slot_dtype": 32}), "slot_dtype"),
                       (dict(s, cell="tcn"), "cell"),
                       (dict(s, optimizer={"name": "Adam", "lr": "x"}), "optimizer.lr")]:
        with pytest.raises(ValueError, match=match):
            sp.check_spec(bad)
    with pytest.raises(ValueError, match="no loss choice"):
        sp.model_spec("gru", model="global", loss="Huber")


def test_store_round_trip_resumes_bit_identically(tmp_path):
    s = gspec(max_keys=5)
    m = trained(s, n_keys=7)  # evictions
    with ck.CheckpointStore(tmp_path) as store:
        store.save(3, {G: m}, s, source={"kind": "kafka", "partition": 3}, offset=70)
        c = store.load(3, s)
    r = c.models[G]
    assert c.position == {"partition": 3, "offset": 70} and list(c.models) == [G]
    assert r.keys() == m.keys() and pickle.dumps(r) == pickle.dumps(m)
    for x in (m, r):
        x.learn_many(["k1", "k9", "k6", "k1"], [1.0, 2.0, 3.0, 4.0])
    assert pickle.dumps(r) == pickle.dumps(m)
    assert ck.state_nbytes(m) > 0


def test_kinds_are_not_mixed(tmp_path):
    s = gspec()
    per_key = sp.model_spec("gru", hidden_size=4)
    with pytest.raises(ValueError, match="global spec is saved as"):
        ck.save(tmp_path / "a.srnn", {"x": trained(s)}, s)
    with pytest.raises(ValueError, match="global spec is saved as"):
        ck.save(tmp_path / "a.srnn", {G: sp.build_model(per_key)}, s)
    with pytest.raises(ValueError, match="saved with its global spec"):
        ck.save(tmp_path / "a.srnn", {G: trained(s)}, per_key)
    ck.save(tmp_path / "g.srnn", {G: trained(s)}, s)
    with pytest.raises(ck.CheckpointError, match="another model spec"):
        ck.load(tmp_path / "g.srnn", per_key)
    with pytest.raises(ck.CheckpointError, match="another model spec"):
        ck.load(tmp_path / "g.srnn", gspec(hidden_size=5))
    assert not [f for f in os.listdir(tmp_path) if f != "g.srnn"]


# ---------------------------------------------------------------------------- hostile files
CHILD = r"""
import json, os, resource, sys, tracemalloc
resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))
from streamrnn import checkpoint as ck

def use(m):
    import pickle
    assert pickle.dumps(pickle.loads(pickle.dumps(m))) == pickle.dumps(m)
    for t in range(6):
        r = m.learn_many(["k0", "k1", "new%d" % t], [float(t), 2.0, 3.0],
                         [{"a": 1.0}, None, {"a": 2.0}])
        assert r.ok.all(), r.errors
    f = m.forecast("k1", 5)
    assert len(f) == 5 and all(isinstance(v, float) for v in f), f
    m.forecast_interval("k0", 2), m.score_one("k0", 1.0)

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
    except Exception as e:
        tracemalloc.stop()
        import traceback
        out = {"i": i, "result": "error", "message": traceback.format_exc()[-1500:]}
    else:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        try:
            use(c.models[""])
        except Exception as e:
            import traceback
            out = {"i": i, "result": "broken", "message": traceback.format_exc()[-1500:]}
        else:
            out = {"i": i, "result": "ok", "peak": peak, "size": size}
        del c
    print(json.dumps(out), flush=True)
"""


def run_child(paths, timeout=600):
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


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A real file of a trained GlobalForecaster (evictions, features), as (header, data)."""
    p = tmp_path_factory.mktemp("gbase") / "g.srnn"
    s = gspec(max_keys=5, slot_dtype="float64")
    ck.save(p, {G: trained(s, n_keys=7)}, s, position={"partition": 0, "offset": 9})
    return split(p.read_bytes())


def craft(d, base, name, change):
    header, data = json.loads(json.dumps(base[0])), bytearray(base[1])
    out = change(header, data)
    if isinstance(out, (bytes, bytearray)):
        data = out
    p = d / f"{name}.srnn"
    p.write_bytes(sign(header, data))
    return p


def st(h):
    return h["states"][0]


def _grow_keys(h, d, n):
    """``n`` keys and prediction/anomaly arrays to match, slot arrays as they were."""
    st(h)["keys"] = [f"x{i}" for i in range(n)]


def _row_as_f4(h, d):
    a = h["arrays"][st(h)["core"]["slots"]["row"]["$array"]]
    a.update(dtype="<f4", shape=[a["shape"][0], 2 * a["shape"][1]])


CASES = {
    "slots_other_float": (_row_as_f4, "floats as float64"),
    "keys_not_list": (lambda h, d: st(h).update(keys={"a": 1}), "keys must be a list"),
    "key_float": (lambda h, d: st(h)["keys"].__setitem__(0, 1.5), r"keys\[0\]"),
    "key_long": (lambda h, d: st(h)["keys"].__setitem__(0, "k" * 2000), "1024"),
    "key_duplicate": (lambda h, d: st(h)["keys"].__setitem__(1, st(h)["keys"][0]), "twice"),
    "key_bytes_wide": (lambda h, d: st(h)["keys"].__setitem__(0, {"bytes": "\u0100"}),
                       "beyond"),
    "key_bytes_extra": (lambda h, d: st(h)["keys"].__setitem__(0, {"bytes": "a", "b": 1}),
                        "bytes key"),
    "key_int_huge": (lambda h, d: st(h)["keys"].__setitem__(0, 2 ** 80), "64 bits"),
    "more_keys_than_rows": (lambda h, d: st(h)["keys"].append("extra"), r"max_keys|shape|rows"),
    "fewer_keys": (lambda h, d: st(h)["keys"].pop(), r"shape|rows"),
    "many_keys_few_rows": (lambda h, d: _grow_keys(h, d, 100_000), r"max_keys|rows|shape"),
    "keys_beyond_max_keys": (lambda h, d: (h["spec"]["params"].update(max_keys=2)),
                             "more than max_keys"),
    "features_many": (lambda h, d: st(h).update(features=[f"f{i}" for i in range(100)]),
                      r"max_features|feature"),
    "feature_twice": (lambda h, d: st(h).update(features=["a", "a"]), r"twice|feature"),
    "core_none_with_keys": (lambda h, d: st(h).update(core=None), "no core|not referenced"),
    "core_extra_field": (lambda h, d: st(h)["core"].update(more=1), "core"),
    "count_negative": (lambda h, d: st(h).update(n_evicted=-1), "n_evicted"),
    "count_float": (lambda h, d: st(h).update(n_ignored_features=1.5), "n_ignored"),
    "state_extra": (lambda h, d: st(h).update(more=1), "the state has keys"),
    "spec_hidden_huge": (lambda h, d: h["spec"]["params"].update(hidden_size=65536),
                         "hidden_size"),
    "spec_batch_huge": (lambda h, d: h["spec"]["params"].update(max_batch=10 ** 9),
                        "max_batch"),
    "spec_kind_lost": (lambda h, d: h["spec"].pop("model"), "spec"),
    "two_models": (lambda h, d: (h["keys"].append("b"), h["states"].append(st(h))), "keys"),
    "other_key": (lambda h, d: h["keys"].__setitem__(0, "a"), "keys"),
    "array_dtype_f4": (lambda h, d: h["arrays"][0].update(
        dtype="<f4", shape=[h["arrays"][0]["nbytes"] // 4]), r"states\[0\]"),
    "too_many_arrays": (lambda h, d: h["arrays"].extend(
        [{"dtype": "<f8", "shape": [0], "offset": len(d), "nbytes": 0}] * 300), "arrays"),
    "data_nan": (lambda h, d: b"\x00" * 6 + b"\xf8\x7f" + bytes(d[8:]), r"states\[0\]|ok"),
}


@pytest.fixture(scope="module")
def crafted(tmp_path_factory, base):
    d = tmp_path_factory.mktemp("gcrafted")
    paths = [craft(d, base, name, change) for name, (change, _) in CASES.items()]
    return dict(zip(CASES, run_child(paths)))


@pytest.mark.parametrize("name", list(CASES))
def test_lying_file_is_refused_naming_the_field(crafted, name):
    r = crafted[name]
    if r["result"] == "ok" and "ok" in CASES[name][1]:
        return
    assert r["result"] == "refused", r
    assert re.search(CASES[name][1], r["message"]), r["message"]


def test_unchanged_file_loads_and_learns_in_a_child(tmp_path, base):
    [r] = run_child([craft(tmp_path, base, "same", lambda h, d: None)])
    assert r["result"] == "ok", r
    assert r["peak"] < 8 * r["size"] + (16 << 20), r


N_MUTATIONS = 400
N_LIES = 300


def test_random_mutations_and_lies_never_crash(tmp_path, base):
    """Structural mutations of the header and type-preserving lies about its numbers (the
    per-key fuzzer's), re-signed; each must be refused or give a model that learns."""
    rng = random.Random(20261201)
    paths, what = [], []
    for i in range(N_MUTATIONS + N_LIES):
        header, data = json.loads(json.dumps(base[0])), bytearray(base[1])
        done = mutate(header, rng) if i < N_MUTATIONS else lie(header, rng)
        p = tmp_path / f"m{i}.srnn"
        p.write_bytes(sign(json.dumps(header).encode(), data))
        paths.append(p)
        what.append(done)
    results = []
    for j in range(0, len(paths), 350):
        for r in run_child(paths[j:j + 350]):
            results.append(dict(r, i=r["i"] + j))
    bad = [(what[r["i"]], r) for r in results if r["result"] not in ("refused", "ok")]
    assert not bad, bad[:3]
    refused = sum(r["result"] == "refused" for r in results)
    assert refused > len(results) // 2, refused
    for r in results:
        assert r["peak"] < 8 * r["size"] + (16 << 20), r


def test_truncated_or_flipped_bytes_are_refused(tmp_path, base):
    blob = bytearray(sign(*base))
    rng = random.Random(7)
    cases = {"truncated": bytes(blob[:len(blob) // 2]), "empty": b"",
             "tail_cut": bytes(blob[:-1])}
    for i in range(20):
        b = bytearray(blob)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        cases[f"flip{i}"] = bytes(b)
    paths = []
    for name, b in cases.items():
        p = tmp_path / f"{name}.srnn"
        p.write_bytes(b)
        paths.append(p)
    for name, r in zip(cases, run_child(paths)):
        assert r["result"] == "refused", (name, r)


def test_a_fresh_model_round_trips_through_the_store(tmp_path):
    s = gspec()
    m = sp.build_model(s)
    with ck.CheckpointStore(tmp_path) as store:
        store.save(0, {G: m}, s, offset=0)
        r = store.load(0, s).models[G]
    assert len(r) == 0 and pickle.dumps(r) == pickle.dumps(m)
    for x in (m, r):
        x.learn_many(["a", "b"], [1.0, 2.0], [{"u": 1.0}, None])
    assert pickle.dumps(r) == pickle.dumps(m)
