"""The simulated customer of the multi-turn CRM tasks, as one `UserRequest` for either backend.

The customer holds the task's facts (a case number, an email, a reason, ...) and reveals them one at a time,
only when asked, never more than `MAX_USER_TURNS` replies, and says `STOP` (`###STOP###`) when done
(CRMArena-Pro's interactive setting, spec §6.4).

- LLM backend (the default for training: `users.backend: vllm|openai`): the system prompt below, with persona,
  goal and facts; the agent's words are role "user", the customer's own earlier replies role "assistant".
- Rules backend (`crm.customer`, tests and CI): deterministic and truthful. Each fact whose question words
  (`fact["ask"]`) occur in a question of the agent (a sentence ending in "?") is revealed with its sentence
  (`fact["say"]`), in task order. A question about nothing the customer holds gets "I don't know that; ...".
  A message with no question ends the conversation with `###STOP###` (the agent said it is done). The replies
  hold only fact sentences and fixed phrases, so they can never contradict the task's facts.
"""

from __future__ import annotations

import re
from typing import Any

from rltrain.users import USER_RULES, UserRequest

STOP = "###STOP###"
MAX_USER_TURNS = 10

SYSTEM = """You role-play a customer contacting a company's support agent. Persona: {name}, {style}.
Your goal: {goal}.
Facts you know (reveal each one only when the agent asks for it, one at a time, word for word):
{facts}
Rules: never invent other facts; if asked something not listed, say you don't know. Keep replies short.
When the agent has finished your request, or tells you it cannot be done, reply with exactly {stop}."""

_QUESTION = re.compile(r"[^.?!\n]*\?")


def customer_request(task: dict[str, Any], transcript: list[dict[str, str]]) -> UserRequest:
    """The request for the customer's next reply; `transcript` is the conversation seen from the agent's side
    (role "assistant" = agent, role "user" = customer), so it is flipped here for the simulator."""
    facts = "\n".join(f"- {key}: {fact['value']}" for key, fact in task["facts"].items()) or "- (none)"
    system = SYSTEM.format(name=task["persona"]["name"], style=task["persona"]["style"],
                           goal=task["instruction"] or task["prompt"], facts=facts, stop=STOP)
    flipped = tuple({"role": "user" if m["role"] == "assistant" else "assistant", "content": m["content"]}
                    for m in transcript)
    return UserRequest(hat="user", system=system, messages=flipped, rule="crm.customer",
                       context={"facts": task["facts"], "turn": sum(m["role"] == "user" for m in transcript)},
                       max_tokens=96)


@USER_RULES.register("crm.customer")
def rules_customer(request: UserRequest) -> str:
    """Reveal every fact asked for directly in the agent's last message; no question -> STOP (module doc)."""
    said = request.messages[-1]["content"] if request.messages else ""
    questions = " ".join(q.lower() for q in _QUESTION.findall(said))
    if not questions:
        return f"Thank you, that's all I needed. {STOP}"
    revealed = [fact["say"] for fact in request.context["facts"].values()
                if any(word in questions for word in fact["ask"])]
    return " ".join(revealed) if revealed else "I don't know that, sorry. I just need help with my request."
