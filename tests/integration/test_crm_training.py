"""Two GRPO steps on the CRM env through real Ray and DeepSpeed, with the rules customer on the user service.

The rollout engine is the transformers one (the env loop sits above the engine; vLLM's start is paid once, in
tests/integration/test_training.py).

The tiny random model writes no valid calls; its plain messages are `respond`s, so the multi-turn tasks call the
simulated customer through the user service and the single-turn ones end at once. The point: the env trains end
to end (schemas and policy in the prompt, customer calls recorded, every episode the policy's outcome, the
replaying `crm` reward on every trajectory).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewards.crm import crm_metrics
from rltrain.config import load_config
from rltrain.data.schema import read_trajectories
from rltrain.driver import train

pytestmark = pytest.mark.ray
CONFIG = Path(__file__).parents[2] / "launch" / "configs" / "crm.yaml"


def test_crm_two_grpo_steps(tiny_model: Path, tmp_path: Path, ray_tmp: str) -> None:
    cfg = load_config(CONFIG, [f"model.name={tiny_model}", f"trainer.output_dir={tmp_path}", "trainer.steps=2",
                               "trainer.prompts_per_step=2", "trainer.group_size=2", "model.max_model_len=1024",
                               "env.eval_tasks=0", "env.max_turns=2", "env.kwargs.types=[close_case,case_count]",
                               "env.kwargs.offer=[respond]",  # the tiny model has 1,024 positions
                               "users.backend=rules", "rollout.engine=transformers", "rollout.dtype=float32",
                               "rollout.num_workers=1", "rollout.max_new_tokens=16",
                               "learner.num_learners=1", "learner.micro_batch_size=2", "ray.dashboard=false",
                               "trainer.save_final=false"])
    train(cfg, ray_temp_dir=ray_tmp)
    metrics = [json.loads(x) for x in (cfg.trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and all("learner/pg_loss" in m for m in metrics)
    trajectories = list(read_trajectories(cfg.trainer.run_dir / "trajectories.jsonl"))
    assert len(trajectories) == 8 and all(t.failure is None for t in trajectories)
    assert {t.task_data["type"] for t in trajectories} == {"close_case", "case_count"}
    assert all(t.reward is not None and 0.0 <= t.reward <= 1.0 for t in trajectories)
    assert all(len(t.prompt_ids) > 550 for t in trajectories)  # the policy, the tables and the respond schema
    customer = [c for t in trajectories for c in t.user_calls]
    assert customer and all(c["rule"] == "crm.customer" for c in customer)
    assert not any(c for t in trajectories if t.task_data["type"] == "case_count" for c in t.user_calls)
    m = crm_metrics(trajectories)
    assert m["failed"] == 0.0 and "type/close_case" in m and "pass^2" in m
