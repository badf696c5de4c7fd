"""The recurrence: its strategy table, and one real step's calls and accounting."""

from __future__ import annotations

import numpy as np
import pytest

from llmrnn import guard
from llmrnn import memory as mem
from llmrnn.backends import make_backend
from llmrnn.recurrence import PLANS, STRATEGIES, LoopConfig, Recurrence, Replay, State
from llmrnn.tasks import ForecastTask, Observation


def test_every_strategy_has_a_plan():
    assert set(PLANS) == set(STRATEGIES)
    assert PLANS["rnn"].rewrite and not any(PLANS[s].rewrite for s in STRATEGIES if s != "rnn")


def test_one_real_step_predicts_reflects_and_rewrites_every_section(default_model_path):
    y = np.array([112.0, 118.0, 132.0, 129.0, 121.0, 135.0, 148.0, 148.0, 136.0])
    task = ForecastTask.from_series(y)
    backend = make_backend(default_model_path, context_tokens=2048)
    loop = Recurrence(backend, task, LoopConfig(memory_words=40, context_tokens=2048))
    state, record = loop.step(State(), y[:-1], np.array([y[-1]]), index=8)
    # predict, reflect, and one call per memory section
    assert state.steps == 1 and record.calls == 2 + len(mem.SECTIONS)
    assert record.generated_tokens > 0 and record.prompt_tokens > 0
    # the section calls continue one prompt: most of each comes from the KV cache
    assert record.cached_tokens > 0
    assert list(mem.parse_sections(state.memory)) == list(mem.SECTIONS)
    assert len(state.memory.split()) <= 40
    item = task.record_item(record.raw_answer, y[:-1], np.array([y[-1]]))
    np.testing.assert_equal(state.record, (item,))  # (the code's reading: NaN, no Rules yet)


def test_judge_feedback_never_shows_the_truth():
    from tests._scripted import ScriptedBackend

    backend = ScriptedBackend()
    y = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 97.0])
    task = ForecastTask.from_series(y)
    loop = Recurrence(backend, task, LoopConfig(feedback="judge", memory_words=30))
    state, record = loop.step(State(), y[:-1], np.array([y[-1]]), index=7)
    secret = task.values.render(y[-1])
    assert len(backend.prompts) == record.calls == 5
    for prompt in backend.prompts:
        assert secret not in prompt and "Outcome:" not in prompt and "Facts from" not in prompt
    assert record.truth == "97" and record.error == abs(float(record.prediction) - 97.0)


def test_truth_feedback_grounds_the_reflection_in_the_record():
    from tests._scripted import ScriptedBackend

    backend = ScriptedBackend()
    y = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 97.0])
    task = ForecastTask.from_series(y)
    loop = Recurrence(backend, task, LoopConfig(memory_words=30))
    state, _ = loop.step(State(), y[:-2], np.array([y[-2]]))
    state, record = loop.step(state, y[:-1], np.array([y[-1]]))
    reflection = backend.prompts[-4]  # predict, reflect, then the three sections
    assert "Outcome: the actual change was" in reflection
    assert task.facts(state.record) in reflection  # both steps' facts, computed by code
    assert "Rules:" not in reflection.split("<memory>")[1].split("</memory>")[0]
    assert state.record[-1][1] == y[-1] - y[-2]  # the actual change, data units


def test_a_step_never_runs_out_of_context_after_its_reflection():
    """The reflection's check reserves the rewrite: a full-length reflection can't break it."""

    from llmrnn.recurrence import ContextBudgetError
    from tests._scripted import ScriptedBackend

    y = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0])
    task = ForecastTask.from_series(y)
    refused = 0
    for context in range(300, 1400, 25):
        backend = ScriptedBackend(["+1.0"] + ["word " * 2000] * 4)  # every text at max_tokens
        loop = Recurrence(backend, task, LoopConfig(memory_words=60, context_tokens=context))
        try:
            loop.step(State(), y[:-1], np.array([y[-1]]))
        except ContextBudgetError as error:
            if "reflection and the memory rewrite" in str(error):
                refused += 1
                assert len(backend.prompts) == 1  # refused before the reflection was written
    assert refused > 0  # some sizes fit the prediction but not the whole step


def test_the_label_rule_check_is_written_before_the_labels_are_scored():
    from llmrnn import prompts
    from llmrnn.tasks import LabelTask
    from tests._scripted import ScriptedBackend

    task = LabelTask.build(np.array(["down", "up"]), ["x0"])
    notes = "Patterns: x0 rose lately.\nMistakes: My answers were too often down."
    rules = notes + "\nRules: Answer up when x0 is above 0."
    backend = ScriptedBackend(["the row has x0 = 1, above 0, so up"])
    loop = Recurrence(backend, task, LoopConfig(memory_words=30, check_tokens=24))
    _, record = loop.step(State(memory=rules), (1.0,), 1)
    check, scored = backend.prompts[:2]
    assert check.endswith(prompts.LABEL_CHECK) and "Rules: Answer up when x0" in check
    assert "x0: 1" in check  # the row
    # the check reads the Rules with the other sections blank; the labels, the whole memory
    assert "x0 rose lately" not in check and "too often down" not in check
    assert f"Patterns: {prompts.EMPTY_SECTION}" in check
    assert rules in scored
    assert scored.endswith(
        prompts.LABEL_CHECK + " the row has x0 = 1, above 0, so up" + prompts.LABEL_CHECK_ANSWER
    )
    assert record.answer.endswith("(check: the row has x0 = 1, above 0, so up)")
    assert record.calls == 3 + len(mem.SECTIONS)  # check, score, reflect, one per section
    backend.prompts.clear()
    loop.probabilities(State(memory=rules), [(1.0,), (-1.0,)])
    assert sum(p.endswith(prompts.LABEL_CHECK) for p in backend.prompts) == 2  # predict_proba
    for strategy, tokens in (("rnn", 0), ("zero_shot", 24)):  # no check: off, or no Rules
        backend = ScriptedBackend()
        config = LoopConfig(strategy=strategy, memory_words=30, check_tokens=tokens)
        Recurrence(backend, task, config).step(State(memory=rules), (1.0,), 1)
        assert not any(prompts.LABEL_CHECK in p for p in backend.prompts)
    # an empty check (the 135M model often ends the line at once): scored as without one
    backend = ScriptedBackend([" \n"])
    loop = Recurrence(backend, task, LoopConfig(memory_words=30, check_tokens=24))
    _, record = loop.step(State(memory=rules), (1.0,), 1)
    assert not backend.prompts[1].endswith(prompts.LABEL_CHECK_ANSWER)
    assert record.answer in ("down", "up") and "empty rule check" in record.fault
    # no Rules yet (the first steps, memory_effect's initial memory): nothing to check against
    backend = ScriptedBackend(["the row has x0 = 1, so up"])
    loop = Recurrence(backend, task, LoopConfig(memory_words=30, check_tokens=24))
    for memory in (mem.initial_memory(None), "Patterns: the series rises."):
        backend.prompts.clear()
        _, record = loop.step(State(memory=memory), (1.0,), 1)
        assert not any(prompts.LABEL_CHECK in p for p in backend.prompts)
        assert "(check: " not in record.answer and "rule check" not in record.fault
        assert record.calls == 2 + len(mem.SECTIONS)  # score, reflect, one per section


def test_the_code_reads_the_rules_where_the_models_reading_has_lost():
    """The classifier's guard: the memory's Rules read by code answer where the model's own
    reading of them has been wrong more often than the code's; a model that has read them
    better keeps its answers; without a rule to read nothing changes."""
    from llmrnn.tasks import LabelTask
    from tests._scripted import ScriptedBackend

    class Says(ScriptedBackend):  # a model that scores one label first whatever its Rules say
        def __init__(self, label):
            super().__init__()
            self.label = label

        def score(self, prompt, options):
            _, done = super().score(prompt, options)
            return np.log(np.where(np.array(options) == self.label, 0.9, 0.1)), done

    task = LabelTask.build(np.array(["down", "up"]), ["x0"])
    rule = "up when x0 is above 0; otherwise down"
    memory = f"Patterns: none yet.\nMistakes: none yet.\nRules: Answer {rule}"
    rows = [0.5, -0.3, 1.2, -2.0, 0.1, 0.7, -0.4, 0.9]
    for model_said, trusted in ((lambda x: 0, False), (lambda x: int(x > 0), True)):
        past = ()  # the model answered "down" at every row, or the truth at every row
        for x in rows:
            past = (*past, task.record_item(model_said(x), (x,), int(x > 0), past))
        assert task.suggested_rule(past) == rule
        state = State(memory=memory, record=past)
        loop = Recurrence(Says("down"), task, LoopConfig(memory_words=30, check_tokens=0))
        _, record = loop.step(state, (0.8,), 1)
        probs = loop.probabilities(state, [(0.8,), (-0.8,)])
        assert record.answer == "down"
        if trusted:  # its reading has won where the two differed: its answer stands
            assert record.prediction == "down" and record.weight == 1.0
            assert "read by code" not in record.fault
            np.testing.assert_allclose(probs, [[0.9, 0.1], [0.9, 0.1]])
        else:  # half the probability moves to the code's label, which becomes the answer
            assert record.prediction == "up" and record.weight == 0.5
            assert "the Rules read by code: up, not the model's down" in record.fault
            np.testing.assert_allclose(probs, [[0.45, 0.55], [0.95, 0.05]])
            # with the initial memory (memory_effect's "before") there is nothing to read
            effect = loop.memory_effect([Replay(state, (0.8,), 1, record)], State())
            assert effect[0]["prediction"] == "up" and effect[0]["prediction_initial"] == "down"
            lost = past
    # no rule to read: another strategy, judged feedback, or Rules that are not the facts'
    for config, rules in (
        (LoopConfig(strategy="zero_shot", memory_words=30), memory),
        (LoopConfig(feedback="judge", memory_words=30, check_tokens=0), memory),
        (LoopConfig(memory_words=30, check_tokens=0), memory.replace("above 0", "above 1")),
    ):
        loop = Recurrence(Says("down"), task, config)
        probs = loop.probabilities(State(memory=rules, record=lost), [(0.8,)])
        np.testing.assert_allclose(probs, [[0.9, 0.1]])
    # a value the rule's cache cannot hash (a list in a cell) is read without the cache
    odd = LabelTask.build(np.array(["down", "up"]), ["x0", "tags"])
    past = ()
    for x in rows:
        past = (*past, odd.record_item(0, (x, ["a"]), int(x > 0), past))
    assert odd.suggested_rule(past) == rule and odd.rule_label(past, (0.8, ["a"])) == 1


def test_a_witnessed_row_is_evidence_for_the_facts_not_an_answer():
    """Rows seen with their truth but not stepped (fit's rows before fit_steps) enter a label
    record with no answer: the label shares and the rule count them, the model's hit rates
    do not; a forecast's record has no use for them."""
    from llmrnn.tasks import LabelTask
    from tests._scripted import ScriptedBackend

    task = LabelTask.build(np.array(["down", "up"]), ["x0"])
    loop = Recurrence(ScriptedBackend(), task, LoopConfig(memory_words=30, check_tokens=0))
    state = State()
    for x in [0.5, -0.3, 1.2, -2.0, 0.1, 0.7]:
        state = loop.witness(state, (x,), int(x > 0))
    assert state.steps == 0 and state.memory == State().memory and len(state.record) == 6
    assert task.suggested_rule(state.record) == "up when x0 is above 0; otherwise down"
    after, record = loop.step(state, (-0.9,), 0)
    facts = task.facts(after.record)
    assert "true labels of all 7 rows so far: down 43%, up 57%" in facts
    assert f"right at {int(record.error == 0)} of the last 1 rows" in facts
    assert facts.count("right ") == 3  # the one answer's hit rate, the last 1 rows, the rule
    based = ForecastTask.from_series(np.arange(9.0), based=True)
    forecasts = Recurrence(ScriptedBackend(), based, LoopConfig(memory_words=30))
    assert forecasts.witness(state, np.arange(5.0), 6.0) is state  # its errors need the base


def test_a_witnessed_point_is_evidence_for_the_facts_and_the_guards_prior():
    """Without a base a point before fit_steps enters the record as (NaN, its change, NaN,
    the code's suggestion from the points before it): the facts (and the bounds) read it, the
    guard's slope reads the suggestions against the changes (its prior); the guard's budget
    and the intervals do not count it (no forecast was made)."""
    from tests._scripted import ScriptedBackend

    task = ForecastTask.from_series(np.arange(30.0), season=4)
    loop = Recurrence(ScriptedBackend(), task, LoopConfig(memory_words=30))
    state = State()
    values = np.cumsum([5.0, -1.0, -3.0, 1.0] * 5)
    for t in range(1, 16):
        state = loop.witness(state, values[max(0, t - 6) : t], values[t])
    assert state.steps == 0 and state.memory == State().memory and len(state.record) == 15
    assert all(np.isnan(item[0]) for item in state.record)
    assert [item[1] for item in state.record][:4] == [-1.0, -3.0, 1.0, 5.0]
    assert np.isnan(state.record[0][3])  # nothing before it to suggest from
    for i in range(1, 15):  # the facts' number, had the Rules line carried it then
        suggested = task.changes.parse(task.suggested_rule(state.record[:i]), 1)[0]
        assert state.record[i][3] == pytest.approx(suggested)  # (data units, as the record's)
    # the season came back: the late suggestions are most of the change a season before
    late = np.array([(item[3], item[1]) for item in state.record[-4:]])
    assert np.all(np.sign(late[:, 0]) == np.sign(late[:, 1]))
    assert task.residuals(state.record).size == 0  # no forecast made: no error to widen by
    assert task.settle(np.array([0.8]), values[-6:], state.record)[1] == 0.0  # no budget yet
    answered = ((1.0, 1.2), (0.5, 0.4), (1.0, 0.9), (-1.0, -1.1))
    for c in (0.8, -0.5):
        alone = task.settle(np.array([c]), values[-6:], answered)[1]
        warmed = task.settle(np.array([c]), values[-6:], (*state.record, *answered))[1]
        prior = [(item[3], item[1]) for item in state.record[1:]]
        assert warmed == guard.next_weight(answered, c, prior=prior) > alone > 0
    assert task.residuals((*state.record, *answered)).size == len(answered)
    assert "came back 4 steps later" in task.facts(state.record)


def test_without_a_base_the_code_reads_the_rules_number_until_the_model_reads_it_better():
    """co2, 1.5B model, no base: it answered -0.18 under Rules of +0.18, and the like, at 10
    of 16 steps, the Rules the closer at 9. The code reads the Rules' number too, and answers
    unless the model's corrections were the closer more often where the two differed."""
    task = ForecastTask(scale=1.0, season=4)
    nan = float("nan")
    past = tuple((nan, a, nan, nan) for a in [5.0, -1.0, -3.0, 1.0] * 4)
    rule = task.suggested_rule(past)
    reading = float(rule)
    assert reading > 3.5  # most of the +5.0 a season before
    rules = f"Next time, expect a change of about {rule}."
    window = np.cumsum([5.0, -1.0, -3.0, 1.0, 5.0, -1.0, -3.0, 1.0])
    truth = window[-1] + 5.0
    # nothing to judge the model's reading by: the code's answers (a tie), later changes move
    changes, _, fault = task.read_rules(np.cumsum([-reading, 2.0]), past, rules)
    np.testing.assert_allclose(changes, [reading, reading + 2.0])
    assert "the Rules read by code: " + rule in fault and "closer 0 times, the code's 0" in fault
    item = task.record_item(np.array([-reading]), window, truth, past, rules)
    # used, actual, the model's, the code's reading; then the weight settle gave the step
    np.testing.assert_allclose(item[:4], (reading, 5.0, -reading, reading))
    assert item[4] == task.settle(np.array([-reading]), window, past, rules)[1] == 0.0
    assert task.settle(np.array([-reading]), window, past, rules)[2] == fault
    # Rules that do not state the facts' number are not read
    for other in ("Next time, expect a change of about +1.0.", ""):
        assert np.isnan(task.read_rules(np.array([-reading]), past, other)[1])
    # the model's answers closer more often where the two differed: its answer stands
    won = past + ((2.0, 2.1, 2.0, -1.0), (1.0, 0.9, 1.0, 3.0), (0.5, 0.0, 0.6, 0.5))
    rules = f"Next time, expect a change of about {task.suggested_rule(won)}."
    changes, read, fault = task.read_rules(np.array([-1.0]), won, rules)
    assert changes[0] == -1.0 and fault == "" and read == float(task.suggested_rule(won))
    item = task.record_item(np.array([-1.0]), window, truth, won, rules)
    assert item[0] == item[2] == -1.0  # the guard weighs the correction the forecast used


def test_a_rewrite_that_changes_the_facts_rule_gets_the_rule_back():
    """The classifier's Rules line must state the rule its facts end with, as it is."""
    from llmrnn.tasks import LabelTask
    from tests._scripted import ScriptedBackend

    task = LabelTask.build(np.array(["down", "up"]), ["x0"])
    past = tuple(task.record_item(0, (c,), int(c > 0)) for c in [0.5, -0.3, 1.2, -2.0, 0.1])
    rule = "up when x0 is above 0; otherwise down"
    config = LoopConfig(memory_words=60, check_tokens=0)
    for written, kept in (
        (" down when x0 is above 0; otherwise up", False),  # the labels swapped
        (" Up when x0 is above 0;  otherwise down.", True),  # the same rule
    ):
        # score (one dummy text), reflect, then the Patterns, Mistakes and Rules lines
        backend = ScriptedBackend(["-", " x0 led.", " x0 leads.", " were right.", written])
        state, record = Recurrence(backend, task, config).step(State(record=past), (-0.4,), 0)
        assert task.suggested_rule(state.record) == rule
        line = state.memory.splitlines()[-1]
        if kept:
            assert line.split() == ("Rules: Answer" + written).split()  # the model's own words
            assert "facts' rule" not in record.fault
        else:
            assert line == f"Rules: Answer {rule}"
            assert "Rules line did not state the facts' rule ('down when x0" in record.fault
    based = ForecastTask.from_series(np.arange(9.0), based=True)
    assert based.suggested_rule(((0.1, 0.2),) * 5) is None  # the model's number stands


def test_with_a_base_the_code_reads_a_rules_line_that_states_the_facts_number():
    """Fertility of Thailand, 1.5B model, Theta base: the Rules line said +7.8 (the facts'
    number) and the model answered -0.078 at every step, so the guard gave it weight 0. With a
    base the rewrite is not made to state the number, but a line that states it is read as it
    is without a base; the record keeps the model's correction and the code's reading."""
    nan = float("nan")
    based = ForecastTask(scale=0.01, based=True)
    past = tuple((0.0, a, 0.0, nan) for a in [0.11, 0.11, 0.108, 0.109, 0.109, 0.107, 0.108])
    rule = based.facts_rule(past)
    reading = float(based.changes.parse(rule, 1)[0])
    assert based.suggested_rule(past) is None and reading > 0.05  # not forced; carried over
    rules = f"{based.words['rule']} {rule}."
    observation = Observation(np.linspace(2.0, 1.9, 12), np.array([1.8]), "ThetaForecaster")
    changes, read, fault = based.read_rules(np.array([-reading]), past, rules)
    assert read == reading and changes[0] == reading and "the Rules read by code" in fault
    assert based.settle(np.array([-reading]), observation, past, rules)[2] == fault
    item = based.record_item(np.array([-reading]), observation, np.array([1.9]), past, rules)
    np.testing.assert_allclose(item, (reading, 0.1, -reading, reading))  # no weight kept
    # the model's own Rules number (not the facts') stands, as does a model that reads better
    assert np.isnan(based.read_rules(np.array([-0.05]), past, f"{based.words['rule']} -5.0.")[1])
    won = past + ((0.1, 0.1, 0.1, -0.1),)
    assert based.read_rules(np.array([-reading]), won, rules)[0][0] == -reading


def test_without_a_base_the_rules_line_gets_the_facts_number_back():
    """co2, 1.5B model, no base: the Rules line kept an old number or flipped the facts' sign
    at 4 of 16 steps, and the answers followed; without a base it must state that number."""
    from llmrnn.tasks import repeat_lag
    from tests._scripted import ScriptedBackend

    task = ForecastTask(scale=1.0, season=4)
    past = tuple((float("nan"), a) for a in [5.0, -1.0, -3.0, 1.0] * 4)
    window = np.cumsum([5.0, -1.0, -3.0, 1.0, 5.0, -1.0])
    lag, rate = repeat_lag([*(a for _, a in past), 5.0], 4)  # the step's change: +5.0
    assert lag == 4 and 0.7 < rate <= 1.0
    config = LoopConfig(memory_words=60)
    for written, kept in ((" +0.8", False), (" -0.8", True), (" -4.0", False)):
        # predict, reflect, then the Patterns, Mistakes and Rules lines
        backend = ScriptedBackend(["+4.0", " it rose.", " a season.", " too low.", written])
        state, record = Recurrence(backend, task, config).step(State(record=past), window, 11.0)
        rule = task.suggested_rule(state.record)
        assert rule == f"{-rate:+.1f}" == "-0.8"  # most of the -1.0 a season before the next
        assert task.facts(state.record).endswith(f"expect a change of about {rule}")
        line = state.memory.splitlines()[-1]
        assert line.rstrip(".") == f"Rules: Next time, expect a change of about {rule}"
        assert ("Rules line did not state the facts' rule" in record.fault) is not kept
