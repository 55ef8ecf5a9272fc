"""GlobalCore's state API: pickle / deepcopy / from_state / shared state + slots continue
bit-identically; inference changes no byte; set_state and set_slots validate every field;
bad rows change nothing; hostile states and arguments never crash (child processes)."""
import copy
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from streamrnn._core import ADAM, GRU, LSTM, SGD, Optimizer
from streamrnn._core._global import GlobalCore

H = 5


def make(dtype="float64", cell=LSTM, n_x=2, cap=10, learn_every=1):
    return GlobalCore(cell, 6, 1, 4, H, 3, n_x, cap, 6, dtype, learn_every, 1,
                      Optimizer(ADAM, 0.01))


def outs(B):
    return (np.zeros(B), np.zeros(B), np.zeros((B, H)), np.zeros((B, H)), np.zeros((B, H)))


def feed(core, rng, steps, n_keys=8):
    results = []
    for t in range(steps):
        B = int(rng.integers(1, 7))
        keys = rng.choice(n_keys, B, replace=False).astype(np.int64)
        ys = 10 + np.sin(t + keys) * 3 + rng.normal(0, 0.5, B)
        xs = rng.normal(0, 1, (B, core.n_x))
        xs[rng.random(xs.shape) < 0.3] = np.nan
        o = outs(B)
        st = core.step(keys, ys, xs, *o)
        results.append((st,) + tuple(a.copy() for a in o))
    return results


def same(ra, rb):
    assert len(ra) == len(rb)
    for a, b in zip(ra, rb):
        assert a[0] == b[0]
        for x, y in zip(a[1:], b[1:]):
            assert np.array_equal(x, y, equal_nan=True)


def state_equal(sa, sb):
    if isinstance(sa, dict):
        assert set(sa) == set(sb)
        for k in sa:
            state_equal(sa[k], sb[k])
    elif isinstance(sa, np.ndarray):
        assert sa.dtype == sb.dtype and np.array_equal(sa, sb, equal_nan=True)
    else:
        assert sa == sb and type(sa) is type(sb)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("how", ["pickle", "deepcopy", "from_state", "shared+slots"])
def test_round_trip_continues_bit_identically(dtype, how):
    core = make(dtype, cell=GRU if how == "deepcopy" else LSTM, learn_every=2)
    feed(core, np.random.default_rng(0), 25)
    if how == "pickle":
        twin = pickle.loads(pickle.dumps(core))
    elif how == "deepcopy":
        twin = copy.deepcopy(core)
    elif how == "from_state":
        twin = GlobalCore.from_state(core.config(), core.get_state())
    else:  # what the estimator does for a checkpoint of live keys only
        live = np.array([0, 2, 3, 5, 6, 7, 1, 4], dtype=np.int64)
        twin = GlobalCore(**{**core.config(), "optimizer": Optimizer(SGD, 0.5)}) \
            if False else GlobalCore.from_state(core.config(), make(dtype).get_state()) \
            if False else make(dtype, cell=LSTM, learn_every=2)
        twin.set_shared_state(core.get_shared_state())
        twin.set_slots(live, core.get_slots(live))
    state_equal(core.get_state(), twin.get_state())
    same(feed(core, np.random.default_rng(1), 20), feed(twin, np.random.default_rng(1), 20))
    state_equal(core.get_state(), twin.get_state())
    # the core's own part pickles to the same bytes (SharedNetwork's optimizer arrays keep
    # the unpickled dtype objects, so the whole pickle may differ by a few memo bytes)
    a, b = core.get_state(), twin.get_state()
    assert pickle.dumps((a["shared"], a["rows"], a["count"], core.config())) == \
        pickle.dumps((b["shared"], b["rows"], b["count"], twin.config()))


def test_inference_changes_no_byte():
    core = make("float32")
    feed(core, np.random.default_rng(2), 30)
    before = pickle.dumps(core)
    x = np.array([0.5, np.nan])
    for k in range(8):
        core.forecast(k, 3)
        core.forecast(k, 12, x)
        core.interval(k, 7, 0.2, x)
        core.interval(k, 2, 0.07)
        core.score(k, 11.0, x)
        core.score(k, -3.0)
        core.count(k)
        core.get_slots(np.array([k], dtype=np.int64))
    core.get_state()
    core.get_shared_state()
    core.halfwidth(2, 0.3)
    assert pickle.dumps(core) == before


def test_bad_rows_change_nothing_and_write_nothing():
    core = make("float32")
    feed(core, np.random.default_rng(3), 20)
    before = pickle.dumps(core)
    keys = np.array([1, 2], dtype=np.int64)
    good_x = np.zeros((2, core.n_x))
    for ys, xs in (([1.0, np.nan], good_x), ([np.inf, 1.0], good_x), ([1.0, 2e30], good_x),
                   ([1.0, 2.0], np.array([[0.0, np.inf], [0.0, 0.0]])),
                   ([1.0, 2.0], np.array([[0.0, 0.0], [-1e101, 0.0]]))):
        o = tuple(np.full(a.shape, 7.0) for a in outs(2))
        assert core.step(keys, np.array(ys), xs, *o) == -1
        assert all(np.all(a == 7.0) for a in o)
        assert pickle.dumps(core) == before
    # float64 slots take values up to 1e100
    core64 = make("float64")
    assert core64.step(keys, np.array([1e99, -1e99]), None, *outs(2)) == 1
    assert core64.step(keys, np.array([1e101, 0.0]), None, *outs(2)) == -1


def test_network_refusal_advances_the_keys_only():
    core = make()
    feed(core, np.random.default_rng(4), 20)
    core.net.view("W_y")[:] = 1e300          # every forecast overflows: the step is refused
    keys = np.array([0, 1], dtype=np.int64)
    n0 = [core.count(0), core.count(1)]
    o = outs(2)
    assert core.step(keys, np.array([10.0, 11.0]), None, *o) == 2
    assert [core.count(0), core.count(1)] == [n0[0] + 1, n0[1] + 1]
    assert np.all(np.isfinite(o[0]))          # the combination ran without the network
    assert np.all(core.net.window_length(keys) == 1)   # network slots reset


def test_reset_equals_fresh():
    core = make()
    fresh = pickle.dumps(make().get_state()["rows"])
    feed(core, np.random.default_rng(5), 20)
    core.reset(np.arange(10, dtype=np.int64))
    assert pickle.dumps(core.get_state()["rows"]) == fresh
    st = core.get_slots(np.arange(10, dtype=np.int64))
    assert not np.any(st["count"]) and not np.any(st["row"])
    assert not np.any(st["net"]["h"]) and not np.any(st["net"]["n"])


def mutations(core):
    """(path, value) pairs of single-field corruptions of a state."""
    st = core.get_state()
    cap, W = core.capacity, core.W
    parts = core.row_parts()
    rows = st["rows"]
    out = []

    def rows_with(fn):
        r = rows.copy()
        fn(r)
        return r

    out += [(("rows",), rows.astype(np.float64 if rows.dtype == np.float32 else np.float32)),
            (("rows",), rows[:-1]), (("rows",), rows.tolist()),
            (("rows",), rows_with(lambda r: r.__setitem__((0, 0), np.nan))),
            (("rows",), rows_with(lambda r: r.__setitem__((0, 0), np.inf))),
            (("rows",), rows_with(lambda r: r.__setitem__((0, parts["y"][0]), 1e35))),
            (("rows",), rows_with(lambda r: r.__setitem__((0, parts["hw"][0] + 2), -1.0))),
            (("rows",), rows_with(lambda r: r.__setitem__((0, parts["origin"][0] + 2), -1.0))),
            (("rows",), rows_with(lambda r: r.__setitem__((0, parts["err"][0]), -1.0))),
            (("rows",), rows_with(lambda r: r.__setitem__((0, parts["zhw"][0] + 2), 0.5))),
            (("rows",), rows_with(lambda r: r.__setitem__((0, parts["bank"][0] + 2), -1.0))),
            (("rows",), rows_with(lambda r: r.__setitem__((0, parts["zbank"][0] + 5), -1.0))),
            (("rows",), rows_with(lambda r: r.__setitem__((9, 3), 1.0))),   # slot 9 unused
            (("half",), st["half"].astype(np.float32)), (("half",), st["half"][:-1]),
            (("half",), st["half"].tolist()), (("half",), None)]
    if st["half"].size:   # float32 slots: the pending combined offsets as float16 bits
        out.append((("half",), st["half"].view(np.float16)))
        for i, bits in ((0, 0x7c00), (0, 0xfc00), (0, 0x7e00), (9, 0x3c00)):   # inf, nan; 1.0
            half = st["half"].copy()                                             # in slot 9
            half[i, 0] = bits
            out.append((("half",), half))
    out += [
            (("count",), st["count"].astype(np.int32)), (("count",), st["count"][:-1]),
            (("count",), np.full(cap, -1, dtype=np.int64)),
            (("count",), np.full(cap, 2 ** 62, dtype=np.int64)), (("count",), None)]
    sh = st["shared"]
    for k in sorted(sh):
        v = sh[k]
        if isinstance(v, np.ndarray):
            out.append((("shared", k), v.astype(np.float32)))
            out.append((("shared", k), v.reshape(-1)[:-1] if v.size else np.zeros(3)))
            if v.dtype == np.float64 and v.size:
                w = v.copy(); w.flat[0] = np.nan; out.append((("shared", k), w))
                if k != "feat_mean":
                    w = v.copy(); w.flat[0] = -5.0; out.append((("shared", k), w))
            if v.dtype == np.int64 and v.size:
                w = v.copy(); w.flat[0] = -1; out.append((("shared", k), w))
                if k.startswith("conf"):
                    w = v.copy(); w.flat[0] = 10 ** 9; out.append((("shared", k), w))
        else:
            out += [(("shared", k), -1), (("shared", k), 1.5), (("shared", k), "x")]
    srt = sh["conf_sorted"].copy()
    srt[0, 0], srt[0, 1] = srt[0, 1] + 1.0, srt[0, 0]
    out.append((("shared", "conf_sorted"), srt))
    out.append((("shared", "conf_pos"), (sh["conf_pos"] + 1) % core.window))
    out.append((("shared", "feat_mean"), np.full(core.n_x, 1e101)))
    out.append((("net", "shared", "params"), st["net"]["shared"]["params"][:-1]))
    out.append((("net", "shared", "optimizer"), None))
    out.append((("net", "slots", "n"), np.full(cap, 99, dtype=np.int64)))
    out.append((("net", "slots", "h"), np.full_like(st["net"]["slots"]["h"], np.nan)))
    out.append((("net",), {}))
    out.append((("shared",), {}))
    out.append((("extra",), 1))
    return out


def put(state, path, value):
    d = state
    for p in path[:-1]:
        d = d[p]
    d[path[-1]] = value


def test_set_state_validates_every_field():
    core = make("float32")
    feed(core, np.random.default_rng(6), 25)
    core.reset(np.array([9], dtype=np.int64))
    before = pickle.dumps(core)
    ms = mutations(core)
    assert len(ms) > 40
    for path, value in ms:
        st = core.get_state()
        put(st, path, value)
        with pytest.raises((ValueError, TypeError)):
            core.set_state(st)
        assert pickle.dumps(core) == before, path
    for bad in (None, [], {"net": 1}, 3):
        with pytest.raises((ValueError, TypeError)):
            core.set_state(bad)
        with pytest.raises((ValueError, TypeError)):
            core.set_shared_state(bad)
    with pytest.raises((ValueError, TypeError)):
        GlobalCore.from_state({**core.config(), "horizon": 0}, core.get_state())
    with pytest.raises((ValueError, TypeError)):
        GlobalCore.from_state({**core.config(), "horizon": 7}, core.get_state())
    assert pickle.dumps(core) == before


def test_set_slots_validates():
    core = make("float32")
    feed(core, np.random.default_rng(7), 25)
    before = pickle.dumps(core)
    k = np.array([1, 2], dtype=np.int64)
    good = core.get_slots(k)
    for change in (lambda d: d.pop("row"), lambda d: d.__setitem__("row", d["row"][:1]),
                   lambda d: d["row"].__setitem__((0, 0), np.nan),
                   lambda d: d.__setitem__("count", d["count"].astype(float)),
                   lambda d: d["count"].__setitem__(0, -3),
                   lambda d: d["net"]["n"].__setitem__(0, 99),
                   lambda d: d["net"].pop("h"), lambda d: d.pop("half"),
                   lambda d: d.__setitem__("half", d["half"].astype(np.float32)),
                   lambda d: d.__setitem__("half", d["half"][:, :-1]),
                   lambda d: d.__setitem__("half", d["half"].view(np.float16)),
                   lambda d: d["half"].__setitem__((0, 0), 0x7c00)):   # inf
        d = copy.deepcopy(good)
        change(d)
        with pytest.raises((ValueError, TypeError)):
            core.set_slots(k, d)
        assert pickle.dumps(core) == before
    with pytest.raises(ValueError):
        core.set_slots(np.array([1, 1], dtype=np.int64), good)


def test_bad_arguments_raise():
    core = make()
    feed(core, np.random.default_rng(8), 5)
    k = np.array([0, 1], dtype=np.int64)
    ys = np.zeros(2)
    good = outs(2)
    calls = [
        lambda: core.step(np.array([0, 0], dtype=np.int64), ys, None, *good),
        lambda: core.step(np.array([0, 10], dtype=np.int64), ys, None, *good),
        lambda: core.step(k.astype(np.int32), ys, None, *good),
        lambda: core.step(np.zeros(0, dtype=np.int64), np.zeros(0), None, *outs(0)),
        lambda: core.step(np.arange(7, dtype=np.int64), np.zeros(7), None, *outs(7)),
        lambda: core.step(k, ys.astype(np.float32), None, *good),
        lambda: core.step(k, np.zeros(3), None, *good),
        lambda: core.step(k, ys, np.zeros((2, 3)), *good),
        lambda: core.step(k, ys, None, good[0], good[0], *good[2:]),
        lambda: core.step(k, ys, None, *good[:2], np.zeros((2, H))[:, ::-1], *good[3:]),
        lambda: core.step(k, ys, None, *good, alpha=0.0),
        lambda: core.step(k, ys, None, *good, alpha="x"),
        lambda: core.forecast(10, 3), lambda: core.forecast(-1, 3), lambda: core.forecast(0, 0),
        lambda: core.forecast(0, 3, np.zeros(5)), lambda: core.forecast(True, 3),
        lambda: core.interval(0, 3, 1.0), lambda: core.score(0, np.nan),
        lambda: core.score(0, "y"), lambda: core.copy_slots(k, np.array([3, 3], dtype=np.int64)),
        lambda: core.reset(np.array([11], dtype=np.int64)),
    ]
    before = pickle.dumps(core)
    for i, c in enumerate(calls):
        with pytest.raises((ValueError, TypeError)):
            c()
            print("call", i, "did not raise")
        assert pickle.dumps(core) == before
    for bad in [dict(period=1), dict(horizon=0), dict(n_x=-1), dict(capacity=0),
                dict(max_batch=0), dict(learn_every=0), dict(slot_dtype="float16"),
                dict(cell=99), dict(loss=3), dict(clip=0.0), dict(hw_alphas=(0.0,)),
                dict(hw_betas=()), dict(hw_log_alphas=(0.1,)), dict(hw_log_betas=(0.1, 0.2, 0.3)),
                dict(hw_log_alphas=(0.0, 0.1, 0.2)), dict(hw_log_gamma=1.5), dict(hw_gamma_start=-0.1),
                dict(hw_eta=-1.0), dict(hw_phi=1.5), dict(window=2), dict(alphas=(0.2, 0.1)),
                dict(optimizer="adam"), dict(hidden_size=0), dict(k2=0)]:
        cfg = dict(cell=LSTM, hidden_size=4, num_layers=1, k2=3, horizon=3, period=2, n_x=0,
                   capacity=4, max_batch=2)
        cfg.update(bad)
        with pytest.raises((ValueError, TypeError)):
            GlobalCore(**cfg)


HOSTILE_STATE = r"""
import pickle, sys
import numpy as np
from streamrnn._core import ADAM, LSTM, Optimizer
from streamrnn._core._global import GlobalCore
sys.path.insert(0, "tests")
core = GlobalCore(LSTM, 4, 1, 3, 4, 3, 1, 6, 4, "{dtype}", 1, 0, Optimizer(ADAM, 0.01))
rng = np.random.default_rng(0)
P = lambda B: (np.zeros(B), np.zeros(B), np.zeros((B, 4)), np.zeros((B, 4)), np.zeros((B, 4)))
for t in range(30):
    k = rng.choice(6, 3, replace=False).astype(np.int64)
    core.step(k, rng.normal(5, 2, 3), rng.normal(0, 1, (3, 1)), *P(3))
good = core.get_state()
leaves = []
def walk(d, path):
    for key, v in d.items():
        if isinstance(v, dict):
            walk(v, path + (key,))
        else:
            leaves.append(path + (key,))
walk(good, ())
def get(d, p):
    for q in p:
        d = d[q]
    return d
values = [np.nan, np.inf, -np.inf, 1e300, -1e300, 0.0, -1.0, 1e38, 3e38]
refused = accepted = 0
for trial in range({n}):
    st = pickle.loads(pickle.dumps(good))
    for _ in range(int(rng.integers(1, 4))):
        p = leaves[int(rng.integers(len(leaves)))]
        v = get(st, p)
        d = get(st, p[:-1])
        if isinstance(v, np.ndarray) and v.size:
            v = v.copy()
            idx = tuple(int(rng.integers(s)) for s in v.shape)
            if v.dtype.kind == "f":
                v[idx] = values[int(rng.integers(len(values)))] if rng.random() < 0.7 \
                    else v[idx] * rng.normal(1, 10)
            elif v.dtype.kind == "u":   # float16 bits: inf, nan, -inf, 1.0, 65504, any
                v[idx] = int(rng.choice([0x7c00, 0x7e00, 0xfc00, 0x3c00, 0x7bff, 0xffff, 1]))
            else:
                v[idx] = int(rng.choice([-1, 0, 1, 2, 5, 1000, 2 ** 62, -(2 ** 62)]))
            d[p[-1]] = v
        else:
            opts = [None, -1, 2 ** 70, 0.5, "x", (1,)]
            d[p[-1]] = opts[int(rng.integers(len(opts)))]
    c = GlobalCore(LSTM, 4, 1, 3, 4, 3, 1, 6, 4, "{dtype}", 1, 0, Optimizer(ADAM, 0.01))
    try:
        c.set_state(st)
    except (ValueError, TypeError):
        refused += 1
        continue
    accepted += 1
    for t in range(5):   # an accepted state keeps working
        k = rng.choice(6, 3, replace=False).astype(np.int64)
        c.step(k, rng.normal(5, 2, 3), None, *P(3))
        c.forecast(int(k[0]), 7)
        c.interval(int(k[1]), 3)
        c.score(int(k[2]), 1.0)
    pickle.loads(pickle.dumps(c))
print("OK", refused, accepted)
"""

HOSTILE_ARGS = r"""
import numpy as np
from streamrnn._core import ADAM, GRU, Optimizer
from streamrnn._core._global import GlobalCore
core = GlobalCore(GRU, 4, 1, 3, 4, 2, 2, 8, 4, "float32", 2, 0, Optimizer(ADAM, 0.01))
rng = np.random.default_rng(1)
H = 4
def arr(shape, dtype=np.float64):
    r = rng.random()
    if r < 0.1:
        return rng.normal(0, 1e35, shape).astype(dtype)
    a = rng.normal(0, 3, shape).astype(dtype)
    if r < 0.3 and a.size:
        a.flat[int(rng.integers(a.size))] = rng.choice([np.nan, np.inf, -np.inf, 1e300])
    if r > 0.9 and a.ndim == 2 and a.shape[1] > 1:
        a = np.asfortranarray(a)
    if r > 0.95:
        a = a.astype(a.dtype.newbyteorder(">"))
    return a
def maybe(shape):
    r = rng.random()
    if r < 0.08:
        return None
    if r < 0.14:
        return arr(shape, np.float32)
    if r < 0.2:
        s = list(shape); s[0] += 1
        return arr(tuple(s))
    if r < 0.24:
        return [0.0] * (shape[0] if shape else 1)
    if r < 0.27:
        a = arr(shape); a.setflags(write=False); return a
    return arr(shape)
ok = refused = 0
for trial in range({n}):
    B = int(rng.integers(0, 6))
    kind = rng.random()
    try:
        if kind < 0.6:
            slots = rng.integers(-1, 9, B).astype(rng.choice([np.int64, np.int64, np.int32]))
            st = core.step(slots, maybe((B,)), None if rng.random() < 0.3 else maybe((B, 2)),
                           maybe((B,)), maybe((B,)), maybe((B, H)), maybe((B, H)),
                           maybe((B, H)), alpha=rng.choice([0.1, 0.0, 1.0, np.nan, 0.5, -1]))
        elif kind < 0.7:
            core.forecast(int(rng.integers(-2, 10)), int(rng.integers(-1, 30)),
                          None if rng.random() < 0.5 else maybe((2,)))
        elif kind < 0.8:
            core.interval(int(rng.integers(-2, 10)), int(rng.integers(-1, 30)),
                          rng.choice([0.1, 0.0, 2.0, np.nan]))
        elif kind < 0.9:
            core.score(int(rng.integers(-2, 10)), rng.choice([1.0, np.nan, np.inf, 1e200]),
                       None if rng.random() < 0.5 else maybe((2,)))
        elif kind < 0.95:
            core.copy_slots(rng.integers(-1, 9, B), rng.integers(-1, 9, B))
        else:
            s = rng.integers(-1, 9, B)
            core.set_slots(s, core.get_slots(np.abs(s) % 8))
        ok += 1
    except (ValueError, TypeError, OverflowError):
        refused += 1
P = (np.zeros(2), np.zeros(2), np.zeros((2, H)), np.zeros((2, H)), np.zeros((2, H)))
assert core.step(np.array([0, 1], dtype=np.int64), np.array([1.0, 2.0]), None, *P) in (1, 2)
print("OK", ok, refused)
"""


def child(code):
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.split()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_hostile_states_never_crash(dtype):
    out = child(textwrap.dedent(HOSTILE_STATE).replace("{dtype}", dtype).replace("{n}", "300"))
    assert out[0] == "OK" and int(out[1]) > 0


def test_hostile_arguments_never_crash():
    out = child(textwrap.dedent(HOSTILE_ARGS).replace("{n}", "2000"))
    assert out[0] == "OK" and int(out[1]) > 0 and int(out[2]) > 0


def test_a_key_moved_to_another_slot_of_another_core_continues_identically():
    """Eviction and return (E's max_keys, checkpoints of live keys): a key's slot state
    taken from slot 3 of one core and set into slot 7 of a twin (same shared state) goes on
    exactly as it would have in place."""
    core = make("float32")
    feed(core, np.random.default_rng(9), 25)
    twin = make("float32")
    twin.set_shared_state(core.get_shared_state())
    twin.set_slots(np.array([7], dtype=np.int64), core.get_slots(np.array([3], dtype=np.int64)))
    rng = np.random.default_rng(10)
    for t in range(15):
        y = np.array([10 + rng.normal()])
        x = rng.normal(0, 1, (1, core.n_x))
        a, b = outs(1), outs(1)
        assert core.step(np.array([3], dtype=np.int64), y, x, *a) == 1
        assert twin.step(np.array([7], dtype=np.int64), y, x, *b) == 1
        for u, v in zip(a, b):
            assert np.array_equal(u, v, equal_nan=True)
    assert np.array_equal(core.forecast(3, 9), twin.forecast(7, 9))


def test_busy_network_refuses_the_core():
    """While a call runs without the GIL the network's busy flag is set: the core's entry
    points then raise RuntimeError instead of sharing the scratch. The flag is set here the
    way SharedNetwork's own nogil calls set it (through a Python-visible twin call that
    checks it): a network step from another thread during a core step is refused too."""
    import threading
    core = make()
    feed(core, np.random.default_rng(11), 3)
    B = 6
    ok, refused = [], []

    def other():
        for _ in range(200):
            try:
                core.forecast(0, 3)
                ok.append(1)
            except RuntimeError:
                refused.append(1)

    th = threading.Thread(target=other)
    th.start()
    for t in range(200):
        keys = np.arange(B, dtype=np.int64)
        try:
            core.step(keys, np.full(B, 1.0 + t), None, *outs(B))
        except RuntimeError:
            refused.append(1)
    th.join()
    assert len(ok) + len(refused) >= 200      # every call either ran or was refused cleanly
    assert core.step(np.arange(2, dtype=np.int64), np.ones(2), None, *outs(2)) == 1


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_extreme_values_round_trip(dtype):
    """Values at the limit (|y| == y_limit, which float32 rounds up), jumps between them and
    a constant stretch (zero scale) are learned, and the state still round-trips and goes on
    bit-identically (E's fuzz found the float32 limit refused by set_state)."""
    core = make(dtype)
    L = core.y_limit
    rng = np.random.default_rng(12)
    for t in range(40):
        keys = np.array([0, 1, 2], dtype=np.int64)
        ys = np.array([L if t % 2 else -L, 5.0, rng.choice([L, -L, 0.0, 1e-300])])
        assert core.step(keys, ys, None, *outs(3)) in (1, 2)
    twin = pickle.loads(pickle.dumps(core))
    state_equal(core.get_state(), twin.get_state())
    twin.set_slots(np.array([0, 1, 2], dtype=np.int64), core.get_slots(np.array([0, 1, 2], dtype=np.int64)))
    same(feed(core, np.random.default_rng(13), 10), feed(twin, np.random.default_rng(13), 10))
    for k in range(3):
        assert np.all(np.isfinite(core.forecast(k, 30)))


def test_the_previous_conformal_layout_is_refused():
    """Before the age groups a shared state held one conformal row per step (H rows, not
    3 H): such a state (an old checkpoint) is refused with the shape, and nothing changes."""
    core = make("float32")
    feed(core, np.random.default_rng(2), 20)
    before = pickle.dumps(core)
    st = core.get_state()
    sh = st["shared"]
    for k in ("conf_raw", "conf_sorted", "conf_count", "conf_pos"):
        sh[k] = sh[k][:H]
    sh["conf_at"] = sh["conf_at"][:, :H]
    with pytest.raises(ValueError, match=rf"conf_count must be an int64 ndarray of shape "
                                         rf"\({3 * H},\)"):
        core.set_state(st)
    assert pickle.dumps(core) == before
