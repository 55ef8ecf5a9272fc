# Signatures only; see _network.pyx for the TBPTT walk and docs/kernel.md for the math.

from cpython.object cimport PyObject
from streamrnn._core._cells cimport CellKernels, loss_t
from streamrnn._core._optim cimport Optimizer

# status codes of Network.learn
cdef enum Status:
    LEARNED = 0                  # committed, no update due
    UPDATED = 1                  # committed and one optimizer step taken
    BAD_INPUT = -1               # input or target not finite: nothing changed
    DIVERGED = -2                # loss or clipped gradient not finite: the step was rolled back
    MISUSE = -3                  # _learn_multi only: not a regression loss, or no optimizer
                                 # bound to the network's size (the Python level raises instead)


cdef class Network:
    # ---- configuration (Python ints; their products fit easily: see _check_config)
    cdef readonly int cell             # cell code
    cdef readonly int n_in             # d_0, width of the input
    cdef readonly int hidden_size      # H
    cdef readonly int num_layers       # L
    cdef readonly int n_out            # width of the head
    cdef readonly int k1               # update every k1 steps
    cdef readonly int k2               # backpropagate through the last k2 steps
    cdef readonly int loss             # loss code
    cdef readonly double huber_eps     # Huber threshold eps
    cdef readonly int G                # gate blocks per cell
    cdef readonly int delay            # oldest delayed target: n_out - 1 (regression), else 0
    cdef readonly int B                # ring capacity, max(k1 + delay, k2)
    cdef readonly int rec              # doubles per layer record, 5*H + G*H
    cdef readonly Py_ssize_t size      # P, number of parameters
    # ---- kernels, chosen once at construction
    cdef CellKernels kern              # the cell's forward, backward and bias functions
    cdef loss_t loss_fn                # the loss's point function
    # ---- committed state (what get_state carries)
    cdef readonly long long t          # committed steps, in [0, 2**62)
    cdef readonly double last_loss     # loss of the last learned step
    cdef readonly Optimizer optimizer  # bound to P (set_optimizer / set_state)
    cdef object _arrays                # name -> ndarray, everything get_state copies
    cdef object _layout                # name -> (offset, shape) in the flat parameter vector
    cdef double[::1] w                 # params theta (P,)
    cdef double[::1] h                 # carried hidden state h (L*H,)
    cdef double[::1] c                 # carried cell state c (L*H,)
    cdef double[::1] ring_x            # inputs x of the last B steps (B*n_in,)
    cdef double[::1] ring_r            # layer records of the last B steps (B*L*rec,)
    cdef double[::1] ring_g            # pending dL/dout / k1 of the last B steps (B*n_out,);
                                       # entry j of a step arrives j calls later (learn_multi)
    cdef double[::1] out               # head output of the last learned step (n_out,)
    cdef Py_ssize_t[::1] o_wx          # offset of W_x[l] in theta (L,)
    cdef Py_ssize_t[::1] o_wh          # offset of W_h[l] (L,)
    cdef Py_ssize_t[::1] o_b           # offset of b[l] (L,)
    cdef Py_ssize_t[::1] o_bhn         # offset of b_hn[l] (L,; GRU only)
    cdef Py_ssize_t o_wy               # offset of W_y (H, n_out)
    cdef Py_ssize_t o_by               # offset of b_y (n_out,)
    # ---- scratch (never state)
    cdef object _scratch               # name -> ndarray
    cdef double[::1] dw                # gradient dL/dtheta (P,)
    cdef double[::1] s_a               # pre-activations a (G*H,)
    cdef double[::1] s_ah              # GRU recurrent pre-activations h_prev @ W_h (G*H,; else 1)
    cdef double[::1] s_rec             # roll-out records (L*rec,)
    cdef double[::1] s_h               # roll-out state h (L*H,)
    cdef double[::1] s_c               # roll-out state c (L*H,)
    cdef double[::1] p_rec             # predict's records, what learn would store (L*rec,)
    cdef double[::1] p_x               # predict's input (n_in,)
    cdef double[::1] p_out             # predict's head output (n_out,)
    cdef unsigned long long _version   # bumped by every change of theta or the committed state
    cdef unsigned long long p_version  # _version when p_rec was computed; 0: none
    cdef PyObject* _watched[3]         # the params, h and c arrays (borrowed from _arrays)
    cdef Py_ssize_t _own_refs[3]       # their reference counts with no view handed out
    cdef double[::1] s_dh              # total dh reaching one (step, layer) (H,)
    cdef double[::1] s_dx              # dx to the layer below (H,)
    cdef double[::1] s_dhc             # carried dh per layer (L*H,)
    cdef double[::1] s_dcc             # carried dc per layer (L*H,)
    cdef double[::1] s_da              # dax per window step and layer (k2*L*G*H,)
    cdef double[::1] s_dah2            # GRU dah per window step and layer (k2*L*G*H,; else 1)
    cdef double* p_dah                 # s_dah2 for the GRU, else s_da (the recurrent gradient)
    cdef Py_ssize_t[::1] s_rows        # backward: row pointers of each window step's layer input,
                                       # then of its previous state, per layer (2*L*k2,)
    cdef double[::1] bk_x              # roll-back copy of the overwritten ring input (n_in,)
    cdef double[::1] bk_r              # ... ring records (L*rec,)
    cdef double[::1] bk_g              # ... ring head gradient (n_out,)
    cdef double[::1] bk_o              # ... head output (n_out,)
    cdef double[::1] bk_d              # ... delayed gradient entries set by learn_multi (n_out,)
    cdef double[::1] s_gm              # learn_multi's gradients of this call, by delay j (n_out,)
    cdef double[::1] s_gf              # backward: first pending entry of the rows older than k1
                                       # (n_out: none) (delay,; else 1)

    cdef void _set_arrays(self, dict new)
    cdef bint _no_views(self) noexcept nogil
    cdef object _learn_buffer(self, const double[::1] x, double y)
    cdef object _learn_checked(self, const double* x, Py_ssize_t n, double y)
    cdef int _learn(self, const double* x, double y) noexcept nogil
    cdef object _learn_multi_buffer(self, const double[::1] x, const double[::1] y)
    cdef object _learn_multi_checked(self, const double* x, Py_ssize_t n, const double* y,
                                     Py_ssize_t m)
    cdef int _learn_multi(self, const double* x, const double* y) noexcept nogil
    cdef void _mask_delayed(self, Py_ssize_t n_inj) noexcept nogil
    cdef Py_ssize_t _pending_lo(self, Py_ssize_t a) noexcept nogil
    cdef void _rollback(self, Py_ssize_t s) noexcept nogil
    cdef void _forward(self, const double* x, const double* h0, const double* c0, double* recs,
                       double* out) noexcept nogil
    cdef void _take_state(self, const double* recs, double* h1, double* c1) noexcept nogil
    cdef void _start_step(self, const double* x, double* rx, double* rr, double* rg,
                          double* out) noexcept nogil
    cdef void _backward(self) noexcept nogil
    cdef void _predict(self, const double* x, double* out) noexcept nogil
    cdef void _step_from(self, x, out, bint rollout) except *
    cdef void _step_buffer(self, const double[::1] x, double[::1] out, bint rollout) except *
    cdef void _step_ptr(self, const double* x, Py_ssize_t nx, double* out, Py_ssize_t no,
                        bint rollout) except *
