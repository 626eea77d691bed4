"""Tools the policy calls (`base`), how calls are parsed (`parsers`), run (`execution`) and rendered (`templates`)."""

from rltrain.tools.base import TOOLS, Tool, ToolCall, ToolError, ToolResult

__all__ = ["TOOLS", "Tool", "ToolCall", "ToolError", "ToolResult"]

# Registers the built-in tools (one import line per module, as for environments).
from rltrain.tools import interact as interact  # noqa: E402
