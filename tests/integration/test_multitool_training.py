"""Two GRPO steps on the multi-tool env (lookup + convert + calculate) through real Ray and DeepSpeed.

The rollout engine is the transformers one: the tool loop sits above the engine (prompts are token ids rendered by
our template), and vLLM's own start costs a minute of CI that tests/integration/test_training.py already pays.

The tiny random model cannot be relied on to write valid calls; that the loop executes and records valid
multi-call turns is checked with a scripted engine in tests/envs/test_multitool.py. Here the point is that a
tool env trains end to end: the schemas reach the prompt, every episode ends as the policy's outcome (never an
infrastructure failure), and the SpecTool metrics read the trajectories the run wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewards.toolcall import spectool_metrics
from rltrain.config import load_config
from rltrain.data.schema import read_trajectories
from rltrain.driver import train

pytestmark = pytest.mark.ray
CONFIG = Path(__file__).parents[2] / "launch" / "configs" / "multitool.yaml"


def test_multitool_two_grpo_steps(tiny_model: Path, tmp_path: Path, ray_tmp: str) -> None:
    cfg = load_config(CONFIG, [f"model.name={tiny_model}", f"trainer.output_dir={tmp_path}", "trainer.steps=2",
                               "trainer.prompts_per_step=2", "trainer.group_size=2", "model.max_model_len=1024",
                               "env.eval_tasks=0", "env.max_turns=2", "rollout.engine=transformers", "rollout.dtype=float32",
                               "rollout.num_workers=1", "rollout.max_new_tokens=16",
                               "learner.num_learners=1", "learner.micro_batch_size=2", "ray.dashboard=false",
                               "trainer.save_final=false"])
    train(cfg, ray_temp_dir=ray_tmp)
    metrics = [json.loads(x) for x in (cfg.trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and all("learner/pg_loss" in m for m in metrics)
    trajectories = list(read_trajectories(cfg.trainer.run_dir / "trajectories.jsonl"))  # versioned rows (issue 15)
    assert len(trajectories) == 8 and {t.env for t in trajectories} == {"multitool"}
    assert all(t.failure is None for t in trajectories)
    assert all(t.reward in (0.0, 1.0) for t in trajectories)  # the 0/1 outcome (turn_rewards of the answer turn)
    assert all(len(t.prompt_ids) > 400 for t in trajectories)  # the three tool schemas are in the prompt
    assert all(t.task_data["ground_truth"] and t.task_data["tools"] for t in trajectories)
    rates = spectool_metrics(trajectories)
    assert "spectool/IAC_traj_rate" in rates and 0.0 <= rates["spectool/clean_traj_rate"] <= 1.0
