"""Shared fixtures. The real-model tests run llama.cpp on the embedded default model."""

from __future__ import annotations

import warnings

import pytest
from sktime.datasets import load_airline

from llmrnn.models import resolve_model

# sktime's own deprecation notices are not ours to fix; keep the test log readable.
warnings.filterwarnings("ignore", category=FutureWarning, module="sktime")


@pytest.fixture(scope="session")
def default_model_path() -> str:
    """The embedded model must be installed: a missing file is a failed setup, not a skip."""
    return resolve_model(None)


@pytest.fixture(scope="session")
def airline():
    return load_airline()
