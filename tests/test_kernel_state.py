"""The one state API of the kernel: round trips, and every rejection of an untrusted state.

States reach ``Network.set_state`` / ``Optimizer.set_state`` from checkpoint files whose SHA-256
an attacker can recompute, so each field is validated before anything is assigned; a crafted
counter, shape or size must give ValueError, never a crash (checked in child processes too)
and never a half-loaded network.
"""
import copy
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import streamrnn
from streamrnn import _core
from streamrnn._core import _network

CELLS = [_core.ELMAN_TANH, _core.ELMAN_RELU, _core.LSTM, _core.GRU]
OPTIMIZERS = [_core.SGD, _core.MOMENTUM, _core.NESTEROV, _core.RMSPROP, _core.ADAM, _core.ADAGRAD]


def _net(cell=_core.GRU, opt=_core.ADAM, layers=2, k1=2, k2=4, n_steps=30):
    net = _core.Network(cell, 3, 5, layers, 1, k1, k2, _core.SQUARED)
    _core.initialize(net, np.random.default_rng(0))
    net.set_optimizer(_core.Optimizer(opt, 0.01, clip_norm=1.0))
    rng = np.random.default_rng(1)
    for _ in range(n_steps):
        net.learn(rng.standard_normal(3), float(rng.standard_normal()))
    return net


def _frozen(net):
    """Bytes of everything a state carries (plus the optimizer object's identity)."""
    return pickle.dumps(net.get_state()), id(net.optimizer)


def _same_state(a, b):
    assert pickle.dumps(a.get_state()) == pickle.dumps(b.get_state())


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_from_state_continues_bit_identically(cell, opt):
    net = _net(cell, opt)
    state = net.get_state()
    assert set(state) == {"params", "h", "c", "ring_x", "ring_r", "ring_g", "out", "t",
                          "last_loss", "optimizer"}
    assert state["optimizer"]["m"].shape == (net.size,)
    assert state["optimizer"]["v"].shape == ((net.size,) if opt == _core.ADAM else (0,))
    twin = _core.Network.from_state(net.config(), state)
    other = _net(cell, opt, n_steps=3)
    other.set_state(state)
    rng = np.random.default_rng(2)
    for _ in range(20):
        x, y = rng.standard_normal(3), float(rng.standard_normal())
        assert net.learn(x, y) == twin.learn(x, y) == other.learn(x, y)
    _same_state(net, twin)
    _same_state(net, other)


def test_state_is_a_copy_and_has_no_scratch():
    net = _net()
    state = net.get_state()
    state["params"][:] = 0.0
    state["optimizer"]["m"][:] = 1.0
    assert np.any(net.params != 0.0) and np.any(net.optimizer.m_arr != 1.0)
    assert "grad" not in state


def test_optimizer_state_round_trip_and_sizes():
    opt = _core.Optimizer(_core.SGD, 0.1)
    s = opt.get_state()
    assert s["m"].shape == (0,) and s["v"].shape == (0,) and s["t"] == 0
    opt.bind(7)
    assert opt.get_state()["m"].shape == (7,)
    adam = _core.Optimizer(_core.ADAM, 0.01, clip_value=0.5)
    adam.bind(4)
    s = adam.get_state()
    s["m"][:] = [1, 2, 3, 4]
    s["v"][:] = [0, 1, 2, 3]
    s["t"] = 9
    back = _core.Optimizer.from_state(s)
    assert back.get_state().keys() == s.keys()
    for k in s:
        assert np.array_equal(back.get_state()[k], s[k]), k
    for twin in (pickle.loads(pickle.dumps(back)), copy.deepcopy(back)):
        for k in s:
            assert np.array_equal(twin.get_state()[k], s[k]), k
    with pytest.raises(ValueError, match="shape"):
        _core.Optimizer(_core.ADAM, 0.01).set_state(s, size=5)


def test_set_state_keeps_an_optimizer_of_the_same_kind_and_replaces_another():
    net = _net(opt=_core.ADAM)
    opt = net.optimizer
    net.set_state(_net(opt=_core.ADAM, n_steps=5).get_state())
    assert net.optimizer is opt and net.optimizer.t == 2
    net.set_state(_net(opt=_core.RMSPROP, n_steps=5).get_state())
    assert net.optimizer is not opt and net.optimizer.kind == _core.RMSPROP
    state = net.get_state()
    state["optimizer"] = None
    net.set_state(state)
    assert net.optimizer is None


# ---------------------------------------------------------------- rejections

def _bad_network_states(net):
    """(label, state) pairs, each invalid in exactly one field."""
    good = net.get_state()
    P, (L, H), B = net.size, good["h"].shape, good["ring_x"].shape[0]

    def with_(**kw):
        s = copy.deepcopy(good)
        s.update(kw)
        return s

    def with_opt(**kw):
        s = copy.deepcopy(good)
        s["optimizer"].update(kw)
        return s

    missing = copy.deepcopy(good)
    del missing["ring_g"]
    out = [("missing key", missing), ("extra key", with_(extra=1)), ("not a dict", [1, 2])]
    for t in (-1, 2 ** 62, 2 ** 63 - 1, 2 ** 63, 2 ** 64 + 3, -2 ** 63, 1.0, True, "3", None):
        out.append((f"t={t!r}", with_(t=t)))
    for v in (float("nan"), float("inf"), "0.1", None, np.zeros(1)):
        out.append((f"last_loss={v!r}", with_(last_loss=v)))
    for name in ("params", "h", "c", "ring_x", "ring_r", "ring_g", "out"):
        a = good[name]
        out += [
            (f"{name} int64", with_(**{name: a.astype(np.int64)})),
            (f"{name} float32", with_(**{name: a.astype(np.float32)})),
            (f"{name} object", with_(**{name: a.astype(object)})),
            (f"{name} big-endian", with_(**{name: a.astype(">f8")})),
            (f"{name} list", with_(**{name: a.tolist()})),
            (f"{name} longer", with_(**{name: np.zeros(a.size + 1)})),
            (f"{name} flat", with_(**{name: a.reshape(-1)})) if a.ndim > 1 else
            (f"{name} 2-d", with_(**{name: a.reshape(1, -1)})),
            (f"{name} empty", with_(**{name: np.zeros(0)})),
        ]
        for v in (np.nan, np.inf, -np.inf):
            b = a.copy()
            b.reshape(-1)[-1] = v
            out.append((f"{name} {v}", with_(**{name: b})))
    # shapes of another network: ring of another capacity, other hidden size
    out.append(("ring of B+1", with_(ring_x=np.zeros((B + 1, net.n_in)))))
    out.append(("h of H+1", with_(h=np.zeros((L, H + 1)))))
    # optimizer
    out += [
        ("optimizer not a dict", with_(optimizer=3)),
        ("optimizer missing key", with_(optimizer={k: v for k, v in good["optimizer"].items()
                                                   if k != "rho"})),
        ("optimizer kind 99", with_opt(kind=99)),
        ("optimizer kind -1", with_opt(kind=-1)),
        ("optimizer kind float", with_opt(kind=4.0)),
        ("optimizer lr < 0", with_opt(lr=-0.1)),
        ("optimizer lr nan", with_opt(lr=float("nan"))),
        ("optimizer lr inf", with_opt(lr=float("inf"))),
        ("optimizer lr str", with_opt(lr="0.1")),
        ("optimizer beta_1 = 1", with_opt(beta_1=1.0)),
        ("optimizer beta_2 < 0", with_opt(beta_2=-0.5)),
        ("optimizer eps < 0", with_opt(eps=-1e-8)),
        ("optimizer clip_value < 0", with_opt(clip_value=-1.0)),
        ("optimizer clip_norm nan", with_opt(clip_norm=float("nan"))),
        ("optimizer t < 0", with_opt(t=-1)),
        ("optimizer t 2**63", with_opt(t=2 ** 63)),
        ("optimizer m short", with_opt(m=np.zeros(P - 1))),
        ("optimizer m long", with_opt(m=np.zeros(P + 1))),
        ("optimizer m int", with_opt(m=np.zeros(P, dtype=np.int64))),
        ("optimizer m nan", with_opt(m=np.full(P, np.nan))),
        ("optimizer v short", with_opt(v=np.zeros(P - 1))),
        ("optimizer v negative", with_opt(v=-np.ones(P))),
        ("optimizer v inf", with_opt(v=np.full(P, np.inf))),
    ]
    return out


@pytest.mark.parametrize("index", range(len(_bad_network_states(_net()))))
def test_set_state_rejects_and_changes_nothing(index):
    net = _net()
    label, state = _bad_network_states(net)[index]
    before = _frozen(net)
    with pytest.raises(ValueError):
        net.set_state(state)
    assert _frozen(net) == before, label
    with pytest.raises(ValueError):
        _core.Network.from_state(net.config(), state)
    # and the network still learns as its twin does
    twin = pickle.loads(pickle.dumps(net))
    x = np.ones(3)
    assert net.learn(x, 0.5) == twin.learn(x, 0.5)
    _same_state(net, twin)


@pytest.mark.parametrize("kind", [_core.RMSPROP, _core.ADAGRAD])
def test_negative_squared_gradient_accumulator_is_refused(kind):
    net = _net(opt=kind)
    state = net.get_state()
    state["optimizer"]["m"][0] = -1e-3
    before = _frozen(net)
    with pytest.raises(ValueError, match=">= 0"):
        net.set_state(state)
    assert _frozen(net) == before


@pytest.mark.parametrize("kind", [_core.MOMENTUM, _core.NESTEROV, _core.RMSPROP])
def test_rho_out_of_range_is_refused(kind):
    state = _net(opt=kind).get_state()["optimizer"]
    for rho in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError):
            _core.Optimizer.from_state(dict(state, rho=rho))
    with pytest.raises(ValueError):
        _core.Optimizer(kind, 0.01, rho=1.0)


def test_optimizer_set_state_changes_nothing_on_error():
    opt = _net().optimizer
    before = pickle.dumps(opt.get_state())
    bad = opt.get_state()
    bad["v"] = bad["v"][:-1]
    bad["t"] = 5
    with pytest.raises(ValueError):
        opt.set_state(bad)
    with pytest.raises(ValueError):
        opt.set_state(dict(opt.get_state(), kind=_core.SGD))  # v must then be (0,)
    assert pickle.dumps(opt.get_state()) == before


def test_from_state_rejects_a_bad_config():
    net = _net()
    state = net.get_state()
    for config in ({**net.config(), "extra": 1}, {k: v for k, v in net.config().items()
                                                  if k != "k2"},
                   {**net.config(), "hidden_size": 6}, {**net.config(), "hidden_size": "5"},
                   {**net.config(), "cell": 9}, {**net.config(), "k1": 2 ** 40}, None):
        with pytest.raises(ValueError):
            _core.Network.from_state(config, state)


# ---------------------------------------------------------------- size limits

@pytest.mark.parametrize("args", [
    dict(hidden_size=65536),
    dict(hidden_size=2 ** 31),
    dict(hidden_size=2 ** 64),
    dict(n_in=2 ** 28),
    dict(n_out=2 ** 28),
    dict(num_layers=2 ** 20),
    dict(k2=2 ** 27),
    dict(k1=2 ** 31),
    dict(k1=2 ** 63),
    dict(hidden_size=0), dict(n_in=-1), dict(k1=0), dict(k2=True), dict(hidden_size=8.0),
    dict(cell=7), dict(loss=5), dict(huber_eps=0.0), dict(huber_eps=float("inf")),
    dict(huber_eps=float("nan")), dict(loss=_core.BINARY_CE, n_out=2),
])
def test_constructor_refuses_sizes_it_cannot_index_or_allocate(args):
    full = dict(cell=_core.GRU, n_in=3, hidden_size=8, num_layers=1, n_out=1, k1=1, k2=16)
    full.update(args)
    with pytest.raises(ValueError):
        _core.Network(**full)


def test_the_byte_limit_is_checked_on_the_whole_footprint():
    # just under and just over the limit, found by the same arithmetic the constructor uses
    def nbytes(H):
        return 8 * _network.footprint(_core.LSTM, 1, H, 1, 1, 1, 1)[1]
    H = 1
    while nbytes(H + 1) <= _network.MAX_BYTES:
        H = 2 * H if nbytes(2 * H) <= _network.MAX_BYTES else H + 1
    assert nbytes(H) <= _network.MAX_BYTES < nbytes(H + 1)
    with pytest.raises(ValueError, match="bytes"):
        _core.Network(_core.LSTM, 1, H + 1, 1, 1, 1, 1)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [(3, 5, 2, 1, 3, 4), (7, 16, 1, 3, 5, 2), (2, 33, 3, 2, 1, 9)])
def test_footprint_bounds_what_is_allocated(cell, shape):
    n_in, H, L, n_out, k1, k2 = shape
    net = _core.Network(cell, n_in, H, L, n_out, k1, k2)
    net.set_optimizer(_core.Optimizer(_core.ADAM, 0.01))
    P, total = _network.footprint(cell, n_in, H, L, n_out, k1, k2)
    assert P == net.size
    assert net.__sizeof__() - object.__sizeof__(net) - object.__sizeof__(net.optimizer) <= 8 * total


# ---------------------------------------------------------------- no crash, in a child

CHILD = textwrap.dedent("""
    import numpy as np
    from streamrnn import _core
    net = _core.Network(_core.GRU, 2, 4, 2, 1, 3, 5)
    _core.initialize(net, np.random.default_rng(0))
    net.set_optimizer(_core.Optimizer(_core.ADAM, 0.01))
    for i in range(7):
        net.learn(np.ones(2) * i, 0.1 * i)
    good = net.get_state()
    refused = 0
    for case in CASES:
        try:
            case(net, good)
        except ValueError:
            refused += 1
        # whatever was tried, the network learns and predicts without crashing
        assert net.learn(np.ones(2), 0.5) in (0, 1)
        net.predict(np.ones(2), np.zeros(1))
    assert refused == len(CASES), (refused, len(CASES))
    print("refused", refused)
""")

CASES = {
    "counter": """
        def t_at(v):
            def case(net, good):
                net.set_state(dict(good, t=v))
            return case
        CASES = [t_at(v) for v in (-1, -7, 2**62, 2**63 - 1, 2**63 - 3, 2**64 - 1)]
        def opt_t(net, good):
            net.set_state(dict(good, optimizer=dict(good["optimizer"], t=-1)))
        CASES.append(opt_t)
    """,
    "shape": """
        def shaped(name, shape):
            def case(net, good):
                net.set_state(dict(good, **{name: np.zeros(shape)}))
            return case
        CASES = [shaped("ring_r", (1, 1, 1)), shaped("ring_x", (1000, 2)),
                 shaped("params", (1,)), shaped("h", (2, 400)), shaped("ring_r", (5, 2, 10**4)),
                 shaped("out", (0,))]
        def moments(net, good):
            net.set_state(dict(good, optimizer=dict(good["optimizer"], m=np.zeros(3))))
        CASES.append(moments)
    """,
    "size": """
        def build(**kw):
            def case(net, good):
                args = dict(cell=3, n_in=2, hidden_size=4, num_layers=2, n_out=1, k1=3, k2=5)
                args.update(kw)
                _core.Network.from_state(args | {"loss": 0, "huber_eps": 0.1}, good)
            return case
        CASES = [build(hidden_size=65536), build(hidden_size=46341), build(k2=2**31 - 1),
                 build(n_in=2**31 + 5), build(num_layers=2**31), build(hidden_size=-4)]
    """,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_crafted_states_and_sizes_cannot_crash_a_process(name):
    code = textwrap.dedent(CASES[name]) + CHILD
    # the child imports the same streamrnn as this process (the one under test)
    root = os.path.dirname(os.path.dirname(os.path.abspath(streamrnn.__file__)))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("refused")


# ---------------------------------------------------------------- inference leaves state alone

@pytest.mark.parametrize("cell", CELLS)
def test_inference_never_changes_the_state(cell):
    net = _net(cell)
    before = pickle.dumps(net.get_state())
    out = np.zeros(1)
    net.predict(np.ones(3), out)
    net.rollout_begin()
    for _ in range(3):
        net.rollout_step(np.ones(3), out)
    assert pickle.dumps(net.get_state()) == before


def test_a_network_made_without_init_refuses_to_run():
    net = _core.Network.__new__(_core.Network)
    with pytest.raises((ValueError, RuntimeError)):
        net.learn(np.zeros(0), 0.0)
    with pytest.raises((ValueError, RuntimeError)):
        net.predict(np.zeros(0), np.zeros(0))
    with pytest.raises((ValueError, RuntimeError)):
        net.rollout_begin()


def test_pickles_of_the_previous_format_still_load_and_are_validated():
    from streamrnn._core import _optim
    net = _net(opt=_core.RMSPROP)
    st = net.get_state()
    o = st.pop("optimizer")
    # the previous __reduce__ payloads: v was (1,) for the rules other than Adam
    old_opt = _optim._rebuild(o["kind"], o["lr"], o["beta_1"], o["beta_2"], o["eps"], o["rho"],
                              o["clip_value"], o["clip_norm"], o["t"], o["m"], np.zeros(1))
    back = _network._rebuild_network(net.config(), st, old_opt)
    _same_state(back, net)
    with pytest.raises(ValueError):
        _network._rebuild_network(net.config(), dict(st, t=-1), old_opt)
    with pytest.raises(ValueError):
        _optim._rebuild(o["kind"], o["lr"], o["beta_1"], o["beta_2"], o["eps"], o["rho"],
                        o["clip_value"], o["clip_norm"], -5, o["m"], np.zeros(1))
