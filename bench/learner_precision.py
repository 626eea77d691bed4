"""One learner update per precision (`learner.dtype`), interleaved: seconds, peak RSS and gradient agreement.

A focused look at the learner half of the GRPO step (issue 5), without rollout, Ray or the 30-minute benchmark.
Each configuration gets its own process holding one `actors.learner.Learner` (world size 1, gloo, the class
called directly rather than as a Ray actor: the same code, minus Ray's worker process), all built from the
quickstart config (ZeRO-2, micro-batch 8, lr 5e-6, GRPO). Every process trains on the same synthetic batch shaped
like the quickstart's step: 2 groups x 8 samples, a 40-token prompt per group, 4-32 response tokens (random
ids, seeded; random 0/1 rewards give GRPO non-zero advantages), so one update = 2 micro-batches + 1 optimizer
step. After one warm-up update each, the configurations take turns (A B C A B C ...), one update at a time, while
the others wait idle: timings of one round see the same machine load.

Configurations (`--configs`): `float32`, `bfloat16`, `autocast_bfloat16` (the `learner.dtype` values), and
`float32_ds_defaults`: float32 with DeepSpeed's own defaults for what the learner now sets on CPU (ZeRO bucket
sizes of 5e8 elements and torch's unfused AdamW), the memory "before"; `float32_ds_buckets`: only the buckets
back at DeepSpeed's defaults; `float32_mmap`: float32 with glibc's
malloc told to map every block of 1 MiB or more on its own (`ENVIRONMENT`), an allocator setting to weigh.

Reported per configuration: median and all seconds per update; peak RSS (VmHWM) of its process over the timed
updates, and over setup + warm-up; and, from the warm-up update (identical weights and batch everywhere), the
loss and the relative L2 error and 1 - cosine of the full gradient (before clipping, as the optimizer receives it)
against `float32`'s, which tell how far a precision moves the update itself. (The loss cannot tell: one
optimizer step per batch makes the PPO ratio 1, so GRPO's loss is minus the token-mean advantage whatever the
log-probs.)

Run: `python -m bench.learner_precision [--reps 3] [--configs ...] [--set learner.zero_stage=3 ...]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import random
import socket
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import common

QUICKSTART = Path(__file__).parents[1] / "launch" / "configs" / "quickstart.yaml"
CONFIGS: dict[str, list[str]] = {
    "float32": ["learner.dtype=float32"],
    "bfloat16": ["learner.dtype=bfloat16"],
    "autocast_bfloat16": ["learner.dtype=autocast_bfloat16"],
    "float32_ds_defaults": ["learner.dtype=float32"],
    "float32_ds_buckets": ["learner.dtype=float32"],
    "float32_mmap": ["learner.dtype=float32"],
}
DS_DEFAULTS = {"float32_ds_defaults": ("buckets", "fused"), "float32_ds_buckets": ("buckets",)}
"""Configurations that undo some of the learner's CPU memory settings (see `build_learner`)."""
ENVIRONMENT = {"float32_mmap": {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}}
"""Environment of a configuration's process. glibc's malloc serves a request of at least its mmap threshold with a
mapping of its own, given back to the OS when freed; below it, from heaps that keep what is freed. The threshold
starts at 128 KiB but rises (up to 32 MiB) with every mapped block freed, so a training loop ends up holding its
few-MiB activations and gradients in heaps; pinning it at 1 MiB trades page faults for a lower peak."""
DEFAULT_CONFIGS = ["float32", "bfloat16", "autocast_bfloat16"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_kib(field: str) -> int:
    """A /proc/self/status field in KiB (VmRSS: now, VmHWM: peak since start or the last `reset_peak`)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> None:
    """Restart VmHWM from the current RSS (Linux: "5" to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def build_learner(model_path: str, overrides: list[str], ds_defaults: tuple[str, ...] = (), gradient_accumulation: int = 2):
    """A set-up Learner (rank 0 of 1) from the quickstart config with `overrides`, in this process.

    `ds_defaults`: which of the learner's CPU-specific DeepSpeed settings to drop, leaving DeepSpeed's defaults, to
    measure what they save: "buckets" (ZeRO bucket sizes), "fused" (fused AdamW).
    """
    from actors.learner import Learner
    from rltrain.algorithms import build_algorithm
    from rltrain.config import load_config

    cfg = load_config(QUICKSTART, overrides)

    class DefaultsLearner(Learner):
        def _ds_config(self) -> dict:
            config = super()._ds_config()
            if "buckets" in ds_defaults:
                config["zero_optimization"] = {"stage": config["zero_optimization"]["stage"]}
            if "fused" in ds_defaults:
                config["optimizer"]["params"].pop("fused", None)
            return config

    cls = DefaultsLearner if ds_defaults else Learner
    learner = cls(rank=0, world_size=1, model_path=str(model_path), cfg=cfg.learner, algorithm=build_algorithm(cfg.algorithm),
                  gradient_accumulation=gradient_accumulation, seed=cfg.trainer.seed)
    learner.setup("127.0.0.1", free_port())
    return learner


def synthetic_batch(algorithm: Any, groups: int = 2, group_size: int = 8, prompt_len: int = 40, max_response: int = 32,
                    min_response: int = 4, vocab: int = 49152, seed: int = 0) -> Any:
    """A GRPO TrainBatch shaped like the quickstart's step (random token ids; 0/1 rewards, seeded)."""
    from types import SimpleNamespace

    from rltrain.types import Trajectory

    rng = random.Random(seed)
    trajectories = []
    for g in range(groups):
        prompt = [rng.randrange(100, vocab) for _ in range(prompt_len)]
        rewards = [float(rng.random() < 0.5) for _ in range(group_size)]
        rewards[0], rewards[1] = 1.0, 0.0  # never an all-equal group: every row has an advantage
        for k in range(group_size):
            n = rng.randint(min_response, max_response)
            trajectories.append(Trajectory(task_id=f"t{g}", group_id=g, env="synthetic", prompt_ids=prompt,
                                           response_ids=[rng.randrange(100, vocab) for _ in range(n)], loss_mask=[1] * n,
                                           rollout_logprobs=[-2.0] * n, reward=rewards[k]))
    batch, _ = algorithm.make_batch(trajectories, SimpleNamespace(pad_token_id=2, eos_token_id=2))
    return batch


@contextlib.contextmanager
def capture_gradient(learner: Any, sink: Any) -> Any:
    """While active, the full gradient at each optimizer step (before clipping) is written to `sink` (a binary
    file) as float32, parameter by parameter in `named_parameters` order, so that no second copy is held."""
    from deepspeed.utils import safe_get_full_grad

    engine = learner.engine
    step = engine.step

    def step_and_capture(*args: Any, **kwargs: Any) -> Any:
        if engine.is_gradient_accumulation_boundary():
            for _, param in engine.module.named_parameters():
                if param.requires_grad:
                    sink.write(safe_get_full_grad(param).detach().float().cpu().contiguous().numpy().tobytes())
        return step(*args, **kwargs)

    engine.step = step_and_capture
    try:
        yield
    finally:
        engine.step = step


def _serve(conn: Any, name: str, model_path: str, overrides: list[str], grad_path: str) -> None:
    """One configuration's process: build, warm up (capturing the gradient), then one update per request."""
    try:
        learner = build_learner(model_path, [*CONFIGS[name], *overrides], ds_defaults=DS_DEFAULTS.get(name, ()))
        batch = synthetic_batch(learner.algorithm)
        with open(grad_path, "wb") as sink, capture_gradient(learner, sink):
            warm = learner.update(batch, 1)
        conn.send({"ready": True, "warmup_s": warm["time/learner_update_s"], "loss": warm["learner/loss"],
                   "grad_norm": warm["learner/grad_norm"], "setup_peak_mib": vm_kib("VmHWM") / 1024,
                   "rss_mib": vm_kib("VmRSS") / 1024, "shape": list(batch.input_ids.shape)})
        reset_peak()
        while conn.recv() == "update":
            out = learner.update(batch, 1)
            conn.send({"s": out["time/learner_update_s"], "peak_mib": vm_kib("VmHWM") / 1024})
    except Exception as err:  # reported by the parent, which then stops this configuration
        import traceback

        conn.send({"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})


def gradient_agreement(reference: Path, other: Path, chunk: int = 1 << 24) -> dict[str, float]:
    """Relative L2 error ||g - g_ref|| / ||g_ref|| and cosine of two float32 gradient files, streamed."""
    import numpy as np

    a, b = np.memmap(reference, dtype=np.float32, mode="r"), np.memmap(other, dtype=np.float32, mode="r")
    if a.shape != b.shape:
        return {"rel_l2": math.nan, "cosine": math.nan}
    diff = ref = dot = oth = 0.0
    for start in range(0, a.shape[0], chunk):
        x, y = a[start:start + chunk].astype(np.float64), b[start:start + chunk].astype(np.float64)
        diff += float(((y - x) ** 2).sum())
        ref += float((x * x).sum())
        oth += float((y * y).sum())
        dot += float((x * y).sum())
    return {"rel_l2": math.sqrt(diff / ref), "cosine": dot / math.sqrt(ref * oth)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=list(CONFIGS))
    parser.add_argument("--reps", type=int, default=3, help="timed updates per configuration, interleaved (default 3)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every configuration, e.g. learner.zero_stage=3")
    parser.add_argument("--model", default=None, help="model folder (default: the embedded SmolLM2-135M-Instruct)")
    args = parser.parse_args(argv)

    from rltrain.models import EMBEDDED_MODEL, resolve_model

    model_path = args.model or str(resolve_model(EMBEDDED_MODEL))
    ctx = mp.get_context("spawn")  # a fresh interpreter per configuration: its own DeepSpeed state and peak RSS
    tmp = Path(tempfile.mkdtemp(prefix="rlb-grads-"))
    workers: dict[str, tuple[Any, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in args.configs:  # built one after another so that set-up peaks do not overlap
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, name, model_path, args.set, str(tmp / f"{name}.f32")), daemon=True)
            saved = dict(os.environ)
            os.environ.update(ENVIRONMENT.get(name, {}))  # a spawned process starts with this process's environment
            try:
                proc.start()
            finally:
                os.environ.clear()
                os.environ.update(saved)
            reply = parent.recv()
            print(f"== {name}: {json.dumps({k: v for k, v in reply.items() if k != 'traceback'})}", flush=True)
            results[name] = {**reply, "times_s": [], "peaks_mib": []}
            if "error" in reply:
                print(reply["traceback"], file=sys.stderr)
                proc.join()
                continue
            workers[name] = (parent, proc)
        for rep in range(args.reps):
            for name, (conn, _) in workers.items():
                conn.send("update")
                reply = conn.recv()
                if "error" in reply:
                    results[name]["error"] = reply["error"]
                    print(reply["traceback"], file=sys.stderr)
                    continue
                results[name]["times_s"].append(reply["s"])
                results[name]["peaks_mib"].append(reply["peak_mib"])
                print(f"   round {rep + 1} {name}: {reply['s']:.2f} s, peak {reply['peak_mib']:.0f} MiB", flush=True)
        for conn, proc in workers.values():
            conn.send("stop")
            proc.join(timeout=60)
        reference = tmp / "float32.f32"
        rows = []
        base = statistics.median(results["float32"]["times_s"]) if results.get("float32", {}).get("times_s") else None
        for name, r in results.items():
            times = r["times_s"]
            grads = (gradient_agreement(reference, tmp / f"{name}.f32") if reference.exists() and (tmp / f"{name}.f32").exists()
                     and name != "float32" else {"rel_l2": 0.0, "cosine": 1.0} if name == "float32" else {})
            r.update(grads, median_s=statistics.median(times) if times else None,
                     update_peak_mib=max(r["peaks_mib"]) if r["peaks_mib"] else None)
            rows.append([name, r["median_s"] if times else "failed", " ".join(f"{t:.2f}" for t in times),
                         (r["median_s"] / base) if times and base else "-", r.get("update_peak_mib") or "-",
                         r.get("setup_peak_mib", "-"), r.get("loss", "-"), r.get("grad_norm", "-"),
                         grads.get("rel_l2", "-"), 1 - grads["cosine"] if "cosine" in grads else "-"])
    finally:
        for _, proc in workers.values():
            if proc.is_alive():
                proc.kill()
        for f in tmp.glob("*.f32"):
            f.unlink()
        tmp.rmdir()
    common.print_table(["config", "s/update", "all s", "/ float32", "peak RSS MiB (updates)", "peak RSS MiB (setup+warm-up)",
                        "loss", "grad norm", "grad rel L2 vs fp32", "grad 1 - cosine"], rows)
    common.write_results("learner_precision", {"configs": args.configs, "reps": args.reps, "overrides": args.set,
                                               "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
