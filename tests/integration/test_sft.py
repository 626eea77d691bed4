"""`rltrain sft` on the tiny model: the RL learner group trains on masked NLL, validates, checkpoints, exports; and a
run stopped after step 2 and resumed equals the uninterrupted one (same data order, optimizer, scheduler, RNG)."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
from safetensors.torch import load_file

from rltrain.config.sft import load_sft_config
from rltrain.data.io import write_rows
from rltrain.sft import sft
from tests.data.fixtures import PARALLEL

pytestmark = pytest.mark.ray


def _rows() -> list[dict]:
    plain = [{"unique_trajectory_id": f"wp-{i}", "task_instruction": "Solve the problem.", "tools": [], "conversation": [
        {"role": "user", "content": f"Tom has {i} apples and buys {i + 2} more. How many?"},
        {"role": "assistant", "content": f"{i} + {i + 2} = {2 * i + 2}. The answer is {2 * i + 2}."}]} for i in range(6)]
    return [PARALLEL, *plain]


def _run(tiny_model: Path, out: Path, data: Path, *overrides: str) -> dict:
    ray_dir = tempfile.mkdtemp(prefix="rls-", dir="/tmp")  # a short private temp dir per cluster (see test_resume.py)
    try:
        return sft(load_sft_config(None, [f"model.name={tiny_model}", f"trainer.output_dir={out}", f"sft.datasets=[{{path: {data}}}]",
                                          "sft.batch_size=2", "sft.epochs=2", "sft.val_ratio=0.2", "sft.eval_every=2",
                                          "learner.micro_batch_size=1", "learner.lr=1e-3", "learner.threads=1",
                                          "trainer.loggers=[jsonl]", "ray.dashboard=false", *overrides]), ray_temp_dir=ray_dir)
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_sft_trains_validates_and_resumes_exactly(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    write_rows(data, _rows())  # 7 rows: 2 held out (val_ratio 0.2, at least 1 each... per set: round(1.4)=1), 6 train
    straight = _run(tiny_model, tmp_path, data, "trainer.name=straight")
    assert straight["planned_steps"] == straight["steps"] == 6  # 6 samples / batch 2 x 2 epochs
    metrics = _metrics(Path(straight["run_dir"]))
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    assert metrics[-1]["sft/val_loss"] < metrics[1]["sft/val_loss"]  # learns (lr 1e-3 on a tiny random model)
    assert metrics[0]["sft/lr"] == 0.0 and metrics[1]["sft/lr"] == pytest.approx(1e-3)  # warmup ceil(0.1 x 6) = 1 step
    assert straight["final_verify/max_abs_diff"] < 1e-4

    _run(tiny_model, tmp_path, data, "trainer.name=resumed", "sft.max_steps=2", "trainer.checkpoint_every=2",
         "trainer.save_final=false")
    run = tmp_path / "resumed"
    resumed = _run(tiny_model, tmp_path, data, "trainer.name=resumed", "trainer.checkpoint_every=2", f"trainer.resume={run}")
    got = _metrics(run)
    assert [m["step"] for m in got] == [1, 2, 3, 4, 5, 6]
    for want, have in zip(metrics[2:], got[2:]):
        for key in ("learner/loss", "sft/val_loss", "sft/lr", "learner/grad_norm"):
            if key in want:
                assert math.isclose(want[key], have[key], rel_tol=1e-5, abs_tol=1e-6), (want["step"], key)
    a, b = load_file(Path(straight["final_model"]) / "model.safetensors"), load_file(Path(resumed["final_model"]) / "model.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
