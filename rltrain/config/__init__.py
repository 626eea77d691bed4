"""Typed, validated configuration: one frozen dataclass per role and per algorithm, composed in `RunConfig`.

To add a setting, add a field with an attribute docstring to the section it belongs to, and read it
where it is used; `tests/config/test_examples.py` fails on fields nobody reads in the shipped configs.
"""

from rltrain.config.loader import ConfigError, apply_overrides, describe, to_dict
from rltrain.config.run import RunConfig, load_config

__all__ = ["ConfigError", "RunConfig", "apply_overrides", "describe", "load_config", "to_dict"]
