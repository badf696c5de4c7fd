"""Trace helpers: the error-correction rate, the memory's effect, the learning curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrnn.trace import (
    EFFECT_COLUMNS,
    effect_frame,
    effect_summary,
    error_correction_rate,
    learning_curve,
    memory_changes,
    memory_html,
)


def test_error_correction_rate_counts_bad_steps_followed_by_good_ones():
    assert error_correction_rate([1, 0, 1, 1, 0]) == pytest.approx(2 / 3)  # 0/1 errors
    assert error_correction_rate([5.0, 1.0, 9.0, 2.0], threshold=3.0) == 1.0
    assert np.isnan(error_correction_rate([0, 0, 0]))  # no bad step to correct
    assert np.isnan(error_correction_rate([1]))


def _effect(changed, error, initial, said=None, said_initial=None):
    n = len(changed)
    said = error if said is None else said
    said_initial = initial if said_initial is None else said_initial
    rows = [
        dict(zip(EFFECT_COLUMNS, (i, i, "", "", "", "", "", e, e0, a, a0, c)))
        for i, (c, e, e0, a, a0) in enumerate(zip(changed, error, initial, said, said_initial))
    ]
    return effect_frame(rows), n


def test_effect_summary_skips_the_first_steps_and_counts_better_and_worse():
    frame, _ = _effect(
        changed=[True, True, False, True, True, True, False],
        error=[9.0, 9.0, 1.0, 1.0, 3.0, 2.0, 4.0],
        initial=[0.0, 0.0, 1.0, 2.0, 1.0, 2.0, 4.0],
    )
    summary = effect_summary(frame, after=2)
    assert summary["steps"] == 5
    assert summary["changed"] == pytest.approx(3 / 5)
    assert (summary["better"], summary["worse"]) == (1, 1)  # equal errors count as neither
    assert summary["error"] == pytest.approx(np.mean([1.0, 1.0, 3.0, 2.0, 4.0]))
    assert summary["error_initial"] == pytest.approx(np.mean([1.0, 2.0, 1.0, 2.0, 4.0]))


def test_effect_summary_judges_the_answers_at_full_weight_apart_from_the_forecast():
    # the guard trusted the model little (forecast errors equal), but the memory's answers
    # were better twice and worse once: that is what the answer columns count
    frame, _ = _effect(
        changed=[True, True, True, False],
        error=[2.0, 2.0, 2.0, 2.0],
        initial=[2.0, 2.0, 2.0, 2.0],
        said=[1.0, 0.5, 3.0, 2.0],
        said_initial=[2.0, 2.0, 2.0, 1.0],
    )
    summary = effect_summary(frame, after=0)
    assert (summary["better"], summary["worse"]) == (0, 0)
    assert (summary["better_answers"], summary["worse_answers"]) == (2, 1)
    assert summary["error_answer"] == pytest.approx(np.mean([1.0, 0.5, 3.0, 2.0]))
    assert summary["error_answer_initial"] == pytest.approx(1.75)


def test_learning_curve_averages_blocks_of_steps():
    trace = pd.DataFrame({"step": range(6), "error": [4.0, 2.0, np.nan, 1.0, 1.0, 0.0]})
    curve = learning_curve(trace, bins=2)
    assert list(curve.index) == ["0-3", "4-5"]  # the step without a truth is left out
    np.testing.assert_allclose(curve.to_numpy(), [7 / 3, 0.5])


def test_memory_changes_shows_each_change_once_and_the_first_rewrite_when_told_the_start():
    memories = ["Rules: a", "Rules: a", "Rules: b", None]
    trace = pd.DataFrame({"step": [0, 1, 2, 3], "memory": memories})
    diff = memory_changes(trace)
    assert diff.startswith("--- step 1\n+++ step 2") and "-Rules: a\n+Rules: b" in diff
    assert "--- step 2\n+++ step 3" in diff and diff.count("---") == 2  # unchanged step 0 -> 1
    with_start = memory_changes(trace, initial="Rules: (none yet)")
    assert with_start.startswith("--- initial\n+++ step 0") and "+Rules: a" in with_start
    assert memory_changes(trace.iloc[:2]) == ""  # never changed: nothing to show
    assert memory_changes(trace.iloc[:2], initial="Rules: a") == ""


def test_panel_traces_are_read_series_by_series():
    """A panel's trace (its index levels first) is not one long series: the curve averages
    step k over the series, and memories are compared within a series only."""
    trace = pd.DataFrame(
        {
            "h0": ["a", "a", "a", "b", "b", "b"],
            "step": [0, 1, 2, 0, 1, 2],
            "index": [1, 2, 3, 1, 2, 3],
            "error": [4.0, 2.0, 0.0, 2.0, 0.0, 1.0],
            "feedback": ["f"] * 6,
            "memory": ["Rules: x", "Rules: x", "Rules: y", "Rules: y", "Rules: y", "Rules: y"],
        }
    )
    curve = learning_curve(trace, bins=3)
    assert list(curve.index) == ["0-0", "1-1", "2-2"]
    np.testing.assert_allclose(curve.to_numpy(), [3.0, 1.0, 0.5])
    diff = memory_changes(trace)
    assert diff.startswith("=== h0=a\n--- step 1\n+++ step 2") and "h0=b" not in diff
    assert diff.count("---") == 1  # a's last memory and b's first are not a change
    with_start = memory_changes(trace, initial="Rules: x")
    assert "=== h0=b\n--- initial\n+++ step 0" in with_start
    page = memory_html(trace)
    assert page.count("<th colspan='5'>") == 2 and page.count("<mark>") == 3
    from llmrnn.plotting import plot_trace  # matplotlib is in the dev extra: no skip

    with pytest.raises(ValueError, match="draws one series; this trace holds 2"):
        plot_trace(trace)
