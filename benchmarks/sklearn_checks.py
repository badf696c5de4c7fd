"""Where scikit-learn's ``check_estimator`` spends its time on the real embedded model.

Usage::

    python benchmarks/sklearn_checks.py                      # the default LLMRNNClassifier
    python benchmarks/sklearn_checks.py --params '{"fit_steps": 4}'

Every check of ``sklearn.utils.estimator_checks.estimator_checks_generator`` (the checks
``check_estimator`` runs) is run one at a time on ``LLMRNNClassifier`` with the real embedded
model, timed, and charged with the model calls it made: the backend's ``complete``,
``complete_many``, ``complete_batch``, ``score`` and ``score_batch`` are wrapped to count calls,
rows (a batch call serves several) and the wall time spent inside them. The tests run these
checks on the stand-in backend (``tests/test_conformance.py``); this script says what they
cost a user who runs them on a real model. Figures go to ``benchmarks/results/sklearn_checks.md``
(appended, with the command) and the console.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "sklearn_checks.md"
METHODS = ("complete", "complete_many", "complete_batch", "score", "score_batch")


def instrument(tally: Counter) -> None:
    """Count the llama.cpp backend's calls, rows and seconds into ``tally``."""
    from llmrnn.backends.llama_cpp import LlamaCppBackend

    for name in METHODS:
        original = getattr(LlamaCppBackend, name)

        @functools.wraps(original)
        def wrapped(self, *args, _original=original, **kwargs):
            start = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                tally["seconds"] += time.perf_counter() - start
                tally["calls"] += 1
                batch = args[0] if args and isinstance(args[0], list | tuple) else None
                tally["rows"] += len(batch) if batch is not None else 1

        setattr(LlamaCppBackend, name, wrapped)


def check_name(check) -> str:
    return getattr(check, "func", check).__name__


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default="{}", help="LLMRNNClassifier parameters, as JSON")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument(
        "--budget", type=float, default=None, help="start no check after this many seconds"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")
    from sklearn.utils.estimator_checks import estimator_checks_generator

    from llmrnn import LLMRNNClassifier

    params = json.loads(args.params)
    tally: Counter = Counter()
    instrument(tally)
    rows = []
    began = time.perf_counter()
    checks = list(estimator_checks_generator(LLMRNNClassifier(**params), legacy=True, mark="skip"))
    for estimator, check in checks:
        if args.budget is not None and time.perf_counter() - began > args.budget:
            break
        before = Counter(tally)
        start = time.perf_counter()
        try:
            check(estimator)
            status = "passed"
        except Exception as exc:  # SkipTest included: say what happened, go on
            status = type(exc).__name__
        seconds = time.perf_counter() - start
        rows.append(
            {
                "check": check_name(check),
                "status": status,
                "seconds": seconds,
                "model_seconds": tally["seconds"] - before["seconds"],
                "calls": tally["calls"] - before["calls"],
                "rows": tally["rows"] - before["rows"],
            }
        )
        print(
            f"{rows[-1]['check']:55} {status:10} {seconds:7.1f} s  {rows[-1]['calls']:5} calls",
            flush=True,
        )
    wall = time.perf_counter() - began
    rows.sort(key=lambda r: -r["seconds"])
    model = sum(r["model_seconds"] for r in rows)
    statuses = Counter(r["status"] for r in rows)
    lines = [
        f"## check_estimator on the real embedded model, parameters {params or 'default'}",
        "",
        f"Command: `python benchmarks/sklearn_checks.py --params '{json.dumps(params)}'"
        f"{f' --budget {args.budget:g}' if args.budget else ''}`. "
        f"{len(rows)} of {len(checks)} checks "
        f"({', '.join(f'{n} {s}' for s, n in statuses.items())}) in "
        f"{wall:.0f} s ({wall / 60:.1f} min); {model:.0f} s of it inside the model's calls "
        f"({model / wall:.0%}), {tally['calls']} calls serving {tally['rows']} prompts.",
        "",
        "| check | status | seconds | in model calls | calls | prompts |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows[: args.top]:
        lines.append(
            f"| {r['check']} | {r['status']} | {r['seconds']:.1f} | {r['model_seconds']:.1f} | "
            f"{r['calls']} | {r['rows']} |"
        )
    top = sum(r["seconds"] for r in rows[: args.top])
    lines += ["", f"The {args.top} slowest checks: {top:.0f} s of {wall:.0f} s."]
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("a") as handle:
        handle.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
