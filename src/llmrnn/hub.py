"""GGUF models named by a Hugging Face repository id: ``org/repo`` or ``org/repo:QUANT``.

Resolution is offline first. A file already in the Hugging Face cache is used without any
network call: the cache is read through huggingface_hub's own layout
(``models--ORG--REPO/refs/main`` holds a commit hash, ``snapshots/HASH/FILE`` the files) and
:func:`huggingface_hub.try_to_load_from_cache`. Only a file that is not cached is downloaded,
with :func:`huggingface_hub.hf_hub_download` (which shows its own progress bar), and only when
offline mode (``HF_HUB_OFFLINE``) is off. ``Llama.from_pretrained`` is not used: it lists the
repository over the network on every call and cannot work offline (llama-cpp-python issue 1801).

The quant tag follows llama.cpp's ``-hf org/repo:QUANT`` rule: case-insensitive; without a tag
``Q4_K_M``, else any Q4 file, else the first GGUF file. A model split into shards
(``NAME-00001-of-00003.gguf`` ...) is used only when every shard is present, and is named by
its first shard, from which llama.cpp finds the others. Vision projectors (``mmproj``) and
importance matrices are never chosen as the model.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_TAG",
    "HubModelError",
    "HubId",
    "cache_dir",
    "cached_model",
    "is_offline",
    "model_size",
    "parse_hub_id",
    "quant_of",
    "resolve_hub_model",
    "select_gguf",
]

logger = logging.getLogger(__name__)

#: The quant llama.cpp picks when an id carries no tag.
DEFAULT_TAG = "Q4_K_M"

_ID = re.compile(
    r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)(?::(?P<tag>[A-Za-z0-9._-]+))?$"
)
_SHARD = re.compile(r"^(?P<base>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])(?:UD-)?(?:I?Q\d(?:_[A-Z0-9]+)*|BF16|FP16|F16|F32)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_NOT_A_MODEL = ("mmproj", "imatrix")


class HubModelError(FileNotFoundError):
    """A Hugging Face GGUF model that is not cached, not found, or has no such quant."""


@dataclass(frozen=True)
class HubId:
    """A parsed ``org/repo[:QUANT]`` id.

    Parameters
    ----------
    repo_id : str
        ``org/repo``.
    tag : str or None
        The quant tag, or None for llama.cpp's default choice.
    """

    repo_id: str
    tag: str | None = None

    def __str__(self) -> str:
        return self.repo_id if self.tag is None else f"{self.repo_id}:{self.tag}"


def parse_hub_id(text: str) -> HubId | None:
    """Parse ``org/repo`` or ``org/repo:QUANT``; None when ``text`` is not of that form.

    A text ending in ``.gguf`` is never an id (it is a file path); callers check existing paths
    before calling this.

    Parameters
    ----------
    text : str
        What the user passed as ``model``.

    Returns
    -------
    HubId or None
    """
    if text.lower().endswith(".gguf"):
        return None
    match = _ID.match(text)
    if match is None:
        return None
    return HubId(match["repo"], match["tag"])


def _hub():
    """Import huggingface_hub, or say how to install it."""
    try:
        import huggingface_hub
        import huggingface_hub.constants  # a submodule the package does not load by itself
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise ImportError(
            "Models named by a Hugging Face id need huggingface_hub: `pip install huggingface_hub` "
            "(it is a dependency of llmrnn; reinstall llmrnn if it is missing)."
        ) from exc
    return huggingface_hub


def cache_dir() -> str:
    """The Hugging Face cache folder in use (``HF_HUB_CACHE``, ``HF_HOME``/hub by default)."""
    return str(_hub().constants.HF_HUB_CACHE)


def is_offline() -> bool:
    """Whether huggingface_hub's offline mode (``HF_HUB_OFFLINE=1``) is on."""
    return bool(_hub().constants.HF_HUB_OFFLINE)


def quant_of(filename: str) -> str:
    """The quant label in a GGUF file name (``Q4_K_M``, ``IQ4_XS``, ``F16`` ...), upper case.

    Parameters
    ----------
    filename : str
        A file name such as ``qwen2.5-1.5b-instruct-q4_k_m.gguf``.

    Returns
    -------
    str
        The last quant-looking token, or the file's stem when there is none.
    """
    stem = _unit_name(filename).removesuffix(".gguf").removesuffix(".GGUF")
    found = _QUANT.findall(Path(stem).name)
    return found[-1].upper() if found else Path(stem).name


def _unit_name(filename: str) -> str:
    """The name shared by all shards of a split file (the file itself when not split)."""
    shard = _SHARD.match(filename)
    return f"{shard['base']}.gguf" if shard else filename


def _has_tag(filename: str, tag: str) -> bool:
    """Whether the quant ``tag`` appears in ``filename`` as a whole token, ignoring case."""
    stem = _unit_name(filename)[: -len(".gguf")]
    pattern = r"(?<![A-Za-z0-9])" + re.escape(tag) + r"(?![A-Za-z0-9_])"
    return re.search(pattern, stem, re.IGNORECASE) is not None


def _units(files: list[str]) -> dict[str, list[str]]:
    """Group GGUF model files by unit (a file, or all shards of a split file), sorted."""
    units: dict[str, list[str]] = {}
    for name in sorted(files):
        if not name.lower().endswith(".gguf"):
            continue
        if any(word in Path(name).name.lower() for word in _NOT_A_MODEL):
            continue
        units.setdefault(_unit_name(name), []).append(name)
    return units


def _quants(units: dict[str, list[str]]) -> str:
    """The quant labels of some model units, sorted and comma-separated."""
    return ", ".join(sorted({quant_of(name) for name in units}))


def _missing_shards(unit: list[str]) -> list[str]:
    """Names of the shards of a split unit that are not in ``unit`` (empty when complete)."""
    shard = _SHARD.match(unit[0])
    if shard is None:
        return []
    count = int(shard["count"])
    width = len(shard["index"])
    base = shard["base"]
    wanted = [f"{base}-{i:0{width}d}-of-{shard['count']}.gguf" for i in range(1, count + 1)]
    present = {name.lower() for name in unit}
    return [name for name in wanted if name.lower() not in present]


def select_gguf(files: list[str], tag: str | None, *, repo_id: str = "the repository") -> list[str]:
    """Choose the model file(s) among a repository's files by llama.cpp's tag rule.

    Parameters
    ----------
    files : list of str
        File names in the repository (relative paths).
    tag : str or None
        The quant tag (case-insensitive). None: ``Q4_K_M``, else any Q4 file, else the first
        GGUF file.
    repo_id : str, optional
        Named in error messages.

    Returns
    -------
    list of str
        The chosen file, or every shard of a split file in order (the first one is the model
        path llama.cpp opens).

    Raises
    ------
    HubModelError
        If there is no GGUF model file, or none with the requested tag (the message lists the
        quants there are).
    """
    units = _units(files)
    if not units:
        raise HubModelError(f"{repo_id} holds no GGUF model file: name a GGUF repository.")
    if tag is not None:
        chosen = [unit for name, unit in units.items() if _has_tag(name, tag)]
        if not chosen:
            raise HubModelError(
                f"{repo_id} has no {tag} file; its quants are {_quants(units)}: pass one of "
                f"them as '{repo_id}:QUANT'."
            )
        return chosen[0]
    for candidates in (
        [unit for name, unit in units.items() if _has_tag(name, DEFAULT_TAG)],
        [unit for name, unit in units.items() if re.search(r"(?<![A-Za-z0-9])Q4", name, re.I)],
        list(units.values()),
    ):
        if candidates:
            return candidates[0]
    raise AssertionError("unreachable: units is not empty")  # pragma: no cover


def _cached_files(repo_id: str, cache: str) -> list[str]:
    """GGUF files of ``repo_id``'s ``main`` snapshot in the cache, relative to the snapshot."""
    from huggingface_hub.file_download import repo_folder_name

    folder = Path(cache) / repo_folder_name(repo_id=repo_id, repo_type="model")
    ref = folder / "refs" / "main"
    if not ref.is_file():
        return []
    snapshot = folder / "snapshots" / ref.read_text().strip()
    if not snapshot.is_dir():
        return []
    return sorted(
        path.relative_to(snapshot).as_posix()
        for path in snapshot.rglob("*.gguf")
        if path.is_file()  # a dangling link (blob removed) is not a cached file
    )


def _cached_paths(repo_id: str, unit: list[str], cache: str) -> list[str] | None:
    """Paths of every file of ``unit`` in the cache, or None if any is missing."""
    hub = _hub()
    paths = []
    for name in unit:
        found = hub.try_to_load_from_cache(repo_id, name, cache_dir=cache)
        if not isinstance(found, str):
            return None
        paths.append(found)
    return paths


def cached_model(hub_id: HubId | str) -> str | None:
    """The cached file of a model id, found without any network call; None if not cached.

    Applies the tag rule to the files in the cache: with no tag, a cached ``Q4_K_M`` file is
    taken; with a tag, a cached file of that quant.

    Parameters
    ----------
    hub_id : HubId or str
        The model, ``org/repo`` or ``org/repo:QUANT``.

    Returns
    -------
    str or None
        The path of the (first shard of the) cached file, or None.

    Raises
    ------
    ValueError
        If ``hub_id`` is not of the form ``org/repo[:QUANT]``.
    """
    parsed = parse_hub_id(hub_id) if isinstance(hub_id, str) else hub_id
    if parsed is None:
        raise ValueError(f"{hub_id!r} is not a Hugging Face id of the form 'org/repo[:QUANT]'.")
    cache = cache_dir()
    files = _cached_files(parsed.repo_id, cache)
    try:
        unit = select_gguf(files, parsed.tag or DEFAULT_TAG, repo_id=parsed.repo_id)
    except HubModelError:
        return None
    if _missing_shards(unit):
        return None
    paths = _cached_paths(parsed.repo_id, unit, cache)
    return paths[0] if paths else None


def _pull_hint(hub_id: HubId) -> str:
    """The command that fetches ``hub_id``."""
    return f"`llmrnn pull {hub_id}`"


def _offline_choice(hub_id: HubId, cache: str) -> str:
    """Resolve from the cache alone (offline mode), or raise a message that says what to do."""
    files = _cached_files(hub_id.repo_id, cache)
    if not files:
        raise HubModelError(
            f"The model {hub_id} is not in the Hugging Face cache ({cache}) and offline mode "
            f"(HF_HUB_OFFLINE) is on: fetch it once with {_pull_hint(hub_id)} with the hub "
            "reachable and HF_HUB_OFFLINE unset, or set HF_HUB_CACHE to the folder that holds it."
        )
    try:
        unit = select_gguf(files, hub_id.tag, repo_id=hub_id.repo_id)
    except HubModelError as exc:
        if hub_id.tag is None or not _units(files):
            raise
        raise HubModelError(
            f"The Hugging Face cache ({cache}) holds {hub_id.repo_id} only in the quants "
            f"{_quants(_units(files))}, not {hub_id.tag}, and offline mode (HF_HUB_OFFLINE) is "
            f"on: pass one of those as '{hub_id.repo_id}:QUANT', or fetch {hub_id.tag} with "
            f"{_pull_hint(hub_id)} with the hub reachable and HF_HUB_OFFLINE unset."
        ) from exc
    missing = _missing_shards(unit)
    if missing:
        raise HubModelError(
            f"The model {hub_id} is split into shards and {len(missing)} of them are not in the "
            f"Hugging Face cache ({cache}), e.g. {missing[0]}; offline mode is on: complete it "
            f"with {_pull_hint(hub_id)} with the hub reachable and HF_HUB_OFFLINE unset."
        )
    paths = _cached_paths(hub_id.repo_id, unit, cache)
    if paths is None:  # pragma: no cover - listed files are cached files
        raise HubModelError(f"The cached files of {hub_id} in {cache} cannot be read.")
    return paths[0]


def resolve_hub_model(hub_id: HubId | str) -> str:
    """Return the local path of a Hugging Face GGUF model, downloading it only if needed.

    Parameters
    ----------
    hub_id : HubId or str
        ``org/repo`` or ``org/repo:QUANT``.

    Returns
    -------
    str
        The path of the model file in the Hugging Face cache (the first shard of a split
        model). It is the snapshot path huggingface_hub manages, not the blob it links to, so
        llama.cpp finds the other shards beside it.

    Raises
    ------
    HubModelError
        Not cached while offline (the message names the id, the cache folder and
        ``llmrnn pull``), no such repository, no such quant, or the hub cannot be reached.
    ValueError
        If ``hub_id`` is not of the form ``org/repo[:QUANT]``.
    """
    parsed = parse_hub_id(hub_id) if isinstance(hub_id, str) else hub_id
    if parsed is None:
        raise ValueError(f"{hub_id!r} is not a Hugging Face id of the form 'org/repo[:QUANT]'.")
    cached = cached_model(parsed)
    if cached is not None:
        return cached
    cache = cache_dir()
    if is_offline():
        return _offline_choice(parsed, cache)
    return _download(parsed, cache)


def _download(hub_id: HubId, cache: str) -> str:
    """List the repository on the hub, choose by the tag rule, download what is missing."""
    hub = _hub()
    from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError

    try:
        files = hub.HfApi().list_repo_files(hub_id.repo_id)
    except GatedRepoError as exc:
        raise HubModelError(
            f"{hub_id.repo_id} is gated on Hugging Face: accept its licence on its page, log in "
            "with `hf auth login`, then retry."
        ) from exc
    except RepositoryNotFoundError as exc:
        raise HubModelError(
            f"No Hugging Face repository {hub_id.repo_id!r} (or it is private): check the id, "
            "e.g. 'Qwen/Qwen2.5-1.5B-Instruct-GGUF', or see `llmrnn models` for the catalogue."
        ) from exc
    except Exception as exc:  # no connection, hub errors: say so, keep the cause
        raise HubModelError(
            f"The Hugging Face hub could not be reached to fetch {hub_id} ({exc}); it is not in "
            f"the cache ({cache}): retry online, or copy the file there and set HF_HUB_OFFLINE=1."
        ) from exc
    unit = select_gguf(files, hub_id.tag, repo_id=hub_id.repo_id)
    paths = []
    for name in unit:
        logger.info("Downloading %s from %s into %s", name, hub_id.repo_id, cache)
        try:
            paths.append(hub.hf_hub_download(hub_id.repo_id, name, cache_dir=cache))
        except Exception as exc:
            raise HubModelError(
                f"Downloading {name} of {hub_id.repo_id} failed ({exc}): retry with "
                f"{_pull_hint(hub_id)}; a partial download resumes."
            ) from exc
    return paths[0]


def model_size(path: str) -> int:
    """Bytes of a model file, all shards included when it is the first shard of a split file.

    Parameters
    ----------
    path : str
        A GGUF file.

    Returns
    -------
    int
        The size in bytes (0 if the file is missing).
    """
    shard = _SHARD.match(os.path.basename(path))
    if shard is None:
        return os.path.getsize(path) if os.path.exists(path) else 0
    folder = os.path.dirname(path)
    total = 0
    for i in range(1, int(shard["count"]) + 1):
        name = f"{shard['base']}-{i:0{len(shard['index'])}d}-of-{shard['count']}.gguf"
        candidate = os.path.join(folder, name)
        if os.path.exists(candidate):
            total += os.path.getsize(candidate)
    return total
