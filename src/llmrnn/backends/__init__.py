"""Language-model backends: the protocol, llama.cpp, and the conformance stand-in."""

from __future__ import annotations

from typing import Any

from ..models import STAND_IN
from .base import Backend, BackendError, Completion, Message

__all__ = ["Backend", "BackendError", "Completion", "Message", "make_backend"]


def make_backend(
    model_path: Any,
    *,
    context_tokens: int,
    n_threads: int | None = None,
    n_gpu_layers: int | str = "auto",
) -> Backend:
    """A backend for a resolved model path (see :func:`llmrnn.models.resolve_model`)."""
    if model_path is STAND_IN:
        from .stand_in import StandInBackend

        return StandInBackend(n_ctx=context_tokens)
    from .llama_cpp import LlamaCppBackend

    return LlamaCppBackend(
        model_path, n_ctx=context_tokens, n_threads=n_threads, n_gpu_layers=n_gpu_layers
    )
