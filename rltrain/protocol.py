"""The UserRL agent protocol: the `interact_with_env(choice, content)` tool (spec §1.3, §7.1 R5).

The policy calls the tool hermes-style, `<tool_call>{"name": "interact_with_env", "arguments": {...}}</tool_call>`
(or as bare / fenced JSON, `rltrain.tools.parsers`), or, for models without tool training, writes a plain tagged
line: `[action] ...`, `[search] ...`, `[answer] ...`. The tool itself is `rltrain.tools.interact.InteractTool`.
`parse_message` gives the one-call view of a message: a call, or a named format error, never a crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

TOOL_NAME = "interact_with_env"
CHOICES = ("action", "search", "answer")

TOOL_SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Interact with the environment: talk to the user (action), query a tool or database (search), "
                       "or submit a solution (answer).",
        "parameters": {
            "type": "object",
            "properties": {
                "choice": {"type": "string", "enum": list(CHOICES), "description": "what kind of interaction"},
                "content": {"type": "string", "description": "the message, query or answer"},
            },
            "required": ["choice", "content"],
        },
    },
}

Outcome = Literal["call", "no_call", "bad_json", "unknown_tool", "bad_choice", "missing_content"]

_TAGGED = re.compile(r"^\s*\[(action|search|answer|finish)\]\s*(.*)$", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    """One assistant message, parsed.

    Attributes:
        outcome: "call" for a valid call; otherwise the format error that ends the episode.
        choice: the verb of a valid call ("action", "search", "answer" or "finish").
        content: its content.
        detail: for errors, what was wrong (logged on the trajectory).
    """

    outcome: Outcome
    choice: str = ""
    content: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "call"

    def env_action(self) -> str:
        """The action string environments receive: `[choice] content` (`[finish]` alone)."""
        if self.choice == "finish":
            return "[finish]"
        tag = f"[{self.choice}]"
        return self.content if self.content.startswith(tag) else f"{tag} {self.content}"


def parse_message(text: str, parser: str = "permissive") -> Parsed:
    """Parse an assistant message into one `interact_with_env` call or one named format error.

    The calls are read by `rltrain.tools.parsers` (tags, bare JSON, ```json fences); with several calls the last
    valid one counts (the authors' rollout kept only the last call's result for the turn). The agent loop runs every
    call (`rltrain.tools.execution`); this one-call view serves metrics and the RLlib adapter.

    >>> parse_message('<tool_call>{"name": "interact_with_env", "arguments": {"choice": "answer", "content": "42"}}</tool_call>').env_action()
    '[answer] 42'
    >>> parse_message('{"name": "interact_with_env", "arguments": {"choice": "action", "content": "Hi"}}').env_action()
    '[action] Hi'
    >>> parse_message("[search] flights to Oslo").env_action()
    '[search] flights to Oslo'
    >>> parse_message("I think it is 42.").outcome
    'no_call'
    """
    from rltrain.tools.parsers import parse_calls

    message = parse_calls(text, (TOOL_NAME,), parser)
    if not message.meant_as_call:
        return parse_tagged(text)
    parsed = [check_arguments(call.arguments) if call.name == TOOL_NAME else
              Parsed("unknown_tool", detail=f"unknown tool {call.name!r}; the only tool is {TOOL_NAME}") for call in message.calls]
    valid = [p for p in parsed if p.ok]
    if valid:
        return valid[-1]
    if parsed:
        return parsed[-1]
    return Parsed("bad_json", detail=message.errors[-1].detail)


def parse_tagged(text: str) -> Parsed:
    """A plain `[action] ...` / `[search] ...` / `[answer] ...` / `[finish]` line, the fallback for models without
    tool training; "no_call" for any other text."""
    tagged = _TAGGED.match(text)
    if tagged:
        return _check(tagged.group(1).lower(), tagged.group(2).strip())
    return Parsed("no_call", detail="no tool call and no [action]/[search]/[answer] tag")


def check_arguments(arguments: dict[str, Any]) -> Parsed:
    """The interact_with_env arguments as a `Parsed` call, or the named problem with them."""
    return _check(str(arguments.get("choice", "")), arguments.get("content"))


def _check(choice: str, content: Any) -> Parsed:
    if choice == "finish":
        return Parsed("call", choice="finish")
    if choice not in CHOICES:
        return Parsed("bad_choice", detail=f"choice {choice!r} is not one of {', '.join(CHOICES)}")
    if not isinstance(content, str) or not content.strip():
        return Parsed("missing_content", choice=choice, detail=f"choice {choice!r} needs a non-empty string content")
    return Parsed("call", choice=choice, content=content.strip())
