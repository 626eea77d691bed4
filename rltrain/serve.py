"""`rltrain serve RUN_OR_CHECKPOINT`: an OpenAI-compatible chat endpoint over a trained policy (docs/router.md).

A thin aiohttp layer over one rollout engine (`rltrain.engines.make_engine`: vLLM where installed, else
transformers):
- `POST /v1/chat/completions`: messages rendered with the model's chat template, one generation, `usage` with the
  exact token counts; `stream: true` answers as server-sent events (`chat.completion.chunk`, then `[DONE]`; the
  usage chunk when `stream_options.include_usage`). The engine generates whole turns, so a stream carries the reply
  in one content chunk.
- `GET /v1/models`: the served model.
- Test-time adaptation (`--adapt`, docs/adaptation.md): a request that names `"session": "<id>"` (OpenAI clients:
  `extra_body={"session": ...}`) adapts that session's vector δ on its prompt before decoding with it, and the reply
  carries `session` (δ's norm, Adam steps, prefills, last loss). `GET /v1/sessions/<id>` shows a session and
  `DELETE /v1/sessions/<id>` resets it (δ = 0, Adam zeroed; do it at each episode start). Requests without a
  session are decoded with the base weights, bitwise. Sessions expire after an hour unused.
- Router checkpoints (the run's config says `env.name: router`): each request runs the routing loop of training
  (`rltrain.envs.router`, up to 3 turns, pool models served by the LLM service in-process, `users.pool`) on the
  LAST user message, and the reply carries `router_metadata` (models called, tokens, USD, call history) as in
  xRouter's serving API (spec §4.6). Every call of the request is priced by a cost ledger
  (`runs/<name>/serve/costs.jsonl` when serving a run), and `router_metadata.total_cost` is the sum of the request's
  pool-call records there.

It binds to 127.0.0.1 unless `--host` says otherwise: the endpoint has no authentication.

RUN_OR_CHECKPOINT is a run folder (`runs/<name>`: its `final/` export, else its latest `step_<N>/hf`), a checkpoint
folder (`step_<N>`, served from its `hf/`), an HF model folder, or a model name (`smollm2-135m-instruct`). The
run's `config.yaml` (or `--config`) supplies the environment, the pool and the price table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import time
import uuid
from pathlib import Path
from typing import Any

from rltrain.adapt.vector import AdaptConfig
from rltrain.models import base_model_name

logger = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  rltrain serve runs/router
      The trained router on http://127.0.0.1:8000/v1 (OpenAI clients: base_url=http://127.0.0.1:8000/v1).
  rltrain serve runs/quickstart/final --port 8001 --engine transformers
      A plain policy: chat completions with usage and streaming.
  rltrain serve smollm2-135m-instruct --adapt --adapt-lr 0.1 --adapt-steps 1
      Per-session adaptation vectors: requests with {"session": "ep-1", ...} adapt δ for that session.
  curl -s 127.0.0.1:8000/v1/chat/completions -d '{"messages": [{"role": "user", "content": "What is 3+4?"}]}'
"""


def resolve_target(target: str) -> tuple[Path, Path | None]:
    """(HF model folder, config.yaml or None) for RUN_OR_CHECKPOINT; raises ValueError with the accepted forms."""
    path = Path(target).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():  # an HF folder, e.g. runs/<name>/final
            config = path.parent / "config.yaml"
            return path, config if config.is_file() else None
        if (path / "hf" / "config.json").is_file():  # a checkpoint step_<N>
            config = path / "config.yaml"
            return path / "hf", config if config.is_file() else None
        config = path / "config.yaml" if (path / "config.yaml").is_file() else None
        if (path / "final" / "config.json").is_file():
            return path / "final", config
        steps = sorted((p for p in path.glob("step_*") if (p / "hf" / "config.json").is_file()),
                       key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
        if steps:
            return steps[-1] / "hf", config or (steps[-1] / "config.yaml" if (steps[-1] / "config.yaml").is_file() else None)
        raise ValueError(f"{target} holds no model: expected an HF folder (config.json), a checkpoint (hf/config.json), or "
                         f"a run folder with final/ or step_<N>/hf/")
    from rltrain.models import resolve_model

    return resolve_model(target), None


class ChatServer:
    """The endpoint's state: engine, tokenizer, and for routers the env, the LLM service and the cost ledger.

    `sessions`: requests may name an adaptation session (the engine was built with δ sessions, `--adapt`).
    """

    def __init__(self, model_path: Path, model_id: str, engine: Any, cfg: Any | None = None, max_model_len: int = 4096,
                 run_dir: Path | None = None, sessions: bool = False) -> None:
        from transformers import AutoTokenizer

        from rltrain.agent import ChatRenderer

        self.model_path, self.model_id, self.engine, self.cfg = model_path, model_id, engine, cfg
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.renderer = ChatRenderer(self.tokenizer)
        self.max_model_len = max_model_len
        self.sessions = sessions
        self.router = cfg is not None and cfg.env.name == "router"
        self.ledger: Any = None
        self.service: Any = None
        if self.router:
            from rltrain.costs import Ledger, load_price_table

            kwargs = dict(cfg.env.kwargs)
            table = load_price_table(kwargs.get("price_table", getattr(getattr(cfg, "costs", None), "price_table", "synthetic-cpu")))
            self.ledger = Ledger(table, run="serve", run_dir=(run_dir / "serve") if run_dir is not None else None)

    async def start(self) -> None:
        await self.engine.start()
        if self.router:
            from actors.user import UserService

            # The LLM service in-process (no Ray): the same class the training run hosts as an actor.
            self.service = UserService(0, self.cfg.users, self.cfg.trainer.seed)
            await self.service.start(pool=True)

    async def close(self) -> None:
        """Release the engine and the pool's engines."""
        if self.service is not None:
            await self.service.shutdown()
        shutdown = getattr(self.engine, "shutdown", None)
        if shutdown is not None:
            await shutdown()

    # -- generation ---------------------------------------------------------------------------------------------

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """One chat completion (non-streaming shape)."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list of {role, content}")
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
        temperature = float(body.get("temperature", 0.0) if body.get("temperature") is not None else 0.0)
        top_p = float(body.get("top_p") or 1.0)
        session = self._session_of(body)
        if self.router:
            text, usage, metadata = await self._route(messages, max_tokens, temperature)
        else:
            text, usage, finish = await self._generate(messages, max_tokens, temperature, top_p, session)
            metadata = None
        reply = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
                 "model": self.model_id,
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                              "finish_reason": "stop" if metadata is not None else finish}],
                 "usage": usage}
        if metadata is not None:
            reply["router_metadata"] = metadata
        if session is not None:
            reply["session"] = {"id": session, **(await self.engine.session_summary(session) or {})}
        return reply

    def _session_of(self, body: dict[str, Any]) -> str | None:
        """The request's adaptation session id, checked against what this server can do."""
        session = body.get("session")
        if session is None:
            return None
        if not isinstance(session, str) or not session:
            raise ValueError(f"'session' must be a non-empty string (one id per episode), got {session!r}")
        if self.router:
            raise ValueError("'session' adapts a policy's δ; a router endpoint does not adapt: drop 'session'")
        if not self.sessions:
            raise ValueError("this server was started without --adapt, so it keeps no adaptation sessions: restart it "
                             "with `rltrain serve ... --adapt`, or drop 'session' from the request")
        return session

    async def _generate(self, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                        top_p: float, session: str | None = None) -> tuple[str, dict[str, int], str]:
        from rltrain.engines.base import Sampling

        ids = self.renderer.prompt_ids(messages)
        room = self.max_model_len - len(ids)
        if room < 1:
            raise ValueError(f"the prompt has {len(ids)} tokens, which leaves no room under max_model_len={self.max_model_len}")
        sampling = Sampling(max_new_tokens=min(max_tokens, room), temperature=temperature, top_p=top_p,
                            stop_token_ids=(self.renderer.end_of_turn_id,))
        gen = await (self.engine.generate(ids, sampling) if session is None else
                     self.engine.generate(ids, sampling, session=session))
        text = self.renderer.decode(gen.token_ids)
        usage = {"prompt_tokens": len(ids), "completion_tokens": len(gen.token_ids),
                 "total_tokens": len(ids) + len(gen.token_ids)}
        return text, usage, "stop" if gen.finish_reason == "stop" else "length"

    async def _route(self, messages: list[dict[str, str]], max_tokens: int,
                     temperature: float) -> tuple[str, dict[str, int], dict[str, Any]]:
        from rltrain.agent import run_episode, tool_settings
        from rltrain.costs import records_from_trajectory
        from rltrain.engines.base import Sampling
        from rltrain.envs import make_env
        from rltrain.types import Task

        query = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), None)
        if not query:
            raise ValueError("a router request needs a user message (the query it routes)")
        env = make_env("router", dict(self.cfg.env.kwargs))
        request_id = f"serve-{uuid.uuid4().hex[:12]}"
        task = Task(request_id, {"question": query, "answer": None, "source": "serve", "verifier": "string_match",
                                 "pool": list(env.pool)})
        traj = await run_episode(self.engine, env, self.renderer, task, env_name="router", group_id=0,
                                 sampling=Sampling(max_new_tokens=max_tokens, temperature=temperature,
                                                   stop_token_ids=(self.renderer.end_of_turn_id,)),
                                 max_turns=env.max_turns, max_model_len=self.max_model_len, user=self.service,
                                 tools=tool_settings(self.cfg.env, env, self.cfg.users))
        if traj.failed:
            raise RuntimeError(f"the routing loop failed: {traj.failure}")
        records = self.ledger.add(records_from_trajectory(traj, base_model_name(self.model_path), step=-1, run="serve"))
        meta = env.metadata()
        routes = getattr(env, "routes", [])
        if routes and routes[-1].route_to == ("user",):
            text = routes[-1].feedback
        else:  # no valid final answer: the last thing the router saw or said
            text = next((m["content"] for m in reversed(traj.messages) if m["role"] in ("assistant", "tool")), "")
        pool = [r for r in records if r.role == "pool"]
        router = [r for r in records if r.role == "policy"]
        metadata = {**meta, "total_cost": sum(r.usd or 0.0 for r in pool), "router_cost": sum(r.usd or 0.0 for r in router),
                    "router_tokens": sum(r.tokens for r in router), "records": [r.call_id for r in records],
                    "trajectory": f"{request_id}#0"}
        prompt = sum(r.input_tokens for r in router)
        completion = sum(r.output_tokens for r in router)
        return text, {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}, metadata

    # -- HTTP ---------------------------------------------------------------------------------------------------

    def app(self) -> Any:
        from aiohttp import web

        async def models(_: web.Request) -> web.Response:
            return web.json_response({"object": "list", "data": [{"id": self.model_id, "object": "model", "created": 0,
                                                                  "owned_by": "rltrain"}]})

        async def chat(request: web.Request) -> web.StreamResponse:
            try:
                body = await request.json()
                reply = await self.complete(body)
            except (ValueError, json.JSONDecodeError) as err:
                return web.json_response({"error": {"message": str(err), "type": "invalid_request_error"}}, status=400)
            except Exception as err:  # noqa: BLE001 - the client gets a 500 with the reason, the server keeps serving
                logger.exception("chat completion failed")
                return web.json_response({"error": {"message": f"{type(err).__name__}: {err}", "type": "server_error"}},
                                         status=500)
            if not body.get("stream"):
                return web.json_response(reply)
            return await self._stream(request, reply, bool((body.get("stream_options") or {}).get("include_usage")))

        async def session(request: web.Request) -> web.Response:
            sid = request.match_info["session"]
            if not self.sessions:
                return web.json_response({"error": {"message": "this server was started without --adapt: it keeps no "
                                                               "sessions", "type": "invalid_request_error"}}, status=400)
            if request.method == "DELETE":
                found = await self.engine.reset_session(sid)
                summary = {"id": sid, "reset": found}
            else:
                state = await self.engine.session_summary(sid)
                found, summary = state is not None, {"id": sid, **(state or {})}
            if not found:
                return web.json_response({"error": {"message": f"no session {sid!r} (never used, reset, or expired)",
                                                    "type": "not_found"}}, status=404)
            return web.json_response(summary)

        app = web.Application()
        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/v1/sessions/{session}", session)
        app.router.add_delete("/v1/sessions/{session}", session)
        return app

    async def _stream(self, request: Any, reply: dict[str, Any], include_usage: bool) -> Any:
        from aiohttp import web

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        base = {"id": reply["id"], "object": "chat.completion.chunk", "created": reply["created"], "model": reply["model"]}
        choice = reply["choices"][0]
        chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
                  {**base, "choices": [{"index": 0, "delta": {"content": choice["message"]["content"]}, "finish_reason": None}]},
                  {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}],
                   **({"router_metadata": reply["router_metadata"]} if "router_metadata" in reply else {})}]
        if include_usage:
            chunks.append({**base, "choices": [], "usage": reply["usage"]})
        for chunk in chunks:
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


async def start_server(server: ChatServer, host: str = "127.0.0.1", port: int = 8000) -> Any:
    """Start the engine and listen; returns the aiohttp runner (its `addresses` are the bound sockets)."""
    from aiohttp import web

    await server.start()
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def build_server(target: str, config: str | None = None, overrides: list[str] | None = None, engine: str = "auto",
                 dtype: str = "bfloat16", threads: int = 2, max_model_len: int = 4096,
                 adapt: AdaptConfig | None = None) -> ChatServer:
    """The server for `rltrain serve`; `adapt` (None: off) gives the engine per-session adaptation vectors."""
    from rltrain.config import load_config
    from rltrain.engines import make_engine

    model_path, found_config = resolve_target(target)
    config_path = config or (str(found_config) if found_config else None)
    cfg = load_config(config_path, overrides or []) if config_path else None
    run_dir = Path(config_path).parent if config_path and not config else None
    engine_obj = make_engine(engine, str(model_path), dtype=dtype, max_model_len=max_model_len, gpu_memory_utilization=0.3,
                             kv_cache_gib=1, seed=0, threads=threads, adapt=adapt)
    model_id = Path(target).name if Path(target).exists() else target
    return ChatServer(model_path, model_id, engine_obj, cfg, max_model_len, run_dir, sessions=adapt is not None)


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add `serve` to the `rltrain` CLI; it sets `func(args) -> exit code`."""
    p = subparsers.add_parser("serve", help="serve a run or checkpoint as an OpenAI-compatible chat endpoint",
                              description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="RUN_OR_CHECKPOINT", help="runs/<name>, runs/<name>/step_<N>, an HF folder or a model name")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of the run's config, e.g. users.pool=...")
    p.add_argument("--config", default=None, help="config YAML (default: the run's config.yaml)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; the endpoint has no auth)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--engine", choices=("auto", "vllm", "transformers"), default="auto")
    p.add_argument("--dtype", choices=("bfloat16", "float32", "float16"), default="bfloat16")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the engine")
    p.add_argument("--max-model-len", type=int, default=4096)
    p.add_argument("--adapt", action="store_true",
                   help="keep a test-time adaptation vector per request 'session' (docs/adaptation.md)")
    p.add_argument("--adapt-lr", type=float, default=AdaptConfig.lr, help="δ's Adam learning rate (spec §5.1: 0.1)")
    p.add_argument("--adapt-steps", type=int, default=AdaptConfig.steps, help="Adam steps per prompt (spec §5.1: 1)")
    p.set_defaults(func=_serve_cmd)


def adapt_of(args: argparse.Namespace) -> AdaptConfig | None:
    """δ's optimiser from `--adapt`, `--adapt-lr`, `--adapt-steps` (None without `--adapt`)."""
    return AdaptConfig(lr=args.adapt_lr, steps=args.adapt_steps) if args.adapt else None


def _serve_cmd(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s serve %(levelname)s %(name)s: %(message)s")
    server = build_server(args.target, args.config, args.overrides, args.engine, args.dtype, args.threads,
                          args.max_model_len, adapt_of(args))

    async def main() -> None:
        runner = await start_server(server, args.host, args.port)
        mode = "router" if server.router else "chat"
        print(f"serving {server.model_id} ({mode}) on http://{args.host}:{args.port}/v1", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
            await server.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return 0
