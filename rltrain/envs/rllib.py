"""Any `TextEnv` as an RLlib `MultiAgentEnv` with two agents, "agent" and "user" (spec §7.1 R4/R5 interop).

UserRL's gyms pair a policy with a simulated user; RLlib users may want to train or swap either side. The
wrapper makes the pair explicit as a turn-based two-agent game:

1. `reset` starts a task and observes `{"agent": <opening>}`: the chat messages of `TextEnv.reset`, rendered
   as "role: content" blocks.
2. The agent acts with its message (`Text`). For `protocol == "interact"` envs the message is parsed as in
   the agent loop (`rltrain.protocol`): a tool call or a `[verb] content` line; a malformed message ends the
   episode with reward 0 and `info["format_error"]`, as in `rltrain.agent`. The env steps (simulated user
   calls included) and `rewards["agent"]` is that step's turn reward.
3. Unless the episode ended, the user observes `{"message": <agent's message>, "proposed_reply": <the env's
   observation>}` and acts with the reply the agent will see (`Text`). Returning the proposal unchanged
   reproduces the gym exactly; a learned or scripted user may rewrite it. The turn reward was already
   fixed by the env, so `rewards["user"]` is 0: the user side is a simulator to swap, not a reward seeker.
4. The agent observes the user's reply, and so on until the env terminates or truncates (`"__all__"`).

Spaces are `gymnasium.spaces.Text` (max `max_chars`, min 0, charset: printable characters up to U+2FFF
plus newline and tab); observations keep their last `max_chars` characters and replace characters outside
the charset with "?", so that every observation lies in its space. The simulated user of judged gyms comes
from `config["user"]`: a `UserSim`, or "rules" for the in-process rules responders (`USER_RULES`).
`TextEnv.step` is called synchronously, so the wrapper must not run inside an event loop.

Config keys (an RLlib `env_config`): env (registered name), env_kwargs, split ("train"), seed (0),
num_tasks (64), user (None), max_chars (8192). Needs `pip install rltrain[rllib]`.
"""

from __future__ import annotations

import random
from typing import Any

from rltrain.envs.base import TextEnv, make_env
from rltrain.protocol import parse_message
from rltrain.types import Task
from rltrain.users import USER_RULES, UserReply, UserRequest, UserSim

try:
    from gymnasium import spaces
    from ray.rllib.env.multi_agent_env import MultiAgentEnv
except ImportError as err:  # the extra is optional: the module still imports (doctest collection), use raises
    _MISSING: ImportError | None = err
    MultiAgentEnv = object  # type: ignore[assignment,misc]
else:
    _MISSING = None

AGENT, USER = "agent", "user"
CHARSET = frozenset(chr(c) for c in range(0x20, 0x3000)) | {"\n", "\t"}


class InProcessRulesUser:
    """A `UserSim` that answers with the rules responders in this process (the rules backend without Ray)."""

    async def respond(self, request: UserRequest) -> UserReply:
        if request.rule is None:
            raise ValueError("the rules user needs request.rule; this env's request named none")
        return UserReply(text=USER_RULES.get(request.rule)(request), backend="rules")


class TextMultiAgentEnv(MultiAgentEnv):
    """A `TextEnv` as a turn-based agent/user pair (see the module docstring for the turn structure)."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        if _MISSING is not None:
            raise ImportError(f"TextMultiAgentEnv needs RLlib: pip install 'rltrain[rllib]' ({_MISSING})") from _MISSING
        super().__init__()
        config = dict(config or {})
        unknown = set(config) - {"env", "env_kwargs", "split", "seed", "num_tasks", "user", "max_chars"}
        if unknown or "env" not in config:
            raise ValueError(f"env_config needs 'env' (a registered environment) and takes env_kwargs, split, seed, "
                             f"num_tasks, user, max_chars; got unknown keys {sorted(unknown)}")
        self.env: TextEnv = make_env(config["env"], config.get("env_kwargs", {}))
        self.max_chars: int = config.get("max_chars", 8192)
        user = config.get("user")
        self.user: UserSim | None = InProcessRulesUser() if user == "rules" else user
        self.tasks: list[Task] = self.env.tasks(config.get("split", "train"), config.get("num_tasks", 64),
                                                config.get("seed", 0))
        self.agents, self.possible_agents = [AGENT, USER], [AGENT, USER]
        text = spaces.Text(self.max_chars, min_length=0, charset=CHARSET)
        self.observation_spaces = {AGENT: text, USER: spaces.Dict({"message": text, "proposed_reply": text})}
        self.action_spaces = {AGENT: text, USER: text}
        # Per episode.
        self._rng = random.Random(config.get("seed", 0))
        self._episodes = 0

    def _clip(self, text: str) -> str:
        return "".join(c if c in CHARSET else "?" for c in text[-self.max_chars:])

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed, options=options)
        if seed is not None:
            self._rng = random.Random(seed)
        task = self.tasks[self._rng.randrange(len(self.tasks))]
        self.env.bind_user(self.user, f"{task.task_id}#{self._episodes}")
        self._episodes += 1
        messages, info = self.env.reset(task)
        opening = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)
        return {AGENT: self._clip(opening)}, {AGENT: {**info, "task_id": task.task_id}}

    def step(self, action_dict: dict[str, str]) -> tuple[dict, dict, dict, dict, dict]:
        if USER in action_dict:  # the user hands its reply to the agent
            return {AGENT: self._clip(action_dict[USER])}, {USER: 0.0}, {"__all__": False}, {"__all__": False}, {}
        message = action = action_dict[AGENT]
        if self.env.protocol == "interact":
            parsed = parse_message(message)
            if not parsed.ok:  # as in the agent loop: the policy's format mistake ends the episode
                return self._end(0.0, {"format_error": f"{parsed.outcome}: {parsed.detail}"}, truncated=False)
            action = parsed.env_action()
        result = self.env.step(action)
        info = dict(result.info)
        if result.terminated or result.truncated or result.observation is None:
            return self._end(float(result.reward), info, truncated=result.truncated and not result.terminated)
        observation = {"message": self._clip(message), "proposed_reply": self._clip(result.observation)}
        return ({USER: observation}, {AGENT: float(result.reward)}, {"__all__": False}, {"__all__": False},
                {AGENT: info})

    def _end(self, reward: float, info: dict[str, Any], truncated: bool) -> tuple[dict, dict, dict, dict, dict]:
        """The last transition: the agent observes an empty text; every agent is done."""
        done = {AGENT: not truncated, USER: not truncated, "__all__": not truncated}
        cut = {AGENT: truncated, USER: truncated, "__all__": truncated}
        return {AGENT: ""}, {AGENT: reward}, done, cut, {AGENT: info}
