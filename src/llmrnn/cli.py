"""The ``llmrnn`` command: ``demo`` (the main job), ``backtest``, ``models`` and ``pull``.

Library code raises; only here do errors become short messages (exit status 2).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DATASETS", "backtest", "load_series", "main", "run_demo"]


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


DATASETS = {
    "airline": ("load_airline", "monthly airline passengers, thousands", 12),
    "lynx": ("load_lynx", "annual lynx trappings in Canada", 10),
    "shampoo": ("load_shampoo_sales", "monthly shampoo sales", 12),
    "uschange": ("load_uschange", "quarterly US consumption change, percent", 4),
}


def load_series(source: str) -> tuple[pd.Series, str, int]:
    """A series by dataset name (``llmrnn.cli.DATASETS``) or from a CSV file.

    A CSV file holds the values in its last column; a first column of dates, if any, becomes the
    index. Returns the series, a one-line description and its seasonal period (1 if unknown).

    Raises
    ------
    ValueError
        If the name is unknown or the file has no numeric column.
    """
    if source in DATASETS:
        import sktime.datasets

        loader, description, sp = DATASETS[source]
        loaded = getattr(sktime.datasets, loader)()
        y = loaded[0] if isinstance(loaded, tuple) else loaded
        return y.astype(float), description, sp
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"{source!r} is neither a dataset ({', '.join(DATASETS)}) nor a CSV file.")
    frame = pd.read_csv(path)
    numeric = frame.select_dtypes("number")
    if numeric.empty:
        raise ValueError(f"{source!r} has no numeric column: put the values in the last column.")
    y = numeric.iloc[:, -1].astype(float)
    if frame.shape[1] > 1 and frame.columns[0] not in numeric.columns:
        try:
            y.index = pd.DatetimeIndex(pd.to_datetime(frame.iloc[:, 0]))
            y.index.freq = pd.infer_freq(y.index)
        except (ValueError, TypeError):
            y = y.reset_index(drop=True)
        if isinstance(y.index, pd.DatetimeIndex) and y.index.freq is None:
            warnings.warn(
                f"The dates in {path.name} are not regular (pandas infers no frequency: a "
                "missing date, or irregular times): its rows are stepped in order as positions "
                "0, 1, ..., and the automatic base has no season. Fill the missing dates first "
                "to keep them (y.asfreq(...).interpolate()).",
                UserWarning,
                stacklevel=2,
            )
            y = y.reset_index(drop=True)
    return y.rename(str(numeric.columns[-1])), f"{path.name}: {numeric.columns[-1]}", 1


#: Warnings the statistical baselines raise at every refit, which a user cannot act on: sktime's
#: notice of a future default, and statsmodels' optimizer inside Theta's smoothing.
_BASELINE_NOISE = (
    "The default of config ``remember_data``",
    "Optimization failed to converge",
)


def _quiet_baselines(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``func`` without the baselines' per-refit warnings (a first screen holds only the
    command's own output)."""

    @functools.wraps(func)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        # Filters alone do not hold: sktime's _suppress_pd22_warning puts a "default" filter for
        # FutureWarning in front of them on exit. So every warning is caught, and all but the
        # noise are raised again afterwards.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            result = func(*args, **kwargs)
        for w in caught:
            if not str(w.message).startswith(_BASELINE_NOISE):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return result

    return quiet


@_quiet_baselines
def backtest(
    y: pd.Series,
    *,
    strategies: tuple[str, ...] = ("rnn", "zero_shot"),
    steps: int = 24,
    horizon: int = 1,
    fit_steps: int = 6,
    window: int = 12,
    sp: int = 1,
    model: str | None = None,
    description: str | None = None,
    out: str | Path = "llmrnn-backtest",
    base: str = "auto",
) -> dict[str, object]:
    """Rolling-origin backtest of LLMRNNForecaster strategies next to naive forecasts.

    Parameters
    ----------
    y : pd.Series
        The series; the last ``steps`` points are forecast.
    strategies : tuple of str, default=("rnn", "zero_shot")
        LLMRNNForecaster strategies to compare.
    steps : int, default=24
        Forecast origins (one per new point, ``sktime`` ``evaluate`` with strategy "update").
    horizon : int, default=1
        Steps ahead forecast at each origin.
    fit_steps : int, default=6
        Recurrent steps run in ``fit`` before the backtest starts.
    window : int, default=12
        Past values shown at each step.
    sp : int, default=1
        Seasonal period for the seasonal naive forecast (1: none).
    model : str, optional
        Model name or path (default: the embedded model).
    description : str, optional
        What the series is, for the model's task description.
    out : str or Path, default="llmrnn-backtest"
        Folder for the trace (CSV) and the plot (PNG) of the first strategy.
    base : {"auto", "none", "theta", "seasonal"}, default="auto"
        The base forecaster every LLM strategy corrects: the estimator's automatic choice
        (``auto_base_forecaster``), none, ``ThetaForecaster(sp)`` or ``NaiveForecaster(sp)``.
        With a base, ``rnn`` without one and the base alone are backtested too.

    Returns
    -------
    dict
        ``table`` (DataFrame, one row per forecaster), ``memory`` (final memory of the first
        strategy), ``model``, ``trace`` and ``plot`` (paths; plot is None without matplotlib).
    """
    from sktime.forecasting.naive import NaiveForecaster

    from .backtesting import backtest_forecaster
    from .forecasting import LLMRNNForecaster, auto_base_forecaster
    from .models import resolve_model
    from .trace import effect_summary, write_trace

    resolve_model(model)  # a bad model fails here, with its own message
    if len(y) < steps + horizon + 3:
        raise ValueError(
            f"The series has {len(y)} points: too few for {steps} steps of horizon {horizon}; "
            "lower --steps."
        )
    task = f"Predict the next value of this series: {description}." if description else None
    llm = {"model": model, "window": window, "fit_steps": fit_steps, "task_description": task}
    base_forecaster = _base(base, sp, y)
    candidates = {
        f"llmrnn {s}": LLMRNNForecaster(strategy=s, base_forecaster=base_forecaster, **llm)
        for s in strategies
    }
    if base_forecaster is not None:
        candidates["llmrnn rnn, no base"] = LLMRNNForecaster(
            strategy="rnn", base_forecaster=None, **llm
        )
        alone = auto_base_forecaster(y) if base == "auto" else base_forecaster.clone()
        candidates[f"{type(alone).__name__.removesuffix('Forecaster')} alone"] = alone
    candidates["naive last"] = NaiveForecaster(strategy="last")
    if sp > 1:
        candidates[f"naive seasonal (sp={sp})"] = NaiveForecaster(strategy="last", sp=sp)
    rows, traces, errors = [], {}, {}
    for name, forecaster in candidates.items():
        run = backtest_forecaster(forecaster, y, steps=steps, horizon=horizon, scoring=_metrics())
        result = run.scores
        errors[name] = result["test_MeanAbsoluteError"].to_numpy(dtype=float)
        row = {
            "forecaster": name,
            "MAE": result["test_MeanAbsoluteError"].mean(),
            "MASE": result["test_MeanAbsoluteScaledError"].mean(),
            "sMAPE": result["test_MeanAbsolutePercentageError"].mean(),
            "seconds": run.seconds,
        }
        fitted = run.fitted
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
    first, trace = traces[f"llmrnn {strategies[0]}"]
    trace_path = write_trace(trace, out / f"trace_{strategies[0]}.csv")
    plot_path = None
    try:
        from .plotting import plot_trace

        plot_path = out / f"trace_{strategies[0]}.png"
        title = f"LLM-as-RNN ({strategies[0]}), {horizon} step(s) ahead"
        plot_trace(trace, plot_path, title=title)
    except ImportError:
        plot_path = None
    effect = None
    if first.strategy == "rnn":
        # the answer with the memory against the answer with the initial memory, step by step
        effect = effect_summary(first.memory_effect(), after=5)
    return {
        "table": table,
        "memory": first.memory_,
        "model": first.model_path_,
        "trace": trace_path,
        "plot": plot_path,
        "effect": effect,
        "curve": _curve(errors, blocks=4),
    }


def _curve(errors: dict[str, np.ndarray], blocks: int) -> pd.DataFrame:
    """Mean absolute error of each forecaster over consecutive blocks of the backtest."""
    rows = {}
    for name, values in errors.items():
        parts = np.array_split(np.arange(len(values)), min(blocks, len(values)))
        rows[name] = {f"{p[0] + 1}-{p[-1] + 1}": float(values[p].mean()) for p in parts}
    return pd.DataFrame(rows).T


def _base(kind: str, sp: int, y: pd.Series):
    """The ``base_forecaster`` named ``kind`` for a series ``y`` of season length ``sp``."""
    from sktime.forecasting.naive import NaiveForecaster

    from .forecasting import theta_forecaster

    if kind in ("auto", "none"):
        return None if kind == "none" else "auto"
    if kind == "seasonal":
        return NaiveForecaster(strategy="last", sp=sp)
    if kind == "theta":
        return theta_forecaster(y, sp)
    raise ValueError(f"Unknown base {kind!r}: choose auto, none, theta or seasonal.")


def run_demo(
    steps: int = 24,
    fit_steps: int = 6,
    window: int = 12,
    model: str | None = None,
    out: str | Path = "llmrnn-demo",
) -> dict[str, object]:
    """Backtest LLM-as-RNN against zero-shot, Theta and naive forecasts on airline passengers.

    Compares ``rnn`` and ``zero_shot`` with their default base (Theta with the monthly season),
    ``rnn`` without a base (the paper's loop alone), Theta alone, and the naive and seasonal
    naive forecasts.

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
        See :func:`backtest`.
    """
    y, _, sp = load_series("airline")
    return backtest(y, steps=steps, fit_steps=fit_steps, window=window, sp=sp, model=model, out=out)


def _verdict(table: pd.DataFrame, effect: dict | None) -> str:
    """One plain sentence: did the memory help on this data?"""
    names = list(table.index)
    rnn = next((n for n in names if n.endswith(" rnn")), None)
    zero = next((n for n in names if n.endswith(" zero_shot")), None)
    if rnn is None or zero is None or effect is None or not effect["steps"]:
        return ""
    mae_rnn, mae_zero = table.loc[rnn, "MAE"], table.loc[zero, "MAE"]
    alone = [n for n in names if n.endswith(" alone")]
    base = f", the base alone {table.loc[alone[0], 'MAE']:.3f}" if alone else ""
    helped = mae_rnn < mae_zero and effect["error"] < effect["error_initial"]
    head = "The memory helped here" if helped else "The memory did not help on this data"
    return (
        f"{head}: MAE rnn {mae_rnn:.3f}, zero_shot {mae_zero:.3f}{base}; with the initial "
        f"memory instead of the learned one, rnn's own answers would have scored "
        f"{effect['error_initial']:.3f} instead of {effect['error']:.3f}."
    )


def _print_demo(result: dict[str, object]) -> None:
    table: pd.DataFrame = result["table"]  # type: ignore[assignment]
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.round(3).fillna("").to_string())
        curve = result.get("curve")
        if curve is not None:
            print("\nlearning curve: mean absolute error over blocks of the backtest's steps")
            print(curve.round(3).to_string())
    effect = result.get("effect")
    if effect and not effect["steps"]:
        print(
            "\nwhat the memory changed: too few steps to tell whether the memory helped "
            "(it needs more than five)"
        )
    elif effect:
        print(
            f"\nwhat the memory changed (rnn, {effect['steps']} steps after the first five): the "
            f"answer differed from the one with the initial memory at {effect['changed']:.0%} "
            f"of them, better at {effect['better']} and worse at {effect['worse']} as forecasts; "
            f"its answers at full weight (before the guard's weight) were better at "
            f"{effect['better_answers']} and worse at {effect['worse_answers']}."
        )
        print(_verdict(table, effect))
    print(f"\nmodel: {result['model']}")
    if result["model"]:
        from .backends._embedded_copy import loaded_file

        loads = loaded_file(result["model"])
        if loads != result["model"]:
            print(f"  loaded from its Q8_0 copy (the same model, faster on CPUs): {loads}")
    print(f"\nfinal memory of the first llmrnn forecaster:\n{result['memory']}\n")
    print(f"trace: {result['trace']}")
    print(f"plot:  {result['plot'] or '(install matplotlib for the plot)'}")


def _size(num_bytes: float) -> str:
    """Bytes as a short human string (decimal units, as the Hugging Face pages print them)."""
    for unit, scale, digits in (("GB", 1e9, 2), ("MB", 1e6, 0), ("kB", 1e3, 0)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.{digits}f} {unit}"
    return f"{num_bytes:.0f} B"


def _models() -> None:
    from .backends._embedded_copy import loaded_file
    from .backends.llama_cpp import gpu_offload_supported
    from .hub import cache_dir, is_offline, model_size
    from .models import CATALOGUE, available_models

    print(f"{'name':<24} {'source':<10} {'size':>9}  where")
    for info in available_models():
        entry = CATALOGUE.get(info.name) if info.source == "catalogue" else None
        if info.path:
            size, where = _size(model_size(info.path)), info.path
        elif entry is not None:
            size, where = f"~{entry.size_gb:.2f} GB", "not downloaded"
        else:
            size, where = "", "(not installed)"
        if entry is not None:
            where += f"  [{entry.hub_id}, {entry.licence}]"
        print(f"{info.name:<24} {info.source:<10} {size:>9}  {where}")
    embedded = available_models()[0].path
    loads = loaded_file(embedded) if embedded else ""
    if loads and loads != embedded:
        state = "written" if os.path.isfile(loads) else "written on first use"
        print(f"\nThe embedded model loads from its Q8_0 copy ({state}): {loads}")
    print(f"\nHugging Face cache: {cache_dir()} (offline mode: {'on' if is_offline() else 'off'})")
    print("Fetch a catalogue model or any GGUF repository: llmrnn pull NAME_OR_ORG/REPO[:QUANT]")
    print("Register local files: LLMRNN_MODELS=/path/to/file.gguf:/path/to/folder")
    print(f"GPU offload available: {'yes' if gpu_offload_supported() else 'no'}")


def _pull(name: str) -> None:
    """Put a catalogue model or a Hugging Face GGUF repository into the Hugging Face cache."""
    from .hub import cached_model, model_size, resolve_hub_model
    from .models import CATALOGUE, hub_id_of

    hub_id = hub_id_of(name)
    if hub_id is None:
        raise ValueError(
            f"{name!r} is neither a catalogue name ({', '.join(CATALOGUE)}) nor a Hugging Face "
            "GGUF repository 'org/repo' or 'org/repo:QUANT'."
        )
    cached = cached_model(hub_id)
    if cached is not None:
        print(f"{hub_id} is already in the Hugging Face cache ({_size(model_size(cached))}):")
        print(cached)
        return
    path = resolve_hub_model(hub_id)
    print(f"{hub_id} is in the Hugging Face cache ({_size(model_size(path))}):")
    print(path)
    print(f"Use it with model={name!r}.")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _close_llama_devnull() -> None:
    """Close llama-cpp-python's two module-level ``/dev/null`` files (``llama_cpp._utils``,
    used only while a model loads). Left open, the interpreter's teardown reported them as a
    ResourceWarning after the command's output; registered with ``atexit``, so a model loaded
    later in the same process still finds them open."""
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``llmrnn`` command."""
    atexit.unregister(_close_llama_devnull)  # once, however often main runs in a process
    atexit.register(_close_llama_devnull)
    parser = argparse.ArgumentParser(
        prog="llmrnn", description="LLM-as-RNN forecasting on local GGUF models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="backtest rnn vs zero-shot vs Theta vs naive on airline passengers"
    )
    demo.add_argument("--steps", type=_positive, default=24, help="one-step forecasts (24)")
    demo.add_argument("--fit-steps", type=_positive, default=6, help="steps run in fit (6)")
    demo.add_argument("--window", type=_positive, default=12, help="past values shown (12)")
    demo.add_argument("--model", default=None, help="model name or .gguf path (embedded)")
    demo.add_argument("--out", default="llmrnn-demo", help="output folder (llmrnn-demo)")
    bt = sub.add_parser("backtest", help="backtest on a dataset name or a CSV file")
    bt.add_argument("source", help=f"dataset ({', '.join(DATASETS)}) or CSV file")
    bt.add_argument(
        "--strategy",
        action="append",
        choices=["rnn", "zero_shot", "full_history", "memprompt"],
        help="repeat to compare several (default: rnn and zero_shot)",
    )
    bt.add_argument("--steps", type=_positive, default=12, help="forecast origins (12)")
    bt.add_argument("--horizon", type=_positive, default=1, help="steps ahead (1)")
    bt.add_argument("--fit-steps", type=_positive, default=6, help="steps run in fit (6)")
    bt.add_argument("--window", type=_positive, default=12, help="past values shown (12)")
    bt.add_argument("--model", default=None, help="model name or .gguf path (embedded)")
    bt.add_argument("--out", default="llmrnn-backtest", help="output folder (llmrnn-backtest)")
    bt.add_argument(
        "--base",
        choices=["auto", "none", "theta", "seasonal"],
        default="auto",
        help="base forecaster the LLM corrects (auto: Theta with the index's season); "
        "with one, rnn without a base and the base alone are backtested too",
    )
    sub.add_parser(
        "models", help="list embedded, registered and catalogue models and where their files are"
    )
    pull = sub.add_parser(
        "pull", help="download a catalogue model or Hugging Face GGUF repository into the HF cache"
    )
    pull.add_argument(
        "name", metavar="NAME_OR_ID", help="catalogue name (`llmrnn models`) or org/repo[:QUANT]"
    )
    args = parser.parse_args(argv)
    if getattr(args, "window", 2) < 2:
        parser.error("--window must be at least 2")
    # sktime's own baselines warn of a future default on every construction: nothing to act on
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The default of config ``remember_data``")
        try:
            if args.command == "demo":
                _print_demo(run_demo(args.steps, args.fit_steps, args.window, args.model, args.out))
            elif args.command == "backtest":
                y, description, sp = load_series(args.source)
                result = backtest(
                    y,
                    strategies=tuple(dict.fromkeys(args.strategy or ["rnn", "zero_shot"])),
                    steps=args.steps,
                    horizon=args.horizon,
                    fit_steps=args.fit_steps,
                    window=args.window,
                    sp=sp,
                    model=args.model,
                    description=description,
                    out=args.out,
                    base=args.base,
                )
                _print_demo(result)
            elif args.command == "pull":
                _pull(args.name)
            else:
                _models()
        except (ValueError, FileNotFoundError) as exc:
            print(f"llmrnn: error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
