"""The agent loop: one episode is (generate -> environment step) until done, with exact token accounting.

A single-turn task is the one-step case of the same loop. Text is tokenized once, through the chat template:
the opening messages become `prompt_ids`; each later environment message becomes the template's delta
between the conversation before and after it, appended with loss mask 0. The policy's own tokens are the
engine's ids, appended verbatim with loss mask 1.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from rltrain.engines.base import RolloutEngine, Sampling
from rltrain.envs.base import TextEnv
from rltrain.protocol import TOOL_SCHEMA, parse_message
from rltrain.types import Task, Trajectory
from rltrain.users import UserSim

logger = logging.getLogger(__name__)


class ChatRenderer:
    """Chat template <-> token ids, for one tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.end_of_turn_id: int = tokenizer.eos_token_id

    def _text(self, messages: list[dict[str, str]], generation_prompt: bool, tools: list[dict] | None = None) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False, tools=tools)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, messages: list[dict[str, str]], tools: list[dict] | None = None) -> list[int]:
        """The opening messages (and the tool schemas, where the template renders them), ending with the
        assistant generation prompt."""
        return self.encode(self._text(messages, generation_prompt=True, tools=tools))

    def continuation_ids(self, history: list[dict[str, str]], message: dict[str, str]) -> list[int]:
        """Tokens that follow the last assistant turn (which ended with end-of-turn) for a new message, up to
        and including the next assistant generation prompt."""
        end = self.tokenizer.eos_token
        before = self._text(history, generation_prompt=False)
        # The policy's turn ended with its own end-of-turn token; whatever the template puts after it (ChatML: a
        # newline) belongs to the continuation.
        before = before[: before.rfind(end) + len(end)] if end in before else before
        after = self._text([*history, message], generation_prompt=True)
        if not after.startswith(before):
            raise ValueError("the chat template rewrites earlier turns; multi-turn token accounting needs a prefix-stable template")
        return self.encode(after[len(before):])

    def drift(self, traj: Trajectory, tools: list[dict] | None = None) -> str | None:
        """Where the trajectory's ids part from one tokenization of its whole conversation; None when they agree.

        "policy:<i>": the first difference is in a sampled turn: the engine sampled an id sequence that the
        tokenizer spells differently (or a special token the text drops). Harmless for training, which uses
        the sampled ids. "context:<i>": the first difference is in the prompt or an environment turn, tokens
        this loop built: the policy saw a context that a re-rendered conversation would not give it.
        """
        ours = traj.prompt_ids + traj.response_ids
        full = self.encode(self._text(traj.messages, generation_prompt=False, tools=tools))
        if full[: len(ours)] == ours:
            return None
        i = next((k for k, (a, b) in enumerate(zip(ours, full)) if a != b), min(len(ours), len(full)))
        j = i - len(traj.prompt_ids)
        return f"{'policy' if 0 <= j < len(traj.loss_mask) and traj.loss_mask[j] else 'context'}:{i}"

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


async def run_episode(
    engine: RolloutEngine,
    env: TextEnv,
    renderer: ChatRenderer,
    task: Task,
    *,
    env_name: str,
    group_id: int,
    sampling: Sampling,
    max_turns: int,
    max_model_len: int,
    echo_reward: bool = False,
    plain_text_as_action: bool = False,
    user: UserSim | None = None,
    sample: int = 0,
) -> Trajectory:
    """Play one episode of `env` on `task`; environment errors mark the trajectory failed, never reward 0.

    `user` is the simulated user the environment may call; `sample` numbers the episodes of one task, so that
    each episode's user calls are keyed `<task_id>#<sample>/<call>` (seeds, replay, records).
    """
    env.bind_user(user, f"{task.task_id}#{sample}")
    messages, _ = env.reset(task)
    env_name = getattr(env, "active_name", "") or env_name  # a mix of gyms: the gym that plays this task
    tools = [TOOL_SCHEMA] if env.protocol == "interact" else None
    traj = Trajectory(task_id=task.task_id, group_id=group_id, env=env_name, prompt_ids=renderer.prompt_ids(messages, tools),
                      messages=list(messages), task_data=dict(task.data), weight_version=engine.version)
    for turn in range(max_turns):
        room = max_model_len - len(traj.prompt_ids) - len(traj.response_ids)
        if room <= 0:
            traj.finish_reason = "max_model_len"
            if turn == 0:  # the task itself does not fit: a data/config problem, not a wrong answer
                traj.failure = f"prompt of {len(traj.prompt_ids)} tokens leaves no room under model.max_model_len={max_model_len}"
            break
        turn_sampling = dataclasses.replace(sampling, max_new_tokens=min(sampling.max_new_tokens, room))
        gen = await engine.generate(traj.prompt_ids + traj.response_ids, turn_sampling)
        traj.append(gen.token_ids, policy=True, logprobs=gen.logprobs)
        traj.messages.append({"role": "assistant", "content": renderer.decode(gen.token_ids)})
        traj.finish_reason = gen.finish_reason
        action = traj.messages[-1]["content"]
        if env.protocol == "interact":
            parsed = parse_message(action)
            if parsed.outcome == "no_call" and plain_text_as_action:
                action = f"[action] {action.strip()}"
            elif not parsed.ok:  # the policy's mistake: the episode ends, counted, and is scored as it stands
                traj.format_error, traj.finish_reason = f"{parsed.outcome}: {parsed.detail}", "format_error"
                break
            else:
                traj.tool_calls += 1
                action = parsed.env_action()
        try:
            result = await env.astep(action)
        except Exception as err:  # an environment crash is an infrastructure failure, not a bad answer
            traj.failure = f"environment {env_name} raised {type(err).__name__}: {err}"
            logger.warning("episode %s failed: %s", task.task_id, traj.failure)
            break
        traj.turn_rewards.append(float(result.reward))
        if result.info.get("judge_error"):
            traj.judge_errors.append(str(result.info["judge_error"]))
        if result.terminated or result.truncated or result.observation is None:
            break
        if gen.finish_reason != "stop":
            traj.finish_reason = "length"  # a cut-off turn cannot be continued faithfully
            break
        text = f"{result.observation}\nReward: {round(result.reward, 4):g}" if echo_reward else result.observation
        observation = {"role": "tool" if env.protocol == "interact" else "user", "content": text}
        traj.append(renderer.continuation_ids(traj.messages, observation), policy=False)
        traj.messages.append(observation)
        if turn == max_turns - 1:
            traj.finish_reason = "max_turns"
    traj.user_calls = list(env.user_calls)
    traj.token_drift = renderer.drift(traj, tools)
    return traj
