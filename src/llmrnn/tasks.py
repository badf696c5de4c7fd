"""Tasks: how one step of a problem is rendered, parsed, scored and explained.

The recurrence (``recurrence.py``) is the same for every problem; a task supplies the parts that
depend on what is predicted. :class:`ForecastTask` predicts the next value(s) of a series.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd

from . import guard, prompts
from . import memory as mem
from .encoding import NumberFormat, ParseError, choose_scale
from .grammar import rule_number_grammar

__all__ = [
    "Anchored",
    "Context",
    "Observation",
    "Task",
    "ForecastTask",
    "LabelTask",
    "FACT_STEPS",
    "carry_over",
    "repeat_lag",
    "one_feature_rule",
    "answer_by_rule",
]

#: Steps of the record shown as facts to the reflect call.
FACT_STEPS = 8
#: Characters of an exogenous text value the model is shown; longer text is cut, "[cut]".
EXOG_TEXT_CHARS = 200


def carry_over(actual: Sequence[float]) -> float:
    """How much of an actual correction carried over into the next one, from the record.

    The guard's shrunk, discounted least-squares slope (``guard.weight``) of each actual
    correction on the one before it: an AR(1) coefficient of the anchor's errors that needs
    evidence (0 until the record has ``guard.MIN_STEPS`` pairs, never above 1). The facts
    suggest ``carry_over(actual) * actual[-1]`` as the next correction: a base whose errors
    persist (it lags a turn) is corrected by part of its last error, one whose errors do not
    is left alone. Chosen over the mean of the last 3 corrections by ``benchmarks/rule_probe.py``
    (code only, on the dev series; checked on the held-out and fresh ones:
    ``benchmarks/results/rule_probe.md``).
    """
    actual = np.asarray(actual, dtype=float)
    return guard.weight(list(zip(actual[:-1], actual[1:])))


def repeat_lag(actual: Sequence[float], season: int = 1) -> tuple[int, float]:
    """Which earlier actual correction the next one repeats, and how much of it.

    Parameters
    ----------
    actual : sequence of float
        The record's actual corrections (truth minus anchor), oldest first.
    season : int, default=1
        The series' season length (``forecasting.season_length``); 1 for none.

    Returns
    -------
    (int, float)
        ``(1, carry_over(actual))`` unless ``season > 1`` and the same slope one season back
        (``guard.weight`` of each actual correction on the one ``season`` steps before it)
        explains more of the record: ``slope**2 * sum(x**2)`` over its regressors, the sum of
        squares the slope accounts for, larger than lag 1's; then ``(season, that slope)``.
        The facts suggest ``rate * actual[-lag]``. Used without a base (the anchor is the
        last value, so the corrections are the series' changes, whose season a base would
        otherwise model): chosen by ``benchmarks/rule_probe.py --nobase`` on the dev series
        over carrying the last change alone (``benchmarks/results/rule_probe.md``).
    """
    actual = np.asarray(actual, dtype=float)
    rate = carry_over(actual)
    if season <= 1 or actual.size <= season:
        return 1, rate
    seasonal = guard.weight(list(zip(actual[:-season], actual[season:])))
    explained = rate * rate * float(np.sum(actual[:-1] ** 2))
    if seasonal * seasonal * float(np.sum(actual[:-season] ** 2)) > explained:
        return season, seasonal
    return 1, rate


def _answered(record: Sequence[tuple]) -> list[tuple[float, float]]:
    """(the correction the forecast used, the actual one) at the record's answered steps (a
    witnessed point's correction is NaN): what the guard weighs."""
    return [(item[0], item[1]) for item in record if item[0] == item[0]]


def _given(record: Sequence[tuple]) -> list[float] | None:
    """The weights the guard gave the record's answered steps, where the record keeps them
    (without a base: each item's fifth field); None where the guard replays them."""
    items = [item for item in record if item[0] == item[0]]
    if not all(len(item) > 4 for item in items):
        return None
    return [item[4] for item in items]


def _prior(record: Sequence[tuple]) -> list[tuple[float, float]]:
    """(the code's suggestion, the actual correction) at the record's witnessed points that
    had one: the guard's prior (``guard.weights``), the rule replayed before the steps."""
    return [
        (item[3], item[1])
        for item in record
        if item[0] != item[0] and len(item) > 3 and item[3] == item[3]
    ]


class Task(Protocol):
    """What the recurrence needs to know about a problem."""

    #: One sentence that tells the model what it predicts.
    description: str

    #: Labels the answer is chosen from (scored from the model's logits), or None for free answers.
    choices: tuple[str, ...] | None

    @property
    def words(self) -> dict[str, str]:
        """Task words for the prompts: role, subject, Subject, aspects, criteria, truth."""
        ...

    def render_observation(self, observation: Any) -> str:
        """The observation as prompt text (inside ``<data>`` tags)."""
        ...

    def summary(self, observation: Any) -> str:
        """A short rendering of the observation for history entries (model units)."""
        ...

    def trace_observation(self, observation: Any) -> str:
        """The observation as text for the trace (data units)."""
        ...

    def trace_text(self, value: Any) -> str:
        """A prediction or truth as text for the trace (data units)."""
        ...

    def question(self, horizon: int, observation: Any = None, follow: bool = False) -> str:
        """The question that follows the observation; ``follow`` asks to apply the memory's
        Rules (rnn)."""
        ...

    def grammar(self, horizon: int) -> str | None:
        """GBNF for the answer, or None."""
        ...

    def max_tokens(self, horizon: int) -> int:
        """Token bound for the answer."""
        ...

    def parse(self, text: str, observation: Any, horizon: int) -> Any:
        """Read the answer (as the model means it); raise ``ParseError`` if it cannot."""
        ...

    def fallback(self, observation: Any, horizon: int) -> tuple[Any, str]:
        """The neutral answer used when the answer cannot be read, and the rule's name."""
        ...

    def settle(
        self, answer: Any, observation: Any, record: tuple, rules: str = ""
    ) -> tuple[Any, float, str]:
        """Turn an answer into the prediction, guarded by the record of past steps.

        ``rules`` is the Rules section of the memory the answer was given with ("" for the
        strategies without one). Returns the prediction, the weight given to the model's
        answer (NaN when the task has no weight) and "" or what the guard did.
        """
        ...

    def render_answer(self, answer: Any) -> str:
        """The answer as the model gave it, in data units (trace)."""
        ...

    def answer_text(self, answer: Any) -> str:
        """The answer as the model wrote it (model units), for the reflection."""
        ...

    def record_item(
        self, answer: Any, observation: Any, truth: Any, record: tuple = (), rules: str = ""
    ) -> tuple:
        """What the record keeps of one step with its truth (the input of ``settle``/``facts``);
        ``record`` and ``rules`` are those ``settle`` saw at the step."""
        ...

    def witness_item(self, observation: Any, truth: Any, record: tuple = ()) -> tuple | None:
        """What the record keeps of a row seen with its truth but not stepped (a row of ``fit``
        before its ``fit_steps``), after ``record``: evidence for the facts, with no answer;
        None when the record has no use for a row without an answer."""
        ...

    def facts(self, record: tuple) -> str:
        """Facts computed from the record, for the reflect call ("" when there is none)."""
        ...

    def suggested_rule(self, record: tuple) -> str | None:
        """The Rules line (after the rule words) the facts end with, when the rewrite must keep
        it as it is; None when the model's own Rules line stands."""
        ...

    def rule_grammar(self) -> str | None:
        """GBNF for the memory's Rules line after its primer, or None (free text)."""
        ...

    def render_prediction(self, prediction: Any) -> str:
        """The prediction as text (trace, history entries)."""
        ...

    def error(self, prediction: Any, truth: Any) -> float:
        """Absolute error (0/1 for a label)."""
        ...

    def outcome(self, prediction: Any, truth: Any, observation: Any) -> str:
        """A factual sentence comparing the prediction with the truth."""
        ...

    def shrink(self, observation: Any) -> Any | None:
        """The observation with its oldest part dropped, or None when nothing can be dropped."""
        ...


@dataclass(frozen=True, eq=False)
class Context:
    """What else is known around a forecasting step: exogenous columns and calendar facts.

    Parameters
    ----------
    columns : tuple of str
        The exogenous columns' names.
    past : np.ndarray of shape (len(window), len(columns))
        Their values at the window's times, oldest first (object array: numbers or text).
    future : np.ndarray of shape (horizon, len(columns))
        Their values at the times being forecast (horizons 1, 2, ...).
    calendar : tuple of str
        One line of calendar facts per time being forecast ("" when none).
    """

    columns: tuple[str, ...] = ()
    past: np.ndarray = field(default_factory=lambda: np.empty((0, 0), dtype=object))
    future: np.ndarray = field(default_factory=lambda: np.empty((0, 0), dtype=object))
    calendar: tuple[str, ...] = ()

    def dropped_oldest(self) -> Context:
        """The context of a window one value shorter."""
        return replace(self, past=self.past[1:])


@dataclass(frozen=True, eq=False)
class Observation:
    """A forecasting observation: the window, and what the model is given besides it.

    Parameters
    ----------
    window : np.ndarray
        Past values, oldest first (data units).
    base : np.ndarray or None
        The base forecaster's forecasts of the next values (horizons 1, 2, ...), if any.
    name : str
        What made ``base`` (shown to the model), e.g. "ThetaForecaster".
    context : Context or None
        Exogenous values and calendar facts, if any.
    """

    window: np.ndarray
    base: np.ndarray | None = None
    name: str = ""
    context: Context | None = None


#: An observation with a base forecast to correct (the name the earlier code used).
Anchored = Observation


def _parts(observation: Any) -> tuple[np.ndarray, np.ndarray | None, str]:
    if isinstance(observation, Observation):
        window = np.asarray(observation.window, dtype=float)
        base = None if observation.base is None else np.asarray(observation.base, dtype=float)
        return window, base, observation.name
    return np.asarray(observation, dtype=float), None, ""


def _context(observation: Any) -> Context | None:
    return observation.context if isinstance(observation, Observation) else None


@dataclass(frozen=True)
class ForecastTask:
    """Predict the next value(s) of a univariate series from a window of its past.

    The observation is the window of past values (oldest first, data units). Values and changes
    are written at one common scale, so the model never mixes units.

    Parameters
    ----------
    scale : float
        Numbers are divided by it before they are written (see ``encoding.choose_scale``).
    answer : {"change", "value"}
        What the model is asked for. "change": the step-to-step changes from the last value, so
        that a neutral answer (``+0.0``) reproduces the last-value forecast; "value": the values.
        An :class:`Anchored` observation turns "change" into the correction of each base
        forecast, so a neutral answer reproduces the base forecaster.
    description : str
        The task sentence shown to the model.
    based : bool
        Whether observations carry a base forecast (:class:`Anchored`); only the words of the
        facts depend on it.
    weight : float or None
        The weight of the model's corrections; None learns it online from the record, within
        the guard's loss budget (``guard.next_weight``).
    exog_scales : tuple of (float or None)
        One per exogenous column: the scale its numbers are written at (``choose_scale`` of
        the column in ``fit``), or None for a text or categorical column.
    season : int
        The series' season length (``forecasting.season_length``; 1 for none): without a
        base, the facts look for changes that come back a season later (:func:`repeat_lag`).
    """

    scale: float = 1.0
    answer: str = "change"
    description: str = "Predict the next value of a time series from its recent values."
    based: bool = False
    weight: float | None = None
    exog_scales: tuple[float | None, ...] = ()
    season: int = 1
    choices = None

    @property
    def words(self) -> dict[str, str]:
        kind = "correction" if self.based and self.answer == "change" else self.answer
        return {**prompts.FORECAST_WORDS, **prompts.ANSWER_WORDS[kind]}

    @classmethod
    def from_series(
        cls,
        y: np.ndarray,
        *,
        answer: str = "change",
        description: str | None = None,
        based: bool = False,
        weight: float | None = None,
        X: Any = None,
        season: int = 1,
    ) -> ForecastTask:
        """Choose the scales from the training series ``y`` (its changes, for "change") and
        from each numeric column of the exogenous ``X`` (a DataFrame), if any."""
        y = np.asarray(y, dtype=float)
        if answer == "change":
            scale = choose_scale(np.diff(y) if y.size > 1 else y, 100.0)
        else:
            scale = choose_scale(y, 1000.0)
        exog: list[float | None] = []
        for column in [] if X is None else X.columns:
            values = X[column]
            numeric = values.dtype.kind in "biuf"
            exog.append(choose_scale(values.to_numpy(dtype=float), 100.0) if numeric else None)
        description = description or cls.description
        return cls(scale, answer, description, based, weight, tuple(exog), int(season))

    @property
    def values(self) -> NumberFormat:
        """Format of values (read by the model; answers when ``answer="value"``)."""
        return NumberFormat(self.scale, decimals=1, int_digits=4)

    @property
    def changes(self) -> NumberFormat:
        """Format of changes (answers when ``answer="change"``)."""
        return NumberFormat(self.scale, decimals=1, int_digits=3, signed=True)

    @property
    def _answer_format(self) -> NumberFormat:
        return self.changes if self.answer == "change" else self.values

    def render_observation(self, observation: Any) -> str:
        window, base, name = _parts(observation)
        if self.answer == "change" and base is None:
            lines = [f"Last value: {self.values.render(window[-1])}"]
            if window.size > 1:
                changes = self.changes.render_many(np.diff(window))
                lines.append(f"Recent changes, oldest first: {changes}")
        else:
            lines = [f"Recent values, oldest first: {self.values.render_many(window)}"]
        if base is not None:
            forecasts = self.values.render_many(base)
            lines.append(f"Base forecast of the next values ({name}): {forecasts}")
        context = _context(observation)
        if context is not None:
            lines += self._render_context(context)
        return "\n".join(lines)

    def _cell(self, value: Any, column: int) -> str:
        """One exogenous value as text: numbers at the column's scale, text cut to a budget."""
        scale = self.exog_scales[column] if column < len(self.exog_scales) else None
        if value is None or (np.ndim(value) == 0 and pd.isna(value)):
            return prompts.MISSING
        if scale is not None:
            try:
                return NumberFormat(scale, decimals=1, int_digits=4).render(float(value))
            except (TypeError, ValueError):
                pass
        return _cell(value, EXOG_TEXT_CHARS)

    def _render_context(self, context: Context) -> list[str]:
        """Each exogenous column's values over the window and at the times being forecast,
        then the calendar facts of those times."""
        lines = []
        if context.columns:
            lines.append(prompts.CONTEXT_HEADER)
            for j, column in enumerate(context.columns):
                numeric = j < len(self.exog_scales) and self.exog_scales[j] is not None
                past = context.past[:, j] if numeric else context.past[-1:, j]
                before = ", ".join(self._cell(v, j) for v in past)
                after = ", ".join(self._cell(v, j) for v in context.future[:, j])
                lines.append(prompts.CONTEXT_LINE.format(column=column, past=before, next=after))
        for h, facts in enumerate(context.calendar, start=1):
            if facts:
                lines.append(prompts.CALENDAR_LINE.format(h=h, facts=facts))
        return lines

    def summary(self, observation: Any) -> str:
        window, base, _ = _parts(observation)
        text = self.values.render_many(window[-12:])
        if base is not None:
            text += f"; base {self.values.render_many(base[:1])}"
        context = _context(observation)
        if context is not None and context.columns:
            cells = [f"{c}={self._cell(v, j)}" for j, (c, v) in
                     enumerate(zip(context.columns, context.future[0]))]  # fmt: skip
            text += "; next " + ", ".join(cells)
        return text

    def trace_text(self, value: Any) -> str:
        return ", ".join(f"{v:.6g}" for v in np.atleast_1d(np.asarray(value, dtype=float)))

    def trace_observation(self, observation: Any) -> str:
        return self.trace_text(_parts(observation)[0])

    def question(self, horizon: int, observation: Any = None, follow: bool = False) -> str:
        rules = prompts.FOLLOW["one" if horizon == 1 else "many"] if follow else ""
        if self.answer == "change" and _parts(observation)[1] is not None:
            if horizon == 1:
                return prompts.QUESTION_CORRECTION.format(follow=rules)
            return prompts.QUESTION_CORRECTIONS.format(horizon=horizon, follow=rules)
        noun, kind = ("change", "signed number") if self.answer == "change" else ("value", "number")
        if horizon == 1:
            return prompts.QUESTION_NEXT.format(noun=noun, kind=kind, follow=rules)
        return prompts.QUESTION_NEXTS.format(horizon=horizon, noun=noun, kind=kind, follow=rules)

    def grammar(self, horizon: int) -> str:
        return self._answer_format.grammar(horizon)

    def max_tokens(self, horizon: int) -> int:
        return self._answer_format.max_tokens(horizon)

    def parse(self, text: str, observation: Any, horizon: int) -> np.ndarray:
        return self._answer_format.parse(text, horizon)

    def fallback(self, observation: Any, horizon: int) -> tuple[np.ndarray, str]:
        window, base, name = _parts(observation)
        if self.answer == "value":
            return np.full(horizon, float(window[-1])), "used the last value"
        if base is not None:
            return np.zeros(horizon), f"used the base forecast ({name})"
        return np.zeros(horizon), "used the last value"

    def anchors(self, observation: Any, horizon: int) -> np.ndarray:
        """What a neutral answer forecasts: the base forecasts, else the last value."""
        window, base, _ = _parts(observation)
        if base is not None and self.answer == "change":
            return base[:horizon].astype(float)
        return np.full(horizon, float(window[-1]))

    def corrections(self, answer: np.ndarray, observation: Any) -> np.ndarray:
        """The answer as corrections of the anchors (changes add up; values minus last)."""
        answer = np.atleast_1d(np.asarray(answer, dtype=float))
        _, base, _ = _parts(observation)
        if self.answer == "value":
            return answer - self.anchors(observation, answer.size)
        return answer if base is not None else np.cumsum(answer)

    def limits(self, observation: Any, horizon: int, record: tuple) -> np.ndarray:
        """Largest plausible correction per horizon: the largest move of the window or of the
        record's actual corrections (see ``guard.py``)."""
        window, _, _ = _parts(observation)
        moves = guard.largest_moves(window, horizon)
        if record:
            seen = max(abs(item[1]) for item in record)
            moves = np.maximum(moves, seen * np.sqrt(np.arange(1, horizon + 1)))
        return moves

    def settle(
        self, answer: np.ndarray, observation: Any, record: tuple, rules: str = ""
    ) -> tuple[np.ndarray, float, str]:
        """``anchor + w * bounded correction``, w learned from the record unless fixed.

        ``rules`` (the Rules section of the memory the answer was given with) is read by code
        too, as the classifier's are (``docs/decisions.md``, "The code reads the Rules too"):
        when it states the facts' number (:meth:`facts_rule`; without a base the rewrite must
        keep it there, with a base only when the model wrote it), that number is the first
        correction unless the model's answers were closer to the truth than it more often
        where the two differed on earlier steps (:meth:`read_rules`)."""
        corrections, _, fault = self.read_rules(
            self.corrections(answer, observation), record, rules
        )
        horizon = corrections.size
        bounded, cut = guard.bound(corrections, self.limits(observation, horizon, record))
        w = self._weight(bounded[0], record)
        prediction = self.anchors(observation, horizon) + w * bounded
        if cut:
            cut_fault = (
                f"correction {self.changes.render(corrections[0])} beyond any move seen: "
                f"bounded to {self.changes.render(bounded[0])}"
            )
            fault = f"{fault}; {cut_fault}" if fault else cut_fault
        return prediction, w, fault

    def _weight(self, correction: float, record: tuple) -> float:
        """The guard's weight of the next one-step ``correction`` after ``record`` (fixed when
        ``weight`` is): the learned slope under the witnessed points' prior, within the loss
        budget of the weights the record's steps were given (see ``guard.py``)."""
        if self.weight is not None:
            return float(self.weight)
        return guard.next_weight(
            _answered(record), correction, prior=_prior(record), given=_given(record)
        )

    def read_rules(
        self, corrections: np.ndarray, record: tuple, rules: str = ""
    ) -> tuple[np.ndarray, float, str]:
        """The corrections, with the code's reading of the Rules as the first when it answers.

        When ``rules`` states the facts' number (:meth:`facts_rule`), the code reads that
        number; it answers unless, at the record's earlier steps where the model's correction
        and the code's reading differed, the model's was the closer to the actual correction
        more often (the code's on a tie: the model must show it reads its Rules better first).
        Without a base the 1.5B model answered -0.18 under Rules that said +0.18, and the like
        at 10 of co2's 16 steps, the Rules the closer at 9; with a base it answered -0.078
        under Rules of +7.8 (the same number, in the facts' units) at every step of a
        fertility series (``docs/decisions.md``).

        Returns
        -------
        (np.ndarray, float, str)
            The corrections (a change answer's later ones moved with its first, a value
            answer's kept), the code's reading in data units (NaN when there is none) and a
            fault naming a replacement ("" when the model's answer stands).
        """
        rule = self.facts_rule(record) if rules else None
        if rule is None or not mem.states(rules, f"{self.words['rule']} {rule}"):
            return corrections, float("nan"), ""
        reading = float(self.changes.parse(rule, 1)[0])
        said = float(corrections[0])
        read = [i[1:4] for i in record if len(i) > 3 and i[0] == i[0] and i[3] == i[3]]
        won = sum(abs(a - c) < abs(a - r) for a, c, r in read)
        lost = sum(abs(a - r) < abs(a - c) for a, c, r in read)
        if won > lost or said == reading:
            return corrections, reading, ""
        if self.answer == "change":
            corrections = corrections + (reading - said)
        else:
            corrections = np.concatenate([[reading], corrections[1:]])
        fault = (
            f"the Rules read by code: {self.changes.render(reading)}, not the model's "
            f"{self.changes.render(said)} (where the two differed, the model's was closer "
            f"{won} times, the code's {lost})"
        )
        return corrections, reading, fault

    def rule_grammar(self) -> str:
        """The Rules line ends with one signed number: which way to correct, and how much."""
        fmt = self.changes
        return rule_number_grammar(fmt.int_digits, fmt.decimals)

    def answer_text(self, answer: np.ndarray) -> str:
        return self._answer_format.render_many(np.atleast_1d(answer))

    def residuals(self, record: tuple) -> np.ndarray:
        """The forecast's own one-step errors over the record (actual minus forecast), each
        with the weight the guard had at that step: what intervals widen by."""
        items = np.asarray(_answered(record), dtype=float).reshape(-1, 2)
        given = _given(record)
        if self.weight is not None:
            weights = np.full(len(items), float(self.weight))
        elif given is not None:
            weights = np.asarray(given, dtype=float)
        else:
            weights = guard.weights(items, prior=_prior(record))
        return items[:, 1] - weights * items[:, 0]

    def render_answer(self, answer: np.ndarray) -> str:
        fmt = self._answer_format
        return ", ".join(f"{v:+.6g}" if fmt.signed else f"{v:.6g}" for v in np.atleast_1d(answer))

    def record_item(
        self, answer: np.ndarray, observation: Any, truth: Any, record: tuple = (), rules: str = ""
    ) -> tuple[float, ...]:
        """(the one-step correction the forecast used, bounded as ``settle`` bounded it with
        the same ``record`` and ``rules``; the actual correction; the model's own correction;
        the code's reading of the Rules, NaN when none), data units, the last two deciding who
        answers next (:meth:`read_rules`). Without a base a fifth: the weight ``settle`` gave
        the step (the guard's prior shrinks as the witnessed points leave the record, so the
        budget counts the weights kept, not replayed); with a base the weights replay
        exactly from the first two."""
        limits = self.limits(observation, 1, record)
        said = self.corrections(answer, observation)[:1]
        actual = float(np.atleast_1d(truth)[0]) - float(self.anchors(observation, 1)[0])
        used, reading, _ = self.read_rules(said, record, rules)
        used, said, reading = (float(guard.bound(x, limits)[0][0]) for x in (used, said, [reading]))
        if self.based:
            return (used, actual, said, reading)
        return (used, actual, said, reading, self._weight(used, record))

    def witness_item(
        self, observation: Any, truth: Any, record: tuple = ()
    ) -> tuple[float, ...] | None:
        """A point before ``fit_steps``, without a base: ``(NaN, its change, NaN, suggestion)``.

        Its actual correction is the series' own change, known with no model call; the facts
        read it (:func:`repeat_lag` needs a season of them). The last field is the code's
        suggestion from the ``record`` before it (what the Rules line would have carried,
        bounded as a step's is; NaN while there is none): the guard's prior
        (``guard.weights``), never a forecast the guard or the intervals count as made.
        None with a base: its errors before the steps would need
        the base refitted at every point, and a replay found no gain on held-out series
        (``benchmarks/results/rule_probe.md``, "The base's errors before the steps").
        """
        if self.based:
            return None
        actual = float(np.atleast_1d(truth)[0]) - float(self.anchors(observation, 1)[0])
        rule = self.suggested_rule(record)
        reading = np.array([float("nan") if rule is None else self.changes.parse(rule, 1)[0]])
        reading = guard.bound(reading, self.limits(observation, 1, record))[0]
        return (float("nan"), actual, float("nan"), float(reading[0]))

    def facts(self, record: tuple) -> str:
        recent = record[-FACT_STEPS:]
        if not recent:
            return ""
        fmt = self.changes
        actual = np.array([item[1] for item in recent])
        what = self.words["correction"]
        every = [item[1] for item in record]
        lag, rate = self._repeat(record)
        if lag > 1:
            carried = prompts.FORECAST_REPEATED.format(
                what=what, rate=round(100 * rate), lag=lag, steps=len(record),
                then=fmt.render(every[-lag]),
            )  # fmt: skip
        else:
            carried = prompts.FORECAST_CARRIED if rate > 0 else prompts.FORECAST_NOT_CARRIED
            carried = carried.format(what=what, rate=round(100 * rate), steps=len(record))
        words = {"what": what, "actual": fmt.render_many(actual), "carried": carried}
        words.update(rule=self.words["rule"], suggest=fmt.render(rate * every[-lag]))
        # the model's own corrections (without a base the forecast may have used the Rules')
        mine = [item for item in recent if item[0] == item[0]]
        if not mine:
            return prompts.FORECAST_WITNESSED.format(**words)
        yours = np.array([item[2] if len(item) > 2 else item[0] for item in mine])
        theirs = np.array([item[1] for item in mine])
        return prompts.FORECAST_FACTS.format(
            yours=fmt.render_many(yours),
            neutral=self.words["neutral"],
            helped=int(np.sum(np.abs(theirs - yours) < np.abs(theirs))),
            steps=len(mine),
            **words,
        )

    def _repeat(self, record: tuple) -> tuple[int, float]:
        """:func:`repeat_lag` of the record's actual corrections (no season with a base)."""
        return repeat_lag([item[1] for item in record], 1 if self.based else self.season)

    def suggested_rule(self, record: tuple) -> str | None:
        """Without a base, the number the facts end with, which the Rules line must state.

        The 1.5B model's Rules line copied the facts' number at 12 of co2's 16 steps; at the
        others it kept an old number or flipped its sign, and its answers followed. With a
        base the number stays the model's (the grammar keeps it a number): made to state the
        facts' number, the 1.5B model's Rules line lost unemp the small corrections that had
        earned the guard's trust before the turn (0.945 of the base instead of 0.896,
        ``benchmarks/rules_read_base_probe.py``); where it states that number on its own, the
        code reads it (:meth:`read_rules`; ``docs/decisions.md``, twenty-third session).
        """
        return None if self.based else self.facts_rule(record)

    def facts_rule(self, record: tuple) -> str | None:
        """The number the facts end with (None before the record has an item): the code
        reads a Rules line that states it (:meth:`read_rules`), with a base or without."""
        if not record:
            return None
        lag, rate = self._repeat(record)
        return self.changes.render(rate * record[-lag][1])

    def render_prediction(self, prediction: np.ndarray) -> str:
        return self.values.render_many(np.atleast_1d(prediction))

    def error(self, prediction: np.ndarray, truth: np.ndarray) -> float:
        diff = np.atleast_1d(prediction).astype(float) - np.atleast_1d(truth).astype(float)
        return float(np.mean(np.abs(diff)))

    def outcome(self, answer: np.ndarray, truth: np.ndarray, observation: Any) -> str:
        """What the model answered against what happened, in the answer's own terms."""
        fmt = self.changes
        said = float(self.corrections(answer, observation)[0])
        actual = float(np.atleast_1d(truth)[0]) - float(self.anchors(observation, 1)[0])
        gap = said - actual
        verdict = "exact" if gap == 0 else "too high" if gap > 0 else "too low"
        if gap:
            verdict += f" by {fmt.render(abs(gap)).lstrip('+')}"
        if self.answer == "value":
            was, say = prompts.OUTCOME_VALUE
            values = self.values
            was = was.format(truth=values.render(np.atleast_1d(truth)[0]))
            say = say.format(said=values.render(np.atleast_1d(answer)[0]))
        else:
            based = _parts(observation)[1] is not None
            what = "correction of the base forecast" if based else "change"
            was, say = prompts.OUTCOME_CHANGE
            was = was.format(what=what, truth=fmt.render(actual))
            say = say.format(what=what, said=fmt.render(said))
        return prompts.OUTCOME.format(was=was, said=say, verdict=verdict)

    def shrink(self, observation: Any) -> Any | None:
        window, base, name = _parts(observation)
        if window.size <= 2:
            return None
        if not isinstance(observation, Observation):
            return window[1:]
        context = observation.context
        return Observation(window[1:], base, name, context and context.dropped_oldest())


def _cell(value: Any, limit: int = 1000) -> str:
    """One feature value as a single line of text (newlines folded, very long text cut)."""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    text = " / ".join(str(value).splitlines()) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + " [cut]"


def _short(value: Any) -> str:
    """A feature value as a rule writes it: whole floats without ``.0``, text cut at 40."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return _cell(value, 40)


def _sort_keys(keys: Sequence[str]) -> list[tuple]:
    """Sort keys for a rule's values: numbers in numeric order, then text."""
    out = []
    for key in keys:
        try:
            out.append((0, float(key), key))
        except ValueError:
            out.append((1, 0.0, key))
    return out


def _loo_right(groups: np.ndarray, truth: np.ndarray, n_labels: int) -> int:
    """Leave-one-out hits of "answer the majority label of the other rows in my group".

    Ties and empty groups fall back to the majority label of all the other rows.
    """
    onehot = np.eye(n_labels, dtype=int)[truth]
    same = (groups[:, None] == groups[None, :]) & ~np.eye(len(truth), dtype=bool)
    counts = same.astype(int) @ onehot
    overall = onehot.sum(axis=0)[None, :] - onehot
    fallback = np.argmax(overall, axis=1)
    best = np.argmax(counts, axis=1)
    top = counts.max(axis=1)
    unique = (counts == top[:, None]).sum(axis=1) == 1
    answer = np.where((top > 0) & unique, best, fallback)
    return int(np.sum(answer == truth))


def one_feature_rule(
    rows: Sequence[Sequence[Any]], truth: Sequence[int], names: Sequence[str], labels: Sequence[str]
) -> dict | None:
    """The one-feature rule that best explains the labels of the record, if any beats the majority.

    Every feature is tried as categories (when its values repeat) and, when numeric, split at 0
    (when its values straddle 0) and at its median; each candidate is scored leave-one-out
    (each row answered by the majority label of the other rows in its group), and the best
    must be right at more rows than always answering the majority label (Holte's OneR with a
    leave-one-out check). The classifier's facts suggest it as the rule to keep, as they
    suggest ``carry_over`` for forecasts; ``benchmarks/label_rule_probe.py`` replays it
    without a model (``benchmarks/results/label_rule_probe.md``).

    Returns
    -------
    dict or None
        ``text`` (the rule after "Answer", e.g. "up when month is 3, 4, 5; otherwise down");
        ``feature`` and ``column`` (its name and position); how it answers (``cut`` and
        ``above``, or ``values``, a label per value text; and ``otherwise``); ``right`` and
        ``majority_right`` (the rule's leave-one-out hits, and the majority label's); ``rows``
        and ``majority`` (the default label). None when no feature beats the majority label or
        the record has fewer than 4 rows.
    """
    truth = np.asarray(truth, dtype=int)
    n = len(truth)
    if n < 4 or not len(rows):
        return None
    k = len(labels)
    # the bar: always answering the majority label, counted in-sample (its leave-one-out count
    # is 0 on balanced labels, where leaving a row out makes the other label the majority)
    base_right = int(np.bincount(truth, minlength=k).max())
    majority = int(np.argmax(np.bincount(truth, minlength=k)))
    best = None
    for j, name in enumerate(names):
        column = [row[j] if j < len(row) else None for row in rows]
        numeric = all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            for v in column
        ) and all(np.isfinite(float(v)) for v in column)
        candidates = []
        keys = [_short(v) for v in column]
        if len(set(keys)) < n:
            codes = {key: i for i, key in enumerate(dict.fromkeys(keys))}
            candidates.append(("is", np.array([codes[key] for key in keys]), keys))
        if numeric:
            values = np.array(column, dtype=float)
            cuts = [0.0] if values.min() < 0 < values.max() else []
            cuts.append(float(np.median(values)))
            for cut in dict.fromkeys(cuts):
                above = (values > cut).astype(int)
                if 0 < above.sum() < n:
                    candidates.append(("above", above, cut))
        for kind, groups, detail in candidates:
            right = _loo_right(groups, truth, k)
            if best is None or right > best[0]:
                best = (right, name, kind, groups, detail)
    if best is None or best[0] <= base_right:
        return None
    right, name, kind, groups, detail = best
    column = list(names).index(name)
    said = {}
    for g in np.unique(groups):
        counts = np.bincount(truth[groups == g], minlength=k)
        top = np.flatnonzero(counts == counts.max())
        said[int(g)] = int(top[0]) if len(top) == 1 else majority
    if kind == "above":
        low, high = said.get(0, majority), said.get(1, majority)
        if low == high:
            return None
        text = f"{labels[high]} when {name} is above {_short(detail)}; otherwise {labels[low]}"
        how = {"cut": float(detail), "above": labels[high], "otherwise": labels[low]}
    else:
        keys = detail
        by_label: dict[int, list[str]] = {}
        pairs = dict.fromkeys(zip(_sort_keys(keys), keys, groups.tolist()))
        for _, key, g in sorted(pairs):
            if said[g] != majority:
                by_label.setdefault(said[g], []).append(key)
        if not by_label:
            return None
        parts = [
            f"{labels[label]} when {name} is {', '.join(values)}"
            for label, values in sorted(by_label.items())
        ]
        text = "; ".join(parts) + f"; otherwise {labels[majority]}"
        values = {key: labels[label] for label, keys in by_label.items() for key in keys}
        how = {"values": values, "otherwise": labels[majority]}
    return {
        "text": text,
        "feature": name,
        "column": column,
        **how,
        "right": right,
        "majority_right": base_right,
        "rows": n,
        "majority": labels[majority],
    }


@functools.lru_cache(maxsize=32)
def _record_rule(rows: tuple, names: tuple[str, ...], labels: tuple[str, ...]) -> dict | None:
    """``one_feature_rule`` of (truth, values) pairs, cached: a step asks for the rule of the
    same record several times (its reading, the facts, the Rules line's check)."""
    return one_feature_rule([r[1] for r in rows], [r[0] for r in rows], names, labels)


def answer_by_rule(rule: dict, row: Sequence[Any]) -> str:
    """The label a rule of :func:`one_feature_rule` answers for ``row`` (what a model that
    follows its Rules line exactly would answer)."""
    value = row[rule["column"]]
    if "cut" in rule:
        return rule["above"] if float(value) > rule["cut"] else rule["otherwise"]
    return rule["values"].get(_short(value), rule["otherwise"])


@dataclass(frozen=True)
class LabelTask:
    """Predict the label of each new row from its feature values.

    The observation is one row (a sequence of feature values); predictions and truths are label
    positions in ``labels``. The answer is never generated: every label is scored as a
    continuation of the prompt from the model's logits.

    Parameters
    ----------
    labels : tuple of str
        The label texts, one per class, all distinct.
    feature_names : tuple of str
        Names of the features, in column order.
    description : str
        The task sentence shown to the model (label descriptions included).
    fallback_label : int
        Label used when no answer can be had (the most frequent training label).
    """

    labels: tuple[str, ...]
    feature_names: tuple[str, ...]
    description: str = "Predict the label of each new row of data from its feature values."
    fallback_label: int = 0
    words = prompts.LABEL_WORDS

    @classmethod
    def build(
        cls,
        classes: np.ndarray,
        feature_names: list[str],
        *,
        description: str | None = None,
        label_descriptions: dict | None = None,
        fallback_label: int = 0,
    ) -> LabelTask:
        """Render the classes as label texts and compose the task sentence."""
        labels = tuple(" ".join(str(c).split()) for c in classes)
        if len(set(labels)) != len(labels) or not all(labels):
            raise ValueError(
                f"Class labels {list(classes)!r} are not distinct (or empty) once written as "
                "text: rename them so that str(label) differs for every class."
            )
        text = description or cls.description
        text += " Labels: " + ", ".join(labels) + "."
        for label, name in zip(classes, labels):
            if label_descriptions and label in label_descriptions:
                text += f"\n- {name}: {_cell(label_descriptions[label], 300)}"
        return cls(labels, tuple(str(n) for n in feature_names), text, fallback_label)

    @property
    def choices(self) -> tuple[str, ...]:
        return self.labels

    def render_observation(self, observation) -> str:
        return "\n".join(f"{n}: {_cell(v)}" for n, v in zip(self.feature_names, observation))

    def summary(self, observation) -> str:
        return "; ".join(f"{n}={_cell(v, 80)}" for n, v in zip(self.feature_names, observation))

    trace_observation = summary

    def trace_text(self, value: Any) -> str:
        return self.labels[int(value)]

    def question(self, horizon: int, observation: Any = None, follow: bool = False) -> str:
        rules = prompts.FOLLOW["label"] if follow else ""
        return prompts.QUESTION_LABEL.format(labels=", ".join(self.labels), follow=rules)

    def grammar(self, horizon: int) -> None:
        return None

    def max_tokens(self, horizon: int) -> int:
        return 8

    def parse(self, text: str, observation, horizon: int) -> int:
        answer = " ".join(text.split())
        if answer in self.labels:
            return self.labels.index(answer)
        raise ParseError(f"{text[:80]!r} is not one of the labels")

    def fallback(self, observation, horizon: int) -> tuple[int, str]:
        return self.fallback_label, "used the most frequent training label"

    def settle(
        self, answer: int, observation, record: tuple, rules: str = ""
    ) -> tuple[int, float, str]:
        """The model's label, or the code's reading of its Rules when that has the better record.

        When ``rules`` (the Rules section of the memory the answer was given with) states the
        rule the record's facts suggest (``suggested_rule``, which the rewrite keeps there), the
        code reads it too (``rule_label``). Where the two readings differed on earlier rows of
        the record, the one that was right more often answers, the code's on a tie: the model
        must show it reads its Rules better before its reading is taken (the 1.5B model
        misreads numbers in its check line, "0.038419 is below 0"; ``docs/decisions.md``, "The
        code reads the Rules too"). The weight is the share of the probabilities left to the
        model's scores: 1.0 when its reading answers, 0.5 when the code's does (the least that
        makes the code's label the most probable whatever the scores), NaN when there is no
        rule to read.
        """
        answer = int(answer)
        rule = self.suggested_rule(record) if rules else None
        if rule is None or not mem.states(rules, f"{self.words['rule']} {rule}"):
            return answer, float("nan"), ""
        label = self.rule_label(record, observation)
        read = [item for item in record if len(item) > 4 and item[4] is not None]
        won = sum(item[0] != item[4] and item[0] == item[1] for item in read)
        lost = sum(item[0] != item[4] and item[4] == item[1] for item in read)
        if won > lost:
            return answer, 1.0, ""
        if label == answer:
            return answer, 0.5, ""
        return (
            label,
            0.5,
            (
                f"the Rules read by code: {self.labels[label]}, not the model's "
                f"{self.labels[answer]} (where the two readings differed, the model's was right "
                f"{won} times, the code's {lost})"
            ),
        )

    def rule_label(self, record: tuple, observation) -> int | None:
        """The label the rule of ``record``'s facts gives the row (the majority label when no
        rule beats it), read by code (``answer_by_rule``); None without a record."""
        if not record:
            return None
        rule = self._rule(record)
        if rule is None:
            truths = [item[1] for item in record]
            return int(np.argmax(np.bincount(truths, minlength=len(self.labels))))
        values = tuple(v.item() if isinstance(v, np.generic) else v for v in observation)
        return self.labels.index(answer_by_rule(rule, values))

    def render_answer(self, answer: int) -> str:
        return self.labels[int(answer)]

    answer_text = render_answer

    def rule_grammar(self) -> None:
        return None

    def record_item(
        self, answer: int, observation, truth: int, record: tuple = (), rules: str = ""
    ) -> tuple[int, int, str, tuple, int | None]:
        """(label answered, true label, the row in short, its values, the label the record's
        rule gave the row read by code); labels by position. ``rules`` is not needed: the
        code's reading is the record's rule, kept for every row."""
        values = tuple(v.item() if isinstance(v, np.generic) else v for v in observation)
        reading = self.rule_label(record, values)
        return (int(answer), int(truth), self.summary(observation), values, reading)

    def witness_item(
        self, observation, truth: int, record: tuple = ()
    ) -> tuple[None, int, str, tuple, None]:
        """A row seen with its label but not stepped: (None, true label, the row in short, its
        values, None), whatever the ``record`` before it. It counts in the facts' label
        shares and rule, which code computes from the labels alone; not in the model's hit
        rates, nor in the record of the model's and the code's readings (it has neither)."""
        values = tuple(v.item() if isinstance(v, np.generic) else v for v in observation)
        return (None, int(truth), self.summary(observation), values, None)

    def facts(self, record: tuple) -> str:
        if not record:
            return ""
        recent = record[-FACT_STEPS:]
        # the model's hit rates count the rows it answered (rows only witnessed have no answer)
        mine = [item for item in record if item[0] is not None][-FACT_STEPS:]
        hits = []
        for k, label in enumerate(self.labels):
            answered = [item[1] for item in record if item[0] == k]
            if answered:
                good = sum(t == k for t in answered)
                hits.append(f"{label}: right {good} of {len(answered)} times")
        truths = [item[1] for item in record]
        counts = np.bincount(truths, minlength=len(self.labels))
        rule = self._rule(record)
        if rule is None:
            majority = self.labels[int(np.argmax(counts))]
            kept = prompts.LABEL_NO_RULE.format(
                count=len(record), majority=majority, rule=self.words["rule"]
            )
        else:
            kept = prompts.LABEL_RULE.format(**rule, count=len(record), rule=self.words["rule"])
        return prompts.LABEL_FACTS.format(
            rows=" | ".join(f"{item[2]} -> {self.labels[item[1]]}" for item in recent[-4:]),
            right=sum(item[0] == item[1] for item in mine),
            steps=len(mine),
            hits=prompts.LABEL_HITS.format(hits="; ".join(hits)) if hits else "",
            count=len(record),
            shares=", ".join(
                f"{label} {100 * c / len(record):.0f}%" for label, c in zip(self.labels, counts)
            ),
            kept=kept,
        )

    def _rule(self, record: tuple) -> dict | None:
        """``one_feature_rule`` of the record's rows (None: none beats the majority label)."""
        if not record or not all(len(item) > 3 for item in record):
            return None  # records of earlier versions lack the values
        rows = tuple((item[1], item[3]) for item in record)
        try:
            return _record_rule(rows, self.feature_names, self.labels)
        except TypeError:  # a value that cannot be hashed: computed without the cache
            return _record_rule.__wrapped__(rows, self.feature_names, self.labels)

    def suggested_rule(self, record: tuple) -> str | None:
        """The rule the facts end with, which the rewrite's Rules line must state as it is.

        The 1.5B model's Rules line sometimes swapped the rule's labels ("Answer up when month
        is 1, 8, 9, 10; otherwise down" for the facts' "down when ..."), and its answers
        followed the swapped rule; a copy that changes the rule is replaced by the rule.
        """
        if not record:
            return None
        rule = self._rule(record)
        if rule is not None:
            return str(rule["text"])
        counts = np.bincount([item[1] for item in record], minlength=len(self.labels))
        return self.labels[int(np.argmax(counts))]

    def render_prediction(self, prediction: int) -> str:
        return self.labels[int(prediction)]

    def error(self, prediction: int, truth: int) -> float:
        return float(int(prediction) != int(truth))

    def outcome(self, prediction: int, truth: int, observation) -> str:
        was, said = prompts.OUTCOME_LABEL
        return prompts.OUTCOME.format(
            was=was.format(truth=self.labels[int(truth)]),
            said=said.format(said=self.labels[int(prediction)]),
            verdict="correct" if int(prediction) == int(truth) else "wrong",
        )

    def shrink(self, observation) -> None:
        return None
