"""Tests for rltrain/data/formats.py and io.py: round trips among unified, ShareGPT and HF chat (spec §6.2, §1.9)."""

import json
import warnings

import pytest

from rltrain.data.formats import (
    SHAREGPT_LOSSY_FIELDS,
    FormatError,
    LossyConversionWarning,
    check_unified,
    convert_rows,
    detect_format,
    to_unified,
)
from rltrain.data.io import read_rows, write_rows
from tests.data.fixtures import PARALLEL, PLAIN, ROWS


def _no_warning(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossyConversionWarning)
        return fn(*args, **kwargs)


def test_hf_round_trip_is_lossless():
    hf = _no_warning(convert_rows, ROWS, "hf")
    assert hf[0]["messages"][0] == {"role": "system", "content": PARALLEL["task_instruction"]}
    assert hf[0]["messages"][2]["tool_calls"][1] == {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "東京"}}}
    assert hf[1]["messages"][-1]["reasoning_content"] == "6*7=42"
    assert hf[0]["tools"][0]["type"] == "function"
    assert _no_warning(convert_rows, hf, "unified") == [check_unified(r) for r in ROWS]


def test_sharegpt_shape():
    sg = convert_rows([PARALLEL], "sharegpt")[0]
    assert sg["system"] == PARALLEL["task_instruction"]
    assert json.loads(sg["tools"]) == PARALLEL["tools"]
    assert [t["from"] for t in sg["conversations"]] == ["human", "function_call", "observation", "function_call", "observation", "gpt"]
    # parallel calls: one function_call turn with a JSON list, its text as the <think> prefix LLaMA-Factory reads
    assert sg["conversations"][1]["value"] == ('<think>I will look both cities up.</think>\n[{"name": "get_weather", "arguments": '
                                               '{"city": "Zürich"}}, {"name": "get_weather", "arguments": {"city": "東京"}}]')
    assert json.loads(sg["conversations"][2]["value"]) == ["Zürich: 4°C, neige", "Error: city '東京' not found; use a Latin spelling"]
    assert sg["conversations"][4]["value"] == ""
    assert sg["conversations"][5]["value"].startswith("<think>Tokyo returned nothing.</think>\n")


def test_sharegpt_round_trip_without_lossy_fields():
    for row in ROWS:
        assert _no_warning(convert_rows, _no_warning(convert_rows, [row], "sharegpt"), "unified") == [check_unified(row)]


def test_sharegpt_names_every_lossy_field():
    row = check_unified(PARALLEL)
    row["conversation"][1]["tool_calls"][0]["id"] = "call_0_0"
    row["conversation"][1]["thought"] = "both at once"
    row["conversation"][2].update(tool_call_id="call_0_0", name="get_weather")
    row["conversation"][3]["score"] = 0.5
    with pytest.warns(LossyConversionWarning) as caught:
        back = convert_rows(convert_rows([row], "sharegpt"), "unified")[0]
    text = str(caught[0].message)
    for name in ("tool_calls[].id (1x)", "conversation[].tool_call_id (1x)", "conversation[].name (1x)",
                 "conversation[].score (1x)", SHAREGPT_LOSSY_FIELDS[3]):
        assert name in text
    assert back["conversation"][1]["content"] == "I will look both cities up."  # the text wins over the thought


def test_detect_and_errors():
    assert [detect_format(r) for r in (PARALLEL, {"conversations": []}, {"messages": []})] == ["unified", "sharegpt", "hf"]
    with pytest.raises(FormatError, match="--from"):
        detect_format({"text": "x"})
    with pytest.raises(FormatError, match="function.name"):
        check_unified({"unique_trajectory_id": "x", "conversation": [{"role": "assistant", "content": "", "tool_calls": [{}]}]})
    with pytest.raises(FormatError, match="not JSON"):
        to_unified([{"conversations": [{"from": "function_call", "value": "{oops"}]}])
    with pytest.raises(FormatError, match="one of unified"):
        convert_rows(ROWS, "alpaca")


def test_arguments_as_json_string_are_decoded():
    row = {"unique_trajectory_id": "s", "conversation": [
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": '{"x": 1}'}}]}]}
    assert check_unified(row)["conversation"][0]["tool_calls"][0]["function"]["arguments"] == {"x": 1}


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
@pytest.mark.parametrize("fmt", ["unified", "sharegpt", "hf"])
def test_files_round_trip(tmp_path, suffix, fmt):
    rows = _no_warning(convert_rows, ROWS, fmt) if fmt != "sharegpt" else convert_rows(ROWS, fmt)
    path = tmp_path / f"data{suffix}"
    assert write_rows(path, rows) == 2
    assert _no_warning(to_unified, read_rows(path)) == [check_unified(r) for r in ROWS]


def test_plain_row_keeps_empty_user_message():
    assert convert_rows([PLAIN], "sharegpt")[0]["conversations"][0] == {"from": "human", "value": ""}
