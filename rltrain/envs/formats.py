"""formats: a warehouse tool env whose argument and observation formats depart from common conventions, and whose
tools have side effects the agent cannot guess (issue 18; the test bed of test-time adaptation, spec §5).

Formats come from a seeded grammar: a format is one choice per axis,
- key style: how argument names are written (plain `item`, `ITEM-NAME`, `@item`, `meti` reversed, `item!`);
- number style: how quantities are written (plain `"31"`, `0x1f`, `~31~`, `31u`, `+31`, `q31`);
- item style: how item names are written (plain `apple`, `APPLE`, `elppa`, `item:apple`, `apple.`);
- observation style: how the warehouse answers (`||apple=3||`, `<apple|3>`, `apple<-3`).
All 5·6·5·3 = 450 formats are shuffled once (seed 0); a fixed quarter is held out for the test split, so test tasks
use formats no train task used. `unusual` (env.kwargs, 0-3, default 3) picks formats with that many argument axes
off the plain convention: the second difficulty knob. Every tool's description documents its format: a careful agent can comply, a
model that writes conventional JSON (`{"item": "apple", "qty": 3}`) fails.

Dynamics (hidden, by level): level 0 none; level 1 `add` puts units in a pending area that only `commit` moves into
stock; level 2 also charges one extra unit per `take` (a handling fee). State text (`state_text`) shows stock and
pending, which is what exploration records.

Tasks: reach an exact stock of one item, then reply `DONE` in plain text. Reward 1 if the stock is right at DONE,
else 0. A wrongly formatted value is a `ToolError` of kind "bad_format" (returned to the agent, the episode goes
on); wrong keys and types are the SpecTool patterns IAN/IAT, labelled by `rewards.toolcall` from the offered
schemas (`task.data["tools"]`). Difficulty: `level` (env.kwargs) picks the dynamics and `unusual` the number of
unconventional argument axes; level 0 with `unusual` 0 or 1 is meant as the setting where a small base agent
succeeds sometimes (measure it: docs/adaptation.md).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rltrain.envs.base import ENVIRONMENTS, Split, StepResult, TextEnv
from rltrain.tools.base import Tool, ToolError, ToolResult
from rltrain.types import Task

ITEMS = ("apple", "bolt", "cable", "drill", "fuse", "gear", "hinge", "lamp")

KEY_STYLES: dict[str, tuple[Callable[[str], str], str]] = {
    "plain": (lambda k: k, "argument names are as listed"),
    "upper_dash": (lambda k: k.upper().replace("_", "-"), "argument names are upper case with dashes (ITEM-NAME)"),
    "at_prefix": (lambda k: "@" + k, "argument names start with @ (@item)"),
    "reversed": (lambda k: k[::-1], "argument names are spelled backwards (item -> meti)"),
    "bang": (lambda k: k + "!", "argument names end with ! (item!)"),
}
NUMBER_STYLES: dict[str, tuple[Callable[[int], str], str, str]] = {
    "plain": (str, r"\d+", "quantities are integers (31)"),
    "hex": (lambda n: f"0x{n:x}", r"0x[0-9a-f]+", "quantities are lower-case hexadecimal with 0x (31 -> 0x1f)"),
    "tilde": (lambda n: f"~{n}~", r"~\d+~", "quantities are wrapped in tildes (31 -> ~31~)"),
    "unit": (lambda n: f"{n}u", r"\d+u", "quantities end with u (31 -> 31u)"),
    "plus": (lambda n: f"+{n}", r"\+\d+", "quantities carry a plus sign (31 -> +31)"),
    "q_prefix": (lambda n: f"q{n}", r"q\d+", "quantities start with q (31 -> q31)"),
}
ITEM_STYLES: dict[str, tuple[Callable[[str], str], str]] = {
    "plain": (lambda s: s, "item names are lower case (apple)"),
    "upper": (str.upper, "item names are upper case (APPLE)"),
    "reversed": (lambda s: s[::-1], "item names are spelled backwards (apple -> elppa)"),
    "prefixed": (lambda s: "item:" + s, "item names start with item: (item:apple)"),
    "dot": (lambda s: s + ".", "item names end with a dot (apple.)"),
}
OBS_STYLES: dict[str, Callable[[str, int], str]] = {
    "pipes": lambda item, n: f"||{item}={n}||",
    "angle": lambda item, n: f"<{item}|{n}>",
    "arrow": lambda item, n: f"{item}<-{n}",
}


@dataclass(frozen=True)
class Format:
    key: str
    number: str
    item: str
    obs: str

    @property
    def name(self) -> str:
        return f"{self.key}/{self.number}/{self.item}/{self.obs}"

    @property
    def unusual(self) -> int:
        """How many of the argument axes (key, number, item) depart from the plain convention."""
        return sum(style != "plain" for style in (self.key, self.number, self.item))

    def k(self, key: str) -> str:
        return KEY_STYLES[self.key][0](key)

    def n(self, value: int) -> str:
        return NUMBER_STYLES[self.number][0](value)

    def json_n(self, value: int) -> int | str:
        """A quantity as a call's argument: the JSON integer in the plain format, else the formatted string."""
        return value if self.number == "plain" else self.n(value)

    def i(self, item: str) -> str:
        return ITEM_STYLES[self.item][0](item)

    def parse_n(self, text: Any) -> int:
        _, pattern, doc = NUMBER_STYLES[self.number]
        if self.number == "plain" and isinstance(text, int) and not isinstance(text, bool) and text >= 0:
            return text  # the conventional format is the JSON integer (the schema says so)
        if not isinstance(text, str) or not re.fullmatch(pattern, text.strip()):
            raise ToolError(f"bad quantity {text!r}: {doc}", kind="bad_format")
        digits = re.sub(r"[^0-9a-fx]", "", text.strip())
        return int(digits, 16) if self.number == "hex" else int(re.sub(r"\D", "", digits))

    def parse_i(self, text: Any) -> str:
        for item in ITEMS:
            if text == self.i(item):
                return item
        raise ToolError(f"bad item {text!r}: {ITEM_STYLES[self.item][1]}; known items: "
                        f"{', '.join(self.i(x) for x in ITEMS)}", kind="bad_format")

    def doc(self) -> str:
        return "; ".join([KEY_STYLES[self.key][1], NUMBER_STYLES[self.number][2], ITEM_STYLES[self.item][1]])


def all_formats() -> list[Format]:
    """Every format of the grammar, in a fixed shuffled order (seed 0)."""
    formats = [Format(k, n, i, o) for k in KEY_STYLES for n in NUMBER_STYLES for i in ITEM_STYLES for o in OBS_STYLES]
    random.Random(0).shuffle(formats)
    return formats


def split_formats(split: Split) -> list[Format]:
    """Train formats (three quarters) or the held-out test quarter."""
    formats = all_formats()
    cut = len(formats) * 3 // 4
    return formats[:cut] if split == "train" else formats[cut:]


class _WarehouseTool(Tool):
    """Base of the warehouse tools: the schema is rendered in the episode's format (instances, not classes)."""

    validate_arguments = False  # the env names format errors itself; SpecTool labels keys and types from the schema
    op: str = ""
    keys: tuple[str, ...] = ()
    summary: str = ""

    def __init__(self, fmt: Format) -> None:
        self.fmt = fmt
        self.name = self.op  # type: ignore[misc]
        self.description = f"{self.summary} Format: {fmt.doc()}."  # type: ignore[misc]
        props = {fmt.k(key): {"type": "integer" if key == "qty" and fmt.number == "plain" else "string",
                              "description": key} for key in self.keys}
        self.parameters = {"type": "object", "properties": props, "required": list(props)}  # type: ignore[misc]

    def args(self, arguments: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key in self.keys:
            written = self.fmt.k(key)
            if written not in arguments:
                raise ToolError(f"missing argument {written!r} ({KEY_STYLES[self.fmt.key][1]})", kind="bad_format")
            out[key] = arguments[written]
        return out

    async def execute(self, arguments: dict[str, Any], episode_state: Any) -> ToolResult:
        env: FormatsEnv = episode_state
        args = self.args(arguments)
        return ToolResult(observation=env.apply(self.op, args))


class AddTool(_WarehouseTool):
    op, keys, summary = "add", ("item", "qty"), "Add units of an item to the warehouse."


class TakeTool(_WarehouseTool):
    op, keys, summary = "take", ("item", "qty"), "Take units of an item out of the warehouse."


class QueryTool(_WarehouseTool):
    op, keys, summary = "query", ("item",), "Show how many units of an item are in stock."


class CommitTool(_WarehouseTool):
    op, keys, summary = "commit", (), "Finish pending deliveries."


@ENVIRONMENTS.register("formats")
class FormatsEnv(TextEnv):
    """Warehouse with unconventional formats and hidden side effects; 0/1 reward at DONE."""

    reward_fn = "turn_rewards"
    max_turns = 8
    malformed_call = "error"  # a format env: a malformed call is feedback, not the end
    personas = (
        ("Stock Clerk", "adds and takes small amounts and checks the stock after each change"),
        ("Inventory Auditor", "queries every item and compares what was asked with what happened"),
        ("Hurried Manager", "tries big deliveries and withdrawals and watches for anything unexpected"),
    )

    def __init__(self, level: int = 0, unusual: int = 3, max_turns: int | None = None) -> None:
        if level not in (0, 1, 2):
            raise ValueError(f"env.kwargs.level={level} must be 0 (no hidden dynamics), 1 (pending adds) or 2 (+take fee)")
        if unusual not in (0, 1, 2, 3):
            raise ValueError(f"env.kwargs.unusual={unusual} must be 0-3 (argument axes off the plain convention)")
        self.level, self.unusual = level, unusual
        if max_turns is not None:
            self.max_turns = max_turns
        self.fmt = split_formats("train")[0]
        self.stock: dict[str, int] = {}
        self.pending: dict[str, int] = {}

    def tasks(self, split: Split, count: int, seed: int) -> list[Task]:
        rng = random.Random(f"formats/{split}/{seed}/{self.level}/{self.unusual}")
        formats = [f for f in split_formats(split) if f.unusual == self.unusual]
        out = []
        for n in range(count):
            fmt = rng.choice(formats)
            item = rng.choice(ITEMS)
            start = rng.randint(0, 9)
            down = self.level > 0 and start >= 2 and rng.random() < 0.5  # takes only where the dynamics matter
            target = start - rng.randint(1, start - 1) if down else start + rng.randint(1, 9)
            tools = [t.schema() for t in self._tools(fmt)]
            out.append(Task(task_id=f"formats-{split}-{self.level}-{self.unusual}-{seed}-{n}",
                            data={"format": fmt.name, "item": item, "start": start, "target": target, "tools": tools}))
        return out

    def _tools(self, fmt: Format) -> list[Tool]:
        tools: list[Tool] = [AddTool(fmt), TakeTool(fmt), QueryTool(fmt)]
        if self.level >= 1:
            tools.append(CommitTool(fmt))
        return tools

    def reset(self, task: Task) -> tuple[list[dict[str, str]], dict[str, Any]]:
        key, number, item, obs = task.data["format"].split("/")
        self.fmt = Format(key, number, item, obs)
        self.item, self.target = task.data["item"], int(task.data["target"])
        self.stock = {x: 0 for x in ITEMS}
        self.stock[self.item] = int(task.data["start"])
        self.pending = {}
        system = ("You run a warehouse through its tools. The tools use their own formats, stated in each tool's "
                  "description: follow them exactly. When the task is done, reply DONE in plain text.")
        user = (f"The warehouse holds {task.data['start']} units of {self.item}. Make it hold exactly {self.target} "
                f"units of {self.item}, then reply DONE.")
        return [{"role": "system", "content": system}, {"role": "user", "content": user}], {}

    def tools(self) -> list[Tool]:
        return self._tools(self.fmt)

    def state_text(self) -> str:
        """What exploration sees of the state: stock and pending lines in the episode's observation style."""
        show = OBS_STYLES[self.fmt.obs]
        lines = [f"stock {show(self.fmt.i(x), n)}" for x, n in self.stock.items() if n]
        lines += [f"pending {show(self.fmt.i(x), n)}" for x, n in self.pending.items() if n]
        return "\n".join(lines) or "empty"

    def apply(self, op: str, args: dict[str, Any]) -> str:
        show = OBS_STYLES[self.fmt.obs]
        if op == "commit":
            for x, n in self.pending.items():
                self.stock[x] += n
            self.pending = {}
            return "committed " + " ".join(show(self.fmt.i(x), n) for x, n in self.stock.items() if n)
        item = self.fmt.parse_i(args["item"])
        if op == "query":
            return show(self.fmt.i(item), self.stock[item])
        qty = self.fmt.parse_n(args["qty"])
        if op == "add":
            if self.level >= 1:
                self.pending[item] = self.pending.get(item, 0) + qty
            else:
                self.stock[item] += qty
            return "ok"
        cost = qty + (1 if self.level >= 2 else 0)
        if cost > self.stock[item]:
            raise ToolError(f"not enough {self.fmt.i(item)}: {show(self.fmt.i(item), self.stock[item])}", kind="tool_error")
        self.stock[item] -= cost
        return "ok"

    def step(self, action: str) -> StepResult:
        if "DONE" not in action:
            return StepResult("Use the tools, then reply DONE.")
        right = self.stock[self.item] == self.target
        return StepResult(None, reward=1.0 if right else 0.0, terminated=True,
                          info={"correct": right, "stock": self.stock[self.item], "target": self.target})


def solve(env: FormatsEnv, task: Task) -> list[tuple[str, dict[str, Any]]]:
    """The calls a solver that knows the format and the dynamics makes (for tests and SFT demonstrations)."""
    fmt = Format(*task.data["format"].split("/"))
    item, diff = task.data["item"], int(task.data["target"]) - int(task.data["start"])
    if diff > 0:
        calls = [("add", {fmt.k("item"): fmt.i(item), fmt.k("qty"): fmt.json_n(diff)})]
        return calls + ([("commit", {})] if env.level >= 1 else [])
    take = -diff - (1 if env.level >= 2 else 0)
    return [("take", {fmt.k("item"): fmt.i(item), fmt.k("qty"): fmt.json_n(take)})]  # take 0 still pays the fee
