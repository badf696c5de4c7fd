"""Tasks: how one step of a problem is rendered, parsed, scored and explained.

The recurrence (``recurrence.py``) is the same for every problem; a task supplies the parts that
depend on what is predicted. :class:`ForecastTask` predicts the next value(s) of a series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .encoding import NumberFormat, ParseError, choose_scale

__all__ = ["Anchored", "Task", "ForecastTask", "LabelTask"]


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

    def question(self, horizon: int, observation: Any = None) -> str:
        """The question that follows the observation."""
        ...

    def grammar(self, horizon: int) -> str | None:
        """GBNF for the answer, or None."""
        ...

    def max_tokens(self, horizon: int) -> int:
        """Token bound for the answer."""
        ...

    def parse(self, text: str, observation: Any, horizon: int) -> Any:
        """Read the prediction from the answer; raise ``ParseError`` if it cannot."""
        ...

    def fallback(self, observation: Any, horizon: int) -> tuple[Any, str]:
        """The prediction used when the answer cannot be read, and the rule's name."""
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
class Anchored:
    """A forecasting observation with a base forecast to correct.

    Parameters
    ----------
    window : np.ndarray
        Past values, oldest first (data units).
    base : np.ndarray
        The base forecaster's forecasts of the next values (horizons 1, 2, ...).
    name : str
        What made ``base`` (shown to the model), e.g. "ThetaForecaster".
    """

    window: np.ndarray
    base: np.ndarray
    name: str


def _parts(observation: Any) -> tuple[np.ndarray, np.ndarray | None, str]:
    if isinstance(observation, Anchored):
        window = np.asarray(observation.window, dtype=float)
        return window, np.asarray(observation.base, dtype=float), observation.name
    return np.asarray(observation, dtype=float), None, ""


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
    """

    scale: float = 1.0
    answer: str = "change"
    description: str = "Predict the next value of a time series from its recent values."
    choices = None
    words = {
        "role": "forecaster",
        "subject": "the series",
        "Subject": "The series",
        "aspects": "direction, size of the changes, repeating patterns",
        "criteria": (
            "it follows the recent direction; it respects any repeating pattern; its size is "
            "like the recent changes; it agrees with your memory"
        ),
        "truth": "actual value",
    }

    @classmethod
    def from_series(
        cls, y: np.ndarray, *, answer: str = "change", description: str | None = None
    ) -> ForecastTask:
        """Choose the scale from the training series ``y`` (its changes, for "change")."""
        y = np.asarray(y, dtype=float)
        if answer == "change":
            scale = choose_scale(np.diff(y) if y.size > 1 else y, 100.0)
        else:
            scale = choose_scale(y, 1000.0)
        return cls(scale=scale, answer=answer, description=description or cls.description)

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
        return "\n".join(lines)

    def summary(self, observation: Any) -> str:
        window, base, _ = _parts(observation)
        text = self.values.render_many(window[-12:])
        return text if base is None else f"{text}; base {self.values.render_many(base[:1])}"

    def trace_text(self, value: Any) -> str:
        return ", ".join(f"{v:.6g}" for v in np.atleast_1d(np.asarray(value, dtype=float)))

    def trace_observation(self, observation: Any) -> str:
        return self.trace_text(_parts(observation)[0])

    def question(self, horizon: int, observation: Any = None) -> str:
        if self.answer == "change" and isinstance(observation, Anchored):
            if horizon == 1:
                return (
                    "How much should the base forecast be corrected (actual minus base)? "
                    "Answer with one number."
                )
            return (
                f"How much should each of the next {horizon} base forecasts be corrected "
                f"(actual minus base)? Answer with {horizon} numbers separated by commas."
            )
        noun = "change" if self.answer == "change" else "value"
        if horizon == 1:
            return f"What is the next {noun}? Answer with one number."
        return (
            f"What are the next {horizon} {noun}s, one per step? "
            f"Answer with {horizon} numbers separated by commas."
        )

    def grammar(self, horizon: int) -> str:
        return self._answer_format.grammar(horizon)

    def max_tokens(self, horizon: int) -> int:
        return self._answer_format.max_tokens(horizon)

    def parse(self, text: str, observation: Any, horizon: int) -> np.ndarray:
        numbers = self._answer_format.parse(text, horizon)
        window, base, _ = _parts(observation)
        if self.answer == "value":
            return numbers
        if base is not None:
            return base[:horizon] + numbers
        return float(window[-1]) + np.cumsum(numbers)

    def fallback(self, observation: Any, horizon: int) -> tuple[np.ndarray, str]:
        window, base, name = _parts(observation)
        if base is not None:
            return base[:horizon].copy(), f"used the base forecast ({name})"
        return np.full(horizon, float(window[-1])), "used the last value"

    def render_prediction(self, prediction: np.ndarray) -> str:
        return self.values.render_many(np.atleast_1d(prediction))

    def error(self, prediction: np.ndarray, truth: np.ndarray) -> float:
        diff = np.atleast_1d(prediction).astype(float) - np.atleast_1d(truth).astype(float)
        return float(np.mean(np.abs(diff)))

    def outcome(self, prediction: np.ndarray, truth: np.ndarray, observation: Any) -> str:
        pred = float(np.atleast_1d(prediction)[0])
        true = float(np.atleast_1d(truth)[0])
        window, base, _ = _parts(observation)
        gap = pred - true
        side = "too high" if gap > 0 else "too low" if gap < 0 else "exact"
        fmt = self._answer_format
        if self.answer == "value":
            said = f"you predicted {fmt.render(pred)}"
            was = f"the actual value was {fmt.render(true)}"
        else:
            anchor = float(window[-1]) if base is None else float(base[0])
            what = "change" if base is None else "correction of the base forecast"
            said = f"you predicted a {what} of {fmt.render(pred - anchor)}"
            was = f"the actual {what} was {fmt.render(true - anchor)}"
        if side == "exact":
            return f"{was}; {said}: exact."
        return f"{was}; {said}: {side} by {self.changes.render(abs(gap)).lstrip('+')}."

    def shrink(self, observation: Any) -> Any | None:
        window, base, name = _parts(observation)
        if window.size <= 2:
            return None
        return window[1:] if base is None else Anchored(window[1:], base, name)


def _cell(value: Any, limit: int = 1000) -> str:
    """One feature value as a single line of text (newlines folded, very long text cut)."""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    text = " / ".join(str(value).splitlines()) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + " [cut]"


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
    words = {
        "role": "classifier",
        "subject": "the data",
        "Subject": "The data",
        "aspects": "which feature values go with which label, how labels follow each other",
        "criteria": (
            "it fits the feature values; it agrees with the labels of similar past rows; it "
            "agrees with your memory"
        ),
        "truth": "true label",
    }

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

    def question(self, horizon: int, observation: Any = None) -> str:
        return "Which label fits this row? Answer with one of: " + ", ".join(self.labels) + "."

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

    def render_prediction(self, prediction: int) -> str:
        return self.labels[int(prediction)]

    def error(self, prediction: int, truth: int) -> float:
        return float(int(prediction) != int(truth))

    def outcome(self, prediction: int, truth: int, observation) -> str:
        verdict = "correct" if int(prediction) == int(truth) else "wrong"
        return (
            f"the true label was {self.labels[int(truth)]}; you predicted "
            f"{self.labels[int(prediction)]}: {verdict}."
        )

    def shrink(self, observation) -> None:
        return None
