"""Does the model answer by the Rules line of its memory? A probe of the classifier's answer.

The learning benchmark found the 1.5B model's classifier memory holding the rule its facts
suggest ("Rules: Answer down when month is 1, 8, 9, 10; otherwise up") while its label scores
ignored it (P(up) 0.27-0.36 at every month). This probe isolates that last link: at each of the
last ``--rows`` rows of an up/down task (``llmrnn.datasets.updown_task``), the memory holds
exactly the rule ``tasks.one_feature_rule`` computes from the ``--history`` rows before it
(the rule the facts would suggest; its Rules line in the memory's own words), and the model
answers the row through the classifier's real prompt. Each answer is compared with the rule's
own answer (``tasks.answer_by_rule``) and with the truth.

Ways to answer (``--ways``):

- ``score``: the shipped answer, every label scored from the logits right after the prompt.
- ``check``: the model first writes one short line that checks the row against its Rules
  (``prompts.LABEL_CHECK``, the shipped ``check_tokens``), then the labels are scored after it.
- ``check_both``: the same, with every branch of the rule named in the Rules line ("down when
  month is 1, 8 or 9; up when month is any other value"), a wording not shipped.
- ``check_table``: the same, with the rule written as a lookup table, each label right after
  its condition (:func:`as_table`).
- ``check_or`` / ``check_oneof``: the shipped check, with a rule's list of values written
  "1, 8, 9 or 10" / "one of 1, 8, 9, 10" (:func:`as_list`; splits unchanged).
- ``check_code``: the shipped check, with the rule written as the Python expression a coder
  model reads every day ("down if month in (1, 3, 8, 9, 10) else up"; "down if change_1 > 0
  else up"; :func:`as_code`), a wording tried against the shipped one.
- ``check_quote``: the check line is preceded by the Rules line quoted in the answer ("My
  Rules: Answer down when ..."), so the rule stands right before the model reads the row.
- ``check_value``: as ``check_quote``, and the check line starts with the row's value of the
  feature the Rules name ("this row's month is 9"), copied by code; the model goes on from it.

``--rescore`` scores the labels of stored check lines again after other words than the
shipped "So the label is:" (:data:`SUFFIXES`), without generating the lines again.

airline is the dev task; elnino the learning benchmark's held-out one; the others were not
used to choose anything. Run ``python benchmarks/apply_rule_probe.py --model qwen-1.5b``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import series as benchmark_series  # noqa: E402
from learning import model_file  # noqa: E402

TASKS = ("airline", "elnino", "co2", "unemp", "nile", "infl")
LABELS = ("down", "up")
CHECK_TOKENS = 48
OUT = Path(__file__).resolve().parent / "results" / "apply_rule"
EMPTY = "Patterns: none yet.\nMistakes: none yet."  # the memory's other lines


def both_branches(rule: dict) -> str:
    """The rule with every branch named ("down when month is 1, 8 or 9; up when month is any
    other value"), a wording tried against the shipped one (``--ways check,check_both``)."""
    name = rule["feature"]
    if "cut" in rule:
        cut = f"{rule['cut']:g}"
        low = f"{rule['otherwise']} when {name} is {cut} or below"
        return f"{rule['above']} when {name} is above {cut}; {low}"
    groups: dict[str, list[str]] = {}
    for value, label in rule["values"].items():
        groups.setdefault(label, []).append(value)
    parts = [
        f"{label} when {name} is " + (", ".join(v[:-1]) + " or " + v[-1] if len(v) > 1 else v[0])
        for label, v in groups.items()
    ]
    return "; ".join(parts) + f"; {rule['otherwise']} when {name} is any other value"


def as_table(rule: dict) -> str:
    """The rule as a lookup table, each label right after its condition ("by month: month is 1
    -> down; month is 8 -> down; any other month -> up"; "by change_1: change_1 is above 0 ->
    down; change_1 is 0 or below -> up"), a wording tried against the shipped one (``--ways
    check,check_table``).

    Why: the check line writes "the month is 10" or "change_1 (42) is above 0", and the 1.5B
    model's misreads were where the shipped wording follows those words with the other label
    ("down when month is 1, 8, 9, 10; otherwise up": months 9 and 10 read as not in the
    list; "down when change_1 is above 0; otherwise up": answered up). Here the words are
    followed by their own label.
    """
    name = rule["feature"]
    if "cut" in rule:
        cut = f"{rule['cut']:g}"
        return (
            f"by {name}: {name} is above {cut} -> {rule['above']}; "
            f"{name} is {cut} or below -> {rule['otherwise']}"
        )
    entries = [f"{name} is {value} -> {label}" for value, label in rule["values"].items()]
    return f"by {name}: " + "; ".join(entries) + f"; any other {name} -> {rule['otherwise']}"


def as_list(rule: dict, how: str) -> str:
    """The rule with its list of values written another way (a split as shipped): ``or``
    ("down when month is 1, 8, 9 or 10; otherwise up") or ``oneof`` ("down when month is one
    of 1, 8, 9, 10; otherwise up"), wordings tried against the shipped one."""
    if "cut" in rule:
        return rule["text"]
    groups: dict[str, list[str]] = {}
    for value, label in rule["values"].items():
        groups.setdefault(label, []).append(value)
    parts = []
    for label, values in groups.items():
        if how == "or":
            said = ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]
        else:
            said = "one of " + ", ".join(values) if len(values) > 1 else values[0]
        parts.append(f"{label} when {rule['feature']} is {said}")
    return "; ".join(parts) + f"; otherwise {rule['otherwise']}"


def as_code(rule: dict) -> str:
    """The rule as a Python conditional expression ("down if month in (1, 3, 8, 9, 10) else
    up"; "down if change_1 > 0 else up"), a wording tried against the shipped one (``--ways
    check,check_code``).

    Why: the models benchmarked are Qwen2.5-*Coder*; a membership test written as code might be
    read as code is, where the shipped sentence had months 9 and 10 read as outside "1, 3, 8, 9,
    10".
    """
    name = rule["feature"]
    if "cut" in rule:
        return f"{rule['above']} if {name} > {rule['cut']:g} else {rule['otherwise']}"
    groups: dict[str, list[str]] = {}
    for value, label in rule["values"].items():
        groups.setdefault(label, []).append(value)
    parts = [f"{label} if {name} in ({', '.join(v)}) else" for label, v in groups.items()]
    return " ".join(parts) + f" {rule['otherwise']}"


def memory_with(rule: dict | None, majority: str, wording: str = "shipped") -> str:
    """A memory whose Rules line holds the rule the facts would suggest, as the model copies it."""
    from llmrnn import prompts

    said = rule["text"] if rule else majority
    if rule and wording == "both":
        said = both_branches(rule)
    if rule and wording == "table":
        said = as_table(rule)
    if rule and wording == "code":
        said = as_code(rule)
    if rule and wording in ("or", "oneof"):
        said = as_list(rule, wording)
    return f"{EMPTY}\nRules: {prompts.LABEL_WORDS['rule']} {said}."


def quoted_check(loop, state, row, prompt: str, rule: dict | None, way: str) -> tuple[str, str]:
    """``check_quote`` / ``check_value``: the Rules line quoted before the check line (and the
    row's value of the rule's feature starting it); returns the prompt to score, the line."""
    from llmrnn import prompts
    from llmrnn.tasks import _short

    rules = state.memory.rsplit("Rules: ", 1)[-1]
    lead = ""
    if way == "check_value" and rule is not None:
        lead = f" this row's {rule['feature']} is {_short(row[rule['column']])},"
    head = prompt + f"My Rules: {rules}\n" + prompts.LABEL_CHECK + lead
    done = loop.backend.complete(head, max_tokens=CHECK_TOKENS, temperature=0.0, stop=("\n",))
    line = " ".join(done.text.split())
    return head + " " + line + prompts.LABEL_CHECK_ANSWER, lead + " " + line


def answer(loop, state, row, way: str, rule: dict | None = None) -> tuple[np.ndarray, str]:
    """P(labels) for ``row`` through the classifier's prompt, answered the ``way`` named."""
    from llmrnn import lockstep

    msgs, _, _ = loop.messages(state, row, 1)
    prompt = loop.backend.render(msgs)
    if way in ("check_quote", "check_value"):
        prompt, note = quoted_check(loop, state, row, prompt, rule, way)
    elif way == "check":
        gen = loop._check_gen(prompt, row, 0, state.memory)
        prompt, check, _ = lockstep.run(loop.backend, [gen])[0][0]
        note = check.text if check is not None else ""  # no check while Rules is "none yet."
    else:
        note = ""
    logprobs, _ = loop.backend.score(prompt, LABELS)
    weights = np.exp(logprobs - logprobs.max())
    return weights / weights.sum(), note


def setup(model: str, name: str) -> tuple:
    """The up/down task of series ``name`` and a classifier recurrence on ``model``: the
    features, the labels, the rows as tuples, the recurrence."""
    from llmrnn.backends import make_backend
    from llmrnn.datasets import updown_task
    from llmrnn.recurrence import LoopConfig, Recurrence
    from llmrnn.tasks import LabelTask

    y, description, _ = benchmark_series.load(name)
    X, labels = updown_task(y)
    task = LabelTask.build(
        np.array(LABELS),
        list(X.columns),
        description=f"Will this series go up or down next step? The series: {description}.",
    )
    backend = make_backend(model_file(model), context_tokens=4096)
    loop = Recurrence(backend, task, LoopConfig(memory_words=60, check_tokens=CHECK_TOKENS))
    return X, labels, [tuple(r) for r in X.itertuples(index=False)], loop


#: What follows a check line before the labels are scored (``--rescore``): "A" is shipped
#: (``prompts.LABEL_CHECK_ANSWER``); ``{rules}`` is the memory's Rules line.
SUFFIXES = {
    "A": "\nSo the label is: ",
    "B": "\nSo, following my Rules exactly, the label is: ",
    "C": "\nMy Rules give this row the label: ",
    "F": "\nMy Rules say: {rules} So for this row the label is: ",
}


def rescore(model: str, name: str, stored: list[dict]) -> list[dict]:
    """The stored check lines of ``check``, ``check_quote`` and ``check_value`` rows, the
    labels scored again after each of :data:`SUFFIXES` (no generation: the line is kept)."""
    from llmrnn import prompts
    from llmrnn.recurrence import State

    _, _, table, loop = setup(model, name)
    out = []
    for r in stored:
        if r["way"] not in ("check", "check_quote", "check_value"):
            continue
        msgs, _, _ = loop.messages(State(memory=f"{EMPTY}\nRules: {r['rule']}"), table[r["row"]], 1)
        line = " ".join(r["note"].split())
        head = loop.backend.render(msgs)
        if r["way"] != "check":
            head += f"My Rules: {r['rule']}\n" + prompts.LABEL_CHECK + r["note"].rstrip()
        elif line:
            head += prompts.LABEL_CHECK + " " + line
        for key, suffix in SUFFIXES.items():
            blank = r["way"] == "check" and not line  # no check line: scored at once
            logprobs, _ = loop.backend.score(
                head + ("" if blank else suffix.format(rules=r["rule"])), LABELS
            )
            said = LABELS[int(np.argmax(logprobs))]
            out.append({**r, "suffix": key, "said": said})
    return out


def probe(model: str, name: str, rows: int, history: int, ways: list[str]) -> list[dict]:
    """One row per (online row, way): the rule's answer, the model's, the truth, P(labels)."""
    from llmrnn.recurrence import State
    from llmrnn.tasks import answer_by_rule, one_feature_rule

    X, labels, table, loop = setup(model, name)
    truth = np.array([LABELS.index(v) for v in labels])
    out = []
    start = len(X) - rows - history
    for i in range(len(X) - rows, len(X)):
        rule = one_feature_rule(table[start:i], truth[start:i], list(X.columns), LABELS)
        majority = LABELS[int(np.argmax(np.bincount(truth[start:i], minlength=2)))]
        by_rule = answer_by_rule(rule, table[i]) if rule else majority
        for way in ways:
            wording = way.partition("_")[2] or "shipped"  # check_both, check_table
            state = State(memory=memory_with(rule, majority, wording))
            quoted = way in ("check_quote", "check_value")
            began = time.perf_counter()
            p, note = answer(loop, state, table[i], way if quoted else way.partition("_")[0], rule)
            out.append(
                {
                    "task": name,
                    "row": i,
                    "way": way,
                    "rule": state.memory.rsplit("Rules: ", 1)[-1],
                    "by_rule": by_rule,
                    "said": LABELS[int(np.argmax(p))],
                    "truth": labels[i],
                    "p_up": float(p[1]),
                    "note": note,
                    "seconds": time.perf_counter() - began,
                }
            )
    return out


def rescore_main(args: argparse.Namespace) -> None:
    """``--rescore``: each task's stored check lines (the newest run that has them) scored
    again after every suffix; saved under ``apply_rule/rescore``, summarised."""
    folder = OUT / "rescore"
    folder.mkdir(exist_ok=True)
    for name in args.tasks.split(","):
        path = folder / f"{args.model}__{name}.json"
        if path.exists():
            continue
        runs = [OUT / f"{args.model}__{name}{tag}.json" for tag in RESCORE_SOURCES]
        source = next((run for run in runs if run.exists()), None)
        if source is None:
            continue
        path.write_text(json.dumps(rescore(args.model, name, json.loads(source.read_text()))))
    frame = pd.concat(pd.DataFrame(json.loads(p.read_text())) for p in sorted(folder.glob("*")))
    hits = frame.assign(follows=frame["said"] == frame["by_rule"])
    table = hits.pivot_table("follows", ["task", "way"], "suffix", sort=False)
    print(table.round(3).to_markdown() if args.markdown else table.round(3).to_string())


#: The stored runs ``--rescore`` reads check lines from, first found first.
RESCORE_SOURCES = ("__check+check_quote+check_value", "", "__check+check_both")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen-1.5b")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--ways", default="score,check")
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--history", type=int, default=6)
    parser.add_argument("--report", action="store_true", help="summarise the saved runs only")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score the stored check lines' labels again after each of SUFFIXES",
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.rescore:
        return rescore_main(args)
    if not args.report:
        for name in args.tasks.split(","):
            tag = "" if args.ways == "score,check" else "__" + args.ways.replace(",", "+")
            path = OUT / f"{args.model}__{name}{tag}.json"
            if path.exists():
                continue
            rows = probe(args.model, name, args.rows, args.history, args.ways.split(","))
            path.write_text(json.dumps(rows, indent=1))
            frame = pd.DataFrame(rows)
            for way, part in frame.groupby("way"):
                print(
                    f"{args.model} {name:8} {way:6} follows rule "
                    f"{(part['said'] == part['by_rule']).mean():.3f} acc "
                    f"{(part['said'] == part['truth']).mean():.3f} rule acc "
                    f"{(part['by_rule'] == part['truth']).mean():.3f} s/row "
                    f"{part['seconds'].mean():.2f}",
                    flush=True,
                )
    frames = [
        pd.DataFrame(json.loads(p.read_text())).assign(model=p.stem.split("__")[0])
        for p in sorted(OUT.glob("*.json"))
    ]
    if not frames:
        return
    frame = pd.concat(frames)
    summary = frame.groupby(["model", "task", "way"], sort=False).apply(
        lambda part: pd.Series(
            {
                "follows rule": (part["said"] == part["by_rule"]).mean(),
                "Acc@1": (part["said"] == part["truth"]).mean(),
                "rule's Acc@1": (part["by_rule"] == part["truth"]).mean(),
                "s/row": part["seconds"].mean(),
            }
        )
    )
    if args.markdown:
        print(summary.round(3).to_markdown())
    else:
        print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
