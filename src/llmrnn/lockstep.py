"""Many recurrences on one model, in lockstep: every phase's calls decoded together.

A recurrent step is written once, as a generator (``Recurrence.step_gen``) that yields the
model calls it needs (:class:`Generate`, :class:`Score`) and receives their results. :func:`run`
drives any number of such generators side by side: each round collects the pending call of
every generator and hands them to the backend at once (``complete_batch`` / ``score_batch``,
one llama.cpp sequence per call, decoded together), or one after another when the backend has
no batch method. One series is the batch of one: the same code, the same calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Generate", "Score", "run"]


@dataclass(frozen=True)
class Generate:
    """A call for a continuation of ``prompt`` (see ``Backend.complete`` for the fields)."""

    prompt: str
    max_tokens: int
    grammar: str | None = None
    temperature: float = 0.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    repeat_penalty: float = 1.0
    halt: Callable[[str], bool] | None = None


@dataclass(frozen=True)
class Score:
    """A call for the log-probability of each option as the answer to ``prompt``."""

    prompt: str
    options: tuple[str, ...]


Step = Generator[Any, Any, Any]


def _serve(backend: Any, calls: list[Any], keys: list[int]) -> list[Any]:
    """The results of ``calls`` (all of one kind), batched when the backend can.

    ``keys`` name the generator each call serves, so a backend can give each its own KV
    sequence for the whole run (its next prompt then reuses what the sequence holds).
    """
    if isinstance(calls[0], Generate):
        batch = getattr(backend, "complete_batch", None)
        if batch is not None and len(calls) > 1:
            return batch(calls, keys)
        return [backend.complete(**asdict(call)) for call in calls]
    batch = getattr(backend, "score_batch", None)
    if batch is not None and len(calls) > 1:
        return batch(calls, keys)
    return [backend.score(call.prompt, call.options) for call in calls]


def run(backend: Any, steps: Sequence[Step], *, exact: bool = True) -> list[tuple[Any, float]]:
    """Drive ``steps`` to their end in lockstep; return each one's value and its seconds.

    Each round serves every pending call at once; its wall time is shared equally by the
    generators it served, so a step's seconds are its share of the model's time (for one
    generator, simply its wall time).

    Parameters
    ----------
    backend : Backend
        The model every generator calls.
    steps : sequence of generators
        Each yields :class:`Generate` or :class:`Score` calls and returns a value.
    exact : bool, default=True
        Every call gives what it gives alone (the backend's ``begin_batch``); False lets a
        backend trade that for speed on generated texts (a panel's steps, where issue 14
        accepts rare differences; they are counted by ``benchmarks/lockstep.py``).

    Returns
    -------
    list of (value, seconds)
        In the order of ``steps``.
    """
    values: list[Any] = [None] * len(steps)
    seconds = [0.0] * len(steps)
    pending: dict[int, Any] = {}

    def advance(i: int, result: Any) -> None:
        start = time.perf_counter()
        try:
            pending[i] = steps[i].send(result)
        except StopIteration as done:
            values[i] = done.value
            pending.pop(i, None)
        seconds[i] += time.perf_counter() - start

    if len(steps) > 1 and hasattr(backend, "begin_batch"):
        backend.begin_batch(exact=exact)  # a run's results depend on its own calls only
    for i in range(len(steps)):
        advance(i, None)
    while pending:
        for kind in (Generate, Score):
            ids = [i for i, call in pending.items() if isinstance(call, kind)]
            if not ids:
                continue
            start = time.perf_counter()
            results = _serve(backend, [pending[i] for i in ids], ids)
            share = (time.perf_counter() - start) / len(ids)
            for i, result in zip(ids, results):
                seconds[i] += share
                advance(i, result)
    return list(zip(values, seconds))
