"""river's own estimator checks on every streamrnn estimator, one pytest case per check."""
import pytest
from river import checks

import streamrnn

CLASSES = [getattr(streamrnn, name) for name in streamrnn.__all__]


def _cases():
    for cls in CLASSES:
        for i, params in enumerate(cls._unit_test_params()):
            est = cls(**params)
            for check in checks.yield_checks(est):
                yield pytest.param(est, check, id=f"{cls.__name__}[{i}]:{check.__name__}")


@pytest.mark.parametrize("estimator, check", list(_cases()))
def test_river_check(estimator, check):
    check(estimator.clone())


def test_every_class_is_checked():
    names = {p.id.split("[")[0] for p in _cases()}
    assert names == set(streamrnn.__all__) and len(names) == 9
