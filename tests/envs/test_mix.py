"""A mixture of gyms as one environment (spec §1.6: UserRL trains one policy on several gyms at once)."""

from __future__ import annotations

import asyncio

import pytest

from rltrain.config.loader import ConfigError
from rltrain.envs import make_env
from rltrain.envs.mix import MixEnv


def test_tasks_follow_the_weights_and_remember_their_gym() -> None:
    env = make_env("mix", {"gyms": {"function_gym": {"weight": 1}, "telepathy": {"weight": 3, "kwargs": {"max_steps": 4}}}})
    tasks = env.tasks("train", 8, seed=0)
    assert sorted(t.data["gym"] for t in tasks) == ["function_gym"] * 2 + ["telepathy"] * 6
    assert all(t.task_id.startswith(t.data["gym"] + "/") for t in tasks)
    assert tasks == env.tasks("train", 8, seed=0) and tasks != env.tasks("train", 8, seed=1)
    assert env.needs_user and env.protocol == "interact" and env.reward_fn == "turn_rewards"
    test_ids = {t.task_id for t in env.tasks("test", 8, seed=0)}
    assert not test_ids & {t.task_id for t in env.tasks("train", 40, seed=0)}


def test_each_episode_is_played_by_its_gym_with_its_kwargs(rules_user) -> None:
    env = make_env("mix", {"gyms": {"function_gym": {}, "telepathy": {"kwargs": {"max_steps": 2}}}})
    task = next(t for t in env.tasks("train", 4, seed=0) if t.data["gym"] == "telepathy")
    env.bind_user(rules_user, f"{task.task_id}#0")
    messages, _ = env.reset(task)
    assert env.active_name == "telepathy" and messages
    assert asyncio.run(env.astep("[action] Is it alive?")).truncated is False
    assert asyncio.run(env.astep("[action] Is it big?")).truncated is True  # the gym's own max_steps=2
    assert [c["key"] for c in env.user_calls] == [f"{task.task_id}#0/0", f"{task.task_id}#0/1"]


@pytest.mark.parametrize("gyms, message", [
    ({}, "at least one gym"),
    ({"nope": {}}, "not a registered environment"),
    ({"telepathy": {"weight": 0}}, "must be > 0"),
    ({"telepathy": {"wieght": 1}}, "unknown keys"),
    ({"telepathy": {}, "arithmetic": {}}, "share one protocol"),
])
def test_bad_mixes_are_config_errors(gyms: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_env("mix", {"gyms": gyms})


def test_counts_are_exact() -> None:
    env = MixEnv({"function_gym": {"weight": 2}, "telepathy": {"weight": 1}})
    assert [sum(env.counts(n).values()) for n in range(10)] == list(range(10))
