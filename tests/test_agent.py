"""The agent loop's token accounting (ARCHITECTURE.md "Trajectory contract"), on a scripted engine.

The engine here is a stand-in that returns fixed ids: this tests the loop's bookkeeping, which has no
engine logic in it. Real engines are covered in tests/integration.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rltrain.agent import ChatRenderer, run_episode
from rltrain.engines.base import RolloutEngine, Sampling
from rltrain.envs.base import StepResult, TextEnv
from rltrain.types import Generation, Task


class ScriptedEngine(RolloutEngine):
    def __init__(self, renderer: ChatRenderer, replies: list[str]) -> None:
        self.renderer, self.replies, self.prompts = renderer, list(replies), []

    async def start(self) -> None: ...

    async def generate(self, prompt_ids: list[int], sampling: Sampling) -> Generation:
        self.prompts.append(list(prompt_ids))
        ids = self.renderer.encode(self.replies.pop(0)) + [self.renderer.end_of_turn_id]
        ids = ids[: sampling.max_new_tokens]
        return Generation(ids, [-0.5] * len(ids), "stop" if ids[-1] == self.renderer.end_of_turn_id else "length")

    async def load_weights(self, folder: str, version: int) -> None: ...


class Guess(TextEnv):
    """Two-turn toy: says 'higher' until the answer is 5; reward 1 on success. Crashes on 'boom'."""

    def tasks(self, split, count, seed):
        return [Task("guess", {})]

    def reset(self, task):
        return [{"role": "user", "content": "Guess my number."}], {}

    def step(self, action):
        if action == "boom":
            raise RuntimeError("simulated environment crash")
        if action.strip() == "5":
            return StepResult(None, reward=1.0, terminated=True)
        return StepResult("higher", reward=0.0)


@pytest.fixture(scope="module")
def renderer(embedded_model: Path) -> ChatRenderer:
    from transformers import AutoTokenizer

    return ChatRenderer(AutoTokenizer.from_pretrained(embedded_model))


def play(renderer: ChatRenderer, replies: list[str], max_turns: int = 4, max_new_tokens: int = 16, max_model_len: int = 512):
    engine = ScriptedEngine(renderer, replies)
    traj = asyncio.run(run_episode(engine, Guess(), renderer, Task("guess", {}), env_name="guess", group_id=3,
                                   sampling=Sampling(max_new_tokens), max_turns=max_turns, max_model_len=max_model_len))
    return traj, engine


def test_multi_turn_tokens_equal_one_tokenization_of_the_conversation(renderer: ChatRenderer) -> None:
    traj, engine = play(renderer, ["3", "5"])
    assert traj.turn_rewards == [0.0, 1.0] and not traj.failed and traj.group_id == 3
    full = renderer.encode(renderer.tokenizer.apply_chat_template(traj.messages, tokenize=False))
    # the conversation re-rendered as a whole is exactly prompt + response (plus the template's trailing newline)
    assert full[: len(traj.prompt_ids) + len(traj.response_ids)] == traj.prompt_ids + traj.response_ids
    # the second generation saw exactly the tokens accumulated so far
    assert engine.prompts[1] == traj.prompt_ids + traj.response_ids[: traj.turn_boundaries[1]]


def test_loss_mask_covers_policy_tokens_only(renderer: ChatRenderer) -> None:
    traj, _ = play(renderer, ["3", "5"])
    first, second = traj.turn_boundaries
    assert first == 0
    gen1 = renderer.encode("3") + [renderer.end_of_turn_id]
    assert traj.loss_mask[:second] == [1] * len(gen1) + [0] * (second - len(gen1))
    assert all(traj.loss_mask[second:]) and traj.rollout_logprobs[len(gen1):second] == [0.0] * (second - len(gen1))
    observation = renderer.decode(traj.response_ids[len(gen1):second])
    assert "higher" in observation and "assistant" in observation


def test_max_turns_and_length_limits(renderer: ChatRenderer) -> None:
    traj, _ = play(renderer, ["1", "2", "3"], max_turns=2)
    assert len(traj.turn_boundaries) == 2 and traj.finish_reason == "max_turns"
    traj, _ = play(renderer, ["a long answer that will not fit"], max_new_tokens=3)
    assert traj.finish_reason == "length" and len(traj.response_ids) == 3


def test_environment_crash_is_a_failure_not_a_zero(renderer: ChatRenderer) -> None:
    traj, _ = play(renderer, ["boom"])
    assert traj.failed and "simulated environment crash" in traj.failure and traj.reward is None


def test_trajectory_round_trips_through_jsonl(renderer: ChatRenderer) -> None:
    from rltrain.types import Trajectory

    traj, _ = play(renderer, ["3", "5"])
    assert Trajectory.from_json(traj.to_json()) == traj


def test_interact_protocol_counts_calls_and_ends_on_a_malformed_call(renderer: ChatRenderer) -> None:
    from rltrain.envs import make_env

    env = make_env("function_gym", {})
    task = env.tasks("test", 1, seed=0)[0]
    engine = ScriptedEngine(renderer, ["[search] test", '<tool_call>{"name": "interact_with_env", "arguments": {"choice": </tool_call>'])
    traj = asyncio.run(run_episode(engine, env, renderer, task, env_name="function_gym", group_id=0, sampling=Sampling(64),
                                   max_turns=5, max_model_len=1024, echo_reward=True))
    assert traj.tool_calls == 1 and traj.format_error.startswith("IFE") and traj.finish_reason == "format_error"
    assert not traj.failed  # a policy mistake, scored like any other episode
    assert traj.messages[2] == {"role": "tool", "content": f"The test case is: {','.join(map(str, task.data['test']))}\nReward: 0"}
    assert len(traj.turn_boundaries) == 2 and traj.turn_rewards == [0.0]


def test_plain_text_as_action_talks_to_the_user_instead_of_ending(renderer: ChatRenderer) -> None:
    """env.plain_text_as_action: an untagged message is `[action] <message>`; a broken call still ends the episode."""
    from rltrain.envs import make_env

    env = make_env("function_gym", {})
    task = env.tasks("test", 1, seed=0)[0]
    replies = ["What is f?", '<tool_call>{"name": "interact_with_env", "arguments": {"choice": </tool_call>']
    traj = asyncio.run(run_episode(ScriptedEngine(renderer, replies), env, renderer, task, env_name="function_gym", group_id=0,
                                   sampling=Sampling(64), max_turns=5, max_model_len=1024, plain_text_as_action=True))
    assert traj.messages[2]["content"] == "Give exactly four numbers: [action] a,b,c,d"  # FunctionGym saw "[action] What is f?"
    assert traj.tool_calls == 0 and traj.format_error.startswith("IFE") and traj.turn_rewards == [0.0]


def test_token_drift_is_located_and_classified(renderer: ChatRenderer) -> None:
    """The prefix check of the trajectory's ids against one tokenization of its conversation (issue 3, item 5)."""
    traj, _ = play(renderer, ["3", "5"])
    assert traj.token_drift is None  # the loop's accounting agrees with a re-tokenization
    env_token = traj.loss_mask.index(0)  # the first environment-turn token the loop built
    traj.response_ids[env_token] = renderer.encode(" banana")[0]
    assert traj.token_drift is None and renderer.drift(traj) == f"context:{len(traj.prompt_ids) + env_token}"
    traj.token_drift = renderer.drift(traj)
    assert traj.context_drift  # kept out of training

    class Spelled(ScriptedEngine):  # samples "hello" letter by letter: ids the tokenizer would merge
        async def generate(self, prompt_ids, sampling):
            ids = [i for ch in "hello" for i in self.renderer.encode(ch)] + [self.renderer.end_of_turn_id]
            return Generation(ids, [-0.5] * len(ids), "stop")

    engine = Spelled(renderer, [])
    spelled = asyncio.run(run_episode(engine, Guess(), renderer, Task("guess", {}), env_name="guess", group_id=0,
                                      sampling=Sampling(16), max_turns=1, max_model_len=512))
    assert spelled.token_drift == f"policy:{len(spelled.prompt_ids)}" and not spelled.context_drift
