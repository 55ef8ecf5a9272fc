"""The cells' gate activations on arrays (``sr_sigmoid_n``, ``sr_tanh_n`` in _kernels_impl.h):
within a few ulps of the exact values (computed in long double), exact at the special points
(signed zeros, infinities, NaN), and the same bits from every copy of the C helpers."""

import numpy as np
import pytest

from _support import digest_per_isa
from streamrnn._core import _cells

LD = np.longdouble
HAVE_LD = np.finfo(LD).nmant >= 63          # x87 long double: 11 more bits than double


def _run(name, x):
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.empty_like(x)
    _cells._vector_activation(name, x, y)
    return y


def _exact(name, x):
    xl = x.astype(LD)
    if name == "tanh":
        return np.tanh(xl)
    return np.where(xl >= 0, 1 / (1 + np.exp(-xl)), np.exp(xl) / (1 + np.exp(xl)))


def _inputs():
    rng = np.random.default_rng(0)
    tiny = np.logspace(-300, 0, 2000)
    return np.concatenate([
        np.linspace(-40, 40, 20001), rng.normal(scale=3, size=20000), tiny, -tiny,
        np.nextafter(0.125, [0, 1]), -np.nextafter(0.125, [0, 1]), [0.125, -0.125],
        rng.uniform(-0.2, 0.2, 5000), np.linspace(-750, 750, 3001), [5e-324, -5e-324]])


@pytest.mark.skipif(not HAVE_LD, reason="needs an extended long double for the exact values")
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_within_a_few_ulps_of_the_exact_value(name):
    x = _inputs()
    got = _run(name, x)
    want = _exact(name, x)
    ok = np.abs(want) > 1e-300                   # the clamp: exp(-700) stands in for less
    ulp = np.spacing(np.abs(want[ok]).astype(np.float64))
    err = np.abs(got[ok].astype(LD) - want[ok]) / ulp.astype(LD)
    assert float(err.max()) <= 4.0, (name, float(err.max()), x[ok][np.argmax(err)])
    # beyond the clamp the value is 0 or 1 to double precision anyway
    assert np.all(np.abs(got[~ok]) <= 1e-300)


def test_the_special_points():
    z = np.array([0.0, -0.0])
    t = _run("tanh", z)
    assert t[0] == 0.0 and not np.signbit(t[0]) and t[1] == 0.0 and np.signbit(t[1])
    assert np.array_equal(_run("sigmoid", z), [0.5, 0.5])
    assert np.array_equal(_run("tanh", np.array([np.inf, -np.inf, 800.0, -800.0])),
                          [1.0, -1.0, 1.0, -1.0])
    s = _run("sigmoid", np.array([np.inf, -np.inf, 800.0, -800.0]))
    assert s[0] == s[2] == 1.0 and 0.0 <= s[1] <= 1e-300 and 0.0 <= s[3] <= 1e-300
    assert np.all(np.isnan(_run("sigmoid", np.array([np.nan, -np.nan]))))
    assert np.all(np.isnan(_run("tanh", np.array([np.nan, -np.nan]))))
    # odd to the bit
    x = np.random.default_rng(1).normal(scale=4, size=999)
    assert np.array_equal(_run("tanh", -x), -_run("tanh", x))
    with pytest.raises(ValueError):
        _cells._vector_activation("relu", x, x.copy())
    with pytest.raises(ValueError):
        _cells._vector_activation("tanh", x, x[:3].copy())


_ISA_CODE = r"""
import hashlib, json, numpy as np
from streamrnn._core import _cells
h = hashlib.sha256()
rng = np.random.default_rng(7)
for n in (1, 3, 7, 8, 9, 31, 64, 1001):          # every tail length of every vector width
    x = np.concatenate([rng.normal(scale=5, size=n), rng.uniform(-0.2, 0.2, size=n)])
    for name in ("sigmoid", "tanh"):
        y = np.empty_like(x)
        _cells._vector_activation(name, x, y)
        h.update(y.tobytes())
print(json.dumps([_cells.ISA, h.hexdigest()]))
"""


def test_every_instruction_set_gives_the_same_bits():
    got = digest_per_isa(_ISA_CODE)
    assert len(set(got.values())) == 1, got
