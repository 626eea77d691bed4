"""The vLLM hook's batch-layout logic (spec §5.1 traps (a), (b)) on hand-built runner state: which rows belong to
which request, chunked prefill buffering, a prefix-cached prompt, untouched rows of other requests. Logic only; the
real engine is exercised in test_vllm_adapt.py."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from rltrain.adapt.sessions import SessionStore
from rltrain.adapt.vector import AdaptConfig, AdaptState, adapt_step
from rltrain.engines.vllm_worker import SESSION_KEY, AdaptExtension

D, V = 8, 50
torch.manual_seed(0)
HEAD = torch.randn(V, D)
PROMPT = list(range(10, 20))  # 10 tokens
FULL_HIDDEN = torch.randn(len(PROMPT), D)


def _extension() -> AdaptExtension:
    ext = AdaptExtension()
    ext._rlt_cfg, ext._rlt_head, ext._rlt_markers = AdaptConfig(lr=0.3, steps=2), HEAD, None
    ext._rlt_sessions, ext._rlt_chunks = SessionStore(D), {}
    return ext


def _runner(layout, computed, prompts, sessions):
    """layout: tokens scheduled per request this forward."""
    ids = list(prompts)
    return SimpleNamespace(
        input_batch=SimpleNamespace(req_ids=ids, num_reqs=len(ids), num_computed_tokens_cpu=np.array(computed)),
        query_start_loc=SimpleNamespace(np=np.concatenate([[0], np.cumsum(layout)])),
        requests={r: SimpleNamespace(prompt_token_ids=prompts[r],
                                     sampling_params=SimpleNamespace(extra_args={SESSION_KEY: s} if s else None))
                  for r, s in zip(ids, sessions)})


def test_chunked_prefill_buffers_then_adapts_before_the_sampling_forward():
    ext = _extension()
    other = torch.randn(1, D)  # request "b": one decode token in every forward
    prompts = {"a": PROMPT, "b": [1, 2, 3]}
    outs = []
    for start, size in ((0, 4), (4, 4), (8, 2)):
        hidden = torch.cat([FULL_HIDDEN[start:start + size], other])
        runner = _runner([size, 1], [start, 5], prompts, ["s", None])
        outs.append((hidden.clone(), ext._rlt_apply(runner, hidden)))
    expected = AdaptState.zeros(D)
    adapt_step(expected, FULL_HIDDEN[:-1], HEAD, torch.tensor(PROMPT[1:]), None, ext._rlt_cfg)
    state = ext._rlt_sessions.peek("s")
    torch.testing.assert_close(state.delta, expected.delta)
    assert state.prefills == 1 and state.t == 2 and ext._rlt_chunks == {}
    for before, after in outs:
        assert torch.equal(after[-1], before[-1])  # request b's row is never touched
    before, after = outs[-1]
    torch.testing.assert_close(after[:2], before[:2] + expected.delta)  # the sampling forward already has δ (trap b)
    # A decode step of "a" afterwards: + δ, no new update.
    hidden = torch.randn(1, D)
    out = ext._rlt_apply(_runner([1], [10], {"a": PROMPT}, ["s"]), hidden.clone())
    torch.testing.assert_close(out, hidden + expected.delta)
    assert ext._rlt_sessions.peek("s").prefills == 1


def test_a_prefix_cached_prompt_is_not_adapted_on_a_partial_prompt():
    ext = _extension()
    hidden = FULL_HIDDEN[6:].clone()  # tokens 0..5 came from the prefix cache: no hidden states for them
    out = ext._rlt_apply(_runner([4], [6], {"a": PROMPT}, ["c"]), hidden.clone())
    state = ext._rlt_sessions.peek("c")
    assert state.cached_prefills == 1 and state.prefills == 0 and float(state.delta.abs().sum()) == 0.0
    assert torch.equal(out, hidden)


def test_no_session_in_the_batch_returns_the_same_tensor():
    ext = _extension()
    hidden = torch.randn(3, D)
    assert ext._rlt_apply(_runner([3], [0], {"x": [1, 2, 3]}, [None]), hidden) is hidden
