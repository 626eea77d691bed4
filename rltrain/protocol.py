"""The UserRL agent protocol: the `interact_with_env(choice, content)` tool (spec §1.3, §7.1 R5).

The policy calls the tool hermes-style, `<tool_call>{"name": "interact_with_env", "arguments": {...}}</tool_call>`,
or, for models without a tool template, writes a plain tagged line: `[action] ...`, `[search] ...`,
`[answer] ...`. Every assistant message parses to exactly one `Parsed` outcome: a call, or a named format
error. A format error ends the episode and is counted; it is never a crash.
"""

from __future__ import annotations

import json
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

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
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


def parse_message(text: str) -> Parsed:
    """Parse an assistant message into one tool call or one named format error.

    With several `<tool_call>` blocks the last valid one counts (the authors' rollout kept only the last
    call's result for the turn).

    >>> parse_message('<tool_call>{"name": "interact_with_env", "arguments": {"choice": "answer", "content": "42"}}</tool_call>').env_action()
    '[answer] 42'
    >>> parse_message("[search] flights to Oslo").env_action()
    '[search] flights to Oslo'
    >>> parse_message("I think it is 42.").outcome
    'no_call'
    """
    blocks = _TOOL_CALL.findall(text)
    if not blocks:
        tagged = _TAGGED.match(text)
        if tagged:
            return _check(tagged.group(1).lower(), tagged.group(2).strip())
        return Parsed("no_call", detail="no <tool_call> block and no [action]/[search]/[answer] tag")
    parsed = [_parse_block(block) for block in blocks]
    valid = [p for p in parsed if p.ok]
    return valid[-1] if valid else parsed[-1]


def _parse_block(block: str) -> Parsed:
    try:
        call = json.loads(block)
    except json.JSONDecodeError as err:
        return Parsed("bad_json", detail=f"tool call is not valid JSON ({err.msg} at char {err.pos})")
    if not isinstance(call, dict):
        return Parsed("bad_json", detail=f"tool call must be a JSON object, got {type(call).__name__}")
    if call.get("name") != TOOL_NAME:
        return Parsed("unknown_tool", detail=f"unknown tool {call.get('name')!r}; the only tool is {TOOL_NAME}")
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):  # some templates emit arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as err:
            return Parsed("bad_json", detail=f"tool arguments are not valid JSON ({err.msg})")
    if not isinstance(arguments, dict):
        return Parsed("bad_json", detail="tool arguments must be a JSON object")
    return _check(str(arguments.get("choice", "")), arguments.get("content"))


def _check(choice: str, content: Any) -> Parsed:
    if choice == "finish":
        return Parsed("call", choice="finish")
    if choice not in CHOICES:
        return Parsed("bad_choice", detail=f"choice {choice!r} is not one of {', '.join(CHOICES)}")
    if not isinstance(content, str) or not content.strip():
        return Parsed("missing_content", choice=choice, detail=f"choice {choice!r} needs a non-empty string content")
    return Parsed("call", choice=choice, content=content.strip())
