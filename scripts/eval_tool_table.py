"""The issue-12 eval table from `rltrain eval` outputs: success, parse rate per format, the seven SpecTool rates.

usage: .venv/bin/python scripts/eval_tool_table.py LABEL=runs/<name>/eval/trajectories.jsonl [LABEL=...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rewards.toolcall import spectool_metrics
from rltrain.data.schema import read_trajectories
from rltrain.envs import make_env
from rltrain.tools.metrics import tool_call_metrics

PATTERNS = ("IAC", "IAV", "IAN", "IAT", "RAC", "IFN", "IFE")


def env_tools(name: str) -> list[dict]:
    env = make_env(name, {})
    try:
        env.reset(env.tasks("test", 1, 0)[0])
    except Exception:  # noqa: BLE001 - some envs need a user to reset; their tools do not depend on it
        pass
    return [t.schema() for t in env.tools()]


def row(label: str, path: str) -> dict[str, float | str]:
    trajs = list(read_trajectories(Path(path)))  # old dataclass rows and versioned rows alike
    done = [t for t in trajs if not t.failed]
    tools = {name: env_tools(name) for name in {t.env for t in trajs}}
    spec = spectool_metrics(trajs, tools)
    tm = tool_call_metrics(trajs)
    out: dict[str, float | str] = {"run": label, "episodes": len(trajs), "failed": len(trajs) - len(done),
                                   "success": sum((t.reward or 0) >= 0.999 for t in done) / max(1, len(done)),
                                   "mean_reward": sum(t.reward or 0 for t in done) / max(1, len(done))}
    out.update({k.removeprefix("tools/"): round(v, 3) for k, v in tm.items() if k.startswith(("tools/parse_rate", "tools/calls"))})
    out.update({p: round(spec.get(f"spectool/{p}_traj_rate", float("nan")), 3) for p in PATTERNS})
    return out


if __name__ == "__main__":
    rows = [row(*arg.split("=", 1)) for arg in sys.argv[1:]]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    print(json.dumps(rows))
