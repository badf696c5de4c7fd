"""The backend protocol: what the recurrence needs from a language model, and nothing more.

A backend renders a conversation into one prompt string, counts tokens, and completes a prompt
(optionally under a GBNF grammar). Everything else (prompts, parsing, memory) lives outside, so the
stand-in backend used by the conformance suites runs exactly the same code as llama.cpp.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..prompts import PLAIN_HEADERS

__all__ = ["Message", "Completion", "Backend", "BackendError", "log_softmax", "render_plain"]


class BackendError(RuntimeError):
    """A failure inside the language-model backend (not a malformed answer, which is expected)."""


@dataclass(frozen=True)
class Message:
    """One turn of a conversation: ``role`` is "system", "user" or "assistant"."""

    role: str
    content: str


@dataclass(frozen=True)
class Completion:
    """What one completion produced and what it cost.

    Attributes
    ----------
    text : str
        The generated text.
    prompt_tokens : int
        Prompt tokens evaluated by the model in this call.
    cached_tokens : int
        Prompt tokens reused from the KV cache (not evaluated again).
    generated_tokens : int
        Tokens generated.
    seconds : float
        Wall time of the call.
    truncated : bool
        True when generation stopped at ``max_tokens`` rather than at a natural end.
    """

    text: str
    prompt_tokens: int
    cached_tokens: int
    generated_tokens: int
    seconds: float
    truncated: bool = False


@runtime_checkable
class Backend(Protocol):
    """What the recurrence asks of a language model.

    A backend may also offer ``complete_many(prompt, *, seeds, max_tokens, grammar,
    temperature) -> list[Completion]``, one sampled continuation per seed generated side by
    side (the llama.cpp backend does); without it, samples are drawn one ``complete`` at a time.
    """

    #: Path of the model file in use (or the stand-in's name).
    model_path: str

    def render(self, messages: Sequence[Message]) -> str:
        """Render a conversation into a prompt that ends where the assistant's answer begins."""
        ...

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` occupies in the context."""
        ...

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int,
        grammar: str | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        stop: Sequence[str] = (),
        repeat_penalty: float = 1.0,
        halt: Callable[[str], bool] | None = None,
    ) -> Completion:
        """Continue ``prompt`` with at most ``max_tokens`` tokens.

        ``halt``, if given, is called with the text generated so far; generation stops as soon as
        it returns True (used to cut a small model's loops short instead of paying for them).
        """
        ...

    def score(self, prompt: str, options: Sequence[str]) -> tuple[Any, Completion]:
        """Log-probability of each option as the complete answer to ``prompt``.

        The prompt is evaluated once; each option costs only its own tokens (and an end-of-answer
        token, so that an option that is a prefix of another is not favoured). Returns the
        log-probabilities and a :class:`Completion` whose text is the best option.
        """
        ...


def log_softmax(logits: Any) -> Any:
    """Log-probabilities from one row of logits (numerically stable)."""
    import numpy as np

    row = np.asarray(logits, dtype=np.float64)
    shifted = row - row.max()
    return shifted - np.log(np.exp(shifted).sum())


def render_plain(messages: Sequence[Message]) -> str:
    """Render a conversation as plain text, for base models that have no chat template.

    Parameters
    ----------
    messages : sequence of Message
        The conversation; the prompt ends with the header of the assistant's next turn.

    Returns
    -------
    str
        The prompt.
    """
    headers = PLAIN_HEADERS
    parts = [f"{headers.get(m.role, '### ' + m.role)}\n{m.content.strip()}\n\n" for m in messages]
    return "".join(parts) + headers["assistant"] + "\n"
