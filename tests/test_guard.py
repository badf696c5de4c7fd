"""The guard between the model's correction and the forecast (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from llmrnn import guard
from llmrnn.tasks import Anchored, ForecastTask


def test_largest_moves_per_horizon():
    window = np.array([10.0, 12.0, 11.0, 15.0])
    np.testing.assert_array_equal(guard.largest_moves(window, 3), [4.0, 3.0, 5.0])
    np.testing.assert_array_equal(guard.largest_moves(window[:2], 3), [2.0, 2.0, 2.0])


def test_bound_cuts_only_what_is_beyond_the_limit():
    bounded, cut = guard.bound(np.array([-31.0, 0.5]), np.array([3.0, 3.0]))
    np.testing.assert_array_equal(bounded, [-3.0, 0.5])
    assert cut
    same, cut = guard.bound(np.array([2.0]), np.array([0.0]))  # nothing to judge by
    assert same[0] == 2.0 and not cut


def test_weight_needs_evidence_before_trusting():
    assert guard.weight([]) == 0.0
    assert guard.weight([(1.0, 1.0)] * (guard.MIN_STEPS - 1)) == 0.0
    assert guard.weight([(0.0, 1.0)] * 10) == 0.0  # the model never corrected


def test_weight_trusts_corrections_that_come_true_and_drops_those_that_do_not():
    rng = np.random.default_rng(0)
    c = rng.normal(size=30)
    helpful = guard.weight(list(zip(c, c + 0.1 * rng.normal(size=30))))
    useless = guard.weight(list(zip(c, rng.normal(size=30))))
    harmful = guard.weight(list(zip(c, -c)))
    assert 0.8 < helpful <= 1.0
    assert useless < 0.3 and harmful == 0.0


def test_weight_settings_default_to_the_shipped_rule_and_change_it():
    rng = np.random.default_rng(1)
    c = rng.normal(size=12)
    record = list(zip(c, 0.6 * c + 0.5 * rng.normal(size=12)))
    shipped = guard.weight(record)
    assert shipped == guard.weight(record, z=guard.Z, prior_steps=guard.PRIOR_STEPS)
    assert guard.weight(record, z=0.0) > shipped  # no standard error taken off
    assert guard.weight(record, z=0.0, prior_steps=0.0) > guard.weight(record, z=0.0)
    assert guard.weight(record[:2], min_steps=2, z=0.0) > 0.0 == guard.weight(record[:2], z=0.0)


def test_weight_is_never_above_one():
    assert guard.weight([(1.0, 5.0), (2.0, 10.0), (-1.0, -5.0), (1.5, 7.5)]) == 1.0


@pytest.mark.parametrize("weight", [None, 0.5])
def test_settle_bounds_and_weighs_the_correction(weight):
    task = ForecastTask(scale=1.0, based=True, weight=weight)
    observation = Anchored(np.array([100.0, 101.0, 103.0, 102.0]), np.array([104.0]), "Theta")
    record = tuple((float(c), float(c)) for c in [1.0, -1.0, 2.0, -2.0, 1.5])
    prediction, w, fault = task.settle(np.array([-31.0]), observation, record)
    limit = 2.0  # the largest move of the window and of the record's actual corrections
    expected_w = guard.weight(record) if weight is None else weight
    assert w == pytest.approx(expected_w)
    assert prediction[0] == pytest.approx(104.0 - expected_w * limit)
    assert "beyond any move seen" in fault


def test_value_answers_are_guarded_as_changes_from_the_last_value():
    task = ForecastTask(scale=1.0, answer="value", weight=1.0)
    prediction, _, fault = task.settle(np.array([500.0]), np.array([100.0, 101.0, 99.0]), ())
    assert prediction[0] == pytest.approx(101.0) and fault  # 99 + the largest move, 2


def test_carry_over_is_the_evidence_that_a_base_error_persists():
    from llmrnn.tasks import carry_over

    assert carry_over([]) == 0.0
    assert carry_over([2.0, 2.0, 2.0]) == 0.0  # 2 pairs: not enough evidence yet
    persistent = carry_over([2.0, 1.9, 2.1, 2.0, 1.8, 2.2, 2.0, 1.9])
    assert 0.5 < persistent < 1.0  # shrunk towards 0, never above 1
    assert carry_over([2.0, -2.0, 2.1, -1.9, 2.0, -2.2, 1.9, -2.0]) == 0.0  # flips sign
    rng = np.random.default_rng(0)
    assert carry_over(rng.normal(size=12)) < 0.3  # noise: (almost) nothing carries over


def test_facts_suggest_part_of_the_last_error_only_where_errors_persisted():
    from llmrnn.tasks import ForecastTask

    task = ForecastTask(scale=1.0, based=True)
    persisted = task.facts(tuple((0.0, a) for a in [2.0, 1.9, 2.1, 2.0, 1.8, 2.2, 2.0, 1.9]))
    assert "carried over into the next one" in persisted and "does not" not in persisted
    assert "rule to keep is: Next time, correct the base forecast by about" in persisted
    assert not persisted.rstrip().endswith("+0.0")
    flipped = task.facts(tuple((0.0, a) for a in [2.0, -2.0, 2.1, -1.9, 2.0, -2.2, 1.9, -2.0]))
    assert "does not show" in flipped and flipped.rstrip().endswith("+0.0")
