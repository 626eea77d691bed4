"""The arithmetic environment: seeded tasks and a held-out split that never meets training."""

from __future__ import annotations

from rltrain.envs import make_env


def test_splits_are_disjoint_and_complete() -> None:
    env = make_env("arithmetic", {})
    test = {t.task_id for t in env.tasks("test", 100, seed=0)}
    train = {t.task_id for t in env.tasks("train", 2000, seed=0)}
    assert len(test) == 30 and len(train) == 70 and not test & train


def test_tasks_are_seeded() -> None:
    env = make_env("arithmetic", {})
    assert env.tasks("train", 8, seed=3) == env.tasks("train", 8, seed=3)
    assert env.tasks("train", 8, seed=3) != env.tasks("train", 8, seed=4)


def test_episode_is_one_turn() -> None:
    env = make_env("arithmetic", {"system_prompt": "Be brief."})
    task = env.tasks("test", 1, seed=0)[0]
    messages, _ = env.reset(task)
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1]["content"] == f"What is {task.data['a']}+{task.data['b']}? Answer with just the number."
    assert task.data["answer"] == task.data["a"] + task.data["b"]
    result = env.step("7")
    assert result.terminated and result.observation is None
