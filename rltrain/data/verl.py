"""verl-style RL parquet rows (spec §1.6) to and from our gyms' task sets.

An RL row is a prompt, not a trajectory: `{data_source, prompt: [messages], ability, reward_model: {style,
ground_truth, env_name}, extra_info: {split, index, task_id, task_data, tools_kwargs}}`. We write the opening
messages our env's `reset` gives, and keep the task itself in `extra_info.task_id` and `extra_info.task_data`
(a JSON string: task data of different tasks have different keys, which a Parquet struct would merge), so a row
reads back as the same `Task`. Rows from verl recipes without those keys become tasks holding the prompt and the
ground truth (`{"prompt": [...], "answer": ...}`), for an env that plays a prompt as is.
"""

from __future__ import annotations

import json
from typing import Any

from rltrain.types import Task

_GROUND_TRUTH_KEYS = ("answer", "ground_truth", "target", "solution")


def task_to_verl(task: Task, env_name: str, split: str, index: int, prompt: list[dict[str, str]],
                 tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One verl row for `task`; `prompt` is the env's opening messages (`env.reset(task)[0]`)."""
    truth = next((task.data[k] for k in _GROUND_TRUTH_KEYS if k in task.data), "")
    return {
        "data_source": f"interact_{env_name}",
        "prompt": [{"role": m["role"], "content": m["content"]} for m in prompt],
        "ability": "interaction",
        "reward_model": {"style": "rule", "ground_truth": json.dumps(truth, ensure_ascii=False) if not isinstance(truth, str) else truth,
                         "env_name": env_name},
        "extra_info": {"split": split, "index": index, "task_id": task.task_id,
                       "task_data": json.dumps(task.data, ensure_ascii=False),
                       "tools": json.dumps(tools or [], ensure_ascii=False),
                       "need_tools_kwargs": bool(tools),
                       "tools_kwargs": {"interact_with_env": {"create_kwargs": {"env_name": env_name, "id": task.task_id}}}},
    }


def verl_to_task(row: dict[str, Any], index: int = 0) -> Task:
    """The `Task` a verl row describes (see the module docstring for rows from other writers)."""
    if "prompt" not in row:
        raise ValueError(f"verl row {index} has no 'prompt'; a verl RL row is {{data_source, prompt, reward_model, extra_info}}")
    extra = row.get("extra_info") or {}
    data = extra.get("task_data")
    if isinstance(data, str):
        data = json.loads(data)
    if data is None:
        truth = (row.get("reward_model") or {}).get("ground_truth")
        data = {"prompt": row["prompt"], "answer": truth, "data_source": row.get("data_source", "")}
    task_id = extra.get("task_id") or f"{row.get('data_source', 'verl')}-{extra.get('index', index)}"
    return Task(task_id=str(task_id), data=data)


def env_tasks_to_verl(env_name: str, split: str, count: int, seed: int = 0,
                      env_kwargs: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`count` tasks of a registered env's `split` as verl rows (prompts rendered by the env's `reset`)."""
    import rltrain.envs  # noqa: F401  (registers the environments)
    from rltrain.envs.base import make_env

    env = make_env(env_name, env_kwargs or {})
    rows = []
    for i, task in enumerate(env.tasks(split, count, seed)):  # type: ignore[arg-type]
        prompt, _ = env.reset(task)
        tools = [t.schema() for t in env.tools()]
        rows.append(task_to_verl(task, env_name, split, i, prompt, tools))
    return rows
