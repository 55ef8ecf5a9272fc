"""Bit-exactness of the forecasters' per-observation path (backbone, delayed targets, the
combination) across speed refactors, and of the sign of zero in the delayed head outputs.

``GOLDEN`` holds SHA-256 digests of 400-step runs of eight forecasters (every cell, horizons
1 to 24, declared, detected and no periods, positive series (log members live) and series
through zero (log members dropped), k1 of 1 and 4, two layers, features): every ``forecast(1)``,
every 40th step's ``forecast(30)`` and intervals, and the final states of the network and of
the forecaster core. First recorded from the build of commit 122cb55's parent 1d852db
(portable flags, gcc 12.2.0, glibc 2.36 on x86-64): the speed work of issue 8 changed no bit
of them (the full pickles of these and other forecasters after 600 and 1,500 steps were
compared byte for byte before and after). The recalibrated intervals and combination (ACI
gamma 0.18, window 25, eta 40) then changed the runs on purpose; the digests were recorded
again from the branch of that change alone, without the speed work, and the merged tree gives
the same ones: the speed work changes no bit with the new combination either. Stop 17's
accuracy work (acc9) changed the runs on purpose again: the backbone's member weights (a
running-mean start of the losses, decay 0.98, eta 60, each step's relative loss blended with
its mean over the steps), the Combiner's running-mean start of the expert losses and ACI gamma
0.22; recorded from that branch alone (no speed change in it). Its follow-up (acc9b) moved the
intervals only: ACI gamma 0.3 and a window of 20 scores (Airline's 90 % coverage was below 88 %
on two detected-period columns); recorded again from that branch. Stop 18 (acc10) moved the
five cases with a detected period (seasonality="auto", the default): the period detector's
EWMA rate 0.1 -> 0.5 (a trend no longer hides the season), and then all eight with ACI gamma
0.3 -> 0.31 (Airline's coverage on LSTM-auto fell to 0.877 with the new detection); recorded
from that branch alone. Stop 19 (acc11) moved all eight on purpose: the backbone gained two
adaptive members (alpha, beta, gamma by gradient through the smoothing equations) and ACI
gamma 0.31 -> 0.46 (with the better forecasts macro.cpi over-covered, 0.924-0.925, and Airline
fell to 0.880 at 0.31); recorded from that branch alone.
Stop 19 (speed11) moved all eight on purpose too: a network's Adam moments are float32
(``Optimizer.single``, ``sr_adam_m32``); recorded from branch speed11 (the three copies of the
C helpers gave the same digests); and again when the cells' gates took their sigmoid and tanh
from the array functions sr_sigmoid_n/sr_tanh_n instead of libm's scalar calls.
The merged main's digests (both changes) were recorded from main's build after the merge.
Every copy of the C helpers must give the same digests; with another C library only the
agreement of the copies is checked.
"""
import hashlib
import json
import math
import os
import platform
import random
import struct
import subprocess
import sys

import numpy as np
import pytest

from streamrnn import GRUForecaster, LSTMForecaster, RNNForecaster
from streamrnn import _core as C
from streamrnn._core import _cells

GOLDEN_PLATFORM = ("x86_64", ("glibc", "2.36"))
ON_GOLDEN_PLATFORM = (platform.machine(), platform.libc_ver()) == GOLDEN_PLATFORM
STEPS = 400

CASES = {
    "lstm32-auto": (lambda: LSTMForecaster(hidden_size=32, seed=1), {}),
    "lstm16-h1": (lambda: LSTMForecaster(hidden_size=16, horizon=1, seed=2), {}),
    "lstm8-k4": (lambda: LSTMForecaster(hidden_size=8, update_every=4, seed=3), {"pos": True}),
    "lstm8-s24-pos": (lambda: LSTMForecaster(hidden_size=8, seasonality=24, seed=4),
                      {"pos": True, "period": 24}),
    "gru8-s0-h7": (lambda: GRUForecaster(hidden_size=8, seasonality=0, horizon=7, seed=5), {}),
    "rnn8-two-periods": (lambda: RNNForecaster(hidden_size=8, seasonality=(3, 12), seed=6),
                         {"pos": True, "period": 12}),
    "lstm8-features": (lambda: LSTMForecaster(hidden_size=8, horizon=5, seed=7), {"feat": True}),
    "lstm8-2layers": (lambda: LSTMForecaster(hidden_size=8, num_layers=2, horizon=6,
                                             update_every=3, seed=8), {"period": 10}),
}
GOLDEN = {
    "gru8-s0-h7": "7ee58aaec89127fd48de864aeea36a86d4bbc51991721ac5dc831d3f79f6085d",
    "lstm16-h1": "41c7b078e9726cd4a4e5ff6bdf622e2ec3a32ccf5674889aa0263137ad6b2c5f",
    "lstm32-auto": "5a189138aa109e1817e46cd792ed763af3a8b374236ca88cd8792a949468bc1c",
    "lstm8-2layers": "ef93446fa7fc488e47e7b0894c6cadfce1b11909223f83ce2abd8484d3f1f2a6",
    "lstm8-features": "1d232005a28a127066ec64a408b980d4aad5eabf5449b8490b6cf070525c931e",
    "lstm8-k4": "592678f65c2b7bb77d12c3e2dca291eead1043f4f18843e555e88245c221cb08",
    "lstm8-s24-pos": "428603a52c70d01d1e62ab8afd833e4b23b1a828b82e058f312cb6d9cbab1925",
    "rnn8-two-periods": "4f3d70704b65004f5791fe3f69efcbd7bfff3a1a70c116e76cf803b2cf0646d4",
}


def _series(n, seed, pos=False, period=21):
    rng = random.Random(seed)
    return [math.sin(2 * math.pi * i / period) + 0.3 * math.sin(0.05 * i)
            + 0.1 * rng.gauss(0, 1) + (3.0 if pos else 0.0) for i in range(n)]


def _feed(h, value):
    """Every number of ``value`` (nested dicts, sequences, arrays, floats) into the hash."""
    if isinstance(value, dict):
        for k in sorted(value):
            h.update(str(k).encode())
            _feed(h, value[k])
    elif isinstance(value, np.ndarray):
        h.update(str(value.dtype).encode() + str(value.shape).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple)):
        h.update(b"[%d" % len(value))
        for v in value:
            _feed(h, v)
    elif isinstance(value, float):
        h.update(struct.pack("<d", value))
    elif value is None or isinstance(value, (bool, int, str)):
        h.update(repr(value).encode())
    else:
        raise TypeError(type(value))


def digest(name):
    make, kw = CASES[name]
    model = make()
    h = hashlib.sha256()
    for i, y in enumerate(_series(STEPS, len(name), kw.get("pos", False),
                                  kw.get("period", 21))):
        if kw.get("feat"):
            x = {"a": math.cos(0.1 * i), "b": (i % 5) * 0.3}
            _feed(h, model.forecast(3, xs=[x] * 3))
            model.learn_one(y, x)
        else:
            _feed(h, model.forecast(1))
            if i % 40 == 0:
                _feed(h, model.forecast(30))
                _feed(h, model.forecast_interval(5))
            model.learn_one(y)
        _feed(h, model.last_anomaly)
    _feed(h, model.network.get_state())
    _feed(h, model._core.get_state())
    return h.hexdigest()


@pytest.mark.skipif(not ON_GOLDEN_PLATFORM, reason="digests recorded with glibc 2.36 on x86-64")
@pytest.mark.parametrize("name", sorted(CASES))
def test_forecaster_runs_are_bit_identical_to_the_recorded_ones(name):
    assert digest(name) == GOLDEN[name]


def test_every_instruction_set_gives_the_same_forecaster_bits():
    here = os.path.dirname(os.path.abspath(__file__))
    code = ("import json, sys; sys.path.insert(0, %r); import test_forecaster_exact as t; "
            "print(json.dumps({n: t.digest(n) for n in sorted(t.CASES)}))" % here)
    got = {}
    for isa in _cells.ISAS:
        env = dict(os.environ, STREAMRNN_ISA=isa)
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        got[isa] = json.loads(res.stdout.strip().splitlines()[-1])
    first = next(iter(got.values()))
    assert all(d == first for d in got.values()), got


def test_delayed_head_outputs_keep_a_negative_zero_bias():
    """Output j of a stored zero top state is b_y[j] with the zero inputs skipped (as the
    forward's sr_affine does): with b_y = -0 it stays -0, and so do the delayed gradients the
    ring keeps for it (a zero target: r = -0 - 0), which a dense sum would make +0."""
    net = C.Network(C.LSTM, 2, 4, 1, 3, 1, 4, C.SQUARED)
    net.set_optimizer(C.Optimizer(C.ADAM, 0.01, clip_norm=1.0))
    net.view("b_y")[:] = -0.0
    x, y = np.zeros(2), np.zeros(3)
    for _ in range(5):
        assert net.learn_multi(x, y) >= 0
    st = net.get_state()
    assert np.all(st["params"] == 0.0)
    assert np.all(np.signbit(st["params"][net.layout["b_y"][0]:]))
    g = st["ring_g"]
    assert np.all(g == 0.0)
    # every entry the ring still holds: row tau's entry j arrived j calls after it
    t = st["t"]
    for tau in range(t - net.B, t):
        for j in range(3):
            if tau + j < t:
                assert np.signbit(g[tau % net.B, j]), (tau, j)
