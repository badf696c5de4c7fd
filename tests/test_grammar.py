"""Grammars are validated before llama.cpp sees them (a bad one would crash the process)."""

from __future__ import annotations

import pytest

from llmrnn.grammar import GrammarError, numbers_grammar, rule_number_grammar, validate_gbnf


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
    assert rule_number_grammar(2, 1).startswith('root ::= " " num "."\nnum ::= [-+] ')
