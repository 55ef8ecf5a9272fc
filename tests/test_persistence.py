"""Pickle, deepcopy, seeds and long streams: state is carried exactly and never diverges."""
import copy
import pickle

import numpy as np
import pytest
from river import datasets

import streamrnn
from streamrnn import _core

CELLS = [_core.ELMAN_TANH, _core.ELMAN_RELU, _core.LSTM, _core.GRU]
OPTIMIZERS = [_core.SGD, _core.MOMENTUM, _core.NESTEROV, _core.RMSPROP, _core.ADAM, _core.ADAGRAD]


def _net(cell, opt=_core.ADAM, layers=2, k1=3, k2=5, seed=0):
    net = _core.Network(cell, 3, 6, layers, 1, k1, k2, _core.SQUARED)
    _core.initialize(net, np.random.default_rng(seed))
    net.set_optimizer(_core.Optimizer(opt, 0.01, clip_norm=1.0))
    return net


def _stream(n, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(3), float(rng.standard_normal())) for _ in range(n)]


def _equal(a, b):
    sa, sb = a.get_state(), b.get_state()
    assert sa.keys() == sb.keys()
    for k in sa:
        if k == "optimizer":
            oa, ob = sa[k], sb[k]
            assert oa.keys() == ob.keys()
            for j in oa:
                assert np.array_equal(oa[j], ob[j]), j
        else:
            assert np.array_equal(sa[k], sb[k]), k
    assert np.array_equal(a.optimizer.m_arr, b.optimizer.m_arr)
    assert np.array_equal(a.optimizer.v_arr, b.optimizer.v_arr)
    assert a.optimizer.t == b.optimizer.t


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_kernel_pickle_and_deepcopy_continue_bit_identically(cell, opt):
    net = _net(cell, opt)
    data = _stream(150)
    for x, y in data[:50]:
        net.learn(x, y)
    twins = [pickle.loads(pickle.dumps(net)), copy.deepcopy(net)]
    for x, y in data[50:]:
        statuses = {net.learn(x, y)} | {t.learn(x, y) for t in twins}
        assert len(statuses) == 1
    for t in twins:
        _equal(net, t)
        assert t is not net and t.optimizer is not net.optimizer


def test_kernel_sizeof_counts_its_buffers():
    small, big = _net(_core.LSTM, layers=1), _net(_core.LSTM, layers=2)
    assert big.__sizeof__() > small.__sizeof__() > small.params.nbytes + small.grad.nbytes


@pytest.mark.parametrize("cell", CELLS)
def test_same_seed_same_run(cell):
    runs = []
    for _ in range(2):
        net = _net(cell, seed=7)
        for x, y in _stream(100):
            net.learn(x, y)
        runs.append(net)
    _equal(*runs)
    other = _net(cell, seed=8)
    assert not np.array_equal(other.params, runs[0].params)


@pytest.mark.parametrize("cell", CELLS)
def test_non_finite_observation_is_refused_and_changes_nothing(cell):
    net = _net(cell)
    for x, y in _stream(20):
        net.learn(x, y)
    before = copy.deepcopy(net)
    assert net.learn(np.array([0.0, np.nan, 1.0]), 1.0) == -1
    assert net.learn(np.array([0.0, np.inf, 1.0]), 1.0) == -1
    assert net.learn(np.zeros(3), float("nan")) == -1
    _equal(net, before)
    with pytest.raises(ValueError):
        net.learn(np.zeros(4), 1.0)


@pytest.mark.parametrize("cell", CELLS)
def test_a_million_noisy_sine_steps_stay_finite(cell):
    # default estimator settings: Adam(0.002), clip_norm=1.0, k1=1, k2=16
    net = _core.Network(cell, 1, 8, 1, 1, 1, 16, _core.SQUARED)
    _core.initialize(net, np.random.default_rng(0))
    net.set_optimizer(_core.Optimizer(_core.ADAM, 0.002, clip_norm=1.0))
    rng = np.random.default_rng(0)
    t = np.arange(1_000_001)
    y = np.sin(t / 7.0) + 0.3 * rng.standard_normal(t.shape[0])
    x = np.zeros(1)
    bad = 0
    for i in range(1_000_000):
        x[0] = y[i]
        bad += net.learn(x, y[i + 1]) < 0
    assert bad == 0
    assert np.all(np.isfinite(net.params)) and np.all(np.isfinite(net.h))
    assert net.last_loss < 1.0


def _learn(model, x, y):
    if isinstance(model, streamrnn.forecasting._RecurrentForecaster):
        model.learn_one(y, x)
    elif isinstance(model, streamrnn.classification._RecurrentClassifier):
        model.learn_one(x, y > 40.5)
    else:
        model.learn_one(x, y)


@pytest.mark.parametrize("name", streamrnn.__all__)
def test_estimator_pickle_and_state_tree_continue_bit_identically(name):
    cls = getattr(streamrnn, name)
    model = cls(hidden_size=8, num_layers=2, seed=3)
    data = list(datasets.TrumpApproval().take(300))
    for x, y in data[:100]:
        _learn(model, x, y)
    restored = model.clone()
    restored._import_state(model._export_state())
    twins = [pickle.loads(pickle.dumps(model)), copy.deepcopy(model), restored]
    for x, y in data[100:]:
        for m in [model] + twins:
            _learn(m, x, y)
    for t in twins:
        _equal(model.network, t.network)
        a, b = model._export_state(), t._export_state()
        assert pickle.dumps({k: v for k, v in a.items() if k not in ("_net", "_rng")}) == \
            pickle.dumps({k: v for k, v in b.items() if k not in ("_net", "_rng")})
        assert a["_rng"] == b["_rng"]
