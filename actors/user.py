"""The LLM service for every non-policy model: Ray actors that answer `UserRequest`s, and the client envs call.

Simulated users and judges, the router's pool models, data proposers/reviewers and summarisers are all served
here (issue 14: one mechanism, not one per caller). `UserRequest.model` picks a pool model (`users.pool`), each
with its own backend started on first use; None is the service's own model. Every reply carries its model and
tokens, so the cost ledger (`actors/ledger.py`) meters every call from the trajectory's `user_calls`.

`UserService` (one per actor, `<run>-user-<i>`) answers with one backend: `rules` (the gyms' `USER_RULES`),
`vllm` (a local LLM on the actor's own engine) or `openai` (an OpenAI-compatible endpoint), or replays the
replies recorded in a `trajectories.jsonl` (`users.replay_from`). Around the backend it adds personas,
per-call seeds, an LRU cache, a bound on calls in flight (callers wait), time-outs and retries with backoff.

`UserClient` implements `rltrain.users.UserSim` inside a rollout worker: an episode sticks to one actor (so its
cache and seeds stay local) and fails over to the others when that actor dies; when every try fails it raises
`UserSimError`, and the agent loop marks the episode failed (never reward 0).

API keys are read from an environment variable on the actor's own node and kept in a `Secret`, whose repr is
masked, which refuses to be pickled, and which is scrubbed from every error text. See docs/users.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib
import json
import logging
import os
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from actors.common import Role, init_role
from rltrain.config.users import PoolModel, UsersConfig
from rltrain.telemetry import ActorMetrics, observe_user_calls
from rltrain.users import USER_RULES, UserReply, UserRequest, UserSimError
from rltrain.watchdog import in_phase

logger = logging.getLogger(__name__)


class UserSimPermanentError(UserSimError):
    """A failure that retrying cannot fix (unknown rule, missing replay key, prompt too long, HTTP 4xx)."""


# ---------------------------------------------------------------------------------------------------------------
# Determinism: seeds and personas are functions of the run seed and the request's key, never of Python's hash().


def stable_int(*parts: object) -> int:
    """A 31-bit integer from `parts`, identical in every process (Python's `hash` is salted per process)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


def call_seed(run_seed: int, request: UserRequest) -> int:
    """The sampling seed of one call: run seed + episode + call index, so any call replays on its own."""
    return stable_int("seed", run_seed, request.episode, request.call)


def pick_persona(personas: Sequence[str], episode: str) -> str | None:
    """The persona of an episode (the same for all its calls); None when no personas are configured."""
    return personas[stable_int("persona", episode) % len(personas)] if personas else None


def with_persona(request: UserRequest, personas: Sequence[str]) -> UserRequest:
    """Prepend the episode's persona to the system prompt of a hat=user request (judges get none)."""
    persona = pick_persona(personas, request.episode)
    if persona is None or request.hat != "user":
        return request
    return dataclasses.replace(request, system=f"{persona}\n\n{request.system}" if request.system else persona)


# ---------------------------------------------------------------------------------------------------------------
# Secrets


class Secret:
    """An API key: masked in repr/str, never pickled (so never in Ray's object store or a checkpoint)."""

    def __init__(self, value: str, source: str) -> None:
        self._value, self.source = value, source

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        """`text` with every occurrence of the key replaced (endpoints sometimes echo headers in errors)."""
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return f"Secret(${self.source})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("an API key is never pickled; each user actor reads it from its own environment")


# ---------------------------------------------------------------------------------------------------------------
# Backends


@dataclasses.dataclass(frozen=True)
class Completion:
    """A backend's answer before the service wraps it into a `UserReply`."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False
    """The backend reported no usage; the counts are estimates (spec §4.3: 4 characters per token)."""


class Backend(ABC):
    """One way of answering a request. `complete` may raise; the service times it out and retries it."""

    name: str = ""
    """Recorded as `UserReply.backend`: "rules", "vllm:<model>", "openai:<model>", "replay"."""
    deterministic: bool = False
    """The reply is a function of the request alone (rules), so every field of the request keys the cache."""
    seeded: bool = False
    """Honours the per-call seed, so sampled (temperature > 0) replies are reproducible and may be cached."""
    cacheable: bool = True

    async def start(self) -> None:
        """Load models, open connections; called once per actor life (again after a restart)."""

    @abstractmethod
    async def complete(self, request: UserRequest, seed: int) -> Completion:
        """Answer one request (persona already applied)."""

    async def close(self) -> None:
        """Release engines and connections."""

    def redact(self, text: str) -> str:
        return text


class RulesBackend(Backend):
    """The gyms' registered deterministic responders, run in threads so that a slow rule can time out."""

    name, deterministic = "rules", True

    def __init__(self, max_in_flight: int) -> None:
        # Timed-out rules keep their thread until they return, so keep spare threads beyond the in-flight bound.
        self._pool = ThreadPoolExecutor(max_workers=2 * max_in_flight + 2, thread_name_prefix="user-rule")

    async def complete(self, request: UserRequest, seed: int) -> Completion:
        if request.rule is None:
            raise UserSimPermanentError(f"user call {request.key} names no rule (UserRequest.rule), so the rules backend "
                                        f"cannot answer it; set users.backend=vllm or openai for this gym")
        try:
            rule = USER_RULES.get(request.rule)
        except KeyError as err:
            raise UserSimPermanentError(f"{err.args[0]}; the gym that defines it must register it in its module "
                                        f"(@USER_RULES.register)") from None
        text = await asyncio.get_running_loop().run_in_executor(self._pool, rule, request)
        return Completion(str(text))

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class ReplayBackend(Backend):
    """Replies recorded in a trajectories file, by `UserRequest.key`: re-runs an episode's user turns exactly."""

    name, deterministic, cacheable = "replay", True, False

    def __init__(self, path: str) -> None:
        self.path = path
        self.texts: dict[str, set[str]] = {}

    async def start(self) -> None:
        self.texts = load_replay(self.path)
        logger.info("replaying %d recorded user calls from %s", len(self.texts), self.path)

    async def complete(self, request: UserRequest, seed: int) -> Completion:
        texts = self.texts.get(request.key)
        if texts is None:
            raise UserSimPermanentError(
                f"replay: no recorded user call {request.key!r} in {self.path} ({len(self.texts)} calls recorded). Replay "
                f"needs the recorded run's tasks, group size and conversation; set users.replay_from=null to call the backend")
        if len(texts) > 1:
            raise UserSimPermanentError(
                f"replay: {self.path} holds {len(texts)} different replies for user call {request.key!r} (the same episode "
                f"id in several steps); keep one step's lines, e.g. jq -c 'select(.step==1)' {self.path}")
        return Completion(next(iter(texts)))


def load_replay(path: str | Path) -> dict[str, set[str]]:
    """key -> recorded reply texts, from every trajectory line's `user_calls` (trajectories/eval JSONL)."""
    path = Path(path)
    if not path.is_file():
        raise UserSimPermanentError(f"users.replay_from={str(path)!r} does not exist; point it at a run's trajectories.jsonl")
    texts: dict[str, set[str]] = {}
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                calls = json.loads(line).get("user_calls") or []
            except (json.JSONDecodeError, AttributeError) as err:
                raise UserSimPermanentError(f"users.replay_from={str(path)!r}: line {number} is not a trajectory JSON object ({err})") from None
            for call in calls:
                texts.setdefault(str(call["key"]), set()).add(str(call["text"]))
    return texts


class LocalLLMBackend(Backend):
    """A local chat model on the actor's own engine (`rltrain.engines.make_engine`), rendered with its template.

    The engine contract (`Sampling`) has no per-request seed, so sampled replies (temperature > 0) are not
    reproducible and are never cached; temperature 0 (the papers' setting) is.
    """

    def __init__(self, cfg: UsersConfig, model_path: str, model_name: str, seed: int) -> None:
        self.cfg, self.model_path, self.seed = cfg, model_path, seed
        self.name = f"vllm:{model_name}"

    async def start(self) -> None:
        from transformers import AutoTokenizer

        from rltrain.engines import make_engine

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        cfg = self.cfg
        self.engine = make_engine(cfg.engine, self.model_path, dtype=cfg.dtype, max_model_len=cfg.max_model_len,
                                  gpu_memory_utilization=cfg.gpu_memory_utilization, kv_cache_gib=cfg.kv_cache_gib,
                                  seed=self.seed, threads=cfg.threads)
        await self.engine.start()

    async def complete(self, request: UserRequest, seed: int) -> Completion:
        from rltrain.engines.base import Sampling

        messages = ([{"role": "system", "content": request.system}] if request.system else []) + list(request.messages)
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        budget = min(_budget(request, self.cfg), self.cfg.max_model_len - len(ids))
        if budget < 1:
            raise UserSimPermanentError(f"user call {request.key}: the {len(ids)}-token conversation leaves no room for a "
                                        f"reply under users.max_model_len={self.cfg.max_model_len}; raise it")
        sampling = Sampling(max_new_tokens=budget, temperature=request.temperature, top_p=1.0,
                            stop_token_ids=(self.tokenizer.eos_token_id,))
        gen = await self.engine.generate(ids, sampling)
        reply = self.tokenizer.decode(gen.token_ids, skip_special_tokens=True).strip()
        return Completion(reply, len(ids), len(gen.token_ids))

    async def close(self) -> None:
        if getattr(self, "engine", None) is not None:
            await self.engine.shutdown()


class OpenAIBackend(Backend):
    """An OpenAI-compatible `/chat/completions` endpoint over httpx (the `openai` package would retry on its own)."""

    seeded = True
    _RETRYABLE_STATUS = frozenset({408, 409, 429})

    def __init__(self, cfg: UsersConfig) -> None:
        self.cfg = cfg
        self.name = f"openai:{cfg.model}"
        self.base_url = (cfg.base_url or os.environ.get("OPENAI_BASE_URL", "")).rstrip("/")
        self._key: Secret | None = None
        self._client: Any = None

    async def start(self) -> None:
        import httpx

        if not self.base_url:
            raise UserSimPermanentError("users.backend=openai needs an endpoint: set users.base_url or the OPENAI_BASE_URL "
                                        "environment variable")
        value = os.environ.get(self.cfg.api_key_env)
        if not value:
            raise UserSimPermanentError(
                f"users.backend=openai reads its API key from the environment variable {self.cfg.api_key_env}, which is not "
                f"set on this node; export it before starting the run (on a cluster: on every node that runs user actors)")
        self._key = Secret(value, self.cfg.api_key_env)
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.cfg.timeout_s)

    async def complete(self, request: UserRequest, seed: int) -> Completion:
        import httpx

        assert self._key is not None and self._client is not None
        messages = ([{"role": "system", "content": request.system}] if request.system else []) + list(request.messages)
        body = {"model": self.cfg.model, "messages": messages, "temperature": request.temperature,
                "max_tokens": _budget(request, self.cfg), "seed": seed}
        try:
            response = await self._client.post("/chat/completions", json=body,
                                                headers={"Authorization": f"Bearer {self._key.reveal()}"})
        except httpx.HTTPError as err:  # connection refused, reset, read time-out: worth retrying
            raise UserSimError(self.redact(f"cannot reach {self.base_url}: {type(err).__name__}: {err}")) from None
        if response.status_code != 200:
            detail = self.redact(response.text[:300])
            message = f"{self.base_url}/chat/completions answered HTTP {response.status_code}: {detail}"
            if response.status_code in (401, 403):
                raise UserSimPermanentError(f"{message}; check the key in the environment variable {self.cfg.api_key_env}")
            if response.status_code < 500 and response.status_code not in self._RETRYABLE_STATUS:
                raise UserSimPermanentError(f"{message}; check users.model and users.base_url")
            raise UserSimError(message)
        try:
            data = response.json()
            text = data["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise UserSimError(self.redact(f"{self.base_url} returned no chat completion ({type(err).__name__}: {err}): "
                                           f"{response.text[:200]}")) from None
        usage = data.get("usage") or {}
        # Without `usage`, estimate 4 characters per token (spec §4.3's fallback) so the cost is not silently 0,
        # and flag the estimate on the record.
        prompt = usage.get("prompt_tokens", sum(len(m["content"]) for m in messages) // 4)
        estimated = "prompt_tokens" not in usage or "completion_tokens" not in usage
        return Completion(text, int(prompt), int(usage.get("completion_tokens", len(text) // 4)), estimated)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def redact(self, text: str) -> str:
        return self._key.redact(text) if self._key is not None else text


def _budget(request: UserRequest, cfg: UsersConfig) -> int:
    return min(request.max_tokens, cfg.max_tokens) if cfg.max_tokens else request.max_tokens


def make_backend(cfg: UsersConfig, model_path: str | None, seed: int) -> Backend:
    """The backend the config names; replay overrides it."""
    if cfg.replay_from:
        return ReplayBackend(cfg.replay_from)
    if cfg.backend == "rules":
        return RulesBackend(cfg.max_in_flight)
    if cfg.backend == "openai":
        return OpenAIBackend(cfg)
    if model_path is None:
        raise ValueError("the vllm user backend needs the resolved model folder (driver.prepare resolves users.model)")
    from rltrain.models import EMBEDDED_MODEL

    return LocalLLMBackend(cfg, model_path, Path(cfg.model or EMBEDDED_MODEL).name, seed)


class PoolBackend(Backend):
    """A pool model (`users.pool`): the vllm or openai backend for it, built at `start` (its model folder is resolved on
    the actor's own node, and an engine is only loaded once the model is first asked)."""

    def __init__(self, cfg: UsersConfig, pool_model: PoolModel, seed: int) -> None:
        self.pool_model, self.seed = pool_model, seed
        self.cfg = dataclasses.replace(cfg, backend=pool_model.backend, model=pool_model.model or pool_model.name,
                                       base_url=pool_model.base_url or cfg.base_url, max_model_len=pool_model.context_window,
                                       replay_from=None, pool=())
        self.name = f"{pool_model.backend}:{pool_model.name}"
        self.inner: Backend | None = None

    @property
    def seeded(self) -> bool:  # type: ignore[override]
        return self.pool_model.backend == "openai"

    async def start(self) -> None:
        model_path = None
        if self.pool_model.backend == "vllm":
            from rltrain.models import resolve_model

            model_path = str(resolve_model(self.cfg.model or self.pool_model.name))
        self.inner = make_backend(self.cfg, model_path, self.seed)
        await self.inner.start()

    async def complete(self, request: UserRequest, seed: int) -> Completion:
        assert self.inner is not None
        return await self.inner.complete(request, seed)

    async def close(self) -> None:
        if self.inner is not None:
            await self.inner.close()

    def redact(self, text: str) -> str:
        return self.inner.redact(text) if self.inner is not None else text


# ---------------------------------------------------------------------------------------------------------------
# The actor


class UserService(Role):
    """One user actor: a backend behind a cache, an in-flight bound, time-outs and retries."""

    def __init__(self, rank: int, cfg: UsersConfig, run_seed: int, model_path: str | None = None,
                 rule_modules: Sequence[str] = ()) -> None:
        self.beat = init_role(f"user-{rank}", cfg.threads)
        self.metrics = ActorMetrics(f"user-{rank}")
        for module in ("rltrain.envs", *rule_modules):  # gyms register their USER_RULES on import
            importlib.import_module(module)
        self.rank, self.cfg, self.run_seed = rank, cfg, run_seed
        self.backend = make_backend(cfg, model_path, run_seed + rank)
        self.model_name = "" if cfg.backend == "rules" or cfg.replay_from else Path(cfg.model or "smollm2-135m-instruct").name
        self.pool: dict[str, Backend] = {m.name: PoolBackend(cfg, m, run_seed + rank) for m in cfg.pool}
        self._slots = asyncio.Semaphore(cfg.max_in_flight)
        self._cache: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._started: set[str] = set()
        self._start_locks: dict[str, asyncio.Lock] = {}
        self.counts = {"calls": 0, "cache_hits": 0, "backend_calls": 0, "retries": 0, "failures": 0,
                       "in_flight": 0, "peak_in_flight": 0}

    def __repr__(self) -> str:
        return f"UserService(rank={self.rank}, backend={self.backend.name})"

    async def start(self, pool: bool = False) -> str:
        """Start the backend now (engine load, key check), so that a broken setup fails before training; with `pool`,
        every pool model too (otherwise each starts on its first call)."""
        await self._ensure_started(self.backend)
        if pool:
            for backend in self.pool.values():
                await self._ensure_started(backend)
        return self.backend.name

    def models(self) -> list[str]:
        """The pool models this service answers by name (`UserRequest.model`)."""
        return list(self.pool)

    def _backend_for(self, request: UserRequest) -> Backend:
        if request.model is None:
            return self.backend
        backend = self.pool.get(request.model)
        if backend is None:
            raise UserSimPermanentError(f"call {request.key} asks for model {request.model!r}, which the LLM service does not "
                                        f"serve; add it to users.pool (served: {sorted(self.pool)})")
        return backend

    async def _ensure_started(self, backend: Backend) -> None:
        # Also reached after a Ray restart, which re-runs __init__ but not start().
        if backend.name in self._started:
            return
        lock = self._start_locks.setdefault(backend.name, asyncio.Lock())
        async with lock:
            if backend.name not in self._started:
                await backend.start()
                self._started.add(backend.name)

    @in_phase("reply")
    @observe_user_calls
    async def respond(self, request: UserRequest) -> UserReply:
        """Answer one request; raises UserSimError (UserSimPermanentError when retrying cannot help)."""
        t0 = time.perf_counter()
        self.counts["calls"] += 1
        request = with_persona(request, self.cfg.personas)
        backend = self._backend_for(request)
        seed = call_seed(self.run_seed, request)
        key = self._cache_key(request, seed, backend)
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            self.counts["cache_hits"] += 1
            text, model = self._cache[key]
            self.beat.progress()
            return UserReply(text, latency_s=time.perf_counter() - t0, backend="cache", model=model)
        await self._ensure_started(backend)
        async with self._slots:  # backpressure: callers beyond max_in_flight wait here, none is dropped
            self.counts["in_flight"] += 1
            self.counts["peak_in_flight"] = max(self.counts["peak_in_flight"], self.counts["in_flight"])
            try:
                reply = await self._attempts(request, seed, t0, backend)
            finally:
                self.counts["in_flight"] -= 1
        if key is not None:
            self._cache[key] = (reply.text, reply.model)
            while len(self._cache) > self.cfg.cache_size:
                self._cache.popitem(last=False)
        self.beat.progress()
        return reply

    async def _attempts(self, request: UserRequest, seed: int, t0: float, backend: Backend) -> UserReply:
        cfg = self.cfg
        last = ""
        for attempt in range(1, cfg.retries + 2):
            self.counts["backend_calls"] += 1
            try:
                out = await asyncio.wait_for(backend.complete(request, seed), cfg.timeout_s)
            except UserSimPermanentError:
                self.counts["failures"] += 1
                raise
            except asyncio.TimeoutError:
                last = f"timed out after {cfg.timeout_s:g}s (users.timeout_s)"
            except Exception as err:  # the backend's own failure: retried, then reported with its cause
                last = backend.redact(f"{type(err).__name__}: {err}")
            else:
                return UserReply(out.text, out.prompt_tokens, out.completion_tokens, time.perf_counter() - t0,
                                 backend.name, attempt, model=request.model or self.model_name, estimated=out.estimated)
            if attempt <= cfg.retries:
                self.counts["retries"] += 1
                delay = cfg.backoff_s * 2 ** (attempt - 1)
                logger.warning("user call %s attempt %d/%d on %s failed (%s); retrying in %.1fs", request.key, attempt,
                               cfg.retries + 1, backend.name, last, delay)
                await asyncio.sleep(delay)
        self.counts["failures"] += 1
        raise UserSimError(f"user backend {backend.name} failed {cfg.retries + 1} times on call {request.key}: {last}. "
                           f"Check the backend (endpoint up? model loaded?) or raise users.timeout_s / users.retries")

    def _cache_key(self, request: UserRequest, seed: int, backend: Backend) -> str | None:
        """Everything that determines the reply, or None when the reply is not reproducible (so not cached)."""
        if self.cfg.cache_size == 0 or not backend.cacheable:
            return None
        if backend.deterministic:  # a rule may read any field of the request
            fields: Any = dataclasses.asdict(request)
        elif request.temperature == 0.0 or backend.seeded:
            # What a model sees: the rendered conversation and the sampling settings (the seed only when sampling).
            fields = [request.system, request.messages, _budget(request, self.cfg), request.temperature,
                      seed if request.temperature > 0 else None]
        else:
            return None
        blob = json.dumps([backend.name, fields], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def stats(self) -> dict[str, int]:
        """Counters since this actor (re)started: calls, cache hits, backend calls, retries, failures, peak in flight."""
        return dict(self.counts, cache_size=len(self._cache))

    async def shutdown(self) -> None:
        for backend in (self.backend, *self.pool.values()):
            if backend.name in self._started or backend is self.backend:
                await backend.close()


# ---------------------------------------------------------------------------------------------------------------
# The client


class UserClient:
    """`UserSim` over the user actors, for the gyms inside one rollout worker.

    Each episode prefers one actor (from its id), so its cached replies and seeds stay on one actor. A dead,
    restarting or hung actor is skipped for a while and the call goes to the next one; only when every try
    failed does the call raise UserSimError, and the episode is then marked failed (never scored 0).
    """

    def __init__(self, actors: Sequence[Any], cfg: UsersConfig, names: Sequence[str] | None = None) -> None:
        if not actors:
            raise ValueError("UserClient needs at least one user actor; set users.num_actors >= 1")
        self.actors, self.cfg = list(actors), cfg
        self.names = list(names) if names else [f"user-{i}" for i in range(len(self.actors))]
        self._slots = asyncio.Semaphore(cfg.client_max_in_flight)
        self._down_until = [0.0] * len(self.actors)
        # An actor that neither answers nor dies within this is treated as hung. Generous: the call may first wait
        # behind max_in_flight others on that actor.
        self.call_timeout_s = 4 * cfg.worst_case_s + 60.0

    def __repr__(self) -> str:
        return f"UserClient({', '.join(self.names)})"

    def _pick(self, episode: str, tried: set[int]) -> int:
        """The episode's own actor first, then the next ones in ring order; actors marked down go last."""
        n = len(self.actors)
        first = stable_int("actor", episode) % n
        ring = [(first + k) % n for k in range(n)]
        now = time.monotonic()
        fresh = [i for i in ring if i not in tried] or ring  # every actor tried: go round again
        return min(fresh, key=lambda i: self._down_until[i] > now)  # stable: keeps ring order among equals

    async def respond(self, request: UserRequest) -> UserReply:
        import ray

        t0 = time.perf_counter()
        failures: list[str] = []
        tried: set[int] = set()
        async with self._slots:  # backpressure per rollout worker
            for attempt in range(self.cfg.retries + 1):
                i = self._pick(request.episode, tried)
                if i in tried:  # a second round over the same actors: give restarts time
                    await asyncio.sleep(self.cfg.backoff_s * 2 ** (attempt - len(self.actors)))
                tried.add(i)
                try:
                    reply = await asyncio.wait_for(self._call(i, request), self.call_timeout_s)
                except ray.exceptions.RayTaskError as err:  # the actor ran the call and it failed: final
                    cause = err.cause
                    if isinstance(cause, UserSimError):
                        raise type(cause)(str(cause)) from None
                    raise UserSimError(f"user actor {self.names[i]} raised {type(cause).__name__}: {cause}") from None
                except (ray.exceptions.RayActorError, asyncio.TimeoutError) as err:  # dead, restarting or hung
                    what = "hung" if isinstance(err, asyncio.TimeoutError) else _first_line(err)
                    failures.append(f"{self.names[i]}: {what}")
                    self._down_until[i] = time.monotonic() + self.cfg.timeout_s
                    logger.warning("user call %s: actor %s unavailable (%s); trying another", request.key, self.names[i], what)
                    continue
                return dataclasses.replace(reply, latency_s=time.perf_counter() - t0, attempts=reply.attempts + len(failures))
        raise UserSimError(
            f"simulated user call {request.key} failed on every try ({len(failures)}: {'; '.join(failures)}). The user actors "
            f"died or hung: check their logs and memory (OOM kills), and users.num_actors, users.max_restarts, "
            f"users.timeout_s, users.retries")

    async def _call(self, i: int, request: UserRequest) -> UserReply:
        return await self.actors[i].respond.remote(request)


def _first_line(err: BaseException) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
