"""A deterministic stand-in for a language model, for the conformance suites only.

sktime's and scikit-learn's estimator checks make hundreds of fits and predictions; with a real
model they would take hours. This backend answers instantly and deterministically, and every
answer still goes through the real prompt assembly, grammar validation, parsing and memory code.
It knows nothing about forecasting: it reads the grammar it is given.

- Under a numbers grammar it repeats the last number of the prompt's final ``<data>`` block (a
  change of ``+0.0`` under a signed grammar), plus seeded noise when ``temperature > 0``.
- Without a grammar it writes a short note that quotes the prompt's last line.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from ..grammar import validate_gbnf
from ..models import STAND_IN
from .base import Completion, Message, render_plain

__all__ = ["StandInBackend"]

_WORD = re.compile(r"\w+|[^\w\s]")
_NUMBER = re.compile(r"[-+]?\d+\.\d+")


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


class StandInBackend:
    """Deterministic answers through the real prompt and parsing code (see module docstring)."""

    model_path = STAND_IN

    def __init__(self, n_ctx: int = 4096) -> None:
        self.n_ctx = n_ctx
        self._previous = ""
        self.calls = 0

    def render(self, messages: Sequence[Message]) -> str:
        return render_plain(messages)

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text)) + 1

    def _numbers(self, prompt: str, grammar: str, temperature: float, seed: int) -> str:
        count = grammar.splitlines()[0].count("num")
        signed = "[-+]" in grammar
        data = prompt.rsplit("<data>", 1)[-1]
        found = [float(x) for x in _NUMBER.findall(data.split("</data>")[0])]
        base = 0.0 if signed or not found else found[-1]
        rng = np.random.default_rng([seed, _digest(prompt) % 2**32])
        spread = max(abs(base) * 0.05, 1.0) if temperature > 0 else 0.0
        values = base + rng.normal(0.0, 1.0, count) * spread
        return ", ".join(f"{v:+.1f}" if signed else f"{v:.1f}" for v in values)

    def score(self, prompt: str, options: Sequence[str]) -> tuple[np.ndarray, Completion]:
        """Deterministic pseudo log-probabilities from a hash of the prompt and each option."""
        start = time.perf_counter()
        logits = np.array([(_digest(prompt + "\x00" + o) % 1000) / 250.0 for o in options])
        logprobs = logits - np.log(np.exp(logits).sum())
        done = self.complete(prompt, max_tokens=1)  # cache accounting, as for a generation
        best = options[int(np.argmax(logprobs))]
        return logprobs, replace(
            done, text=best, generated_tokens=0, seconds=time.perf_counter() - start
        )

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int,
        grammar: str | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        stop: Sequence[str] = (),
        repeat_penalty: float = 1.0,
        halt: Callable[[str], bool] | None = None,
    ) -> Completion:
        start = time.perf_counter()
        self.calls += 1
        if grammar is not None:  # every grammar the recurrence writes is one of numbers
            text = self._numbers(prompt, validate_gbnf(grammar), temperature, seed)
        else:
            last = prompt.strip().splitlines()[-2] if "\n" in prompt.strip() else prompt
            text = f"Stand-in note {_digest(prompt) % 1000:03d}: {last[:120]}"
        words = text.split()
        truncated = len(words) > max_tokens
        text = " ".join(words[:max_tokens]) if truncated else text
        cached = len(os.path.commonprefix([self._previous, prompt]))
        total = self.count_tokens(prompt)
        cached_tokens = min(total - 1, self.count_tokens(prompt[:cached]) - 1) if cached else 0
        self._previous = prompt
        return Completion(
            text=text,
            prompt_tokens=total - cached_tokens,
            cached_tokens=cached_tokens,
            generated_tokens=self.count_tokens(text) - 1,
            seconds=time.perf_counter() - start,
            truncated=truncated,
        )

    def begin_batch(self, exact: bool = True) -> None:  # noqa: ARG002 - the backends' signature
        """A lockstep run starts (nothing to reset: the stand-in holds no cache, and its
        answers never depend on batching)."""

    def complete_batch(
        self, calls: Sequence[Any], keys: Sequence[Any] | None = None
    ) -> list[Completion]:
        """Several continuations (``lockstep.Generate`` calls), one after another: the stand-in
        has nothing to gain from batching, but the recurrence's batched path runs on it."""
        return [self.complete(**asdict(call)) for call in calls]

    def score_batch(
        self, calls: Sequence[Any], keys: Sequence[Any] | None = None
    ) -> list[tuple[np.ndarray, Completion]]:
        """Several ``lockstep.Score`` calls, one after another (see :meth:`complete_batch`)."""
        return [self.score(call.prompt, call.options) for call in calls]
