# Signatures only; see _shared.pyx for the batched step and its semantics.
#
# C-level entry points for other Cython modules (cimport SharedNetwork, call with the GIL
# released). They take raw pointers and check NOTHING about their arguments; the caller
# guarantees, before the call (the Python methods check exactly this):
#   - the network is initialised (n_in > 0) and not busy; set `_busy = True` around the call
#     and back to False after it (one call at a time per network);
#   - 1 <= B <= max_batch; every slot in [0, capacity); distinct for _step/_step_multi/
#     _advance/_rollout (repeats allowed for _predict). `_check_ptr(p, B, distinct, True)`
#     checks exactly this with the GIL held (raises ValueError, returns 0 when fine);
#   - X: B rows of n_in doubles; Y: B rows of n_out doubles (regression; class labels for
#     the cross-entropies as `step` validates them); out: B rows of n_out doubles;
#   - _step/_step_multi: `optimizer is not None and optimizer.size == size`; _step_multi
#     also needs a regression loss and k2 >= n_out.
# Statuses: 1 done; -1 non-finite input (or target), or with float32 slots an input beyond
# the float32 range; -2 non-finite output/loss/gradient/state (or a state beyond the float32
# range). On -1/-2 nothing changed (no slot, no weight, no moment, `out` not written).

from streamrnn._core._cells cimport CellKernels, cell_gates_t, loss_t
from streamrnn._core._optim cimport Optimizer

# the element-wise part of a cell's backward through one step of one layer (record r, the
# gradient dh reaching its h): the gate gradients dax (and dah, GRU), the carried dc updated
# in place (LSTM), and dhp <- dh_prev's own term (GRU: dh * z; else 0); the W_h product is
# added afterwards over the rows of a step
ctypedef void (*cell_bw_t)(Py_ssize_t H, const double* r, const double* dh, double* dc,
                           double* dax, double* dah, double* dhp) noexcept nogil

# one thread's scratch for the replay and backward of a chunk (the calling thread uses the
# network's own arrays; the pool's threads 1..threads-1 each have a set); hb, nh: where the
# chunk being run appends the head's inputs (see _chunks_threaded)
cdef struct Work:
    Py_ssize_t* act
    double* sA
    double* sAH
    double* xr
    double* rrec
    double* rh
    double* rc
    double* yhat
    double* gy
    double* dhc
    double* dcc
    double* sdh
    double* sdx
    double* DA
    double* DAH
    const double** XT
    const double** HT
    double* hb
    Py_ssize_t nh

cdef class SharedNetwork:
    # ---- configuration
    cdef readonly int cell             # cell code
    cdef readonly int n_in             # d_0, width of the input
    cdef readonly int hidden_size      # H
    cdef readonly int num_layers       # L
    cdef readonly int n_out            # width of the head
    cdef readonly int k2               # TBPTT window, steps (the current one included)
    cdef readonly int loss             # loss code
    cdef readonly double huber_eps     # Huber threshold
    cdef readonly Py_ssize_t capacity  # number of slots
    cdef readonly int max_batch        # largest micro-batch
    cdef readonly Py_ssize_t chunk     # rows replayed together, min(max_batch, CHUNK)
    cdef readonly bint f32             # slot arrays stored as float32
    cdef readonly int G                # gate blocks per cell
    cdef readonly int rec              # doubles per layer record, 5*H + G*H
    cdef readonly Py_ssize_t size      # P, number of parameters
    cdef readonly int Hc               # H for the LSTM (which has a cell state), else 0
    cdef readonly int nw               # past inputs a slot keeps, k2 - 1
    cdef CellKernels kern
    cdef cell_gates_t gates            # the element-wise forward (vector sigmoid/tanh)
    cdef cell_bw_t bw                  # the element-wise backward
    cdef loss_t loss_fn
    # ---- shared committed state
    cdef readonly long long t          # committed batches (= optimizer steps taken)
    cdef readonly double last_loss     # mean loss of the last committed batch
    cdef readonly Optimizer optimizer
    cdef object _layout                # name -> (offset, shape)
    cdef object _params                # theta (P,) ndarray
    cdef double[::1] w                 # view of theta
    cdef Py_ssize_t[::1] o_wx, o_wh, o_b, o_bhn
    cdef Py_ssize_t o_wy, o_by
    # ---- per-slot committed state: arrays of `capacity` rows (float64 or float32)
    cdef object _slots                 # name -> ndarray, the slot arrays
    cdef char* p_h                     # h (cap, L*H)
    cdef char* p_c                     # c (cap, L*Hc)
    cdef char* p_h0                    # h at the window's start (cap, L*H)
    cdef char* p_c0                    # c at the window's start (cap, L*Hc)
    cdef char* p_x                     # past inputs of the window, oldest first (cap, nw*n_in)
    cdef long long* p_n                # how many of them are held, in [0, nw] (cap,)
    # ---- scratch (never state)
    cdef object _scratch
    cdef double[::1] dw                # gradient (P,)
    cdef long long[::1] stamp          # distinctness check: the call that last saw each slot
    cdef long long epoch
    cdef bint _busy                    # a step or predict is running (GIL released)
    cdef Py_ssize_t[::1] perm          # batch rows sorted by window length, longest first
    cdef Py_ssize_t[::1] win           # window length of each sorted row
    cdef Py_ssize_t[::1] act           # active rows at each replay step (k2,)
    cdef double[::1] ch, cc            # committed states, gathered (Bmax, L*H)
    cdef double[::1] frec              # records of the forward from them (Bmax, L, R)
    cdef double[::1] fout              # its head output (Bmax, n_out)
    cdef double[::1] sA, sAH           # pre-activations (Bmax, GH)
    cdef double[::1] xr                # replay inputs (k2, chunk, n_in)
    cdef double[::1] rrec              # replay records (k2, chunk, L, R)
    cdef double[::1] rh, rc            # replay running state (chunk, L*H)
    cdef double[::1] yhat, gy          # replay head outputs and dL/dyhat / B (k2, chunk, n_out)
    cdef double[::1] dhc, dcc          # carried dh, dc (chunk, L*H)
    cdef double[::1] sdh               # (H,)
    cdef double[::1] sdx               # gradient reaching the layer below (chunk, H)
    cdef double[::1] wT                # W_h^T and W_x^T of every layer (L, 2, GH, H)
    cdef double[::1] DA, DAH2          # gate gradients per (row, layer) (k2*chunk, L, GH)
    cdef double* p_dah
    cdef double[::1] dwc               # a later chunk's gradient (P,)
    cdef double[::1] nh0, nc0          # replayed state after the oldest step of full windows (Bmax, L*H)
    cdef Work* work                    # work[0]: this thread's scratch; work[1:]: extra threads'
    cdef int nthreads                  # threads a step's chunks are shared by (1: the caller)
    cdef object _thread_scratch        # the extra threads' scratch arrays
    cdef double* cg                    # threaded step: each chunk's gradient (nch, o_wy)
    cdef double* chb                   # each chunk's head inputs (nch, k2*chunk, H + n_out)
    cdef double* cpart                 # each chunk's loss sum (nch,)
    cdef Py_ssize_t* cnh               # each chunk's head records (nch,)
    cdef Py_ssize_t* cst               # each chunk's status (nch,)
    cdef Py_ssize_t job_B              # the threaded step's arguments, for the pool's threads
    cdef const long long* job_slots
    cdef const double* job_X
    cdef const double* job_Y
    cdef bint job_multi

    cdef int _step(self, Py_ssize_t B, const long long* slots, const double* X,
                   const double* Y, double* out, bint multi) noexcept nogil
    cdef void _transpose_weights(self) noexcept nogil
    cdef int _chunk(self, Work* ws, Py_ssize_t c0, Py_ssize_t nc, Py_ssize_t B,
                    const long long* slots, const double* X, const double* Y, double* gw,
                    double* total, bint multi, bint defer) noexcept nogil
    cdef void _run_chunk(self, int w, Py_ssize_t c) noexcept nogil
    cdef int _chunks_threaded(self, Py_ssize_t nch, Py_ssize_t B, const long long* slots,
                              const double* X, const double* Y, double* total,
                              bint multi) noexcept nogil
    cdef void _layer_w(self, Py_ssize_t nb, Py_ssize_t l, const double* xin, Py_ssize_t ldx,
                       const double* hp, const double* cp, double* recs, double* A,
                       double* AH) noexcept nogil
    cdef int _step_multi(self, Py_ssize_t B, const long long* slots, const double* X,
                         const double* Y, double* out) noexcept nogil
    cdef int _advance(self, Py_ssize_t B, const long long* slots, const double* X,
                      double* out) noexcept nogil
    cdef int _rollout(self, Py_ssize_t B, const long long* slots, const double* X,
                      double* out) noexcept nogil
    cdef int _check_ptr(self, const long long* p, Py_ssize_t B, bint distinct,
                        bint batch) except -1
    cdef object _call_slots(self, object slots, bint distinct, Py_ssize_t* B,
                            const long long** sp)
    cdef int _call_rows(self, object X, object out, Py_ssize_t B, const double** xp,
                        double** op) except -1
    cdef void _predict(self, Py_ssize_t B, const long long* slots, const double* X,
                       double* out) noexcept nogil
    cdef void _load(self, const char* base, Py_ssize_t row, Py_ssize_t width,
                    double* dst) noexcept nogil
    cdef void _store(self, char* base, Py_ssize_t row, Py_ssize_t width,
                     const double* src) noexcept nogil
    cdef bint _storable(self, Py_ssize_t n, const double* v) noexcept nogil
    cdef bint _state_ok(self, const double* r) noexcept nogil
    cdef void _push_full(self, Py_ssize_t k, const double* x) noexcept nogil
    cdef void _layer(self, Py_ssize_t nb, Py_ssize_t l, const double* xin, Py_ssize_t ldx,
                     const double* hp, const double* cp, double* recs) noexcept nogil
    cdef void _head(self, Py_ssize_t nb, const double* recs, double* out) noexcept nogil
    cdef _assign_shared(self, tuple checked_all)
    cdef void _forward_committed(self, Py_ssize_t B, const long long* slots,
                                 const double* X) noexcept nogil
