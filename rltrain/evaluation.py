"""`rltrain eval CONFIG`: a policy played greedily on an environment's test split, scored as in the papers.

The same roles as training minus the learners: the reward accountant, the simulated users where the gym
needs them, and the rollout workers (temperature 0, one episode per task, as UserRL's eval: spec §1.10).
For UserRL gyms the summary holds the per-gym score (sum of turn rewards; TravelGym's normalised aspect score)
and the task-weighted overall score; for TravelGym also UserBench's metrics (§2.4). Outputs go to
`<trainer.output_dir>/<trainer.name>/eval/`: `trajectories.jsonl` and `summary.json`.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

logger = logging.getLogger("rltrain.eval")

EXAMPLES = """\
examples:
  rltrain eval launch/configs/userrl_function.yaml model.name=runs/userrl_function/final
      The trained policy on FunctionGym's held-out tasks.
  rltrain eval launch/configs/userrl_mix.yaml --tasks 40
      40 held-out tasks drawn across the mixed gyms; per-gym scores and the overall score.
"""


def evaluate(cfg: Any, tasks: int | None = None, ray_temp_dir: str | None = None) -> dict[str, float]:
    """Run the evaluation; returns the summary that is also written to `<run>/eval/summary.json`."""
    import ray

    from rltrain.driver import Trainer, prepare, start_ray

    prep = prepare(cfg)
    out = cfg.trainer.run_dir / "eval"
    out.mkdir(parents=True, exist_ok=True)
    count = tasks if tasks is not None else cfg.env.eval_tasks
    if count < 1:
        from rltrain.config.loader import ConfigError

        raise ConfigError("nothing to evaluate: set env.eval_tasks >= 1 or pass --tasks N")
    trainer = None
    try:
        start_ray(cfg, ray_temp_dir)
        trainer = Trainer(prep, out, learn=False)
        test = prep.env.tasks("test", count, seed=cfg.trainer.seed)
        logger.info("Evaluating %s greedily on %d held-out task(s) of %s", prep.model_path, len(test), cfg.env.name)
        metrics = trainer.evaluate(test, "test")
    finally:
        if trainer is not None:
            trainer.close()
        ray.shutdown()
    (out / "eval_test.jsonl").replace(out / "trajectories.jsonl")
    summary = {"model": prep.model_path, "env": cfg.env.name, **{k.removeprefix("eval_test/"): v for k, v in metrics.items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `eval` to the `rltrain` CLI; it sets `func(args) -> exit code`."""
    p = subparsers.add_parser("eval", help="evaluate a policy greedily on an environment's test split",
                              description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML config (the policy is model.name; override it with model.name=PATH)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. model.name=runs/x/final")
    p.add_argument("--tasks", type=int, default=None, help="held-out tasks to play (default: env.eval_tasks)")
    p.set_defaults(func=_eval_cmd)


def _eval_cmd(args: argparse.Namespace) -> int:
    from rltrain.cli import run_guarded
    from rltrain.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s driver %(levelname)s %(name)s: %(message)s")
    code, summary = run_guarded(lambda: evaluate(load_config(args.config, args.overrides), args.tasks), "evaluation")
    if summary:
        width = max(map(len, summary))
        for key, value in summary.items():
            print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return code
