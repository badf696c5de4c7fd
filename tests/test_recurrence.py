"""The recurrence: its strategy table, and one real step's calls and accounting."""

from __future__ import annotations

import numpy as np

from llmrnn import memory as mem
from llmrnn.backends import make_backend
from llmrnn.recurrence import PLANS, STRATEGIES, LoopConfig, Recurrence, State
from llmrnn.tasks import ForecastTask


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
    assert state.record == (task.record_item(record.raw_answer, y[:-1], np.array([y[-1]])),)
