"""Tool-call parsers, named as vLLM's `--tool-call-parser`, so that serving and training parse alike.

A parser turns one assistant message into the calls it holds, in order, plus the parts that were meant as a
call but cannot be read (SpecTool's IFE, spec §6.3). Registered parsers (`PARSERS`):

- `hermes`: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` tags only (vLLM `hermes`; Qwen2.5,
  Hermes, the canonical template `rltrain/tools/templates/chatml_tools.jinja`).
- `llama3_json`: a bare JSON object (or a list of them, or several separated by `;`) that starts the message,
  with `"parameters"` or `"arguments"` (vLLM `llama3_json`).
- `permissive`: everything above, plus JSON objects or lists anywhere in the text, in a ```json code fence or
  bare. Qwen2.5-Coder-0.5B/1.5B-Instruct write their calls this way (PLATFORM.md, issue 12: 0 of its calls were
  recognised by a tags-only parser). The default (`default_parser`).

Rules shared by all three (docs/tools.md):
- Inside `<tool_call>` tags the text is meant as a call: a valid object is a call even when it names a tool that
  was not offered (the env's `unoffered_tool` rule then applies); broken JSON, a missing name or a non-object
  `arguments` is IFE with a named detail. An opening tag without a closing one is IFE too.
- Outside tags (bare JSON, code fences) an object is a call only if it names an OFFERED tool and carries
  `arguments` (an object, or a JSON string of one); any other JSON stays text. A fenced or bare block that names
  an offered tool and says "arguments" but does not decode is IFE.
- A call's `arguments` may be a JSON-encoded string (some templates emit it so); it is decoded.
- Calls are numbered in the order they appear; `call_id` is `call_<turn>_<index>`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from rltrain.registry import Registry
from rltrain.tools.base import ToolCall


@dataclass(frozen=True)
class ParseError:
    """A part of a message meant as a call that cannot be read (IFE).

    Attributes:
        format: where it was found ("tag", "fence", "json").
        detail: what was wrong, for the observation and the record.
        raw: the text of that part.
    """

    format: str
    detail: str
    raw: str = ""


@dataclass(frozen=True)
class ParsedMessage:
    """One assistant message, parsed: its calls in order, its unreadable call attempts, and the text around them.

    `formats[i]` is where call i was found: "tag" (`<tool_call>`), "fence" (a code fence) or "json" (bare JSON).
    """

    calls: tuple[ToolCall, ...] = ()
    formats: tuple[str, ...] = ()
    errors: tuple[ParseError, ...] = ()
    text: str = ""

    @property
    def has_call(self) -> bool:
        return bool(self.calls)

    @property
    def meant_as_call(self) -> bool:
        """The message holds a call or an unreadable attempt at one (otherwise it is plain text)."""
        return bool(self.calls or self.errors)


Parser = Callable[..., ParsedMessage]
"""`parser(text, offered, turn=0) -> ParsedMessage`."""
PARSERS: Registry[Parser] = Registry("tool-call parser")

_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n(.*?)(?:```|$)", re.DOTALL)
_DECODER = json.JSONDecoder()
_NAME_KEY = re.compile(r'\{\s*"name"')


def _as_call(obj: Any, offered: Collection[str], *, explicit: bool, keys: tuple[str, ...] = ("arguments",)
             ) -> tuple[str, dict[str, Any]] | str | None:
    """(name, arguments) for a call; a detail string for an IFE; None for JSON that is not a call (stays text).

    `explicit`: the object sits inside `<tool_call>` tags, so it was meant as a call whatever it names.
    """
    if not isinstance(obj, dict):
        return f"a tool call must be a JSON object, got {type(obj).__name__}" if explicit else None
    if "function" in obj and isinstance(obj["function"], dict) and "name" not in obj:  # OpenAI's {"function": {...}}
        obj = obj["function"]
    name = obj.get("name")
    key = next((k for k in keys if k in obj), None)
    if not explicit and (not isinstance(name, str) or name not in offered or key is None):
        return None
    if not isinstance(name, str) or not name:
        return 'the tool call has no "name" string'
    if key is None:
        return f'the call to {name!r} has no "{keys[0]}" object'
    arguments = obj[key]
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as err:
            return f"the arguments of {name!r} are a string that is not JSON ({err.msg} at char {err.pos})"
    if not isinstance(arguments, dict):
        return f'the "{key}" of {name!r} must be a JSON object, got {type(arguments).__name__}'
    return name, arguments


def _looks_like_call(text: str, offered: Collection[str]) -> bool:
    """Undecodable text that was still meant as a call: it names an offered tool and says "arguments"/"parameters"."""
    return ('"arguments"' in text or '"parameters"' in text) and any(f'"{name}"' in text for name in offered)


class _Builder:
    """Collects calls and errors in message order."""

    def __init__(self, offered: Collection[str], turn: int) -> None:
        self.offered, self.turn = offered, turn
        self.found: list[tuple[int, ToolCall | ParseError, str]] = []

    def add(self, obj: Any, raw: str, fmt: str, pos: int, *, explicit: bool, keys: tuple[str, ...] = ("arguments",)) -> bool:
        """Add one decoded object (or each object of a list); True if anything was added."""
        items = obj if isinstance(obj, list) and obj else [obj]
        outcomes = [_as_call(item, self.offered, explicit=explicit, keys=keys) for item in items]
        if all(o is None for o in outcomes):
            return False  # each entry of a list is judged on its own; JSON that is no call stays text
        for k, outcome in enumerate(outcomes):
            if isinstance(outcome, str):
                self.found.append((pos + k, ParseError(fmt, outcome, raw), fmt))
            elif outcome is not None:
                self.found.append((pos + k, ToolCall(outcome[0], outcome[1], raw=raw), fmt))
        return True

    def error(self, fmt: str, detail: str, raw: str, pos: int) -> None:
        self.found.append((pos, ParseError(fmt, detail, raw), fmt))

    def build(self, text: str) -> ParsedMessage:
        self.found.sort(key=lambda f: f[0])
        calls, formats, errors = [], [], []
        for _, item, fmt in self.found:
            if isinstance(item, ToolCall):
                calls.append(ToolCall(item.name, item.arguments, f"call_{self.turn}_{len(calls)}", item.raw))
                formats.append(fmt)
            else:
                errors.append(item)
        return ParsedMessage(tuple(calls), tuple(formats), tuple(errors), text)


def _decode_tag(builder: _Builder, body: str, raw: str, pos: int, closed: bool) -> None:
    if not closed:
        builder.error("tag", "a <tool_call> tag is not closed with </tool_call>", raw, pos)
        return
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as err:
        builder.error("tag", f"the <tool_call> block is not valid JSON ({err.msg} at char {err.pos})", raw, pos)
        return
    builder.add(obj, raw, "tag", pos, explicit=True)


def _tags(text: str, builder: _Builder) -> list[tuple[int, int]]:
    """Parse every `<tool_call>` block; return the spans they cover."""
    spans = []
    for m in _TAG.finditer(text):
        closed = m.group(0).endswith("</tool_call>")
        _decode_tag(builder, m.group(1).strip(), m.group(0), m.start(), closed)
        spans.append(m.span())
    return spans


def _json_values(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int, Any]]:
    """Every JSON object or list that decodes at a `{` or `[` in text[start:end], outermost only."""
    end = len(text) if end is None else end
    out, i = [], start
    while i < end:
        if text[i] in "{[":
            try:
                value, stop = _DECODER.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            if stop <= end:
                out.append((i, stop, value))
                i = stop
                continue
        i += 1
    return out


def _inside(pos: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= pos < b for a, b in spans)


@PARSERS.register("hermes")
def parse_hermes(text: str, offered: Collection[str], turn: int = 0) -> ParsedMessage:
    """`<tool_call>` tags only; everything else is text."""
    builder = _Builder(offered, turn)
    _tags(text, builder)
    return builder.build(text)


@PARSERS.register("llama3_json")
def parse_llama3_json(text: str, offered: Collection[str], turn: int = 0) -> ParsedMessage:
    """A message that starts with a JSON call object (or several, `;`-separated, or a list); `parameters` or `arguments`."""
    builder = _Builder(offered, turn)
    body = text.strip().removeprefix("<|python_tag|>").lstrip()
    offset = len(text) - len(text.lstrip())
    if body[:1] in "{[":
        for pos, _stop, value in _json_values(body):
            if not builder.add(value, body[pos:_stop], "json", offset + pos, explicit=False, keys=("parameters", "arguments")):
                break
        if not builder.found and _looks_like_call(body, offered):
            builder.error("json", "the message starts like a JSON tool call but is not valid JSON", body, offset)
    return builder.build(text)


@PARSERS.register("permissive")
def parse_permissive(text: str, offered: Collection[str], turn: int = 0) -> ParsedMessage:
    """Tags, code fences and bare JSON (objects or lists) anywhere in the message, in the order they appear."""
    builder = _Builder(offered, turn)
    spans = _tags(text, builder)
    for m in _FENCE.finditer(text):
        if _inside(m.start(), spans):
            continue
        spans.append(m.span())
        body, values = m.group(2), _json_values(text, m.start(2), m.end(2))
        added = [builder.add(v, text[a:b], "fence", a, explicit=False) for a, b, v in values]
        if not any(added) and _looks_like_call(body, offered):
            builder.error("fence", "the code fence names a tool but its JSON does not decode", m.group(0), m.start())
    decoded = [(a, b, v) for a, b, v in _json_values(text) if not _inside(a, spans)]
    for a, b, value in decoded:
        builder.add(value, text[a:b], "json", a, explicit=False)
    start = _NAME_KEY.search(text)
    if not builder.found and start and not _inside(start.start(), spans + [(a, b) for a, b, _ in decoded]) \
            and _looks_like_call(text, offered):
        builder.error("json", "the message holds a JSON tool call that does not decode", text, 0)
    return builder.build(text)


def default_parser(chat_template: str | None) -> str:
    """The parser for a model, from its chat template: `llama3_json` for Llama-3-style JSON calls, else `permissive`.

    `permissive` reads every form `hermes` reads, and the bare or fenced JSON that Qwen2.5-Coder writes.
    """
    template = chat_template or ""
    if "<|python_tag|>" in template or '"parameters": ' in template:
        return "llama3_json"
    return "permissive"


def check_parser(name: str) -> None:
    """Raise ConfigError unless `name` is "auto" or a registered parser (key `env.tool_parser`)."""
    if name != "auto" and name not in PARSERS:
        from rltrain.config.loader import ConfigError

        raise ConfigError(f"env.tool_parser={name!r} is not a tool-call parser; choose auto or one of {', '.join(PARSERS)}")


def parse_calls(text: str, offered: Collection[str], parser: str = "permissive", turn: int = 0) -> ParsedMessage:
    """Parse `text` with the named parser (`PARSERS`); `offered` are the tool names the episode offers."""
    return PARSERS.get(parser)(text, offered, turn)

