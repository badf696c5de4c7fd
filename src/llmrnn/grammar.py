"""GBNF grammars for constrained answers, and a validator that runs before llama.cpp sees them.

llama.cpp's grammar parser can take the whole process down on a malformed grammar (FACTS.md: a
segfault), so every grammar is checked here first and a malformed one raises ``GrammarError``.
"""

from __future__ import annotations

import re

__all__ = ["GrammarError", "validate_gbnf", "numbers_grammar", "rule_number_grammar"]

_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_RULE = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9-]*)\s*::=(.*)$")
_REPEAT = re.compile(r"\{\s*\d*\s*(,\s*\d*\s*)?\}")


class GrammarError(ValueError):
    """A GBNF grammar that llama.cpp would reject (or crash on)."""


def _scan_body(body: str, rule: str) -> set[str]:
    """Check one rule body token by token; return the rule names it references."""
    refs: set[str] = set()
    depth = 0
    i = 0
    while i < len(body):
        ch = body[i]
        if ch.isspace() or ch in "|*+?":
            i += 1
        elif ch == "#":  # comment to end of line
            break
        elif ch == '"':
            i += 1
            while i < len(body) and body[i] != '"':
                i += 2 if body[i] == "\\" else 1
            if i >= len(body):
                raise GrammarError(f"Unterminated string literal in rule {rule!r}.")
            i += 1
        elif ch == "[":
            i += 1
            if i < len(body) and body[i] == "^":
                i += 1
            start = i
            while i < len(body) and body[i] != "]":
                i += 2 if body[i] == "\\" else 1
            if i >= len(body) or i == start:
                raise GrammarError(f"Unterminated or empty character class in rule {rule!r}.")
            i += 1
        elif ch == "(":
            depth += 1
            i += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise GrammarError(f"Unbalanced ')' in rule {rule!r}.")
            i += 1
        elif ch == "{":
            match = _REPEAT.match(body, i)
            if not match:
                raise GrammarError(f"Malformed repetition in rule {rule!r}.")
            i = match.end()
        else:
            match = _NAME.match(body, i)
            if not match:
                raise GrammarError(f"Unexpected character {ch!r} in rule {rule!r}.")
            refs.add(match.group())
            i = match.end()
    if depth:
        raise GrammarError(f"Unbalanced '(' in rule {rule!r}.")
    return refs


def validate_gbnf(text: str) -> str:
    """Check a GBNF grammar and return it unchanged.

    Parameters
    ----------
    text : str
        The grammar, one rule per line (``name ::= body``); ``root`` must be defined.

    Returns
    -------
    str
        ``text``, so that calls can be chained.

    Raises
    ------
    GrammarError
        If a rule is malformed, a referenced rule is undefined, or ``root`` is missing.
    """
    defined: set[str] = set()
    referenced: set[str] = set()
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _RULE.match(line)
        if not match:
            raise GrammarError(f"Not a GBNF rule (expected 'name ::= body'): {line.strip()!r}.")
        name, body = match.groups()
        if not body.strip():
            raise GrammarError(f"Rule {name!r} has an empty body.")
        defined.add(name)
        referenced |= _scan_body(body, name)
    if "root" not in defined:
        raise GrammarError("The grammar defines no 'root' rule.")
    missing = referenced - defined
    if missing:
        raise GrammarError(f"The grammar references undefined rules: {sorted(missing)}.")
    return text


def numbers_grammar(count: int, int_digits: int, decimals: int, *, signed: bool = False) -> str:
    """Grammar for exactly ``count`` comma-separated numbers of bounded precision.

    Parameters
    ----------
    count : int
        How many numbers (one per horizon).
    int_digits : int
        Most digits before the decimal point (small models fill every digit allowed).
    decimals : int
        Digits after the decimal point; 0 means integers. The point is mandatory when
        ``decimals > 0``, as in the rendered inputs, so a number cannot run on.
    signed : bool, default=False
        Whether every number starts with ``+`` or ``-`` (changes rather than values).

    Returns
    -------
    str
        A validated GBNF grammar.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    root = ' ", " '.join(["num"] * count)
    int_part = "[0-9]" + " [0-9]?" * (int_digits - 1)
    frac = ' "." ' + " ".join(["[0-9]"] * decimals) if decimals > 0 else ""
    sign = "[-+]" if signed else '"-"?'
    return validate_gbnf(f"root ::= {root}\nnum ::= {sign} {int_part}{frac}\n")


def rule_number_grammar(int_digits: int, decimals: int) -> str:
    """Grammar for " <signed number>." : the end of the memory's Rules line.

    "... correct the base forecast by about" must go on with one signed number and stop, so
    the rule the next prediction reads says which way to correct and by how much, and nothing
    else: free text after the number (0.5B model: "..., and predict a correction of -23.1")
    made the prediction copy the wrong number or sign.
    """
    number = numbers_grammar(1, int_digits, decimals, signed=True).splitlines()[1]
    return validate_gbnf(f'root ::= " " num "."\n{number}\n')
