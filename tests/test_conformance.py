"""sktime's conformance suite for LLMRNNForecaster, scikit-learn's for LLMRNNClassifier.

The suite makes ~700 fits and ~2,000 predictions, so it runs on the deterministic stand-in
backend (``get_test_params``), which goes through the real prompt, grammar, parsing and memory
code. The class docstring's example (``test_doctest_examples``) runs on the real model.
No test is excluded.
"""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks
from sktime.utils.estimator_checks import check_estimator

from llmrnn import LLMRNNClassifier, LLMRNNForecaster
from llmrnn.models import STAND_IN

# sktime's checks fit a few steps and ask for intervals: the warning that so short a record
# makes intervals too narrow to trust is right there, and tested elsewhere (test_robustness)
pytestmark = pytest.mark.filterwarnings("ignore:The intervals rest on")

EXCLUDED: dict[str, str] = {}


@pytest.mark.conformance
def test_sktime_check_estimator_passes_every_test():
    results = check_estimator(
        LLMRNNForecaster, raise_exceptions=False, tests_to_exclude=list(EXCLUDED)
    )
    failed = {name: str(outcome)[:300] for name, outcome in results.items() if outcome != "PASSED"}
    assert len(results) > 1000
    assert any("test_doctest_examples" in name for name in results)
    assert failed == {}


def test_at_least_two_parameter_sets_reaching_different_paths():
    params = LLMRNNForecaster.get_test_params()
    assert len(params) >= 2
    assert len({p.get("strategy", "rnn") for p in params}) >= 2


# scikit-learn's checks for LLMRNNClassifier, on the same stand-in backend. No check is
# expected to fail; check_array_api_input is skipped by scikit-learn itself unless
# SCIPY_ARRAY_API is set.


@pytest.mark.conformance
@parametrize_with_checks([LLMRNNClassifier(model=STAND_IN, memory_words=30)])
def test_sklearn_check_estimator(estimator, check):
    check(estimator)
