"""What the forecaster shows besides the series: exogenous columns and calendar facts.

A statistical forecaster reads numbers; an LLM can also read what happened: a promotion, a
holiday, a change in a related indicator. ``LLMRNNForecaster`` renders the exogenous ``X`` of
each step's window and of the times being forecast into the prompt (``tasks.Context``), and,
with ``calendar``, the calendar facts of the times being forecast: the weekday and date (the
month, or quarter, for coarser data) and the public holidays from a calendar the user names.
The reflection sees the same context, so the memory can learn rules of the form "when X says
..., the series ...".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .tasks import Context

__all__ = ["calendar_facts", "check_calendar", "check_exog", "step_context"]


def check_calendar(calendar: Any) -> None:
    """Raise a ValueError naming what ``calendar`` may be, unless it is one of them.

    ``None`` or ``False`` (no calendar), ``True`` (dates only), a country code of the
    ``holidays`` package (e.g. "US", "DE"; needs ``pip install holidays``), or a pandas holiday
    calendar (e.g. ``pandas.tseries.holiday.USFederalHolidayCalendar()``).
    """
    from pandas.tseries.holiday import AbstractHolidayCalendar

    if calendar is None or isinstance(calendar, (bool, AbstractHolidayCalendar)):
        return
    if isinstance(calendar, str):
        _holiday_names(calendar, [2000])  # an unknown code or a missing package fails here
        return
    raise ValueError(
        "Invalid value for parameter `calendar`: expected None, True, a country code of the "
        "`holidays` package such as 'US', or a pandas holiday calendar such as "
        f"USFederalHolidayCalendar(), got {calendar!r}."
    )


def _holiday_names(country: str, years: list[int]) -> dict:
    try:
        import holidays
    except ImportError as exc:
        raise ValueError(
            f"calendar={country!r} names a country of the `holidays` package, which is not "
            "installed: pip install holidays (or pass a pandas holiday calendar)."
        ) from exc
    try:
        return dict(holidays.country_holidays(country, years=years))
    except (KeyError, NotImplementedError) as exc:
        raise ValueError(
            f"calendar={country!r} is not a country code the `holidays` package knows "
            "(e.g. 'US', 'GB', 'DE')."
        ) from exc


def _holidays(calendar: Any, start: pd.Timestamp, end: pd.Timestamp) -> dict:
    """Date -> holiday name for the dates from ``start`` to ``end`` (inclusive)."""
    if calendar is None or isinstance(calendar, bool):
        return {}
    if isinstance(calendar, str):
        names = _holiday_names(calendar, list(range(start.year, end.year + 1)))
        return {
            pd.Timestamp(day): name
            for day, name in names.items()
            if start <= pd.Timestamp(day) <= end
        }
    found = calendar.holidays(start=start, end=end, return_name=True)
    return {pd.Timestamp(day): str(name) for day, name in found.items()}


def calendar_facts(times: pd.Index, calendar: Any) -> tuple[str, ...]:
    """One line of calendar facts per time: its date or period, and the holidays it holds.

    Daily and finer times read as "Thursday 4 July 2024"; monthly periods as "July 2024",
    quarterly as "quarter 3 of 2024", annual as "2024". Holidays on the day, or within the
    period, follow ("holiday: Independence Day"). Integer indexes have no calendar: "".
    """
    if not calendar or not isinstance(times, (pd.PeriodIndex, pd.DatetimeIndex)):
        return tuple("" for _ in times)
    lines = []
    for time in times:
        if isinstance(time, pd.Period):
            start, end = time.start_time.normalize(), time.end_time.normalize()
            code = time.freqstr.lstrip("0123456789")[:1].upper()
            if code == "M":
                when = f"{time.start_time:%B %Y}"
            elif code == "Q":
                when = f"quarter {time.quarter} of {time.year}"
            elif code in ("A", "Y"):
                when = str(time.year)
            else:
                when = f"{time.start_time:%A} {time.start_time.day} {time.start_time:%B %Y}"
        else:
            start = end = pd.Timestamp(time).normalize()
            when = f"{time:%A} {time.day} {time:%B %Y}"
        names = sorted(set(_holidays(calendar, start, end).values()))
        lines.append(when + (f", holiday: {', '.join(names)}" if names else ""))
    return tuple(lines)


def check_exog(X: pd.DataFrame | None, columns: tuple[str, ...] | None, where: str) -> None:
    """Raise a clear ValueError when ``X`` is missing or has other columns than in ``fit``."""
    if columns is None:
        return
    if X is None:
        raise ValueError(
            f"LLMRNNForecaster was fitted with exogenous X (columns {list(columns)}): pass X to "
            f"{where} as well, with rows for the times it covers."
        )
    if tuple(str(c) for c in X.columns) != columns:
        raise ValueError(
            f"X given to {where} has columns {[str(c) for c in X.columns]}, but fit saw "
            f"{list(columns)}: pass the same columns, in the same order."
        )


def step_context(
    X: pd.DataFrame | None,
    past_index: pd.Index,
    future_index: pd.Index,
    calendar: Any,
) -> Context | None:
    """The context of one step: X at the window's times and at the times being forecast.

    Rows of ``X`` missing for a time are shown as missing values (NaN), not an error: a
    forecast horizon may reach past the exogenous data a user has.
    """
    if X is None and not calendar:
        return None
    columns: tuple[str, ...] = ()
    past = future = np.empty((0, 0), dtype=object)
    if X is not None:
        columns = tuple(str(c) for c in X.columns)
        past = X.reindex(past_index).to_numpy(dtype=object)
        future = X.reindex(future_index).to_numpy(dtype=object)
    return Context(columns, past, future, calendar_facts(future_index, calendar))
