"""GlobalForecaster: keys, LRU and eviction, validation, batches, per-row errors."""
import copy
import math
import pickle
import warnings

import numpy as np
import pytest

import streamrnn
from streamrnn import GlobalForecaster, LSTMForecaster
from streamrnn import multiseries as ms


def small(**kw):
    kw.setdefault("cell", "gru")
    kw.setdefault("hidden_size", 4)
    kw.setdefault("tbptt_steps", 4)
    kw.setdefault("seasonality", 4)
    kw.setdefault("horizon", 3)
    kw.setdefault("seed", 3)
    return GlobalForecaster(**kw)


def series(i, t):
    return 10.0 * (i + 1) + math.sin(2 * math.pi * (t + i) / 4) + 0.01 * t


def feed(m, n_keys=5, steps=12, keys=None):
    keys = keys or [f"k{i}" for i in range(n_keys)]
    for t in range(steps):
        m.learn_many(keys, [series(i, t) for i in range(len(keys))])
    return keys


def blob(m):
    return pickle.dumps(m)


def test_exported():
    assert streamrnn.GlobalForecaster is GlobalForecaster
    assert streamrnn.BatchResult is ms.BatchResult


def _river_cases():
    from river import checks
    for i, params in enumerate(GlobalForecaster._unit_test_params()):
        est = GlobalForecaster(**params)
        for check in checks.yield_checks(est):
            yield pytest.param(est, check, id=f"{i}:{check.__name__}")


@pytest.mark.parametrize("estimator, check", list(_river_cases()))
def test_river_check(estimator, check):
    check(estimator.clone())


# ------------------------------------------------------------------ parameters
@pytest.mark.parametrize("kw, match", [
    ({"cell": "tcn"}, "cell must be one of"),
    ({"hidden_size": 0}, "hidden_size must be an int"),
    ({"seasonality": -1}, "seasonality must be an int"),
    ({"seasonality": (12, 24)}, "seasonality must be an int"),
    ({"horizon": 0}, "horizon must be an int"),
    ({"learn_every": 0}, "learn_every must be an int"),
    ({"max_keys": 0}, "max_keys must be an int"),
    ({"max_batch": 0}, "max_batch must be an int"),
    ({"slot_dtype": "float16"}, "slot_dtype must be one of"),
    ({"max_features": -1}, "max_features must be an int"),
    ({"seed": None}, "seed must be an int"),
    ({"seasonality": 20_000}, "seasonality must be an int"),
    ({"hidden_size": 1024, "num_layers": 4, "max_batch": 4096}, "bytes of scratch"),
    ({"hidden_size": 4096}, "parameters"),
    ({"optimizer": "adamw"}, "optimizer must be a river optimizer or one of"),
    ({"lr": -1.0}, "lr must be None or a finite number"),
    ({"clip_norm": 0.0}, "clip_norm must be None or a finite number"),
])
def test_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        GlobalForecaster(**kw)


def test_river_optimizer_and_name_agree():
    from river import optim
    a = GlobalForecaster(optimizer=optim.RMSProp(0.01))
    b = GlobalForecaster(optimizer="rmsprop", lr=0.01)
    assert a._opt_args == b._opt_args
    with pytest.raises(ValueError, match="lr is for a named optimizer"):
        GlobalForecaster(optimizer=optim.Adam(0.01), lr=0.1)


def test_horizon_default():
    assert GlobalForecaster(seasonality=12).H == 12
    assert GlobalForecaster().H == 24
    assert GlobalForecaster(seasonality=12, horizon=5).H == 5


# ------------------------------------------------------------------ keys
def test_keys_lru_order_and_containment():
    m = small()
    m.learn_many(["a", b"b", 7], [1.0, 2.0, 3.0])
    m.learn_one("a", 1.5)
    assert m.keys() == [b"b", 7, "a"]
    assert len(m) == m.n_keys == 3
    assert "a" in m and b"b" in m and np.int64(7) in m and "b" not in m and 3.5 not in m
    m.forget(b"b")
    assert m.keys() == [7, "a"]
    with pytest.raises(KeyError):
        m.forget("zzz")
    with pytest.raises(KeyError, match="unknown series key"):
        m.forecast("zzz", 1)


def test_eviction_least_recently_seen_and_returning_key_starts_afresh():
    m = small(max_keys=3)
    m.learn_many(["a", "b", "c"], [1.0, 2.0, 3.0])
    m.learn_many(["a", "b", "c"], [1.1, 2.1, 3.1])
    m.learn_one("a", 1.2)                 # order now b, c, a
    m.learn_one("d", 4.0)                 # evicts b
    assert m.keys() == ["c", "a", "d"] and m.n_evicted == 1
    assert "b" not in m
    m.learn_one("b", 2.2)                 # evicts c; b returns with a fresh state
    assert m.keys() == ["a", "d", "b"] and m.n_evicted == 2
    assert m.last_prediction("b") is None  # nothing predicted its first value


def test_key_types():
    m = small()
    for bad in (1.5, None, ("a", 1), True):
        with pytest.raises(TypeError, match="a series key must be a str, bytes or int"):
            m.learn_one(bad, 1.0)
    with pytest.raises(ValueError, match="at most 1024 characters"):
        m.learn_one("x" * 1025, 1.0)
    with pytest.raises(ValueError, match="64 bits"):
        m.learn_one(1 << 70, 1.0)
    assert len(m) == 0


# ------------------------------------------------------------------ validation
BAD = [(float("nan"), None), (float("inf"), None), ("3", None), (None, None), (1e101, None),
       (1.0, {"a": float("nan")}), (1.0, {"a": "x"}), (1.0, {"a": None}), (1.0, [1.0]),
       (1.0, {"a": 1e101}), (1.0, {"a": 1.0, "b": float("nan")}),
       (1.0, {"b": float("nan"), "a": 2.0}), (1.0, {"a": 1.0, "b": -float("inf")}),
       (1.0, {"a": 1e308, "b": 1e308}), (1.0, {"a": 2.0, "b": -1e101})]


@pytest.mark.filterwarnings("ignore:GlobalForecaster's feature columns")
@pytest.mark.parametrize("y, x", BAD)
def test_bad_input_same_error_as_the_single_series_forecaster(y, x):
    single = LSTMForecaster(hidden_size=2, seasonality=0)
    single.learn_one(1.0, {"a": 1.0})
    single.learn_one(2.0, {"a": 1.0})
    with pytest.raises((TypeError, ValueError)) as want:
        single.learn_one(y, x)
    m = small(slot_dtype="float64")
    feed(m, steps=3)
    m.learn_one("k0", 1.0, {"a": 1.0})
    before = blob(m)
    with pytest.raises(type(want.value)) as got:
        m.learn_one("k1", y, x)
    assert str(got.value) == str(want.value)
    assert blob(m) == before  # no key's state, no shared weight changed
    r = m.learn_many(["k1"], [y], [x])
    assert not r.ok[0] and r.errors == [(0, str(want.value))]
    assert blob(m) == before


def test_float32_slots_refuse_values_beyond_their_range():
    m = small()
    feed(m, steps=2)
    assert ms.F32_LIMIT == m._core.y_limit
    before = blob(m)
    with pytest.raises(ValueError, match="float64"):
        m.learn_one("k0", 1e31)
    assert blob(m) == before
    m.learn_many(["k1", "k2"], [1e30, -1e30])  # the limit itself is a value; it round-trips
    c = pickle.loads(blob(m))
    assert blob(c) == blob(m)


def test_a_bad_row_changes_nothing_in_a_batch():
    """A batch with bad rows gives the same model as the batch without them."""
    a, b = small(), small()
    feed(a), feed(b)
    keys = ["k0", "k1", "k2", "k1", "k3"]
    ys = [1.0, 2.0, 3.0, 4.0, 5.0]
    ra = a.learn_many(keys[:2] + ["k9"] + keys[2:] + ["k1"],
                      ys[:2] + [float("nan")] + ys[2:] + ["x"])
    rb = b.learn_many(keys, ys)
    assert blob(a) == blob(b)
    assert ra.ok.tolist() == [True, True, False, True, True, True, False]
    assert [i for i, _ in ra.errors] == [2, 6]
    np.testing.assert_array_equal(ra.forecast[ra.ok], rb.forecast)
    np.testing.assert_array_equal(ra.prediction[ra.ok], rb.prediction)
    assert np.isnan(ra.forecast[~ra.ok]).all()


def test_batch_shape_errors_raise():
    m = small()
    with pytest.raises(ValueError, match="2 keys but 1 values"):
        m.learn_many(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="2 keys but 1 feature dicts"):
        m.learn_many(["a", "b"], [1.0, 2.0], [None])
    with pytest.raises(ValueError, match="alpha must be"):
        m.learn_many(["a"], [1.0], alpha=1.5)


# ------------------------------------------------------------------ batches
def test_learn_many_equals_its_sub_batches():
    """A batch is cut where a key repeats (and at max_batch): the same as learning the
    sub-batches one by one."""
    a, b = small(max_batch=3), small(max_batch=3)
    feed(a), feed(b)
    keys = ["k0", "k1", "k0", "k2", "k3", "k4", "k5", "k1"]
    ys = [float(i) for i in range(len(keys))]
    ra = a.learn_many(keys, ys)
    parts = [(0, 2), (2, 5), (5, 8)]  # k0 repeats at 2; at most 3 rows
    outs = [b.learn_many(keys[i:j], ys[i:j]) for i, j in parts]
    assert blob(a) == blob(b)
    np.testing.assert_array_equal(ra.forecast, np.concatenate([o.forecast for o in outs]))
    np.testing.assert_array_equal(ra.anomaly, np.concatenate([o.anomaly for o in outs]))


def test_learn_one_is_a_batch_of_one():
    a, b = small(), small()
    feed(a), feed(b)
    a.learn_one("k2", 5.0)
    b.learn_many(["k2"], [5.0])
    assert blob(a) == blob(b)


def test_result_rows_and_last_prediction():
    m = small()
    feed(m)
    f1 = m.forecast("k1", 1)[0]
    r = m.learn_many(["k1", "new"], [3.0, 4.0])
    assert r.prediction[0] == f1 == m.last_prediction("k1")
    assert math.isnan(r.prediction[1]) and m.last_prediction("new") is None
    assert r.forecast.shape == (2, m.H) and r.ok.all() and r.errors == []
    assert r.forecast[0].tolist() == m.forecast("k1", m.H)


def test_features_fixed_by_the_first_step():
    m = small(max_batch=2)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m.learn_many(["a", "b", "c"], [1.0, 2.0, 3.0],
                     [{"u": 1.0}, {"t": 2.0, "u": 0.5}, {"s": 1.0}])
        assert m.features == ["t", "u"] and m.n_ignored_features == 1  # "s": the second step
        m.learn_one("a", 1.0, {"u": 1.0, "new": 3.0})
    assert m.n_ignored_features == 2 and len(w) == 1 and "ignored" in str(w[0].message)
    m.learn_one("a", 1.0, {"u": 1.0})  # a known feature missing from x: missing, fine
    with pytest.raises(TypeError):
        m.forecast("a", 2, [{"u": "x"}, {}])
    with pytest.raises(ValueError, match="xs holds 1 feature dicts"):
        m.forecast("a", 2, [{"u": 1.0}])


# ------------------------------------------------------------------ inference and state
def test_inference_changes_no_byte():
    m = small()
    feed(m)
    m.learn_one("k0", 1.0, None)
    before = blob(m)
    m.forecast("k0", 7)
    m.forecast_interval("k1", 5, alpha=0.2)
    m.score_one("k2", 100.0)
    m.last_prediction("k3"), m.last_anomaly("k3"), m.keys(), len(m), "k0" in m
    assert blob(m) == before


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "state"])
def test_round_trip_continues_bit_identically(how):
    m = small(max_keys=4)
    feed(m, n_keys=6, steps=6)     # evictions, a free list, grown arrays
    m.forget(m.keys()[1])
    if how == "pickle":
        c = pickle.loads(pickle.dumps(m))
    elif how == "deepcopy":
        c = copy.deepcopy(m)
    else:
        c = small(max_keys=4)
        c._import_state(m._export_state())
    assert c.keys() == m.keys() and c.n_evicted == m.n_evicted
    assert blob(c) == blob(m)
    for mm in (m, c):
        feed(mm, n_keys=7, steps=5)
    assert blob(c) == blob(m)
    assert c.forecast("k6", 6) == m.forecast("k6", 6)


@pytest.mark.filterwarnings("ignore:GlobalForecaster's feature columns")
def test_round_trip_bytes_do_not_depend_on_which_string_objects_the_keys_are():
    # pickle writes a string object seen twice as a reference: equal models must pickle alike
    m = small()
    m.learn_many(["b", b"b", "".join(["x", "y"]), "xy", ("a", 1)[0], 3],
                 [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                 [{"b": 1.0, ("t", "u"): 2.0}, None, None, {"keys": 1.0}, None, None])
    c = pickle.loads(pickle.dumps(m))
    assert blob(c) == blob(m) == blob(pickle.loads(blob(c)))
    feed(m, steps=2), feed(c, steps=2)
    assert blob(c) == blob(m)


@pytest.mark.parametrize("slot_dtype", ["float32", "float64"])
def test_slots_copied_in_chunks_round_trip(monkeypatch, slot_dtype):
    """Growth, export and import copy the slots a chunk at a time (bounded temporaries)."""
    monkeypatch.setattr(ms, "_GROW_CHUNK", 3)
    monkeypatch.setattr(ms, "INITIAL_CAPACITY", 2)
    m = small(max_keys=40, max_batch=4, slot_dtype=slot_dtype)
    feed(m, n_keys=11, steps=5)
    c = pickle.loads(blob(m))
    assert blob(c) == blob(m)
    feed(m, n_keys=13, steps=3), feed(c, n_keys=13, steps=3)
    assert blob(c) == blob(m)
    chunked = blob(m)
    monkeypatch.setattr(ms, "_GROW_CHUNK", 1 << 16)
    assert blob(m) == chunked


def test_empty_model_round_trip():
    m = small()
    c = pickle.loads(pickle.dumps(m))
    assert len(c) == 0 and blob(c) == blob(m)
    feed(m, steps=3), feed(c, steps=3)
    assert blob(c) == blob(m)


def test_arrays_grow_with_the_keys():
    m = small(max_keys=50_000, max_batch=64)
    keys = [f"s{i}" for i in range(3000)]
    m.learn_many(keys, [float(i % 7) for i in range(3000)])
    assert len(m) == 3000 and m._core.capacity == 4096  # 1,024 doubled twice
    small_most = small(max_keys=5000, max_batch=64)
    small_most.learn_many(keys, [float(i % 7) for i in range(3000)])
    assert small_most._core.capacity == 5064  # past half the most: straight to it
    c = pickle.loads(pickle.dumps(m))
    assert c._core.capacity < m._core.capacity  # a copy holds what its keys need
    m.learn_many(keys[:10], [1.0] * 10), c.learn_many(keys[:10], [1.0] * 10)
    assert blob(c) == blob(m)


# ------------------------------------------------------------------ against the core itself
@pytest.mark.parametrize("with_x", [False, True, "one schema"])
def test_the_estimator_is_the_core_plus_a_key_map(with_x):
    """learn_many equals driving a GlobalCore by hand: one step per sub-batch of distinct keys,
    new keys on fresh slots, the evicted key's slot reset, features in sorted-name columns
    (NaN: missing; a name first seen later: ignored) - a plain-dict reference."""
    from streamrnn import _core
    from streamrnn._core._global import GlobalCore
    m = small(max_keys=4, max_batch=3, slot_dtype="float64")
    names = ["u", "v"] if with_x else []
    core = GlobalCore(**m._core_config(len(names), 16), optimizer=_core.Optimizer(**m._opt_args))
    slot, lru, free = {}, [], list(range(16))
    rng = np.random.default_rng(1)
    stream = [(f"k{int(rng.integers(6))}", float(rng.normal(10, 2))) for _ in range(120)]
    # the first step (the first sub-batch, within the first 3 rows) sees u and v: the columns
    xs = [{"v": 1.0, "u": 0.5}, {"u": 1.5}, {}] + [
        {n: float(rng.normal()) for n in ("u", "v", "late") if rng.random() < 0.6}
        for _ in stream[3:]]
    if with_x == "one schema":  # every row the same names, not in column order
        xs = [{"v": float(rng.normal()), "u": float(rng.normal())} for _ in stream]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = m.learn_many([k for k, _ in stream], [y for _, y in stream],
                           xs if with_x else None)
    want, start = [], 0
    while start < len(stream):  # sub-batches: distinct keys, at most 3 rows
        part, seen = [], set()
        for k, y in stream[start:]:
            if k in seen or len(part) == 3:
                break
            seen.add(k)
            part.append((k, y))
        X = None
        if with_x:
            X = np.array([[xs[start + j].get(n, np.nan) for n in names]
                          for j in range(len(part))])
        start += len(part)
        s = np.array([slot[k] if k in slot else free.pop(0) for k, _ in part], dtype=np.int64)
        for (k, _), si in zip(part, s):
            slot[k] = int(si)
            if k in lru:
                lru.remove(k)
            lru.append(k)
        b, H = len(part), m.H
        out = [np.empty(b), np.empty(b), np.empty((b, H)), np.empty((b, H)), np.empty((b, H))]
        assert core.step(s, np.array([y for _, y in part]), X, *out) == 1
        want.append(out)
        while len(lru) > 4:  # (the slot numbers differ from the estimator's: they do not matter)
            gone = slot.pop(lru.pop(0))
            core.reset(np.array([gone], dtype=np.int64))
            free.append(gone)
    assert m.keys() == lru
    np.testing.assert_array_equal(got.prediction, np.concatenate([w[0] for w in want]))
    np.testing.assert_array_equal(got.anomaly, np.concatenate([w[1] for w in want]))
    np.testing.assert_array_equal(got.forecast, np.concatenate([w[2] for w in want]))
    np.testing.assert_array_equal(got.low, np.concatenate([w[3] for w in want]))
    for k in lru:
        assert m.forecast(k, 5) == core.forecast(slot[k], 5).tolist()


def test_a_returning_evicted_key_is_a_new_key():
    m = small(max_keys=2)
    feed(m, n_keys=2, steps=8)
    m.learn_one("k2", 5.0)                    # evicts k0
    assert "k0" not in m
    twin = copy.deepcopy(m)
    m.learn_one("k0", 7.0)
    twin.learn_one("never-seen", 7.0)
    assert m.forecast("k0", 4) == twin.forecast("never-seen", 4)
    assert m.last_prediction("k0") is None


def test_learn_every_learns_the_network_less_often():
    a, b = small(learn_every=1), small(learn_every=3)
    feed(a, steps=9), feed(b, steps=9)
    assert b._core.net.optimizer.t < a._core.net.optimizer.t
    c = pickle.loads(pickle.dumps(b))
    feed(b, steps=4), feed(c, steps=4)
    assert blob(b) == blob(c)


def test_slot_bytes_and_the_checkpoint_grow_with_the_keys_not_max_keys():
    from streamrnn import checkpoint as ck
    m = GlobalForecaster(cell="lstm", hidden_size=32, tbptt_steps=16, horizon=24,
                         seasonality=24, max_keys=1_000_000, seed=1)
    small_cap = m.clone({"max_keys": 10})
    for x in (m, small_cap):
        x.learn_many(["a", "b"], [1.0, 2.0])
    assert m.slot_bytes <= 4096
    two = ck.state_nbytes(m)
    assert two == ck.state_nbytes(small_cap)  # max_keys does not matter, the keys do
    m.learn_many(["c", "d"], [1.0, 2.0])
    # a key in a file: its slot (float32 as stored), 16 B, its name in the JSON
    assert ck.state_nbytes(m) - two <= 2 * (m.slot_bytes + 16 + 40)


def test_a_refused_network_step_still_learns_the_per_key_parts():
    """A learning rate far too high with clipping off: the network refuses its steps (status
    2); the rows are learned by the per-key parts, the weights stay finite, it is counted."""
    m = small(optimizer="sgd", lr=1e300, clip_norm=None)
    for t in range(30):
        r = m.learn_many(["a", "b", "c"], [1e20 * (t % 3), -1e20 * t, 3.0 * t])
        assert r.ok.all()
    assert m.n_skipped_updates > 0
    assert np.isfinite(m._core.net.params).all()
    c = pickle.loads(pickle.dumps(m))
    feed(m, steps=2), feed(c, steps=2)
    assert blob(c) == blob(m)


@pytest.mark.filterwarnings("ignore:GlobalForecaster's feature columns")
def test_round_trip_with_features_continues_bit_identically():
    m = small(max_keys=3, max_features=2)
    for t in range(8):
        m.learn_many(["a", "b", "c", "d"], [float(t), 2.0, 3.0 - t, 1.0],
                     [{"u": t, "v": 1.0}, None, {"v": -1.0}, {"u": 0.5, "w": 2.0}])
    c = copy.deepcopy(m)
    assert c.features == ["u", "v"] and blob(c) == blob(m)
    for x in (m, c):
        x.learn_many(["a", "e"], [1.0, 2.0], [{"u": 3.0}, {"v": 1.0}])
    assert blob(c) == blob(m)
    assert m.forecast("a", 3, [{"u": 1.0}] * 3) == c.forecast("a", 3, [{"u": 1.0}] * 3)


def test_one_call_at_a_time():
    """A call while another thread is inside learn_many (its lock held) is refused, and
    changes nothing."""
    m = small()
    feed(m, steps=2)
    before = blob(m)
    assert m._lock.acquire(blocking=False)  # as another thread inside learn_many would
    try:
        for call in (lambda: m.learn_one("k0", 1.0), lambda: m.learn_many(["k0"], [1.0]),
                     lambda: m.forget("k0"), lambda: m._import_state(m._export_state())):
            with pytest.raises(RuntimeError, match="one call at a time"):
                call()
    finally:
        m._lock.release()
    assert blob(m) == before
    m.learn_one("k0", 1.0)
