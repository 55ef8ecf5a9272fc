# Signatures only; see _forecast.pyx for the order of the parts within one observation.

from streamrnn._core._backbone cimport Backbone
from streamrnn._core._combine cimport Combiner, Conformal
from streamrnn._core._network cimport Network


cdef class ForecastCore:
    # ---- configuration
    cdef readonly int horizon          # H, network outputs and the direct forecast steps
    cdef readonly int window           # W, backbone window length in the network input
    cdef readonly int n_lead           # input columns before the features (W + 2)
    cdef readonly int n_experts        # E = 4: network, backbone, last value, seasonal naive
    cdef readonly double clip          # network outputs and targets clipped to +-clip
    cdef readonly tuple periods0       # declared periods
    cdef readonly bint auto            # detect periods online
    cdef readonly int max_lag          # the detector's longest lag
    # ---- committed state (what get_state carries)
    cdef readonly Backbone backbone
    cdef readonly Combiner combiner
    cdef readonly Conformal conformal
    cdef readonly long long t          # values seen, in [0, 2**62)
    cdef readonly long long n_learned  # network steps taken (one per value after the first)
    cdef readonly double prev          # the value before the last one (0 before two values)
    cdef readonly double lmean         # EW mean of the values (rate max(1/n, LEVEL_RATE))
    cdef readonly double lvar          # EW variance of the values
    cdef double _anomaly               # 1 - p-value of the last value (NaN: none)
    cdef double _pred                  # combined one-step forecast of the last value (NaN: none)
    cdef object _pend                  # (H,) pend[tau % H]: the network's base of step tau (the last value then)
    cdef object _pscale                # (H,) the backbone scale of step tau
    cdef double* pend
    cdef double* pscale
    # ---- caches, recomputed from the committed state (never serialised)
    cdef object _bbf                   # (H,) backbone forecasts of the next H values
    cdef double* bbf
    cdef readonly double scale         # backbone scale (normaliser)
    cdef readonly double last          # the last value
    cdef object _lead                  # (n_lead,) the network's lead input for the next step
    cdef double* lead
    # ---- scratch
    cdef Network net
    cdef object u, out
    cdef double* up
    cdef double* op
    cdef object _F, _c, _tg, _f
    cdef double* F                     # (H, E) expert forecasts issued now
    cdef double* c                     # (H,) combined forecasts issued now
    cdef double* tg                    # (H,) delayed targets
    cdef double* f                     # (E,) one step's expert forecasts
    cdef object _rt
    cdef double* rt                    # (H,) sqrt(j + 1): step j's residual is in scale * rt[j] units

    cdef void _refresh(self) noexcept nogil
    cdef void _experts(self, const double* o, Py_ssize_t j, double* f) noexcept nogil
    cdef int _step(self, Network net, double* u, double y) noexcept nogil
    cdef object _learn(self, Network net, double* up, double y)
    cdef const double* _outputs(self) except? NULL
