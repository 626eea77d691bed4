"""`rltrain data convert|filter|tasks`: trajectory files between formats, SFT sets from trajectories, verl task rows."""

from __future__ import annotations

import argparse
import json
import warnings

from rltrain.data.formats import FORMATS, LossyConversionWarning

EXAMPLES = """\
examples:
  rltrain data convert runs/fg/trajectories.jsonl fg_sharegpt.json --to sharegpt
      Our trajectories as LLaMA-Factory ShareGPT (the dropped fields are named on stderr).
  rltrain data convert apigen.json apigen.jsonl --to unified
      Any format in (detected per row), ActionStudio's unified format out.
  rltrain data filter runs/fg/trajectories.jsonl fg_sft.jsonl --min-reward 1 --max-tokens 4096
      Rejection sampling: successful, well-formed, distinct episodes for `rltrain sft`.
  rltrain data tasks function_gym train 200 function_train.parquet
      200 FunctionGym training tasks as verl RL parquet rows (read back: rltrain.data.verl.verl_to_task).
"""


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `data` (convert, filter, tasks) to the `rltrain` CLI."""
    p = subparsers.add_parser("data", help="convert, filter and export trajectory and task data",
                              epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="data_command", required=True)
    c = sub.add_parser("convert", help="convert trajectories between unified, sharegpt and hf (.jsonl/.json/.parquet)")
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("--to", required=True, choices=FORMATS)
    c.add_argument("--from", dest="source", default=None, choices=FORMATS, help="input format (default: detected per row)")
    c.set_defaults(func=_convert_cmd)
    f = sub.add_parser("filter", help="keep good trajectories for SFT (reward/judge threshold, SpecTool errors, dedupe, length)")
    f.add_argument("input")
    f.add_argument("output")
    f.add_argument("--min-reward", type=float, default=None)
    f.add_argument("--min-judge", type=float, default=None)
    f.add_argument("--keep-format-errors", action="store_true", help="keep episodes with SpecTool errors")
    f.add_argument("--no-dedupe", action="store_true")
    f.add_argument("--max-tokens", type=int, default=None, help="cap on prompt+response tokens (rows with token ids)")
    f.add_argument("--max-chars", type=int, default=None, help="cap on characters (rows without token ids)")
    f.add_argument("--to", default="unified", choices=FORMATS)
    f.set_defaults(func=_filter_cmd)
    t = sub.add_parser("tasks", help="an env's tasks as verl RL parquet rows")
    t.add_argument("env")
    t.add_argument("split", choices=("train", "test"))
    t.add_argument("count", type=int)
    t.add_argument("output")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=_tasks_cmd)
    from rltrain.data import generate  # `rltrain data generate` (APIGen-MT), defined beside the env adapters it runs

    generate.add_command(sub)


def _convert_cmd(args: argparse.Namespace) -> int:
    from rltrain.data.formats import convert_rows
    from rltrain.data.io import read_rows, write_rows

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LossyConversionWarning)
        n = write_rows(args.output, convert_rows(read_rows(args.input), args.to, args.source))
    for w in caught:
        print(f"warning: {w.message}")
    print(f"wrote {n} rows to {args.output} ({args.to})")
    return 0


def _filter_cmd(args: argparse.Namespace) -> int:
    from rltrain.data.filter import FilterRules, filter_rows
    from rltrain.data.formats import convert_rows
    from rltrain.data.io import read_rows, write_rows

    rules = FilterRules(args.min_reward, args.min_judge, not args.keep_format_errors, args.max_tokens, args.max_chars,
                        not args.no_dedupe)
    kept, dropped = filter_rows(read_rows(args.input), rules)
    write_rows(args.output, convert_rows(kept, args.to) if args.to != "unified" else kept)
    print(json.dumps({"kept": len(kept), "dropped": dict(dropped)}))
    return 0


def _tasks_cmd(args: argparse.Namespace) -> int:
    from rltrain.data.io import write_rows
    from rltrain.data.verl import env_tasks_to_verl

    n = write_rows(args.output, env_tasks_to_verl(args.env, args.split, args.count, args.seed))
    print(f"wrote {n} {args.env} {args.split} tasks to {args.output}")
    return 0
