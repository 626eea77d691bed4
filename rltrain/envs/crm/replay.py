"""Rebuild a finished CRM episode from its messages and score it: what the `crm` reward function runs.

The assistant messages are parsed with the agent loop's parser (`rltrain.tools.parsers`) and their calls run
with the loop's own executor (`rltrain.tools.execution.run_calls`: the same schema checks, the same order) on a
fresh copy of the task's org; a message without calls is a `respond`, as in the live episode. The customer is
not called again: only the agent's actions and words decide the score. So the reward needs no record of the
live episode beyond its messages, and a kept trajectory can be re-verified at any time (`rltrain data generate`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

from rltrain.envs.crm.env import TOOLS_LINE, CRMEnv
from rltrain.tools.execution import run_calls
from rltrain.tools.parsers import parse_calls
from rltrain.types import Task


async def _replay(env: CRMEnv, messages: list[dict[str, Any]], parser: str) -> None:
    offered = {tool.name: tool for tool in env.tools()}
    turn = 0
    for message in messages:
        if message["role"] != "assistant" or env.done:
            continue
        parsed = parse_calls(message.get("content") or "", offered, parser, turn)
        turn += 1
        if parsed.calls:
            await run_calls(parsed.calls, parsed.formats, offered, env, unoffered=env.unoffered_tool)
        elif not parsed.errors:
            await env.respond(message.get("content") or "")


def replay_outcome(task: dict[str, Any], messages: list[dict[str, Any]], parser: str = "permissive",
                   f1_threshold: float = 0.5) -> dict[str, Any]:
    """The outcome (`CRMEnv.outcome`: score terms and the DB diff) of the episode `messages` record."""
    system = next((m.get("content") or "" for m in messages if m.get("role") == "system"), "")
    offered = TOOLS_LINE.search(system)  # the live episode's tools: a call to another one did not run there either
    env = CRMEnv(f1_threshold=f1_threshold, offer=offered.group(1).split(", ") if offered else None)
    env.reset(Task(task["id"], task))
    env.replaying = True
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_replay(env, messages, parser))
    else:  # called from inside an event loop (an async test, a notebook): replay on a thread of its own
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _replay(env, messages, parser)).result()
    if not env.done:
        env.finish("")
    return env.outcome
