"""The documented user tool (docs/tools.md, README "Your own tool"): one class plus one line of config."""

from __future__ import annotations

import asyncio

from rltrain.config.env import EnvConfig
from rltrain.tools import ToolCall
from rltrain.tools.execution import run_calls
from rltrain.tools.loading import load_tools


def test_documented_example_loads_from_one_config_line_and_runs() -> None:
    cfg = EnvConfig(name="function_gym", tools=("tests.tools.weather_example:Weather",))
    tools = {t.name: t for t in load_tools(cfg.tools)}
    calls = [ToolCall("get_weather", {"city": "Oslo"}, "call_0_0"), ToolCall("get_weather", {"city": "Rome"}, "call_0_1")]
    outcomes = asyncio.run(run_calls(calls, ["tag", "tag"], tools, None))
    assert [(o.result.observation, o.result.error) for o in outcomes] == [
        ("Oslo: snow, -3 C", None), ("Error: no forecast for 'Rome'; try Paris or Oslo", "not_found")]


def test_tool_settings_come_from_the_env_config() -> None:
    from rltrain.agent import tool_settings
    from rltrain.config.users import UsersConfig
    from rltrain.envs import make_env

    cfg = EnvConfig(name="telepathy", tools=("tests.tools.weather_example:Weather",), tool_parser="hermes",
                    max_tool_response_tokens=64)
    settings = tool_settings(cfg, make_env("telepathy", {}), UsersConfig())
    assert [t.name for t in settings.extra_tools] == ["get_weather"] and settings.parser == "hermes"
    assert settings.max_response_tokens == 64 and settings.step_timeout_s == 178.0  # 2 x 74 s + 30 s
