"""LLMRNNForecaster on the real embedded model through llama.cpp (no stand-in here)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sktime.forecasting.model_evaluation import evaluate
from sktime.performance_metrics.forecasting import MeanAbsoluteError
from sktime.split import ExpandingWindowSplitter

from llmrnn import LLMRNNForecaster, prompts
from llmrnn.backends.llama_cpp import load_count
from llmrnn.memory import SECTIONS, parse_sections
from llmrnn.trace import TRACE_COLUMNS

FH6 = [1, 2, 3, 4, 5, 6]


@pytest.fixture(scope="module")
def y30(airline):
    return airline[-32:-2]


@pytest.fixture(scope="module")
def fitted(y30):
    return LLMRNNForecaster(window=12, fit_steps=3, memory_words=60).fit(y30, fh=FH6)


def test_fit_runs_the_recurrence_over_fit_steps(fitted, y30):
    trace = fitted.get_trace()
    assert list(trace.columns) == TRACE_COLUMNS
    assert len(trace) == 3
    assert list(trace["index"]) == list(y30.index[-3:])
    assert (trace["calls"] == 5).all()  # predict, reflect, rewrite Patterns, Mistakes, Rules
    assert trace["feedback"].str.len().gt(0).all()
    assert np.isfinite(trace["error"]).all()
    assert fitted.memory_ == trace["memory"].iloc[-1]
    assert fitted.memory_ != prompts.DEFAULT_MEMORY
    assert list(parse_sections(fitted.memory_)) == list(SECTIONS)
    # The section calls continue one prompt: a large part comes from llama.cpp's KV cache.
    assert (trace["cached_tokens"] > 0).all()
    assert fitted.model_path_.endswith(".gguf")


def test_predict_six_horizons_indexed_after_cutoff(fitted, y30):
    y_pred = fitted.predict(fh=FH6)
    assert len(y_pred) == 6
    expected = pd.period_range(y30.index[-1] + 1, periods=6, freq=y30.index.freq)
    assert list(y_pred.index) == list(expected)
    assert np.isfinite(y_pred.to_numpy()).all()
    # Absolute horizons give the same values as relative ones.
    absolute = fitted.predict(fh=pd.PeriodIndex(expected[[1, 4]]))
    np.testing.assert_allclose(absolute.to_numpy(), y_pred.to_numpy()[[1, 4]])


def test_predict_changes_no_attribute(fitted):
    before = {k: v for k, v in fitted.__dict__.items()}
    memory, records = fitted.memory_, len(fitted.get_trace())
    fitted.predict()
    fitted.predict_interval(coverage=0.8)
    assert fitted.memory_ == memory and len(fitted.get_trace()) == records
    assert set(fitted.__dict__) == set(before)


def test_interval_and_quantiles_from_samples(fitted):
    interval = fitted.predict_interval(fh=FH6, coverage=0.9)
    lower = interval.xs("lower", level=-1, axis=1).to_numpy()
    upper = interval.xs("upper", level=-1, axis=1).to_numpy()
    assert interval.shape == (6, 2)
    assert np.all(lower <= upper) and np.isfinite(lower).all()
    quantiles = fitted.predict_quantiles(fh=FH6, alpha=[0.1, 0.5, 0.9]).to_numpy()
    assert np.all(np.diff(quantiles, axis=1) >= 0)
    assert np.any(upper > lower)  # samples are not all identical


def test_update_runs_three_phases_per_new_point(airline, y30):
    f = LLMRNNForecaster(window=12, fit_steps=2, memory_words=60).fit(y30, fh=[1])
    memory = f.memory_
    f.update(airline[-2:])
    trace = f.get_trace()
    assert len(trace) == 4
    new = trace.iloc[-2:]
    assert list(new["index"]) == list(airline.index[-2:])
    assert new["feedback"].str.len().gt(0).all()
    assert (new["calls"] == 5).all()  # predict, reflect, three sections: the text may be kept
    assert f.memory_ == new["memory"].iloc[-1] and memory == trace["memory"].iloc[1]
    assert f.cutoff[0] == airline.index[-1]


def test_update_steps_only_points_newer_than_cutoff(airline, y30):
    f = LLMRNNForecaster(window=12, fit_steps=1, memory_words=40).fit(y30)
    f.update(airline[-12:])  # overlaps y30 by 10 points: only 2 are new
    assert len(f.get_trace()) == 3


def test_update_without_params_only_extends_context(airline, y30):
    f = LLMRNNForecaster(window=12, fit_steps=1, memory_words=40).fit(y30, fh=[1])
    memory, before = f.memory_, f.predict()
    f.update(airline[-2:], update_params=False)
    assert f.memory_ == memory and len(f.get_trace()) == 1
    after = f.predict()
    assert after.index[0] == airline.index[-1] + 1
    assert before.index[0] != after.index[0]


def test_pickle_round_trip_predicts_identically(fitted):
    clone = pickle.loads(pickle.dumps(fitted))
    assert clone.memory_ == fitted.memory_
    pd.testing.assert_series_equal(clone.predict(fh=FH6), fitted.predict(fh=FH6))


def test_same_data_and_params_same_memory_and_forecast(y30, fitted):
    again = LLMRNNForecaster(window=12, fit_steps=3, memory_words=60).fit(y30, fh=FH6)
    assert again.memory_ == fitted.memory_
    pd.testing.assert_series_equal(again.predict(fh=FH6), fitted.predict(fh=FH6))


def test_model_loaded_once_for_many_estimators(y30, fitted, default_model_path):
    loads = load_count(default_model_path)
    for _ in range(3):
        fitted.clone().set_params(fit_steps=1).fit(y30[-6:], fh=[1]).predict()
    assert load_count(default_model_path) == loads


def test_evaluate_update_strategy_gives_finite_errors(airline):
    y = airline[-30:]
    cv = ExpandingWindowSplitter(initial_window=26, step_length=1, fh=[1])
    f = LLMRNNForecaster(window=12, fit_steps=1, memory_words=40)
    result = evaluate(f, cv, y, strategy="update", scoring=MeanAbsoluteError())
    assert len(result) == 4
    assert np.isfinite(result["test_MeanAbsoluteError"]).all()


@pytest.mark.parametrize(
    ("params", "calls"),
    [
        ({"strategy": "zero_shot"}, 1),
        ({"strategy": "full_history"}, 1),
        ({"strategy": "memprompt"}, 2),
        ({"strategy": "rnn", "feedback": "judge"}, 5),
        ({"strategy": "rnn", "answer": "value"}, 5),
    ],
)
def test_every_strategy_runs_on_the_real_model(y30, params, calls):
    f = LLMRNNForecaster(window=8, fit_steps=2, memory_words=40, **params).fit(y30, fh=[1, 2])
    trace = f.get_trace()
    assert (trace["calls"] == calls).all()
    assert np.isfinite(f.predict().to_numpy()).all()
    if params["strategy"] in ("memprompt", "full_history"):
        assert f.memory_.count("\n") == 1  # two entries, one per step


def test_full_history_drops_oldest_entries_to_fit_the_budget(airline):
    f = LLMRNNForecaster(strategy="full_history", window=6, fit_steps=40, context_tokens=700)
    f.fit(airline[-50:])
    entries = f.memory_.splitlines()
    assert 0 < len(entries) < 40  # oldest dropped: 40 steps ran, fewer entries fit
    # The newest step is kept (entries are in model units, the trace in data units).
    last_truth = float(f.get_trace()["truth"].iloc[-1]) / f.scale_
    assert entries[-1].endswith(f"actual: {last_truth:.1f}")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"strategy": "fancy"}, "`strategy`"),
        ({"feedback": "oracle"}, "`feedback`"),
        ({"memory_words": 0}, "`memory_words`"),
        ({"window": 1}, "`window`"),
        ({"temperature": -1}, "`temperature`"),
        ({"n_gpu_layers": "all"}, "`n_gpu_layers`"),
        ({"answer": "ratio"}, "`answer`"),
        ({"fit_steps": -2}, "`fit_steps`"),
    ],
)
def test_invalid_parameters_fail_in_fit_naming_the_parameter(y30, params, match):
    f = LLMRNNForecaster(**params)  # __init__ only stores
    with pytest.raises(ValueError, match=match):
        f.fit(y30)


def test_infinite_values_rejected_with_advice(y30):
    bad = y30.copy()
    bad.iloc[5] = np.inf
    with pytest.raises(ValueError, match="inf or NaN"):
        LLMRNNForecaster(fit_steps=1).fit(bad)


def test_fit_without_a_base_reads_the_changes_before_its_steps(airline):
    """Without a base, fit puts the changes before its steps into the record with no model
    call: the facts of the first step read a season of them; the guard's slope reads the
    code's suggestions on them; its budget does not."""
    from llmrnn.tasks import _prior, repeat_lag

    y = airline[:84]
    f = LLMRNNForecaster(window=12, fit_steps=1, memory_words=60, base_forecaster=None)
    f.fit(y)
    trace, record = f.get_trace(), f._single.state.record
    assert len(trace) == 1 and (trace["calls"] == 5).all()  # one step, every phase
    assert len(record) == 64 and sum(np.isnan(item[0]) for item in record) == 63
    changes = np.diff(y.to_numpy(dtype=float))[-64:]
    np.testing.assert_allclose([item[1] for item in record], changes)
    lag, rate = repeat_lag(changes, 12)
    assert lag == 12  # airline's changes come back a year later
    facts = f._single.task.facts(record)
    assert "came back 12 steps later (one season) over 64 steps" in facts
    assert facts.endswith(f"expect a change of about {rate * changes[-12] / f.scale_:+.1f}")
    # each witnessed point kept carries the code's suggestion from those before it (the
    # first of all, which had none, has left the record): the guard's prior
    assert all(np.isfinite(item[3]) for item in record[:63]) and len(_prior(record)) == 63
    assert trace["weight"].iloc[0] == 0.0  # no forecast made yet: nothing in the budget
    assert f.memory_.splitlines()[-1].startswith("Rules: Next time, expect a change of about")


def test_base_forecaster_is_corrected_by_the_real_model(y30):
    from sktime.forecasting.naive import NaiveForecaster

    base = NaiveForecaster(strategy="last", sp=12)
    f = LLMRNNForecaster(window=12, fit_steps=1, memory_words=40, base_forecaster=base)
    y_pred = f.fit(y30).predict(fh=[1, 2, 3])
    assert np.isfinite(y_pred).all()
    assert "used the base forecast" not in f.get_trace()["fault"].iloc[0]  # the answer was read
    assert "correction of the base forecast" in f.get_trace()["feedback"].iloc[0]
    # the correction is in the model's units; the base is refitted on everything seen so far
    base_pred = base.clone().fit(y30).predict(fh=[1, 2, 3]).to_numpy()
    corrections = (y_pred.to_numpy() - base_pred) / f.scale_
    np.testing.assert_allclose(corrections, np.round(corrections, 1), atol=1e-6)
