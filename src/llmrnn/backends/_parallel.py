"""Seeded samples of one prompt, generated side by side (``LlamaCppBackend.complete_many``).

The prompt is evaluated once on a second context of the shared model and shared by every
sequence in its KV cache; each decode then advances every unfinished sample by one token, each
sample with its own sampler chain (grammar, top-k 40, top-p 0.95, min-p 0.05, temperature, its
seed): the chain llama-cpp-python builds for one completion. 20 samples of 12 horizons took
13.7 s instead of 28.5 s one after another on 2 CPU cores (docs/decisions.md). A sample is a
function of the prompt, its seed and the number of samples.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ._llama_private import SideContext
from ._model_cache import SharedModel
from .base import Completion

__all__ = ["sample_side_by_side"]


def _side_context(shared: SharedModel, needed: int, sequences: int) -> SideContext:
    """The shared model's second context, (re)created when too small; kept for the next call."""
    side = shared.parallel
    if side is None or side.n_ctx < needed or side.n_seq_max < sequences:
        if side is not None:
            side.close()
        side = shared.parallel = SideContext(
            shared.llama,
            n_ctx=-(-needed // 256) * 256,  # room to grow before the next re-creation
            n_seq_max=max(sequences, 20),
        )
    return side


def sample_side_by_side(
    shared: SharedModel,
    tokens: list[int],
    seeds: Sequence[int],
    *,
    max_tokens: int,
    grammar: Any,
    temperature: float,
) -> list[Completion]:
    """One sampled continuation of ``tokens`` per seed, at most llama.cpp's sequence limit.

    Parameters
    ----------
    shared : SharedModel
        The model; the caller holds its lock.
    tokens : list of int
        The prompt, tokenized.
    seeds : sequence of int
        One sample per seed.
    max_tokens : int
        Most tokens generated per sample.
    grammar : llama_cpp.LlamaGrammar or None
        A compiled grammar every sample follows.
    temperature : float
        Sampling temperature.

    Returns
    -------
    list of Completion
        In the order of ``seeds``; the first counts the prompt as evaluated, the others as
        cached. ``seconds`` is the wall time shared out equally.
    """
    llama, n = shared.llama, len(seeds)
    side = _side_context(shared, len(tokens) + n * max_tokens, n)
    start = time.perf_counter()
    samplers: list[Any] = []
    try:
        last = side.evaluate_prompt(tokens, n)  # the prompt's last row: every sample's first
        samplers = [side.sampler(grammar, temperature, seed) for seed in seeds]
        outputs: list[list[int]] = [[] for _ in seeds]
        finished = [False] * n
        rows = [last] * n  # where each sample's next logits are in the last batch
        for step in range(max_tokens):
            active = [i for i in range(n) if not finished[i]]
            for i in active:
                token = samplers[i].sample(rows[i])
                if side.is_end(token):
                    finished[i] = True
                else:
                    outputs[i].append(token)
            active = [i for i in active if not finished[i]]
            if not active or step == max_tokens - 1:
                break
            placed = side.advance([(outputs[i][-1], len(tokens) + step, i) for i in active])
            for i, row in zip(active, placed):
                rows[i] = row
    finally:
        for sampler in samplers:
            sampler.close()
    seconds = (time.perf_counter() - start) / n
    return [
        Completion(
            text=llama.detokenize(out).decode("utf-8", errors="ignore"),
            prompt_tokens=len(tokens) if i == 0 else 0,
            cached_tokens=0 if i == 0 else len(tokens),
            generated_tokens=len(out) + int(finished[i]),
            seconds=seconds,
            truncated=not finished[i],
        )
        for i, out in enumerate(outputs)
    ]
