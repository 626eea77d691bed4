"""Tests for rltrain/data/schema.py: versioned trajectory rows, and reading pre-schema dumps."""

import json

import pytest

from rltrain.data.formats import LossyConversionWarning, convert_rows
from rltrain.data.schema import FORMAT_VERSION, read_trajectories, row_to_trajectory, trajectory_to_row, write_trajectories
from rltrain.types import Trajectory

CALL = '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>'


def _trajectory() -> Trajectory:
    """A tool episode as the agent loop leaves it: text and call in one message, a parallel call, a bad call."""
    return Trajectory(
        task_id="fg-7", group_id=3, env="function_gym", prompt_ids=[1, 2, 3], response_ids=[4, 5, 6, 7, 8],
        loss_mask=[1, 1, 0, 1, 1], rollout_logprobs=[-0.5, -0.25, 0.0, -1.0, -0.125], turn_boundaries=[0, 3],
        turn_rewards=[0.0, 1.0], reward=1.0, weight_version=2, tool_calls=2,
        messages=[{"role": "system", "content": "Use the tools. Résumé ✓"}, {"role": "user", "content": "2+3, twice?"},
                  {"role": "assistant", "content": f"Let me add.\n{CALL}\n{CALL}\n<tool_call>{{broken</tool_call>"},
                  {"role": "tool", "content": "5"}, {"role": "tool", "content": "5"},
                  {"role": "tool", "content": "Error: a further tool call could not be read: not JSON."},
                  {"role": "assistant", "content": "The answer is 5."}],
        tool_records=[{"turn": 0, "index": i, "call_id": f"call_0_{i}", "name": "add", "arguments": {"a": 2, "b": 3},
                       "format": "tag", "offered": True, "error": None, "reward": 0.0, "latency_s": 0.001, "raw": CALL}
                      for i in range(2)]
        + [{"turn": 0, "index": 2, "call_id": "", "name": None, "arguments": None, "format": "tag", "offered": False,
            "error": "IFE", "parse_error": "not JSON", "reward": None, "latency_s": 0.0, "raw": "<tool_call>{broken</tool_call>"}],
    )


def test_row_is_unified_plus_token_fields():
    traj = _trajectory()
    row = trajectory_to_row(traj, index=4, tools=[{"name": "add", "description": "", "parameters": {}}])
    assert row["format_version"] == FORMAT_VERSION
    assert row["unique_trajectory_id"] == "function_gym/fg-7#3.4"
    assert row["task_instruction"] == "Use the tools. Résumé ✓"
    assistant = row["conversation"][1]
    assert assistant["content"] == "Let me add.\n\n\n<tool_call>{broken</tool_call>"  # the IFE attempt stays text
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_0_0", "call_0_1"]
    assert [m.get("tool_call_id") for m in row["conversation"][2:5]] == ["call_0_0", "call_0_1", None]
    assert row["prompt_ids"] == [1, 2, 3] and row["loss_mask"] == traj.loss_mask and "messages" not in row
    assert row_to_trajectory(json.loads(json.dumps(row))) == traj  # lossless through JSON


def test_rows_convert_to_hf_without_loss():
    row = trajectory_to_row(_trajectory())
    with pytest.warns(LossyConversionWarning, match="raw"):  # ShareGPT drops the exact text and ids, by name
        convert_rows([row], "sharegpt")
    hf = convert_rows([row], "hf")
    assert row_to_trajectory(convert_rows(hf, "unified")[0]) == _trajectory()


def test_reads_pre_schema_dumps_and_new_rows(tmp_path):
    path = tmp_path / "trajectories.jsonl"
    old = _trajectory()
    path.write_text(old.to_json() + "\n")  # what the driver wrote before the schema
    assert write_trajectories(path, [old, old], start=1) == 2
    assert list(read_trajectories(path)) == [old, old, old]
    ids = [json.loads(line).get("unique_trajectory_id") for line in path.read_text().splitlines()]
    assert ids == [None, "function_gym/fg-7#3.1", "function_gym/fg-7#3.2"]


def test_foreign_unified_row_reads_without_tokens():
    traj = row_to_trajectory({"unique_trajectory_id": "x", "task_instruction": "", "tools": [], "conversation": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "sure", "tool_calls": [{"function": {"name": "f", "arguments": {"k": "ü"}}}]}]})
    assert traj.messages[1]["content"] == 'sure\n<tool_call>\n{"name": "f", "arguments": {"k": "ü"}}\n</tool_call>'
    assert traj.task_id == "x" and traj.prompt_ids == []


def test_newer_version_is_refused():
    with pytest.raises(ValueError, match="upgrade rltrain"):
        row_to_trajectory({"format_version": FORMAT_VERSION + 1, "unique_trajectory_id": "x", "conversation": []})


def test_existing_readers_read_the_new_rows(tmp_path):
    """What the driver's writer would switch to (`{"step": N, **trajectory_to_row(t, i)}`) stays readable by the
    readers that exist today: users.replay_from (`load_replay`) and the trim on resume (`trim_jsonl`)."""
    from actors.user import load_replay
    from rltrain.checkpoint import trim_jsonl

    traj = _trajectory()
    traj.user_calls = [{"key": "fg-7#0/0", "text": "Oui ✓"}]
    path = tmp_path / "trajectories.jsonl"
    path.write_text("".join(json.dumps({"step": s, **trajectory_to_row(traj, s)}, ensure_ascii=False) + "\n" for s in (1, 2, 3)))
    assert load_replay(path) == {"fg-7#0/0": {"Oui ✓"}}
    trim_jsonl(path, 2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]
    assert list(read_trajectories(path))[0] == traj
