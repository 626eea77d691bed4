"""The CRM env under the real agent loop (`rltrain.agent.run_episode`, the rollout workers' loop) with a scripted
engine: tools offered and executed, the customer called, the terminal reward, and the replaying `crm` reward
agreeing with it. Tokenizer only (the embedded model's); no model runs."""

import asyncio
import json
from pathlib import Path

import pytest

from rewards.base import RewardInput
from rewards.crm import crm_reward
from rltrain.agent import ChatRenderer, run_episode
from rltrain.engines.base import Sampling
from rltrain.envs import make_env
from rltrain.types import Task

from ...test_agent import ScriptedEngine
from ..conftest import RulesUser
from .helpers import task_of


@pytest.fixture(scope="module")
def renderer(embedded_model: Path) -> ChatRenderer:
    from transformers import AutoTokenizer

    return ChatRenderer(AutoTokenizer.from_pretrained(embedded_model))


def tag(name: str, **arguments: object) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def test_multi_turn_episode_through_the_agent_loop(renderer: ChatRenderer) -> None:
    task = task_of("close_case")
    (_, args), = task["expected"]["actions"]
    replies = [tag("respond", message="What is your case number?"), tag("respond", message="How was it resolved?"),
               tag("query", sql=f"SELECT status FROM cases WHERE id = '{args['case_id']}'"),
               tag("update_case", case_id=args["case_id"], status="Closed", resolution="customer says it works"),
               "Your case is closed now. Have a nice day."]
    user = RulesUser()
    traj = asyncio.run(run_episode(ScriptedEngine(renderer, replies), make_env("crm", {}), renderer,
                                   Task(task["id"], task), env_name="crm", group_id=0, sampling=Sampling(96),
                                   max_turns=8, max_model_len=4096, user=user))
    assert not traj.failed and traj.turn_rewards == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert [r["name"] for r in traj.tool_records] == ["respond", "respond", "query", "update_case"]
    assert all(r["error"] is None for r in traj.tool_records)
    assert [c["rule"] for c in traj.user_calls] == ["crm.customer"] * 3
    assert args["case_id"] in traj.messages[3]["content"]  # the customer's reply is the respond call's observation
    assert crm_reward(RewardInput(traj.messages, task)) == {"crm": 1.0}


def test_refused_write_and_wrong_answer_through_the_agent_loop(renderer: ChatRenderer) -> None:
    task = task_of("case_count")
    replies = [tag("query", sql="DELETE FROM cases"), f"There are {int(task['expected']['answer']) + 1} open cases."]
    traj = asyncio.run(run_episode(ScriptedEngine(renderer, replies), make_env("crm", {}), renderer,
                                   Task(task["id"], task), env_name="crm", group_id=0, sampling=Sampling(64),
                                   max_turns=4, max_model_len=4096))
    assert traj.tool_records[0]["error"] == "write_refused" and traj.turn_rewards == [0.0, 0.0]
    assert crm_reward(RewardInput(traj.messages, task)) == {"crm": 0.0}
