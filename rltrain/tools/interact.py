"""`interact_with_env` (UserRL, spec §1.3) as one tool among others: each call is one step of the gym.

A UserRL gym (`TextEnv.protocol == "interact"`) offers this tool by default (`TextEnv.tools`). The call's
`choice` and `content` become the action string the gym's `step` reads, exactly as UserRL's InteractTool builds
it: `[choice] content` (the tag not doubled), `[finish]` for `choice == "finish"` (outside the enum, but supported),
and, for any other choice, the raw content (the gym answers "format wrong" with reward 0). Each call is one gym
step, so it counts toward the gym's `max_steps`. TravelGym's variant adds UserBench's required `thought` field
(spec §1.3, `thought=True`).
"""

from __future__ import annotations

import copy
from typing import Any

from rltrain.protocol import TOOL_NAME, TOOL_SCHEMA, check_arguments
from rltrain.tools.base import TOOLS, Tool, ToolResult


def interact_action(arguments: dict[str, Any]) -> tuple[str, str | None]:
    """(the gym's action string, the error class of a malformed call or None), as UserRL's InteractTool.execute.

    >>> interact_action({"choice": "search", "content": "[search] hotels"})
    ('[search] hotels', None)
    >>> interact_action({"choice": "shout", "content": "hi"})
    ('hi', 'bad_choice')
    """
    parsed = check_arguments(arguments)
    if parsed.ok:
        return parsed.env_action(), None
    content = arguments.get("content")
    if parsed.outcome == "bad_choice":
        return (content if isinstance(content, str) else ""), parsed.outcome
    return f"[{parsed.choice}]", parsed.outcome  # missing content: the gym sees the bare verb


@TOOLS.register(TOOL_NAME)
class InteractTool(Tool):
    """One step of the episode's gym: talk to the user (action), query (search), submit (answer), or finish."""

    name = TOOL_NAME
    description = TOOL_SCHEMA["function"]["description"]
    parameters = TOOL_SCHEMA["function"]["parameters"]
    timeout_s = None  # a gym step: bounded by env.step_timeout_s, derived from the users config
    validate_arguments = False  # UserRL's rules for a bad choice apply (`interact_action`), not a schema error

    def __init__(self, thought: bool = False) -> None:
        """`thought`: UserBench's schema, with a required `thought` string before `choice` (TravelGym)."""
        if thought:
            params = copy.deepcopy(TOOL_SCHEMA["function"]["parameters"])
            params["properties"] = {"thought": {"type": "string", "description": "your reasoning before this interaction"},
                                    **params["properties"]}
            params["required"] = ["thought", *params["required"]]
            self.parameters = params

    async def execute(self, arguments: dict[str, Any], episode_state: Any) -> ToolResult:
        action, error = interact_action(arguments)
        step = await episode_state.astep(action)
        return ToolResult(step.observation or "", reward=float(step.reward),
                          terminated=step.terminated or step.observation is None, truncated=step.truncated,
                          error=error, info=dict(step.info))
