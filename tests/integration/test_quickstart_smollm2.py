"""End to end on the embedded SmolLM2-135M-Instruct: one real GRPO step through vLLM, DeepSpeed and sync."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rltrain.config import load_config
from rltrain.driver import train

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_quickstart_config_runs_one_step(embedded_model: Path, tmp_path: Path) -> None:
    cfg = load_config(Path(__file__).parents[2] / "launch/configs/quickstart.yaml", [
        f"trainer.output_dir={tmp_path}", "trainer.steps=1", "trainer.prompts_per_step=2", "trainer.group_size=4",
        "env.eval_tasks=4", "trainer.save_final=false"])
    summary = train(cfg, ray_temp_dir=str(tmp_path / "ray"))
    trajectories = [json.loads(x) for x in (cfg.trainer.run_dir / "trajectories.jsonl").read_text().splitlines()]
    assert len(trajectories) == 8
    # the converted model ends its turns at <|im_end|> instead of running to max_new_tokens
    assert sum(t["finish_reason"] == "stop" for t in trajectories) >= 6
    assert summary["eval_before/mean"] >= 0 and "eval_after/correct_rate" in summary
