"""Bit-exactness of the kernel: across refactors, across the run-time paths of the C helpers,
and for the cached forward pass of predict.

``GOLDEN`` holds SHA-256 digests of 2,000-step runs: every cell x {1, 2} layers x k1 in {1, 3}
with Adam, and more losses, optimizers and TBPTT shapes. Each run predicts before every other
``learn`` (with the same input, so the cached forward pass is exercised), and the digest
covers every prediction, status and head output, a roll-out, and the final parameters, state
and first moment. They were recorded with the portable build of commit eea35ad (no FMA,
gcc 12.2.0, glibc 2.36 on x86-64), which the refactors before it had kept bit-identical
to the build of d358ce6 with the same flags. (The -march=native builds of before fused
a*b + c into FMAs and gave other last bits; every build now passes -ffp-contract=off.)
The sixteen Adam runs were recorded again (stop 19, speed11) when a network's Adam moments
became float32 (``Optimizer.single``, ``sr_adam_m32``: the moments, the ratio
m / (sqrt(v) + eps) and its terms in single precision); the other twelve did not move. The
three copies gave the same new digests. Then all but the Elman relu runs moved again when the
cells' gates took their sigmoid and tanh from the array functions ``sr_sigmoid_n``/``sr_tanh_n``
(within a few ulps of libm's, tests/test_kernel_activations.py) instead of libm's scalar
calls; recorded from branch speed11, the three copies again giving the same digests.

Every copy of the C helpers (``STREAMRNN_ISA`` = default, avx2, avx512; see _kernels.h) must
give exactly these digests: ``test_every_instruction_set_gives_the_same_bits`` runs each one
this CPU supports in a child process. With another C library (libm's exp, tanh and log may
round differently) the digests are not comparable, and the runs must still be deterministic
and identical across the copies.
"""
import copy
import hashlib
import json
import os
import pickle
import platform
import subprocess
import sys

import numpy as np
import pytest

import streamrnn
from streamrnn import _core as C
from streamrnn._core import _cells

GOLDEN_PLATFORM = ("x86_64", ("glibc", "2.36"))
ON_GOLDEN_PLATFORM = (platform.machine(), platform.libc_ver()) == GOLDEN_PLATFORM
GOLDEN = [
    "df1dd096a32b52fd443e2e2f3841d4d28ed9f172d9d80c8be26727f892e5075e",
    "052d7d4f355582dc50737a66596ab2bcb9123d91568159c7173ca189e5e817d6",
    "8d1425d78d46fbff893bfea8186622e69a5c534a5ac3a25d6e7c878625a2bab1",
    "fa69f283399a8f0e526f0f90c5ad4b364c6196b17e3b4800fa52a1ca4d429918",
    "b390a6b5c59e367c61818fe3a48a10d2885e0f271318d791198f3ed752dea890",
    "7935147b6236cbf949cba12f2e9f61f16212fd86a9e10fc9d886bdbf11683466",
    "378a128a6a6e605e805b2a5252486bc843252584bb5c8908cc3e5b1a8761a6b5",
    "9d7b3d666cc8154491b2593f69669ec3e9d0d00965203c3f0ec9c086605b125f",
    "070e42d56e8f62073d7c3a2fe825253591f6a84d17aa6c7975186f907e3e721e",
    "d96c5825f95da31b0f3e9abcfdcc44de2d287364bc72f2963b0983a7117a1018",
    "921e106e2a14102cf0e802a55298e5f13545582e54401721247a8fd07efa1b17",
    "3893b3a55f2690e7fba3a31c8f3001c98ba8ac1440a9cfdde8b47fb8ac3b1a9c",
    "963520496c97b8746562d8b9b61b94f2d0cda37872c20752a237b76f9c293e58",
    "d5584cdbebc6cca099d9c14b5a07d35f7070dff136ef050fd1ac90f5f2b947c1",
    "5d64cf8b2e83baaf5da074ee1137b6e1c5038520fbf5853e509898b3526b1197",
    "eb64076cf39e67b29d9a93405b54de41e07be1056e6c7a56693d4b8caaebb3ec",
    "24fc040eebd4bde35888e5bd79181d63cbc6db8a5b0d42a98a3169dafe422699",
    "83d7763804abdd25f8996e98295a185735d04f4c802515da7dbc3a914bd5a7be",
    "ef4ffe69dc18b9e3e5c5b98f51976b41afeafb5177372ecaec6671216a6f038f",
    "07f98bc0963580e56ced0d36c2d877110899b2503f0fe7e899e465af751da405",
    "94d8e52d57694d88b95d348053a1f0dbdb2a91c0b72d5460fae94c756ae8f424",
    "3cbc83e4c41b1d3197e8749447e5d788ac017ca783677b09a6f767710cd3c46e",
    "ffaf51ef8dccef91f275a983b349dd918ebde56f0e069d703b3fe58cce6017f4",
    "e51a9e5a72c676f9891775b83018f35d34e35c5aa93302501e14da906665c6ca",
    "899e28cc083a049f30d254fcaa54dbb121b6cbe597f42bc280ad6a37dc5500d7",
    "9d3db30b4dc350993168187a29b03aa212ba7e2aa1c77ac41919053318c7d553",
    "cc05593fb576f5e1e1bfe5e65b4fdfed1d081282d285e30ef372a1a826fb3198",
    "78c8a632fd69491d7bf164109c8799dc2ec5203ef4b5a8637752df6fc8fee677",
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
    if ON_GOLDEN_PLATFORM:
        assert digest == GOLDEN[index]
    else:  # another C library: still deterministic
        assert digest == _run(CONFIGS[index])


def _child(isa, code):
    """Run ``code`` in a fresh interpreter that imports this streamrnn with STREAMRNN_ISA=isa."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(streamrnn.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.path.dirname(__file__)]))
    if isa is None:
        env.pop("STREAMRNN_ISA", None)
    else:
        env["STREAMRNN_ISA"] = isa
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=600)


_DIGESTS = """
import json, test_kernel_exact as T
from streamrnn._core import _cells
print(json.dumps([_cells.ISA, [T._run(c) for c in T.CONFIGS]]))
"""


def test_the_paths_this_cpu_runs_are_known():
    assert _cells.ISA in _cells.ISAS
    assert _cells.ISAS[0] == "default"
    assert set(_cells.ISAS) <= {"default", "avx2", "avx512"}
    if platform.machine().lower() not in ("x86_64", "amd64"):
        assert _cells.ISAS == ("default",)


@pytest.mark.parametrize("isa", ["default", "avx2", "avx512"])
def test_every_instruction_set_gives_the_same_bits(isa):
    if isa not in _cells.ISAS:
        pytest.skip(f"this CPU does not run the {isa} path")
    run = _child(isa, _DIGESTS)
    assert run.returncode == 0, run.stderr
    used, digests = json.loads(run.stdout)
    assert used == isa
    assert digests == [_run(c) for c in CONFIGS]
    if ON_GOLDEN_PLATFORM:
        assert digests == GOLDEN


def test_auto_picks_the_best_path_this_cpu_runs():
    run = _child(None, "from streamrnn._core import _cells; print(_cells.ISA)")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == _cells.ISAS[-1]
    run = _child("auto", "from streamrnn._core import _cells; print(_cells.ISA)")
    assert run.stdout.strip() == _cells.ISAS[-1]


def test_an_unknown_or_unsupported_path_is_refused_at_import():
    run = _child("sse9", "import streamrnn._core")
    assert run.returncode != 0
    assert "STREAMRNN_ISA='sse9' is not one of auto, default, avx2, avx512" in run.stderr
    missing = [isa for isa in ("avx2", "avx512") if isa not in _cells.ISAS]
    if not missing:
        return  # this CPU runs every path
    run = _child(missing[-1], "import streamrnn._core")
    assert run.returncode != 0
    assert f"cannot run the {missing[-1]} kernels" in run.stderr


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
