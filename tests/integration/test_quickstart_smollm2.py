"""End to end on the embedded SmolLM2-135M-Instruct: one real GRPO step through vLLM, DeepSpeed and sync."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rltrain.config import load_config
from rltrain.driver import train

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_quickstart_config_runs_one_step(embedded_model: Path, tmp_path: Path, ray_tmp: str) -> None:
    cfg = load_config(Path(__file__).parents[2] / "launch/configs/quickstart.yaml", [
        f"trainer.output_dir={tmp_path}", "trainer.steps=1", "trainer.prompts_per_step=2", "trainer.group_size=4",
        "env.eval_tasks=4", "trainer.save_final=false"])
    summary = train(cfg, ray_temp_dir=ray_tmp)
    trajectories = [json.loads(x) for x in (cfg.trainer.run_dir / "trajectories.jsonl").read_text().splitlines()]
    assert len(trajectories) == 8
    # Greedy answers to "What is a+b?" are short; the converted model must end them with <|im_end|> (id 2)
    # instead of running on to max_new_tokens (PLATFORM.md: the GGUF tokenizer names the wrong eos).
    greedy = [json.loads(x) for x in (cfg.trainer.run_dir / "eval_before.jsonl").read_text().splitlines()]
    assert len(greedy) == 4
    assert all(t["finish_reason"] == "stop" and t["response_ids"][-1] == 2 for t in greedy), [t["conversation"][-1] for t in greedy]
    assert summary["eval_before/mean"] >= 0 and "eval_after/correct_rate" in summary
