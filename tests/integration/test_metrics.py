"""Ray metrics end to end: a short tiny-model run on a private cluster, scraped from its Prometheus endpoint.

The driver's last `Telemetry.publish` is held (a test hook) until the endpoint shows the final step, because the
cluster, and with it the endpoint, stops as soon as `train` returns.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest

from rltrain.driver import train
from rltrain.telemetry import REGISTRY, Telemetry, summary_writer_class
from tests.integration.test_training import tiny_config

pytestmark = pytest.mark.ray
STEPS = 2
Samples = dict[str, list[tuple[dict[str, str], float]]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> Samples:
    """`ray_rltrain_*` samples by name: [(labels, value)]; empty while the endpoint is not up."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("ray_rltrain_"):
                out[sample.name].append((sample.labels, sample.value))
    return out


def total(samples: Samples, name: str, **labels: str) -> float | None:
    """Sum over the series of `name` that carry `labels` (one series per process); None when there is none."""
    values = [v for tags, v in samples.get(name, []) if all(tags.get(k) == x for k, x in labels.items())]
    return sum(values) if values else None


def final_step_visible(samples: Samples) -> bool:
    return (total(samples, "ray_rltrain_steps_total") == STEPS
            and total(samples, "ray_rltrain_update_seconds_count", role="learner") == STEPS
            and total(samples, "ray_rltrain_episodes_total", role="rollout") is not None)


def test_rltrain_metrics_reach_prometheus(tiny_model: Path, tmp_path: Path, ray_tmp: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    port = free_port()
    # Read by every Ray process at start: export every second instead of every 10 s (PLATFORM.md, "Ray on one machine").
    monkeypatch.setenv("RAY_metrics_report_interval_ms", "1000")
    cfg = tiny_config(tiny_model, tmp_path, "rollout.engine=transformers", "rollout.dtype=float32", "rollout.num_workers=1",
                      "learner.num_learners=1", "env.eval_tasks=0", "trainer.save_final=false", f"trainer.steps={STEPS}",
                      f"ray.metrics_export_port={port}")
    seen: Samples = {}
    named: list[str] = []
    publish = Telemetry.publish

    def publish_and_wait(self: Telemetry, step: int, metrics: dict[str, float]) -> None:
        nonlocal seen
        publish(self, step, metrics)
        if step < STEPS:
            return
        named.extend(a["name"] for a in ray.util.list_named_actors(all_namespaces=True))
        deadline = time.time() + 60
        while time.time() < deadline and not final_step_visible(seen := scrape(port)):
            time.sleep(0.5)

    monkeypatch.setattr(Telemetry, "publish", publish_and_wait)
    train(cfg, ray_temp_dir=ray_tmp)

    assert final_step_visible(seen), sorted(seen)
    # every series is tagged with the run and a known role; nothing else of ours is exported
    for name, series in seen.items():
        for tags, _ in series:
            assert tags.get("run") == "tiny" and tags.get("role") in {"driver", "rollout", "learner", "accountant"}, (name, tags)
    exported = {s.exported for s in REGISTRY.values()}
    assert {n.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for n in seen} <= exported
    # the driver's step metrics
    assert 0.0 <= total(seen, "ray_rltrain_reward_mean", role="driver") <= 1.2
    assert total(seen, "ray_rltrain_weight_version", role="driver") == STEPS
    assert total(seen, "ray_rltrain_weight_staleness", role="driver") == 0
    assert total(seen, "ray_rltrain_phase_seconds", phase="step") > 0
    assert total(seen, "ray_rltrain_phase_seconds", phase="step") >= total(seen, "ray_rltrain_phase_seconds", phase="update")
    assert total(seen, "ray_rltrain_weight_sync_seconds_count") == STEPS
    assert total(seen, "ray_rltrain_entropy") > 0 and total(seen, "ray_rltrain_tokens_per_second") > 0
    for role in ("rollout", "learner", "accountant"):
        assert 0.0 <= total(seen, "ray_rltrain_idle_ratio", role=role) <= 1.0, role
    # what only the actors know
    assert total(seen, "ray_rltrain_episodes_total", role="rollout") == STEPS * cfg.trainer.samples_per_step
    assert total(seen, "ray_rltrain_generated_tokens_total", role="rollout") > 0
    assert total(seen, "ray_rltrain_episodes_in_flight", role="rollout") == 0  # between steps
    assert total(seen, "ray_rltrain_busy_seconds_total", role="rollout") > 0
    assert total(seen, "ray_rltrain_busy_seconds_total", role="learner") > 0
    # the actors are named, so the dashboard's actor list reads <run>-<role>
    assert {"tiny-rollout-0", "tiny-learner-0", "tiny-accountant"} <= set(named), named
    # and the same steps went to TensorBoard where a writer is installed
    if summary_writer_class() is not None:
        assert list((cfg.trainer.run_dir / "tb").glob("events.out.tfevents.*"))
