"""The LLM-as-RNN recurrence, free of sktime, scikit-learn and llama.cpp.

One step at time t (arXiv 2601.13352):

1. **predict**: memory h(t-1) + observation x(t) -> prediction y^(t) (grammar-constrained);
2. **reflect**: compare y^(t) with the truth y(t) (``feedback="truth"``) or, without truth, ask
   the model to judge its own prediction against stated criteria (``feedback="judge"``) -> e(t);
3. **rewrite**: h(t-1), x(t), y^(t), e(t) -> h(t), at most ``memory_words`` words.

The three calls continue one conversation, so each call re-evaluates only its own new tokens.
Baselines (``strategy``): "zero_shot" (phase 1 only, no memory), "full_history" (every past step
with its outcome appended until the token budget is full, oldest dropped first), "memprompt" (an
append-only list of short per-step feedback notes under the same budget).

A step never mutates anything: :meth:`Recurrence.step` returns a new :class:`State` and a
:class:`~llmrnn.trace.StepRecord`, and the estimator commits both, or neither if a later step
fails. A model's malformed answer is expected: it is replaced by the task's fallback and recorded
in the record's ``fault``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import prompts
from .backends.base import Backend, Completion, Message
from .encoding import ParseError
from .tasks import Task
from .trace import StepRecord

__all__ = [
    "STRATEGIES",
    "FEEDBACKS",
    "SAMPLE_TEMPERATURE",
    "ContextBudgetError",
    "LoopConfig",
    "State",
    "Recurrence",
]

STRATEGIES = ("rnn", "zero_shot", "full_history", "memprompt")
FEEDBACKS = ("truth", "judge")

#: Temperature of the seeded samples behind intervals and quantiles when ``temperature`` is lower.
SAMPLE_TEMPERATURE = 0.7

_TURN_OVERHEAD = 16  # tokens a chat template adds around one message
_NOTE_WORDS = 40  # a memprompt note keeps at most this many words of the feedback
# Small models loop in free text ("The last change was ... The last change was ..."); a mild
# repetition penalty on reflections and rewrites (never on numeric answers) curbs it.
_TEXT_REPEAT_PENALTY = 1.15


class ContextBudgetError(ValueError):
    """The prompt cannot fit ``context_tokens`` even with the shortest observation."""


@dataclass(frozen=True)
class LoopConfig:
    """Settings of the recurrence (validated by the estimators).

    Parameters
    ----------
    strategy : {"rnn", "zero_shot", "full_history", "memprompt"}
    feedback : {"truth", "judge"}
    memory_words : int
        Most words in the memory.
    context_tokens : int
        The token budget every prompt (and its answers) must fit.
    temperature : float
        Sampling temperature of predictions and rewrites (0 = greedy).
    seed : int
        Base seed of every call.
    feedback_tokens : int
        Most tokens of a reflection.
    """

    strategy: str = "rnn"
    feedback: str = "truth"
    memory_words: int = 200
    context_tokens: int = 4096
    temperature: float = 0.0
    seed: int = 0
    feedback_tokens: int = 64

    @property
    def memory_tokens(self) -> int:
        """Token bound of a memory rewrite (about 1.6 tokens a word, numbers included)."""
        return int(self.memory_words * 1.6) + 16


@dataclass(frozen=True)
class State:
    """The recurrent state h(t).

    Attributes
    ----------
    memory : str
        The natural-language memory (rnn).
    entries : tuple of str
        Past steps (full_history) or feedback notes (memprompt), oldest first.
    steps : int
        Steps taken so far.
    """

    memory: str = prompts.DEFAULT_MEMORY
    entries: tuple[str, ...] = ()
    steps: int = 0


def _clean(text: str) -> str:
    """Strip a free-text answer of surrounding space and of tags it must not carry."""
    text = re.sub(r"</?\s*(memory|data)\s*>", "", text, flags=re.IGNORECASE)
    return prompts.escape(text.strip())


_PIECE = re.compile(r"[^\n.!?]*(?:[.!?]+|\n|$)")


def _pieces(text: str) -> list[tuple[int, int, str]]:
    """Sentences and lines of ``text`` as (start, end, key); the key ignores case, bullets,
    punctuation and spacing, so "- The series rises." and "  the series rises" match."""
    found = []
    for match in _PIECE.finditer(text):
        if match.start() == match.end():
            continue
        key = " ".join(re.sub(r"[^a-z0-9+\-]+", " ", match.group().lower()).split()).strip("- ")
        found.append((match.start(), match.end(), key))
    return found


def _dedupe_sentences(text: str) -> tuple[str, int]:
    """Drop sentences or lines that repeat an earlier one; return the text and the count."""
    seen: set[str] = set()
    kept: list[str] = []
    dropped = 0
    for start, end, key in _pieces(text):
        if key and key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(text[start:end])
    return ("".join(kept).strip() if dropped else text), dropped


def _looping(text: str) -> bool:
    """True once the last finished sentence or line repeats an earlier one (a small model's loop).

    Checked after every generated token of a reflection or rewrite, so a loop costs one repeated
    sentence instead of the whole token budget; the repeat itself is removed afterwards.
    """
    finished = [key for _, end, key in _pieces(text) if key and text[end - 1] in ".!?\n"]
    return len(finished) >= 2 and finished[-1] in finished[:-1]


def _cap_words(text: str, words: int) -> tuple[str, bool]:
    """Cut ``text`` after ``words`` words, keeping its line breaks; say whether it was cut."""
    matches = list(re.finditer(r"\S+", text))
    if len(matches) <= words:
        return text, False
    return text[: matches[words - 1].end()], True


def _finished(text: str) -> str:
    """Drop a cut text's unfinished last sentence or line, if a finished one comes before it."""
    text = text.rstrip()
    if not text or text[-1] in ".!?":
        return text
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)|\n", text)]
    return text[: ends[-1]].rstrip() if ends else text


class Recurrence:
    """Runs steps of the LLM-as-RNN loop for one task on one backend.

    Parameters
    ----------
    backend : Backend
        The language model.
    task : Task
        How observations are rendered and answers parsed and scored.
    config : LoopConfig
        Strategy, feedback mode and budgets.
    """

    def __init__(self, backend: Backend, task: Task, config: LoopConfig) -> None:
        self.backend = backend
        self.task = task
        self.config = config
        self._reserve_cache: dict[int, int] = {}

    # -- prompt assembly -------------------------------------------------------------------
    def _system(self, memory: str, entries: tuple[str, ...]) -> str:
        words = self.task.words
        text = prompts.SYSTEM.format(role=words["role"], task=prompts.escape(self.task.description))
        strategy = self.config.strategy
        if strategy == "rnn":
            text += prompts.MEMORY_BLOCK.format(memory=memory)
        elif strategy == "full_history" and entries:
            text += prompts.HISTORY_BLOCK.format(entries="\n".join(entries))
        elif strategy == "memprompt" and entries:
            text += prompts.NOTES_BLOCK.format(entries="\n".join(entries))
        return text

    def _reserve(self, horizon: int) -> int:
        """Tokens kept free after the prediction prompt for the rest of the step."""
        if horizon not in self._reserve_cache:
            reserve = self.task.max_tokens(horizon) + _TURN_OVERHEAD
            if self.config.strategy != "zero_shot":
                words = self.task.words
                reflect = prompts.REFLECT_TRUTH.format(outcome="", **words)
                reflect += prompts.REFLECT_JUDGE.format(**words)
                reserve += self.config.feedback_tokens + _TURN_OVERHEAD * 2
                reserve += self.backend.count_tokens(reflect)
            if self.config.strategy == "rnn":
                reserve += self.config.memory_tokens + _TURN_OVERHEAD * 2
                reserve += self.backend.count_tokens(prompts.REWRITE)
            self._reserve_cache[horizon] = reserve
        return self._reserve_cache[horizon]

    def messages(
        self, state: State, observation: Any, horizon: int
    ) -> tuple[list[Message], tuple[str, ...], Any]:
        """The prediction conversation, fitted to ``context_tokens``.

        Oldest history entries go first, then the oldest part of the observation; the memory is
        never cut. Returns the messages, the entries kept and the observation used.

        Raises
        ------
        ContextBudgetError
            If even the shortest observation does not fit.
        """
        entries = state.entries
        budget = self.config.context_tokens - self._reserve(horizon)
        question = self.task.question(horizon, observation)
        while True:
            data = prompts.escape(self.task.render_observation(observation))
            msgs = [
                Message("system", self._system(state.memory, entries)),
                Message("user", prompts.OBSERVATION.format(observation=data, question=question)),
            ]
            used = self.backend.count_tokens(self.backend.render(msgs))
            if used <= budget:
                return msgs, entries, observation
            if entries:
                # Drop the oldest entries the excess needs, and a quarter of the budget more:
                # every drop changes the prompt right after the instructions (the KV cache is
                # lost from there), so dropping in chunks keeps the prefix for many steps.
                excess, cut = used - budget + budget // 4, 0
                while cut < len(entries) and excess > 0:
                    excess -= self.backend.count_tokens(entries[cut]) + 1
                    cut += 1
                entries = entries[cut:]
                continue
            smaller = self.task.shrink(observation)
            if smaller is None:
                raise ContextBudgetError(
                    f"context_tokens={self.config.context_tokens} cannot hold one prompt and its "
                    f"answers ({used} tokens of prompt plus {self._reserve(horizon)} reserved): "
                    "raise context_tokens or lower memory_words."
                )
            observation = smaller

    # -- phase 1 ---------------------------------------------------------------------------
    def _answer(
        self, prompt: str, observation: Any, horizon: int, *, temperature: float, seed: int
    ) -> tuple[Any, Completion, str]:
        if self.task.choices is not None:
            logprobs, completion = self.backend.score(prompt, self.task.choices)
            return int(np.argmax(logprobs)), completion, ""
        completion, first_error = None, ""
        # An unreadable answer is retried once, sampled (a greedy retry would repeat it), then
        # replaced by the task's fallback; both are recorded in the trace's fault column.
        for attempt, temp in enumerate((temperature, max(temperature, SAMPLE_TEMPERATURE))):
            completion = self.backend.complete(
                prompt,
                max_tokens=self.task.max_tokens(horizon),
                grammar=self.task.grammar(horizon),
                temperature=temp,
                seed=seed + attempt,
            )
            try:
                value = self.task.parse(completion.text, observation, horizon)
            except ParseError as exc:
                first_error = first_error or str(exc)
                continue
            fault = f"unreadable prediction ({first_error}): retried" if attempt else ""
            return value, completion, fault
        value, rule = self.task.fallback(observation, horizon)
        return value, completion, f"unreadable prediction twice ({first_error}): {rule}"

    def predict(self, state: State, observation: Any, horizon: int = 1) -> tuple[Any, str]:
        """Predict ``horizon`` steps ahead with the current state, in one generation.

        Returns
        -------
        prediction, fault
            The task's prediction and "" or what went wrong.
        """
        msgs, _, observation = self.messages(state, observation, horizon)
        prediction, _, fault = self._answer(
            self.backend.render(msgs),
            observation,
            horizon,
            temperature=self.config.temperature,
            seed=self.config.seed + state.steps,
        )
        return prediction, fault

    def probabilities(self, state: State, observation: Any) -> np.ndarray:
        """Probability of each of the task's choices, scored from the model's logits.

        The prompt is evaluated once; each choice then costs only its own tokens.
        """
        msgs, _, _ = self.messages(state, observation, 1)
        logprobs, _ = self.backend.score(self.backend.render(msgs), self.task.choices)
        weights = np.exp(logprobs - np.max(logprobs))
        return weights / weights.sum()

    def sample(self, state: State, observation: Any, horizon: int, n: int) -> np.ndarray:
        """Draw ``n`` seeded samples of the prediction; the prompt is evaluated once.

        A backend with ``complete_many`` generates the samples side by side; an unreadable
        sample is drawn again alone, like any unreadable answer (retry, then the fallback).
        """
        msgs, _, observation = self.messages(state, observation, horizon)
        prompt = self.backend.render(msgs)
        temperature = max(self.config.temperature, SAMPLE_TEMPERATURE)
        seeds = [self.config.seed + i for i in range(n)]
        many = getattr(self.backend, "complete_many", None)
        texts: list[str | None] = [None] * n
        if many is not None:
            completions = many(
                prompt,
                seeds=seeds,
                max_tokens=self.task.max_tokens(horizon),
                grammar=self.task.grammar(horizon),
                temperature=temperature,
            )
            texts = [c.text for c in completions]
        draws = []
        for seed, text in zip(seeds, texts):
            value = None
            if text is not None:
                try:
                    value = self.task.parse(text, observation, horizon)
                except ParseError:
                    value = None
            if value is None:  # drawn alone: no batch, or an unreadable batched sample
                again = seed if text is None else seed + n
                value = self._answer(
                    prompt, observation, horizon, temperature=temperature, seed=again
                )[0]
            draws.append(value)
        return np.asarray(draws, dtype=float)

    def _text(self, msgs: list[Message], primer: str, max_tokens: int, seed: int) -> Completion:
        """A free-text answer that starts with ``primer``; the returned text includes it."""
        done = self.backend.complete(
            self.backend.render(msgs) + primer,
            max_tokens=max_tokens,
            temperature=self.config.temperature,
            seed=seed,
            stop=prompts.TEXT_STOP,
            repeat_penalty=_TEXT_REPEAT_PENALTY,
            halt=_looping,
        )
        return replace(done, text=primer + done.text)

    # -- one full step ---------------------------------------------------------------------
    def step(
        self, state: State, observation: Any, truth: Any = None, index: object = None
    ) -> tuple[State, StepRecord]:
        """Run the three phases on one observation and return the new state and its record.

        Parameters
        ----------
        state : State
            h(t-1); not modified.
        observation : object
            x(t), as the task understands it.
        truth : object, optional
            y(t). Required with ``feedback="truth"``; with "judge" it is only scored.
        index : object, optional
            Label of the step for the trace (time point, row).
        """
        cfg = self.config
        if truth is None and cfg.feedback == "truth":
            raise ValueError("feedback='truth' needs the true value of every step")
        start = time.perf_counter()
        seed = cfg.seed + state.steps
        faults: list[str] = []
        msgs, entries, observation = self.messages(state, observation, 1)
        prediction, answer, fault = self._answer(
            self.backend.render(msgs), observation, 1, temperature=cfg.temperature, seed=seed
        )
        calls = [answer]
        if fault:
            faults.append(fault)
        outcome = self.task.outcome(prediction, truth, observation) if truth is not None else ""
        feedback = outcome
        memory = state.memory
        summary = self.task.summary(observation)
        said = self.task.render_prediction(prediction)

        needs_reflection = cfg.strategy in ("rnn", "memprompt") or (
            cfg.strategy == "full_history" and cfg.feedback == "judge"
        )
        if needs_reflection:
            words = self.task.words
            if cfg.feedback == "truth":
                ask = prompts.REFLECT_TRUTH.format(outcome=outcome, **words)
            else:
                ask = prompts.REFLECT_JUDGE.format(**words)
            msgs = msgs + [Message("assistant", answer.text), Message("user", ask)]
            primer = prompts.REFLECT_PRIMER.format(**words)
            reflection = self._text(msgs, primer, cfg.feedback_tokens, seed)
            calls.append(reflection)
            note = _clean(reflection.text.removeprefix(prompts.REFLECT_LABEL))
            if not reflection.text[len(primer) :].strip():
                note = ""
                faults.append("empty reflection: kept the outcome alone as feedback")
            feedback = f"{outcome} {note}".strip() if cfg.feedback == "truth" else note
            if cfg.strategy == "rnn":
                msgs = msgs + [
                    Message("assistant", reflection.text),
                    Message("user", prompts.REWRITE.format(words=cfg.memory_words)),
                ]
                primer = prompts.REWRITE_PRIMER.format(**words)
                rewrite = self._text(msgs, primer, cfg.memory_tokens, seed)
                calls.append(rewrite)
                new_memory, repeats = _dedupe_sentences(_clean(rewrite.text))
                if repeats:
                    faults.append(
                        f"repetitive memory rewrite: dropped {repeats} repeated sentences"
                    )
                new_memory, cut = _cap_words(new_memory, cfg.memory_words)
                if not rewrite.text[len(primer) :].strip():
                    faults.append("empty memory rewrite: kept the previous memory")
                else:
                    if cut or rewrite.truncated:
                        new_memory = _finished(new_memory)
                        faults.append(
                            f"memory rewrite over budget: cut to {cfg.memory_words} words "
                            "at the last finished sentence"
                        )
                    memory = new_memory

        if cfg.strategy == "full_history":
            truth_text = self.task.render_prediction(truth) if truth is not None else "unknown"
            entry = f"- data: {summary} | predicted: {said} | actual: {truth_text}"
            if cfg.feedback == "judge" and feedback:
                entry += f" | judged: {feedback}"
            entries = entries + (prompts.escape(entry),)
        elif cfg.strategy == "memprompt" and feedback:
            note, _ = _cap_words(feedback, _NOTE_WORDS)
            entries = entries + (f"- {note}",)

        new_state = replace(state, memory=memory, entries=entries, steps=state.steps + 1)
        record = StepRecord(
            step=state.steps,
            index=index,
            observation=self.task.trace_observation(observation),
            prediction=self.task.trace_text(prediction),
            truth=self.task.trace_text(truth) if truth is not None else "",
            error=self.task.error(prediction, truth) if truth is not None else float("nan"),
            feedback=feedback,
            memory=memory if cfg.strategy == "rnn" else "\n".join(entries),
            prompt_tokens=sum(c.prompt_tokens for c in calls),
            cached_tokens=sum(c.cached_tokens for c in calls),
            generated_tokens=sum(c.generated_tokens for c in calls),
            calls=len(calls),
            seconds=time.perf_counter() - start,
            fault="; ".join(faults),
        )
        return new_state, record
