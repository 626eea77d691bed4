"""Typed, validated configuration: one frozen dataclass per role and per algorithm, composed in `RunConfig`.

To add a setting, add a field with an attribute docstring to the section it belongs to, and read it where it
is used. `tests/config/test_config.py` loads every shipped config and fails on any field without a docstring.
"""

from rltrain.config.loader import ConfigError, apply_overrides, describe, to_dict
from rltrain.config.run import RunConfig, load_config

__all__ = ["ConfigError", "RunConfig", "apply_overrides", "describe", "load_config", "to_dict"]
