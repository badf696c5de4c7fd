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
    expected_w = guard.next_weight(record, -limit) if weight is None else weight
    assert w == pytest.approx(expected_w)
    if weight is None:  # the record's corrections gained nothing: the budget caps the slope
        assert 0.0 < w < guard.weight(record)
    assert prediction[0] == pytest.approx(104.0 - expected_w * limit)
    assert "beyond any move seen" in fault


#: One step ahead on tbilrate with Qwen2.5-Coder-1.5B (benchmarks/results/learning): three
#: corrections came true, then the model answered the last actual correction and the rate turned.
TBILRATE = [(-0.01, 0.509), (0.01, 0.544), (0.01, 0.318), (0.01, 0.005), (0.0, 0.058),
            (0.01, 0.068), (0.02, -0.222), (-0.05, -0.790), (-0.23, -0.958), (-0.54, -1.427),
            (-1.43, 0.185), (0.03, -0.591), (-0.08, -1.035), (-0.23, 0.108)]  # fmt: skip


def _loss_ratio(record, w):
    c, a = np.asarray(record, dtype=float).T
    return np.sum(np.abs(a - w * c)) / np.sum(np.abs(a))


def test_the_budget_keeps_a_turn_from_costing_more_than_the_tolerance():
    slope = np.array([guard.weight(TBILRATE[:i]) for i in range(len(TBILRATE))])
    assert _loss_ratio(TBILRATE, slope) > 1.05  # the slope alone trusted the streak
    budgeted = guard.weights(TBILRATE)
    assert _loss_ratio(TBILRATE, budgeted) <= 1.0 + guard.TOLERANCE
    assert np.all(budgeted <= slope + 1e-12) and budgeted.max() > 0  # capped, not switched off
    np.testing.assert_array_equal(guard.weights(TBILRATE, tolerance=None), slope)


def test_the_budget_grows_with_what_the_corrections_gained():
    rng = np.random.default_rng(3)
    c = rng.normal(size=40)
    helpful = list(zip(c, c + 0.2 * rng.normal(size=40)))
    w = guard.weights(helpful)
    assert w[10] < w[-1] and w[-1] > 0.7  # trust is earned by winning, then given
    assert guard.next_weight(helpful, 100.0) < guard.next_weight(helpful, 0.5)  # big risk, less


def _records(seed: int) -> list[tuple[float, float]]:
    """Corrections that come true until a turn, then point the wrong way; heavy-tailed noise."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 60))
    c = rng.normal(size=n) * rng.choice([0.01, 1.0, 100.0])
    sign = np.where(np.arange(n) < rng.integers(4, n), 1.0, -1.0)
    return list(zip(c, sign * c + 0.3 * np.abs(c).mean() * rng.standard_t(2, size=n)))


def _worst_prefix(record, w) -> float:
    return max(_loss_ratio(record[:i], w[:i]) for i in range(1, len(record) + 1))


def test_the_budget_is_a_guarantee_on_every_prefix():
    records = [_records(seed) for seed in range(30)]
    for record in records:
        w = guard.weights(record)
        assert np.all((0 <= w) & (w <= 1))
        assert _worst_prefix(record, w) <= 1.0 + guard.TOLERANCE + 1e-9
    # the same records break the tolerance under the slope alone: the test can fail
    slope_only = [_worst_prefix(r, guard.weights(r, tolerance=None)) for r in records]
    assert max(slope_only) > 1.0 + guard.TOLERANCE


def test_a_prior_earns_trust_not_budget():
    """Pairs from before the record (the code's suggestions on witnessed points) count in the
    slope: a prior that came true trusts the first corrections more, one that did not less;
    the budget counts the record alone, so its guarantee holds whatever the prior."""
    rng = np.random.default_rng(5)
    c = rng.normal(size=12)
    record = list(zip(c, c + 0.2 * rng.normal(size=12)))
    p = rng.normal(size=40)
    came_true = list(zip(p, p + 0.2 * rng.normal(size=40)))
    did_not = list(zip(p, rng.normal(size=40)))
    alone = guard.weights(record)
    trusted = guard.weights(record, prior=came_true)
    doubted = guard.weights(record, prior=did_not)
    assert trusted[0] == alone[0] == 0.0  # nothing forecast yet: no budget to risk
    assert np.all(alone[1 : guard.MIN_STEPS] == 0) and np.all(trusted[1 : guard.MIN_STEPS] > 0)
    assert trusted[1:].sum() > alone[1:].sum() > doubted[1:].sum()
    assert guard.weight(came_true + record[:1]) > trusted[1]  # capped by the record's budget
    assert guard.next_weight(record, 0.5, prior=came_true) == pytest.approx(
        guard.weights([*record, (0.5, 0.0)], prior=came_true)[-1]
    )
    for seed in range(30):  # the guarantee on every prefix, under a prior that came true
        turn = _records(seed)
        w = guard.weights(turn, prior=came_true)
        assert _worst_prefix(turn, w) <= 1.0 + guard.TOLERANCE + 1e-9


def test_without_a_base_the_record_keeps_the_weight_the_forecast_used():
    """The guard's prior shrinks as the witnessed points leave the bounded record, so the
    weights it would replay now differ from the ones the forecasts used: the record keeps
    those, the budget counts them, and the guarantee holds on the forecasts made."""
    rng = np.random.default_rng(11)
    season = np.array([6.0, -2.0, -5.0, 1.0])
    changes = np.tile(season, 30) + rng.normal(scale=0.5, size=120)
    values = np.concatenate([[100.0], 100.0 + np.cumsum(changes)])
    task = ForecastTask.from_series(values[:60], season=4)
    record: tuple = ()
    for t in range(1, 61):
        record = (*record, task.witness_item(values[max(0, t - 8) : t], values[t], record))[-64:]
    used, actual, kept = [], [], []
    for t in range(61, 121):
        window = values[t - 8 : t]
        # the model copies the code's suggestion, flips it after a turn half-way, adds noise
        said = float(task.suggested_rule(record)) * (1 if t < 90 else -1) + rng.normal()
        answer = np.array([said * task.scale])
        prediction, w, _ = task.settle(answer, window, record)
        item = task.record_item(answer, window, values[t], record)
        assert item[4] == w  # what settle gave the step, kept
        used.append(prediction[0] - window[-1])
        actual.append(item[1])
        kept.append(item[4])
        record = (*record, item)[-64:]
        if t == 89:
            before_turn = record
    assert max(kept) > 0.5 and max(kept[:5]) > 0  # the rule trusted from the first steps on
    used, actual = np.array(used), np.array(actual)
    for i in range(1, len(used) + 1):  # the forecasts' loss against the last value, bounded
        lost = np.sum(np.abs(actual[:i] - used[:i])) / np.sum(np.abs(actual[:i]))
        assert lost <= 1.0 + guard.TOLERANCE + 1e-9
    answered = [item for item in record if item[0] == item[0]]
    prior = [(item[3], item[1]) for item in record if item[0] != item[0]]
    replayed = guard.weights([item[:2] for item in answered], prior=prior)
    assert not np.allclose(replayed, kept)  # why they are kept
    # the budget counts the kept weights: had every step been given 0, nothing was gained,
    # and only the tolerance may be risked, whatever a replay would say
    zeroed = tuple((*i[:4], 0.0) if i[0] == i[0] else i for i in before_turn)
    answered = [item[:2] for item in before_turn if item[0] == item[0]]
    prior = [(item[3], item[1]) for item in before_turn if item[0] != item[0]]
    c = max(abs(item[1]) for item in before_turn)
    w = task.settle(np.array([c]), values[82:90], zeroed)[1]
    allowance = guard.TOLERANCE * sum(abs(a) for _, a in answered) / c
    assert w == pytest.approx(allowance)
    assert guard.next_weight(answered, c, prior=prior) > 1.5 * allowance


def test_residuals_and_the_record_replay_what_settle_did():
    task = ForecastTask(scale=1.0, based=True)
    window = np.array([100.0, 101.0, 103.0, 102.0])
    record: tuple = ()
    for step, (answer, truth) in enumerate([(1.0, 105.0), (1.5, 106.0), (30.0, 103.0)] * 3):
        observation = Anchored(window + step, np.array([104.0 + step]), "Theta")
        prediction, w, _ = task.settle(np.array([answer]), observation, record)
        item = task.record_item(np.array([answer]), observation, np.array([truth + step]), record)
        record = (*record, item)
        assert truth + step - prediction[0] == pytest.approx(task.residuals(record)[-1])
        # a with-base item also keeps the model's correction and the code's reading (none:
        # no Rules were given, so the model's bounded answer is the one used)
        assert len(item) == 4 and item[0] == item[2] and np.isnan(item[3])
        assert w == pytest.approx(guard.weights([i[:2] for i in record])[-1])


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


def test_repeat_lag_finds_changes_that_come_back_a_season_later():
    """Without a base the corrections are the series' changes: a monthly season repeats them
    12 steps later, which the last change alone does not show."""
    from llmrnn.tasks import carry_over, repeat_lag

    rng = np.random.default_rng(1)
    pattern = np.array([3.0, -1.0, 4.0, -6.0, 2.0, 5.0, -3.0, -4.0, 6.0, -2.0, 1.0, -5.0])
    changes = np.tile(pattern, 4) + rng.normal(scale=0.3, size=48)
    lag, rate = repeat_lag(changes, 12)
    assert lag == 12 and 0.8 < rate <= 1.0  # suggests most of the change a season before
    assert repeat_lag(changes, 1) == (1, carry_over(changes))  # no season: the last change
    assert repeat_lag(changes[:12], 12) == (1, carry_over(changes[:12]))  # not a season yet
    persistent = np.cumsum(rng.normal(size=48)) * 0.2 + 2.0  # errors that persist, no season
    assert repeat_lag(persistent, 4)[0] == 1


def test_facts_without_a_base_suggest_the_change_of_a_season_before():
    from llmrnn.tasks import ForecastTask

    task = ForecastTask(scale=1.0, season=4)
    record = tuple((float("nan"), a) for a in [5.0, -1.0, -3.0, 1.0] * 4)
    facts = task.facts(record)
    assert "came back 4 steps later (one season) over 16 steps" in facts
    assert "your" not in facts  # nothing of the model's own yet: only witnessed points
    suggested = float(facts.rsplit("about", 1)[1])
    assert 3.0 < suggested <= 5.0  # most of +5.0, the change a season before the next one
    stepped = task.facts((*record, (2.0, 4.5)))
    assert "- your changes: +2.0\n- your change beat no change at 1 of 1 steps" in stepped
    based = ForecastTask(scale=1.0, season=4, based=True)  # Theta models the season: lag 1
    assert "came back" not in based.facts(tuple((0.0, a) for _, a in record))


def test_one_lucky_correction_among_neutral_answers_earns_no_trust():
    """cpi on the 1.5B model: +0.0 at 12 steps, then one correction that came true twice over.

    Counting the neutral steps as evidence gave that single pair a weight of 1, and the next
    correction cost the test window 2.5%; a +0.0 answer says nothing about corrections."""
    record = [(0.0, a) for a in [0.37, 1.01, -1.98, 0.72, 1.41, 0.40, 0.66, 2.40, 0.55, 3.60]]
    record += [(0.0, -2.86), (-2.86, -5.71)]
    assert guard.weight(record) == 0.0
    assert guard.weight(record + [(-1.0, -1.5), (-0.5, -0.6)]) > 0.0  # three corrections: some
