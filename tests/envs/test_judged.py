"""What the four LLM-judged gyms share (`rltrain.envs.judged`; spec §1.3, §1.4, §1.5, §1.6): tasks, verbs,
truncation, reward clipping, and the failure policy (malformed JSON -> reward 0; UserSimError -> raised)."""

from __future__ import annotations

import asyncio

import pytest

from rltrain.envs import make_env
from rltrain.envs.judged import DATA_DIR, JudgedGym
from rltrain.users import UserSimError

GYMS = ["telepathy", "turtle", "persuade", "intention"]
# A first move each gym answers by calling the user (the verb every gym offers).
PROBE = "[action] Is it about money?"


@pytest.mark.parametrize("name", GYMS)
def test_splits_disjoint_and_big_enough(name: str) -> None:
    """Spec §1.6: train and test never share a task; at least 24 tasks, at least 20% held out."""
    env = make_env(name, {})
    train = {t.task_id for t in env.tasks("train", 10_000, 0) if "~" not in t.task_id}
    test = {t.task_id for t in env.tasks("test", 10_000, 0) if "~" not in t.task_id}
    assert not train & test
    assert len(train) + len(test) >= 24 and len(test) >= 0.2 * (len(train) + len(test))
    # No task text is shared either (an id rename could hide a duplicate).
    text = lambda t: {k: v for k, v in t.data.items() if k not in ("id", "split")}  # noqa: E731
    assert not {str(text(t)) for t in env.tasks("train", len(train), 0)} & {str(text(t)) for t in env.tasks("test", len(test), 0)}


@pytest.mark.parametrize("name", GYMS)
def test_tasks_deterministic_in_seed_and_cycling(name: str) -> None:
    env = make_env(name, {})
    ids = lambda seed, n=8: [t.task_id for t in env.tasks("train", n, seed)]  # noqa: E731
    assert ids(0) == ids(0) and ids(0) != ids(1)
    size = len({t.task_id for t in env.tasks("train", 10_000, 0) if "~" not in t.task_id})
    cycled = ids(0, 2 * size + 1)
    assert len(set(cycled)) == len(cycled)  # later passes are suffixed, so episode keys stay unique
    assert cycled[size] == f"{cycled[0]}~1" and cycled[2 * size] == f"{cycled[0]}~2"


def test_package_data_is_declared() -> None:
    """The task files ship with the package (pyproject package-data)."""
    pyproject = (DATA_DIR.parents[2] / "pyproject.toml").read_text()
    assert '"envs/data/*.json"' in pyproject.split("[tool.setuptools.package-data]")[1].split("[tool.")[0]
    assert {p.name for p in DATA_DIR.glob("*.json")} >= {f"{name}.json" for name in GYMS}


@pytest.mark.parametrize("name", GYMS)
def test_contract(name: str, rules_user, start_gym) -> None:
    env = make_env(name, {})
    assert isinstance(env, JudgedGym)
    assert env.needs_user and env.protocol == "interact" and env.reward_fn == "turn_rewards"
    env.bind_user(rules_user, "t#0")
    messages, _ = env.reset(env.tasks("test", 1, 0)[0])
    assert [m["role"] for m in messages] == ["system", "user"] and "[finish]" in messages[0]["content"]


@pytest.mark.parametrize("name", GYMS)
def test_finish_format_and_truncation(name: str, rules_user, start_gym) -> None:
    """Spec §1.3/§1.5: [finish] ends with reward 0; a verb not offered is a hint; max_steps truncates."""
    env = start_gym(name, rules_user, make_env(name, {}).tasks("train", 1, 0)[0], max_steps=3)
    finish = env.step("[finish]")
    assert finish.terminated and finish.reward == 0 and not rules_user.requests
    env = start_gym(name, rules_user, make_env(name, {}).tasks("train", 1, 0)[0], max_steps=3)
    wrong = env.step("[search] anything")
    assert "Format wrong" in wrong.observation and wrong.reward == 0 and not wrong.truncated
    assert not env.step("hello").truncated
    last = env.step(PROBE)
    assert last.truncated and not last.terminated and last.observation


@pytest.mark.parametrize("name", GYMS)
def test_user_sim_error_propagates(name: str, failing_user, start_gym) -> None:
    """Spec §1.11 decided: a dead user service fails the episode (raises), never a reward of 0."""
    env = start_gym(name, failing_user, make_env(name, {}).tasks("train", 1, 0)[0])
    with pytest.raises(UserSimError):
        asyncio.run(env.astep(PROBE))
    unbound = start_gym(name, None, make_env(name, {}).tasks("train", 1, 0)[0])
    with pytest.raises(UserSimError, match="users.backend"):
        unbound.step(PROBE)


@pytest.mark.parametrize("name", GYMS)
def test_malformed_reply_is_reward_zero_and_visible(name: str, scripted_user, start_gym) -> None:
    """Spec §1.4: unparseable simulator output gives fallback feedback and reward 0; here also info["judge_error"]."""
    user = scripted_user("I think the answer is yes!", "sure", rules=None if name != "intention" else {"intention.evaluate"})
    env = start_gym(name, user, make_env(name, {}).tasks("train", 1, 0)[0])
    result = env.step(PROBE)
    assert result.reward == 0 and not result.terminated and result.observation
    assert "no JSON" in result.info["judge_error"] and env.judge_errors == 1
    assert len(env.user_calls) >= 1  # the failed call is still recorded (it cost tokens)


def test_step_penalty_and_clipping(scripted_user, start_gym) -> None:
    """Spec §1.4: reward - step_penalty, clipped to [0, 1] when normalize_rewards (the default here)."""
    yes = '```json\n{"judgment": "Yes", "feedback": "Right."}\n```'
    env = start_gym("telepathy", scripted_user(yes), "telepathy-elephant", step_penalty=0.25)
    assert env.step("[answer] elephant").reward == pytest.approx(0.75)
    env = start_gym("telepathy", scripted_user('{"response": "No"}'), "telepathy-elephant", step_penalty=0.25)
    assert env.step("[action] Is it blue?").reward == 0.0  # clipped
    env = start_gym("telepathy", scripted_user('{"response": "No"}'), "telepathy-elephant", step_penalty=0.25,
                    normalize_rewards=False)
    assert env.step("[action] Is it blue?").reward == pytest.approx(-0.25)


def test_bad_kwargs() -> None:
    from rltrain.config.loader import ConfigError

    with pytest.raises(ConfigError, match="max_steps"):
        make_env("turtle", {"max_steps": 0})
    with pytest.raises(ConfigError):
        make_env("intention", {"success_threshold": 1.0})
