"""Pre-flight: everything a user can get wrong, checked once, before Ray starts.

`prepare(cfg)` is what `rltrain train`, `rltrain train --dry-run`, `rltrain eval` and `rltrain doctor` run. It
checks, in order, and raises `ConfigError` (or `ModelNotFoundError`) naming the key on the first failure:

1. names: `env.name` (and `env.kwargs`, by building the environment), `algorithm.name`, `reward.fn` and
   `reward.kwargs`, the engine, the loggers;
2. the simulated users the environment needs (`users.*`; a judged gym refuses an implicit `rules` backend), and
   that the bounds nest (users' worst case < env step < `watchdog.rollout_s`);
3. the model: `model.name` resolves to a local folder whose tokenizer loads;
4. the context: the longest opening prompt of a sample of tasks plus `rollout.max_new_tokens` fits
   `model.max_model_len`;
5. what the roles reserve (`Requirements`: the placement plan and the CPUs); checked against a cluster by
   `Requirements.check` once one is there.

The environment is built once, here, and everything that asks "does this run need users?" reads the answer
from the result. No Ray import: this module sits below the actors, groups and driver.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewards import REWARD_FNS
from rltrain.agent import ChatRenderer, tool_settings
from rltrain.algorithms import Algorithm, build_algorithm
from rltrain.config import RunConfig
from rltrain.config.env import step_timeout
from rltrain.config.learner import default_zero_stage
from rltrain.config.loader import given
from rltrain.engines import vllm_available
from rltrain.envs import ENVIRONMENTS, TextEnv, make_env
from rltrain.envs.base import resolve_max_turns
from rltrain.envs.judging import check_user_backend
from rltrain.envs.router import check_router_config
from rltrain.errors import ConfigError
from rltrain.models import EMBEDDED_MODEL, resolve_model
from rltrain.placement import ACCOUNTANT_CPUS, Node, PlacementPlan, plan_placement
from rltrain.telemetry import check_loggers

logger = logging.getLogger(__name__)

CONTEXT_SAMPLE_TASKS = 16
"""Tasks per split whose opening prompt the context check measures (cheap: a chat template and a tokenizer)."""


@dataclass(frozen=True)
class Names:
    """What the names in the config resolve to (no model needed)."""

    env: TextEnv
    algorithm: Algorithm
    reward_fn: str

    @property
    def needs_users(self) -> bool:
        """The instance decides: a mix of gyms, or SearchGym judging by exact match, may need no user."""
        return bool(self.env.needs_user)


@dataclass(frozen=True)
class Requirements:
    """What the run reserves: the placement plan (users only where the environment needs them) and the CPUs."""

    cfg: RunConfig
    needs_users: bool
    plan: PlacementPlan

    @property
    def cpus(self) -> float:
        """Every role's CPUs, the accountant's and the cost ledger's (which have no placement group) included."""
        return self.plan.totals().get("CPU", 0.0) + ACCOUNTANT_CPUS + self.cfg.costs.num_cpus

    def local_cpus(self) -> int:
        """The logical CPUs a private local cluster gets: `ray.num_cpus`, else enough for every role (at least the
        machine's cores)."""
        return self.cfg.ray.num_cpus or max(int(self.cpus + 0.999), os.cpu_count() or 1)

    def check(self, available: Mapping[str, float], nodes: Sequence[Node] = ()) -> None:
        """Compare what the roles request with the cluster (totals; with `nodes`, also whether each placement group
        fits them); raise ConfigError naming the keys to change."""
        cpus, have_cpus = self.cpus, available.get("CPU", 0.0)
        if cpus > have_cpus:
            users = " + users.num_actors x users.num_cpus" if self.needs_users else ""
            raise ConfigError(f"the roles need {cpus:g} CPUs (rollout.num_workers x rollout.num_cpus + learner.num_learners "
                              f"x learner.num_cpus{users} + {ACCOUNTANT_CPUS:g} for the accountant + costs.num_cpus) but the cluster has "
                              f"{have_cpus:g}; lower those keys or set ray.num_cpus (Ray's CPU count is logical)")
        gpus = self.plan.totals().get("GPU", 0.0)
        if gpus > available.get("GPU", 0.0):
            raise ConfigError(f"the roles need {gpus:g} GPUs but the cluster has {available.get('GPU', 0.0):g}; set "
                              f"rollout.num_gpus=0, learner.num_gpus=0 and users.num_gpus=0 to run on CPU, or join a GPU "
                              f"cluster with ray.address")
        self.plan.check_custom(available)
        if nodes:
            self.plan.check_nodes(nodes)


@dataclass(frozen=True)
class Preflight:
    """Everything checked and resolved before Ray starts; the driver and the evaluation start from it."""

    cfg: RunConfig
    model_path: str
    env: TextEnv
    algorithm: Algorithm
    reward_fn: str
    requirements: Requirements
    user_model_path: str | None = None
    """The simulated user's local model folder (users.backend=vllm), resolved like the policy's."""
    tokenizer: Any = None
    """The policy's tokenizer, loaded once here (the driver builds batches with it)."""

    @property
    def needs_users(self) -> bool:
        return self.requirements.needs_users


def prepare(cfg: RunConfig) -> Preflight:
    """Run every pre-flight check (module docstring); raise ConfigError/ModelNotFoundError on the first failure."""
    names = check_names(cfg)
    check_user_source(cfg, names.needs_users)
    user_model_path = check_users(cfg, names.needs_users)
    check_bounds(cfg, names.needs_users)
    model_path = str(resolve_model(cfg.model.name, _cache_dir(cfg)))
    tokenizer = load_tokenizer(model_path, "model.name")
    check_context(cfg, names.env, tokenizer)
    if cfg.env.name == "router":  # its pool, price table and installed models (docs/router.md)
        check_router_config(cfg.env.kwargs, cfg.users, cfg.costs.price_table, _cache_dir(cfg))
    log_chosen_defaults(cfg)
    return Preflight(cfg, model_path, names.env, names.algorithm, names.reward_fn,
                     requirements(cfg, names.needs_users), user_model_path, tokenizer)


def log_chosen_defaults(cfg: RunConfig) -> None:
    """One line for each setting that the config chose from the others because the user left it unset."""
    if not given(cfg.learner, "zero_stage"):
        stage, why = default_zero_stage(cfg.learner.num_learners, cfg.learner.dtype)
        logger.info("learner.zero_stage unset: ZeRO-%d (%s); set learner.zero_stage to choose", stage, why)


def check_names(cfg: RunConfig) -> Names:
    """env, algorithm, reward function and engine names (and the env's and reward's kwargs); no model needed."""
    if cfg.env.name not in ENVIRONMENTS:
        raise ConfigError(f"env.name={cfg.env.name!r} is not registered; choose one of: {', '.join(ENVIRONMENTS)}")
    try:
        algorithm = build_algorithm(cfg.algorithm)
    except (KeyError, AttributeError) as err:
        raise ConfigError(f"algorithm.name={cfg.algorithm.name!r}: {err}") from err
    env = make_env(cfg.env.name, cfg.env.kwargs)
    resolve_max_turns(env, cfg.env.max_turns)  # a config above the env's own turn limit is an error
    tool_settings(cfg.env, env, cfg.users)  # env.tool_parser, env.tools (importable, no duplicate names), the step bound
    reward_fn = cfg.reward.fn or env.reward_fn
    if reward_fn is None or reward_fn not in REWARD_FNS:
        raise ConfigError(f"reward.fn={reward_fn!r} is not a registered reward function; choose one of: {', '.join(REWARD_FNS)}")
    signature = inspect.signature(REWARD_FNS.get(reward_fn))
    try:
        signature.bind(None, **cfg.reward.kwargs)
    except TypeError as err:
        raise ConfigError(f"reward.kwargs do not fit reward function {reward_fn!r} ({err}); its signature is "
                          f"{signature}") from err
    if cfg.rollout.engine == "vllm" and not vllm_available():
        raise ConfigError("rollout.engine=vllm but vLLM is not installed; pip install -e '.[cpu]' or set rollout.engine=transformers")
    check_loggers(cfg)
    return Names(env, algorithm, reward_fn)


def check_users(cfg: RunConfig, needs_users: bool) -> str | None:
    """Check the users section against the environment's need; returns the user model's folder (vllm backend)."""
    uc = cfg.users
    if not needs_users:
        return None
    if uc.num_actors == 0:
        raise ConfigError(f"env.name={cfg.env.name!r} needs a simulated user but users.num_actors=0; set users.num_actors=1 "
                          f"(or more) and users.backend (rules, vllm or openai)")
    if uc.replay_from:
        if not Path(uc.replay_from).is_file():
            raise ConfigError(f"users.replay_from={uc.replay_from!r} does not exist; point it at a run's trajectories.jsonl "
                              f"or set users.replay_from=null")
        return None
    if uc.backend == "openai":
        if not (uc.base_url or os.environ.get("OPENAI_BASE_URL")):
            raise ConfigError("users.backend=openai needs an endpoint: set users.base_url (e.g. http://127.0.0.1:8000/v1) "
                              "or the OPENAI_BASE_URL environment variable")
        # A local cluster's actors inherit this process's environment; on a joined cluster the nodes' own counts.
        if not cfg.ray.address and not os.environ.get(uc.api_key_env):
            raise ConfigError(f"users.backend=openai reads its API key from the environment variable {uc.api_key_env}, "
                              f"which is not set; export it (or name another variable with users.api_key_env)")
    if uc.backend == "vllm":
        if uc.engine == "vllm" and not vllm_available():
            raise ConfigError("users.engine=vllm but vLLM is not installed; set users.engine=transformers")
        return str(resolve_model(uc.model or EMBEDDED_MODEL, _cache_dir(cfg)))
    return None


def check_user_source(cfg: RunConfig, needs_users: bool) -> None:
    """A judged gym (or a mix with one) refuses the default `rules` user unless `users.backend` was set explicitly
    (issue 17: the rules responders are test fixtures). Replayed user turns come from a file: no backend is used."""
    if needs_users and not cfg.users.replay_from:
        check_user_backend(cfg.env.name, cfg.env.kwargs, cfg.users.backend, cfg.users.backend_explicit)


def check_bounds(cfg: RunConfig, needs_users: bool) -> None:
    """The bounds nest: the simulated users' worst case < one env step's bound < the rollout phase's bound
    (`watchdog.rollout_s`), so that the innermost wait that runs out is the one named."""
    step = step_timeout(cfg.env, cfg.users, needs_users)  # raises when the step bound is below the users' worst case
    if cfg.watchdog.rollout_s <= step:
        raise ConfigError(f"watchdog.rollout_s={cfg.watchdog.rollout_s:g} must exceed one environment step's bound of "
                          f"{step:g}s (env.step_timeout_s, or its default from users.*); raise watchdog.rollout_s")


def load_tokenizer(model_path: str, key: str) -> Any:
    """The folder's tokenizer; ConfigError naming `key` when it does not load (a weights-only folder, a broken file)."""
    from transformers import AutoTokenizer  # transformers takes seconds to import: only once a model is resolved

    try:
        return AutoTokenizer.from_pretrained(model_path)
    except Exception as err:  # transformers raises OSError, ValueError or the tokenizer library's own errors
        raise ConfigError(f"{key}: the tokenizer in {model_path} does not load ({type(err).__name__}: "
                          f"{str(err).splitlines()[0][:200] if str(err) else ''}); the folder needs tokenizer.json or "
                          f"tokenizer_config.json with its vocabulary, and a chat template") from err


def check_context(cfg: RunConfig, env: TextEnv, tokenizer: Any) -> int:
    """The longest opening prompt of a sample of train and test tasks plus one response of rollout.max_new_tokens
    must fit model.max_model_len; returns that longest prompt's tokens. (Later turns are cut to the room left, as
    the agent loop does; an opening turn that cannot reach max_new_tokens means the config is inconsistent.)"""
    limit, new = cfg.model.max_model_len, cfg.rollout.max_new_tokens
    if new >= limit:
        raise ConfigError(f"rollout.max_new_tokens={new} does not fit model.max_model_len={limit}, which holds the prompt "
                          f"and the response together; lower rollout.max_new_tokens or raise model.max_model_len")
    longest = opening_prompt_tokens(cfg, env, tokenizer)
    if longest + new > limit:
        raise ConfigError(f"the longest opening prompt of env.name={cfg.env.name} has {longest} tokens; with "
                          f"rollout.max_new_tokens={new} that is {longest + new}, more than model.max_model_len={limit}; "
                          f"raise model.max_model_len to at least {longest + new} or lower rollout.max_new_tokens to at "
                          f"most {limit - longest}")
    return longest


def opening_prompt_tokens(cfg: RunConfig, env: TextEnv, tokenizer: Any) -> int:
    """Tokens of the longest opening prompt (chat template and tool schema as the agent loop renders them) over a
    sample of train and test tasks."""
    renderer = ChatRenderer(tokenizer)
    extra = [tool.schema() for tool in tool_settings(cfg.env, env, cfg.users).extra_tools]
    tasks = [*env.tasks("train", CONTEXT_SAMPLE_TASKS, seed=cfg.trainer.seed),
             *env.tasks("test", min(CONTEXT_SAMPLE_TASKS, cfg.env.eval_tasks), seed=cfg.trainer.seed)]
    longest = 0
    for task in tasks:
        messages, _ = env.reset(task)
        schemas = [*(tool.schema() for tool in env.tools()), *extra] or None  # as `rltrain.agent.run_episode` offers them
        longest = max(longest, len(renderer.prompt_ids(messages, schemas)))
    return longest


def requirements(cfg: RunConfig, needs_users: bool | None = None) -> Requirements:
    """The run's `Requirements`; `needs_users=None` asks the environment (building it once; its registered class
    decides where its kwargs do not build)."""
    if needs_users is None:
        needs_users = _env_needs_users(cfg)
    return Requirements(cfg, needs_users, plan_placement(cfg, with_users=needs_users))


def _env_needs_users(cfg: RunConfig) -> bool:
    if cfg.env.name not in ENVIRONMENTS:
        return False
    try:
        return bool(make_env(cfg.env.name, cfg.env.kwargs).needs_user)
    except ConfigError:
        return bool(ENVIRONMENTS.get(cfg.env.name).needs_user)


def _cache_dir(cfg: RunConfig) -> Path | None:
    return Path(cfg.model.cache_dir) if cfg.model.cache_dir else None
