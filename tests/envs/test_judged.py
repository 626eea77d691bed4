"""What the four LLM-judged gyms share (`rltrain.envs.judged`; spec §1.3, §1.4, §1.5, §1.6): tasks, verbs,
truncation, reward clipping, and the failure policy (malformed JSON -> asked again, then MalformedReplyError, or
reward 0 in the papers' fallback mode; UserSimError -> raised; issue 17)."""

from __future__ import annotations

import asyncio

import pytest

from rltrain.envs import make_env
from rltrain.envs.judged import DATA_DIR, JudgedGym, MalformedReplyError
from rltrain.users import UserSimError
from tests.envs.conftest import papers_rule

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
def test_malformed_replies_fail_the_episode_never_reward_zero(name: str, scripted_user, start_gym) -> None:
    """Issue 17: a reply still malformed after `judge_retries` asks is the simulator's failure: MalformedReplyError,
    a UserSimError (the agent loop marks the episode failed). Every malformed call is recorded and marked."""
    tries = 1 + JudgedGym.judge_retries
    user = scripted_user(*["I think the answer is yes!"] * tries, rules=None if name != "intention" else {"intention.evaluate"})
    env = start_gym(name, user, make_env(name, {}).tasks("train", 1, 0)[0])
    with pytest.raises(MalformedReplyError, match=r"sent 3 malformed replies in a row .*no JSON object.*users.model"):
        env.step(PROBE)
    assert issubclass(MalformedReplyError, UserSimError)
    assert [c["malformed"] for c in env.user_calls] == ["no JSON object in the reply"] * tries  # they cost tokens
    assert env.judge_errors == tries


@pytest.mark.parametrize("name", GYMS)
def test_papers_fallback_is_reward_zero_and_visible(name: str, scripted_user, start_gym) -> None:
    """Spec §1.4 as an opt-in (`on_malformed="fallback"`, no retry): fallback feedback, reward 0, info["judge_error"]."""
    user = scripted_user("I think the answer is yes!", "sure", rules=None if name != "intention" else {"intention.evaluate"})
    env = papers_rule(start_gym(name, user, make_env(name, {}).tasks("train", 1, 0)[0]))
    result = env.step(PROBE)
    assert result.reward == 0 and not result.terminated and result.observation
    assert "no JSON" in result.info["judge_error"] and env.judge_errors == 1
    assert env.user_calls[0]["malformed"] == "no JSON object in the reply"


def test_a_malformed_reply_is_asked_again_with_what_was_wrong(scripted_user, start_gym) -> None:
    """The retry shows the simulator its reply and the reason (a temperature-0 model, or the cache, would repeat
    itself otherwise); the third reply parses, so the turn is played and the two bad ones are marked."""
    user = scripted_user("Sure, it is!", '{"response": "Definitely"}', '```json\n{"response": "Yes"}\n```')
    env = start_gym("telepathy", user, "telepathy-elephant")
    result = env.step("[action] Is it an animal?")
    assert result.observation == "Yes" and result.reward == 0
    assert [c.get("malformed") for c in env.user_calls] == [
        "no JSON object in the reply", "response='Definitely' is not one of Yes, No, Maybe", None]
    assert "(attempt 3 parsed)" in result.info["judge_error"] and env.judge_errors == 2
    first, second, third = user.requests
    assert second.messages[:-2] == first.messages and second.messages[-2] == {"role": "assistant", "content": "Sure, it is!"}
    assert "no JSON object" in second.messages[-1]["content"] and "Definitely" in third.messages[-2]["content"]
    assert [r.call for r in user.requests] == [0, 1, 2]  # each attempt is its own call: its own key and seed


def test_accepted_replies_are_audited_on_their_call_record(scripted_user, start_gym) -> None:
    """A Yes/No the facts decide otherwise is flagged on the call record (`rltrain.envs.audit`); a truthful or
    undecidable answer is not."""
    user = scripted_user(*(f'```json\n{{"response": "{a}"}}\n```' for a in ("No", "Yes", "No")))
    env = start_gym("telepathy", user, "telepathy-elephant")
    for question in ("Is it an animal?", "Is it alive?", "Is it big?"):  # lie, truth, undecidable ("large" is)
        env.step(f"[action] {question}")
    flags = [c.get("audit") for c in env.user_calls]
    assert flags[1:] == [None, None] and [f["kind"] for f in flags[0]] == ["contradiction"]
    assert "the user said No, the facts say Yes" in flags[0][0]["detail"]


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
