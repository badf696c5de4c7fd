"""The embedded model, loaded from a Q8_0 copy made once: prompts evaluate 1.8x faster.

The embedded SmolLM2-135M-Instruct file is quantized Q4_1. On x86 CPUs llama.cpp has fast
matrix kernels for Q8_0 (llamafile's sgemm) and Q4_0 (repacked), not for Q4_1, and prompt
evaluation is most of every recurrent step. Measured on the 2-core AVX-512 development machine
(``python benchmarks/quant.py``, ``benchmarks/results/quant.md``): prompt evaluation 263
tokens/s from the shipped Q4_1 file, 464 from a Q8_0 copy; generation 107 and 118; a
forecaster's fit and 4 updates 1.45x faster end to end, the same forecast.

Why Q8_0 and not Q4_0 (faster still): converting Q4_1 weights to 8 bits keeps them within a
small rounding of what they were, so the copy is the same model (perplexity on the README
34.77 against 34.88, mean KL divergence of the next-token distribution 0.006); 4 bits again is
a different, worse one (perplexity 40.97, KL 0.27).

The copy is written once per installed file into the cache folder (``LLMRNN_CACHE_DIR``, else
``$XDG_CACHE_HOME/llmrnn`` or ``~/.cache/llmrnn``; 145 MB, about 2 s on 2 cores), through a
temporary file and an atomic rename, so processes that convert at once (dask workers) never
read a half-written file. ``LLMRNN_EMBEDDED_COPY=0`` loads the shipped file as it is. Where the
copy cannot be written (a read-only home), the shipped file is loaded and a warning says how to
fix it: slower, never different in kind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "copy_path", "load_path", "loaded_file", "quantize"]

logger = logging.getLogger("llmrnn.llama_cpp")

#: The environment variable that turns the copy off (``0``) or on (anything else, the default).
ENV_VAR = "LLMRNN_EMBEDDED_COPY"
#: The environment variable naming the folder for the copy.
CACHE_ENV_VAR = "LLMRNN_CACHE_DIR"
_SUFFIX = ".Q8_0"


def cache_dir() -> Path:
    """The folder llmrnn writes its derived files to.

    Returns
    -------
    pathlib.Path
        ``LLMRNN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/llmrnn``, else ``~/.cache/llmrnn``
        (not created here).
    """
    configured = os.environ.get(CACHE_ENV_VAR, "").strip()
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "llmrnn"


def _embedded_file() -> str:
    from ..models import _embedded

    path = _embedded()[0].path
    return os.path.realpath(path) if path else ""


def copy_path(model_path: str) -> Path:
    """Where the Q8_0 copy of ``model_path`` lives: named after the file's size and time, so a
    reinstalled package gets a fresh copy.

    Parameters
    ----------
    model_path : str
        The shipped GGUF file.

    Returns
    -------
    pathlib.Path
        The copy's path in :func:`cache_dir` (it may not exist yet).
    """
    stat = os.stat(model_path)
    stem = Path(model_path).name.removesuffix(".gguf")
    return cache_dir() / f"{stem}{_SUFFIX}-{stat.st_size}-{stat.st_mtime_ns}.gguf"


def _wanted(model_path: str) -> bool:
    if os.environ.get(ENV_VAR, "1").strip().lower() in {"0", "false", "off", "no"}:
        return False
    embedded = _embedded_file()
    return bool(embedded) and os.path.realpath(model_path) == embedded


def loaded_file(model_path: str) -> str:
    """The file a model resolved to ``model_path`` loads from (nothing is written here).

    Parameters
    ----------
    model_path : str
        The resolved model file (``models.resolve_model``).

    Returns
    -------
    str
        The Q8_0 copy's path for the embedded model (unless ``LLMRNN_EMBEDDED_COPY=0``), else
        ``model_path``. Benchmarks record it, so each figure says which file it was run on.
    """
    return str(copy_path(model_path)) if _wanted(model_path) else model_path


def quantize(llama_cpp: Any, source: str, target: Path, threads: int, ftype: int) -> None:
    """Write ``source`` quantized as ``ftype`` to ``target`` through a temporary file and an
    atomic rename (``benchmarks/quant.py`` uses it for its Q4_0 comparison)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".partial-", suffix=".gguf")
    os.close(handle)
    try:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.allow_requantize = True
        params.nthread = threads
        status = llama_cpp.llama_model_quantize(
            source.encode(), temporary.encode(), ctypes.byref(params)
        )
        if status != 0:
            raise OSError(f"llama_model_quantize returned {status}")
        os.chmod(temporary, 0o644)  # mkstemp made it private; the copy is not
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def load_path(llama_cpp: Any, model_path: str, *, threads: int = 1) -> str:
    """The file to load for ``model_path``: the Q8_0 copy for the embedded model, else itself.

    Parameters
    ----------
    llama_cpp : module
        The imported ``llama_cpp`` package.
    model_path : str
        The resolved model file (``models.resolve_model``).
    threads : int, default=1
        Threads for the one-time conversion.

    Returns
    -------
    str
        The copy, written now if missing; ``model_path`` itself for any other model, when
        ``LLMRNN_EMBEDDED_COPY=0``, or (with a warning) when the copy cannot be written.
    """
    if not _wanted(model_path):
        return model_path
    target = Path(loaded_file(model_path))
    if target.is_file():
        return str(target)
    logger.info("writing a Q8_0 copy of the embedded model to %s", target)
    try:
        quantize(llama_cpp, model_path, target, max(1, threads), llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)
    except OSError as exc:
        warnings.warn(
            f"llmrnn could not write the Q8_0 copy of the embedded model to {target} ({exc}); "
            "loading the shipped Q4_1 file, whose prompts evaluate about 1.8x slower on x86 "
            f"CPUs. Set {CACHE_ENV_VAR} to a writable folder, or {ENV_VAR}=0 to silence this.",
            RuntimeWarning,
            stacklevel=2,
        )
        return model_path
    for stale in target.parent.glob(target.name.split(_SUFFIX)[0] + _SUFFIX + "-*.gguf"):
        if stale != target:
            try:
                stale.unlink()  # a copy of an earlier install of the package
            except OSError:  # pragma: no cover - another process removed it first
                pass
    return str(target)
