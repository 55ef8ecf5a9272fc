"""The batched shared-weight kernel (``_core._shared.SharedNetwork``) against its readable
NumPy twin (``tests/reference_shared.py``), against finite differences of the batch loss,
and against the single-series ``Network`` where the two define the same step.

When a batch of one key equals ``Network.learn`` (k1 = 1, same loss, same optimizer):
both take the forecast from the committed state with the current weights, and both
back-propagate the newest step's loss through the last min(k2, t) steps. ``Network`` walks
the records it stored at the time (computed with the weights of that time), the shared
kernel replays the window from its start state with the current weights. The two are the
same computation exactly when every record of the window was made with the current
weights: k2 = 1 (the window is the current step), or weights that do not move (lr = 0), or
the first step after a reset. Then they agree to rounding (1e-12, tests below): the shared
kernel computes the sigmoid and tanh with its own vector functions (within a few ulps of
libm's) and sums the backward's W_h product in another order; otherwise they differ from
the second update on, by the drift of the weights within the window.
"""
from __future__ import annotations

import numpy as np
import pytest

try:
    from . import reference as R
    from . import reference_shared as RS
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    import reference as R
    import reference_shared as RS

from streamrnn._core import (ADAM, ELMAN_TANH, ELMAN_RELU, GRU, LSTM, SGD, HUBER, SQUARED,
                             ABSOLUTE, SOFTMAX_CE, BINARY_CE, Network, Optimizer, initialize)
from streamrnn._core._shared import SharedNetwork

from _support import random_targets

CELLS = {"rnn": ELMAN_TANH, "lstm": LSTM, "gru": GRU}


def make_pair(cell, n_in=3, hidden=4, layers=1, n_out=1, k2=5, loss=SQUARED, capacity=80,
              max_batch=64, opt=("adam", 0.01), clip_norm=0.0, seed=0):
    net = SharedNetwork(cell, n_in, hidden, layers, n_out, k2, loss, capacity=capacity,
                        max_batch=max_batch)
    initialize(net, np.random.default_rng(seed))
    kind = {"adam": ADAM, "sgd": SGD}[opt[0]]
    net.set_optimizer(Optimizer(kind, opt[1], clip_norm=clip_norm))
    ref = RS.RefShared(cell, n_in, hidden, layers, n_out, k2, loss)
    ref.params = net.params.copy()
    ref.optimizer = R.RefOptimizer(opt[0], opt[1], clip_norm=clip_norm)
    return net, ref


def ref_slots(ref, keys, net):
    """The reference's slots in the kernel's get_slots layout."""
    L, H, k2, n_in = net.num_layers, net.hidden_size, net.k2, net.n_in
    Hc = H if net.cell == LSTM else 0
    out = {"h": [], "c": [], "h0": [], "c0": [], "x": [], "n": []}
    for k in keys:
        st = ref.slot(int(k))
        out["h"].append(st["h"])
        out["c"].append(st["c"][:, :Hc])
        out["h0"].append(st["h0"])
        out["c0"].append(st["c0"][:, :Hc])
        x = np.zeros((k2 - 1, n_in))
        for j, v in enumerate(st["past"]):
            x[j] = v
        out["x"].append(x)
        out["n"].append(len(st["past"]))
    return {k: np.array(v) for k, v in out.items()}


def assert_close(a, b, what, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("layers", [1, 2])
def test_batched_step_equals_reference(name, layers):
    check_against_reference(CELLS[name], layers, [1, 64, 7, 33, 1, 64, 2, 17, 50, 3, 64, 9])


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_batches_of_several_chunks_equal_reference(name):
    # the replay runs 64 rows at a time: batches of 65..150 rows take 2-3 chunks
    check_against_reference(CELLS[name], 2, [150, 65, 1, 129, 100, 150, 70], capacity=160,
                            max_batch=150)


def check_against_reference(cell, layers, sizes, capacity=80, max_batch=64):
    rng = np.random.default_rng(layers * 10 + cell + len(sizes))
    net, ref = make_pair(cell, layers=layers, capacity=capacity, clip_norm=1.0,
                         max_batch=max_batch)
    for it, B in enumerate(sizes):
        # repeated keys across batches, new keys appearing, a few resets
        keys = rng.choice(capacity if B > 20 else 25, size=B, replace=False).astype(np.int64)
        if it in (5, 9):
            gone = keys[: B // 3]
            net.reset(gone)
            for k in gone:
                ref.reset(int(k))
        X = rng.standard_normal((B, net.n_in))
        Y = rng.standard_normal(B)
        out = np.zeros((B, 1))
        pred = np.zeros((B, 1))
        net.predict(keys, X, pred)
        status = net.step(keys, X, Y, out)
        rstatus, routs = ref.step([int(k) for k in keys], X, Y)
        assert status == rstatus == 1
        np.testing.assert_array_equal(pred, out)  # the forecast is predict's
        assert_close(out, routs, f"out, batch {it}")
        assert_close(net.params, ref.params, f"params, batch {it}")
        assert_close(net.last_loss, ref.last_loss, f"loss, batch {it}")
        every = np.arange(capacity, dtype=np.int64)
        got, want = net.get_slots(every), ref_slots(ref, every, net)
        for field in ("h", "c", "h0", "c0", "x"):
            assert_close(got[field], want[field], f"slot {field}, batch {it}")
        np.testing.assert_array_equal(got["n"], want["n"])
    # windows of every length were exercised, full ones included
    n = net.get_slots(np.arange(capacity, dtype=np.int64))["n"]
    assert n.max() == net.k2 - 1 and len(set(n.tolist())) >= 3
    assert net.t == ref.t == len(sizes) and net.optimizer.t == len(sizes)


@pytest.mark.parametrize("loss,n_out", [(HUBER, 1), (ABSOLUTE, 2), (SQUARED, 3),
                                        (SOFTMAX_CE, 3), (BINARY_CE, 1)])
def test_losses_and_outputs_equal_reference(loss, n_out):
    rng = np.random.default_rng(loss)
    net, ref = make_pair(GRU, n_out=n_out, loss=loss, k2=3)
    for it in range(6):
        B = int(rng.integers(1, 20))
        keys = rng.choice(30, size=B, replace=False).astype(np.int64)
        X = rng.standard_normal((B, 3))
        Y = random_targets(rng, loss, B, n_out)
        out = np.zeros((B, n_out))
        assert net.step(keys, X, Y, out) == 1
        assert ref.step([int(k) for k in keys], X, Y)[0] == 1
        assert_close(net.params, ref.params, f"params {it}")
        assert_close(net.last_loss, ref.last_loss, f"loss {it}")


# ---------------------------------------------------------------- finite differences

def fd_check(cell, layers, loss=SQUARED, n_out=1, k2=4, B=6, eps=1e-6):
    rng = np.random.default_rng(cell * 7 + layers)
    net = SharedNetwork(cell, 2, 3, layers, n_out, k2, loss, capacity=12, max_batch=8)
    initialize(net, rng)
    net.set_optimizer(Optimizer(ADAM, 0.05))
    # warm-up with moving weights: windows of mixed lengths, start states that are not zero
    for _ in range(5):
        keys = rng.choice(12, size=int(rng.integers(1, 8)), replace=False).astype(np.int64)
        out = np.zeros((keys.size, n_out))
        assert net.step(keys, rng.standard_normal((keys.size, 2)),
                        rng.standard_normal((keys.size, n_out)), out) == 1
    net.set_optimizer(Optimizer(SGD, 0.0))  # the step then reports its gradient, moves nothing
    keys = rng.choice(12, size=B, replace=False).astype(np.int64)
    X = rng.standard_normal((B, 2))
    Y = rng.standard_normal((B, n_out))
    st = net.get_slots(keys)
    windows = [[st["x"][b, j] for j in range(st["n"][b])] + [X[b]] for b in range(B)]
    Hc = net.Hc
    starts = []
    for b in range(B):
        c0 = np.zeros((layers, 3))
        c0[:, :Hc] = st["c0"][b]
        starts.append((st["h0"][b], c0))
    assert len({len(w) for w in windows}) > 1  # partly filled windows
    theta = net.params.copy()
    out = np.zeros((B, n_out))
    assert net.step(keys, X, Y, out) == 1
    grad = net.grad.copy()
    np.testing.assert_array_equal(net.params, theta)

    def J(p):
        return RS.batch_loss(p, cell, 2, 3, layers, n_out, loss, windows, starts, Y)

    assert abs(J(theta) - net.last_loss) <= 1e-12 * max(1.0, abs(net.last_loss))
    num = np.zeros_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = eps
        num[i] = (J(theta + e) - J(theta - e)) / (2 * eps)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", sorted(CELLS) + ["relu"])
@pytest.mark.parametrize("layers", [1, 2])
def test_gradient_matches_finite_differences(name, layers):
    fd_check(ELMAN_RELU if name == "relu" else CELLS[name], layers)


def test_gradient_matches_finite_differences_multi_output_huber():
    fd_check(LSTM, 1, loss=HUBER, n_out=2)


# ---------------------------------------------------------------- against Network

def network_pair(cell, k2, layers, opt, lr, seed=3):
    net = Network(cell, 3, 5, layers, 1, 1, k2, SQUARED)
    initialize(net, np.random.default_rng(seed))
    sh = SharedNetwork(cell, 3, 5, layers, 1, k2, SQUARED, capacity=5, max_batch=4)
    sh.params[:] = net.params
    net.set_optimizer(Optimizer(opt, lr, clip_norm=0.5))
    # a Network keeps Adam's moments in float32 (Optimizer.single); the shared network keeps
    # the precision of the optimizer it is given
    sh.set_optimizer(Optimizer(opt, lr, clip_norm=0.5, single=True))
    return net, sh


@pytest.mark.parametrize("cell", [ELMAN_TANH, ELMAN_RELU, LSTM, GRU])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("k2,lr", [(1, 0.02), (8, 0.0)])
def test_one_key_equals_network(cell, layers, k2, lr):
    # the same computation, to rounding: the shared kernel's sigmoid and tanh are its own
    # vector functions (within a few ulps of libm's, which Network calls) and it sums the
    # W_h product of the backward over the rows of a step in another order
    net, sh = network_pair(cell, k2, layers, ADAM, lr)
    rng = np.random.default_rng(cell)
    out = np.zeros((1, 1))
    slot = np.array([3], dtype=np.int64)

    def same(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    for t in range(40):
        x = rng.standard_normal(3)
        y = float(rng.standard_normal())
        assert net.learn(x, y) == 1
        assert sh.step(slot, x[None, :].copy(), np.array([y]), out) == 1
        same(out[0], net.last_output)
        same(sh.last_loss, net.last_loss)
        same(sh.grad, net.grad)
        same(sh.params, net.params)
        st = sh.get_slots(slot)
        same(st["h"][0], net.h)
        if cell == LSTM:
            same(st["c"][0], net.c)


def test_one_key_differs_from_network_once_weights_drift_in_the_window():
    net, sh = network_pair(LSTM, 8, 1, SGD, 0.1)
    rng = np.random.default_rng(0)
    out = np.zeros((1, 1))
    slot = np.array([0], dtype=np.int64)
    diffs = []
    for t in range(4):
        x = rng.standard_normal(3)
        y = float(rng.standard_normal())
        net.learn(x, y)
        sh.step(slot, x[None, :].copy(), np.array([y]), out)
        diffs.append(np.abs(sh.params - net.params).max())
    assert diffs[0] < 1e-15         # a window of one step: the same computation (to rounding)
    assert diffs[1] > 1e-6          # step 1 replayed with the new weights vs its old record
    assert diffs[3] < 1e-2          # the drift is small


# ---------------------------------------------------------------- failures change nothing

def snapshot(net):
    st = net.get_state()
    return st, net.params.copy()


def assert_same(net, snap):
    st, params = snap
    now = net.get_state()
    np.testing.assert_array_equal(net.params, params)
    for k, v in st["slots"].items():
        np.testing.assert_array_equal(now["slots"][k], v)
    assert now["shared"]["t"] == st["shared"]["t"]
    np.testing.assert_array_equal(now["shared"]["optimizer"]["m"], st["shared"]["optimizer"]["m"])


def warmed(cell=LSTM, f32=False):
    net = SharedNetwork(cell, 2, 3, 1, 1, 4, SQUARED, capacity=10, max_batch=5,
                        slot_dtype="float32" if f32 else "float64")
    initialize(net, np.random.default_rng(0))
    net.set_optimizer(Optimizer(ADAM, 0.01))
    rng = np.random.default_rng(1)
    for _ in range(6):
        keys = rng.choice(10, size=5, replace=False).astype(np.int64)
        assert net.step(keys, rng.standard_normal((5, 2)), rng.standard_normal(5),
                        np.zeros((5, 1))) == 1
    return net


@pytest.mark.parametrize("where", ["x", "y", "inf"])
def test_non_finite_input_is_refused_and_changes_nothing(where):
    net = warmed()
    snap = snapshot(net)
    X = np.ones((3, 2))
    Y = np.ones(3)
    if where == "x":
        X[1, 0] = np.nan
    elif where == "y":
        Y[2] = np.nan
    else:
        X[0, 1] = np.inf
    out = np.full((3, 1), 7.0)
    assert net.step(np.array([1, 2, 3]), X, Y, out) == -1
    assert np.all(out == 7.0)
    assert_same(net, snap)


def test_diverging_step_is_rolled_back():
    net = warmed()
    net.view("W_y")[:] = 1e308
    net.view("b_y")[:] = 1e308
    snap = snapshot(net)
    out = np.zeros((2, 1))
    assert net.step(np.array([0, 4]), np.ones((2, 2)), np.ones(2), out) == -2
    assert_same(net, snap)


def test_huge_target_overflowing_the_loss_is_rolled_back():
    net = warmed()
    snap = snapshot(net)
    assert net.step(np.array([0, 4]), np.ones((2, 2)), np.array([1.0, 1e300]),
                    np.zeros((2, 1))) == -2
    assert_same(net, snap)


@pytest.mark.parametrize("bad", ["dup", "range", "neg", "dtype", "shape", "empty", "big",
                                 "ydtype", "outro", "class"])
def test_bad_arguments_raise_and_change_nothing(bad):
    net = warmed()
    snap = snapshot(net)
    slots, X, Y, out = np.array([1, 2]), np.ones((2, 2)), np.ones(2), np.zeros((2, 1))
    if bad == "dup":
        slots = np.array([2, 2])
    elif bad == "range":
        slots = np.array([1, 10])
    elif bad == "neg":
        slots = np.array([-1, 2])
    elif bad == "dtype":
        slots = np.array([1, 2], dtype=np.int32)
    elif bad == "shape":
        X = np.ones((2, 3))
    elif bad == "empty":
        slots, X, Y, out = np.zeros(0, np.int64), np.ones((0, 2)), np.ones(0), np.zeros((0, 1))
    elif bad == "big":
        slots = np.arange(6)
        X, Y, out = np.ones((6, 2)), np.ones(6), np.zeros((6, 1))
    elif bad == "ydtype":
        Y = np.ones(2, dtype=np.float32)
    elif bad == "outro":
        out.flags.writeable = False
    with pytest.raises((ValueError, TypeError)):
        if bad == "class":
            c = SharedNetwork(GRU, 2, 3, 1, 3, 2, SOFTMAX_CE, capacity=4, max_batch=2)
            c.set_optimizer(Optimizer(SGD, 0.1))
            c.step(slots, X, np.array([0.0, 3.0]), np.zeros((2, 3)))
        else:
            net.step(slots, X, Y, out)
    assert_same(net, snap)


def test_predict_changes_nothing_and_allows_repeats():
    net = warmed()
    snap = snapshot(net)
    X = np.random.default_rng(0).standard_normal((4, 2))
    out = np.zeros((4, 1))
    net.predict(np.array([3, 3, 1, 3]), X[[0, 0, 1, 0]].copy(), out)
    assert out[0, 0] == out[1, 0] == out[3, 0]
    assert_same(net, snap)
    single = np.zeros((1, 1))
    net.predict(np.array([1]), X[1:2].copy(), single)
    assert single[0, 0] == out[2, 0]  # the batch does not change a row's result


def test_rows_of_a_batch_do_not_interact_in_the_forward():
    # the forecast of a key is the same whatever else is in its batch
    net = warmed(GRU)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((5, 2))
    together = np.zeros((5, 1))
    net.predict(np.arange(5), X, together)
    for b in range(5):
        alone = np.zeros((1, 1))
        net.predict(np.array([b]), X[b:b + 1].copy(), alone)
        assert alone[0, 0] == together[b, 0]


def test_float32_slots_stay_close_to_float64():
    a, b = warmed(LSTM, False), warmed(LSTM, True)
    assert b.slot_bytes < a.slot_bytes
    assert b.get_slots(np.arange(10))["h"].dtype == np.float64  # the state API stays float64
    np.testing.assert_allclose(a.params, b.params, rtol=0, atol=1e-5)
    sa, sb = a.get_slots(np.arange(10)), b.get_slots(np.arange(10))
    np.testing.assert_allclose(sa["h"], sb["h"], atol=1e-5)
    np.testing.assert_array_equal(sb["h"], sb["h"].astype(np.float32).astype(np.float64))


# ---------------------------------------------------------------- delayed targets

def delayed_targets(rng, B, n_out, missing=0.3):
    Y = rng.standard_normal((B, n_out))
    Y[rng.random((B, n_out)) < missing] = np.nan
    return Y


@pytest.mark.parametrize("name,layers,max_batch", [("lstm", 1, 64), ("gru", 2, 100),
                                                   ("rnn", 1, 64)])
def test_delayed_targets_equal_reference(name, layers, max_batch):
    cell = CELLS[name]
    rng = np.random.default_rng(40 + cell)
    net, ref = make_pair(cell, layers=layers, n_out=3, k2=4, capacity=120, max_batch=max_batch)
    for it, B in enumerate([1, 30, 64, 5, max_batch, 17, 64, 2, max_batch]):
        keys = rng.choice(120 if B > 20 else 25, size=B, replace=False).astype(np.int64)
        if it == 5:
            net.reset(keys[:3])
            for k in keys[:3]:
                ref.reset(int(k))
        X = rng.standard_normal((B, 3))
        Y = delayed_targets(rng, B, 3)
        out = np.zeros((B, 3))
        assert net.step_multi(keys, X, Y, out) == 1
        status, routs = ref.step([int(k) for k in keys], X, Y, delayed=True)
        assert status == 1
        assert_close(out, routs, f"out {it}")
        assert_close(net.params, ref.params, f"params {it}")
        assert_close(net.last_loss, ref.last_loss, f"loss {it}")
        got, want = net.get_slots(keys), ref_slots(ref, keys, net)
        for field in ("h", "c", "h0", "c0", "x"):
            assert_close(got[field], want[field], f"slot {field} {it}")


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_delayed_target_gradient_matches_finite_differences(name):
    cell, layers, n_out, k2, B, eps = CELLS[name], 2, 3, 4, 6, 1e-6
    rng = np.random.default_rng(77)
    net = SharedNetwork(cell, 2, 3, layers, n_out, k2, SQUARED, capacity=12, max_batch=8)
    initialize(net, rng)
    net.set_optimizer(Optimizer(ADAM, 0.05))
    for _ in range(5):
        keys = rng.choice(12, size=int(rng.integers(1, 8)), replace=False).astype(np.int64)
        assert net.step_multi(keys, rng.standard_normal((keys.size, 2)),
                              delayed_targets(rng, keys.size, n_out),
                              np.zeros((keys.size, n_out))) == 1
    net.set_optimizer(Optimizer(SGD, 0.0))
    keys = rng.choice(12, size=B, replace=False).astype(np.int64)
    X = rng.standard_normal((B, 2))
    Y = delayed_targets(rng, B, n_out, missing=0.2)
    st = net.get_slots(keys)
    windows = [[st["x"][b, j] for j in range(st["n"][b])] + [X[b]] for b in range(B)]
    starts = []
    for b in range(B):
        c0 = np.zeros((layers, 3))
        c0[:, :net.Hc] = st["c0"][b]
        starts.append((st["h0"][b], c0))
    theta = net.params.copy()
    assert net.step_multi(keys, X, Y, np.zeros((B, n_out))) == 1
    grad = net.grad.copy()

    def J(p):
        return RS.batch_loss(p, cell, 2, 3, layers, n_out, SQUARED, windows, starts, Y,
                             delayed=True)

    assert abs(J(theta) - net.last_loss) <= 1e-12 * max(1.0, abs(net.last_loss))
    num = np.array([(J(theta + e) - J(theta - e)) / (2 * eps)
                    for e in np.eye(theta.size) * eps])
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)


def test_delayed_targets_with_one_output_equal_step_bit_for_bit():
    a, _ = make_pair(LSTM, layers=2, k2=5)
    b, _ = make_pair(LSTM, layers=2, k2=5)
    rng = np.random.default_rng(0)
    for it in range(8):
        B = int(rng.integers(1, 30))
        keys = rng.choice(40, size=B, replace=False).astype(np.int64)
        X, Y = rng.standard_normal((B, 3)), rng.standard_normal((B, 1))
        oa, ob = np.zeros((B, 1)), np.zeros((B, 1))
        assert a.step(keys, X, Y, oa) == 1
        assert b.step_multi(keys, X, Y, ob) == 1
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(a.params, b.params)
        assert a.last_loss == b.last_loss


def test_delayed_targets_refusals():
    net, _ = make_pair(GRU, n_out=3, k2=4)
    rng = np.random.default_rng(1)
    keys = np.arange(4, dtype=np.int64)
    assert net.step_multi(keys, rng.standard_normal((4, 3)), delayed_targets(rng, 4, 3),
                          np.zeros((4, 3))) == 1
    snap = snapshot(net)
    Y = delayed_targets(rng, 4, 3)
    Y[2, 1] = np.inf
    assert net.step_multi(keys, np.ones((4, 3)), Y, np.zeros((4, 3))) == -1
    assert_same(net, snap)
    short = SharedNetwork(GRU, 3, 4, 1, 3, 2, SQUARED, capacity=4, max_batch=4)
    short.set_optimizer(Optimizer(SGD, 0.1))
    with pytest.raises(ValueError, match="k2 >= n_out"):
        short.step_multi(keys, np.ones((4, 3)), np.ones((4, 3)), np.zeros((4, 3)))
    cls = SharedNetwork(GRU, 3, 4, 1, 3, 4, SOFTMAX_CE, capacity=4, max_batch=4)
    cls.set_optimizer(Optimizer(SGD, 0.1))
    with pytest.raises(ValueError, match="regression"):
        cls.step_multi(keys, np.ones((4, 3)), np.ones((4, 3)), np.zeros((4, 3)))


@pytest.mark.skipif(not hasattr(Network, "learn_multi"), reason="Network.learn_multi "
                    "arrives with the kernel branch")
@pytest.mark.parametrize("cell", [LSTM, GRU])
def test_one_key_delayed_targets_equal_network_learn_multi_when_weights_hold(cell):
    # lr = 0: every record of the window was made with the current weights, so the replay
    # and Network's stored records are the same numbers; targets older than the slot's
    # first step are ignored by both
    net = Network(cell, 3, 5, 1, 3, 1, 6, SQUARED)
    initialize(net, np.random.default_rng(2))
    sh = SharedNetwork(cell, 3, 5, 1, 3, 6, SQUARED, capacity=3, max_batch=2)
    sh.params[:] = net.params
    net.set_optimizer(Optimizer(SGD, 0.0))
    sh.set_optimizer(Optimizer(SGD, 0.0))
    rng = np.random.default_rng(3)
    out = np.zeros((1, 3))
    for t in range(20):
        x = rng.standard_normal(3)
        y = delayed_targets(rng, 1, 3)
        assert net.learn_multi(x, y[0].copy()) == 1
        assert sh.step_multi(np.array([1]), x[None, :].copy(), y, out) == 1
        np.testing.assert_allclose(out[0], net.last_output, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(sh.grad, net.grad, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(sh.last_loss, net.last_loss, rtol=1e-13)


def test_rollout_on_a_scratch_slot_follows_the_reference_and_leaves_the_key_alone():
    net, ref = make_pair(LSTM, layers=2, k2=4, capacity=10, max_batch=8)
    rng = np.random.default_rng(8)
    for _ in range(5):
        keys = rng.choice(9, size=6, replace=False).astype(np.int64)
        X, Y = rng.standard_normal((6, 3)), rng.standard_normal(6)
        net.step(keys, X, Y, np.zeros((6, 1)))
        ref.step([int(k) for k in keys], X, Y)
    key, spare = 4, 9
    before = net.get_slots(np.arange(10))
    params = net.params.copy()
    net.copy_slots(np.array([key]), np.array([spare]))
    h, c = ref.slot(key)["h"].copy(), ref.slot(key)["c"].copy()
    P = ref.blocks(ref.params)
    x = rng.standard_normal(3)
    for _ in range(6):  # feed the forecast back, as a roll-out beyond the horizon does
        out = np.zeros((1, 1))
        assert net.rollout_step(np.array([spare]), x[None, :].copy(), out) == 1
        want, h, c, _ = R.forward_step(LSTM, P, x, h, c)
        assert_close(out[0], want, "roll-out forecast")
        x = np.concatenate([x[1:], out[0]])
    st = net.get_slots(np.array([spare]))
    assert_close(st["h"][0], h, "roll-out state")
    # the window of the spare slot is the key's (untouched by the roll-out)
    np.testing.assert_array_equal(st["x"][0], before["x"][key])
    net.reset(spare)
    after = net.get_slots(np.arange(10))
    for k in before:
        np.testing.assert_array_equal(after[k][:spare], before[k][:spare])
    np.testing.assert_array_equal(net.params, params)
    assert net.rollout_step(np.array([spare]), np.full((1, 3), np.nan), np.zeros((1, 1))) == -1
