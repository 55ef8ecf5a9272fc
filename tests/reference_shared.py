"""A readable NumPy restatement of ``streamrnn._core._shared.SharedNetwork`` (one network,
many sequences, one optimizer step per batch of distinct keys).

Nothing here is fast: every key is an explicit loop iteration, every window is replayed
and back-propagated the long way with the single-series reference's cells
(``tests/reference.py``). The tests hold the kernel equal to this file.

Per key the reference keeps exactly what the kernel's slot keeps:
    h, c     committed state (num_layers, hidden)
    h0, c0   state at the start of the TBPTT window
    past     the window's past inputs, oldest first (at most k2 - 1 of them)

``RefShared.step(keys, X, Y)`` for distinct keys k_1..k_B (``delayed=True``: Y[b, j] is the
target of output j of the step j calls ago, its loss taken at that step of the replay):
    out_b   = head of one step from (h_b, c_b) with input x_b           (the forecast)
    yhat_b  = head of the window past_b + [x_b] replayed from (h0_b, c0_b)
    J       = (1/B) * sum_b L(yhat_b, y_b)
    grad    = dJ/dtheta through the replayed windows (their start states are constants)
    theta  <- optimizer step on grad (clipping on the batch gradient), once per batch
    commit  (h_b, c_b) <- the forecast step's new state; past_b gains x_b; a full window
            (k2 steps) drops its oldest step and (h0_b, c0_b) becomes the replayed state
            after that step.

``RefShared.advance(keys, X)`` is the same step without learning: out_b, then the same
commit (the new start of a full window replayed with the current weights).
"""
from __future__ import annotations

import copy
import math

import numpy as np

from reference import (BINARY_CE, LSTM, SOFTMAX_CE, RefOptimizer, cell_backward,
                       forward_step, make_layout, step_loss, unpack)


def loss_and_grad(loss, out, y, huber_eps=0.1):
    """L and dL/dout for one key: the cross-entropies take one class label; the regression
    losses sum over the outputs (y has one target per output)."""
    if loss in (BINARY_CE, SOFTMAX_CE):
        return step_loss(loss, out, float(np.ravel(y)[0]), huber_eps)
    y = np.ravel(np.asarray(y, dtype=float))
    total, g = 0.0, np.zeros_like(out)
    for j in range(out.size):
        L, gj = step_loss(loss, out[j:j + 1], y[j], huber_eps)
        total += L
        g[j] = gj[0]
    return total, g


def replay(cell, P, h0, c0, window):
    """Run the window (a list of inputs) from (h0, c0): (head output of every step, per-step
    layer caches, the state after every step)."""
    h, c = h0.copy(), c0.copy()
    outs, caches, states = [], [], []
    for x in window:
        out, h, c, layer_caches = forward_step(cell, P, np.asarray(x, dtype=float), h, c)
        outs.append(out)
        caches.append((layer_caches, h[-1].copy()))
        states.append((h.copy(), c.copy()))
    return outs, caches, states


def delayed_losses(loss, outs, y, huber_eps=0.1):
    """Delayed targets: y[j] is the target of output j of the window's step j steps before
    the newest (NaN: none; a step before the window's first: ignored). Returns (L, {step: g})."""
    W = len(outs)
    total, grads = 0.0, {}
    for j, yj in enumerate(np.ravel(y)):
        if math.isnan(yj) or j >= W:
            continue
        s = W - 1 - j
        L, g = step_loss(loss, outs[s][j:j + 1], yj, huber_eps)
        total += L
        grads.setdefault(s, np.zeros(outs[s].size))[j] += g[0]
    return total, grads


def window_backward(cell, P, Gr, caches, grads):
    """Accumulate into Gr the gradient of the window's loss through the replayed window;
    grads = {step: dL/d(head output of that step)} (the newest step only, unless targets
    are delayed). dh[l] / dc[l] carry the gradient reaching layer l's state from the newer
    step (Karpathy's dhnext)."""
    num_layers = len(P.layers)
    hidden = P.W_y.shape[0]
    for s, g in grads.items():
        Gr.W_y += np.outer(caches[s][1], g)
        Gr.b_y += g
    dh = np.zeros((num_layers, hidden))
    dc = np.zeros((num_layers, hidden))
    for s in reversed(range(len(caches))):
        layer_caches, _ = caches[s]
        from_above = P.W_y @ grads[s] if s in grads else np.zeros(hidden)
        for l in reversed(range(num_layers)):
            dh_prev, dc_prev, dx = cell_backward(cell, P.layers[l], Gr.layers[l],
                                                 layer_caches[l], dh[l] + from_above, dc[l])
            dh[l], dc[l] = dh_prev, dc_prev
            from_above = dx


def batch_loss(params, cell, n_in, hidden, num_layers, n_out, loss, windows, starts, ys,
               huber_eps=0.1, delayed=False):
    """J(params) = mean over the keys of L(yhat_b, y_b), each yhat_b the window replayed from
    its start state (``delayed``: the delayed targets' losses of the window): a pure
    function of ``params``, for finite differences."""
    layout, _ = make_layout(cell, n_in, hidden, num_layers, n_out)
    P = unpack(np.asarray(params, dtype=float), layout, num_layers)
    total = 0.0
    for window, (h0, c0), y in zip(windows, starts, ys):
        outs, _, _ = replay(cell, P, h0, c0, window)
        if delayed:
            total += delayed_losses(loss, outs, y, huber_eps)[0]
        else:
            total += loss_and_grad(loss, outs[-1], y, huber_eps)[0]
    return total / len(windows)


class RefShared:
    def __init__(self, cell, n_in, hidden, num_layers, n_out, k2, loss, huber_eps=0.1):
        self.cell, self.n_in, self.hidden, self.num_layers = cell, n_in, hidden, num_layers
        self.n_out, self.k2, self.loss, self.huber_eps = n_out, k2, loss, huber_eps
        self.layout, size = make_layout(cell, n_in, hidden, num_layers, n_out)
        self.params = np.zeros(size)
        self.grad = np.zeros(size)
        self.optimizer = RefOptimizer("sgd", 0.01)
        self.slots = {}
        self.t = 0
        self.last_loss = 0.0

    def fresh(self):
        z = np.zeros((self.num_layers, self.hidden))
        return {"h": z.copy(), "c": z.copy(), "h0": z.copy(), "c0": z.copy(), "past": []}

    def slot(self, key):
        return self.slots.get(key) or self.fresh()

    def reset(self, key):
        self.slots.pop(key, None)

    def blocks(self, vec):
        return unpack(vec, self.layout, self.num_layers)

    def predict(self, keys, X):
        P = self.blocks(self.params)
        return np.array([forward_step(self.cell, P, np.asarray(x, float), self.slot(k)["h"],
                                      self.slot(k)["c"])[0] for k, x in zip(keys, X)])

    def committed(self, st, h1, c1, window, first):
        """A key's new slot: committed state (h1, c1); the window past + [x]; a full window
        (k2 steps) drops its oldest step and starts from ``first``, the state replayed after
        that step."""
        if len(window) == self.k2:
            (h0, c0), past = first, window[1:]
        else:
            h0, c0, past = st["h0"], st["c0"], window
        zero = np.zeros_like(c1)
        return {"h": h1, "c": c1 if self.cell == LSTM else zero,
                "h0": h0, "c0": c0 if self.cell == LSTM else zero, "past": past}

    def advance(self, keys, X):
        """A step without learning; returns (status, outs). out_b is the forecast (as in
        ``step``), then the key commits exactly what ``step`` would commit: (h, c) after the
        forecast step, x_b joins the window, and a full window drops its oldest step, its
        start (h0, c0) moved one step forward (replayed from the old start with the current
        weights). Weights, optimizer, t, last_loss untouched. -1: a non-finite input; -2: a
        non-finite output or new state; nothing changes on failure."""
        keys = list(keys)
        assert len(set(keys)) == len(keys), "keys of a batch are distinct"
        X = np.asarray(X, dtype=float)
        if not np.all(np.isfinite(X)):
            return -1, None
        P = self.blocks(self.params)
        outs, new = [], {}
        with np.errstate(over="ignore", invalid="ignore"):
            for b, key in enumerate(keys):
                st = self.slot(key)
                out, h1, c1, _ = forward_step(self.cell, P, X[b], st["h"], st["c"])
                outs.append(out)
                window = st["past"] + [X[b].copy()]
                first = None
                if len(window) == self.k2:
                    first = replay(self.cell, P, st["h0"], st["c0"], window[:1])[2][0]
                new[key] = self.committed(st, h1, c1, window, first)
        outs = np.array(outs)
        states_ok = all(np.all(np.isfinite(v[f])) for v in new.values()
                        for f in ("h", "c", "h0", "c0"))
        if not (np.all(np.isfinite(outs)) and states_ok):
            return -2, None
        self.slots.update(new)
        return 1, outs

    def step(self, keys, X, Y, delayed=False):
        """One batch; returns (status, outs). Status 1, -1 (non-finite input/target) or -2
        (non-finite output, loss or gradient); on failure nothing changes. ``delayed``:
        Y[b, j] is the target of output j of key b's step taken j calls ago (NaN: none),
        its loss taken at that step of the replayed window."""
        keys = list(keys)
        assert len(set(keys)) == len(keys), "keys of a batch are distinct"
        X = np.asarray(X, dtype=float)
        Y = np.asarray(Y, dtype=float).reshape(len(keys), -1)
        targets_ok = not np.any(np.isinf(Y)) if delayed else np.all(np.isfinite(Y))
        if not (np.all(np.isfinite(X)) and targets_ok):
            return -1, None
        B = len(keys)
        P = self.blocks(self.params)
        grad = np.zeros_like(self.params)
        Gr = self.blocks(grad)
        outs, new = [], {}
        total = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for b, key in enumerate(keys):
                st = self.slot(key)
                # the forecast: one step from the committed state
                out, h1, c1, _ = forward_step(self.cell, P, X[b], st["h"], st["c"])
                outs.append(out)
                # the replay of the window from its start state, and its backward
                window = st["past"] + [X[b].copy()]
                yhats, caches, states = replay(self.cell, P, st["h0"], st["c0"], window)
                if delayed:
                    L, grads = delayed_losses(self.loss, yhats, Y[b], self.huber_eps)
                else:
                    L, g = loss_and_grad(self.loss, yhats[-1], Y[b], self.huber_eps)
                    grads = {len(window) - 1: g}
                total += L
                window_backward(self.cell, P, Gr, caches, {s: g / B for s, g in grads.items()})
                new[key] = self.committed(st, h1, c1, window, states[0])
        outs = np.array(outs)
        states_ok = all(np.all(np.isfinite(v["h"])) and np.all(np.isfinite(v["c"]))
                        for v in new.values())
        if not (np.all(np.isfinite(outs)) and math.isfinite(total)
                and np.all(np.isfinite(grad)) and states_ok):
            return -2, None
        params = self.params.copy()
        optimizer = copy.deepcopy(self.optimizer)
        optimizer.step(params, grad)           # clips grad in place, then updates
        self.params, self.grad, self.optimizer = params, grad, optimizer
        self.slots.update(new)
        self.t += 1
        self.last_loss = total / B
        return 1, outs
