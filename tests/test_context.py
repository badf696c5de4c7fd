"""Exogenous X and calendar facts: what the model is shown, and the errors for bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.tseries.holiday import USFederalHolidayCalendar
from sktime.datasets import load_uschange

from llmrnn import LLMRNNForecaster
from llmrnn.context import calendar_facts, check_calendar
from llmrnn.models import STAND_IN

from ._scripted import ScriptedBackend

SMALL = {"window": 6, "fit_steps": 2, "memory_words": 30}


@pytest.fixture()
def scripted(monkeypatch):
    backend = ScriptedBackend()
    monkeypatch.setattr("llmrnn._params.make_backend", lambda *a, **k: backend)
    return backend


@pytest.fixture(scope="module")
def uschange():
    y, X = load_uschange()
    return y.iloc[-30:], X.iloc[-30:]


def _data(prompt: str) -> str:
    return prompt[prompt.index("<data>") : prompt.index("</data>")]


def test_every_step_shows_x_of_the_window_and_of_the_time_forecast(scripted, uschange):
    y, X = uschange
    f = LLMRNNForecaster(**SMALL).fit(y[:-3], X=X[:-3])
    data = _data(scripted.prompts[0])  # the first step predicts y[-5] from the 6 before it
    scale = f._tracks[None].task.exog_scales[0]
    income = X["Income"].to_numpy()
    window = ", ".join(f"{v / scale:.1f}" for v in income[-11:-5])
    assert f"Income: {window} | {income[-5] / scale:.1f}" in data
    assert set(X.columns) <= {line.split(":")[0] for line in data.splitlines()}
    reflection = next(p for p in scripted.prompts if "This step's data" in p)
    assert "Income:" in _data(reflection)  # the memory's rewrite sees the same context


def test_predict_and_update_need_x_with_the_same_columns(scripted, uschange):
    y, X = uschange
    f = LLMRNNForecaster(**SMALL).fit(y[:-3], X=X[:-3], fh=[1, 2])
    with pytest.raises(ValueError, match="fitted with exogenous X.*pass X to predict"):
        f.predict()
    with pytest.raises(ValueError, match=r"columns \['Income'\].*same columns"):
        f.predict(X=X[["Income"]][-3:-1])
    with pytest.raises(ValueError, match="pass X to update"):
        f.update(y[-3:-2])
    with pytest.raises(ValueError, match="not contained in index"):  # sktime's own check
        f.update(y[-3:-1], X=X[-3:-2])
    assert len(f.get_trace()) == 2  # every failed call left the estimator as it was
    assert np.isfinite(f.predict(X=X[-3:-1]).to_numpy()).all()
    f.update(y[-3:-2], X=X[-3:-2])
    assert len(f.get_trace()) == 3


def test_missing_values_and_long_text_are_handled_as_documented(scripted, uschange):
    y, X = uschange
    X = X.copy()
    X["note"] = ["calm"] * len(X)
    X.loc[X.index[-4], "note"] = "strike " * 60
    f = LLMRNNForecaster(**{**SMALL, "fit_steps": 1}).fit(y[:-3], X=X[:-3], fh=[1, 2])
    data = _data(scripted.prompts[0])
    assert "[cut]" in data and "strike " * 28 in data and "strike " * 40 not in data
    f.predict(X=X[-3:-2])  # no row for the second time forecast: shown as missing
    assert "missing" in _data(scripted.prompts[-1]).split("Income:")[1].splitlines()[0]
    bad = X.copy()
    bad.iloc[-5, 0] = np.nan
    with pytest.raises(ValueError, match="missing data"):  # sktime's own check of X
        LLMRNNForecaster(**SMALL).fit(y[:-3], X=bad[:-3])


def test_calendar_facts_of_days_months_and_quarters():
    days = pd.date_range("2024-07-03", periods=2, freq="D")
    assert calendar_facts(days, True) == ("Wednesday 3 July 2024", "Thursday 4 July 2024")
    holidays = calendar_facts(days, USFederalHolidayCalendar())
    assert holidays[1] == "Thursday 4 July 2024, holiday: Independence Day"
    months = pd.period_range("2024-06", periods=2, freq="M")
    assert calendar_facts(months, USFederalHolidayCalendar())[1] == (
        "July 2024, holiday: Independence Day"
    )
    quarters = pd.period_range("2024Q3", periods=1, freq="Q")
    assert calendar_facts(quarters, True) == ("quarter 3 of 2024",)
    assert calendar_facts(pd.RangeIndex(3), True) == ("", "", "")
    assert calendar_facts(days, None) == ("", "")


def test_calendar_reaches_the_prompt_and_bad_calendars_are_clear(scripted):
    y = pd.Series(np.arange(20.0) + 100, index=pd.date_range("2024-06-20", periods=20))
    LLMRNNForecaster(**SMALL, calendar=USFederalHolidayCalendar()).fit(y[:15])
    assert "Forecast 1 is for: Thursday 4 July 2024, holiday: Independence Day" in "".join(
        scripted.prompts
    )
    with pytest.raises(ValueError, match="Invalid value for parameter `calendar`"):
        check_calendar(3)
    with pytest.raises(ValueError, match="holidays"):
        check_calendar("not a country")


def test_conformance_stand_in_runs_with_x(uschange):
    y, X = uschange
    f = LLMRNNForecaster(model=STAND_IN, **SMALL).fit(y[:-2], X=X[:-2], fh=[1, 2])
    interval = f.predict_interval(X=X[-2:])
    assert interval.shape == (2, 2)


def test_real_model_forecasts_with_x(uschange):
    y, X = uschange
    f = LLMRNNForecaster(window=8, fit_steps=2, memory_words=30).fit(y[:-2], X=X[:-2], fh=[1])
    assert np.isfinite(f.predict(X=X[-2:-1]).to_numpy()).all()
    assert len(f.get_trace()) == 2 and f.get_tag("capability:exogenous")
