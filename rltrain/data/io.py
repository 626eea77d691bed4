"""Reading and writing rows: JSON Lines, a JSON list, or Parquet (pyarrow), chosen by the file's suffix."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

SUFFIXES = (".jsonl", ".json", ".parquet")


def _suffix(path: Path) -> str:
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{path}: unknown file type {path.suffix!r}; name it *.jsonl, *.json or *.parquet")
    return path.suffix


def iter_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of `path`, one dict each (a .jsonl file is streamed)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as err:
                        raise ValueError(f"{path}:{n} is not JSON ({err.msg}); every line of a .jsonl file is one object") from err
    elif suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ValueError(f"{path}: a .json data file must hold a list of rows, got {type(data).__name__}")
        yield from data
    else:
        import pyarrow.parquet as pq

        yield from pq.read_table(path).to_pylist()


FREE_FORM_KEYS = ("arguments", "parameters")
"""Keys whose values are free-form objects (a call's arguments, a tool's JSON schema). Parquet stores them as JSON
strings: a column of objects with differing keys would become one struct with the union of keys, and the missing
ones would read back as null (a lossy round trip). The converters decode them (`formats._arguments`)."""


def _json_free_form(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json.dumps(v, ensure_ascii=False) if k in FREE_FORM_KEYS and isinstance(v, dict)
                else _json_free_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_free_form(v) for v in value]
    return value


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    return list(iter_rows(path))


def write_rows(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write `rows` to `path` (format by suffix, parent folders created); returns the row count."""
    path = Path(path)
    suffix = _suffix(path)
    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([_json_free_form(row) for row in rows]), path)
    return len(rows)
