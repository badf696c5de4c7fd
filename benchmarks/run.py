"""The benchmark runner: the paper's comparison side by side, accuracy and cost.

Usage::

    python benchmarks/run.py quick    # 14 minutes on 2 cores (measured)
    python benchmarks/run.py full     # 48 minutes on 2 cores (adds benchmarks/speed.py)

Writes ``benchmarks/results/<suite>/report.md`` and its PNG plots. Every figure in the report
comes from this run of the code; the report names the machine, the model file, the llama.cpp
build, the package versions and the command.

Sections:

- Forecasting accuracy: one-step-ahead rolling-origin backtests through sktime's ``evaluate``
  (strategy "update" for the LLM forecasters, "refit" for the statistical ones) on four series
  that ship with sktime, for the four strategies with the estimator's defaults (the automatic
  Theta base), rnn with ``feedback="judge"``, naive last value, seasonal naive and Theta. MAE,
  MASE (scaled by the in-sample seasonal-naive error, so MASE <= 1 beats it), sMAPE, mean rank,
  error-correction rate.
- Accuracy levers: the four strategies without a base (the paper's loop alone); the full suite
  adds zero_shot and rnn correcting seasonal naive, which lost in every measurement so far.
- Classification: the up/down task, online Acc@1, log loss and error-correction rate.
- Cost: seconds and tokens per step per strategy; seconds per step against the step index for rnn
  and full_history; efficiency = llama.cpp's lower bound / actual wall time.
- Ablations: ``memory_words`` and ``context_tokens`` with ``window`` fixed.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def quiet() -> None:
    """Silence two sktime notices that are not about this code (logs stay readable)."""
    warnings.filterwarnings("ignore", message="The default of config ``remember_data``")
    warnings.filterwarnings("ignore", message="`sp` in ThetaForecaster is ignored")


@dataclass(frozen=True)
class Suite:
    name: str
    origins: int  # one-step-ahead forecasts per series
    fit_steps: int
    scaling_steps: int
    class_rows: int
    ablation_origins: int
    speed: bool  # also run benchmarks/speed.py (160 steps)
    skip: tuple[str, ...] = ()  # forecasters left out of this suite (time)


SUITES = {
    "quick": Suite("quick", origins=8, fit_steps=2, scaling_steps=40, class_rows=12,
                   ablation_origins=4, speed=False,
                   skip=("zero_shot + seasonal naive base", "rnn + seasonal naive base")),
    "full": Suite("full", origins=24, fit_steps=4, scaling_steps=160, class_rows=48,
                  ablation_origins=12, speed=True),
    # checks that the runner works end to end (minutes); its report is not committed
    "smoke": Suite("smoke", origins=2, fit_steps=1, scaling_steps=32, class_rows=3,
                   ablation_origins=2, speed=False),
}  # fmt: skip
SERIES = ("airline", "lynx", "shampoo", "uschange")
WINDOW = 12


# -- setup ---------------------------------------------------------------------------------


def machine() -> list[str]:
    from llmrnn.backends.llama_cpp import available_threads, gpu_offload_supported, system_info
    from llmrnn.models import resolve_model

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        gpu = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        gpu = ""
    model = resolve_model(None)
    versions = ", ".join(
        f"{p} {importlib.metadata.version(p)}"
        for p in ("llmrnn", "llama-cpp-python", "sktime", "scikit-learn", "numpy", "pandas")
    )
    return [
        f"- Machine: {cpu}, {os.cpu_count()} CPUs, {available_threads()} threads used; "
        f"GPU: {gpu or 'none'} (llama.cpp GPU offload: {gpu_offload_supported()})",
        f"- Model: `{os.path.basename(model)}` ({os.path.getsize(model) / 1e6:.1f} MB)",
        f"- llama.cpp: `{system_info().strip()}`",
        f"- Packages: {versions}; Python {platform.python_version()}",
    ]


# -- forecasting ---------------------------------------------------------------------------


def series(name: str) -> tuple[pd.Series, str, int]:
    from llmrnn.cli import load_series

    return load_series(name)


def backtest(forecaster, y: pd.Series, origins: int) -> dict:
    """One-step-ahead rolling-origin backtest (``llmrnn.backtesting``, as the CLI's)."""
    from llmrnn.backtesting import backtest_forecaster

    run = backtest_forecaster(forecaster, y, steps=origins)
    return {
        "pred": run.pred[:, 0],
        "true": run.true[:, 0],
        "seconds": run.seconds,
        "trace": run.trace,
    }


def scores(run: dict, y_train: np.ndarray, sp: int) -> dict:
    from llmrnn.trace import error_correction_rate

    errors = np.abs(run["pred"] - run["true"])
    scale = np.mean(np.abs(y_train[sp:] - y_train[:-sp]))
    denominator = np.abs(run["pred"]) + np.abs(run["true"])
    return {
        "MAE": errors.mean(),
        "MASE": errors.mean() / scale,
        "sMAPE": np.mean(2 * errors / np.where(denominator == 0, 1, denominator)),
        "ECR": error_correction_rate(errors),
    }


def forecasters(sp: int, fit_steps: int, description: str, y: pd.Series) -> dict:
    """Every method of the accuracy section, by name.

    The LLM rows without a suffix run the estimator's defaults (``base_forecaster="auto"``,
    Theta with the season of the series' index); ", no base" rows are the paper's loop alone.
    """
    from sktime.forecasting.naive import NaiveForecaster

    from llmrnn import LLMRNNForecaster
    from llmrnn.forecasting import theta_forecaster

    task = f"Predict the next value of this series: {description}."
    llm = {"window": WINDOW, "fit_steps": fit_steps, "memory_words": 100}
    llm["task_description"] = task
    methods = {
        "naive last": NaiveForecaster(strategy="last"),
        "seasonal naive": NaiveForecaster(strategy="last", sp=sp),
        "Theta": theta_forecaster(y, sp),
    }
    for strategy in ("zero_shot", "full_history", "memprompt", "rnn"):
        methods[strategy] = LLMRNNForecaster(strategy=strategy, **llm)
    methods["rnn judge"] = LLMRNNForecaster(strategy="rnn", feedback="judge", **llm)
    for strategy in ("zero_shot", "full_history", "memprompt", "rnn"):
        methods[f"{strategy}, no base"] = LLMRNNForecaster(
            strategy=strategy, base_forecaster=None, **llm
        )
    for strategy in ("zero_shot", "rnn"):
        methods[f"{strategy} + seasonal naive base"] = LLMRNNForecaster(
            strategy=strategy, base_forecaster=NaiveForecaster(sp=sp), **llm
        )
    return methods


def accuracy(suite: Suite, out: Path) -> tuple[list[str], dict]:
    rows, runs, used = [], {}, {}
    for name in SERIES:
        y, description, sp = series(name)
        y = y.iloc[-(suite.origins + 60) :] if len(y) > suite.origins + 60 else y
        # Theta deseasonalizes from two whole seasons: the first step of fit needs 2 * sp points
        origins = used[name] = min(suite.origins, len(y) - 2 * sp - suite.fit_steps)
        y_train = y.to_numpy()[: len(y) - origins]
        candidates = forecasters(sp, suite.fit_steps, description, y)
        for method, forecaster in candidates.items():
            if method in suite.skip:
                continue
            run = backtest(forecaster, y, origins)
            runs[(name, method)] = run
            rows.append({"series": name, "method": method, **scores(run, y_train, sp)})
            print(f"  {name:9s} {method:32s} MAE {rows[-1]['MAE']:.3f}", flush=True)
    table = pd.DataFrame(rows)
    table["rank"] = table.groupby("series")["MAE"].rank()
    lines = [
        "## Forecasting accuracy",
        "",
        f"One-step-ahead forecasts at the last {suite.origins} points of each series "
        "(fewer where the series is too short for two seasons of history before them: "
        + ", ".join(f"{n} {k}" for n, k in used.items())
        + ") "
        '(sktime `evaluate`: strategy "update" for the LLM forecasters, which learn online, '
        '"refit" for the statistical ones, since ThetaForecaster\'s update does not give the '
        f"forecast a refit gives; LLM forecasters run {suite.fit_steps} "
        f"recurrent steps in fit, window {WINDOW}, memory_words 100). MASE is scaled by the "
        "in-sample seasonal-naive error, so MASE < 1 beats it in sample. ECR: error-correction "
        "rate, the share of steps with an error above the run's median followed by one below it.",
        "",
    ]
    for name in SERIES:
        part = table[table["series"] == name].set_index("method")
        lines += [f"### {name}", "", part[["MAE", "MASE", "sMAPE", "ECR"]].to_markdown(
            floatfmt=".3f"), ""]  # fmt: skip
    summary = table.groupby("method", sort=False).agg(
        mean_MASE=("MASE", "mean"), mean_sMAPE=("sMAPE", "mean"), mean_rank=("rank", "mean"),
        mean_ECR=("ECR", "mean"),
    )  # fmt: skip
    mae = table.pivot(index="series", columns="method", values="MAE")
    summary["MAE / seasonal naive"] = (mae.div(mae["seasonal naive"], axis=0)).mean()
    summary["MAE / naive last"] = (mae.div(mae["naive last"], axis=0)).mean()
    summary["beats naive last on"] = (mae.lt(mae["naive last"], axis=0)).sum().astype(str)
    lines += ["### All series", "", summary.to_markdown(floatfmt=".3f"), ""]
    lines += goals(mae, summary)
    plot_accuracy(table, out / "accuracy.png")
    lines += ["![MASE per series](accuracy.png)", ""]
    return lines, runs


def goals(mae: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """Issue 8's goals, each measured, for the default rnn, rnn without a base and the best
    rnn variant."""
    lines = ["### Goals (issue 8)", ""]
    rnn_like = [m for m in summary.index if m.startswith("rnn")]
    best = min(rnn_like, key=lambda m: summary.loc[m, "mean_MASE"])
    for variant in dict.fromkeys(m for m in ("rnn", "rnn, no base", best) if m in rnn_like):
        suffix = variant.removeprefix("rnn")  # the same number handling for every peer
        peers = [p + suffix for p in ("zero_shot", "full_history", "memprompt")]
        peers = [p for p in peers if p in mae.columns]
        mase = summary.loc[variant, "mean_MASE"]
        beats = int(summary.loc[variant, "beats naive last on"])  # a count, kept as text
        lines.append(
            f"- **{variant}**: mean MASE {mase:.3f} (goal <= 1.0: "
            f"{'met' if mase <= 1.0 else 'not met'}); better than naive last on {beats} of "
            f"{len(mae)} series (goal: at least half: "
            f"{'met' if beats >= len(mae) / 2 else 'not met'})."
        )
        for peer in peers:
            gain = 1 - (mae[variant] / mae[peer]).mean()
            lines.append(
                f"  - mean MAE gain over {peer}: {gain:+.1%} (goal >= +6.5%: "
                f"{'met' if gain >= 0.065 else 'not met'})"
            )
    return lines + [""]


def plot_accuracy(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pivot = table.pivot(index="method", columns="series", values="MASE")
    pivot = pivot.loc[table["method"].drop_duplicates()]
    ax = pivot.plot.barh(figsize=(9, 7), width=0.8)
    ax.axvline(1.0, color="black", lw=0.8, ls="--")
    ax.set_xlabel("MASE (scaled by in-sample seasonal naive)")
    ax.invert_yaxis()
    ax.set_title("One-step-ahead MASE per series")
    plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close()


# -- classification ------------------------------------------------------------------------


def classification(suite: Suite) -> list[str]:
    from llmrnn import LLMRNNClassifier
    from llmrnn.datasets import updown_task
    from llmrnn.trace import error_correction_rate

    X, y = updown_task()
    n = suite.class_rows
    X_warm, y_warm = X.iloc[-n - 8 : -n], y[-n - 8 : -n]
    X_test, y_test = X.iloc[-n:], y[-n:]
    rows = []
    for strategy in ("rnn", "zero_shot", "full_history", "memprompt"):
        clf = LLMRNNClassifier(strategy=strategy, memory_words=100).fit(X_warm, y_warm)
        start = time.perf_counter()
        probabilities, wrong = [], []
        for i in range(n):
            row = X_test.iloc[i : i + 1]
            p = clf.predict_proba(row)[0]
            probabilities.append(p[list(clf.classes_).index(y_test[i])])
            wrong.append(float(clf.classes_[int(np.argmax(p))] != y_test[i]))
            clf.partial_fit(row, y_test[i : i + 1])
        seconds = (time.perf_counter() - start) / n
        rows.append({
            "strategy": strategy,
            "Acc@1": 1 - np.mean(wrong),
            "log loss": -np.mean(np.log(np.clip(probabilities, 1e-12, 1))),
            "ECR": error_correction_rate(np.array(wrong)),
            "s/row": seconds,
        })  # fmt: skip
        print(f"  classification {strategy}: Acc@1 {rows[-1]['Acc@1']:.3f}", flush=True)
    majority = max(np.mean(y_test == "up"), np.mean(y_test == "down"))
    same = np.mean(y_test[1:] == y_test[:-1])
    table = pd.DataFrame(rows).set_index("strategy")
    return [
        "## Classification",
        "",
        f"The up/down task (`llmrnn.datasets.updown_task`, airline passengers): 8 rows of fit, "
        f"then each of the last {n} rows is predicted (`predict_proba`) before its label is "
        "revealed (`partial_fit`). ECR: share of wrong steps followed by a right one.",
        "",
        table.to_markdown(floatfmt=".3f"),
        "",
        f"Label baselines on the same rows: majority label {majority:.3f}, same as the last "
        f"label {same:.3f}.",
        "",
    ]


# -- cost ----------------------------------------------------------------------------------


def cost(suite: Suite, runs: dict, out: Path) -> tuple[dict, list[str]]:
    """The cost section, and the scaling runs' traces (reused by the speed section)."""
    from speed import llama_rates, run_loop

    prompt_rate, gen_rate = llama_rates()
    rows = []
    for method in ("zero_shot", "full_history", "memprompt", "rnn", "rnn judge"):
        traces = [runs[(s, method)]["trace"] for s in SERIES]
        trace = pd.concat(traces, ignore_index=True)
        bound = trace["prompt_tokens"] / prompt_rate + trace["generated_tokens"] / gen_rate
        rows.append({
            "strategy": method,
            "s/step": trace["seconds"].mean(),
            "calls/step": trace["calls"].mean(),
            "evaluated tok/step": trace["prompt_tokens"].mean(),
            "reused tok/step": trace["cached_tokens"].mean(),
            "generated tok/step": trace["generated_tokens"].mean(),
            "reused share": trace["cached_tokens"].sum()
            / (trace["cached_tokens"] + trace["prompt_tokens"]).sum(),
            "lower bound / actual": bound.sum() / trace["seconds"].sum(),
        })  # fmt: skip
    table = pd.DataFrame(rows).set_index("strategy")
    scaling = {s: run_loop(s, suite.scaling_steps) for s in ("rnn", "full_history")}
    plot_scaling(scaling, out / "scaling.png")
    n = suite.scaling_steps
    early = {s: float(np.median(t["seconds"].iloc[10:30])) for s, t in scaling.items()}
    late = {s: float(np.median(t["seconds"].iloc[n - 20 : n])) for s, t in scaling.items()}
    return scaling, [
        "## Cost",
        "",
        "Per recurrent step, over every step of the accuracy runs above (fit and updates). "
        "Lower bound: evaluated tokens / llama.cpp's prompt rate + generated tokens / its "
        f"generation rate, both measured in this run with plain llama_cpp calls on the same "
        f"model and threads: prompt {prompt_rate:.0f} tok/s, generation {gen_rate:.0f} tok/s.",
        "",
        table.to_markdown(floatfmt=".3f"),
        "",
        f"Seconds per step against the step index ({n} steps of airline passengers with a "
        "rising level, window 12): median s/step over steps 10-30 and the last 20 steps: "
        + "; ".join(
            f"{s} {early[s]:.2f} -> {late[s]:.2f} (x{late[s] / early[s]:.2f})" for s in scaling
        )
        + ".",
        "",
        "![seconds per step](scaling.png)",
        "",
    ]


def plot_scaling(traces: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, trace in traces.items():
        seconds = trace["seconds"].to_numpy()
        ax.plot(seconds, lw=0.6, alpha=0.5)
        smooth = pd.Series(seconds).rolling(9, center=True, min_periods=1).median()
        ax.plot(smooth, lw=2, label=f"{name} (rolling median)", color=ax.lines[-1].get_color())
    ax.set_xlabel("step")
    ax.set_ylabel("seconds per step")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.set_title("Cost per recurrent step")
    plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close()


# -- ablations -----------------------------------------------------------------------------


def ablations(suite: Suite) -> list[str]:
    from llmrnn import LLMRNNForecaster

    y, description, sp = series("airline")
    y = y.iloc[-(suite.ablation_origins + 60) :]
    y_train = y.to_numpy()[: len(y) - suite.ablation_origins]
    rows = []
    settings = [{"memory_words": m} for m in (50, 100, 200, 400)]
    # context_tokens 4096 with memory_words 100 is the row above: run once
    settings += [{"memory_words": 100, "context_tokens": c} for c in (1024, 2048)]
    for setting in settings:
        forecaster = LLMRNNForecaster(window=WINDOW, fit_steps=suite.fit_steps, **setting)
        run = backtest(forecaster, y, suite.ablation_origins)
        trace = run["trace"]
        rows.append({
            **{"memory_words": setting["memory_words"],
               "context_tokens": setting.get("context_tokens", 4096)},
            **scores(run, y_train, sp),
            "s/step": trace["seconds"].mean(),
            "memory words (last)": len(str(trace["memory"].iloc[-1]).split()),
        })  # fmt: skip
        print(f"  ablation {setting}: MAE {rows[-1]['MAE']:.3f}", flush=True)
    table = pd.DataFrame(rows).astype({"memory_words": str, "context_tokens": str})
    table["memory words (last)"] = table["memory words (last)"].astype(str)
    return [
        "## Ablations",
        "",
        f"rnn on airline passengers, window {WINDOW} fixed, last {suite.ablation_origins} "
        "points one step ahead.",
        "",
        table.to_markdown(index=False, floatfmt=".3f"),
        "",
    ]


def main(name: str) -> Path:
    quiet()
    suite = SUITES[name]
    out = HERE / "results" / name
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    lines = [f"# Benchmark report: {name} suite", ""]
    lines += [f"- Command: `python benchmarks/run.py {name}`"]
    lines += [f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"]
    lines += machine() + [""]
    print("accuracy", flush=True)
    accuracy_lines, runs = accuracy(suite, out)
    print("classification", flush=True)
    class_lines = classification(suite)
    print("cost", flush=True)
    scaling, cost_lines = cost(suite, runs, out)
    print("ablations", flush=True)
    ablation_lines = ablations(suite)
    body = accuracy_lines + class_lines + cost_lines + ablation_lines
    if suite.speed:
        import speed

        print("speed", flush=True)
        steps = suite.scaling_steps
        body += ["## Speed", "", *speed.main(steps, traces=scaling).splitlines()[2:], ""]
    minutes = (time.perf_counter() - start) / 60
    lines += [f"Runtime of the whole suite: {minutes:.1f} minutes.", "", *body]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SUITES:
        sys.exit(f"usage: python benchmarks/run.py {{{'|'.join(SUITES)}}}")
    print(main(sys.argv[1]))
