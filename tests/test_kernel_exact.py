"""Bit-exactness of the kernel across refactors, and the cached forward pass of predict.

``GOLDEN`` holds SHA-256 digests of 2,000-step runs recorded with the build of commit d358ce6
(before the cell layer): every cell x {1, 2} layers x k1 in {1, 3} with Adam, and more
losses, optimizers and TBPTT shapes. Each run predicts before every other ``learn`` (with the
same input, so the cached forward pass is exercised), and the digest covers every prediction,
status and head output, a roll-out, and the final parameters, state and first moment.
Floating-point results depend on the compiler and the vector ISA the kernels were built for
(``_cells.BUILD``), so the digests are compared where they were recorded; elsewhere the
same runs must still be deterministic and equal to runs that never predict.
"""
import copy
import hashlib
import pickle

import numpy as np
import pytest

from streamrnn import _core as C
from streamrnn._core import _cells

GOLDEN_BUILD = "avx512f 12.2.0"
GOLDEN = [
    "93992f86e944bc1d37a0c39e074c3f7f661e804ebe7c1fa0308bfed8351fa0c3",
    "2f89c2bd259602ba88fc01088585703c5dccc0eb8d515f792c7c6276de17e09d",
    "dd91d2af0ebacc25cfba53b62411c5475957303d9c17d0c1911b88ca8abbece2",
    "96e4d0d187f78dedafeef12a87bd6c4598259c8836d65c70077bc6b3d2b013b2",
    "d54c327dec275dbef197bea7698b15201c7e5b60b1ee5c7f62083a7c97c76c11",
    "5e62f74dc9bad4401e78caf80a69ae3bd408b26d224dbcb2a5c6e252718e74b6",
    "df1023c5c7e409037c838f0880ca08828dcf31247333b05d1a9c8b930715f382",
    "fe09e7bc95f16f3e2d37f58dee491d7602b33cd1e11e72e4af1464ab8aebcebe",
    "e202ca4eede465fed2f1f87fc8c3e636d1f6c4e147779032957d24a447e89967",
    "502d25067f3fa197f7766c5db9b34423c79cfd08d056e6ecbe8aa43143c36b0a",
    "9ac721feaeb278457e138e8acf29fa36d91290cc6eb6697357693f19ece46811",
    "cca1d74e1d91e20c307414280c51ae666916cb16b40647c7048b9b7666d0473e",
    "b442776db9f59a5c4db79e42345986d303c812a184460fbd83f7106da657543b",
    "9ed2efd2ac268dc9a63a38b1beddbbb73fa89a10191f4c70d3cf8f76339f20e8",
    "93e23c47d6d22d1aab997fd30bbf71d8639811d62d4e69b04d1341fb9a0d0922",
    "31f5da03583e960a938e2cbd26fa703af92f5ad5f454f65b0a8dec23baace43d",
    "a4fc62a83629937fd4e1409a0b60d7427e59a38d6a86a55c45c90a82dece5d75",
    "070fe9108be2f98db62f7974b119ceaa822497d34854e1672091bed36674634f",
    "6ccd9d2c22249b32b3f360cda7b1a791ce3c7405257d4fa9a2fb82fb60cc7f7f",
    "032de240490e6a1510335ce4887cb475524be12972aaf5cee550d0a76e4fe6e4",
    "3c869127d7653e6f03f765deb15f9cc3268da7c42a943f5c67b3e21aa3bb3c43",
    "df02312eecae1bdbf559d597dad4f8e8ea00412d87fe5f6e28af97d7f0d97434",
    "2b9cabff5ba6c912981f01594325718a3c492de1821ce1e842cdbc6d7a3b2f84",
    "069ce9b8c1bd1aac939ccd501aea70ab995dee19daca4ba6558711418d8a3f5e",
    "0cd2a3109f071f1da3375527557294117e0666f2a7e16e2a21ed2fcc1966e402",
    "a76be56f02295048e92a8a9c4ab165084750196a4c8868dc950d8a02c55e997f",
    "6dd2e6c54c383802af4b91c45eff13f4f742d38683efd89d0062fa1f0cc6f208",
    "7b1c30042570d83aa69955b674f928a982d277c8cf57788f0205e263ced56ddc",
]


def _configs():
    for cell in (C.ELMAN_TANH, C.ELMAN_RELU, C.LSTM, C.GRU):
        for L in (1, 2):
            for k1 in (1, 3):
                yield dict(cell=cell, L=L, k1=k1, k2=16, loss=C.SQUARED, opt=C.ADAM, clip=1.0, H=10)
    for cell in (C.LSTM, C.GRU, C.ELMAN_TANH):
        yield dict(cell=cell, L=2, k1=5, k2=3, loss=C.HUBER, opt=C.RMSPROP, clip=0.0, H=7)
        yield dict(cell=cell, L=1, k1=2, k2=4, loss=C.SOFTMAX_CE, opt=C.NESTEROV, clip=0.5, H=17)
        yield dict(cell=cell, L=1, k1=1, k2=8, loss=C.BINARY_CE, opt=C.ADAGRAD, clip=0.0, H=9)
        yield dict(cell=cell, L=3, k1=4, k2=4, loss=C.ABSOLUTE, opt=C.MOMENTUM, clip=0.0, H=12)

def _run(cfg, n=2000):
    n_out = 3 if cfg["loss"] == C.SOFTMAX_CE else 1
    net = C.Network(cfg["cell"], 5, cfg["H"], cfg["L"], n_out, cfg["k1"], cfg["k2"], cfg["loss"])
    C.initialize(net, np.random.default_rng(11))
    net.set_optimizer(C.Optimizer(cfg["opt"], 0.01, clip_norm=cfg["clip"]))
    rng = np.random.default_rng(5)
    xs = rng.normal(size=(n, 5))
    if cfg["loss"] == C.SOFTMAX_CE:
        ys = rng.integers(0, 3, n).astype(float)
    elif cfg["loss"] == C.BINARY_CE:
        ys = rng.integers(0, 2, n).astype(float)
    else:
        ys = np.sin(np.arange(n) / 5.0) + 0.1 * rng.normal(size=n)
    hs = hashlib.sha256()
    out = np.zeros(n_out)
    for i in range(n):
        if i % 2 == 0:
            net.predict(xs[i], out); hs.update(out.tobytes())
        st = net.learn(xs[i], ys[i])
        hs.update(np.int64(st).tobytes()); hs.update(net.last_output.tobytes())
    net.rollout_begin()
    for i in range(5):
        net.rollout_step(xs[i], out); hs.update(out.tobytes())
    for a in (net.params, net.h, net.c, net.optimizer.m_arr):
        hs.update(np.ascontiguousarray(a).tobytes())
    return hs.hexdigest()


def _run_without_predict(cfg, n=2000):
    """The learned state of ``_run`` when no ``predict`` is ever made."""
    n_out = 3 if cfg["loss"] == C.SOFTMAX_CE else 1
    net = C.Network(cfg["cell"], 5, cfg["H"], cfg["L"], n_out, cfg["k1"], cfg["k2"], cfg["loss"])
    C.initialize(net, np.random.default_rng(11))
    net.set_optimizer(C.Optimizer(cfg["opt"], 0.01, clip_norm=cfg["clip"]))
    rng = np.random.default_rng(5)
    xs = rng.normal(size=(n, 5))
    if cfg["loss"] == C.SOFTMAX_CE:
        ys = rng.integers(0, 3, n).astype(float)
    elif cfg["loss"] == C.BINARY_CE:
        ys = rng.integers(0, 2, n).astype(float)
    else:
        ys = np.sin(np.arange(n) / 5.0) + 0.1 * rng.normal(size=n)
    for i in range(n):
        net.learn(xs[i], ys[i])
    return net


CONFIGS = list(_configs())


@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_long_runs_are_bit_identical_to_the_recorded_build(index):
    digest = _run(CONFIGS[index])
    if _cells.BUILD == GOLDEN_BUILD:
        assert digest == GOLDEN[index]
    else:  # another compiler or ISA: still deterministic
        assert digest == _run(CONFIGS[index])


@pytest.mark.parametrize("index", range(0, len(CONFIGS), 3))
def test_predict_before_learn_changes_no_bit(index):
    cfg = dict(CONFIGS[index])
    n = 300
    plain = _run_without_predict(cfg, n)
    n_out = plain.n_out
    net = C.Network(cfg["cell"], 5, cfg["H"], cfg["L"], n_out, cfg["k1"], cfg["k2"], cfg["loss"])
    C.initialize(net, np.random.default_rng(11))
    net.set_optimizer(C.Optimizer(cfg["opt"], 0.01, clip_norm=cfg["clip"]))
    twin = _run_without_predict(cfg, 0)
    # the same stream, each step predicted first (the forecaster's loop)
    rng = np.random.default_rng(5)
    xs = rng.normal(size=(n, 5))
    if cfg["loss"] == C.SOFTMAX_CE:
        ys = rng.integers(0, 3, n).astype(float)
    elif cfg["loss"] == C.BINARY_CE:
        ys = rng.integers(0, 2, n).astype(float)
    else:
        ys = np.sin(np.arange(n) / 5.0) + 0.1 * rng.normal(size=n)
    out = np.zeros(n_out)
    for i in range(n):
        net.predict(xs[i], out)
        twin.learn(xs[i], ys[i])
        net.learn(xs[i], ys[i])
        assert np.array_equal(net.last_output, twin.last_output)
        assert np.array_equal(out, net.last_output)
    assert pickle.dumps(net.get_state()) == pickle.dumps(plain.get_state())
    assert pickle.dumps(twin.get_state()) == pickle.dumps(plain.get_state())


# ---------------------------------------------------------------- the cached forward pass

def _pair(cell=C.LSTM, layers=2, k1=1):
    net = C.Network(cell, 3, 6, layers, 1, k1, 4)
    C.initialize(net, np.random.default_rng(0))
    net.set_optimizer(C.Optimizer(C.ADAM, 0.01))
    rng = np.random.default_rng(1)
    for _ in range(10):
        net.learn(rng.standard_normal(3), float(rng.standard_normal()))
    return net, copy.deepcopy(net)


def _same(a, b):
    assert pickle.dumps(a.get_state()) == pickle.dumps(b.get_state())


@pytest.mark.parametrize("cell", [C.ELMAN_TANH, C.ELMAN_RELU, C.LSTM, C.GRU])
def test_a_stale_prediction_is_never_reused(cell):
    net, ref = _pair(cell)
    x, x2, out = np.array([0.3, -1.0, 2.0]), np.array([0.3, -1.0, 2.5]), np.zeros(1)
    # another input
    net.predict(x, out)
    net.learn(x2, 0.1); ref.learn(x2, 0.1)
    _same(net, ref)
    # the same buffer, changed in place after the predict
    u = x.copy()
    net.predict(u, out)
    u[2] = -0.5
    net.learn(u, 0.2); ref.learn(u, 0.2)
    _same(net, ref)
    # -0.0 and 0.0 differ in bits: no reuse, same numbers
    z = np.array([0.0, 1.0, 2.0])
    net.predict(z, out)
    net.learn(np.array([-0.0, 1.0, 2.0]), 0.3); ref.learn(np.array([-0.0, 1.0, 2.0]), 0.3)
    _same(net, ref)
    # parameters written through a view after the predict
    net.predict(x, out)
    net.view("b_y")[:] += 0.25; ref.view("b_y")[:] += 0.25
    net.learn(x, 0.4); ref.learn(x, 0.4)
    _same(net, ref)
    # the state written through h after the predict
    net.predict(x, out)
    net.h[0, 0] = 0.5; ref.h[0, 0] = 0.5
    net.learn(x, 0.5); ref.learn(x, 0.5)
    _same(net, ref)
    # a learn in between: the prediction was from the older state
    net.predict(x, out)
    net.learn(x, 0.6); ref.learn(x, 0.6)
    net.learn(x, 0.7); ref.learn(x, 0.7)
    _same(net, ref)
    # set_state in between
    other, _ = _pair(cell)
    other.learn(x2, 1.0)
    net.predict(x, out)
    net.set_state(other.get_state()); ref.set_state(other.get_state())
    net.learn(x, 0.8); ref.learn(x, 0.8)
    _same(net, ref)
    # a refused observation keeps the prediction valid (nothing changed)
    net.predict(x, out)
    assert net.learn(np.array([np.nan, 0.0, 0.0]), 0.1) == -1
    assert ref.learn(np.array([np.nan, 0.0, 0.0]), 0.1) == -1
    net.learn(x, 0.9); ref.learn(x, 0.9)
    _same(net, ref)


def test_adopt_invalidates_the_prediction():
    small = C.Network(C.GRU, 2, 4, 1, 1, 1, 4)
    C.initialize(small, np.random.default_rng(0))
    small.set_optimizer(C.Optimizer(C.ADAM, 0.01))
    for i in range(6):
        small.learn(np.array([0.1 * i, 1.0]), 0.5)
    big = C.Network(C.GRU, 3, 4, 1, 1, 1, 4)
    C.initialize(big, np.random.default_rng(1))
    big_ref = copy.deepcopy(big)
    x, out = np.array([0.5, 1.0, 0.0]), np.zeros(1)
    big.predict(x, out)
    big.adopt(copy.deepcopy(small)); big_ref.adopt(copy.deepcopy(small))
    big.learn(x, 0.3); big_ref.learn(x, 0.3)
    _same(big, big_ref)


@pytest.mark.parametrize("cell", [C.ELMAN_TANH, C.LSTM, C.GRU])
def test_predict_does_not_touch_the_rollout(cell):
    # fails on builds where predict wrote the roll-out state
    net, _ = _pair(cell)
    xs = [np.array([0.1, 0.2, 0.3]), np.array([1.0, -1.0, 0.5]), np.array([-0.3, 0.0, 2.0])]
    a, b, out = np.zeros(1), np.zeros(1), np.zeros(1)
    net.rollout_begin()
    net.rollout_step(xs[0], out)
    net.rollout_step(xs[1], a)
    net.rollout_begin()
    net.rollout_step(xs[0], out)
    net.predict(xs[2], out)
    net.rollout_step(xs[1], b)
    assert a[0] == b[0]


def test_the_cache_is_used_only_when_no_view_can_write_unseen():
    net, ref = _pair(C.GRU)
    x, out = np.array([0.2, 0.4, -0.1]), np.zeros(1)
    net.predict(x, out)
    assert net._forward_cached
    net.rollout_begin()
    net.rollout_step(x, out)
    assert net._forward_cached  # roll-outs have their own records
    net.learn(x, 0.1); ref.learn(x, 0.1)
    assert not net._forward_cached
    for name in ("params", "h", "c"):
        held = getattr(net, name)
        net.predict(x, out)
        assert not net._forward_cached, name
        del held
        net.predict(x, out)
        assert net._forward_cached, name
    # a view taken before the predict and written after it: no reuse, the right numbers
    held = net.view("W_h0")
    net.predict(x, out)
    held[0, 0] += 0.125
    ref.view("W_h0")[0, 0] += 0.125
    net.learn(x, 0.2); ref.learn(x, 0.2)
    _same(net, ref)
    del held
    twin = pickle.loads(pickle.dumps(net))
    twin.predict(x, out)
    assert twin._forward_cached
