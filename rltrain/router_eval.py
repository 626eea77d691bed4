"""The router against three fixed policies, measured in one process on the same held-out tasks (issue 14; spec §4.6).

    python -m rltrain.router_eval launch/configs/router.yaml --tasks 40 [--model runs/router/final] [--lam 1 3]

Policies, each scored with the run's verifier and reward (R = s·(K − min(λ·C, c_max)), spec §4.4):
- `router`: the policy (`model.name`, or `--model`) plays the routing episode greedily, tools and all;
- `always_<model>` for every pool model: the query goes to that model with a fixed system prompt, at temperature 0,
  and its reply is the answer (so always-strongest and always-cheapest are two of these);
- `direct`: the router's model answers the bare query itself, without tools.
Columns: accuracy (mean s), mean R, USD per query (pool calls, priced by the run's table), calls per query,
direct-answer rate, cost utility (accuracy / USD) and the router's own token USD per query (priced like any model;
xRouter charges it at eval only, spec §4.2). `--lam` recomputes R for several λ from the same episodes (the λ sweep
of a cost–accuracy plot needs one trained router per λ; this gives the fixed policies' side of it).

The pool is served by the LLM service in-process (`actors/user.py`, no Ray), the policy by one engine
(`rollout.engine`). Writes `<trainer.output_dir>/<trainer.name>/router_eval.json` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from rltrain.models import base_model_name

logger = logging.getLogger(__name__)

FIXED_SYSTEM = ("You are a helpful assistant. Solve the problem step by step in plain text (no code), then end with "
                "'The answer is N.'")


def summarise(rows: list[dict[str, Any]], lams: list[float], constants: Any) -> dict[str, float]:
    """Per-policy metrics from per-task rows {score, usd, calls, direct, router_usd}."""
    from rewards.router import RouterReward

    n = len(rows)
    acc = sum(r["score"] for r in rows) / n
    usd = sum(r["usd"] for r in rows) / n
    out = {"accuracy": acc, "reward": sum(constants.shape(r["score"], r["usd"]) for r in rows) / n, "usd_per_query": usd,
           "calls_per_query": sum(r["calls"] for r in rows) / n, "direct_rate": sum(r["direct"] for r in rows) / n,
           "cost_utility": acc / usd if usd > 0 else float("inf"),
           "router_usd_per_query": sum(r.get("router_usd", 0.0) for r in rows) / n}
    for lam in lams:
        shaped = RouterReward(lam=lam, k=constants.k, c_max=constants.c_max)
        out[f"reward_lam{lam:g}"] = sum(shaped.shape(r["score"], r["usd"]) for r in rows) / n
    return out


def summarise_router(rows: list[dict[str, Any]], lams: list[float], constants: Any,
                     pool: list[str] | None = None) -> dict[str, float]:
    """`summarise` plus the router's own columns: invalid-episode rate and each model's share of its pool calls (the
    collapse check of issue 14 part 5, at eval) over `pool`, or over the models it called when None."""
    out = summarise(rows, lams, constants)
    out["invalid_rate"] = sum(r["finish"] in ("max_turns", "unoffered_tool", "length") for r in rows) / len(rows)
    calls = [m for r in rows for m in r.get("models", [])]
    for model in pool if pool is not None else sorted(set(calls)):
        out[f"share_{model}"] = calls.count(model) / len(calls) if calls else 0.0
    return out


DEFAULT_LAMS = [1.0, 3.0]
"""λ values R is recomputed for by default (the spec's 3.0 and a cheaper 1.0)."""
POLICIES = ("router", "fixed", "direct")


async def evaluate_router(cfg: Any, model_path: str, n_tasks: int, lams: list[float], policies: tuple[str, ...] = POLICIES
                          ) -> tuple[dict[str, dict[str, float]], dict[str, list[dict[str, Any]]]]:
    """(metrics per policy, per-task rows per policy with the texts, cut to 400 characters). `policies`: which of
    the router, the fixed always-call policies and the direct answer to play (all by default)."""
    from actors.user import UserService
    from rewards.router import resolve_verifier
    from rltrain.agent import ChatRenderer, run_episode, tool_settings
    from rltrain.costs import records_from_trajectory
    from rltrain.engines import make_engine
    from rltrain.engines.base import Sampling
    from rltrain.envs import make_env
    from rltrain.users import UserRequest

    env0 = make_env("router", dict(cfg.env.kwargs))
    tasks = env0.tasks("test", n_tasks, cfg.trainer.seed)
    table, constants = env0.table, env0.constants
    service = UserService(0, cfg.users, cfg.trainer.seed)
    await service.start(pool=True)
    rc = cfg.rollout
    engine = make_engine(rc.engine, model_path, dtype=rc.dtype, max_model_len=cfg.model.max_model_len,
                         gpu_memory_utilization=rc.gpu_memory_utilization, kv_cache_gib=rc.kv_cache_gib,
                         seed=cfg.trainer.seed, threads=rc.threads)
    await engine.start()
    from transformers import AutoTokenizer

    renderer = ChatRenderer(AutoTokenizer.from_pretrained(model_path))
    greedy = Sampling(max_new_tokens=rc.max_new_tokens, temperature=0.0, stop_token_ids=(renderer.end_of_turn_id,))
    policy_name = base_model_name(model_path)  # a checkpoint is priced as the model it was trained from
    results: dict[str, dict[str, float]] = {}
    samples: dict[str, list[dict[str, Any]]] = {}

    def score(task: Any, text: str, called: bool) -> float:
        if "simple" in task.data["source"]:
            return float(not called)
        return float(resolve_verifier(task.data["verifier"])(text, task.data["answer"]))

    # the router itself
    async def route(i: int, task: Any) -> dict[str, Any]:
        env = make_env("router", dict(cfg.env.kwargs))
        traj = await run_episode(engine, env, renderer, task, env_name="router", group_id=i, sampling=greedy,
                                 max_turns=env.max_turns, max_model_len=cfg.model.max_model_len, user=service,
                                 tools=tool_settings(cfg.env, env, cfg.users))
        if traj.failed:
            raise RuntimeError(f"router episode {task.task_id} failed: {traj.failure}")
        terms = getattr(env, "terms", None) or {"score": 0.0, "cost_usd": env.cost_usd}
        own = table.price  # the router's own turns, priced like any model (eval only)
        router_usd = sum(own(r).usd or 0.0 for r in records_from_trajectory(traj, policy_name) if r.role == "policy")
        return {"score": terms["score"], "usd": env.cost_usd, "calls": len(env.history), "direct": float(not env.history),
                "router_usd": router_usd, "finish": traj.finish_reason, "task": task.task_id,
                "models": [h["model"] for h in env.history],
                "text": [m["content"][:400] for m in traj.messages[2:]]}

    if "router" in policies:
        rows = await asyncio.gather(*(route(i, t) for i, t in enumerate(tasks)))
        samples["router"] = list(rows)
        results["router"] = summarise_router(rows, lams, constants, list(env0.pool))

    # always call one pool model
    for model in env0.pool if "fixed" in policies else ():
        async def ask(i: int, task: Any, model: str = model) -> dict[str, Any]:
            request = UserRequest(hat="pool", system=FIXED_SYSTEM, messages=({"role": "user", "content": task.data["question"]},),
                                  model=model, max_tokens=env0.pool_max_tokens, episode=f"fixed-{model}-{i}#0")
            reply = await service.respond(request)
            usd = table.usd(model, reply.prompt_tokens, reply.completion_tokens)
            return {"score": score(task, reply.text, True), "usd": usd, "calls": 1, "direct": 0.0,
                    "tokens": (reply.prompt_tokens, reply.completion_tokens), "task": task.task_id, "text": reply.text[:400]}

        rows = await asyncio.gather(*(ask(i, t) for i, t in enumerate(tasks)))
        samples[f"always_{model}"] = list(rows)
        results[f"always_{model}"] = summarise(rows, lams, constants)
        results[f"always_{model}"]["mean_input_tokens"] = sum(r["tokens"][0] for r in rows) / len(rows)
        results[f"always_{model}"]["mean_output_tokens"] = sum(r["tokens"][1] for r in rows) / len(rows)

    # the router's model answering directly
    async def direct(task: Any) -> dict[str, Any]:
        ids = renderer.prompt_ids([{"role": "user", "content": task.data["question"]}])
        gen = await engine.generate(ids, greedy)
        text = renderer.decode(gen.token_ids)
        own = table.usd(policy_name, len(ids), len(gen.token_ids))
        return {"score": score(task, text, False), "usd": 0.0, "calls": 0, "direct": 1.0, "router_usd": own,
                "task": task.task_id, "text": text[:400]}

    if "direct" in policies:
        rows = list(await asyncio.gather(*(direct(t) for t in tasks)))
        results["direct"] = summarise(rows, lams, constants)
        samples["direct"] = rows
    await service.shutdown()
    await engine.shutdown()
    return results, samples


def table_markdown(results: dict[str, dict[str, float]], scale: float, tag: str, n: int) -> str:
    cols = ["accuracy", "reward", "usd_per_query", "calls_per_query", "direct_rate", "cost_utility", "router_usd_per_query"]
    lines = [f"price table {tag} (scale x{scale:g} vs list prices), {n} held-out tasks", "",
             "| policy | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, m in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[c]:.4g}" for c in cols) + " |")
    return "\n".join(lines)


def run(cfg: Any, model: str | None, n_tasks: int | None, lams: list[float], out: str | None = None,
        policies: tuple[str, ...] = POLICIES) -> dict[str, Any]:
    """Evaluate, write the JSON (default `<output_dir>/<name>/router_eval.json`), print the table; the JSON's dict."""
    from rltrain.costs import load_price_table
    from rltrain.models import resolve_model

    model_path = str(resolve_model(model or cfg.model.name))
    n = n_tasks or cfg.env.eval_tasks
    results, samples = asyncio.run(evaluate_router(cfg, model_path, n, lams, policies))
    table = load_price_table(cfg.env.kwargs.get("price_table", "synthetic-cpu"))
    path = Path(out) if out else Path(cfg.trainer.output_dir) / cfg.trainer.name / "router_eval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {"model": model or cfg.model.name, "tasks": n, "price_table": table.tag, "price_scale": table.scale,
              "lam": cfg.env.kwargs.get("reward", {}).get("lam", 3.0), "results": results, "samples": samples}
    path.write_text(json.dumps(report, indent=2))
    print(table_markdown(results, table.scale, table.tag, n))
    print(f"written to {path}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rltrain.router_eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--tasks", type=int, default=None, help="held-out tasks (default env.eval_tasks)")
    parser.add_argument("--model", default=None, help="the router's weights (default model.name), e.g. runs/router/final")
    parser.add_argument("--lam", type=float, nargs="*", default=DEFAULT_LAMS, help="lambdas to recompute R for")
    parser.add_argument("--out", default=None, help="JSON output (default <output_dir>/<name>/router_eval.json)")
    parser.add_argument("--policies", nargs="*", choices=POLICIES, default=list(POLICIES),
                        help="play only these (the fixed policies do not change with the router: measure them once)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s router_eval %(levelname)s %(name)s: %(message)s")
    from rltrain.config import load_config

    run(load_config(args.config, args.overrides), args.model, args.tasks, args.lam, args.out, tuple(args.policies))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
