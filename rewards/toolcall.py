"""SpecTool's seven tool-call error patterns (spec §6.3; arXiv 2411.13547), as deterministic labels.

The rules are stated in full, with examples, in docs/spectool.md; this docstring is their summary.

Per call (multi-label), checked in precedence order IFE > IFN > IAN > IAT > IAV > RAC:
- IFE  the text was meant as a call but cannot be parsed (`CallRecord.parse_error`). Suppresses every other label.
- IFN  the name is not one of the offered tools. Suppresses IAN, IAT, IAV (there is no schema to check against).
- IAN  an argument key that the tool's schema does not declare (top-level keys; none if the schema allows
       `additionalProperties`).
- IAT  a declared argument whose value is not of the schema's JSON type (`"5"` for an integer, 5 for a string).
- IAV  (ground truth only) an argument value that differs from the nearest ground-truth call's after type-aware
       normalisation, or an argument the ground truth specifies (or the schema requires) that is missing, unless
       the call also has IAN (the misnamed key explains the missing one).
- RAC  the same call (name and normalised arguments) made again; with ground truth, repeats up to the number of
       times the nearest sequence itself makes that call are allowed.
Per trajectory:
- IAC  (ground truth only) for some tool, the trajectory makes fewer distinct valid calls (not IFE, IFN or RAC)
       than the nearest ground-truth sequence.

Nearest ground truth: of several valid sequences, the one with the least distance
`sum over tools |agent calls - sequence calls| + #IAV + #RAC`; ties go to the first listed.

Used three ways: `spectool_metrics` (per-pattern rates for training metrics and `rltrain eval`), the registered
reward `spectool` (a shaped negative term with configurable weights, optionally added to a base reward), and
`call_feedback` (error text the agent loop may append to a call's observation; schema-only, never ground truth).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rewards.base import REWARD_FNS, RewardInput

PATTERNS = ("IFE", "IFN", "IAN", "IAT", "IAV", "RAC", "IAC")
"""The seven patterns in precedence order; IAC is the trajectory-level one."""
CALL_PATTERNS = PATTERNS[:-1]
GROUND_TRUTH_PATTERNS = ("IAV", "IAC")
"""Emitted only when the task has ground truth."""
DEFAULT_WEIGHTS = {"IFE": 0.2, "IFN": 0.2, "IAN": 0.1, "IAT": 0.1, "IAV": 0.1, "RAC": 0.05, "IAC": 0.2}
"""Penalty per occurrence for the shaped reward (`reward.kwargs.weights` overrides any of them)."""


@dataclass(frozen=True)
class CallRecord:
    """One call attempt as SpecTool sees it.

    Attributes:
        name: the function name as written; None when the attempt could not be parsed (IFE).
        arguments: the decoded argument object; None for IFE.
        raw: the text the call came from.
        parse_error: why the attempt could not be parsed (IFE); None for a parsed call.
        turn: the assistant turn the call was made in.
    """

    name: str | None
    arguments: dict[str, Any] | None = None
    raw: str = ""
    parse_error: str | None = None
    turn: int = 0


@dataclass(frozen=True)
class SpecToolReport:
    """The labels of one trajectory.

    Attributes:
        call_labels: per call, the set of patterns it shows (in `calls` order).
        call_details: per call, one sentence per label saying what was wrong.
        trajectory_labels: {"IAC"} or empty.
        ground_truth_index: which ground-truth sequence was nearest; None without ground truth.
        has_ground_truth: whether IAV and IAC were checked at all.
    """

    call_labels: tuple[frozenset[str], ...]
    call_details: tuple[tuple[str, ...], ...] = ()
    trajectory_labels: frozenset[str] = frozenset()
    ground_truth_index: int | None = None
    has_ground_truth: bool = False
    missing_calls: tuple[str, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        """Occurrences of each pattern: calls carrying it, and 1 for IAC when the trajectory has it."""
        out = {p: sum(p in labels for labels in self.call_labels) for p in CALL_PATTERNS}
        out["IAC"] = int("IAC" in self.trajectory_labels)
        return out

    def primary(self, index: int) -> str | None:
        """The call's first label in precedence order (IFE > IFN > IAN > IAT > IAV > RAC), or None."""
        return next((p for p in CALL_PATTERNS if p in self.call_labels[index]), None)


# --- schemas -------------------------------------------------------------------------------------------------

def tool_schemas(tools: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """name -> JSON schema of the arguments, from `Tool` instances or classes, OpenAI-style function schemas
    (`{"type": "function", "function": {...}}`) or plain `{"name": ..., "parameters": ...}` dicts."""
    out: dict[str, dict[str, Any]] = {}
    for tool in tools:
        if isinstance(tool, Mapping):
            spec = tool.get("function", tool)
            name, params = spec.get("name"), spec.get("parameters") or {}
        else:
            name, params = getattr(tool, "name", None), getattr(tool, "parameters", None) or {}
        if not isinstance(name, str):
            raise ValueError(f"a tool schema has no 'name': {tool!r}; pass Tool objects or OpenAI function schemas")
        out[name] = dict(params)
    return out


def _types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    return [kind] if isinstance(kind, str) else list(kind or [])


def type_ok(value: Any, schema: Mapping[str, Any]) -> bool:
    """Whether `value` has the schema's JSON type (recursively for array items and declared object properties).

    "integer" accepts 5 and 5.0 (JSON Schema: a number with zero fractional part), never True; "number" accepts
    ints and floats, never True; a schema without "type" accepts anything.
    """
    kinds = _types(schema)
    if not kinds:
        return True
    for kind in kinds:
        if kind == "string" and isinstance(value, str):
            return True
        if kind == "boolean" and isinstance(value, bool):
            return True
        if kind == "null" and value is None:
            return True
        if isinstance(value, bool):
            continue
        if kind == "integer" and (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            return True
        if kind == "number" and isinstance(value, int | float):
            return True
        if kind == "array" and isinstance(value, list):
            items = schema.get("items") or {}
            return all(type_ok(v, items) for v in value)
        if kind == "object" and isinstance(value, dict):
            props = schema.get("properties") or {}
            return all(type_ok(v, props[k]) for k, v in value.items() if k in props)
    return False


def _as_number(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", ""))
        except ValueError:
            return _text(value)
    return value


def _text(value: str) -> str:
    return " ".join(value.split()).casefold()


def normalise(value: Any, schema: Mapping[str, Any] | None = None) -> Any:
    """The comparable form of `value` read as the schema's type (`"5"` and 5 for an integer are both 5.0).

    Numbers become floats; strings are case-folded with whitespace collapsed; "true"/"false" read as booleans
    for a boolean; a JSON string reads as an array or object where one is declared; a value that cannot be read
    as its type keeps its own normal form (so it differs from any value of the right type).
    """
    schema = schema or {}
    kinds = _types(schema)
    if "array" in kinds or "object" in kinds:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return _text(value)
        if isinstance(value, list) and "array" in kinds:
            return [normalise(v, schema.get("items")) for v in value]
        if isinstance(value, dict) and "object" in kinds:
            props = schema.get("properties") or {}
            return {k: normalise(v, props.get(k)) for k, v in value.items()}
        if "array" in kinds and not isinstance(value, list | dict):
            return [normalise(value, schema.get("items"))]  # a lone value where a list was declared
    if "integer" in kinds or "number" in kinds:
        return _as_number(value)
    if "boolean" in kinds and isinstance(value, str) and _text(value) in ("true", "false"):
        return _text(value) == "true"
    if "string" in kinds and not isinstance(value, str | list | dict) and value is not None:
        if isinstance(value, bool):
            return str(value).lower()
        return _text(str(int(value)) if isinstance(value, float) and value.is_integer() else str(value))
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    return value


def same(a: Any, b: Any) -> bool:
    """Equality of normalised values: floats within 1e-9 relative, booleans never equal to numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# --- labelling -----------------------------------------------------------------------------------------------

def _schema_labels(call: CallRecord, schemas: Mapping[str, Mapping[str, Any]]) -> tuple[set[str], list[str]]:
    """IFE, IFN, IAN, IAT: what the call and the offered schemas alone show."""
    if call.parse_error is not None or call.name is None:
        return {"IFE"}, [f"the call could not be parsed: {call.parse_error or 'no function name'}"]
    if call.name not in schemas:
        offered = ", ".join(sorted(schemas)) or "none"
        return {"IFN"}, [f"{call.name!r} is not an available tool (available: {offered})"]
    labels, details = set(), []
    schema, arguments = schemas[call.name], call.arguments or {}
    props = schema.get("properties") or {}
    if schema.get("additionalProperties") in (None, False) and (unknown := [k for k in arguments if k not in props]):
        labels.add("IAN")
        details.append(f"{call.name!r} has no argument {', '.join(map(repr, unknown))} "
                       f"(its arguments: {', '.join(props) or 'none'})")
    wrong = [k for k, v in arguments.items() if k in props and not type_ok(v, props[k])]
    if wrong:
        labels.add("IAT")
        details.append("; ".join(f"argument {k!r} of {call.name!r} must be {_type_name(props[k])}, "
                                 f"got {_json_type(arguments[k])} {json.dumps(arguments[k])[:40]}" for k in wrong))
    return labels, details


def _type_name(schema: Mapping[str, Any]) -> str:
    kinds = _types(schema)
    return " or ".join(f"{'an' if k[0] in 'aeiou' else 'a'} {k}" for k in kinds) or "any value"


def _json_type(value: Any) -> str:
    return {bool: "boolean", str: "string", int: "integer", float: "number", list: "array", dict: "object",
            type(None): "null"}.get(type(value), type(value).__name__)


def _key(call: CallRecord, schemas: Mapping[str, Mapping[str, Any]]) -> tuple[str, str]:
    """Identity of a call for RAC: its name and normalised arguments."""
    props = (schemas.get(call.name or "") or {}).get("properties") or {}
    args = {k: normalise(v, props.get(k)) for k, v in (call.arguments or {}).items()}
    return call.name or "", json.dumps(args, sort_keys=True, default=str)


def _matches(call: CallRecord, truth: Mapping[str, Any], schema: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """Whether the call has the ground-truth call's values (keys the truth specifies or the schema requires);
    the second item lists the keys that differ or are missing."""
    props = schema.get("properties") or {}
    arguments, wanted = call.arguments or {}, truth.get("arguments") or {}
    bad = [k for k, v in wanted.items() if k not in arguments or not same(normalise(arguments[k], props.get(k)),
                                                                             normalise(v, props.get(k)))]
    bad += [k for k in schema.get("required") or () if k not in arguments and k not in wanted]
    return not bad, bad


@dataclass
class _Verdict:
    labels: list[set[str]]
    details: list[list[str]]
    iac: bool
    missing: list[str]
    distance: int


def _judge(calls: Sequence[CallRecord], schemas: Mapping[str, Mapping[str, Any]], base: list[set[str]],
           base_details: list[list[str]], truth: Sequence[Mapping[str, Any]] | None) -> _Verdict:
    """Labels against one ground-truth sequence (or none): adds IAV, RAC and IAC to the schema labels."""
    labels = [set(b) for b in base]
    details = [list(d) for d in base_details]
    seen: Counter[tuple[str, str]] = Counter()
    valid: Counter[str] = Counter()
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for t in truth or ():
        by_name.setdefault(t["name"], []).append(t)
    for i, call in enumerate(calls):
        if labels[i] & {"IFE"}:
            continue
        key = _key(call, schemas)
        seen[key] += 1
        schema = schemas.get(call.name or "") or {}
        allowed = 1
        if truth is not None and "IFN" not in labels[i]:
            allowed = max(1, sum(_matches(call, t, schema)[0] for t in by_name.get(call.name or "", ())))
        if seen[key] > allowed:
            labels[i].add("RAC")
            details[i].append(f"this repeats an earlier call to {call.name!r} with the same arguments")
        if "IFN" in labels[i]:
            continue
        if "RAC" not in labels[i]:
            valid[call.name or ""] += 1
        if truth is not None and call.name in by_name:
            results = [_matches(call, t, schema) for t in by_name[call.name]]
            if not any(ok for ok, _ in results):
                bad = min((b for _, b in results), key=len)
                args = call.arguments or {}
                if "IAN" in labels[i]:
                    bad = [k for k in bad if k in args]  # a missing key is the misnamed one: IAN, not IAV
                if bad:
                    labels[i].add("IAV")
                    details[i].append(f"wrong value for {', '.join(map(repr, bad))} of {call.name!r}")
    missing: list[str] = []
    distance = sum(len(lab & {"IAV", "RAC"}) for lab in labels)
    if truth is not None:
        need = Counter(t["name"] for t in truth)
        missing = sorted(name for name in need if valid[name] < need[name])
        distance += sum(abs(valid[n] - need[n]) for n in set(need) | set(valid))
    return _Verdict(labels, details, bool(missing), missing, distance)


def _sequences(ground_truth: Any) -> list[list[Mapping[str, Any]]] | None:
    """Ground truth as a list of sequences: None (no ground truth), one sequence (a list of calls; `[]` is the
    one empty sequence of a task that needs no call) or several (a list of lists)."""
    if ground_truth is None:
        return None
    one = isinstance(ground_truth, Sequence) and all(isinstance(s, Mapping) for s in ground_truth)
    seqs = [list(ground_truth)] if one else [list(s) for s in ground_truth]
    for seq in seqs:
        for call in seq:
            if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
                raise ValueError(f"a ground-truth call must be {{'name': str, 'arguments': {{...}}}}, got {call!r}")
    return seqs


def label_calls(calls: Sequence[CallRecord], tools: Iterable[Any], ground_truth: Any = None) -> SpecToolReport:
    """SpecTool labels for one trajectory's calls, in order.

    Args:
        calls: every call attempt of the trajectory, in the order made (IFE attempts included).
        tools: the offered tools (`Tool`s or function schemas, see `tool_schemas`).
        ground_truth: None, one valid call sequence `[{"name": ..., "arguments": {...}}, ...]`, or a list of
            such sequences (the nearest one counts). Arguments a ground-truth call leaves out are not compared.
    """
    schemas = tool_schemas(tools)
    base, base_details = [], []
    for call in calls:
        labels, details = _schema_labels(call, schemas)
        base.append(labels)
        base_details.append(details)
    seqs = _sequences(ground_truth)
    if seqs is None:
        v, index = _judge(calls, schemas, base, base_details, None), None
    else:
        verdicts = [_judge(calls, schemas, base, base_details, s) for s in seqs]
        index = min(range(len(verdicts)), key=lambda k: verdicts[k].distance)  # first of the nearest
        v = verdicts[index]
    return SpecToolReport(tuple(frozenset(lab) for lab in v.labels), tuple(tuple(d) for d in v.details),
                          frozenset({"IAC"}) if v.iac else frozenset(), index, seqs is not None, tuple(v.missing))


# --- feedback ------------------------------------------------------------------------------------------------

def call_feedback(call: CallRecord, tools: Iterable[Any], previous: Sequence[CallRecord] = ()) -> str | None:
    """Error text for one call's observation, from what the schemas show (IFE, IFN, IAN, IAT) and RAC against
    `previous` calls of the episode; None when the call shows none. Never uses ground truth (that would hand the
    agent the answer). The text starts with the pattern names, e.g. "[SpecTool IAT] argument 'x' ...".
    """
    report = label_calls([*previous, call], tools)
    labels, details = report.call_labels[-1], report.call_details[-1]
    if not labels:
        return None
    names = " ".join(p for p in CALL_PATTERNS if p in labels)
    return f"[SpecTool {names}] " + "; ".join(details) + "."


# --- trajectories --------------------------------------------------------------------------------------------

def records_from_messages(messages: Sequence[Mapping[str, Any]], offered: Iterable[str],
                          parser: str = "permissive") -> list[CallRecord]:
    """Call attempts re-read from a conversation's assistant messages with the named tool-call parser
    (`rltrain.tools.parsers`), as the agent loop read them. Used where a trajectory carries no call records."""
    from rltrain.tools.parsers import parse_calls

    names, out, turn = list(offered), [], 0
    for message in messages:
        if message.get("role") != "assistant":
            continue
        parsed = parse_calls(str(message.get("content") or ""), names, parser, turn)
        out += [CallRecord(c.name, dict(c.arguments), c.raw, None, turn) for c in parsed.calls]
        out += [CallRecord(None, None, e.raw, e.detail, turn) for e in parsed.errors]
        if not parsed.meant_as_call:
            for tc in message.get("tool_calls") or ():  # a template-structured message: calls kept beside the text
                fn = tc.get("function", tc)
                args = fn.get("arguments")
                out.append(CallRecord(fn.get("name"), json.loads(args) if isinstance(args, str) else dict(args or {}),
                                      "", None, turn))
        turn += 1
    return out


def call_record(record: Any) -> CallRecord:
    """A `CallRecord` from one of the agent loop's call records (`Trajectory.tool_records`, a dict or an object with
    `name`, `arguments`, `raw`, `turn` and, for an unparseable attempt, error "IFE" with `parse_error`)."""
    get = record.get if isinstance(record, Mapping) else (lambda k, default=None: getattr(record, k, default))
    error = get("parse_error") or ("unparseable call" if get("error") == "IFE" else None)
    if error:
        return CallRecord(None, None, str(get("raw", "") or ""), str(error), int(get("turn", 0) or 0))
    return CallRecord(get("name"), dict(get("arguments") or {}), str(get("raw", "") or ""), None, int(get("turn", 0) or 0))


def records_from_trajectory(traj: Any, offered: Iterable[str], parser: str = "permissive") -> list[CallRecord]:
    """The trajectory's call attempts: its `tool_records` when the agent loop kept them, else re-read from its
    assistant messages with `parser` (trajectories written before records existed)."""
    records = getattr(traj, "tool_records", None)
    if records:
        return [call_record(r) for r in records]
    return records_from_messages(getattr(traj, "messages", []) or [], offered, parser)


def _task_tools(task: Mapping[str, Any], tools: Any) -> list[Any]:
    found = tools if tools is not None else task.get("tools")
    if found is None:
        raise ValueError("SpecTool needs the offered tool schemas: the task data has no 'tools' and no `tools` was "
                         "given (set reward.kwargs.tools, or have the environment put its schemas in task data)")
    return list(found)


def spectool_metrics(trajectories: Iterable[Any], tools: Mapping[str, Any] | Sequence[Any] | None = None,
                     parser: str = "permissive") -> dict[str, float]:
    """Per-pattern rates over finished trajectories (failed ones are left out: they say nothing of the policy).

    For each pattern P: `spectool/P_traj_rate`, the fraction of trajectories with at least one P (1 minus
    SpecTool's per-pattern accuracy), and for per-call patterns `spectool/P_call_rate`, the fraction of call
    attempts labelled P. IAV and IAC rates count only trajectories whose task has ground truth and are left out
    when none has. Also `spectool/calls_per_traj` and `spectool/clean_traj_rate` (no label at all).

    Offered tools come from `tools` (a list for all trajectories, or env name -> list) or else each
    trajectory's `task_data["tools"]`; ground truth from `task_data["ground_truth"]`. Trajectories with
    neither tools nor records are skipped.
    """
    traj_hits: Counter[str] = Counter()
    call_hits: Counter[str] = Counter()
    n_traj = n_truth = n_calls = n_truth_calls = clean = 0
    for traj in trajectories:
        if getattr(traj, "failure", None):
            continue
        data = getattr(traj, "task_data", {}) or {}
        offered = tools.get(getattr(traj, "env", ""), None) if isinstance(tools, Mapping) else tools
        offered = offered if offered is not None else data.get("tools")
        if offered is None:
            continue
        schemas = tool_schemas(offered)
        report = label_calls(records_from_trajectory(traj, list(schemas), parser), offered, data.get("ground_truth"))
        n_traj += 1
        n_calls += len(report.call_labels)
        if report.has_ground_truth:
            n_truth += 1
            n_truth_calls += len(report.call_labels)
        counts = report.counts()
        for p, c in counts.items():
            traj_hits[p] += c > 0
            call_hits[p] += c
        clean += not any(counts.values())
    if not n_traj:
        return {}
    out: dict[str, float] = {"spectool/calls_per_traj": n_calls / n_traj, "spectool/clean_traj_rate": clean / n_traj}
    for p in PATTERNS:
        traj_den = n_truth if p in GROUND_TRUTH_PATTERNS else n_traj
        call_den = n_truth_calls if p in GROUND_TRUTH_PATTERNS else n_calls
        if traj_den:
            out[f"spectool/{p}_traj_rate"] = traj_hits[p] / traj_den
        if p != "IAC" and call_den:
            out[f"spectool/{p}_call_rate"] = call_hits[p] / call_den
    return out


def spectool_penalty(report: SpecToolReport, weights: Mapping[str, float] | None = None,
                     max_penalty: float | None = 1.0) -> float:
    """The shaped penalty (>= 0): sum over occurrences of each pattern's weight, capped at `max_penalty`."""
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    unknown = set(w) - set(PATTERNS)
    if unknown:
        raise ValueError(f"reward.kwargs.weights names unknown patterns {sorted(unknown)}; use {list(PATTERNS)}")
    total = sum(w[p] * c for p, c in report.counts().items())
    return min(total, max_penalty) if max_penalty is not None else total


@REWARD_FNS.register("spectool")
def spectool_reward(sample: RewardInput, base: str | None = None, base_kwargs: dict[str, Any] | None = None,
                    weights: dict[str, float] | None = None, max_penalty: float | None = 1.0,
                    tools: list[dict[str, Any]] | None = None, parser: str = "permissive") -> dict[str, float]:
    """A base reward plus the SpecTool penalty: `{**base terms, "spectool": -penalty}`.

    Config: `reward.fn: spectool`, `reward.kwargs: {base: multitool, weights: {IAV: 0.2}, max_penalty: 0.5}`.
    The calls are re-read from the assistant messages with `parser`; the offered tools come from `tools` or the
    task data's "tools", the ground truth from its "ground_truth".
    """
    terms = dict(REWARD_FNS.get(base)(sample, **(base_kwargs or {}))) if base else {}
    offered = _task_tools(sample.task, tools)
    calls = records_from_messages(sample.messages, list(tool_schemas(offered)), parser)
    report = label_calls(calls, offered, sample.task.get("ground_truth"))
    penalty = spectool_penalty(report, weights, max_penalty)
    terms["spectool"] = -penalty if penalty else 0.0
    return terms
