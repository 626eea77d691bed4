"""Malformed-reply rates of simulated users and judges, from the trajectories of `rltrain eval` or `train` runs.

    python scripts/judge_replies.py runs/judge_qwen05/eval/trajectories.jsonl [more.jsonl ...] [--json OUT]

Every reply the gyms parse strictly (`JudgedGym.ask_json`: a JSON object of the asked-for shape) is one record in
`user_calls`; a malformed one carries `malformed` (the reason), and its retry is another record. Intention's
plain-text responder (`intention.respond`) is not parsed strictly, so it is counted apart. Prints, per simulator
model and per rule, the replies, the malformed ones and their rate, and the requests that stayed malformed after
every retry (the episodes marked failed as the simulator's fault).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from rltrain.data.schema import read_trajectories

PLAIN_RULES = frozenset({"intention.respond", "crm.customer"})
"""Rules whose replies are free text (a user speaking), not parsed strictly."""


def tally(paths: list[str]) -> dict[str, Any]:
    """Per model and rule: replies, malformed replies, requests that never parsed; plus per-episode failures."""
    out: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    episodes: Counter = Counter()
    for path in paths:
        for traj in read_trajectories(path):
            episodes["episodes"] += 1
            episodes["failed_by_simulator"] += bool(traj.failure and "malformed" in traj.failure)
            last_key: dict[str, Any] = {}
            for call in traj.user_calls:
                model, rule = call.get("model") or call.get("backend", "?"), call.get("rule") or "?"
                kind = "plain" if rule in PLAIN_RULES else "strict"
                c = out[model][f"{kind}:{rule}"]
                c["replies"] += 1
                c["malformed"] += "malformed" in call
                last_key[call.get("key", id(call))] = (model, f"{kind}:{rule}", "malformed" in call)
            for model, rule, bad in last_key.values():  # a request's last attempt decides whether it parsed at all
                out[model][rule]["requests"] += 1
                out[model][rule]["unparsed_requests"] += bad
    result: dict[str, Any] = {"episodes": dict(episodes), "models": {}}
    for model, rules in out.items():
        strict = sum((c for r, c in rules.items() if r.startswith("strict:")), Counter())
        result["models"][model] = {
            "strict_replies": strict["replies"], "malformed": strict["malformed"],
            "malformed_rate": strict["malformed"] / strict["replies"] if strict["replies"] else None,
            "requests": strict["requests"], "unparsed_requests": strict["unparsed_requests"],
            "rules": {r: dict(c) for r, c in sorted(rules.items())}}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="trajectories.jsonl files")
    parser.add_argument("--json", default=None, help="also write the tally here")
    args = parser.parse_args()
    result = tally(args.paths)
    print(f"episodes {result['episodes']}")
    for model, row in result["models"].items():
        rate = "n/a" if row["malformed_rate"] is None else f"{row['malformed_rate']:.3f}"
        print(f"{model}: {row['malformed']}/{row['strict_replies']} strict replies malformed ({rate}); "
              f"{row['unparsed_requests']}/{row['requests']} requests never parsed")
        for rule, c in row["rules"].items():
            print(f"  {rule}: {c.get('malformed', 0)}/{c.get('replies', 0)} malformed, "
                  f"{c.get('unparsed_requests', 0)}/{c.get('requests', 0)} unparsed")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
