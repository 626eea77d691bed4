"""`rltrain serve`: a real OpenAI client against the endpoint (issue 14).

- the reply equals the checkpoint's greedy output (computed independently with transformers' generate);
- streaming and `usage` match the non-streamed reply;
- the server listens on localhost only;
- with a router config, `router_metadata.total_cost` equals the ledger's records for the request;
- with `--adapt`, a request's `session` adapts that session's δ (issue 18), and requests without one are untouched.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

openai = pytest.importorskip("openai")

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


class Running:
    """A ChatServer on its own event loop in a thread (as `rltrain serve` runs it), on a free port."""

    def __init__(self, server: Any) -> None:
        from rltrain.serve import start_server

        self.server, self.loop = server, asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.runner = asyncio.run_coroutine_threadsafe(start_server(server, "127.0.0.1", 0), self.loop).result(300)
        self.addresses = list(self.runner.addresses)
        self.url = f"http://127.0.0.1:{self.addresses[0][1]}/v1"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def plain(embedded_model: Path) -> Iterator[Running]:
    from rltrain.engines.hf_engine import HFEngine
    from rltrain.serve import ChatServer

    running = Running(ChatServer(embedded_model, "smollm2", HFEngine(str(embedded_model), dtype="float32", seed=0)))
    yield running
    running.close()


def test_reply_equals_the_checkpoints_greedy_output(plain: Running, embedded_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    client = openai.OpenAI(base_url=plain.url, api_key="unused")
    reply = client.chat.completions.create(model="smollm2", messages=QUESTION, temperature=0, max_tokens=24)
    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    model = AutoModelForCausalLM.from_pretrained(embedded_model, dtype=torch.float32)
    ids = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=24, do_sample=False)[0, ids.shape[1]:]
    expected = tokenizer.decode(out, skip_special_tokens=True)
    assert reply.choices[0].message.content == expected and "Paris" in expected
    assert reply.usage.prompt_tokens == ids.shape[1] and reply.usage.completion_tokens == len(out)
    assert reply.choices[0].finish_reason == "stop"
    assert [m.id for m in client.models.list().data] == ["smollm2"]

    stream = client.chat.completions.create(model="smollm2", messages=QUESTION, temperature=0, max_tokens=24, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert chunks[-1].usage.total_tokens == reply.usage.total_tokens


def test_listens_on_localhost_only(plain: Running) -> None:
    assert {host for host, *_ in plain.addresses} == {"127.0.0.1"}
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # no packet is sent; this picks the outward interface
        outward = probe.getsockname()[0]
    except OSError:
        outward = "127.0.0.1"
    finally:
        probe.close()
    if outward.startswith("127."):
        pytest.skip("this host has no non-loopback address to probe")
    with pytest.raises(OSError):
        socket.create_connection((outward, plain.addresses[0][1]), timeout=2).close()


def test_bad_requests_get_a_400_that_says_why(plain: Running) -> None:
    import httpx

    reply = httpx.post(f"{plain.url}/chat/completions", json={"messages": []}, timeout=30)
    assert reply.status_code == 400 and "non-empty list" in reply.json()["error"]["message"]


def test_sessions_adapt_delta_and_leave_other_requests_alone(plain: Running, embedded_model: Path) -> None:
    """Spec §5.1 through the endpoint: each request of a session is one more prefill of its δ (norm > 0 after the
    first); a request without a session equals the plain server's greedy reply; DELETE resets; a server without
    --adapt refuses a session with the fix."""
    import httpx

    from rltrain.adapt.vector import AdaptConfig
    from rltrain.engines.hf_engine import HFEngine
    from rltrain.serve import ChatServer

    engine = HFEngine(str(embedded_model), dtype="float32", seed=0, adapt=AdaptConfig(lr=0.1, steps=1))
    running = Running(ChatServer(embedded_model, "smollm2", engine, sessions=True))
    try:
        client = openai.OpenAI(base_url=running.url, api_key="unused")
        ask = dict(model="smollm2", messages=QUESTION, temperature=0, max_tokens=12)
        first = client.chat.completions.create(**ask, extra_body={"session": "ep-1"}).model_extra["session"]
        second = client.chat.completions.create(**ask, extra_body={"session": "ep-1"}).model_extra["session"]
        assert first["id"] == "ep-1" and first["prefills"] == 1 and first["adam_steps"] == 1 and first["delta_norm"] > 0
        assert second["prefills"] == 2 and second["adam_steps"] == 2
        shown = httpx.get(f"{running.url}/sessions/ep-1", timeout=30).json()
        assert shown["prefills"] == 2 and shown["delta_norm"] == pytest.approx(second["delta_norm"])
        base = client.chat.completions.create(**ask)
        assert "session" not in base.model_extra
        assert base.choices[0].message.content == plain_reply(plain, ask)  # no session: the base weights, untouched
        assert httpx.delete(f"{running.url}/sessions/ep-1", timeout=30).json() == {"id": "ep-1", "reset": True}
        assert httpx.get(f"{running.url}/sessions/ep-1", timeout=30).status_code == 404
        again = client.chat.completions.create(**ask, extra_body={"session": "ep-1"}).model_extra["session"]
        assert again["prefills"] == 1 and again["delta_norm"] == pytest.approx(first["delta_norm"])  # reset = fresh δ
    finally:
        running.close()
    refused = httpx.post(f"{plain.url}/chat/completions", json={"messages": QUESTION, "session": "ep-1"}, timeout=30)
    assert refused.status_code == 400 and "--adapt" in refused.json()["error"]["message"]


def test_adapt_flag_reaches_the_engine_and_the_server() -> None:
    """`rltrain serve MODEL --adapt --adapt-lr 0.05 --adapt-steps 2` builds an engine with that δ optimiser and a server
    that accepts sessions; without --adapt the server refuses them (nothing started here)."""
    import argparse

    from rltrain.serve import adapt_of, add_command, build_server

    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers())
    args = parser.parse_args(["serve", "smollm2-135m-instruct", "--engine", "transformers", "--adapt", "--adapt-lr",
                              "0.05", "--adapt-steps", "2"])
    server = build_server(args.target, engine="transformers", adapt=adapt_of(args))
    assert server.sessions and server.engine.adapt.lr == 0.05 and server.engine.adapt.steps == 2
    assert not build_server(args.target, engine="transformers").sessions


def plain_reply(plain: Running, ask: dict[str, Any]) -> str:
    client = openai.OpenAI(base_url=plain.url, api_key="unused")
    return client.chat.completions.create(**ask).choices[0].message.content


def test_router_metadata_usd_equals_the_ledgers_records(embedded_model: Path, tiny_model: Path, tmp_path: Path) -> None:
    """The routing loop behind the endpoint: the router's messages are scripted (no small model calls tools reliably),
    the pool model is a real (tiny) model served by the LLM service in-process, and the ledger prices every call."""
    from transformers import AutoTokenizer

    from rltrain.agent import ChatRenderer
    from rltrain.config.loader import build
    from rltrain.config.run import RunConfig
    from rltrain.serve import ChatServer
    from tests.test_agent import ScriptedEngine

    cfg = build(RunConfig, {
        "env": {"name": "router", "kwargs": {"pool": [{"name": "smollm2-135m-instruct", "description": "Small."}],
                                            "price_table": "synthetic-cpu", "pool_max_tokens": 8}},
        "users": {"backend": "rules", "engine": "transformers", "dtype": "float32",
                  "pool": [{"name": "smollm2-135m-instruct", "model": str(tiny_model)}]}})
    renderer = ChatRenderer(AutoTokenizer.from_pretrained(embedded_model))
    call = {"name": "call_smollm2_135m_instruct", "arguments": {"optimized_system_prompt": "Answer.", "temperature": 0}}
    select = {"name": "select_response", "arguments": {"model_call_name": "call_smollm2_135m_instruct"}}
    engine = ScriptedEngine(renderer, [f"<tool_call>{json.dumps(call)}</tool_call>", f"<tool_call>{json.dumps(select)}</tool_call>"])
    running = Running(ChatServer(embedded_model, "router", engine, cfg, run_dir=tmp_path))
    try:
        client = openai.OpenAI(base_url=running.url, api_key="unused")
        reply = client.chat.completions.create(model="router", messages=[{"role": "user", "content": "What is 3+4?"}])
        meta = reply.model_extra["router_metadata"]
        lines = [json.loads(line) for line in (tmp_path / "serve" / "costs.jsonl").read_text().splitlines()]
        mine = [r for r in lines if r["trajectory"] == meta["trajectory"]]
        pool = [r for r in mine if r["role"] == "pool"]
        assert meta["models_called"] == ["smollm2-135m-instruct"] and len(pool) == 1 and pool[0]["success"]
        assert meta["total_cost"] == pytest.approx(sum(r["usd"] for r in pool)) and meta["total_cost"] > 0
        assert pool[0]["input_tokens"] == meta["input_tokens"] and pool[0]["output_tokens"] == meta["output_tokens"] <= 8
        assert {r["role"] for r in mine} == {"pool", "policy"}  # the router's own turns are metered too
        content = reply.choices[0].message.content
        assert content and content in renderer.decode(engine.prompts[1])  # select_response returned what the router saw
    finally:
        running.close()
