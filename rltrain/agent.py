"""The agent loop: one episode is (generate -> tool calls or environment step) until done, with exact token accounting.

A single-turn task is the one-step case of the same loop. Text is tokenized once, through the chat template:
the opening messages (and the offered tools' schemas, `tools=`) become `prompt_ids`; each later environment
message becomes the template's delta between the conversation before and after it, appended with loss mask 0.
The policy's own tokens are the engine's ids, appended verbatim with loss mask 1.

Tools (docs/tools.md): the episode offers `env.tools()` plus the configured extra tools. Each assistant message
is parsed (`rltrain.tools.parsers`); every call in it runs (`rltrain.tools.execution`), and all its results are
appended as ONE block of tokens (Qwen-style templates regroup consecutive tool messages, so appending them one by
one would rewrite earlier tokens). A message without a call goes to `env.astep` as text (for UserRL gyms: a
`[verb] ...` line, or `[action] <text>` with `plain_text_as_action`). Every call leaves a record in
`Trajectory.tool_records`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from rltrain.config.env import EnvConfig, step_timeout
from rltrain.config.users import UsersConfig
from rltrain.engines.base import RolloutEngine, Sampling
from rltrain.envs.base import StepResult, TextEnv
from rltrain.protocol import parse_tagged
from rltrain.tools.base import Tool
from rltrain.tools.execution import cap_tokens, run_calls, turn_result
from rltrain.tools.loading import load_tools
from rltrain.tools.parsers import ParsedMessage, check_parser, default_parser, parse_calls
from rltrain.tools.templates import tool_template
from rltrain.types import Task, Trajectory
from rltrain.users import UserSim

logger = logging.getLogger(__name__)


class ChatRenderer:
    """Chat template <-> token ids, for one tokenizer.

    Tool episodes render with the model's own template where it shows `tools=`, else with rltrain's canonical
    tool-capable ChatML (`rltrain.tools.templates`); episodes without tools use the model's own template.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.end_of_turn_id: int = tokenizer.eos_token_id
        self.tool_template: str | None = tool_template(tokenizer)
        """None: the model's own template renders tools; else the canonical template's source."""
        self.default_parser = default_parser(getattr(tokenizer, "chat_template", None))
        """The tool-call parser `env.tool_parser: auto` means for this model."""

    def _text(self, messages: list[dict[str, str]], generation_prompt: bool, tools: list[dict] | None = None) -> str:
        template = self.tool_template if tools else None
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False,
                                                  tools=tools or None, chat_template=template)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, messages: list[dict[str, str]], tools: list[dict] | None = None) -> list[int]:
        """The opening messages (and the tool schemas, where the template renders them), ending with the
        assistant generation prompt."""
        return self.encode(self._text(messages, generation_prompt=True, tools=tools))

    def continuation_ids(self, history: list[dict[str, str]], messages: dict[str, str] | Sequence[dict[str, str]],
                         tools: list[dict] | None = None) -> list[int]:
        """Tokens that follow the last assistant turn (which ended with end-of-turn) for the new messages, up to
        and including the next assistant generation prompt. All results of one assistant message must come in ONE
        call: templates such as Qwen's group consecutive tool messages into one turn."""
        new = [messages] if isinstance(messages, dict) else list(messages)
        end = self.tokenizer.eos_token
        before = self._text(history, generation_prompt=False, tools=tools)
        # The policy's turn ended with its own end-of-turn token; whatever the template puts after it (ChatML: a
        # newline) belongs to the continuation.
        before = before[: before.rfind(end) + len(end)] if end in before else before
        after = self._text([*history, *new], generation_prompt=True, tools=tools)
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



@dataclasses.dataclass(frozen=True)
class ToolSettings:
    """How an episode's tools are parsed, bounded and extended (from `EnvConfig`).

    Attributes:
        parser: a registered tool-call parser (`rltrain.tools.parsers.PARSERS`) or "auto" (the renderer's default).
        extra_tools: tools offered besides the env's own (`env.tools`).
        max_response_tokens: longest tool result, in tokens (`env.max_tool_response_tokens`).
        step_timeout_s: bound on one env step and on tools with `timeout_s=None` (`env.step_timeout_s`).
    """

    parser: str = "auto"
    extra_tools: tuple[Tool, ...] = ()
    max_response_tokens: int = 2048
    step_timeout_s: float = 60.0


def tool_settings(env_cfg: EnvConfig, env: TextEnv, users: UsersConfig | None = None) -> ToolSettings:
    """The `ToolSettings` an `EnvConfig` asks for (checks the parser, imports `env.tools`, derives the step bound from
    `users`); every caller of `run_episode` that has a config should build them here. Raises ConfigError."""
    check_parser(env_cfg.tool_parser)
    return ToolSettings(parser=env_cfg.tool_parser, extra_tools=tuple(load_tools(env_cfg.tools)),
                        max_response_tokens=env_cfg.max_tool_response_tokens,
                        step_timeout_s=step_timeout(env_cfg, users, env.needs_user))


class EpisodeEnded(Exception):
    """Internal: the current turn ended the episode."""


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
    tools: ToolSettings | None = None,
) -> Trajectory:
    """Play one episode of `env` on `task`; environment errors mark the trajectory failed, never reward 0.

    `user` is the simulated user the environment may call; `sample` numbers the episodes of one task, so that
    each episode's user calls are keyed `<task_id>#<sample>/<call>` (seeds, replay, records).
    """
    settings = tools or ToolSettings()
    env.bind_user(user, f"{task.task_id}#{sample}")
    messages, _ = env.reset(task)
    env_name = getattr(env, "active_name", "") or env_name  # a mix of gyms: the gym that plays this task
    offered = {tool.name: tool for tool in [*env.tools(), *settings.extra_tools]}
    schemas = [tool.schema() for tool in offered.values()] or None
    traj = Trajectory(task_id=task.task_id, group_id=group_id, env=env_name, prompt_ids=renderer.prompt_ids(messages, schemas),
                      messages=list(messages), task_data=dict(task.data), weight_version=engine.version)
    episode = _Episode(env, env_name, renderer, traj, offered, schemas, settings, echo_reward, plain_text_as_action)
    created: list[Tool] = []
    try:
        for tool in offered.values():
            await tool.create(env)
            created.append(tool)
    except Exception as err:  # a tool's create hook failed: infrastructure, not the policy
        traj.failure = f"tool {tool.name!r} create() for {env_name} raised {type(err).__name__}: {err}"
    else:
        await episode.play(engine, sampling, max_turns, max_model_len)
    finally:
        for tool in created:
            try:
                await tool.release(env)
            except Exception as err:  # noqa: BLE001 - a release failure must not hide the episode's outcome
                logger.warning("tool %s release failed: %s", tool.name, err)
    traj.user_calls = list(env.user_calls)
    traj.token_drift = renderer.drift(traj, schemas)
    return traj


class _Episode:
    """The turn loop of one episode (state shared by its helpers)."""

    def __init__(self, env: TextEnv, env_name: str, renderer: ChatRenderer, traj: Trajectory, offered: dict[str, Tool],
                 schemas: list[dict] | None, settings: ToolSettings, echo_reward: bool, plain_text_as_action: bool) -> None:
        self.env, self.env_name, self.renderer, self.traj = env, env_name, renderer, traj
        self.offered, self.schemas, self.settings = offered, schemas, settings
        self.echo_reward, self.plain_text_as_action = echo_reward, plain_text_as_action
        self.parser = renderer.default_parser if settings.parser == "auto" else settings.parser
        self.max_steps: int | None = getattr(env, "max_steps", None)
        self.steps = 0

    async def play(self, engine: RolloutEngine, sampling: Sampling, max_turns: int, max_model_len: int) -> None:
        traj = self.traj
        for turn in range(max_turns):
            room = max_model_len - len(traj.prompt_ids) - len(traj.response_ids)
            if room <= 0:
                traj.finish_reason = "max_model_len"
                if turn == 0:  # the task itself does not fit: a data/config problem, not a wrong answer
                    traj.failure = f"prompt of {len(traj.prompt_ids)} tokens leaves no room under model.max_model_len={max_model_len}"
                return
            turn_sampling = dataclasses.replace(sampling, max_new_tokens=min(sampling.max_new_tokens, room))
            gen = await engine.generate(traj.prompt_ids + traj.response_ids, turn_sampling)
            traj.append(gen.token_ids, policy=True, logprobs=gen.logprobs)
            text = self.renderer.decode(gen.token_ids)
            traj.messages.append({"role": "assistant", "content": text})
            traj.finish_reason = gen.finish_reason
            try:
                replies = await self.turn(turn, text)
            except EpisodeEnded:
                return
            if gen.finish_reason != "stop":
                traj.finish_reason = "length"  # a cut-off turn cannot be continued faithfully
                return
            traj.append(self.renderer.continuation_ids(traj.messages, replies, self.schemas), policy=False)
            traj.messages.extend(replies)
            if turn == max_turns - 1:
                traj.finish_reason = "max_turns"

    async def turn(self, turn: int, text: str) -> list[dict[str, str]]:
        """Act on one assistant message; return the messages that answer it (one block). Raises EpisodeEnded."""
        parsed = parse_calls(text, self.offered, self.parser, turn) if self.offered else ParsedMessage(text=text)
        ife = [{"turn": turn, "index": len(parsed.calls) + k, "call_id": "", "name": None, "arguments": None,
                "format": e.format, "offered": False, "error": "IFE", "parse_error": e.detail, "reward": None, "result": None,
                "latency_s": 0.0, "raw": e.raw} for k, e in enumerate(parsed.errors)]
        if parsed.calls:
            return await self.calls(turn, parsed, ife)
        self.traj.tool_records.extend(ife)
        if parsed.errors:
            detail = "; ".join(e.detail for e in parsed.errors)
            if self.env.malformed_call == "end":  # the policy's mistake: counted, scored as it stands (spec §1.3)
                self.traj.format_error, self.traj.finish_reason = f"IFE: {detail}", "format_error"
                raise EpisodeEnded
            self.steps += 1
            self.traj.turn_rewards.append(0.0)
            self.end_if_step_limit()
            return [{"role": "tool", "content": f"Error: the tool call could not be read: {detail}."}]
        return [await self.plain_text(turn, text)]

    async def calls(self, turn: int, parsed: ParsedMessage, ife: list[dict[str, Any]]) -> list[dict[str, str]]:
        traj = self.traj
        steps_left = None if self.max_steps is None else max(0, self.max_steps - self.steps)
        outcomes = await run_calls(parsed.calls, parsed.formats, self.offered, self.env, unoffered=self.env.unoffered_tool,
                                   step_timeout_s=self.settings.step_timeout_s, steps_left=steps_left)
        traj.tool_records.extend([o.record(turn, i) for i, o in enumerate(outcomes)] + ife)
        ran = [o for o in outcomes if o.result is not None]
        traj.tool_calls += sum(o.offered for o in ran)  # calls that reached a tool
        self.steps += len(ran)
        for o in ran:
            if o.result is not None and o.result.info.get("judge_error"):
                traj.judge_errors.append(str(o.result.info["judge_error"]))
        failed = next((o for o in outcomes if o.failure), None)
        if failed is not None:  # the infrastructure's fault: the episode is failed, never scored 0
            traj.failure = f"environment {self.env_name}: {failed.failure}"
            logger.warning("episode %s failed: %s", traj.task_id, traj.failure)
            raise EpisodeEnded
        last = turn_result(outcomes)
        traj.turn_rewards.append(float(last.reward) if last is not None else 0.0)
        ended = next((o for o in outcomes if o.ends_episode), None)
        if ended is not None:
            traj.format_error = f"unknown_tool: {ended.call.name!r} is not offered ({', '.join(sorted(self.offered))})"
            traj.finish_reason = ended.ends_episode or "unoffered_tool"
            raise EpisodeEnded
        if last is not None and (last.terminated or last.truncated):
            raise EpisodeEnded
        self.end_if_step_limit()
        replies = [{"role": "tool", "content": self.observation(o.result.observation, o.result.reward)}
                   for o in ran if o.result is not None]
        if parsed.errors:
            detail = "; ".join(e.detail for e in parsed.errors)
            replies.append({"role": "tool", "content": f"Error: a further tool call could not be read: {detail}."})
        return replies

    async def plain_text(self, turn: int, text: str) -> dict[str, str]:
        """A message with no call: the env's `astep` receives it (UserRL gyms: a tagged line, spec §1.3)."""
        traj, action = self.traj, text
        if self.env.protocol == "interact":
            tagged = parse_tagged(text)
            if tagged.outcome == "no_call" and self.plain_text_as_action:
                action = f"[action] {text.strip()}"
            elif not tagged.ok:  # the policy's mistake: the episode ends, counted, and is scored as it stands
                traj.format_error, traj.finish_reason = f"{tagged.outcome}: {tagged.detail}", "format_error"
                raise EpisodeEnded
            else:
                traj.tool_calls += 1
                action = tagged.env_action()
        try:
            result: StepResult = await asyncio.wait_for(self.env.astep(action), self.settings.step_timeout_s)
        except asyncio.TimeoutError:  # the builtin TimeoutError only from Python 3.11
            traj.failure = (f"environment {self.env_name}: step timed out after {self.settings.step_timeout_s:g} s "
                            f"(env.step_timeout_s)")
            logger.warning("episode %s failed: %s", traj.task_id, traj.failure)
            raise EpisodeEnded from None
        except Exception as err:  # an environment crash is an infrastructure failure, not a bad answer
            traj.failure = f"environment {self.env_name} raised {type(err).__name__}: {err}"
            logger.warning("episode %s failed: %s", traj.task_id, traj.failure)
            raise EpisodeEnded from err
        self.steps += 1
        traj.turn_rewards.append(float(result.reward))
        if result.info.get("judge_error"):
            traj.judge_errors.append(str(result.info["judge_error"]))
        if result.terminated or result.truncated or result.observation is None:
            raise EpisodeEnded
        self.end_if_step_limit()
        role = "tool" if self.env.protocol == "interact" else "user"
        return {"role": role, "content": self.observation(result.observation, result.reward)}

    def observation(self, text: str, reward: float) -> str:
        text = cap_tokens(text, self.settings.max_response_tokens, self.renderer.encode, self.renderer.decode)
        return f"{text}\nReward: {round(reward, 4):g}" if self.echo_reward else text

    def end_if_step_limit(self) -> None:
        """Every call and every text step counts toward the env's `max_steps` (when it has one)."""
        if self.max_steps is not None and self.steps >= self.max_steps:
            self.traj.finish_reason = "max_steps"
            raise EpisodeEnded
