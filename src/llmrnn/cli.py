"""The ``llmrnn`` command: ``demo`` (the main job) and ``models``.

Library code raises; only here do errors become short messages (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

__all__ = ["main", "run_demo"]


def _metrics():
    from sktime.performance_metrics.forecasting import (
        MeanAbsoluteError,
        MeanAbsolutePercentageError,
        MeanAbsoluteScaledError,
    )

    return [
        MeanAbsoluteError(),
        MeanAbsoluteScaledError(sp=1),
        MeanAbsolutePercentageError(symmetric=True),
    ]


def run_demo(
    steps: int = 24,
    fit_steps: int = 6,
    window: int = 12,
    model: str | None = None,
    out: str | Path = "llmrnn-demo",
) -> dict[str, object]:
    """Backtest LLM-as-RNN against zero-shot and naive forecasts on sktime's airline series.

    Parameters
    ----------
    steps : int, default=24
        One-step-ahead forecasts in the backtest (the last ``steps`` months).
    fit_steps : int, default=6
        Recurrent steps run in ``fit`` before the backtest starts.
    window : int, default=12
        Past months shown at each step.
    model : str, optional
        Model name or path (default: the embedded model).
    out : str or Path, default="llmrnn-demo"
        Folder for the trace (CSV) and the plot (PNG).

    Returns
    -------
    dict
        ``table`` (a DataFrame, one row per forecaster), ``memory`` (final memory of the rnn
        forecaster), ``trace`` and ``plot`` (paths written; plot is None without matplotlib).
    """
    from sktime.datasets import load_airline
    from sktime.forecasting.model_evaluation import evaluate
    from sktime.forecasting.naive import NaiveForecaster
    from sktime.split import ExpandingWindowSplitter

    from .forecasting import LLMRNNForecaster
    from .models import resolve_model
    from .trace import write_trace

    resolve_model(model)  # a bad model fails here, with its own message
    y = load_airline()
    cv = ExpandingWindowSplitter(initial_window=len(y) - steps, step_length=1, fh=[1])
    llm = {"model": model, "window": window, "fit_steps": fit_steps}
    candidates = {
        "llmrnn rnn": LLMRNNForecaster(strategy="rnn", **llm),
        "llmrnn zero_shot": LLMRNNForecaster(strategy="zero_shot", **llm),
        "naive last": NaiveForecaster(strategy="last"),
        "naive seasonal (sp=12)": NaiveForecaster(strategy="last", sp=12),
    }
    rows, traces = [], {}
    for name, forecaster in candidates.items():
        start = time.perf_counter()
        result = evaluate(
            forecaster,
            cv,
            y,
            strategy="update",
            scoring=_metrics(),
            return_model=True,
            error_score="raise",
        )
        seconds = time.perf_counter() - start
        row = {
            "forecaster": name,
            "MAE": result["test_MeanAbsoluteError"].mean(),
            "MASE": result["test_MeanAbsoluteScaledError"].mean(),
            "sMAPE": result["test_MeanAbsolutePercentageError"].mean(),
            "seconds": seconds,
        }
        fitted = result["fitted_forecaster"].iloc[-1]
        if isinstance(fitted, LLMRNNForecaster):
            trace = fitted.get_trace()
            traces[name] = (fitted, trace)
            row.update(
                {
                    "s/step": trace["seconds"].mean(),
                    "evaluated tok": int(trace["prompt_tokens"].sum()),
                    "cached tok": int(trace["cached_tokens"].sum()),
                    "generated tok": int(trace["generated_tokens"].sum()),
                }
            )
        rows.append(row)
    table = pd.DataFrame(rows).set_index("forecaster")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rnn, trace = traces["llmrnn rnn"]
    trace_path = write_trace(trace, out / "trace_rnn.csv")
    plot_path = None
    try:
        from .plotting import plot_trace

        plot_path = out / "trace_rnn.png"
        plot_trace(trace, plot_path, title="LLM-as-RNN on airline passengers (one step ahead)")
    except ImportError:
        plot_path = None
    return {
        "table": table,
        "memory": rnn.memory_,
        "model": rnn.model_path_,
        "trace": trace_path,
        "plot": plot_path,
    }


def _print_demo(result: dict[str, object]) -> None:
    table: pd.DataFrame = result["table"]  # type: ignore[assignment]
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.round(3).fillna("").to_string())
    print(f"\nmodel: {result['model']}")
    print(f"\nfinal memory of the rnn forecaster:\n{result['memory']}\n")
    print(f"trace: {result['trace']}")
    print(f"plot:  {result['plot'] or '(install matplotlib for the plot)'}")


def _models() -> None:
    from .backends.llama_cpp import gpu_offload_supported
    from .models import available_models

    for info in available_models():
        where = info.path or "(not installed)"
        print(f"{info.name:<28} {info.source:<11} {where}")
    print(f"\nGPU offload available: {'yes' if gpu_offload_supported() else 'no'}")
    print("Register more: LLMRNN_MODELS=/path/to/file.gguf:/path/to/folder")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``llmrnn`` command."""
    parser = argparse.ArgumentParser(
        prog="llmrnn", description="LLM-as-RNN forecasting on local GGUF models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="backtest rnn vs zero-shot vs naive on airline passengers")
    demo.add_argument("--steps", type=_positive, default=24, help="one-step forecasts (24)")
    demo.add_argument("--fit-steps", type=_positive, default=6, help="steps run in fit (6)")
    demo.add_argument("--window", type=_positive, default=12, help="past values shown (12)")
    demo.add_argument("--model", default=None, help="model name or .gguf path (embedded)")
    demo.add_argument("--out", default="llmrnn-demo", help="output folder (llmrnn-demo)")
    sub.add_parser("models", help="list embedded and registered models")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            if args.window < 2:
                parser.error("--window must be at least 2")
            _print_demo(run_demo(args.steps, args.fit_steps, args.window, args.model, args.out))
        else:
            _models()
    except (ValueError, FileNotFoundError) as exc:
        print(f"llmrnn: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
