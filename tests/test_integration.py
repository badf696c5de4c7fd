"""Where users work: sktime backtesting, tuning and pipelines, clusters, progress bars, views.

Real model throughout (llama.cpp, embedded model).
"""

from __future__ import annotations

import multiprocessing

import numpy as np
import pandas as pd
import pytest
from sktime.forecasting.compose import TransformedTargetForecaster
from sktime.forecasting.model_evaluation import evaluate
from sktime.forecasting.model_selection import ForecastingGridSearchCV
from sktime.performance_metrics.forecasting import MeanAbsoluteError
from sktime.split import ExpandingWindowSplitter
from sktime.transformations.series.detrend import Deseasonalizer

from llmrnn import LLMRNNForecaster
from llmrnn.backends import BackendError
from llmrnn.memory import initial_memory
from llmrnn.trace import memory_changes, memory_html, write_trace

SMALL = {"window": 8, "fit_steps": 1, "memory_words": 40}


@pytest.fixture(scope="module")
def y36(airline):
    return airline[-36:]


@pytest.mark.parametrize("strategy", ["refit", "update", "no-update_params"])
def test_evaluate_strategies(y36, strategy):
    cv = ExpandingWindowSplitter(initial_window=33, step_length=1, fh=[1])
    result = evaluate(
        LLMRNNForecaster(**SMALL),
        cv,
        y36,
        strategy=strategy,
        scoring=MeanAbsoluteError(),
        return_model=True,
        error_score="raise",
    )
    assert len(result) == 3 and np.isfinite(result["test_MeanAbsoluteError"]).all()
    last = result["fitted_forecaster"].iloc[-1]
    steps = len(last.get_trace())
    if strategy == "no-update_params":
        assert steps == 1  # fit's one step; the memory is never rewritten after it
        assert last.memory_ == result["fitted_forecaster"].iloc[0].memory_
    elif strategy == "update":
        assert steps == 3  # fit's step, then one per new point
    else:
        assert steps == 1  # refit: a fresh fit per fold


def test_forecasting_grid_search_over_window_and_strategy(y36):
    grid = ForecastingGridSearchCV(
        LLMRNNForecaster(fit_steps=1, memory_words=40),
        ExpandingWindowSplitter(initial_window=33, step_length=1, fh=[1]),
        {"window": [6, 12], "strategy": ["rnn", "zero_shot"]},
        scoring=MeanAbsoluteError(),
        error_score="raise",
    )
    grid.fit(y36[:-1])
    assert len(grid.cv_results_) == 4
    results = grid.cv_results_
    best = results.loc[results["mean_test_MeanAbsoluteError"].idxmin(), "params"]
    assert grid.best_params_ == best
    assert np.isfinite(grid.predict(fh=[1]).to_numpy()).all()


def test_deseasonalizer_then_llmrnn(y36):
    pipe = TransformedTargetForecaster(
        [("deseason", Deseasonalizer(sp=12)), ("llm", LLMRNNForecaster(**SMALL))]
    )
    pipe.fit(y36, fh=[1, 2])
    y_pred = pipe.predict()
    assert len(y_pred) == 2 and np.isfinite(y_pred.to_numpy()).all()


def test_multicolumn_y_gets_one_memory_per_series(y36):
    y2 = pd.DataFrame({"a": y36.to_numpy(), "b": y36.to_numpy()[::-1]}, index=y36.index)
    f = LLMRNNForecaster(strategy="memprompt", **SMALL).fit(y2, fh=[1])
    assert list(f.predict().columns) == ["a", "b"]
    trace = f.get_trace()
    assert list(trace["series"]) == ["a", "b"]
    first, second = f.forecasters_.iloc[0, 0], f.forecasters_.iloc[0, 1]
    assert first.memory_ != second.memory_


def test_progress_bar_shows_steps_and_error(y36, capsys):
    LLMRNNForecaster(progress=True, strategy="zero_shot", window=8, fit_steps=3).fit(y36)
    err = capsys.readouterr().err
    assert "llmrnn fit" in err and "3/3" in err and "error=" in err


def test_trace_exports_and_memory_views(y36, tmp_path):
    # the real model's rewrites: the diff shows each change, starting from the initial memory
    f = LLMRNNForecaster(window=8, fit_steps=3, memory_words=40, base_forecaster=None).fit(y36)
    trace = f.get_trace()
    csv = pd.read_csv(write_trace(trace, tmp_path / "t.csv"))
    jsonl = pd.read_json(write_trace(trace, tmp_path / "t.jsonl"), lines=True)
    assert len(csv) == len(jsonl) == 3
    assert list(csv.columns) == list(trace.columns)
    with pytest.raises(ValueError, match=r"\.csv or \.jsonl"):
        write_trace(trace, tmp_path / "t.xlsx")
    start = initial_memory(None)
    changed = sum(a != b for a, b in zip([start, *trace["memory"]], trace["memory"]))
    assert changed >= 1, "the real model's rewrite never changed the memory"
    diff = memory_changes(trace, initial=start)
    assert diff.count("\n+++ step ") == changed
    page = memory_html(trace, tmp_path / "memory.html")
    assert "<mark>" in page and (tmp_path / "memory.html").read_text() == page


def _forked_child(queue):
    from sktime.datasets import load_airline

    try:
        LLMRNNForecaster(**SMALL).fit(load_airline()[-20:])
        queue.put("ran")
    except BackendError as exc:
        queue.put(str(exc))


def test_fork_after_inference_is_a_clear_error_not_a_hang(y36):
    LLMRNNForecaster(**SMALL).fit(y36)  # inference in this process
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_forked_child, args=(queue,))
    child.start()
    message = queue.get(timeout=60)
    child.join(timeout=30)
    assert "forked" in message and "spawn" in message


def test_evaluate_on_a_dask_cluster_equals_serial(y36):
    from dask.distributed import Client, LocalCluster

    cv = ExpandingWindowSplitter(initial_window=33, step_length=1, fh=[1])
    forecaster = LLMRNNForecaster(**SMALL)
    serial = evaluate(forecaster, cv, y36, strategy="refit", scoring=MeanAbsoluteError())
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        with Client(cluster):
            distributed = evaluate(
                forecaster,
                cv,
                y36,
                strategy="refit",
                scoring=MeanAbsoluteError(),
                backend="dask",
            )
    np.testing.assert_allclose(
        distributed["test_MeanAbsoluteError"], serial["test_MeanAbsoluteError"]
    )


def test_notebook_runs(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    from .test_examples import EXAMPLES

    notebook = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    printed = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert "--- initial" in printed  # the memory diff cell ran and the first rewrite changed it
    assert "too narrow to trust" not in printed  # enough fit steps for its interval
