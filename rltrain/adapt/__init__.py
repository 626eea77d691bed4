"""Test-time adaptation (spec §5; docs/adaptation.md): per-session adaptation vectors δ and dynamics grounding.

Layers inside the package, bottom to top: `vector`, `sessions`, `masking` (pure torch, used by both engines);
`dynamics` (environment level: exploration env, summaries, consolidation, storage, prompt block); `runner` (agent
level: session-bound engine, grounded env, exploration and study cells); `command` (`rltrain adapt`).
"""

from __future__ import annotations

import argparse

from rltrain.adapt.vector import AdaptConfig, AdaptState

__all__ = ["AdaptConfig", "AdaptState", "add_command"]


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `rltrain adapt` (the command module loads only here, so the engines' import of `vector` stays light)."""
    from rltrain.adapt.command import add_command as add

    add(subparsers)
