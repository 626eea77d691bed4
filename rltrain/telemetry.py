"""Telemetry: the one registry of metric names, the driver's per-step sinks, and Ray metrics from every role.

- `REGISTRY` defines every Ray metric (`rltrain_*`; Prometheus shows `ray_rltrain_*`, counters with `_total`).
  Each carries two tags, `role` (driver, rollout, learner, user, accountant) and `run` (trainer.name); a few
  add one low-cardinality tag (phase, kind, outcome). Nothing is tagged per episode or per task.
- `Telemetry` is the driver's: `publish(step, metrics)` writes the step's metrics dict to `metrics.jsonl`
  (always), TensorBoard and wandb (`trainer.loggers`), and the registered subset to Ray metrics.
- `ActorMetrics` is what actors record that only they know (episodes in flight, generated tokens, update
  seconds, simulated-user calls, restarts); each actor holds one and calls it in a line or two.
- `grafana_dashboard()` builds `launch/grafana/rltrain.json` from the same registry
  (`python -m rltrain.telemetry > launch/grafana/rltrain.json`).

Telemetry never stops a run: a failing Ray metric is logged once and skipped.

Ray 2.60 drops a gauge from its Prometheus endpoint about two report intervals after it was last set (seen:
set once, gone after 2-3 s with RAY_metrics_report_interval_ms=1000), so each process re-sets its gauges'
last values in the background (`_GaugeKeeper`): a step longer than 20 s would otherwise leave gaps, and an idle
worker's "0 episodes in flight" would vanish. A dead process stops re-setting, so its series still age out.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import math
import os
import re
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from rltrain.config.loader import ConfigError

if TYPE_CHECKING:
    import asyncio

    from rltrain.config.run import RunConfig

logger = logging.getLogger("rltrain.driver")  # the console line of MetricsLog keeps the driver's logger name

T = TypeVar("T")
Kind = Literal["counter", "gauge", "histogram"]
SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Histogram buckets for durations: sub-second weight syncs on CPU up to minutes-long updates on big models."""
_NAME = re.compile(r"^rltrain_[a-z][a-z0-9_]*$")


# ---------------------------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class MetricSpec:
    """One Ray metric: its name, kind and meaning, and where the driver's value comes from."""

    name: str
    kind: Kind
    description: str
    tags: tuple[str, ...] = ()
    """Tag keys beyond `role` and `run`; every record must give them."""
    source: str | None = None
    """The key in the driver's step metrics that sets this gauge each step (None: recorded elsewhere)."""
    boundaries: tuple[float, ...] = ()

    @property
    def tag_keys(self) -> tuple[str, ...]:
        return ("role", "run", *self.tags)

    @property
    def exported(self) -> str:
        """The name Prometheus shows: Ray prefixes `ray_`, and counters get `_total`."""
        return f"ray_{self.name}" + ("_total" if self.kind == "counter" else "")


REGISTRY: dict[str, MetricSpec] = {}


def _metric(name: str, kind: Kind, description: str, *, tags: tuple[str, ...] = (), source: str | None = None,
            boundaries: tuple[float, ...] = ()) -> MetricSpec:
    if not _NAME.match(name) or name.endswith("_total"):  # Ray adds _total to counters itself
        raise ValueError(f"metric name {name!r} must match {_NAME.pattern} and not end in _total")
    if name in REGISTRY:
        raise ValueError(f"metric {name!r} is registered twice")
    if (kind == "histogram") != bool(boundaries) or (source is not None and kind != "gauge"):
        raise ValueError(f"metric {name!r}: histograms need boundaries, and only gauges take a driver source key")
    REGISTRY[name] = spec = MetricSpec(name, kind, description, tags, source, boundaries)
    return spec


# Driver (role=driver unless noted): set from the step's metrics dict.
STEPS = _metric("rltrain_steps", "counter", "Training steps finished")
REWARD_MEAN = _metric("rltrain_reward_mean", "gauge", "Mean reward of the step's scored trajectories", source="reward/mean")
REWARD_STD = _metric("rltrain_reward_std", "gauge", "Reward standard deviation within the step", source="reward/std")
KL = _metric("rltrain_kl", "gauge", "KL to the reference policy (learner mean)", source="learner/kl")
ENTROPY = _metric("rltrain_entropy", "gauge", "Policy entropy on trained tokens", source="learner/entropy")
CLIP_FRACTION = _metric("rltrain_clip_fraction", "gauge", "Fraction of tokens whose PPO ratio was clipped",
                        source="learner/clip_frac")
LOGPROB_MISMATCH = _metric("rltrain_logprob_mismatch", "gauge", "Mean |train - inference| log-prob per token",
                           source="learner/logprob_mismatch")
RESPONSE_TOKENS = _metric("rltrain_response_tokens", "gauge", "Mean policy tokens per trajectory",
                          source="rollout/response_len")
TOKENS_PER_SECOND = _metric("rltrain_tokens_per_second", "gauge", "Generated tokens per second of rollout wall time "
                            "(synchronous mode)", source="rollout/tokens_per_s")
WEIGHT_VERSION = _metric("rltrain_weight_version", "gauge", "Version of the weights the rollout workers hold",
                         source="weights/version")
WEIGHT_STALENESS = _metric("rltrain_weight_staleness", "gauge", "Versions between the step's sampling weights and "
                           "the trained ones", source="weights/staleness")
USER_CACHE_RATE = _metric("rltrain_user_cache_rate", "gauge", "Share of the step's simulated-user calls answered "
                          "from cache", source="users/cache_rate")
WEIGHT_SYNC_SECONDS = _metric("rltrain_weight_sync_seconds", "histogram", "Seconds to export and load new weights",
                              boundaries=SECONDS)
PHASE_SECONDS = _metric("rltrain_phase_seconds", "gauge", "Seconds of each phase of the last step (phase=step is "
                        "the whole step)", tags=("phase",))
IDLE_RATIO = _metric("rltrain_idle_ratio", "gauge", "Fraction of the last step's wall time the role (tag) was not "
                     "working on the step")
# Costs (the cost ledger's step metrics, rltrain/costs/ledger.py) and routing (rewards.router.routing_metrics).
COST_USD_STEP = _metric("rltrain_cost_usd_step", "gauge", "USD of the step's model calls (every role), from the "
                        "cost ledger", source="costs/usd_step")
COST_USD_RUN = _metric("rltrain_cost_usd_run", "gauge", "USD of the run's model calls so far", source="costs/usd_run")
COST_TOKENS_STEP = _metric("rltrain_cost_tokens_step", "gauge", "Tokens (input + output) of the step's model calls",
                           source="costs/tokens_step")
COST_CALLS_STEP = _metric("rltrain_cost_calls_step", "gauge", "Model calls of the step", source="costs/calls_step")
COST_FAILED_CALLS_STEP = _metric("rltrain_cost_failed_calls_step", "gauge", "Failed model calls of the step (they "
                                 "cost 0)", source="costs/failed_calls_step")
COST_USD_BY = _metric("rltrain_cost_usd_by", "gauge", "USD by caller role (step) or model (run); tag `by` says "
                      "which", tags=("by", "name"))
BUDGET_FRACTION = _metric("rltrain_budget_fraction", "gauge", "Share of each configured budget spent (warning at "
                          "0.8, clean stop at 1)", tags=("budget",))
ROUTER_USD_PER_QUERY = _metric("rltrain_router_usd_per_query", "gauge", "Router episodes: pool USD per query",
                               source="router/usd_per_query")
ROUTER_ACCURACY = _metric("rltrain_router_accuracy", "gauge", "Router episodes: share with s > 0",
                          source="router/accuracy")
ROUTER_DIRECT_RATE = _metric("rltrain_router_direct_rate", "gauge", "Router episodes answered without a pool call",
                             source="router/direct_rate")
ROUTER_ENTROPY = _metric("rltrain_router_entropy", "gauge", "Entropy of the router's pool-call shares (nats; near 0 "
                         "is collapse)", source="router/entropy")
ROUTER_SHARE = _metric("rltrain_router_share", "gauge", "Each pool model's share of the router's successful calls",
                       tags=("model",))
COSTS_BY = {"costs/usd_step/": ("role", COST_USD_BY), "costs/usd_run/model/": ("model", COST_USD_BY),
            "costs/budget_frac/": (None, BUDGET_FRACTION), "router/share/": (None, ROUTER_SHARE)}
"""Step-metric key prefixes whose suffix becomes a tag: (value of the `by` tag or None, metric)."""
# Any role.
FAILURES = _metric("rltrain_failures", "counter", "Failures by kind: failed_trajectory (driver), format_error and "
                   "judge_error (rollout), user_call (user), actor_restart (the restarted actor)", tags=("kind",))
BUSY_SECONDS = _metric("rltrain_busy_seconds", "counter", "Seconds an actor spent working (rollout: at least one "
                       "episode in flight; learner: updates); 1 - rate() is its idle ratio")
# Rollout workers.
EPISODES_IN_FLIGHT = _metric("rltrain_episodes_in_flight", "gauge", "Episodes being generated on a rollout worker")
EPISODES_QUEUED = _metric("rltrain_episodes_queued", "gauge", "Episodes waiting for a slot on a rollout worker "
                          "(rollout.max_concurrent_episodes)")
EPISODES = _metric("rltrain_episodes", "counter", "Episodes finished by rollout workers (training and evaluation)")
GENERATED_TOKENS = _metric("rltrain_generated_tokens", "counter", "Policy tokens generated by rollout workers")
# Learners.
UPDATE_SECONDS = _metric("rltrain_update_seconds", "histogram", "Seconds of one learner rank's update",
                         boundaries=SECONDS)
# Simulated users.
USER_CALLS = _metric("rltrain_user_calls", "counter", "Simulated-user calls by outcome (ok, cache, error)",
                     tags=("outcome",))
USER_LATENCY = _metric("rltrain_user_latency_seconds", "histogram", "Seconds per simulated-user call, retries "
                       "included", boundaries=SECONDS)
USER_IN_FLIGHT = _metric("rltrain_user_in_flight", "gauge", "Calls a user actor is handling or holding back")

PHASES = {"step": "time/step_s", "rollout": "time/rollout_s", "reward": "time/reward_s", "update": "time/update_s",
          "rollout_wait": "time/rollout_wait_s", "sync": "time/sync_s", "export": "time/export_s", "load": "time/load_s"}
"""phase tag -> the driver's step metric, for PHASE_SECONDS."""
BUSY_PHASES = {"rollout": "time/rollout_s", "accountant": "time/reward_s", "learner": "time/update_s"}
"""role -> the phase in which it works, for IDLE_RATIO (the driver waits on one role at a time)."""


# ---------------------------------------------------------------------------------------------------------------
# Ray metrics of one process


class _GaugeKeeper:
    """Re-sets every gauge's last value each half report interval, in a daemon thread (see the module docstring)."""

    def __init__(self) -> None:
        self.values: dict[tuple[int, tuple[tuple[str, str], ...]], tuple[Any, dict[str, str], float]] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.period_s = max(0.25, float(os.environ.get("RAY_metrics_report_interval_ms", "10000")) / 2000)

    def keep(self, gauge: Any, tags: dict[str, str], value: float) -> None:
        with self.lock:
            self.values[(id(gauge), tuple(sorted(tags.items())))] = (gauge, tags, value)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="rltrain-gauges", daemon=True)
                self.thread.start()

    def forget(self, gauges: Iterable[Any]) -> None:
        ids = {id(g) for g in gauges}
        with self.lock:
            self.values = {k: v for k, v in self.values.items() if k[0] not in ids}

    def _run(self) -> None:
        import ray

        while True:
            time.sleep(self.period_s)
            with self.lock:
                if not ray.is_initialized():  # the run ended; a later run records into new gauges
                    self.values.clear()
                items = list(self.values.values())
            for gauge, tags, value in items:
                with contextlib.suppress(Exception):  # best effort, like every metric
                    gauge.set(value, tags=tags)


_KEEPER = _GaugeKeeper()


class RayMetrics:
    """The Ray metric objects of one process, created on first use, with `run` and `role` as default tags.

    A no-op where Ray is not initialised (unit tests that build an actor class in-process).
    """

    def __init__(self, run: str, role: str) -> None:
        self.tags = {"run": run, "role": role}
        self._objects: dict[str, Any] = {}
        self._warned: set[str] = set()

    def record(self, spec: MetricSpec, value: float, **tags: str) -> None:
        """Counter: add `value` (skipped when <= 0); gauge: set it; histogram: observe it."""
        missing = set(spec.tags) - set(tags)
        if missing:  # a programming error, not a runtime condition
            raise ValueError(f"metric {spec.name} needs tag(s) {sorted(missing)}")
        if value is None or not math.isfinite(value) or (spec.kind == "counter" and value <= 0):
            return
        try:
            metric = self._get(spec)
            if metric is None:
                return
            if spec.kind == "counter":
                metric.inc(float(value), tags=tags or None)
            elif spec.kind == "gauge":
                metric.set(float(value), tags=tags or None)
                _KEEPER.keep(metric, {**self.tags, **tags}, float(value))
            else:
                metric.observe(float(value), tags=tags or None)
        except Exception as err:  # metrics must never stop training
            if spec.name not in self._warned:
                self._warned.add(spec.name)
                logger.warning("metric %s not recorded (%s: %s); further errors of it are not logged", spec.name,
                               type(err).__name__, err)

    def close(self) -> None:
        """Stop re-setting this process's gauges: they age out of the endpoint within two report intervals."""
        _KEEPER.forget(self._objects.values())

    def _get(self, spec: MetricSpec) -> Any:
        if spec.name in self._objects:
            return self._objects[spec.name]
        import ray

        metric = None
        if ray.is_initialized():
            from ray.util import metrics

            if spec.kind == "counter":
                metric = metrics.Counter(spec.name, spec.description, tag_keys=spec.tag_keys)
            elif spec.kind == "gauge":
                metric = metrics.Gauge(spec.name, spec.description, tag_keys=spec.tag_keys)
            else:
                metric = metrics.Histogram(spec.name, spec.description, boundaries=list(spec.boundaries),
                                           tag_keys=spec.tag_keys)
            metric.set_default_tags(self.tags)
        self._objects[spec.name] = metric
        return metric


# ---------------------------------------------------------------------------------------------------------------
# Actors


def _actor_identity(role: str) -> tuple[str, bool]:
    """(run, restarted) of the calling actor, from its Ray name `<run>-<role>` (groups.py names every actor so)."""
    import ray

    if not ray.is_initialized():
        return "local", False
    context = ray.get_runtime_context()
    name = context.get_actor_name() or ""
    run = name[: -len(role) - 1] if name.endswith(f"-{role}") else name or "local"
    try:
        with warnings.catch_warnings():  # Ray 2.60's property reads its own deprecated `actor_id`
            warnings.simplefilter("ignore", DeprecationWarning)
            restarted = bool(context.was_current_actor_reconstructed)
    except Exception:  # not in an actor
        restarted = False
    return run, restarted


class ActorMetrics:
    """The metric hooks of one actor; `role` is its log name (`rollout-0`, `learner-1`, `user-0`, `accountant`)."""

    def __init__(self, role: str) -> None:
        run, restarted = _actor_identity(role)
        self.ray = RayMetrics(run, re.sub(r"-\d+$", "", role))
        self._queued = self._in_flight = 0
        self._busy_since = 0.0
        if restarted:  # Ray re-ran __init__ after the actor died (max_restarts)
            self.ray.record(FAILURES, 1, kind="actor_restart")

    # rollout workers

    @contextlib.asynccontextmanager
    async def episode(self, slots: asyncio.Semaphore) -> AsyncIterator[None]:
        """Hold one of the worker's episode slots; counts the episode as queued, then in flight, and busy time."""
        self._queued += 1
        self.ray.record(EPISODES_QUEUED, self._queued)
        try:
            await slots.acquire()
        finally:
            self._queued -= 1
            self.ray.record(EPISODES_QUEUED, self._queued)
        try:
            if self._in_flight == 0:
                self._busy_since = time.perf_counter()
            self._in_flight += 1
            self.ray.record(EPISODES_IN_FLIGHT, self._in_flight)
            yield
        finally:
            self._in_flight -= 1
            self.ray.record(EPISODES_IN_FLIGHT, self._in_flight)
            if self._in_flight == 0:
                self.ray.record(BUSY_SECONDS, time.perf_counter() - self._busy_since)
            slots.release()

    def episodes_done(self, trajectories: Iterable[Any]) -> None:
        """Count finished episodes, their policy tokens and the failures visible on them."""
        trajectories = list(trajectories)
        self.ray.record(EPISODES, len(trajectories))
        self.ray.record(GENERATED_TOKENS, sum(t.num_policy_tokens for t in trajectories))
        self.ray.record(FAILURES, sum(t.format_error is not None for t in trajectories), kind="format_error")
        self.ray.record(FAILURES, sum(bool(t.judge_errors) for t in trajectories), kind="judge_error")

    # learners

    def update_done(self, seconds: float) -> None:
        self.ray.record(UPDATE_SECONDS, seconds)
        self.ray.record(BUSY_SECONDS, seconds)

    # simulated users

    async def user_call(self, call: Awaitable[T]) -> T:
        """Await one user call, recording its latency and outcome (a reply from the cache has backend "cache")."""
        t0 = time.perf_counter()
        self._in_flight += 1
        self.ray.record(USER_IN_FLIGHT, self._in_flight)
        outcome = "error"
        try:
            reply = await call
            outcome = "cache" if getattr(reply, "backend", "") == "cache" else "ok"
            return reply
        finally:
            self._in_flight -= 1
            self.ray.record(USER_IN_FLIGHT, self._in_flight)
            self.ray.record(USER_CALLS, 1, outcome=outcome)
            self.ray.record(USER_LATENCY, time.perf_counter() - t0)
            if outcome == "error":
                self.ray.record(FAILURES, 1, kind="user_call")


def observe_user_calls(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Decorate an actor's async call handler; the actor holds an `ActorMetrics` as `self.metrics`."""

    @functools.wraps(method)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        return await self.metrics.user_call(method(self, *args, **kwargs))

    return wrapper


# ---------------------------------------------------------------------------------------------------------------
# The driver's sinks


class Sink(Protocol):
    def write(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


class MetricsLog:
    """Per-step metrics to JSONL (every step) and to the console log (every `log_every` steps)."""

    KEYS = ("reward/mean", "reward/correct_rate", "latro/self_reward", "latro/finished_frac", "learner/kl",
            "learner/entropy", "learner/clip_frac", "learner/logprob_mismatch", "rollout/response_len", "time/step_s",
            "time/sync_s")

    def __init__(self, path: Path, every: int) -> None:
        self.path, self.every = path, every

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if step % self.every == 0:
            logger.info("step %d | %s", step, " ".join(f"{k}={metrics[k]:.4g}" for k in self.KEYS if k in metrics))

    def close(self) -> None:
        pass


def summary_writer_class() -> type | None:
    """tensorboardX's SummaryWriter, else torch's (needs the `tensorboard` package), else None."""
    for module in ("tensorboardX", "torch.utils.tensorboard"):
        try:
            return importlib.import_module(module).SummaryWriter
        except ImportError:
            continue
    return None


class TensorBoardLog:
    """Every numeric step metric as a TensorBoard scalar under its own key, in `<run>/tb/`."""

    def __init__(self, logdir: Path, writer_class: type) -> None:
        self.writer = writer_class(str(logdir))

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, float(value), step)
        self.writer.flush()  # once per step: a crash loses nothing, and steps take seconds

    def close(self) -> None:
        self.writer.close()


def require_wandb() -> Any:
    """The wandb module, or ConfigError with the fix."""
    if importlib.util.find_spec("wandb") is None:
        raise ConfigError("trainer.loggers includes wandb, but the wandb package is not installed; pip install wandb "
                          "and export WANDB_API_KEY, or remove wandb from trainer.loggers")
    return importlib.import_module("wandb")


class WandbLog:
    """Step metrics to Weights & Biases. The API key comes from the environment (WANDB_API_KEY or `wandb login`),
    read by wandb itself: rltrain neither takes nor logs it. WANDB_PROJECT/WANDB_ENTITY/WANDB_MODE apply."""

    def __init__(self, cfg: RunConfig, run_dir: Path) -> None:
        from rltrain.config import to_dict

        wandb = require_wandb()
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "rltrain"), name=cfg.trainer.name,
                              config=to_dict(cfg), dir=str(run_dir), job_type="train")

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


def check_loggers(cfg: RunConfig) -> None:
    """Fail before Ray starts when a requested logger cannot work."""
    if "wandb" in cfg.trainer.loggers:
        require_wandb()


class Telemetry:
    """Where the driver's per-step metrics go: JSONL always, TensorBoard/wandb per `trainer.loggers`, Ray metrics."""

    def __init__(self, cfg: RunConfig, run_dir: Path) -> None:
        self.async_rollout = cfg.trainer.async_rollout
        self.sinks: list[Sink] = [MetricsLog(run_dir / "metrics.jsonl", cfg.trainer.log_every)]
        if "tensorboard" in cfg.trainer.loggers:
            writer = summary_writer_class()
            if writer is None:  # on by default, so its absence is a note, not an error
                logger.info("TensorBoard logging skipped: pip install tensorboardX (or tensorboard) to get %s/tb", run_dir)
            else:
                self.sinks.append(TensorBoardLog(run_dir / "tb", writer))
        if "wandb" in cfg.trainer.loggers:
            self.sinks.append(WandbLog(cfg, run_dir))
        self.ray = RayMetrics(cfg.trainer.name, "driver")

    def publish(self, step: int, metrics: Mapping[str, float]) -> None:
        """Send one step's metrics to every sink and the registered ones to Ray metrics."""
        for sink in self.sinks:
            sink.write(step, metrics)
        record = self.ray.record
        record(STEPS, 1)
        for spec in REGISTRY.values():
            if spec.source is not None and spec.source in metrics:
                record(spec, metrics[spec.source])
        if "time/sync_s" in metrics:
            record(WEIGHT_SYNC_SECONDS, metrics["time/sync_s"])
        for phase, key in PHASES.items():
            if key in metrics:
                record(PHASE_SECONDS, metrics[key], phase=phase)
        for key, value in metrics.items():
            for prefix, (by, spec) in COSTS_BY.items():
                if key.startswith(prefix):
                    name = key[len(prefix):]
                    tags = {"by": by, "name": name} if by else {spec.tags[0]: name}
                    record(spec, value, **tags)
        step_s = metrics.get("time/step_s", 0.0)
        for role, key in BUSY_PHASES.items():
            # an overlapped (async) rollout runs during other phases; its workers' BUSY_SECONDS tell instead
            if step_s > 0 and key in metrics and not (role == "rollout" and self.async_rollout):
                record(IDLE_RATIO, min(1.0, max(0.0, 1.0 - metrics[key] / step_s)), role=role)
        record(FAILURES, metrics.get("reward/failed", 0.0), kind="failed_trajectory")

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.ray.close()


# ---------------------------------------------------------------------------------------------------------------
# Grafana


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]
    """(PromQL, legend) pairs; `$run` and `$__rate_interval` are Grafana's."""
    unit: str = "short"


def _q(spec: MetricSpec, suffix: str = "") -> str:
    return f'{spec.exported}{suffix}{{run=~"$run"}}'


def _rate(spec: MetricSpec, by: str = "run") -> str:
    return f"sum by ({by}) (rate({_q(spec)}[$__rate_interval]))"


def _quantile(spec: MetricSpec, q: float) -> str:
    return f"histogram_quantile({q}, sum by (le, run) (rate({_q(spec, '_bucket')}[$__rate_interval])))"


def _last(*specs: MetricSpec, by: str = "run") -> tuple[tuple[str, str], ...]:
    return tuple((f"max by ({by}) ({_q(s)})", f"{{{{run}}}} {s.name.removeprefix('rltrain_')}") for s in specs)


PANELS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    ("Learning", (
        Panel("Reward", _last(REWARD_MEAN, REWARD_STD)),
        Panel("KL and entropy", _last(KL, ENTROPY)),
        Panel("Clip fraction and train/inference log-prob mismatch", _last(CLIP_FRACTION, LOGPROB_MISMATCH)),
    )),
    ("Throughput", (
        Panel("Tokens per second", (*_last(TOKENS_PER_SECOND),
                                    (_rate(GENERATED_TOKENS), "{{run}} generated (rollout workers)"))),
        Panel("Episodes in flight and queued (all rollout workers)", (
            (f"sum by (run) ({_q(EPISODES_IN_FLIGHT)})", "{{run}} in flight"),
            (f"sum by (run) ({_q(EPISODES_QUEUED)})", "{{run}} queued"))),
        Panel("Episodes per second and steps per minute", (
            (_rate(EPISODES), "{{run}} episodes/s"), (f"60 * {_rate(STEPS)}", "{{run}} steps/min"),
            *_last(RESPONSE_TOKENS))),
    )),
    ("Time", (
        Panel("Step phases (last step)", ((f"max by (run, phase) ({_q(PHASE_SECONDS)})", "{{run}} {{phase}}"),), "s"),
        Panel("Weight sync and learner update (median, p95)", (
            (_quantile(WEIGHT_SYNC_SECONDS, 0.5), "{{run}} sync p50"), (_quantile(WEIGHT_SYNC_SECONDS, 0.95), "{{run}} sync p95"),
            (_quantile(UPDATE_SECONDS, 0.5), "{{run}} update p50"), (_quantile(UPDATE_SECONDS, 0.95), "{{run}} update p95")), "s"),
        Panel("Idle ratio per role", (
            (f"max by (run, role) ({_q(IDLE_RATIO)})", "{{run}} {{role}} (step phases)"),
            (f"1 - {_rate(BUSY_SECONDS, 'run, role')} / count by (run, role) ({_q(BUSY_SECONDS)})",
             "{{run}} {{role}} (actors' busy time)")), "percentunit"),
    )),
    ("Weights", (
        Panel("Weight version and staleness", _last(WEIGHT_VERSION, WEIGHT_STALENESS)),
    )),
    ("Simulated users", (
        Panel("User calls per second by outcome", ((_rate(USER_CALLS, "run, outcome"), "{{run}} {{outcome}}"),), "reqps"),
        Panel("User call latency (median, p95) and in flight", (
            (_quantile(USER_LATENCY, 0.5), "{{run}} p50 s"), (_quantile(USER_LATENCY, 0.95), "{{run}} p95 s"),
            (f"sum by (run) ({_q(USER_IN_FLIGHT)})", "{{run}} in flight"), *_last(USER_CACHE_RATE))),
    )),
    ("Costs", (
        Panel("USD per step and per run", (*_last(COST_USD_STEP, COST_USD_RUN),), "currencyUSD"),
        Panel("USD by caller role (step) and model (run)", (
            (f"max by (run, by, name) ({_q(COST_USD_BY)})", "{{run}} {{by}} {{name}}"),), "currencyUSD"),
        Panel("Calls, failed calls and tokens per step", _last(COST_CALLS_STEP, COST_FAILED_CALLS_STEP, COST_TOKENS_STEP)),
        Panel("Budget spent", ((f"max by (run, budget) ({_q(BUDGET_FRACTION)})", "{{run}} {{budget}}"),), "percentunit"),
    )),
    ("Routing", (
        Panel("Router accuracy, direct-answer rate and USD per query",
              _last(ROUTER_ACCURACY, ROUTER_DIRECT_RATE, ROUTER_USD_PER_QUERY)),
        Panel("Pool call shares and entropy (collapse: one share near 1)", (
            (f"max by (run, model) ({_q(ROUTER_SHARE)})", "{{run}} {{model}}"), *_last(ROUTER_ENTROPY))),
    )),
    ("Failures", (
        Panel("Failures by kind", ((f"sum by (run, kind) (increase({_q(FAILURES)}[$__rate_interval]))", "{{run}} {{kind}}"),)),
    )),
)
"""Every registered metric appears in some panel (checked by tests/test_telemetry.py)."""


def grafana_dashboard() -> dict[str, Any]:
    """The Grafana dashboard (JSON model) for every registered metric, with `datasource` and `run` variables."""
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    panels: list[dict[str, Any]] = []
    y = 0
    for row, row_panels in PANELS:
        panels.append({"type": "row", "title": row, "collapsed": False, "id": len(panels) + 1, "panels": [],
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
        y += 1
        width = 24 // len(row_panels)
        for i, panel in enumerate(row_panels):
            panels.append({
                "type": "timeseries", "title": panel.title, "id": len(panels) + 1, "datasource": datasource,
                "gridPos": {"h": 8, "w": width, "x": i * width, "y": y},
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
                "targets": [{"datasource": datasource, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + j)}
                            for j, (expr, legend) in enumerate(panel.queries)],
            })
        y += 8
    return {
        "title": "rltrain", "uid": "rltrain", "editable": True, "schemaVersion": 39, "tags": ["rltrain", "ray"],
        "time": {"from": "now-1h", "to": "now"}, "refresh": "10s", "panels": panels,
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "current": {}},
            {"name": "run", "label": "run", "type": "query", "datasource": datasource, "refresh": 2, "multi": True,
             "includeAll": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"},
             "query": {"query": f"label_values({WEIGHT_VERSION.exported}, run)", "refId": "run"},
             "definition": f"label_values({WEIGHT_VERSION.exported}, run)"},
        ]},
    }


if __name__ == "__main__":
    print(json.dumps(grafana_dashboard(), indent=2))
