"""Grammars are validated before llama.cpp sees them (a bad one would crash the process)."""

from __future__ import annotations

import re

import pytest

from llmrnn.backends.llama_cpp import LlamaCppBackend
from llmrnn.grammar import GrammarError, choice_grammar, numbers_grammar, validate_gbnf


@pytest.mark.parametrize(
    ("grammar", "message"),
    [
        ("num ::= [0-9]", "no 'root'"),
        ('root ::= "abc', "Unterminated string"),
        ("root ::= [0-9", "Unterminated or empty character class"),
        ("root ::= (num", "Unbalanced"),
        ("root ::= num)", "Unbalanced"),
        ("root ::= num", "undefined rules"),
        ("root = num", "Not a GBNF rule"),
        ("root ::= ", "empty body"),
        ("root ::= [0-9]{2,x}", "Malformed repetition"),
    ],
)
def test_invalid_grammars_raise(grammar, message):
    with pytest.raises(GrammarError, match=message):
        validate_gbnf(grammar)


def test_builders_produce_valid_grammars():
    assert 'root ::= num ", " num' in numbers_grammar(2, 3, 1)
    assert "[-+]" in numbers_grammar(1, 3, 1, signed=True)
    assert validate_gbnf(choice_grammar(["up", 'say "hi"\n']))


def test_real_backend_rejects_bad_grammar_without_crashing(default_model_path):
    backend = LlamaCppBackend(default_model_path, n_ctx=512)
    with pytest.raises(GrammarError):
        backend.complete("Count: 1, 2,", max_tokens=4, grammar="root ::= [0-9")
    # The process and the model are still fine.
    ok = backend.complete("Count: 1, 2,", max_tokens=4, grammar=numbers_grammar(1, 2, 0))
    assert ok.text.strip().lstrip("-").isdigit()


def test_parallel_samples_follow_the_grammar_and_their_seeds(default_model_path):
    from llmrnn.backends.base import Message

    backend = LlamaCppBackend(default_model_path, n_ctx=1024)
    prompt = backend.render([Message("user", "Write three random numbers between 0 and 99.")])
    grammar = numbers_grammar(3, 2, 1, signed=True)
    greedy = backend.complete(prompt, max_tokens=30, grammar=grammar).text
    samples = backend.complete_many(
        prompt, seeds=range(8), max_tokens=30, grammar=grammar, temperature=1.0
    )
    pattern = re.compile(r"[-+]?\d{1,2}\.\d, [-+]?\d{1,2}\.\d, [-+]?\d{1,2}\.\d")
    texts = [s.text for s in samples]
    assert all(pattern.fullmatch(t) for t in texts), texts
    assert len(set(texts)) > 1  # eight seeds, one sampled text each
    assert not any(s.truncated for s in samples)
    # the prompt is evaluated once, for the first sample; the others share it
    tokens = backend.count_tokens(prompt)
    assert samples[0].prompt_tokens == tokens and samples[0].cached_tokens == 0
    assert all(s.prompt_tokens == 0 and s.cached_tokens == tokens for s in samples[1:])
    again = backend.complete_many(
        prompt, seeds=range(8), max_tokens=30, grammar=grammar, temperature=1.0
    )
    assert [s.text for s in again] == texts  # repeatable
    # the samples ran on their own context: the main one gives the same greedy text as before
    assert backend.complete(prompt, max_tokens=30, grammar=grammar).text == greedy


def test_parallel_samples_fall_back_to_one_at_a_time(default_model_path, monkeypatch):
    # an older llama-cpp-python without llama.cpp's memory API: the same call, sequential samples
    monkeypatch.setattr("llmrnn.backends.llama_cpp._parallel_supported", lambda _: False)
    backend = LlamaCppBackend(default_model_path, n_ctx=512)
    grammar = numbers_grammar(1, 2, 0)
    samples = backend.complete_many("Count: 1, 2,", seeds=[0, 1, 2], max_tokens=4, grammar=grammar)
    assert len(samples) == 3 and all(s.text.strip().lstrip("-").isdigit() for s in samples)
