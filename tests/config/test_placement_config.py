"""The placement section: validated before anything starts, planned into placement groups without Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltrain import doctor
from rltrain.config import ConfigError, load_config
from rltrain.placement import POLICY, Node, matches_selector, plan_placement
from rltrain.preflight import requirements

TINY = Path(__file__).parents[2] / "launch/configs/tiny.yaml"


def where(plan, role: str) -> list[tuple[str | None, int]]:
    return [(s.group, s.bundle) for s in plan.slots[role]]


def test_default_is_one_group_per_role_with_the_old_cpu_count() -> None:
    cfg = load_config(TINY)  # 2 learners, 2 rollout workers, 1 CPU each; no users for arithmetic
    plan = plan_placement(cfg, with_users=False)
    assert plan.mode == "separate" and set(plan.groups) == {"learner", "rollout"}
    assert plan.groups["learner"].bundles == ({"CPU": 1.0},) * 2 and plan.groups["learner"].strategy == "PACK"
    assert where(plan, "rollout") == [("rollout", 0), ("rollout", 1)]
    assert requirements(cfg).cpus == 4.5  # what the driver asked for before placement groups existed
    assert plan.describe() == "separate; learner: 2 x {CPU: 1} PACK; rollout: 2 x {CPU: 1} PACK"


def test_colocated_shares_bundles_and_gpus() -> None:
    cfg = load_config(TINY, ["placement.mode=colocated", "learner.num_gpus=0.5", "rollout.num_workers=4",
                             "rollout.num_gpus=0.25", "placement.learner.strategy=SPREAD", "placement.rollout.strategy=SPREAD",
                             "placement.rollout.resources={gpu_node: 0.01}", "placement.learner.labels={pool: gpu}"])
    plan = plan_placement(cfg, with_users=False)
    assert set(plan.groups) == {POLICY}
    group = plan.groups[POLICY]
    assert group.strategy == "SPREAD" and group.members == ("learner", "rollout")
    # learner rank i (0.5 GPU) and rollout workers 2i, 2i+1 (0.25 each) fill one GPU
    assert group.bundles == ({"CPU": 3.0, "GPU": 1.0, "gpu_node": 0.02},) * 2
    assert group.labels == ({"pool": "gpu"},) * 2
    assert where(plan, "learner") == [(POLICY, 0), (POLICY, 1)]
    assert where(plan, "rollout") == [(POLICY, 0), (POLICY, 0), (POLICY, 1), (POLICY, 1)]
    assert plan.totals() == {"CPU": 6.0, "GPU": 2.0, "gpu_node": 0.04}


def test_users_get_their_own_group_and_cpu_only_roles_need_no_gpu() -> None:
    cfg = load_config(None, ["env.name=telepathy", "users.num_actors=2", "placement.mode=colocated",
                             "placement.users.strategy=SPREAD"])
    plan = plan_placement(cfg)
    assert plan.groups["users"].bundles == ({"CPU": 0.5},) * 2 and plan.groups["users"].strategy == "SPREAD"
    assert "GPU" not in plan.totals()
    assert "users" not in plan_placement(cfg, with_users=False).slots


def test_roles_without_resources_are_scheduled_without_a_group() -> None:
    plan = plan_placement(load_config(TINY, ["rollout.num_cpus=0"]), with_users=False)
    assert "rollout" not in plan.groups and where(plan, "rollout") == [(None, 0), (None, 1)]
    assert "rollout: 2 x no resources" in plan.describe()


@pytest.mark.parametrize(("overrides", "needle"), [
    (["placement.mode=colocated", "rollout.num_workers=3"],
     "rollout.num_workers=3 is not a multiple of learner.num_learners=2; set rollout.num_workers=2"),
    (["placement.mode=colocated", "learner.num_gpus=0.5", "rollout.num_gpus=0.75"],
     "= 1.25 GPUs; Ray shares one GPU by fractions or gives whole GPUs"),
    (["placement.mode=colocated", "placement.rollout.strategy=SPREAD"], "set placement.rollout.strategy=PACK"),
    (["placement.mode=colocated", "placement.learner.labels={pool: a}", "placement.rollout.labels={pool: b}"],
     "select different values for pool"),
    (["placement.mode=hybrid"], "placement.mode='hybrid' is not a valid choice; use one of: 'separate', 'colocated'"),
    (["placement.rollout.strategy=RANDOM"], "placement.rollout.strategy='RANDOM' is not a valid choice"),
    (["placement.rollout.resources={GPU: 1}"], "placement.rollout.resources.GPU: GPU is not a custom resource"),
    (["placement.rollout.resources={rollout_node: 0}"], "placement.rollout.resources.rollout_node=0 must be a number >= 0.0001"),
    (["placement.learner.labels={pool: 3}"], "placement.learner.labels.pool=3 must be a non-empty string"),
    (["rollout.num_gpus=1.5"], "rollout.num_gpus=1.5: Ray gives an actor a fraction of one GPU or whole GPUs"),
    (["placement.timeout_s=0"], "placement.timeout_s=0.0 must be > 0"),
    (["placement.nodes=2"], "unknown key(s) placement.nodes"),
])
def test_bad_placement_names_key_and_fix(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(TINY, overrides)
    assert needle in str(err.value)


def node(node_id: str, labels: dict[str, str] | None = None, **resources: float) -> Node:
    return Node(node_id, "10.0.0.1", resources, labels or {})


def test_pins_are_checked_against_the_cluster_before_any_actor() -> None:
    cfg = load_config(TINY, ["placement.rollout.resources={rollout_node: 0.01}"])
    with pytest.raises(ConfigError, match=r"placement.rollout.resources.rollout_node: the roles request 0.02 rollout_node "
                                          r"in all, but the cluster has 0; start the nodes meant for rollout with `ray start "
                                          r"--resources '\{\"rollout_node\": 1\}'`"):
        requirements(cfg).check({"CPU": 8.0})
    nodes = [node("a" * 56, CPU=4), node("b" * 56, CPU=4, rollout_node=1)]
    requirements(cfg).check({"CPU": 8.0, "rollout_node": 1.0}, nodes)
    too_big = load_config(TINY, ["placement.rollout.resources={rollout_node: 0.01}", "rollout.num_cpus=5"])
    with pytest.raises(ConfigError, match=r"a bundle of rollout: 2 x \{CPU: 5, rollout_node: 0.01\} PACK fits no node of the "
                                          r"cluster \(node aaaaaaaa \{CPU: 4\}; node bbbbbbbb \{CPU: 4, rollout_node: 1\}\)"):
        requirements(too_big).check({"CPU": 20.0, "rollout_node": 1.0}, nodes)


def test_strict_strategies_and_labels_are_checked_per_node() -> None:
    one_node = [node("a" * 56, CPU=8, GPU=2)]
    spread = load_config(TINY, ["placement.learner.strategy=STRICT_SPREAD"])
    with pytest.raises(ConfigError, match="placement.learner.strategy=STRICT_SPREAD needs 2 nodes .* but 1 do; use SPREAD"):
        requirements(spread).check({"CPU": 8.0}, one_node)
    requirements(spread).check({"CPU": 8.0}, [node("a" * 56, CPU=4), node("b" * 56, CPU=4)])
    pack = load_config(TINY, ["placement.rollout.strategy=STRICT_PACK", "rollout.num_cpus=3"])
    with pytest.raises(ConfigError, match=r"STRICT_PACK needs one node with \{CPU: 6\}"):
        requirements(pack).check({"CPU": 10.0}, [node("a" * 56, CPU=5), node("b" * 56, CPU=5)])
    labelled = load_config(TINY, ["placement.rollout.labels={pool: gen}"])
    with pytest.raises(ConfigError, match="fits no node"):
        requirements(labelled).check({"CPU": 8.0}, one_node)
    requirements(labelled).check({"CPU": 8.0}, [node("a" * 56, {"pool": "gen"}, CPU=8)])


def test_label_selector_syntax() -> None:
    labels = {"pool": "gen", "zone": "b"}
    assert matches_selector({"pool": "gen"}, labels) and not matches_selector({"pool": "train"}, labels)
    assert matches_selector({"pool": "!train"}, labels) and not matches_selector({"pool": "!gen"}, labels)
    assert matches_selector({"zone": "in(a, b)"}, labels) and not matches_selector({"zone": "!in(a,b)"}, labels)
    assert not matches_selector({"gpu": "h100"}, labels) and matches_selector({"gpu": "!h100"}, labels)


def test_doctor_shows_the_plan_and_checks_it_against_the_nodes() -> None:
    cfg = load_config(TINY, ["placement.mode=colocated", "learner.num_gpus=0.5", "rollout.num_gpus=0.5"])
    row = doctor.check_placement(cfg)
    assert row.status == doctor.OK and row.detail == "colocated; learner+rollout: 2 x {CPU: 2, GPU: 1} PACK"
    gpus = doctor.Cluster("ray.address=auto", cpus=16, gpus=2, physical_cores=None, memory_bytes=64 * doctor.GIB,
                          node_memory_bytes=32 * doctor.GIB, gpu_memory_bytes=None,
                          nodes=(node("a" * 56, CPU=8, GPU=1), node("b" * 56, CPU=8, GPU=1)))
    assert doctor.check_resources(cfg, gpus)[0].status == doctor.OK
    pinned = load_config(TINY, ["placement.rollout.resources={rollout_node: 0.01}"])
    failed = doctor.check_resources(pinned, gpus)[0]
    assert failed.status == doctor.FAIL and failed.fix.startswith("start the nodes meant for rollout with `ray start")
