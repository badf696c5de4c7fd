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
   corrections keep coming true is trusted more. Until the record has ``MIN_STEPS`` steps the
   weight is 0: trust is earned, not assumed.

Why this rule and not sktime's ``OnlineEnsembleForecaster``: see ``docs/decisions.md``
("Never worse than the base by much").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["DISCOUNT", "MIN_STEPS", "PRIOR_STEPS", "Z", "bound", "largest_moves", "weight"]

#: Each older step counts this much less than the next one (effective memory ~20 steps).
DISCOUNT = 0.95
#: Steps of record needed before any weight above 0.
MIN_STEPS = 3
#: The prior: this many steps' worth of "the corrections explain nothing".
PRIOR_STEPS = 2.0
#: Standard errors taken off the slope: a weight needs evidence.
Z = 1.0


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
        prior and lowered by ``Z`` standard errors; 0 with fewer than ``MIN_STEPS`` steps or
        when the model never corrected.
    """
    if len(record) < max(min_steps, 1):
        return 0.0
    pairs = np.asarray(record, dtype=float)
    c, a = pairs[:, 0], pairs[:, 1]
    d = discount ** np.arange(len(pairs) - 1, -1, -1)
    scc = float(np.sum(d * c * c))
    if scc <= 0:
        return 0.0
    n = float(np.sum(d))
    prior = prior_steps * scc / n
    slope = float(np.sum(d * c * a)) / (scc + prior)
    residual = float(np.sum(d * (a - slope * c) ** 2)) / max(n - 1.0, 1.0)
    stderr = math.sqrt(residual / (scc + prior))
    return float(np.clip(slope - z * stderr, 0.0, 1.0))
