"""router: learn when to answer and which model to pay for (xRouter, spec §4; docs/router.md).

The policy is a router. Each episode offers it a pool of models as tools (`rltrain.tools.base.Tool`):
- `call_<model>(optimized_system_prompt, temperature)`: the LLM service (`actors/user.py`, `users.pool`) sends the
  model exactly [system: optimized_system_prompt, user: the ORIGINAL query] (never the conversation) and the reply
  comes back as the tool result (§4.1). The description carries the model's capability text, its price from the
  run's price table and its context window;
- `select_response(model_call_name)`: returns a stored reply to the user verbatim and ends the episode;
- a plain-text message is the router's own final answer and ends the episode.
`max_turns` is 3; a call to a tool that was not offered ends the episode (`unoffered_tool = "end"`, finish_reason
"unoffered_tool", reward 0). A pool call whose model is down goes back to the router as a tool error (error class
"model_down", recorded as a failed call costing 0); once every offered model has failed in the episode, the pool is
down: the episode is marked failed and dropped, never scored 0.

Reward (spec §4.4, `rewards.router`): the episode's end computes R = s·(K − min(λ·C, c_max)) and returns it as the
final turn's reward (reward function `turn_rewards`). C is the USD of the episode's pool calls, priced by the run's
price table (`price_table`, the same as `costs.price_table`) on the same records the cost ledger stores: each call's
record in `user_calls` carries its `usd`, and a reply served from the cache is charged as if the model had run, so the
reward never depends on caching.

Tasks: a source environment's tasks (`arithmetic` or `word_problems`; answers checked by `verifier`) plus a share of
"simple" queries (greetings, 1+1) where s = 1 iff no tool was called (§4.4). Each task carries its offered pool
(`task.data["pool"]`), drawn per task as §4.5 says (per-tier counts, or fixed pools with probabilities), so the
samples of one GRPO group see the same tools.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from rewards.router import NO_SOLUTION, Route, RouterReward, resolve_verifier, router_reward, strip_think
from rltrain.costs import PriceTable, load_price_table
from rltrain.envs.base import ENVIRONMENTS, Split, StepResult, TextEnv, make_env
from rltrain.tools.base import Tool, ToolError, ToolResult
from rltrain.types import Task
from rltrain.users import UserRequest, UserSimError

ROUTER_SYSTEM = (
    "You are a router. Answer the user's query yourself when it is easy, or call ONE of the offered models when it "
    "needs a stronger one; cheaper models are better when they suffice. To call a model, use its tool with a short "
    "system prompt for it. Then either reply to the user in plain text, or return a model's reply with "
    "select_response(model_call_name). Give the final answer to the user in plain text.")
QUERY_PREFIX = "USER QUERY: "
SIMPLE_QUERIES: tuple[str, ...] = (
    "Hi!", "Hello, how are you?", "Thanks a lot!", "Good morning.", "Say hello to me.", "What is 1+1?",
    "Can you hear me?", "Thank you, that is all.", "Hey there.", "Nice to meet you.")
DEFAULT_VERIFIER = {"arithmetic": "last_number", "word_problems": "word_problems"}


@dataclass(frozen=True)
class PoolEntry:
    """A pool model as the router sees it (mirrors `users.pool`: the LLM service serves it under the same name)."""

    name: str
    description: str = ""
    tier: str = "standard"
    context_window: int = 2048

    @property
    def tool_name(self) -> str:
        return "call_" + self.name.replace("-", "_").replace(".", "_")


class RouterPoolDown(RuntimeError):
    """Every offered pool model failed in this episode: an infrastructure failure (the episode is dropped, not scored)."""


class CallModel(Tool):
    """`call_<model>`: ask one pool model the original query under the router's system prompt (§4.1)."""

    parameters = {"type": "object", "properties": {
        "optimized_system_prompt": {"type": "string", "description": "The system prompt for this model: how to answer."},
        "temperature": {"type": "number", "description": "Sampling temperature, 0 to 1 (0 for exact answers)."}},
        "required": ["optimized_system_prompt"]}
    concurrency_safe = True  # parallel calls in one message (§4.1); each keeps its own record
    timeout_s = None  # the service has its own time-outs and retries; the env step bound covers the rest

    def __init__(self, entry: PoolEntry, table: PriceTable) -> None:
        self.entry = entry
        self.name = entry.tool_name  # type: ignore[misc]  (one tool instance per pool model)
        price = table.price_of(entry.name)
        self.description = (f"Ask {entry.name} ({entry.tier}). {entry.description} Price: ${price.input:.2f} per 1M input "  # type: ignore[misc]
                            f"tokens, ${price.output:.2f} per 1M output tokens. Context window: {entry.context_window} "
                            f"tokens.").replace("  ", " ")

    async def execute(self, arguments: dict[str, Any], episode_state: Any) -> ToolResult:
        env: RouterEnv = episode_state
        text = await env.call_model(self.entry, str(arguments.get("optimized_system_prompt", "")),
                                    float(arguments.get("temperature", 0.0) or 0.0))
        return ToolResult(text)


class SelectResponse(Tool):
    """`select_response(model_call_name)`: give a stored reply to the user and end the episode (§4.1)."""

    name = "select_response"
    description = ("Return a model's previous reply to the user verbatim and finish. model_call_name is the tool you "
                   "called, e.g. call_qwen2_5_coder_0_5b_instruct.")
    parameters = {"type": "object", "properties": {"model_call_name": {"type": "string"}}, "required": ["model_call_name"]}

    async def execute(self, arguments: dict[str, Any], episode_state: Any) -> ToolResult:
        env: RouterEnv = episode_state
        return env.select(str(arguments["model_call_name"]))


@ENVIRONMENTS.register("router")
class RouterEnv(TextEnv):
    """Routing episodes over a model pool served by the LLM service; see the module doc.

    Args:
        pool: the pool models, as dicts {name, description, tier, context_window} (names as in `users.pool`).
        source: where queries come from: "arithmetic" or "word_problems" (their train/test splits).
        source_kwargs: kwargs of the source environment.
        verifier: `last_number`, `word_problems`, `string_match` or `module:function`; default per source.
        simple_fraction: share of tasks that are "simple" queries (s = 1 iff no tool is called).
        tier_counts: per tier, [min, max] models offered per task (§4.5); null offers the whole pool.
        fixed_pools: [{models: [...], p: 0.5}, ...]: with probability p a task offers that fixed pool (§4.5).
        price_table: the price table that prices pool calls for the reward; keep it equal to costs.price_table.
        reward: {lam, k, c_max} of R = s·(K − min(λ·C, c_max)) (§4.4).
        pool_max_tokens: reply budget of each pool call.
        system_prompt: the router's instructions (default `ROUTER_SYSTEM`).
    """

    reward_fn = "turn_rewards"
    unoffered_tool = "end"
    malformed_call = "error"  # a garbled call is the router's mistake; it may still answer in plain text
    max_turns = 3
    needs_user = True

    def __init__(self, pool: list[dict[str, Any]], source: str = "arithmetic", source_kwargs: dict[str, Any] | None = None,
                 verifier: str | None = None, simple_fraction: float = 0.1,
                 tier_counts: dict[str, list[int]] | None = None, fixed_pools: list[dict[str, Any]] | None = None,
                 price_table: str = "synthetic-cpu", reward: dict[str, float] | None = None, pool_max_tokens: int = 128,
                 system_prompt: str | None = None) -> None:
        if not pool:
            raise ValueError("router needs a pool: env.kwargs.pool = [{name: ..., description: ...}, ...] (names as in "
                             "users.pool)")
        self.pool = {e.name: e for e in (PoolEntry(**p) for p in pool)}
        if source not in DEFAULT_VERIFIER:
            raise ValueError(f"source={source!r} must be one of {sorted(DEFAULT_VERIFIER)}")
        if not 0 <= simple_fraction <= 1:
            raise ValueError(f"simple_fraction={simple_fraction} must be in [0, 1]")
        self.source, self.source_env = source, make_env(source, source_kwargs or {})
        self.verifier_name = verifier or DEFAULT_VERIFIER[source]
        resolve_verifier(self.verifier_name)  # fail at start, not in the first episode
        self.simple_fraction = simple_fraction
        self.tier_counts = {k: (int(v[0]), int(v[1])) for k, v in (tier_counts or {}).items()}
        self.fixed_pools = [(list(f["models"]), float(f["p"])) for f in fixed_pools or []]
        for models, _ in self.fixed_pools:
            unknown = set(models) - set(self.pool)
            if unknown:
                raise ValueError(f"fixed_pools names {sorted(unknown)}, which are not in the pool {sorted(self.pool)}")
        if sum(p for _, p in self.fixed_pools) > 1:
            raise ValueError("fixed_pools probabilities must add up to at most 1")
        self.table = load_price_table(price_table)
        for name in self.pool:
            self.table.price_of(name)  # every pool model must be priced: its cost is the reward's C
        self.constants = RouterReward(**(reward or {}))
        self.pool_max_tokens, self.system_prompt = pool_max_tokens, system_prompt or ROUTER_SYSTEM
        self._tools = {e.name: CallModel(e, self.table) for e in self.pool.values()}
        self._select = SelectResponse()

    # -- tasks -----------------------------------------------------------------------------------------------------

    def draw_pool(self, rng: random.Random) -> list[str]:
        """The models offered to one task (§4.5): a fixed pool with its probability, else per-tier counts (whole pool
        when none are configured); never empty."""
        roll = rng.random()
        for models, p in self.fixed_pools:
            if roll < p:
                return list(models)
            roll -= p
        if not self.tier_counts:
            return list(self.pool)
        chosen: list[str] = []
        for tier, (low, high) in sorted(self.tier_counts.items()):
            members = [n for n, e in self.pool.items() if e.tier == tier]
            chosen += rng.sample(members, min(len(members), rng.randint(low, high)))
        return [n for n in self.pool if n in chosen] or [rng.choice(list(self.pool))]

    def tasks(self, split: Split, count: int, seed: int) -> list[Task]:
        rng = random.Random(f"router-{split}-{seed}")
        simple = sum(rng.random() < self.simple_fraction for _ in range(count))
        out = []
        for task in self.source_env.tasks(split, count - simple, seed):
            question = self.source_env.reset(task)[0][-1]["content"]
            out.append(Task(task.task_id, {"question": question, "answer": task.data["answer"], "source": self.source,
                                           "verifier": self.verifier_name, "pool": self.draw_pool(rng)}))
        for i in range(simple):
            query = SIMPLE_QUERIES[rng.randrange(len(SIMPLE_QUERIES))]
            out.append(Task(f"simple-{split}-{seed}-{i}", {"question": query, "answer": None, "source": "simple",
                                                          "verifier": "string_match", "pool": self.draw_pool(rng)}))
        rng.shuffle(out)
        return out

    # -- episode -----------------------------------------------------------------------------------------------------

    def reset(self, task: Task) -> tuple[list[dict[str, str]], dict[str, Any]]:
        self.task = task
        self.offered = [n for n in task.data.get("pool") or list(self.pool) if n in self.pool]
        if not self.offered:
            raise ValueError(f"task {task.task_id} offers no model of the configured pool {sorted(self.pool)}")
        self.routes: list[Route] = []
        self.outputs: dict[str, str] = {}
        self.failed: set[str] = set()
        self.cost_usd = 0.0
        self.history: list[dict[str, Any]] = []
        return [{"role": "system", "content": self.system_prompt},
                {"role": "user", "content": QUERY_PREFIX + str(task.data["question"])}], {}

    def tools(self) -> list[Tool]:
        return [*(self._tools[n] for n in self.offered), self._select]

    async def call_model(self, entry: PoolEntry, system: str, temperature: float) -> str:
        """One pool call through the LLM service, priced and recorded; see the module doc for failures."""
        question = str(self.task.data["question"])  # the ORIGINAL query only, never the conversation (§4.1)
        request = UserRequest(hat="pool", system=system, messages=({"role": "user", "content": question},),
                              model=entry.name, max_tokens=self.pool_max_tokens, temperature=min(max(temperature, 0.0), 1.0))
        self.routes.append(Route((entry.name,)))
        try:
            reply = await self.ask(request)
        except UserSimError as err:
            calls = self.__dict__.setdefault("user_calls", [])
            calls.append({"key": f"{self.episode}/{len(calls)}", "hat": "pool", "role": "pool", "model": entry.name,
                          "backend": f"pool:{entry.name}", "success": False, "prompt_tokens": 0, "completion_tokens": 0,
                          "usd": 0.0, "price_table": self.table.tag, "latency_s": 0.0, "error": str(err)[:300]})
            self.history.append({"model": entry.name, "success": False, "usd": 0.0})
            self.failed.add(entry.name)
            if set(self.offered) <= self.failed:
                raise RouterPoolDown(f"every offered pool model failed ({', '.join(sorted(self.failed))}); last error: "
                                     f"{err}") from None
            raise ToolError(f"{entry.tool_name} is unavailable right now; try another model or answer yourself.",
                            kind="model_down") from None
        # Priced as if the model ran, also for a cached reply: the reward must not depend on the cache.
        usd = self.table.usd(entry.name, reply.prompt_tokens, reply.completion_tokens)
        record = self.user_calls[-1]
        record.update(usd=usd, price_table=self.table.tag)
        self.cost_usd += usd
        self.outputs[entry.tool_name] = reply.text
        self.history.append({"model": entry.name, "success": True, "input_tokens": reply.prompt_tokens,
                             "output_tokens": reply.completion_tokens, "usd": usd})
        return reply.text

    def select(self, model_call_name: str) -> ToolResult:
        name = model_call_name.strip()
        key = name if name in self.outputs else PoolEntry(name).tool_name
        if key not in self.outputs:
            called = ", ".join(sorted(self.outputs)) or "none yet"
            raise ToolError(f"no reply from {name!r} to select (replies so far: {called}); call the model first.",
                            kind="bad_selection")
        self.routes.append(Route(("user",), self.outputs[key], selected=True))
        return self._finish(ToolResult, self.outputs[key])

    def step(self, action: str) -> StepResult:
        """Plain text: the router's own final answer (§4.1), which ends the episode."""
        self.routes.append(Route(("user",), strip_think(action)))
        return self._finish(StepResult, None)

    def _finish(self, kind: type, observation: str | None) -> Any:
        data = self.task.data
        terms = router_reward(self.routes, data.get("answer"), resolve_verifier(data.get("verifier") or self.verifier_name),
                              self.cost_usd, simple="simple" in str(data.get("source", "")), constants=self.constants)
        self.terms = terms  # the episode's s, C, validity: read by evaluation (rltrain.router_eval) and serving
        info = {"router": terms, "router_metadata": self.metadata()}
        if kind is StepResult:
            return StepResult(None, reward=terms["reward"], terminated=True, info=info)
        return ToolResult(observation or "", reward=terms["reward"], terminated=True, info=info)

    def metadata(self) -> dict[str, Any]:
        """xRouter's `router_metadata` (§4.6): models called, tokens, USD, the call history."""
        ok = [h for h in self.history if h["success"]]
        return {"models_called": [h["model"] for h in self.history], "total_cost": self.cost_usd,
                "input_tokens": sum(h["input_tokens"] for h in ok), "output_tokens": sum(h["output_tokens"] for h in ok),
                "price_table": self.table.tag, "call_history": list(self.history),
                "final_route": "direct" if not self.history else ("select" if self.routes and self.routes[-1].selected
                                                                  else "summary"),
                "valid": bool(self.routes) and self.routes[-1].route_to == ("user",)}


__all__ = ["NO_SOLUTION", "CallModel", "PoolEntry", "RouterEnv", "RouterPoolDown", "SelectResponse"]


def check_router_config(env_kwargs: dict[str, Any], users: Any, costs_price_table: str | None = None,
                        cache_dir: Any = None) -> None:
    """Preflight for router runs (called before Ray starts): every offered model is served by the LLM service
    (`users.pool`), the env prices with the ledger's table, and local pool models are installed.

    Raises ConfigError naming the key and the fix.
    """
    from rltrain.config.loader import ConfigError
    from rltrain.models import ModelNotFoundError, resolve_model

    served = {m.name: m for m in users.pool}
    offered = [p["name"] if isinstance(p, dict) else str(p) for p in env_kwargs.get("pool") or []]
    missing = [n for n in offered if n not in served]
    if missing:
        raise ConfigError(f"env.kwargs.pool offers {missing}, which users.pool does not serve; add "
                          f"{{name: {missing[0]}, backend: vllm}} (or openai) to users.pool")
    table = env_kwargs.get("price_table", "synthetic-cpu")
    if costs_price_table is not None and table != costs_price_table:
        raise ConfigError(f"env.kwargs.price_table={table!r} differs from costs.price_table={costs_price_table!r}: the "
                          f"router's reward and the cost ledger would price calls differently; set both to one table")
    for name in offered:
        model = served[name]
        if model.backend == "vllm":
            try:
                resolve_model(model.model or model.name, cache_dir)
            except ModelNotFoundError as err:
                raise ConfigError(f"users.pool[{name}]: {err}") from None
