"""`run` on the session's runtime image: built with the network off, started behind its proxy, checked, stopped.

Each test starts the real command (`python -m generator run`) in its own process group, as a
terminal would, and reads its lines as they come: the app must be reported ready and answer through
the proxy with the load balancer's headers and the platform's variables; an app whose readiness
path answers 503 must be reported with the path and the status and make `run` exit 1 after its
app_start_timeout_sec; Ctrl-C (SIGINT to the group) and SIGKILL must leave no container and no
process of `run` behind.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.app.test_app_image import runtime  # noqa: F401 (the session's runtime and build image, as a local reference)
from tests.conftest import ROOT
from tests.image_fixtures import podman
from tests.servers import free_port

pytestmark = [pytest.mark.image, pytest.mark.usefixtures("need_podman")]

APPS = ROOT / "tests" / "run_apps"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
LABEL = "flex-python.run"


class Run:
    """`generator run …` in its own process group; its output (stdout and stderr) line by line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "generator", "run", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first line (from now on, or already read) that matches; fails with the output so far."""
        for line in self.lines:
            if m := re.search(pattern, line):
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if m := re.search(pattern, line):
                return m
        pytest.fail(f"no line matching {pattern!r} within {timeout}s:\n" + "\n".join(self.lines[-60:]))

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def leftovers(pid: int, container: str) -> tuple[list[str], list[str]]:
    """Containers labelled with run's pid, and processes still naming its container (the reaper, `podman run`)."""
    names = podman("ps", "-a", "--filter", f"label={LABEL}={pid}", "--format", "{{.Names}}").stdout.split()
    procs = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if container in cmdline and entry.name != str(os.getpid()):
            procs.append(f"{entry.name}: {cmdline}")
    return names, procs


def gone(pid: int, container: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while (left := leftovers(pid, container)) != ([], []):
        assert time.monotonic() < deadline, f"left behind: {left}"
        time.sleep(0.5)


def fetch(url: str, headers: dict[str, str]) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def test_run_serves_through_the_proxy_with_the_platform_values(runtime: dict) -> None:  # noqa: F811
    app_yaml = yaml.safe_load((APPS / "echo" / "app.yaml").read_text())
    port = free_port()
    start = time.monotonic()
    run = Run(str(APPS / "echo"), "--runtime-image", runtime["ref"], "--port", str(port), "--project", "flex-test", "--version", "v7", "--https")
    try:
        container = run.wait_for(r"container (flex-run-\S+):", 600).group(1)
        run.wait_for(r"health \| ready after [\d.]+s: readiness check GET /ready passed 2 time", 120)
        run.wait_for(rf"run \| ready: http://127\.0\.0\.1:{port} ", 10)
        print(f"\nrun echo: ready {time.monotonic() - start:.1f}s after the command started (build included)")
        body = fetch(f"http://127.0.0.1:{port}/hello?x=1", {"X-Forwarded-For": "203.0.113.9"})
        headers = {k.lower(): v for k, v in body["headers"].items()}
        assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
        assert headers["x-forwarded-proto"] == "https"
        assert re.fullmatch(r"[0-9a-f]{32}/\d+;o=1", headers["x-cloud-trace-context"]), headers
        kept = fetch(f"http://127.0.0.1:{port}/again", {"X-Cloud-Trace-Context": "0123456789abcdef0123456789abcdef/42;o=1"})
        assert kept["headers"]["X-Cloud-Trace-Context"] == "0123456789abcdef0123456789abcdef/42;o=1"
        memory_mb = round(app_yaml["resources"]["memory_gb"] * 1024)
        assert body["env"] == {
            "GAE_INSTANCE": container,
            "GAE_MEMORY_MB": str(memory_mb),
            "GAE_SERVICE": app_yaml["service"],
            "GAE_VERSION": "v7",
            "GOOGLE_CLOUD_PROJECT": "flex-test",
            "PORT": "8080",
            "GREETING": app_yaml["env_variables"]["GREETING"],
        }
        limits = json.loads(podman("inspect", container).stdout)[0]["HostConfig"]
        assert limits["Memory"] == memory_mb * 1024 * 1024 and limits["NanoCpus"] == app_yaml["resources"]["cpu"] * 10**9, limits
        run.wait_for(r"proxy \| 127\.0\.0\.1 GET /hello\?x=1 → 200", 10)
        run.wait_for(r"app \| echo: answered /hello\?x=1", 10)
        run.wait_for(r"app \| echo: a line on stderr", 10)
        print(f"answered through the proxy: {headers['x-forwarded-for']!r}, proto {headers['x-forwarded-proto']}, env {body['env']}")
        os.killpg(run.proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group
        assert run.finish() == 130
        assert any("stopping (Ctrl-C): removing the container" in line for line in run.lines)
        gone(run.proc.pid, container, within=0.1)  # removed before run exited, not eventually
        print(f"Ctrl-C: exit 130, no container or process of {container} left")
    finally:
        run.kill()


def test_run_reports_a_readiness_path_answering_503_and_exits_1(runtime: dict) -> None:  # noqa: F811
    run = Run(str(APPS / "not-ready"), "--runtime-image", runtime["ref"], "--port", str(free_port()))
    try:
        container = run.wait_for(r"container (flex-run-\S+):", 600).group(1)
        started = time.monotonic()
        run.wait_for(r"health \| not ready: readiness check GET /readiness_check: HTTP 503 ", 30)
        code = run.finish(timeout=60)
        waited = time.monotonic() - started
    finally:
        run.kill()
    assert code == 1, run.lines[-20:]
    assert any("never became ready within app_start_timeout_sec (6s): readiness check GET /readiness_check: HTTP 503" in line for line in run.lines)
    assert any(line.startswith("error: ") and "did not become ready" in line for line in run.lines)
    assert 4 <= waited <= 30, waited
    gone(run.proc.pid, container, within=0.1)
    print(f"\nnot-ready: exit {code} after {waited:.1f}s; {[line for line in run.lines if 'HTTP 503' in line][-1]}")


def test_sigkill_of_run_leaves_no_container_or_process(runtime: dict) -> None:  # noqa: F811
    """SIGKILL cannot be caught: the reaper, holding run's pipe, removes the container when the kernel closes it."""
    port = free_port()
    run = Run(str(APPS / "echo"), "--runtime-image", runtime["ref"], "--port", str(port))
    try:
        container = run.wait_for(r"container (flex-run-\S+):", 600).group(1)
        run.wait_for(r"run \| ready: ", 120)
        assert podman("ps", "--filter", f"name={container}", "--format", "{{.Names}}").stdout.split() == [container]
        os.kill(run.proc.pid, signal.SIGKILL)  # run alone: its children (the reaper, podman run) are in their own sessions
        run.proc.wait()
        start = time.monotonic()
        gone(run.proc.pid, container, within=30)
        print(f"\nSIGKILL: the container {container} and every process naming it gone {time.monotonic() - start:.1f}s later")
    finally:
        run.kill()


def test_sigterm_of_run_stops_and_removes_like_ctrl_c(runtime: dict) -> None:  # noqa: F811
    run = Run(str(APPS / "echo"), "--runtime-image", runtime["ref"], "--port", str(free_port()))
    try:
        container = run.wait_for(r"container (flex-run-\S+):", 600).group(1)
        run.wait_for(r"run \| ready: ", 120)
        run.proc.send_signal(signal.SIGTERM)  # what a process manager or `kill` sends
        assert run.finish() == 128 + signal.SIGTERM
        assert any("stopping (SIGTERM): removing the container" in line for line in run.lines)
        gone(run.proc.pid, container, within=0.1)
        print(f"\nSIGTERM: exit {run.proc.returncode}, {container} removed before run exited")
    finally:
        run.kill()


@pytest.mark.parametrize("https", [True, False], ids=["https", "http"])
def test_gunicorn_behind_the_proxy_takes_the_scheme_from_x_forwarded_proto(runtime: dict, https: bool) -> None:  # noqa: F811
    """The runtime documentation's advice (forwarded_allow_ips, secure_scheme_headers), checked through the proxy."""
    port = free_port()
    args = ["--gunicorn-config", *(["--https"] if https else [])]
    run = Run(str(APPS / "gunicorn-wsgi"), "--runtime-image", runtime["ref"], "--port", str(port), *args)
    try:
        run.wait_for(r"run \| ready: ", 600)
        body = fetch(f"http://127.0.0.1:{port}/", {})
        os.killpg(run.proc.pid, signal.SIGINT)
        assert run.finish() == 130
    finally:
        run.kill()
    assert body == {"url_scheme": "https" if https else "http", "forwarded_for": "127.0.0.1"}
    assert any("build | " in line and "gunicorn" in line for line in run.lines)  # built (or its layers reused) by run itself
    print(f"\ngunicorn behind the proxy ({'--https' if https else 'no --https'}): {body}")


def test_detach_leaves_the_ready_container_running_and_nothing_else(runtime: dict) -> None:  # noqa: F811
    port = free_port()
    run = Run(str(APPS / "echo"), "--runtime-image", runtime["ref"], "--port", str(port), "--detach")
    try:
        assert run.finish(timeout=600) == 0, run.lines[-20:]
    finally:
        run.kill()
    container = next(re.search(r"container (flex-run-\S+):", line).group(1) for line in run.lines if "container flex-run-" in line)  # type: ignore[union-attr]
    try:
        assert any(f"podman rm -f {container}" in line for line in run.lines)
        body = fetch(f"http://127.0.0.1:{port}/direct", {})
        assert body["env"]["GAE_INSTANCE"] == container and "X-Forwarded-For" not in body["headers"]  # no proxy in front
        time.sleep(2)
        names, procs = leftovers(run.proc.pid, container)
        assert names == [container]
        assert not [p for p in procs if "import os, subprocess" in p or "podman run" in p], procs  # the reaper let go, and exited
    finally:
        podman("rm", "-f", container, check=False)
    print(f"\n--detach: exit 0, {container} still serving on 127.0.0.1:{port}, no process of run left")
