"""A two-engine pool behind the Ray LLM service; one engine is killed between two rounds of router episodes (issue 14).

Engine A is a real (tiny) model inside the user actor (transformers engine); engine B is another real tiny model
behind `rltrain serve` (an OpenAI-compatible endpoint), the service's openai backend. After B's server is stopped,
its calls are recorded as failed and cost 0, the router sees the error as a tool result and goes on with A, and no
episode is failed: the run goes on. The router's own messages are scripted (no small model writes calls reliably).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

KEY_ENV = "RLTRAIN_TEST_POOL_KEY"
A, B = "smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"  # names priced by synthetic-cpu; weights: the tiny model


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    os.environ[KEY_ENV] = "unused"  # before ray.init: the local cluster's workers inherit it
    import shutil
    import tempfile

    import ray

    path = tempfile.mkdtemp(prefix="rlt-", dir="/tmp")
    ray.init(address="local", num_cpus=8, include_dashboard=False, _temp_dir=path, log_to_driver=False)
    yield
    ray.shutdown()
    shutil.rmtree(path, ignore_errors=True)
    os.environ.pop(KEY_ENV, None)


def call(model: str) -> str:
    name = "call_" + model.replace("-", "_").replace(".", "_")
    return "<tool_call>" + json.dumps({"name": name, "arguments": {"optimized_system_prompt": "Answer briefly."}}) + "</tool_call>"


def test_killed_pool_engine_costs_nothing_and_the_router_goes_on(cluster: None, tiny_model: Path,
                                                                 embedded_model: Path) -> None:
    import ray
    from transformers import AutoTokenizer

    from actors.common import remote_role
    from actors.user import UserClient, UserService
    from rltrain.agent import ChatRenderer, run_episode
    from rltrain.config.users import PoolModel, UsersConfig
    from rltrain.costs import Ledger, load_price_table, records_from_trajectory
    from rltrain.engines.base import Sampling
    from rltrain.engines.hf_engine import HFEngine
    from rltrain.envs import make_env
    from rltrain.serve import ChatServer
    from tests.test_agent import ScriptedEngine
    from tests.test_serve import Running

    server_b = Running(ChatServer(tiny_model, B, HFEngine(str(tiny_model), dtype="float32", seed=0)))
    cfg = UsersConfig(backend="rules", engine="transformers", dtype="float32", timeout_s=20, retries=0, backoff_s=0.1, cache_size=0,
                      api_key_env=KEY_ENV, pool=(PoolModel(A, model=str(tiny_model)),
                                                 PoolModel(B, backend="openai", base_url=server_b.url)))
    actor = remote_role(UserService).options(num_cpus=0).remote(0, cfg, 0)
    try:
        ray.get(actor.start.remote(pool=True), timeout=300)
        client = UserClient([actor], cfg)
        renderer = ChatRenderer(AutoTokenizer.from_pretrained(embedded_model))
        pool = [{"name": A, "tier": "budget"}, {"name": B}]

        async def round_(tag: str, n: int = 3) -> list:
            async def one(i: int):
                env = make_env("router", {"pool": pool, "pool_max_tokens": 8})
                task = env.tasks("test", 1, seed=i)[0]
                engine = ScriptedEngine(renderer, [call(B), call(A), "The answer is 7."])
                return await run_episode(engine, env, renderer, task, env_name="router", group_id=i, sampling=Sampling(256),
                                         max_turns=3, max_model_len=4096, user=client, sample=int(tag == "after"))
            return await asyncio.gather(*(one(i) for i in range(n)))

        before = asyncio.run(round_("before"))
        server_b.close()  # engine B goes down mid-run
        after = asyncio.run(round_("after"))

        table = load_price_table("synthetic-cpu")
        for traj in before:
            assert not traj.failed and [c["success"] for c in traj.user_calls] == [True, True]
        for traj in after:
            assert not traj.failed, traj.failure  # the run goes on
            b_call, a_call = traj.user_calls
            assert (b_call["model"], b_call["success"], b_call["usd"]) == (B, False, 0.0)
            assert a_call["success"] and a_call["usd"] == pytest.approx(
                table.usd(A, a_call["prompt_tokens"], a_call["completion_tokens"]))
            assert traj.tool_records[0]["error"] == "model_down" and "unavailable" in traj.messages[3]["content"]
        ledger = Ledger(table)
        for traj in before + after:
            ledger.add(records_from_trajectory(traj, A, step=1))
        assert ledger.by_model[B].failures == 3 and ledger.by_model[B].calls == 6
        b_ok = sum(c["usd"] for t in before for c in t.user_calls if c["model"] == B)
        assert ledger.by_model[B].usd == pytest.approx(b_ok) and b_ok > 0  # failed calls added nothing
    finally:
        ray.kill(actor, no_restart=True)
