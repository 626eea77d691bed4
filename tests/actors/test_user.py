"""The simulated-user service through real Ray actors: rules, cache, personas/seeds, replay, backpressure,
time-outs and retries, and the OpenAI-compatible backend against a local stand-in server (keys never leak)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from actors.common import remote_role
from actors.user import Secret, UserClient, UserService, call_seed, pick_persona
from rltrain.config.users import UsersConfig
from rltrain.users import USER_RULES, UserReply, UserRequest, UserSimError, user_metrics

pytestmark = pytest.mark.ray

KEY_ENV, WRONG_KEY_ENV = "RLTRAIN_TEST_USER_KEY", "RLTRAIN_TEST_USER_WRONG_KEY"
SECRET = "sk-test-7f3a9c1e5b2d4068-do-not-leak"
THIS = "tests.actors.test_user"  # imported by the user actors so that they know the rules below

# -- rules, registered in every process that imports this module (the user actors do, through rule_modules) ------

_lock = threading.Lock()
_state: dict[str, Any] = {"calls": 0, "running": 0, "peak": 0, "slept": set()}


@USER_RULES.register("test.echo")
def _echo(request: UserRequest) -> str:
    with _lock:
        _state["calls"] += 1
    return f"{request.context.get('answer')}|{request.system}"


@USER_RULES.register("test.slow")
def _slow(request: UserRequest) -> str:
    with _lock:
        _state["running"] += 1
        _state["peak"] = max(_state["peak"], _state["running"])
    time.sleep(0.3)
    with _lock:
        _state["running"] -= 1
    return "done"


@USER_RULES.register("test.sleep_once")
def _sleep_once(request: UserRequest) -> str:
    with _lock:
        first = request.episode not in _state["slept"]
        _state["slept"].add(request.episode)
    if first:
        time.sleep(2.0)
    return "awake"


@USER_RULES.register("test.hang")
def _hang(request: UserRequest) -> str:
    time.sleep(2.0)
    return "too late"


@USER_RULES.register("test.state")
def _report(request: UserRequest) -> str:
    """This process's counters (the test reads the actor's own state through a call)."""
    with _lock:
        out = json.dumps({k: v for k, v in _state.items() if k != "slept"})
        if request.context.get("reset"):
            _state.update(calls=0, running=0, peak=0)
    return out


def req(episode: str = "t#0", call: int = 0, rule: str = "test.echo", hat: str = "user", **context: Any) -> UserRequest:
    return UserRequest(hat=hat, system="You are the user.", messages=({"role": "user", "content": "hi"},), rule=rule,
                       context=context, episode=episode, call=call)


def state(client: UserClient, reset: bool = False) -> dict[str, Any]:
    """The actor-side counters of the test rules; a fresh episode id each time so the cache never answers."""
    reply = asyncio.run(client.respond(req(f"state-{time.monotonic_ns()}", rule="test.state", reset=reset)))
    return json.loads(reply.text)


@pytest.fixture(scope="module")
def _key_env() -> Iterator[None]:
    # Before the cluster starts: a local cluster's workers inherit the driver's environment.
    os.environ[KEY_ENV], os.environ[WRONG_KEY_ENV] = SECRET, "sk-wrong"
    yield
    os.environ.pop(KEY_ENV, None)
    os.environ.pop(WRONG_KEY_ENV, None)


@pytest.fixture(scope="module")
def cluster(_key_env: None, ray_cluster: None) -> None:
    """The module's Ray cluster, started after the key variables are set."""


@pytest.fixture
def start(cluster: None) -> Iterator[Any]:
    """start(**users config) -> (actor handles, client); actors are killed after the test."""
    import ray

    actors: list[Any] = []

    def _start(num_actors: int = 1, seed: int = 0, **overrides: Any) -> tuple[list[Any], UserClient]:
        cfg = UsersConfig(**{"timeout_s": 5.0, "backoff_s": 0.05, **overrides})
        remote = remote_role(UserService).options(num_cpus=0, max_restarts=1)
        handles = [remote.remote(i, cfg, seed, None, (THIS,)) for i in range(num_actors)]
        actors.extend(handles)
        ray.get([h.start.remote() for h in handles])
        return handles, UserClient(handles, cfg)

    yield _start
    for actor in actors:
        ray.kill(actor, no_restart=True)


def test_rules_through_an_actor_and_the_cache(start) -> None:
    import ray

    (actor,), client = start(cache_size=8)

    async def calls() -> list[UserReply]:
        return [await client.respond(req(answer=42)), await client.respond(req(answer=42)),
                await client.respond(req(answer=43))]

    first, again, other = asyncio.run(calls())
    assert (first.text, first.backend, first.attempts) == ("42|You are the user.", "rules", 1)
    assert first.latency_s > 0 and first.prompt_tokens == first.completion_tokens == 0
    assert (again.text, again.backend) == (first.text, "cache")  # identical request: answered from the cache
    assert (other.text, other.backend) == ("43|You are the user.", "rules")  # any field of a rules request keys it
    assert state(client)["calls"] == 2  # the rule itself ran for the two distinct requests only
    stats = ray.get(actor.stats.remote())
    assert stats["cache_hits"] == 1 and stats["backend_calls"] == 3  # echo x2 + the state call


def test_cache_is_bounded_and_can_be_off(start) -> None:
    _, client = start(cache_size=2)

    async def calls() -> list[str]:
        out = [(await client.respond(req(answer=a))).backend for a in (1, 2, 3)]  # 1 is evicted (LRU of 2)
        return out + [(await client.respond(req(answer=a))).backend for a in (3, 1)]

    assert asyncio.run(calls()) == ["rules", "rules", "rules", "cache", "rules"]
    _, off = start(cache_size=0)
    assert [asyncio.run(off.respond(req(answer=1))).backend for _ in range(2)] == ["rules", "rules"]


def test_personas_and_seeds_are_per_episode_and_stable_across_processes(start) -> None:
    personas = ("Persona A: terse.", "Persona B: chatty.", "Persona C: grumpy.")
    _, client = start(num_actors=2, personas=personas, cache_size=0)
    episodes = [f"task-{i}#{s}" for i in range(6) for s in range(2)]

    async def calls() -> list[tuple[str, str, str]]:
        out = []
        for episode in episodes:
            a, b = [await client.respond(req(episode, call=c)) for c in (0, 1)]
            judge = await client.respond(req(episode, call=2, hat="judge"))
            out.append((a.text, b.text, judge.text))
        return out

    for episode, (a, b, judge) in zip(episodes, asyncio.run(calls())):
        # pick_persona runs here, in the driver: same choice as in the actors (no per-process hash salt)
        assert a == b == f"None|{pick_persona(personas, episode)}\n\nYou are the user.", episode
        assert judge == "None|You are the user."  # judges get no persona
    assert len({pick_persona(personas, e) for e in episodes}) > 1  # episodes do get different personas
    seeds = {call_seed(7, req(e, c)) for e in episodes for c in range(3)}
    assert len(seeds) == 3 * len(episodes) and call_seed(7, req("x#0", 1)) == call_seed(7, req("x#0", 1))
    assert call_seed(7, req("x#0", 1)) != call_seed(8, req("x#0", 1))  # the run seed matters


def test_replay_gives_recorded_replies_and_names_a_missing_key(start, tmp_path: Path) -> None:
    _, live = start()
    requests = [req(f"task-{i}#0", call=c, answer=i * 10 + c) for i in range(3) for c in range(2)]
    replies = [asyncio.run(live.respond(r)) for r in requests]
    path = tmp_path / "trajectories.jsonl"
    lines = [{"step": 1, "task_id": f"task-{i}", "user_calls": [replies[2 * i + c].record(requests[2 * i + c]) for c in range(2)]}
             for i in range(3)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    (replayer,), replay = start(replay_from=str(path))
    again = [asyncio.run(replay.respond(r)) for r in requests]
    assert [r.text for r in again] == [r.text for r in replies] and {r.backend for r in again} == {"replay"}
    t0 = time.perf_counter()
    with pytest.raises(UserSimError) as err:
        asyncio.run(replay.respond(req("task-9#0", call=0)))
    assert "'task-9#0/0'" in str(err.value) and str(path) in str(err.value)
    assert time.perf_counter() - t0 < 2  # a missing key is final: not retried
    import ray

    assert ray.get(replayer.stats.remote())["retries"] == 0


def test_backpressure_bounds_calls_in_flight_and_drops_none(start) -> None:
    _, client = start(max_in_flight=2, cache_size=0)
    state(client, reset=True)

    async def burst(c: UserClient, n: int) -> list[UserReply]:
        return list(await asyncio.gather(*(c.respond(req(f"slow-{i}#0", rule="test.slow")) for i in range(n))))

    t0 = time.perf_counter()
    replies = asyncio.run(burst(client, 8))
    assert [r.text for r in replies] == ["done"] * 8  # every caller answered
    assert state(client)["peak"] == 2  # ...never more than max_in_flight at once on the actor
    assert time.perf_counter() - t0 >= 4 * 0.3 * 0.9  # 8 calls of 0.3 s, two at a time
    # the per-client bound: an actor that would take 8 at once, a client that sends 3
    _, wide = start(max_in_flight=8, client_max_in_flight=3, cache_size=0)
    state(wide, reset=True)
    assert len(asyncio.run(burst(wide, 9))) == 9
    assert state(wide)["peak"] == 3


def test_timeout_then_retry_then_give_up(start) -> None:
    import ray

    (actor,), client = start(timeout_s=0.5, retries=2)
    reply = asyncio.run(client.respond(req("sleepy#0", rule="test.sleep_once")))
    assert (reply.text, reply.attempts) == ("awake", 2)  # first attempt timed out, the retry answered
    assert ray.get(actor.stats.remote())["retries"] == 1
    with pytest.raises(UserSimError, match=r"failed 3 times on call hang#0/0: timed out after 0.5s \(users.timeout_s\)"):
        asyncio.run(client.respond(req("hang#0", rule="test.hang")))


def test_unknown_rule_is_a_clear_final_error(start) -> None:
    _, client = start()
    with pytest.raises(UserSimError, match="unknown user rule 'nope'"):
        asyncio.run(client.respond(req(rule="nope")))


def test_user_metrics_from_trajectories() -> None:
    class T:
        def __init__(self, calls: list[dict[str, Any]]) -> None:
            self.user_calls = calls

    calls = [UserReply("a", 10, 2, 0.5, "rules", 1).record(req()), UserReply("b", 0, 0, 0.1, "cache", 2).record(req(call=1))]
    assert user_metrics([T(calls), T([])]) == {"users/calls": 2.0, "users/tokens": 12.0, "users/latency_s": 0.3,
                                                "users/cache_rate": 0.5, "users/retried_rate": 0.5}
    assert user_metrics([T([])]) == {}


# -- the OpenAI-compatible backend against a stand-in server ------------------------------------------------------


class _Endpoint(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]] = []
    fail_first = {"flaky#0/0"}  # answered once with HTTP 500 that echoes the Authorization header

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization", "")
        if self.path != "/v1/chat/completions" or auth != f"Bearer {SECRET}":
            return self._send(401, {"error": {"message": f"bad key; you sent {auth}"}})
        type(self).bodies.append(body)
        last = body["messages"][-1]["content"]
        if last in self.fail_first:
            self.fail_first.discard(last)
            return self._send(500, {"error": f"overloaded, request had header Authorization: {auth}"})
        self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": f"pong {last}"},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_backend_records_tokens_and_never_leaks_the_key(start, endpoint: str, caplog) -> None:
    import ray

    caplog.set_level("DEBUG")
    (actor,), client = start(backend="openai", model="stand-in", base_url=endpoint, api_key_env=KEY_ENV, seed=5)
    flaky = UserRequest(hat="user", system="sys", messages=({"role": "user", "content": "flaky#0/0"},), episode="flaky#0")
    requests = [flaky, *(UserRequest(hat="user", system="sys", messages=({"role": "user", "content": f"q{i}"},),
                                     episode=f"e{i}#0", call=i, temperature=0.7) for i in range(3))]
    replies = [asyncio.run(client.respond(r)) for r in requests]
    assert [r.text for r in replies] == ["pong flaky#0/0", "pong q0", "pong q1", "pong q2"]
    assert all((r.prompt_tokens, r.completion_tokens, r.backend) == (11, 3, "openai:stand-in") for r in replies)
    assert replies[0].attempts == 2  # the HTTP 500 was retried
    sent = _Endpoint.bodies[-3:]
    assert [b["seed"] for b in sent] == [call_seed(5, r) for r in requests[1:]]  # per-call seeds reach the endpoint
    assert sent[0]["messages"][0] == {"role": "system", "content": "sys"} and sent[0]["temperature"] == 0.7

    # a rejected key: a final error that names the variable, not the key
    _, wrong = start(backend="openai", model="stand-in", base_url=endpoint, api_key_env=WRONG_KEY_ENV)
    with pytest.raises(UserSimError, match=f"HTTP 401.*environment variable {WRONG_KEY_ENV}") as err:
        asyncio.run(wrong.respond(requests[1]))
    assert "sk-wrong" not in str(err.value)  # the endpoint echoed the key; the error text is scrubbed

    # nowhere: records, reprs, pickles, the driver's log, the actors' logs
    records = json.dumps([r.record(q) for r, q in zip(replies, requests)])
    assert SECRET not in records and SECRET not in repr(client) and SECRET not in repr(actor)
    assert SECRET not in json.dumps(ray.get(actor.stats.remote()))
    assert SECRET not in caplog.text
    secret = Secret(SECRET, KEY_ENV)
    assert SECRET not in repr(secret) and SECRET not in str(secret)
    with pytest.raises(TypeError, match="never pickled"):
        import pickle

        pickle.dumps(secret)
    time.sleep(1.5)  # let the actors' stderr reach their log files
    logs = _ray_logs()
    assert "Bearer ***" in logs  # the 500's echo of the header was logged by the retry warning, scrubbed
    assert SECRET not in logs and "sk-wrong" not in logs


def test_openai_key_missing_fails_at_start(start, endpoint: str) -> None:
    import ray

    with pytest.raises(ray.exceptions.RayTaskError, match="environment variable RLTRAIN_TEST_NOT_SET, which is not set"):
        start(backend="openai", model="stand-in", base_url=endpoint, api_key_env="RLTRAIN_TEST_NOT_SET")


def _ray_logs() -> str:
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    return "\n".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file() and p.suffix in (".out", ".err", ".log"))


# -- the local-model backend (transformers engine: the same code path as vLLM, without its 40 s start) -----------


def test_local_model_backend_counts_tokens(cluster: None, tiny_model: Path) -> None:
    import ray
    from transformers import AutoTokenizer

    cfg = UsersConfig(backend="vllm", engine="transformers", dtype="float32", max_tokens=5, threads=1)
    actor = remote_role(UserService).options(num_cpus=0).remote(0, cfg, 0, str(tiny_model))
    try:
        assert ray.get(actor.start.remote(), timeout=300) == f"vllm:{Path(cfg.model or 'smollm2-135m-instruct').name}"
        request = UserRequest(hat="user", system="You are Bob.", messages=({"role": "user", "content": "Hello?"},), episode="e#0")
        reply, again = asyncio.run(_two(UserClient([actor], cfg), request))
        tokenizer = AutoTokenizer.from_pretrained(tiny_model)
        prompt = tokenizer.apply_chat_template([{"role": "system", "content": "You are Bob."}, *request.messages],
                                               add_generation_prompt=True, tokenize=False)
        assert reply.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert 1 <= reply.completion_tokens <= 5 and reply.backend.startswith("vllm:")
        assert (again.backend, again.text) == ("cache", reply.text)  # temperature 0: cached
    finally:
        ray.kill(actor, no_restart=True)


async def _two(client: UserClient, request: UserRequest) -> tuple[UserReply, UserReply]:
    return await client.respond(request), await client.respond(request)


# -- one service for every non-policy model: pool models by name (issue 14) -------------------------------------


def test_pool_models_are_served_by_name_and_recorded_for_the_ledger(start, endpoint: str) -> None:
    from rltrain.config.users import PoolModel
    from rltrain.costs import load_price_table, record_from_call

    pool = (PoolModel("gpt-4.1-mini", backend="openai", base_url=endpoint),
            PoolModel("gpt-4.1", backend="openai", base_url="http://127.0.0.1:9/v1"))  # nothing listens there
    (actor,), client = start(api_key_env=KEY_ENV, pool=pool, retries=0)
    ask = UserRequest(hat="pool", system="Be brief.", messages=({"role": "user", "content": "q#0"},), episode="p#0",
                      model="gpt-4.1-mini")
    reply = asyncio.run(client.respond(ask))
    assert (reply.text, reply.backend, reply.model, reply.prompt_tokens) == ("pong q#0", "openai:gpt-4.1-mini", "gpt-4.1-mini", 11)
    assert _Endpoint.bodies[-1]["model"] == "gpt-4.1-mini"
    record = record_from_call(reply.record(ask), "p#0", 0)
    assert (record.role, record.model, record.input_tokens, record.output_tokens) == ("pool", "gpt-4.1-mini", 11, 3)
    assert load_price_table("xrouter-2025").price(record).usd == pytest.approx(11 / 1e6 * 0.40 + 3 / 1e6 * 1.60)
    cached = asyncio.run(client.respond(ask))  # temperature 0: cached, and still names its model
    assert (cached.backend, cached.model) == ("cache", "gpt-4.1-mini")
    with pytest.raises(UserSimError, match="cannot reach"):  # the pool model's engine is down: an error, retried then raised
        asyncio.run(client.respond(UserRequest(hat="pool", system="", messages=ask.messages, episode="p#1", model="gpt-4.1")))
    with pytest.raises(UserSimError, match="add it to users.pool"):
        asyncio.run(client.respond(UserRequest(hat="pool", system="", messages=ask.messages, episode="p#2", model="o3")))
    import ray

    assert sorted(ray.get(actor.models.remote())) == ["gpt-4.1", "gpt-4.1-mini"]
