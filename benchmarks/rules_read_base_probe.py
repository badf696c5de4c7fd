"""Would the code's reading of the Rules help with a base too? Real runs of a change not shipped.

Without a base the Rules line must state the facts' number and the code reads it
(``ForecastTask.suggested_rule``, ``read_rules``); with a base the number is the model's own and
nothing reads it. On the ``FERTILITY`` series the 1.5B model wrote the facts' number into its
Rules line with a base (``+7.8``) and answered it with the sign flipped (``-0.078``) at every
step, so the guard gave it weight 0 (``docs/decisions.md``, twenty-third session). The learning
report's ``with_base_readings`` replays the stored runs with the code's reading; that replay
cannot show whether a Rules line made to state the number changes the model's answers. This
probe runs the change for real, patched in for the run only (no package code changes):

- ``suggested_rule`` gives the facts' number with a base too (the rewrite must state it);
- ``record_item`` keeps, with a base too, the model's own correction and the code's reading
  beside the one used, so ``read_rules`` (unchanged) decides who answers as it does without a
  base: the code's reading unless the model's was the closer more often where they differed.

Usage::

    python benchmarks/rules_read_base_probe.py --series fert_vct,fert_tha,unemp,airline

Each run is ``learning.run_one`` (1.5B model, the default base, the learning benchmark's steps)
and is written to ``benchmarks/results/rules_read_base/<series>.json``; the table compares its
MAE over the base alone's with the stored run's as recorded (the model's answers), both
through the shipped guard.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import learning  # noqa: E402

OUT = HERE / "results" / "rules_read_base"


def patch() -> None:
    """The change, for this process only."""
    from llmrnn import guard
    from llmrnn.tasks import ForecastTask

    shipped_item = ForecastTask.record_item

    def suggested_rule(self, record):
        if not record:
            return None
        lag, rate = self._repeat(record)
        return self.changes.render(rate * record[-lag][1])

    def record_item(self, answer, observation, truth, record=(), rules=""):
        if not self.based:
            return shipped_item(self, answer, observation, truth, record, rules)
        limits = self.limits(observation, 1, record)
        said = self.corrections(answer, observation)[:1]
        actual = float(np.atleast_1d(truth)[0]) - float(self.anchors(observation, 1)[0])
        used, reading, _ = self.read_rules(said, record, rules)
        used, said, reading = (float(guard.bound(x, limits)[0][0]) for x in (used, said, [reading]))
        return (used, actual, said, reading)  # four fields: the guard replays its weights

    ForecastTask.suggested_rule = suggested_rule
    ForecastTask.record_item = record_item


def ratio(run: dict) -> float:
    return learning.replay(run)["mae"] / run["mae_base"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default="fert_vct,fert_tha,unemp,airline")
    parser.add_argument("--model", default="qwen-1.5b")
    args = parser.parse_args(argv)
    learning.quiet()
    patch()
    lines = [
        "| series | before (the model's answers): MAE / base | Rules line forced, read by "
        "code: MAE / base | the Rules read by code at | s/step |",
        "|---|---|---|---|---|",
    ]
    for name in args.series.split(","):
        path = OUT / f"{name}.json"
        if path.exists():
            run = json.loads(path.read_text())
        else:
            run = learning.run_one(args.model, name, "rnn", learning.ORIGINS, learning.FIT_STEPS)
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(run, indent=1, default=str))
        shipped = json.loads(learning.run_path(args.model, name, "rnn").read_text())
        test = run["record"][-learning.ORIGINS :]
        read = sum(len(item) > 3 and item[0] != item[2] for item in test)
        lines.append(
            f"| {name} | {ratio(shipped):.3f} | {ratio(run):.3f} | {read} of "
            f"{learning.ORIGINS} test steps | {run['seconds_per_step']:.1f} |"
        )
        print(lines[-1], flush=True)
    (OUT / "report.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
