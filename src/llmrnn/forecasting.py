"""LLMRNNForecaster: the LLM-as-RNN recurrence as an sktime forecaster."""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from sktime.forecasting.base import BaseForecaster

from . import lockstep
from ._atomic import atomic
from ._params import backend_for, backend_on, check_params, loop_config
from ._progress import progress_bar
from ._tracks import Observer, Track, advance, regular_times, split_panel
from .context import check_calendar, check_exog
from .memory import initial_memory
from .recurrence import RECORD_STEPS, Recurrence, State
from .tasks import ForecastTask
from .trace import effect_frame, trace_frame

__all__ = ["LLMRNNForecaster", "auto_base_forecaster", "season_length", "theta_forecaster"]

logger = logging.getLogger("llmrnn")

#: Fewest past one-step errors behind intervals and quantiles without a warning that they are
#: too narrow to trust. Not tuned on any series: the range of n past errors holds a new one
#: with probability (n - 1) / (n + 1), 82% at 10, so a 90% interval from fewer is too narrow
#: whatever the model (from one error, of zero width).
INTERVAL_ERRORS = 10

#: Season length by the leading letters of a pandas frequency (what ``season_length`` reads).
_SEASONS = {"M": 12, "Q": 4, "W": 52, "D": 7, "B": 5, "H": 24, "h": 24}


def season_length(index: pd.Index) -> int:
    """Season length implied by a regular index's frequency: 12 for monthly, 4 for quarterly,
    52 weekly, 7 daily, 5 business-daily, 24 hourly; 1 when unknown (annual, integer, none).

    Parameters
    ----------
    index : pandas.Index
        A PeriodIndex or DatetimeIndex with a frequency; any other index gives 1.

    Returns
    -------
    int
    """
    freq = getattr(index, "freqstr", None)
    if not freq:
        return 1
    letters = freq.lstrip("0123456789")
    if letters.startswith("B") and letters != "B":  # business month, quarter, year, hour
        letters = "" if letters.startswith("BH") else letters[1:]
    for prefix, sp in _SEASONS.items():
        if letters.startswith(prefix) and (prefix != "M" or not letters.startswith("MIN")):
            return sp
    return 1


def theta_forecaster(history: pd.Series, sp: int) -> BaseForecaster:
    """Theta (SES with drift) with season length ``sp``, set up soundly for ``history``.

    The one place of the rule: deseasonalized only when ``sp > 1`` and the history holds two
    whole seasons of positive values (Theta's deseasonalizing is multiplicative); the last value
    while fewer than 3 points are known (Theta cannot fit fewer).

    Parameters
    ----------
    history : pandas.Series
        The points known before the forecast.
    sp : int
        The season length (1: none).

    Returns
    -------
    sktime forecaster
        An unfitted forecaster.
    """
    from sktime.forecasting.naive import NaiveForecaster
    from sktime.forecasting.theta import ThetaForecaster

    seasonal = sp > 1 and len(history) >= 2 * sp and bool((history > 0).all())
    with warnings.catch_warnings():  # sktime's notice of a future default, per construction
        warnings.filterwarnings("ignore", message="The default of config ``remember")
        if len(history) < 3:
            return NaiveForecaster(strategy="last")
        return ThetaForecaster(sp=sp if seasonal else 1, deseasonalize=seasonal)


def auto_base_forecaster(history: pd.Series) -> BaseForecaster:
    """The base forecaster that ``base_forecaster="auto"`` corrects, chosen for ``history``.

    :func:`theta_forecaster` with the season length of the index (:func:`season_length`).
    Theta was the base that won the quick benchmark (``benchmarks/results``): see
    ``docs/decisions.md``.

    Parameters
    ----------
    history : pandas.Series
        The points known before the forecast.

    Returns
    -------
    sktime forecaster
        An unfitted forecaster.
    """
    return theta_forecaster(history, season_length(history.index))


class LLMRNNForecaster(BaseForecaster):
    """Forecaster that learns online through a natural-language memory (LLM-as-RNN).

    A frozen language model predicts the next value from a window of the series and its memory,
    compares the prediction with the truth (or judges it, without truth), and rewrites its memory
    (arXiv 2601.13352). No weights change: the memory is the recurrent state. The model runs
    locally through llama.cpp; the default is an embedded 135M-parameter model.

    Parameters
    ----------
    model : str, path-like or None, default=None
        None for the embedded default model (SmolLM2-135M, ships with the install); a path to a
        ``.gguf`` file; a name from ``llmrnn models`` (registered through ``LLMRNN_MODELS``, or
        a catalogue name such as ``"qwen2.5-1.5b-instruct"``); or a Hugging Face GGUF
        repository ``"org/repo"`` or ``"org/repo:QUANT"``, e.g.
        ``"Qwen/Qwen2.5-1.5B-Instruct-GGUF"`` (without a tag Q4_K_M, else any Q4 file, as
        llama.cpp chooses). A file already in the Hugging Face cache is used with no network
        call; a missing one is downloaded in ``fit`` (``llmrnn pull`` fetches it ahead), never
        in offline mode (``HF_HUB_OFFLINE=1``). ``model_path_`` is the file resolved in ``fit``:
        ``predict`` and ``update`` use it, and a pickled forecaster keeps it.
    strategy : {"rnn", "zero_shot", "full_history", "memprompt"}, default="rnn"
        "rnn" rewrites the memory each step; the others are the paper's baselines: no memory,
        every past step appended to the prompt, or an append-only list of feedback notes.
    feedback : {"truth", "judge"}, default="truth"
        Where the reflection's signal comes from: the true value, or the model judging its own
        prediction against stated criteria (LLM-as-a-Judge) without seeing the truth.
    memory_words : int, default=100
        Most words in the memory (100 won the full benchmark's ablation, see the README).
    context_tokens : int, default=4096
        Token budget (the paper's lambda) of every prompt with its answers; also the llama.cpp
        context size. Oldest history entries, then oldest window values, are dropped to fit.
    fit_steps : int or None, default=None
        How many of the last training points run the recurrence in ``fit`` (None: every point
        after the first). Earlier points serve as context; without a base, their changes (up
        to 64) also enter the record with no model call, so the facts of the first step can
        find changes that come back a season later (``tasks.repeat_lag``).
    initial_memory : str or None, default=None
        Memory before the first step (None: a neutral "Nothing learned yet.").
    task_description : str or None, default=None
        One sentence about the series for the model (units, what it measures).
    temperature : float, default=0.0
        Sampling temperature of predictions and rewrites; 0 is greedy and repeatable.
    random_state : int or None, default=None
        Base seed of every model call (None: 0). Samples behind intervals use it too.
    n_threads : int or None, default=None
        CPU threads for llama.cpp; None uses every core the process may run on.
    n_gpu_layers : int or "auto", default="auto"
        Layers offloaded to the GPU; "auto" offloads all when the llama.cpp build supports it.
    progress : bool, default=False
        Show a progress bar with the latest error during ``fit`` and ``update``.
    window : int, default=24
        Past observations shown at each step.
    n_samples : int, default=20
        Seeded samples of the model's answer behind ``predict_interval`` and
        ``predict_quantiles``; each is combined with every past one-step error of the forecast
        (its record, widened by sqrt(h) at h steps ahead), so intervals reflect how far off the
        forecasts have been, not only how much the model's answers vary. With fewer than 10
        steps in the record (``INTERVAL_ERRORS``) they warn that they are too narrow to trust.
    answer : {"change", "value"}, default="change"
        What the model writes: the changes from the last value (a neutral answer repeats the
        last value), or the values themselves. With a ``base_forecaster``, "change" is the
        correction of each base forecast (a neutral answer repeats the base forecast).
    base_forecaster : sktime forecaster, "auto" or None, default="auto"
        A forecaster whose forecasts the model sees and corrects; the memory learns its
        systematic errors. It is refitted (a clone) on the history before every step and every
        prediction, so it should be cheap: ``ThetaForecaster(sp=12)``, ``NaiveForecaster``.
        "auto" is Theta with the season length of the index (``auto_base_forecaster``): the
        measured winner, see the README's accuracy table. For a season the index does not show
        (lynx's 10 years, an integer index), pass ``ThetaForecaster(sp=...)``. None lets the
        model forecast from the window alone, as in the paper.
    correction_weight : "learned" or float, default="learned"
        How much of the model's (bounded) correction reaches the forecast: the forecast is the
        anchor (the base forecast, or the last value) plus this weight times the correction.
        "learned" learns it online from the model's own record (``llmrnn.guard``): 0 until
        its corrections have come true often enough, up to 1 when they keep doing so, so a
        model that does not help falls back to the base; and never more than a loss budget
        allows, so that over the record the one-step forecasts' total absolute error stays
        within 1.02 times the anchor's (the budget grows with what the corrections have
        gained). A number in [0, 1] fixes it, with no budget; 1.0 takes the model's corrections
        as they are (the paper's loop, still bounded).
    calendar : None, True, str or pandas holiday calendar, default=None
        Calendar facts of the times being forecast, shown to the model with each step: True
        gives the date (weekday and date for daily or finer data; the month, quarter or year
        for coarser periods); a country code of the ``holidays`` package (e.g. "US"; ``pip
        install holidays``) or a pandas holiday calendar (e.g.
        ``pandas.tseries.holiday.USFederalHolidayCalendar()``) adds the public holidays on the
        day or within the period, so the memory can learn their effect.
    batch_size : int, default=8
        For a panel or hierarchy: how many series are stepped in lockstep on one llama.cpp
        context (one sequence each; every phase's calls decoded together). Bounds the memory a
        batch takes; with sktime's ``backend:parallel`` config set, batches run in parallel
        workers, each loading the model once.

    Attributes
    ----------
    memory_ : str
        The current memory: three lines, Patterns, Mistakes and Rules (for "memprompt" and
        "full_history", the notes or past steps kept).
    model_path_ : str
        The GGUF file in use.
    scale_ : float
        Numbers are divided by it before the model sees them.

    See Also
    --------
    LLMRNNClassifier : The same recurrence for sequential classification.

    Notes
    -----
    Exogenous ``X`` (a DataFrame) is shown to the model at every step: each column's values
    over the window and at the times being forecast, numbers at a power-of-ten scale chosen in
    ``fit``, text and categories as short escaped text (cut at 200 characters, "[cut]"; a text
    column shows only its latest value of the window). NaN in ``X`` is refused by sktime with a
    clear error (impute first); a time ``X`` has no row for (e.g. ``X`` covering only part of
    the horizon in ``predict``) is shown as "missing". Once fitted with ``X``, ``predict`` and
    ``update`` need ``X`` with the same columns (a clear error says so); a base forecaster
    that takes exogenous data gets it too.
    Each recurrent step costs five model calls with "rnn" (predict; reflect; the memory's three
    sections, which continue one prompt); ``get_trace()`` shows the tokens evaluated, reused
    from llama.cpp's KV cache and generated. ``memory_effect()`` tells whether the memory
    changed the answers, and for the better.

    References
    ----------
    .. [1] LLM-as-RNN: A Recurrent Language Model for Memory Updates and Sequence Prediction,
       arXiv 2601.13352.

    Examples
    --------
    >>> from sktime.datasets import load_airline
    >>> from llmrnn import LLMRNNForecaster
    >>> y = load_airline()[-30:]
    >>> f = LLMRNNForecaster(window=12, fit_steps=2, memory_words=40)
    >>> f = f.fit(y, fh=[1, 2, 3])
    >>> y_pred = f.predict()
    """

    _tags = {
        # packaging info
        # --------------
        "authors": ["llmrnn developers"],
        "python_dependencies": ["llama-cpp-python"],
        # estimator type
        # --------------
        "y_inner_mtype": ["pd.Series", "pd-multiindex", "pd_multiindex_hier"],
        "X_inner_mtype": ["pd.DataFrame", "pd-multiindex", "pd_multiindex_hier"],
        "capability:multivariate": False,  # sktime broadcasts columns: one memory per series
        "capability:exogenous": True,  # X's values are rendered into each step's prompt
        "capability:missing_values": False,
        "capability:insample": False,  # the recurrence only predicts ahead of its cutoff
        "capability:pred_int": True,  # from n_samples seeded samples
        "capability:pred_int:insample": False,
        "capability:update": True,  # _update runs the three phases on each new point
        "capability:random_state": True,  # random_state seeds every model call
        "requires-fh-in-fit": False,
        "fit_is_empty": False,
        # testing configuration
        # ---------------------
        "tests:vm": False,
    }

    # The estimator keeps its own copy of the series it has seen (``_series``), so it does not
    # depend on sktime's ``remember_data`` default, which changes in sktime 1.3.
    _config = {"remember_data": False}
    # What sktime's base class reads when a user turns ``remember_data`` back on after
    # construction (its __init__ creates these only when the config is on at that time).
    _y = None
    _X = None

    def __init__(
        self,
        model: str | None = None,
        strategy: str = "rnn",
        feedback: str = "truth",
        memory_words: int = 100,
        context_tokens: int = 4096,
        fit_steps: int | None = None,
        initial_memory: str | None = None,
        task_description: str | None = None,
        temperature: float = 0.0,
        random_state: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int | str = "auto",
        progress: bool = False,
        window: int = 24,
        n_samples: int = 20,
        answer: str = "change",
        base_forecaster: BaseForecaster | str | None = "auto",
        correction_weight: float | str = "learned",
        calendar: bool | str | Any = None,
        batch_size: int = 8,
    ) -> None:
        self.model = model
        self.strategy = strategy
        self.feedback = feedback
        self.memory_words = memory_words
        self.context_tokens = context_tokens
        self.fit_steps = fit_steps
        self.initial_memory = initial_memory
        self.task_description = task_description
        self.temperature = temperature
        self.random_state = random_state
        self.n_threads = n_threads
        self.n_gpu_layers = n_gpu_layers
        self.progress = progress
        self.window = window
        self.n_samples = n_samples
        self.answer = answer
        self.base_forecaster = base_forecaster
        self.correction_weight = correction_weight
        self.calendar = calendar
        self.batch_size = batch_size
        super().__init__()

    # -- helpers ---------------------------------------------------------------------------
    def _observer(self) -> Observer:
        return Observer(self.window, self.base_forecaster, self.calendar, self._freq)

    def _backend_params(self) -> dict:
        return {
            "context_tokens": self.context_tokens,
            "n_threads": self.n_threads,
            "n_gpu_layers": self.n_gpu_layers,
        }

    def _loop(self, track: Track) -> Recurrence:
        """A recurrence on the fitted model file (cheap: the loaded model is shared)."""
        return Recurrence(backend_on(self, self.model_path_), track.task, loop_config(self))

    @property
    def _single(self) -> Track:
        """The track of a single series (the estimator was fitted on one)."""
        return self._tracks[None]

    def _advance(self, tracks: dict, positions: dict, what: str) -> dict:
        """Step ``tracks`` at ``positions`` in lockstep, in batches of ``batch_size`` series;
        spread the batches over sktime's parallel backend when one is configured."""
        keys = list(tracks)
        batches = [keys[i : i + self.batch_size] for i in range(0, len(keys), self.batch_size)]
        common = {
            "observer": self._observer(),
            "config": loop_config(self),
            "model_path": self.model_path_,
            "backend_params": self._backend_params(),
        }
        parallel = self.get_config().get("backend:parallel")
        if parallel not in (None, "None") and len(batches) > 1:
            from sktime.utils.parallel import parallelize

            done = parallelize(
                fun=_advance_batch,
                iter=[({k: tracks[k] for k in b}, {k: positions[k] for k in b}) for b in batches],
                meta=common,
                backend=parallel,
                backend_params=self.get_config().get("backend:parallel:params"),
            )
            return {key: track for part in done for key, track in part.items()}
        steps = sum(len(p) for p in positions.values())
        out: dict = {}
        with progress_bar(steps, self.progress, what) as bar:
            for batch in batches:
                out.update(
                    advance(
                        {k: tracks[k] for k in batch},
                        {k: positions[k] for k in batch},
                        on_step=bar.update,
                        **common,
                    )
                )
        return out

    def _commit(self, tracks: dict) -> None:
        self._tracks = tracks
        memories = {
            key: t.state.memory if self.strategy == "rnn" else "\n".join(t.state.entries)
            for key, t in tracks.items()
        }
        scales = {key: t.task.scale for key, t in tracks.items()}
        if list(tracks) == [None]:
            self.memory_, self.scale_ = memories[None], scales[None]
        else:
            index = self._instance_index(list(tracks))
            self.memory_ = pd.Series(list(memories.values()), index=index, name="memory")
            self.scale_ = pd.Series(list(scales.values()), index=index, name="scale")

    def _instance_index(self, keys: list) -> pd.Index:
        if len(self._levels) == 1:
            return pd.Index(keys, name=self._levels[0])
        return pd.MultiIndex.from_tuples(keys, names=self._levels)

    @staticmethod
    def _check_values(y: pd.Series) -> None:
        if not (y.index.is_unique and y.index.is_monotonic_increasing):
            raise ValueError(
                "y's index has duplicated or unsorted time points: sort it and drop duplicates "
                "first, e.g. y = y[~y.index.duplicated()].sort_index()."
            )
        values = y.to_numpy(dtype=float)
        if not np.all(np.isfinite(values)):
            raise ValueError(
                "y contains inf or NaN values: LLMRNNForecaster needs finite numbers; "
                "impute or drop them first (e.g. sktime's Imputer)."
            )

    def _check_parameters(self) -> None:
        check_params(
            self, {"window": (2, False), "n_samples": (2, False), "batch_size": (1, False)}
        )
        if self.answer not in ("change", "value"):
            raise ValueError(
                "Invalid value for parameter `answer`: expected 'change' or 'value', "
                f"got {self.answer!r}."
            )
        if not (
            self.base_forecaster is None
            or isinstance(self.base_forecaster, BaseForecaster)
            or (isinstance(self.base_forecaster, str) and self.base_forecaster == "auto")
        ):
            raise ValueError(
                "Invalid value for parameter `base_forecaster`: expected an sktime forecaster "
                f"(e.g. ThetaForecaster(sp=12)), 'auto' or None, got {self.base_forecaster!r}."
            )
        weight = self.correction_weight
        number = isinstance(weight, (int, float)) and not isinstance(weight, bool)
        if not ((isinstance(weight, str) and weight == "learned") or (number and 0 <= weight <= 1)):
            raise ValueError(
                "Invalid value for parameter `correction_weight`: expected 'learned' or a number "
                f"between 0 and 1, got {weight!r}."
            )
        check_calendar(self.calendar)

    # -- sktime interface ------------------------------------------------------------------
    def _fit(self, y, X: pd.DataFrame | None = None, fh=None):
        self._check_parameters()
        parts = split_panel(y, X)
        hint = getattr(self.cutoff, "freq", None)  # sktime's, inferred from the whole index
        for key, (series, exog) in parts.items():
            self._check_values(series)
            if len(series) < 2:
                raise ValueError(
                    f"y has {len(series)} value(s) in a series: LLMRNNForecaster needs at least "
                    "2 to show the model a past value and score a prediction."
                )
            parts[key] = (regular_times(series, hint), exog)
        first = next(iter(parts.values()))[0]
        self._freq = getattr(first.index, "freq", None)
        self._levels = list(y.index.names[:-1]) if isinstance(y.index, pd.MultiIndex) else []
        self._time_name = y.index.names[-1]
        self._exog_columns = None if X is None else tuple(str(c) for c in X.columns)
        self._name = y.name if isinstance(y, pd.Series) else y.columns[0]
        path, _ = backend_for(self)
        self.model_path_ = path
        weight = None if self.correction_weight == "learned" else float(self.correction_weight)
        initial = State(memory=initial_memory(self.initial_memory))
        tracks, positions = {}, {}
        for key, (series, exog) in parts.items():
            task = ForecastTask.from_series(
                series.to_numpy(dtype=float),
                answer=self.answer,
                description=self.task_description,
                based=self.base_forecaster is not None,
                weight=weight,
                X=exog,
                season=season_length(series.index),
            )
            track = Track(task, initial, initial, (), series.copy(), exog)
            start = 1 if self.fit_steps is None else max(1, len(series) - self.fit_steps)
            tracks[key] = self._witness(track, start)
            positions[key] = range(start, len(series))
        self._commit(self._advance(tracks, positions, "fit"))
        return self

    def _witness(self, track: Track, start: int) -> Track:
        """The points before ``fit_steps`` into the record as evidence, with no model call
        (the newest ``RECORD_STEPS``, all the record keeps): without a base, their actual
        corrections are the series' changes, which the facts read (``tasks.repeat_lag``)."""
        if track.task.based or start <= 1:
            return track
        loop, state, observer = self._loop(track), track.state, self._observer()
        for t in range(max(1, start - RECORD_STEPS), start):
            observation = observer.observe(track.series, t, 1, track.exog)
            state = loop.witness(state, observation, track.series.iloc[t])
        return replace(track, state=state)

    def _named_cutoff(self) -> Any:
        """sktime's cutoff, with the series' frequency where sktime has none (sktime takes it
        from a panel's time index as it comes, which often has none: a panel read from a CSV,
        some panels whose series start at different times); its horizons need it."""
        cutoff = self.cutoff
        if isinstance(cutoff, pd.DatetimeIndex) and cutoff.freq is None and self._freq:
            cutoff = pd.DatetimeIndex(cutoff, freq=self._freq)
        return cutoff

    def _horizons(self, fh, track: Track) -> np.ndarray:
        """Steps ahead of ``track``'s last point for each time of ``fh`` (panels may end at
        different times)."""
        cutoff = self._named_cutoff()
        if not isinstance(cutoff, pd.Index) or len(self._tracks) == 1:
            return fh.to_relative(cutoff).to_numpy().astype(int)
        from sktime.forecasting.base import ForecastingHorizon

        absolute = fh.to_absolute_index(cutoff)
        end = track.series.index[-1:]
        relative = ForecastingHorizon(absolute, is_relative=False, freq=self._freq)
        return relative.to_relative(end).to_numpy().astype(int)

    def _exog_with(self, track: Track, X: pd.DataFrame | None, where: str):
        """``track``'s exogenous rows so far, with ``X``'s newer rows added (not stored)."""
        if self._exog_columns is None:
            return None
        newer = X[~X.index.isin(track.exog.index)]
        return pd.concat([track.exog, newer]) if len(newer) else track.exog

    def _ahead(self, fh, X: pd.DataFrame | None, where: str) -> list:
        """Per series: its key, track, horizon steps, and what the model sees for them."""
        check_exog(X, self._exog_columns, where)
        out = []
        for key, track in self._tracks.items():
            steps = self._horizons(fh, track)
            horizon = int(steps.max())
            exog = self._exog_with(track, _rows_of(X, key), where)
            observation = self._observer().observe(track.series, len(track.series), horizon, exog)
            out.append((key, track, steps, horizon, observation))
        return out

    def _assemble(self, values: dict, fh) -> pd.Series | pd.DataFrame:
        """Per-series forecasts as sktime expects them: a Series, or a panel DataFrame."""
        index = fh.to_absolute_index(self._named_cutoff())
        if list(values) == [None]:
            return pd.Series(values[None], index=index, name=self._name)
        frames = []
        for key, vals in values.items():
            keys = key if isinstance(key, tuple) else (key,)
            rows = pd.MultiIndex.from_tuples(
                [(*keys, t) for t in index], names=[*self._levels, self._time_name]
            )
            frames.append(pd.DataFrame({self._name: vals}, index=rows))
        return pd.concat(frames)

    def _predict(self, fh, X: pd.DataFrame | None = None):
        items = self._ahead(fh, X, "predict")
        if not items:
            return self._assemble({}, fh)
        loops = {key: self._loop(track) for key, track, *_ in items}
        gens = [
            loops[key].predict_gen(track.state, observation, horizon)
            for key, track, _, horizon, observation in items
        ]
        backend = next(iter(loops.values())).backend
        values = {}
        for (key, _, steps, _, _), ((prediction, fault), _) in zip(
            items, lockstep.run(backend, gens, exact=False)
        ):
            if fault:
                logger.warning("predict: %s", fault)
            values[key] = np.asarray(prediction)[steps - 1]
        return self._assemble(values, fh)

    def _predict_quantiles(self, fh, X: pd.DataFrame | None, alpha: list[float]) -> pd.DataFrame:
        columns = pd.MultiIndex.from_product([self._get_varnames(), alpha])
        frames, fewest = [], None
        for key, track, steps, horizon, observation in self._ahead(fh, X, "predict_quantiles"):
            samples = self._loop(track).sample(track.state, observation, horizon, self.n_samples)
            # The model's sampled answers, each plus every past one-step error of the forecast
            # (widened by sqrt(h) at h steps ahead): a guard that trusts the model little gives
            # samples close to the base forecast, and the record says how far off that was.
            errors = track.task.residuals(track.state.record)
            fewest = errors.size if fewest is None else min(fewest, errors.size)
            if errors.size:
                widen = np.sqrt(np.arange(1, horizon + 1))
                samples = (samples[:, None, :] + errors[None, :, None] * widen).reshape(-1, horizon)
            quantiles = np.quantile(samples[:, steps - 1], alpha, axis=0).T
            frame = pd.DataFrame(quantiles, columns=columns)
            frames.append((key, frame))
        if fewest is not None and fewest < INTERVAL_ERRORS:
            warnings.warn(
                f"The intervals rest on {fewest} past one-step error(s) of the forecast (one per "
                f"recurrent step; fit_steps={self.fit_steps}): with fewer than "
                f"{INTERVAL_ERRORS} they are too narrow to trust (from one, of zero width while "
                "the guard does not trust the model). Fit with more fit_steps (None: every "
                "training point) or update with more points first.",
                UserWarning,
                stacklevel=3,
            )
        index = fh.to_absolute_index(self._named_cutoff())
        if [k for k, _ in frames] == [None]:
            return frames[0][1].set_index(index)
        parts = []
        for key, frame in frames:
            keys = key if isinstance(key, tuple) else (key,)
            frame.index = pd.MultiIndex.from_tuples(
                [(*keys, t) for t in index], names=[*self._levels, self._time_name]
            )
            parts.append(frame)
        return pd.concat(parts)

    @atomic
    def update(self, y, X=None, update_params: bool = True):
        """Update the cutoff and, with ``update_params=True``, run the recurrence on new points.

        Only points newer than the previous cutoff are stepped (sktime's ``evaluate`` passes
        overlapping windows). If anything fails, the estimator is left exactly as before the
        call: data, cutoff, memory and trace change together or not at all.

        Parameters
        ----------
        y : pd.Series or panel
            New observations (may overlap the ones already seen).
        X : pd.DataFrame, optional
            Exogenous rows of the new points; required when ``fit`` had ``X``.
        update_params : bool, default=True
            True: predict, reflect and rewrite the memory on each new point. False: only extend
            the context (the memory does not change).

        Returns
        -------
        self : LLMRNNForecaster
        """
        return super().update(y, X=X, update_params=update_params)

    @atomic
    def fit(self, y, X=None, fh=None):
        """Fit to ``y``: run the recurrence over its last ``fit_steps`` points.

        All or nothing: if anything fails, the estimator is left exactly as before the call.

        Parameters
        ----------
        y : pd.Series, or a panel or hierarchy
            The series. A panel or hierarchy (sktime's ``pd-multiindex`` and
            ``pd_multiindex_hier``) is handled natively: one memory per series, every series
            stepped in lockstep on one model (``batch_size`` series at a time). A multi-column
            DataFrame is broadcast by sktime: one forecaster per column.
        X : pd.DataFrame, optional
            Exogenous data, one row per time of ``y`` (shown to the model at every step).
        fh : ForecastingHorizon, list or int, optional
            The horizon, if known now.

        Returns
        -------
        self : LLMRNNForecaster
        """
        return super().fit(y, X=X, fh=fh)

    def _update(self, y, X: pd.DataFrame | None = None, update_params: bool = True):
        check_exog(X, self._exog_columns, "update")
        parts = split_panel(y, X)
        tracks, positions = dict(self._tracks), {}
        for key, (series, _) in parts.items():
            if key not in self._tracks:
                raise ValueError(
                    f"update got a series {key!r} that fit did not see: refit with every series "
                    "of the panel (a new series has no memory to continue)."
                )
            self._check_values(series)
            track = self._tracks[key]
            seen = track.series
            new = series[series.index > seen.index[-1]]
            if new.empty:
                continue
            full = regular_times(pd.concat([seen, new]), self._freq)
            exog = self._exog_with(track, _rows_of(X, key), "update")
            if exog is not None:
                missing = new.index[~new.index.isin(exog.index)]
                if len(missing):
                    raise ValueError(
                        f"X given to update has no rows for {list(missing)}: pass X for every "
                        "new point of y (the model is shown the exogenous values of each step)."
                    )
            tracks[key] = replace(track, series=full, exog=exog)
            positions[key] = range(len(seen), len(full))
        if not positions:
            last = max(t.series.index[-1] for t in self._tracks.values())
            raise ValueError(
                f"update got no point after the cutoff {last}: pass the new observations "
                "(points already seen are skipped, older ones cannot be inserted)."
            )
        if update_params:
            stepped = self._advance({k: tracks[k] for k in positions}, positions, "update")
            tracks.update(stepped)
        self._commit(tracks)
        return self

    # -- what it learned -------------------------------------------------------------------
    def _per_series(self, frames: dict) -> pd.DataFrame:
        """Per-series frames stacked, with the series' index levels as first columns."""
        if list(frames) == [None]:
            return frames[None]
        parts = []
        for key, frame in frames.items():
            keys = key if isinstance(key, tuple) else (key,)
            parts.append(frame.assign(**dict(zip(self._levels, keys))))
        frame = pd.concat(parts, ignore_index=True)
        return frame[[*self._levels, *frame.columns[: -len(self._levels)]]]

    def _vectorized(self, method: str) -> pd.DataFrame:
        fitted = self.forecasters_
        parts = [
            getattr(fitted.loc[row, column], method)().assign(series=column)
            for row in fitted.index
            for column in fitted.columns
        ]
        frame = pd.concat(parts, ignore_index=True)
        return frame[["series", *frame.columns[:-1]]]

    def get_trace(self) -> pd.DataFrame:
        """One row per recurrent step (fit, then updates) with its prediction, error and cost.

        Returns
        -------
        pd.DataFrame
            Columns ``step, index, observation, answer, weight, prediction, truth, error,
            feedback, memory, prompt_tokens, cached_tokens, generated_tokens, calls, seconds,
            fault``. For a panel or hierarchy, the series' index levels come first, as columns
            under their names. For a multi-column ``y`` (sktime fits one forecaster, and one
            memory, per column), the traces are stacked with a first column ``series``.
        """
        self.check_is_fitted()
        if getattr(self, "_is_vectorized", False):
            return self._vectorized("get_trace")
        return self._per_series(
            {k: trace_frame([r.record for r in t.replays]) for k, t in self._tracks.items()}
        )

    def memory_effect(self) -> pd.DataFrame:
        """What the memory changed: every step's answer against the answer with the initial memory.

        Each recurrent step is predicted again with the memory it started from replaced by the
        initial one (for "full_history" and "memprompt": with no past steps or notes); the
        window, the base forecast and the record the guard learns its weight from stay the
        same, so any difference is the memory's doing. Costs one model call per step; the
        estimator does not change.

        Returns
        -------
        pd.DataFrame
            One row per step: ``step, index, answer, answer_initial, prediction,
            prediction_initial, truth, error, error_initial, error_answer,
            error_answer_initial, changed`` (``error_answer``: the answer's own error, before
            the guard's weight). Summarize it with
            :func:`llmrnn.trace.effect_summary`. Panels and multi-column ``y`` get their
            series columns first, as in :meth:`get_trace`.
        """
        self.check_is_fitted()
        if getattr(self, "_is_vectorized", False):
            return self._vectorized("memory_effect")
        return self._per_series(
            {
                k: effect_frame(self._loop(t).memory_effect(t.replays, t.initial))
                for k, t in self._tracks.items()
            }
        )

    @classmethod
    def get_test_params(cls, parameter_set: str = "default") -> list[dict[str, Any]]:
        """Parameter sets for sktime's conformance suite (deterministic stand-in backend).

        Each set reaches a different code path: the memory rewrite with truth feedback and the
        default automatic base; the append-only history with judged feedback and value answers
        and no base; and the zero-shot baseline with a bounded number of fit steps and calendar
        facts, correcting a given base forecaster. sktime's scenarios with exogenous ``X`` run
        on every set (tag ``capability:exogenous``).
        """
        from sktime.forecasting.naive import NaiveForecaster

        from .models import STAND_IN

        return [
            {"model": STAND_IN, "window": 6, "memory_words": 30, "n_samples": 5, "fit_steps": 5},
            {
                "model": STAND_IN,
                "strategy": "full_history",
                "feedback": "judge",
                "answer": "value",
                "context_tokens": 1024,
                "n_samples": 4,
                "base_forecaster": None,
            },
            {
                "model": STAND_IN,
                "strategy": "zero_shot",
                "fit_steps": 3,
                "calendar": True,
                "n_samples": 3,
                "base_forecaster": NaiveForecaster(strategy="mean"),
            },
        ]


def _advance_batch(batch: tuple[dict, dict], meta: dict) -> dict:
    """One batch of tracks, stepped in a worker of sktime's parallel backend."""
    tracks, positions = batch
    return advance(tracks, positions, **meta)


def _rows_of(X: pd.DataFrame | None, key) -> pd.DataFrame | None:
    """The rows of series ``key`` of a panel's ``X`` (all of ``X`` for a single series)."""
    if X is None or key is None:
        return X
    keys = key if isinstance(key, tuple) else (key,)
    levels = list(range(len(keys)))
    try:
        return X.xs(keys, level=levels)
    except KeyError:
        return X.iloc[:0].droplevel(levels)
