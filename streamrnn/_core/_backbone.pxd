# Signatures only; see _backbone.pyx for the math and the state layout.

cdef class Backbone:
    # ---- configuration (fixed at construction)
    cdef readonly int horizon            # H, forecast steps scored per member
    cdef readonly tuple declared         # declared periods, sorted
    cdef readonly bint auto              # period detector on
    cdef readonly int max_lag            # L, the detector's longest lag
    cdef int P_decl                      # number of declared periods
    cdef int K0                          # members before any detection (fixed + adaptive)
    cdef Py_ssize_t k_ad                 # row of the first adaptive member (N_AD of them)
    cdef Py_ssize_t S_A                  # sensitivities of one constant of one adaptive member
    cdef int K_max                       # members at most (K0 + 2 detected periods)
    cdef int P_max                       # periods at most
    cdef Py_ssize_t S_max                # seasonal indices at most (all members)
    cdef int hist_len                    # first values kept for the seasonal initialisation
    cdef int R                           # recent values kept (window, snaive, detection)
    cdef Py_ssize_t n_ring               # H (H + 1) / 2 ring rows of K_max
    # ---- members (structure: rebuilt from the configuration and the detected periods)
    cdef readonly int K                  # members now
    cdef int P                           # periods now
    cdef object _per, _tr, _alpha, _beta, _phi, _gamma, _npk, _pk, _soff
    cdef long long* per                  # (P_max,) period lengths, declared then detected
    cdef int* tr                         # (K_max,) 1 = log, 0 = additive
    cdef double* alpha                   # (K_max,)
    cdef double* beta                    # (K_max,)
    cdef double* phi                     # (K_max,)
    cdef double* gamma                   # (K_max,) 0 for non-seasonal members
    cdef object _phacc
    cdef double* phacc                   # (K_max, H) sum_{i<=j+1} phi^i (from phi, not state)
    cdef int* npk                        # (K_max,) number of periods of member k
    cdef int* pk                         # (K_max, P_max) period indices of member k
    cdef long long* soff                 # (K_max, P_max) offset of its indices in `s`
    cdef Py_ssize_t S                    # seasonal indices in use
    cdef int n_add                       # runs of additive members in 0..K_max-1 (<= 4)
    cdef Py_ssize_t add_lo[4]            # run r: members add_lo[r] .. add_hi[r]-1
    cdef Py_ssize_t add_hi[4]
    # ---- committed state
    cdef readonly long long t            # values seen
    cdef bint alive_log                  # every value so far > 0 (log members live)
    cdef object _l, _b, _s, _loss, _ring, _hist, _recent
    cdef double* l                       # (K_max,) level, z units
    cdef double* b                       # (K_max,) trend
    cdef double* s                       # (S_max,) seasonal indices, member-major
    cdef double* loss                    # (H, K_max) EW |error| of step j in y units
    cdef double* ring                    # (n_ring, K_max) pending forecasts, ring of step j at row j(j-1)/2
    cdef double* hist                    # (hist_len,) the first values
    cdef double* recent                  # (R,) value tau at tau % R
    cdef double scale_ew                 # EW mean |y_t - y_{t-1}|
    # adaptive members: constants alpha, beta, gamma = LO + (HI - LO) sigmoid(u), u by RMS-
    # normalised gradient steps on the one-step squared error in z units
    cdef object _au, _av, _adl, _adb, _ads
    cdef double* au                      # (N_AD, 3) unconstrained constants
    cdef double* av                      # (N_AD, 3) EW mean squared gradient (of u)
    cdef double* adl                     # (N_AD, 3) d l / d theta
    cdef double* adb                     # (N_AD, 3) d b / d theta
    cdef double* ads                     # (N_AD, 3, S_A) d s / d theta, the declared periods in order
    # detector
    cdef long long dn                    # signal values seen
    cdef double ewm, S0, S2
    cdef object _dbuf, _dC, _dr, _dp
    cdef double* dbuf                    # (L+1,) signal value tau at dn-ring position
    cdef double* dC                      # (L+1,) C[k] = sum u_t u_{t-k}
    cdef long long cand, cand_n
    cdef int n_det                       # periods the detector found (<= 2)
    cdef long long det_per[2]
    # ---- scratch (recomputed from the state, never serialised)
    cdef object _F, _W, _rowoff, _wsum
    cdef double* wsum                    # (H,) sum of the weights of step j
    cdef object _fc
    cdef double* fc                      # (H,) sum of weight x member forecast of step j
    cdef object _ra, _lov, _lod
    cdef double* ra                      # (K_max,) sum of the relative losses over the matured steps
    cdef double* lov                     # (H,) smallest live loss of step j
    cdef double* lod                     # (H,) 1 / max(lov, 1e-12)
    cdef Py_ssize_t* rowoff              # (H,) ring row offsets of the issue being written
    cdef double* F                       # (H, K_max) member forecasts issued now
    cdef double* W                       # (H, K_max) unnormalised member weights per step
    cdef bint wdirty
    cdef double* dr                      # (L+1,) ACF
    cdef double* dp                      # (L+1,) prominence of the candidate lags (-1: none)
    cdef object _lagd
    cdef double* lagd                    # (L+1,) 0.0, 1.0, ..., L (the lags as doubles)
    cdef object _agr
    cdef double* agr                     # (N_AD, 3) this value's gradients d(e^2 / 2) / d theta
    cdef object _par
    cdef int* par                        # (K_max,) parent of a detected-period member

    cdef void _update(self, double y) noexcept nogil
    cdef void _forecast(self, double* out, Py_ssize_t h) noexcept nogil
    cdef void _window(self, double* out, Py_ssize_t n) noexcept nogil
    cdef double _scale(self) noexcept nogil
    cdef double _last(self) noexcept nogil
    cdef double _snaive(self, Py_ssize_t j) noexcept nogil
    # internals
    cdef double _seas(self, Py_ssize_t k, long long tau) noexcept nogil
    cdef double _member(self, Py_ssize_t k, Py_ssize_t j) noexcept nogil
    cdef void _issue(self, Py_ssize_t k0, Py_ssize_t k1, bint to_ring) noexcept nogil
    cdef void _weights(self) noexcept nogil
    cdef Py_ssize_t _best(self) noexcept nogil
    cdef int _live(self, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil
    cdef void _init_period(self, int p) noexcept nogil
    cdef void _reinit_first(self) noexcept nogil
    cdef int _detect_update(self, double z) noexcept nogil
    cdef void _add_period(self, long long m) noexcept nogil
    cdef void _set_structure(self, tuple added)
    cdef void _adapt_grad(self, long long tau, double y, double ly, long long* pphase) noexcept nogil
    cdef void _adapt_step(self, long long tau) noexcept nogil
    cdef void _adapt_theta(self) noexcept nogil
