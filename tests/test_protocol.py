"""The interact_with_env protocol: every malformed output gets a named outcome, never an exception (spec §1.3)."""

from __future__ import annotations

import pytest

from rltrain.protocol import TOOL_SCHEMA, parse_message


def call(arguments: str, name: str = "interact_with_env") -> str:
    return f'<think>plan</think>\n<tool_call>{{"name": "{name}", "arguments": {arguments}}}</tool_call>'


@pytest.mark.parametrize(
    ("text", "outcome", "action"),
    [
        (call('{"choice": "action", "content": "Which dates?"}'), "call", "[action] Which dates?"),
        (call('{"choice": "search", "content": "[search] hotels"}'), "call", "[search] hotels"),  # tag not doubled
        (call('"{\\"choice\\": \\"answer\\", \\"content\\": \\"A3\\"}"'), "call", "[answer] A3"),  # arguments as a string
        (call('{"choice": "finish"}'), "call", "[finish]"),
        ("[answer] 12", "call", "[answer] 12"),
        ("  [ACTION] hello there", "call", "[action] hello there"),
        ("The answer is 12.", "no_call", None),
        ("<tool_call>{not json}</tool_call>", "bad_json", None),
        ("<tool_call>[1, 2]</tool_call>", "bad_json", None),
        (call('{"choice": "answer", "content": "1"}', name="web_search"), "unknown_tool", None),
        (call('{"choice": "shout", "content": "hi"}'), "bad_choice", None),
        (call('{"choice": "answer", "content": ""}'), "missing_content", None),
        (call('{"choice": "answer", "content": 5}'), "missing_content", None),
        (call('{"choice": "answer"'), "bad_json", None),  # cut off mid-JSON by the length limit
    ],
)
def test_outcomes(text: str, outcome: str, action: str | None) -> None:
    parsed = parse_message(text)
    assert parsed.outcome == outcome, parsed.detail
    if action is not None:
        assert parsed.env_action() == action
    else:
        assert parsed.detail


def test_last_valid_call_wins() -> None:
    text = call('{"choice": "action", "content": "first"}') + "<tool_call>oops</tool_call>" + call('{"choice": "answer", "content": "last"}')
    assert parse_message(text).env_action() == "[answer] last"


def test_schema_names_the_three_choices() -> None:
    params = TOOL_SCHEMA["function"]["parameters"]
    assert params["properties"]["choice"]["enum"] == ["action", "search", "answer"] and params["required"] == ["choice", "content"]
