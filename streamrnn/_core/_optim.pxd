# Signatures only; see _optim.pyx for the math.

cdef enum:
    K_SGD = 0
    K_MOMENTUM = 1
    K_NESTEROV = 2
    K_RMSPROP = 3
    K_ADAM = 4
    K_ADAGRAD = 5

cdef class Optimizer:
    cdef readonly int kind        # SGD, MOMENTUM, NESTEROV, RMSPROP, ADAM, ADAGRAD
    cdef public double lr         # learning rate (a scheduler sets it from Python before a step)
    cdef public double beta_1     # Adam first-moment decay
    cdef public double beta_2     # Adam second-moment decay
    cdef public double eps        # denominator guard
    cdef public double rho        # momentum coefficient (MOMENTUM, NESTEROV) or decay (RMSPROP)
    cdef public double clip_value # clip each gradient coordinate to [-clip_value, clip_value]; 0: off
    cdef public double clip_norm  # rescale the gradient to this global L2 norm if larger; 0: off
    cdef public long long t       # number of steps taken (river's n_iterations)
    cdef readonly bint single     # Adam's moments in float32 (a Network's optimizer)
    cdef readonly object m_arr    # m: first moment / velocity / squared-gradient sum, (P,)
    cdef readonly object v_arr    # v: Adam second moment, (P,); (0,) for the other rules
    cdef double[::1] m            # view of m_arr (float64: every rule but single Adam)
    cdef double[::1] v            # view of v_arr (float64)
    cdef float[::1] mf            # view of m_arr (float32: single Adam)
    cdef float[::1] vf            # view of v_arr (float32: single Adam)
    cdef Py_ssize_t size          # P, the bound parameter count (0 before bind)

    cdef void _assign(self, object m, object v)
    cdef void _set_checked(self, tuple hyper, long long t, object m, object v)
    cdef bint _f32(self)
    cdef void _ensure(self, Py_ssize_t n)
    cdef double _clip_factor(self, double[::1] g) noexcept nogil
    cdef int clip(self, double[::1] g) noexcept nogil
    cdef int clip_apply(self, double[::1] w, double[::1] g) noexcept nogil
    cdef void apply(self, double[::1] w, double[::1] g) noexcept nogil


# the optimizer a network holds after taking over ``checked`` (check_state output, or None)
# (``single``: a Network's, whose Adam moments are float32: check_state(..., single=True))
cdef Optimizer restore_checked(Optimizer current, object checked, bint single=*)
