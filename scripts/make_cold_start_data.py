#!/usr/bin/env python
"""Write the cold-start SFT sets: scripted demonstrations on our gyms' TRAIN tasks (rltrain/data/demos.py).

    .venv/bin/python scripts/make_cold_start_data.py [--out runs/cold_start] [--count 200] [--seed 0]

Writes one unified-format JSONL file per source (function_gym, word_problems, multitool, router, telepathy,
turtle, persuade, intention) and prints how many episodes each played and kept. Deterministic in --seed; no model, no
network. The launch/configs/sft_*.yaml configs read these files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rltrain.config import load_config
from rltrain.data.demos import function_gym_demos, gym_demos, multitool_demos, router_demos, word_problem_demos
from rltrain.data.filter import FilterRules, filter_rows
from rltrain.data.io import write_rows

SOURCES = {
    "function_gym": function_gym_demos,
    "word_problems": word_problem_demos,
    "multitool": multitool_demos,
    # the router's demonstrations offer exactly the tools (pool, prices, descriptions) of the RL config
    "router": lambda n, seed: router_demos(n, dict(load_config("launch/configs/router.yaml").env.kwargs), seed),
    **{name: (lambda n, seed, name=name: gym_demos(name, n, seed)) for name in ("telepathy", "turtle", "persuade", "intention")},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/cold_start")
    parser.add_argument("--count", type=int, default=200, help="train tasks played per source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", choices=sorted(SOURCES), help="some sources only")
    args = parser.parse_args()
    out = Path(args.out)
    for name in args.only or SOURCES:
        rows, counts = SOURCES[name](args.count, args.seed)
        # small task pools repeat (judged gyms): keep distinct, well-formed episodes only (`rltrain data filter`)
        kept, dropped = filter_rows(rows, FilterRules())
        write_rows(out / f"{name}.jsonl", kept)
        print(json.dumps({"source": name, "file": str(out / f"{name}.jsonl"), **counts, "written": len(kept), **dropped}))


if __name__ == "__main__":
    main()
