"""``SharedNetwork.threads``: the replay and backward of a step shared by several threads
give the same bits as one thread (every result, the weights, the gradient, the optimizer's
moments and every slot), for every cell, layer count, loss, output width, delayed targets,
float32 slots, batches of one to several chunks, full and partial windows, resets and
failing steps; and the reference still holds with threads (``tests/reference_shared.py``)."""
from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

try:
    from . import reference as R
    from . import reference_shared as RS
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    import reference as R
    import reference_shared as RS

from streamrnn._core import (ADAM, BINARY_CE, ELMAN_RELU, ELMAN_TANH, GRU, HUBER, LSTM,
                             SOFTMAX_CE, SQUARED, Optimizer, initialize)
from streamrnn._core import _shared
from streamrnn._core._shared import SharedNetwork

from _support import random_targets

CELLS = {"rnn": ELMAN_TANH, "relu": ELMAN_RELU, "lstm": LSTM, "gru": GRU}


def run(threads, cell, layers=1, n_out=1, loss=SQUARED, multi=False, slot_dtype="float64",
        k2=6, keys=300, max_batch=200, steps=24, seed=0, bad_at=()):
    """A sequence of steps of random sizes (1 to max_batch rows, so 1 to 4 chunks of 64)
    over random keys with resets; pickled (statuses, outputs, losses, weights, gradient,
    optimizer state, slots)."""
    net = SharedNetwork(cell, 4, 8, layers, n_out, k2, loss, capacity=keys,
                        max_batch=max_batch, slot_dtype=slot_dtype)
    net.threads = threads
    assert net.threads == threads
    rng = np.random.default_rng(seed)
    initialize(net, rng)
    net.set_optimizer(Optimizer(ADAM, 0.01, clip_norm=1.0))
    seen = []
    for t in range(steps):
        B = int(rng.integers(1, max_batch + 1))
        slots = rng.permutation(keys)[:B].astype(np.int64)
        if t % 7 == 5:
            net.reset(slots[: B // 4])
        X = rng.standard_normal((B, 4))
        Y = random_targets(rng, loss, B, n_out)
        if multi and loss not in (SOFTMAX_CE, BINARY_CE):
            Y[rng.random(Y.shape) < 0.3] = np.nan
        if t in bad_at:  # a non-finite input in the last chunk: nothing may change
            X[-1, 0] = np.inf
        out = np.zeros((B, n_out))
        step = net.step_multi if multi else net.step
        status = step(slots, X, Y, out)
        seen.append((status, out.copy() if status == 1 else None, net.last_loss, net.t))
    opt = net.get_shared_state()
    state = net.get_slots(np.arange(keys, dtype=np.int64))
    return pickle.dumps((seen, net.params.copy(), net.grad.copy(), opt, state))


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("layers", [1, 2])
def test_threads_give_the_same_bits(name, layers):
    one = run(1, CELLS[name], layers)
    for threads in (2, 3, 5):
        assert run(threads, CELLS[name], layers) == one, threads


@pytest.mark.parametrize("loss,n_out,multi", [(HUBER, 1, False), (SQUARED, 3, False),
                                              (SQUARED, 3, True), (SOFTMAX_CE, 3, False),
                                              (BINARY_CE, 1, False)])
def test_threads_same_bits_for_losses_and_delayed_targets(loss, n_out, multi):
    one = run(1, GRU, 1, n_out, loss, multi)
    assert run(2, GRU, 1, n_out, loss, multi) == one
    assert run(4, GRU, 1, n_out, loss, multi) == one


def test_threads_same_bits_float32_slots_full_windows_and_failing_steps():
    # k2 = 3 with 24 steps over 300 keys: most windows fill; steps 4 and 11 fail (bad input
    # in the last chunk) and must change nothing, with threads as without
    kw = dict(slot_dtype="float32", k2=3, bad_at=(4, 11))
    one = run(1, LSTM, 2, **kw)
    seen = pickle.loads(one)[0]
    assert [s[0] for s in seen].count(-1) == 2
    assert run(2, LSTM, 2, **kw) == one
    assert run(3, LSTM, 2, **kw) == one


def test_diverging_chunk_of_an_extra_thread_changes_nothing():
    # huge weights make the last chunk's loss overflow (DIVERGED): with two threads the
    # chunk is the extra thread's; nothing changes, as with one thread
    def once(threads):
        net = SharedNetwork(GRU, 2, 4, 1, 1, 4, SQUARED, capacity=200, max_batch=200)
        net.threads = threads
        initialize(net, np.random.default_rng(3))
        net.set_optimizer(Optimizer(ADAM, 0.01))
        rng = np.random.default_rng(4)
        slots = np.arange(200, dtype=np.int64)
        out = np.zeros((200, 1))
        for _ in range(3):
            assert net.step(slots, rng.standard_normal((200, 2)), rng.standard_normal(200),
                            out) == 1
        before = pickle.dumps((net.params.copy(), net.get_shared_state(),
                               net.get_slots(slots)))
        Y = rng.standard_normal(200)
        Y[-1] = 1e300  # a finite target whose squared error overflows
        status = net.step(slots, rng.standard_normal((200, 2)), Y, out)
        after = pickle.dumps((net.params.copy(), net.get_shared_state(),
                              net.get_slots(slots)))
        return status, before == after
    assert once(1) == once(2) == (-2, True)


def test_threads_match_the_reference():
    # the readable NumPy twin, with the steps spread over 3 threads
    rng = np.random.default_rng(7)
    net = SharedNetwork(GRU, 3, 4, 2, 1, 5, SQUARED, capacity=200, max_batch=200)
    net.threads = 3
    initialize(net, np.random.default_rng(0))
    net.set_optimizer(Optimizer(ADAM, 0.01))
    ref = RS.RefShared(GRU, 3, 4, 2, 1, 5, SQUARED)
    ref.params = net.params.copy()
    ref.optimizer = R.RefOptimizer("adam", 0.01)
    for B in (200, 130, 65, 200, 7, 190):
        keys = rng.choice(200, size=B, replace=False).astype(np.int64)
        X = rng.standard_normal((B, 3))
        Y = rng.standard_normal(B)
        out = np.zeros((B, 1))
        assert net.step(keys, X, Y, out) == 1
        status, routs = ref.step([int(k) for k in keys], X, Y)
        assert status == 1
        np.testing.assert_allclose(out, routs, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(net.params, ref.params, rtol=1e-10, atol=1e-12)


def test_networks_in_parallel_threads_with_their_own_threads():
    # four networks, each stepping in its own Python thread with 2 threads of its own,
    # give what each gives alone
    def work(net, seed, box):
        rng = np.random.default_rng(seed)
        out = np.zeros((150, 1))
        slots = np.arange(150, dtype=np.int64)
        for _ in range(10):
            net.step(slots, rng.standard_normal((150, 3)), rng.standard_normal(150), out)
        box[seed] = pickle.dumps((net.params.copy(), net.get_slots(slots)))

    def build(threads):
        net = SharedNetwork(LSTM, 3, 6, 1, 1, 4, SQUARED, capacity=150, max_batch=150)
        net.threads = threads
        initialize(net, np.random.default_rng(1))
        net.set_optimizer(Optimizer(ADAM, 0.01))
        return net

    alone = {}
    for seed in range(4):
        work(build(1), seed, alone)
    together = {}
    ts = [threading.Thread(target=work, args=(build(2), seed, together)) for seed in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert together == alone


def test_threads_argument_checks_and_default():
    net = SharedNetwork(GRU, 2, 4, 1, 1, 4, SQUARED, capacity=10, max_batch=10)
    assert net.threads == 1
    for bad in (0, -1, 1.5, "2", None, True, _shared.MAX_THREADS + 1):
        with pytest.raises((ValueError, TypeError)):
            net.threads = bad
        assert net.threads == 1
    size = net.__sizeof__()
    net.threads = 2
    assert net.__sizeof__() > size  # the extra thread's scratch is counted
    net.threads = 1
    assert net.__sizeof__() == size
    old = _shared.set_threads(3)
    try:
        assert SharedNetwork(GRU, 2, 4, 1, 1, 4, SQUARED, capacity=10, max_batch=10).threads == 3
        with pytest.raises(ValueError):
            _shared.set_threads(0)
    finally:
        assert _shared.set_threads(old) == 3
    assert SharedNetwork(GRU, 2, 4, 1, 1, 4, SQUARED, capacity=10, max_batch=10).threads == old
