"""The recurrence's text rules, and one real step's accounting."""

from __future__ import annotations

import numpy as np

from llmrnn.backends import make_backend
from llmrnn.recurrence import (
    LoopConfig,
    Recurrence,
    State,
    _cap_words,
    _dedupe_sentences,
    _finished,
    _looping,
)
from llmrnn.tasks import ForecastTask


def test_dedupe_drops_repeats_whatever_bullets_case_and_spacing():
    text = "- The series rises.\n- It dips in winter.\n‹/br›\n  - the series rises."
    cleaned, dropped = _dedupe_sentences(text)
    assert dropped == 1
    assert cleaned.count("series rises") == 1 and "dips in winter" in cleaned
    assert _dedupe_sentences("One. Two.") == ("One. Two.", 0)


def test_looping_detects_a_finished_repeat_only():
    assert not _looping("The last change was small. It grows")
    assert not _looping("The last change was small. The last change")  # not finished yet
    assert _looping("The last change was small. It grows. The last change was small.")
    assert _looping("- rule one\n- rule two\n- rule one\n")


def test_cap_words_keeps_line_breaks():
    assert _cap_words("a b\nc d e", 3) == ("a b\nc", True)
    assert _cap_words("a b", 3) == ("a b", False)


def test_finished_drops_an_unfinished_tail_only():
    assert _finished("- Rises.\n- Falls in winter.\n-") == "- Rises.\n- Falls in winter."
    assert _finished("Rises 2.5 a month. Then it") == "Rises 2.5 a month."
    assert _finished("- Rises\n- Falls") == "- Rises"
    assert _finished("Rises 2.5 a month.") == "Rises 2.5 a month."
    assert _finished("no end at all") == "no end at all"


def test_one_real_step_reuses_the_prediction_prompt(default_model_path):
    y = np.array([112.0, 118.0, 132.0, 129.0, 121.0, 135.0, 148.0, 148.0, 136.0])
    task = ForecastTask.from_series(y)
    backend = make_backend(default_model_path, context_tokens=2048)
    loop = Recurrence(backend, task, LoopConfig(memory_words=40, context_tokens=2048))
    state, record = loop.step(State(), y[:-1], np.array([y[-1]]), index=8)
    assert state.steps == 1 and record.calls == 3
    assert record.generated_tokens > 0 and record.prompt_tokens > 0
    # Reflect and rewrite continue the prediction conversation: only their new turns are
    # evaluated, the rest comes from the KV cache.
    assert record.cached_tokens > record.prompt_tokens
    assert len(state.memory.split()) <= 40
