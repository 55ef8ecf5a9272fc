# Signatures only; see _combine.pyx for the math and the state layout.
# Steps j are 1-based at every level (j = 1: the next value); j > horizon uses step horizon,
# j < 1 step 1. The nogil methods allocate nothing and are not re-entrant on one object
# (they share its scratch).

from libc.math cimport INFINITY, ceil


# The conformal arithmetic that Conformal (here) and GlobalCore (_global.pyx, intervals pooled
# over keys) share, on plain pointers.
cdef inline double sorted_quantile(const double* s, long long c, long long min_scores,
                                   double a) noexcept nogil:
    """The conformal (1 - a) quantile of the c ascending scores s: the ceil((1 - a)(c + 1))-th,
    clamped to [1, c]; inf below min_scores scores; 1.5 x the largest for a <= 0 (or NaN)."""
    cdef long long k
    if c < min_scores:
        return INFINITY
    if not a > 0.0:  # also NaN
        return 1.5 * s[c - 1]
    if a >= 1.0:
        return s[0]
    k = <long long>ceil((1.0 - a) * <double>(c + 1))
    if k < 1:
        k = 1
    if k > c:
        k = c
    return s[k - 1]


cdef inline double level_at(const double* alphas, const double* at, Py_ssize_t A, Py_ssize_t H,
                            Py_ssize_t j0, double alpha) noexcept nogil:
    """Step j0's adapted level for the nominal alpha: exact at the A tracked alphas (at[i*H + j0]),
    linear between them, shifted by the distance beyond the first and last."""
    cdef Py_ssize_t i
    cdef double u
    for i in range(A):
        if alpha == alphas[i]:
            return at[i * H + j0]
    if alpha < alphas[0]:
        return at[j0] + (alpha - alphas[0])
    if alpha > alphas[A - 1]:
        return at[(A - 1) * H + j0] + (alpha - alphas[A - 1])
    i = 0
    while i < A - 2 and not alpha < alphas[i + 1]:
        i += 1
    u = (alpha - alphas[i]) / (alphas[i + 1] - alphas[i])
    return at[i * H + j0] + u * (at[(i + 1) * H + j0] - at[i * H + j0])


cdef class Combiner:
    # ---- configuration
    cdef readonly Py_ssize_t n_experts   # E
    cdef readonly Py_ssize_t horizon     # H
    cdef readonly double decay           # rho, EW decay of the absolute errors
    cdef readonly double eta             # eta, sharpness of the soft-min
    cdef readonly double mix1            # weight of step 1's relative loss in every step's score
    cdef readonly double warm_n          # eta_eff = eta * n / (n + warm_n), n = scorings of step j
    # ---- state (what get_state carries)
    cdef readonly long long t            # values observed
    cdef object _loss_arr                # L[j-1, e]: EW |error| of expert e, step j (H, E); 0: none
    cdef object _nloss_arr               # losses matured per (step, expert) (H, E) int64
    cdef object _nstep_arr               # scorings per step (any expert) (H,) int64
    cdef object _pend_arr                # pending[(target) % H, j-1, e]: forecast of that target
                                         # issued j steps before it (H, H, E); NaN: none
    cdef object _elig_arr                # eligible experts (E,) int64 0/1
    cdef double* L
    cdef long long* nL
    cdef long long* nS
    cdef double* P
    cdef long long* elig
    # ---- scratch (never state)
    cdef object _scratch_arr             # (3 E,): relative losses, step-1 relative losses, mask
    cdef double* s_rel
    cdef double* s_rel1
    cdef double* s_mask

    cdef void _bind(self)
    cdef void _issue(self, const double* F) noexcept nogil          # F: (H, E) row-major
    cdef void _observe(self, double y) noexcept nogil               # non-finite y: no-op
    cdef double _eta_eff(self, Py_ssize_t j0) noexcept nogil  # eta warmed up by step j0 + 1's scorings
    cdef void _weights(self, Py_ssize_t j, double* w) noexcept nogil
    cdef double _combine(self, Py_ssize_t j, const double* f) noexcept nogil  # NaN if no expert
    cdef void _masked(self, Py_ssize_t j, const double* f, double* w) noexcept nogil
    cdef void _combine_steps(self, const double* F, double* c) noexcept nogil  # c[j0] = _combine(j0 + 1, F + j0 E)


cdef class Conformal:
    # ---- configuration
    cdef readonly Py_ssize_t horizon     # H
    cdef readonly Py_ssize_t window      # W, scores kept per step
    cdef readonly double gamma           # ACI step size
    cdef readonly Py_ssize_t pwindow     # P >= W, step-1 scores kept for the p-value
    cdef readonly tuple alphas           # tracked levels, increasing, each in (0, 1)
    cdef readonly Py_ssize_t n_levels    # A
    # ---- state
    cdef readonly long long t            # values observed
    cdef object _alpha_arr               # the tracked levels (A,)
    cdef object _raw_arr                 # scores per step in arrival order, a ring (H, W); 0 unused
    cdef object _sorted_arr              # the same sorted, first count[j] used (H, W); 0 unused
    cdef object _count_arr               # scores held per step (H,) int64, <= W
    cdef object _pos_arr                 # next write position in the raw ring (H,) int64
    cdef object _at_arr                  # alpha_t[level, j-1] (A, H)
    cdef object _cen_arr                 # centres[target % H, j-1] issued j before (H, H); NaN none
    cdef object _hw_arr                  # half-widths issued with them (H, H, A); +inf unbounded
    cdef object _hits_arr                # scored intervals that covered (A, H) int64
    cdef object _nsc_arr                 # scored intervals (finite half-width) (A, H) int64
    cdef object _praw_arr                # the last P step-1 scores, a ring (P,); 0 unused
    cdef object _psorted_arr             # the same sorted, first pcount used (P,); 0 unused
    cdef object _pcp_arr                 # (pcount, ppos) of the p-value window (2,) int64
    cdef double* alpha
    cdef double* raw
    cdef double* srt
    cdef long long* cnt
    cdef long long* pos
    cdef double* at
    cdef double* cen
    cdef double* hw
    cdef long long* hits
    cdef long long* nsc
    cdef double* praw
    cdef double* psrt
    cdef long long* pcp

    cdef void _bind(self)
    cdef double _quantile(self, Py_ssize_t j0, double a) noexcept nogil
    cdef double _level(self, Py_ssize_t j0, double alpha) noexcept nogil
    cdef void _insert(self, Py_ssize_t j0, double s) noexcept nogil
    cdef void _issue(self, const double* centres) noexcept nogil     # centres: (H,)
    cdef void _observe(self, double y) noexcept nogil                # non-finite y: no-op
    cdef double _halfwidth(self, Py_ssize_t j, double alpha) noexcept nogil
    cdef double _pvalue(self, double score) noexcept nogil
    cdef double _pvalue_y(self, double y) noexcept nogil
