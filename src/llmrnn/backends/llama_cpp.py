"""The llama.cpp backend (llama-cpp-python): a handle on a model shared by the whole process.

Why it looks like this:

- Estimators hold a small :class:`LlamaCppBackend` handle that is never pickled; the model it
  names is loaded once per process and shared (``_model_cache``), opened lazily on first use.
- The KV cache holds one sequence: the tokens of the previous call. The recurrence orders every
  prompt from what changes least to what changes most, so most prompt tokens come from the cache;
  this module measures how many did, per call.
- Every call's result is a function of its prompt alone, never of what the cache held before:
  llama.cpp's numbers depend slightly on how a prompt is split into batches, and a small model's
  greedy text can turn on that (a token evaluated alone, as generated tokens are, differs from
  the same token evaluated in a batch). So the cache is reused only up to a multiple of
  ``BLOCK`` tokens that was evaluated in batches starting on that grid and spanning whole
  blocks; the rest of the prompt but its last token is one batch, the last token is evaluated
  alone, and generated tokens are never reused. A fit in two threads, a fit after another
  estimator's, and a fit on a cold cache give the same text, token for token. The price: up to
  ``BLOCK`` tokens and the previous answer evaluated again per call (``benchmarks/speed.py``).
- Seeded samples of one prompt (``complete_many``, behind prediction intervals) run side by side
  on a second context (``_parallel``).
- Different prompts of a lockstep round (``llmrnn.lockstep``: one call per series of a panel,
  or per row of ``predict_proba``) are decoded together on a third context with one KV sequence
  per series (``complete_batch``, ``score_batch``; ``_lockstep``).
- What llama-cpp-python offers only through its private parts goes through ``_llama_private``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..grammar import validate_gbnf
from . import _llama_private as private
from . import _lockstep
from ._model_cache import (
    BLOCK,
    SharedModel,
    available_threads,
    gpu_offload_supported,
    load_count,
    shared_model,
    system_info,
)
from ._parallel import sample_side_by_side
from .base import BackendError, Completion, Message, log_softmax, render_plain

__all__ = [
    "LlamaCppBackend",
    "available_threads",
    "gpu_offload_supported",
    "load_count",
    "system_info",
]

_GRAMMARS: dict[str, Any] = {}  # validated and compiled grammars, by text


def _cached_prefix(llama: Any, tokens: list[int]) -> int:
    """Prompt tokens llama-cpp-python will take from the KV cache: its own rule, the longest
    common prefix with the tokens it holds, the prompt's last token always evaluated again."""
    return _lockstep._common(private.evaluated_tokens(llama), tokens[:-1])


def _prefill(shared: SharedModel, tokens: list[int]) -> int:
    """Evaluate all but the last prompt token in aligned blocks; return the tokens reused.

    Reuses the cache up to the last whole block shared with the previous prompt, so the cache
    afterwards holds exactly what a cold evaluation of ``tokens`` would have put there.
    """
    llama = shared.llama
    body = len(tokens) - 1
    start = min(_cached_prefix(llama, tokens), shared.clean) // BLOCK * BLOCK
    whole = max(start, body // BLOCK * BLOCK)
    private.rewind(llama, start)
    shared.clean = start
    if whole > start:  # whole blocks: batches that start on the grid and span whole blocks
        llama.eval(tokens[start:whole])
    shared.clean = whole
    if body > whole:  # the partial block, never reused
        llama.eval(tokens[whole:body])
    return start


class LlamaCppBackend:
    """A handle on a shared llama.cpp model.

    Parameters
    ----------
    model_path : str
        Path of a checked GGUF file.
    n_ctx : int
        Context size in tokens (the recurrence's budget ``context_tokens``).
    n_threads : int or None
        CPU threads; None uses every core this process may run on.
    n_gpu_layers : int or "auto"
        Layers to offload; "auto" offloads all when the build supports GPU offload, else none.
    """

    def __init__(
        self,
        model_path: str,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int | str = "auto",
    ) -> None:
        self.model_path = model_path
        if n_gpu_layers == "auto":
            n_gpu_layers = -1 if gpu_offload_supported() else 0
        self.n_gpu_layers = int(n_gpu_layers)
        self.n_threads = int(n_threads) if n_threads else available_threads()
        self.n_ctx = int(n_ctx)
        self._key = (model_path, self.n_ctx, self.n_gpu_layers, self.n_threads)
        self._exact = True  # the lanes' batches are the main context's (begin_batch)

    # The shared model is looked up on every use, never held by pickled state.
    @property
    def _shared(self) -> SharedModel:
        return shared_model(self._key)

    def render(self, messages: Sequence[Message]) -> str:
        """Render with the model's chat template, or as plain text for base models."""
        shared = self._shared
        if shared.formatter is None:
            return render_plain(messages)
        response = shared.formatter(
            messages=[{"role": m.role, "content": m.content} for m in messages]
        )
        return response.prompt

    def _tokens(self, text: str) -> list[int]:
        return self._shared.llama.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes as a prompt (beginning-of-sequence token included)."""
        shared = self._shared
        with shared.lock:
            return len(self._tokens(text))

    @staticmethod
    def _grammar(text: str):
        grammar = _GRAMMARS.get(text)
        if grammar is None:
            validate_gbnf(text)
            from llama_cpp import LlamaGrammar

            grammar = _GRAMMARS[text] = LlamaGrammar.from_string(text, verbose=False)
        return grammar

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
        """Continue ``prompt``; report evaluated, cached and generated tokens.

        Raises
        ------
        BackendError
            If the prompt does not fit the context or llama.cpp fails.
        """
        shared = self._shared
        compiled = self._grammar(grammar) if grammar else None
        with shared.lock:
            llama = shared.llama
            tokens = self._tokens(prompt)
            if len(tokens) + 1 >= self.n_ctx:
                raise BackendError(
                    f"The prompt has {len(tokens)} tokens but the context holds {self.n_ctx}: "
                    "raise context_tokens, or lower window or memory_words."
                )
            start = time.perf_counter()
            try:
                cached = _prefill(shared, tokens)
            except (ValueError, RuntimeError) as exc:
                raise BackendError(f"llama.cpp could not evaluate the prompt: {exc}") from exc
            options = dict(
                max_tokens=max_tokens,
                temperature=temperature,
                top_k=40 if temperature > 0 else 1,
                top_p=0.95,
                min_p=0.05,
                repeat_penalty=repeat_penalty,
                seed=seed,
                stop=list(stop) or None,
                grammar=compiled,
            )
            try:
                if halt is None:
                    result = llama.create_completion(tokens, **options)
                    choice = result["choices"][0]
                    text, finish = choice["text"], choice.get("finish_reason")
                    generated = int(result["usage"]["completion_tokens"])
                else:
                    text, finish = self._stream(llama, tokens, options, halt)
                    generated = max(0, llama.n_tokens - len(tokens) + 1)
            except ValueError as exc:
                raise BackendError(f"llama.cpp rejected the request: {exc}") from exc
            seconds = time.perf_counter() - start
        return Completion(
            text=text,
            prompt_tokens=len(tokens) - cached,
            cached_tokens=cached,
            generated_tokens=generated,
            seconds=seconds,
            truncated=finish == "length",
        )

    def complete_many(
        self,
        prompt: str,
        *,
        seeds: Sequence[int],
        max_tokens: int,
        grammar: str | None = None,
        temperature: float = 0.7,
    ) -> list[Completion]:
        """One sampled continuation of ``prompt`` per seed, generated side by side.

        The prompt is evaluated once on a second context and shared by every sequence in its
        KV cache; each decode then advances every unfinished sample by one token. The first
        completion counts the prompt's tokens as evaluated, the others as cached.

        Raises
        ------
        BackendError
            If the prompt does not fit the context or llama.cpp fails.
        """
        import llama_cpp

        shared = self._shared
        compiled = self._grammar(grammar) if grammar else None
        completions: list[Completion] = []
        with shared.lock:
            tokens = self._tokens(prompt)
            if len(tokens) + max_tokens >= self.n_ctx:
                raise BackendError(
                    f"The prompt has {len(tokens)} tokens but the context holds {self.n_ctx}: "
                    "raise context_tokens, or lower window or memory_words."
                )
            group = max(1, min(len(seeds), llama_cpp.llama_max_parallel_sequences()))
            for first in range(0, len(seeds), group):
                chunk = list(seeds[first : first + group])
                try:
                    done = sample_side_by_side(
                        shared,
                        tokens,
                        chunk,
                        max_tokens=max_tokens,
                        grammar=compiled,
                        temperature=temperature,
                    )
                except (ValueError, RuntimeError) as exc:
                    raise BackendError(f"llama.cpp could not sample: {exc}") from exc
                if first:  # the prompt counts once
                    done = [replace(c, prompt_tokens=0, cached_tokens=len(tokens)) for c in done]
                completions += done
        return completions

    def begin_batch(self, exact: bool = True) -> None:
        """A lockstep run starts: empty the lanes of :meth:`complete_batch`.

        Parameters
        ----------
        exact : bool, default=True
            Evaluate each prompt of the run in the main context's batches, so every text and
            score is the one the prompt gets alone (:meth:`complete`, :meth:`score`). False
            lets the lanes reuse every shared token (generated ones too): a panel's steps run
            faster, and a text may differ in rare tokens from the same prompt alone. Scores
            (:meth:`score_batch`) are always exact.
        """
        self._exact = exact
        shared = self._shared
        with shared.lock:
            _lockstep.begin(shared, self.n_ctx)

    def _checked_tokens(self, prompt: str, room: int) -> list[int]:
        tokens = self._tokens(prompt)
        if len(tokens) + room >= self.n_ctx:
            raise BackendError(
                f"The prompt has {len(tokens)} tokens but the context holds {self.n_ctx}: "
                "raise context_tokens, or lower window or memory_words."
            )
        return tokens

    def complete_batch(
        self, calls: Sequence[Any], keys: Sequence[Any] | None = None
    ) -> list[Completion]:
        """Continuations of different prompts (``lockstep.Generate`` calls), decoded together.

        Each call runs on its own KV sequence (its lane, chosen by its key), with the sampler
        chain, stop strings and ``halt`` of :meth:`complete`. ``keys`` name the callers (one
        per call, default their positions): a caller's next prompt reuses what its lane holds.

        Raises
        ------
        BackendError
            If a prompt does not fit the context or llama.cpp fails.
        """
        shared = self._shared
        keys = list(range(len(calls))) if keys is None else list(keys)
        grammars = [self._grammar(c.grammar) if c.grammar else None for c in calls]
        with shared.lock:
            prompts = [self._checked_tokens(c.prompt, 1) for c in calls]
            try:
                return _lockstep.complete_batch(
                    shared, calls, keys, prompts, grammars, self.n_ctx, self._exact
                )
            except (ValueError, RuntimeError) as exc:
                raise BackendError(f"llama.cpp could not decode the batch: {exc}") from exc

    def score_batch(
        self, calls: Sequence[Any], keys: Sequence[Any] | None = None
    ) -> list[tuple[np.ndarray, Completion]]:
        """:meth:`score` for several prompts (``lockstep.Score`` calls), decoded together.

        Every call must offer the same number of options (a classifier's classes).
        """
        if len({len(c.options) for c in calls}) != 1 or not calls[0].options:
            raise ValueError("score_batch needs the same, non-zero number of options per call")
        shared = self._shared
        keys = list(range(len(calls))) if keys is None else list(keys)
        with shared.lock:
            llama = shared.llama
            ends = [llama.token_eos()] if shared.formatter is not None else self._plain_end(llama)
            options = [
                [
                    llama.tokenize(o.encode("utf-8"), add_bos=False, special=False) + ends
                    for o in c.options
                ]
                for c in calls
            ]
            prompts = [
                self._checked_tokens(c.prompt, max(map(len, o))) for c, o in zip(calls, options)
            ]
            try:
                done = _lockstep.score_batch(shared, keys, prompts, options, self.n_ctx)
            except (ValueError, RuntimeError) as exc:
                raise BackendError(f"llama.cpp could not score the batch: {exc}") from exc
        return [
            (logprobs, replace(c, text=call.options[int(np.argmax(logprobs))]))
            for call, (logprobs, c) in zip(calls, done)
        ]

    def score(self, prompt: str, options: Sequence[str]) -> tuple[np.ndarray, Completion]:
        """Log-probability of each option as the whole answer, from the model's own logits.

        The prompt is evaluated once (after the prefix the KV cache already holds); each option
        then costs one single-token evaluation per token after its first, plus one for the
        end-of-answer token. The KV cache is left holding the prompt, so the next call of the
        step (the reflection) reuses it.
        """
        if not options:
            raise ValueError("score needs at least one option")
        shared = self._shared
        with shared.lock:
            llama = shared.llama
            tokens = self._tokens(prompt)
            ends = [llama.token_eos()] if shared.formatter is not None else self._plain_end(llama)
            encoded = [
                llama.tokenize(option.encode("utf-8"), add_bos=False, special=False) + ends
                for option in options
            ]
            if len(tokens) + max(map(len, encoded)) >= self.n_ctx:
                raise BackendError(
                    f"The prompt has {len(tokens)} tokens but the context holds {self.n_ctx}: "
                    "raise context_tokens, or shorten the features or memory_words."
                )
            start = time.perf_counter()
            try:
                cached = _prefill(shared, tokens)
                llama.eval(tokens[-1:])
            except (ValueError, RuntimeError) as exc:
                raise BackendError(f"llama.cpp could not evaluate the prompt: {exc}") from exc
            base = llama.n_tokens
            first = log_softmax(private.last_logits(llama))
            evaluated = len(tokens) - cached
            scores = []
            for option in encoded:
                scores.append(first[option[0]] + self._continuation(llama, base, option))
                evaluated += len(option) - 1
            # Drop the last option's tokens: the cache holds the prompt for the next call.
            shared.clean = min(shared.clean, private.forget_from(llama, base))
            logprobs = np.array(scores)
            seconds = time.perf_counter() - start
        return logprobs, Completion(
            text=options[int(np.argmax(logprobs))],
            prompt_tokens=evaluated,
            cached_tokens=cached,
            generated_tokens=0,
            seconds=seconds,
        )

    @staticmethod
    def _continuation(llama: Any, base: int, option: list[int]) -> float:
        """Sum of log P(option[i] | prompt, option[:i]) for i >= 1, in one batched decode."""
        if len(option) < 2:
            return 0.0
        if private.forget_from(llama, base) != base:  # the previous option's tokens
            raise BackendError(
                "This model's cache cannot drop the tokens of a scored answer (a recurrent "
                "architecture): use an attention-based GGUF model for classification."
            )
        rows = private.logits_after(llama, base, option[:-1])
        return float(sum(log_softmax(row)[token] for row, token in zip(rows, option[1:])))

    @staticmethod
    def _plain_end(llama: Any) -> list[int]:
        return llama.tokenize(b"\n", add_bos=False, special=False)[-1:]

    @staticmethod
    def _stream(llama, tokens, options, halt) -> tuple[str, str | None]:
        """Generate token by token until done or until ``halt(text)`` says stop."""
        text, finish = "", None
        stream = llama.create_completion(tokens, stream=True, **options)
        try:
            for chunk in stream:
                choice = chunk["choices"][0]
                text += choice["text"]
                finish = choice.get("finish_reason") or finish
                if halt(text):
                    finish = "halt"
                    break
        finally:
            stream.close()
        return text, finish

    def __repr__(self) -> str:
        return f"LlamaCppBackend({self.model_path!r}, n_ctx={self.n_ctx})"
