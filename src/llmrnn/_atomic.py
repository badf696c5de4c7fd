"""All-or-nothing public calls: an exception leaves the estimator exactly as it was."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def atomic(method: F) -> F:
    """Restore the estimator's attributes if ``method`` raises (KeyboardInterrupt included).

    A shallow snapshot of ``__dict__`` is enough because the estimators never mutate a fitted
    attribute in place: every step builds new state and the call assigns it at the end.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        saved = dict(self.__dict__)
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    return wrapper  # type: ignore[return-value]
