"""The LLM-as-RNN recurrence, free of sktime, scikit-learn and llama.cpp.

One step at time t (arXiv 2601.13352):

1. **predict**: memory h(t-1) + observation x(t) -> answer, through the task's guard ->
   prediction y^(t) (grammar-constrained);
2. **reflect**: compare y^(t) with the truth y(t) (``feedback="truth"``), given facts computed
   from the step record, or, without truth, ask the model to judge its own answer against
   stated criteria (``feedback="judge"``) -> e(t);
3. **rewrite**: h(t-1) without its Rules, x(t), y^(t), e(t) -> h(t), one section at a time,
   validated (``memory.settle_rewrite``), at most ``memory_words`` words.

Reflect and rewrite are one conversation of their own (see ``prompts.REFLECT_SYSTEM``: in the
prediction's conversation the models copied their old memory); the rewrite's section calls
continue one prompt, so most of each comes from llama.cpp's KV cache. What each strategy does
in each phase is the table :data:`PLANS`: "rnn" all three; the baselines "zero_shot" (phase 1
only, no memory), "full_history" (every past step with its outcome appended until the token
budget is full, oldest dropped first) and "memprompt" (an append-only list of short per-step
feedback notes under the same budget).

A step never mutates anything: :meth:`Recurrence.step` returns a new :class:`State` and a
:class:`~llmrnn.trace.StepRecord`, and the estimator commits both, or neither if a later step
fails. A model's malformed answer is expected: it is replaced by the task's fallback and recorded
in the record's ``fault``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from . import lockstep, prompts
from . import memory as mem
from .backends.base import Backend, Completion, Message
from .encoding import ParseError
from .lockstep import Generate, Score, Step
from .tasks import Task
from .trace import StepRecord

__all__ = [
    "STRATEGIES",
    "FEEDBACKS",
    "SAMPLE_TEMPERATURE",
    "ContextBudgetError",
    "LoopConfig",
    "State",
    "Replay",
    "PLANS",
    "Recurrence",
    "step_many",
]

STRATEGIES = ("rnn", "zero_shot", "full_history", "memprompt")
FEEDBACKS = ("truth", "judge")

#: Temperature of the seeded samples behind intervals and quantiles when ``temperature`` is lower.
SAMPLE_TEMPERATURE = 0.7

#: Steps of record kept in the state (older ones weigh < 5% in the guard's discounted fit).
RECORD_STEPS = 64

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
    check_tokens : int
        Labels only: most tokens of the line in which the model checks the row against its
        memory's Rules before the labels are scored (``prompts.LABEL_CHECK``); 0 scores the
        labels at once. Used by the memory strategy (rnn) only.
    """

    strategy: str = "rnn"
    feedback: str = "truth"
    memory_words: int = 200
    context_tokens: int = 4096
    temperature: float = 0.0
    seed: int = 0
    feedback_tokens: int = 48
    check_tokens: int = 0

    @property
    def memory_tokens(self) -> int:
        """Token bound of a memory rewrite (about 1.6 tokens a word, numbers included)."""
        return int(self.memory_words * 1.6) + 16

    @property
    def section_tokens(self) -> int:
        """Token bound of one memory section (its share of ``memory_tokens``)."""
        return self.memory_tokens // len(prompts.MEMORY_SECTIONS) + 8


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
    record : tuple
        The task's record of the newest steps with a truth (``Task.record_item``), oldest
        first: the facts shown to the reflect call and the evidence the guard weighs.
    """

    memory: str = prompts.DEFAULT_MEMORY
    entries: tuple[str, ...] = ()
    steps: int = 0
    record: tuple = ()

    def recorded(self, item: tuple) -> tuple:
        """The record with ``item`` appended, bounded to the newest ``RECORD_STEPS``."""
        return (*self.record, item)[-RECORD_STEPS:]


class Replay(NamedTuple):
    """What replaying a step needs: the state before it, its observation, truth and record."""

    state: State
    observation: Any
    truth: Any
    record: StepRecord


@dataclass(frozen=True)
class _Plan:
    """What one strategy does in each phase of a step."""

    block: str  # state shown in the system prompt: "memory", "history", "notes" or ""
    reflect: str  # when the reflect call runs: "always", "judge" (judge feedback only), "never"
    rewrite: bool  # whether the memory is rewritten
    append: str  # what the step appends to the entries: "history", "notes" or ""


#: The paper's strategies, phase by phase.
PLANS = {
    "rnn": _Plan(block="memory", reflect="always", rewrite=True, append=""),
    "zero_shot": _Plan(block="", reflect="never", rewrite=False, append=""),
    "full_history": _Plan(block="history", reflect="judge", rewrite=False, append="history"),
    "memprompt": _Plan(block="notes", reflect="always", rewrite=False, append="notes"),
}


class Recurrence:
    """Runs steps of the LLM-as-RNN loop for one task on one backend.

    Parameters
    ----------
    backend : Backend
        The language model.
    task : Task
        How observations are rendered and answers parsed, guarded and scored.
    config : LoopConfig
        Strategy, feedback mode and budgets.
    """

    def __init__(self, backend: Backend, task: Task, config: LoopConfig) -> None:
        self.backend = backend
        self.task = task
        self.config = config
        self.plan = PLANS[config.strategy]
        self._reserve_cache: dict[int, int] = {}

    # -- prompt assembly -------------------------------------------------------------------
    def _system(self, entries: tuple[str, ...]) -> str:
        words = self.task.words
        text = prompts.SYSTEM.format(role=words["role"], task=prompts.escape(self.task.description))
        block = self.plan.block
        if block == "history" and entries:
            text += prompts.HISTORY_BLOCK.format(entries="\n".join(entries))
        elif block == "notes" and entries:
            text += prompts.NOTES_BLOCK.format(entries="\n".join(entries))
        return text

    def _reflects(self) -> bool:
        return self.plan.reflect == "always" or (
            self.plan.reflect == "judge" and self.config.feedback == "judge"
        )

    def _reserve(self, horizon: int) -> int:
        """Tokens kept free after the prediction prompt for the rest of the step."""
        if horizon not in self._reserve_cache:
            reserve = self.task.max_tokens(horizon) + _TURN_OVERHEAD
            if self.task.choices is not None and self.plan.block == "memory":
                reserve += self.config.check_tokens + _TURN_OVERHEAD  # the rule check's line
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
        question = self.task.question(horizon, observation, follow=self.plan.block == "memory")
        while True:
            data = prompts.escape(self.task.render_observation(observation))
            memory = ""
            if self.plan.block == "memory":
                memory = prompts.MEMORY_BLOCK.format(memory=state.memory)
            user = prompts.OBSERVATION.format(
                observation=data,
                memory=memory,
                lead=prompts.LEADS[self.plan.block if memory or entries else ""],
                question=question,
            )
            msgs = [
                Message("system", self._system(entries)),
                Message("user", user),
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
    def _answer_gen(
        self,
        prompt: str,
        observation: Any,
        horizon: int,
        *,
        temperature: float,
        seed: int,
        memory: str,
    ) -> Step:
        """The model's answer as the task reads it (before the guard), its call and any fault.

        A generator (see ``lockstep``): yields the calls, returns ``(value, completion, fault,
        check)``, ``check`` the rule check's call or None (see :meth:`_check_gen`).
        """
        if self.task.choices is not None:
            prompt, check, fault = yield from self._check_gen(prompt, observation, seed, memory)
            logprobs, completion = yield Score(prompt, tuple(self.task.choices))
            return int(np.argmax(logprobs)), completion, fault, check
        completion, first_error = None, ""
        # An unreadable answer is retried once, sampled (a greedy retry would repeat it), then
        # replaced by the task's neutral fallback; both are recorded in the trace's fault column.
        for attempt, temp in enumerate((temperature, max(temperature, SAMPLE_TEMPERATURE))):
            completion = yield Generate(
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
            return value, completion, fault, None
        value, rule = self.task.fallback(observation, horizon)
        return value, completion, f"unreadable prediction twice ({first_error}): {rule}", None

    def _check_gen(self, prompt: str, observation: Any, seed: int, memory: str) -> Step:
        """The rule check of a label answer (``check_tokens`` > 0, memory strategies only).

        The model writes one line that checks the row (``observation``) against the Rules of
        its memory (``prompts.LABEL_CHECK``); the labels are then scored after that line, in
        ``prompt`` (the whole memory). Returns the prompt to score, the check's call (None when
        no check runs) and "" or its fault: an empty check (the embedded 135M model often ends
        the line at once) leaves the labels scored right after the question, as without a
        check. No check runs while the ``memory``'s Rules section is still
        ``prompts.EMPTY_SECTION`` (the first steps, and ``memory_effect``'s answers with the
        initial memory): there is nothing to check the row against, and the line cost the
        1.5B model 2-3 s a row.

        The line is written from the same prompt with the memory's other sections blank
        (``prompts.EMPTY_SECTION``): with the Patterns and Mistakes the 1.5B model had written
        beside its Rules ("My recent answers were incorrect, as the true label was up"), it read
        months 3, 8, 9 and 10 as outside "1, 3, 8, 9, 10" and followed its Rules at 0.667 of 24
        rows, 0.833 with them blank. The Rules line alone made it copy the Rules instead of
        checking the row (``docs/decisions.md``, "The rule check reads the Rules with the other
        notes blank").
        """
        if self.config.check_tokens <= 0 or self.plan.block != "memory":
            return prompt, None, ""
        rules = mem.rules_of(memory)
        if not rules or rules == prompts.EMPTY_SECTION:
            return prompt, None, ""
        blank = {name: prompts.EMPTY_SECTION for name in mem.SECTIONS[:-1]}
        alone = State(memory=mem.render_sections({**blank, mem.SECTIONS[-1]: rules}))
        msgs, _, _ = self.messages(alone, observation, 1)
        check = yield Generate(
            self.backend.render(msgs) + prompts.LABEL_CHECK,
            max_tokens=self.config.check_tokens,
            temperature=0.0,
            seed=seed,
            stop=("\n",),
        )
        line = " ".join(check.text.split())
        if not line:
            return prompt, check, "empty rule check: labels scored without it"
        return prompt + prompts.LABEL_CHECK + " " + line + prompts.LABEL_CHECK_ANSWER, check, ""

    def _rules(self, state: State) -> str:
        """The Rules section of ``state``'s memory, for the task's guard ("" for the strategies
        without a memory, and with judged feedback, whose Rules no facts suggest)."""
        if self.plan.block != "memory" or self.config.feedback != "truth":
            return ""
        return mem.rules_of(state.memory)

    def _answer(self, *args: Any, **options: Any) -> tuple[Any, Completion, str]:
        """:meth:`_answer_gen` run alone (its parameters)."""
        return lockstep.run(self.backend, [self._answer_gen(*args, **options)])[0][0]

    def answer_gen(self, state: State, observation: Any, horizon: int = 1) -> Step:
        """Generator form of :meth:`answer` (for ``lockstep.run``)."""
        msgs, _, observation = self.messages(state, observation, horizon)
        value, _, fault, _ = yield from self._answer_gen(
            self.backend.render(msgs),
            observation,
            horizon,
            temperature=self.config.temperature,
            seed=self.config.seed + state.steps,
            memory=state.memory,
        )
        return value, fault

    def answer(self, state: State, observation: Any, horizon: int = 1) -> tuple[Any, str]:
        """The model's raw answer with ``state`` (before the guard), and "" or its fault."""
        return lockstep.run(self.backend, [self.answer_gen(state, observation, horizon)])[0][0]

    def predict_gen(self, state: State, observation: Any, horizon: int = 1) -> Step:
        """Generator form of :meth:`predict` (for ``lockstep.run``)."""
        value, fault = yield from self.answer_gen(state, observation, horizon)
        prediction, _, guarded = self.task.settle(
            value, observation, state.record, self._rules(state)
        )
        return prediction, "; ".join(f for f in (fault, guarded) if f)

    def predict(self, state: State, observation: Any, horizon: int = 1) -> tuple[Any, str]:
        """Predict ``horizon`` steps ahead with the current state, in one generation.

        Returns
        -------
        prediction, fault
            The task's prediction (the answer through the task's guard) and "" or what went
            wrong.
        """
        return lockstep.run(self.backend, [self.predict_gen(state, observation, horizon)])[0][0]

    def probabilities_gen(self, state: State, observation: Any) -> Step:
        """Generator form of :meth:`probabilities` (for ``lockstep.run``)."""
        msgs, _, observation = self.messages(state, observation, 1)
        prompt, _, _ = yield from self._check_gen(
            self.backend.render(msgs), observation, self.config.seed + state.steps, state.memory
        )
        logprobs, _ = yield Score(prompt, tuple(self.task.choices))
        weights = np.exp(logprobs - np.max(logprobs))
        probs = weights / weights.sum()
        # the task's guard: a weight w below 1 moves 1 - w of the probability to its label
        label, w, _ = self.task.settle(
            int(np.argmax(probs)), observation, state.record, self._rules(state)
        )
        if w < 1:  # NaN (no rule to read) compares False
            probs = w * probs
            probs[label] += 1 - w
        return probs

    def probabilities(
        self, state: State, observations: Sequence[Any], batch: int = 16
    ) -> np.ndarray:
        """Probability of each of the task's choices for each observation, from the logits.

        Each prompt is evaluated once; each choice then costs only its own tokens. Up to
        ``batch`` rows are scored side by side when the backend can (``score_batch``; 1 scores
        row by row on the main context).

        Returns
        -------
        ndarray of shape (len(observations), len(choices))
        """
        rows = []
        for at in range(0, len(observations), batch):
            gens = [self.probabilities_gen(state, o) for o in observations[at : at + batch]]
            rows += [value for value, _ in lockstep.run(self.backend, gens)]
        return np.vstack(rows)

    def sample(self, state: State, observation: Any, horizon: int, n: int) -> np.ndarray:
        """Draw ``n`` seeded samples of the prediction; the prompt is evaluated once.

        A backend with ``complete_many`` generates the samples side by side; an unreadable
        sample is drawn again alone, like any unreadable answer (retry, then the fallback).
        Every sample passes through the task's guard with the same record and Rules.
        """
        msgs, _, observation = self.messages(state, observation, horizon)
        rules = self._rules(state)
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
                    prompt,
                    observation,
                    horizon,
                    temperature=temperature,
                    seed=again,
                    memory=state.memory,
                )[0]
            draws.append(self.task.settle(value, observation, state.record, rules)[0])
        return np.asarray(draws, dtype=float)

    def _text_gen(
        self, msgs: list[Message], primer: str, max_tokens: int, seed: int, stop: tuple = ()
    ) -> Step:
        """A free-text answer that starts with ``primer``; the returned text includes it."""
        done = yield Generate(
            self.backend.render(msgs) + primer,
            max_tokens=max_tokens,
            temperature=self.config.temperature,
            seed=seed,
            stop=(*stop, *prompts.TEXT_STOP),
            repeat_penalty=_TEXT_REPEAT_PENALTY,
            halt=mem.looping,
        )
        return replace(done, text=primer + done.text)

    # -- phases 2 and 3 --------------------------------------------------------------------
    def _reflect_gen(
        self,
        state: State,
        observation: Any,
        answer: Any,
        outcome: str,
        record: tuple,
        seed: int,
    ) -> Step:
        """Phase 2: the reflection e(t) on the answer, grounded in the record's facts.

        Its own conversation (``prompts.REFLECT_SYSTEM``): the memory without its Rules, the
        step's data and answer, the outcome and the facts (truth), or the judge's criteria.
        Returns the conversation so far, the reflection's call, the feedback text and faults.
        """
        cfg, words = self.config, self.task.words
        memory = ""
        if self.plan.block == "memory":
            kept = mem.parse_sections(state.memory)
            kept.pop(mem.SECTIONS[-1], None)
            memory = prompts.REFLECT_MEMORY.format(memory=mem.render_sections(kept))
        step = prompts.REFLECT_STEP.format(
            observation=prompts.escape(self.task.render_observation(observation)),
            answer=self.task.answer_text(answer),
        )
        if cfg.feedback == "truth":
            facts = self.task.facts(record)
            ask = prompts.REFLECT_TRUTH.format(
                memory=memory,
                step=step,
                outcome=outcome,
                facts=prompts.FACTS.format(facts=prompts.escape(facts)) if facts else "",
                **words,
            )
        else:
            ask = prompts.REFLECT_JUDGE.format(memory=memory, step=step, **words)
        system = prompts.REFLECT_SYSTEM.format(
            role=words["role"], task=prompts.escape(self.task.description)
        )
        msgs = [Message("system", system), Message("user", ask)]
        needed = self.backend.count_tokens(self.backend.render(msgs)) + cfg.feedback_tokens
        needed += _TURN_OVERHEAD
        if self.plan.rewrite:  # the rewrite continues this conversation: check it now, before
            # a long reflection could leave the step without room for the new memory
            rewrite = prompts.REWRITE.format(share=mem.section_words(cfg.memory_words), **words)
            needed += self.backend.count_tokens(rewrite) + cfg.memory_tokens + 2 * _TURN_OVERHEAD
        if needed > cfg.context_tokens:
            raise ContextBudgetError(
                f"context_tokens={cfg.context_tokens} cannot hold the reflection and the memory "
                f"rewrite ({needed} tokens with their answers): raise context_tokens, or lower "
                "window or memory_words."
            )
        primer = prompts.REFLECT_PRIMER.format(**words)
        reflection = yield from self._text_gen(
            msgs, primer, cfg.feedback_tokens, seed, stop=("\n",)
        )
        note = mem.clean(reflection.text.removeprefix(prompts.REFLECT_LABEL))
        faults = []
        if not reflection.text[len(primer) :].strip():
            note = ""
            faults.append("empty reflection: kept the outcome alone as feedback")
        feedback = f"{outcome} {note}".strip() if cfg.feedback == "truth" else note
        return msgs + [Message("assistant", reflection.text)], reflection, feedback, faults

    def _rewrite_gen(
        self, msgs: list[Message], memory: str, seed: int, rule: str | None = None
    ) -> Step:
        """Phase 3: h(t) from h(t-1) and the step, one section at a time, then validated.

        Continues the reflection's conversation, where the old memory stands without its Rules:
        the new Rules come from this step's outcome, facts and lesson; a section the rewrite
        loses keeps its previous text. With ``rule`` (``Task.suggested_rule``: the rule the
        facts end with), a Rules line that does not state it as it is gets it instead, and the
        repair is recorded.
        """
        cfg, words = self.config, self.task.words
        share = mem.section_words(cfg.memory_words)
        ask = prompts.REWRITE.format(share=share, **words)
        prompt = self.backend.render(msgs + [Message("user", ask)])
        needed = self.backend.count_tokens(prompt) + cfg.memory_tokens + _TURN_OVERHEAD
        if needed > cfg.context_tokens:
            raise ContextBudgetError(
                f"context_tokens={cfg.context_tokens} cannot hold the memory rewrite ({needed} "
                "tokens with its answer): raise context_tokens or lower memory_words."
            )
        lines, calls, copy_fault = [], [], ""
        for name in mem.SECTIONS:
            primer = prompts.REWRITE_PRIMERS[name].format(**words)
            rules = name == mem.SECTIONS[-1]
            done = yield Generate(
                prompt + primer,
                max_tokens=cfg.section_tokens,
                grammar=self.task.rule_grammar() if rules else None,
                temperature=cfg.temperature,
                seed=seed,
                stop=("\n", *(f"{other}:" for other in mem.SECTIONS), *prompts.TEXT_STOP),
                repeat_penalty=_TEXT_REPEAT_PENALTY,
                halt=mem.looping,
            )
            calls.append(done)
            line = primer + done.text.split("\n")[0]
            if not done.text.strip():
                line = f"{name}:"  # nothing written: the previous section is kept
            if rules and rule is not None and not mem.states(line[len(primer) :], rule):
                said = " ".join(line[len(primer) :].split())[:80]
                copy_fault = f"Rules line did not state the facts' rule ('{said}'): kept the rule"
                line = f"{primer.rstrip()} {rule}"
            lines.append(line)
            prompt += line + "\n"
        new_memory, repairs = mem.settle_rewrite(memory, "\n".join(lines), cfg.memory_words)
        if copy_fault:
            repairs.append(copy_fault)
        if any(c.truncated for c in calls) and not any("over budget" in r for r in repairs):
            new_memory = "\n".join(mem.finished(line) for line in new_memory.splitlines())
            repairs.append("memory rewrite over budget: cut at the last finished sentence")
        return new_memory, calls, repairs

    def _entry(self, observation: Any, said: Any, truth: Any, feedback: str) -> str:
        """The line a step appends to full_history's past steps or memprompt's notes."""
        if self.plan.append == "history":
            truth_text = self.task.render_prediction(truth) if truth is not None else "unknown"
            entry = prompts.HISTORY_ENTRY.format(
                data=self.task.summary(observation),
                said=self.task.render_prediction(said),
                truth=truth_text,
            )
            if self.config.feedback == "judge" and feedback:
                entry += prompts.HISTORY_JUDGED.format(feedback=feedback)
            return prompts.escape(entry)
        note, _ = mem.cap_words(feedback, _NOTE_WORDS)
        return prompts.NOTE_ENTRY.format(note=note)

    # -- what the memory changed -----------------------------------------------------------
    def memory_effect(self, steps: Sequence[Replay], initial: State) -> list[dict[str, Any]]:
        """Each step's answer with the memory it had, against the answer with ``initial``.

        Everything else in the prompt is the same (the observation and the record, from which
        the guard learns its weight), so a difference is the memory's doing. One model call
        per step; the steps are independent, so they are answered side by side (``lockstep``).

        Parameters
        ----------
        steps : sequence of Replay
            The steps to replay: the state before each, its observation, truth and record.
        initial : State
            The state whose memory (and entries) stand in for "nothing learned".

        Returns
        -------
        list of dict
            One per step: ``step, index, answer, answer_initial, prediction,
            prediction_initial, truth, error, error_initial, error_answer,
            error_answer_initial, changed``. ``error`` is the forecast's (after the guard's
            weight: the same slope for both, learned from the record, each capped by the loss
            budget for its own correction's size);
            ``error_answer`` is the answer's at full weight (the guard's bound only), so a
            memory that improves what the model says shows even while the guard trusts it
            little.
        """
        blanks = [replace(r.state, memory=initial.memory, entries=initial.entries) for r in steps]
        gens = [self.answer_gen(b, r.observation, 1) for b, r in zip(blanks, steps)]
        answers = [value[0] for value, _ in lockstep.run(self.backend, gens)]
        # the answers themselves, at full weight (the guard's bound, not its learned weight):
        # whether the memory improved what the model says, trusted or not
        full = replace(self.task, weight=1.0) if hasattr(self.task, "weight") else self.task
        rows = []
        for replay, again, blank in zip(steps, answers, blanks):
            state, observation, truth, record = replay
            answer = record.raw_answer
            prediction = self.task.settle(answer, observation, state.record, self._rules(state))[0]
            before = self.task.settle(again, observation, state.record, self._rules(blank))[0]
            said = full.settle(answer, observation, state.record)[0]
            said_initial = full.settle(again, observation, state.record)[0]
            rows.append(
                {
                    "step": record.step,
                    "index": record.index,
                    "answer": self.task.render_answer(answer),
                    "answer_initial": self.task.render_answer(again),
                    "prediction": self.task.trace_text(prediction),
                    "prediction_initial": self.task.trace_text(before),
                    "truth": self.task.trace_text(truth),
                    "error": self.task.error(prediction, truth),
                    "error_initial": self.task.error(before, truth),
                    "error_answer": self.task.error(said, truth),
                    "error_answer_initial": self.task.error(said_initial, truth),
                    "changed": not np.array_equal(np.asarray(answer), np.asarray(again)),
                }
            )
        return rows

    # -- a row seen with its truth, not stepped ---------------------------------------------
    def witness(self, state: State, observation: Any, truth: Any) -> State:
        """The state after a row seen with its truth but not stepped: no model call.

        The row enters the record as evidence (``Task.witness_item``), which the facts of
        later steps count; the memory, the entries and the step count stay as they were. A
        task whose record has no use for it (forecasts with a base) leaves the state unchanged.
        """
        item = self.task.witness_item(observation, truth, state.record)
        if item is None:
            return state
        return replace(state, record=state.recorded(item))

    # -- one full step ---------------------------------------------------------------------
    def step(
        self, state: State, observation: Any, truth: Any = None, index: object = None
    ) -> tuple[State, StepRecord]:
        """Run the three phases on one observation and return the new state and its record.

        The batch of one of :func:`step_many`; see :meth:`step_gen` for the parameters.
        """
        return step_many([(self, state, observation, truth, index)])[0]

    def step_gen(
        self, state: State, observation: Any, truth: Any = None, index: object = None
    ) -> Step:
        """One recurrent step as a generator of model calls (see ``lockstep``).

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

        # 1. predict with the memory
        msgs, entries, observation = self.messages(state, observation, 1)
        answer, call, fault, check = yield from self._answer_gen(
            self.backend.render(msgs),
            observation,
            1,
            temperature=cfg.temperature,
            seed=seed,
            memory=state.memory,
        )
        prediction, weight, guarded = self.task.settle(
            answer, observation, state.record, self._rules(state)
        )
        faults += [f for f in (fault, guarded) if f]
        calls = [call] if check is None else [check, call]
        said = self.task.render_answer(answer)
        if check is not None and check.text.strip():
            said += f" (check: {' '.join(check.text.split())})"
        record = state.record
        if truth is not None:
            item = self.task.record_item(
                answer, observation, truth, state.record, self._rules(state)
            )
            record = state.recorded(item)
        outcome = self.task.outcome(answer, truth, observation) if truth is not None else ""

        # 2. reflect on the error (truth) or judge the answer (no truth)
        feedback, memory = outcome, state.memory
        if self._reflects():
            talk, reflection, feedback, more = yield from self._reflect_gen(
                state, observation, answer, outcome, record, seed
            )
            calls.append(reflection)
            faults += more
            # 3. rewrite the bounded memory
            if self.plan.rewrite:
                rule = self.task.suggested_rule(record) if cfg.feedback == "truth" else None
                memory, rewrites, more = yield from self._rewrite_gen(
                    talk, state.memory, seed, rule
                )
                calls += rewrites
                faults += more

        # the baselines' append-only state
        if self.plan.append == "history" or (self.plan.append == "notes" and feedback):
            entries = entries + (self._entry(observation, prediction, truth, feedback),)

        new_state = State(memory=memory, entries=entries, steps=state.steps + 1, record=record)
        step_record = StepRecord(
            step=state.steps,
            index=index,
            observation=self.task.trace_observation(observation),
            answer=said,
            weight=weight,
            prediction=self.task.trace_text(prediction),
            truth=self.task.trace_text(truth) if truth is not None else "",
            error=self.task.error(prediction, truth) if truth is not None else float("nan"),
            feedback=feedback,
            memory=memory if self.plan.block == "memory" else "\n".join(entries),
            prompt_tokens=sum(c.prompt_tokens for c in calls),
            cached_tokens=sum(c.cached_tokens for c in calls),
            generated_tokens=sum(c.generated_tokens for c in calls),
            calls=len(calls),
            seconds=time.perf_counter() - start,
            fault="; ".join(faults),
            raw_answer=answer,
        )
        return new_state, step_record


def step_many(items: Sequence[tuple[Recurrence, State, Any, Any, object]]) -> list:
    """One step for each item, every phase's model calls served together (``lockstep``).

    Parameters
    ----------
    items : sequence of (Recurrence, State, observation, truth, index)
        One per series; every recurrence must share one backend (one model).

    Returns
    -------
    list of (State, StepRecord)
        In the order of ``items``. With more than one item, a record's ``seconds`` is its share
        of the model's time (the calls were decoded together).
    """
    if not items:
        return []
    backend = items[0][0].backend
    gens = [loop.step_gen(state, obs, truth, index) for loop, state, obs, truth, index in items]
    done = lockstep.run(backend, gens, exact=False)  # a panel's steps: speed (issue 14)
    if len(items) == 1:
        return [done[0][0]]
    return [(state, replace(record, seconds=seconds)) for (state, record), seconds in done]
