"""YAML + dotted overrides -> frozen, validated config dataclasses.

Every config section is a frozen dataclass whose fields carry one attribute docstring each. This module
turns nested dicts into those dataclasses with strict checking: unknown keys, wrong types and bad choices
raise `ConfigError` naming the dotted key and the fix. It also reads the attribute docstrings back for
`rltrain train --help-config`, so each field is documented exactly once, in its dataclass.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from rltrain.errors import ConfigError as ConfigError  # re-exported: defined with the other errors, imported from here

T = TypeVar("T")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error for a missing file or malformed YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist. Pass a YAML file, e.g. launch/configs/quickstart.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections (model:, rollout:, ...), got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides; values are parsed as YAML scalars (`1e-6`, `true`, `[a, b]`)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} is not of the form section.key=value, e.g. learner.lr=1e-6")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({err})") from err
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is a value, not a section")
            node = child
        node[leaf] = value
    return data


def build(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass `cls` from a mapping, checking keys and types recursively."""
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping of keys for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(_key(where, u) for u in unknown)}; valid keys in {where or 'the top level'} are: "
            f"{', '.join(sorted(fields))}"
        )
    values = {name: _convert(hints[name], data[name], _key(where, name)) for name in fields if name in data}
    try:
        built = cls(**values)
    except TypeError as err:  # a required field without default is missing
        raise ConfigError(f"{where or cls.__name__}: {err}") from err
    # Not a field (to_dict, --help-config and resume checks stay as they are); kept by pickling, not by replace().
    object.__setattr__(built, _GIVEN, frozenset(data))
    return built


_GIVEN = "_given_keys"


def given(section: Any, key: str) -> bool:
    """Whether the YAML file or an override set `key` of this section built by `build`, rather than leaving the
    default: a default that is unsafe for some runs (`users.backend: rules` for a judged gym) must be chosen
    explicitly. False for a section built in code.

    >>> from rltrain.config import load_config
    >>> cfg = load_config(None, ["users.backend=rules"])
    >>> given(cfg.users, "backend"), given(cfg.users, "model"), given(load_config(None).users, "backend")
    (True, False, False)
    """
    return key in getattr(section, _GIVEN, frozenset())


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(option, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}={value!r} matches none of {tp}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}={value!r} is not a valid choice; use one of: {', '.join(map(repr, choices))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        (item,) = get_args(tp)[:1]
        return tuple(_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "1e-6" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(tp, type) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{key} must be of type {getattr(tp, '__name__', tp)}, got {value!r} ({type(value).__name__})")


def check(condition: bool, message: str) -> None:
    """Raise `ConfigError(message)` unless `condition`: the one way config validators reject values."""
    if not condition:
        raise ConfigError(message)


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass, read from its source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant):
                docs[node.target.id] = inspect.cleandoc(str(nxt.value.value))
    return docs


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, doc) for every field of a config tree, for `--help-config`."""
    rows = []
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        key = _key(prefix, f.name)
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            rows.extend(describe(hint, key))
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        rows.append((key, default, docs.get(f.name, "")))
    return rows


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML-safe dict of a config tree (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))
