"""The ``llmrnn`` command on the real model."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pandas as pd
import pytest

from llmrnn.cli import _print_demo, load_series, main, run_demo
from llmrnn.models import CATALOGUE

from ._hfcache import TINY_FILES, TINY_REPO, add_repo, use_cache


def test_demo_backtests_and_says_what_the_memory_changed(tmp_path, capsys):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # every warning, each time, as a first run would print
        result = run_demo(steps=3, fit_steps=2, window=8, out=tmp_path)
    noise = [w for w in seen if "statsmodels" in w.filename or "sktime" in w.filename]
    assert not noise, [str(w.message)[:80] for w in noise]  # the baselines' refits stay quiet
    table = result["table"]
    assert list(table.index) == [
        "llmrnn rnn",
        "llmrnn zero_shot",
        "llmrnn rnn, no base",
        "Theta alone",
        "naive last",
        "naive seasonal (sp=12)",
    ]
    assert table[["MAE", "MASE", "sMAPE", "seconds"]].notna().all().all()
    assert table.loc["llmrnn rnn", "generated tok"] > 0
    trace = pd.read_csv(result["trace"])
    assert len(trace) == 2 + 2  # fit steps, then an update before each later backtest step
    assert result["plot"].stat().st_size > 10_000
    assert result["memory"]
    assert list(result["curve"].index) == list(table.index)  # one learning curve a row
    assert set(result["effect"]) == {
        "steps",
        "changed",
        "error",
        "error_initial",
        "better",
        "worse",
        "error_answer",
        "error_answer_initial",
        "better_answers",
        "worse_answers",
    }
    _print_demo(result)
    printed = capsys.readouterr().out
    assert "llmrnn rnn" in printed and "naive last" in printed and "learning curve" in printed
    assert "what the memory changed" in printed and "final memory" in printed
    if result["effect"]["steps"]:
        assert "The memory helped here" in printed or "The memory did not help" in printed
    else:  # three backtest steps are too few for memory_effect (it needs more than five)
        assert "too few steps to tell whether the memory helped" in printed


def test_python_m_llmrnn_runs_the_command():
    out = subprocess.run(
        [sys.executable, "-m", "llmrnn", "models"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "smollm2-135m" in out.stdout


def test_command_ends_without_a_resource_warning(tmp_path):
    """llama-cpp-python keeps two /dev/null files open for the process's life; the command
    closes them at exit, so its output does not end with an unclosed-file warning."""
    out = subprocess.run(
        [sys.executable, "-W", "default", "-m", "llmrnn", "backtest", "airline", "--steps", "1"]
        + ["--fit-steps", "1", "--strategy", "zero_shot", "--base", "none", "--out", "o"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=tmp_path,
    )
    assert "MAE" in out.stdout
    assert "loaded from its Q8_0 copy" in out.stdout  # the file the figures came from
    assert "unclosed file" not in out.stderr, out.stderr[-500:]


def test_cli_models_lists_embedded_model(capsys):
    assert main(["models"]) == 0
    printed = capsys.readouterr().out
    assert "smollm2-135m" in printed and "GPU offload available" in printed
    assert "loads from its Q8_0 copy" in printed


def test_cli_bad_model_is_a_message_not_a_traceback(tmp_path, capsys):
    assert main(["demo", "--steps", "1", "--model", str(tmp_path / "x.gguf")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_backtest_dataset_name(tmp_path, capsys):
    args = ["backtest", "lynx", "--steps", "2", "--fit-steps", "1", "--window", "6"]
    assert main([*args, "--strategy", "zero_shot", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "llmrnn zero_shot" in printed and "naive seasonal (sp=10)" in printed
    # the default base: the estimator's automatic Theta, also backtested alone, and rnn without it
    assert "llmrnn rnn, no base" in printed and "Theta alone" in printed
    assert (tmp_path / "trace_zero_shot.csv").exists()


def test_backtest_csv_file_with_horizon(tmp_path, capsys, airline):
    csv = tmp_path / "sales.csv"
    frame = pd.DataFrame({"month": airline.index.to_timestamp(), "sales": airline.to_numpy()})
    frame.iloc[-30:].to_csv(csv, index=False)
    args = ["backtest", str(csv), "--steps", "2", "--horizon", "2", "--fit-steps", "1"]
    assert main([*args, "--strategy", "zero_shot", "--base", "none", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "MASE" in printed and "no base" not in printed and "alone" not in printed


def test_a_csv_whose_dates_skip_a_month_is_stepped_by_position_with_a_warning(tmp_path, airline):
    """pandas infers no frequency when a date is missing: the rows are stepped in order, and
    the user is told the season is lost and how to keep it (before: silently)."""
    frame = pd.DataFrame({"month": airline.index.to_timestamp(), "sales": airline.to_numpy()})
    frame.drop(index=10).to_csv(tmp_path / "gap.csv", index=False)
    frame.to_csv(tmp_path / "whole.csv", index=False)
    with pytest.warns(UserWarning, match="not regular.*no season.*Fill the missing dates"):
        y, _, _ = load_series(str(tmp_path / "gap.csv"))
    assert isinstance(y.index, pd.RangeIndex) and len(y) == len(airline) - 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, _, _ = load_series(str(tmp_path / "whole.csv"))
    assert y.index.freqstr == "MS"


def test_backtest_argument_errors_give_usage_not_tracebacks(tmp_path, capsys):
    with pytest.raises(SystemExit) as missing:
        main(["backtest"])
    assert missing.value.code == 2 and "usage:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["backtest", "lynx", "--steps", "0"])
    assert "positive integer" in capsys.readouterr().err
    assert main(["backtest", "no-such-dataset"]) == 2
    assert "neither a dataset" in capsys.readouterr().err
    assert main(["backtest", "lynx", "--steps", "500"]) == 2
    assert "too few" in capsys.readouterr().err


# -- models and pull, on a Hugging Face cache in tmp_path (offline; no network) --------------


@pytest.fixture
def hf_cache(tmp_path, monkeypatch, default_model_path):
    cache = tmp_path / "hf-cache"
    add_repo(cache, TINY_REPO, TINY_FILES, default_model_path)
    entry = CATALOGUE["qwen2.5-0.5b-instruct"]
    snapshot = add_repo(cache, entry.repo_id, (entry.filename,), default_model_path)
    use_cache(monkeypatch, cache)
    return cache, snapshot / entry.filename


def test_cli_models_lists_catalogue_with_cached_files_and_sizes(hf_cache, capsys):
    cache, cached = hf_cache
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("qwen2.5-0.5b-instruct "))
    assert str(cached) in row and "98 MB" in row and "apache-2.0" in row
    row = next(line for line in lines if line.startswith("phi-4-mini-instruct "))
    assert "not downloaded" in row and "~2.49 GB" in row
    assert any(line.startswith("smollm2-135m ") and "embedded" in line for line in lines)
    assert f"Hugging Face cache: {cache} (offline mode: on)" in lines


def test_cli_pull_reports_a_cached_model_without_network(hf_cache, capsys):
    _, cached = hf_cache
    assert main(["pull", "qwen2.5-0.5b-instruct"]) == 0
    printed = capsys.readouterr().out
    assert "already in the Hugging Face cache (98 MB)" in printed and str(cached) in printed
    assert main(["pull", f"{TINY_REPO}:q8_0"]) == 0
    assert "tiny-Q8_0.gguf" in capsys.readouterr().out


def test_cli_pull_offline_and_not_cached_is_a_clear_error(hf_cache, capsys):
    cache, _ = hf_cache
    assert main(["pull", "phi-4-mini-instruct"]) == 2
    err = capsys.readouterr().err
    assert "unsloth/Phi-4-mini-instruct-GGUF:Q4_K_M is not in the Hugging Face cache" in err
    assert str(cache) in err and "llmrnn pull" in err and "Traceback" not in err
    assert main(["pull", "gpt-9"]) == 2
    assert "neither a catalogue name" in capsys.readouterr().err
