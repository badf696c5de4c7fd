"""A Hugging Face cache laid out on disk as huggingface_hub writes it, with no network.

``models--ORG--REPO/refs/main`` holds a commit hash; ``snapshots/HASH/FILE`` are relative
symbolic links to ``blobs/ID``; here every blob links to the embedded model's GGUF file, so the
files are real models that llama.cpp can load.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants

#: A repository of the embedded model under two quant names, two shards and a vision projector.
TINY_REPO = "llmrnn-test/tiny-GGUF"
TINY_FILES = (
    "tiny-Q4_K_M.gguf",
    "tiny-Q8_0.gguf",
    "tiny-F16-00001-of-00002.gguf",
    "tiny-F16-00002-of-00002.gguf",
    "mmproj-tiny-f16.gguf",
)


def add_repo(cache: Path, repo_id: str, files: tuple[str, ...], model_file: str) -> Path:
    """Put ``files`` (each linked to ``model_file``) into ``repo_id``'s ``main`` snapshot.

    Returns the snapshot folder.
    """
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (folder / "blobs").mkdir(exist_ok=True)
    for name in files:
        blob = folder / "blobs" / hashlib.sha256(name.encode()).hexdigest()
        if not blob.exists():
            blob.symlink_to(model_file)
        link = snapshot / name
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def use_cache(monkeypatch, cache: Path) -> None:
    """Point huggingface_hub at ``cache``, turn offline mode on and make any download fail."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def no_network(*args, **kwargs):
        raise AssertionError(f"a network call was attempted: {args} {kwargs}")

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", no_network)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
