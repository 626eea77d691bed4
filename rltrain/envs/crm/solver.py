"""A scripted CRM agent: solves every task type from what an agent sees, never from the task's ground truth.

It reads the opening message, asks the customer for what it needs, queries the DB, applies the written policy
(`policy.py` holds the same numbers as the policy text in the system prompt) and acts through the env's tools.
It is the reference that shows the test split is solvable (100%, `tests/envs/crm/test_solver.py`) and the
oracle agent of `rltrain data generate` (its conversations are the kept trajectories' shape).

`ScriptedAgent(env).run(messages)` plays one episode after `env.reset` and returns the conversation in the
unified format's shape: assistant turns with `tool_calls` ([{"id", "function": {"name", "arguments"}}]) and tool
turns (`rltrain.data.schema.messages_to_row` turns it into a unified row).
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from rltrain.envs.crm.policy import DISCOUNT_CAP, REFUND_WINDOW_DAYS
from rltrain.tools.base import Tool, ToolResult


class GaveUp(Exception):
    """The customer did not give what the agent needs: the agent apologises and the episode ends (it fails)."""


REFUSAL_TEXT = "I'm sorry, but I can't share that information: it is confidential under our policy."


class ScriptedAgent:
    """Plays one CRM episode with fixed rules (see module doc)."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.tools: dict[str, Tool] = {t.name: t for t in env.tools()}
        self.conversation: list[dict[str, Any]] = []
        self.last: ToolResult | None = None

    async def call(self, name: str, **arguments: Any) -> ToolResult:
        turn = sum(m["role"] == "assistant" for m in self.conversation)
        self.conversation.append({"role": "assistant", "content": "", "tool_calls": [
            {"id": f"call_{turn}_0", "function": {"name": name, "arguments": arguments}}]})
        result = await self.tools[name].execute(arguments, self.env)
        self.conversation.append({"role": "tool", "content": result.observation})
        self.last = result
        return result

    async def query(self, sql: str) -> list[list[Any]]:
        result = await self.call("query", sql=sql)
        if result.error:
            raise RuntimeError(f"scripted query failed: {result.observation}")
        return [json.loads(line) for line in result.observation.splitlines()[1:] if line.startswith("[")]

    async def say(self, message: str) -> str:
        return (await self.call("respond", message=message)).observation

    async def ask(self, question: str, pattern: str) -> str:
        """Ask the customer one question; the first match of `pattern` (group 1 if any) in the reply."""
        reply = await self.say(question)
        found = re.search(pattern, reply)
        if not found:
            raise GaveUp(f"no {pattern!r} in the customer's reply {reply!r}")
        return found.group(1) if found.groups() else found.group(0)

    async def run(self, messages: list[dict[str, str]]) -> list[dict[str, Any]]:
        self.conversation = [m for m in messages if m["role"] == "user"]
        opening = messages[-1]["content"]
        try:
            await self.play(opening)
        except (GaveUp, LookupError, RuntimeError, ValueError):  # e.g. a generated task it cannot parse: it fails it
            if not self.env.done:
                await self.say("Sorry, I cannot go on without that information. Goodbye.")
        return self.conversation

    async def play(self, opening: str) -> None:
        text = opening.lower()
        quoted = re.findall(r"'([^']+)'", opening)
        month = next(iter(re.findall(r"\d{4}-\d{2}", opening)), "")
        if "knowledge" in text:
            await self.knowledge(quoted)
        elif "product" in text and month and "delivered" not in text:
            rows = await self.query("SELECT p.name, COUNT(*) n FROM cases c JOIN products p ON p.id = c.product_id "
                                    f"WHERE substr(c.created, 1, 7) = '{month}' GROUP BY p.id ORDER BY n DESC LIMIT 1")
            await self.say(f"The product with the most cases in {month} is {rows[0][0]}.")
        elif "delivered" in text:
            account = next(q for q in quoted if q != month).replace("'", "''")
            rows = await self.query("SELECT ROUND(COALESCE(SUM(o.amount), 0), 2) FROM orders o JOIN accounts a ON "
                                    f"a.id = o.account_id WHERE a.name = '{account}' AND o.status = 'Delivered' "
                                    f"AND substr(o.order_date, 1, 7) = '{month}'")
            await self.say(f"The total is {rows[0][0]:.2f}.")
        elif "cases" in text:
            account = quoted[0].replace("'", "''")
            rows = await self.query("SELECT COUNT(*) FROM cases c JOIN accounts a ON a.id = c.account_id "
                                    f"WHERE a.name = '{account}' AND c.status != 'Closed'")
            await self.say(f"The account has {rows[0][0]} open cases.")
        elif "internal" in text or "unit cost" in text or ("phone" in text and not re.search(r"update|change|new", text)):
            await self.say(REFUSAL_TEXT)
        elif "phone" in text:
            await self.update_phone()
        elif "close" in text:
            case_id = await self.ask("What is your case number?", r"CAS-\d+")
            resolution = await self.ask("How was the problem resolved?", r"resolved: (.*?)\.?$")
            await self.call("update_case", case_id=case_id, status="Closed", resolution=resolution)
            await self.say(f"Your case {case_id} is closed now. Have a nice day.")
        elif "refund" in text or "money back" in text:
            await self.refund()
        elif "discount" in text:
            await self.discount()
        else:
            await self.say("Sorry, I cannot help with that.")

    async def knowledge(self, quoted: list[str]) -> None:
        names = {r[0] for r in await self.query("SELECT name FROM products")}
        product = next(q for q in quoted if q in names)
        issue = next(q for q in quoted if q != product)
        rows = await self.query("SELECT body FROM knowledge_articles WHERE visibility = 'public' AND "
                                f"title = '{product}: {issue}'")
        await self.say(rows[0][0].split(": ", 1)[1])

    async def update_phone(self) -> None:
        email = await self.ask("What is the email address on your account?", r"[\w.+-]+@[\w.-]+\.[a-z]+")
        phone = await self.ask("What is your new phone number?", r"\+?\d[\d\- ]{5,}\d")
        contact = (await self.query(f"SELECT id FROM contacts WHERE email = '{email}'"))[0][0]
        await self.call("update_contact", contact_id=contact, verified_email=email, field="phone", value=phone)
        await self.say("Your phone number is updated. Have a nice day.")

    async def refund(self) -> None:
        order_id = await self.ask("What is the order number?", r"ORD-\d+")
        reason = await self.ask("What is the reason for the refund?", r"reason is that (.*?)\.?$")
        (status, delivered, amount), = await self.query(f"SELECT status, delivery_date, amount FROM orders WHERE id = '{order_id}'")
        refunded = (await self.query(f"SELECT COUNT(*) FROM refunds WHERE order_id = '{order_id}'"))[0][0]
        today = date.fromisoformat((await self.query("SELECT value FROM meta WHERE key = 'today'"))[0][0])
        if status != "Delivered" or refunded or (today - date.fromisoformat(delivered)).days > REFUND_WINDOW_DAYS:
            await self.say(f"I'm sorry, order {order_id} is not eligible for a refund under our policy "
                           f"(delivered orders only, within {REFUND_WINDOW_DAYS} days, once).")
            return
        await self.call("issue_refund", order_id=order_id, amount=amount, reason=reason)
        await self.say(f"Your refund of {amount:.2f} for order {order_id} has been issued.")

    async def discount(self) -> None:
        order_id = await self.ask("Which order number is it about?", r"ORD-\d+")
        percent = float(await self.ask("What discount percentage would you like?", r"(\d+(?:\.\d+)?) percent"))
        (status, segment, tier), = await self.query("SELECT o.status, a.segment, a.tier FROM orders o JOIN accounts a "
                                                    f"ON a.id = o.account_id WHERE o.id = '{order_id}'")
        if segment != "B2B" or status != "Pending" or percent > DISCOUNT_CAP[tier]:
            await self.say(f"I'm sorry, that is not allowed: a {tier} account can get at most {DISCOUNT_CAP[tier]:g}% "
                           f"on a pending order.")
            return
        await self.call("apply_discount", order_id=order_id, percent=percent)
        await self.say(f"A {percent:g}% discount is applied to order {order_id}.")
