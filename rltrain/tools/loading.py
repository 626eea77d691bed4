"""Tools named in a config: a registered name (`TOOLS`) or a `module:Class` path to a `Tool` subclass."""

from __future__ import annotations

import importlib

from rltrain.tools.base import TOOLS, Tool


def load_tool(spec: str) -> Tool:
    """An instance of the tool `spec` names; a wrong name says what to write instead (key `env.tools`).

    >>> load_tool("rltrain.tools.interact:InteractTool").name
    'interact_with_env'
    """
    from rltrain.config.loader import ConfigError

    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"env.tools entry {spec!r} cannot be imported ({err}); write module.path:ClassName "
                              f"with the module on PYTHONPATH") from err
    else:
        try:
            cls = TOOLS.get(spec)
        except KeyError as err:
            raise ConfigError(f"env.tools entry {spec!r}: {err.args[0]}; or write module.path:ClassName") from err
    if not (isinstance(cls, type) and issubclass(cls, Tool)):
        raise ConfigError(f"env.tools entry {spec!r} is not a subclass of rltrain.tools.Tool")
    if not getattr(cls, "name", ""):
        raise ConfigError(f"env.tools entry {spec!r}: {cls.__name__} must set the class attribute `name`")
    return cls()


def load_tools(specs: tuple[str, ...] | list[str]) -> list[Tool]:
    """`load_tool` for each entry; two tools with one name are an error."""
    tools = [load_tool(spec) for spec in specs]
    names = [t.name for t in tools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        from rltrain.config.loader import ConfigError

        raise ConfigError(f"env.tools names tool(s) {', '.join(duplicates)} twice; list each once")
    return tools
