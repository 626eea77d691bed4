"""What every role shares: its start-up (torch threads, output to the run's role log) and its heartbeat."""

from __future__ import annotations

import os
from typing import Any

import ray
import torch

from rltrain.console import init_role_output
from rltrain.watchdog import Heartbeat, enable_stack_signal

HEARTBEAT_GROUP = "heartbeat"
"""The concurrency group (its own thread) that answers `Role.heartbeat` while the role's methods run or block."""


def init_role(role: str, threads: int) -> Heartbeat:
    """Set torch/OpenMP threads explicitly and route the role's output (`rltrain.console.init_role_output`):
    by default into `runs/<name>/logs/<role>.log`, with `--verbose` also to the console. Returns the role's heartbeat.

    Ray sets OMP_NUM_THREADS to an actor's num_cpus, which leaves torch with 1 thread even when the role
    was meant to use both cores (PLATFORM.md, "Threads inside actors").
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    init_role_output(role)
    enable_stack_signal()  # the watchdog's fallback where py-spy may not attach, in every role
    return Heartbeat(role)


class Role:
    """Base of every actor class: `beat` is set in `__init__` (`init_role`), and the watchdog reads it through
    `heartbeat`, which runs on the actor's `HEARTBEAT_GROUP` thread. Create the actors with `remote_role`."""

    beat: Heartbeat

    @ray.method(concurrency_group=HEARTBEAT_GROUP)
    def heartbeat(self) -> dict[str, Any]:
        """The role's phase, seconds in it, units of progress and seconds since the last (`Heartbeat.report`)."""
        return self.beat.report()


def remote_role(cls: type[Role]) -> Any:
    """`ray.remote(cls)` with the heartbeat's own thread (Ray refuses a method whose concurrency group the actor
    class does not declare, and `.options()` cannot declare one)."""
    return ray.remote(concurrency_groups={HEARTBEAT_GROUP: 1})(cls)


def torch_threads() -> int:
    """The role's torch thread count (checked by tests)."""
    return torch.get_num_threads()
