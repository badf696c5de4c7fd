"""Parameter checks shared by both estimators: run in ``fit``, never in ``__init__``."""

from __future__ import annotations

import numbers
import os
from typing import Any

from .backends import Backend, make_backend
from .models import STAND_IN, check_gguf, resolve_model
from .recurrence import FEEDBACKS, STRATEGIES, LoopConfig

__all__ = ["check_params", "loop_config", "backend_for", "backend_on"]


def _fail(name: str, expected: str, value: Any) -> None:
    raise ValueError(f"Invalid value for parameter `{name}`: expected {expected}, got {value!r}.")


def _check_int(name: str, value: Any, low: int, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low
    if not ok:
        _fail(name, f"an integer >= {low}" + (" or None" if allow_none else ""), value)


def check_params(est: Any, extra: dict[str, tuple[int, bool]] | None = None) -> None:
    """Check the parameters both estimators share; ``extra`` adds integer parameters.

    Parameters
    ----------
    est : estimator
        The estimator whose parameters to check.
    extra : dict, optional
        Name -> (lowest allowed value, whether None is allowed) for more integer parameters.

    Raises
    ------
    ValueError
        Naming the parameter, what it expects and the value it got.
    """
    if (
        est.model is not None
        and est.model is not STAND_IN
        and not isinstance(est.model, (str, os.PathLike))
    ):
        _fail(
            "model",
            "None, a path to a .gguf file, a registered or catalogue name (`llmrnn models`) or "
            "a Hugging Face GGUF repository 'org/repo[:QUANT]'",
            est.model,
        )
    if est.strategy not in STRATEGIES:
        _fail("strategy", f"one of {STRATEGIES}", est.strategy)
    if est.feedback not in FEEDBACKS:
        _fail("feedback", f"one of {FEEDBACKS}", est.feedback)
    _check_int("memory_words", est.memory_words, 12)
    _check_int("context_tokens", est.context_tokens, 256)
    _check_int("fit_steps", est.fit_steps, 0, allow_none=True)
    _check_int("random_state", est.random_state, 0, allow_none=True)
    _check_int("n_threads", est.n_threads, 1, allow_none=True)
    for name, (low, allow_none) in (extra or {}).items():
        _check_int(name, getattr(est, name), low, allow_none=allow_none)
    for name in ("initial_memory", "task_description"):
        value = getattr(est, name)
        if value is not None and not (isinstance(value, str) and value.strip()):
            _fail(name, "None or a non-empty string", value)
    temp = est.temperature
    if not (isinstance(temp, numbers.Real) and not isinstance(temp, bool) and 0 <= temp <= 2):
        _fail("temperature", "a number between 0 and 2", temp)
    layers = est.n_gpu_layers
    if layers != "auto":
        _check_int("n_gpu_layers", layers, -1)
    if not isinstance(est.progress, bool):
        _fail("progress", "True or False", est.progress)


def loop_config(est: Any) -> LoopConfig:
    """The recurrence settings of a checked estimator."""
    return LoopConfig(
        strategy=est.strategy,
        feedback=est.feedback,
        memory_words=est.memory_words,
        context_tokens=est.context_tokens,
        temperature=float(est.temperature),
        seed=0 if est.random_state is None else int(est.random_state),
        check_tokens=getattr(est, "check_tokens", 0),
    )


def backend_for(est: Any) -> tuple[str, Backend]:
    """Resolve the estimator's ``model`` (in ``fit``) and return its path and a backend on it."""
    path = resolve_model(est.model)
    return path, backend_on(est, path)


def backend_on(est: Any, path: str) -> Backend:
    """A backend on the fitted file ``path`` (``model_path_``): ``predict`` and ``update`` run
    the file ``fit`` resolved, never a new resolution of ``model`` (a Hugging Face id is not
    looked up again, a changed ``LLMRNN_MODELS`` does not swap the file). A file that is gone
    since (an unpickled estimator on another machine) raises ``ModelFileError``."""
    if path is not STAND_IN:
        check_gguf(path)
    return make_backend(
        path,
        context_tokens=est.context_tokens,
        n_threads=est.n_threads,
        n_gpu_layers=est.n_gpu_layers,
    )
