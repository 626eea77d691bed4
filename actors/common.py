"""What every role does on start: pin its torch threads and send its output to the run's role log."""

from __future__ import annotations

import os

import torch

from rltrain.console import init_role_output
from rltrain.watchdog import enable_stack_signal


def init_role(role: str, threads: int) -> None:
    """Set torch/OpenMP threads explicitly and route the role's output (`rltrain.console.init_role_output`):
    by default into `runs/<name>/logs/<role>.log`, with `--verbose` also to the console.

    Ray sets OMP_NUM_THREADS to an actor's num_cpus, which leaves torch with 1 thread even when the role
    was meant to use both cores (PLATFORM.md, "Threads inside actors").
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    init_role_output(role)
    enable_stack_signal()  # the watchdog's fallback where py-spy may not attach, in every role


def torch_threads() -> int:
    """The role's torch thread count (checked by tests)."""
    return torch.get_num_threads()
