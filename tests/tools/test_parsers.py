"""Tool-call parsers (`rltrain.tools.parsers`): each format, the call-or-text rule, and IFE (issue 12 item 3, spec §6.3).

Fixtures of Qwen2.5-Coder output are in fixtures/qwen_coder_outputs.json, each labelled `observed` (the shape seen
in the runs PLATFORM.md and issue 12 describe) or `authored`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rltrain.config.loader import ConfigError
from rltrain.tools.parsers import PARSERS, check_parser, default_parser, parse_calls

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "qwen_coder_outputs.json").read_text())
WEATHER = {"get_weather", "convert"}


def tag(name: str, arguments: str) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>'


@pytest.mark.parametrize("case", FIXTURES, ids=[f"{c['source']}-{i}" for i, c in enumerate(FIXTURES)])
def test_qwen_coder_outputs_with_the_permissive_parser(case: dict) -> None:
    parsed = parse_calls(case["text"], case["offered"], "permissive")
    assert [[c.name, c.arguments] for c in parsed.calls] == case["calls"]
    assert list(parsed.formats) == case["formats"] and len(parsed.errors) == case["errors"]


def test_observed_qwen_coder_shapes_are_missed_by_hermes() -> None:
    """Why the default is not tags-only: the shapes issue 12 saw give 0 calls under `hermes`."""
    observed = [c for c in FIXTURES if c["source"] == "observed"]
    assert all(not parse_calls(c["text"], c["offered"], "hermes").calls for c in observed)


def test_several_tags_in_order_with_ids_and_string_arguments() -> None:
    text = "Let me check both.\n" + tag("get_weather", '{"city": "Oslo"}') + "\n" + tag("convert", '"{\\"value\\": 2}"')
    parsed = parse_calls(text, WEATHER, "hermes", turn=3)
    assert [(c.name, c.arguments, c.call_id) for c in parsed.calls] == [
        ("get_weather", {"city": "Oslo"}, "call_3_0"), ("convert", {"value": 2}, "call_3_1")]
    assert parsed.formats == ("tag", "tag") and not parsed.errors and parsed.calls[0].raw.startswith("<tool_call>")


def test_a_tag_naming_an_unoffered_tool_is_still_a_call() -> None:
    """Inside tags the text was meant as a call: the env's unoffered_tool rule decides, not the parser."""
    parsed = parse_calls(tag("web_search", '{"q": "x"}'), WEATHER, "permissive")
    assert [c.name for c in parsed.calls] == ["web_search"]


def test_bare_json_is_a_call_only_for_an_offered_tool_with_arguments() -> None:
    for text in ('{"name": "web_search", "arguments": {"q": "x"}}',  # not offered
                 '{"name": "get_weather", "city": "Oslo"}',  # no arguments
                 'The answer is {"city": "Oslo"} and [1, 2].'):  # other JSON
        parsed = parse_calls(text, WEATHER, "permissive")
        assert not parsed.meant_as_call, text
    parsed = parse_calls('Sure: {"name": "get_weather", "arguments": {"city": "Oslo"}} done', WEATHER, "permissive")
    assert [(c.name, f) for c, f in zip(parsed.calls, parsed.formats)] == [("get_weather", "json")]


def test_each_entry_of_a_list_is_judged_on_its_own() -> None:
    text = '[{"name": "get_weather", "arguments": {"city": "A"}}, {"city": "B"}]'
    parsed = parse_calls(text, WEATHER, "permissive")
    assert [c.arguments for c in parsed.calls] == [{"city": "A"}] and not parsed.errors


@pytest.mark.parametrize(("text", "detail"), [
    ('<tool_call>{"name": "get_weather", "arguments": {"city": }</tool_call>', "not valid JSON"),
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}', "not closed"),  # cut off by the length limit
    ('<tool_call>{"arguments": {}}</tool_call>', 'no "name"'),
    ('<tool_call>{"name": "get_weather"}</tool_call>', 'no "arguments"'),
    ('<tool_call>{"name": "get_weather", "arguments": [1]}</tool_call>', "must be a JSON object"),
    ('<tool_call>[1, 2]</tool_call>', "must be a JSON object"),
    ('{"name": "get_weather", "arguments": {"city": "Oslo"', "does not decode"),
])
def test_meant_as_a_call_but_unreadable_is_ife_with_a_named_detail(text: str, detail: str) -> None:
    parsed = parse_calls(text, WEATHER, "permissive")
    assert not parsed.calls and parsed.errors and detail in parsed.errors[0].detail


def test_valid_calls_survive_beside_a_broken_one() -> None:
    text = tag("get_weather", '{"city": "A"}') + "<tool_call>{oops}</tool_call>" + tag("convert", '{"value": 1}')
    parsed = parse_calls(text, WEATHER, "hermes")
    assert [c.name for c in parsed.calls] == ["get_weather", "convert"] and len(parsed.errors) == 1


def test_hermes_reads_tags_only_and_llama3_json_reads_a_leading_object() -> None:
    fenced = FIXTURES[0]["text"]
    assert not parse_calls(fenced, WEATHER, "hermes").meant_as_call
    llama = '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Rome"}}'
    assert [c.arguments for c in parse_calls(llama, WEATHER, "llama3_json").calls] == [{"city": "Rome"}]
    assert not parse_calls('I think {"name": "get_weather", "parameters": {}}', WEATHER, "llama3_json").calls


def test_registry_and_default_choice() -> None:
    assert {"hermes", "llama3_json", "permissive"} <= set(PARSERS)
    assert default_parser("{{ '<|im_start|>' }}") == "permissive"
    assert default_parser("{{- '<|python_tag|>' }}") == "llama3_json"
    with pytest.raises(KeyError, match="registered: hermes"):
        parse_calls("x", WEATHER, "qwen_magic")
    check_parser("auto")
    with pytest.raises(ConfigError, match="env.tool_parser='qwen_magic' is not a tool-call parser; choose auto or one of hermes"):
        check_parser("qwen_magic")
