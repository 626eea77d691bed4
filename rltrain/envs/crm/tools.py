"""The CRM tools the agent calls: `query` (read-only SQL), four policy-checked actions, and `respond`.

Each is a `rltrain.tools.base.Tool`; `execute` receives the `CRMEnv` playing the episode as `episode_state` and
delegates to it, so that all per-episode state (the DB, the transcript) lives in the env. Registered in the
tool registry as `crm.<name>`; the name the model calls is `<name>`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rltrain.envs.crm.policy import CASE_TRANSITIONS, CONTACT_FIELDS
from rltrain.tools.base import TOOLS, Tool, ToolResult


def _obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


class _EnvTool(Tool):
    """A tool that runs in the env's DB (one connection per episode: calls run in order)."""

    async def execute(self, arguments: dict[str, Any], episode_state: Any) -> ToolResult:
        return episode_state.run_tool(self.name, arguments)


@TOOLS.register("crm.query")
class QueryTool(_EnvTool):
    name: ClassVar[str] = "query"
    description: ClassVar[str] = ("Run ONE read-only SQLite SELECT on the CRM database and get the rows as JSON lines "
                                  "(column names first). Writes, ATTACH and PRAGMA are refused; slow queries time out; "
                                  "at most 50 rows are shown.")
    parameters: ClassVar[dict[str, Any]] = _obj({"sql": {"type": "string", "description": "one SELECT statement"}}, ["sql"])


@TOOLS.register("crm.update_case")
class UpdateCaseTool(_EnvTool):
    name: ClassVar[str] = "update_case"
    description: ClassVar[str] = "Change a case's status (policy 3); closing needs a resolution note."
    parameters: ClassVar[dict[str, Any]] = _obj({"case_id": {"type": "string"},
                                                 "status": {"type": "string", "enum": list(CASE_TRANSITIONS)},
                                                 "resolution": {"type": "string"}}, ["case_id", "status"])


@TOOLS.register("crm.issue_refund")
class IssueRefundTool(_EnvTool):
    name: ClassVar[str] = "issue_refund"
    description: ClassVar[str] = "Refund an order (policy 1: Delivered, within 30 days, once, at most its amount)."
    parameters: ClassVar[dict[str, Any]] = _obj({"order_id": {"type": "string"}, "amount": {"type": "number"},
                                                 "reason": {"type": "string"}}, ["order_id", "amount", "reason"])


@TOOLS.register("crm.apply_discount")
class ApplyDiscountTool(_EnvTool):
    name: ClassVar[str] = "apply_discount"
    description: ClassVar[str] = "Apply a percent discount to a Pending B2B order (policy 2: tier caps)."
    parameters: ClassVar[dict[str, Any]] = _obj({"order_id": {"type": "string"}, "percent": {"type": "number"}},
                                                ["order_id", "percent"])


@TOOLS.register("crm.update_contact")
class UpdateContactTool(_EnvTool):
    name: ClassVar[str] = "update_contact"
    description: ClassVar[str] = "Change a contact's email or phone after verifying the caller (policy 4)."
    parameters: ClassVar[dict[str, Any]] = _obj({"contact_id": {"type": "string"}, "verified_email": {"type": "string"},
                                                 "field": {"type": "string", "enum": list(CONTACT_FIELDS)},
                                                 "value": {"type": "string"}},
                                                ["contact_id", "verified_email", "field", "value"])


@TOOLS.register("crm.respond")
class RespondTool(Tool):
    name: ClassVar[str] = "respond"
    description: ClassVar[str] = ("Send a message to the person you are helping. For an analyst's question this is your "
                                  "final answer; with a customer, they reply until they are done.")
    parameters: ClassVar[dict[str, Any]] = _obj({"message": {"type": "string"}}, ["message"])
    timeout_s: ClassVar[float] = 120.0  # the customer may be an LLM behind the user service

    async def execute(self, arguments: dict[str, Any], episode_state: Any) -> ToolResult:
        message = arguments.get("message")
        if not isinstance(message, str):
            return ToolResult("respond needs a string `message`", error="bad_arguments")
        return await episode_state.respond(message)


ALL_TOOLS: tuple[type[Tool], ...] = (QueryTool, UpdateCaseTool, IssueRefundTool, ApplyDiscountTool, UpdateContactTool,
                                     RespondTool)
