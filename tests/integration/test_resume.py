"""Resume equivalence: 4 steps straight == 2 steps, checkpoint, then resume for steps 3-4 (issue 4, silent resume bugs).

Deterministic set-up: tiny model, transformers engine in fp32 (its sampling is reseeded per weight version, see
HFEngine._reseed), one rollout worker, one learner.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rltrain.config import RunConfig
from rltrain.driver import train
from tests.integration.test_training import read_jsonl, tiny_config

pytestmark = pytest.mark.ray

SETUP = ("rollout.engine=transformers", "rollout.dtype=float32", "rollout.num_workers=1", "learner.num_learners=1",
         "env.eval_tasks=2", "trainer.seed=3", "algorithm.grpo.entropy_coef=0.01")
"""The random tiny model earns reward 0 everywhere; the entropy term makes each update depend on the sampled tokens,
so the final weights check the whole chain (samples, optimizer state, RNG), not only weight decay."""


def train_fresh(cfg: RunConfig) -> None:
    """`train` on its own private cluster and temp dir: several clusters in a row in one temp dir failed to start
    under load (a GCS "Deadline Exceeded"). Short path: Ray's socket paths must fit 107 bytes."""
    ray_dir = tempfile.mkdtemp(prefix="rlt-", dir="/tmp")
    try:
        train(cfg, ray_temp_dir=ray_dir)
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)


def _compared(row: dict) -> dict:
    """What must match between runs: everything but wall-clock times and rates."""
    return {k: v for k, v in row.items() if not k.startswith("time/") and k != "rollout/tokens_per_s"}


def test_resume_matches_an_uninterrupted_run(tiny_model: Path, tmp_path: Path) -> None:
    straight = tiny_config(tiny_model, tmp_path, *SETUP, "trainer.name=straight", "trainer.steps=4")
    train_fresh(straight)

    first = tiny_config(tiny_model, tmp_path, *SETUP, "trainer.name=resumed", "trainer.steps=2", "trainer.checkpoint_every=2")
    train_fresh(first)
    run = first.trainer.run_dir
    assert (run / "latest").read_text().strip() == "step_2"
    # (DeepSpeed also drops its zero_to_fp32.py converter scripts beside its folder)
    assert {"config.yaml", "deepspeed", "driver.pkl", "rank_0.pkl", "state.json"} <= {p.name for p in (run / "step_2").iterdir()}
    assert not list(run.glob("*.tmp"))
    second = tiny_config(tiny_model, tmp_path, *SETUP, "trainer.name=resumed", "trainer.steps=4", "trainer.checkpoint_every=2",
                         "trainer.keep_checkpoints=1", f"trainer.resume={run}")
    train_fresh(second)

    expected, got = read_jsonl(straight.trainer.run_dir / "metrics.jsonl"), read_jsonl(run / "metrics.jsonl")
    assert [m["step"] for m in got] == [1, 2, 3, 4]  # appended, not truncated
    for want, have in zip(expected[2:], got[2:]):
        want, have = _compared(want), _compared(have)
        assert want.keys() == have.keys()
        for key in want:
            assert math.isclose(want[key], have[key], rel_tol=1e-5, abs_tol=1e-6), (want["step"], key, want[key], have[key])
    assert got[2]["weights/version"] == 3
    tokens = [(t["step"], t["response_ids"]) for t in read_jsonl(straight.trainer.run_dir / "trajectories.jsonl")]
    assert [(t["step"], t["response_ids"]) for t in read_jsonl(run / "trajectories.jsonl")] == tokens

    a = load_file(straight.trainer.run_dir / "final" / "model.safetensors")
    b = load_file(run / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
    assert not torch.equal(a["model.embed_tokens.weight"], load_file(tiny_model / "model.safetensors")["model.embed_tokens.weight"])

    # retention: keep_checkpoints=1 deleted step_2 once step_4 was complete
    assert (run / "latest").read_text().strip() == "step_4"
    assert sorted(p.name for p in run.glob("step_*")) == ["step_4"]
    print(f"checkpoint write {got[1]['time/checkpoint_s']:.2f}s, resume (load + resync) {got[2]['time/resume_s']:.2f}s, "
          f"final checkpoint {got[3]['time/checkpoint_s']:.2f}s")
