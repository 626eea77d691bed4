"""`rltrain eval CONFIG`: a policy played greedily on an environment's test split, scored as in the papers.

The same roles as training minus the learners: the reward accountant, the simulated users where the gym
needs them, and the rollout workers (temperature 0, one episode per task, as UserRL's eval: spec §1.10).
For UserRL gyms the summary holds the per-gym score (sum of turn rewards; TravelGym's normalised aspect score)
and the task-weighted overall score; for TravelGym also UserBench's metrics (§2.4). Outputs go to
`<trainer.output_dir>/<trainer.name>/eval/`: `trajectories.jsonl` and `summary.json`.

On the router (`env.name: router`) it is `rltrain.router_eval`: the router against the three fixed policies
(always the strongest, always the cheapest, always answer directly), measured in the same run on the same tasks,
with accuracy, USD and calls per query, direct-answer rate, cost utility and the router's own token USD (spec §4.6).
"""

from __future__ import annotations

import argparse

from rltrain import console
from rltrain.config import load_config
from rltrain.guard import run_guarded

EXAMPLES = """\
examples:
  rltrain eval launch/configs/userrl_function.yaml model.name=runs/userrl_function/final
      The trained policy on FunctionGym's held-out tasks.
  rltrain eval launch/configs/userrl_mix.yaml --tasks 40
      40 held-out tasks drawn across the mixed gyms; per-gym scores and the overall score.
  rltrain eval launch/configs/router.yaml model.name=runs/router/final --tasks 20
      The trained router against always-strongest, always-cheapest and answer-directly (a Markdown table).
"""


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `eval` to the `rltrain` CLI; it sets `func(args) -> exit code`."""
    p = subparsers.add_parser("eval", help="evaluate a policy greedily on an environment's test split",
                              description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML config (the policy is model.name; override it with model.name=PATH)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. model.name=runs/x/final")
    p.add_argument("--tasks", type=int, default=None, help="held-out tasks to play (default: env.eval_tasks)")
    p.add_argument("--verbose", action="store_true", help="also print every actor's own output (default: runs/<name>/logs/)")
    p.set_defaults(func=_eval_cmd)


def _eval_cmd(args: argparse.Namespace) -> int:
    console.setup_driver(verbose=args.verbose)
    code, summary = run_guarded(lambda: _evaluate(args), "evaluation")
    if summary:
        width = max(map(len, summary))
        for key, value in summary.items():
            print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return code


def _evaluate(args: argparse.Namespace) -> dict | None:
    """The summary to print, or None where the evaluation printed its own table (the router's)."""
    cfg = load_config(args.config, args.overrides)
    if cfg.env.name == "router":
        from rltrain import router_eval

        router_eval.run(cfg, None, args.tasks, router_eval.DEFAULT_LAMS)
        return None
    from rltrain.driver import evaluate  # Ray and the actors load only when a command runs, not for `rltrain --help`

    return evaluate(cfg, args.tasks)
