"""Series for the benchmarks, all shipped inside installed packages (sktime, statsmodels).

Two sets, kept apart on purpose:

- ``DEV``: the four series the earlier benchmarks chose their defaults on (airline, lynx,
  shampoo, uschange), and the two the memory's prompts were designed on (unemp, sunspots).
  Prompts and defaults may be tuned on these.
- ``HELD_OUT``: series no prompt or default was chosen on; every accuracy claim is confirmed
  here. (co2, nile, elnino and infl were in a code-only probe of simple bias rules, with no
  model, before the old mean-of-3 suggestion was set; realinv and tbilrate were not looked at
  at all.)

- ``FRESH``: added in the sixth session, after the held-out set had been looked at once with
  a model: the rule the memory is given (``tasks.py``'s facts) was chosen on ``DEV`` by a
  code-only probe (``benchmarks/rule_probe.py``) and confirmed here and on ``HELD_OUT``.

- ``LATE``: added in the ninth session, after the guard's loss budget (``llmrnn.guard``) was
  set on every run recorded before; no prompt, default or guard setting was chosen on them.

- ``NEW``: added in the twenty-first session, after the guard's prior without a base was set
  (its figures had been seen on every set above): drawn before any run or probe on them, the
  remaining quarterly series that ship with sktime and statsmodels (at least 50 points; no
  monthly seasonal one is left: sktime's PBS series ends in zeros).

- ``FERTILITY``: added in the twenty-third session, after every figure above had been seen:
  eight countries' annual fertility rates (statsmodels' World Bank ``fertility`` data,
  1960-2011), drawn at random (``fertility_draw``, seed 20261128) among the 187 countries with
  every year, and committed before any run or probe on them. Unlike the macro series of
  ``LATE`` and ``NEW``, which all end in 2009 and so share one event, these are independent
  non-seasonal series with drifts of their own.

- ``FERTILITY2``: eight more countries of the same data (seed 20261129, the first eight
  excluded), drawn in the twenty-third session after ``FERTILITY``'s runs showed the 1.5B model
  flipping the sign of its own Rules line with a base, and committed before any run on them:
  the confirmation of the code reading that line with a base (``docs/decisions.md``).

Each loader returns the series (float, with a PeriodIndex where the data has dates), a one-line
description for the model's task sentence, and the season length a statistician would use.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pandas as pd

__all__ = [
    "DEV",
    "FERTILITY",
    "FERTILITY2",
    "FRESH",
    "HELD_OUT",
    "LATE",
    "NEW",
    "SERIES",
    "fertility_draw",
    "load",
]


def _sktime(loader: str) -> pd.Series:
    import sktime.datasets

    loaded = getattr(sktime.datasets, loader)()
    return (loaded[0] if isinstance(loaded, tuple) else loaded).astype(float)


def _statsmodels(name: str) -> pd.DataFrame:
    import statsmodels.api as sm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(sm.datasets, name).load_pandas().data


def _annual(values, start: int, name: str) -> pd.Series:
    index = pd.period_range(start=str(start), periods=len(values), freq="Y")
    return pd.Series(list(values), index=index, name=name, dtype=float)


def _co2() -> pd.Series:
    weekly = _statsmodels("co2")["co2"].interpolate()
    monthly = weekly.resample("MS").mean()
    monthly.index = monthly.index.to_period("M")
    return monthly.loc["1970":"1990"].rename("co2").astype(float)


def _nile() -> pd.Series:
    data = _statsmodels("nile")
    return _annual(data["volume"], int(data["year"].iloc[0]), "nile")


def _sunspots() -> pd.Series:
    data = _statsmodels("sunspots")
    return _annual(data["SUNACTIVITY"], int(data["YEAR"].iloc[0]), "sunspots").iloc[-120:]


def _elnino() -> pd.Series:
    data = _statsmodels("elnino")
    values = data.drop(columns="YEAR").to_numpy().ravel()
    index = pd.period_range(start=f"{int(data['YEAR'].iloc[0])}-01", periods=len(values), freq="M")
    return pd.Series(values, index=index, name="elnino", dtype=float).iloc[-180:]


def _elec_equip() -> pd.Series:
    import statsmodels.datasets.elec_equip as elec_equip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = elec_equip.load().data
    series = data.iloc[:, 0].astype(float)
    series.index = pd.PeriodIndex(data.index, freq="M")
    return series.rename("elec_equip")


def _uschange(column: str) -> pd.Series:
    """A column of sktime's uschange regressors (quarterly, from 1970Q1)."""
    import sktime.datasets

    _, data = sktime.datasets.load_uschange()
    series = data[column].astype(float)
    series.index = pd.period_range(start="1970Q1", periods=len(series), freq="Q")
    return series.rename(column.lower())


def _de_rate() -> pd.Series:
    data = _statsmodels("interest_inflation")
    series = data["R"].astype(float) * 100
    start = f"{int(data['year'].iloc[0])}Q{int(data['quarter'].iloc[0])}"
    series.index = pd.period_range(start=start, periods=len(series), freq="Q")
    return series.rename("de_rate")


def _danish(column: str, name: str) -> pd.Series:
    data = _statsmodels("danish_data")
    series = data[column].astype(float)
    series.index = pd.PeriodIndex(data.index, freq="Q")
    return series.rename(name)


#: rows of the fertility data that are groups of countries, not countries
_GROUPS = ("(", "members", "small states", "income", "World", "area")
_YEARS = [str(year) for year in range(1960, 2012)]  # 2012-2013 are empty for most countries


def _fertility_rows() -> pd.DataFrame:
    data = _statsmodels("fertility").set_index("Country Code")
    group = data["Country Name"].map(lambda name: any(word in name for word in _GROUPS))
    return data[data[_YEARS].notna().all(axis=1) & ~group]


def fertility_draw(n: int = 8, seed: int = 20261128, exclude: tuple[str, ...] = ()) -> list[str]:
    """Country codes drawn at random among the complete rows (``FERTILITY``: the defaults;
    ``FERTILITY2``: seed 20261129, the first draw excluded)."""
    import numpy as np

    codes = sorted(set(_fertility_rows().index) - set(exclude))
    return [str(code) for code in np.random.default_rng(seed).choice(codes, n, replace=False)]


def _fertility(code: str) -> pd.Series:
    return _annual(_fertility_rows().loc[code, _YEARS], 1960, f"fert_{code.lower()}")


def _unemployment() -> pd.Series:
    return _macro("unemp")


def _macro(column: str) -> pd.Series:
    return _sktime("load_macroeconomic")[column].rename(column).astype(float)


#: name -> (loader, description, season length)
SERIES: dict[str, tuple[Callable[[], pd.Series], str, int]] = {
    "airline": (lambda: _sktime("load_airline"), "monthly airline passengers, thousands", 12),
    "lynx": (lambda: _sktime("load_lynx"), "annual lynx trappings in Canada", 10),
    "shampoo": (lambda: _sktime("load_shampoo_sales"), "monthly shampoo sales", 12),
    "uschange": (lambda: _sktime("load_uschange"), "quarterly US consumption change, %", 4),
    "co2": (_co2, "monthly mean CO2 at Mauna Loa, ppm", 12),
    "nile": (_nile, "annual flow of the Nile at Aswan, 10^8 m^3", 1),
    "sunspots": (_sunspots, "annual sunspot number", 11),
    "elnino": (_elnino, "monthly sea surface temperature in the El Nino region, C", 12),
    "unemp": (_unemployment, "quarterly US unemployment rate, %", 4),
    "infl": (lambda: _macro("infl"), "quarterly US inflation rate, % a year", 4),
    "realinv": (lambda: _macro("realinv"), "quarterly US real private investment, $bn", 4),
    "tbilrate": (lambda: _macro("tbilrate"), "quarterly US 3-month treasury bill rate, %", 4),
    "elec_equip": (_elec_equip, "monthly euro-area electrical equipment orders index", 12),
    "danish_money": (
        lambda: _danish("lrm", "danish_money"),
        "quarterly log real money supply in Denmark",
        4,
    ),
    "m1": (lambda: _macro("m1"), "quarterly US M1 money stock, $bn", 4),
    "realgdp": (lambda: _macro("realgdp"), "quarterly US real GDP, $bn", 4),
    "cpi": (lambda: _macro("cpi"), "quarterly US consumer price index", 4),
    "realint": (lambda: _macro("realint"), "quarterly US real interest rate, %", 4),
    "production": (
        lambda: _uschange("Production"),
        "quarterly change of US industrial production, %",
        4,
    ),
    "de_rate": (_de_rate, "quarterly German long-term interest rate, %", 4),
    "realcons": (lambda: _macro("realcons"), "quarterly US real personal consumption, $bn", 4),
    "realdpi": (lambda: _macro("realdpi"), "quarterly US real disposable income, $bn", 4),
    "realgovt": (lambda: _macro("realgovt"), "quarterly US real government spending, $bn", 4),
    "savings": (lambda: _uschange("Savings"), "quarterly change of US personal savings, %", 4),
    "danish_income": (
        lambda: _danish("lry", "danish_income"),
        "quarterly log real income in Denmark",
        4,
    ),
    "danish_bond": (lambda: _danish("ibo", "danish_bond"), "quarterly Danish bond rate", 4),
}
#: the draw of ``fertility_draw()``, written out so the sets are plain data
_COUNTRIES = {
    "NCL": "New Caledonia",
    "ARE": "the United Arab Emirates",
    "HUN": "Hungary",
    "UZB": "Uzbekistan",
    "VCT": "St. Vincent and the Grenadines",
    "THA": "Thailand",
    "NPL": "Nepal",
    "NER": "Niger",
}
#: the draw of ``fertility_draw(8, 20261129, exclude=tuple(_COUNTRIES))``
_COUNTRIES2 = {
    "TUR": "Turkey",
    "SVK": "the Slovak Republic",
    "COM": "the Comoros",
    "DZA": "Algeria",
    "CAF": "the Central African Republic",
    "CRI": "Costa Rica",
    "GUY": "Guyana",
    "STP": "Sao Tome and Principe",
}
for _code, _country in {**_COUNTRIES, **_COUNTRIES2}.items():
    SERIES[f"fert_{_code.lower()}"] = (
        lambda code=_code: _fertility(code),
        f"annual fertility rate of {_country}, births per woman",
        1,
    )

DEV = ("airline", "lynx", "shampoo", "uschange", "unemp", "sunspots")
HELD_OUT = ("co2", "nile", "elnino", "infl", "realinv", "tbilrate")
FRESH = ("elec_equip", "danish_money", "m1", "realgdp")
LATE = ("cpi", "realint", "production", "de_rate")
NEW = ("realcons", "realdpi", "realgovt", "savings", "danish_income", "danish_bond")
FERTILITY = tuple(f"fert_{code.lower()}" for code in _COUNTRIES)
FERTILITY2 = tuple(f"fert_{code.lower()}" for code in _COUNTRIES2)


def load(name: str) -> tuple[pd.Series, str, int]:
    """The series ``name`` with its description and season length."""
    loader, description, sp = SERIES[name]
    return loader(), description, sp
