"""Fixtures of the integration tests that need more than one Ray node."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.integration.ray_nodes import free_port, processes_using


@dataclass(frozen=True)
class TwoNodes:
    """Node ids of a two-node cluster: `train` (the head) and `gen`, each with 4 CPUs and 2 fake GPUs."""

    train: str
    gen: str


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[TwoNodes]:
    """Two Ray nodes on this machine (`ray.cluster_utils.Cluster`), this process connected as the driver.

    The head ("train") declares the custom resource `learner_node` and the label pool=train, the other ("gen")
    `rollout_node` and pool=gen; `--num-gpus` declares fake GPUs, which is enough for placement (no CUDA here).
    RAY_TMPDIR keeps the cluster's files, address file included, in a private short folder.
    """
    import ray
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="rln-", dir="/tmp")
    saved = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp  # Cluster writes its address to $RAY_TMPDIR/ray, not to the shared /tmp/ray
    ports = {"gcs_server_port": free_port(), "dashboard_agent_listen_port": free_port(), "metrics_export_port": free_port()}
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 4, "num_gpus": 2, "resources": {"learner_node": 1}, "labels": {"pool": "train"},
        "include_dashboard": False, **ports})
    try:
        gen = cluster.add_node(num_cpus=4, num_gpus=2, resources={"rollout_node": 1}, labels={"pool": "gen"},
                               metrics_export_port=free_port())
        ray.init(address=cluster.address, log_to_driver=False)
        yield TwoNodes(train=cluster.head_node.node_id, gen=gen.node_id)
    finally:
        ray.shutdown()
        cluster.shutdown()
        if saved is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = saved
        left = processes_using(temp)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes of the two-node cluster outlived it: {left}"
