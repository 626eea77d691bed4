"""`rltrain adapt CONFIG`: test-time adaptation evaluated as a 2×2 study, δ on/off × dynamics on/off (spec §5).

Runs in one process, on the transformers engine (`engine: transformers`, the δ reference,
`rltrain.engines.hf_engine`) or on vLLM (`engine: vllm`, the worker hook of `rltrain.engines.vllm_worker`, matched
token by token against the reference in tests/adapt/test_vllm_adapt.py): exploration first
when dynamics are asked for and not stored yet, then the four cells on the same held-out tasks, greedy. Prints the
table (success, format-error rate, SpecTool pattern counts, seconds per episode) and writes, under `output`,
`table.md`, `summary.json`, `dynamics/<env>.json` and `episodes.jsonl` (one row per episode with δ's state).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rltrain.adapt.vector import AdaptConfig

EXAMPLES = """\
examples:
  rltrain adapt launch/configs/adapt_formats.yaml
      The embedded SmolLM2-135M on 20 held-out formats tasks, level 0; rules summariser.
  rltrain adapt launch/configs/adapt_formats.yaml model=qwen2.5-coder-0.5b-instruct tasks=10 output=runs/adapt/qwen
      The same study with the 0.5B model as agent (install it first: scripts/install_models.sh).
"""


ADAPT_ENGINES = ("transformers", "vllm")
"""Values of `engine`: both serve δ sessions (`generate(session=)`, `reset_session`, `session_summary`)."""


@dataclass(frozen=True)
class DynamicsSettings:
    """Dynamics grounding (`dynamics.*`).

    Attributes:
        dir: where consolidated dynamics are stored, one JSON per env (default `<output>/dynamics`).
        explore: run exploration when the env has no stored dynamics (false: they must exist).
        summariser: "rules" (state diff, no model) or "policy" (the agent's own model, greedy, hat "judge").
        episodes_per_persona, steps, temperature: the exploration budget (personas × episodes × steps, T = 1).
        budget_tokens: largest dynamics block in the system prompt; beyond it, top_k by overlap with the task.
        top_k: records kept when the budget is exceeded.
    """

    dir: str = ""
    explore: bool = True
    summariser: str = "rules"
    episodes_per_persona: int = 1
    steps: int = 6
    temperature: float = 1.0
    budget_tokens: int = 512
    top_k: int = 8


@dataclass(frozen=True)
class AdaptRunConfig:
    """An adaptation study (`rltrain adapt`).

    Attributes:
        model: policy model name or folder (`rltrain.models.resolve_model`).
        env, env_kwargs: the environment and its kwargs (e.g. formats with level 0).
        split, tasks, seed: which tasks (the test split holds the held-out formats).
        max_turns, max_new_tokens, max_model_len: episode limits.
        engine: "transformers" (the reference; one batch at a time) or "vllm" (continuous batching; faster).
        dtype: the engine's dtype.
        adapt: δ's optimiser (spec §5.1; lr 0.1, 1 step by default).
        reset: "episode" (δ kept across an episode's turns) or "turn" (δ zeroed before each turn).
        concurrency: episodes in flight per cell (the engine batches them).
        cells: which of the four cells to run, as "delta/dynamics" pairs of on|off.
        dynamics: exploration and grounding.
        output: output folder.
    """

    model: str = "smollm2-135m-instruct"
    env: str = "formats"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    split: str = "test"
    tasks: int = 20
    seed: int = 0
    max_turns: int = 6
    max_new_tokens: int = 128
    max_model_len: int = 2048
    engine: str = "transformers"
    dtype: str = "bfloat16"
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    reset: str = "episode"
    concurrency: int = 4
    cells: tuple[str, ...] = ("off/off", "on/off", "off/on", "on/on")
    dynamics: DynamicsSettings = field(default_factory=DynamicsSettings)
    output: str = "runs/adapt"


def load_adapt_config(path: str, overrides: list[str]) -> AdaptRunConfig:
    from rltrain.config.loader import ConfigError, apply_overrides, build, load_yaml

    try:
        cfg = build(AdaptRunConfig, apply_overrides(load_yaml(path), overrides))
    except ValueError as err:  # AdaptConfig's own range checks
        raise ConfigError(str(err)) from err
    bad = [c for c in cfg.cells if c not in ("off/off", "on/off", "off/on", "on/on")]
    if bad or not cfg.cells or cfg.reset not in ("episode", "turn") or cfg.dynamics.summariser not in ("rules", "policy"):
        raise ConfigError(f"cells {bad} must be 'delta/dynamics' with on|off; reset={cfg.reset!r} must be episode|turn; "
                          f"dynamics.summariser={cfg.dynamics.summariser!r} must be rules|policy")
    if cfg.engine not in ADAPT_ENGINES:
        raise ConfigError(f"engine={cfg.engine!r} is not an adaptation engine; use one of {', '.join(ADAPT_ENGINES)} "
                          f"(transformers is the reference, vllm the fast path)")
    return cfg


class EngineUser:
    """The policy's own engine as the change summariser (hat "judge", greedy, no δ): a `UserSim` in this process."""

    def __init__(self, engine: Any, tokenizer: Any) -> None:
        self.engine, self.tokenizer = engine, tokenizer

    async def respond(self, request: Any) -> Any:
        from rltrain.engines.base import Sampling
        from rltrain.users import UserReply

        messages = [{"role": "system", "content": request.system}, *request.messages]
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
        t0 = time.perf_counter()
        # the request's temperature: a strict parser's retry asks for a new sample (rltrain.adapt.dynamics.summarise)
        gen = await self.engine.generate(ids, Sampling(max_new_tokens=request.max_tokens, temperature=request.temperature,
                                                       stop_token_ids=(self.tokenizer.eos_token_id,)))
        return UserReply(self.tokenizer.decode(gen.token_ids, skip_special_tokens=True), len(ids), len(gen.token_ids),
                         time.perf_counter() - t0, "policy")


def make_adapt_engine(cfg: AdaptRunConfig, model_path: str) -> Any:
    """The study's engine, with δ sessions enabled (`cfg.engine`)."""
    if cfg.engine == "vllm":
        import os

        from rltrain.engines.vllm_engine import VLLMEngine

        # KV cache sized to the work: `concurrency` episodes plus the summariser's call, of max_model_len tokens each
        return VLLMEngine(model_path, dtype=cfg.dtype, max_model_len=cfg.max_model_len, gpu_memory_utilization=0.5,
                          kv_cache_gib=None, max_num_seqs=cfg.concurrency + 1, seed=cfg.seed,
                          threads=os.cpu_count() or 1, adapt=cfg.adapt)
    from rltrain.engines.hf_engine import HFEngine

    return HFEngine(model_path, dtype=cfg.dtype, seed=cfg.seed, adapt=cfg.adapt)


async def run_study(cfg: AdaptRunConfig) -> dict[str, Any]:
    """Exploration (if needed) and the requested cells; returns the summary written to summary.json."""
    from transformers import AutoTokenizer

    from rltrain.adapt.dynamics import DynamicsStore
    from rltrain.adapt.runner import ExploreSettings, explore, format_table, run_cell, write_jsonl
    from rltrain.agent import ChatRenderer
    from rltrain.engines.base import Sampling
    from rltrain.envs import make_env
    from rltrain.envs.rllib import InProcessRulesUser
    from rltrain.models import resolve_model

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    model_path = str(resolve_model(cfg.model))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    renderer = ChatRenderer(tokenizer)
    engine = make_adapt_engine(cfg, model_path)
    await engine.start()
    factory = lambda: make_env(cfg.env, dict(cfg.env_kwargs))  # noqa: E731
    summariser_name = "rules (state diff)" if cfg.dynamics.summariser == "rules" else f"policy ({cfg.model})"
    needs_dynamics = any(c.endswith("/on") for c in cfg.cells)
    records, explore_counts = None, {}
    if needs_dynamics:
        store = DynamicsStore(cfg.dynamics.dir or out / "dynamics")
        if store.path(cfg.env).exists() or not cfg.dynamics.explore:
            records = store.load(cfg.env)
        else:
            summariser = InProcessRulesUser() if cfg.dynamics.summariser == "rules" else EngineUser(engine, tokenizer)
            settings = ExploreSettings(cfg.dynamics.episodes_per_persona, cfg.dynamics.steps, cfg.dynamics.temperature,
                                       cfg.max_new_tokens, cfg.max_model_len, cfg.seed)
            records, explore_counts = await explore(factory, engine, renderer, summariser, settings)
            store.save(cfg.env, records, summariser_name)
    tasks = factory().tasks(cfg.split, cfg.tasks, cfg.seed)
    sampling = Sampling(max_new_tokens=cfg.max_new_tokens, temperature=0.0, stop_token_ids=(renderer.end_of_turn_id,))
    title = (f"adaptation study: {cfg.env} {cfg.env_kwargs} split={cfg.split}, {len(tasks)} tasks, agent {cfg.model}, "
             f"summariser {summariser_name}, δ lr={cfg.adapt.lr} steps={cfg.adapt.steps} reset={cfg.reset}")
    rows, episodes = [], []
    summary: dict[str, Any] = {}
    for cell in cfg.cells:
        delta, dyn = (part == "on" for part in cell.split("/"))
        result = await run_cell(engine, factory, renderer, tasks, delta=delta, records=records if dyn else None,
                                sampling=sampling, max_turns=cfg.max_turns, max_model_len=cfg.max_model_len,
                                reset=cfg.reset, budget_tokens=cfg.dynamics.budget_tokens, top_k=cfg.dynamics.top_k,
                                concurrency=cfg.concurrency, label=cell)
        rows.append(result.row())
        episodes += [{"cell": cell, **e} for e in result.episodes]
        # Written after every cell, so that a study stopped by a time limit keeps the cells it finished.
        table = format_table(rows, title)
        (out / "table.md").write_text(table + "\n")
        write_jsonl(out / "episodes.jsonl", episodes)
        summary = {"config": asdict(cfg), "summariser": summariser_name, "exploration": explore_counts,
                   "dynamics_records": len(records or []), "rows": rows}
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        logging.getLogger(__name__).info("cell %s done:\n%s", cell, table)
    await engine.shutdown()
    print(table)
    return summary


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `adapt` to the `rltrain` CLI; it sets `func(args) -> exit code`."""
    p = subparsers.add_parser("adapt", help="evaluate test-time adaptation: δ on/off × dynamics on/off",
                              description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML adaptation config (launch/configs/adapt_formats.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. adapt.lr=0.05 tasks=10")
    p.set_defaults(func=_adapt_cmd)


def _adapt_cmd(args: argparse.Namespace) -> int:
    from rltrain.guard import run_guarded

    logging.basicConfig(level=logging.INFO, format="%(asctime)s adapt %(levelname)s %(name)s: %(message)s")
    code, _ = run_guarded(lambda: asyncio.run(run_study(load_adapt_config(args.config, args.overrides))), "adaptation study")
    return code


def main(argv: list[str] | None = None) -> int:
    """`python -m rltrain.adapt.command CONFIG [KEY=VALUE ...]`, the same as `rltrain adapt`."""
    parser = argparse.ArgumentParser(prog="rltrain")
    add_command(parser.add_subparsers())
    args = parser.parse_args(["adapt", *(argv if argv is not None else sys.argv[1:])])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
