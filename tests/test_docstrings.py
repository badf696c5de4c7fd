"""The public classes' docstring examples run (sktime runs the forecaster's itself)."""

from __future__ import annotations

import doctest

import llmrnn.classification


def test_classifier_docstring_example_runs():
    result = doctest.testmod(llmrnn.classification, verbose=False)
    assert result.attempted >= 4 and result.failed == 0
