"""Learning algorithms, registered by name. Import each plug-in module here.

To add one: write `<name>.py` with an `Algorithm` subclass decorated by `@ALGORITHMS.register("<name>")`,
add its config dataclass under `rltrain/config/`, and extend `build_algorithm` with the config it takes.
"""

from __future__ import annotations

from rltrain.algorithms import grpo, latro  # noqa: F401  (registers "grpo", "latro")
from rltrain.algorithms.base import ALGORITHMS, Algorithm, LossInputs
from rltrain.config.run import AlgorithmConfig

__all__ = ["ALGORITHMS", "Algorithm", "LossInputs", "build_algorithm"]


def build_algorithm(cfg: AlgorithmConfig) -> Algorithm:
    """The configured algorithm with its own config section (`algorithm.<name>`)."""
    cls = ALGORITHMS.get(cfg.name)
    return cls(getattr(cfg, cfg.name))
