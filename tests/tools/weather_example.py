"""The complete user example of docs/tools.md and README "Your own tool" (kept runnable: tested in test_user_tool.py)."""

from __future__ import annotations

from typing import Any

from rltrain.tools import Tool, ToolError, ToolResult

FORECASTS = {"paris": "sunny, 21 C", "oslo": "snow, -3 C"}


class Weather(Tool):
    name = "get_weather"
    description = "Today's weather in a city."
    parameters = {"type": "object", "properties": {"city": {"type": "string", "description": "the city name"}},
                  "required": ["city"]}
    timeout_s = 5.0  # seconds; a slower call fails the episode as "timeout" (never reward 0)
    concurrency_safe = True  # reads only: several calls in one message may run at once

    async def execute(self, arguments: dict[str, Any], episode_state: Any) -> ToolResult:
        forecast = FORECASTS.get(arguments["city"].strip().lower())
        if forecast is None:  # the policy's mistake: the message goes back to it, error class "not_found"
            raise ToolError(f"no forecast for {arguments['city']!r}; try Paris or Oslo", kind="not_found")
        return ToolResult(f"{arguments['city']}: {forecast}")
