"""The global core's combination errors start as a running mean (issue 12 after acc9): the
readable reference (which tests/test_global_core_exact.py holds equal to the C code) keeps a
key's error of the last value at step 1 as the plain mean of its first scorings, then EW."""
import numpy as np

import reference as R
import reference_global as RG
from streamrnn._core import ADAM, LSTM, SQUARED, Optimizer
from streamrnn._core._global import GlobalCore


def _ref(m=0, H=2):
    core = GlobalCore(LSTM, 3, 1, 2, H, m, 0, 4, 2, "float64", 1, 3, Optimizer(ADAM, 0.01),
                      loss=SQUARED)
    return RG.RefGlobal(LSTM, 3, 1, 2, H, m, 0, False, 1, SQUARED, core.net.params.copy(),
                        R.RefOptimizer("adam", 0.01))


def test_the_first_scorings_enter_as_a_running_mean_then_ew():
    rng = np.random.default_rng(4)
    ys = list(50 + np.cumsum(rng.normal(0, 2, 120)))
    ref = _ref()
    errs = []
    for t, y in enumerate(ys):
        ref.step([0], [y])
        s = t - 1                      # the origin of step 1's forecast scored by y_t
        if s >= RG.WARM:
            errs.append(abs(y - ys[s]))
        got = ref.keys[0].err[0, 2]    # the last value's error at step 1
        c = len(errs)
        if 1 <= c <= 40:               # c / (c + 1) < 0.98: still the running mean
            assert abs(got - np.mean(errs)) <= 1e-9 * (1 + np.mean(errs))
        if c == 120 - 1 - RG.WARM:     # later the EW (0.98) has forgotten the first errors
            want = errs[0]
            for i, e in enumerate(errs[1:], start=1):
                rho = min(RG.DECAY, i / (i + 1))
                want = rho * want + (1 - rho) * e
            assert abs(got - want) <= 1e-9 * (1 + want)
            assert abs(got - np.mean(errs)) > 1e-6
