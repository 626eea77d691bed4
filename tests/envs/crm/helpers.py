"""Shared helpers of the CRM env tests: start an episode, render calls as the policy would write them."""

from __future__ import annotations

import json
from typing import Any

from rltrain.envs import make_env
from rltrain.envs.crm.env import CRMEnv
from rltrain.envs.crm.tasks import make_task
from rltrain.types import Task


def start(task: dict[str, Any], user: Any = None, **kwargs: Any) -> CRMEnv:
    env = make_env("crm", kwargs)
    assert isinstance(env, CRMEnv)
    env.bind_user(user, f"{task['id']}#0")
    env.reset(Task(task["id"], task))
    return env


def task_of(task_type: str, org: int = 101, seed: int = 0) -> dict[str, Any]:
    """The first instance of `task_type` drawn with `seed` (test phrasing)."""
    import random

    rng = random.Random(seed)
    while (task := make_task(task_type, org, 2, rng)) is None:
        pass
    return task


def call(name: str, **arguments: Any) -> dict[str, str]:
    """An assistant message holding one Hermes-style call, as the policy writes it."""
    return {"role": "assistant", "content": f'<tool_call>{json.dumps({"name": name, "arguments": arguments})}</tool_call>'}


def say(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def as_messages(conversation: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The scripted agent's conversation as the chat messages a rollout records (calls rendered as text)."""
    out = []
    for m in conversation:
        if m["role"] == "assistant" and m.get("tool_calls"):
            out.append(call(m["tool_calls"][0]["function"]["name"], **m["tool_calls"][0]["function"]["arguments"]))
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out
