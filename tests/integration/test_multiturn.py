"""A multi-turn job end to end: FunctionGym through the interact_with_env protocol, turn-level credit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rltrain.config import load_config
from rltrain.driver import train

pytestmark = pytest.mark.ray
CONFIG = Path(__file__).parents[2] / "launch" / "configs" / "userrl_function.yaml"


def test_function_gym_two_steps(tiny_model: Path, tmp_path: Path, ray_tmp: str) -> None:
    cfg = load_config(CONFIG, [f"model.name={tiny_model}", f"trainer.output_dir={tmp_path}", "trainer.steps=2",
                               "env.eval_tasks=2", "env.max_turns=3", "rollout.max_new_tokens=8", "rollout.engine=transformers",
                               "algorithm.grpo.turn_credit=em", "ray.dashboard=false", "trainer.save_final=false"])
    train(cfg, ray_temp_dir=ray_tmp)
    metrics = [json.loads(x) for x in (cfg.trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    for key in ("rollout/turns", "rollout/tool_calls", "rollout/format_error_rate", "reward/mean"):
        assert key in metrics[0], key
    trajectories = [json.loads(x) for x in (cfg.trainer.run_dir / "trajectories.jsonl").read_text().splitlines()]
    # a random tiny model rarely writes a valid call: its episodes end on a counted format error, not a crash
    assert all(t["failure"] is None for t in trajectories)
    assert all((t["format_error"] is not None) or t["tool_calls"] >= 1 for t in trajectories)
