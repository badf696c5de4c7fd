"""Panels and hierarchies: one memory per series, stepped in lockstep, spread over workers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sktime.utils._testing.hierarchical import _make_hierarchical

from llmrnn import LLMRNNForecaster
from llmrnn.backends import BackendError, make_backend
from llmrnn.models import STAND_IN

from ._scripted import FailingBackend

PARAMS = {"model": STAND_IN, "window": 6, "fit_steps": 3, "memory_words": 30}


@pytest.fixture(scope="module")
def panel():
    y = _make_hierarchical(hierarchy_levels=(3,), max_timepoints=20, min_timepoints=20)
    return y.rename(columns={"c0": "sales"})


@pytest.fixture(scope="module")
def hierarchy():
    return _make_hierarchical(hierarchy_levels=(2, 2), max_timepoints=16, min_timepoints=16)


def _one(panel: pd.DataFrame, key: str) -> pd.Series:
    return panel.xs(key, level=0)["sales"]


def test_a_panel_is_fitted_natively_and_equals_each_series_alone(panel):
    f = LLMRNNForecaster(batch_size=2, **PARAMS).fit(panel, fh=[1, 2])
    assert not getattr(f, "_is_vectorized", False)  # no sktime broadcasting: one estimator
    assert list(f.memory_.index) == ["h0_0", "h0_1", "h0_2"] and f.memory_.index.name == "h0"
    y_pred = f.predict()
    assert list(y_pred.columns) == ["sales"] and y_pred.index.nlevels == 2
    for key in ("h0_0", "h0_2"):
        alone = LLMRNNForecaster(**PARAMS).fit(_one(panel, key), fh=[1, 2])
        assert alone.memory_ == f.memory_[key]
        np.testing.assert_allclose(y_pred.xs(key, level=0)["sales"], alone.predict())
    trace = f.get_trace()
    assert list(trace.columns[:2]) == ["h0", "step"] and len(trace) == 3 * 3
    assert set(f.memory_effect()["h0"]) == {"h0_0", "h0_1", "h0_2"}


def test_a_hierarchy_keeps_its_levels(hierarchy):
    f = LLMRNNForecaster(**PARAMS).fit(hierarchy, fh=[1])
    assert f.memory_.index.names == ["h0", "h1"]
    assert list(f.get_trace().columns[:2]) == ["h0", "h1"]
    quantiles = f.predict_quantiles(alpha=[0.1, 0.9])
    assert quantiles.index.nlevels == 3 and np.isfinite(quantiles.to_numpy()).all()


def test_a_panel_whose_series_start_at_different_times():
    """sktime's cutoff can then have no frequency (here it has none); the forecasts are at
    the times after the panel's cutoff, each series' as alone."""
    uneven = _make_hierarchical(
        hierarchy_levels=(2,), max_timepoints=20, min_timepoints=12, random_state=1
    )
    f = LLMRNNForecaster(**PARAMS).fit(uneven, fh=[1, 2])
    assert f.cutoff.freq is None  # what sktime gives: the case this test is about
    y_pred = f.predict()
    last = uneven.index.get_level_values(-1).max()
    assert list(y_pred.xs("h0_1", level=0).index) == list(pd.date_range(last, periods=3)[1:])
    for key in ("h0_0", "h0_1"):
        alone = LLMRNNForecaster(**PARAMS).fit(uneven.xs(key, level=0)["c0"], fh=[1, 2])
        np.testing.assert_allclose(y_pred.xs(key, level=0)["c0"], alone.predict().to_numpy())
    interval = f.predict_interval(coverage=0.8)
    assert interval.index.equals(y_pred.index) and np.isfinite(interval.to_numpy()).all()


def test_panel_update_steps_every_series_and_is_all_or_nothing(monkeypatch, panel):
    f = LLMRNNForecaster(**PARAMS).fit(panel.groupby(level=0).head(18), fh=[1])
    before = {k: v for k, v in f.__dict__.items()}
    inner = make_backend(STAND_IN, context_tokens=f.context_tokens)
    monkeypatch.setattr(
        "llmrnn._params.make_backend", lambda *a, **k: FailingBackend(inner, 12)
    )  # 12th call: the third series' Mistakes section in the first round of steps
    with pytest.raises(BackendError):
        f.update(panel.groupby(level=0).head(20))
    assert f.__dict__.keys() == before.keys() and f.memory_.equals(before["memory_"])
    assert len(f.get_trace()) == 9
    monkeypatch.undo()
    f.update(panel.groupby(level=0).head(20))
    assert len(f.get_trace()) == 9 + 3 * 2


def test_panel_series_spread_over_a_dask_cluster(panel):
    import distributed  # a dev dependency (pyproject): a missing one must fail, not skip

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        with distributed.Client(cluster):
            f = LLMRNNForecaster(batch_size=1, **PARAMS)
            f.set_config(**{"backend:parallel": "dask"})
            f.fit(panel, fh=[1])
    serial = LLMRNNForecaster(batch_size=1, **PARAMS).fit(panel, fh=[1])
    assert f.memory_.equals(serial.memory_)
    pd.testing.assert_frame_equal(f.get_trace(), serial.get_trace().assign(
        seconds=f.get_trace()["seconds"]))  # fmt: skip


def test_a_real_panel_steps_in_lockstep_like_one_series_at_a_time(panel):
    """The embedded model: a 2-series panel in one lockstep batch and one series at a time."""
    y = panel.loc[["h0_0", "h0_1"]].groupby(level=0).head(18)
    real = {"window": 6, "fit_steps": 2, "memory_words": 30}
    lock = LLMRNNForecaster(batch_size=2, **real).fit(y, fh=[1])
    solo = LLMRNNForecaster(batch_size=1, **real).fit(y, fh=[1])
    for f in (lock, solo):
        assert list(f.memory_.index) == ["h0_0", "h0_1"]
        assert (f.get_trace()["calls"] >= 3).all()
    # the same prompts; llama.cpp's arithmetic may move a rare token, so compare the outcome
    pred_lock, pred_solo = lock.predict(), solo.predict()
    assert np.isfinite(pred_lock.to_numpy()).all()
    np.testing.assert_allclose(pred_lock.to_numpy(), pred_solo.to_numpy(), rtol=0.05)
    trace = lock.get_trace()
    assert set(trace["h0"]) == {"h0_0", "h0_1"} and len(trace) == 2 * 2
