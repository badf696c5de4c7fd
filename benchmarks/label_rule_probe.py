"""Which rule should the classifier's facts suggest? A code-only probe, no model.

The forecasting facts end with a correction computed by code that the memory's Rules line
copies (``benchmarks/rule_probe.py``). The classifier's facts gave only hit rates and label
shares, and the 1.5B model's Rules line stayed generic ("Answer up if the trend is
increasing"): its memory changed 1 of 24 answers on the up/down task. This probe replays the
rule the facts now suggest, ``tasks.one_feature_rule`` (the one feature, as categories or split
at 0 or its median, whose leave-one-out majority labels beat always answering the majority
label), as if a model followed it exactly: each of the last ``--rows`` rows is answered by the
rule computed from the rows before it, starting ``--history`` rows back.

Up/down tasks (``llmrnn.datasets.updown_task``: the last 3 changes and the month) on the
benchmark's series: airline is the dev task (the classifier's earlier defaults were chosen on
it, and so was this rule), elnino the held-out one of the learning benchmark, the others were
not used to choose anything. Run ``python benchmarks/label_rule_probe.py [--markdown]``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import series as benchmark_series  # noqa: E402

TASKS = ("airline", "elnino", "co2", "unemp", "nile", "sunspots", "infl", "tbilrate", "realgdp")
LABELS = ("down", "up")


def replay(name: str, rows: int, history: int) -> dict:
    """Online Acc@1 of the rule followed exactly, and of the majority labels, on one task."""
    from llmrnn.datasets import updown_task
    from llmrnn.recurrence import RECORD_STEPS
    from llmrnn.tasks import answer_by_rule, one_feature_rule

    y, _, _ = benchmark_series.load(name)
    X, labels = updown_task(y)
    truth = np.array([LABELS.index(v) for v in labels])
    table = [tuple(r) for r in X.itertuples(index=False)]
    start = max(0, len(X) - rows - history)
    right, used = 0, []
    for i in range(len(X) - rows, len(X)):
        first = max(start, i - RECORD_STEPS)  # the record keeps the newest RECORD_STEPS rows
        rule = one_feature_rule(table[first:i], truth[first:i], list(X.columns), LABELS)
        if rule is None:
            counts = np.bincount(truth[first:i], minlength=len(LABELS))
            said = LABELS[int(np.argmax(counts))]
        else:
            said = answer_by_rule(rule, table[i])
        right += said == labels[i]
        used.append(rule["feature"] if rule else "none")
    online = truth[-rows:]
    before = np.bincount(truth[:-rows], minlength=len(LABELS)).argmax()
    return {
        "task": name,
        "set": {"airline": "dev", "elnino": "held-out"}.get(name, "other"),
        "history": history,
        "rule followed": right / rows,
        "majority of earlier rows": float(np.mean(online == before)),
        "majority of scored rows (oracle)": float(max(np.mean(online == k) for k in (0, 1))),
        "features used": ", ".join(f"{k} {v}" for k, v in pd.Series(used).value_counts().items()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=24, help="online rows scored")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--histories", default="6,30", help="rows of history before the scored")
    parser.add_argument("--tasks", default=",".join(TASKS), help="benchmark series names")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    histories = [int(h) for h in args.histories.split(",")]
    names = args.tasks.split(",")
    frame = pd.DataFrame([replay(name, args.rows, h) for h in histories for name in names])
    if len(histories) > 1 or len(names) > 1:
        means = frame.groupby("history")[frame.columns[3:6]].mean().reset_index()
        frame = pd.concat([frame, means.assign(task="mean", set="")], ignore_index=True)
    pd.set_option("display.width", 200)
    table = frame.round(3)
    print(table.to_markdown(index=False) if args.markdown else table.to_string(index=False))


if __name__ == "__main__":
    main()
