"""Step records: one row per recurrent step, exported as a DataFrame, CSV or JSON lines."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["StepRecord", "TRACE_COLUMNS", "trace_frame", "error_correction_rate"]


@dataclass(frozen=True)
class StepRecord:
    """What one recurrent step saw, said and cost.

    Attributes
    ----------
    step : int
        Step number, counted from 0 over the estimator's life (fit, then updates).
    index : object
        The time point (forecaster) or row position (classifier) the step predicted.
    observation : str
        The observation, abbreviated.
    prediction : str
        The prediction as written.
    truth : str
        The true value ("" when the feedback came from the judge without truth).
    error : float
        Absolute error (0/1 for a label); NaN when no truth was given.
    feedback : str
        The reflection text e(t).
    memory : str
        The memory after the step (the notes, for memprompt).
    prompt_tokens, cached_tokens, generated_tokens : int
        Summed over the step's calls: evaluated, reused from the KV cache, generated.
    calls : int
        LLM calls in the step.
    seconds : float
        Wall time of the step.
    fault : str
        Empty, or what went wrong and what was done instead.
    """

    step: int
    index: object
    observation: str
    prediction: str
    truth: str
    error: float
    feedback: str
    memory: str
    prompt_tokens: int
    cached_tokens: int
    generated_tokens: int
    calls: int
    seconds: float
    fault: str = ""


TRACE_COLUMNS = [f.name for f in fields(StepRecord)]


def trace_frame(records: list[StepRecord]) -> pd.DataFrame:
    """Records as a DataFrame with the columns of :class:`StepRecord`, one row per step."""
    frame = pd.DataFrame([asdict(r) for r in records], columns=TRACE_COLUMNS)
    return frame.astype({"error": float, "seconds": float})


def error_correction_rate(errors: np.ndarray | pd.Series, threshold: float | None = None) -> float:
    """Share of bad steps followed by a good one.

    Parameters
    ----------
    errors : array-like
        Per-step errors in step order.
    threshold : float, optional
        A step is bad when its error is above it. Default: 0.5 for 0/1 errors (a wrong label),
        else the median error (for numeric forecasts).

    Returns
    -------
    float
        The rate in [0, 1]; NaN when no bad step has a successor.
    """
    e = np.asarray(errors, dtype=float)
    e = e[np.isfinite(e)]
    if e.size < 2:
        return float("nan")
    if threshold is None:
        threshold = 0.5 if np.isin(e, (0.0, 1.0)).all() else float(np.median(e))
    bad = e[:-1] > threshold
    if not bad.any():
        return float("nan")
    return float(np.mean(e[1:][bad] <= threshold))


def write_trace(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a trace to ``.csv`` or ``.jsonl`` (by the file's suffix) and return the path."""
    path = Path(path)
    if path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, default_handler=str)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        raise ValueError(f"Cannot write a trace to {str(path)!r}: use a .csv or .jsonl file name.")
    return path
