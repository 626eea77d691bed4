"""Tests for rltrain/data/filter.py, rltrain/data/verl.py and the `rltrain data` command."""

import argparse
import json

import pytest

from rltrain.data.filter import FilterRules, filter_rows, spectool_error
from rltrain.data.formats import check_unified
from rltrain.data.io import read_rows, write_rows
from rltrain.data.verl import env_tasks_to_verl, task_to_verl, verl_to_task
from rltrain.types import Task
from tests.data.fixtures import PARALLEL, PLAIN


def _row(i, **extra):
    return {**PLAIN, "unique_trajectory_id": f"r{i}", **extra}


def test_filter_rules_in_order_with_counts():
    call = {"function": {"name": "f", "arguments": {"x": 1}}}
    repeated = {**PLAIN, "unique_trajectory_id": "rac", "reward": 1.0, "conversation": [
        {"role": "user", "content": "go"}, {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "ok"}, {"role": "assistant", "content": "", "tool_calls": [call]}]}
    rows = [_row(0, reward=1.0), _row(1, reward=1.0),  # 1 duplicates 0 (ids differ)
            _row(2, reward=0.0), _row(3), _row(4, reward=1.0, failure="timeout"),
            _row(5, reward=1.0, format_error="IFE: not JSON"),
            _row(6, reward=1.0, tool_records=[{"error": "unknown_tool"}], conversation=[{"role": "user", "content": "z"}]),
            repeated, _row(8, reward=1.0, prompt_ids=[1] * 10, response_ids=[2] * 10,
                           conversation=[{"role": "user", "content": "long"}])]
    kept, dropped = filter_rows(rows, FilterRules(min_reward=0.5, max_tokens=15))
    assert [r["unique_trajectory_id"] for r in kept] == ["r0"]
    assert dropped == {"duplicate": 1, "reward": 2, "failed": 1, "format_error/IFE": 1, "format_error/IFN": 1,
                       "format_error/RAC": 1, "too_long": 1}


def test_judge_threshold_and_spectool_labels():
    kept, dropped = filter_rows([_row(0, reward_terms={"judge": 0.9}), _row(1, judge_score=0.2,
                                 conversation=[{"role": "user", "content": "q"}])], FilterRules(min_judge=0.5))
    assert len(kept) == 1 and dropped == {"judge": 1}
    assert spectool_error(check_unified(PARALLEL)) is None
    assert spectool_error({"tool_records": [{"error": "bad_arguments"}]}) == "IAN/IAT"


def test_verl_rows_round_trip_our_tasks(tmp_path):
    task = Task("t-1", {"question": "2+3?", "answer": 5, "mode": "ü"})
    row = task_to_verl(task, "word_problems", "train", 0, [{"role": "user", "content": "2+3?"}])
    assert row["data_source"] == "interact_word_problems" and row["reward_model"]["ground_truth"] == "5"
    write_rows(tmp_path / "t.parquet", [row, task_to_verl(Task("t-2", {"q": [1, 2]}), "x", "test", 1, [])])
    back = [verl_to_task(r, i) for i, r in enumerate(read_rows(tmp_path / "t.parquet"))]
    assert back == [task, Task("t-2", {"q": [1, 2]})]
    foreign = verl_to_task({"data_source": "gsm8k", "prompt": [{"role": "user", "content": "q"}],
                            "reward_model": {"ground_truth": "7"}, "extra_info": {"index": 3}})
    assert foreign == Task("gsm8k-3", {"prompt": [{"role": "user", "content": "q"}], "answer": "7", "data_source": "gsm8k"})


def test_env_tasks_to_verl():
    import rltrain.envs  # noqa: F401

    rows = env_tasks_to_verl("function_gym", "test", 3)
    assert len(rows) == 3 and rows[0]["prompt"] and rows[0]["extra_info"]["split"] == "test"
    assert [verl_to_task(r).task_id for r in rows] == [r["extra_info"]["task_id"] for r in rows]


def test_data_cli_convert_and_filter(tmp_path, capsys):
    from rltrain.data.cli import add_command

    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers())
    src = tmp_path / "in.jsonl"
    write_rows(src, [{**PARALLEL, "conversation": [{**PARALLEL["conversation"][0], "lang": "fr"}, *PARALLEL["conversation"][1:]]}])
    args = parser.parse_args(["data", "convert", str(src), str(tmp_path / "out.json"), "--to", "sharegpt"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "conversation[].lang (1x)" in out and "wrote 1 rows" in out
    assert read_rows(tmp_path / "out.json")[0]["conversations"][0]["from"] == "human"
    args = parser.parse_args(["data", "filter", str(src), str(tmp_path / "kept.jsonl"), "--min-reward", "1"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out) == {"kept": 0, "dropped": {"reward": 1}}


def test_bad_file_type_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="jsonl"):
        write_rows(tmp_path / "x.csv", [])


def test_dedupe_ignores_call_ids_and_leaves_rows_intact():
    row = check_unified(PARALLEL)
    row["conversation"][1]["tool_calls"][0]["id"] = "call_0_0"
    twin = check_unified(PARALLEL)
    twin["unique_trajectory_id"] = "other"
    kept, dropped = filter_rows([row, twin], FilterRules())
    assert dropped == {"duplicate": 1}
    assert kept[0]["conversation"][1]["tool_calls"][0]["id"] == "call_0_0"
