"""Which file of the embedded model to load: the shipped Q4_1, its Q8_0 copy or a Q4_0 one.

Usage::

    python benchmarks/quant.py [--reps 2]

For each file: prompt evaluation and generation rates of plain llama_cpp calls (600 prompt
tokens, 64 generated), the perplexity of the model on this repository's README and the mean KL
divergence of its next-token distribution from the shipped file's (is it the same model?), and
an end-to-end forecaster run (airline, ``fit_steps=4`` then 4 predict/update pairs) for the
shipped file and the Q8_0 copy, the copy llmrnn loads by default (``backends/_embedded_copy``).
The files run one after another, repeated ``--reps`` times, so each ratio is this run's.
Writes ``benchmarks/results/quant.md``. About 4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from llmrnn import LLMRNNForecaster
from llmrnn.backends import _embedded_copy
from llmrnn.backends._model_cache import available_threads, import_llama_cpp
from llmrnn.backends.base import log_softmax
from llmrnn.models import resolve_model

llama_cpp = import_llama_cpp()  # its log lines go to logging, not the terminal

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "quant.md"
PROMPT = "The monthly totals were 112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118. "


def q4_0_copy(source: str, folder: str) -> str:
    """A 4-bit Q4_0 copy of ``source`` (for comparison only; llmrnn never loads it)."""
    target = Path(folder) / "q4_0.gguf"
    ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    _embedded_copy.quantize(llama_cpp, source, target, available_threads(), ftype)
    return str(target)


def rates(path: str) -> tuple[float, float]:
    """Prompt and generation tokens per second, plain llama_cpp calls."""
    llama = llama_cpp.Llama(path, n_ctx=2048, n_threads=available_threads(), verbose=False)
    tokens = llama.tokenize((PROMPT * 20).encode())[:600]
    start = time.perf_counter()
    llama.eval(tokens)
    prompt = len(tokens) / (time.perf_counter() - start)
    llama.reset()
    start = time.perf_counter()
    out = llama.create_completion("Describe a monthly series:", max_tokens=64, temperature=0.0)
    generation = out["usage"]["completion_tokens"] / (time.perf_counter() - start)
    llama.close()
    return prompt, generation


def logprobs(path: str, text: str) -> tuple[np.ndarray, list[int]]:
    """Log-probabilities of the next token at every position of ``text`` (1024 tokens)."""
    llama = llama_cpp.Llama(path, n_ctx=2048, logits_all=True, verbose=False)
    tokens = llama.tokenize(text.encode())[:1024]
    llama.eval(tokens)
    rows = np.array([log_softmax(row) for row in llama.scores[: len(tokens)]])
    llama.close()
    return rows, tokens


def forecaster_seconds(model: str | None) -> tuple[float, float]:
    """Seconds for fit (4 recurrent steps) and 4 predict/update pairs, and the last forecast."""
    from sktime.datasets import load_airline

    y = load_airline()
    forecaster = LLMRNNForecaster(model=model, fit_steps=4, random_state=0)
    start = time.perf_counter()
    forecaster.fit(y.iloc[:-4], fh=[1])
    for i in range(4, 0, -1):
        forecaster.predict()
        forecaster.update(y.iloc[len(y) - i : len(y) - i + 1])
    return time.perf_counter() - start, float(forecaster.predict().iloc[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2, help="repetitions of each measurement")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    shipped = resolve_model(None)
    copy = _embedded_copy.load_path(llama_cpp, shipped, threads=available_threads())
    text = (ROOT / "README.md").read_text()
    with tempfile.TemporaryDirectory() as folder:
        files = {"Q4_1 (shipped)": shipped, "Q8_0 (llmrnn's copy)": copy}
        files["Q4_0 (not used)"] = q4_0_copy(shipped, folder)
        sizes = {name: os.path.getsize(path) / 1e6 for name, path in files.items()}
        measured: dict[str, list[tuple[float, float]]] = {name: [] for name in files}
        for _ in range(args.reps):
            for name, path in files.items():
                measured[name].append(rates(path))
        reference, tokens = logprobs(shipped, text)
        quality = {}
        for name, path in files.items():
            lp = reference if path == shipped else logprobs(path, text)[0]
            nll = -lp[np.arange(len(tokens) - 1), tokens[1:]].mean()
            kl = (np.exp(reference) * (reference - lp)).sum(axis=1).mean()
            quality[name] = (float(np.exp(nll)), float(kl))
    runs: dict[str, list[tuple[float, float]]] = {"Q4_1 (shipped)": [], "Q8_0 (llmrnn's copy)": []}
    for _ in range(args.reps):
        os.environ["LLMRNN_EMBEDDED_COPY"] = "0"
        runs["Q4_1 (shipped)"].append(forecaster_seconds(None))
        runs["Q8_0 (llmrnn's copy)"].append(forecaster_seconds(copy))

    lines = [
        "# The embedded model's file: shipped Q4_1 against a Q8_0 copy",
        "",
        f"Command: `python benchmarks/quant.py --reps {args.reps}`; machine: "
        f"{platform.machine()}, {os.cpu_count()} CPUs, {available_threads()} threads used; "
        f"llama-cpp-python {llama_cpp.__version__}. Rates: medians over the repetitions; "
        "perplexity on this repository's README (1024 tokens); KL: mean over positions of the "
        "KL divergence from the shipped file's next-token distribution.",
        "",
        "| file | MB | prompt tok/s | generated tok/s | perplexity | KL from shipped |",
        "|---|---|---|---|---|---|",
    ]
    for name in files:
        prompt, generation = np.median(np.array(measured[name]), axis=0)
        ppl, kl = quality[name]
        cells = [name, f"{sizes[name]:.0f}", f"{prompt:.0f}", f"{generation:.0f}"]
        lines.append("| " + " | ".join([*cells, f"{ppl:.2f}", f"{kl:.3f}"]) + " |")
    lines += [
        "",
        "Forecaster, airline: `fit(fh=[1])` with `fit_steps=4`, then 4 predict/update pairs and a "
        "last predict (seconds per run, in the order run):",
        "",
        "| file | seconds | last forecast |",
        "|---|---|---|",
    ]
    for name, values in runs.items():
        seconds = ", ".join(f"{s:.1f}" for s, _ in values)
        lines.append(f"| {name} | {seconds} | {values[-1][1]:.2f} |")
    shipped_s = np.median([s for s, _ in runs["Q4_1 (shipped)"]])
    copy_s = np.median([s for s, _ in runs["Q8_0 (llmrnn's copy)"]])
    lines += ["", f"End to end the copy is {shipped_s / copy_s:.2f}x faster (medians)."]
    report = "\n".join(lines) + "\n"
    print(report)
    RESULTS.write_text(report)


if __name__ == "__main__":
    main()
