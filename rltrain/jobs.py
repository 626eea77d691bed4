"""Run training on a remote Ray cluster through Ray's Jobs API: submit, status, logs, stop.

`rltrain submit CONFIG [overrides]` uploads this repository as the job's `working_dir` (large and private
folders excluded), runs `python -m rltrain.cli train CONFIG overrides... ray.address=auto` on the head node,
and streams the job's logs until it ends. The config is validated here first, so a typo fails in a second
instead of after the upload and the cluster's start-up.

Secrets are never forwarded implicitly: only a short allow-list of harmless environment variables travels
with the job, and a variable whose name looks like a credential (`*_API_KEY`, `*TOKEN*`, `*SECRET*`, ...)
is refused unless the user names it with `--env` *and* passes `--allow-secret-env`. Values are never logged.
On a shared cluster prefer the cluster's own secret store (a Kubernetes Secret, the node's environment).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rltrain.config import ConfigError, load_config

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
REPO_ROOT = Path(__file__).resolve().parents[1]

# gitwildmatch patterns relative to working_dir. Ray caps a working_dir package at 512 MiB, and a venv,
# run folders or model weights would blow it (or ship private data); the cluster installs its own packages.
EXCLUDES = [".venv/", "venv/", ".git/", "runs/", "bench/results/", "**/__pycache__/", "*.pyc", "*.egg-info/",
            ".pytest_cache/", ".ruff_cache/", ".cache/", "build/", "dist/", ".whl/", "*.safetensors", "*.gguf",
            "*.bin", "*.pt", "*.pth"]

# Forwarded when set locally: they change how the job behaves but carry no credentials.
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_ENABLE_HF_TRANSFER",
                 "TOKENIZERS_PARALLELISM", "RLTRAIN_CACHE")
FORWARDED_PREFIXES = ("VLLM_", "NCCL_")

_SECRET_PARTS = ("TOKEN", "SECRET", "PASSW", "CREDENTIAL", "APIKEY", "PRIVATE")
_SECRET_WORDS = {"KEY", "AUTH", "PAT", "PASS", "PWD"}
_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


class JobsError(RuntimeError):
    """A jobs command could not do what was asked; the message says why and how to fix it."""


@dataclass(frozen=True)
class JobResult:
    job_id: str
    status: str
    """PENDING/RUNNING when not waited for; SUCCEEDED, FAILED or STOPPED at the end."""
    address: str


def is_secret_name(name: str) -> bool:
    """True for names that look like credentials: HF_TOKEN, OPENAI_API_KEY, AWS_SECRET_ACCESS_KEY, RAY_AUTH_TOKEN...

    TOKENIZERS_PARALLELISM is not one: the check looks at `_`-separated words, and TOKENIZERS is not TOKEN.
    """
    words = name.upper().split("_")
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(part in w and not w.startswith("TOKENIZER") for w in words for part in _SECRET_PARTS)


def _address(address: str | None) -> str:
    """The dashboard (Jobs API) address: argument, RAY_API_SERVER_ADDRESS, an http RAY_ADDRESS, or localhost."""
    if address:
        return address if "://" in address else f"http://{address}"
    ray_address = os.environ.get("RAY_ADDRESS", "")
    return os.environ.get("RAY_API_SERVER_ADDRESS") or (ray_address if ray_address.startswith("http") else DEFAULT_ADDRESS)


def _unreachable(address: str, err: Exception) -> JobsError:
    return JobsError(
        f"cannot reach the Ray dashboard (Jobs API) at {address} ({type(err).__name__}: {err}). Start or reach a "
        f"cluster first: on this machine `ray start --head --dashboard-host 127.0.0.1` (then --address "
        f"{DEFAULT_ADDRESS}); a cloud cluster: `ray up clusters/aws.yaml` then `ray dashboard clusters/aws.yaml` "
        f"(forwards port 8265 here); KubeRay: `kubectl port-forward svc/<cluster>-head-svc 8265:8265`. Then pass "
        f"--address http://127.0.0.1:8265 or set RAY_API_SERVER_ADDRESS.")


def connect(address: str | None = None) -> Any:
    """A JobSubmissionClient for the cluster, or JobsError saying how to start or reach one."""
    from ray.job_submission import JobSubmissionClient

    url = _address(address)
    try:
        return JobSubmissionClient(url)
    except (ConnectionError, OSError, ValueError) as err:
        raise _unreachable(url, err) from err


def _call(client: Any, job_id: str, fn: Callable[[], Any]) -> Any:
    """Run one client call; turn Ray's 404 RuntimeError into a JobsError that lists the cluster's recent jobs."""
    try:
        return fn()
    except RuntimeError as err:
        if "does not exist" not in str(err) and "404" not in str(err):
            raise
        try:
            recent = sorted(client.list_jobs(), key=lambda j: j.start_time or 0)[-5:]
            known = ", ".join(f"{j.submission_id or j.job_id} ({j.status})" for j in recent) or "none"
        except Exception:  # listing is a courtesy; the error below stands on its own
            known = "(could not list jobs)"
        raise JobsError(f"no job {job_id!r} on the cluster at {client.get_address()}. Recent jobs: {known}. "
                        f"Check the id printed by `rltrain submit` and the --address.") from err
    except (ConnectionError, OSError) as err:
        raise _unreachable(client.get_address(), err) from err


def forwarded_env(extra: Sequence[str] = (), allow_secret_env: bool = False,
                  environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables for the job's runtime_env.

    The allow-list (FORWARDED_ENV, VLLM_*, NCCL_*) travels when set locally, secrets excluded. `extra` holds
    `KEY=VALUE` or `KEY` (value taken from the local environment). A secret-looking name in `extra` needs
    `allow_secret_env`; one matched only by the allow-list is always dropped.
    """
    environ = dict(os.environ if environ is None else environ)
    env = {k: v for k, v in environ.items()
           if (k in FORWARDED_ENV or k.startswith(FORWARDED_PREFIXES)) and not is_secret_name(k)}
    for item in extra:
        key, sep, value = item.partition("=")
        if not key or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise JobsError(f"--env {item.split('=')[0]!r}: give KEY=VALUE or KEY (a valid variable name)")
        if not sep:
            if key not in environ:
                raise JobsError(f"--env {key}: {key} is not set here; give --env {key}=VALUE")
            value = environ[key]
        if is_secret_name(key) and not allow_secret_env:
            raise JobsError(f"--env {key}: this looks like a credential, and credentials are not sent with a job "
                            f"unless you also pass --allow-secret-env (the value then lies in the cluster's job "
                            f"table, readable by anyone with dashboard access). Prefer setting it on the cluster's "
                            f"nodes or a Kubernetes Secret.")
        env[key] = value
    return env


def runtime_env(working_dir: Path = REPO_ROOT, env: dict[str, str] | None = None) -> dict[str, Any]:
    """runtime_env for a training job: the repository as working_dir (minus EXCLUDES) and env_vars."""
    return {"working_dir": str(working_dir), "excludes": list(EXCLUDES), "env_vars": dict(env or {})}


def train_entrypoint(config: str, overrides: Sequence[str] = (), python: str = "python") -> str:
    """`python -m rltrain.cli train CONFIG overrides... ray.address=auto`, shell-quoted.

    `ray.address=auto` makes the job's driver join the cluster it runs on instead of starting its own; a
    ray.address the user gave wins.
    """
    tail = [] if any(o.startswith("ray.address=") for o in overrides) else ["ray.address=auto"]
    return shlex.join([*shlex.split(python), "-m", "rltrain.cli", "train", config, *overrides, *tail])


def submit_entrypoint(entrypoint: str, address: str | None = None, *, runtime_env: dict[str, Any] | None = None,
                      wait: bool = True, submission_id: str | None = None, metadata: dict[str, str] | None = None,
                      num_cpus: float | None = None, num_gpus: float | None = None, timeout_s: float | None = None,
                      out: TextIO | None = None) -> JobResult:
    """Submit any shell entrypoint; with `wait`, stream its logs to `out` until it ends and return the end status.

    Ctrl-C while streaming leaves the job running and says how to follow or stop it.
    """
    out = out or sys.stdout
    client = connect(address)
    url = client.get_address()
    try:
        job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, submission_id=submission_id,
                                   metadata=metadata, entrypoint_num_cpus=num_cpus, entrypoint_num_gpus=num_gpus)
    except (ConnectionError, OSError) as err:
        raise _unreachable(url, err) from err
    except RuntimeError as err:  # e.g. a duplicate submission id or an oversized working_dir
        raise JobsError(f"the cluster at {url} refused the job: {err}") from err
    print(f"rltrain: submitted job {job_id} to {url}", file=out, flush=True)
    if not wait:
        print(f"rltrain: follow it with `rltrain logs {job_id} --follow --address {url}`; "
              f"stop it with `rltrain stop {job_id} --address {url}`", file=out, flush=True)
        return JobResult(job_id, str(_call(client, job_id, lambda: client.get_job_status(job_id))), url)
    try:
        status = follow(client, job_id, out, timeout_s)
    except KeyboardInterrupt:
        print(f"\nrltrain: stopped following; job {job_id} keeps running. `rltrain logs {job_id} --follow "
              f"--address {url}` resumes, `rltrain stop {job_id} --address {url}` stops it", file=out, flush=True)
        raise
    return JobResult(job_id, status, url)


def follow(client: Any, job_id: str, out: TextIO, timeout_s: float | None = None) -> str:
    """Stream the job's logs until it ends; return its final status (JobsError after timeout_s)."""
    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    _call(client, job_id, lambda: client.get_job_status(job_id))  # a clear error for an unknown id
    try:
        asyncio.run(asyncio.wait_for(tail(), timeout_s))
    except (asyncio.TimeoutError, TimeoutError) as err:
        raise JobsError(f"job {job_id} did not finish within {timeout_s:g} s; it keeps running on the cluster "
                        f"(`rltrain stop {job_id}` stops it)") from err
    # The log socket can close a moment before the status turns terminal.
    deadline = time.monotonic() + 30
    while True:
        status = str(_call(client, job_id, lambda: client.get_job_status(job_id)))
        if status in _TERMINAL or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def status(job_id: str, address: str | None = None) -> dict[str, Any]:
    """The job's status, message, entrypoint and times as a dict."""
    client = connect(address)
    info = _call(client, job_id, lambda: client.get_job_info(job_id))
    return {"job_id": job_id, "status": str(info.status), "message": info.message, "entrypoint": info.entrypoint,
            "start_time": info.start_time, "end_time": info.end_time}


def logs(job_id: str, address: str | None = None, follow_logs: bool = False, out: TextIO | None = None) -> str:
    """Print the job's logs so far (or stream them until it ends with `follow_logs`); return its status."""
    out = out or sys.stdout
    client = connect(address)
    if follow_logs:
        return follow(client, job_id, out)
    out.write(_call(client, job_id, lambda: client.get_job_logs(job_id)))
    out.flush()
    return str(client.get_job_status(job_id))


def stop(job_id: str, address: str | None = None, wait_s: float = 60) -> str:
    """Ask the job to stop, wait up to wait_s for a terminal status, and return it."""
    client = connect(address)
    _call(client, job_id, lambda: client.stop_job(job_id))
    deadline = time.monotonic() + wait_s
    while True:
        current = str(client.get_job_status(job_id))
        if current in _TERMINAL or time.monotonic() > deadline:
            return current
        time.sleep(0.5)


def submit(config: str, address: str | None = None, overrides: Sequence[str] = (), *, wait: bool = True,
           env: Sequence[str] = (), allow_secret_env: bool = False, working_dir: str | Path | None = None,
           python: str = "python", submission_id: str | None = None, num_cpus: float | None = None,
           num_gpus: float | None = None, timeout_s: float | None = None, out: TextIO | None = None) -> JobResult:
    """Validate CONFIG with its overrides here, then run `rltrain train` for it as a Ray job on the cluster.

    Args:
        config: YAML config inside `working_dir` (it travels with it).
        address: the dashboard, e.g. http://127.0.0.1:8265; default RAY_API_SERVER_ADDRESS or localhost.
        overrides: dotted `key=value` overrides; `ray.address=auto` is appended.
        wait: stream the logs until the job ends (False: return once submitted).
        env: extra `KEY=VALUE`/`KEY` variables; secrets need `allow_secret_env`.
        working_dir: the folder uploaded as the job's working dir; default this repository.
        python: the Python that runs the entrypoint on the cluster (Ray runs it in the shell of `ray start`).
        num_cpus, num_gpus: resources reserved for the job's driver process.

    Raises:
        ConfigError: the config is invalid (nothing was submitted).
        JobsError: the cluster is unreachable or refused the job.
    """
    root = Path(working_dir or REPO_ROOT).resolve()
    path = Path(config).resolve()
    if not path.is_relative_to(root):
        raise JobsError(f"config {config!r} lies outside the uploaded working dir {root}; copy it into that folder "
                        f"(e.g. launch/configs/) or pass --working-dir with a folder that holds it")
    overrides = list(overrides)
    cfg = load_config(path, [*overrides, "ray.address=auto"])  # fail here, not after the upload
    if Path(cfg.model.name).expanduser().is_absolute() and not Path(cfg.model.name).expanduser().is_relative_to(root):
        print(f"rltrain: note: model.name={cfg.model.name} is a path; it must exist on the cluster's nodes",
              file=out or sys.stdout)
    job_env = forwarded_env(env, allow_secret_env)
    renv = runtime_env(root, job_env)
    print(f"rltrain: uploading {root} (excluding {', '.join(EXCLUDES[:6])}, ...); env: "
          f"{', '.join(sorted(job_env)) or 'none'}", file=out or sys.stdout, flush=True)  # names only, never values
    entry = train_entrypoint(str(path.relative_to(root)), overrides, python)
    return submit_entrypoint(entry, address, runtime_env=renv, wait=wait, submission_id=submission_id,
                             metadata={"rltrain_config": str(path.relative_to(root)), "rltrain_name": cfg.trainer.name},
                             num_cpus=num_cpus, num_gpus=num_gpus, timeout_s=timeout_s, out=out)


# --- command line ---------------------------------------------------------------------------------------------

_ADDRESS_HELP = f"Ray dashboard address (default: $RAY_API_SERVER_ADDRESS, an http $RAY_ADDRESS, or {DEFAULT_ADDRESS})"

SUBMIT_EXAMPLES = f"""\
examples:
  rltrain submit launch/configs/quickstart.yaml --address {DEFAULT_ADDRESS}
      Upload this repository, run `rltrain train` on the cluster, stream its logs until it ends.
  rltrain submit my.yaml rollout.num_gpus=1 learner.num_gpus=1 learner.num_learners=4 --no-wait
      Dotted overrides as for `train`; --no-wait prints the job id and returns.
  rltrain submit my.yaml --env WANDB_MODE=offline --env HF_TOKEN --allow-secret-env
      Extra environment variables; credentials travel only with --allow-secret-env.

Reach a cluster's dashboard first, e.g. `ray dashboard clusters/aws.yaml` or
`kubectl port-forward svc/<cluster>-head-svc 8265:8265` (see docs/operations.md).
Forwarded when set here: {', '.join(FORWARDED_ENV)}, VLLM_*, NCCL_* (never credentials).
"""


def _handle(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Print JobsError/ConfigError as one line and return exit code 2 instead of a traceback."""
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except ConfigError as err:
            print(f"rltrain: config error: {err}", file=sys.stderr)
        except JobsError as err:
            print(f"rltrain: {err}", file=sys.stderr)
        except KeyboardInterrupt:
            return 130
        return 2
    return run


def _exit_code(job_status: str) -> int:
    return 0 if job_status in ("SUCCEEDED", "PENDING", "RUNNING") else 1


@_handle
def _submit_cmd(args: argparse.Namespace) -> int:
    result = submit(args.config, args.address, args.overrides, wait=not args.no_wait, env=args.env,
                    allow_secret_env=args.allow_secret_env, working_dir=args.working_dir, python=args.python,
                    submission_id=args.job_id, num_cpus=args.num_cpus, num_gpus=args.num_gpus)
    print(f"rltrain: job {result.job_id}: {result.status}")
    return _exit_code(result.status)


@_handle
def _status_cmd(args: argparse.Namespace) -> int:
    info = status(args.job_id, args.address)
    for key, value in info.items():
        print(f"{key}: {value}")
    return 0


@_handle
def _logs_cmd(args: argparse.Namespace) -> int:
    final = logs(args.job_id, args.address, args.follow)
    return _exit_code(final) if args.follow else 0


@_handle
def _stop_cmd(args: argparse.Namespace) -> int:
    final = stop(args.job_id, args.address)
    print(f"rltrain: job {args.job_id}: {final}")
    return 0 if final in _TERMINAL else 1


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `submit`, `status`, `logs` and `stop` to the `rltrain` CLI; each sets `func(args) -> exit code`."""
    raw = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("submit", help="run a training job on a Ray cluster (Ray Jobs API)", formatter_class=raw,
                              epilog=SUBMIT_EXAMPLES,
                              description="Validate the config here, upload the repository as the job's working dir "
                                          "and run `rltrain train CONFIG ... ray.address=auto` on the cluster.")
    p.add_argument("config", help="YAML config inside the repository, e.g. launch/configs/quickstart.yaml")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. learner.lr=1e-6")
    p.add_argument("--address", help=_ADDRESS_HELP)
    p.add_argument("--no-wait", action="store_true", help="return once submitted instead of streaming the logs")
    p.add_argument("--env", action="append", default=[], metavar="KEY[=VALUE]",
                   help="an environment variable for the job (repeatable); KEY alone takes the local value")
    p.add_argument("--allow-secret-env", action="store_true",
                   help="allow credential-like --env names (HF_TOKEN, *_API_KEY): they are stored in the job table")
    p.add_argument("--working-dir", help="folder uploaded as the job's working dir (default: this repository)")
    p.add_argument("--python", default="python",
                   help="Python on the cluster that runs the job (default: python, as in the rayproject images)")
    p.add_argument("--job-id", help="submission id to use instead of a generated one")
    p.add_argument("--num-cpus", type=float, help="CPUs reserved for the job's driver process")
    p.add_argument("--num-gpus", type=float, help="GPUs reserved for the job's driver process (usually none)")
    p.set_defaults(func=_submit_cmd)

    for name, help_text, func in (("status", "show a submitted job's status", _status_cmd),
                                  ("logs", "print a submitted job's logs", _logs_cmd),
                                  ("stop", "stop a submitted job", _stop_cmd)):
        p = subparsers.add_parser(name, help=help_text, formatter_class=raw, description=help_text + ".",
                                  epilog=f"example:\n  rltrain {name} raysubmit_XXXX --address {DEFAULT_ADDRESS}")
        p.add_argument("job_id", help="the id printed by `rltrain submit` (raysubmit_...)")
        p.add_argument("--address", help=_ADDRESS_HELP)
        if name == "logs":
            p.add_argument("--follow", "-f", action="store_true", help="stream until the job ends")
        p.set_defaults(func=func)
