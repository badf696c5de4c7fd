"""A backend that answers from a script, for forcing faults through the real prompt code.

It renders, counts and records exactly like the conformance stand-in, but ``complete`` returns
the next queued text (or defers to the stand-in when the queue is empty), and ``fail_at`` makes
the k-th call raise. Wrapping the real llama.cpp backend is done with :class:`FailingBackend`.
"""

from __future__ import annotations

from dataclasses import replace

from llmrnn.backends import BackendError
from llmrnn.backends.stand_in import _WORD, StandInBackend


class ScriptedBackend(StandInBackend):
    def __init__(self, outputs=(), *, truncated=False, n_ctx=4096):
        super().__init__(n_ctx=n_ctx)
        self.outputs = list(outputs)
        self.truncated = truncated
        self.prompts: list[str] = []

    def complete(self, prompt, **kwargs):
        self.prompts.append(prompt)
        done = super().complete(prompt, **kwargs)
        if not self.outputs:
            return done
        # A real backend never writes more than max_tokens: cut the script there too.
        text, limit = self.outputs.pop(0), kwargs["max_tokens"]
        ends = [0] + [m.end() for m in _WORD.finditer(text)]
        cut = len(ends) - 1 > limit
        if cut:
            text = text[: ends[limit]]
        return replace(done, text=text, truncated=self.truncated or cut)


class FailingBackend:
    """Delegates to a real backend and raises ``error`` at the ``fail_at``-th model call."""

    def __init__(self, inner, fail_at: int, error: BaseException | None = None):
        self.inner = inner
        self.model_path = inner.model_path
        self.fail_at = fail_at
        self.error = error or BackendError("injected failure")
        self.calls = 0

    def render(self, messages):
        return self.inner.render(messages)

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def _tick(self):
        self.calls += 1
        if self.calls == self.fail_at:
            raise self.error

    def complete(self, prompt, **kwargs):
        self._tick()
        return self.inner.complete(prompt, **kwargs)

    def score(self, prompt, options):
        self._tick()
        return self.inner.score(prompt, options)
