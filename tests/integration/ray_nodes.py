"""Private Ray nodes for tests: `ray start` processes on free ports with short temp dirs, stopped by process group.

Never `ray stop`: it kills every Ray cluster on the machine. A node started here is a `ray start --block` process in
a session of its own, so its raylet, GCS and workers share its process group and `kill_group` ends them all.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_group(proc: subprocess.Popen) -> None:
    # raylet and gcs_server were seen ignoring SIGTERM for over 15 s (PLATFORM.md): SIGTERM, wait, SIGKILL.
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                proc.wait()
                return
            proc.poll()
            time.sleep(0.2)
    proc.wait(timeout=5)


def processes_using(path: str, wait_s: float = 15) -> list[int]:
    """PIDs whose command line mentions `path` (a node's private temp dir) after up to `wait_s` seconds of waiting
    for them to exit: what a test must not leave behind."""
    deadline = time.monotonic() + wait_s
    while True:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if path.encode() in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
                except OSError:
                    pass
        if not pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.5)


def start_node(temp: str, log: Path, *, head_port: int, head: bool, num_cpus: int, resources: dict[str, float] | None = None,
               dashboard_port: int | None = None) -> subprocess.Popen:
    """`ray start --block` for a head (with the dashboard, i.e. the Jobs API, on `dashboard_port`) or a worker joining
    the head at 127.0.0.1:`head_port`. Every port is a free one: other clusters may run on this machine."""
    cmd = [str(VENV_BIN / "ray"), "start", "--block", f"--temp-dir={temp}", "--node-ip-address=127.0.0.1",
           f"--num-cpus={num_cpus}", f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
           f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
           f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}", "--disable-usage-stats"]
    if head:
        cmd += ["--head", f"--port={head_port}", f"--ray-client-server-port={free_port()}"]
        cmd += ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}"] if dashboard_port \
            else ["--include-dashboard=false"]
    else:
        cmd.append(f"--address=127.0.0.1:{head_port}")
    if resources:
        cmd.append(f"--resources={json.dumps(resources)}")
    # Jobs run their entrypoint in this environment (PLATFORM.md): the venv's python and ray come first on PATH.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    with log.open("w") as out:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


def wait_for_dashboard(address: str, procs: list[subprocess.Popen], logs: list[Path], nodes: int = 1,
                       timeout_s: float = 120) -> None:
    """Until the Jobs API answers and `nodes` nodes are alive; raises RuntimeError with the logs' tails otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = 0
        if (get_json(f"{address}/api/version") or {}).get("ray_version"):
            listed = get_json(f"{address}/api/v0/nodes?limit=100") or {}
            rows = listed.get("data", {}).get("result", {}).get("result", [])
            alive = sum(row.get("state") == "ALIVE" for row in rows)
            if alive >= nodes:
                return
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            tails = "\n".join(f"--- {log.name}:\n{log.read_text()[-1500:]}" for log in logs if log.exists())
            raise RuntimeError(f"the Ray nodes did not come up ({alive} of {nodes} alive):\n{tails}")
        time.sleep(1)
