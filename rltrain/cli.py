"""`rltrain` command line: train, and the config reference."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import yaml

from rltrain import adapt, console, doctor, evaluation, export, jobs, report, serve, sft, watchdog
from rltrain.config import RunConfig, describe, load_config, to_dict
from rltrain.data import cli as data_cli
from rltrain.errors import EXIT_PREEMPTED
from rltrain.guard import run_guarded

EXAMPLES = """\
examples:
  rltrain train launch/configs/quickstart.yaml
      GRPO on the embedded SmolLM2-135M-Instruct, single-digit addition, about 10 minutes on 2 CPU cores.
  rltrain train launch/configs/quickstart.yaml trainer.steps=5 learner.lr=5e-6
      The same with dotted overrides (any key of the config; values are YAML).
  rltrain train my.yaml model.name=/path/to/hf_folder rollout.num_workers=2 learner.num_learners=2
      Your own model folder, two vLLM workers and two DeepSpeed ranks.
  rltrain train launch/configs/quickstart.yaml --dry-run
      The pre-flight checks of a real run, then print the resolved config; start nothing.
  rltrain train launch/configs/quickstart.yaml trainer.checkpoint_every=10 ... then --resume runs/quickstart
      Checkpoint every 10 steps; continue an interrupted run from its latest checkpoint.
  rltrain export runs/quickstart out/quickstart-hf --dtype bf16
      A verified Hugging Face folder from the latest checkpoint (or a final/ folder).
  rltrain eval launch/configs/userrl_mix.yaml model.name=runs/userrl_mix/final
      A policy on the test split, greedy, with UserRL per-gym scores.
  rltrain train --help-config
      Every config key with its default and meaning.
  rltrain stacks runs/quickstart
      The Python stacks of every role of a running run (py-spy), e.g. when it seems stuck.

exit codes: 0 done, 1 a role failed, 2 config error, 3 stalled (stacks in <run>/stall/), 130 Ctrl-C,
143 stopped by SIGTERM after writing a checkpoint (continue with --resume).

outputs go to <trainer.output_dir>/<trainer.name>/: config.yaml, metrics.jsonl, trajectories.jsonl, tb/,
eval_before.jsonl, eval_after.jsonl, summary.json, step_<N>/ + latest (checkpoints) and final/ (a verified HF folder).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rltrain", description="Ray-based reinforcement learning for LLM agents.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = sub.add_parser("train", help="run a training job from a YAML config", epilog=EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="Validate the config, start a Ray cluster (or join ray.address), train, evaluate.")
    train.add_argument("config", nargs="?", help="YAML config, e.g. launch/configs/quickstart.yaml")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. learner.lr=1e-6")
    train.add_argument("--dry-run", action="store_true", help="run the pre-flight checks of a real run (names, model and "
                       "tokenizer, users, context length, resume) and print the resolved config; start nothing")
    train.add_argument("--help-config", action="store_true", help="list every config key with its default and meaning")
    train.add_argument("--resume", metavar="RUN", help="continue runs/<name> (its latest checkpoint) or a step_<N> folder; "
                                                       "the same as trainer.resume=RUN")
    train.add_argument("--verbose", action="store_true", help="also print every actor's own output (vLLM, DeepSpeed, Ray); "
                       "by default it goes to runs/<name>/logs/<role>.log")
    bench = sub.add_parser("bench", help="run a benchmark from bench/ (prints a table, writes bench/results/)",
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=BENCH_EXAMPLES,
                           description="Run `python -m bench.NAME ARGS` from the source checkout; `all` runs every "
                                       "benchmark in turn. Run on an otherwise idle machine: they measure speed.")
    bench.add_argument("name", choices=[*BENCHMARKS, "all", "report"], help="which benchmark")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="passed on to the benchmark (see its --help)")
    evaluation.add_command(sub)
    export.add_command(sub)
    doctor.add_command(sub)
    jobs.add_commands(sub)
    watchdog.add_command(sub)
    report.add_command(sub)
    sft.add_command(sub)
    data_cli.add_command(sub)
    serve.add_command(sub)
    adapt.add_command(sub)
    return parser


BENCHMARKS = ("limits", "rollout", "sync", "grpo_vs_trl", "scaling")
"""In the order `rltrain bench all` runs them (limits first: the others are compared with it)."""
BENCH_EXAMPLES = """\
examples:
  rltrain bench grpo_vs_trl            rltrain against TRL GRPOTrainer on the quickstart's work (needs .[bench])
  rltrain bench rollout                raw vLLM/transformers generation vs the same batch through a rollout worker
  rltrain bench sync --models smollm2  weight sync learner -> rollout workers vs an in-memory copy
  rltrain bench all                    everything, 30-47 minutes on 2 CPU cores; records bench/results/all.json
  rltrain bench report                 regenerate bench/README.md's results tables from bench/results/*.json
                                       (every successful benchmark run does this at its end; --check: change nothing)
"""


def _bench(name: str, args: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    if not (root / "bench" / "__init__.py").exists():
        print(f"rltrain bench: the benchmarks live in the source checkout's bench/ folder, not found under {root}; "
              f"clone the repository and install it with `pip install -e .`", file=sys.stderr)
        return 2
    # bench/ is not an installed package: run it as a module from the checkout, as the benchmarks themselves
    report = [sys.executable, "-m", "bench.report"]
    if name == "report":
        return subprocess.call([*report, *args], cwd=root)
    t0 = time.perf_counter()
    per_benchmark_s: dict[str, float] = {}
    code = 0
    for bench in BENCHMARKS if name == "all" else (name,):
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"bench.{bench}", *args], cwd=root)
        if code != 0:
            print(f"rltrain bench: {bench} exited with code {code}", file=sys.stderr)
            break
        per_benchmark_s[bench] = round(time.perf_counter() - start, 1)
    total_s = time.perf_counter() - t0
    if per_benchmark_s:  # whatever finished wrote its JSON: refresh the README's tables from it
        if name == "all" and code == 0:  # all.json times a complete run only, so its total means "all of them"
            report += ["--record-all", json.dumps({"total_s": round(total_s, 1), "per_benchmark_s": per_benchmark_s})]
        if subprocess.call(report, cwd=root) != 0:
            print("rltrain bench: the results are in bench/results/, but bench/README.md was not regenerated; "
                  "see the error above, then run `rltrain bench report`", file=sys.stderr)
            code = code or 1
    if code != 0:
        return code
    print(f"rltrain bench {name}: {total_s:.0f} s")
    return 0


def _print_config_help() -> None:
    for key, default, doc in describe(RunConfig):
        print(f"{key} = {default}")
        if doc:
            print(textwrap.indent(textwrap.fill(doc, 96), "    "))


def main(argv: list[str] | None = None) -> int:
    """The `rltrain` command. SIGTERM exits through Python (143), so `finally` blocks and atexit hooks run: an
    in-process vLLM engine (router eval, data generate, serve) is shut down instead of left orphaned. A training run
    replaces this with its own handler (finish the step, checkpoint, exit 143) while it trains."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if in_main else None
    try:
        return _main(argv)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    print("rltrain: SIGTERM: stopping", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_PREEMPTED)


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # `train CONFIG --dry-run a.b=1`: overrides after a flag arrive here
    unknown = [x for x in extra if x.startswith("-") or "=" not in x]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra and hasattr(args, "overrides"):
        args.overrides = [*args.overrides, *extra]
    elif extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "bench":
        return _bench(args.name, [*args.args, *extra])
    if hasattr(args, "func"):  # doctor, submit, status, logs, stop
        return args.func(args)
    if args.command != "train":
        parser.print_help()
        return 0 if args.command is None else 2
    if args.help_config:
        _print_config_help()
        return 0
    if not args.config:
        print("rltrain train: give a config file, e.g. rltrain train launch/configs/quickstart.yaml", file=sys.stderr)
        return 2
    console.setup_driver(verbose=args.verbose)

    def job() -> dict:
        cfg = load_config(args.config, [*args.overrides, *([f"trainer.resume={args.resume}"] if args.resume else [])])
        if args.dry_run:  # the pre-flight of a real run (names, model, users, context, resume), then stop
            from rltrain.checkpoint import for_resume
            from rltrain.preflight import prepare  # torch, transformers: loaded only when a command needs them

            prepare(cfg)
            for_resume(cfg)
            return to_dict(cfg)
        from rltrain.driver import train  # Ray and every actor: loaded only when a run starts

        return train(cfg)

    code, summary = run_guarded(job, "run")
    if code == 0:
        print(yaml.safe_dump(summary, sort_keys=False) if args.dry_run else console.format_summary(summary))
    return code


if __name__ == "__main__":
    sys.exit(main())
