"""Numbers <-> text: scaling, bounded precision, parsing, and the grammar that constrains answers.

Why: a small model reads and writes a few digits well and many digits badly, and it fills every
digit a grammar allows. So values are divided by a power-of-ten ``scale`` chosen from the training
data (largest magnitude between 10 and 100, or 100 and 1000 for raw values), written with one
decimal, and answers are constrained to the same shape. Parsing multiplies back by the scale: a
rendered number is read back exactly as written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .grammar import numbers_grammar

__all__ = ["NumberFormat", "ParseError", "choose_scale"]


class ParseError(ValueError):
    """A model answer that does not hold the expected numbers or label."""


_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def choose_scale(values: np.ndarray, top: float) -> float:
    """A power of ten that brings the largest magnitude of ``values`` into ``[top / 10, top)``.

    Parameters
    ----------
    values : ndarray
        Finite values (the training series, or its changes).
    top : float
        Upper end of the target range, a power of ten (100 or 1000).

    Returns
    -------
    float
        The scale; 1.0 when every value is 0.
    """
    finite = np.abs(np.asarray(values, dtype=float))
    finite = finite[np.isfinite(finite)]
    largest = float(finite.max()) if finite.size else 0.0
    if largest == 0.0:
        return 1.0
    exponent = math.floor(math.log10(largest)) - (round(math.log10(top)) - 1)
    return 10.0**exponent


@dataclass(frozen=True)
class NumberFormat:
    """How numbers are written for the model and read back.

    Parameters
    ----------
    scale : float
        Values are divided by it before rendering and multiplied back after parsing.
    decimals : int
        Digits after the decimal point.
    int_digits : int
        Most digits before the point that an answer may have.
    signed : bool
        Whether to write an explicit ``+`` on positive numbers (changes rather than values).
    """

    scale: float = 1.0
    decimals: int = 1
    int_digits: int = 4
    signed: bool = False

    def render(self, value: float) -> str:
        """Write one value in model units."""
        scaled = float(value) / self.scale
        text = f"{scaled:+.{self.decimals}f}" if self.signed else f"{scaled:.{self.decimals}f}"
        return "+0.0" if self.signed and float(text) == 0 else text

    def render_many(self, values) -> str:
        """Write values separated by ``", "``."""
        return ", ".join(self.render(v) for v in values)

    def parse(self, text: str, count: int) -> np.ndarray:
        """Read exactly ``count`` numbers from ``text``, in data units.

        Raises
        ------
        ParseError
            If ``text`` holds fewer than ``count`` numbers or a non-finite one.
        """
        found = _NUMBER.findall(text)
        if len(found) < count:
            raise ParseError(f"expected {count} numbers, found {len(found)} in {text[:80]!r}")
        values = np.array([float(x) for x in found[:count]]) * self.scale
        if not np.all(np.isfinite(values)):
            raise ParseError(f"non-finite number in {text[:80]!r}")
        return values

    def grammar(self, count: int) -> str:
        """GBNF for exactly ``count`` numbers in this format."""
        return numbers_grammar(count, self.int_digits, self.decimals, signed=self.signed)

    def max_tokens(self, count: int) -> int:
        """Token bound for ``count`` numbers (digits are one token each for the small models)."""
        per_number = self.int_digits + self.decimals + 4
        return count * per_number + 2
