"""Soak: many update steps with the real model; the memory stays bounded, RAM stays flat.

Usage::

    python benchmarks/soak.py [STEPS] [MEMORY_WORDS]

Feeds airline passengers (cycled, with a rising level so the values keep changing) one point
at a time through ``LLMRNNForecaster.update`` (strategy "rnn", the full three phases per step).
Prints: steps run, the largest memory in words at any step (must stay within
``memory_words``), faults by kind, seconds per step, and the resident memory (RSS) after
warm-up with its least-squares slope in MB per 100 steps (flat is near 0).
"""

from __future__ import annotations

import resource
import sys
import time
from collections import Counter

import numpy as np
import pandas as pd
from sktime.datasets import load_airline

from llmrnn import LLMRNNForecaster


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(steps: int = 500, memory_words: int = 200) -> None:
    base = load_airline().to_numpy()
    values = np.concatenate([base + 300 * k for k in range(steps // len(base) + 2)])
    index = pd.period_range("1949-01", periods=len(values), freq="M")
    y = pd.Series(values, index=index)
    warm = 30
    f = LLMRNNForecaster(window=12, fit_steps=1, memory_words=memory_words)
    f.fit(y[:warm])
    rss, words, seconds = [], [], []
    start = time.perf_counter()
    for t in range(warm, warm + steps):
        tick = time.perf_counter()
        f.update(y[t : t + 1])
        seconds.append(time.perf_counter() - tick)
        words.append(len(f.memory_.split()))
        rss.append(rss_mb())
    total = time.perf_counter() - start
    trace = f.get_trace()
    faults = Counter(
        part.split(" (")[0].split(":")[0].strip()
        for text in trace["fault"]
        if text
        for part in text.split(";")
    )
    after = np.array(rss[min(50, steps // 5) :])
    slope = np.polyfit(np.arange(after.size), after, 1)[0] * 100 if after.size > 2 else 0.0
    print(f"steps: {steps} (trace rows: {len(trace)}), wall {total:.0f} s")
    print(f"largest memory: {max(words)} words (budget {memory_words})")
    print(
        f"seconds per step: median {np.median(seconds):.2f}, p95 {np.percentile(seconds, 95):.2f}"
    )
    print(
        f"RSS after warm-up: {after.min():.0f}-{after.max():.0f} MB, "
        f"slope {slope:+.2f} MB/100 steps"
    )
    print(f"faults: {dict(faults) or 'none'}")
    print(f"final memory: {f.memory_[:300]!r}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*args)
