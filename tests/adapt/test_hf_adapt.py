"""The transformers engine as the δ reference (spec §5.1): the first token uses the updated δ, sessions are
isolated, a reset restores the fresh state bitwise."""

from __future__ import annotations

import asyncio

import torch

from rltrain.adapt.vector import AdaptConfig, AdaptState, adapt_step
from rltrain.engines.base import Sampling
from rltrain.engines.hf_engine import HFEngine

PROMPT = list(range(200, 240))
OTHER = list(range(300, 340))  # same length: no padding, so batched rows compute as alone
GREEDY = Sampling(max_new_tokens=4, temperature=0.0, stop_token_ids=(0,))


def test_first_token_is_sampled_with_the_updated_delta(tiny_model):
    """Trap (b): the prefill's own forward samples token 1, so its logits must already be W_U(h + δ_updated)."""
    engine = HFEngine(str(tiny_model), dtype="float32", seed=0, adapt=AdaptConfig(lr=0.5))

    async def go():
        await engine.start()
        base = await engine.generate(PROMPT, GREEDY)
        adapted = await engine.generate(PROMPT, GREEDY, session="s")
        return base, adapted, engine.sessions.peek("s")

    base, adapted, state = asyncio.run(go())
    model = engine.model
    head = model.get_output_embeddings().weight.detach()
    ids = torch.tensor(PROMPT)
    with torch.no_grad():
        hidden = model.model(input_ids=ids[None]).last_hidden_state[0]
    manual = AdaptState.zeros(hidden.shape[1])
    adapt_step(manual, hidden[:-1], head, ids[1:], None, engine.adapt)
    torch.testing.assert_close(state.delta, manual.delta)
    logp = torch.log_softmax((hidden[-1] + manual.delta) @ head.T, -1)
    assert adapted.token_ids[0] == int(logp.argmax())
    assert abs(adapted.logprobs[0] - float(logp.max())) < 1e-4
    base_logp = torch.log_softmax(hidden[-1] @ head.T, -1)
    assert abs(base.logprobs[0] - float(base_logp.max())) < 1e-4
    assert abs(adapted.logprobs[0] - base.logprobs[0]) > 1e-3  # δ changed the distribution at lr 0.5
    assert state.prefills == 1 and state.t == 1


def test_sessions_are_isolated_and_reset_restores_the_fresh_state(tiny_model):
    engine = HFEngine(str(tiny_model), dtype="float32", seed=0, adapt=AdaptConfig(lr=0.5))

    async def go():
        await engine.start()
        alone = await engine.generate(OTHER, GREEDY)
        first = await engine.generate(PROMPT, GREEDY, session="b")
        # A (no session) batched with B adapting (second prefill of B): A must equal A alone.
        together = await asyncio.gather(engine.generate(OTHER, GREEDY), engine.generate(PROMPT, GREEDY, session="b"))
        second_state = engine.sessions.peek("b").summary()
        assert await engine.reset_session("b")
        again = await engine.generate(PROMPT, GREEDY, session="b")
        return alone, first, together, second_state, again

    alone, first, (a_batched, b_second), second_state, again = asyncio.run(go())
    assert a_batched.token_ids == alone.token_ids and a_batched.logprobs == alone.logprobs
    assert second_state["prefills"] == 2 and second_state["adam_steps"] == 2
    assert again.token_ids == first.token_ids and again.logprobs == first.logprobs  # bitwise: fresh δ and Adam


def test_zero_steps_leave_base_logits_bitwise(tiny_model):
    engine = HFEngine(str(tiny_model), dtype="float32", seed=0, adapt=AdaptConfig(steps=0))

    async def go():
        await engine.start()
        return await engine.generate(PROMPT, GREEDY), await engine.generate(PROMPT, GREEDY, session="z")

    base, zero = asyncio.run(go())
    assert base.logprobs == zero.logprobs and base.token_ids == zero.token_ids
