"""The chat template used to render tools: the model's own where it renders `tools=`, else the canonical one.

`chatml_tools.jinja` is rltrain's canonical tool-capable ChatML (Hermes `<tool_call>` tags, Qwen2.5's layout;
docs/tools.md "Template"). A model's template renders tools when a probe tool's name appears in its output.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

CANONICAL_TEMPLATE_PATH = Path(__file__).parent / "chatml_tools.jinja"
_PROBE = {"type": "function", "function": {"name": "rltrain_probe_tool", "description": "probe",
                                           "parameters": {"type": "object", "properties": {}}}}


@functools.cache
def canonical_template() -> str:
    """The canonical template's Jinja source."""
    return CANONICAL_TEMPLATE_PATH.read_text()


def renders_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's own chat template shows the schemas passed as `tools=` (SmolLM2's drops them)."""
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tools=[_PROBE], tokenize=False,
                                             add_generation_prompt=True)
    except Exception:  # a template that fails on tools= does not render them
        return False
    return "rltrain_probe_tool" in text


def tool_template(tokenizer: Any) -> str | None:
    """The template to render tool episodes with: None (the tokenizer's own) where it renders tools, else canonical."""
    return None if renders_tools(tokenizer) else canonical_template()
