"""Speed targets of the loop, measured as ratios in one run; writes benchmarks/results/speed.md.

Usage::

    python benchmarks/speed.py [STEPS]

STEPS (default 160) recurrent steps are run for "rnn" and "full_history" on airline passengers
(cycled with a rising level). Measured, each next to its goal:

1. flat per-step cost: median seconds over steps 140-160 / median over steps 10-30;
2. KV-cache reuse: share of all prompt tokens served from the cache over the rnn run;
3. efficiency: wall time / llama.cpp's lower bound, where the bound is evaluated tokens /
   prompt rate + generated tokens / generation rate, both rates measured here with plain
   llama_cpp calls on the same model, threads and context size;
4. ``predict`` for 12 horizons is one generation; ``predict_interval`` with 20 samples costs
   a fraction of 20 independent full-prompt generations;
5. one load: a grid search over 8 candidates loads no file again; RSS with 10 fitted clones
   / RSS with one;
6. threads: ``n_threads=None`` uses every core the process may run on.

Runtime on 2 cores: about 15 minutes (320 recurrent steps, a grid search, 10 clone fits).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sktime.datasets import load_airline
from sktime.forecasting.model_selection import ForecastingGridSearchCV
from sktime.performance_metrics.forecasting import MeanAbsoluteError
from sktime.split import ExpandingWindowSplitter

import llmrnn._params as params
from llmrnn import LLMRNNForecaster
from llmrnn.backends import llama_cpp as backend_module
from llmrnn.backends._embedded_copy import loaded_file
from llmrnn.models import resolve_model

RESULTS = Path(__file__).resolve().parent / "results"


def series(n: int) -> pd.Series:
    base = load_airline().to_numpy()
    values = np.concatenate([base + 300 * k for k in range(n // len(base) + 2)])[:n]
    return pd.Series(values, index=pd.period_range("1949-01", periods=n, freq="M"))


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def llama_rates(n_ctx: int = 4096) -> tuple[float, float]:
    """Prompt and generation tokens per second of plain llama_cpp calls on the shared model."""
    backend = backend_module.LlamaCppBackend(resolve_model(None), n_ctx=n_ctx)
    llama = backend._shared.llama
    text = "The quick brown fox jumps over the lazy dog. " * 40
    tokens = llama.tokenize(text.encode(), add_bos=True)[:400]
    prompt_times, gen_times = [], []
    for i in range(3):
        llama.reset()
        start = time.perf_counter()
        llama.eval([tokens[0] + i + 1, *tokens[1:]])
        prompt_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        done = llama.create_completion(
            [tokens[0] + i + 1, *tokens[1:]], max_tokens=128, temperature=0.0, top_k=1
        )
        generated = done["usage"]["completion_tokens"]
        gen_times.append((time.perf_counter() - start) / max(generated, 1))
    return len(tokens) / float(np.median(prompt_times)), 1 / float(np.median(gen_times))


def run_loop(strategy: str, steps: int) -> pd.DataFrame:
    y = series(steps + 13)
    f = LLMRNNForecaster(strategy=strategy, window=12, fit_steps=steps)
    f.fit(y)
    return f.get_trace()


class CountingBackend:
    """Counts model calls of the backend it wraps (same behaviour otherwise)."""

    def __init__(self, inner):
        self.inner, self.model_path, self.calls = inner, inner.model_path, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def complete(self, prompt, **kwargs):
        self.calls += 1
        return self.inner.complete(prompt, **kwargs)


def main(steps: int = 160, traces: dict[str, pd.DataFrame] | None = None) -> str:
    """Measure every target; ``traces`` may bring the rnn and full_history runs of ``steps``."""
    lines = ["# Speed", ""]
    model = resolve_model(None)
    threads = backend_module.available_threads()
    lines += [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{threads} threads used; model {os.path.basename(loaded_file(model))}; "
        f"GPU offload: {backend_module.gpu_offload_supported()}.",
        f"Command: `python benchmarks/speed.py {steps}`",
        "",
        "| target | goal | measured |",
        "|---|---|---|",
    ]
    prompt_rate, gen_rate = llama_rates()
    traces = traces or {s: run_loop(s, steps) for s in ("rnn", "full_history")}

    def flat(trace: pd.DataFrame) -> float:
        s = trace["seconds"].to_numpy()
        late = s[min(140, len(s) - 20) : 160]
        return float(np.median(late) / np.median(s[10:30]))

    rnn = traces["rnn"]
    reuse = rnn["cached_tokens"].sum() / (rnn["cached_tokens"] + rnn["prompt_tokens"]).sum()
    bound = rnn["prompt_tokens"] / prompt_rate + rnn["generated_tokens"] / gen_rate
    efficiency = float(np.median(rnn["seconds"] / bound))
    lines.append(f"| 1. flat cost, rnn (s/step 140-160 / 10-30) | <= 1.15 | {flat(rnn):.2f} |")
    fh_ratio = flat(traces["full_history"])
    lines.append(f"| 1. same ratio, full_history | (reported) | {fh_ratio:.2f} |")
    lines.append(f"| 2. prompt tokens from the KV cache, rnn | >= 0.50 | {reuse:.2f} |")
    lines.append(
        f"| 3. wall / llama.cpp lower bound per step (median) | <= 1.20 | {efficiency:.2f} |"
    )

    # 4. predict is one generation; intervals reuse the prompt.
    y = series(60)
    f = LLMRNNForecaster(window=12, fit_steps=1).fit(y, fh=list(range(1, 13)))
    real_backend = params.make_backend
    counter: list[CountingBackend] = []

    def counting(*args, **kwargs):
        counter.append(CountingBackend(real_backend(*args, **kwargs)))
        return counter[-1]

    params.make_backend = counting
    try:
        f.predict()
        predict_calls = sum(c.calls for c in counter)
        start = time.perf_counter()
        f.predict_interval(coverage=0.9)
        interval_seconds = time.perf_counter() - start
    finally:
        params.make_backend = real_backend
    track = f._tracks[None]
    loop = f._loop(track)
    observation = f._observer().observe(track.series, len(track.series), 12, None)
    msgs, _, _ = loop.messages(track.state, observation, 12)
    prompt = loop.backend.render(msgs)
    start = time.perf_counter()
    for i in range(20):
        loop.backend.complete(
            f"{i} " + prompt,
            max_tokens=loop.task.max_tokens(12),
            grammar=loop.task.grammar(12),
            temperature=0.7,
            seed=i,
        )
    independent = time.perf_counter() - start
    lines.append(f"| 4. model calls in predict(fh=1..12) | 1 | {predict_calls} |")
    lines.append(
        f"| 4. predict_interval(n_samples=20) / 20 independent generations | <= 0.50 | "
        f"{interval_seconds / independent:.2f} |"
    )

    # 5. one load per process; memory of 10 fitted clones.
    loads = backend_module.load_count(model)
    grid = ForecastingGridSearchCV(
        LLMRNNForecaster(fit_steps=1),
        ExpandingWindowSplitter(initial_window=56, step_length=1, fh=[1]),
        {"window": [6, 12], "strategy": ["rnn", "zero_shot"], "memory_words": [50, 100]},
        scoring=MeanAbsoluteError(),
    )
    grid.fit(y)
    new_loads = backend_module.load_count(model) - loads
    one = rss_mb()
    clones = [LLMRNNForecaster(window=12, fit_steps=2).fit(y) for _ in range(10)]
    ten = rss_mb()
    lines.append(f"| 5. file loads during an 8-candidate grid search | 0 | {new_loads} |")
    lines.append(f"| 5. RSS with 10 fitted clones / with one | <= 1.20 | {ten / one:.3f} |")
    affinity = len(os.sched_getaffinity(0))
    lines.append(f"| 6. threads with n_threads=None / cores available | 1 | {threads}/{affinity} |")
    lines += [
        "",
        f"llama.cpp rates here: prompt {prompt_rate:.0f} tok/s, generation {gen_rate:.0f} tok/s.",
        "",
        "| strategy | s/step 10-30 | s/step 140-160 | evaluated tok/step | cached tok/step | "
        "generated tok/step | calls/step |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, trace in traces.items():
        s = trace["seconds"].to_numpy()
        lines.append(
            f"| {name} | {np.median(s[10:30]):.2f} | {np.median(s[140:160]):.2f} | "
            f"{trace['prompt_tokens'].mean():.0f} | {trace['cached_tokens'].mean():.0f} | "
            f"{trace['generated_tokens'].mean():.0f} | {trace['calls'].mean():.1f} |"
        )
    del clones
    report = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "speed.md").write_text(report)
    return report


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 160))
