"""The canonical tool template and the one-block append (issue 12 items 1 and 4; docs/tools.md "Template").

Qwen2.5's own template (fixtures/qwen2_5_chat_template.jinja, a copy; no weights needed) is set on the SmolLM2
tokenizer, which shares ChatML's special tokens.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from rltrain.agent import ChatRenderer
from rltrain.tools.templates import canonical_template, renders_tools

QWEN_TEMPLATE = (Path(__file__).parent / "fixtures" / "qwen2_5_chat_template.jinja").read_text()
SCHEMA = {"type": "function", "function": {"name": "lookup", "description": "Look a word up.",
                                           "parameters": {"type": "object", "properties": {"word": {"type": "string"}}}}}
HISTORY = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Define cat and dog."},
           {"role": "assistant", "content": '<tool_call>\n{"name": "lookup", "arguments": {"word": "cat"}}\n</tool_call>\n'
                                            '<tool_call>\n{"name": "lookup", "arguments": {"word": "dog"}}\n</tool_call>'}]
RESULTS = [{"role": "tool", "content": "cat: a small feline"}, {"role": "tool", "content": "dog: a canine"}]


@pytest.fixture(scope="module")
def smol(embedded_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_model)


@pytest.fixture(scope="module")
def qwen(smol):
    tokenizer = copy.deepcopy(smol)
    tokenizer.chat_template = QWEN_TEMPLATE
    return tokenizer


def test_smollm2_drops_tools_so_the_canonical_template_renders_them(smol) -> None:
    renderer = ChatRenderer(smol)
    assert not renders_tools(smol) and renderer.tool_template == canonical_template()
    text = renderer._text(HISTORY[:2], generation_prompt=True, tools=[SCHEMA])
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n") and '"name": "lookup"' in text
    assert "<tool_call>\n{\"name\": <function-name>" in text and text.endswith("<|im_start|>user\nDefine cat and dog.<|im_end|>\n"
                                                                             "<|im_start|>assistant\n")
    # Without tools the model's own template stays in charge (SmolLM2's default system prompt).
    assert "named SmolLM" in renderer._text(HISTORY[1:2], generation_prompt=True)


def test_canonical_template_renders_results_and_structured_calls_like_qwen(smol, qwen) -> None:
    """Canonical and Qwen agree on everything after the system turn (the canonical adds no 'You are Qwen')."""
    structured = [*HISTORY[:2], {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "lookup", "arguments": {"word": "cat"}}}]}, RESULTS[0]]
    ours = ChatRenderer(smol)._text(structured, generation_prompt=True, tools=[SCHEMA])
    theirs = qwen.apply_chat_template(structured, tools=[SCHEMA], tokenize=False, add_generation_prompt=True)
    assert ours.split("<|im_end|>\n", 1)[1] == theirs.split("<|im_end|>\n", 1)[1]
    assert '<|im_start|>assistant\n<tool_call>\n{"name": "lookup", "arguments": {"word": "cat"}}\n</tool_call><|im_end|>' in ours
    assert "<|im_start|>user\n<tool_response>\ncat: a small feline\n</tool_response><|im_end|>" in ours


@pytest.mark.parametrize("which", ["qwen", "canonical"])
def test_results_of_one_message_append_as_one_block(which: str, smol, qwen) -> None:
    """Qwen regroups consecutive tool messages into one user turn: one-by-one appends rewrite earlier tokens."""
    renderer = ChatRenderer(qwen if which == "qwen" else smol)
    assert (renderer.tool_template is None) == (which == "qwen")  # Qwen's own template renders tools
    block = renderer.continuation_ids(HISTORY, RESULTS, [SCHEMA])
    assert renderer.tokenizer.decode(block) == ("\n<|im_start|>user\n<tool_response>\ncat: a small feline\n</tool_response>\n"
                                                "<tool_response>\ndog: a canine\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    # The block, after the tokens of the conversation so far, equals one tokenization of the whole conversation.
    before = renderer._text(HISTORY, generation_prompt=False, tools=[SCHEMA])
    before = before[: before.rindex("<|im_end|>") + len("<|im_end|>")]  # where the policy's turn ended
    assert renderer.encode(before) + block == renderer.encode(renderer._text([*HISTORY, *RESULTS], True, [SCHEMA]))
    renderer.continuation_ids(HISTORY, RESULTS[:1], [SCHEMA])  # the first result alone is fine ...
    with pytest.raises(ValueError, match="prefix-stable"):  # ... but the second, appended after it, rewrites it
        renderer.continuation_ids([*HISTORY, RESULTS[0]], RESULTS[1], [SCHEMA])
