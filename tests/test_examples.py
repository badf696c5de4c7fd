"""The examples run as users run them, on the real model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_runs_and_prints_memory_and_trace():
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert "1960-11" in out.stdout  # first forecast after the training data
    assert "lower" in out.stdout and "upper" in out.stdout
    assert "cached_tokens" in out.stdout


def test_classification_example_runs():
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "classify_updown.py")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert "accuracy on the next 6 months" in out.stdout and "memory:" in out.stdout
