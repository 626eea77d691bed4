"""`crm`: a stateful business environment on a local SQLite CRM (CRMArena-Pro, spec §6.4).

One episode = one task on a private in-memory copy of its org's database. The agent reads the written policy
in its system prompt, queries the DB (`query`), changes it only through the policy-checked action tools, and
talks through `respond` (a plain-text message counts as `respond` too):

- single-turn tasks (an analyst's question): the first `respond` is the final answer and ends the episode;
- multi-turn tasks (a customer): each `respond` goes to the simulated customer (`customer.py`, through the
  user service), whose reply is the observation; `###STOP###` or the 10th customer reply ends the episode.

At the end the episode is scored (`scoring.score_episode`): the terminal turn's reward is the score, and its
info (`ToolResult.info` / `StepResult.info`) holds `crm` (every score term, the task type, skill and turns) and
`db_diff` (the episode's whole DB diff, at most `diff_max_entries` rows). Every action call's own diff is on
its `ToolResult.info["db_diff"]` as well.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from typing import Any

from rltrain.envs.base import ENVIRONMENTS, Split, StepResult, TextEnv
from rltrain.envs.crm.actions import ACTIONS, apply_action, run_query
from rltrain.envs.crm.customer import MAX_USER_TURNS, STOP, customer_request
from rltrain.envs.crm.db import SCHEMA, Snapshot, diff, fresh_db, snapshot
from rltrain.envs.crm.policy import POLICY_TEXT
from rltrain.envs.crm.scoring import score_episode
from rltrain.envs.crm.tasks import sample_tasks
from rltrain.envs.crm.tools import ALL_TOOLS
from rltrain.tools.base import Tool, ToolResult
from rltrain.types import Task

ROLE = {False: "You are an analyst assistant of the company's CRM team. Answer the question with data from the CRM "
               "database, then give the final answer with `respond` (one short message).",
        True: "You are a customer support agent of the company. Help the customer, following the policy exactly. "
              "Ask for what you need one question at a time, look things up with `query`, change data only with the "
              "action tools, and talk to the customer with `respond`."}


def schema_text() -> str:
    """One line per table, `table(column, ...)`: the schema in few tokens (small models have short contexts)."""
    tables = re.findall(r"CREATE TABLE (\w+) \((.*?)\);", SCHEMA, re.DOTALL)
    column = re.compile(r"(?:^|,)\s*(\w+) [A-Z]+")
    return "\n".join(f"{name}({', '.join(column.findall(body))})" for name, body in tables)


TOOLS_LINE = re.compile(r"^Your tools: (.*)$", re.MULTILINE)
"""The system prompt's line naming the offered tools: the replaying reward offers the same ones."""


def system_prompt(multi_turn: bool, today: str, tools: list[str]) -> str:
    """Role, the offered tools, policy text (versioned with the DB) and schema, as the agent sees them."""
    return (f"{ROLE[multi_turn]}\nYour tools: {', '.join(tools)}\nToday is {today}.\n\n{POLICY_TEXT}\n\n"
            f"Database tables (SQLite):\n{schema_text()}")


@ENVIRONMENTS.register("crm")
class CRMEnv(TextEnv):
    """Business tasks on a seeded SQLite CRM with a simulated customer and a written policy."""

    reward_fn = "crm"
    needs_user = True
    max_turns = 24
    unoffered_tool = "error"
    malformed_call = "error"

    def __init__(self, query_time_limit_s: float = 1.0, max_rows: int = 50, max_user_turns: int = MAX_USER_TURNS,
                 diff_max_entries: int = 20, f1_threshold: float = 0.5, types: list[str] | None = None,
                 offer: list[str] | None = None) -> None:
        """Args:
            query_time_limit_s: seconds one `query` statement may run (progress handler).
            max_rows: rows one `query` shows.
            max_user_turns: customer replies before the episode ends (CRMArena-Pro: 10).
            diff_max_entries: rows of DB diff kept on a trajectory (per call and per episode).
            f1_threshold: token F1 at which a text answer counts as a success.
            types: task types to sample (default: all, `rltrain.envs.crm.tasks.TASK_TYPES`).
            offer: names of the tools to offer (default: all six); fewer schemas make a shorter prompt for
                small-context models (the tiny test model has 1,024 positions).
        """
        from rltrain.envs.crm.tasks import TASK_TYPES

        unknown = set(types or ()) - set(TASK_TYPES)
        if unknown:
            raise ValueError(f"env.kwargs.types has unknown task types {sorted(unknown)}; choose from {list(TASK_TYPES)}")
        if query_time_limit_s <= 0 or max_rows < 1 or max_user_turns < 1:
            raise ValueError("query_time_limit_s must be > 0, max_rows and max_user_turns >= 1")
        self.query_time_limit_s, self.max_rows, self.max_user_turns = query_time_limit_s, max_rows, max_user_turns
        self.diff_max_entries, self.f1_threshold = diff_max_entries, f1_threshold
        self.types = tuple(types or TASK_TYPES)
        names = [cls.name for cls in ALL_TOOLS]
        if offer is not None and (set(offer) - set(names) or "respond" not in offer):
            raise ValueError(f"env.kwargs.offer={offer} must name tools among {names}, respond included")
        self._tools = [cls() for cls in ALL_TOOLS if offer is None or cls.name in offer]
        self.data: dict[str, Any] = {}
        self.conn: sqlite3.Connection | None = None
        self.before: Snapshot = {}
        self.transcript: list[dict[str, str]] = []  # agent <-> user messages only (no tool traffic)
        self.replies: list[str] = []
        self.calls: list[dict[str, Any]] = []  # every tool call: name, arguments, error
        self.user_turns = 0
        self.done = False
        self.outcome: dict[str, Any] = {}
        self.replaying = False  # set by `rltrain.envs.crm.replay`: `respond` then skips the customer

    def tasks(self, split: Split, count: int, seed: int) -> list[Task]:
        return [Task(d["id"], d) for d in sample_tasks(split, count, seed, self.types)]

    def reset(self, task: Task) -> tuple[list[dict[str, str]], dict[str, Any]]:
        self.data = task.data
        self.conn = fresh_db(task.data["org"])
        self.before = snapshot(self.conn)
        self.transcript = [{"role": "user", "content": task.data["prompt"]}]
        self.replies, self.calls, self.user_turns, self.done, self.outcome = [], [], 0, False, {}
        today = self.conn.execute("SELECT value FROM meta WHERE key = 'today'").fetchone()[0]
        messages = [{"role": "system", "content": system_prompt(task.data["multi_turn"], today, [t.name for t in self._tools])},
                    {"role": "user", "content": task.data["prompt"]}]
        return messages, {"type": task.data["type"], "skill": task.data["skill"]}

    def tools(self) -> list[Tool]:
        return list(self._tools)

    # -- tool calls --------------------------------------------------------------------------------------------

    def run_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run `query` or an action in this episode's DB; an action's diff goes on the result's info."""
        assert self.conn is not None, "reset the env before calling its tools"
        if self.done:
            return ToolResult("the episode is over", error="episode_over", terminated=True)
        if name == "query":
            sql = arguments.get("sql") if isinstance(arguments, dict) else None
            outcome = run_query(self.conn, sql, self.query_time_limit_s, self.max_rows)
            self.calls.append({"name": name, "arguments": arguments, "error": outcome.error})
            return ToolResult(outcome.observation, error=outcome.error)
        before = snapshot(self.conn)
        outcome = apply_action(self.conn, name, arguments)
        self.calls.append({"name": name, "arguments": arguments, "error": outcome.error})
        info = {"db_diff": diff(self.conn, before, snapshot(self.conn), self.diff_max_entries)} if name in ACTIONS else {}
        return ToolResult(outcome.observation, error=outcome.error, info=info)

    async def respond(self, message: str) -> ToolResult:
        """A message to the user: the final answer (single-turn) or the next customer turn (multi-turn)."""
        if self.done:
            return ToolResult("the episode is over", error="episode_over", terminated=True)
        self.replies.append(message)
        self.transcript.append({"role": "assistant", "content": message})
        self.calls.append({"name": "respond", "arguments": {"message": message}, "error": None})
        if not self.data["multi_turn"]:
            return self.finish("")
        if self.replaying:  # rebuilding a finished episode from its messages: the customer's words are not needed
            self.user_turns += 1
            return self.finish("") if self.user_turns >= self.max_user_turns else ToolResult("(replayed)")
        reply = (await self.ask(customer_request(self.data, self.transcript))).text
        self.user_turns += 1
        self.transcript.append({"role": "user", "content": reply})
        if STOP in reply or self.user_turns >= self.max_user_turns:
            return self.finish(reply.replace(STOP, "").strip())
        return ToolResult(reply)

    def finish(self, last_words: str) -> ToolResult:
        """Score the episode and end it; the terminal result carries the score and the episode's DB diff."""
        assert self.conn is not None
        self.done = True
        score = score_episode(self.data, self.conn, self.replies, self.f1_threshold)
        self.outcome = {"crm": {**score, "type": self.data["type"], "skill": self.data["skill"],
                                "multi_turn": self.data["multi_turn"], "user_turns": self.user_turns},
                        "db_diff": diff(self.conn, self.before, snapshot(self.conn), self.diff_max_entries)}
        return ToolResult(last_words or "(conversation ended)", reward=score["reward"], terminated=True,
                          info=self.outcome)

    # -- plain-text messages -----------------------------------------------------------------------------------

    async def astep(self, action: str) -> StepResult:
        """A plain-text assistant message (no tool call) is a `respond`."""
        result = await self.respond(action)
        return StepResult(None if result.terminated else result.observation, result.reward, result.terminated,
                          result.truncated, result.info)

    def step(self, action: str) -> StepResult:
        return asyncio.run(self.astep(action))
