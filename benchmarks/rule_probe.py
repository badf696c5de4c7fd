"""Which correction should the memory's facts suggest? A code-only probe, no model.

The rnn memory's Rules line ends with a number the prediction copies (``docs/decisions.md``,
"The memory must learn"); the reflection is handed a suggested number computed by code from
the record of actual corrections (truth minus the base forecast). Until the sixth session the
suggestion was the mean of the last three actual corrections; the learning benchmark showed
that this rule, applied as it is, is worse than no correction on most series. This probe
replays candidate suggestions on the default base's own one-step errors (no LLM: the
suggestion stands in for a model that copies it exactly), scored at full weight and through
the shipped guard (``llmrnn.guard.weights``).

Candidates (each computed from the record before the step it corrects):

- ``zero``: no correction (the base alone);
- ``mean3``: the mean of the last 3 actual corrections (the old suggestion);
- ``last``: the last actual correction;
- ``mean``: the mean of all of them (a lasting bias);
- ``carry``: ``tasks.carry_over`` (the shrunk lag-1 slope of the actual corrections) times the
  last one: an AR(1) of the base's errors that needs evidence (the suggestion since then);
- ``carry_cap``: ``carry`` no larger than the largest correction before the last one (a
  correction beyond every earlier one, as at a crash, is not extrapolated at full size);
- ``leader``: the candidate whose own past corrections had the lowest mean absolute error over
  the last 12 steps (follow the leader), zero on ties and until 3 steps exist;
- ``lag``: the guard's shrunk slope of each actual correction on the series' last change before
  it, times the last change now (a base that lags a trend or a turn errs in the direction the
  series just moved: a fact the record's errors alone do not hold);
- ``season``: the same shrunk slope one season back (each actual correction on the one
  ``season_length`` steps before it) times the correction a season before the next step;
  ``carry`` where the index has no season;
- ``repeat``: ``tasks.repeat_lag``, ``carry`` or ``season``, whichever slope accounts for more
  of the record's sum of squares (what the facts suggest without a base since the twentieth
  session);
- ``repeat_leader``: ``carry`` or ``season``, whichever suggestion erred less over the last 24
  steps (follow the leader between the two);
- ``repeat_drift``: ``repeat`` with a third regressor, the running mean of the changes before
  each one (a drift that carries over), whichever of the three slopes accounts for more of the
  record's sum of squares (twenty-first session: ties on dev, not confirmed on ``NEW``).

``--nobase`` replays the paper's setting: the anchor is the last value, so the actual
corrections are the series' changes (MAE over the naive forecast's, not the base's). ``--prior``
gives the guard the prior it has without a base; ``--late``, ``--new`` and ``--fertility`` add
those sets.

Run ``python benchmarks/rule_probe.py [--steps 16 --scored 10]``; it prints MAE / base MAE per
series and set. Choose on ``DEV``; ``HELD_OUT`` and ``FRESH`` confirm.
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


def last_changes(y: pd.Series, steps: int) -> np.ndarray:
    """The series' last change known before each of the last ``steps`` points."""
    values = y.to_numpy(dtype=float)
    return np.array([values[t - 1] - values[t - 2] for t in range(len(y) - steps, len(y))])


def lag(actual: np.ndarray, changes: np.ndarray) -> float:
    """``lag``: the shrunk slope of past actual corrections on the last change before each,
    times the last change before the next step (``changes`` has one more entry)."""
    from llmrnn import guard

    slope = guard.weight(list(zip(changes[: len(actual)], actual)))
    return slope * float(changes[len(actual)])


def actual_corrections(y: pd.Series, steps: int, nobase: bool = False) -> np.ndarray:
    """Truth minus the default base's one-step forecast at each of the last ``steps`` points
    (``nobase``: minus the last value, the series' changes)."""
    from llmrnn.forecasting import auto_base_forecaster

    if nobase:
        return np.diff(y.to_numpy(dtype=float))[-steps:]
    out = []
    for t in range(len(y) - steps, len(y)):
        history = y.iloc[:t]
        base = auto_base_forecaster(history)
        out.append(float(y.iloc[t]) - float(base.fit(history, fh=[1]).predict().iloc[0]))
    return np.array(out)


def seasonal(actual: np.ndarray, season: int) -> dict[str, float]:
    """``season``, ``repeat`` and ``repeat_leader`` for the next step (see the module's text)."""
    from llmrnn import guard
    from llmrnn.tasks import carry_over, repeat_lag

    def carry(past: np.ndarray) -> float:
        return carry_over(past) * float(past[-1]) if past.size else 0.0

    def season_only(past: np.ndarray) -> float:
        if season <= 1:
            return carry(past)
        if past.size <= season:
            return 0.0
        return guard.weight(list(zip(past[:-season], past[season:]))) * float(past[-season])

    lag, rate = repeat_lag(actual, season)
    errors = np.zeros(2)
    for j in range(max(1, actual.size - 24), actual.size):
        errors += np.abs(actual[j] - np.array([carry(actual[:j]), season_only(actual[:j])]))
    repeat = rate * float(actual[-lag]) if actual.size else 0.0
    # repeat_drift: a third regressor, the running mean of the changes before each one (a
    # drift carries over), whichever of the three accounts for more of the sum of squares
    drift, means = repeat, np.array([actual[:j].mean() for j in range(1, actual.size)])
    if means.size >= 3:
        kept = guard.weight(list(zip(means, actual[1:])))
        past = actual[:-lag] if lag > 1 else actual[:-1]
        if kept * kept * float(np.sum(means**2)) > rate * rate * float(np.sum(past**2)):
            drift = kept * float(actual.mean())
    return {
        "season": season_only(actual),
        "repeat": repeat,
        "repeat_leader": season_only(actual) if errors[1] < errors[0] else carry(actual),
        "repeat_drift": drift,
    }


def candidates(actual: np.ndarray) -> dict[str, float]:
    """Each candidate correction for the next step, from past actual corrections only."""
    from llmrnn.tasks import carry_over

    if actual.size == 0:
        return dict.fromkeys(("zero", "mean3", "last", "mean", "carry", "carry_cap"), 0.0)
    carry = carry_over(actual) * float(actual[-1])
    seen = float(np.max(np.abs(actual[:-1]))) if actual.size > 1 else 0.0
    return {
        "zero": 0.0,
        "mean3": float(actual[-3:].mean()),
        "last": float(actual[-1]),
        "mean": float(actual.mean()),
        "carry": carry,
        "carry_cap": float(np.clip(carry, -seen, seen)),
    }


def suggestions(past: np.ndarray, season: int) -> dict[str, float]:
    """Every candidate but ``lag`` (which reads the series' changes) for the next step."""
    out = candidates(past)
    out["leader"] = leader(past)
    out.update(seasonal(past, season))
    return out


def leader(actual: np.ndarray, steps: int = 12) -> float:
    """Follow the leader: the candidate whose own past corrections erred least lately."""
    if actual.size < 3:
        return 0.0
    errors: dict[str, list[float]] = {}
    for i in range(max(1, actual.size - steps), actual.size):
        for key, value in candidates(actual[:i]).items():
            errors.setdefault(key, []).append(abs(actual[i] - value))
    best = min(errors, key=lambda key: (np.mean(errors[key]), key != "zero"))
    return candidates(actual)[best]


def main(argv: list[str] | None = None) -> None:
    from llmrnn import guard
    from llmrnn.forecasting import season_length
    from llmrnn.recurrence import RECORD_STEPS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16, help="steps in the record")
    parser.add_argument("--scored", type=int, default=10, help="last steps scored")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--evidence",
        type=int,
        default=0,
        help="base errors at points before the steps that the candidates may also read (the "
        "record's newest 64 at most; the guard learns from the steps alone unless --prior)",
    )
    parser.add_argument(
        "--prior",
        action="store_true",
        help="the guard's slope also reads each candidate's suggestions at those earlier points "
        "(computed from the points before each) against what came: the prior the guard has "
        "without a base since the twenty-first session (``guard.weights``, ``prior``)",
    )
    parser.add_argument("--late", action="store_true", help="the LATE series too")
    parser.add_argument("--new", action="store_true", help="the NEW series too")
    parser.add_argument("--fertility", action="store_true", help="the FERTILITY series too")
    parser.add_argument(
        "--nobase", action="store_true", help="no base: the anchor is the last value"
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    sets = {"dev": benchmark_series.DEV, "held-out": benchmark_series.HELD_OUT}
    sets["fresh"] = benchmark_series.FRESH
    if args.late:
        sets["late"] = benchmark_series.LATE
    if args.new:
        sets["new"] = benchmark_series.NEW
    if args.fertility:
        sets["fertility"] = benchmark_series.FERTILITY
    rows = []
    for set_name, names in sets.items():
        for name in names:
            y, _, _ = benchmark_series.load(name)
            seen = min(args.evidence, max(0, len(y) - args.steps - 12))
            both = actual_corrections(y, args.steps + seen, args.nobase)
            season = season_length(y.index)
            earlier, actual = both[:seen], both[seen:]
            changes = last_changes(y, args.steps)
            policies: dict[str, list[float]] = {}
            for i in range(len(actual)):
                past = np.concatenate([earlier, actual[:i]])[-RECORD_STEPS:]
                for key, value in suggestions(past, season).items():
                    policies.setdefault(key, []).append(value)
                policies.setdefault("lag", []).append(lag(actual[:i], changes[: i + 1]))
            priors: dict[str, list[tuple[float, float]]] = {}
            for j in range(1, len(earlier) if args.prior else 0):
                for key, value in suggestions(earlier[:j][-RECORD_STEPS:], season).items():
                    bound = float(np.max(np.abs(earlier[:j])))
                    priors.setdefault(key, []).append(
                        (float(np.clip(value, -bound, bound)), earlier[j])
                    )
            base = np.abs(actual[-args.scored :]).mean()
            row = {"set": set_name, "series": name}
            for key, said in policies.items():
                said = np.array(said)
                raw = np.abs(actual - said)[-args.scored :].mean()
                record = list(zip(said, actual))
                w = np.zeros(len(record))
                for i, (c, _) in enumerate(record):  # the prior the record still holds
                    prior = priors.get(key, [])[max(0, i + len(earlier) - RECORD_STEPS - 1) :]
                    w[i] = guard.next_weight(record[:i], c, prior=prior, given=w[:i])
                guarded = np.abs(actual - w * said)[-args.scored :].mean()
                row[key] = raw / base
                row[key + "+guard"] = guarded / base
            rows.append(row)
    table = pd.DataFrame(rows).set_index(["set", "series"])
    means = table.groupby(level="set").mean()
    means.index = pd.MultiIndex.from_tuples([(s, "mean") for s in means.index])
    table = pd.concat([table, means]).sort_index()
    table.index.names = ["set", "series"]
    pd.set_option("display.width", 200)
    if args.markdown:
        print(table.reset_index().round(3).to_markdown(index=False))
    else:
        print(table.round(3).to_string())


if __name__ == "__main__":
    main()
