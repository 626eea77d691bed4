"""The tool contract: a tool is a name, a JSON schema for its arguments, and an async `execute`.

This is the one shape every tool-using environment offers its tools in (the UserRL `interact_with_env`, the
multi-tool env, the CRM env, the router's `call_<model>` tools, a user's own tool). The agent loop
(`rltrain.agent`) renders the offered tools through the chat template (`tools=`), parses the calls a message
holds (`rltrain.tools.parsers`), runs them (`rltrain.tools.execution`) and appends their results as one block.

A tool is stateless across episodes: per-episode state lives in the environment instance, which is what
`execute` receives as `episode_state` (the env that offered the tool). Optional per-episode hooks `create` and
`release` bracket an episode (the shape of verl's `BaseTool`, without its config sprawl).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from rltrain.registry import Registry


@dataclass(frozen=True)
class ToolCall:
    """One call parsed from an assistant message.

    Attributes:
        name: the function name as the model wrote it (may name a tool that was not offered).
        arguments: the decoded argument object.
        call_id: `call_<turn>_<index>`, unique within the episode; tool results refer to it.
        raw: the text the call was parsed from (for records and SpecTool labels).
    """

    name: str
    arguments: dict[str, Any]
    call_id: str = ""
    raw: str = ""


@dataclass(frozen=True)
class ToolResult:
    """What executing one call gives back.

    Attributes:
        observation: the text the policy sees as this call's tool message (truncated by the loop if too long).
        reward: this call's reward; a turn's reward is its last call's (UserRL, spec §1.3).
        terminated: the episode ends after this turn (an answer was accepted, a final response was selected).
        truncated: the episode was stopped by a limit (steps), not by the task.
        error: None for a successful call; otherwise a short error class ("bad_arguments", "timeout",
            "unknown_tool", "tool_error", or a tool's own name for its failure), kept on the call record.
        info: extra facts (judge errors, database diffs, cost records) for records and verifiers.
    """

    observation: str
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Tool:
    """A tool the policy can call. Subclass it, set the class attributes, implement `execute`.

    Register it with `@TOOLS.register("name")` so that configs can name it (`env.tools: [name, ...]`).
    """

    name: ClassVar[str]
    """The function name the model calls."""
    description: ClassVar[str] = ""
    """What the tool does, shown to the model through the chat template."""
    parameters: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    """JSON schema of the argument object."""
    timeout_s: ClassVar[float | None] = 30.0
    """Seconds one call may take; a slower call is recorded with error "timeout" and ends the episode as a failure
    (`Trajectory.failure`, never reward 0 for the infrastructure). None: the env step bound (`env.step_timeout_s`),
    for tools that step the environment."""
    validate_arguments: ClassVar[bool] = True
    """Check the arguments against `parameters` before `execute` (required names, top-level types, enums); a mismatch
    is returned to the agent as error "bad_arguments". False for tools that check their own."""
    concurrency_safe: ClassVar[bool] = False
    """True if calls may run concurrently with other safe calls of the same message; stateful tools run in order."""

    def schema(self) -> dict[str, Any]:
        """The OpenAI-style function schema rendered through the chat template's `tools=`."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}

    async def create(self, episode_state: Any) -> None:
        """Called once per episode before the first call (open a session, seed a sandbox)."""

    async def execute(self, arguments: dict[str, Any], episode_state: Any) -> ToolResult:
        """Run one call. `episode_state` is the environment instance playing the episode."""
        raise NotImplementedError

    async def release(self, episode_state: Any) -> None:
        """Called once per episode after the last call, also when the episode failed."""


class ToolError(Exception):
    """Raised by `execute` for a call the policy got wrong (a value out of range, a record not found).

    The message goes back to the agent as the call's observation and `kind` is the record's error class. Any other
    exception from a tool is an infrastructure failure: the episode is marked failed (never reward 0).
    """

    def __init__(self, message: str, kind: str = "tool_error") -> None:
        super().__init__(message)
        self.kind = kind


TOOLS: Registry[type[Tool]] = Registry("tool")
