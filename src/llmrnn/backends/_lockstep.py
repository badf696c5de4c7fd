"""Different prompts decoded together, one llama.cpp sequence per lane (``complete_batch``).

``llmrnn.lockstep`` steps many recurrences side by side; each round of its calls comes here at
once. The calls run on a second context of the shared model (``_llama_private.SideContext``)
with one KV sequence per lane, a lane per caller (the ``keys`` the driver gives: one per
series), so a series' next prompt reuses what its lane already holds (the reflection's
conversation for the three section rewrites, for example). Each round:

1. every call's prompt but its last token is evaluated, one lane per decode (only what a lane
   does not hold yet), in the main context's batches when the run is exact (the default; see
   :func:`_prefill`). A lane whose prompt shares a longer prefix with what another lane holds
   (the instructions that every row of a ``predict_proba`` shares, for example) gets that
   lane's cells copied (``llama_memory_seq_cp``) instead of evaluating the prefix again, when
   the copy saves at least ``_SHARE_MIN`` tokens;
2. generation, each call with its own sampler chain (penalties, grammar, greedy or seeded
   draw: what ``create_completion`` builds), its own stop strings, end-of-generation tokens
   and ``halt`` check. In a run that is not exact (a panel's steps) the last tokens of every
   prompt are decoded together, then each decode advances every unfinished call by one
   token; an exact run generates call by call, one token per decode, as the main context
   does (a token decoded beside other lanes' can come out different in its last bits).

The driver calls :func:`begin` at the start of every lockstep run, which empties the lanes, so
a run's results depend on its own calls only: the same data gives the same text run after run.
llama.cpp's arithmetic depends on how tokens share a batch: in an exact run a lane's scores and
texts are the main context's to the bit; in a run that is not (a panel's steps) a lane's text
may differ in rare tokens from the same prompt run alone (``benchmarks/lockstep.py`` counts
how often).
"""

from __future__ import annotations

import time
from bisect import bisect_left, insort
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._llama_private import SideContext
from ._model_cache import BLOCK as _BLOCK
from ._model_cache import SharedModel
from .base import Completion, log_softmax

__all__ = ["Lanes", "begin", "complete_batch", "score_batch"]

#: Fewest prompt tokens a copy of another lane's cells must save (a copy moves a whole KV
#: stream, about what evaluating a few tokens costs on a CPU).
_SHARE_MIN = 32


@dataclass
class Lanes:
    """The lockstep context of a shared model and what each lane's KV sequence holds."""

    side: SideContext
    held: list[list[int]]
    cells: int  # KV cells of each lane
    owner: dict[Hashable, int] = field(default_factory=dict)
    #: per lane, the cells below this were evaluated in batches on the ``_BLOCK`` grid
    clean: list[int] = field(default_factory=list)
    #: the most cells one call has needed since the context was made (:func:`begin` grows
    #: the lanes from it)
    peak: int = 0

    def lane(self, key: Hashable) -> int:
        """The lane of ``key``: its own, else a free one."""
        if key not in self.owner:
            used = set(self.owner.values())
            self.owner[key] = next(i for i in range(len(self.held)) if i not in used)
        return self.owner[key]


def _cells(longest: int, limit: int) -> int:
    """KV cells for a lane whose longest call needs ``longest``: a quarter more, to grow, in
    llama.cpp's 256-cell pads, at most ``limit``."""
    return min(limit, -(-longest * 5 // 4 // 256) * 256)


def _make(shared: SharedModel, count: int, cells: int, peak: int = 0) -> Lanes:
    """A new lockstep context of ``count`` empty lanes of ``cells`` cells each."""
    if shared.lockstep is not None:
        shared.lockstep.side.close()
    side = SideContext(shared.llama, n_ctx=count * cells, n_seq_max=count, unified=False)
    held: list[list[int]] = [[] for _ in range(count)]
    lanes = Lanes(side, held, cells=cells, clean=[0] * count, peak=peak)
    shared.lockstep = lanes
    return lanes


def begin(shared: SharedModel, limit: int) -> None:
    """Empty every lane: a lockstep run starts from nothing (the caller holds the lock).

    Lanes that the calls so far have filled to within a quarter of their cells are made
    larger now, while they hold nothing: a context made larger in the middle of a run loses
    what its lanes hold, and a recurrent step's calls grow a little with its record (a
    2-series panel evaluated 1485 tokens a series at its seventh step for this, 867 since).
    ``limit`` is the most cells a lane may get (the backend's context size).
    """
    lanes = shared.lockstep
    if lanes is None:
        return
    cells = _cells(lanes.peak, limit)
    if cells > lanes.cells:
        _make(shared, len(lanes.held), cells, lanes.peak)
        return
    lanes.side.clear()
    lanes.held = [[] for _ in lanes.held]
    lanes.clean = [0] * len(lanes.held)
    lanes.owner.clear()


def _lanes(shared: SharedModel, keys: Sequence[Hashable], longest: int, limit: int) -> Lanes:
    """The shared model's lockstep context, (re)created when it lacks lanes or cells.

    Each lane has cells of its own (llama.cpp's per-sequence KV streams), so a token attends
    to its own series' cells only; ``longest`` is the most cells one call needs, ``limit``
    the most a lane may get (the backend's context size).
    """
    lanes = shared.lockstep
    count = len((set(lanes.owner) if lanes is not None else set()) | set(keys))
    longest = min(longest, limit)  # a lane never holds more than the context; longer calls stop
    if lanes is None or count > lanes.side.n_seq_max or longest > lanes.cells:
        count = max(count, len(keys))
        lanes = _make(shared, count, _cells(longest, limit))
    lanes.peak = max(lanes.peak, longest)
    return lanes


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of ``a`` and ``b``."""
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


class _Donors:
    """The lanes' held tokens in lexicographic order: the lane sharing the longest prefix with
    a prompt is one of the prompt's two neighbours in that order (skipping excluded lanes), so
    a donor is found in O(log lanes) comparisons instead of one per lane (at 256 lanes the
    search over every lane cost 0.33 s a round here, sorted 0.02 s: ``benchmarks/lockstep.py
    donors``)."""

    def __init__(self, held: list[list[int]]) -> None:
        self.key = [tuple(tokens) for tokens in held]
        self.order = sorted((key, lane) for lane, key in enumerate(self.key))

    def set(self, lane: int, tokens: list[int]) -> None:
        """``lane`` now holds ``tokens``."""
        self.order.pop(bisect_left(self.order, (self.key[lane], lane)))
        self.key[lane] = tuple(tokens)
        insort(self.order, (self.key[lane], lane))

    def best(self, tokens: list[int], skip: set[int]) -> tuple[int | None, int]:
        """The lane not in ``skip`` sharing the longest prefix with ``tokens``, and its length
        (of the two neighbours found, the lower lane on a tie: the same lane run after run;
        None and 0 when every lane is skipped)."""
        at = bisect_left(self.order, (tuple(tokens), -1))
        found: list[tuple[int, int]] = []
        for step, i in ((-1, at - 1), (1, at)):
            while 0 <= i < len(self.order) and self.order[i][1] in skip:
                i += step
            if 0 <= i < len(self.order):
                key, lane = self.order[i]
                found.append((-_common(key, tokens), lane))
        if not found:
            return None, 0
        common, lane = min(found)
        return lane, -common


def _prefill(
    lanes: Lanes, lane_of: list[int], prompts: list[list[int]], exact: bool = True
) -> list[int]:
    """Evaluate every prompt but its last token on its lane; return the tokens each reused.

    A prompt reuses the cells its lane holds, or another lane's when that lane shares a longer
    prefix with it (copied, at least ``_SHARE_MIN`` tokens more). llama.cpp's arithmetic
    depends on how tokens share a batch, so with ``exact`` the batches are the main context's
    (``llama_cpp._prefill``): cells are reused only up to a multiple of ``_BLOCK`` tokens
    evaluated in batches starting on that grid, the whole blocks after them are evaluated in
    batches of ``n_batch`` and the partial block in one batch, and a lane's logits are the
    main context's for the same prompt, to the bit. Without it every shared token is reused
    (the generated ones too) and the rest is one batch: faster, and a lane's text may differ
    in rare tokens from the same prompt run alone.
    """
    side, reused = lanes.side, []
    pending: set[int] = set()  # lanes given a copy that no decode has carried out yet
    donors = _Donors(lanes.held)

    def usable(lane: int, common: int) -> int:
        return min(common, lanes.clean[lane]) // _BLOCK * _BLOCK if exact else common

    for lane, tokens in zip(lane_of, prompts):
        body = tokens[:-1]
        start = usable(lane, _common(lanes.held[lane], body))
        clean = min(start, lanes.clean[lane])
        donor, shared = donors.best(body, pending | {lane})
        shared = usable(donor, shared) if donor is not None else 0
        if donor is not None and shared >= start + _SHARE_MIN:
            side.copy(donor, lane)
            start, clean = shared, min(shared, lanes.clean[donor])
        else:
            donor = None
        if not side.keep(lane, start):  # a recurrent model's cache: start the lane again
            side.keep(lane, 0)
            start = clean = 0
        lanes.held[lane] = list(tokens[:start])
        reused.append(start)
        if donor is not None and start == len(body):
            pending.add(lane)  # nothing to decode: the copy happens with the last tokens
        # one lane per decode: llama.cpp splits a batch of several sequences on separate KV
        # streams into small equal parts: 9.2 s instead of 6.3 s for 8 prompts here
        if exact:
            whole = max(start, len(body) // _BLOCK * _BLOCK)
            step = side.n_batch
            spans = [(at, min(at + step, whole)) for at in range(start, whole, step)]
            spans += [(whole, len(body))] if len(body) > whole else []
            clean = whole
        else:
            step = side.batch_size
            spans = [(at, min(at + step, len(body))) for at in range(start, len(body), step)]
            clean = clean // _BLOCK * _BLOCK  # the cells off the grid are not
        for first, end in spans:
            side.decode([(tokens[p], p, lane, False) for p in range(first, end)])
        if spans:
            pending.clear()  # a decode carries out every copy asked for before it
        lanes.held[lane] = list(body)  # a donor for the lanes after it
        lanes.clean[lane] = clean
        donors.set(lane, body)
    return reused


def _last_rows(lanes: Lanes, lane_of: list[int], prompts: list[list[int]]) -> list[int]:
    """Decode every prompt's last token together; return the row of each one's logits."""
    rows = lanes.side.decode(
        [(tokens[-1], len(tokens) - 1, lane, True) for lane, tokens in zip(lane_of, prompts)]
    )
    for lane, tokens in zip(lane_of, prompts):
        lanes.held[lane].append(tokens[-1])
    return rows


def _cut_at_stop(text: str, stop: Sequence[str]) -> str | None:
    """``text`` up to its earliest stop string, or None when it holds none."""
    found = [text.index(s) for s in stop if s and s in text]
    return text[: min(found)] if found else None


def _generate(
    llama: Any,
    lanes: Lanes,
    lane_of: list[int],
    prompts: list[list[int]],
    calls: Sequence[Any],
    samplers: list[Any],
    group: list[int],
    outputs: list[list[int]],
    texts: list[str],
    finish: list[str | None],
) -> None:
    """Generate the continuations of the calls in ``group`` together, each decode advancing
    every unfinished one by a token; fill their ``outputs``, ``texts`` and ``finish``."""
    side = lanes.side
    rows = dict(
        zip(group, _last_rows(lanes, [lane_of[i] for i in group], [prompts[i] for i in group]))
    )
    for step in range(max(calls[i].max_tokens for i in group)):
        for i in group:
            if finish[i] is not None:
                continue
            call = calls[i]
            if step >= call.max_tokens:
                finish[i] = "length"
                continue
            token = samplers[i].sample(rows[i])
            if side.is_end(token):
                finish[i] = "stop"
                continue
            outputs[i].append(token)
            text = llama.detokenize(outputs[i]).decode("utf-8", errors="ignore")
            cut = _cut_at_stop(text, call.stop)
            if cut is not None:
                texts[i], finish[i] = cut, "stop"
                continue
            texts[i] = text
            if call.halt is not None and call.halt(text):
                finish[i] = "halt"
            elif len(outputs[i]) >= call.max_tokens:
                finish[i] = "length"
            elif len(lanes.held[lane_of[i]]) + 1 >= lanes.cells:  # the lane is full
                finish[i] = "length"
        active = [i for i in group if finish[i] is None]
        if not active:
            break
        steps = []
        for i in active:
            lane = lane_of[i]
            steps.append((outputs[i][-1], len(lanes.held[lane]), lane))
            lanes.held[lane].append(outputs[i][-1])
        for i, row in zip(active, side.advance(steps)):
            rows[i] = row


def complete_batch(
    shared: SharedModel,
    calls: Sequence[Any],
    keys: Sequence[Hashable],
    prompts: list[list[int]],
    grammars: list[Any],
    limit: int,
    exact: bool = True,
) -> list[Completion]:
    """Every call's continuation, decoded together (the caller holds the model's lock).

    Parameters
    ----------
    shared : SharedModel
        The model.
    calls : sequence of llmrnn.lockstep.Generate
        The calls: their ``max_tokens``, ``temperature``, ``seed``, ``stop``,
        ``repeat_penalty`` and ``halt``.
    keys : sequence of hashable
        One per call: the caller it serves (a lane each).
    prompts : list of list of int
        Each call's prompt, tokenized.
    grammars : list
        Each call's compiled grammar, or None.
    limit : int
        Most KV cells a lane may get (the backend's context size).
    exact : bool, default=True
        Prompts evaluated in the main context's batches (:func:`_prefill`).

    Returns
    -------
    list of Completion
        In the order of ``calls``; ``seconds`` is the round's wall time shared out equally.
    """
    llama, n = shared.llama, len(calls)
    longest = max(len(p) + c.max_tokens for p, c in zip(prompts, calls))
    lanes = _lanes(shared, keys, longest, limit)
    lane_of = [lanes.lane(key) for key in keys]
    side = lanes.side
    start = time.perf_counter()
    samplers: list[Any] = []
    outputs: list[list[int]] = [[] for _ in calls]
    texts = [""] * n
    finish: list[str | None] = [None] * n
    try:
        reused = _prefill(lanes, lane_of, prompts, exact)
        samplers = [
            side.sampler(
                g, c.temperature, c.seed, repeat_penalty=c.repeat_penalty, grammar_text=c.grammar
            )
            for g, c in zip(grammars, calls)
        ]
        # An exact run generates call by call, one token per decode, as the main context does:
        # a token decoded beside other lanes' can come out different in the last bits (with
        # the 1.5B Q4_K_M model, enough to change a word of a rule check, and so the row's
        # probabilities). A run that is not exact (a panel's steps) advances every call in
        # one decode.
        for group in [[i] for i in range(n)] if exact else [list(range(n))]:
            _generate(
                llama, lanes, lane_of, prompts, calls, samplers, group, outputs, texts, finish
            )
    finally:
        for sampler in samplers:
            sampler.close()
    seconds = (time.perf_counter() - start) / n
    return [
        Completion(
            text=texts[i],
            prompt_tokens=len(prompts[i]) - reused[i],
            cached_tokens=reused[i],
            generated_tokens=len(outputs[i]),
            seconds=seconds,
            truncated=finish[i] == "length",
        )
        for i in range(n)
    ]


def score_batch(
    shared: SharedModel,
    keys: Sequence[Hashable],
    prompts: list[list[int]],
    options: list[list[list[int]]],
    limit: int,
) -> list[tuple[np.ndarray, Completion]]:
    """Each prompt's log-probability of each of its options, decoded together.

    ``options[i]`` are prompt ``i``'s options, tokenized with their end token; every prompt
    has the same number of options. The prompts are evaluated as in an exact run of
    :func:`complete_batch`; then each option costs one decode of its tokens after the first,
    lane by lane, as on the main context.
    """
    n = len(prompts)
    longest = max(len(p) + max(map(len, o)) for p, o in zip(prompts, options))
    lanes = _lanes(shared, keys, longest, limit)
    lane_of = [lanes.lane(key) for key in keys]
    side = lanes.side
    start = time.perf_counter()
    reused = _prefill(lanes, lane_of, prompts)
    # Every decode holds one lane's tokens only, in the main context's batches (the last
    # token alone, then each option's tokens in one decode): a row's scores then are the
    # main context's to the bit, whatever other rows it is scored beside (decoded beside
    # other lanes, the 1.5B Q4_K_M model's scores moved by up to 3.7e-3).
    first = []
    for lane, tokens in zip(lane_of, prompts):
        (row,) = _last_rows(lanes, [lane], [tokens])
        first.append(log_softmax(np.array(side.logits(row))))
    scores = [[f[o[0]] for o in opts] for f, opts in zip(first, options)]
    evaluated = [len(p) - r for p, r in zip(prompts, reused)]
    width = side.batch_size
    for k in range(len(options[0])):
        for i in range(n):
            option, lane, base = options[i][k], lane_of[i], len(prompts[i])
            side.keep(lane, base)  # the previous option's tokens
            entries = [(t, base + j, lane, True) for j, t in enumerate(option[:-1])]
            evaluated[i] += len(entries)
            got = []
            for at in range(0, len(entries), width):  # rows of one decode only: read as we go
                placed = side.decode(entries[at : at + width])
                got += [log_softmax(np.array(side.logits(row))) for row in placed]
            scores[i][k] += float(sum(r[t] for r, t in zip(got, option[1:])))
    for i in range(n):
        side.keep(lane_of[i], len(prompts[i]))  # the lane holds the prompt again
    seconds = (time.perf_counter() - start) / n
    out = []
    for i in range(n):
        logprobs = np.array(scores[i], dtype=float)
        out.append(
            (
                logprobs,
                Completion(
                    text="",
                    prompt_tokens=evaluated[i],
                    cached_tokens=reused[i],
                    generated_tokens=0,
                    seconds=seconds,
                ),
            )
        )
    return out
