"""Plots of a trace: forecast vs actual, per-step error, and where the memory changed.

Matplotlib is an optional dependency (``pip install llmrnn[plot]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["plot_trace"]


def _first(text: str) -> float:
    try:
        return float(str(text).split(",")[0])
    except ValueError:
        return float("nan")


def plot_trace(trace: pd.DataFrame, path: str | Path | None = None, title: str = "llmrnn"):
    """Draw predictions against the truth, the per-step error, and mark memory changes.

    Parameters
    ----------
    trace : pd.DataFrame
        A trace from ``get_trace()``.
    path : str or Path, optional
        Where to save the figure (PNG); the figure is returned either way.
    title : str, default="llmrnn"
        Title of the figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    try:
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "plot_trace needs matplotlib: pip install 'llmrnn[plot]' (or matplotlib)."
        ) from exc
    from .trace import series_of

    if not isinstance(trace, pd.DataFrame):
        raise TypeError(
            f"plot_trace takes a trace DataFrame, got {type(trace).__name__}: pass "
            "estimator.get_trace()."
        )
    parts = series_of(trace)
    if len(parts) > 1:
        names = ", ".join(name for name, _ in parts[:3]) + (", ..." if len(parts) > 3 else "")
        raise ValueError(
            f"plot_trace draws one series; this trace holds {len(parts)} ({names}): "
            "select one first, e.g. trace[trace['<level>'] == '<series>']."
        )
    steps = trace["step"].to_numpy()
    predicted = trace["prediction"].map(_first).to_numpy()
    actual = trace["truth"].map(_first).to_numpy()
    memory = trace["memory"].fillna("").tolist()
    changed = [i for i in range(1, len(memory)) if memory[i] != memory[i - 1]]

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=[2, 1])
    top.plot(steps, actual, "o-", color="black", label="actual", markersize=3)
    top.plot(steps, predicted, "s--", color="tab:blue", label="predicted", markersize=3)
    for i in changed:
        top.axvline(steps[i], color="tab:orange", alpha=0.25, linewidth=1)
    top.set_ylabel("value")
    top.set_title(title)
    top.legend(loc="best")
    bottom.bar(steps, trace["error"].to_numpy(dtype=float), color="tab:red", alpha=0.7)
    if changed:
        bottom.plot(
            steps[changed],
            np.zeros(len(changed)),
            "|",
            color="tab:orange",
            markersize=12,
            label="memory rewritten",
        )
        bottom.legend(loc="best")
    bottom.set_ylabel("absolute error")
    bottom.set_xlabel("step")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
