"""Never much worse than the anchor: plausibility bounds and a weight learned from the record.

A forecasting answer is a correction of an anchor (the base forecast, or the last value). Two
guards stand between the model's correction and the forecast:

1. **Bound.** A correction larger than any move the history makes plausible (the largest
   h-step move in the window, or the largest actual correction in the record) is cut to that
   size, and the cut is recorded in the trace's ``fault`` column. A 135M model sometimes answers
   corrections 10x larger than any monthly change; such an answer never reaches the forecast.
2. **Weight.** The forecast is ``anchor + w * correction``, with ``w`` in [0, 1] learned online
   from the model's own record: the least-squares slope of the actual corrections on the
   model's corrections (how much of its corrections came true), discounted towards the recent
   steps, shrunk by a prior worth ``PRIOR_STEPS`` steps of no evidence, and lowered by one
   standard error. A model whose corrections do not help falls back to the anchor; one whose
   corrections keep coming true is trusted more. Until the record has ``MIN_STEPS`` steps
   where the model corrected at all (a neutral answer is no evidence about its corrections),
   the weight is 0: trust is earned, not assumed.
3. **Budget.** The weight is then capped so that the step can lose, at worst, what the model's
   corrections have gained over the anchor so far plus ``TOLERANCE`` (2%) of the anchor's own
   absolute errors: a step's loss against the anchor is at most ``w * |correction|`` (reached
   when the truth lands on the anchor's other side), so with
   ``w <= (TOLERANCE * sum|a| + gain) / |correction|`` the forecast's total absolute one-step
   error over the record is never above ``(1 + TOLERANCE)`` times the anchor's (``weights``;
   a guarantee over the steps the record keeps, not a hope). A model must win before it may
   risk much: the slope alone let one turn cost 12% on a series where the corrections had come
   true three times in a row (``docs/decisions.md``, "A loss budget").
4. **Prior (without a base).** The points before ``fit_steps`` are witnessed, not forecast;
   the code's suggestion at each of them (the number the Rules line carries, computed from the
   changes before it) against the change that came is a replayed record of the rule. It
   enters the slope as evidence before the steps (``prior``), so a rule that kept coming true
   is trusted from the first steps and one that did not must prove itself; never the budget,
   which counts only forecasts the guard made (the guarantee above stands as it is).
   Measured by replaying the stored runs (``docs/decisions.md``, "A prior for the guard").

Why this rule and not sktime's ``OnlineEnsembleForecaster``: see ``docs/decisions.md``
("Never worse than the base by much").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "DISCOUNT",
    "MIN_STEPS",
    "PRIOR_STEPS",
    "TOLERANCE",
    "Z",
    "bound",
    "largest_moves",
    "next_weight",
    "weight",
    "weights",
]

#: Each older step counts this much less than the next one (effective memory ~20 steps).
DISCOUNT = 0.95
#: Steps of record needed before any weight above 0.
MIN_STEPS = 3
#: The prior: this many steps' worth of "the corrections explain nothing".
PRIOR_STEPS = 2.0
#: Standard errors taken off the slope: a weight needs evidence.
Z = 1.0
#: The budget: the record's total absolute error may exceed the anchor's by this share, at most.
TOLERANCE = 0.02


def largest_moves(window: np.ndarray, horizon: int) -> np.ndarray:
    """The largest absolute h-step move in ``window`` for h = 1..horizon (0 where none)."""
    window = np.asarray(window, dtype=float)
    moves = np.zeros(horizon)
    for h in range(1, horizon + 1):
        if window.size > h:
            moves[h - 1] = float(np.max(np.abs(window[h:] - window[:-h])))
        elif h > 1:
            moves[h - 1] = moves[h - 2]
    return moves


def bound(corrections: np.ndarray, limits: np.ndarray) -> tuple[np.ndarray, bool]:
    """Cut each correction to ``[-limit, +limit]``; say whether any was cut.

    A limit of 0 (no move seen at all) leaves the correction as it is: nothing to judge by.
    """
    corrections = np.asarray(corrections, dtype=float)
    limits = np.asarray(limits, dtype=float)
    active = limits > 0
    bounded = np.where(active, np.clip(corrections, -limits, limits), corrections)
    return bounded, bool(np.any(bounded != corrections))


def weight(
    record: Sequence[tuple[float, float]],
    *,
    z: float = Z,
    prior_steps: float = PRIOR_STEPS,
    min_steps: int = MIN_STEPS,
    discount: float = DISCOUNT,
) -> float:
    """The weight of the model's next correction, from its record of (correction, actual) pairs.

    Parameters
    ----------
    record : sequence of (float, float)
        Oldest first: the model's (bounded) one-step correction and the actual correction
        (truth minus anchor) of every past step.
    z, prior_steps, min_steps, discount : float, float, int, float
        The rule's settings, defaults :data:`Z`, :data:`PRIOR_STEPS`, :data:`MIN_STEPS` and
        :data:`DISCOUNT` (the shipped rule). Other values serve the benchmark that replays
        recorded runs under other settings (``benchmarks/learning.py``, "Does the guard cost
        accuracy?").

    Returns
    -------
    float
        In [0, 1]: the discounted least-squares slope of actual on correction, shrunk by the
        prior and lowered by ``Z`` standard errors; 0 while fewer than ``MIN_STEPS`` steps
        have a correction other than 0.
    """
    if len(record) < max(min_steps, 1):
        return 0.0
    pairs = np.asarray(record, dtype=float)
    c, a = pairs[:, 0], pairs[:, 1]
    corrected = c != 0
    if np.count_nonzero(corrected) < max(min_steps, 1):
        return 0.0
    d = discount ** np.arange(len(pairs) - 1, -1, -1)
    scc = float(np.sum(d * c * c))
    n = float(np.sum(d))
    # the prior is worth `prior_steps` of the steps where the model corrected: scaled by the
    # mean square of those corrections, not diluted by the steps where it answered +0.0 (with
    # one correction in 14 steps, the diluted prior let a single lucky pair earn a weight of 1)
    prior = prior_steps * scc / float(np.sum(d[corrected]))
    slope = float(np.sum(d * c * a)) / (scc + prior)
    residual = float(np.sum(d * (a - slope * c) ** 2)) / max(n - 1.0, 1.0)
    stderr = math.sqrt(residual / (scc + prior))
    return float(np.clip(slope - z * stderr, 0.0, 1.0))


def weights(
    record: Sequence[tuple[float, float]],
    *,
    prior: Sequence[tuple[float, float]] = (),
    tolerance: float | None = TOLERANCE,
    **settings,
) -> np.ndarray:
    """The weight the guard gave each step of ``record``: the learned slope, within the budget.

    Parameters
    ----------
    record : sequence of (float, float)
        Oldest first: the model's (bounded) one-step correction ``c`` and the actual correction
        ``a`` (truth minus anchor) of every step.
    prior : sequence of (float, float), default=()
        Oldest first: (correction, actual) pairs from before the record that were never
        forecast (the code's suggestions on the witnessed points). They count in the slope,
        before ``record``; the budget counts ``record`` alone.
    tolerance : float or None, default=TOLERANCE
        The share of the anchor's absolute errors the forecast may lose on top of its gains;
        None: no budget (the slope alone, the rule before the budget).
    **settings
        ``z``, ``prior_steps``, ``min_steps``, ``discount`` of :func:`weight`.

    Returns
    -------
    np.ndarray of shape (len(record),)
        ``w[i] = min(weight(prior + record[:i]), budget[i] / |c[i]|)``, where ``budget[i]``
        is ``tolerance * sum(|a|) + sum(|a| - |a - w c|)`` over the steps of ``record`` before
        ``i``. So for every ``i``: ``sum(|a - w c|) <= (1 + tolerance) * sum(|a|)`` over
        ``record[:i + 1]``, whatever the prior.
    """
    items = [(float(c), float(a)) for c, a in record]
    before = [(float(c), float(a)) for c, a in prior]
    out = np.zeros(len(items))
    for i, (c, _) in enumerate(items):
        out[i] = _capped(items[:i], out[:i], c, tolerance, settings, before)
    return out


def next_weight(
    record: Sequence[tuple[float, float]],
    correction: float,
    *,
    prior: Sequence[tuple[float, float]] = (),
    given: Sequence[float] | None = None,
    tolerance: float | None = TOLERANCE,
    **settings,
) -> float:
    """The weight of the next one-step ``correction``, after ``prior`` and ``record`` (see
    :func:`weights`).

    ``given``: the weights the record's steps were given, when they were kept (default: as
    :func:`weights` replays them under ``prior``). The budget counts what those weights
    gained; a prior that changed since (its oldest pairs left a bounded record) would replay
    other weights than the ones the forecasts used, so a record that keeps them passes them.
    """
    items = [(float(c), float(a)) for c, a in record]
    before = [(float(c), float(a)) for c, a in prior]
    if given is None:
        given = weights(items, prior=before, tolerance=tolerance, **settings)
    given = np.asarray(given, dtype=float)
    return _capped(items, given, float(correction), tolerance, settings, before)


def _capped(
    items: list, given: np.ndarray, correction: float, tolerance, settings, prior: list
) -> float:
    """The slope of ``prior + items``, capped by the budget the weights ``given`` to
    ``items`` left (nothing before the first item: a prior earns trust, not a budget)."""
    w = weight(prior + items, **settings)
    if tolerance is None or w == 0.0 or correction == 0.0:
        return w
    if not items:
        return 0.0
    c, a = np.asarray(items, dtype=float).T
    budget = tolerance * float(np.sum(np.abs(a))) + float(np.sum(np.abs(a) - np.abs(a - given * c)))
    return float(np.clip(budget / abs(correction), 0.0, w))
