"""Scaling: how a GRPO step's time grows as its work doubles, and where the time goes.

The quickstart's job (SmolLM2-135M, arithmetic, vLLM rollout, one DeepSpeed learner) with one variable
doubled at a time, from the base point of 2 prompts x 8 samples with natural-length answers (<= 32 tokens):

* group size 4, 8, 16 (samples per prompt);
* prompts per step 1, 2, 4;
* response length 16, 32, 64 tokens, fixed (end-of-turn suppressed until the length, `Sampling.min_new_tokens`);
* 1 vs 2 rollout workers and 1 vs 2 learner ranks at the base point, with the 2 cores split between them
  (each worker or rank gets 1 thread where there are two).

One trainer (actors started once) runs every point of a topology: a warm-up step, then `--steps` measured
steps per point; the table shows medians per phase. The exponent b of each axis is the least-squares slope
of log(step seconds) on log(work): 1 is linear, below 1 sub-linear (fixed costs amortised), above 1 worse.
Peak resident memory per role (actor process plus its children, e.g. vLLM's engine core) is sampled
throughout. Run: `python -m bench.scaling [--steps 2]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import common

QUICKSTART = Path(__file__).parents[1] / "launch" / "configs" / "quickstart.yaml"
BASE = (2, 8, None)  # prompts, group size, fixed response length (None: natural, up to 32)
AXES: dict[str, list[tuple[int, int, int | None]]] = {
    "group_size": [(2, 4, None), BASE, (2, 16, None)],
    "prompts": [(1, 8, None), BASE, (4, 8, None)],
    "response_len": [(2, 8, 16), (2, 8, 32), (2, 8, 64)],
}
TOPOLOGIES = {  # name: (rollout workers, threads each, learner ranks, threads each)
    "1 rollout + 1 learner": (1, 2, 1, 2),
    "2 rollout + 1 learner": (2, 1, 1, 2),
    "1 rollout + 2 learners": (1, 2, 2, 1),
}
PHASES = ("step_s", "rollout_s", "reward_s", "update_s", "sync_s")


def run_topology(name: str, points: list[tuple[int, int, int | None]], steps: int, out_dir: Path) -> list[dict[str, Any]]:
    """Start the roles once, then measure each point; returns one row per point."""
    import ray

    from rltrain.cluster import start_ray
    from rltrain.config import load_config
    from rltrain.driver import Trainer
    from rltrain.preflight import prepare

    workers, rollout_threads, ranks, learner_threads = TOPOLOGIES[name]
    base = load_config(QUICKSTART, [
        f"trainer.output_dir={out_dir}", f"trainer.name=scaling-{workers}x{ranks}", "env.eval_tasks=0", "trainer.steps=1000",
        f"rollout.num_workers={workers}", f"rollout.threads={rollout_threads}", "rollout.max_new_tokens=64",
        f"learner.num_learners={ranks}", f"learner.threads={learner_threads}", "model.max_model_len=512"])
    prep = prepare(base)
    base.trainer.run_dir.mkdir(parents=True, exist_ok=True)
    temp = tempfile.mkdtemp(prefix="rlb-", dir="/tmp")
    rows: list[dict[str, Any]] = []
    memory = None
    try:
        start_ray(prep.requirements, temp)
        memory = common.RoleMemory()
        trainer = Trainer(prep, base.trainer.run_dir)
        try:
            step = 0
            for i, (prompts, group, length) in enumerate(points):
                cfg = dataclasses.replace(base, trainer=dataclasses.replace(base.trainer, prompts_per_step=prompts, group_size=group))
                trainer.cfg = trainer.learners.cfg = cfg
                trainer.lengths = (length, length) if length else (0, 32)
                measured = []
                for k in range(steps + (1 if i == 0 else 0)):  # the first point also warms the engines up
                    step += 1
                    metrics = trainer.step(step)
                    if i > 0 or k > 0:
                        measured.append(metrics)
                row: dict[str, Any] = {"topology": name, "prompts": prompts, "group_size": group, "response_len": length,
                                       "samples": prompts * group,
                                       "gen_tokens": statistics.median(m["rollout/tokens"] for m in measured)}
                for phase in PHASES:
                    row[phase] = statistics.median(m[f"time/{phase}"] for m in measured)
                row["samples_per_s"] = row["samples"] / row["step_s"]
                row["gen_tokens_per_s"] = row["gen_tokens"] / row["step_s"]
                print(f"  {name} | prompts {prompts} group {group} length {length or 'natural'}: "
                      f"{row['step_s']:.2f} s/step, {row['samples_per_s']:.2f} samples/s", flush=True)
                rows.append(row)
        finally:
            trainer.close()
    finally:
        peaks = memory.stop() if memory is not None else {}
        ray.shutdown()
    for row in rows:
        row["peak_rss_mib"] = peaks
    return rows


def exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) on log(x).

    >>> round(exponent([1, 2, 4], [3, 6, 12]), 6)
    1.0
    >>> round(exponent([1, 2, 4], [5, 5, 5]), 6)
    0.0
    """
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def axis_rows(rows: list[dict[str, Any]], axis: str) -> list[dict[str, Any]]:
    keyed = {(r["prompts"], r["group_size"], r["response_len"]): r for r in rows if r["topology"] == next(iter(TOPOLOGIES))}
    return [keyed[p] for p in AXES[axis]]


def axis_work(axis: str, row: dict[str, Any]) -> float:
    return float(row["gen_tokens"] if axis == "response_len" else row["samples"])


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(AXES), figsize=(13, 4))
    for ax, axis in zip(axes, AXES):
        points = axis_rows(rows, axis)
        work = [axis_work(axis, r) for r in points]
        for phase in ("step_s", "rollout_s", "update_s", "sync_s"):
            ax.loglog(work, [max(r[phase], 1e-3) for r in points], marker="o", label=phase[:-2])
        ax.loglog(work, [points[0]["step_s"] * w / work[0] for w in work], "k:", label="linear")
        ax.set(xlabel="generated tokens" if axis == "response_len" else "samples per step", ylabel="seconds",
               title=f"{axis}: b = {exponent(work, [r['step_s'] for r in points]):.2f}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="measured steps per point (default 2)")
    args = parser.parse_args(argv)
    out_dir = Path(tempfile.mkdtemp(prefix="rltrain-scaling-"))
    unique = list(dict.fromkeys(p for points in AXES.values() for p in points))
    rows = run_topology(next(iter(TOPOLOGIES)), unique, args.steps, out_dir)
    for name in list(TOPOLOGIES)[1:]:
        rows += run_topology(name, [BASE], args.steps, out_dir)
    header = ["topology", "prompts", "group", "length", "s/step", "rollout s", "update s", "sync s", "samples/s", "gen tok/s"]
    common.print_table(header, [[r["topology"], r["prompts"], r["group_size"], r["response_len"] or "natural", r["step_s"],
                                 r["rollout_s"], r["update_s"], r["sync_s"], r["samples_per_s"], r["gen_tokens_per_s"]]
                                for r in rows])
    exponents = {}
    for axis in AXES:
        points = axis_rows(rows, axis)
        work = [axis_work(axis, r) for r in points]
        exponents[axis] = {phase: exponent(work, [max(r[phase], 1e-3) for r in points]) for phase in PHASES}
    print("\nexponent b of seconds ~ work^b (1 = linear):")
    common.print_table(["axis", *PHASES], [[axis, *(e[p] for p in PHASES)] for axis, e in exponents.items()])
    print("\npeak resident memory per role, MiB:")
    for name in TOPOLOGIES:
        peaks = next(r["peak_rss_mib"] for r in rows if r["topology"] == name)
        print(f"  {name}: " + ", ".join(f"{role} {mib:.0f}" for role, mib in sorted(peaks.items())))
    plot(rows, common.RESULTS / "scaling.png")
    common.write_results("scaling", {"steps": args.steps, "rows": rows, "exponents": exponents})
    return 0


if __name__ == "__main__":
    sys.exit(main())
