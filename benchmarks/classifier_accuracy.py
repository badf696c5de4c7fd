"""Online accuracy of LLMRNNClassifier strategies on the up/down task (airline passengers).

Usage::

    python benchmarks/classifier_accuracy.py [N_ROWS]

Each row is predicted before its label is revealed (the step's own prediction, from the
model's logits), so the accuracy is the online, one-step-ahead accuracy over the last N rows
(default 48). Printed next to two label baselines: the majority label and "same as the last
label". Embedded model, greedy.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from llmrnn import LLMRNNClassifier
from llmrnn.datasets import updown_task


def main(n_rows: int = 48) -> None:
    X, y = updown_task()
    X, y = X.iloc[-n_rows:], y[-n_rows:]
    print(f"| strategy | online Acc@1 | error-correction rate | s/step |  (n={n_rows})")
    print("|---|---|---|---|")
    for strategy in ("rnn", "zero_shot", "full_history", "memprompt"):
        start = time.perf_counter()
        clf = LLMRNNClassifier(strategy=strategy, memory_words=100).fit(X, y)
        seconds = (time.perf_counter() - start) / n_rows
        accuracy = 1 - clf.get_trace()["error"].mean()
        rate = clf.error_correction_rate_
        print(f"| {strategy} | {accuracy:.3f} | {rate:.3f} | {seconds:.2f} |")
    majority = max(np.mean(y == "up"), np.mean(y == "down"))
    last = np.mean(y[1:] == y[:-1])
    print(f"| majority label | {majority:.3f} | | |")
    print(f"| same as last label | {last:.3f} | | |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 48)
