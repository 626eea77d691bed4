"""FunctionGym's rules (spec §1.5), played by scripted agents."""

from __future__ import annotations

from rltrain.envs import make_env
from rltrain.envs.function_gym import _evaluate


def test_rules() -> None:
    env = make_env("function_gym", {"max_steps": 6})
    task = env.tasks("test", 1, seed=0)[0]
    data = task.data
    env.reset(task)
    test_case = ",".join(map(str, data["test"]))
    assert env.step("[search] test").observation == f"The test case is: {test_case}"
    assert "That is the test case" in env.step(f"[action] {test_case}").observation  # refused
    probe = env.step("[action] 1,2,3,4")
    value = _evaluate(data["shape"], data["coefficients"], [1, 2, 3, 4])
    assert probe.observation == f"f(1,2,3,4) = {value:g}" and probe.reward == 0
    wrong = env.step(f"[answer] {data['answer'] + 1}")
    assert wrong.reward == 0 and not wrong.terminated
    right = env.step(f"[answer] {data['answer']}")
    assert right.reward == 1.0 and right.terminated


def test_truncation_and_finish() -> None:
    env = make_env("function_gym", {"max_steps": 2})
    env.reset(env.tasks("train", 1, seed=0)[0])
    assert not env.step("[action] 1,1,1,1").truncated
    assert env.step("[action] 2,2,2,2").truncated
    env.reset(env.tasks("train", 1, seed=0)[0])
    assert env.step("[finish]").terminated
    assert "Format wrong" in env.step("hello").observation


def test_splits_never_share_a_rule() -> None:
    env = make_env("function_gym", {})
    rule = lambda t: (t.data["shape"], tuple(t.data["coefficients"]))  # noqa: E731
    assert not {rule(t) for t in env.tasks("train", 300, 0)} & {rule(t) for t in env.tasks("test", 100, 0)}
