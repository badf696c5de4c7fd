"""The embedded model loads from a Q8_0 copy written once (``backends/_embedded_copy.py``):
the same model, faster prompts on x86 CPUs, and the shipped file whenever the copy cannot be."""

from __future__ import annotations

import os
import warnings

import llama_cpp
import numpy as np
import pytest

from llmrnn.backends import _embedded_copy
from llmrnn.backends.base import log_softmax
from llmrnn.backends.llama_cpp import LlamaCppBackend

Q8_0 = "7"  # llama.cpp's general.file_type for LLAMA_FTYPE_MOSTLY_Q8_0
Q4_1 = "3"


def _file_type(path: str) -> str:
    llama = llama_cpp.Llama(path, vocab_only=True, verbose=False)
    try:
        return llama.metadata["general.file_type"]
    finally:
        llama.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(_embedded_copy.CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.delenv(_embedded_copy.ENV_VAR, raising=False)
    return tmp_path / "cache"


def test_copy_is_written_once_as_q8_0_and_replaces_a_stale_one(default_model_path, cache):
    cache.mkdir()
    stale = cache / "SmolLM2-135M-Instruct.Q4_1.Q8_0-1-2.gguf"  # an earlier install's copy
    stale.write_bytes(b"GGUF")
    path = _embedded_copy.load_path(llama_cpp, default_model_path, threads=2)
    assert os.path.dirname(path) == str(cache)
    assert _file_type(path) == Q8_0 and _file_type(default_model_path) == Q4_1
    assert not stale.exists()
    assert [p.name for p in cache.iterdir()] == [os.path.basename(path)]  # no partial file left
    written = os.stat(path).st_mtime_ns
    assert _embedded_copy.load_path(llama_cpp, default_model_path) == path
    assert os.stat(path).st_mtime_ns == written  # found, not written again


def test_copy_is_the_same_model(default_model_path, cache):
    """Next-token distributions of the copy and the shipped file on the same text: mean KL
    divergence under 0.05 (measured 0.006; a 4-bit Q4_0 copy measured 0.27)."""
    copy = _embedded_copy.load_path(llama_cpp, default_model_path, threads=2)
    text = (
        "The monthly totals of international airline passengers rose from 112 thousand in "
        "January 1949 to 432 thousand in December 1960, with a peak every summer."
    )
    logprobs = []
    for path in (default_model_path, copy):
        llama = llama_cpp.Llama(path, n_ctx=256, logits_all=True, verbose=False)
        tokens = llama.tokenize(text.encode())
        llama.eval(tokens)
        logprobs.append(np.array([log_softmax(row) for row in llama.scores[: len(tokens)]]))
        llama.close()
    shipped, copied = logprobs
    kl = float((np.exp(shipped) * (shipped - copied)).sum(axis=1).mean())
    assert kl < 0.05, kl


def test_the_backend_loads_the_copy(default_model_path):
    llama = LlamaCppBackend(default_model_path, n_ctx=512)._shared.llama
    assert llama.model_path == str(_embedded_copy.copy_path(default_model_path))
    assert llama.metadata["general.file_type"] == Q8_0


def test_switched_off_or_another_model_loads_the_file_itself(
    default_model_path, cache, monkeypatch, tmp_path
):
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF")
    assert _embedded_copy.load_path(llama_cpp, str(other)) == str(other)
    monkeypatch.setenv(_embedded_copy.ENV_VAR, "0")
    assert _embedded_copy.load_path(llama_cpp, default_model_path) == default_model_path
    assert not cache.exists()


def test_an_unwritable_cache_loads_the_shipped_file_with_a_warning(
    default_model_path, monkeypatch, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(_embedded_copy.CACHE_ENV_VAR, str(blocker / "cache"))
    with pytest.warns(RuntimeWarning, match="LLMRNN_CACHE_DIR"):
        path = _embedded_copy.load_path(llama_cpp, default_model_path)
    assert path == default_model_path
    monkeypatch.setenv(_embedded_copy.ENV_VAR, "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _embedded_copy.load_path(llama_cpp, default_model_path) == default_model_path


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(_embedded_copy.CACHE_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _embedded_copy.cache_dir() == tmp_path / "llmrnn"
    monkeypatch.setenv(_embedded_copy.CACHE_ENV_VAR, str(tmp_path / "mine"))
    assert _embedded_copy.cache_dir() == tmp_path / "mine"
