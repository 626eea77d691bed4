"""`rltrain data generate` (APIGen-MT, spec §6.1) on `crm`: every filter keeps and rejects, failures feed back,
kept trajectories pass the state check when replayed from the written file."""

import asyncio
import json
from pathlib import Path

import pytest

from rltrain.data.generate import SPOIL_KINDS, STAGES, CRMBlueprints, generate, replay_check
from rltrain.envs.crm.tasks import TASK_TYPES

from ..conftest import RulesUser, ScriptedUser


def test_oracle_source_exercises_every_stage(tmp_path: Path) -> None:
    slots = 2 * SPOIL_KINDS * 2  # every spoil kind on several task types
    report, rows = asyncio.run(generate(RulesUser(), "oracle", slots, out=tmp_path))
    for stage in STAGES:
        s = report.stages[stage]
        assert 0 < s.passed < s.entered, (stage, s)  # kept and rejected items at every filter
    assert report.kept == len(rows) > 0 and report.replayed_ok == report.kept
    assert replay_check(tmp_path / "trajectories.jsonl") == report.kept
    records = [json.loads(x) for x in (tmp_path / "blueprints.jsonl").read_text().splitlines()]
    # a spoiled first attempt (kinds 1-3) is repaired by the feedback: its slot's second attempt is kept
    repaired = {r["slot"] for r in records if r["attempt"] == 1 and r["verdict"] == "kept"}
    assert repaired and all(slot % SPOIL_KINDS in (1, 2, 3) for slot in repaired)
    assert all(r["verdict"].startswith("format") for r in records if r["slot"] % SPOIL_KINDS == 5)
    summary = json.loads((tmp_path / "yield.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == list(STAGES) and summary["kept"] == report.kept
    row = rows[0]
    assert row["task_instruction"] and row["tools"] and row["conversation"][0]["role"] == "user"
    assert {r["task"]["type"] for r in rows} <= set(TASK_TYPES)


def test_unusable_proposals_and_reviews_are_rejected_where_they_fail(tmp_path: Path) -> None:
    # an LLM source that writes no JSON, then JSON with an unknown tool: both stop at the format check
    user = ScriptedUser("I think a good task would be a refund.", '{"type": "refund_request", "prompt": "hi", '
                        '"actions": [["refund_everything", {}]]}', rules={"crm.propose"})
    report, rows = asyncio.run(generate(user, "llm", 1, attempts=2, out=tmp_path))
    assert report.stages["format"].entered == 2 and report.stages["format"].passed == 0 and not rows
    assert report.stages["execution"].entered == 0 and report.replayed_ok == 0
    summary = json.loads((tmp_path / "yield.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in yield.json"))
    assert summary["stages"][1]["yield"] is None  # a stage nothing entered: null, which every JSON reader accepts
    unreadable = json.loads((tmp_path / "blueprints.jsonl").read_text().splitlines()[0])
    assert unreadable["reply"] == "I think a good task would be a refund."  # the proposer's words, to see why
    # a proposer that repeats the prompt's worked example (another org's blueprint) adds no data: rejected by name
    example = CRMBlueprints().context(0, 0)["example"]
    report, rows = asyncio.run(generate(ScriptedUser(example, rules={"crm.propose"}), "llm", 1, attempts=1))
    assert report.stages["format"].reasons == {"copies the example": 1} and not rows
    # a committee that never answers with a verdict (each reviewer asked 3 times) abstains: the blueprint is rejected,
    # and the malformed reviews are counted apart from "fail" votes (issue 17's strict parsing)
    user = ScriptedUser(*["no opinion"] * 9, rules={"crm.review"})
    report, _ = asyncio.run(generate(user, "oracle", 1, attempts=1))
    assert report.stages["committee"].entered == 1 and report.stages["committee"].passed == 0
    assert report.malformed_reviews == 3 and "no reviewer replied with a verdict" in report.stages["committee"].reasons
    # a malformed first reply is asked again; the retry's verdict counts (two of three pass: kept by majority)
    user = ScriptedUser("no opinion", '{"verdict": "pass", "reason": "ok"}', '{"verdict": "maybe"}', "{}",
                        '{"verdict": "fail", "reason": "facts missing"}', '{"verdict": "PASS"}', rules={"crm.review"})
    report, _ = asyncio.run(generate(user, "oracle", 1, attempts=1))
    assert report.stages["committee"].passed == 1 and report.malformed_reviews == 0
    reviews = [r.call for r in user.requests if r.rule == "crm.review"]
    assert reviews == [0, 3, 1, 4, 7, 2]  # the retries of reviewer k are calls k + 3, k + 6


def test_malformed_llm_fields_are_rejected_not_crashing() -> None:
    weird = ['{"type": "case_count", "prompt": "How many cases?", "facts": [1, 2], "actions": [], "answer": 3, '
             '"persona": "bob"}',
             '{"type": "close_case", "prompt": "close it", "facts": {"case": "CAS-0001"}, '
             '"actions": [["update_case", {"case_id": "CAS-0001", "status": "Closed", "resolution": "ok"}]]}',
             '{"type": "sales_amount", "prompt": 5, "actions": null}']
    report, rows = asyncio.run(generate(ScriptedUser(*weird, rules={"crm.propose"}), "llm", 3, attempts=1))
    assert report.proposals == 3 and report.stages["format"].passed == 2 and report.stages["interplay"].entered == 2
    assert not rows  # the scripted agent cannot finish either task with these facts: nothing unverified is kept


def test_llm_source_lifts_a_reply_cap_that_would_cut_every_blueprint(monkeypatch, capsys) -> None:
    import argparse

    from rltrain.data import generate as gen

    seen = []

    async def run(cfg, _args, source):
        seen.append((cfg.users.max_tokens, source))
        return gen.Report(source, "oracle", 0), []

    monkeypatch.setattr(gen, "_run", run)
    args = argparse.Namespace(config="launch/configs/crm.yaml", slots=0, out="unused")
    for backend, expected in (("vllm", (gen.PROPOSE_TOKENS, "llm")), ("rules", (96, "oracle"))):
        args.overrides = [f"users.backend={backend}"]  # crm.yaml caps the customer's replies at 96 tokens
        assert gen._generate_cmd(args) == 0 and seen[-1] == expected
    assert f"users.max_tokens=96 would cut every blueprint short; using {gen.PROPOSE_TOKENS}" in capsys.readouterr().err
