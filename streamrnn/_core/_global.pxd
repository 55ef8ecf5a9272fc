# Signatures only; see _global.pyx for the model, the per-key row layout and the step order.

from streamrnn._core._shared cimport SharedNetwork

cdef class GlobalCore:
    # ---- configuration
    cdef readonly int horizon            # H, steps forecast and scored
    cdef readonly int period             # m, seasonal period (0: none)
    cdef readonly int n_x                # user feature columns
    cdef readonly int n_in               # network input width, N_LEAD + n_x
    cdef readonly int n_out              # network outputs, min(H, k2)
    cdef readonly Py_ssize_t capacity    # number of key slots
    cdef readonly int max_batch          # largest micro-batch
    cdef readonly int learn_every        # a key's network learns on every learn_every-th value
    cdef readonly bint f32               # per-key rows stored as float32
    cdef readonly double clip            # normalised targets and corrections clipped to +-clip
    cdef readonly double hw_phi, hw_gamma, hw_eta   # the backbone's damping, season smoothing,
                                         # member-weight sharpness
    cdef readonly tuple hw_alphas, hw_betas   # the members' level and trend constants
    cdef readonly int n_members          # K = len(hw_alphas) x len(hw_betas)
    cdef readonly int n_bank             # K + 1: the fixed members and the adaptive one
    cdef double ad_u0a, ad_u0b           # the adaptive members' start u (alpha, beta)
    cdef readonly int mq                 # Q = min(H, MQ) stored origins of the members' states
    cdef readonly int md                 # d = ceil(H / Q): every d-th origin is stored
    cdef object _malpha_arr, _mab_arr, _zmalpha_arr, _zmab_arr
    cdef double* malpha                  # (K,) member alphas (alpha-major over the betas)
    cdef double* mab                     # (K,) member alpha x beta
    cdef double* zmalpha                 # (K,) the log bank's alphas
    cdef double* zmab                    # (K,) the log bank's alpha x beta
    cdef readonly double hw_log_gamma    # the log member's season smoothing
    cdef readonly double hw_gamma_start  # early cycles' season smoothing: max(gamma, g0 / cycle)
    cdef readonly int window             # conformal scores kept per step and age group (shared)
    cdef readonly long long age1, age2   # age groups of an origin s: s < age1 (= m), < age2
    cdef readonly double aci_gamma       # ACI step size
    cdef readonly tuple alphas           # tracked conformal levels
    cdef readonly int n_levels           # A
    cdef readonly double y_limit         # |y| beyond it is refused (1e100; 1e30 for float32)
    cdef double big                      # state values are clamped to +-big
    cdef readonly SharedNetwork net
    cdef object _config                  # the constructor arguments (config())
    # ---- per-key row layout (offsets into one row of W values)
    cdef readonly Py_ssize_t W           # values per key row (as loaded: float64 scratch)
    cdef readonly Py_ssize_t Wf, Wh      # of them stored in the float rows / as float16 (comb)
    cdef readonly int R                  # y history kept (ring)
    cdef readonly int LS                 # older season levels kept per phase, ceil(H/m) - 1
    cdef Py_ssize_t o_y, o_s, o_hw, o_org, o_sh, o_net, o_cmb, o_err, o_zhw, o_zs, o_zsh, o_zorg, o_bank, o_zbank, o_ad
    cdef object _neto_arr, _netl_arr, _phacc_arr
    cdef Py_ssize_t* neto                # (n_out,) offset of output i's pending corrections
    cdef Py_ssize_t* netl                # (n_out,) their ring length
    cdef double* phacc                   # (H + 1,) sum_{i=1..j} phi^i
    # ---- per-key committed state (capacity rows)
    cdef object _rows                    # (capacity, W) float32 or float64
    cdef object _half                    # (capacity, Wh) float16: the rows' last Wh values
    cdef object _count                   # (capacity,) int64, values seen since reset
    cdef char* p_rows
    cdef unsigned short* p_half
    cdef long long* p_count
    # ---- shared committed state
    cdef readonly long long t            # batches stepped
    cdef object _craw, _csrt, _ccnt, _cpos, _cat, _calpha, _pool, _pooln, _fn, _fmean, _fm2
    cdef double* craw                    # (AGES H, window) normalised scores, arrival ring
    cdef double* csrt                    # (AGES H, window) the same sorted, first ccnt[r] used
    cdef long long* ccnt                 # (AGES H,) scores held
    cdef long long* cpos                 # (AGES H,) next write position in the ring
    cdef double* cat                     # (A, AGES H) ACI levels alpha_t
    cdef double* calpha                  # (A,) tracked levels
    cdef double* pool                    # (H, 5) pooled EW normalised errors per expert
    cdef long long* pooln                # (H, 5) pooled scorings per step and expert
    cdef long long* fn                   # (n_x,) feature values seen
    cdef double* fmean                   # (n_x,) their running mean
    cdef double* fm2                     # (n_x,) sum of squared deviations (Welford)
    # ---- scratch (never state)
    cdef object _scratch
    cdef bint _busy
    cdef double* srow                    # (max_batch, W) the batch's rows, float64
    cdef double* sX                      # (max_batch, n_in) network inputs
    cdef double* sY                      # (max_batch, n_out) delayed targets
    cdef double* sO                      # (max_batch, n_out) network outputs
    cdef long long* sslot                # (max_batch,) the rows that call the network
    cdef Py_ssize_t* sidx                # (max_batch,) their batch row
    cdef Py_ssize_t* skmap               # (max_batch,) batch row -> network row (-1: none)
    cdef double* sfx                     # (max_batch, n_x) standardised features
    cdef double* sf                      # (5,) expert forecasts
    cdef double* sw                      # (5,) weights
    cdef double* sc                      # (H,) combined forecasts
    cdef double* sa                      # (K,) members' mean errors over the stored origins
    cdef double* s1                      # (E,) step 1's relative scores (-1: unknown)
    cdef bint s1_any                     # step 1 knew an expert

    cdef void _load(self, Py_ssize_t slot, double* row) noexcept nogil
    cdef void _store(self, Py_ssize_t slot, const double* row) noexcept nogil
    cdef double _rnd(self, double v) noexcept nogil
    cdef double _rc(self, double v) noexcept nogil
    cdef void _cset(self, double* row, Py_ssize_t i, double v) noexcept nogil
    cdef double _cget(self, const double* row, Py_ssize_t i) noexcept nogil
    cdef double _scale(self, const double* row) noexcept nogil
    cdef double _bb(self, const double* row, long long n, Py_ssize_t j) noexcept nogil
    cdef double _bb_at(self, const double* row, long long t, Py_ssize_t j) noexcept nogil
    cdef double _zfc(self, double zl, double zb, double zs, double ph) noexcept nogil
    cdef double _zs_at(self, const double* row, long long t, Py_ssize_t j) noexcept nogil
    cdef void _zupdate(self, double* row, long long n, double y) noexcept nogil
    cdef void _experts(self, const double* row, long long n, Py_ssize_t j, double bb,
                       double corr, double ph, double* f) noexcept nogil
    cdef bint _seasonal(self, const double* row, long long n) noexcept nogil
    cdef Py_ssize_t _scores(self, const double* row, long long n, Py_ssize_t jj, const bint* el,
                            bint* kn, double* L) noexcept nogil
    cdef void _weights(self, const double* row, long long n, Py_ssize_t j, double* w) noexcept nogil
    cdef double _combine(self, const double* row, long long n, Py_ssize_t j, double bb,
                         double corr, double ph) noexcept nogil
    cdef void _inputs(self, const double* row, long long n, const double* fx, double* u) noexcept nogil
    cdef void _features(self, const double* x, double* fx) noexcept nogil
    cdef Py_ssize_t _group(self, long long s) noexcept nogil
    cdef Py_ssize_t _crow(self, Py_ssize_t g, Py_ssize_t j0) noexcept nogil
    cdef double _quantile(self, Py_ssize_t r, double a) noexcept nogil
    cdef double _level(self, Py_ssize_t r, double alpha) noexcept nogil
    cdef double _halfwidth(self, Py_ssize_t g, Py_ssize_t j, double alpha) noexcept nogil
    cdef double _pvalue(self, Py_ssize_t g, double s) noexcept nogil
    cdef void _insert(self, Py_ssize_t j0, double s) noexcept nogil
    cdef void _targets(self, const double* row, long long n, double y, double* Y) noexcept nogil
    cdef void _observe(self, double* row, long long n, double y, const double* o,
                       double* pred, double* score) noexcept nogil
    cdef Py_ssize_t _mscore(self, const double* row, Py_ssize_t ob, Py_ssize_t K, Py_ssize_t os,
                            Py_ssize_t osh, long long n, double z, double* a) noexcept nogil
    cdef void _bank(self, double* row, Py_ssize_t hw, Py_ssize_t ob, Py_ssize_t oa,
                    long long n, double z, double sp, double* malpha,
                    double* mab, const double* a) noexcept nogil
    cdef void _bank_start(self, double* row, Py_ssize_t ob, Py_ssize_t oa, double z) noexcept nogil
    cdef void _update(self, double* row, long long n, double y) noexcept nogil
    cdef void _outputs(self, const double* row, long long n, const double* o, double alpha,
                       double* fc, double* lo, double* hi) noexcept nogil
    cdef void _net_reset(self, Py_ssize_t slot) noexcept nogil
    cdef int _step(self, Py_ssize_t B, const long long* slots, const double* ys,
                   const double* xs, double alpha, double* pred, double* score, double* fc,
                   double* lo, double* hi) noexcept nogil
