"""SpecTool's seven error patterns (spec §6.3, rules in docs/spectool.md): a fixture per pattern, mixed cases,
precedence, the nearest ground truth, and IAT vs IAV after type-aware normalisation."""

from __future__ import annotations

import pytest

from rewards import REWARD_FNS
from rewards.base import RewardInput
from rewards.toolcall import (
    CallRecord,
    call_feedback,
    label_calls,
    normalise,
    records_from_messages,
    same,
    spectool_metrics,
    spectool_penalty,
    type_ok,
)
from rltrain.types import Trajectory

TOOLS = [
    {"type": "function", "function": {"name": "convert", "parameters": {
        "type": "object", "properties": {"value": {"type": "number"}, "from_unit": {"type": "string"},
                                         "to_unit": {"type": "string"}},
        "required": ["value", "from_unit", "to_unit"]}}},
    {"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"entity": {"type": "string"}, "year": {"type": "integer"},
                                         "exact": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["entity"]}}},
]
LOOKUP = {"name": "lookup", "arguments": {"entity": "Mount Arvel"}}
CONVERT = {"name": "convert", "arguments": {"value": 4321, "from_unit": "m", "to_unit": "ft"}}
TRUTH = [LOOKUP, CONVERT]


def C(name: str | None, **arguments) -> CallRecord:
    return CallRecord(name, arguments)


def labels(calls, truth=None) -> list[set[str]]:
    return [set(lab) for lab in label_calls(calls, TOOLS, truth).call_labels]


def good() -> list[CallRecord]:
    return [C("lookup", entity="Mount Arvel"), C("convert", value=4321, from_unit="m", to_unit="ft")]


def test_clean_trajectory_has_no_label() -> None:
    report = label_calls(good(), TOOLS, TRUTH)
    assert report.call_labels == (frozenset(), frozenset()) and not report.trajectory_labels
    assert report.counts() == dict.fromkeys(["IFE", "IFN", "IAN", "IAT", "IAV", "RAC", "IAC"], 0)


# --- one fixture per pattern -------------------------------------------------------------------------------

def test_ife_unparseable_attempt() -> None:
    calls = [CallRecord(None, None, '<tool_call>{"name": "lookup", </tool_call>', "not valid JSON"), *good()]
    assert labels(calls, TRUTH) == [{"IFE"}, set(), set()]


def test_ifn_tool_not_offered() -> None:
    assert labels([*good(), C("search", query="Mount Arvel")], TRUTH) == [set(), set(), {"IFN"}]


def test_ian_unknown_argument_name() -> None:
    assert labels([C("lookup", entity="Mount Arvel", region="north")]) == [{"IAN"}]


def test_iat_wrong_type() -> None:
    assert labels([C("lookup", entity="Mount Arvel", year="1999")]) == [{"IAT"}]
    assert labels([C("lookup", entity=42)]) == [{"IAT"}]


def test_iav_wrong_value_needs_ground_truth() -> None:
    wrong = [C("lookup", entity="Brenn Peak"), C("convert", value=4321, from_unit="m", to_unit="ft")]
    assert labels(wrong, TRUTH) == [{"IAV"}, set()]
    assert labels(wrong) == [set(), set()]  # not emitted without ground truth


def test_iav_missing_required_or_specified_value() -> None:
    assert labels([C("lookup", entity="Mount Arvel"), C("convert", value=4321, to_unit="ft")], TRUTH) == [set(), {"IAV"}]


def test_rac_repeated_call() -> None:
    calls = [*good(), C("lookup", entity="mount arvel")]  # same call after normalisation
    assert labels(calls) == [set(), set(), {"RAC"}]
    assert labels(calls, TRUTH) == [set(), set(), {"RAC"}]
    assert labels([*good(), C("lookup", entity="Mount Arvel", exact=True)]) == [set(), set(), set()]  # new arguments


def test_iac_insufficient_calls() -> None:
    report = label_calls([C("lookup", entity="Mount Arvel")], TOOLS, TRUTH)
    assert report.trajectory_labels == {"IAC"} and report.missing_calls == ("convert",)
    assert not label_calls([C("lookup", entity="Mount Arvel")], TOOLS).trajectory_labels  # no ground truth: no IAC
    assert label_calls([], TOOLS, TRUTH).trajectory_labels == {"IAC"}


# --- precedence and mixed cases ----------------------------------------------------------------------------

def test_ife_suppresses_everything_and_ifn_suppresses_argument_labels() -> None:
    report = label_calls([C("lookup_v2", entity=5, nope=1)], TOOLS, TRUTH)
    assert report.call_labels == (frozenset({"IFN"}),) and report.primary(0) == "IFN"
    ife = CallRecord("lookup", {"entity": 5}, parse_error="unclosed tag")
    assert labels([ife]) == [{"IFE"}]


def test_multi_label_call_and_primary() -> None:
    """IAN (unknown key) + IAT (year as string) + IAV (wrong entity) on one call; primary IAN by precedence."""
    report = label_calls([C("lookup", entity="Brenn Peak", year="1999", region="x"),
                          C("convert", value=4321, from_unit="m", to_unit="ft")], TOOLS, TRUTH)
    assert report.call_labels[0] == {"IAN", "IAT", "IAV"} and report.primary(0) == "IAN"


def test_misnamed_key_is_ian_not_iav() -> None:
    """The ground truth's `from_unit` is missing because it was written `unit`: IAN explains it, no IAV."""
    calls = [C("lookup", entity="Mount Arvel"), C("convert", value=4321, unit="m", to_unit="ft")]
    assert labels(calls, TRUTH) == [set(), {"IAN"}]
    calls[1] = C("convert", value=99, unit="m", to_unit="ft")  # a present key with a wrong value is still IAV
    assert labels(calls, TRUTH) == [set(), {"IAN", "IAV"}]


def test_repeat_of_a_wrong_call_keeps_both_labels_and_does_not_count_for_iac() -> None:
    calls = [C("lookup", entity="Mount Arvel", year="x"), C("lookup", entity="Mount Arvel", year="x")]
    report = label_calls(calls, TOOLS, TRUTH)
    assert [set(c) for c in report.call_labels] == [{"IAT"}, {"IAT", "RAC"}] and report.trajectory_labels == {"IAC"}


def test_rac_allows_repeats_the_ground_truth_makes() -> None:
    truth = [LOOKUP, LOOKUP, CONVERT]  # a task that legitimately looks the same thing up twice
    calls = [C("lookup", entity="Mount Arvel"), C("lookup", entity="Mount Arvel"),
             C("convert", value=4321, from_unit="m", to_unit="ft")]
    assert labels(calls, truth) == [set(), set(), set()]
    assert labels([*calls, C("lookup", entity="Mount Arvel")], truth)[-1] == {"RAC"}


# --- ground truth -------------------------------------------------------------------------------------------

def test_nearest_ground_truth_counts() -> None:
    """Two valid orders: convert-then-nothing vs lookup only. The agent took the second: no IAC, index 1."""
    only_lookup = [LOOKUP]
    calls = [C("lookup", entity="Mount Arvel")]
    report = label_calls(calls, TOOLS, [TRUTH, only_lookup])
    assert report.ground_truth_index == 1 and not report.trajectory_labels and report.call_labels == (frozenset(),)
    # ties go to the first listed sequence
    assert label_calls(good(), TOOLS, [TRUTH, list(TRUTH)]).ground_truth_index == 0


def test_nearest_ground_truth_by_values() -> None:
    """Two sequences differ only in the converted value; the one the agent's values match is chosen: no IAV."""
    other = [LOOKUP, {"name": "convert", "arguments": {"value": 14176.5, "from_unit": "ft", "to_unit": "m"}}]
    calls = [C("lookup", entity="Mount Arvel"), C("convert", value=14176.5, from_unit="ft", to_unit="m")]
    report = label_calls(calls, TOOLS, [TRUTH, other])
    assert report.ground_truth_index == 1 and report.call_labels == (frozenset(), frozenset())


def test_a_call_matches_any_ground_truth_call_of_its_name() -> None:
    """Order-free: lookups of A and B in either order match the two ground-truth lookups."""
    truth = [LOOKUP, {"name": "lookup", "arguments": {"entity": "Brenn Peak"}}]
    assert labels([C("lookup", entity="Brenn Peak"), C("lookup", entity="Mount Arvel")], truth) == [set(), set()]


def test_unspecified_ground_truth_arguments_are_not_compared() -> None:
    truth = [{"name": "lookup"}, {"name": "convert", "arguments": {"to_unit": "ft"}}]
    calls = [C("lookup", entity="anything"), C("convert", value=1, from_unit="km", to_unit="FT")]
    assert labels(calls, truth) == [set(), set()]


def test_empty_ground_truth_is_a_task_that_needs_no_call() -> None:
    report = label_calls([], TOOLS, [])
    assert report.has_ground_truth and not report.trajectory_labels


# --- type-aware normalisation -------------------------------------------------------------------------------

def test_string_for_integer_is_iat_not_iav() -> None:
    """`"5"` for an integer (or number) is IAT; its value, read as the declared type, is right: no IAV."""
    truth = [{"name": "lookup", "arguments": {"entity": "Mount Arvel", "year": 1999}}]
    assert labels([C("lookup", entity="Mount Arvel", year="1999")], truth) == [{"IAT"}]
    assert labels([C("lookup", entity="Mount Arvel", year="2001")], truth) == [{"IAT", "IAV"}]
    assert labels([C("lookup", entity="Mount Arvel", year="MCMXCIX")], truth) == [{"IAT", "IAV"}]  # unreadable
    assert labels([C("lookup", entity="Mount Arvel", year=1999.0)], truth) == [set()]  # 1999.0 is an integer
    assert labels([C("lookup", entity="Mount Arvel", year=True)], truth) == [{"IAT", "IAV"}]  # a boolean is not
    conv = [LOOKUP, {"name": "convert", "arguments": {"value": 5, "from_unit": "m", "to_unit": "ft"}}]
    assert labels([C("lookup", entity="Mount Arvel"), C("convert", value="5.0", from_unit="m", to_unit="ft")],
                  conv) == [set(), {"IAT"}]


def test_number_for_string_and_string_for_boolean_and_list() -> None:
    truth = [{"name": "lookup", "arguments": {"entity": "42", "exact": True, "tags": ["a", "b"]}}]
    assert labels([C("lookup", entity=42, exact="true", tags='["A", "b"]')], truth) == [{"IAT"}]
    assert labels([C("lookup", entity="42", exact=False, tags=["a", "b"])], truth) == [{"IAV"}]
    assert labels([C("lookup", entity="42", exact=True, tags=["b", "a"])], truth) == [{"IAV"}]  # order matters


def test_normalise_and_same() -> None:
    assert normalise("  Mount   ARVEL ", {"type": "string"}) == "mount arvel"
    assert normalise("5", {"type": "integer"}) == 5.0 and normalise(5, {"type": "string"}) == "5"
    assert normalise(5.5, {"type": "string"}) == "5.5" and normalise("1,000", {"type": "number"}) == 1000.0
    assert same(0.1 + 0.2, 0.3) and not same(True, 1.0) and not same(1.0, 1.001)
    assert type_ok(5.0, {"type": "integer"}) and not type_ok(True, {"type": "number"})
    assert type_ok(None, {"type": ["string", "null"]}) and type_ok({"x": 1}, {})


# --- the three uses -----------------------------------------------------------------------------------------

def test_feedback_uses_the_schema_only() -> None:
    text = call_feedback(C("lookup", entity="Mount Arvel", year="1999"), TOOLS)
    assert text == "[SpecTool IAT] argument 'year' of 'lookup' must be an integer, got string \"1999\"."
    assert call_feedback(C("find", q=1), TOOLS).startswith("[SpecTool IFN] 'find' is not an available tool")
    assert call_feedback(C("lookup", entity="Brenn Peak"), TOOLS) is None  # a wrong value is not revealed
    previous = [C("lookup", entity="Mount Arvel")]
    assert call_feedback(C("lookup", entity="Mount Arvel"), TOOLS, previous).startswith("[SpecTool RAC]")


def test_penalty_weights_and_cap() -> None:
    report = label_calls([C("lookup", entity="Brenn Peak", year="x"), C("nope")], TOOLS, TRUTH)
    # IAT 0.1 + IAV 0.1 + IFN 0.2 + IAC 0.2 (convert missing) = 0.6 with the defaults
    assert report.counts() == {"IFE": 0, "IFN": 1, "IAN": 0, "IAT": 1, "IAV": 1, "RAC": 0, "IAC": 1}
    assert spectool_penalty(report) == pytest.approx(0.6)
    assert spectool_penalty(report, {"IAC": 1.0}, max_penalty=None) == pytest.approx(1.4)
    assert spectool_penalty(report, {"IAC": 1.0}) == 1.0
    with pytest.raises(ValueError, match="unknown patterns \\['XYZ'\\]"):
        spectool_penalty(report, {"XYZ": 1.0})


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def test_records_from_messages_use_the_tool_call_parser() -> None:
    messages = [{"role": "user", "content": "q"},
                assistant('<tool_call>{"name": "lookup", "arguments": {"entity": "Mount Arvel"}}</tool_call>\n'
                          '<tool_call>{"name": "lookup", "arguments": {"entity": </tool_call>'),
                {"role": "tool", "content": "{}"},
                assistant('```json\n{"name": "convert", "arguments": {"value": 1, "from_unit": "m", "to_unit": "ft"}}\n```'),
                assistant("The answer is 3.28.")]
    records = records_from_messages(messages, ["lookup", "convert"])
    assert [(r.name, r.turn, r.parse_error is not None) for r in records] == [("lookup", 0, False), (None, 0, True),
                                                                              ("convert", 1, False)]


def test_registered_reward_adds_the_penalty_to_a_base() -> None:
    fn = REWARD_FNS.get("spectool")
    messages = [assistant('<tool_call>{"name": "lookup", "arguments": {"entity": "Mount Arvel", "year": "1999"}}</tool_call>'),
                assistant("14176.5")]
    sample = RewardInput(messages, {"tools": TOOLS, "ground_truth": TRUTH}, turn_rewards=[0.0, 1.0])
    # IAT 0.1 + IAC 0.2 (no convert); base turn_rewards = 1.0
    assert fn(sample, base="turn_rewards") == pytest.approx({"env": 1.0, "spectool": -0.3})
    assert fn(RewardInput([assistant("hi")], {"tools": TOOLS}), weights={"IAC": 0.5}) == {"spectool": 0.0}
    with pytest.raises(ValueError, match="reward.kwargs.tools"):
        fn(RewardInput([], {}))


def test_metrics_rates() -> None:
    def traj(messages, truth=None, failure=None) -> Trajectory:
        data = {"tools": TOOLS, **({"ground_truth": truth} if truth is not None else {})}
        return Trajectory(task_id="t", group_id=0, env="x", prompt_ids=[], messages=messages, task_data=data,
                          failure=failure)

    ok = assistant('<tool_call>{"name": "lookup", "arguments": {"entity": "Mount Arvel"}}</tool_call>'
                   '<tool_call>{"name": "convert", "arguments": {"value": 4321, "from_unit": "m", "to_unit": "ft"}}</tool_call>')
    bad = assistant('<tool_call>{"name": "lookup", "arguments": {"entity": "Mount Arvel", "year": "1"}}</tool_call>'
                    '<tool_call>{"name": "lookup", "arguments": {"entity": "Mount Arvel", "year": "1"}}</tool_call>')
    m = spectool_metrics([traj([ok], TRUTH), traj([bad], TRUTH), traj([bad]), traj([ok], failure="engine died")])
    # 3 scored trajectories, 6 calls; IAT on 4 calls in 2 trajectories; RAC on 2 calls; IAC: 1 of the 2 with truth
    assert m["spectool/calls_per_traj"] == 2.0 and m["spectool/clean_traj_rate"] == pytest.approx(1 / 3)
    assert m["spectool/IAT_call_rate"] == pytest.approx(4 / 6) and m["spectool/IAT_traj_rate"] == pytest.approx(2 / 3)
    assert m["spectool/RAC_call_rate"] == pytest.approx(2 / 6)
    assert m["spectool/IAC_traj_rate"] == 0.5 and m["spectool/IAV_call_rate"] == 0.0  # over the 4 calls with truth
    no_truth = spectool_metrics([traj([bad])])
    assert "spectool/IAV_call_rate" not in no_truth and "spectool/IAC_traj_rate" not in no_truth
    assert spectool_metrics([]) == {}


def test_agent_loop_records_are_read() -> None:
    """`Trajectory.tool_records` (rltrain/tools/execution.py `CallOutcome.record`, and the loop's IFE rows) come
    first; messages are re-read only when a trajectory has no records."""
    from rewards.toolcall import call_record, records_from_trajectory

    ran = {"turn": 0, "index": 0, "call_id": "call_0_0", "name": "lookup", "arguments": {"entity": "Mount Arvel"},
           "format": "tag", "offered": True, "error": None, "reward": 0.0, "latency_s": 0.01, "raw": "<tool_call>..."}
    ife = {"turn": 1, "index": 0, "call_id": "", "name": None, "arguments": None, "format": "tag", "offered": False,
           "error": "IFE", "parse_error": "a <tool_call> tag is not closed", "reward": None, "latency_s": 0.0, "raw": "x"}
    assert call_record(ran) == CallRecord("lookup", {"entity": "Mount Arvel"}, "<tool_call>...", None, 0)
    assert call_record(ife) == CallRecord(None, None, "x", "a <tool_call> tag is not closed", 1)
    traj = Trajectory(task_id="t", group_id=0, env="x", prompt_ids=[], tool_records=[ran, ife],
                      messages=[assistant("ignored when records exist")])
    assert [r.name for r in records_from_trajectory(traj, ["lookup"])] == ["lookup", None]
    assert labels([call_record(ran), call_record(ife)], [LOOKUP]) == [set(), {"IFE"}]


def test_malformed_ground_truth_is_an_error() -> None:
    with pytest.raises(ValueError, match="a ground-truth call must be"):
        label_calls(good(), TOOLS, [{"arguments": {"entity": "x"}}])
    with pytest.raises(ValueError, match="a ground-truth call must be"):
        label_calls(good(), TOOLS, [[LOOKUP], ["lookup"]])
