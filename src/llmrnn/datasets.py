"""Sequential classification tasks built from series that ship with installed packages."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["updown_task"]


def updown_task(y: pd.Series | None = None, lags: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """Will the series go up or down next step, from its last ``lags`` changes and the month?

    Parameters
    ----------
    y : pd.Series, optional
        A series with a PeriodIndex or DatetimeIndex; default: sktime's airline passengers.
    lags : int, default=3
        Past changes used as features (``change_1`` is the latest).

    Returns
    -------
    X : pd.DataFrame
        One row per step, in time order: ``change_1 .. change_<lags>`` and ``month``.
    y : ndarray of str
        "up" or "down": the sign of the next change (0 counts as "down").
    """
    if y is None:
        from sktime.datasets import load_airline

        y = load_airline()
    change = y.diff()
    columns = {f"change_{k}": change.shift(k - 1) for k in range(1, lags + 1)}
    frame = pd.DataFrame(columns)
    frame["month"] = y.index.month
    following = change.shift(-1)
    keep = (frame.notna().all(axis=1) & following.notna()).to_numpy()
    labels = np.where(following.to_numpy() > 0, "up", "down")
    return frame[keep].reset_index(drop=True), labels[keep]
