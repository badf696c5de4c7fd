"""Step records: one row per recurrent step, exported as a DataFrame, CSV or JSON lines."""

from __future__ import annotations

import difflib
import html
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "StepRecord",
    "TRACE_COLUMNS",
    "trace_frame",
    "error_correction_rate",
    "write_trace",
    "memory_changes",
    "memory_html",
]


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


def memory_changes(trace: pd.DataFrame) -> str:
    """How the memory evolved: a unified diff between each pair of consecutive memories.

    Parameters
    ----------
    trace : pd.DataFrame
        A trace from ``get_trace()``.

    Returns
    -------
    str
        One diff block per step whose memory changed (``--- step k`` / ``+++ step k+1``).
    """
    memories = trace["memory"].fillna("").astype(str).tolist()
    steps = trace["step"].tolist()
    blocks = []
    for i in range(1, len(memories)):
        if memories[i] == memories[i - 1]:
            continue
        diff = difflib.unified_diff(
            memories[i - 1].splitlines(),
            memories[i].splitlines(),
            fromfile=f"step {steps[i - 1]}",
            tofile=f"step {steps[i]}",
            lineterm="",
        )
        blocks.append("\n".join(diff))
    return "\n\n".join(blocks)


def memory_html(trace: pd.DataFrame, path: str | Path | None = None) -> str:
    """An HTML page: one row per step with its error, feedback and the memory after it.

    Lines added to the memory at a step are highlighted. Returns the HTML (and writes it to
    ``path`` when given).
    """
    rows = []
    previous: list[str] = []
    for record in trace.itertuples(index=False):
        lines = str(record.memory or "").splitlines()
        shown = "<br>".join(
            html.escape(line) if line in previous else f"<mark>{html.escape(line)}</mark>"
            for line in lines
        )
        rows.append(
            f"<tr><td>{record.step}</td><td>{html.escape(str(record.index))}</td>"
            f"<td>{record.error:.4g}</td><td>{html.escape(str(record.feedback))}</td>"
            f"<td>{shown}</td></tr>"
        )
        previous = lines
    page = (
        "<!doctype html><meta charset='utf-8'><title>llmrnn memory</title>"
        "<style>body{font-family:sans-serif}td{vertical-align:top;border-top:1px solid #ccc;"
        "padding:4px}mark{background:#ffe08a}</style><table><tr><th>step</th><th>index</th>"
        "<th>error</th><th>feedback</th><th>memory after the step (new lines marked)</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    if path is not None:
        Path(path).write_text(page, encoding="utf-8")
    return page
