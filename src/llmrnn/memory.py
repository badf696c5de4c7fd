"""The memory text: its sections, and the checks a rewrite passes before it becomes the memory.

The rnn memory is kept structured, as in the paper's reproduction: one line per section,

    Patterns: what the data does.
    Mistakes: what went wrong in recent answers.
    Rules: what to do next time.

A small model's rewrite is expected to be imperfect, so :func:`settle_rewrite` validates it
instead of trusting it: a section the rewrite lost or left empty keeps its previous text (a
rewrite cannot silently drop what was learned), repeated sentences are dropped, and each section
is cut to its share of ``memory_words`` at a finished sentence. Every repair is reported so the
recurrence can record it in the trace's ``fault`` column.

The free-text helpers used while generating (:func:`looping`, :func:`clean`) live here too.
"""

from __future__ import annotations

import re

from . import prompts

__all__ = [
    "SECTIONS",
    "initial_memory",
    "parse_sections",
    "render_sections",
    "settle_rewrite",
    "section_words",
    "clean",
    "looping",
    "cap_words",
    "finished",
    "dedupe_sentences",
    "states",
    "rules_of",
]

#: The memory's sections, in order.
SECTIONS = prompts.MEMORY_SECTIONS

_HEADING = re.compile(
    r"^[\s\-*#>]*\**\s*(" + "|".join(SECTIONS) + r")\s*\**\s*:\s*\**",
    flags=re.IGNORECASE | re.MULTILINE,
)


def clean(text: str) -> str:
    """Strip a free-text answer of surrounding space and of tags it must not carry."""
    text = re.sub(r"</?\s*(memory|data)\s*>", "", text, flags=re.IGNORECASE)
    return prompts.escape(text.strip())


# A sentence or line; a point between digits ("+2.5") does not end a sentence.
_PIECE = re.compile(r"(?:[^\n.!?]|[.!?](?=\d))*(?:[.!?]+|\n|$)")


def _pieces(text: str) -> list[tuple[int, int, str]]:
    """Sentences and lines of ``text`` as (start, end, key); the key ignores case, bullets,
    punctuation and spacing, so "- The series rises." and "  the series rises" match."""
    found = []
    for match in _PIECE.finditer(text):
        if match.start() == match.end():
            continue
        key = " ".join(re.sub(r"[^a-z0-9+\-]+", " ", match.group().lower()).split()).strip("- ")
        found.append((match.start(), match.end(), key))
    return found


def dedupe_sentences(text: str) -> tuple[str, int]:
    """Drop sentences or lines that repeat an earlier one; return the text and the count."""
    seen: set[str] = set()
    kept: list[str] = []
    dropped = 0
    for start, end, key in _pieces(text):
        if key and key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(text[start:end])
    return ("".join(kept).strip() if dropped else text), dropped


def looping(text: str) -> bool:
    """True once the last finished sentence or line repeats an earlier one (a small model's loop).

    Checked after every generated token of a reflection or rewrite, so a loop costs one repeated
    sentence instead of the whole token budget; the repeat itself is removed afterwards.
    """
    finished_keys = [key for _, end, key in _pieces(text) if key and text[end - 1] in ".!?\n"]
    return len(finished_keys) >= 2 and finished_keys[-1] in finished_keys[:-1]


def cap_words(text: str, words: int) -> tuple[str, bool]:
    """Cut ``text`` after ``words`` words, keeping its line breaks; say whether it was cut."""
    matches = list(re.finditer(r"\S+", text))
    if len(matches) <= words:
        return text, False
    return text[: matches[words - 1].end()], True


def finished(text: str) -> str:
    """Drop a cut text's unfinished last sentence or line, if a finished one comes before it."""
    text = text.rstrip()
    if not text or text[-1] in ".!?":
        return text
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)|\n", text)]
    return text[: ends[-1]].rstrip() if ends else text


def parse_sections(text: str) -> dict[str, str]:
    """The sections found in ``text``, by name (absent sections are left out).

    Headings may carry bullets or bold marks (``- **Rules:**``) and any case; a section's text
    runs to the next heading, its lines joined by spaces. Text before the first heading is
    ignored.
    """
    found: dict[str, str] = {}
    matches = list(_HEADING.finditer(text))
    for i, match in enumerate(matches):
        name = next(s for s in SECTIONS if s.lower() == match.group(1).lower())
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = " ".join(line.strip(" -*") for line in text[match.end() : end].splitlines())
        body = " ".join(body.split())
        if body and name not in found:
            found[name] = body
    return found


def rules_of(memory: str) -> str:
    """The Rules section of a memory text ("" when it has none)."""
    return parse_sections(memory).get(SECTIONS[-1], "")


def states(written: str, rule: str) -> bool:
    """Whether a Rules line (after its primer) states ``rule``: the same words, case, spaces
    and a final full stop aside."""

    def norm(text: str) -> str:
        return " ".join(text.split()).rstrip(".").casefold()

    return norm(written) == norm(rule)


def render_sections(sections: dict[str, str]) -> str:
    """The memory text: one ``Name: text`` line per section, in :data:`SECTIONS` order."""
    return "\n".join(f"{name}: {sections[name]}" for name in SECTIONS if name in sections)


def initial_memory(text: str | None) -> str:
    """The memory before the first step.

    None gives every section ``prompts.EMPTY_SECTION``. A user's text that already has sections
    keeps them (missing ones are added empty); plain text becomes the Rules section, the
    advice the model applies first.
    """
    empty = {name: prompts.EMPTY_SECTION for name in SECTIONS}
    if text is None:
        return render_sections(empty)
    text = prompts.escape(" ".join(text.split()) if not parse_sections(text) else text)
    found = parse_sections(text)
    if not found:
        found = {SECTIONS[-1]: text}
    return render_sections({**empty, **found})


def section_words(words: int) -> int:
    """Words each section may hold so that the memory, headings included, has at most
    ``words`` words (at least 3 a section)."""
    return max(3, (words - len(SECTIONS)) // len(SECTIONS))


def settle_rewrite(previous: str, rewrite: str, words: int) -> tuple[str, list[str]]:
    """Validate a rewrite against the previous memory; return the new memory and its repairs.

    Parameters
    ----------
    previous : str
        The memory before the step.
    rewrite : str
        What the model wrote (its primer included).
    words : int
        The memory's word budget, headings included, shared equally by the sections.

    Returns
    -------
    memory : str
        The rewrite with lost or empty sections restored from ``previous``, repeated sentences
        dropped, and each section cut to ``section_words(words)`` words at a finished sentence.
    repairs : list of str
        One sentence per repair, for the trace's ``fault`` column (empty when none was needed).
    """
    old = parse_sections(previous)
    new = parse_sections(clean(rewrite))
    share = section_words(words)
    sections: dict[str, str] = {}
    kept, repeats, cut_names = [], 0, []
    for name in SECTIONS:
        body = new.get(name, "")
        body, dropped = dedupe_sentences(body)
        repeats += dropped
        if not re.search(r"[A-Za-z0-9]", body):
            if name in old:
                sections[name] = old[name]
                kept.append(name)
            continue
        body, cut = cap_words(body, share)
        if cut:
            body = finished(body)
            cut_names.append(name)
        sections[name] = body
    repairs = []
    if kept:
        repairs.append(f"memory rewrite lost {', '.join(kept)}: kept the previous text")
    if repeats:
        repairs.append(f"repetitive memory rewrite: dropped {repeats} repeated sentences")
    if cut_names:
        repairs.append(
            f"memory rewrite over budget: {', '.join(cut_names)} cut to {share} words at the "
            "last finished sentence"
        )
    return render_sections(sections), repairs
