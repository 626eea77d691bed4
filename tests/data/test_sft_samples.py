"""Tests for rltrain/data/sft.py: the assistant-only loss mask, checked by hand on a two-turn sample with a tool call."""

import pytest

from rltrain.data.sft import SampleBuilder
from tests.data.fixtures import ROWS

TOOL = {"name": "add", "description": "Add two integers",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}
TWO_TURNS = {"unique_trajectory_id": "t1", "task_instruction": "Solve.", "tools": [TOOL], "conversation": [
    {"role": "user", "content": "2+3?"},
    {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "add", "arguments": {"a": 2, "b": 3}}}]},
    {"role": "tool", "content": "5"},
    {"role": "assistant", "content": "The answer is 5."}]}


@pytest.fixture(scope="module")
def tokenizer(embedded_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_model)  # SmolLM2: its template drops tools= -> canonical template


def _runs(tokenizer, sample):
    """The sample as maximal runs of equal mask: [(mask, [token strings])]."""
    runs: list[tuple[int, list[str]]] = []
    for tid, m in zip(sample.input_ids, sample.loss_mask):
        if not runs or runs[-1][0] != m:
            runs.append((m, []))
        runs[-1][1].append(tokenizer.decode([tid]))
    return runs


def test_loss_mask_by_hand(tokenizer):
    [sample] = SampleBuilder(tokenizer).build(TWO_TURNS)
    runs = _runs(tokenizer, sample)
    assert [m for m, _ in runs] == [0, 1, 0, 1]  # context, call turn, tool result, answer turn
    context, call, result, answer = (tokens for _, tokens in runs)
    # The first context ends with the generation prompt "<|im_start|>assistant\n": none of it is trained.
    assert context[-4:] == ["<|im_start|>", "ass", "istant", "\n"]
    assert "".join(context).startswith("<|im_start|>system\nSolve.\n\n# Tools\n")
    assert '{"type": "function", "function": {"name": "add"' in "".join(context)  # the schema, via tools=
    # The call turn: the canonical Hermes call, through the end-of-turn token, token by token.
    assert call == ["<", "tool", "_", "call", ">", "\n", '{"', "name", '":', ' "', "add", '",', ' "', "arguments", '":', ' {"',
                    "a", '":', " ", "2", ",", ' "', "b", '":', " ", "3", "}}", "\n", "</", "tool", "_", "call", ">", "<|im_end|>"]
    # Between the turns: the newline after <|im_end|>, the tool result as a user turn, the next generation prompt.
    assert "".join(result) == "\n<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    assert answer == ["The", " answer", " is", " ", "5", ".", "<|im_end|>"]
    assert sample.num_target_tokens == len(call) + len(answer) == 41


def test_layout_equals_one_tokenization_of_the_conversation(tokenizer):
    """Encoding piece by piece gives the ids of the whole rendered text here (no BPE merge across a boundary)."""
    builder = SampleBuilder(tokenizer)
    [sample] = builder.build(TWO_TURNS)
    text = "".join(t for t, _, _ in builder.segments(TWO_TURNS))
    assert sample.input_ids == tokenizer(text, add_special_tokens=False)["input_ids"]


def test_per_turn_expansion(tokenizer):
    full, = SampleBuilder(tokenizer).build(TWO_TURNS)
    first, second = SampleBuilder(tokenizer).build(TWO_TURNS, per_turn=True)
    assert (first.sample_id, second.sample_id) == ("t1---0", "t1---1")
    assert sum(first.loss_mask) == 34 and sum(second.loss_mask) == 7
    assert second.input_ids == full.input_ids
    assert first.input_ids == full.input_ids[: len(first.input_ids)] and first.loss_mask[-1] == 1


def test_empty_none_null_targets_dropped_with_count(tokenizer):
    row = {**TWO_TURNS, "conversation": [*TWO_TURNS["conversation"][:3], {"role": "assistant", "content": " None "},
                                         {"role": "user", "content": "and?"}, {"role": "assistant", "content": "null"}]}
    builder = SampleBuilder(tokenizer)
    [sample] = builder.build(row)
    assert sum(sample.loss_mask) == 34  # only the tool call turn
    assert builder.stats.dropped["empty_target"] == 2
    empty = {**TWO_TURNS, "conversation": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]}
    assert builder.build(empty) == [] and builder.stats.dropped["no_target"] == 1


def test_fixture_rows_and_length_cap(tokenizer):
    builder = SampleBuilder(tokenizer, max_length=60)
    assert builder.build(ROWS[1]) and not builder.build(ROWS[0])
    assert builder.stats.dropped["too_long"] == 1


def test_per_turn_works_where_the_template_rewrites_past_turns(tokenizer):
    """Templates such as Qwen3's drop past thoughts, so turn 1's text changes once turn 2 exists: one sample per
    trajectory is refused by name, one per turn is built from each turn's own rendering."""
    import copy

    forgetful = copy.copy(tokenizer)
    forgetful.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n"
        "{% if m.role == 'assistant' and not loop.last %}(earlier reply){% else %}{{ m.content }}{% endif %}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    row = {"unique_trajectory_id": "q", "task_instruction": "", "tools": [], "conversation": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "first"},
        {"role": "user", "content": "b"}, {"role": "assistant", "content": "second"}]}
    with pytest.raises(ValueError, match="per_turn"):
        SampleBuilder(forgetful).build(row)
    first, second = SampleBuilder(forgetful).build(row, per_turn=True)
    assert forgetful.decode([t for t, m in zip(second.input_ids, second.loss_mask) if m]) == "second<|im_end|>"
    assert "(earlier reply)" in forgetful.decode(second.input_ids)
    assert forgetful.decode([t for t, m in zip(first.input_ids, first.loss_mask) if m]) == "first<|im_end|>"
