"""Rolling-origin backtests through sktime's ``evaluate``: the one harness of the CLI and the
benchmarks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Backtest", "backtest_forecaster"]


@dataclass(frozen=True)
class Backtest:
    """What one forecaster did over a backtest.

    Attributes
    ----------
    pred, true : ndarray of shape (steps, horizon)
        Forecasts and actual values, one row per origin.
    seconds : float
        Wall time of the whole backtest.
    fitted : object
        The forecaster as fitted at the last origin.
    scores : pandas.DataFrame
        sktime's per-origin table (``test_<metric>`` columns for the metrics asked for).
    """

    pred: np.ndarray
    true: np.ndarray
    seconds: float
    fitted: Any
    scores: pd.DataFrame

    @property
    def errors(self) -> np.ndarray:
        """Mean absolute error over the horizon, per origin."""
        return np.mean(np.abs(self.pred - self.true), axis=1)

    @property
    def trace(self) -> pd.DataFrame | None:
        """The LLM forecaster's trace at the last origin (None for other forecasters)."""
        return self.fitted.get_trace() if hasattr(self.fitted, "get_trace") else None


def backtest_forecaster(
    forecaster: Any,
    y: pd.Series,
    *,
    steps: int,
    horizon: int = 1,
    scoring: list | None = None,
    X: pd.DataFrame | None = None,
) -> Backtest:
    """Forecast ``horizon`` steps ahead from each of the last ``steps`` origins of ``y``.

    LLM forecasters (those with ``get_trace``) learn online: ``evaluate(strategy="update")``,
    so each origin adds one recurrent step. Statistical forecasters are refitted at every
    origin, since sktime's ``ThetaForecaster.update`` does not give the forecast a refit gives.

    Parameters
    ----------
    forecaster : sktime forecaster
        Any forecaster (a clone is fitted).
    y : pandas.Series
        The series.
    steps : int
        Forecast origins, the last ones of ``y``.
    horizon : int, default=1
        Steps ahead forecast at each origin.
    scoring : list of sktime metrics, optional
        Metrics computed per origin (in ``Backtest.scores``).
    X : pandas.DataFrame, optional
        Exogenous data, one row per time of ``y``.

    Returns
    -------
    Backtest
    """
    from sktime.forecasting.model_evaluation import evaluate
    from sktime.split import ExpandingWindowSplitter

    fh = list(range(1, horizon + 1))
    cv = ExpandingWindowSplitter(initial_window=len(y) - steps - horizon + 1, fh=fh)
    online = hasattr(forecaster, "get_trace")
    start = time.perf_counter()
    result = evaluate(
        forecaster,
        cv,
        y,
        X=X,
        strategy="update" if online else "refit",
        scoring=scoring,
        return_data=True,
        return_model=True,
        error_score="raise",
    )
    seconds = time.perf_counter() - start
    pred = np.array([p.to_numpy(dtype=float).ravel() for p in result["y_pred"]])
    true = np.array([t.to_numpy(dtype=float).ravel() for t in result["y_test"]])
    return Backtest(pred, true, seconds, result["fitted_forecaster"].iloc[-1], result)
