"""LLMRNNClassifier: the LLM-as-RNN recurrence as a scikit-learn classifier."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from ._atomic import atomic
from ._params import backend_for, backend_on, check_params, loop_config
from ._progress import progress_bar
from .memory import initial_memory
from .recurrence import RECORD_STEPS, Recurrence, Replay, State
from .tasks import LabelTask
from .trace import effect_frame, error_correction_rate, trace_frame

__all__ = ["LLMRNNClassifier"]


def _refuse_trailing_nul(labels, name: str) -> None:
    """Refuse labels that end in NUL: numpy's string arrays drop it, so predict could not
    return the label as given."""
    if labels is None:
        return
    values = np.asarray(labels, dtype=object).ravel()  # object: the strings as given
    bad = [v for v in values if isinstance(v, str) and v.endswith("\x00")]
    if bad:
        raise ValueError(
            f"{name} contains labels ending in a NUL character ('\\x00'), e.g. {bad[0]!r}: "
            "numpy string arrays drop it, so predict could not return the label as given. "
            "Strip it first, e.g. [s.rstrip('\\x00') for s in y]."
        )


def _plain_columns(X):
    """``X`` as scikit-learn's validation should see it.

    A one-dimensional sequence of strings (a list of texts, a Series of them) becomes one
    column named ``text``: what a text classifier is given (scikit-learn's own 1-D rule, a
    ValueError, still holds for numbers). Columns of pandas extension dtypes (categorical,
    nullable boolean or integer, string) and of dates or durations become plain objects, their
    missing values NaN: scikit-learn's validation casts such a frame to one common dtype,
    which fails for a categorical of strings beside a boolean column or for dates beside
    numbers, and writes a nullable boolean as 0 or 1 (the rows are written as text anyway).
    """
    if _is_texts(X):
        return pd.DataFrame({"text": [str(v) for v in X]})
    if not isinstance(X, pd.DataFrame):
        return X
    plain = [i for i, d in enumerate(X.dtypes) if not isinstance(d, np.dtype) or d.kind in "mM"]
    if not plain:
        return X
    X = X.copy()
    for i in plain:
        values = X.iloc[:, i]
        X.isetitem(i, values.astype(object).where(values.notna(), np.nan))
    return X


#: ``_validated``'s ``y`` when only ``X`` is validated (None is a missing ``y``: an error).
_NO_Y = object()


def _validated(estimator, X, y=_NO_Y, *, reset: bool):
    """scikit-learn's validation of ``X`` (and ``y``, if given), its NaN error with advice."""
    try:
        if y is _NO_Y:
            return validate_data(
                estimator, _plain_columns(X), reset=reset, dtype=None, ensure_min_samples=1
            )
        return validate_data(estimator, _plain_columns(X), y, reset=reset, dtype=None)
    except ValueError as error:
        if "NaN" not in str(error):
            raise
        raise ValueError(
            f"{error}\nLLMRNNClassifier writes each row as text but does not read missing "
            "values: fill them first (e.g. X.fillna('missing') for text columns, a SimpleImputer "
            "in a Pipeline for numbers) and drop the rows whose label is missing."
        ) from error


def _is_texts(X) -> bool:
    """Whether ``X`` is a non-empty one-dimensional sequence of strings."""
    if isinstance(X, (str, bytes, pd.DataFrame)) or not isinstance(
        X, (list, tuple, np.ndarray, pd.Series)
    ):
        return False
    values = np.asarray(X, dtype=object) if not isinstance(X, pd.Series) else X.to_numpy(object)
    return values.ndim == 1 and len(values) > 0 and all(isinstance(v, str) for v in values)


logger = logging.getLogger("llmrnn")


# ClassifierMixin sits left of BaseEstimator so that its tags and ``score`` take precedence.
class LLMRNNClassifier(ClassifierMixin, BaseEstimator):
    """Sequential classifier that learns online through a natural-language memory (LLM-as-RNN).

    Rows are steps, in the order given. At each step a frozen language model reads its memory
    and the row's features and predicts a label; it then reflects on the outcome (the true label,
    or its own judgement without it) and rewrites its memory (arXiv 2601.13352). Labels are never
    parsed from generated text: each class is scored as a continuation of the prompt from the
    model's logits, which also gives ``predict_proba``.

    Parameters
    ----------
    model : str, path-like or None, default=None
        None for the embedded default model; a path to a ``.gguf`` file; a registered or
        catalogue name (``llmrnn models``); or a Hugging Face GGUF repository ``"org/repo"`` or
        ``"org/repo:QUANT"``, e.g. ``"Qwen/Qwen2.5-1.5B-Instruct-GGUF"``. A cached file is used
        with no network call; a missing one is downloaded in ``fit`` (never in offline mode).
        ``model_path_`` is the file resolved in ``fit``; later calls reuse it.
    strategy : {"rnn", "zero_shot", "full_history", "memprompt"}, default="rnn"
        "rnn" rewrites the memory each step; the others are the paper's baselines.
    feedback : {"truth", "judge"}, default="truth"
        Reflect on the true label, or let the model judge its own answer without it.
    memory_words : int, default=200
        Most words in the memory.
    context_tokens : int, default=4096
        Token budget of every prompt with its answers (also llama.cpp's context size).
    fit_steps : int or None, default=None
        How many of the last rows of ``fit`` run the recurrence (None: all). Earlier rows
        cost no model call: they enter the record as evidence (the newest 64), so the facts'
        label shares and the rule they suggest count them from the first step, and they
        count towards the fallback label (the most frequent one).
    initial_memory : str or None, default=None
        Memory before the first step (None: "Nothing learned yet.").
    task_description : str or None, default=None
        One sentence for the model about what the rows are and what the labels mean.
    label_descriptions : dict or None, default=None
        Class label -> short text shown to the model next to the label.
    check_tokens : int, default=48
        Most tokens of the line in which the model checks each row against the Rules of its
        memory before the labels are scored (``llmrnn.prompts.LABEL_CHECK``; "rnn" only). 0
        scores the labels at once: cheaper, but the measured models then ignore their Rules
        (see Notes). No check runs while the Rules line is still "none yet.".
    temperature : float, default=0.0
        Sampling temperature of reflections and rewrites (labels are always scored).
    random_state : int or None, default=None
        Base seed of every model call (None: 0).
    n_threads : int or None, default=None
        CPU threads for llama.cpp; None uses every core the process may run on.
    n_gpu_layers : int or "auto", default="auto"
        Layers offloaded to the GPU; "auto" offloads all when the build supports it.
    progress : bool, default=False
        Show a progress bar with the latest error during ``fit`` and ``partial_fit``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` was a DataFrame with string column names.
    memory_ : str
        The current memory (the notes or past steps for "memprompt" and "full_history").
    model_path_ : str
        The GGUF file in use.

    See Also
    --------
    LLMRNNForecaster : The same recurrence as an sktime forecaster.

    Notes
    -----
    Features are written one per line as ``name: value`` (numpy columns are named ``x0``,
    ``x1``, ...); a text column is shown as it is, newlines folded. ``predict_proba`` evaluates
    each row's prompt once and then only the label tokens of each class.

    Scored right after the question, the measured models' labels ignore the Rules line of their
    memory (the 1.5B model's probability of "up" hardly moved with the row it was told to
    decide by). With ``check_tokens`` > 0 the model first writes one line that checks the row
    against its Rules, and the labels are scored after that line: the 1.5B model then followed
    a one-feature rule at about 9 rows in 10 (``benchmarks/results/apply_rule_probe.md``). The
    embedded 135M model writes an empty line; its labels are then scored as without the check
    (the trace's ``fault`` says so).

    The code reads the memory's Rules too ("rnn" with true labels): where the model's reading
    and the code's gave different labels on earlier rows, the one that was right more often
    answers, the code's on a tie, so a model must show that it reads its Rules better before
    its reading is taken. When the code's reading answers, half of the probability moves to
    its label (``predict_proba``; the trace's ``weight`` is 0.5, and its ``fault`` says when
    the label differs from the model's); the trace's ``answer`` stays the model's own. With
    the 1.5B model this raised online accuracy on 4 of 8 up/down tasks (by 2 to 5 of 24 rows)
    and lowered it by one row on 3 (``docs/decisions.md``, "The code reads the Rules too").

    Examples
    --------
    >>> import numpy as np
    >>> from llmrnn import LLMRNNClassifier
    >>> X = np.array([[1.0], [2.0], [3.0], [2.0]])
    >>> y = np.array(["up", "up", "down", "down"])
    >>> clf = LLMRNNClassifier(memory_words=40).fit(X, y)
    >>> clf.predict_proba(X[:1]).shape
    (1, 2)
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        strategy: str = "rnn",
        feedback: str = "truth",
        memory_words: int = 200,
        context_tokens: int = 4096,
        fit_steps: int | None = None,
        initial_memory: str | None = None,
        task_description: str | None = None,
        label_descriptions: dict | None = None,
        check_tokens: int = 48,
        temperature: float = 0.0,
        random_state: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int | str = "auto",
        progress: bool = False,
    ) -> None:
        self.model = model
        self.strategy = strategy
        self.feedback = feedback
        self.memory_words = memory_words
        self.context_tokens = context_tokens
        self.fit_steps = fit_steps
        self.initial_memory = initial_memory
        self.task_description = task_description
        self.label_descriptions = label_descriptions
        self.check_tokens = check_tokens
        self.temperature = temperature
        self.random_state = random_state
        self.n_threads = n_threads
        self.n_gpu_layers = n_gpu_layers
        self.progress = progress

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # An LLM reading numbers does not reach scikit-learn's 0.83 accuracy bar on its
        # synthetic checks; the honest tag, not a weakened check.
        tags.classifier_tags.poor_score = True
        tags.input_tags.string = True
        return tags

    # -- helpers ---------------------------------------------------------------------------
    def _validate(self, X, reset: bool) -> np.ndarray:
        return _validated(self, X, reset=reset)

    def _feature_names(self) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
        return [f"x{i}" for i in range(self.n_features_in_)]

    def _start(self, classes: np.ndarray, y_seen: np.ndarray | None) -> None:
        """Reset the recurrence for ``classes``; choose the fallback from labels seen."""
        check_params(self, {"check_tokens": (0, False)})
        if self.label_descriptions is not None and not isinstance(self.label_descriptions, dict):
            raise ValueError(
                "Invalid value for parameter `label_descriptions`: expected None or a dict "
                f"label -> text, got {self.label_descriptions!r}."
            )
        path, _ = backend_for(self)
        self.model_path_ = path
        self.classes_ = classes
        fallback = 0
        if y_seen is not None and len(y_seen):
            counts = [(y_seen == c).sum() for c in classes]
            fallback = int(np.argmax(counts))
        self._task = LabelTask.build(
            classes,
            self._feature_names(),
            description=self.task_description,
            label_descriptions=self.label_descriptions,
            fallback_label=fallback,
        )
        self._loop_state = State(memory=initial_memory(self.initial_memory))
        self._initial = self._loop_state
        self._replays: list[Replay] = []
        self.memory_ = self._loop_state.memory

    def _loop(self) -> Recurrence:
        """A recurrence on the fitted model file (cheap: the loaded model is shared)."""
        return Recurrence(backend_on(self, self.model_path_), self._task, loop_config(self))

    def _encode(self, y) -> np.ndarray:
        """Class positions of ``y``; unseen labels are an error, not a silent guess."""
        y = np.asarray(y)
        unseen = sorted({str(v) for v in np.unique(y)} - {str(c) for c in self.classes_})
        if unseen:
            raise ValueError(
                f"y contains labels not in classes_ {list(self.classes_)!r}: {unseen}. Pass "
                "every label in `classes` on the first partial_fit, or refit."
            )
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        return np.array([lookup[v] for v in y.tolist()])

    def _steps(self, X: np.ndarray, y: np.ndarray | None) -> None:
        """Run the recurrence over the rows of ``X``; commit all or nothing."""
        if y is None and self.feedback == "truth":
            raise ValueError(
                "y is required with feedback='truth'; for the open-ended mode without labels "
                "use feedback='judge'."
            )
        truths = None if y is None else self._encode(y)
        loop = self._loop()
        state, replays = self._loop_state, []
        with progress_bar(len(X), self.progress, "partial_fit") as bar:
            for i, row in enumerate(X):
                truth = None if truths is None else int(truths[i])
                before = state
                state, record = loop.step(state, row, truth, index=len(self._replays) + i)
                replays.append(Replay(before, row, truth, record))
                if record.fault:
                    logger.info("step %d: %s", record.step, record.fault)
                bar.update(record.error)
        self._loop_state = state
        self._replays = self._replays + replays
        self.memory_ = state.memory if self.strategy == "rnn" else "\n".join(state.entries)

    # -- scikit-learn interface ------------------------------------------------------------
    @atomic
    def fit(self, X, y) -> LLMRNNClassifier:
        """Run the recurrence over the rows of ``X`` (in order) with their labels ``y``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            One row per step; numbers or text. A one-dimensional sequence of strings is one
            column named ``text``.
        y : array-like of shape (n_samples,)
            The labels.

        Returns
        -------
        self : LLMRNNClassifier

        Notes
        -----
        All or nothing: if anything fails, the estimator is left exactly as before the call.
        """
        _refuse_trailing_nul(y, "y")
        X, y = _validated(self, X, y, reset=True)
        check_classification_targets(y)
        self._start(unique_labels(y), y)
        start = 0 if self.fit_steps is None else max(0, len(X) - self.fit_steps)
        self._witness(X[:start], y[:start])
        self._steps(X[start:], y[start:])
        return self

    def _witness(self, X, y) -> None:
        """Rows before ``fit_steps``: into the record as evidence, with no model call (the
        newest ``RECORD_STEPS``, all the record keeps)."""
        if not len(X):
            return
        loop, state = self._loop(), self._loop_state
        truths = self._encode(y[-RECORD_STEPS:])
        for row, truth in zip(X[-RECORD_STEPS:], truths):
            state = loop.witness(state, row, int(truth))
        self._loop_state = state

    @atomic
    def partial_fit(self, X, y=None, classes=None) -> LLMRNNClassifier:
        """Continue the recurrence on new rows (the online update).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            New rows, in order.
        y : array-like of shape (n_samples,), optional
            Their labels; may be omitted with ``feedback="judge"`` (open-ended mode).
        classes : array-like, optional
            Every label; required on the first call.

        Returns
        -------
        self : LLMRNNClassifier
        """
        first = not hasattr(self, "classes_")
        if first and classes is None:
            raise ValueError(
                "classes must be passed on the first call to partial_fit: every label the "
                "classifier will see, e.g. classes=np.unique(y_all)."
            )
        _refuse_trailing_nul(y, "y")
        _refuse_trailing_nul(classes, "classes")
        if y is not None:
            X, y = _validated(self, X, y, reset=first)
            check_classification_targets(y)
        else:
            X = self._validate(X, reset=first)
        if first:
            self._start(unique_labels(np.asarray(classes)), y)
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(
                f"classes {list(classes)!r} differ from classes_ {list(self.classes_)!r} of "
                "the first partial_fit call."
            )
        self._steps(X, y)
        return self

    def update(self, X, y=None) -> LLMRNNClassifier:
        """The recurrent update of a fitted classifier (the forecaster's name for partial_fit).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            New rows, in order.
        y : array-like of shape (n_samples,), optional
            Their labels (omit with ``feedback="judge"``).

        Returns
        -------
        self : LLMRNNClassifier
        """
        check_is_fitted(self)
        return self.partial_fit(X, y)

    def predict_proba(self, X) -> np.ndarray:
        """Probability of each class for each row, from the model's logits; memory unchanged.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        return self._loop().probabilities(self._loop_state, list(X))

    def predict_log_proba(self, X) -> np.ndarray:
        """Natural logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row (the argmax of ``predict_proba``).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows to classify.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    # -- what it learned -------------------------------------------------------------------
    def get_trace(self) -> pd.DataFrame:
        """One row per recurrent step with its prediction, error (0/1) and cost.

        Returns
        -------
        pd.DataFrame
        """
        check_is_fitted(self)
        return trace_frame([r.record for r in self._replays])

    def memory_effect(self) -> pd.DataFrame:
        """What the memory changed: every step's label against the label with the initial memory.

        Each recurrent step with a true label is scored again with the memory it started from
        replaced by the initial one (for "full_history" and "memprompt": no past steps or
        notes); the row is the same, so a difference is the memory's doing. One model call per
        step; the estimator does not change.

        Returns
        -------
        pd.DataFrame
            One row per step: ``step, index, answer, answer_initial, prediction,
            prediction_initial, truth, error, error_initial, error_answer,
            error_answer_initial, changed`` (errors are 0/1). ``prediction`` is the label
            answered, the code's reading of the Rules where it has the better record (see
            Notes); ``error_answer`` is the model's own label's, so a memory that improves
            what the model says shows apart from the code's reading. With the initial memory
            there are no Rules to read.
            Summarize it with :func:`llmrnn.trace.effect_summary`.
        """
        check_is_fitted(self)
        steps = [r for r in self._replays if r.truth is not None]
        return effect_frame(self._loop().memory_effect(steps, self._initial))

    @property
    def error_correction_rate_(self) -> float:
        """Of the steps that were wrong, the share whose next step was right."""
        check_is_fitted(self)
        return error_correction_rate(self.get_trace()["error"], threshold=0.5)
