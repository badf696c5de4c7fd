"""The llama.cpp backend (llama-cpp-python): one loaded model per process, shared by all.

Why it looks like this:

- A loaded model is shared per process per (file, context size, GPU layers, threads): a grid
  search that clones an estimator 50 times loads the file once. Estimators hold a small
  :class:`LlamaCppBackend` handle that is never pickled; the model is opened lazily on first use.
- One ``Llama`` object must never run in two threads at once, so each shared model has a lock.
- The KV cache holds one sequence: the tokens of the previous call. The recurrence orders every
  prompt from what changes least to what changes most, so most prompt tokens come from the cache;
  this module measures how many did, per call.
- Every call's result is a function of its prompt alone, never of what the cache held before:
  llama.cpp's numbers depend slightly on how a prompt is split into batches, and a small model's
  greedy text can turn on that (a token evaluated alone, as generated tokens are, differs from
  the same token evaluated in a batch). So the cache is reused only up to a multiple of
  ``_BLOCK`` tokens that was evaluated in batches starting on that grid and spanning whole
  blocks; the rest of the prompt but its last token is one batch, the last token is evaluated
  alone, and generated tokens are never reused. A fit in two threads, a fit after another
  estimator's, and a fit on a cold cache give the same text, token for token. The price: up to
  ``_BLOCK`` tokens and the previous answer evaluated again per call (``benchmarks/speed.py``).
- Seeded samples of one prompt (``complete_many``, behind prediction intervals) run as parallel
  sequences on a second, lazily created context: the prompt is evaluated once, copied to every
  sequence inside the KV cache, and each decode advances all samples by one token (20 samples
  of 12 horizons: 13.7 s instead of 28.5 s one after another on 2 CPU cores, see
  docs/decisions.md). Samples are a function of the prompt, the seeds and their number.
- llama.cpp's own logging is routed to the ``llmrnn.llama_cpp`` logger at DEBUG, so nothing is
  printed unless the user turns debug logging on.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..grammar import validate_gbnf
from .base import BackendError, Completion, Message, log_softmax, render_plain

__all__ = ["LlamaCppBackend", "gpu_offload_supported", "load_count", "system_info"]

logger = logging.getLogger("llmrnn.llama_cpp")

_CACHE: dict[tuple, _SharedModel] = {}
_CACHE_LOCK = threading.Lock()
_LOADS: list[tuple] = []  # every real load, for tests and benchmarks (one entry per load)
_LOG_CALLBACK: Any = None  # keeps the ctypes callback alive
_GRAMMARS: dict[str, Any] = {}  # validated and compiled grammars, by text
_RAN_INFERENCE = False  # set once this process has decoded anything
_FORKED_AFTER_INFERENCE = False  # set in a child forked from a process that had


def _after_fork_in_child() -> None:
    """A forked child inherits llama.cpp's OpenMP state, which hangs on the next decode."""
    global _FORKED_AFTER_INFERENCE, _CACHE_LOCK
    _FORKED_AFTER_INFERENCE = _FORKED_AFTER_INFERENCE or _RAN_INFERENCE
    _CACHE_LOCK = threading.Lock()
    _CACHE.clear()  # the parent's models (and their locks) are not usable here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - a broken install
        raise BackendError(
            "llama-cpp-python is not importable: reinstall it with `pip install llama-cpp-python` "
            "(a C/C++ compiler is needed), or reinstall llmrnn."
        ) from exc
    _silence_llama_logs(llama_cpp)
    return llama_cpp


def _silence_llama_logs(llama_cpp) -> None:
    """Route llama.cpp's log lines to logging (DEBUG) instead of stderr."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return

    @llama_cpp.llama_log_callback
    def _callback(level, text, user_data):  # noqa: ARG001 - ctypes signature
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(text.decode("utf-8", "replace").rstrip())

    _LOG_CALLBACK = _callback
    llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


@atexit.register
def _close_all() -> None:
    """Free the shared models before interpreter teardown (llama-cpp-python's own ``__del__``
    fails noisily once its modules are gone)."""
    with _CACHE_LOCK:
        for shared in _CACHE.values():
            shared.llama.close()
        _CACHE.clear()


def gpu_offload_supported() -> bool:
    """Whether this llama-cpp-python build can offload layers to a GPU."""
    return bool(_llama_cpp().llama_supports_gpu_offload())


def system_info() -> str:
    """llama.cpp's build and CPU-feature line."""
    return _llama_cpp().llama_print_system_info().decode("utf-8", "replace").strip()


def load_count(model_path: str | None = None) -> int:
    """How many times a model file was loaded in this process (all files when None)."""
    return sum(1 for key in _LOADS if model_path is None or key[0] == model_path)


def available_threads() -> int:
    """Cores this process may run on (not llama-cpp-python's default of half the CPU count).

    ``OMP_NUM_THREADS``, when set, caps it: joblib's loky workers set it to their share of the
    cores, so a grid search with ``n_jobs=2`` on 2 cores runs one thread per worker instead of
    two workers spinning two OpenMP threads each (measured 10x slower, FACTS.md).
    """
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cores = max(1, os.cpu_count() or 1)
    try:
        cap = int(os.environ.get("OMP_NUM_THREADS", "0"))
    except ValueError:
        cap = 0
    return min(cores, cap) if cap > 0 else cores


_BLOCK = 32  # prompt tokens per aligned evaluation block (see the module docstring)


def _cached_prefix(llama, tokens: list[int]) -> int:
    """Prompt tokens llama-cpp-python will take from the KV cache: its own rule, the longest
    common prefix with the tokens it holds, the prompt's last token always evaluated again."""
    previous = llama.input_ids[: llama.n_tokens].tolist()
    cached = 0
    for a, b in zip(previous, tokens[:-1]):
        if a != b:
            break
        cached += 1
    return cached


@dataclass
class _SharedModel:
    llama: Any
    chat_template: str | None
    eos_token: str
    bos_token: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    formatter: Any = None
    clean: int = 0  # cache positions below this were evaluated in whole aligned blocks
    parallel: Any = None  # the second context of complete_many, created on first use


def _prefill(shared: _SharedModel, tokens: list[int]) -> int:
    """Evaluate all but the last prompt token in aligned blocks; return the tokens reused.

    Reuses the cache up to the last whole block shared with the previous prompt, so the cache
    afterwards holds exactly what a cold evaluation of ``tokens`` would have put there.
    """
    llama = shared.llama
    body = len(tokens) - 1
    start = min(_cached_prefix(llama, tokens), shared.clean) // _BLOCK * _BLOCK
    whole = max(start, body // _BLOCK * _BLOCK)
    llama.n_tokens = shared.clean = start
    if whole > start:  # whole blocks: batches that start on the grid and span whole blocks
        llama.eval(tokens[start:whole])
    shared.clean = whole
    if body > whole:  # the partial block, never reused
        llama.eval(tokens[whole:body])
    return start


def _parallel_supported(llama_cpp) -> bool:
    """Whether this llama-cpp-python has what ``complete_many`` uses (the memory API of
    llama.cpp and unified KV caches; 0.3.36 has, the oldest allowed 0.3.x may not)."""
    fields = {name for name, *_ in llama_cpp.llama_context_params._fields_}
    needed = ("llama_memory_seq_cp", "llama_memory_clear", "llama_max_parallel_sequences")
    return "kv_unified" in fields and all(hasattr(llama_cpp, n) for n in needed)


def _use_extra_buffers() -> bool:
    """Whether llama.cpp may put weights in its "extra" CPU buffer types (AMX, repacking).

    llama-cpp-python 0.3.36 compiled natively on an AMX-capable Xeon (the development and CI
    machines) segfaults in ``ggml_backend_amx_mul_mat`` on the first decode. So on a build that
    reports ``AMX_INT8 = 1`` the extra buffers are off by default. ``LLMRNN_EXTRA_BUFFERS=1`` or
    ``=0`` overrides the rule.
    """
    setting = os.environ.get("LLMRNN_EXTRA_BUFFERS", "auto").strip().lower()
    if setting in {"1", "true", "on", "yes"}:
        return True
    if setting in {"0", "false", "off", "no"}:
        return False
    return "AMX_INT8 = 1" not in system_info()


def _construct(llama_cpp, extra_buffers: bool, **kwargs):
    """Build a ``Llama``; llama-cpp-python has no argument for ``use_extra_bufts``, so the default
    model parameters are wrapped for the duration of the load (under the cache lock)."""
    if extra_buffers:
        return llama_cpp.Llama(**kwargs)
    low = llama_cpp.llama_cpp
    original = low.llama_model_default_params

    def params_without_extra_buffers():
        params = original()
        params.use_extra_bufts = False
        return params

    low.llama_model_default_params = params_without_extra_buffers
    try:
        return llama_cpp.Llama(**kwargs)
    finally:
        low.llama_model_default_params = original


def _load(key: tuple) -> _SharedModel:
    model_path, n_ctx, n_gpu_layers, n_threads = key
    llama_cpp = _llama_cpp()
    logger.info("loading %s (n_ctx=%d, n_gpu_layers=%d)", model_path, n_ctx, n_gpu_layers)
    try:
        llama = _construct(
            llama_cpp,
            _use_extra_buffers(),
            model_path=model_path,
            n_ctx=n_ctx,
            n_gpu_layers=n_gpu_layers,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            n_batch=min(512, n_ctx),
            seed=0,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise BackendError(
            f"llama.cpp could not load {model_path!r} ({exc}): check that it is a complete GGUF "
            "file of an architecture this llama-cpp-python version supports."
        ) from exc
    _LOADS.append(key)
    template = llama.metadata.get("tokenizer.chat_template")
    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    eos = llama._model.token_get_text(eos_id) if eos_id != -1 else ""
    bos = llama._model.token_get_text(bos_id) if bos_id != -1 else ""
    shared = _SharedModel(llama, template, eos, bos)
    if template:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        shared.formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
    return shared


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

    # The shared model is looked up on every use, never held by pickled state.
    @property
    def _shared(self) -> _SharedModel:
        global _RAN_INFERENCE
        if _FORKED_AFTER_INFERENCE:
            raise BackendError(
                "llama.cpp cannot run in a process forked from one that already ran a model "
                "(its OpenMP threads do not survive fork: the call would hang). Use a "
                "spawn-based backend instead: joblib's default 'loky', sktime's "
                "evaluate(backend='loky' or 'dask'), or multiprocessing's 'spawn' start method."
            )
        _RAN_INFERENCE = True
        shared = _CACHE.get(self._key)
        if shared is None:
            with _CACHE_LOCK:
                shared = _CACHE.get(self._key)
                if shared is None:
                    shared = _CACHE[self._key] = _load(self._key)
        return shared

    @property
    def chat(self) -> bool:
        """Whether the model has a chat template (instruction-tuned)."""
        return self._shared.formatter is not None

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

        if not _parallel_supported(llama_cpp):  # an older llama-cpp-python: one at a time
            return [
                self.complete(
                    prompt,
                    max_tokens=max_tokens,
                    grammar=grammar,
                    temperature=temperature,
                    seed=seed,
                )  # fmt: skip
                for seed in seeds
            ]
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
                    done = self._parallel(llama_cpp, shared, tokens, chunk, max_tokens,
                                          compiled, temperature)  # fmt: skip
                except (ValueError, RuntimeError) as exc:
                    raise BackendError(f"llama.cpp could not sample: {exc}") from exc
                if first:  # the prompt counts once
                    done = [replace(c, prompt_tokens=0, cached_tokens=len(tokens)) for c in done]
                completions += done
        return completions

    def _parallel(self, llama_cpp, shared, tokens, seeds, max_tokens, grammar, temperature):
        """``complete_many`` for at most llama.cpp's maximum of parallel sequences."""
        from llama_cpp._internals import LlamaBatch, LlamaContext, LlamaSampler

        llama, n = shared.llama, len(seeds)
        needed = len(tokens) + n * max_tokens
        ctx = shared.parallel
        if ctx is None or ctx.n_ctx() < needed or ctx.params.n_seq_max < n:
            if ctx is not None:
                ctx.close()
            params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
            params.n_ctx = -(-needed // 256) * 256
            params.n_seq_max = max(n, 20)
            params.kv_unified = True  # the prompt's cells are shared, not copied, per sequence
            ctx = shared.parallel = LlamaContext(model=llama._model, params=params, verbose=False)
        start = time.perf_counter()
        llama_cpp.llama_memory_clear(ctx.memory, True)
        width = max(int(ctx.params.n_batch), n)
        batch = LlamaBatch(n_tokens=width, embd=0, n_seq_max=1, verbose=False)
        samplers: list[Any] = []
        try:
            for at in range(0, len(tokens), width):
                batch.set_batch(tokens[at : at + width], n_past=at, logits_all=False)
                ctx.decode(batch)
            last = batch.n_tokens() - 1  # the prompt's last token: every sample's first logits
            for i in range(1, n):
                llama_cpp.llama_memory_seq_cp(ctx.memory, 0, i, -1, -1)
            for seed in seeds:
                sampler = LlamaSampler()
                if grammar is not None:
                    sampler.add_grammar(llama._model, grammar)
                sampler.add_top_k(40)
                sampler.add_top_p(0.95, 1)
                sampler.add_min_p(0.05, 1)
                sampler.add_temp(temperature)
                sampler.add_dist(seed)
                samplers.append(sampler)
            vocab = llama._model.vocab
            outputs: list[list[int]] = [[] for _ in seeds]
            finished = [False] * n
            rows = [last] * n  # where each sample's next logits are in the last batch
            for step in range(max_tokens):
                active = [i for i in range(n) if not finished[i]]
                for i in active:
                    token = samplers[i].sample(ctx, rows[i])
                    if llama_cpp.llama_vocab_is_eog(vocab, token):
                        finished[i] = True
                    else:
                        outputs[i].append(token)
                active = [i for i in active if not finished[i]]
                if not active or step == max_tokens - 1:
                    break
                batch.reset()
                for row, i in enumerate(active):
                    b = batch.batch
                    b.token[row], b.pos[row] = outputs[i][-1], len(tokens) + step
                    b.seq_id[row][0], b.n_seq_id[row], b.logits[row] = i, 1, True
                    rows[i] = row
                batch.batch.n_tokens = len(active)
                ctx.decode(batch)
        finally:
            batch.close()
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
            first = log_softmax(self._last_logits(llama))
            evaluated = len(tokens) - cached
            scores = []
            for option in encoded:
                scores.append(first[option[0]] + self._continuation(llama, base, option))
                evaluated += len(option) - 1
            llama._ctx.kv_cache_seq_rm(-1, base, -1)
            llama.n_tokens = base
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
    def _continuation(llama, base: int, option: list[int]) -> float:
        """Sum of log P(option[i] | prompt, option[:i]) for i >= 1, in one batched decode."""
        if len(option) < 2:
            return 0.0
        inputs = option[:-1]
        llama._ctx.kv_cache_seq_rm(-1, base, -1)
        llama._batch.set_batch(batch=inputs, n_past=base, logits_all=True)
        llama._ctx.decode(llama._batch)
        total = 0.0
        for i, token in enumerate(option[1:]):
            row = np.ctypeslib.as_array(llama._ctx.get_logits_ith(i), shape=(llama.n_vocab(),))
            total += log_softmax(row)[token]
        return total

    @staticmethod
    def _plain_end(llama) -> list[int]:
        return llama.tokenize(b"\n", add_bos=False, special=False)[-1:]

    @staticmethod
    def _last_logits(llama) -> np.ndarray:
        pointer = llama._ctx.get_logits_ith(-1)
        return np.ctypeslib.as_array(pointer, shape=(llama.n_vocab(),))

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
