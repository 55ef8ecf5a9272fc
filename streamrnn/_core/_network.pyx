"""Stacked recurrent cells with a dense head, trained by truncated BPTT one step at a time.

The exact math is stated once, in ``docs/kernel.md``; ``tests/reference.py`` re-states it in
NumPy and the tests hold both equal step by step.

Layers of this module (the cells and losses themselves live in ``_cells``):
- sizes and validation, in Python: ``_check_config`` refuses any size whose buffers exceed
  ``MAX_BYTES`` before anything is allocated, and ``set_state`` validates every field of an
  (untrusted) state before it assigns anything;
- ``Network``: one extension type that owns the flat parameter vector, the flat gradient, the
  carried state, a ring buffer of the last ``B = max(k1 + delay, k2)`` steps (``delay =
  n_out - 1`` for the regression losses, else 0) and scratch buffers. Its
  nogil methods run the network over the cell layer's function pointers, chosen once in
  ``__init__``: ``_forward`` (all layers and the head), ``_learn`` (one committed step, the
  TBPTT(k1, k2) update every k1 steps, roll-back on failure) and ``_backward`` (the window
  walk). It allocates only in ``__init__``; ``learn``, ``predict`` and ``rollout_step``
  allocate nothing.

Ring buffer record of one layer at one step (``rec`` doubles, ``G`` gate blocks of ``H``):
``[h_prev | c_prev | act (G*H) | ext | h | c]`` (see ``_cells.pxd``).

Three sets of records: the ring (committed steps), ``s_rec`` (the roll-out's last step) and
``p_rec`` (the last ``predict``). A ``learn(x, y)`` right after ``predict(x, out)`` with a
bitwise-equal ``x`` and no change of parameters or committed state in between (``_version``)
copies ``p_rec`` into the ring instead of recomputing it: the same numbers, half the forward
cost of the forecast-then-learn loop.
"""
import numpy as np

cimport numpy as cnp
from cpython.object cimport PyObject
from cpython.ref cimport Py_REFCNT
from libc.math cimport isfinite, isnan, signbit
from libc.string cimport memcpy, memset, memcmp

from streamrnn._core._cells cimport (
    CELL_ELMAN_TANH, CELL_ELMAN_RELU, CELL_LSTM, CELL_GRU, LOSS_SQUARED, LOSS_ABSOLUTE,
    LOSS_HUBER, LOSS_BINARY_CE, LOSS_SOFTMAX_CE, N_CELLS, REC_H_BLOCKS, CellKernels,
    cell_kernels, loss_function,
    rec_cprev, rec_h, rec_c, affine, affine_t, outer, axpy, dot)
from streamrnn._core._optim cimport Optimizer, restore_checked
from streamrnn._core._optim import _array, _counter, _number, check_state

cnp.import_array()

ELMAN_TANH = CELL_ELMAN_TANH
ELMAN_RELU = CELL_ELMAN_RELU
LSTM = CELL_LSTM
GRU = CELL_GRU
SQUARED = LOSS_SQUARED
ABSOLUTE = LOSS_ABSOLUTE
HUBER = LOSS_HUBER
BINARY_CE = LOSS_BINARY_CE
SOFTMAX_CE = LOSS_SOFTMAX_CE



def _gates(int code):
    cdef CellKernels k
    if cell_kernels(code, &k) != 0:
        raise ValueError(f"unknown cell code {code}")
    return k.G


# gate blocks per cell, read from the cell layer's table
CELL_GATES = {code: _gates(code) for code in range(N_CELLS)}
_GATES = CELL_GATES
_CELL_NAMES = {ELMAN_TANH: "elman-tanh", ELMAN_RELU: "elman-relu", LSTM: "lstm", GRU: "gru"}
_LOSSES = (SQUARED, ABSOLUTE, HUBER, BINARY_CE, SOFTMAX_CE)


from streamrnn._core._kernels cimport sr_gemm_rows, sr_matvec, sr_select

from streamrnn._core._cells import ISA as _ISA

# this module's copy of the C helpers: the one _cells chose from STREAMRNN_ISA
sr_select(_ISA.encode("ascii"))


# ---------------------------------------------------------------- argument fast path

cdef inline double* _array_data(object x, bint writable):
    """Data pointer of a 1-d, C-contiguous, aligned, native float64 ndarray (writable if asked),
    else NULL. Lets the per-step calls skip memoryview acquisition; anything else takes the
    typed-memoryview path, which accepts (and rejects) exactly what it did before."""
    if not cnp.PyArray_CheckExact(x):
        return NULL
    cdef cnp.ndarray a = <cnp.ndarray>x
    if (cnp.PyArray_NDIM(a) != 1 or cnp.PyArray_TYPE(a) != cnp.NPY_DOUBLE
            or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a)
            or not cnp.PyArray_ISNOTSWAPPED(a) or cnp.PyArray_DIM(a, 0) < 1
            or (writable and not cnp.PyArray_ISWRITEABLE(a))):
        return NULL
    return <double*>cnp.PyArray_DATA(a)



# ---------------------------------------------------------------- the head's gradients

cdef inline void _head_grad(Py_ssize_t H, Py_ssize_t n_out, Py_ssize_t lo, const double* h,
                            const double* g, double* dWy, double* dby) noexcept nogil:
    """dW_y[:, j] += h g[j] and db_y[j] += g[j] for the entries j >= lo of one row (h its top
    state), skipping the entries g[j] == 0. Exact: every element of dW_y and db_y is a sum
    that starts at +0 and so is never -0, and a skipped term is +-0 (h is finite), which
    adds nothing to such a sum; so the result is, bit for bit, the dense sum over all rows
    and entries in the same order (the former outer product, or A^T B over the rows). With
    delayed targets a row has one entry or a few pending (k1 = 1: one), so this is one
    column pass each instead of a product over every column."""
    cdef Py_ssize_t i, j
    cdef double gj
    if lo == 0:
        for j in range(n_out):
            if g[j] == 0.0:
                break
        else:  # every entry pending and non-zero (a classification head): row by row
            outer(H, n_out, h, g, dWy)
            for j in range(n_out):
                dby[j] += g[j]
            return
    for j in range(lo, n_out):
        gj = g[j]
        if gj != 0.0:
            for i in range(H):
                dWy[i * n_out + j] += h[i] * gj
            dby[j] += gj


cdef inline void _head_dh(Py_ssize_t H, Py_ssize_t n_out, Py_ssize_t lo, const double* Wy,
                          const double* g, double* dh) noexcept nogil:
    """dh[i] += dot(W_y[i, lo:], g[lo:]) for every i, the dot of ``_cells.dot`` bit for bit.
    When at most one entry q of g[lo:] is non-zero (with delayed targets and k1 = 1, every
    row), every other product is +-0 (W_y is finite) and dot's lanes and tail start at +0:
    the dot is W_y[i, q] g[q] + 0.0 (the product, a zero of either sign made +0), and +0
    with no entry; otherwise the dot itself."""
    cdef Py_ssize_t i, j, q = -1, n = 0
    cdef double gq
    for j in range(lo, n_out):
        if g[j] != 0.0:
            q = j
            n += 1
    if n == 0:
        for i in range(H):
            dh[i] = dh[i] + 0.0
    elif n == 1:
        gq = g[q]
        for i in range(H):
            dh[i] = dh[i] + (Wy[i * n_out + q] * gq + 0.0)
    elif lo == 0:
        affine_t(H, n_out, Wy, g, dh)
    else:
        for i in range(H):
            dh[i] += dot(n_out - lo, Wy + i * n_out + lo, g + lo)


# ---------------------------------------------------------------- sizes (Python ints)

MAX_BYTES = 2 ** 31           # one network's buffers (params, grad, ring, moments, scratch)


def _int_arg(value, name, lo):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return v


_REGRESSION = (SQUARED, ABSOLUTE, HUBER)


def ring_delay(n_out, loss):
    """How many calls late a target may arrive (``learn_multi``): ``n_out - 1`` for the
    regression losses, 0 for the classification losses (which ``learn_multi`` refuses)."""
    return n_out - 1 if loss in _REGRESSION else 0


def ring_capacity(k1, k2, n_out, loss):
    """Steps the ring buffer holds: ``max(k1 + ring_delay(n_out, loss), k2)``; the shapes of
    ``ring_x``, ``ring_r`` and ``ring_g`` in the state have this many rows. For ``n_out == 1``
    and for the classification losses it is ``max(k1, k2)``, as before delayed targets."""
    return max(k1 + ring_delay(n_out, loss), k2)


def footprint(cell, n_in, hidden_size, num_layers, n_out, k1, k2, loss=SQUARED):
    """Doubles one network allocates, by buffer group, computed with Python ints (no
    overflow): ``(P, total)`` where P is the parameter count and ``total`` counts params,
    grad, the two optimizer moments, the ring buffer, the state and every scratch buffer."""
    G, H, L = _GATES[cell], hidden_size, num_layers
    GH, R = G * H, 5 * hidden_size + _GATES[cell] * hidden_size
    B, dl = ring_capacity(k1, k2, n_out, loss), ring_delay(n_out, loss)
    P = (n_in * GH + (L - 1) * H * GH + L * (H * GH + GH) + (L * H if cell == GRU else 0)
         + H * n_out + n_out)
    state = 2 * L * H + B * (n_in + L * R + n_out) + n_out
    # s_rec, p_rec, bk_r; s_h, s_c, s_dhc, s_dcc; s_a, s_ah; s_dh, s_dx; p_x, bk_x;
    # p_out, bk_g, bk_o; s_da, s_dah2 (1 double unless GRU); s_rows (pointers, 8 bytes);
    # bk_d, s_gm; s_gf (1 double without delayed targets)
    scratch = (3 * L * R + 4 * L * H + 2 * GH + 2 * H + 2 * n_in + 3 * n_out
               + 2 * k2 * L * GH + 1 + 2 * L * k2
               + 2 * n_out + max(dl, 1))
    return P, 4 * P + state + scratch


def _check_config(cell, n_in, hidden_size, num_layers, n_out, k1, k2, loss, huber_eps):
    """Validated constructor arguments, or ValueError (sizes whose buffers would exceed
    MAX_BYTES are refused before anything is allocated)."""
    if isinstance(cell, (bool, np.bool_)) or not isinstance(cell, (int, np.integer)) \
            or int(cell) not in _GATES:
        raise ValueError(f"unknown cell code {cell!r}")
    if isinstance(loss, (bool, np.bool_)) or not isinstance(loss, (int, np.integer)) \
            or int(loss) not in _LOSSES:
        raise ValueError(f"unknown loss code {loss!r}")
    cell, loss = int(cell), int(loss)
    n_in, hidden_size, num_layers, n_out = (
        _int_arg(v, n, 1) for v, n in ((n_in, "n_in"), (hidden_size, "hidden_size"),
                                       (num_layers, "num_layers"), (n_out, "n_out")))
    k1, k2 = _int_arg(k1, "k1", 1), _int_arg(k2, "k2", 1)
    if loss == LOSS_BINARY_CE and n_out != 1:
        raise ValueError("binary cross-entropy needs n_out == 1")
    if isinstance(huber_eps, (bool, np.bool_)) or not isinstance(
            huber_eps, (int, float, np.integer, np.floating)):
        raise ValueError("huber_eps must be a number")
    try:
        huber_eps = float(huber_eps)
    except OverflowError:
        raise ValueError("huber_eps is out of range") from None
    if not (huber_eps > 0) or not isfinite(huber_eps):
        raise ValueError("huber_eps must be a finite number > 0")
    P, total = footprint(cell, n_in, hidden_size, num_layers, n_out, k1, k2, loss)
    if 8 * total > MAX_BYTES:
        raise ValueError(
            f"this network would allocate {8 * total} bytes (P = {P} parameters), more than "
            f"the limit of {MAX_BYTES}: reduce hidden_size, num_layers, k1, k2, n_in or n_out")
    return cell, n_in, hidden_size, num_layers, n_out, k1, k2, loss, huber_eps


# ---------------------------------------------------------------- the network

cdef class Network:
    """Stacked recurrent cells and a linear head, trained online by TBPTT(k1, k2).

    ``Network(cell, n_in, hidden_size, num_layers, n_out, k1=1, k2=16, loss=0, huber_eps=0.1)``
    with the cell and loss codes of this module. Sizes whose buffers would exceed 2**31 bytes
    are refused (ValueError). Typed attributes are declared, with their symbols and shapes,
    in ``_network.pxd``.
    """

    def __init__(self, cell, n_in, hidden_size, num_layers, n_out, k1=1, k2=16, loss=0,
                 huber_eps=0.1):
        cell, n_in, hidden_size, num_layers, n_out, k1, k2, loss, huber_eps = _check_config(
            cell, n_in, hidden_size, num_layers, n_out, k1, k2, loss, huber_eps)
        # until the last line, the network refuses to run (n_in == 0): an __init__ that fails
        # half-way (MemoryError) cannot leave kernels and buffers of different sizes in use
        self.n_in = 0
        self.size = 0
        if cell_kernels(cell, &self.kern) != 0:
            raise ValueError(f"unknown cell code {cell}")
        self.loss_fn = loss_function(loss)
        if self.loss_fn == NULL:
            raise ValueError(f"unknown loss code {loss}")
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.n_out, self.k1, self.k2, self.loss, self.huber_eps = n_out, k1, k2, loss, huber_eps
        self.G = self.kern.G
        self.delay = ring_delay(n_out, loss)
        self.B = ring_capacity(k1, k2, n_out, loss)
        cdef Py_ssize_t H = hidden_size, G = self.G, L = num_layers
        self.rec = REC_H_BLOCKS * H + G * H
        o_wx = np.zeros(L, dtype=np.intp)
        o_wh = np.zeros(L, dtype=np.intp)
        o_b = np.zeros(L, dtype=np.intp)
        o_bhn = np.zeros(L, dtype=np.intp)
        layout = {}
        off = 0  # a Python int: the sizes were bounded by _check_config
        for l in range(L):
            d = n_in if l == 0 else H
            o_wx[l] = off; layout[f"W_x{l}"] = (off, (d, G * H)); off += d * G * H
            o_wh[l] = off; layout[f"W_h{l}"] = (off, (H, G * H)); off += H * G * H
            o_b[l] = off; layout[f"b{l}"] = (off, (G * H,)); off += G * H
            o_bhn[l] = off
            if self.kern.has_bhn:
                layout[f"b_hn{l}"] = (off, (H,)); off += H
        self.o_wy = off; layout["W_y"] = (off, (H, n_out)); off += H * n_out
        self.o_by = off; layout["b_y"] = (off, (n_out,)); off += n_out
        self.size = off
        self.o_wx, self.o_wh, self.o_b, self.o_bhn = o_wx, o_wh, o_b, o_bhn
        self._layout = layout
        self.t = 0
        self.last_loss = 0.0
        self.optimizer = None
        self._version = 1
        self.p_version = 0
        B, R = self.B, self.rec
        self._set_arrays({
            "params": np.zeros(off), "h": np.zeros((L, H)), "c": np.zeros((L, H)),
            "ring_x": np.zeros((B, n_in)), "ring_r": np.zeros((B, L, R)),
            "ring_g": np.zeros((B, n_out)), "out": np.zeros(n_out),
        })
        # every buffer below is used; footprint() counts each
        self._scratch = {
            "grad": np.zeros(off),
            # s_ah: the GRU's separate recurrent pre-activations (the other cells add them to s_a)
            "s_a": np.zeros(G * H), "s_ah": np.zeros(G * H if self.kern.separate_dah else 1),
            "s_rec": np.zeros(L * R), "s_h": np.zeros(L * H), "s_c": np.zeros(L * H),
            "p_rec": np.zeros(L * R), "p_x": np.zeros(n_in), "p_out": np.zeros(n_out),
            "s_dh": np.zeros(H), "s_dx": np.zeros(H),
            "s_dhc": np.zeros(L * H), "s_dcc": np.zeros(L * H),
            "s_da": np.zeros(k2 * L * G * H),
            "s_dah2": np.zeros(k2 * L * G * H if self.kern.separate_dah else 1),
            "s_rows": np.zeros(2 * L * k2, dtype=np.intp),
            "bk_x": np.zeros(n_in), "bk_r": np.zeros(L * R), "bk_g": np.zeros(n_out),
            "bk_o": np.zeros(n_out), "bk_d": np.zeros(n_out), "s_gm": np.zeros(n_out),
            "s_gf": np.zeros(max(self.delay, 1)),
        }
        s = self._scratch
        self.dw = s["grad"]
        self.s_a, self.s_ah = s["s_a"], s["s_ah"]
        self.s_rec, self.s_h, self.s_c = s["s_rec"], s["s_h"], s["s_c"]
        self.p_rec, self.p_x, self.p_out = s["p_rec"], s["p_x"], s["p_out"]
        self.s_dh, self.s_dx, self.s_dhc, self.s_dcc = s["s_dh"], s["s_dx"], s["s_dhc"], s["s_dcc"]
        self.s_da, self.s_dah2, self.s_rows = s["s_da"], s["s_dah2"], s["s_rows"]
        self.p_dah = &self.s_dah2[0] if self.kern.separate_dah else &self.s_da[0]
        self.bk_x, self.bk_r, self.bk_g, self.bk_o = s["bk_x"], s["bk_r"], s["bk_g"], s["bk_o"]
        self.bk_d, self.s_gm, self.s_gf = s["bk_d"], s["s_gm"], s["s_gf"]
        self.n_in = n_in

    def _shapes(self, B=None):
        L, H = self.num_layers, self.hidden_size
        B = self.B if B is None else B
        return {"params": (self.size,), "h": (L, H), "c": (L, H),
                "ring_x": (B, self.n_in), "ring_r": (B, L, self.rec),
                "ring_g": (B, self.n_out), "out": (self.n_out,)}

    def _check_arrays(self, arrays, B=None):
        """Validated copies of the state arrays (exact float64 ndarrays, exact shapes, finite)."""
        return {name: _array(arrays[name], name, shape)
                for name, shape in self._shapes(B).items()}

    cdef void _set_arrays(self, dict new):
        """Adopt validated state arrays (from ``_check_arrays``; cdef: Python cannot hand it
        arrays of other shapes)."""
        self._arrays = new
        self.w = new["params"]
        self.h = new["h"].reshape(-1)
        self.c = new["c"].reshape(-1)
        self.ring_x = new["ring_x"].reshape(-1)
        self.ring_r = new["ring_r"].reshape(-1)
        self.ring_g = new["ring_g"].reshape(-1)
        self.out = new["out"]
        self._version += 1
        cdef int i
        for i, name in enumerate(("params", "h", "c")):
            self._watched[i] = <PyObject*>new[name]
            self._own_refs[i] = Py_REFCNT(new[name]) - 1  # minus this call's temporary

    cdef bint _no_views(self) noexcept nogil:
        """True when nobody outside holds a view of params, h or c (their reference counts are
        those of the network's own references), so nothing can write them unseen."""
        cdef int i
        for i in range(3):
            if self._watched[i].ob_refcnt != self._own_refs[i]:
                return False
        return True

    # ------------------------------------------------------------ Python views
    # ``params``, ``view``, ``h`` and ``c`` hand out writable views of what the forward pass
    # reads, so each call invalidates a cached predict; and a predict made while such a view
    # is alive (reference counts, see _no_views) is not cached at all.
    @property
    def params(self):
        self._version += 1
        return self._arrays["params"]

    @property
    def grad(self):
        return self._scratch["grad"]

    @property
    def h(self):
        self._version += 1
        return self._arrays["h"]

    @property
    def c(self):
        self._version += 1
        return self._arrays["c"]

    @property
    def last_output(self):
        """Head output of the last learned step (the prediction made before its target was used)."""
        return self._arrays["out"]

    @property
    def _forward_cached(self):
        """Whether a learn with predict's last input would reuse predict's forward pass."""
        return self.p_version == self._version

    @property
    def layout(self):
        return dict(self._layout)

    def view(self, str name):
        """Named view into the flat parameter vector, e.g. ``view("W_h0")``."""
        off, shape = self._layout[name]
        n = int(np.prod(shape))
        self._version += 1
        return self._arrays["params"][off:off + n].reshape(shape)

    def set_optimizer(self, Optimizer opt):
        """Attach ``opt``, bound to this network's parameters, its Adam moments in float32
        from now on (``Optimizer.use_single``; ValueError, nothing attached, if one held is
        beyond float32's range)."""
        opt.bind(self.size)
        opt.use_single()
        self.optimizer = opt

    # ------------------------------------------------------------ kernels
    cdef void _forward(self, const double* x, const double* h0, const double* c0, double* recs,
                       double* out) noexcept nogil:
        """All layers for one step from state (h0, c0): records into ``recs``, head into ``out``."""
        cdef Py_ssize_t H = self.hidden_size, L = self.num_layers, R = self.rec
        cdef Py_ssize_t GH = self.G * H, l
        cdef double* w = &self.w[0]
        cdef const double* xin = x
        for l in range(L):
            self.kern.forward(self.n_in if l == 0 else H, H, xin, h0 + l * H, c0 + l * H,
                              w + self.o_wx[l], w + self.o_wh[l], w + self.o_b[l],
                              w + self.o_bhn[l], &self.s_a[0], &self.s_ah[0], recs + l * R)
            xin = rec_h(recs + l * R, H, GH)
        memcpy(out, w + self.o_by, self.n_out * sizeof(double))
        affine(H, self.n_out, xin, w + self.o_wy, out)

    cdef void _take_state(self, const double* recs, double* h1, double* c1) noexcept nogil:
        """The new state (h, c) of every layer, from its records."""
        cdef Py_ssize_t H = self.hidden_size, R = self.rec, GH = self.G * H, l
        for l in range(self.num_layers):
            memcpy(h1 + l * H, rec_h(recs + l * R, H, GH), H * sizeof(double))
            memcpy(c1 + l * H, rec_c(recs + l * R, H, GH), H * sizeof(double))

    cdef void _mask_delayed(self, Py_ssize_t n_inj) noexcept nogil:
        """For the ring rows ``a`` in ``[k1, n_inj)`` (``a`` calls before the newest step): only
        entries ``j >= a - k1 + 1`` arrived since the last update (entry j of a step arrives j
        calls after it; the older ones were applied before). ``s_gf[a - k1]`` gets that first
        entry, or ``n_out`` when none of them is non-zero (the row is skipped)."""
        cdef Py_ssize_t k1 = self.k1, n_out = self.n_out, a, j, s, lo
        cdef const double* g
        for a in range(k1, n_inj):
            s = <Py_ssize_t>((self.t - 1 - a) % self.B)
            g = &self.ring_g[s * n_out]
            lo = a - k1 + 1
            self.s_gf[a - k1] = <double>n_out
            for j in range(lo, n_out):
                if g[j] != 0.0:
                    self.s_gf[a - k1] = <double>lo
                    break

    cdef Py_ssize_t _pending_lo(self, Py_ssize_t a) noexcept nogil:
        """First pending entry of the row ``a`` calls before the newest (0 within the last k1
        steps: the whole row), ``n_out`` for nothing pending."""
        if a < self.k1:
            return 0
        return <Py_ssize_t>self.s_gf[a - self.k1]

    cdef void _backward(self) noexcept nogil:
        """Gradient of the pending losses through the last min(k2, t) steps.

        The pending losses: those of the last min(k1, t) steps (``learn``) and, for the
        regression losses, the delayed ones of up to ``delay`` older steps that arrived since
        the last update (``learn_multi``); each enters the walk at its own step.

        The window walk (newest to oldest) computes only what is sequential: the gate
        gradients ``dax``/``dah`` of every (step, layer), kept in ``s_da``/``s_dah2``, and the
        carried ``dh``/``dc``. The parameter gradients ``dW_x = X^T DA``, ``dW_h = H_prev^T DA``
        and ``db`` follow after the walk as small matrix products (``sr_gemm_rows``: X and
        H_prev by the row pointers of the steps' ring records, no transposed copy), each
        gradient row summed over the steps newest first (the order of the step-by-step
        accumulation), and written rather than accumulated, so the gradient needs no clearing.

        The head: ``dW_y``, ``db_y`` and each injected row's ``dh`` come from the row's pending
        gradient entries only (``_head_grad``, ``_head_dh``): with delayed targets a row has
        one pending entry or a few (k1 = 1: one), and the zero entries add nothing, bit for
        bit, to sums that start at +0; so a row costs one column pass per entry, not a
        product over all ``n_out`` columns.
        """
        cdef Py_ssize_t H = self.hidden_size, L = self.num_layers, R = self.rec, G = self.G
        cdef Py_ssize_t GH = G * H, n_out = self.n_out, B = self.B, k2 = self.k2
        cdef Py_ssize_t n_in = self.n_in
        cdef long long t = self.t
        cdef long long reach = self.k1 + self.delay    # rows an update can inject
        cdef Py_ssize_t n_inj = <Py_ssize_t>(reach if reach < t else t)
        cdef Py_ssize_t W = <Py_ssize_t>(self.k2 if self.k2 < t else t)
        cdef double* w = &self.w[0]
        cdef double* dw = &self.dw[0]
        cdef double* dhc = &self.s_dhc[0]
        cdef double* dcc = &self.s_dcc[0]
        cdef double* dh = &self.s_dh[0]
        cdef double* dx = &self.s_dx[0]
        cdef double* DA = &self.s_da[0]
        cdef double* DAH = self.p_dah
        cdef const double** XR = <const double**><void*>&self.s_rows[0]
        cdef const double** HR = XR + L * k2
        cdef double* r
        cdef const double* x
        cdef const double* g
        cdef Py_ssize_t a, l, s, j, d, i, lo
        if n_inj > self.k1:
            self._mask_delayed(n_inj)
        memset(dhc, 0, L * H * sizeof(double))
        memset(dcc, 0, L * H * sizeof(double))
        # head gradient of every injected step: dW_y += h_top^T g and db_y += g per row,
        # newest row first, only the columns of its pending entries (see _head_grad)
        memset(dw + self.o_wy, 0, (H * n_out + n_out) * sizeof(double))
        for a in range(n_inj):
            s = <Py_ssize_t>((t - 1 - a) % B)
            lo = self._pending_lo(a)
            if lo >= n_out:
                continue
            _head_grad(H, n_out, lo, rec_h(&self.ring_r[(s * L + L - 1) * R], H, GH),
                       &self.ring_g[s * n_out], dw + self.o_wy, dw + self.o_by)
        for a in range(W):
            s = <Py_ssize_t>((t - 1 - a) % B)
            for l in range(L - 1, -1, -1):
                r = &self.ring_r[(s * L + l) * R]
                # total dh reaching h of (step s, layer l)
                memcpy(dh, dhc + l * H, H * sizeof(double))
                if l == L - 1:
                    if a < n_inj:
                        lo = self._pending_lo(a)
                        if lo < n_out:
                            _head_dh(H, n_out, lo, w + self.o_wy, &self.ring_g[s * n_out], dh)
                else:
                    for j in range(H):
                        dh[j] += dx[j]
                # the cell: gate gradients, carried dc, and dh to the older step (same layer)
                self.kern.backward(H, r, w + self.o_wh[l], dh, dcc + l * H,
                                   DA + (a * L + l) * GH, DAH + (a * L + l) * GH, dhc + l * H)
                # this step's layer input and previous state (the record begins with it), by
                # their rows, for the gradient products
                if l == 0:
                    XR[l * k2 + a] = &self.ring_x[s * n_in]
                else:
                    XR[l * k2 + a] = rec_h(&self.ring_r[(s * L + l - 1) * R], H, GH)
                HR[l * k2 + a] = r
                # to the layer below (same step)
                if l > 0:
                    sr_matvec(H, GH, w + self.o_wx[l], DA + (a * L + l) * GH, NULL, dx)
        # parameter gradients from the stored gate gradients
        for l in range(L):
            d = n_in if l == 0 else H
            sr_gemm_rows(d, GH, W, XR + l * k2, DA + l * GH, L * GH, dw + self.o_wx[l])
            sr_gemm_rows(H, GH, W, HR + l * k2, DAH + l * GH, L * GH, dw + self.o_wh[l])
            self.kern.bias_backward(W, L * GH, H, DA + l * GH, DAH + l * GH, dw + self.o_b[l],
                                    dw + self.o_bhn[l])

    def learn(self, x, double y):
        """Commit one step with target ``y`` and update every k1 steps; returns a status code.

        ``x``: 1-d float64 buffer of ``n_in`` values. 0: learned; 1: learned and updated;
        -1: non-finite input or target (nothing changed); -2: non-finite output, loss or
        gradient (the step was rolled back). Right after ``predict(x, out)`` with a
        bitwise-equal ``x`` (and no change in between) the forward pass is reused.
        """
        cdef const double* xp = _array_data(x, False)
        if xp == NULL:
            return self._learn_buffer(x, y)
        return self._learn_checked(xp, cnp.PyArray_DIM(<cnp.ndarray>x, 0), y)

    cdef object _learn_buffer(self, const double[::1] x, double y):
        return self._learn_checked(&x[0] if x.shape[0] > 0 else NULL, x.shape[0], y)

    cdef object _learn_checked(self, const double* x, Py_ssize_t n, double y):
        if n != self.n_in or n == 0:  # n_in == 0 only without __init__
            raise ValueError(f"the input has {n} values, the network expects {self.n_in}")
        cdef Py_ssize_t i
        for i in range(n):
            if not isfinite(x[i]):
                return BAD_INPUT
        if not isfinite(y):
            return BAD_INPUT
        if self.loss == LOSS_SOFTMAX_CE and not (0 <= y < self.n_out and y == <Py_ssize_t>y):
            raise ValueError(f"class index {y} is out of range for {self.n_out} outputs")
        if self.loss == LOSS_BINARY_CE and not (y == 0.0 or y == 1.0):
            raise ValueError(f"binary target must be 0 or 1, got {y}")
        if self.optimizer is None:
            raise RuntimeError("no optimizer: call set_optimizer first")
        if self.optimizer.size != self.size:
            raise RuntimeError("the optimizer was re-bound to another size: call set_optimizer")
        cdef int status = 0
        with nogil:
            status = self._learn(x, y)
        return status

    cdef void _start_step(self, const double* x, double* rx, double* rr, double* rg,
                          double* out) noexcept nogil:
        # the forward half of a learning step into ring slot (rx, rr, rg): back up what it
        # overwrites (for roll-back), record x, run the forward (or take predict(x)'s, which
        # ran it from this state with these parameters) and move the state on; the step's
        # records keep copies of the previous h and c
        cdef Py_ssize_t L = self.num_layers, R = self.rec, n_out = self.n_out
        cdef Py_ssize_t n_in = self.n_in
        memcpy(&self.bk_x[0], rx, n_in * sizeof(double))
        memcpy(&self.bk_r[0], rr, L * R * sizeof(double))
        memcpy(&self.bk_g[0], rg, n_out * sizeof(double))
        memcpy(&self.bk_o[0], out, n_out * sizeof(double))
        memcpy(rx, x, n_in * sizeof(double))
        if self.p_version == self._version and memcmp(&self.p_x[0], x, n_in * sizeof(double)) == 0:
            memcpy(rr, &self.p_rec[0], L * R * sizeof(double))
            memcpy(out, &self.p_out[0], n_out * sizeof(double))
        else:
            self._forward(x, &self.h[0], &self.c[0], rr, out)
        self._take_state(rr, &self.h[0], &self.c[0])
        self._version += 1

    cdef int _learn(self, const double* x, double y) noexcept nogil:
        cdef Py_ssize_t L = self.num_layers, R = self.rec, n_out = self.n_out
        cdef Py_ssize_t n_in = self.n_in, k
        cdef Py_ssize_t s = <Py_ssize_t>(self.t % self.B)
        cdef double* rx = &self.ring_x[s * n_in]
        cdef double* rr = &self.ring_r[s * L * R]
        cdef double* rg = &self.ring_g[s * n_out]
        cdef double* out = &self.out[0]
        cdef double loss
        self._start_step(x, rx, rr, rg, out)
        # a fresh row: the regression losses write entry 0 only, and the slot may still hold
        # the delayed entries of the step B calls ago
        memset(rg, 0, n_out * sizeof(double))
        loss = self.loss_fn(out, y, n_out, self.huber_eps, rg)
        for k in range(n_out):
            rg[k] /= self.k1
        if not isfinite(loss):
            self._rollback(s)
            return DIVERGED
        self.t += 1
        if self.t % self.k1 != 0:
            self.last_loss = loss
            return LEARNED
        self._backward()
        if self.optimizer.clip_apply(self.w, self.dw) < 0:  # nothing applied then
            self.t -= 1
            self._rollback(s)
            return DIVERGED
        self.last_loss = loss
        return UPDATED

    def learn_multi(self, x, y):
        """Commit one step and the delayed targets that arrive with it; update every k1 calls.

        ``x``: 1-d float64 buffer of ``n_in`` values; ``y``: one of ``n_out`` values, ``y[j]``
        the target of output j of the step taken j calls ago (``j = 0``: the step this call
        takes), NaN for no target (targets for steps before the first are ignored). The loss
        of the call is ``sum_j L(out_j(t - j), y[j])`` where ``out_j(t - j)`` is output j of
        the head applied, with the current ``W_y`` and ``b_y``, to the stored top state of step
        ``t - j`` (for ``j = 0`` that is this call's forward output); each gradient enters the
        TBPTT walk at its own step, and every k1 calls one update applies all the gradients
        that arrived since the last one (divided by k1, as ``learn``'s). Regression losses
        only (ValueError otherwise). Statuses as ``learn``: 0 learned, 1 learned and updated,
        -1 a non-finite input or an infinite target (nothing changed), -2 a non-finite loss or
        gradient (rolled back: nothing changed, pending gradients included). ``last_output``
        then holds this step's forward outputs (computed before the update) and ``last_loss``
        the call's summed loss. With only ``y[0]`` given it equals ``learn(x, y[0])``. Reuses
        predict's forward pass like ``learn``.
        """
        cdef const double* xp = _array_data(x, False)
        cdef const double* yp = _array_data(y, False)
        if xp == NULL or yp == NULL:
            return self._learn_multi_buffer(x, y)
        return self._learn_multi_checked(xp, cnp.PyArray_DIM(<cnp.ndarray>x, 0), yp,
                                         cnp.PyArray_DIM(<cnp.ndarray>y, 0))

    cdef object _learn_multi_buffer(self, const double[::1] x, const double[::1] y):
        return self._learn_multi_checked(&x[0] if x.shape[0] > 0 else NULL, x.shape[0],
                                         &y[0] if y.shape[0] > 0 else NULL, y.shape[0])

    cdef object _learn_multi_checked(self, const double* x, Py_ssize_t n, const double* y,
                                     Py_ssize_t m):
        if n != self.n_in or n == 0:  # n_in == 0 only without __init__
            raise ValueError(f"the input has {n} values, the network expects {self.n_in}")
        if m != self.n_out:
            raise ValueError(f"the targets have {m} values, the network has {self.n_out} outputs")
        if self.loss not in _REGRESSION:
            raise ValueError("learn_multi needs a regression loss (squared, absolute or Huber)")
        if self.optimizer is None:
            raise RuntimeError("no optimizer: call set_optimizer first")
        if self.optimizer.size != self.size:
            raise RuntimeError("the optimizer was re-bound to another size: call set_optimizer")
        cdef int status = 0
        with nogil:
            status = self._learn_multi(x, y)
        return status

    cdef int _learn_multi(self, const double* x, const double* y) noexcept nogil:
        """``learn_multi`` without the GIL: ``x`` of ``n_in`` and ``y`` of ``n_out`` doubles.

        Checks what it needs itself and never fails hard: -1 for a non-finite ``x`` or an
        infinite ``y[j]``, -3 (``MISUSE``) for a classification loss or an optimizer that is
        missing or bound to another size; else as ``learn_multi``.
        """
        cdef Py_ssize_t L = self.num_layers, R = self.rec, n_out = self.n_out
        cdef Py_ssize_t n_in = self.n_in, H = self.hidden_size, GH = self.G * self.hidden_size
        cdef Py_ssize_t B = self.B, i, j, sj
        cdef long long t0 = self.t
        cdef Py_ssize_t s
        cdef double* rx
        cdef double* rr
        cdef double* rg
        cdef double* out
        cdef double* gm = &self.s_gm[0]
        cdef double* bd = &self.bk_d[0]
        cdef const double* w = &self.w[0]
        cdef const double* hp[4]
        cdef const double* wp[4]
        cdef double ac[4]
        cdef const double* h0
        cdef const double* h1
        cdef const double* h2
        cdef const double* h3
        cdef const double* w0
        cdef const double* w1
        cdef const double* w2
        cdef const double* w3
        cdef double a0, a1, a2, a3
        cdef Py_ssize_t jm, nb, k, jj
        cdef double loss = 0.0, lj, o, gj
        cdef bint negz
        if n_in == 0 or self.delay != n_out - 1 or not (
                self.loss == LOSS_SQUARED or self.loss == LOSS_ABSOLUTE
                or self.loss == LOSS_HUBER):
            return MISUSE
        if self.optimizer is None or self.optimizer.size != self.size:
            return MISUSE
        for i in range(n_in):
            if not isfinite(x[i]):
                return BAD_INPUT
        for j in range(n_out):
            if not isfinite(y[j]) and not isnan(y[j]):
                return BAD_INPUT
        s = <Py_ssize_t>(t0 % B)
        rx = &self.ring_x[s * n_in]
        rr = &self.ring_r[s * L * R]
        rg = &self.ring_g[s * n_out]
        out = &self.out[0]
        self._start_step(x, rx, rr, rg, out)
        # a step with no target for its own outputs must not commit a non-finite state either
        for j in range(n_out):
            if not isfinite(out[j]):
                self._rollback(s)
                return DIVERGED
        # the gradients of this call into scratch first: nothing pending changes unless all
        # of them are finite. Output j of the head on the stored top state of the step j
        # calls ago, four outputs at a time read straight from the ring (no gathered copy):
        # each output summed in the forward's order (sr_affine: b_y, then rows in order, a
        # zero input adding nothing, not even the sign of a zero). The skipped zero inputs
        # change nothing in a sum that is never -0: unless b_y[j] is -0, every partial sum is
        # +0 or non-zero and a zero term (+-0, W_y is finite) adds nothing, so all terms are
        # added, branch-free; a block with a -0 among its b_y entries takes the select
        jm = n_out - 1 if n_out - 1 < t0 else <Py_ssize_t>t0
        j = 1
        while j <= jm:
            nb = jm - j + 1 if jm - j + 1 < 4 else 4
            negz = False
            for k in range(4):
                jj = j + k if k < nb else j      # a short block repeats its first output
                sj = <Py_ssize_t>((t0 - jj) % B)
                hp[k] = rec_h(&self.ring_r[(sj * L + L - 1) * R], H, GH)
                wp[k] = w + self.o_wy + jj
                ac[k] = w[self.o_by + jj]
                negz = negz or (ac[k] == 0.0 and signbit(ac[k]))
            h0, h1, h2, h3 = hp[0], hp[1], hp[2], hp[3]
            w0, w1, w2, w3 = wp[0], wp[1], wp[2], wp[3]
            a0, a1, a2, a3 = ac[0], ac[1], ac[2], ac[3]
            if negz:
                for i in range(H):
                    a0 = (a0 + h0[i] * w0[i * n_out]) if h0[i] != 0.0 else a0
                    a1 = (a1 + h1[i] * w1[i * n_out]) if h1[i] != 0.0 else a1
                    a2 = (a2 + h2[i] * w2[i * n_out]) if h2[i] != 0.0 else a2
                    a3 = (a3 + h3[i] * w3[i * n_out]) if h3[i] != 0.0 else a3
            else:
                for i in range(H):
                    a0 = a0 + h0[i] * w0[i * n_out]
                    a1 = a1 + h1[i] * w1[i * n_out]
                    a2 = a2 + h2[i] * w2[i * n_out]
                    a3 = a3 + h3[i] * w3[i * n_out]
            ac[0], ac[1], ac[2], ac[3] = a0, a1, a2, a3
            for k in range(nb):
                gm[j + k] = ac[k]
            j += nb
        for j in range(n_out):
            if isnan(y[j]) or j > t0:
                gm[j] = 0.0
                continue
            o = out[0] if j == 0 else gm[j]
            gj = 0.0
            lj = self.loss_fn(&o, y[j], 1, self.huber_eps, &gj)
            loss += lj
            gm[j] = gj / self.k1
        if not isfinite(loss):
            self._rollback(s)
            return DIVERGED
        # commit them: a fresh row for this step, entry j of the step j calls ago
        memset(rg, 0, n_out * sizeof(double))
        rg[0] = gm[0]
        for j in range(1, n_out):
            if j <= t0:
                sj = <Py_ssize_t>((t0 - j) % B)
                bd[j] = self.ring_g[sj * n_out + j]
                self.ring_g[sj * n_out + j] = gm[j]
        self.t += 1
        if self.t % self.k1 != 0:
            self.last_loss = loss
            return LEARNED
        self._backward()
        if self.optimizer.clip_apply(self.w, self.dw) < 0:  # nothing applied then
            self.t -= 1
            for j in range(1, n_out):
                if j <= t0:
                    sj = <Py_ssize_t>((t0 - j) % B)
                    self.ring_g[sj * n_out + j] = bd[j]
            self._rollback(s)
            return DIVERGED
        self.last_loss = loss
        return UPDATED

    cdef void _rollback(self, Py_ssize_t s) noexcept nogil:
        cdef Py_ssize_t L = self.num_layers, H = self.hidden_size, R = self.rec, l
        cdef double* rr = &self.ring_r[s * L * R]
        for l in range(L):
            # the record of the failed step begins with the previous h and c of its layer
            memcpy(&self.h[l * H], rr + l * R, H * sizeof(double))
            memcpy(&self.c[l * H], rec_cprev(rr + l * R, H), H * sizeof(double))
        memcpy(&self.ring_x[s * self.n_in], &self.bk_x[0], self.n_in * sizeof(double))
        memcpy(rr, &self.bk_r[0], L * R * sizeof(double))
        memcpy(&self.ring_g[s * self.n_out], &self.bk_g[0], self.n_out * sizeof(double))
        memcpy(&self.out[0], &self.bk_o[0], self.n_out * sizeof(double))

    def predict(self, x, out):
        """Head output for input ``x`` one step past the committed state; changes nothing
        (neither the committed state nor the roll-out state).

        ``x``: 1-d float64 buffer of ``n_in`` values; ``out``: writable one of ``n_out``.
        """
        self._step_from(x, out, False)

    cdef void _step_from(self, x, out, bint rollout) except *:
        """One forward step into ``out``: from the committed state into predict's own records,
        or, with ``rollout``, from the roll-out state, which it advances."""
        cdef const double* xp = _array_data(x, False)
        cdef double* op = _array_data(out, True)
        if xp == NULL or op == NULL:  # not a contiguous float64 ndarray: the buffer protocol
            self._step_buffer(x, out, rollout)
            return
        self._step_ptr(xp, cnp.PyArray_DIM(<cnp.ndarray>x, 0), op,
                       cnp.PyArray_DIM(<cnp.ndarray>out, 0), rollout)

    cdef void _step_buffer(self, const double[::1] x, double[::1] out, bint rollout) except *:
        self._step_ptr(&x[0] if x.shape[0] > 0 else NULL, x.shape[0],
                       &out[0] if out.shape[0] > 0 else NULL, out.shape[0], rollout)

    cdef void _step_ptr(self, const double* x, Py_ssize_t nx, double* out, Py_ssize_t no,
                        bint rollout) except *:
        if nx != self.n_in or no != self.n_out or nx == 0:  # n_in == 0 only without __init__
            raise ValueError("wrong input or output size")
        with nogil:
            if rollout:
                self._forward(x, &self.s_h[0], &self.s_c[0], &self.s_rec[0], out)
                self._take_state(&self.s_rec[0], &self.s_h[0], &self.s_c[0])
            else:
                self._predict(x, out)

    cdef void _predict(self, const double* x, double* out) noexcept nogil:
        """``predict`` without the GIL: ``x`` of ``n_in``, ``out`` of ``n_out`` doubles (the
        caller checked the sizes). The next ``_learn`` / ``_learn_multi`` with a bitwise-equal
        ``x`` reuses this forward pass, exactly as after ``predict``."""
        memcpy(&self.p_x[0], x, self.n_in * sizeof(double))
        self._forward(&self.p_x[0], &self.h[0], &self.c[0], &self.p_rec[0], &self.p_out[0])
        memcpy(out, &self.p_out[0], self.n_out * sizeof(double))
        # reusable by the next learn unless a view handed out earlier could still write
        # theta, h or c (a view taken after this point bumps _version)
        self.p_version = self._version if self._no_views() else 0

    def rollout_begin(self):
        """Start a what-if roll-out from the committed state (the committed state is not touched)."""
        if self.n_in == 0:
            raise RuntimeError("the network was not initialised")
        self.s_h[:] = self.h
        self.s_c[:] = self.c

    def rollout_step(self, x, out):
        """Advance the roll-out state by one step with input ``x``; head output into ``out``."""
        self._step_from(x, out, True)

    # ------------------------------------------------------------ state, pickling, growth
    def config(self):
        return dict(cell=self.cell, n_in=self.n_in, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, n_out=self.n_out, k1=self.k1, k2=self.k2,
                    loss=self.loss, huber_eps=self.huber_eps)

    def get_state(self):
        """Everything that defines the network, as plain numbers and float64 copies:
        ``{"params": (P,), "h": (L, H), "c": (L, H), "ring_x": (B, n_in), "ring_r": (B, L, rec),
        "ring_g": (B, n_out), "out": (n_out,), "t": int, "last_loss": float,
        "optimizer": Optimizer.get_state() or None}``. Scratch is never part of it."""
        state = {k: v.copy() for k, v in self._arrays.items()}
        state["t"] = int(self.t)
        state["last_loss"] = float(self.last_loss)
        state["optimizer"] = None if self.optimizer is None else self.optimizer.get_state()
        return state

    def set_state(self, state):
        """Take over ``state`` (as ``get_state`` returns it), validating all of it first.

        The keys must be exactly those of ``get_state``; every array a float64 ndarray of the
        exact shape with finite values; ``t`` an int in ``[0, 2**62)``; ``last_loss`` a
        finite number; ``optimizer`` None or a valid optimizer state for ``P`` parameters.
        Raises ValueError naming the field; on error nothing (network or optimizer) changes.
        An optimizer state of the kind already attached is loaded into that optimizer
        object; another kind replaces it by a new one.
        """
        if not isinstance(state, dict):
            raise ValueError(f"network state must be a dict, got {type(state).__name__}")
        if set(state) != _STATE_KEYS:
            raise ValueError(f"network state keys {sorted(map(str, state))} != {sorted(_STATE_KEYS)}")
        t = _counter(state["t"], "t")
        old_B = max(self.k1, self.k2)
        rows = state["ring_g"].shape[0] if isinstance(state["ring_g"], np.ndarray) \
            and state["ring_g"].ndim == 2 else None
        if old_B != self.B and rows == old_B:
            # a state from before delayed targets (0.1), whose ring held max(k1, k2) steps
            arrays = _resized_rings(self._check_arrays(state, old_B), t, old_B, self.B)
        else:
            arrays = self._check_arrays(state)
        last_loss = _number(state["last_loss"], "last_loss")
        o = state["optimizer"]
        checked = None if o is None else check_state(o, self.size, single=True)
        # everything is valid: assign
        self._set_arrays(arrays)
        self.t = t
        self.last_loss = last_loss
        self.optimizer = restore_checked(self.optimizer, checked, True)

    @staticmethod
    def from_state(config, state):
        """A network built from ``config()`` output and a ``get_state()`` state; ValueError
        if either is not valid."""
        if not isinstance(config, dict) or set(config) != _CONFIG_KEYS:
            raise ValueError(f"network config must be a dict with keys {sorted(_CONFIG_KEYS)}")
        net = Network(**config)
        net.set_state(state)
        return net

    def __reduce__(self):
        return (_network_from_state, (self.config(), self.get_state()))

    def __sizeof__(self):
        n = object.__sizeof__(self)
        n += sum(a.nbytes for a in self._arrays.values())
        n += sum(a.nbytes for a in self._scratch.values())
        if self.optimizer is not None:
            n += self.optimizer.__sizeof__()
        return n

    def adopt(self, Network old):
        """Take over ``old``'s parameters and state where they overlap; for growing inputs/outputs.

        Input columns and output units of ``old`` keep their indices; new ones keep the values
        this network already holds (its initialisation). Returns ``index`` such that old
        parameter ``j`` now lives at ``index[j]`` (to move optimizer moments along).
        """
        if (old.cell, old.hidden_size, old.num_layers, old.k1, old.k2) != (
                self.cell, self.hidden_size, self.num_layers, self.k1, self.k2):
            raise ValueError("can only adopt a network of the same cell, size and TBPTT")
        if old.n_in > self.n_in or old.n_out > self.n_out:
            raise ValueError("can only grow")
        index = np.empty(old.size, dtype=np.intp)
        new_params = self._arrays["params"].copy()  # self is unchanged if old is invalid
        for name, (off, shape) in old._layout.items():
            noff, nshape = self._layout[name]
            src_idx = np.arange(off, off + int(np.prod(shape))).reshape(shape)
            dst_idx = np.arange(noff, noff + int(np.prod(nshape))).reshape(nshape)
            sl = tuple(slice(0, n) for n in shape)
            index[src_idx.ravel()] = dst_idx[sl].ravel()
        new_params[index] = old._arrays["params"]
        st = old._arrays
        arrays = {k: v for k, v in self._arrays.items()}
        arrays["h"] = st["h"]
        arrays["c"] = st["c"]
        rings = _resized_rings(st, old.t, old.B, self.B)  # a wider head may need a longer ring
        rx = np.zeros((self.B, self.n_in)); rx[:, :old.n_in] = rings["ring_x"]
        rg = np.zeros((self.B, self.n_out)); rg[:, :old.n_out] = rings["ring_g"]
        out = np.zeros(self.n_out); out[:old.n_out] = st["out"]
        arrays.update(ring_x=rx, ring_g=rg, ring_r=rings["ring_r"], out=out, params=new_params)
        self._set_arrays(self._check_arrays(arrays))  # copies: nothing is shared with old
        self.t = old.t
        self.last_loss = old.last_loss
        if old.optimizer is not None:
            old.optimizer.remap(index, self.size)
            self.set_optimizer(old.optimizer)
        return index

    def __repr__(self):
        return (f"Network({_CELL_NAMES[self.cell]}, n_in={self.n_in}, hidden={self.hidden_size}, "
                f"layers={self.num_layers}, n_out={self.n_out}, k1={self.k1}, k2={self.k2}, t={self.t})")


_STATE_KEYS = frozenset(("params", "h", "c", "ring_x", "ring_r", "ring_g", "out", "t",
                         "last_loss", "optimizer"))
_CONFIG_KEYS = frozenset(("cell", "n_in", "hidden_size", "num_layers", "n_out", "k1", "k2",
                          "loss", "huber_eps"))


def _resized_rings(arrays, t, old_B, new_B):
    """``arrays`` with ``ring_x``, ``ring_r`` and ``ring_g`` moved from a ring of ``old_B``
    slots to one of ``new_B`` (step ``tau`` lives in slot ``tau % B``): the last
    ``min(t, old_B, new_B)`` steps keep their records, older slots are zero. A zero slot is
    only ever read for a delayed target of a step the old ring no longer held; the head then
    sees a zero top state (only ``b_y`` learns from that target)."""
    out = dict(arrays)
    if old_B == new_B:
        return out
    for name in ("ring_x", "ring_r", "ring_g"):
        a = arrays[name]
        b = np.zeros((new_B,) + a.shape[1:])
        for tau in range(max(0, t - min(old_B, new_B)), t):
            b[tau % new_B] = a[tau % old_B]
        out[name] = b
    return out


def _network_from_state(config, state):
    """Unpickling entry point: ``Network.from_state``."""
    return Network.from_state(config, state)


def _rebuild_network(config, state, optimizer):
    """Unpickling entry point of pickles made before ``get_state`` carried the optimizer."""
    state = dict(state)
    state["optimizer"] = None if optimizer is None else optimizer.get_state()
    return Network.from_state(config, state)
