"""Review fixes of issue 12 item 7: the per-step bound with a bounded executor, and `env.max_turns` from the env."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from rltrain.agent import ChatRenderer, ToolSettings, run_episode
from rltrain.config.env import EnvConfig, step_timeout
from rltrain.config.loader import ConfigError
from rltrain.config.users import UsersConfig
from rltrain.engines.base import Sampling
from rltrain.envs import make_env
from rltrain.envs.base import STEP_RUNNER, StepResult, StepRunner, StepRunnerExhausted, TextEnv, resolve_max_turns
from rltrain.types import Task
from tests.test_agent import ScriptedEngine

RELEASE = threading.Event()


class Hangs(TextEnv):
    """A synchronous env whose step blocks (in its thread) on "hang" until the test releases it."""

    def tasks(self, split, count, seed):
        return [Task(f"t{i}", {}) for i in range(count)]

    def reset(self, task):
        return [{"role": "user", "content": "Say something."}], {}

    def step(self, action):
        if "hang" in action:
            RELEASE.wait(timeout=30)
        return StepResult(None, reward=1.0, terminated=True)


@pytest.fixture(scope="module")
def renderer(embedded_model: Path) -> ChatRenderer:
    from transformers import AutoTokenizer

    return ChatRenderer(AutoTokenizer.from_pretrained(embedded_model))


def test_more_hung_steps_than_threads_fail_by_name_and_the_worker_still_serves(renderer: ChatRenderer) -> None:
    threads, saved = 2, (STEP_RUNNER.threads, STEP_RUNNER.max_hung)
    STEP_RUNNER.configure(threads, max_hung=8)
    RELEASE.clear()

    async def episode(reply: str, i: int):
        return await run_episode(ScriptedEngine(renderer, [reply]), Hangs(), renderer, Task(f"t{i}", {}), env_name="hangs",
                                 group_id=i, sampling=Sampling(8), max_turns=1, max_model_len=256,
                                 tools=ToolSettings(step_timeout_s=0.3))

    async def scenario():
        # Two waves of hung steps: twice as many as the runner has threads, all stuck at once.
        hung = [t for wave in range(2) for t in await asyncio.gather(*(episode("hang", wave * threads + i) for i in range(threads)))]
        fresh = await asyncio.gather(*(episode("fine", 10 + i) for i in range(threads)))  # new episodes after them
        return hung, fresh

    try:
        hung, fresh = asyncio.run(scenario())
        assert STEP_RUNNER.hung == 2 * threads  # their threads still block, unowned, but gave their slots back
        for traj in hung:  # a named failure, never reward 0
            assert traj.failure == "environment hangs: step timed out after 0.3 s (env.step_timeout_s)"
            assert traj.turn_rewards == [] and traj.reward is None
        assert [t.turn_rewards for t in fresh] == [[1.0], [1.0]] and not any(t.failed for t in fresh)
    finally:
        RELEASE.set()
        STEP_RUNNER.configure(*saved)
    for _ in range(100):  # released threads are no longer counted as hung
        if STEP_RUNNER.hung == 0:
            break
        threading.Event().wait(0.02)
    assert STEP_RUNNER.hung == 0


def test_step_bound_derives_from_the_users_config() -> None:
    users = UsersConfig()
    assert users.worst_case_s == 74.0  # 4 attempts x 15 s + 2 + 4 + 8 s of backoff
    assert step_timeout(EnvConfig(), users, needs_user=True) == 2 * 74.0 + 30.0
    assert step_timeout(EnvConfig(), None, needs_user=False) == 60.0
    assert step_timeout(EnvConfig(step_timeout_s=80), users, needs_user=True) == 80.0
    with pytest.raises(ConfigError, match=r"env.step_timeout_s=50 is shorter than the user service's worst case of 74 s"):
        step_timeout(EnvConfig(step_timeout_s=50), users, needs_user=True)
    assert step_timeout(EnvConfig(step_timeout_s=50), users, needs_user=False) == 50.0  # no user to wait on


def test_max_turns_defaults_to_the_envs_limit_and_may_not_exceed_it() -> None:
    assert EnvConfig().max_turns is None
    assert resolve_max_turns(make_env("telepathy", {}), None) == 16  # not 1: a multi-turn gym plays its turns
    assert resolve_max_turns(make_env("function_gym", {"max_steps": 6}), None) == 6
    assert resolve_max_turns(make_env("function_gym", {"max_steps": 6}), 4) == 4
    with pytest.raises(ConfigError, match="env.max_turns=7 exceeds FunctionGym's limit of 6 turns"):
        resolve_max_turns(make_env("function_gym", {"max_steps": 6}), 7)
    mix = make_env("mix", {"gyms": {"telepathy": {"kwargs": {"max_steps": 4}}, "travel": {}}})
    assert resolve_max_turns(mix, None) == 20  # the largest of its gyms' limits (travel: 20)
    with pytest.raises(ConfigError, match="exceeds MixEnv's limit of 20"):
        resolve_max_turns(mix, 21)


def test_past_max_hung_threads_sync_steps_fail_at_once_by_name() -> None:
    runner, release = StepRunner(threads=1, max_hung=1), threading.Event()

    async def scenario():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(runner.run(release.wait, 5), 0.1)
        with pytest.raises(StepRunnerExhausted, match="1 synchronous env steps are still hung after their timeout"):
            await runner.run(lambda: 1)

    try:
        asyncio.run(scenario())
    finally:
        release.set()
