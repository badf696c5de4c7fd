"""The examples run as users run them, on the real model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )


def test_quickstart_runs_and_prints_memory_and_trace():
    done = _run("quickstart.py")
    out = done.stdout
    assert "too narrow to trust" not in done.stderr  # enough fit steps for its interval
    assert "1960-11" in out  # first forecast after the training data
    assert "lower" in out and "upper" in out
    assert "cached_tokens" in out


def test_classification_example_runs():
    out = _run("classify_updown.py").stdout
    assert "accuracy on the next 6 months" in out and "memory:" in out
