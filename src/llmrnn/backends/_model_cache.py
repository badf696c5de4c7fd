"""Loaded llama.cpp models, one per process per key, shared by every backend handle.

- A model is shared per (file, context size, GPU layers, threads): a grid search that clones an
  estimator 50 times loads the file once. Each shared model has a lock, because one ``Llama``
  object must never run in two threads at once.
- A child forked from a process that already ran a model inherits llama.cpp's OpenMP state and
  hangs on its next decode: such a child gets a clear error instead.
- llama.cpp's own log lines go to the ``llmrnn.llama_cpp`` logger at DEBUG, so nothing is printed
  unless the user turns debug logging on.
- On a build that reports AMX, models load with llama.cpp's extra buffer types off (see
  :func:`use_extra_buffers`).
- The embedded model loads from a Q8_0 copy written once (``_embedded_copy``): prompts evaluate
  1.8x faster from it on x86 CPUs. The key keeps the resolved (shipped) file.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from . import _embedded_copy
from . import _llama_private as private
from .base import BackendError

__all__ = [
    "BLOCK",
    "SharedModel",
    "available_threads",
    "gpu_offload_supported",
    "import_llama_cpp",
    "load_count",
    "shared_model",
    "system_info",
    "use_extra_buffers",
]

logger = logging.getLogger("llmrnn.llama_cpp")

#: Prompt tokens per aligned evaluation block: a context reuses cached cells only up to a
#: multiple of it that was evaluated in batches starting on that grid (``llama_cpp._prefill``,
#: ``_lockstep._prefill``), which makes a prompt's logits independent of what ran before it.
BLOCK = 32

_CACHE: dict[tuple, SharedModel] = {}
_CACHE_LOCK = threading.Lock()
_LOADS: list[tuple] = []  # every real load, for tests and benchmarks (one entry per load)
_LOG_CALLBACK: Any = None  # keeps the ctypes callback alive
_RAN_INFERENCE = False  # set once this process has used a model
_FORKED_AFTER_INFERENCE = False  # set in a child forked from a process that had


def _after_fork_in_child() -> None:
    """A forked child inherits llama.cpp's OpenMP state, which hangs on the next decode."""
    global _FORKED_AFTER_INFERENCE, _CACHE_LOCK
    _FORKED_AFTER_INFERENCE = _FORKED_AFTER_INFERENCE or _RAN_INFERENCE
    _CACHE_LOCK = threading.Lock()
    _CACHE.clear()  # the parent's models (and their locks) are not usable here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def import_llama_cpp() -> Any:
    """``import llama_cpp``, with its log lines routed to logging and a clear error if broken."""
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - a broken install
        raise BackendError(
            "llama-cpp-python is not importable: reinstall it with `pip install llama-cpp-python` "
            "(a C/C++ compiler is needed), or reinstall llmrnn."
        ) from exc
    _route_llama_logs(llama_cpp)
    return llama_cpp


def _route_llama_logs(llama_cpp: Any) -> None:
    """Route llama.cpp's log lines to logging (DEBUG) instead of stderr."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return

    @llama_cpp.llama_log_callback
    def _callback(level, text, user_data):  # noqa: ARG001 - ctypes signature
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(text.decode("utf-8", "replace").rstrip())

    _LOG_CALLBACK = _callback
    llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


@atexit.register
def _close_all() -> None:
    """Free the shared models before interpreter teardown (llama-cpp-python's own ``__del__``
    fails noisily once its modules are gone); a second context goes before its model."""
    with _CACHE_LOCK:
        for shared in _CACHE.values():
            for side in (shared.parallel, shared.lockstep and shared.lockstep.side):
                if side is not None:
                    side.close()
            shared.llama.close()
        _CACHE.clear()


def gpu_offload_supported() -> bool:
    """Whether this llama-cpp-python build can offload layers to a GPU.

    Returns
    -------
    bool
        llama.cpp's ``llama_supports_gpu_offload()``.
    """
    return bool(import_llama_cpp().llama_supports_gpu_offload())


def system_info() -> str:
    """llama.cpp's build and CPU-feature line.

    Returns
    -------
    str
        For example ``"CPU : SSE3 = 1 | ... | AVX512 = 1 | ..."``.
    """
    return import_llama_cpp().llama_print_system_info().decode("utf-8", "replace").strip()


def load_count(model_path: str | None = None) -> int:
    """How many times a model file was loaded in this process.

    Parameters
    ----------
    model_path : str, optional
        Count only this file; all files when None.

    Returns
    -------
    int
        The number of loads.
    """
    return sum(1 for key in _LOADS if model_path is None or key[0] == model_path)


def available_threads() -> int:
    """Cores this process may run on (not llama-cpp-python's default of half the CPU count).

    ``OMP_NUM_THREADS``, when set, caps it: joblib's loky workers set it to their share of the
    cores, so a grid search with ``n_jobs=2`` on 2 cores runs one thread per worker instead of
    two workers spinning two OpenMP threads each (measured 10x slower before the first release).

    Returns
    -------
    int
        At least 1.
    """
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cores = max(1, os.cpu_count() or 1)
    try:
        cap = int(os.environ.get("OMP_NUM_THREADS", "0"))
    except ValueError:
        cap = 0
    return min(cores, cap) if cap > 0 else cores


def use_extra_buffers() -> bool:
    """Whether llama.cpp may put weights in its "extra" CPU buffer types (AMX, repacking).

    llama-cpp-python 0.3.36 compiled natively on an AMX-capable Xeon (the development and CI
    machines) segfaults in ``ggml_backend_amx_mul_mat`` on the first decode. So on a build that
    reports ``AMX_INT8 = 1`` the extra buffers are off by default. ``LLMRNN_EXTRA_BUFFERS=1`` or
    ``=0`` overrides the rule.

    Returns
    -------
    bool
        False to load models with ``use_extra_bufts=False``.
    """
    setting = os.environ.get("LLMRNN_EXTRA_BUFFERS", "auto").strip().lower()
    if setting in {"1", "true", "on", "yes"}:
        return True
    if setting in {"0", "false", "off", "no"}:
        return False
    return "AMX_INT8 = 1" not in system_info()


@dataclass
class SharedModel:
    """A loaded model and what every handle on it shares."""

    llama: Any
    chat_template: str | None
    eos_token: str
    bos_token: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    formatter: Any = None
    clean: int = 0  # cache positions below this were evaluated in whole aligned blocks
    parallel: Any = None  # the second context of complete_many, created on first use
    lockstep: Any = None  # the lanes of complete_batch / score_batch (``_lockstep.Lanes``)


def _load(key: tuple) -> SharedModel:
    model_path, n_ctx, n_gpu_layers, n_threads = key
    llama_cpp = import_llama_cpp()
    logger.info("loading %s (n_ctx=%d, n_gpu_layers=%d)", model_path, n_ctx, n_gpu_layers)
    llama_class = private.llama_class(llama_cpp, extra_buffers=use_extra_buffers())
    file = _embedded_copy.load_path(llama_cpp, model_path, threads=n_threads)
    try:
        llama = llama_class(
            model_path=file,
            n_ctx=n_ctx,
            n_gpu_layers=n_gpu_layers,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            n_batch=min(512, n_ctx),
            seed=0,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise BackendError(
            f"llama.cpp could not load {file!r} ({exc}): check that it is a complete GGUF "
            "file of an architecture this llama-cpp-python version supports."
        ) from exc
    _LOADS.append(key)
    template = llama.metadata.get("tokenizer.chat_template")
    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    eos = private.token_text(llama, eos_id) if eos_id != -1 else ""
    bos = private.token_text(llama, bos_id) if bos_id != -1 else ""
    shared = SharedModel(llama, template, eos, bos)
    if template:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        shared.formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
    return shared


def shared_model(key: tuple) -> SharedModel:
    """The shared model for ``(file, n_ctx, n_gpu_layers, n_threads)``, loaded on first use.

    Parameters
    ----------
    key : tuple
        ``(model_path, n_ctx, n_gpu_layers, n_threads)``.

    Returns
    -------
    SharedModel
        Use its ``llama`` only while holding its ``lock``.

    Raises
    ------
    BackendError
        In a child forked after inference (it would hang), or if llama.cpp cannot load the file.
    """
    global _RAN_INFERENCE
    if _FORKED_AFTER_INFERENCE:
        raise BackendError(
            "llama.cpp cannot run in a process forked from one that already ran a model "
            "(its OpenMP threads do not survive fork: the call would hang). Use a "
            "spawn-based backend instead: joblib's default 'loky', sktime's "
            "evaluate(backend='loky' or 'dask'), or multiprocessing's 'spawn' start method."
        )
    _RAN_INFERENCE = True
    shared = _CACHE.get(key)
    if shared is None:
        with _CACHE_LOCK:
            shared = _CACHE.get(key)
            if shared is None:
                shared = _CACHE[key] = _load(key)
    return shared
