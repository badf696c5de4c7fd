"""Every use of llama-cpp-python's private parts, in one place.

llama-cpp-python's public ``Llama`` class cannot do four things this package needs, so this
module reaches past it, and nothing else in llmrnn does:

- evaluate a prompt in batches of our choosing and rewind to a shorter prefix (the aligned
  prefill): it reads ``Llama.input_ids`` and writes ``Llama.n_tokens``;
- score candidate answers from the model's logits: ``Llama._ctx`` and ``Llama._batch``;
- sample several sequences side by side on a second context: ``llama_cpp._internals``'
  ``LlamaContext``, ``LlamaBatch`` and ``LlamaSampler``, and ``Llama._model``;
- load a model with llama.cpp's extra buffer types off (the AMX workaround): no constructor
  argument reaches ``llama_model_params.use_extra_bufts``, so a subclass of ``Llama`` turns it off
  as ``Llama.__init__`` assigns ``self.model_params`` (before it loads the file). Nothing global is
  replaced, so a model another thread loads at the same moment keeps llama.cpp's defaults.

Where llama.cpp's own C API (``llama_cpp.llama_cpp``, public and documented) does the job, it is
used instead of a private wrapper. :data:`PRIVATE_API` lists every private name relied on and
:func:`api_problems` says which of them the installed version lacks; ``tests/test_backend.py``
fails on any, naming it, so an upgrade cannot break this silently. Written against 0.3.36.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "PRIVATE_API",
    "LLAMA_ATTRIBUTES",
    "SideContext",
    "api_problems",
    "evaluated_tokens",
    "forget_from",
    "last_logits",
    "llama_class",
    "logits_after",
    "rewind",
    "token_text",
]

#: Every private class and method of ``llama_cpp._internals`` used here, with the parameters
#: the calls below pass (positionally or by keyword, after ``self``).
PRIVATE_API: dict[str, dict[str, tuple[str, ...]]] = {
    "LlamaModel": {"token_get_text": ("token",)},
    "LlamaContext": {
        "__init__": ("model", "params", "verbose"),
        "n_ctx": (),
        "decode": ("batch",),
        "get_logits_ith": ("i",),
        "close": (),
    },
    "LlamaBatch": {
        "__init__": ("n_tokens", "embd", "n_seq_max", "verbose"),
        "set_batch": ("batch", "n_past", "logits_all"),
        "n_tokens": (),
        "reset": (),
        "close": (),
    },
    "LlamaSampler": {
        "__init__": (),
        "add_grammar": ("model", "grammar"),
        "add_top_k": ("k",),
        "add_top_p": ("p", "min_keep"),
        "add_min_p": ("p", "min_keep"),
        "add_temp": ("temp",),
        "add_typical": ("p", "min_keep"),
        "add_penalties": (
            "n_vocab",
            "penalty_last_n",
            "penalty_repeat",
            "penalty_freq",
            "penalty_present",
        ),
        "add_greedy": (),
        "add_dist": ("seed",),
        "sample": ("ctx", "idx"),
        "close": (),
    },
}

#: Attributes of a loaded ``Llama`` (and of its private parts) read or written here.
LLAMA_ATTRIBUTES: tuple[str, ...] = (
    "n_tokens",
    "input_ids",
    "model_params",
    "context_params",
    "_model",
    "_model.vocab",
    "ctx",
    "_ctx",
    "_ctx.memory",
    "_batch",
    "_batch.batch",
)

#: Functions and constants of llama.cpp's C API (``llama_cpp.llama_cpp``) used in this package,
#: and the struct fields set.
C_API: tuple[str, ...] = (
    "llama_get_memory",
    "llama_memory_seq_rm",
    "llama_memory_seq_cp",
    "llama_memory_clear",
    "llama_max_parallel_sequences",
    "llama_vocab_is_eog",
    "llama_sampler_init_penalties",
    "llama_sampler_init_grammar",
    "llama_sampler_apply",
    "llama_sampler_accept",
    "llama_sampler_free",
    "llama_model_quantize_default_params",  # the embedded model's Q8_0 copy (_embedded_copy)
    "llama_model_quantize",
    "LLAMA_FTYPE_MOSTLY_Q8_0",
)
C_FIELDS: tuple[tuple[str, str], ...] = (
    ("llama_model_params", "use_extra_bufts"),
    ("llama_model_quantize_params", "ftype"),
    ("llama_model_quantize_params", "allow_requantize"),
    ("llama_model_quantize_params", "nthread"),
    ("llama_context_params", "n_ctx"),
    ("llama_context_params", "n_batch"),
    ("llama_context_params", "n_seq_max"),
    ("llama_context_params", "kv_unified"),
    ("llama_batch", "n_tokens"),
    ("llama_batch", "token"),
    ("llama_batch", "pos"),
    ("llama_batch", "n_seq_id"),
    ("llama_batch", "seq_id"),
    ("llama_batch", "logits"),
    ("llama_token_data", "id"),
    ("llama_token_data", "logit"),
    ("llama_token_data", "p"),
    ("llama_token_data_array", "data"),
    ("llama_token_data_array", "size"),
    ("llama_token_data_array", "selected"),
    ("llama_token_data_array", "sorted"),
)


def _internals() -> Any:
    return importlib.import_module("llama_cpp._internals")


def api_problems(llama: Any = None) -> list[str]:
    """What this module relies on that the installed llama-cpp-python lacks.

    Parameters
    ----------
    llama : llama_cpp.Llama, optional
        A loaded model: its instance attributes (:data:`LLAMA_ATTRIBUTES`) are checked too.

    Returns
    -------
    list of str
        One sentence per missing or changed name; empty when everything is there.
    """
    problems: list[str] = []
    internals = _internals()
    for class_name, methods in PRIVATE_API.items():
        owner = getattr(internals, class_name, None)
        for method, params in methods.items():
            where = f"llama_cpp._internals.{class_name}.{method}"
            function = getattr(owner, method, None)
            if function is None:
                problems.append(f"{where} is gone")
                continue
            found = [p for p in inspect.signature(function).parameters if p != "self"]
            if list(params) != found[: len(params)]:
                problems.append(f"{where} now takes {found}, not {list(params)}")
    low = importlib.import_module("llama_cpp.llama_cpp")
    problems += [f"llama_cpp.llama_cpp.{name} is gone" for name in C_API if not hasattr(low, name)]
    for struct, field in C_FIELDS:
        fields = {name for name, *_ in getattr(getattr(low, struct, None), "_fields_", ())}
        if field not in fields:
            problems.append(f"llama_cpp.llama_cpp.{struct} has no field {field!r}")
    if llama is not None:
        for path in LLAMA_ATTRIBUTES:
            owner = llama
            for part in path.split("."):
                owner = getattr(owner, part, _MISSING)
            if owner is _MISSING:
                problems.append(f"a loaded llama_cpp.Llama has no attribute {path!r}")
    return problems


_MISSING = object()


# -- loading ----------------------------------------------------------------------------------


def llama_class(llama_cpp: Any, *, extra_buffers: bool) -> type:
    """``llama_cpp.Llama``, or a subclass that loads with ``use_extra_bufts=False``."""
    return llama_cpp.Llama if extra_buffers else _without_extra_buffers(llama_cpp.Llama)


@functools.cache
def _without_extra_buffers(base: type) -> type:
    class LlamaWithoutExtraBuffers(base):  # type: ignore[misc, valid-type]
        """``Llama`` with llama.cpp's extra buffer types (AMX, weight repacking) off.

        ``Llama.__init__`` assigns ``self.model_params = llama_model_default_params()``, then
        fills it and loads the file with it: this property turns the field off on assignment.
        """

        @property
        def model_params(self) -> Any:
            return self.__dict__["_llmrnn_model_params"]

        @model_params.setter
        def model_params(self, params: Any) -> None:
            params.use_extra_bufts = False
            self.__dict__["_llmrnn_model_params"] = params

    return LlamaWithoutExtraBuffers


def token_text(llama: Any, token: int) -> str:
    """The text of a vocabulary entry (special tokens such as ``<|im_end|>`` included)."""
    return llama._model.token_get_text(token)


# -- the main context: what it holds, rewinding, logits ---------------------------------------


def evaluated_tokens(llama: Any) -> list[int]:
    """The tokens whose keys and values the model's KV cache holds, in order."""
    return llama.input_ids[: llama.n_tokens].tolist()


def rewind(llama: Any, count: int) -> None:
    """Keep only the first ``count`` evaluated tokens.

    ``Llama.eval`` and ``create_completion`` drop the KV cells after ``n_tokens`` themselves
    before they decode, so setting it is enough when one of them runs next.
    """
    llama.n_tokens = count


def forget_from(llama: Any, position: int) -> int:
    """Drop the KV cells at ``position`` and after, now; return how many tokens are kept.

    The main context holds one sequence (id 0). ``_internals.LlamaContext.kv_cache_seq_rm(-1, ...)``
    does not mean "every sequence" in 0.3.36 (it turns -1 into sequence 0), so this calls
    llama.cpp's ``llama_memory_seq_rm`` directly with -1, which there means every sequence: what
    is meant is "the cache holds nothing after ``position``", whatever sequences it has. A cache
    that cannot drop a tail (a recurrent model's) is cleared instead, and 0 is returned.
    """
    import llama_cpp

    memory = llama_cpp.llama_get_memory(llama.ctx)
    if not llama_cpp.llama_memory_seq_rm(memory, -1, position, -1):
        llama_cpp.llama_memory_clear(memory, True)
        position = 0
    llama.n_tokens = position
    return position


def last_logits(llama: Any) -> np.ndarray:
    """The logits after the last evaluated token (a view of llama.cpp's buffer)."""
    pointer = llama._ctx.get_logits_ith(-1)
    return np.ctypeslib.as_array(pointer, shape=(llama.n_vocab(),))


def logits_after(llama: Any, position: int, tokens: Sequence[int]) -> np.ndarray:
    """Evaluate ``tokens`` from ``position`` in one batch; the logits after each, one row each.

    Does not move ``n_tokens``: the caller drops these cells again (:func:`forget_from`).
    """
    llama._batch.set_batch(batch=list(tokens), n_past=position, logits_all=True)
    llama._ctx.decode(llama._batch)
    n_vocab = llama.n_vocab()
    return np.stack(
        [
            np.ctypeslib.as_array(llama._ctx.get_logits_ith(i), shape=(n_vocab,))
            for i in range(len(tokens))
        ]
    )


# -- a second context for sequences side by side ----------------------------------------------


class SideContext:
    """A second llama.cpp context on a loaded model, holding up to ``n_seq_max`` sequences.

    Its KV cache is unified: a prompt evaluated once as sequence 0 and copied to the others
    shares its cells instead of duplicating them.

    Parameters
    ----------
    llama : llama_cpp.Llama
        The loaded model; its context parameters (threads, batch size) are copied.
    n_ctx : int
        KV cells, for the prompt and every sequence's generated tokens.
    n_seq_max : int
        Most sequences.
    """

    def __init__(self, llama: Any, *, n_ctx: int, n_seq_max: int, unified: bool = True) -> None:
        import llama_cpp

        internals = _internals()
        params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_ctx = n_ctx
        params.n_seq_max = n_seq_max
        # unified: the prompt's cells are shared, not copied, per sequence (complete_many);
        # else each sequence has n_ctx / n_seq_max cells of its own and attends to those only
        params.kv_unified = unified
        self._llama = llama
        self._ctx = internals.LlamaContext(model=llama._model, params=params, verbose=False)
        self.n_seq_max = n_seq_max
        self._n_batch = int(params.n_batch)
        capacity = max(self._n_batch, n_seq_max)
        self._batch = internals.LlamaBatch(n_tokens=capacity, embd=0, n_seq_max=1, verbose=False)

    @property
    def n_ctx(self) -> int:
        """KV cells this context holds."""
        return int(self._ctx.n_ctx())

    def evaluate_prompt(self, tokens: Sequence[int], sequences: int) -> int:
        """Empty the cache, evaluate ``tokens`` as sequence 0 and copy it to sequences 1 ..
        ``sequences - 1``.

        Returns
        -------
        int
            The batch row that holds the logits after the prompt's last token.
        """
        import llama_cpp

        memory = self._ctx.memory
        llama_cpp.llama_memory_clear(memory, True)
        width = max(self._n_batch, sequences)  # tokens per decode
        for at in range(0, len(tokens), width):
            self._batch.set_batch(list(tokens[at : at + width]), n_past=at, logits_all=False)
            self._ctx.decode(self._batch)
        for seq in range(1, sequences):
            llama_cpp.llama_memory_seq_cp(memory, 0, seq, -1, -1)
        return self._batch.n_tokens() - 1

    def advance(self, steps: Sequence[tuple[int, int, int]]) -> list[int]:
        """Decode one token per sequence, ``(token, position, sequence)`` each, in one batch.

        Returns
        -------
        list of int
            The batch row holding each entry's logits, in the order given.
        """
        return self.decode([(token, position, seq, True) for token, position, seq in steps])

    def decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> list[int]:
        """Decode ``(token, position, sequence, wants_logits)`` entries in one batch.

        At most ``batch_size`` entries. Returns the rows of the entries that want logits (the
        logits stay readable until the next decode).
        """
        self._batch.reset()
        raw = self._batch.batch
        rows = []
        for row, (token, position, seq, logits) in enumerate(entries):
            raw.token[row], raw.pos[row] = token, position
            raw.seq_id[row][0], raw.n_seq_id[row], raw.logits[row] = seq, 1, logits
            if logits:
                rows.append(row)
        raw.n_tokens = len(entries)
        self._ctx.decode(self._batch)
        return rows

    @property
    def n_batch(self) -> int:
        """Tokens per batch of the main context (copied): a prompt's batches on both match."""
        return self._n_batch

    @property
    def batch_size(self) -> int:
        """Most entries one :meth:`decode` takes."""
        return max(self._n_batch, self.n_seq_max)

    def logits(self, row: int) -> np.ndarray:
        """The logits in batch row ``row`` of the last decode (a view of llama.cpp's buffer)."""
        pointer = self._ctx.get_logits_ith(row)
        return np.ctypeslib.as_array(pointer, shape=(self._llama.n_vocab(),))

    def keep(self, seq: int, count: int) -> bool:
        """Drop sequence ``seq``'s cells from position ``count`` on; False if it cannot."""
        import llama_cpp

        return bool(llama_cpp.llama_memory_seq_rm(self._ctx.memory, seq, count, -1))

    def copy(self, source: int, target: int) -> None:
        """Make sequence ``target`` hold what sequence ``source`` holds (its own cells dropped).

        Across KV streams (``unified=False``) llama.cpp copies the whole stream, at the next
        decode; trim the copy with :meth:`keep`.
        """
        import llama_cpp

        llama_cpp.llama_memory_seq_cp(self._ctx.memory, source, target, -1, -1)

    def clear(self) -> None:
        """Drop every sequence's cells."""
        import llama_cpp

        llama_cpp.llama_memory_clear(self._ctx.memory, True)

    def sampler(
        self,
        grammar: Any,
        temperature: float,
        seed: int,
        *,
        repeat_penalty: float | None = None,
        grammar_text: str | None = None,
    ) -> _Sampler | _GreedyGrammarSampler:
        """A sampler chain on this context.

        Without ``repeat_penalty``: grammar, top-k 40, top-p, min-p, temperature, a seeded
        draw (``complete_many``'s samples). With it: the chain ``Llama.create_completion``
        builds (penalties over the last 64 generated tokens, grammar, then greedy at
        temperature 0, else top-k 40, typical 1.0, top-p 0.95, min-p 0.05, temperature, draw).
        Greedy under a grammar whose text is given (``grammar_text``) checks the grammar last
        (:class:`_GreedyGrammarSampler`): the same tokens, at a fraction of the cost.
        """
        if repeat_penalty is not None and temperature == 0 and grammar_text is not None:
            return _GreedyGrammarSampler(self, grammar_text, repeat_penalty)
        return _Sampler(self, grammar, temperature, seed, repeat_penalty)

    def is_end(self, token: int) -> bool:
        """Whether ``token`` ends generation (end of sequence, end of turn)."""
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self._llama._model.vocab, token))

    def close(self) -> None:
        """Free the batch and the context (before the model they belong to)."""
        self._batch.close()
        self._ctx.close()


class _Sampler:
    """Grammar, top-k 40, top-p 0.95, min-p 0.05, temperature, then a seeded draw."""

    def __init__(
        self,
        side: SideContext,
        grammar: Any,
        temperature: float,
        seed: int,
        repeat_penalty: float | None = None,
    ) -> None:
        self._ctx = side._ctx
        self._chain = chain = _internals().LlamaSampler()
        completion = repeat_penalty is not None
        if completion:  # llama-cpp-python's default last_n_tokens_size is 64
            chain.add_penalties(side._llama.n_vocab(), 64, repeat_penalty, 0.0, 0.0)
        if grammar is not None:
            chain.add_grammar(side._llama._model, grammar)
        if completion and temperature == 0:
            chain.add_greedy()
            return
        chain.add_top_k(40)
        if completion:
            chain.add_typical(1.0, 1)
        chain.add_top_p(0.95, 1)
        chain.add_min_p(0.05, 1)
        chain.add_temp(temperature)
        chain.add_dist(seed)

    def sample(self, row: int) -> int:
        """Draw the next token from the logits in batch row ``row`` (and accept it)."""
        return int(self._chain.sample(self._ctx, row))

    def close(self) -> None:
        """Free the chain."""
        self._chain.close()


#: Best tokens the grammar-last sampler judges one by one before the whole vocabulary.
_NEAR = 32

#: llama.cpp's ``llama_token_data``: a token, its logit and its probability.
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


class _GreedyGrammarSampler:
    """Greedy decoding under a grammar, with the grammar checked last.

    The chain ``create_completion`` builds (penalties, grammar, greedy) runs the grammar over
    every token of the vocabulary at every step: 7.5 ms a token against 0.2 ms without it, on
    the embedded model's 49,152 tokens (2-core CPU), which made sampling the largest cost of a
    lockstep step after llama.cpp's decoding (``benchmarks/lockstep.py profile``). Here the
    penalties apply to every token, the best token is taken, and the grammar judges that one
    token only (llama.cpp's own ``common_sampler`` does the same); when it refuses it, the next
    best tokens are judged one by one (the ``_NEAR`` best), and only when it refuses them all
    does the grammar run over the vocabulary. The grammar only removes tokens, so the best
    token it allows is the one the chain would pick: the same tokens, to the tie (both take
    the first of equal logits).
    """

    def __init__(self, side: SideContext, grammar_text: str, repeat_penalty: float) -> None:
        import ctypes

        import llama_cpp

        self._side = side
        n = side._llama.n_vocab()
        self._penalties = llama_cpp.llama_sampler_init_penalties(n, 64, repeat_penalty, 0.0, 0.0)
        self._grammar = llama_cpp.llama_sampler_init_grammar(
            side._llama._model.vocab, grammar_text.encode("utf-8"), b"root"
        )
        if not self._grammar:
            llama_cpp.llama_sampler_free(self._penalties)
            raise ValueError("llama.cpp could not build the sampler of this grammar")
        self._every = np.zeros(n, dtype=_TOKEN_DATA)
        self._every["id"] = np.arange(n)
        self._one = np.zeros(1, dtype=_TOKEN_DATA)
        pointer = ctypes.POINTER(llama_cpp.llama_token_data)
        self._arrays = [
            llama_cpp.llama_token_data_array(
                data=data.ctypes.data_as(pointer), size=len(data), selected=-1, sorted=False
            )
            for data in (self._every, self._one)
        ]

    def _apply(self, sampler: Any, which: int) -> None:
        import ctypes

        import llama_cpp

        array = self._arrays[which]
        array.selected, array.sorted = -1, False
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))

    def _allows(self, index: int) -> bool:
        """Whether the grammar allows the token at ``index`` of the vocabulary array now."""
        self._one[0] = self._every[index]
        self._apply(self._grammar, 1)
        return bool(np.isfinite(self._one["logit"][0]))

    def sample(self, row: int) -> int:
        """The next token after the logits in batch row ``row`` (accepted by the samplers)."""
        import llama_cpp

        every = self._every
        every["logit"] = self._side.logits(row)
        self._apply(self._penalties, 0)
        best = int(np.argmax(every["logit"]))
        if not self._allows(best):  # the next best, one by one, then the whole vocabulary
            logits = every["logit"]
            near = np.argpartition(-logits, _NEAR)[:_NEAR]
            near = near[np.lexsort((near, -logits[near]))]  # by logit, ties by token id
            best = next((int(i) for i in near[1:] if self._allows(int(i))), -1)
            if best < 0:
                self._apply(self._grammar, 0)
                best = int(np.argmax(logits))
        token = int(every["id"][best])
        llama_cpp.llama_sampler_accept(self._penalties, token)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        return token

    def close(self) -> None:
        """Free both samplers."""
        import llama_cpp

        for sampler in (self._penalties, self._grammar):
            llama_cpp.llama_sampler_free(sampler)
