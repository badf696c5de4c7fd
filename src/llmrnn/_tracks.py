"""One recurrence per series, stepped in lockstep: the machinery behind LLMRNNForecaster.

A *track* is one series' recurrence: its data, its task (number scales), its state and its
steps. A single series is one track; a panel or hierarchy is one track per series. Tracks are
stepped in lockstep (``recurrence.step_many``: every phase's model calls decoded together on
one llama.cpp context), in batches of at most ``batch_size`` series, and the batches are spread
over sktime's parallel backend when one is configured (``backend:parallel``: each worker loads
the model once and runs its batches in lockstep).

Everything here is plain data and functions, so a batch can be shipped to a worker process and
back; nothing holds the loaded model.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ._params import backend_on
from .context import step_context
from .recurrence import LoopConfig, Recurrence, Replay, State, step_many
from .tasks import ForecastTask, Observation

__all__ = ["Observer", "Track", "advance", "split_panel"]

logger = logging.getLogger("llmrnn")

Key = Hashable  # None for a single series; the instance's index values for a panel


@dataclass(frozen=True)
class Track:
    """One series' recurrence.

    Attributes
    ----------
    task : ForecastTask
        How this series' numbers are written (its own scales).
    initial : State
        The state before the first step (``memory_effect`` compares against it).
    state : State
        The state after the last step.
    replays : tuple of Replay
        Every step so far, with what is needed to replay it.
    series : pd.Series
        Every point seen so far, time-indexed.
    exog : pd.DataFrame or None
        Its exogenous rows so far.
    """

    task: ForecastTask
    initial: State
    state: State
    replays: tuple[Replay, ...]
    series: pd.Series
    exog: pd.DataFrame | None


@dataclass(frozen=True)
class Observer:
    """What the model sees at a step: the window, the base's forecasts, the context.

    Parameters
    ----------
    window : int
        Past values shown.
    base_forecaster : sktime forecaster, "auto" or None
        What the model corrects (refitted on the history before every step).
    calendar : object
        The forecaster's ``calendar`` parameter.
    freq : object
        The series' frequency (to name times beyond the data).
    """

    window: int
    base_forecaster: Any
    calendar: Any
    freq: Any

    def observe(self, y: pd.Series, position: int, horizon: int, X: pd.DataFrame | None) -> Any:
        """What the model sees before ``y[position]`` (or past the end, for ``predict``)."""
        values = y.to_numpy(dtype=float)
        window = values[max(0, position - self.window) : position]
        future = self.times_after(y, position, horizon)
        past = y.index[position - len(window) : position]
        context = step_context(X, past, future, self.calendar)
        if self.base_forecaster is None:
            return window if context is None else Observation(window, None, "", context)
        base, name = self.base_forecasts(y.iloc[:position], horizon, X, future)
        return Observation(window, base, name, context)

    def times_after(self, y: pd.Series, position: int, horizon: int) -> pd.Index:
        """The ``horizon`` times after ``y.index[position - 1]`` (inside ``y`` or beyond)."""
        if position + horizon <= len(y):
            return y.index[position : position + horizon]
        from sktime.forecasting.base import ForecastingHorizon

        fh = ForecastingHorizon(list(range(1, horizon + 1)), is_relative=True, freq=self.freq)
        return fh.to_absolute_index(y.index[position - 1 : position])

    def base_forecasts(
        self, history: pd.Series, horizon: int, X: pd.DataFrame | None, future: pd.Index
    ) -> tuple[np.ndarray, str]:
        """The base forecaster, refitted on ``history``, forecasting ``horizon`` steps."""
        from .forecasting import auto_base_forecaster

        if isinstance(self.base_forecaster, str):  # "auto", checked in fit
            chosen = auto_base_forecaster(history)
        else:
            chosen = self.base_forecaster
        name = type(chosen).__name__
        exog = {}
        if X is not None and chosen.get_tag("capability:exogenous", False):
            exog = {"X": X.reindex(history.index)}
        try:
            # sktime's notice of a future default, raised by every forecaster constructed (the
            # clone, and those Theta builds inside fit): about sktime, nothing for the user to do
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="The default of config ``remember")
                if isinstance(self.base_forecaster, str):  # the base we chose, not the user
                    # statsmodels' information criteria of a perfect fit (a constant series):
                    # log(0), in numbers Theta does not use
                    warnings.filterwarnings(
                        "ignore", "divide by zero encountered in log", RuntimeWarning
                    )
                base = chosen.clone().fit(history, fh=list(range(1, horizon + 1)), **exog)
                if exog:
                    exog = {"X": X.reindex(future)}
                values = base.predict(**exog)
            values = values.to_numpy(dtype=float).ravel()
        except Exception as exc:
            raise ValueError(
                f"base_forecaster {name} could not forecast from {len(history)} points ({exc}): "
                "give every step enough history (lower fit_steps, or fit on a longer series) "
                "or choose a base forecaster that works on short series."
            ) from exc
        if values.shape != (horizon,) or not np.all(np.isfinite(values)):
            raise ValueError(
                f"base_forecaster {name} returned {values!r} from {len(history)} points, not "
                f"{horizon} finite number(s): check that it suits this series."
            )
        return values, name


def regular_times(series: pd.Series, freq: Any = None) -> pd.Series:
    """``series`` on a time index that carries its frequency and skips no time.

    The recurrence steps through time one point at a time, and the base forecaster and the
    season length read the index's frequency: a DatetimeIndex without one (what
    ``pd.read_csv(..., parse_dates=...)`` gives) gets the frequency pandas infers, or
    ``freq`` (the fitted series' frequency, for a few new points); a time index that skips
    times raises a ValueError that says what to do, and so does an integer index that does not
    count up by one. Other indexes are returned as they are.
    """
    index = series.index
    if pd.api.types.is_integer_dtype(index.dtype) and not isinstance(index, pd.MultiIndex):
        _check_consecutive(index)
        return series
    if not isinstance(index, (pd.DatetimeIndex, pd.PeriodIndex)):
        return series
    found = index.freq or freq or (pd.infer_freq(index) if len(index) >= 3 else None)
    if found is None:
        few = " (fewer than 3 points: set one, e.g. y.index.freq = 'D')" if len(index) < 3 else ""
        raise ValueError(
            f"y's time index ({index[0]} to {index[-1]}) has no frequency and pandas cannot "
            f"infer one{few}: the times must be regular. Resample to a frequency first, e.g. "
            "y = y.asfreq('D') (then fill the gaps), or pass an integer index."
        )
    maker = pd.period_range if isinstance(index, pd.PeriodIndex) else pd.date_range
    full = maker(index[0], index[-1], freq=found, name=index.name)
    if isinstance(full, pd.DatetimeIndex):
        full = full.as_unit(index.unit)  # the index's resolution, not date_range's own
    extra = index.difference(full)
    if len(extra):
        raise ValueError(
            f"y has {len(extra)} time(s) off its frequency {full.freqstr} (the first: "
            f"{extra[0]}): the recurrence steps through time one point at a time on one "
            "frequency. Resample y to it first (e.g. y.resample(...).mean()), or pass an "
            "integer index."
        )
    if len(full) != len(index):
        missing = full.difference(index)
        first = f" (the first: {missing[0]})" if len(missing) else ""
        raise ValueError(
            f"y skips {len(missing)} time(s) of its frequency {full.freqstr}{first}; the "
            "recurrence steps through time one point at a time. Fill the missing times "
            f"first, e.g. y = y.reindex(pd.{maker.__name__}(y.index[0], y.index[-1], "
            f"freq='{full.freqstr}')).interpolate(), and pass the filled series (to update: "
            "every point after the cutoff, none skipped)."
        )
    if index.freq is None:
        series = series.copy()
        series.index = full
    return series


def _check_consecutive(index: pd.Index) -> None:
    """Raise a ValueError unless an integer time index counts up by one, skipping nothing.

    sktime reads an integer horizon ``h`` as the time ``cutoff + h``, and the recurrence steps
    one point at a time, so an integer index must be consecutive.
    """
    steps = np.diff(np.asarray(index, dtype=np.int64))
    if len(steps) == 0 or (steps == 1).all():
        return
    if (steps == steps[0]).all() and steps[0] > 1:
        raise ValueError(
            f"y's integer index counts in steps of {steps[0]} ({index[0]}, {index[1]}, ...): "
            "sktime reads an integer horizon h as the time cutoff + h, so the forecasts would "
            "fall between your times. Pass consecutive integers (y.reset_index(drop=True)) or "
            f"a PeriodIndex with that step (e.g. pd.period_range('{index[0]}', "
            f"periods=len(y), freq='{steps[0]}Y') for years)."
        )
    at = int(np.flatnonzero(steps != 1)[0])
    if steps[at] > 1:
        raise ValueError(
            f"y's integer index skips {int((steps[steps > 1] - 1).sum())} value(s) (the "
            f"first: {index[at] + 1}); the recurrence steps through time one point at a time. "
            "Fill the missing times first, e.g. y = y.reindex(range(y.index[0], "
            "y.index[-1] + 1)).interpolate(), and pass the filled series (to update: every "
            "point after the cutoff, none skipped)."
        )
    raise ValueError(
        f"y's integer index is not increasing at {index[at + 1]} (after {index[at]}): pass "
        "the series in time order, one value per time."
    )


def split_panel(
    y: pd.Series | pd.DataFrame, X: pd.DataFrame | None
) -> dict[Key, tuple[pd.Series, pd.DataFrame | None]]:
    """One (series, exog) per series of ``y``: ``{None: (y, X)}`` for a single series.

    A panel or hierarchy (a row MultiIndex whose last level is time) gives one entry per
    instance, keyed by the instance's index values (a tuple for several levels).
    """
    if not isinstance(y.index, pd.MultiIndex):
        series = y if isinstance(y, pd.Series) else y.iloc[:, 0]
        return {None: (series, X)}
    frame = y if isinstance(y, pd.DataFrame) else y.to_frame()
    levels = list(range(frame.index.nlevels - 1))
    out: dict[Key, tuple[pd.Series, pd.DataFrame | None]] = {}
    for key, part in frame.groupby(level=levels, sort=False):
        key = key[0] if isinstance(key, tuple) and len(key) == 1 else key
        series = part.iloc[:, 0].droplevel(levels)
        exog = None
        if X is not None:
            exog = X.loc[part.index].droplevel(levels)
        out[key] = (series, exog)
    return out


def advance(
    tracks: dict[Key, Track],
    positions: dict[Key, range],
    *,
    observer: Observer,
    config: LoopConfig,
    model_path: str,
    backend_params: dict,
    on_step: Callable[[float], None] | None = None,
) -> dict[Key, Track]:
    """Step every track at its ``positions`` in lockstep; return the new tracks.

    Round r steps the r-th position of every track that has one, all of them in one
    ``step_many`` call. Nothing is changed in place: the caller commits the result or not.
    """
    backend = backend_on(_Params(**backend_params), model_path)
    loops = {key: Recurrence(backend, track.task, config) for key, track in tracks.items()}
    states = {key: track.state for key, track in tracks.items()}
    steps: dict[Key, list[Replay]] = {key: [] for key in tracks}
    for r in range(max((len(p) for p in positions.values()), default=0)):
        items, keys = [], []
        for key, where in positions.items():
            if r >= len(where):
                continue
            track, t = tracks[key], where[r]
            observation = observer.observe(track.series, t, 1, track.exog)
            truth = np.array([float(track.series.iloc[t])])
            items.append((loops[key], states[key], observation, truth, track.series.index[t]))
            keys.append(key)
        for key, item, (state, record) in zip(keys, items, step_many(items)):
            steps[key].append(Replay(states[key], item[2], item[3], record))
            states[key] = state
            if record.fault:
                logger.info("step %d at %s: %s", record.step, record.index, record.fault)
            if on_step is not None:
                on_step(record.error)
    return {
        key: replace(track, state=states[key], replays=track.replays + tuple(steps[key]))
        for key, track in tracks.items()
    }


@dataclass(frozen=True)
class _Params:
    """The estimator parameters a backend needs (``backend_on`` reads them by name)."""

    context_tokens: int
    n_threads: int | None
    n_gpu_layers: int | str
