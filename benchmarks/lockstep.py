"""Many series at once: a panel stepped in lockstep against the same panel one series at a time.

Usage::

    python benchmarks/lockstep.py panel --series 16 --steps 20   # the issue's goal, slow
    python benchmarks/lockstep.py panel --series 8 --steps 4     # a quick look
    python benchmarks/lockstep.py scaling --sizes 1,4,16,64      # s/series-step by batch size
    python benchmarks/lockstep.py proba --rows 200               # classifier predict_proba
    python benchmarks/lockstep.py profile --series 4             # where a step's time goes
    python benchmarks/lockstep.py donors --sizes 16,64,256       # the prefix-donor search

``panel`` fits ``LLMRNNForecaster`` on a panel (pd-multiindex) with ``batch_size=1`` (one
series at a time, the old broadcast's cost) and with ``batch_size=N`` (every series in one
lockstep batch), in one process one after the other, then updates both with the same test
points; it prints the wall time of each, their ratio, the MAE of each, and how many answers
differ (llama.cpp's arithmetic depends slightly on how tokens share a batch). ``scaling``
prints seconds per series-step and tokens per second for several batch sizes. ``proba`` times
``predict_proba`` over many rows batched against row by row (``--rule``: with a memory that
holds that Rules line, so a model that writes the rule check writes it); ``profile`` splits a
lockstep panel's wall time (cProfile) into llama.cpp's decoding, sampling, tokenizing, the
base forecaster's refits and the rest (Python); ``donors`` times the search for the lane to copy
a shared prefix from (``_lockstep._Donors``, sorted) against comparing with every lane, with
no model (900-token prompts sharing their first 150). Figures go to
``benchmarks/results/lockstep.md`` (appended, with the command) and the console.

The series: windows of sktime's airline data and other monthly series from sktime's loaders,
each rescaled by its own level, so every series of the panel is different.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "lockstep.md"


def quiet() -> None:
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")


def panel(n: int, length: int) -> pd.DataFrame:
    """``n`` different monthly series of ``length`` points as a pd-multiindex frame."""
    from sktime.datasets import load_airline

    y = load_airline().to_numpy(dtype=float)
    frames = []
    rng = np.random.default_rng(0)
    for i in range(n):
        start = (7 * i) % (len(y) - length)
        values = y[start : start + length] * (0.5 + rng.random()) + 10 * i
        index = pd.MultiIndex.from_product(
            [[f"s{i:03d}"], pd.period_range("2000-01", periods=length, freq="M")],
            names=["series", "time"],
        )
        frames.append(pd.DataFrame({"y": values}, index=index))
    return pd.concat(frames)


def forecaster(batch_size: int, fit_steps: int, model: str | None):
    from llmrnn import LLMRNNForecaster

    return LLMRNNForecaster(
        model=model,
        window=12,
        fit_steps=fit_steps,
        memory_words=60,
        batch_size=batch_size,
    )


def run_panel(y: pd.DataFrame, steps: int, fit_steps: int, batch_size: int, model) -> dict:
    """Fit on all but the last ``steps`` points of each series, then update with them."""
    times = y.index.get_level_values(-1).unique().sort_values()
    train = y[y.index.get_level_values(-1).isin(times[:-steps])]
    test = y[y.index.get_level_values(-1).isin(times[-steps:])]
    f = forecaster(batch_size, fit_steps, model)
    start = time.perf_counter()
    f.fit(train)
    f.update(test)
    seconds = time.perf_counter() - start
    trace = f.get_trace()
    scored = trace.groupby("series").tail(steps)
    tokens = trace[["prompt_tokens", "cached_tokens", "generated_tokens"]].sum()
    return {
        "seconds": seconds,
        "mae": float(scored["error"].mean()),
        "answers": trace["answer"].tolist(),
        "memories": f.memory_.tolist(),
        "series_steps": len(trace),
        "tokens": tokens.to_dict(),
    }


def model_label(model: str | None) -> str:
    """The model as the results name it: a path as given, the embedded one with its file."""
    if model:
        return model
    from llmrnn.backends._embedded_copy import loaded_file
    from llmrnn.models import resolve_model

    return f"embedded ({os.path.basename(loaded_file(resolve_model(None)))})"


def machine() -> str:
    from llmrnn.backends.llama_cpp import available_threads, gpu_offload_supported

    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {available_threads()} threads used; "
        f"GPU offload: {gpu_offload_supported()}"
    )


def write(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("a") as handle:
        handle.write(text + "\n")


def cmd_panel(args: argparse.Namespace) -> None:
    quiet()
    y = panel(args.series, args.length)
    one = run_panel(y, args.steps, args.fit_steps, 1, args.model)
    lock = run_panel(y, args.steps, args.fit_steps, args.series, args.model)
    differ = sum(a != b for a, b in zip(one["answers"], lock["answers"]))
    total = one["series_steps"]
    write(
        [
            f"## panel: {args.series} series x ({args.fit_steps} fit + {args.steps} update) steps",
            "",
            f"Command: `python benchmarks/lockstep.py panel --series {args.series} "
            f"--steps {args.steps} --fit-steps {args.fit_steps}`; machine: {machine()}; "
            f"model: {model_label(args.model)}.",
            "",
            "| run | seconds | s/series-step | MAE (update steps) |",
            "|---|---|---|---|",
            f"| one series at a time (batch_size=1) | {one['seconds']:.1f} | "
            f"{one['seconds'] / total:.2f} | {one['mae']:.3f} |",
            f"| lockstep (batch_size={args.series}) | {lock['seconds']:.1f} | "
            f"{lock['seconds'] / total:.2f} | {lock['mae']:.3f} |",
            "",
            f"Speed-up: {one['seconds'] / lock['seconds']:.2f}x (goal >= 2x); MAE ratio "
            f"lockstep / one at a time: {lock['mae'] / one['mae']:.3f} (goal within 2%); "
            f"answers that differ: {differ} of {total}; memories that differ at the end: "
            f"{sum(a != b for a, b in zip(one['memories'], lock['memories']))} of {args.series}.",
            "",
            "Tokens per series-step (evaluated / reused / generated): one at a time "
            f"{per_step(one)}, lockstep {per_step(lock)}.",
        ]
    )


def per_step(got: dict) -> str:
    """A run's prompt tokens evaluated and reused, and tokens generated, per series-step."""
    tok, n = got["tokens"], got["series_steps"]
    return " / ".join(
        f"{tok[k] / n:.0f}" for k in ("prompt_tokens", "cached_tokens", "generated_tokens")
    )


def cmd_scaling(args: argparse.Namespace) -> None:
    quiet()
    rows = [
        f"## scaling: {args.steps} update steps after {args.fit_steps} fit steps",
        "",
        f"Command: `python benchmarks/lockstep.py scaling --sizes {args.sizes}`; machine: "
        f"{machine()}; model: {model_label(args.model)}.",
        "",
        "| series per batch | seconds | s/series-step | tokens/s (evaluated + generated) |",
        "|---|---|---|---|",
    ]
    for size in [int(s) for s in args.sizes.split(",")]:
        y = panel(size, args.length)
        got = run_panel(y, args.steps, args.fit_steps, size, args.model)
        tok = got["tokens"]["prompt_tokens"] + got["tokens"]["generated_tokens"]
        rows.append(
            f"| {size} | {got['seconds']:.1f} | {got['seconds'] / got['series_steps']:.2f} | "
            f"{tok / got['seconds']:.0f} |"
        )
        print(rows[-1], flush=True)
    write(rows)


@contextlib.contextmanager
def counting(totals: dict):
    """Sum the prompt tokens evaluated and the tokens generated, by kind of call
    (``Generate``: the rule check's line; ``Score``: the labels), while the block runs."""
    import llmrnn.lockstep as ls

    serve = ls._serve

    def counted(backend, calls, keys):
        results = serve(backend, calls, keys)
        kind = type(calls[0]).__name__
        done = [r if kind == "Generate" else r[1] for r in results]
        evaluated, generated = totals.get(kind, (0, 0))
        totals[kind] = (
            evaluated + sum(c.prompt_tokens for c in done),
            generated + sum(c.generated_tokens for c in done),
        )
        return results

    ls._serve = counted
    try:
        yield totals
    finally:
        ls._serve = serve


def cmd_proba(args: argparse.Namespace) -> None:
    quiet()
    from llmrnn import LLMRNNClassifier
    from llmrnn.datasets import updown_task

    X, y = updown_task()
    if args.rule:  # a memory that holds this rule, as after a run: no recurrent step in fit
        clf = LLMRNNClassifier(model=args.model, initial_memory=args.rule, fit_steps=0)
    else:
        clf = LLMRNNClassifier(model=args.model, memory_words=40, fit_steps=4)
    clf.fit(X[:6], y[:6])
    rows = pd.concat([X.iloc[12:]] * (1 + args.rows // len(X))).iloc[: args.rows]
    start = time.perf_counter()
    with counting({}) as totals:
        batched = clf.predict_proba(rows)  # 16 rows side by side per lockstep round
    t_batch = time.perf_counter() - start
    start = time.perf_counter()
    # the same prompts, scored one at a time on the main context
    single = clf._loop().probabilities(
        clf._loop_state, list(clf._validate(rows, reset=False)), batch=1
    )
    t_one = time.perf_counter() - start
    diff = float(np.abs(batched - single).max())
    per_row = "; ".join(
        f"{kind}: {evaluated / len(rows):.0f} evaluated, {generated / len(rows):.1f} generated"
        for kind, (evaluated, generated) in totals.items()
    )
    write(
        [
            f"## predict_proba over {args.rows} rows",
            "",
            f"Command: `python benchmarks/lockstep.py proba --rows {args.rows}"
            f"{f' --model {args.model}' if args.model else ''}"
            f"{f' --rule {chr(34)}{args.rule}{chr(34)}' if args.rule else ''}`; machine: "
            f"{machine()}; "
            f"model: {model_label(args.model)}.",
            "",
            f"Row by row {t_one:.1f} s, batched {t_batch:.1f} s: {t_one / t_batch:.2f}x "
            f"(goal >= 2x); largest probability difference {diff:.2e} (goal <= 1e-3).",
            "Tokens a row, batched (Generate: the rule check's line; Score: the labels): "
            f"{per_row}.",
        ]
    )


#: Where a step's time goes: (label, file suffix, function name); cumulative times, none of
#: these calls inside another.
PARTS = (
    ("llama.cpp decode (prompt evaluation and generation)", "llama_cpp/_internals.py", "decode"),
    ("sampling (lanes)", "llmrnn/backends/_llama_private.py", "sample"),
    ("sampling (main context)", "llama_cpp/llama.py", "sample"),
    ("tokenize", "llama_cpp/llama.py", "tokenize"),
    ("detokenize", "llama_cpp/llama.py", "detokenize"),
    ("the base forecaster's refit and forecast", "llmrnn/_tracks.py", "base_forecasts"),
    ("grammar compilation", "llmrnn/backends/llama_cpp.py", "_grammar"),
)


def cmd_profile(args: argparse.Namespace) -> None:
    """Where a lockstep panel's wall time goes (cProfile), after a warm-up that loads the model."""
    import cProfile
    import pstats

    quiet()
    run_panel(panel(2, args.length), 1, 1, 2, args.model)  # load the model, warm the caches
    y = panel(args.series, args.length)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    got = run_panel(y, args.steps, args.fit_steps, args.series, args.model)
    profiler.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    steps = got["series_steps"]
    rows = [
        f"## profile: {args.series} series x ({args.fit_steps} fit + {args.steps} update) "
        "steps in lockstep",
        "",
        f"Command: `python benchmarks/lockstep.py profile --series {args.series} --steps "
        f"{args.steps} --fit-steps {args.fit_steps}`; machine: {machine()}; model: "
        f"{model_label(args.model)}. Wall {wall:.1f} s under cProfile, {steps} series-steps; "
        f"tokens per series-step: {got['tokens']['prompt_tokens'] / steps:.0f} evaluated, "
        f"{got['tokens']['cached_tokens'] / steps:.0f} reused, "
        f"{got['tokens']['generated_tokens'] / steps:.0f} generated.",
        "",
        "| part | seconds | s/series-step | share |",
        "|---|---|---|---|",
    ]
    counted = 0.0
    for label, suffix, name in PARTS:
        seconds = sum(
            ct
            for (file, _, func), (_, _, _, ct, _) in stats.items()
            if func == name and file.replace("\\", "/").endswith(suffix)
        )
        counted += seconds
        rows.append(f"| {label} | {seconds:.1f} | {seconds / steps:.3f} | {seconds / wall:.0%} |")
    rest = wall - counted
    rows.append(
        f"| everything else (Python: prompts, parsing, memory, trace, pandas) | {rest:.1f} | "
        f"{rest / steps:.3f} | {rest / wall:.0%} |"
    )
    write(rows)


def cmd_donors(args: argparse.Namespace) -> None:
    """Seconds a round of the donor search takes: sorted (shipped) against every lane."""
    import random

    from llmrnn.backends._lockstep import _common, _Donors

    def scan(held: list[list[int]], body: list[int], skip: set[int]) -> tuple[int | None, int]:
        found = [(-_common(h, body), i) for i, h in enumerate(held) if i not in skip]
        common, lane = min(found, default=(0, None))
        return lane, -common

    rng = random.Random(0)
    rows = [
        "| lanes | every lane (s/round) | sorted (s/round) | same lengths |",
        "|---|---|---|---|",
    ]
    for n in [int(v) for v in args.sizes.split(",")]:
        system = [rng.randrange(50_000) for _ in range(150)]
        held = [system + [rng.randrange(50_000) for _ in range(750)] for _ in range(n)]
        bodies = [system + [rng.randrange(50_000) for _ in range(750)] for _ in range(n)]
        start = time.perf_counter()
        slow = [scan(held, body, {lane}) for lane, body in enumerate(bodies)]
        t_scan = time.perf_counter() - start
        start = time.perf_counter()
        donors = _Donors(held)
        fast = []
        for lane, body in enumerate(bodies):
            fast.append(donors.best(body, {lane}))
            donors.set(lane, held[lane])  # what _prefill does after each lane (same tokens)
        t_sorted = time.perf_counter() - start
        same = [a[1] for a in slow] == [b[1] for b in fast]
        rows.append(f"| {n} | {t_scan:.3f} | {t_sorted:.3f} | {same} |")
        print(rows[-1], flush=True)
    write(
        [
            "## donor search: the lane to copy a shared prefix from",
            "",
            f"Command: `python benchmarks/lockstep.py donors --sizes {args.sizes}`; machine: "
            f"{machine()}; no model: 900-token prompts sharing their first 150 tokens.",
            "",
            *rows,
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    # the three panel commands: (first option, its default), steps, fit steps, series length
    panels = {
        "panel": (("--series", 16), 20, 2, 48),
        "scaling": (("--sizes", "1,4,16,64"), 2, 1, 40),
        "profile": (("--series", 4), 2, 1, 40),
    }
    for name, ((option, first), steps, fit_steps, length) in panels.items():
        p = sub.add_parser(name)
        p.add_argument(option, type=type(first), default=first)
        p.add_argument("--steps", type=int, default=steps)
        p.add_argument("--fit-steps", type=int, default=fit_steps)
        p.add_argument("--length", type=int, default=length)
        p.add_argument("--model", default=None)
    r = sub.add_parser("proba")
    r.add_argument("--rows", type=int, default=200)
    r.add_argument("--model", default=None)
    r.add_argument("--rule", default=None, help="score with a memory holding this Rules line")
    d = sub.add_parser("donors")
    d.add_argument("--sizes", default="16,64,256")
    args = parser.parse_args(argv)
    commands = {"panel": cmd_panel, "scaling": cmd_scaling, "profile": cmd_profile}
    commands["proba"] = cmd_proba
    commands["donors"] = cmd_donors
    commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
