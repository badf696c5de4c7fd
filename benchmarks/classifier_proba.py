"""Cost of ``LLMRNNClassifier.predict_proba`` for 2, 5 and 20 classes.

Usage::

    python benchmarks/classifier_proba.py

Each class is scored as a continuation of the row's prompt, which is evaluated once; a class
then costs only its own label tokens (plus an end token) in one batched decode. This prints the
seconds per row for each class count, the marginal seconds per extra class, and the seconds one
full evaluation of the same prompt costs, so the two can be compared as a ratio measured in the
same run. Embedded model, every core available.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sktime.datasets import load_airline

from llmrnn import LLMRNNClassifier
from llmrnn.backends import make_backend
from llmrnn.models import resolve_model

LABELS = [
    "up", "down", "flat", "spike", "dip", "rise", "fall", "steady", "jump", "drop",
    "surge", "slump", "climb", "slide", "peak", "trough", "rebound", "stall", "drift", "swing",
]  # fmt: skip


def rows() -> pd.DataFrame:
    change = load_airline().diff().dropna()
    return pd.DataFrame({"change_1": change, "change_2": change.shift(1)}).dropna().iloc[-12:]


def time_rows(n_classes: int, X: pd.DataFrame) -> tuple[float, float]:
    labels = LABELS[:n_classes]
    y = [labels[i % n_classes] for i in range(len(X))]
    clf = LLMRNNClassifier(strategy="zero_shot").fit(X.iloc[:n_classes], y[:n_classes])
    clf.predict_proba(X.iloc[:1])  # warm: model loaded, instructions cached
    start = time.perf_counter()
    proba = clf.predict_proba(X)
    seconds = (time.perf_counter() - start) / len(X)
    assert np.allclose(proba.sum(axis=1), 1.0)
    return seconds, float(proba.max(axis=1).mean())


def full_prompt_seconds(X: pd.DataFrame) -> tuple[float, int]:
    """Seconds to evaluate one row's whole prompt from an empty cache (no prefix reuse)."""
    clf = LLMRNNClassifier(strategy="zero_shot").fit(X.iloc[:2], ["up", "down"])
    loop = clf._loop()
    msgs, _, _ = loop.messages(clf._loop_state, X.to_numpy()[0], 1)
    prompt = loop.backend.render(msgs)
    backend = make_backend(resolve_model(None), context_tokens=4096)
    times = []
    for i in range(3):
        salted = f"{i} " + prompt  # a different first token: nothing comes from the cache
        done = backend.complete(salted, max_tokens=1)
        times.append(done.seconds)
    return float(np.median(times)), done.prompt_tokens


def main() -> None:
    X = rows()
    results = {n: time_rows(n, X) for n in (2, 5, 20)}
    full, tokens = full_prompt_seconds(X)
    marginal = (results[20][0] - results[2][0]) / 18
    print("| classes | s/row | mean top probability |")
    print("|---|---|---|")
    for n, (seconds, top) in results.items():
        print(f"| {n} | {seconds:.3f} | {top:.2f} |")
    print()
    print(f"full prompt evaluation ({tokens} tokens, empty cache): {full:.3f} s")
    print(f"marginal cost per extra class: {marginal:.4f} s = {marginal / full:.3f} x full prompt")


if __name__ == "__main__":
    main()
