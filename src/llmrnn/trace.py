"""Step records: one row per recurrent step, exported as a DataFrame, CSV or JSON lines."""

from __future__ import annotations

import difflib
import html
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "StepRecord",
    "TRACE_COLUMNS",
    "trace_frame",
    "error_correction_rate",
    "EFFECT_COLUMNS",
    "effect_frame",
    "effect_summary",
    "learning_curve",
    "write_trace",
    "memory_changes",
    "memory_html",
    "series_of",
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
    answer : str
        What the model answered, in data units, before the guard (forecasting: the correction,
        change or value it wrote; classification: the label, followed by the model's check of
        its Rules in parentheses when the classifier's ``check_tokens`` > 0).
    weight : float
        The weight the guard gave the answer (forecasting: the forecast is the anchor plus
        ``weight`` times the bounded correction, see ``llmrnn.guard``). Labels: the share of
        the probability left to the model's scores, 0.5 when the code's reading of the
        memory's Rules answered (``LabelTask.settle``), 1.0 when the model's did, NaN when
        there were no Rules to read.
    prediction : str
        The prediction, after the guard.
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
    answer: str
    weight: float
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
    #: The answer as the task reads it (not a trace column): what ``memory_effect`` compares.
    raw_answer: object = field(default=None, repr=False, compare=False)


TRACE_COLUMNS = [f.name for f in fields(StepRecord) if f.name != "raw_answer"]


def trace_frame(records: list[StepRecord]) -> pd.DataFrame:
    """Records as a DataFrame with the columns of :class:`StepRecord`, one row per step."""
    rows = [{name: getattr(r, name) for name in TRACE_COLUMNS} for r in records]
    frame = pd.DataFrame(rows, columns=TRACE_COLUMNS)
    return frame.astype({"error": float, "weight": float, "seconds": float})


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


EFFECT_COLUMNS = [
    "step",
    "index",
    "answer",
    "answer_initial",
    "prediction",
    "prediction_initial",
    "truth",
    "error",
    "error_initial",
    "error_answer",
    "error_answer_initial",
    "changed",
]


def effect_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows of :meth:`Recurrence.memory_effect` as a DataFrame with ``EFFECT_COLUMNS``."""
    frame = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    floats = ["error", "error_initial", "error_answer", "error_answer_initial"]
    return frame.astype({**dict.fromkeys(floats, float), "changed": bool})


def effect_summary(effect: pd.DataFrame, after: int = 5) -> dict[str, float]:
    """The memory's effect in a few numbers, from an estimator's ``memory_effect()``.

    Parameters
    ----------
    effect : pd.DataFrame
        The output of ``memory_effect()``.
    after : int, default=5
        Steps skipped at the start (the memory has had no time to learn yet).

    Returns
    -------
    dict
        ``steps`` counted; ``changed``: the share of them whose answer the memory changed;
        ``error`` and ``error_initial``: the forecast's mean error with the memory and with
        the initial memory; ``better`` and ``worse``: how many changed answers gave a smaller /
        larger forecast error. ``error_answer``, ``error_answer_initial``, ``better_answers``
        and ``worse_answers``: the same for the answers at full weight (before the guard's
        learned weight), which says whether the memory improved what the model says.
    """
    rows = effect[effect["step"] >= effect["step"].min() + after] if len(effect) else effect

    def mean(column: str) -> float:
        return float(rows[column].mean()) if len(rows) else float("nan")

    diff = rows["error"] - rows["error_initial"]
    said = rows["error_answer"] - rows["error_answer_initial"]
    return {
        "steps": int(len(rows)),
        "changed": float(rows["changed"].mean()) if len(rows) else float("nan"),
        "error": mean("error"),
        "error_initial": mean("error_initial"),
        "better": int((rows["changed"] & (diff < 0)).sum()),
        "worse": int((rows["changed"] & (diff > 0)).sum()),
        "error_answer": mean("error_answer"),
        "error_answer_initial": mean("error_answer_initial"),
        "better_answers": int((rows["changed"] & (said < 0)).sum()),
        "worse_answers": int((rows["changed"] & (said > 0)).sum()),
    }


def series_of(trace: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """A trace's series, in order, each with a name ("h0=a, h1=b"; "" for a lone series).

    A panel's or hierarchy's trace starts with its index levels, and a multi-column ``y``'s
    with ``series``: the columns before ``step`` name the series.
    """
    columns = list(trace.columns)
    keys = columns[: columns.index("step")] if "step" in columns else []
    if not keys:
        return [("", trace)]
    out = []
    for key, part in trace.groupby(keys, sort=False, dropna=False):
        values = key if isinstance(key, tuple) else (key,)
        out.append((", ".join(f"{k}={v}" for k, v in zip(keys, values)), part))
    return out


def learning_curve(trace: pd.DataFrame, bins: int = 4) -> pd.Series:
    """Mean error in ``bins`` consecutive blocks of steps: learning shows as a falling curve.

    Parameters
    ----------
    trace : pd.DataFrame
        An estimator's ``get_trace()`` (steps without a truth are left out).
    bins : int, default=4
        Number of blocks.

    Returns
    -------
    pd.Series
        Indexed by the block's step range ("0-5", "6-11", ...). A panel's trace is averaged
        over its series step by step (every series' step k falls in the same block).
    """
    rows = trace[np.isfinite(trace["error"].to_numpy(dtype=float))]
    steps = np.unique(rows["step"].to_numpy())
    values, labels = [], []
    for block in np.array_split(steps, max(1, min(bins, len(steps)))):
        if block.size:
            labels.append(f"{block[0]}-{block[-1]}")
            chosen = rows["step"].isin(block).to_numpy()
            values.append(float(rows["error"].to_numpy(dtype=float)[chosen].mean()))
    return pd.Series(values, index=labels, name="mean error", dtype=float)


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


def memory_changes(trace: pd.DataFrame, initial: str | None = None) -> str:
    """How the memory evolved: a unified diff between each pair of consecutive memories.

    Parameters
    ----------
    trace : pd.DataFrame
        A trace from ``get_trace()``.
    initial : str or None, default=None
        The memory before the trace's first step, e.g.
        ``llmrnn.memory.initial_memory(forecaster.initial_memory)`` for a trace that starts at
        fit. When given, the first block shows what the first step's rewrite changed
        (``--- initial`` / ``+++ step 0``); a small model often rewrites its memory once and
        then keeps it, which only this block shows.

    Returns
    -------
    str
        One diff block per step whose memory changed (``--- step k`` / ``+++ step k+1``);
        an empty string when the memory never changed. A panel's trace gives each series'
        blocks under a line naming it (``=== h0=a``), the series' memories compared among
        themselves only.
    """
    out = []
    for name, part in series_of(trace):
        blocks = _changes(part, initial)
        if blocks:
            out.append((f"=== {name}\n" if name else "") + "\n\n".join(blocks))
    return "\n\n".join(out)


def _changes(trace: pd.DataFrame, initial: str | None) -> list[str]:
    """:func:`memory_changes` of one series: its diff blocks."""
    memories = trace["memory"].fillna("").astype(str).tolist()
    names = [f"step {step}" for step in trace["step"].tolist()]
    if initial is not None:
        memories.insert(0, initial)
        names.insert(0, "initial")
    blocks = []
    for i in range(1, len(memories)):
        if memories[i] == memories[i - 1]:
            continue
        diff = difflib.unified_diff(
            memories[i - 1].splitlines(),
            memories[i].splitlines(),
            fromfile=names[i - 1],
            tofile=names[i],
            lineterm="",
        )
        blocks.append("\n".join(diff))
    return blocks


def memory_html(trace: pd.DataFrame, path: str | Path | None = None) -> str:
    """An HTML page: one row per step with its error, feedback and the memory after it.

    Lines added to the memory at a step are highlighted. A panel's trace gets one section per
    series, headed by its name. Returns the HTML (and writes it to ``path`` when given).
    """
    rows = []
    for name, part in series_of(trace):
        if name:
            rows.append(f"<tr><th colspan='5'>{html.escape(name)}</th></tr>")
        previous: list[str] = []
        for record in part.itertuples(index=False):
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
