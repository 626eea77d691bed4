"""multitool: questions that need several tools -- a table lookup, a unit conversion and a calculator.

A seeded, local environment (issue 12): the smallest real example of tool use with ground-truth call
sequences. The table (`rltrain/envs/data/multitool.json`) holds invented entities (mountains, rivers, towers,
ships, animals) whose heights, lengths and masses are stored in one unit each, so a model cannot answer from
memory. The tools (`Tool` subclasses, offered by `tools()`):

- `lookup(entity, attribute)` -> `{"entity", "attribute", "value", "unit"}` from the table;
- `convert(value, from_unit, to_unit)` -> `{"value", "from_unit", "to_unit", "result"}`; units m, km, ft, mi
  (length) and kg, t, lb (mass);
- `calculate(expression)` -> `{"expression", "result"}`; numbers, + - * / and parentheses.

Four task kinds: `convert` (one attribute in another unit), `difference` and `sum` (two entities of one
category, in another unit) and `ratio` (how many times). Each task carries its ground-truth call sequences in
`task.data["ground_truth"]` -- two for `difference` and `sum` (calculate then convert, or convert both then
calculate) -- and the offered schemas in `task.data["tools"]` (for `rewards.toolcall`). `calculate`'s
expression is not part of the ground truth (many spellings are right).

Reward: 0/1 on the final plain-text answer (`step`): the last number in the message, within 0.1 % (or 0.01)
of the true value, scores 1. A tool call that goes wrong (unknown entity, incompatible units, bad expression)
returns its error to the agent, reward 0. Train and test share the table but not the phrasing: each kind has
train templates and held-out test templates. `solve`/`solve_messages` is a scripted solver that acts only on
what the agent sees (the question and tool results); it is exact on both splits and writes SFT demonstrations.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import json
import operator
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rltrain.envs.base import ENVIRONMENTS, Split, StepResult, TextEnv
from rltrain.tools.base import Tool, ToolError, ToolResult
from rltrain.types import Task

DATA_FILE = Path(__file__).parent / "data" / "multitool.json"
SYSTEM = ("You answer questions about the entities in a private table. Use the tools: `lookup` reads a value "
          "(with its unit), `convert` changes units, `calculate` does arithmetic. When you have the result, reply "
          "in plain text with the final number and no tool call.")

# Phrasings per task kind. Entities are quoted; {attr} is the attribute, {comp} its comparative, {unit} the
# unit's name. The test templates are held out of training (new phrasings of the same kinds).
TEMPLATES: dict[str, dict[Split, list[str]]] = {
    "convert": {
        "train": ["What is the {attr} of {a} in {unit}?",
                  "Give the {attr} of {a}, expressed in {unit}.",
                  "Look up {a} and tell me its {attr} in {unit}."],
        "test": ["In {unit}, how large is the {attr} of {a}?",
                 "I need the {attr} of {a} converted to {unit}."],
    },
    "difference": {
        "train": ["How much {comp} is {a} than {b}, in {unit}?",
                  "By how many {unit} does {a} exceed {b} in {attr}?"],
        "test": ["Find the {attr} difference between {a} and {b}, in {unit}."],
    },
    "sum": {
        "train": ["What is the combined {attr} of {a} and {b} in {unit}?",
                  "Add up the {attr} of {a} and {b}; answer in {unit}."],
        "test": ["If you total the {attr} of {a} and {b}, what do you get in {unit}?"],
    },
    "ratio": {
        "train": ["How many times greater is the {attr} of {a} than that of {b}?",
                  "Divide the {attr} of {a} by the {attr} of {b}."],
        "test": ["What is the ratio of the {attr} of {a} to the {attr} of {b}?"],
    },
}
COMPARATIVE = {"height": "taller", "length": "longer", "mass": "heavier"}


@functools.cache
def table() -> dict[str, Any]:
    """The authored table: `units` (name -> dimension, factor to the base unit, words) and `entities`."""
    return json.loads(DATA_FILE.read_text())


def _entity(name: str) -> dict[str, Any] | None:
    key = " ".join(str(name).split()).casefold()
    return next((e for e in table()["entities"] if e["name"].casefold() == key), None)


def fmt(x: float) -> str:
    """A result as the tools print it: 10 significant digits, no trailing zeros (445.0 -> "445")."""
    return f"{x:.10g}"


def convert_value(value: float, from_unit: str, to_unit: str) -> float:
    units = table()["units"]
    if from_unit not in units or to_unit not in units:
        bad = from_unit if from_unit not in units else to_unit
        raise ToolError(f"unknown unit {bad!r}; use one of {', '.join(units)}", kind="bad_arguments")
    if units[from_unit]["dimension"] != units[to_unit]["dimension"]:
        raise ToolError(f"cannot convert {from_unit} ({units[from_unit]['dimension']}) to {to_unit} "
                        f"({units[to_unit]['dimension']})", kind="bad_arguments")
    return value * units[from_unit]["factor"] / units[to_unit]["factor"]


_OPS: dict[type, Callable[..., float]] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                                          ast.Div: operator.truediv, ast.USub: operator.neg, ast.UAdd: operator.pos}


def calculate_expression(expression: str) -> float:
    """Evaluate numbers, + - * / and parentheses (nothing else: no names, calls or powers)."""
    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.operand))
        raise ToolError(f"calculate accepts numbers, + - * / and parentheses only; cannot evaluate {expression!r}",
                        kind="bad_arguments")
    try:
        return walk(ast.parse(expression.replace(",", ""), mode="eval").body)
    except SyntaxError as err:
        raise ToolError(f"{expression!r} is not an arithmetic expression ({err.msg})", kind="bad_arguments") from None
    except ZeroDivisionError:
        raise ToolError(f"{expression!r} divides by zero", kind="bad_arguments") from None


def _number(arguments: dict[str, Any], key: str) -> float:
    value = arguments.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError(f"argument {key!r} must be a number, got {json.dumps(value)}", kind="bad_arguments")
    return float(value)


def _string(arguments: dict[str, Any], key: str) -> str:
    value = arguments.get(key)
    if not isinstance(value, str):
        raise ToolError(f"argument {key!r} must be a string, got {json.dumps(value)}", kind="bad_arguments")
    return value


class LookupTool(Tool):
    name = "lookup"
    description = "Read one attribute of an entity from the table; returns the value and its unit."
    parameters = {"type": "object",
                  "properties": {"entity": {"type": "string", "description": "the entity's name, e.g. Mount Arvel"},
                                 "attribute": {"type": "string", "enum": ["height", "length", "mass"]}},
                  "required": ["entity", "attribute"]}
    timeout_s = 5.0
    concurrency_safe = True

    async def execute(self, arguments: dict[str, Any], episode_state: Any) -> ToolResult:
        name, attribute = _string(arguments, "entity"), _string(arguments, "attribute")
        entity = _entity(name)
        if entity is None:
            raise ToolError(f"no entity named {name!r} in the table", kind="not_found")
        if attribute not in entity or attribute == "name":
            have = [k for k in entity if k not in ("name", "category")]
            raise ToolError(f"{entity['name']} has no attribute {attribute!r}; it has {', '.join(have)}", kind="not_found")
        value, unit = entity[attribute]
        return ToolResult(json.dumps({"entity": entity["name"], "attribute": attribute, "value": value, "unit": unit}))


class ConvertTool(Tool):
    name = "convert"
    description = "Convert a value between units of the same dimension (length: m, km, ft, mi; mass: kg, t, lb)."
    parameters = {"type": "object",
                  "properties": {"value": {"type": "number"},
                                 "from_unit": {"type": "string", "enum": ["m", "km", "ft", "mi", "kg", "t", "lb"]},
                                 "to_unit": {"type": "string", "enum": ["m", "km", "ft", "mi", "kg", "t", "lb"]}},
                  "required": ["value", "from_unit", "to_unit"]}
    timeout_s = 5.0
    concurrency_safe = True

    async def execute(self, arguments: dict[str, Any], episode_state: Any) -> ToolResult:
        value, src, dst = _number(arguments, "value"), _string(arguments, "from_unit"), _string(arguments, "to_unit")
        result = convert_value(value, src, dst)
        return ToolResult(json.dumps({"value": value, "from_unit": src, "to_unit": dst, "result": float(fmt(result))}))


class CalculateTool(Tool):
    name = "calculate"
    description = "Evaluate an arithmetic expression with numbers, + - * / and parentheses."
    parameters = {"type": "object", "properties": {"expression": {"type": "string", "description": "e.g. (4321 - 3876) / 2"}},
                  "required": ["expression"]}
    timeout_s = 5.0
    concurrency_safe = True

    async def execute(self, arguments: dict[str, Any], episode_state: Any) -> ToolResult:
        expression = _string(arguments, "expression")
        return ToolResult(json.dumps({"expression": expression, "result": float(fmt(calculate_expression(expression)))}))


TOOL_CLASSES: tuple[type[Tool], ...] = (LookupTool, ConvertTool, CalculateTool)


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def _task(kind: str, template: int, split: Split, a: dict[str, Any], b: dict[str, Any] | None, attr: str,
          unit: str | None) -> Task:
    """One task with its question, answer and ground-truth call sequences."""
    va, stored = a[attr]
    unit_word = table()["units"][unit]["words"][0] if unit else ""
    text = TEMPLATES[kind][split][template].format(a=f'"{a["name"]}"', b=f'"{b["name"]}"' if b else "", attr=attr,
                                                   comp=COMPARATIVE[attr], unit=unit_word)
    lookups = [_call("lookup", entity=a["name"], attribute=attr)]
    if b is None:
        answer = convert_value(va, stored, unit)
        truth = [[*lookups, _call("convert", value=va, from_unit=stored, to_unit=unit)]]
    else:
        vb = b[attr][0]
        lookups.append(_call("lookup", entity=b["name"], attribute=attr))
        if kind == "ratio":
            answer, truth = va / vb, [[*lookups, _call("calculate")]]
        else:
            combined = va - vb if kind == "difference" else va + vb
            answer = convert_value(combined, stored, unit)
            truth = [[*lookups, _call("calculate"), _call("convert", value=combined, from_unit=stored, to_unit=unit)],
                     [*lookups, _call("convert", value=va, from_unit=stored, to_unit=unit),
                      _call("convert", value=vb, from_unit=stored, to_unit=unit), _call("calculate")]]
    names = "-".join(e["name"].replace(" ", "") for e in (a, b) if e)
    return Task(task_id=f"mt-{split}-{kind}{template}-{names}-{attr}-{unit or 'x'}",
                data={"question": text, "kind": kind, "answer": answer, "ground_truth": truth,
                      "tools": [cls().schema() for cls in TOOL_CLASSES]})


@functools.cache
def all_tasks(split: Split) -> tuple[Task, ...]:
    """Every task of a split, in a fixed order: each template x entity (pair) x attribute x target unit."""
    units, entities = table()["units"], table()["entities"]
    out = []
    for kind, per_split in TEMPLATES.items():
        for template in range(len(per_split[split])):
            for a in entities:
                for attr in ("height", "length", "mass"):
                    if attr not in a:
                        continue
                    stored = a[attr][1]
                    targets = [u for u, spec in units.items() if spec["dimension"] == units[stored]["dimension"] and u != stored]
                    if kind == "convert":
                        out += [_task(kind, template, split, a, None, attr, u) for u in targets]
                        continue
                    for b in entities:  # ordered pairs of one category, the larger first
                        if b is a or b["category"] != a["category"] or attr not in b or b[attr][0] >= a[attr][0]:
                            continue
                        out += [_task(kind, template, split, a, b, attr, None if kind == "ratio" else u)
                                for u in (targets if kind != "ratio" else [None])]
    return tuple(out)


def answer_correct(text: str, answer: float) -> bool:
    """The last number in the text (commas as thousands separators allowed) is within 0.1 % or 0.01 of `answer`."""
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+", text)
    if not numbers:
        return False
    try:
        value = float(numbers[-1].replace(",", ""))
    except ValueError:
        return False
    return abs(value - answer) <= max(1e-3 * abs(answer), 0.01)


@ENVIRONMENTS.register("multitool")
class MultiToolEnv(TextEnv):
    """Table lookup + unit conversion + calculator; 0/1 reward on the final plain-text answer."""

    reward_fn = "turn_rewards"  # the answer turn's 0/1 is the only non-zero turn reward
    unoffered_tool = "error"
    max_turns = 8

    def __init__(self, system_prompt: str | None = SYSTEM) -> None:
        self.system_prompt = system_prompt
        self._tools = [cls() for cls in TOOL_CLASSES]
        self.task: Task | None = None

    def tools(self) -> list[Tool]:
        return list(self._tools)

    def tasks(self, split: Split, count: int, seed: int) -> list[Task]:
        """Train: `count` seeded draws with replacement. Test: the first `count` of a seeded shuffle, no repeats."""
        pool = list(all_tasks(split))
        rng = random.Random(seed)
        if split == "test":
            rng.shuffle(pool)
            return pool[:count]
        return [rng.choice(pool) for _ in range(count)]

    def reset(self, task: Task) -> tuple[list[dict[str, str]], dict[str, Any]]:
        self.task = task
        messages = [{"role": "user", "content": task.data["question"]}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages, {}

    def step(self, action: str) -> StepResult:
        """A plain-text message is the final answer: reward 1 if right, else 0; the episode ends."""
        if self.task is None:
            raise RuntimeError("MultiToolEnv.step called before reset(task)")
        right = answer_correct(action, float(self.task.data["answer"]))
        return StepResult(observation=None, reward=1.0 if right else 0.0, terminated=True, info={"correct": right})


# --- the scripted solver -------------------------------------------------------------------------------------

_KIND_WORDS = (("ratio", r"\b(times|ratio|divide)\b"), ("sum", r"\b(combined|add up|total)\b"),
               ("difference", r"\b(how much \w+er|exceed|difference)\b"))
_ATTR_WORDS = (("height", r"\b(height|tall\w*|high)\b"), ("length", r"\b(length|long\w*)\b"),
               ("mass", r"\b(mass|heav\w*|weigh\w*)\b"))


def _read_question(question: str) -> tuple[str, list[str], str, str | None]:
    """(kind, entities, attribute, target unit) from the question's words."""
    text = re.sub(r'"[^"]*"', " ", question).lower()  # entity names are not keywords
    kind = next((k for k, pattern in _KIND_WORDS if re.search(pattern, text)), "convert")
    attr = next((a for a, pattern in _ATTR_WORDS if re.search(pattern, text)), "height")
    unit = None
    for name, spec in table()["units"].items():
        if any(re.search(rf"\b{re.escape(w)}\b", text) for w in spec["words"]):
            unit = name
            break
    return kind, re.findall(r'"([^"]+)"', question), attr, unit


def _tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        if m.get("role") == "tool":
            try:
                out.append(json.loads(m["content"]))
            except (json.JSONDecodeError, TypeError):
                continue
    return out


def _tool_call_text(*calls: dict[str, Any]) -> str:
    return "\n".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in calls)


def solver_turn(messages: list[dict[str, Any]]) -> str:
    """The next assistant message of the scripted solver, from the conversation so far only (the question and the
    tool results): Hermes `<tool_call>` blocks, or the final answer as plain text."""
    question = next(m["content"] for m in messages if m["role"] == "user")
    kind, names, attr, unit = _read_question(question)
    results = _tool_results(messages)
    looked = {r["entity"].casefold(): r for r in results if "entity" in r}
    missing = [n for n in names if n.casefold() not in looked]
    if missing:  # both lookups in one message: parallel calls
        return _tool_call_text(*(_call("lookup", entity=n, attribute=attr) for n in missing))
    values = [looked[n.casefold()] for n in names]
    calcs = [r for r in results if "expression" in r]
    converts = [r for r in results if "to_unit" in r]
    if kind == "convert":
        if not converts:
            v = values[0]
            return _tool_call_text(_call("convert", value=v["value"], from_unit=v["unit"], to_unit=unit))
        return f"The {attr} of {values[0]['entity']} is {fmt(converts[-1]['result'])} {unit}."
    big, small = sorted(values, key=lambda r: r["value"], reverse=True)
    op = {"ratio": "/", "sum": "+", "difference": "-"}[kind]
    if not calcs:
        return _tool_call_text(_call("calculate", expression=f"{fmt(big['value'])} {op} {fmt(small['value'])}"))
    if kind == "ratio":
        return f"The ratio is {fmt(calcs[-1]['result'])}."
    if not converts:
        return _tool_call_text(_call("convert", value=calcs[-1]["result"], from_unit=big["unit"], to_unit=unit))
    return f"The answer is {fmt(converts[-1]['result'])} {unit}."


_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


def solve_messages(env: MultiToolEnv, task: Task) -> tuple[list[dict[str, Any]], float]:
    """Play `task` with the scripted solver against the env's real tools; return the conversation (system, user,
    assistant turns with `<tool_call>` blocks, one `tool` message per call in call order, the final answer) and
    the episode's reward. The messages are an SFT cold-start demonstration; render them with the env's tool
    schemas (`[t.schema() for t in env.tools()]`) through the canonical template."""
    messages, _ = env.reset(task)
    tools = {t.name: t for t in env.tools()}
    for _ in range(env.max_turns):
        text = solver_turn(messages)
        messages.append({"role": "assistant", "content": text})
        calls = [json.loads(body) for body in _TOOL_CALL.findall(text)]
        if not calls:
            return messages, env.step(text).reward
        for call in calls:
            try:
                observation = asyncio.run(tools[call["name"]].execute(call["arguments"], env)).observation
            except ToolError as err:
                observation = f"Error ({err.kind}): {err}"
            messages.append({"role": "tool", "content": observation})
    return messages, 0.0


def solve(env: MultiToolEnv, task: Task) -> list[dict[str, Any]]:
    """The scripted solver's conversation for `task` (see `solve_messages`)."""
    return solve_messages(env, task)[0]
