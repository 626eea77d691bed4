"""Ray start-up: join `ray.address`, or start a private local cluster sized for every role; then check it.

The one place that calls `ray.init` for a run (`rltrain train`, `rltrain eval`, the benchmarks).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rltrain import console
from rltrain.placement import Node
from rltrain.preflight import Requirements
from rltrain.watchdog import Target, dump_local

logger = logging.getLogger("rltrain.driver")


def start_ray(needs: Requirements, temp_dir: str | None = None) -> None:
    """Join `ray.address`, or start a private local cluster sized for every role; then check `needs` (the run's
    pre-flight requirements) against it: ConfigError naming the keys when the roles do not fit."""
    cfg = needs.cfg
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private, localhost-only cluster; real clusters set token auth
    if cfg.ray.address:
        if cfg.ray.metrics_export_port is not None:
            logger.warning("ray.metrics_export_port applies to a local cluster; %s exports metrics on the port its "
                           "nodes were started with (ray start --metrics-export-port)", cfg.ray.address)
        ray.init(address=cfg.ray.address, **console.ray_init_options(cfg.trainer.run_dir))
    else:
        ray.init(address="local", num_cpus=needs.local_cpus(), include_dashboard=cfg.ray.dashboard,
                 dashboard_host=cfg.ray.dashboard_host, _temp_dir=temp_dir,
                 _metrics_export_port=cfg.ray.metrics_export_port, **console.ray_init_options(cfg.trainer.run_dir))
    needs.check(ray.cluster_resources(), alive_nodes())


def alive_nodes() -> list[Node]:
    """The cluster's alive nodes, as the placement check reads them (needs a connected Ray)."""
    return [Node(n["NodeID"], n["NodeManagerAddress"], n.get("Resources", {}), n.get("Labels") or {})
            for n in ray.nodes() if n.get("Alive")]


def dump_stacks(targets: Sequence[Target]) -> dict[str, str]:
    """role -> Python stacks of its process (and subprocesses), wherever it runs: py-spy runs on the target's own
    node, here for this node's, in a zero-CPU Ray task pinned to the node for the others."""
    here = ray.get_runtime_context().get_node_id()
    out = dump_local([t for t in targets if t.node_id == here])
    remote = [t for t in targets if t.node_id != here]
    by_node: dict[str, list[Target]] = {}
    for t in remote:
        by_node.setdefault(t.node_id, []).append(t)
    task = ray.remote(dump_local)
    refs = {node: task.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(ts)
            for node, ts in by_node.items()}
    for node, ref in refs.items():
        try:
            out.update(ray.get(ref, timeout=120))
        except Exception as err:  # a dead node must not stop the others' stacks from being written
            out.update({t.role: f"# {t.role}: no stacks from node {node[:8]} ({type(err).__name__}: {err})\n"
                        for t in by_node[node]})
    return out
