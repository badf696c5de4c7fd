"""A progress bar that exists only when the user asked for one."""

from __future__ import annotations

import math
from contextlib import contextmanager


class _Bar:
    def __init__(self, bar) -> None:
        self._bar = bar

    def update(self, error: float) -> None:
        if self._bar is None:
            return
        if math.isfinite(error):
            self._bar.set_postfix(error=f"{error:.4g}", refresh=False)
        self._bar.update(1)


@contextmanager
def progress_bar(total: int, enabled: bool, what: str):
    """Yield an object with ``update(error)``: a tqdm bar if ``enabled``, else a no-op."""
    if not enabled:
        yield _Bar(None)
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"llmrnn {what}", unit="step")
    try:
        yield _Bar(bar)
    finally:
        bar.close()
