"""Ray Jobs API round trip on a private head node: submit, stream logs, status, stop, clear errors.

The head is a `ray start --head --block` process in its own process group, on free ports and a short temp dir
under /tmp (AF_UNIX socket paths must stay under 107 bytes); the test kills that group at the end and never
runs `ray stop`, which would kill every Ray cluster on the machine.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rltrain import jobs

pytestmark = pytest.mark.ray
REPO = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_group(proc: subprocess.Popen) -> None:
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


@pytest.fixture(scope="module")
def head() -> Iterator[str]:
    """A private Ray head with the dashboard on 127.0.0.1; yields its Jobs API address."""
    temp = tempfile.mkdtemp(prefix="rlj-", dir="/tmp")
    dash = free_port()
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"}
    cmd = [str(Path(venv_bin) / "ray"), "start", "--head", "--block", f"--temp-dir={temp}", "--node-ip-address=127.0.0.1",
           f"--port={free_port()}", "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
           "--num-cpus=4", "--disable-usage-stats"]
    log = open(Path(temp) / "head.log", "w")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{address}/api/version", timeout=2) as resp:
                    if json.load(resp).get("ray_version"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not start: {(Path(temp) / 'head.log').read_text()[-2000:]}")
            time.sleep(1)
        yield address
    finally:
        _kill_group(proc)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_hello_job_streams_logs_and_succeeds(head: str) -> None:
    out = io.StringIO()
    result = jobs.submit_entrypoint(f"{sys.executable} -c \"print('hello from job')\"", head, out=out, timeout_s=120)
    assert result.status == "SUCCEEDED"
    assert "hello from job" in out.getvalue()
    assert jobs.status(result.job_id, head)["status"] == "SUCCEEDED"
    logs = io.StringIO()
    assert jobs.logs(result.job_id, head, out=logs) == "SUCCEEDED"
    assert "hello from job" in logs.getvalue()


def test_stop_a_long_job(head: str) -> None:
    result = jobs.submit_entrypoint(f"{sys.executable} -c \"import time; print('started', flush=True); time.sleep(600)\"",
                                    head, wait=False, out=io.StringIO())
    assert result.status in ("PENDING", "RUNNING")
    assert jobs.stop(result.job_id, head) == "STOPPED"
    assert jobs.status(result.job_id, head)["status"] == "STOPPED"


def test_unknown_job_and_unreachable_cluster_say_what_to_do(head: str) -> None:
    with pytest.raises(jobs.JobsError, match="no job 'raysubmit_nope'.*Recent jobs"):
        jobs.status("raysubmit_nope", head)
    with pytest.raises(jobs.JobsError, match="no job"):
        jobs.stop("raysubmit_nope", head)
    with pytest.raises(jobs.JobsError, match="cannot reach the Ray dashboard.*port-forward.*8265"):
        jobs.status("raysubmit_x", f"http://127.0.0.1:{free_port()}")


def test_cli_commands_return_exit_codes(head: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="rltrain")
    jobs.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["status", "raysubmit_nope", "--address", head])
    assert args.func(args) == 2
    assert "no job 'raysubmit_nope'" in capsys.readouterr().err
    # a config error fails before anything is uploaded
    args = parser.parse_args(["submit", "launch/configs/tiny.yaml", "learner.micro_batch_size=3", "--address", head])
    assert args.func(args) == 2
    assert "try learner.micro_batch_size" in capsys.readouterr().err


@pytest.mark.slow
def test_submit_rltrain_train_tiny(head: str, tiny_model: Path, tmp_path: Path) -> None:
    """The real thing: the repository uploaded as working_dir, `rltrain train` joins the cluster, one step."""
    out = io.StringIO()
    result = jobs.submit(str(REPO / "launch/configs/tiny.yaml"), head,
                         [f"model.name={tiny_model}", f"trainer.output_dir={tmp_path}", "trainer.steps=1",
                          "rollout.num_workers=1", "learner.num_learners=1", "rollout.engine=transformers",
                          "rollout.dtype=float32", "env.eval_tasks=0", "trainer.save_final=false"],
                         python=sys.executable, out=out, timeout_s=300)
    logs = out.getvalue()
    assert result.status == "SUCCEEDED", logs[-3000:]
    assert "ray.address=auto" in logs and "step 1" in logs
    assert (tmp_path / "tiny" / "summary.json").is_file()
