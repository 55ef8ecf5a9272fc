"""State of the shared-weight kernel: pickle, deepcopy and get/set_state continue bit for
bit; slots move between slots and networks (eviction and return); every field of an
untrusted state is validated; hostile states never crash the process (child process)."""
from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from _support import child_env
from streamrnn._core import ADAM, GRU, LSTM, SGD, SQUARED, ELMAN_TANH, Optimizer, initialize
from streamrnn._core._shared import SharedNetwork


def make(cell=LSTM, f32=False, capacity=12, k2=4, layers=1):
    net = SharedNetwork(cell, 2, 3, layers, 1, k2, SQUARED, capacity=capacity, max_batch=6,
                        slot_dtype="float32" if f32 else "float64")
    initialize(net, np.random.default_rng(0))
    net.set_optimizer(Optimizer(ADAM, 0.01, clip_norm=1.0))
    return net


def batches(seed, n, capacity=12, B=6):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        b = int(rng.integers(1, B + 1))
        yield (rng.choice(capacity, size=b, replace=False).astype(np.int64),
               rng.standard_normal((b, 2)), rng.standard_normal(b))


def run(net, seed, n):
    outs = []
    for keys, X, Y in batches(seed, n, net.capacity):
        out = np.zeros((keys.size, 1))
        assert net.step(keys, X, Y, out) == 1
        outs.append(out)
    return np.concatenate(outs)


def assert_identical(a, b):
    sa, sb = a.get_state(), b.get_state()
    for k in sa["slots"]:
        np.testing.assert_array_equal(sa["slots"][k], sb["slots"][k])
    np.testing.assert_array_equal(sa["shared"]["params"], sb["shared"]["params"])
    for k in ("m", "v"):
        np.testing.assert_array_equal(sa["shared"]["optimizer"][k], sb["shared"]["optimizer"][k])
    assert sa["shared"]["t"] == sb["shared"]["t"]
    assert sa["shared"]["last_loss"] == sb["shared"]["last_loss"]


@pytest.mark.parametrize("cell", [LSTM, GRU])
@pytest.mark.parametrize("f32", [False, True])
@pytest.mark.parametrize("how", ["pickle", "deepcopy", "from_state"])
def test_round_trip_continues_bit_identically(cell, f32, how):
    a = make(cell, f32)
    run(a, 1, 8)
    if how == "pickle":
        b = pickle.loads(pickle.dumps(a))
    elif how == "deepcopy":
        b = copy.deepcopy(a)
    else:
        b = SharedNetwork.from_state(a.config(), a.get_state())
    assert b.slot_dtype == a.slot_dtype and b.config() == a.config()
    assert_identical(a, b)
    np.testing.assert_array_equal(run(a, 2, 10), run(b, 2, 10))
    assert_identical(a, b)
    # inference changes nothing, not even the pickled bytes
    before = pickle.dumps(b)
    b.predict(np.arange(6), np.ones((6, 2)), np.zeros((6, 1)))
    assert pickle.dumps(b) == before


def test_a_slot_moved_to_another_network_continues_the_same():
    a = make()
    run(a, 3, 10)
    b = make(capacity=30)
    b.set_shared_state(a.get_shared_state())
    b.set_slots(np.array([25]), a.get_slots(np.array([4])))
    rng = np.random.default_rng(9)
    for _ in range(6):
        x, y = rng.standard_normal((1, 2)), rng.standard_normal(1)
        oa, ob = np.zeros((1, 1)), np.zeros((1, 1))
        assert a.step(np.array([4]), x, y, oa) == 1
        assert b.step(np.array([25]), x, y, ob) == 1
        assert oa[0, 0] == ob[0, 0]
    np.testing.assert_array_equal(a.params, b.params)
    for k, v in a.get_slots(np.array([4])).items():
        np.testing.assert_array_equal(v, b.get_slots(np.array([25]))[k])


def test_evicted_slot_restored_elsewhere_is_as_if_never_evicted():
    a, b = make(), make()
    run(a, 4, 6)
    run(b, 4, 6)
    saved = b.get_slots(np.array([5]))
    b.reset(5)
    assert b.window_length(np.array([5]))[0] == 1
    np.testing.assert_array_equal(b.get_slots(np.array([5]))["h"], 0.0)
    b.set_slots(np.array([11]), saved)
    b.copy_slots(np.array([11]), np.array([5]))  # and back into place
    b.reset(11)
    a.reset(11)
    np.testing.assert_array_equal(run(a, 5, 6), run(b, 5, 6))
    assert_identical(a, b)


def test_copy_move_and_swap():
    net = make()
    run(net, 6, 8)
    before = net.get_slots(np.arange(12))
    net.move_slots(np.array([0, 1]), np.array([1, 0]))  # a swap: read before written
    after = net.get_slots(np.arange(12))
    for k in before:
        np.testing.assert_array_equal(after[k][0], before[k][1])
        np.testing.assert_array_equal(after[k][1], before[k][0])
    net.move_slots(np.array([2]), np.array([3]))
    after = net.get_slots(np.arange(12))
    for k in before:
        np.testing.assert_array_equal(after[k][3], before[k][2])
        assert not np.any(after[k][2])  # the source was reset
    with pytest.raises(ValueError):
        net.copy_slots(np.array([1, 2]), np.array([4, 4]))
    with pytest.raises(ValueError):
        net.copy_slots(np.array([1]), np.array([4, 5]))


def mutations(state):
    """(description, mutated copy) pairs: every field made wrong in several ways."""
    out = []

    def mut(desc, path, value):
        s = copy.deepcopy(state)
        d = s
        for p in path[:-1]:
            d = d[p]
        if value is KeyError:
            del d[path[-1]]
        else:
            d[path[-1]] = value
        out.append((desc, s))

    for name in ("h", "c", "h0", "c0", "x"):
        a = state["slots"][name]
        mut(f"{name} missing", ("slots", name), KeyError)
        mut(f"{name} list", ("slots", name), a.tolist())
        mut(f"{name} float32", ("slots", name), a.astype(np.float32))
        mut(f"{name} shape", ("slots", name), a[:-1])
        if a.size:
            bad = a.copy(); bad.flat[0] = np.nan
            mut(f"{name} nan", ("slots", name), bad)
            bad = a.copy(); bad.flat[-1] = np.inf
            mut(f"{name} inf", ("slots", name), bad)
    n = state["slots"]["n"]
    for desc, v in (("n negative", n - 1), ("n too big", n + 10), ("n float", n.astype(float)),
                    ("n int32", n.astype(np.int32)), ("n shape", n[:-1]), ("n list", list(n))):
        mut(desc, ("slots", "n"), v)
    x = state["slots"]["x"].copy()
    nn = state["slots"]["n"].copy(); nn[:] = 0
    mut("x beyond n", ("slots", "n"), nn)
    mut("slots extra key", ("slots", "extra"), 1)
    mut("slots not a dict", ("slots",), [1])
    p = state["shared"]["params"]
    mut("params shape", ("shared", "params"), p[:-1])
    bad = p.copy(); bad[3] = np.nan
    mut("params nan", ("shared", "params"), bad)
    mut("params int", ("shared", "params"), p.astype(np.int64))
    for desc, v in (("t negative", -1), ("t bool", True), ("t float", 1.0), ("t huge", 2 ** 70),
                    ("t str", "3")):
        mut(desc, ("shared", "t"), v)
    for desc, v in (("loss nan", float("nan")), ("loss str", "x"), ("loss none", None)):
        mut(desc, ("shared", "last_loss"), v)
    o = state["shared"]["optimizer"]
    mut("opt m shape", ("shared", "optimizer", "m"), o["m"][:-1])
    mut("opt v negative", ("shared", "optimizer", "v"), -np.ones_like(o["v"]))
    mut("opt kind", ("shared", "optimizer", "kind"), 99)
    mut("opt lr nan", ("shared", "optimizer", "lr"), float("nan"))
    mut("opt not dict", ("shared", "optimizer"), 3)
    mut("shared missing", ("shared",), KeyError)
    mut("extra top", ("other",), 1)
    return out


def test_every_mutated_field_is_refused_and_changes_nothing():
    net = make()
    run(net, 7, 6)
    state = net.get_state()
    assert np.any(state["slots"]["x"])  # the "x beyond n" mutation has values to find
    for desc, bad in mutations(state):
        with pytest.raises((ValueError, TypeError)):
            net.set_state(bad)
        assert_identical(net, SharedNetwork.from_state(net.config(), state))
    # float32 storage refuses values it cannot hold
    f = make(f32=True)
    s = f.get_state()
    s["slots"]["h"][0, 0, 0] = 1e39
    with pytest.raises(ValueError, match="float32"):
        f.set_state(s)


@pytest.mark.parametrize("config", [
    dict(capacity=0), dict(capacity=-1), dict(capacity=True), dict(capacity=2.0),
    dict(capacity=10 ** 15), dict(max_batch=0), dict(max_batch=10 ** 9), dict(k2=0),
    dict(slot_dtype="float16"), dict(slot_dtype=3), dict(cell=17), dict(loss="x"),
    dict(hidden_size=0), dict(huber_eps=float("nan"))])
def test_hostile_config_is_refused(config):
    base = make().config()
    base.update(config)
    with pytest.raises((ValueError, TypeError)):
        SharedNetwork(**base)


CHILD = textwrap.dedent("""
    import copy, pickle, sys
    import numpy as np
    from streamrnn._core import ADAM, GRU, LSTM, SQUARED, Optimizer, initialize
    from streamrnn._core._shared import SharedNetwork

    rng = np.random.default_rng(int(sys.argv[1]))
    refused = accepted = 0
    for cell, f32 in ((LSTM, False), (GRU, True)):
        net = SharedNetwork(cell, 2, 3, 2, 1, 3, SQUARED, capacity=6, max_batch=4,
                            slot_dtype="float32" if f32 else "float64")
        initialize(net, np.random.default_rng(0))
        net.set_optimizer(Optimizer(ADAM, 0.01))
        for _ in range(4):
            k = rng.choice(6, 4, replace=False).astype(np.int64)
            net.step(k, rng.standard_normal((4, 2)), rng.standard_normal(4), np.zeros((4, 1)))
        good = net.get_state()
        leaves = [("slots", k) for k in good["slots"]] + [("shared", "params"),
                  ("shared", "t"), ("shared", "last_loss")] + [
                  ("shared", "optimizer", k) for k in good["shared"]["optimizer"]]
        junk = [None, -1, 2 ** 63, 1e308, float("nan"), "x", b"\\x00", [], {}, (1,),
                np.zeros(0), np.zeros((1, 1)), np.full(3, np.inf), np.arange(5),
                np.ones((6, 2, 3), dtype=np.float32), np.ones((6, 2, 3)) * 1e300,
                np.array([2 ** 62] * 6, dtype=np.int64), np.array(["a"] * 6), object()]
        for trial in range(600):
            s = copy.deepcopy(good)
            for _ in range(int(rng.integers(1, 4))):
                path = leaves[int(rng.integers(len(leaves)))]
                d = s
                for p in path[:-1]:
                    d = d.get(p) if isinstance(d, dict) else None
                if not isinstance(d, dict) or path[-1] not in d:
                    continue  # an earlier mutation of this trial removed the way there
                old = d[path[-1]]
                r = rng.random()
                if r < 0.4:
                    d[path[-1]] = junk[int(rng.integers(len(junk)))]
                elif r < 0.7 and isinstance(old, np.ndarray) and old.size:
                    v = old.copy()
                    try:
                        v.flat[int(rng.integers(v.size))] = rng.choice(
                            [np.nan, np.inf, -1, 1e300, 3, 2 ** 40])
                    except (ValueError, OverflowError):  # nan into an int64 array
                        v.flat[int(rng.integers(v.size))] = rng.choice([-1, 3, 2 ** 40])
                    d[path[-1]] = v
                elif r < 0.85 and isinstance(old, np.ndarray):
                    d[path[-1]] = old.reshape(-1)
                else:
                    del d[path[-1]]
            try:
                net2 = SharedNetwork.from_state(net.config(), s)
            except (ValueError, TypeError):
                refused += 1
                continue
            accepted += 1
            out = np.zeros((4, 1))
            st = net2.step(np.arange(4), np.ones((4, 2)), np.ones(4), out)
            assert st in (1, -2), st
            pickle.loads(pickle.dumps(net2))
    print(refused, accepted)
""")


def test_random_hostile_states_never_crash_in_a_child_process():
    r = subprocess.run([sys.executable, "-c", CHILD, "0"], capture_output=True, text=True,
                       timeout=600, env=child_env(OPENBLAS_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    refused, accepted = map(int, r.stdout.split())
    assert refused > 900  # nearly every mutation is caught by validation


DIGEST = textwrap.dedent("""
    import hashlib
    import numpy as np
    from streamrnn._core import ADAM, GRU, LSTM, SQUARED, Optimizer, initialize, _cells
    from streamrnn._core._shared import SharedNetwork

    h = hashlib.sha256()
    for cell in (LSTM, GRU):
        net = SharedNetwork(cell, 5, 7, 2, 3, 4, SQUARED, capacity=90, max_batch=80)
        initialize(net, np.random.default_rng(0))
        net.set_optimizer(Optimizer(ADAM, 0.01, clip_norm=1.0))
        rng = np.random.default_rng(1)
        for it in range(12):
            B = int(rng.integers(1, 81))
            k = rng.choice(90, B, replace=False).astype(np.int64)
            Y = rng.standard_normal((B, 3))
            out = np.zeros((B, 3))
            call = net.step_multi if it % 2 else net.step
            assert call(k, rng.standard_normal((B, 5)), Y, out) == 1
            h.update(out.tobytes())
        h.update(net.params.tobytes())
        for v in net.get_slots(np.arange(90)).values():
            h.update(v.tobytes())
    print(_cells.ISA, h.hexdigest())
""")


def test_every_instruction_set_gives_the_same_bits():
    from streamrnn._core import _cells
    digests = {}
    for isa in _cells.ISAS:
        r = subprocess.run([sys.executable, "-c", DIGEST], capture_output=True, text=True,
                           timeout=300, env=child_env(STREAMRNN_ISA=isa))
        assert r.returncode == 0, r.stderr[-2000:]
        used, digest = r.stdout.split()
        assert used == isa
        digests[isa] = digest
    assert len(set(digests.values())) == 1, digests


ARGS_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from streamrnn._core import ADAM, LSTM, SQUARED, Optimizer, initialize
    from streamrnn._core._shared import SharedNetwork

    import warnings
    warnings.simplefilter("ignore")  # the casts of huge values warn; only crashes matter
    rng = np.random.default_rng(int(sys.argv[1]))
    net = SharedNetwork(LSTM, 3, 4, 2, 2, 3, SQUARED, capacity=8, max_batch=5)
    initialize(net, np.random.default_rng(0))
    net.set_optimizer(Optimizer(ADAM, 0.01))

    def junk(shape, dtype=np.float64):
        r = rng.random()
        if r < 0.15:
            odd = [None, 3, 2.5, "x", [1.0, 2.0], (1,), object()]
            return odd[int(rng.integers(len(odd)))]
        if r < 0.3:
            shape = tuple(int(s) for s in rng.integers(0, 7, size=int(rng.integers(0, 4))))
        a = np.array(rng.standard_normal(shape) * 10.0 ** int(rng.integers(0, 300)))
        r = rng.random()
        if r < 0.1:
            a = a.astype([np.float32, np.int64, np.int32, np.complex128, bool][
                int(rng.integers(5))])
        elif r < 0.2 and a.ndim:
            a = np.asfortranarray(np.repeat(a, 2, axis=-1))[..., ::2]  # strided
        elif r < 0.25:
            a = a.astype(a.dtype.newbyteorder())
        elif r < 0.3 and a.size:
            a.flat[0] = [np.nan, np.inf, -np.inf][int(rng.integers(3))]
        elif r < 0.35:
            a.flags.writeable = False
        return a.astype(dtype) if dtype is not None and rng.random() < 0.3 and \\
            isinstance(a, np.ndarray) and a.dtype.kind in "fiub" else a

    errors = ok = 0
    for trial in range(3000):
        B = int(rng.integers(0, 8))
        slots = rng.integers(-2, 10, B).astype(np.int32 if rng.random() < 0.2 else np.int64)
        if rng.random() < 0.1:
            slots = junk((B,), None)
        X, Y, out = junk((B, 3)), junk((B, 2)), junk((B, 2))
        call = [net.step, net.step_multi, net.predict, net.rollout_step,
                net.advance][int(rng.integers(5))]
        try:
            if call in (net.predict, net.rollout_step, net.advance):
                r = call(slots, X, out)
            else:
                r = call(slots, X, Y, out)
            ok += 1
        except (ValueError, TypeError):
            errors += 1
    # the network still works and its weights are finite
    st = net.step(np.arange(4), np.ones((4, 3)), np.ones((4, 2)), np.zeros((4, 2)))
    assert st in (1, -2) and np.all(np.isfinite(net.params))
    print(errors, ok)
""")


def test_random_hostile_arguments_never_crash_in_a_child_process():
    r = subprocess.run([sys.executable, "-c", ARGS_CHILD, "1"], capture_output=True,
                       text=True, timeout=600, env=child_env(OPENBLAS_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    errors, ok = map(int, r.stdout.split())
    assert errors > 2000 and ok > 20  # mostly refused; the valid ones ran
