"""A small, readable NumPy restatement of the compiled kernel (see docs/kernel.md).

Nothing here is meant to be fast. Every quantity is float64 and every step is written out the
long way, so that the tests can hold the Cython kernel equal to this file step by step.

Conventions (row vectors, as in docs/kernel.md):
    a = x @ W_x + h_prev @ W_h + b           pre-activations, G gate blocks of H columns
    out = h_top @ W_y + b_y                  linear head
The parameters live in ONE flat float64 vector with the kernel's layout, so a vector copied
out of the kernel (``net.params``) can be dropped straight into ``RefNet.params``.

Contents:
    make_layout / unpack          flat vector <-> named blocks (views)
    forward_step                  one time step through all layers (pure)
    step_loss                     per-step loss and dL/dout
    sequence_loss                 pure mean loss over a sequence, for finite differences
    delayed_loss                  pure loss of delayed multi-output targets (learn_multi)
    RefOptimizer                  clipping + SGD / Momentum / Nesterov / RMSProp / Adam / AdaGrad
                                  with the per-coordinate math of ``river.optim``
    RefNet                        online learner with truncated BPTT(k1, k2) and the guards;
                                  ``learn_multi``: delayed targets for every output
"""
from __future__ import annotations

import copy
import math

import numpy as np

# Codes from docs/kernel.md.
ELMAN_TANH, ELMAN_RELU, LSTM, GRU = 0, 1, 2, 3
SQUARED, ABSOLUTE, HUBER, BINARY_CE, SOFTMAX_CE = 0, 1, 2, 3, 4
N_GATES = {ELMAN_TANH: 1, ELMAN_RELU: 1, LSTM: 4, GRU: 3}

# Optimizer kinds (the kernel's integer codes are not fixed by the docs; tests map by name).
OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adagrad")


# --------------------------------------------------------------------------------------------
# Layout of the flat parameter vector
# --------------------------------------------------------------------------------------------
def make_layout(cell, n_in, hidden, num_layers, n_out):
    """Return ({name: (offset, shape)}, total size), blocks in the kernel's order."""
    G = N_GATES[cell]
    layout = {}
    offset = 0

    def add(name, shape):
        nonlocal offset
        layout[name] = (offset, shape)
        offset += int(np.prod(shape))

    for l in range(num_layers):
        d = n_in if l == 0 else hidden
        add(f"W_x{l}", (d, G * hidden))
        add(f"W_h{l}", (hidden, G * hidden))
        add(f"b{l}", (G * hidden,))
        if cell == GRU:
            add(f"b_hn{l}", (hidden,))
    add("W_y", (hidden, n_out))
    add("b_y", (n_out,))
    return layout, offset


class Blocks:
    """Named views into a flat vector: ``.layers[l]`` is a dict with W_x, W_h, b (and b_hn),
    ``.W_y`` and ``.b_y`` are the head. Writing to a view writes to the flat vector."""

    def __init__(self, vec, layout, num_layers):
        def view(name):
            off, shape = layout[name]
            return vec[off:off + int(np.prod(shape))].reshape(shape)

        self.layers = []
        for l in range(num_layers):
            p = {"W_x": view(f"W_x{l}"), "W_h": view(f"W_h{l}"), "b": view(f"b{l}")}
            if f"b_hn{l}" in layout:
                p["b_hn"] = view(f"b_hn{l}")
            self.layers.append(p)
        self.W_y = view("W_y")
        self.b_y = view("b_y")


def unpack(vec, layout, num_layers):
    return Blocks(vec, layout, num_layers)


# --------------------------------------------------------------------------------------------
# Elementary functions
# --------------------------------------------------------------------------------------------
def sigmoid(a):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-a))


def step_loss(loss, out, y, huber_eps=0.1):
    """Per-step loss L and g = dL/dout (a vector of width n_out)."""
    g = np.zeros_like(out)
    if loss == SOFTMAX_CE:
        k = int(y)
        if k != y or not 0 <= k < out.size:
            raise ValueError(f"class index {y!r} out of range for n_out={out.size}")
        shifted = out - out.max()
        p = np.exp(shifted) / np.exp(shifted).sum()
        L = math.log(np.exp(shifted).sum()) - shifted[k]  # = -log p_k
        g[:] = p
        g[k] -= 1.0
        return float(L), g
    if loss == BINARY_CE:
        o = out[0]
        p = float(sigmoid(o))
        # -(y log p + (1-y) log(1-p)) written without cancellation: softplus(o) - y*o
        L = max(o, 0.0) - y * o + math.log1p(math.exp(-abs(o)))
        g[0] = p - y
        return float(L), g
    if out.size != 1:
        raise ValueError("the regression losses are written for n_out == 1")
    r = out[0] - y
    if loss == SQUARED:
        L, g[0] = r * r, 2.0 * r
    elif loss == ABSOLUTE:
        L, g[0] = abs(r), float(np.sign(r))
    elif loss == HUBER:
        if abs(r) <= huber_eps:
            L, g[0] = 0.5 * r * r, r
        else:
            L, g[0] = huber_eps * (abs(r) - 0.5 * huber_eps), huber_eps * float(np.sign(r))
    else:
        raise ValueError(f"unknown loss code {loss}")
    return float(L), g


# --------------------------------------------------------------------------------------------
# One cell, forward and backward
# --------------------------------------------------------------------------------------------
def cell_forward(cell, p, x, h_prev, c_prev):
    """One layer, one step. Returns (h, c, cache). ``c`` is only meaningful for the LSTM."""
    H = h_prev.size
    cache = {"x": x, "h_prev": h_prev, "c_prev": c_prev}
    if cell in (ELMAN_TANH, ELMAN_RELU):
        a = x @ p["W_x"] + h_prev @ p["W_h"] + p["b"]
        h = np.tanh(a) if cell == ELMAN_TANH else np.maximum(a, 0.0)
        c = c_prev
        cache["a"] = a
    elif cell == LSTM:
        a = x @ p["W_x"] + h_prev @ p["W_h"] + p["b"]
        i = sigmoid(a[0:H])
        f = sigmoid(a[H:2 * H])
        g = np.tanh(a[2 * H:3 * H])
        o = sigmoid(a[3 * H:4 * H])
        c = f * c_prev + i * g
        tanh_c = np.tanh(c)
        h = o * tanh_c
        cache.update(i=i, f=f, g=g, o=o, tanh_c=tanh_c)
    elif cell == GRU:
        ax = x @ p["W_x"] + p["b"]
        ah = h_prev @ p["W_h"]
        r = sigmoid(ax[0:H] + ah[0:H])
        z = sigmoid(ax[H:2 * H] + ah[H:2 * H])
        hn = ah[2 * H:3 * H] + p["b_hn"]          # the part of n's input that r gates
        n = np.tanh(ax[2 * H:3 * H] + r * hn)
        h = (1.0 - z) * n + z * h_prev
        c = c_prev
        cache.update(r=r, z=z, n=n, hn=hn)
    else:
        raise ValueError(f"unknown cell code {cell}")
    cache["h"] = h
    cache["c"] = c
    return h, c, cache


def cell_backward(cell, p, gp, cache, dh, dc):
    """Backward through one layer at one step.

    dh, dc: gradients reaching this step's h (and c) from above and from the newer step.
    Accumulates parameter gradients into ``gp`` (a dict of views like ``p``).
    Returns (dh_prev, dc_prev, dx).
    """
    H = dh.size
    x, h_prev = cache["x"], cache["h_prev"]
    dc_prev = np.zeros(H)
    if cell in (ELMAN_TANH, ELMAN_RELU):
        h = cache["h"]
        if cell == ELMAN_TANH:
            da = dh * (1.0 - h * h)
        else:
            da = dh * (cache["a"] > 0.0)
        da_x = da_h = da
        dh_direct = 0.0
    elif cell == LSTM:
        i, f, g, o, tanh_c = (cache[k] for k in ("i", "f", "g", "o", "tanh_c"))
        do = dh * tanh_c
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c)
        di = dc * g
        df = dc * cache["c_prev"]
        dg = dc * i
        dc_prev = dc * f
        da = np.concatenate([
            di * i * (1.0 - i),
            df * f * (1.0 - f),
            dg * (1.0 - g * g),
            do * o * (1.0 - o),
        ])
        da_x = da_h = da
        dh_direct = 0.0
    elif cell == GRU:
        r, z, n, hn = (cache[k] for k in ("r", "z", "n", "hn"))
        dn = dh * (1.0 - z)
        dz = dh * (h_prev - n)
        dan = dn * (1.0 - n * n)        # gradient at the input of tanh for n
        dr = dan * hn
        dhn = dan * r                   # gradient at (h_prev @ W_h_n + b_hn)
        dar = dr * r * (1.0 - r)
        daz = dz * z * (1.0 - z)
        da_x = np.concatenate([dar, daz, dan])   # reaches W_x, b
        da_h = np.concatenate([dar, daz, dhn])   # reaches W_h
        gp["b_hn"] += dhn
        dh_direct = dh * z
    else:
        raise ValueError(f"unknown cell code {cell}")

    gp["W_x"] += np.outer(x, da_x)
    gp["W_h"] += np.outer(h_prev, da_h)
    gp["b"] += da_x
    dh_prev = p["W_h"] @ da_h + dh_direct      # da @ W_h^T
    dx = p["W_x"] @ da_x                       # da @ W_x^T
    return dh_prev, dc_prev, dx


def forward_step(cell, P, x, h, c, P_cells=None):
    """One time step through every layer from states h, c (shape (L, H)).

    ``P`` gives the head; ``P_cells`` (default ``P``) gives the recurrent layers. Returns
    (out, h_new, c_new, layer_caches). Inputs are not modified.
    """
    P_cells = P if P_cells is None else P_cells
    h_new = np.empty_like(h)
    c_new = np.empty_like(c)
    caches = []
    inp = x
    for l, p in enumerate(P_cells.layers):
        h_new[l], c_new[l], cache = cell_forward(cell, p, inp, h[l].copy(), c[l].copy())
        caches.append(cache)
        inp = h_new[l]
    out = h_new[-1] @ P.W_y + P.b_y
    return out, h_new, c_new, caches


def sequence_loss(params, cell, n_in, hidden, num_layers, n_out, loss, xs, ys,
                  huber_eps=0.1, n_loss=None, window=None, frozen=None):
    """Mean loss of the last ``n_loss`` steps of a sequence started from the zero state.

    Pure function of ``params``; meant for finite differences.

    With ``window`` and ``frozen`` it states the truncated objective of TBPTT(k1, k2): the
    recurrent layers of steps older than the last ``window`` steps run on the fixed vector
    ``frozen`` (so the state entering the window is a constant), while the head of every
    step runs on ``params`` (so injected steps older than the window give a head gradient
    only). Its gradient at ``params == frozen`` is the gradient the kernel computes.
    """
    T = len(xs)
    n_loss = T if n_loss is None else n_loss
    window = T if window is None else window
    layout, _ = make_layout(cell, n_in, hidden, num_layers, n_out)
    P = unpack(np.asarray(params, dtype=float), layout, num_layers)
    P_frozen = P if frozen is None else unpack(np.asarray(frozen, dtype=float), layout,
                                               num_layers)
    h = np.zeros((num_layers, hidden))
    c = np.zeros((num_layers, hidden))
    total = 0.0
    for t in range(T):
        P_cells = P if t >= T - window else P_frozen
        out, h, c, _ = forward_step(cell, P, np.asarray(xs[t], dtype=float), h, c, P_cells)
        if t >= T - n_loss:
            total += step_loss(loss, out, ys[t], huber_eps)[0]
    return total / n_loss


def delayed_loss(params, cell, n_in, hidden, num_layers, n_out, loss, xs, terms,
                 huber_eps=0.1, scale=1.0, window=None, frozen=None):
    """``scale * sum L(out_j(s), y)`` over ``terms`` = [(s, j, y), ...] (0-based steps s of a
    sequence ``xs`` started from the zero state; out_j(s) is output j of the head on step
    s's top state). ``window`` / ``frozen`` as in ``sequence_loss``: the truncated objective
    of an update after the last step of ``xs``, whose gradient at ``params == frozen`` is
    what ``learn_multi`` computes (``scale = 1 / k1``)."""
    T = len(xs)
    window = T if window is None else window
    layout, _ = make_layout(cell, n_in, hidden, num_layers, n_out)
    P = unpack(np.asarray(params, dtype=float), layout, num_layers)
    P_frozen = P if frozen is None else unpack(np.asarray(frozen, dtype=float), layout,
                                               num_layers)
    h = np.zeros((num_layers, hidden))
    c = np.zeros((num_layers, hidden))
    tops = []
    for t in range(T):
        P_cells = P if t >= T - window else P_frozen
        _, h, c, _ = forward_step(cell, P, np.asarray(xs[t], dtype=float), h, c, P_cells)
        tops.append(h[-1].copy())
    total = 0.0
    for s, j, y in terms:
        o = np.array([tops[s] @ P.W_y[:, j] + P.b_y[j]])
        total += step_loss(loss, o, y, huber_eps)[0]
    return scale * total


# --------------------------------------------------------------------------------------------
# Optimizers: clipping, then river's per-coordinate update
# --------------------------------------------------------------------------------------------
class RefOptimizer:
    """Clipping followed by one update, same math as ``river.optim.<Name>``.

    The iteration counter ``n_iterations`` starts at 0 like river's, so Adam's bias correction
    at the first step uses ``beta ** 1``.

    river's updates, per coordinate (lr is the constant learning rate):
        SGD              w -= lr * g
        Momentum         s = rho*s + lr*g;            w -= s
        NesterovMomentum w += rho*s; s = rho*s + lr*g; w -= s      (step)
                         w -= rho*s                               (look_ahead)
        RMSProp          v = rho*v + (1-rho)*g^2;     w -= lr / sqrt(v + eps) * g
        Adam             m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
                         lr_t = lr * sqrt(1 - b2^(t+1)) / (1 - b1^(t+1))
                         w -= lr_t * m / (sqrt(v) + eps)
        AdaGrad          v += g^2;                    w -= lr / sqrt(v + eps) * g

    Nesterov: river calls ``look_ahead`` on the weights before computing each gradient and
    ``step`` starts by undoing it. An online RNN computes its gradient from activations cached
    with the current parameters, so the vector is kept at the look-ahead point between
    updates: ``step`` here is river's ``step`` immediately followed by river's ``look_ahead``.
    (Without the look-ahead, river's Nesterov step would be identical to SGD.)
    """

    def __init__(self, kind, lr, beta_1=0.9, beta_2=0.999, eps=1e-8, rho=0.9,
                 clip_value=0.0, clip_norm=0.0):
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}")
        self.kind = kind
        self.lr = lr
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.eps = eps
        self.rho = rho
        self.clip_value = clip_value
        self.clip_norm = clip_norm
        self.n_iterations = 0
        self.s = None   # momentum buffer / squared-gradient average / Adam's first moment
        self.v = None   # Adam's second moment

    def clip(self, grad):
        """In place: by value first, then by global L2 norm (0 disables either)."""
        if self.clip_value > 0.0:
            np.clip(grad, -self.clip_value, self.clip_value, out=grad)
        if self.clip_norm > 0.0:
            norm = math.sqrt(float(grad @ grad))
            if norm > self.clip_norm:
                grad *= self.clip_norm / norm
        return grad

    def step(self, params, grad, single=False):
        """Clip ``grad`` in place, then update ``params`` in place.

        ``single`` (a network's optimizer, ``Optimizer.single``): Adam's moments are float32
        and updated in float32, every operation correctly rounded as the C ones (NumPy's
        float32 ufuncs round each result), the gradient and each new moment clamped to
        +-FLT_MAX; ``params -= lr_t * float64(m / (sqrt(v) + eps))``. The other rules
        ignore it."""
        self.clip(grad)
        g = grad
        lr = self.lr
        if self.s is None:
            dtype = np.float32 if single and self.kind == "adam" else np.float64
            self.s = np.zeros(params.shape, dtype)
            self.v = np.zeros(params.shape, dtype)
        if self.kind == "sgd":
            params -= lr * g
        elif self.kind == "momentum":
            self.s = self.rho * self.s + lr * g
            params -= self.s
        elif self.kind == "nesterov":
            params += self.rho * self.s            # river step: back from the look-ahead point
            self.s = self.rho * self.s + lr * g
            params -= self.s
            params -= self.rho * self.s            # river look_ahead for the next gradient
        elif self.kind == "rmsprop":
            self.s = self.rho * self.s + (1.0 - self.rho) * g ** 2
            params -= lr / (self.s + self.eps) ** 0.5 * g
        elif self.kind == "adam":
            t = self.n_iterations
            lr_t = lr * (1.0 - self.beta_2 ** (t + 1)) ** 0.5 / (1.0 - self.beta_1 ** (t + 1))
            if single:
                f32, big = np.float32, np.finfo(np.float32).max
                b1, c1 = f32(self.beta_1), f32(1.0 - self.beta_1)
                b2, c2 = f32(self.beta_2), f32(1.0 - self.beta_2)
                with np.errstate(over="ignore"):
                    gf = np.clip(g.astype(f32), -big, big)
                    self.s = np.clip(b1 * self.s.astype(f32) + c1 * gf, -big, big)
                    self.v = np.minimum(b2 * self.v.astype(f32) + c2 * gf * gf, big)
                q = self.s / (np.sqrt(self.v) + f32(self.eps))
                params -= lr_t * q.astype(np.float64)
            else:
                self.s = self.beta_1 * self.s + (1.0 - self.beta_1) * g
                self.v = self.beta_2 * self.v + (1.0 - self.beta_2) * g ** 2
                params -= lr_t * self.s / (self.v ** 0.5 + self.eps)
        elif self.kind == "adagrad":
            self.s = self.s + g ** 2
            params -= lr / (self.s + self.eps) ** 0.5 * g
        self.n_iterations += 1
        return params


# --------------------------------------------------------------------------------------------
# The online network
# --------------------------------------------------------------------------------------------
class RefNet:
    """Online recurrent net trained by TBPTT(k1, k2), one observation per ``learn``.

    ``params``/``grad`` are flat vectors with the kernel's layout; ``h``/``c`` are the carried
    states (num_layers, hidden); ``t`` counts committed steps; ``caches[t]`` holds step t
    (1-based, like the counter after the step) for the last B steps (the kernel's ring
    capacity, ``max(k1 + delay, k2)`` with ``delay = n_out - 1`` for the regression losses).
    ``pending[t]`` is the head gradient (already divided by k1) that has arrived for step t
    since the last update: ``learn`` gives its own step one, ``learn_multi`` gives output j of
    the step j calls ago one; an update applies them all and empties ``pending``.
    """

    def __init__(self, cell, n_in, hidden, num_layers, n_out, k1, k2, loss, huber_eps=0.1):
        self.cell, self.n_in, self.hidden = cell, n_in, hidden
        self.num_layers, self.n_out = num_layers, n_out
        self.k1, self.k2, self.loss, self.huber_eps = k1, k2, loss, huber_eps
        self.delay = n_out - 1 if loss in (SQUARED, ABSOLUTE, HUBER) else 0
        self.B = max(k1 + self.delay, k2)
        self.layout, size = make_layout(cell, n_in, hidden, num_layers, n_out)
        self.params = np.zeros(size)
        self.grad = np.zeros(size)
        self.h = np.zeros((num_layers, hidden))
        self.c = np.zeros((num_layers, hidden))
        self.t = 0
        self.last_loss = 0.0
        self.caches = {}
        self.pending = {}
        self.last_output = np.zeros(n_out)
        self.optimizer = RefOptimizer("sgd", 0.01)

    def set_optimizer(self, optimizer):
        self.optimizer = optimizer

    def _blocks(self, vec):
        return unpack(vec, self.layout, self.num_layers)

    def predict(self, x):
        """Head output from the committed state plus one step; no state change."""
        out, _, _, _ = forward_step(self.cell, self._blocks(self.params),
                                    np.asarray(x, dtype=float), self.h, self.c)
        return out

    def learn(self, x, y):
        """One observation. Returns 0 (learned), 1 (learned and updated), -1 (non-finite input
        or target, nothing changed) or -2 (non-finite output/loss/gradient, rolled back)."""
        x = np.array(x, dtype=float)
        y = float(y)
        if not (np.all(np.isfinite(x)) and math.isfinite(y)):
            return -1
        step = self._step(x)
        if step is None:
            return -2
        out, t, caches = step
        with np.errstate(over="ignore", invalid="ignore"):
            L, g = step_loss(self.loss, out, y, self.huber_eps)
        if not (math.isfinite(L) and np.all(np.isfinite(g))):
            return -2
        pending = dict(self.pending)
        pending[t] = g / self.k1
        return self._finish(out, t, caches, pending, L)

    def learn_multi(self, x, y):
        """One step and the delayed targets arriving with it: ``y[j]`` (NaN: none) is the
        target of output j of the step taken j calls ago (j = 0: this one). The loss is
        ``sum_j L(out_j(t - j), y[j])``, out_j(t - j) the head with the CURRENT parameters on
        step t - j's stored top state; its gradient joins ``pending`` at step t - j. Statuses
        as ``learn`` (-1 also for an infinite target)."""
        if self.loss not in (SQUARED, ABSOLUTE, HUBER):
            raise ValueError("learn_multi needs a regression loss")
        x = np.array(x, dtype=float)
        y = np.array(y, dtype=float)
        if not np.all(np.isfinite(x)) or np.any(np.isinf(y)):
            return -1
        step = self._step(x)
        if step is None:
            return -2
        out, t, caches = step
        P = self._blocks(self.params)
        pending = {s: g.copy() for s, g in self.pending.items()}
        L = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for j in range(self.n_out):
                s = t - j
                if math.isnan(y[j]) or s < 1:
                    continue
                o = caches[s]["h_top"] @ P.W_y[:, j] + P.b_y[j]
                Lj, gj = step_loss(self.loss, np.array([o]), y[j], self.huber_eps)
                L += Lj
                pending.setdefault(s, np.zeros(self.n_out))[j] += gj[0] / self.k1
        if not math.isfinite(L):
            return -2
        return self._finish(out, t, caches, pending, L)

    def _step(self, x):
        """Forward one step from the carried state, nothing committed: (out, t, caches) or
        None when the output is not finite."""
        P = self._blocks(self.params)
        with np.errstate(over="ignore", invalid="ignore"):
            out, h_new, c_new, layer_caches = forward_step(self.cell, P, x, self.h, self.c)
        if not np.all(np.isfinite(out)):
            return None
        t = self.t + 1
        caches = dict(self.caches)
        caches[t] = {"layers": layer_caches, "h_top": h_new[-1].copy(), "h": h_new, "c": c_new}
        caches.pop(t - self.B, None)       # keep the last B steps
        return out, t, caches

    def _finish(self, out, t, caches, pending, L):
        """The update if one is due, then commit everything (or nothing: -2)."""
        status = 0
        params, optimizer, grad = self.params, self.optimizer, self.grad
        if t % self.k1 == 0:
            with np.errstate(over="ignore", invalid="ignore"):
                new_grad = self._bptt(caches, t, pending)
            if not np.all(np.isfinite(new_grad)):
                return -2
            params = self.params.copy()
            optimizer = copy.deepcopy(self.optimizer)
            grad = new_grad
            # clips grad in place, then updates params (Adam's moments in float32, as the
            # network's optimizer)
            optimizer.step(params, grad, single=True)
            status = 1
            pending = {}

        # Commit.
        self.params[:] = params
        self.grad[:] = grad
        self.optimizer = optimizer
        self.h, self.c = caches[t]["h"], caches[t]["c"]
        self.caches = caches
        self.pending = pending
        self.t = t
        self.last_loss = L
        self.last_output = out
        return status

    def _bptt(self, caches, t, pending):
        """Gradient of the pending losses, back-propagated through the last W = min(k2, t)
        steps (the state entering the window is a constant). With ``learn`` alone the pending
        steps are the last n = min(k1, t): the gradient of their mean loss."""
        L = self.num_layers
        grad = np.zeros_like(self.params)
        P = self._blocks(self.params)
        G = self._blocks(grad)
        W = min(self.k2, t)

        # Head gradient of every pending step (also those older than the window).
        for s in sorted(pending):
            G.W_y += np.outer(caches[s]["h_top"], pending[s])
            G.b_y += pending[s]

        # Walk the window from newest to oldest. dh[l] / dc[l] hold the gradient reaching
        # layer l's h / c at the step being visited; after that layer's backward they hold
        # what flows on to the next older step.
        dh = np.zeros((L, self.hidden))
        dc = np.zeros((L, self.hidden))
        for s in reversed(range(t - W + 1, t + 1)):
            step = caches[s]
            if s in pending:
                dh[L - 1] += P.W_y @ pending[s]         # g @ W_y^T
            for l in reversed(range(L)):
                dh[l], dc[l], dx = cell_backward(self.cell, P.layers[l], G.layers[l],
                                                 step["layers"][l], dh[l], dc[l])
                if l > 0:
                    dh[l - 1] += dx                     # into the layer below, same step
        return grad
