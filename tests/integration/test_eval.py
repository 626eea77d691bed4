"""`rltrain eval`: greedy test-split episodes through the real roles, scored per gym (spec §1.10, §2.4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rltrain.config import load_config
from rltrain.driver import evaluate

pytestmark = pytest.mark.ray


def test_eval_writes_per_gym_scores_and_trajectories(tiny_model: Path, tmp_path: Path, ray_tmp: str) -> None:
    """A mix of a judged gym (rules user actor) and TravelGym: per-gym scores, UserBench metrics, files."""
    cfg = load_config(None, [f"model.name={tiny_model}", f"trainer.output_dir={tmp_path}", "trainer.name=ev",
                             "rollout.engine=transformers", "rollout.num_workers=1", "rollout.max_new_tokens=8",
                             "model.max_model_len=2048", "learner.num_learners=1", "ray.dashboard=false",
                             "env.name=mix", "env.kwargs={gyms: {telepathy: {}, travel: {}}}", "env.max_turns=2",
                             "env.plain_text_as_action=true", "users.backend=rules", "users.num_actors=1",
                             "users.num_cpus=0"])
    summary = evaluate(cfg, tasks=4, ray_temp_dir=ray_tmp)
    out = tmp_path / "ev" / "eval"
    trajectories = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert len(trajectories) == 4 and {t["env"] for t in trajectories} == {"telepathy", "travel"}
    assert all(t["failure"] is None and t["user_calls"] for t in trajectories)  # every episode asked the rules user
    assert summary["score/telepathy/tasks"] == 2 and summary["score/travel/tasks"] == 2
    assert 0 <= summary["score/overall"] <= 1 and "userbench/micro_avg" in summary
    assert json.loads((out / "summary.json").read_text()) == summary
