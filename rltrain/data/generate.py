"""`rltrain data generate`: APIGen-MT's two-phase verified data generation (spec §6.1) on envs with a state check.

Phase 1, blueprints. A proposer writes a blueprint (instruction q, ground-truth actions a_gt, expected outputs o_gt)
from a sampled context (task type, org, policy, tools, a few DB rows). Each proposal passes, in order:
  1. `format`: JSON with the required fields, known task type and tools, arguments that fit the tool schemas;
  2. `execution`: a_gt run on a fresh DB: no error, no policy violation, the state changes when actions are given;
  3. `committee`: `reviewers` reviewers vote pass/fail; a strict majority keeps it.
A failure's reasons go back to the proposer with the next attempt for the same slot (up to `attempts` per slot).
Phase 2, interplay. A simulated human holding q talks to the agent; the trajectory is kept only if its replay
(`rltrain.envs.crm.replay`) leaves the blueprint's final state and gives its outputs.

Proposer, reviewers and the simulated human all go through the LLM service (`rltrain.users.UserSim`), so the
blueprint source is the service's backend:
- `rules` (source "oracle"): the registered `crm.propose` / `crm.review` / `crm.customer` rules. The oracle proposer
  draws real tasks and, by slot, spoils the first attempt so that every filter sees rejects: slot kind 0 clean,
  1 a format error, 2 a policy-violating action, 3 a fact the action needs withheld (committee), 4 a wrong expected
  answer that only interplay catches, 5 broken JSON on every attempt. The feedback repairs kinds 1-3.
- `vllm` / `openai` (source "llm"): the same requests answered by a model (the embedded SmolLM2-135M on CPU).
The agent of phase 2 is the scripted agent (`rltrain.envs.crm.solver`, "oracle") or the policy through the
agent loop (`rltrain.agent.run_episode`, "policy").

Output: kept trajectories as unified rows (`rltrain.data.schema.messages_to_row`) in `<out>/trajectories.jsonl`, the
blueprints with their verdicts in `<out>/blueprints.jsonl`, and the per-stage yield in `<out>/yield.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rltrain.console import progress
from rltrain.envs.judge_parsing import JudgeError, ask_strict
from rltrain.users import USER_RULES, UserRequest, UserSim, UserSimError, parse_json_reply

STAGES = ("format", "execution", "committee", "interplay")
PROPOSE_TOKENS = 384
"""A proposer's reply budget: a blueprint with its facts and actions is about 150-300 tokens of JSON."""
REPLY_CHARS = 2000
"""How much of an unreadable proposal `blueprints.jsonl` keeps."""
SOURCES = {"rules": "oracle", "vllm": "llm", "openai": "llm"}

PROPOSE_SYSTEM = """You write ONE task blueprint for a CRM support agent, as JSON only, with these keys:
"type" ("{type}"), "prompt" (the customer's or analyst's first message), "facts" (what the customer reveals when
asked, name -> value), "actions" (the state-changing tool calls the agent must make, as [tool name, arguments]
pairs; [] for a question) and "answer" (the expected final answer, or null).
Tools: {tools}
{policy}
An example blueprint of this type, from ANOTHER company's data (do not copy its names, ids or values):
{example}
Your blueprint must use this company's data instead:
{rows}
{feedback}"""
REVIEW_SYSTEM = """You review a CRM task blueprint. Pass it only if the customer's facts are enough for the agent to
perform the actions, the actions follow the policy, and the expected answer matches the data.
Reply with JSON only: {"verdict": "pass" or "fail", "reason": "<one sentence>"}"""
REVIEWERS = ("grounded", "consistent", "answerable")
"""The oracle committee: one rule each (see `review_rule`)."""


# -- the state-checked env adapter (CRM) ----------------------------------------------------------------------


class CRMBlueprints:
    """What the pipeline needs from an env with a state check: contexts, checks, episodes, verification."""

    env_name = "crm"

    def __init__(self) -> None:
        from rltrain.envs.crm import tasks
        from rltrain.envs.crm.tools import ALL_TOOLS

        self.tasks = tasks
        self.tool_classes = {cls.name: cls for cls in ALL_TOOLS}

    def context(self, slot: int, seed: int) -> dict[str, Any]:
        """What the proposer of `slot` sees: task type, org (a TRAIN org: generated data never uses test DBs)."""
        rng = random.Random(f"generate-{seed}-{slot}")
        task_type = self.tasks.TASK_TYPES[slot % len(self.tasks.TASK_TYPES)]
        org, other = rng.sample(self.tasks.TRAIN_ORGS, 2)  # the rows shown are the org the blueprint runs against
        return {"slot": slot, "type": task_type, "org": org, "seed": seed, "rows": self.sample_rows(task_type, org),
                "example": self.example(task_type, other, rng)}

    def example(self, task_type: str, org: int, rng: random.Random) -> str:
        """A real blueprint of `task_type` on another org, as the proposer is asked to write one (a placeholder
        schema alone is copied verbatim by small models: 11 of 12 Qwen2.5-Coder-0.5B proposals did)."""
        task = self.tasks.draw_train_task(task_type, org, rng)
        return json.dumps({"type": task_type, "prompt": task["prompt"],
                           "facts": {name: fact["value"] for name, fact in task["facts"].items()},
                           "actions": task["expected"]["actions"], "answer": task["expected"]["answer"]})

    def sample_rows(self, task_type: str, org: int) -> str:
        from rltrain.envs.crm.db import build_org

        table = {"query": "orders", "text": "knowledge_articles", "workflow": "cases", "policy": "orders",
                 "confidentiality": "contacts"}[self.tasks.SKILLS[task_type]]
        cursor = build_org(org).execute(f"SELECT * FROM {table} LIMIT 4")
        columns = ", ".join(c[0] for c in cursor.description)
        return f"{table} ({columns}): " + "; ".join(json.dumps(list(r)) for r in cursor.fetchall())

    def complete(self, raw: dict[str, Any], ctx: dict[str, Any], source: str, attempt: int) -> dict[str, Any]:
        """A proposal -> a full task (the fields the proposer does not write get their defaults)."""
        task_type = str(raw.get("type", ctx["type"]))
        skill = self.tasks.SKILLS.get(task_type, "")
        given = raw.get("facts") if isinstance(raw.get("facts"), dict) else {}
        facts = {str(k): v if isinstance(v, dict) and {"value", "ask", "say"} <= set(v) else
                 {"value": str(v), "ask": [str(k).replace("_", " ").split()[0] if str(k).strip() else "detail"],
                  "say": f"My {str(k).replace('_', ' ')} is {v}."}
                 for k, v in given.items()}
        persona = raw.get("persona")
        if not (isinstance(persona, dict) and {"name", "style"} <= set(persona)):
            persona = {"name": "Alex", "style": "brief and polite"}
        answer = raw.get("answer")
        match = raw.get("match") or ("refusal" if skill == "confidentiality" else
                                     {"query": "number" if task_type != "top_product" else "exact",
                                      "text": "fuzzy"}.get(skill, "none"))
        return {
            "id": f"gen/{source}/{ctx['seed']}/{ctx['slot']}/a{attempt}", "type": task_type, "skill": skill,
            "multi_turn": task_type not in self.tasks.SINGLE_TURN, "org": ctx["org"], "template": -1,
            "policy_version": self._policy_version(), "prompt": str(raw.get("prompt", "")),
            "persona": persona, "instruction": str(raw.get("instruction") or raw.get("prompt", "")), "facts": facts,
            "expected": {"actions": raw.get("actions"), "answer": None if answer is None else str(answer), "match": match,
                         "secrets": [str(x) for x in raw.get("secrets") or []] if isinstance(raw.get("secrets"), list) else [],
                         "declines": bool(raw.get("declines")) or skill == "confidentiality"},
        }

    @staticmethod
    def _policy_version() -> str:
        from rltrain.envs.crm.policy import POLICY_VERSION

        return POLICY_VERSION

    @staticmethod
    def copy_errors(task: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
        """A blueprint that repeats the prompt's example (same message, actions and answer) is not new data, even
        where the other org's answer happens to hold here too (the knowledge base is shared)."""
        example = json.loads(ctx["example"])
        same = (task["prompt"].strip() == example["prompt"] and task["expected"]["actions"] == example["actions"]
                and task["expected"]["answer"] == example["answer"])
        return ["copies the example: write a blueprint from this company's rows"] if same else []

    def format_errors(self, task: dict[str, Any]) -> list[str]:
        from rltrain.tools.execution import schema_error

        errors = []
        if task["type"] not in self.tasks.SKILLS:
            errors.append(f"unknown type {task['type']!r}; use one of {', '.join(self.tasks.SKILLS)}")
        if not task["prompt"].strip():
            errors.append("empty prompt")
        actions = task["expected"]["actions"]
        if not isinstance(actions, list):
            return [*errors, "actions must be a list of [tool name, arguments] pairs"]
        for action in actions:
            if not (isinstance(action, list | tuple) and len(action) == 2 and isinstance(action[1], dict)):
                errors.append(f"action {action!r} is not a [tool name, arguments] pair")
            elif action[0] not in self.tool_classes or action[0] in ("query", "respond"):
                errors.append(f"action {action[0]!r} is not a state-changing tool")
            elif problem := schema_error(self.tool_classes[action[0]](), action[1]):
                errors.append(problem)
        if task["skill"] in ("query", "text") and not task["expected"]["answer"]:
            errors.append(f"a {task['skill']} task needs an expected answer")
        return errors

    def execution_errors(self, task: dict[str, Any]) -> list[str]:
        from rltrain.envs.crm.actions import apply_action
        from rltrain.envs.crm.db import fresh_db, snapshot

        conn = fresh_db(task["org"])
        before = snapshot(conn)
        for name, arguments in task["expected"]["actions"]:
            outcome = apply_action(conn, name, arguments)
            if outcome.error:
                return [f"{name} fails on a fresh DB: {outcome.observation}"]
        if task["expected"]["actions"] and snapshot(conn) == before:
            return ["the actions change nothing"]
        return []

    async def play(self, task: dict[str, Any], user: UserSim, agent: str, policy: Any = None) -> list[dict[str, Any]]:
        """Phase 2: one episode of the agent with the simulated human holding the blueprint; its chat messages."""
        from rltrain.envs.crm.env import CRMEnv
        from rltrain.envs.crm.solver import ScriptedAgent
        from rltrain.types import Task

        env = CRMEnv()
        env.bind_user(user, f"{task['id']}#0")
        messages, _ = env.reset(Task(task["id"], task))
        if agent == "oracle":
            return [messages[0], *await ScriptedAgent(env).run(messages)]
        return await policy(env, Task(task["id"], task))

    def verified(self, task: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The replayed outcome of a finished episode (state and outputs against the blueprint)."""
        from rltrain.data.schema import messages_to_row, row_to_trajectory
        from rltrain.envs.crm.replay import replay_outcome

        rendered = row_to_trajectory(messages_to_row(messages, self.tool_schemas(), task["id"])).messages
        return replay_outcome(task, rendered)["crm"]

    def tool_schemas(self) -> list[dict[str, Any]]:
        return [cls().schema()["function"] for cls in self.tool_classes.values()]


ADAPTERS: dict[str, Callable[[], CRMBlueprints]] = {"crm": CRMBlueprints}
"""Envs with a state check that `rltrain data generate` can run on."""


# -- the oracle proposer and committee (rules of the LLM service) ------------------------------------------------


SPOIL_KINDS = 6


@USER_RULES.register("crm.propose")
def propose_rule(request: UserRequest) -> str:
    """The oracle proposer: a real task, spoiled on the first attempt by slot kind (module doc)."""
    from rltrain.envs.crm import tasks

    ctx = request.context
    rng = random.Random(f"oracle-{ctx['seed']}-{ctx['slot']}")
    task = tasks.draw_train_task(ctx["type"], ctx["org"], rng)
    raw = {"type": task["type"], "prompt": task["prompt"], "instruction": task["instruction"], "facts": task["facts"],
           "actions": task["expected"]["actions"], "answer": task["expected"]["answer"],
           "secrets": task["expected"]["secrets"], "declines": task["expected"]["declines"], "persona": task["persona"]}
    kind = ctx["slot"] % SPOIL_KINDS
    if kind == 5:
        return "Here is a blueprint: {type: " + task["type"]  # never valid JSON: rejected at format on every attempt
    if request.context["attempt"] > 0:
        return json.dumps(raw)  # the feedback named the problem: the clean blueprint
    if kind == 1:
        raw["actions"] = [["refund_order", {"order": "ORD-0001"}]]
    elif kind == 2:
        conn = _org(ctx["org"])
        order = conn.execute("SELECT id, amount FROM orders WHERE status = 'Pending'").fetchone()
        raw["actions"] = [["issue_refund", {"order_id": order[0], "amount": order[1], "reason": "late"}]]
        raw["declines"] = False
    elif kind == 3:
        raw["facts"] = {}  # the customer cannot give what the actions need
        if not raw["actions"]:
            raw["answer"] = None
    elif kind == 4 and raw["answer"] is not None:
        raw["answer"] = _wrong(raw["answer"])
    return json.dumps(raw)


def _org(seed: int) -> Any:
    from rltrain.envs.crm.db import build_org

    return build_org(seed)


def _wrong(answer: str) -> str:
    try:
        return f"{float(answer) + 1:.2f}"
    except ValueError:
        return answer + " (see the internal wiki)"


@USER_RULES.register("crm.review")
def review_rule(request: UserRequest) -> str:
    """One oracle reviewer, by `context["reviewer"]`:
    grounded: multi-turn tasks with actions hold facts, and every fact value feeds an action argument or the answer;
    consistent: declining tasks have no actions and workflow tasks have some; confidential ones name a secret;
    answerable: single-turn tasks have an answer and a prompt that names what to look up, multi-turn tasks with
    actions give the customer facts to tell.
    """
    task, who = request.context["task"], request.context["reviewer"]
    expected = task["expected"]
    values = json.dumps(expected["actions"]) + str(expected["answer"])
    if who == "grounded":
        ok = not (task["multi_turn"] and expected["actions"] and not task["facts"])
        ok = ok and all(f["value"] in values for f in task["facts"].values() if task["skill"] in ("workflow", "policy"))
    elif who == "consistent":
        ok = (not expected["declines"] or not expected["actions"]) and (
            task["skill"] not in ("workflow",) or bool(expected["actions"])) and (
            task["skill"] != "confidentiality" or bool(expected["secrets"]))
    else:
        ok = (bool(task["facts"]) or not expected["actions"]) if task["multi_turn"] else (
            bool(expected["answer"]) and ("'" in task["prompt"] or "knowledge" in task["prompt"]))
    return json.dumps({"verdict": "pass" if ok else "fail", "reason": f"{who}: {'ok' if ok else 'check failed'}"})


# -- the pipeline ------------------------------------------------------------------------------------------------


@dataclass
class Stage:
    entered: int = 0
    passed: int = 0
    reasons: Counter = field(default_factory=Counter)

    def row(self, name: str) -> dict[str, Any]:
        rate = round(self.passed / self.entered, 4) if self.entered else None  # null, not NaN: strict JSON readers
        return {"stage": name, "entered": self.entered, "passed": self.passed, "yield": rate,
                "top_reasons": dict(self.reasons.most_common(3))}


def _verdict(reply: dict[str, Any]) -> tuple[bool, str]:
    """A reviewer's JSON reply as (passed, reason); JudgeError when the verdict is neither pass nor fail."""
    verdict = str(reply["verdict"]).strip().lower()
    if verdict not in ("pass", "fail"):
        raise JudgeError(f"verdict {reply['verdict']!r} is neither pass nor fail")
    return verdict == "pass", str(reply.get("reason") or "no reason given")


@dataclass
class Report:
    source: str
    agent: str
    slots: int
    stages: dict[str, Stage] = field(default_factory=lambda: {s: Stage() for s in STAGES})
    proposals: int = 0
    kept: int = 0
    seconds: float = 0.0
    replayed_ok: int | None = None
    """Kept trajectories that pass the state check again when replayed from the written file."""
    malformed_reviews: int = 0
    """Reviewers that abstained: none of their replies (retried twice) held a pass/fail verdict."""

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "agent": self.agent, "slots": self.slots, "proposals": self.proposals,
                "kept": self.kept, "replayed_ok": self.replayed_ok, "malformed_reviews": self.malformed_reviews, "kept_per_slot": round(self.kept / self.slots, 4) if self.slots else 0.0,
                "seconds": round(self.seconds, 2),
                "seconds_per_blueprint": round(self.seconds / self.proposals, 3) if self.proposals else 0.0,
                "stages": [self.stages[s].row(s) for s in STAGES]}

    def table(self) -> str:
        lines = [f"source={self.source} agent={self.agent} slots={self.slots} proposals={self.proposals} "
                 f"kept={self.kept} replayed_ok={self.replayed_ok} malformed_reviews={self.malformed_reviews} ({self.seconds:.1f}s, {self.as_dict()['seconds_per_blueprint']}s per blueprint)",
                 f"{'stage':<10} {'entered':>7} {'passed':>6} {'yield':>6}  top reasons"]
        for s in STAGES:
            st = self.stages[s]
            rate = f"{st.passed / st.entered:.2f}" if st.entered else "-"
            lines.append(f"{s:<10} {st.entered:>7} {st.passed:>6} {rate:>6}  "
                         + "; ".join(f"{r[:60]} x{n}" for r, n in st.reasons.most_common(2)))
        return "\n".join(lines)


PolicyAgent = Callable[[Any, Any], Awaitable[list[dict[str, Any]]]]


async def generate(user: UserSim, source: str, slots: int, *, env: str = "crm", seed: int = 0, attempts: int = 2,
                   reviewers: int = 3, agent: str = "oracle", policy: PolicyAgent | None = None,
                   out: Path | None = None) -> tuple[Report, list[dict[str, Any]]]:
    """Run both phases for `slots` blueprint slots; returns the yield report and the kept unified rows."""
    from rltrain.data.schema import messages_to_row

    adapter = ADAPTERS[env]()
    report, kept_rows, records = Report(source, agent, slots), [], []
    t0 = time.perf_counter()
    bar = progress(slots, f"generate ({source} source)", "slot")
    for slot in range(slots):
        ctx = adapter.context(slot, seed)
        feedback: list[str] = []
        for attempt in range(attempts):
            report.proposals += 1
            task, verdict, reply = await _blueprint(adapter, user, ctx, attempt, feedback, source, reviewers, report)
            # the proposer's own words where its reply could not be read: what a prompt or model change must fix
            records.append({"slot": slot, "attempt": attempt, "verdict": verdict, "task": task,
                            **({"reply": reply[:REPLY_CHARS]} if task is None or verdict.startswith("format") else {})})
            if verdict != "accepted":
                feedback.append(verdict)
                continue
            stage = report.stages["interplay"]
            stage.entered += 1
            try:
                messages = await adapter.play(task, user, agent, policy)
            except UserSimError as err:  # the service failed, not the blueprint: named, never counted as a reject
                stage.reasons[f"infrastructure: {str(err)[:50]}"] += 1
                records[-1]["verdict"] = f"failed: {err}"
                break
            outcome = adapter.verified(task, messages)
            if outcome["success"] == 1.0:
                stage.passed += 1
                report.kept += 1
                row = messages_to_row(messages, adapter.tool_schemas(), f"{env}/{task['id']}")
                row["task"] = task
                kept_rows.append(row)
                records[-1]["verdict"] = "kept"
            else:
                reason = "final state differs" if not outcome["state_match"] else "outputs differ"
                stage.reasons[reason] += 1
                records[-1]["verdict"] = f"interplay: {reason}"
            break  # phase 2 has no retry: APIGen-MT's feedback loop is phase 1's
        bar.set_postfix(kept=report.kept, proposals=report.proposals, refresh=False)
        bar.update()
    bar.close()
    report.seconds = time.perf_counter() - t0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "trajectories.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept_rows))
        (out / "blueprints.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records))
        report.replayed_ok = replay_check(out / "trajectories.jsonl", env)
        (out / "yield.json").write_text(json.dumps(report.as_dict(), indent=2))
    return report, kept_rows


def replay_check(path: Path, env: str = "crm") -> int:
    """How many kept trajectories of a written file pass the state check again, replayed from the file alone."""
    from rltrain.data.io import read_rows
    from rltrain.data.schema import row_to_trajectory
    from rltrain.envs.crm.replay import replay_outcome

    del env  # one adapter today; the row's task says which env it plays
    return sum(replay_outcome(row["task"], row_to_trajectory(row).messages)["crm"]["success"] == 1.0
               for row in read_rows(path))


async def _blueprint(adapter: CRMBlueprints, user: UserSim, ctx: dict[str, Any], attempt: int, feedback: list[str],
                     source: str, reviewers: int, report: Report) -> tuple[dict[str, Any] | None, str, str]:
    """Propose and validate one blueprint: (task or None, "accepted" or the reason it failed, the proposer's reply)."""
    from rltrain.envs.crm.policy import POLICY_TEXT

    tools = ", ".join(f"{n}({', '.join(c.parameters['properties'])})" for n, c in adapter.tool_classes.items())
    note = ("Earlier attempts failed: " + " | ".join(feedback[-3:])) if feedback else ""
    request = UserRequest(hat="judge", rule="crm.propose", max_tokens=PROPOSE_TOKENS, temperature=0.7 if attempt else 0.0,
                          system=PROPOSE_SYSTEM.format(type=ctx["type"], tools=tools, policy=POLICY_TEXT, rows=ctx["rows"],
                                                       example=ctx["example"], feedback=note),
                          messages=({"role": "user", "content": f"Write the {ctx['type']} blueprint."},),
                          context={**ctx, "attempt": attempt, "feedback": list(feedback)},
                          episode=f"generate/{ctx['seed']}/{ctx['slot']}", call=attempt)
    reply = (await user.respond(request)).text
    raw = parse_json_reply(reply)
    fmt = report.stages["format"]
    fmt.entered += 1
    if raw is None:
        fmt.reasons["no JSON object"] += 1
        return None, "format: the reply holds no JSON object", reply
    task = adapter.complete(raw, ctx, source, attempt)
    if errors := adapter.format_errors(task) or adapter.copy_errors(task, ctx):
        fmt.reasons[errors[0].split(":")[0][:60]] += 1
        return task, f"format: {'; '.join(errors)}", reply
    fmt.passed += 1
    exe = report.stages["execution"]
    exe.entered += 1
    if errors := adapter.execution_errors(task):
        exe.reasons[errors[0].split(":")[0][:60]] += 1
        return task, f"execution: {'; '.join(errors)}", reply
    exe.passed += 1
    com = report.stages["committee"]
    com.entered += 1
    votes = []
    for k in range(reviewers):
        async def ask(retry: int, k: int = k) -> str:
            review = UserRequest(hat="judge", system=REVIEW_SYSTEM, rule="crm.review", max_tokens=96,
                                 messages=({"role": "user", "content": json.dumps(task)},),
                                 context={"task": task, "reviewer": REVIEWERS[k % len(REVIEWERS)]},
                                 temperature=0.0 if k == 0 and retry == 0 else 0.7,
                                 episode=f"generate/{ctx['seed']}/{ctx['slot']}/review{attempt}", call=k + retry * reviewers)
            return (await user.respond(review)).text

        # a reviewer whose replies never have the asked-for shape abstains: its malformed text is not a "fail" vote
        vote, _, _ = await ask_strict(ask, _verdict)
        if vote is None:
            report.malformed_reviews += 1
        else:
            votes.append(vote)
    if not votes or sum(v for v, _ in votes) * 2 <= len(votes):
        reason = next((r for v, r in votes if not v), "no reviewer replied with a verdict")
        com.reasons[reason[:60]] += 1
        return task, "committee: " + ("; ".join(r for v, r in votes if not v) or reason), reply
    com.passed += 1
    return task, "accepted", reply


# -- the command -------------------------------------------------------------------------------------------------


EXAMPLES = """\
examples:
  rltrain data generate launch/configs/crm.yaml --slots 24 --out runs/gen_oracle users.backend=rules
      The oracle source: scripted proposer and committee, rules customer, scripted agent; every filter rejects some.
  rltrain data generate launch/configs/crm.yaml --slots 6 --out runs/gen_llm
      The LLM source: the config's user-service model proposes, reviews and plays the customer.
  rltrain data generate launch/configs/crm.yaml --slots 6 --agent policy --out runs/gen_policy users.backend=rules
      Phase 2 with the config's policy model as the agent (the agent loop, in process).
"""


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `generate` under `rltrain data` (pass the `data` sub-parsers) or at top level."""
    p = subparsers.add_parser("generate", help="APIGen-MT blueprint + interplay data generation on an env with a state check",
                              epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", help="dotted config overrides (users.backend=rules, users.model=...)")
    p.add_argument("--slots", type=int, default=12, help="blueprint slots (each gets up to --attempts proposals)")
    p.add_argument("--attempts", type=int, default=2)
    p.add_argument("--reviewers", type=int, default=3)
    p.add_argument("--agent", choices=("oracle", "policy"), default="oracle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/generate")
    p.set_defaults(func=_generate_cmd)


def _generate_cmd(args: argparse.Namespace) -> int:
    from rltrain.config import load_config

    cfg = load_config(args.config, args.overrides)
    if cfg.env.name not in ADAPTERS:
        raise SystemExit(f"env.name={cfg.env.name!r} has no state check for data generation; supported: {sorted(ADAPTERS)}")
    source = SOURCES[cfg.users.backend]
    cap = cfg.users.max_tokens
    if source == "llm" and cap is not None and cap < PROPOSE_TOKENS:
        # a training config caps the customer's replies; a blueprint cut there is never valid JSON
        print(f"rltrain data generate: users.max_tokens={cap} would cut every blueprint short; using "
              f"{PROPOSE_TOKENS} for this command", file=sys.stderr)
        cfg = replace(cfg, users=replace(cfg.users, max_tokens=PROPOSE_TOKENS))
    report, _ = asyncio.run(_run(cfg, args, source))
    print(report.table())
    print(f"wrote {args.out}/trajectories.jsonl, blueprints.jsonl, yield.json")
    return 0


async def local_user_service(cfg: Any) -> tuple[UserSim, Callable[[], Awaitable[None]]]:
    """The LLM service in this process (one `UserService`, as `rltrain.router_eval` runs it): no Ray needed."""
    from actors.user import UserService
    from rltrain.preflight import check_users

    service = UserService(0, cfg.users, cfg.trainer.seed, check_users(cfg, True))
    await service.start()

    async def close() -> None:
        await service.backend.close()

    return service, close


async def local_policy(cfg: Any) -> tuple[PolicyAgent, Callable[[], Awaitable[None]]]:
    """The config's policy model as phase 2's agent: the rollout workers' agent loop and engine, in this process."""
    from transformers import AutoTokenizer

    from rltrain.agent import ChatRenderer, ToolSettings, run_episode
    from rltrain.engines import make_engine
    from rltrain.engines.base import Sampling
    from rltrain.models import resolve_model

    path, rc = str(resolve_model(cfg.model.name)), cfg.rollout
    engine = make_engine(rc.engine, path, dtype=rc.dtype, max_model_len=cfg.model.max_model_len,
                         gpu_memory_utilization=rc.gpu_memory_utilization, kv_cache_gib=rc.kv_cache_gib,
                         seed=cfg.trainer.seed, threads=rc.threads)
    await engine.start()
    renderer = ChatRenderer(AutoTokenizer.from_pretrained(path))
    sampling = Sampling(max_new_tokens=rc.max_new_tokens, temperature=rc.temperature, top_p=rc.top_p,
                        stop_token_ids=(renderer.end_of_turn_id,))

    async def play(env: Any, task: Any) -> list[dict[str, Any]]:
        traj = await run_episode(engine, env, renderer, task, env_name=cfg.env.name, group_id=0, sampling=sampling,
                                 max_turns=cfg.env.max_turns or env.max_turns, max_model_len=cfg.model.max_model_len,
                                 user=env.user, tools=ToolSettings(parser=cfg.env.tool_parser))
        return traj.messages

    return play, engine.shutdown


async def _run(cfg: Any, args: argparse.Namespace, source: str) -> tuple[Report, list[dict[str, Any]]]:
    user, close_user = await local_user_service(cfg)
    policy, close_policy = (await local_policy(cfg)) if args.agent == "policy" else (None, None)
    try:
        return await generate(user, source, args.slots, env=cfg.env.name, seed=args.seed, attempts=args.attempts,
                              reviewers=args.reviewers, agent=args.agent, policy=policy, out=Path(args.out))
    finally:
        for close in (close_user, close_policy):
            if close is not None:
                await close()
