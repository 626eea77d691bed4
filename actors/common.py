"""What every role does on start: pin its torch threads and name itself in logs."""

from __future__ import annotations

import logging
import os

import torch


def init_role(role: str, threads: int) -> None:
    """Set torch/OpenMP threads explicitly and configure logging with the role's name.

    Ray sets OMP_NUM_THREADS to an actor's num_cpus, which leaves torch with 1 thread even when the role
    was meant to use both cores (PLATFORM.md, "Threads inside actors").
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {role} %(levelname)s %(name)s: %(message)s", force=True)


def torch_threads() -> int:
    """The role's torch thread count (checked by tests)."""
    return torch.get_num_threads()
