"""The runnable examples in the docstrings."""
import doctest

import pytest

import streamrnn
from streamrnn import base, classification, forecasting, multiseries, regression


@pytest.mark.parametrize("module", [base, classification, forecasting, regression, multiseries])
def test_docstring_examples(module):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module) if t.examples]
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0


def test_every_public_class_has_a_runnable_example():
    for name in streamrnn.__all__:
        doc = getattr(streamrnn, name).__doc__
        assert ">>> " in doc and "evaluate." in doc, name
    # the multi-series forecaster has a loop of its own (river's evaluators take one series)
    doc = streamrnn.GlobalForecaster.__doc__
    assert ">>> " in doc and "learn_many" in doc and "datasets." in doc
