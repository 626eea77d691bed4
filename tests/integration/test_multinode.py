"""Multi-node correctness on two Ray nodes of this machine: learner rendezvous and weight sync across nodes, and a
whole `rltrain submit` job with the roles pinned to different nodes.

Nodes on one machine share an IP (and /dev/shm) but not a Ray node id, and the code decides "same node" by node id,
so a worker on the other node really takes the cross-node path: bytes through the object store, its own folder.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray

from rltrain import jobs
from rltrain.algorithms import build_algorithm
from rltrain.config import load_config
from rltrain.envs import make_env
from rltrain.groups import LearnerGroup, Placement, RolloutGroup, make_accountant, shutdown_actors
from tests.integration import test_weight_sync as sync
from tests.integration.conftest import TwoNodes
from tests.integration.ray_nodes import free_port, kill_group, processes_using, start_node, wait_for_dashboard

pytestmark = pytest.mark.ray
REPO = Path(__file__).parents[2]
TINY = REPO / "launch/configs/tiny.yaml"


def _env(actor, name: str) -> str:
    return ray.get(actor.__ray_call__.remote(lambda _self, key: os.environ[key], name))


def test_ranks_on_two_nodes_rendezvous_and_workers_on_both_load_the_new_weights(two_nodes: TwoNodes, tiny_model: Path) -> None:
    """STRICT_SPREAD puts one learner rank and one rollout worker on each node: the ranks meet at rank 0's node, and
    after an update one worker reads rank 0's file in place while the other pulls it through the object store; both
    engines then score like the learner."""
    cfg = load_config(TINY, [f"model.name={tiny_model}", "rollout.engine=transformers", "rollout.dtype=float32",
                             "rollout.max_new_tokens=12", "rollout.threads=1", "learner.threads=1", "learner.lr=0.05",
                             "placement.learner.strategy=STRICT_SPREAD", "placement.rollout.strategy=STRICT_SPREAD",
                             "trainer.name=multinode"])
    algorithm = build_algorithm(cfg.algorithm)
    with ExitStack() as cleanup:
        placement = Placement(cfg, cfg.trainer.name, cleanup)
        rollouts = RolloutGroup(cfg, str(tiny_model), cfg.trainer.name, cleanup, placement=placement)
        learners = LearnerGroup(cfg, str(tiny_model), algorithm, cfg.trainer.name, cleanup, placement=placement)
        accountant = make_accountant(cfg, "arithmetic", cfg.trainer.name)
        cleanup.callback(shutdown_actors, [accountant], None)
        rank_nodes = [loc.node_id for loc in learners.locations]
        assert set(rank_nodes) == {two_nodes.train, two_nodes.gen}
        assert {loc.node_id for loc in rollouts.locations} == {two_nodes.train, two_nodes.gen}
        master = {(_env(r, "MASTER_ADDR"), _env(r, "MASTER_PORT")) for r in learners.ranks}
        assert len(master) == 1 and next(iter(master))[0] == learners.locations[0].ip  # one address for all: rank 0's

        tasks = make_env("arithmetic", {}).tasks("train", 2, seed=0)  # one task per worker
        trajectories = ray.get(accountant.score.remote(rollouts.rollout(tasks, n=4)))
        for i, t in enumerate(trajectories):  # varied advantages, so that the weights really move
            t.reward = float(i % 3)
        batch, _ = algorithm.make_batch(trajectories, SimpleNamespace(pad_token_id=0, eos_token_id=0))
        learners.update(batch)
        assert sync.engine_vs_learner(rollouts, learners, tasks) > 1e-2

        payload = learners.export_weights(1, cfg.rollout.dtype)
        assert payload.node_id == rank_nodes[0] and payload.blob is not None and payload.nbytes > 0
        assert rollouts.remote_from(payload.node_id) == 1
        rollouts.load_weights(payload, version=1)
        assert sync.engine_vs_learner(rollouts, learners, tasks) < 2e-3  # both workers: in place and pulled
        pulled = [ray.get(w.__ray_call__.remote(lambda self: self.inbox.pulled)) for w in rollouts.workers]
        # the worker on rank 0's node loaded its file in place; the other pulled a copy (deleted once loaded)
        assert pulled == [int(loc.node_id != payload.node_id) for loc in rollouts.locations]
    assert not Path(payload.folder).exists()  # shut down: rank 0's export is gone from shared memory


@pytest.fixture(scope="module")
def two_node_cluster() -> Iterator[str]:
    """A head (dashboard, custom resource learner_node) and a worker node (rollout_node), each a `ray start` process
    group on free ports; yields the Jobs API address. Both groups are killed at the end, and nothing may outlive them."""
    temp = tempfile.mkdtemp(prefix="rlm-", dir="/tmp")
    head_port, dash = free_port(), free_port()
    logs = [Path(temp) / "head.log", Path(temp) / "worker.log"]
    procs = [start_node(temp, logs[0], head_port=head_port, head=True, num_cpus=4, resources={"learner_node": 1},
                        dashboard_port=dash)]
    address = f"http://127.0.0.1:{dash}"
    try:
        wait_for_dashboard(address, procs, logs[:1], timeout_s=120)
        # A temp dir of its own: two nodes in one would share runtime_resources/, and each node's runtime-env agent
        # deletes packages it does not know, such as the job's working_dir the other node unpacked there.
        worker_temp = Path(temp) / "w"
        worker_temp.mkdir()
        procs.append(start_node(str(worker_temp), logs[1], head_port=head_port, head=False, num_cpus=3,
                                resources={"rollout_node": 1}))
        wait_for_dashboard(address, procs, logs, nodes=2, timeout_s=120)
        yield address
    except RuntimeError as err:
        pytest.fail(str(err))
    finally:
        for proc in reversed(procs):
            kill_group(proc)
        left = processes_using(temp)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"processes of the test's Ray nodes outlived them: {left}"


@pytest.mark.slow
def test_submitted_job_runs_rollout_and_learner_on_different_nodes(two_node_cluster: str, tiny_model: Path,
                                                                     tmp_path: Path) -> None:
    out = io.StringIO()
    result = jobs.submit(str(TINY), two_node_cluster,
                         [f"model.name={tiny_model}", f"trainer.output_dir={tmp_path}", "trainer.steps=2",
                          "rollout.engine=transformers", "rollout.dtype=float32", "env.eval_tasks=0",
                          "trainer.save_final=false", "placement.learner.resources={learner_node: 0.01}",
                          "placement.rollout.resources={rollout_node: 0.01}"],
                         env=["RAY_DEDUP_LOGS=0"],  # every worker's line, not "[repeated 3x across cluster]"
                         python=sys.executable, out=out, timeout_s=600)
    # the driver's lines come through the job's log; each actor's own lines are in the run's role logs (rltrain.console)
    logs = out.getvalue() + "".join(p.read_text(errors="replace") for p in sorted(tmp_path.rglob("logs/*.log")))
    assert result.status == "SUCCEEDED", logs[-4000:]
    line = next(x for x in logs.splitlines() if "placement (separate):" in x)
    where = re.findall(r"(rollout|learner)-(\d+) on node ([0-9a-f]{8}) \(([\d.]+)", line)
    nodes = {role: {node for r, _, node, _ in where if r == role} for role in ("rollout", "learner")}
    assert len(nodes["rollout"]) == len(nodes["learner"]) == 1 and nodes["rollout"] != nodes["learner"], line
    rank0_ip = next(ip for r, i, _, ip in where if (r, i) == ("learner", "0"))
    assert re.search(rf"learner rendezvous at {re.escape(rank0_ip)}:\d+ \(rank 0's node {nodes['learner'].pop()}\)", logs)
    pulls = set(re.findall(r"rollout-(\d) INFO rltrain.weights: weights v(\d): pulled [\d.]+ MB from node [0-9a-f]{8} "
                           r"through the object store", logs))
    assert pulls == {("0", "1"), ("1", "1"), ("0", "2"), ("1", "2")}, logs[-4000:]  # both syncs took the cross-node path
    steps = [json.loads(x) for x in (tmp_path / "tiny" / "metrics.jsonl").read_text().splitlines()]
    assert [s["weights/remote_workers"] for s in steps] == [2.0, 2.0]
    # the job joined the cluster it was submitted to (test_jobs.py covers the Jobs API itself)
    assert "ray.address=auto" in logs and (tmp_path / "tiny" / "summary.json").is_file()
