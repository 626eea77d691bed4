"""The placement plan: which Ray placement groups a run reserves, and which bundle each actor takes.

Pure Python (no Ray import), so that the driver's pre-flight check, `rltrain doctor` and `rltrain.groups` (which
reserves the groups) all read one plan. Amounts come from the role sections (`<role>.num_cpus`, `num_gpus`), the
rest from `placement` (see `rltrain/config/placement.py`).

Every role with something to reserve gets a placement group, GPUs or not: the group is reserved as a whole
within `placement.timeout_s` or the run stops naming what is missing, instead of actors pending forever on a
cluster that cannot hold them (ARCHITECTURE.md complaint 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from rltrain.config.loader import ConfigError
from rltrain.config.run import RunConfig

ROLES = ("learner", "rollout", "users")
POLICY = "policy"
"""Key of the shared learner + rollout group in colocated mode."""
ACCOUNTANT_CPUS = 0.5
"""The reward accountant's CPUs; it is scheduled without a placement group."""


@dataclass(frozen=True)
class Slot:
    """One actor: what it requests and which bundle of which group it takes."""

    role: str
    index: int
    num_cpus: float
    num_gpus: float
    resources: Mapping[str, float]
    """Custom resources (the role's node pin)."""
    labels: Mapping[str, str]
    group: str | None
    """Key of its placement group; None when it requests nothing a bundle can hold (0 CPUs, 0 GPUs, no pin)."""
    bundle: int

    @property
    def name(self) -> str:
        """The name the actor's logs and the placement line use (`learner-0`, `rollout-1`, `user-0`)."""
        return f"{'user' if self.role == 'users' else self.role}-{self.index}"

    @property
    def request(self) -> dict[str, float]:
        return _nonzero({"CPU": self.num_cpus, "GPU": self.num_gpus, **self.resources})


@dataclass(frozen=True)
class GroupPlan:
    """One placement group: identical bundles, one strategy, one label selector per bundle."""

    key: str
    strategy: str
    bundles: tuple[dict[str, float], ...]
    labels: tuple[dict[str, str], ...]
    members: tuple[str, ...]
    """Config keys of the roles in it (for messages): `learner`, `rollout`, `users`."""

    def describe(self) -> str:
        pin = f" on nodes with labels {_fmt(self.labels[0])}" if self.labels and self.labels[0] else ""
        return f"{'+'.join(self.members)}: {len(self.bundles)} x {_fmt(self.bundles[0])} {self.strategy}{pin}"


@dataclass(frozen=True)
class Node:
    """What the plan is checked against: one alive Ray node."""

    node_id: str
    ip: str
    resources: Mapping[str, float]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PlacementPlan:
    mode: str
    groups: dict[str, GroupPlan]
    slots: dict[str, tuple[Slot, ...]]

    def totals(self) -> dict[str, float]:
        """Every resource the roles request (without the accountant)."""
        out: dict[str, float] = {}
        for slots in self.slots.values():
            for slot in slots:
                for name, amount in slot.request.items():
                    out[name] = out.get(name, 0.0) + amount
        return out

    def describe(self) -> str:
        """One line: the mode, then each group's bundles and strategy, then roles without a group."""
        parts = [g.describe() for g in self.groups.values()]
        parts += [f"{role}: {len(slots)} x no resources (no placement group)" for role, slots in self.slots.items()
                  if slots and slots[0].group is None]
        return f"{self.mode}; " + ("; ".join(parts) or "no roles")

    def check_custom(self, available: Mapping[str, float]) -> None:
        """Raise ConfigError when the cluster lacks a custom resource a role is pinned with, naming the key."""
        for role, slots in self.slots.items():
            for name in slots[0].resources:
                need = self.totals().get(name, 0.0)
                if need > available.get(name, 0.0) + 1e-9:
                    raise ConfigError(
                        f"placement.{role}.resources.{name}: the roles request {need:g} {name} in all, but the cluster has "
                        f"{available.get(name, 0.0):g}; start the nodes meant for {role} with "
                        f"`ray start --resources '{{\"{name}\": 1}}'` (or add it to the node type's resources in "
                        f"clusters/*.yaml), or remove the pin (a local run's private cluster has no custom resources)")

    def check_nodes(self, nodes: Sequence[Node]) -> None:
        """Raise ConfigError when a group cannot be placed on these nodes, naming the keys to change.

        A quick feasibility check (each bundle fits some node; STRICT_SPREAD has enough such nodes; STRICT_PACK
        has one node for all), not Ray's scheduler: a group that passes may still wait for busy resources.
        """
        for group in self.groups.values():
            keys = _keys(group.members)
            fits = [n for n in nodes if _fits(group.bundles[0], n) and _matches(group.labels[0], n.labels)]
            if not fits:
                raise ConfigError(
                    f"placement: a bundle of {group.describe()} fits no node of the cluster ({_nodes(nodes)}); "
                    f"lower {keys}, or start nodes with those resources/labels (ray start --resources/--labels), or "
                    f"remove the pin")
            if group.strategy == "STRICT_SPREAD" and len(fits) < len(group.bundles):
                raise ConfigError(
                    f"placement.{group.members[0]}.strategy=STRICT_SPREAD needs {len(group.bundles)} nodes that each hold "
                    f"a bundle of {group.describe()}, but {len(fits)} do; use SPREAD, or fewer actors, or add nodes")
            whole = _sum(group.bundles)
            if group.strategy == "STRICT_PACK" and not any(_fits(whole, n) for n in fits):
                raise ConfigError(
                    f"placement.{group.members[0]}.strategy=STRICT_PACK needs one node with {_fmt(whole)}, but no node "
                    f"has that much ({_nodes(nodes)}); use PACK, or fewer actors, or lower {keys}")
        for role, slots in self.slots.items():  # actors without a group still need a node that matches their pin
            if slots and slots[0].group is None and slots[0].labels and not any(_matches(slots[0].labels, n.labels) for n in nodes):
                raise ConfigError(f"placement.{role}.labels={dict(slots[0].labels)} match no node ({_nodes(nodes)}); "
                                  f"label nodes with ray start --labels, or remove the selector")


def plan_placement(cfg: RunConfig, with_users: bool = True) -> PlacementPlan:
    """The plan for `cfg`; `with_users=False` leaves the simulated users out (environments without a user)."""
    pc = cfg.placement
    sizes = {"learner": (cfg.learner.num_learners, cfg.learner.num_cpus, cfg.learner.num_gpus),
             "rollout": (cfg.rollout.num_workers, cfg.rollout.num_cpus, cfg.rollout.num_gpus),
             "users": (cfg.users.num_actors if with_users else 0, cfg.users.num_cpus, cfg.users.num_gpus)}
    group_of = {role: role for role in ROLES}
    strategy_of = {role: getattr(pc, role).strategy for role in ROLES}
    per_bundle = dict.fromkeys(ROLES, 1)  # actors of the role per bundle
    if pc.mode == "colocated":
        group_of.update(learner=POLICY, rollout=POLICY)
        strategy_of[POLICY] = pc.learner.strategy
        per_bundle["rollout"] = cfg.rollout.num_workers // cfg.learner.num_learners  # RunConfig checks that it divides
    slots = {role: tuple(Slot(role, i, cpus, gpus, dict(getattr(pc, role).resources), dict(getattr(pc, role).labels),
                              group_of[role], i // per_bundle[role]) for i in range(n))
             for role, (n, cpus, gpus) in sizes.items() if n > 0}

    groups: dict[str, GroupPlan] = {}
    for key in dict.fromkeys(group_of.values()):
        members = tuple(role for role in slots if group_of[role] == key)
        if not members:
            continue
        count = max(s.bundle for role in members for s in slots[role]) + 1
        bundles: list[dict[str, float]] = [{} for _ in range(count)]
        labels: list[dict[str, str]] = [{} for _ in range(count)]
        for slot in (s for role in members for s in slots[role]):
            bundles[slot.bundle] = _sum([bundles[slot.bundle], slot.request])
            labels[slot.bundle].update(slot.labels)
        if bundles[0]:
            groups[key] = GroupPlan(key, strategy_of[key], tuple(bundles), tuple(labels), members)
        else:  # Ray rejects empty bundles; actors that request nothing need no reservation
            slots.update({role: tuple(replace(s, group=None) for s in slots[role]) for role in members})
    return PlacementPlan(pc.mode, groups, slots)


def matches_selector(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether node `labels` satisfy a Ray label selector (`value`, `!value`, `in(a,b)`, `!in(a,b)`)."""
    return _matches(selector, labels)


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    for key, want in selector.items():
        have = labels.get(key)
        negate = want.startswith("!")
        want = want[1:] if negate else want
        options = [w.strip() for w in want[3:-1].split(",")] if want.startswith("in(") and want.endswith(")") else [want]
        if (have in options) == negate:
            return False
    return True


def _fits(bundle: Mapping[str, float], node: Node) -> bool:
    return all(node.resources.get(name, 0.0) + 1e-9 >= amount for name, amount in bundle.items())


def _sum(bundles: Iterable[Mapping[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for bundle in bundles:
        for name, amount in bundle.items():
            out[name] = out.get(name, 0.0) + amount
    return _nonzero(out)


def _nonzero(bundle: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in bundle.items() if v}


def _fmt(mapping: Mapping[str, object]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" if isinstance(v, float) else f"{k}: {v}" for k, v in mapping.items()) + "}"


def _keys(members: Sequence[str]) -> str:
    return " / ".join(f"{m}.num_cpus, {m}.num_gpus, placement.{m}.resources" for m in members)


def _nodes(nodes: Sequence[Node]) -> str:
    shown = [f"node {n.node_id[:8]} {_fmt({k: v for k, v in n.resources.items() if not internal_resource(k)})}"
             + (f" labels {_fmt({k: v for k, v in n.labels.items() if not k.startswith('ray.io/')})}" if n.labels else "")
             for n in nodes[:8]]
    return "; ".join(shown) + (f"; and {len(nodes) - 8} more" if len(nodes) > 8 else "") if nodes else "no alive nodes"


def internal_resource(resource: str) -> bool:
    """Ray's own bookkeeping resources, left out of messages."""
    return resource.startswith("node:") or resource in ("memory", "object_store_memory") or "_group_" in resource
