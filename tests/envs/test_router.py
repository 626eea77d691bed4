"""The router environment (spec §4.1, §4.4, §4.5) and its reward (`rewards.router`), branch by branch.

Episodes run through the real agent loop (canonical tool template, parser, execution) with a scripted engine for the
router's messages (no small model writes valid calls reliably) and an in-process stand-in for the LLM service that
answers per pool model (`PoolUser`): this tests the env's logic, which has no engine in it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from rewards.router import (
    NO_SOLUTION,
    Route,
    RouterReward,
    final_solution,
    resolve_verifier,
    router_reward,
    verify_last_number,
    verify_string_match,
    verify_word_problems,
)
from rltrain.costs import Ledger, load_price_table, records_from_trajectory
from rltrain.envs import make_env
from rltrain.types import Task
from rltrain.users import UserReply, UserRequest, UserSimError

SMOL, QWEN = "smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"
POOL = [{"name": SMOL, "tier": "budget", "description": "Small and fast."},
        {"name": QWEN, "tier": "standard", "description": "Stronger at arithmetic and code."}]
TABLE = load_price_table("synthetic-cpu")


def user_fn(solution: str, answer: object) -> float:
    """A user-supplied verifier (referenced as tests.envs.test_router:user_fn)."""
    return 0.5 if "maybe" in solution else 0.0


# -- the reward (§4.4) -------------------------------------------------------------------------------------------


def test_shaped_reward_by_hand() -> None:
    r = RouterReward()  # lambda 3, K 1, c_max 0.8 (released script)
    assert r.shape(1.0, 0.05) == pytest.approx(1.0 - 3 * 0.05)
    assert r.shape(1.0, 0.5) == pytest.approx(1.0 - 0.8)  # 1.5 > c_max: capped
    assert r.shape(0.0, 0.1) == 0.0 and r.shape(0.5, 0.0) == 0.5
    assert RouterReward(lam=2.0, k=1.0, c_max=0.6).shape(1.0, 0.1) == pytest.approx(0.8)  # README example constants
    with pytest.raises(ValueError, match="lam >= 0"):
        RouterReward(lam=-1)


def test_final_answer_extraction_needs_the_last_turn_to_route_to_the_user() -> None:
    assert final_solution([Route((SMOL,)), Route(("user",), "7")]) == "7"
    assert final_solution([Route(("user",), "x"), Route((SMOL,))]) is NO_SOLUTION
    assert final_solution([]) is NO_SOLUTION
    terms = router_reward([Route((SMOL,))], 7, verify_last_number, 0.01)
    assert terms == {"reward": 0.0, "score": 0.0, "cost_usd": 0.01, "valid": 0.0, "tool_called": 1.0}


def test_simple_source_scores_one_only_without_any_tool_call() -> None:
    direct = router_reward([Route(("user",), "Hello!")], None, verify_string_match, 0.0, simple=True)
    assert direct["score"] == 1.0 and direct["reward"] == 1.0
    routed = router_reward([Route((SMOL,)), Route(("user",), "Hello!")], None, verify_string_match, 0.004, simple=True)
    assert routed["score"] == 0.0 and routed["reward"] == 0.0
    selected = router_reward([Route(("user",), "Hello!", selected=True)], None, verify_string_match, 0.0, simple=True)
    assert selected["score"] == 0.0  # select_response is a tool call too


def test_verifiers() -> None:
    assert verify_last_number("<think>3+4</think>3 + 4 = 7.", 7) == 1.0
    assert verify_last_number("7 apples, no 8", 7) == 0.0 and verify_last_number("no number", 7) == 0.0
    assert verify_word_problems("So 12 - 5 = 7. The answer is 7.", 7) == 1.0
    assert verify_string_match("  Paris! ", "paris") == 1.0 and verify_string_match("Lyon", ["Paris", "paris"]) == 0.0
    assert resolve_verifier("tests.envs.test_router:user_fn")("maybe 7", 7) == 0.5
    with pytest.raises(ValueError, match="not one of"):
        resolve_verifier("exact")
    with pytest.raises(ValueError, match="cannot be imported"):
        resolve_verifier("tests.envs.test_router:nope")
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        router_reward([Route(("user",), "x")], 1, lambda s, a: 2.0, 0.0)


def test_synthetic_price_scale_gives_the_strong_model_a_tenth_to_a_third_of_k() -> None:
    """Issue 14: one call of the strong model costs 0.1-0.3 of K at CPU lengths (printed scale: x250)."""
    c = TABLE.usd(QWEN, 150, 100)
    assert 0.1 <= 3.0 * c <= 0.3
    print(f"price scale x{TABLE.scale:g}: one {QWEN} call (150 in, 100 out) costs ${c:.4f}, lambda*C = {3 * c:.3f}")


# -- episodes ----------------------------------------------------------------------------------------------------


class PoolUser:
    """The LLM service for pool calls: a fixed reply per model (input 40, output 20 tokens), or down."""

    def __init__(self, replies: dict[str, str], down: set[str] = frozenset()) -> None:
        self.replies, self.down, self.requests = replies, set(down), []

    async def respond(self, request: UserRequest) -> UserReply:
        self.requests.append(request)
        if request.model in self.down:
            raise UserSimError(f"engine of {request.model} is down (test stand-in)")
        return UserReply(self.replies[request.model], prompt_tokens=40, completion_tokens=20, backend=f"vllm:{request.model}",
                         model=request.model)


def call(model: str, prompt: str = "Answer with the number.", temperature: float = 0.0) -> str:
    name = "call_" + model.replace("-", "_").replace(".", "_")
    return "<tool_call>" + json.dumps({"name": name, "arguments": {"optimized_system_prompt": prompt,
                                                                   "temperature": temperature}}) + "</tool_call>"


def select(model: str) -> str:
    name = "call_" + model.replace("-", "_").replace(".", "_")
    return "<tool_call>" + json.dumps({"name": "select_response", "arguments": {"model_call_name": name}}) + "</tool_call>"


TASK = Task("add-3-4", {"question": "What is 3+4? Answer with just the number.", "answer": 7, "source": "arithmetic",
                        "verifier": "last_number", "pool": [SMOL, QWEN]})


@pytest.fixture(scope="module")
def renderer(embedded_model: Path):
    from transformers import AutoTokenizer

    from rltrain.agent import ChatRenderer

    return ChatRenderer(AutoTokenizer.from_pretrained(embedded_model))


def play(renderer, replies: list[str], user: PoolUser, task: Task = TASK, **kwargs):
    from rltrain.agent import run_episode
    from rltrain.engines.base import Sampling
    from tests.test_agent import ScriptedEngine

    env = make_env("router", {"pool": POOL, **kwargs})
    traj = asyncio.run(run_episode(ScriptedEngine(renderer, replies), env, renderer, task, env_name="router", group_id=0,
                                   sampling=Sampling(256), max_turns=env.max_turns, max_model_len=4096, user=user))
    return traj, env


def test_direct_answer_costs_nothing(renderer) -> None:
    user = PoolUser({})
    traj, env = play(renderer, ["3 + 4 = 7"], user)
    assert not traj.failed and traj.turn_rewards == [1.0] and not user.requests and traj.tool_calls == 0
    assert env.metadata()["final_route"] == "direct" and env.metadata()["total_cost"] == 0.0


def test_call_then_select_forwards_only_the_query_and_charges_the_call(renderer) -> None:
    user = PoolUser({QWEN: "The sum is 7."})
    traj, env = play(renderer, [call(QWEN, "Be brief."), select(QWEN)], user)
    c = 40 / 1e6 * 100.0 + 20 / 1e6 * 400.0  # synthetic-cpu prices of the 0.5B, §4.3
    assert not traj.failed and traj.turn_rewards == [0.0, pytest.approx(1.0 - 3.0 * c)]
    [request] = user.requests
    assert request.system == "Be brief." and request.model == QWEN and request.hat == "pool"
    assert request.messages == ({"role": "user", "content": TASK.data["question"]},)  # no history, no prefix
    assert traj.user_calls[0]["usd"] == pytest.approx(c) and traj.user_calls[0]["role"] == "pool"
    # the ledger, fed the same trajectory, charges exactly the reward's C to this trajectory's pool calls
    ledger = Ledger(TABLE)
    ledger.add(records_from_trajectory(traj, SMOL, step=1))
    assert ledger.by_role["pool"].usd == pytest.approx(c) == pytest.approx(env.metadata()["total_cost"])
    assert env.metadata()["models_called"] == [QWEN] and env.metadata()["final_route"] == "select"


def test_wrong_answer_scores_zero_whatever_it_cost(renderer) -> None:
    traj, _ = play(renderer, [call(SMOL), select(SMOL)], PoolUser({SMOL: "3 + 4 = 8"}))
    assert traj.turn_rewards == [0.0, 0.0] and not traj.failed


def test_summary_after_a_call_is_a_valid_answer(renderer) -> None:
    traj, _ = play(renderer, [call(SMOL), "It is 7."], PoolUser({SMOL: "7"}))
    c = 40 / 1e6 * 25.0 + 20 / 1e6 * 100.0
    assert traj.turn_rewards[-1] == pytest.approx(1.0 - 3.0 * c)


def test_unoffered_tool_ends_the_episode_with_a_named_outcome(renderer) -> None:
    task = Task("add-3-4", {**TASK.data, "pool": [SMOL]})
    traj, _ = play(renderer, [call(QWEN), "7"], PoolUser({QWEN: "7"}), task=task)
    assert traj.finish_reason == "unoffered_tool" and traj.turn_rewards == [0.0] and not traj.failed


def test_selecting_an_uncalled_model_is_a_tool_error(renderer) -> None:
    traj, _ = play(renderer, [select(QWEN), "7"], PoolUser({}))
    assert traj.tool_records[0]["error"] == "bad_selection" and traj.turn_rewards == [0.0, 1.0]


def test_max_turns_without_routing_to_the_user_scores_zero(renderer) -> None:
    traj, env = play(renderer, [call(SMOL), call(SMOL), call(SMOL)], PoolUser({SMOL: "7"}))
    assert env.max_turns == 3 and traj.finish_reason == "max_turns" and sum(traj.turn_rewards) == 0.0


def test_a_down_model_is_a_tool_error_recorded_as_a_free_failed_call(renderer) -> None:
    user = PoolUser({SMOL: "7"}, down={QWEN})
    traj, _ = play(renderer, [call(QWEN), call(SMOL), select(SMOL)], user)
    assert not traj.failed and traj.tool_records[0]["error"] == "model_down"
    assert "unavailable" in traj.messages[3]["content"]  # the router sees the error
    failed = [c for c in traj.user_calls if not c["success"]]
    assert len(failed) == 1 and failed[0]["usd"] == 0.0 and failed[0]["model"] == QWEN
    records = records_from_trajectory(traj, SMOL)
    assert [(r.model, r.success) for r in records if r.role == "pool"] == [(QWEN, False), (SMOL, True)]
    assert Ledger(TABLE).add(records)[-2].usd == 0.0
    assert traj.turn_rewards[-1] == pytest.approx(1.0 - 3.0 * (40 / 1e6 * 25.0 + 20 / 1e6 * 100.0))


def test_whole_pool_down_fails_the_episode_instead_of_scoring_zero(renderer) -> None:
    task = Task("add-3-4", {**TASK.data, "pool": [QWEN]})
    traj, _ = play(renderer, [call(QWEN), "7"], PoolUser({}, down={QWEN}), task=task)
    assert traj.failed and "every offered pool model failed" in traj.failure


def test_simple_task_answered_directly_scores_one(renderer) -> None:
    task = Task("simple-0", {"question": "Hi!", "answer": None, "source": "simple", "verifier": "string_match",
                             "pool": [SMOL]})
    assert play(renderer, ["Hello! How can I help?"], PoolUser({}), task=task)[0].turn_rewards == [1.0]
    routed = play(renderer, [call(SMOL), select(SMOL)], PoolUser({SMOL: "Hello!"}), task=task)[0]
    assert routed.turn_rewards[-1] == 0.0


# -- tools and tasks -------------------------------------------------------------------------------------------------


def test_tool_descriptions_carry_price_capability_and_context() -> None:
    env = make_env("router", {"pool": POOL})
    env.reset(TASK)
    schemas = {t.name: t.schema()["function"] for t in env.tools()}
    assert set(schemas) == {"call_smollm2_135m_instruct", "call_qwen2_5_coder_0_5b_instruct", "select_response"}
    text = schemas["call_qwen2_5_coder_0_5b_instruct"]["description"]
    assert "$100.00 per 1M input" in text and "$400.00 per 1M output" in text and "Stronger at arithmetic" in text
    assert "2048 tokens" in text and env.unoffered_tool == "end"


def test_pools_are_drawn_per_task_by_tier_or_fixed_pool() -> None:
    """§4.5: per-tier counts, or fixed pools with their probabilities; deterministic in the seed."""
    env = make_env("router", {"pool": POOL + [{"name": "qwen2.5-coder-1.5b-instruct", "tier": "premium"}],
                              "tier_counts": {"budget": [0, 1], "standard": [1, 1], "premium": [0, 1]},
                              "fixed_pools": [{"models": [SMOL], "p": 0.25}], "simple_fraction": 0.2})
    tasks = env.tasks("train", 200, seed=3)
    assert [t.data["pool"] for t in tasks] == [t.data["pool"] for t in env.tasks("train", 200, seed=3)]
    pools = [tuple(t.data["pool"]) for t in tasks]
    assert 0.15 < pools.count((SMOL,)) / len(pools) < 0.4  # the fixed pool (p=0.25) plus tier draws that give it
    assert all(QWEN in p for p in pools if p != (SMOL,))  # standard: exactly one, and only the 0.5B is standard
    assert 0.1 < sum(t.data["source"] == "simple" for t in tasks) / len(tasks) < 0.3
    with pytest.raises(Exception, match="not in the pool"):
        make_env("router", {"pool": POOL, "fixed_pools": [{"models": ["gpt-5"], "p": 0.5}]})
    with pytest.raises(Exception, match="no price for model 'smollm2-135m-instruct'"):  # every pool model must be priced
        make_env("router", {"pool": POOL, "price_table": "xrouter-2025"})


def test_routing_metrics_and_the_collapse_warning(caplog: pytest.LogCaptureFixture) -> None:
    from rewards.router import routing_metrics
    from rltrain.types import Trajectory

    def traj(reward: float, models: list[str], usd: float = 0.01) -> Trajectory:
        t = Trajectory(task_id="q", group_id=0, env="router", prompt_ids=[1], reward=reward)
        t.user_calls = [{"role": "pool", "model": m, "usd": usd, "success": True} for m in models]
        return t

    batch = [traj(0.97, [QWEN]) for _ in range(10)] + [traj(1.0, []), traj(0.0, [SMOL])]
    with caplog.at_level("WARNING"):
        m = routing_metrics(batch)
    assert m["router/accuracy"] == pytest.approx(11 / 12) and m["router/direct_rate"] == pytest.approx(1 / 12)
    assert m["router/calls_per_query"] == pytest.approx(11 / 12) and m["router/usd_per_query"] == pytest.approx(0.11 / 12)
    assert m["router/share/" + QWEN] == pytest.approx(10 / 11) and m["router/collapsed"] == 1.0
    assert m["router/entropy"] == pytest.approx(-(10 / 11) * __import__("math").log(10 / 11) - (1 / 11) * __import__("math").log(1 / 11))
    assert "routing collapse" in caplog.text
    assert routing_metrics([Trajectory(task_id="q", group_id=0, env="arithmetic", prompt_ids=[1], reward=1.0)]) == {}


def test_preflight_names_the_missing_pool_model_and_a_price_table_mismatch(tmp_path: Path) -> None:
    from rltrain.config.loader import ConfigError
    from rltrain.config.users import PoolModel, UsersConfig
    from rltrain.envs.router import check_router_config

    kwargs = {"pool": POOL, "price_table": "synthetic-cpu"}
    with pytest.raises(ConfigError, match="users.pool does not serve"):
        check_router_config(kwargs, UsersConfig(pool=(PoolModel(SMOL),)))
    users = UsersConfig(pool=(PoolModel(SMOL), PoolModel(QWEN)))
    with pytest.raises(ConfigError, match="costs.price_table='xrouter-2025'"):
        check_router_config(kwargs, users, "xrouter-2025")
    with pytest.raises(ConfigError, match="scripts/install_models.sh qwen2.5-coder-0.5b-instruct"):
        check_router_config({"pool": POOL[1:]}, users, cache_dir=tmp_path)  # nothing installed in this cache
