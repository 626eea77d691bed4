"""The `crm` env's contract: tasks, split, system prompt, tools, plain text as `respond` (spec §6.4)."""

import asyncio

from rltrain.envs import make_env
from rltrain.envs.crm.policy import POLICY_VERSION
from rltrain.envs.crm.tasks import TEST_ORGS, TRAIN_ORGS

from .helpers import start, task_of


def test_tasks_are_deterministic_and_the_split_shares_no_org_template_or_id() -> None:
    env = make_env("crm", {})
    train, test = env.tasks("train", 120, 0), env.tasks("train", 120, 0)
    assert [t.task_id for t in train] == [t.task_id for t in test] and [t.data for t in train] == [t.data for t in test]
    test = env.tasks("test", 60, 0)
    assert {t.data["org"] for t in train} <= set(TRAIN_ORGS) and {t.data["org"] for t in test} <= set(TEST_ORGS)
    assert {t.data["template"] for t in train}.isdisjoint({t.data["template"] for t in test})
    assert len({t.task_id for t in train}) == 120 and not {t.task_id for t in train} & {t.task_id for t in test}
    prompts = {t.data["prompt"] for t in train}
    assert not prompts & {t.data["prompt"] for t in test}  # split by template: no test wording is seen in training


def test_reset_shows_policy_and_schema_and_offers_the_tools() -> None:
    env = start(task_of("refund_request"))
    messages, info = env.reset(env.tasks("test", 1, 0)[0])
    assert POLICY_VERSION in messages[0]["content"] and "orders(id, account_id, contact_id" in messages[0]["content"]
    assert "1 Refunds" in messages[0]["content"] and "Today is 2025-06-30" in messages[0]["content"]
    assert [t.name for t in env.tools()] == ["query", "update_case", "issue_refund", "apply_discount", "update_contact",
                                            "respond"]
    assert all(t.schema()["function"]["parameters"]["required"] for t in env.tools())


def test_plain_text_is_a_respond_and_the_terminal_info_holds_the_score() -> None:
    task = task_of("case_count")
    env = start(task)
    result = asyncio.run(env.astep(f"There are {task['expected']['answer']} open cases."))
    assert result.terminated and result.reward == 1.0 and result.observation is None
    assert result.info["crm"]["type"] == "case_count" and result.info["db_diff"]["total"] == 0
    assert env.run_tool("query", {"sql": "SELECT 1"}).error == "episode_over"


def test_bad_kwargs_name_the_key() -> None:
    import pytest

    from rltrain.config.loader import ConfigError

    with pytest.raises(ConfigError, match="types"):
        make_env("crm", {"types": ["nope"]})


def test_offer_limits_the_tools_and_must_keep_respond() -> None:
    import pytest

    from rltrain.config.loader import ConfigError

    env = start(task_of("close_case"), offer=["update_case", "respond"])
    assert [t.name for t in env.tools()] == ["update_case", "respond"]
    with pytest.raises(ConfigError, match="offer"):
        make_env("crm", {"offer": ["query"]})


def test_replay_works_inside_a_running_event_loop() -> None:
    from rltrain.envs.crm.replay import replay_outcome

    task = task_of("case_count")

    async def inside() -> float:
        return replay_outcome(task, [{"role": "assistant", "content": task["expected"]["answer"]}])["crm"]["success"]

    assert asyncio.run(inside()) == 1.0
