#!/usr/bin/env python
"""Issue 14's table from scripts/measure_router.sh's JSONs: every policy on the same held-out tasks, with R recomputed
for each λ of the sweep from the per-task (score, USD) rows (spec §4.4), and the router's call shares.

    .venv/bin/python scripts/router_table.py runs/router_measure [--lams 3 10] [--out docs/results/router.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rewards.router import RouterReward
from rltrain.router_eval import summarise, summarise_router


def rows_of(report: dict[str, Any], label: str, lams: list[float]) -> list[dict[str, Any]]:
    """One table row per policy of a `router_eval` report, from its per-task samples (`rltrain.router_eval`'s
    summaries, with R recomputed for each of `lams`)."""
    out = []
    for policy, samples in report["samples"].items():
        router = policy == "router"
        m = summarise_router(samples, lams, RouterReward()) if router else summarise(samples, lams, RouterReward())
        row = {"policy": label if router else policy, "tasks": len(samples),
               **{k: m[k] for k in ("accuracy", "usd_per_query", "calls_per_query", "direct_rate", "router_usd_per_query")}}
        if router:
            row.update({k: v for k, v in m.items() if k == "invalid_rate" or k.startswith("share_")})
        row.update({f"R_lam{lam:g}": m[f"reward_lam{lam:g}"] for lam in lams})
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir")
    parser.add_argument("--lams", type=float, nargs="*", default=[3.0, 10.0])
    parser.add_argument("--out", default=None, help="also write the rows as JSON")
    args = parser.parse_args()
    d = Path(args.dir)
    before = json.loads((d / "eval_before.json").read_text())
    reports = [("router (base SmolLM2, untrained)", before)]
    if (d / "eval_sft.json").exists():
        reports.append(("router after SFT cold start", json.loads((d / "eval_sft.json").read_text())))
    for path in sorted(d.glob("eval_after_lam*.json"), key=lambda p: float(p.stem.removeprefix("eval_after_lam"))):
        lam = path.stem.removeprefix("eval_after_lam")
        reports.append((f"router after SFT + GRPO at lambda={lam}", json.loads(path.read_text())))
    rows = [row for label, report in reports for row in rows_of(report, label, args.lams)]
    # per task, what R needs (score, USD) and what the router did: enough to re-derive every column for any λ
    per_task = {(label if policy == "router" else policy): [
        {k: s.get(k) for k in ("task", "score", "usd", "calls", "direct", "router_usd", "models", "finish") if k in s}
        for s in samples] for label, report in reports for policy, samples in report["samples"].items()}
    cols = ["accuracy", "usd_per_query", "calls_per_query", "direct_rate", *(f"R_lam{lam:g}" for lam in args.lams)]
    print(f"price table {before['price_table']} (x{before['price_scale']:g} list prices), {before['tasks']} held-out tasks")
    print("| policy | " + " | ".join(cols) + " | call shares |")
    print("|---" * (len(cols) + 2) + "|")
    for r in rows:
        shares = ", ".join(f"{k.removeprefix('share_')} {v:.2f}" for k, v in r.items() if k.startswith("share_"))
        print(f"| {r['policy']} | " + " | ".join(f"{r[c]:.3g}" for c in cols) + f" | {shares} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"price_table": before["price_table"], "price_scale": before["price_scale"],
                                              "tasks": before["tasks"], "rows": rows, "per_task": per_task}, indent=1))


if __name__ == "__main__":
    main()
