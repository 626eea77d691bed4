"""Where each role runs: placement groups, their strategy, colocation and node pinning.

How much one actor takes stays in its role's section (`rollout.num_cpus`/`num_gpus` per engine,
`learner.num_cpus`/`num_gpus` per rank, `users.num_cpus`/`num_gpus` per user-sim engine; 0 GPUs makes a
CPU-only role). This section only says where those actors go. `rltrain.placement.plan_placement` turns both
into Ray placement groups; `rltrain doctor` prints that plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rltrain.config.loader import check

Strategy = Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]

# Requested through num_cpus/num_gpus (and memory through nothing): a pin may not smuggle them in.
_BUILTIN_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")
_MIN_QUANTITY = 1e-4  # Ray's resource precision; a smaller request is rejected when the actor is created


@dataclass(frozen=True)
class RolePlacement:
    strategy: Strategy = "PACK"
    """How the role's actors (one placement-group bundle each) spread over nodes: PACK (as few nodes as possible),
    SPREAD (as many as possible), STRICT_PACK (all on one node, else the run fails to start), STRICT_SPREAD (each
    on its own node, else the run fails to start). In colocated mode the shared learner+rollout group uses
    placement.learner.strategy."""
    resources: dict[str, float] = field(default_factory=dict)
    """Ray custom resources each actor of this role requests, e.g. {rollout_node: 0.01}: the role then runs only
    on nodes started with that resource (`ray start --resources '{"rollout_node": 1}'`, or `resources` of a node
    type in clusters/*.yaml). A small quantity pins without limiting how many actors fit; a quantity of 1 on
    nodes declaring 1 also caps them at one actor per node."""
    labels: dict[str, str] = field(default_factory=dict)
    """Ray node label selector each actor of this role must match, e.g. {pool: rollout} or
    {ray.io/accelerator-type: H100}; nodes get labels with `ray start --labels pool=rollout`. Values take Ray's
    selector syntax too: `!value`, `in(a,b)`, `!in(a,b)`."""

    def validate(self, where: str) -> None:
        """Check the pins; `where` is the dotted key of this section, for the messages."""
        for name, amount in self.resources.items():
            check(name not in _BUILTIN_RESOURCES,
                  f"{where}.resources.{name}: {name} is not a custom resource; request it with the role's num_cpus/num_gpus "
                  f"and use placement resources only for custom ones (e.g. {{rollout_node: 0.01}})")
            check(isinstance(amount, (int, float)) and not isinstance(amount, bool) and amount >= _MIN_QUANTITY,
                  f"{where}.resources.{name}={amount!r} must be a number >= {_MIN_QUANTITY:g} (e.g. 0.01)")
        for key, value in self.labels.items():
            check(isinstance(value, str) and bool(value),
                  f"{where}.labels.{key}={value!r} must be a non-empty string (quote it in YAML, e.g. \"{value}\")")


@dataclass(frozen=True)
class PlacementConfig:
    mode: Literal["separate", "colocated"] = "separate"
    """`separate`: the learner ranks, the rollout workers and the simulated users each get their own placement
    group (and, with pins, their own nodes). `colocated`: learner rank i and rollout workers i*k .. i*k+k-1
    (k = rollout.num_workers / learner.num_learners) share one bundle, so they land on one node and, with
    fractional GPUs (learner.num_gpus=0.5, rollout.num_gpus=0.5), on one GPU, as verl's hybrid engine does.
    The simulated users always get a group of their own."""
    learner: RolePlacement = field(default_factory=RolePlacement)
    """Placement of the learner ranks (and, in colocated mode, of the shared group)."""
    rollout: RolePlacement = field(default_factory=RolePlacement)
    """Placement of the rollout workers."""
    users: RolePlacement = field(default_factory=RolePlacement)
    """Placement of the simulated-user actors."""
    timeout_s: float = 120.0
    """Seconds to wait for a role's placement group to be reserved before the run stops with the reason (the
    cluster lacks the resources, the pinned resources or labels; an autoscaler adds nodes meanwhile)."""

    def __post_init__(self) -> None:
        for role in ("learner", "rollout", "users"):
            getattr(self, role).validate(f"placement.{role}")
        check(self.timeout_s > 0, f"placement.timeout_s={self.timeout_s} must be > 0 (e.g. 120)")
        if self.mode == "colocated":
            check(self.rollout.strategy == self.learner.strategy,
                  f"placement.mode=colocated puts learner ranks and rollout workers into one placement group, whose "
                  f"strategy is placement.learner.strategy={self.learner.strategy}; set placement.rollout.strategy="
                  f"{self.learner.strategy} (or leave both at the default)")
            clash = sorted(k for k in self.learner.labels.keys() & self.rollout.labels.keys()
                           if self.learner.labels[k] != self.rollout.labels[k])
            check(not clash, f"placement.mode=colocated: placement.learner.labels and placement.rollout.labels select "
                  f"different values for {', '.join(clash)}, but colocated actors share a node; make them equal")
