"""The llama.cpp backend on the embedded model: grammars, side-by-side samples, scoring, loading,
and the private parts of llama-cpp-python it relies on (``backends/_llama_private.py``)."""

from __future__ import annotations

import logging
import re

import llama_cpp
import numpy as np
import pytest

import llmrnn.backends.llama_cpp as llama_backend
from llmrnn import LLMRNNForecaster
from llmrnn.backends import BackendError
from llmrnn.backends import _llama_private as private
from llmrnn.backends._model_cache import BLOCK
from llmrnn.backends.base import Message
from llmrnn.backends.llama_cpp import LlamaCppBackend
from llmrnn.grammar import GrammarError, numbers_grammar


def test_private_api_of_llama_cpp_python_is_still_there(default_model_path):
    # Fails on an upgrade of llama-cpp-python that removes or renames what the shim uses.
    llama = LlamaCppBackend(default_model_path, n_ctx=512)._shared.llama
    problems = private.api_problems(llama)
    assert not problems, (
        f"llama-cpp-python {llama_cpp.__version__} changed what "
        "src/llmrnn/backends/_llama_private.py relies on (written against 0.3.36): "
        + "; ".join(problems)
    )


def test_api_problems_name_a_removed_or_changed_method(monkeypatch):
    import llama_cpp._internals as internals  # installed with llama-cpp-python: never skip

    monkeypatch.delattr(internals.LlamaSampler, "add_dist")
    monkeypatch.setattr(internals.LlamaBatch, "set_batch", lambda self, tokens, start: None)
    monkeypatch.delattr(llama_cpp.llama_cpp, "llama_memory_seq_cp")
    problems = private.api_problems()
    assert "llama_cpp._internals.LlamaSampler.add_dist is gone" in problems
    assert (
        "llama_cpp._internals.LlamaBatch.set_batch now takes ['tokens', 'start'], "
        "not ['batch', 'n_past', 'logits_all']"
    ) in problems
    assert "llama_cpp.llama_cpp.llama_memory_seq_cp is gone" in problems
    assert len(problems) == 3, problems


def test_models_load_without_extra_buffers_when_asked(default_model_path, monkeypatch, caplog):
    """The AMX workaround reaches llama.cpp, and only the model it was asked for."""
    monkeypatch.setenv("LLMRNN_EXTRA_BUFFERS", "0")
    caplog.set_level(logging.DEBUG, logger="llmrnn.llama_cpp")
    backend = LlamaCppBackend(default_model_path, n_ctx=384)  # a context size no other test loads
    llama = backend._shared.llama
    assert llama.model_params.use_extra_bufts is False
    assert llama._model.params.use_extra_bufts is False  # what llama.cpp was given
    loaded = [r.getMessage() for r in caplog.records if "model buffer size" in r.getMessage()]
    assert loaded, "llama.cpp's load log did not reach the llmrnn.llama_cpp logger"
    assert not [line for line in loaded if "AMX" in line or "REPACK" in line], loaded
    # nothing global was replaced: a plain load still gets llama.cpp's defaults
    assert llama_cpp.llama_model_default_params().use_extra_bufts is True
    assert type(llama) is not llama_cpp.Llama and isinstance(llama, llama_cpp.Llama)
    # and the model runs (an AMX build without the workaround segfaults here)
    assert backend.complete("Count: 1, 2,", max_tokens=2).generated_tokens > 0


def test_real_backend_rejects_bad_grammar_without_crashing(default_model_path):
    backend = LlamaCppBackend(default_model_path, n_ctx=512)
    with pytest.raises(GrammarError, match="Unterminated or empty character class"):
        backend.complete("Count: 1, 2,", max_tokens=4, grammar="root ::= [0-9")
    # The process and the model are still fine.
    ok = backend.complete("Count: 1, 2,", max_tokens=4, grammar=numbers_grammar(1, 2, 0))
    assert ok.text.strip().lstrip("-").isdigit()


def test_prompt_over_context_is_a_clear_error(default_model_path):
    backend = LlamaCppBackend(default_model_path, n_ctx=256)
    with pytest.raises(BackendError, match="raise context_tokens"):
        backend.complete("word " * 400, max_tokens=4)


def test_results_do_not_depend_on_what_the_kv_cache_held(monkeypatch, airline):
    """llama.cpp's numbers shift with how a prompt is split into batches; the backend evaluates
    every prompt the same way whatever the cache held, so a cold cache gives the same text."""
    params = {"window": 8, "fit_steps": 2, "memory_words": 30, "base_forecaster": None}
    warm = LLMRNNForecaster(**params).fit(airline[-20:])
    prefill = llama_backend._prefill

    def cold(shared, tokens):
        shared.clean = 0  # forget the cache before every call
        return prefill(shared, tokens)

    monkeypatch.setattr(llama_backend, "_prefill", cold)
    cold_fit = LLMRNNForecaster(**params).fit(airline[-20:])
    cold_trace, warm_trace = cold_fit.get_trace(), warm.get_trace()
    assert cold_fit.memory_ == warm.memory_
    assert cold_trace["prediction"].tolist() == warm_trace["prediction"].tolist()
    assert cold_trace["cached_tokens"].sum() == 0 < warm_trace["cached_tokens"].sum()


def test_scoring_leaves_the_cache_holding_exactly_the_prompt(default_model_path):
    backend = LlamaCppBackend(default_model_path, n_ctx=512)
    prompt = backend.render([Message("user", "Is the sky blue? Answer yes or no.")])
    options = ["yes", "no", "maybe not"]
    logprobs, done = backend.score(prompt, options)
    llama = backend._shared.llama
    memory = llama_cpp.llama_get_memory(llama.ctx)
    # the options' tokens are gone from the KV cache: it holds the prompt and nothing after
    assert llama.n_tokens == backend.count_tokens(prompt)
    assert llama_cpp.llama_memory_seq_pos_max(memory, 0) == llama.n_tokens - 1
    assert done.text == options[int(np.argmax(logprobs))] and done.generated_tokens == 0
    again, _ = backend.score(prompt, options)
    np.testing.assert_array_equal(again, logprobs)  # the same whatever the cache held


def test_parallel_samples_follow_the_grammar_and_their_seeds(default_model_path):
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


def test_lockstep_batch_gives_each_prompt_its_own_continuation(default_model_path):
    """complete_batch: one lane per caller, the same text as alone, its prefix reused."""
    from llmrnn.lockstep import Generate

    backend = LlamaCppBackend(default_model_path, n_ctx=1024)
    prompts = [
        backend.render([Message("user", f"Name a {thing}. One word.")])
        for thing in ("colour", "fruit", "month")
    ]
    calls = [Generate(p, max_tokens=12, stop=("\n",), repeat_penalty=1.1) for p in prompts]
    alone = [backend.complete(**vars(call)).text for call in calls]
    backend.begin_batch()
    batched = backend.complete_batch(calls, keys=["a", "b", "c"])
    # llama.cpp's numbers depend slightly on how tokens share a batch; on these prompts the
    # greedy texts agree (benchmarks/lockstep.py counts disagreements over whole runs)
    assert [c.text for c in batched] == alone
    assert all(c.cached_tokens == 0 for c in batched)
    longer = [Generate(p + "My answer:", max_tokens=6, stop=("\n",)) for p in prompts]
    longer = [longer[2], longer[0], longer[1]]  # another order: each caller keeps its lane
    again = backend.complete_batch(longer, keys=["c", "a", "b"])
    for call, done, prompt in zip(longer, again, [prompts[2], prompts[0], prompts[1]]):
        tokens = backend.count_tokens(call.prompt)
        # the lane held the caller's previous prompt and answer: that prompt's whole blocks
        # (evaluated on the grid the main context uses too) are reused
        assert done.cached_tokens == (backend.count_tokens(prompt) - 1) // BLOCK * BLOCK > 0
        assert done.cached_tokens + done.prompt_tokens == tokens
    assert [c.text for c in again] == [backend.complete(**vars(c)).text for c in longer]
    # a panel's steps (exact=False): every token the lane holds is reused, generated ones too
    backend.begin_batch(exact=False)
    backend.complete_batch(calls, keys=["a", "b", "c"])
    fast = backend.complete_batch(longer, keys=["c", "a", "b"])
    for done, prompt in zip(fast, [prompts[2], prompts[0], prompts[1]]):
        assert done.cached_tokens >= backend.count_tokens(prompt) - 1


def test_lockstep_scores_equal_scores_alone(default_model_path):
    from llmrnn.lockstep import Score

    backend = LlamaCppBackend(default_model_path, n_ctx=512)
    calls = [
        Score(backend.render([Message("user", f"Is {x} a number? yes or no.")]), ("yes", "no"))
        for x in ("7", "blue", "3.5", "tree")
    ]
    alone = [backend.score(call.prompt, call.options) for call in calls]
    backend.begin_batch()
    batched = backend.score_batch(calls)
    for (lp, done), (lp_b, done_b) in zip(alone, batched):
        # the lanes evaluate each prompt in the main context's batches: the same numbers
        np.testing.assert_array_equal(lp_b, lp)
        assert done_b.text == done.text
    with pytest.raises(ValueError, match="same, non-zero number of options"):
        backend.score_batch([calls[0], Score(calls[1].prompt, ("yes",))])


def test_an_exact_run_decodes_one_lane_at_a_time(default_model_path, monkeypatch):
    """Why an exact run is the main context's to the bit on any model: no decode mixes lanes.
    A token decoded beside other lanes' can come out different in its last bits: with the
    1.5B Q4_K_M model, generating the rule checks of 32 rows side by side changed their words
    and moved a probability by 0.18, and scoring them side by side by 3.7e-3; the embedded
    model happens to give the same bits either way, so the decodes themselves are checked."""
    from llmrnn.backends._llama_private import SideContext
    from llmrnn.lockstep import Generate, Score

    lanes_per_decode: list[int] = []
    decode = SideContext.decode

    def spy(self, entries):
        lanes_per_decode.append(len({seq for _, _, seq, _ in entries}))
        return decode(self, entries)

    monkeypatch.setattr(SideContext, "decode", spy)
    backend = LlamaCppBackend(default_model_path, n_ctx=1024)
    prompts = [
        backend.render([Message("user", f"Describe a {thing} in a sentence.")])
        for thing in ("river", "forest", "city")
    ]
    generate = [Generate(p, max_tokens=8) for p in prompts]
    score = [Score(p, ("yes", "no way")) for p in prompts]
    backend.begin_batch()
    texts = [c.text for c in backend.complete_batch(generate, keys=["a", "b", "c"])]
    backend.score_batch(score, keys=["a", "b", "c"])
    assert lanes_per_decode and max(lanes_per_decode) == 1
    assert texts == [backend.complete(**vars(call)).text for call in generate]
    lanes_per_decode.clear()
    backend.begin_batch(exact=False)  # a panel's steps: the lanes advance together
    backend.complete_batch(generate, keys=["a", "b", "c"])
    assert max(lanes_per_decode) == 3


def test_lockstep_lanes_share_a_common_prefix_instead_of_evaluating_it_again(
    default_model_path, monkeypatch
):
    """Prompts that share a long prefix (the instructions every row of a predict_proba
    shares): evaluated once, copied to the other lanes."""
    from llmrnn.backends import _lockstep
    from llmrnn.lockstep import Generate, Score

    backend = LlamaCppBackend(default_model_path, n_ctx=1024)
    rules = " ".join(f"Rule {i}: answer yes when the number is above {i}." for i in range(12))
    calls = [
        Score(
            backend.render([Message("system", rules), Message("user", f"Is {x} above 5?")]),
            ("yes", "no"),
        )
        for x in ("7", "2", "3.5", "11")
    ]
    alone = [backend.score(call.prompt, call.options) for call in calls]
    backend.begin_batch()
    batched = backend.score_batch(calls)
    shared = backend.count_tokens(backend.render([Message("system", rules)]))
    assert shared > 64  # long enough for a copy to be worth it (_SHARE_MIN)
    assert batched[0][1].cached_tokens == 0  # the first lane evaluates it ...
    for _, done in batched[1:]:  # ... the others copy its whole blocks, evaluate the rest
        assert done.cached_tokens >= shared // BLOCK * BLOCK
        assert done.prompt_tokens < 40 + BLOCK
    # the copied cells are the cells: the same log-probabilities, to the bit, as every lane
    # evaluating its whole prompt (_SHARE_MIN above any prompt turns the copies off)
    monkeypatch.setattr(_lockstep, "_SHARE_MIN", 10_000)
    backend.begin_batch()
    unshared = backend.score_batch(calls)
    assert all(done.cached_tokens == 0 for _, done in unshared)
    for (lp, _), (lp_u, _) in zip(batched, unshared):
        np.testing.assert_array_equal(lp, lp_u)
    # against the main context, which evaluates each prompt in the same batches: the same
    # log-probabilities (until the thirteenth session the lanes batched differently, and one
    # of these prompts differed by 0.2 on both options)
    for (lp, done), (lp_b, done_b) in zip(alone, batched):
        np.testing.assert_array_equal(lp_b, lp)
        assert done_b.text == done.text
    # generation on copied cells: the same greedy text as alone
    gens = [Generate(c.prompt + "The answer is", max_tokens=6, stop=("\n",)) for c in calls]
    texts = [backend.complete(**vars(g)).text for g in gens]
    monkeypatch.undo()
    backend.begin_batch()
    done = backend.complete_batch(gens)
    assert [d.text for d in done] == texts
    assert all(d.cached_tokens >= shared // BLOCK * BLOCK for d in done[1:])


def test_lanes_grow_between_runs_so_a_run_keeps_what_its_lanes_hold(default_model_path):
    """A recurrent step's calls grow a little with its record. Lanes filled to within a
    quarter of their cells grow when the next run begins (empty anyway), not in the middle of
    a run, where a new context loses what the lanes hold: until the fourteenth session a
    2-series panel re-evaluated 1485 tokens a series at its seventh step instead of 867."""
    from llmrnn.lockstep import Generate

    backend = LlamaCppBackend(default_model_path, n_ctx=2048)
    shared = backend._shared
    if shared.lockstep is not None:  # lanes an earlier test made: start from none
        shared.lockstep.side.close()
        shared.lockstep = None

    def sized(n: int) -> str:  # a prompt of at most n tokens, near it
        words = n
        while True:
            prompt = backend.render([Message("user", "rain " * words)])
            if backend.count_tokens(prompt) <= n:
                return prompt
            words -= 1

    def run(*prompts: str) -> list:
        backend.begin_batch(exact=False)
        calls = [Generate(p, max_tokens=4) for p in prompts]
        return backend.complete_batch(calls, keys=["a", "b"])

    run(sized(170), sized(160))  # the lanes are made for calls of about 175 tokens
    assert shared.lockstep.cells == 256
    run(sized(240), sized(230))  # fits, but fills the lanes to within a quarter
    assert shared.lockstep.cells == 256
    first = [sized(240), sized(230)]
    done = run(*first)  # the run begins on larger, empty lanes
    assert shared.lockstep.cells == 512
    # the same run goes on past the old size: each lane keeps what it holds
    longer = [p + d.text + " And then? " + "snow " * 60 for p, d in zip(first, done)]
    assert min(backend.count_tokens(p) for p in longer) > 256
    more = backend.complete_batch([Generate(p, max_tokens=4) for p in longer], keys=["a", "b"])
    assert shared.lockstep.cells == 512
    for prompt, d in zip(first, more):
        assert d.cached_tokens >= backend.count_tokens(prompt) - 1


def test_lanes_check_the_grammar_last_and_pick_the_same_tokens(default_model_path, monkeypatch):
    """Greedy under a grammar: the best token is judged alone, the vocabulary only if refused."""
    from llmrnn.backends import _llama_private as private
    from llmrnn.lockstep import Generate

    backend = LlamaCppBackend(default_model_path, n_ctx=1024)
    grammar = numbers_grammar(2, 2, 1, signed=True)
    asks = ("the next two values after 1, 2, 3", "two temperatures in July", "two small losses")
    calls = [
        Generate(
            backend.render([Message("user", f"Give {ask}, as signed numbers.")]),
            max_tokens=16,
            grammar=grammar,
            repeat_penalty=1.1,
        )
        for ask in asks
    ]
    made = []
    original = private._GreedyGrammarSampler._apply

    def counted(self, sampler, which):
        made.append((sampler is self._grammar, which))
        return original(self, sampler, which)

    monkeypatch.setattr(private._GreedyGrammarSampler, "_apply", counted)
    backend.begin_batch()
    fast = [c.text for c in backend.complete_batch(calls)]
    # the grammar refused some best tokens (more single judgements than tokens sampled), and
    # judged the whole vocabulary seldom if ever
    judged_alone, over_vocabulary = made.count((True, 1)), made.count((True, 0))
    assert judged_alone > made.count((False, 0)) > over_vocabulary
    pattern = re.compile(r"[-+]?\d{1,2}\.\d, [-+]?\d{1,2}\.\d")
    assert all(pattern.fullmatch(t) for t in fast), fast
    # the full chain (penalties, the grammar over the vocabulary, greedy): the same texts
    monkeypatch.setattr(private, "_GreedyGrammarSampler", None)
    sampler = private.SideContext.sampler
    monkeypatch.setattr(
        private.SideContext,
        "sampler",
        lambda self, *a, grammar_text=None, **k: sampler(self, *a, **k),
    )
    backend.begin_batch()
    assert [c.text for c in backend.complete_batch(calls)] == fast
    assert [backend.complete(**vars(c)).text for c in calls] == fast  # and alone
