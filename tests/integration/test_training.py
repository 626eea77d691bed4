"""The whole loop on a real local Ray cluster: vLLM and transformers rollout workers, DeepSpeed learners.

Each test starts its own private cluster (own temp dir, free ports): the first through the real CLI, with the
console checks of issue 13 (parts 5, 6); the others through `rltrain.driver.train`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from rltrain.config import load_config
from rltrain.driver import train
from rltrain.groups import RoleFailed
from rltrain.report import build_figures, load_run

pytestmark = pytest.mark.ray
ROOT = Path(__file__).parents[2]
TINY = ROOT / "launch" / "configs" / "tiny.yaml"
MAX_CONSOLE_LINES = 30


def tiny_config(tiny_model: Path, out: Path, *overrides: str):
    return load_config(TINY, [f"model.name={tiny_model}", f"trainer.output_dir={out}", *overrides])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_run(run_dir: Path, steps: int, samples: int) -> list[dict]:
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(1, steps + 1))
    for m in metrics:
        for key in ("reward/mean", "learner/pg_loss", "learner/entropy", "learner/clip_frac", "learner/logprob_mismatch",
                    "rollout/response_len", "rollout/tokens_per_s", "time/rollout_s", "time/update_s", "time/sync_s"):
            assert key in m, key
    assert metrics[-1]["weights/version"] == steps
    trajectories = read_jsonl(run_dir / "trajectories.jsonl")
    assert len(trajectories) == steps * samples
    assert {t["weight_version"] for t in trajectories} == set(range(steps))  # step k sampled with weights k-1
    return metrics


def console_lines(text: str) -> list[str]:
    """Lines as a person sees them: a progress bar redraws its own line with \\r."""
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n") if line.strip()]


def check_console(console: str, run_dir: Path, steps: int) -> None:
    """Issue 13 parts 5 and 6: a short console, each actor's output in its role log, the report from real metrics."""
    lines = console_lines(console)
    assert len(lines) <= MAX_CONSOLE_LINES, f"{len(lines)} console lines:\n" + "\n".join(lines)
    assert not any("pid=" in line for line in lines), "an actor's output reached the console"  # Ray's "(Role pid=N)"
    logs = run_dir / "logs"
    names = {p.name for p in logs.iterdir()}
    assert {"driver.log", "rollout-0.log", "rollout-1.log", "learner-0.log", "learner-1.log", "accountant.log"} <= names, names
    rollout = (logs / "rollout-0.log").read_text()
    assert "rollout-0 started" in rollout and "EngineCore" in rollout  # the vLLM engine process's own output
    assert (run_dir / "report.html").exists() and (run_dir / "report" / "reward.png").exists()
    figures = build_figures([load_run(run_dir)])
    reward = next(ax for ax in figures["reward"].axes if ax.get_title() == "training reward (mean)")
    assert list(reward.get_lines()[0].get_xdata()) == list(range(1, steps + 1))


def test_two_steps_vllm_workers_and_two_deepspeed_ranks_through_the_cli(tiny_model: Path, tmp_path: Path,
                                                                         ray_tmp: str) -> None:
    """The main path as a user runs it: `rltrain train`, two vLLM workers, two DeepSpeed ranks, eval before and after,
    the final model exported; and what the user sees of it (console, role logs, report, /dev/shm left clean)."""
    shm_before = {p.name for p in Path("/dev/shm").glob("psm_*")}
    out = subprocess.run([sys.executable, "-m", "rltrain.cli", "train", str(TINY), f"model.name={tiny_model}",
                          f"trainer.output_dir={tmp_path}", "rollout.engine=vllm"],
                         cwd=ROOT, env={**os.environ, "RAY_TMPDIR": ray_tmp}, capture_output=True, timeout=900)
    # bytes, decoded by hand: text mode would turn the progress bar's \r into line breaks
    stdout, stderr = out.stdout.decode(errors="replace"), out.stderr.decode(errors="replace")
    assert out.returncode == 0, stderr[-5000:]
    run_dir = tmp_path / "tiny"
    metrics = check_run(run_dir, steps=2, samples=8)
    # bf16 engine vs fp32 learner on the same weights: small but non-zero
    assert 0 < metrics[0]["learner/logprob_mismatch"] < 0.05
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "eval_before/mean" in summary and "eval_after/mean" in summary
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(summary["final_model"])
    check_console(stdout + stderr, run_dir, steps=2)
    # a normal shutdown leaves none of the engine's shared-memory buffers (rltrain/engines/shm.py)
    assert {p.name for p in Path("/dev/shm").glob("psm_*")} - shm_before == set()


def test_two_steps_transformers_workers_zero3_minibatches_epochs_kl(tiny_model: Path, tmp_path: Path, ray_tmp: str) -> None:
    """ZeRO-3 over 2 ranks, 2 mini-batches x 2 epochs (old log-probs recomputed), KL to a frozen reference."""
    cfg = tiny_config(tiny_model, tmp_path, "rollout.engine=transformers", "rollout.dtype=float32", "learner.zero_stage=3",
                      "learner.mini_batch_size=4", "algorithm.grpo.epochs=2", "algorithm.grpo.kl_coef=0.01",
                      "env.eval_tasks=0", "trainer.save_final=false")
    train(cfg, ray_temp_dir=ray_tmp)
    metrics = check_run(cfg.trainer.run_dir, steps=2, samples=8)
    assert metrics[0]["learner/logprob_mismatch"] < 1e-3  # same dtype, same weights
    assert "learner/kl" in metrics[0] and metrics[1]["learner/kl"] > 0  # step 2 starts away from the reference


def processes_of(ray_tmp: str) -> set[int]:
    """PIDs of the processes of the cluster in `ray_tmp` and of this process's children."""
    return {p.pid for p in psutil.process_iter(["cmdline"]) if ray_tmp in " ".join(p.info["cmdline"] or [])
            or p.pid in {c.pid for c in psutil.Process().children(recursive=True)}}


def assert_nothing_left(before: set[int], ray_tmp: str) -> None:
    import ray

    assert not ray.is_initialized()
    deadline = time.time() + 30
    while (left := processes_of(ray_tmp) - before) and time.time() < deadline:
        time.sleep(1)
    assert not left, [psutil.Process(pid).cmdline()[:3] for pid in left if psutil.pid_exists(pid)]


def test_dead_worker_stops_the_run_cleanly(tiny_model: Path, tmp_path: Path, ray_tmp: str) -> None:
    """A rollout worker that Ray may not restart (rollout.max_restarts=0) stops the run, naming it; nothing is left
    running. (Restarted workers: tests/integration/test_fault_tolerance.py.)"""
    import ray

    cfg = tiny_config(tiny_model, tmp_path, "rollout.engine=transformers", "trainer.steps=200", "env.eval_tasks=0",
                      "learner.num_learners=1", "trainer.save_final=false", "rollout.max_restarts=0")
    metrics_file = cfg.trainer.run_dir / "metrics.jsonl"

    def kill_a_worker_mid_run() -> None:
        deadline = time.time() + 600
        while time.time() < deadline and not (metrics_file.exists() and metrics_file.read_text().strip()):
            time.sleep(0.2)
        ray.kill(ray.get_actor("tiny-rollout-1"), no_restart=False)  # Ray would restart it, but max_restarts=0

    before = processes_of(ray_tmp)
    killer = threading.Thread(target=kill_a_worker_mid_run, daemon=True)
    killer.start()
    with pytest.raises(RoleFailed, match="rollout worker tiny-rollout-1 died and cannot be restarted.*rollout.max_restarts=0"):
        train(cfg, ray_temp_dir=ray_tmp)
    killer.join(timeout=5)
    assert_nothing_left(before, ray_tmp)


def test_async_rollout_is_one_version_stale(tiny_model: Path, tmp_path: Path, ray_tmp: str) -> None:
    """trainer.async_rollout: step k+1's episodes are sampled during step k's update, with weights k-1."""
    cfg = tiny_config(tiny_model, tmp_path, "rollout.engine=transformers", "rollout.dtype=float32", "trainer.steps=3",
                      "trainer.async_rollout=true", "learner.num_learners=1", "env.eval_tasks=0", "trainer.save_final=false")
    train(cfg, ray_temp_dir=ray_tmp)
    metrics = read_jsonl(cfg.trainer.run_dir / "metrics.jsonl")
    assert [m["weights/version"] for m in metrics] == [1, 2, 3]
    assert [m["weights/staleness"] for m in metrics] == [0, 1, 1]
    versions = [t["weight_version"] for t in read_jsonl(cfg.trainer.run_dir / "trajectories.jsonl")]
    assert versions == [0] * 8 + [0] * 8 + [1] * 8
    # pi_old is the sampling policy: the same fp32 weights at step 1, so the ratio starts at 1
    assert metrics[0]["learner/logprob_mismatch"] < 1e-3 and metrics[0]["learner/clip_frac"] == 0
