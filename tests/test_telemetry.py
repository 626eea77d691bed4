"""Telemetry without Ray: the metric registry, the Grafana dashboard built from it, and the step sinks."""

from __future__ import annotations

import asyncio
import importlib.machinery
import inspect
import json
import re
import struct
import sys
import time
import types
from pathlib import Path

import pytest

from rltrain import telemetry
from rltrain.config import load_config
from rltrain.config.loader import ConfigError
from rltrain.telemetry import REGISTRY, ActorMetrics, MetricSpec, RayMetrics, Telemetry, TensorBoardLog

DASHBOARD = Path(__file__).parents[1] / "launch" / "grafana" / "rltrain.json"
STEP = {"reward/mean": 0.5, "learner/kl": 0.01, "weights/version": 3.0, "time/step_s": 2.0, "time/update_s": 0.5,
        "time/rollout_s": 1.0, "time/reward_s": 0.1, "time/sync_s": 0.3, "reward/failed": 1.0}


def test_registry_names_are_prefixed_unique_and_described() -> None:
    assert len(REGISTRY) >= 20
    for name, spec in REGISTRY.items():
        assert spec.name == name and re.fullmatch(r"rltrain_[a-z0-9_]+", name) and spec.description
        assert spec.tag_keys[:2] == ("role", "run")
        assert spec.exported == f"ray_{name}" + ("_total" if spec.kind == "counter" else "")
    sources = [s.source for s in REGISTRY.values() if s.source]
    assert len(sources) == len(set(sources))  # one gauge per driver metric
    assert set(telemetry.PHASES) >= {"step", "rollout", "reward", "update", "sync"}


def test_registry_rejects_bad_and_duplicate_names() -> None:
    with pytest.raises(ValueError, match="must match"):
        telemetry._metric("reward_mean", "gauge", "no prefix")
    with pytest.raises(ValueError, match="_total"):
        telemetry._metric("rltrain_things_total", "counter", "Ray adds _total itself")
    with pytest.raises(ValueError, match="twice"):
        telemetry._metric("rltrain_reward_mean", "gauge", "again")
    with pytest.raises(ValueError, match="boundaries"):
        telemetry._metric("rltrain_new_histogram", "histogram", "no buckets")
    assert "rltrain_new_histogram" not in REGISTRY


def test_shipped_dashboard_is_generated_from_the_registry() -> None:
    shipped = json.loads(DASHBOARD.read_text())
    assert shipped == telemetry.grafana_dashboard(), "regenerate: python -m rltrain.telemetry > launch/grafana/rltrain.json"
    exprs = [t["expr"] for p in shipped["panels"] for t in p.get("targets", [])]
    used = set(re.findall(r"ray_(rltrain_[a-z0-9_]+?)(?:_total|_bucket)?\{", " ".join(exprs)))
    assert used == set(REGISTRY), f"not on the dashboard: {set(REGISTRY) - used}; unknown: {used - set(REGISTRY)}"
    assert all('run=~"$run"' in e for e in exprs)
    variables = {v["name"]: v for v in shipped["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus" and "label_values" in variables["run"]["query"]["query"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in shipped["panels"] if p["type"] != "row")


def test_ray_metrics_check_tags_and_are_a_no_op_without_ray() -> None:
    metrics = RayMetrics("run", "driver")
    with pytest.raises(ValueError, match="phase"):
        metrics.record(telemetry.PHASE_SECONDS, 1.0)
    metrics.record(telemetry.PHASE_SECONDS, 1.0, phase="step")
    metrics.record(telemetry.STEPS, 0.0)  # counters skip non-positive increments (Ray rejects them)
    assert metrics._objects == {"rltrain_phase_seconds": None}


def _events(folder: Path) -> list[bytes]:
    """The records of TensorBoard event files (TFRecord: length, crc, payload, crc)."""
    out = []
    for path in folder.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        i = 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i : i + 8])
            out.append(data[i + 12 : i + 12 + length])
            i += 12 + length + 4
    return out


def test_tensorboard_event_file_holds_the_scalar(tmp_path: Path) -> None:
    writer = telemetry.summary_writer_class()
    if writer is None:
        pytest.skip("neither tensorboardX nor tensorboard is installed")
    try:
        from tensorboardX.proto.event_pb2 import Event
    except ImportError:
        from tensorboard.compat.proto.event_pb2 import Event  # type: ignore[import-not-found,no-redef]
    log = TensorBoardLog(tmp_path / "tb", writer)
    log.write(1, {"reward/mean": 0.25, "note": "text is skipped"})  # type: ignore[dict-item]
    log.write(2, {"reward/mean": 0.75})
    log.close()
    scalars = []
    for record in _events(tmp_path / "tb"):
        event = Event.FromString(record)
        scalars += [(event.step, v.tag, round(v.simple_value, 6)) for v in event.summary.value]
    assert scalars == [(1, "reward/mean", 0.25), (2, "reward/mean", 0.75)]


def test_telemetry_writes_jsonl_and_tensorboard(tmp_path: Path) -> None:
    cfg = load_config(None, ["trainer.name=t", f"trainer.output_dir={tmp_path}"])
    assert cfg.trainer.loggers == ("jsonl", "tensorboard")
    sink = Telemetry(cfg, tmp_path)
    sink.publish(1, STEP)
    sink.publish(2, STEP)
    sink.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2] and lines[0]["reward/mean"] == 0.5
    if telemetry.summary_writer_class() is not None:
        assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    only_jsonl = Telemetry(load_config(None, ["trainer.loggers=[jsonl]"]), tmp_path / "j")
    assert [type(s).__name__ for s in only_jsonl.sinks] == ["MetricsLog"]


def test_loggers_config_and_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"trainer.loggers\[0\]='mlflow'"):
        load_config(None, ["trainer.loggers=[mlflow]"])
    with pytest.raises(ConfigError, match="metrics_export_port"):
        load_config(None, ["ray.metrics_export_port=70000"])
    cfg = load_config(None, ["trainer.loggers=[jsonl, wandb]", "trainer.name=w"])
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    with pytest.raises(ConfigError, match="pip install wandb"):
        telemetry.check_loggers(cfg)

    calls: list[tuple] = []
    run = types.SimpleNamespace(log=lambda m, step: calls.append(("log", step, m)), finish=lambda: calls.append(("finish",)))
    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    fake.init = lambda **kw: calls.append(("init", kw)) or run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_API_KEY", "secret-key-123")
    telemetry.check_loggers(cfg)
    sink = Telemetry(cfg, tmp_path)
    sink.publish(1, STEP)
    sink.close()
    init = calls[0][1]
    assert init["name"] == "w" and init["project"] == "rltrain" and "secret-key-123" not in json.dumps(init)
    assert calls[1] == ("log", 1, STEP) and calls[-1] == ("finish",)


def test_actor_hooks_count_queue_and_flight_without_ray() -> None:
    metrics = ActorMetrics("rollout-0")
    assert metrics.ray.tags == {"run": "local", "role": "rollout"}
    seen: list[tuple[int, int]] = []

    async def main() -> None:
        slots = asyncio.Semaphore(2)

        async def one() -> None:
            async with metrics.episode(slots):
                await asyncio.sleep(0.01)  # by now every episode has asked for a slot
                seen.append((metrics._queued, metrics._in_flight))

        await asyncio.gather(*(one() for _ in range(5)))

    asyncio.run(main())
    assert seen[0] == (3, 2) and max(f for _, f in seen) == 2 and seen[-1] == (0, 1) and (metrics._queued, metrics._in_flight) == (0, 0)


def test_user_call_decorator_keeps_the_method_async() -> None:
    from actors.user import UserService

    assert inspect.iscoroutinefunction(UserService.respond)  # Ray runs async actor methods only if they look async

    class Service:
        metrics = ActorMetrics("user-0")

        @telemetry.observe_user_calls
        async def respond(self, fail: bool) -> str:
            if fail:
                raise RuntimeError("down")
            return "ok"

    assert asyncio.run(Service().respond(False)) == "ok"
    with pytest.raises(RuntimeError, match="down"):
        asyncio.run(Service().respond(True))
    assert Service.metrics._in_flight == 0


def test_metric_spec_is_frozen() -> None:
    with pytest.raises(AttributeError):
        telemetry.REWARD_MEAN.name = "x"  # type: ignore[misc]
    assert isinstance(telemetry.REWARD_MEAN, MetricSpec)


def test_gauge_keeper_re_sets_last_values_until_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray drops a gauge about two report intervals after its last set; the keeper re-sets it meanwhile."""
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    sets: list[tuple[float, dict]] = []
    gauge = types.SimpleNamespace(set=lambda value, tags: sets.append((value, tags)))
    keeper = telemetry._GaugeKeeper()
    keeper.period_s = 0.01
    keeper.keep(gauge, {"role": "driver", "run": "r"}, 1.0)
    keeper.keep(gauge, {"role": "driver", "run": "r"}, 2.0)  # the same series: the last value wins
    deadline = time.time() + 5
    while len(sets) < 3 and time.time() < deadline:
        time.sleep(0.01)
    assert len(sets) >= 3 and {v for v, _ in sets} == {2.0} and sets[0][1] == {"role": "driver", "run": "r"}
    keeper.forget([gauge])
    time.sleep(0.05)
    count = len(sets)
    time.sleep(0.05)
    assert len(sets) == count


def test_cost_and_routing_metrics_reach_their_tagged_gauges(tmp_path: Path) -> None:
    """Issue 14: the ledger's per-role and per-model USD, budget fractions and router shares become tagged gauges
    (the dashboard's Costs and Routing rows); flat `costs/*` keys set their own gauges by source."""
    sink = Telemetry(load_config(None, ["trainer.loggers=[jsonl]"]), tmp_path)
    seen: list[tuple[str, float, dict[str, str]]] = []
    sink.ray.record = lambda spec, value, **tags: seen.append((spec.name, value, tags))  # type: ignore[method-assign]
    sink.publish(1, {"costs/usd_step": 0.5, "costs/usd_step/judge": 0.2, "costs/usd_run/model/qwen2.5-coder-0.5b": 1.5,
                     "costs/budget_frac/run_usd": 0.85, "router/share/smollm2-135m-instruct": 0.25,
                     "eval_test/router/share/smollm2-135m-instruct": 0.5})
    assert ("rltrain_cost_usd_step", 0.5, {}) in seen
    assert ("rltrain_cost_usd_by", 0.2, {"by": "role", "name": "judge"}) in seen
    assert ("rltrain_cost_usd_by", 1.5, {"by": "model", "name": "qwen2.5-coder-0.5b"}) in seen
    assert ("rltrain_budget_fraction", 0.85, {"budget": "run_usd"}) in seen
    # eval metrics share the key's tail but are not the step's routing: only the training share is a gauge
    assert [v for n, v, t in seen if n == "rltrain_router_share"] == [0.25]
