"""Placement groups built from configs on a two-node cluster with fake GPUs.

Probe actors stand in for the roles: each is created with exactly the options `Placement.options` gives the real
role (resources, custom resources, placement group and bundle), so where a probe lands and which GPU ids Ray gives it
is where the role would run. Real learners would need CUDA for num_gpus > 0.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
import ray

from rltrain.cluster import alive_nodes
from rltrain.config import ConfigError, load_config
from rltrain.groups import Location, Placement, RoleFailed, locate
from rltrain.preflight import requirements
from tests.integration.conftest import TwoNodes

pytestmark = pytest.mark.ray
TINY = Path(__file__).parents[2] / "launch/configs/tiny.yaml"


class Probe:
    """An empty actor: it only occupies what its options reserve."""


def place(overrides: list[str], roles: dict[str, int], tag: str) -> dict[str, list[Location]]:
    """Reserve the placement groups of a config and start probes for `roles` ({role: count}); their locations."""
    cfg = load_config(TINY, overrides)
    requirements(cfg).check(ray.cluster_resources(), alive_nodes())  # the driver's pre-flight check agrees
    with ExitStack() as cleanup:
        placement = Placement(cfg, tag, cleanup)
        out = {}
        for role, count in roles.items():
            probes = [ray.remote(Probe).options(**placement.options(role, i)).remote() for i in range(count)]
            cleanup.callback(lambda ps=probes: [ray.kill(p) for p in ps])
            out[role] = locate(probes, [f"{role}-{i}" for i in range(count)])
        return out


def test_separate_mode_pins_each_role_to_its_nodes_with_whole_gpus(two_nodes: TwoNodes) -> None:
    where = place(["learner.num_gpus=1", "rollout.num_gpus=1", "placement.learner.resources={learner_node: 0.01}",
                   "placement.rollout.resources={rollout_node: 0.01}", "placement.users.labels={pool: gen}",
                   "users.num_gpus=0"], {"learner": 2, "rollout": 2, "users": 1}, "sep")
    assert {loc.node_id for loc in where["learner"]} == {two_nodes.train}
    assert {loc.node_id for loc in where["rollout"]} == {two_nodes.gen}
    assert sorted(loc.gpu_ids for loc in where["learner"]) == [("0",), ("1",)]  # one whole GPU each, not shared
    assert sorted(loc.gpu_ids for loc in where["rollout"]) == [("0",), ("1",)]
    assert where["users"][0].node_id == two_nodes.gen and where["users"][0].gpu_ids == ()  # a CPU-only role


@pytest.mark.parametrize("strategy", ["STRICT_SPREAD", "STRICT_PACK"])
def test_colocated_mode_shares_a_gpu_between_a_learner_rank_and_its_engines(two_nodes: TwoNodes, strategy: str) -> None:
    """Learner rank i (0.5 GPU) and rollout workers 2i, 2i+1 (0.25 GPU each) share bundle i, i.e. one GPU."""
    where = place(["placement.mode=colocated", f"placement.learner.strategy={strategy}",
                   f"placement.rollout.strategy={strategy}", "learner.num_gpus=0.5", "learner.num_cpus=0.5",
                   "rollout.num_workers=4", "rollout.num_gpus=0.25", "rollout.num_cpus=0.25"],
                  {"learner": 2, "rollout": 4}, f"colo-{strategy.lower()}")
    learners, rollouts = where["learner"], where["rollout"]
    for rank, learner in enumerate(learners):
        assert len(learner.gpu_ids) == 1
        for engine in rollouts[2 * rank : 2 * rank + 2]:
            assert (engine.node_id, engine.gpu_ids) == (learner.node_id, learner.gpu_ids), (learner, engine)
    if strategy == "STRICT_SPREAD":
        assert {loc.node_id for loc in learners} == {two_nodes.train, two_nodes.gen}
    else:  # STRICT_PACK: both bundles on one node, i.e. on its two GPUs
        assert learners[0].node_id == learners[1].node_id and learners[0].gpu_ids != learners[1].gpu_ids


def test_label_selectors_pin_like_custom_resources(two_nodes: TwoNodes) -> None:
    where = place(["placement.rollout.labels={pool: gen}", "placement.learner.labels={pool: '!gen'}"],
                  {"learner": 2, "rollout": 2}, "labels")
    assert {loc.node_id for loc in where["rollout"]} == {two_nodes.gen}
    assert {loc.node_id for loc in where["learner"]} == {two_nodes.train}


def test_a_pin_nothing_satisfies_fails_before_and_at_reservation(two_nodes: TwoNodes) -> None:
    cfg = load_config(TINY, ["placement.rollout.resources={tpu_node: 0.01}", "placement.timeout_s=3"])
    with pytest.raises(ConfigError, match="placement.rollout.resources.tpu_node: .* the cluster has 0"):
        requirements(cfg).check(ray.cluster_resources(), alive_nodes())
    with ExitStack() as cleanup, pytest.raises(RoleFailed, match=r"could not reserve rollout: 2 x \{CPU: 1, tpu_node: 0.01\} "
                                                                 r"PACK within placement.timeout_s=3s"):
        Placement(cfg, "nowhere", cleanup).options("rollout", 0)
    spread = load_config(TINY, ["learner.num_learners=1", "rollout.num_workers=3", "placement.rollout.strategy=STRICT_SPREAD"])
    with pytest.raises(ConfigError, match="STRICT_SPREAD needs 3 nodes"):
        requirements(spread).check(ray.cluster_resources(), alive_nodes())
