"""`run` without containers: app.yaml's checks and resources, the front proxy, the health checks.

The refusals go through the real command (exit 2, file:line: key, the valid values, before any
build); the proxy and the checks run against real HTTP servers on 127.0.0.1 (tests/servers.py).
The container's life is tested in test_run_image.py.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from generator.app import checks as app_checks
from generator.app import probes as app_probes
from generator.app import proxy as app_proxy
from generator.app import run as app_run
from generator.core import yamlsrc
from generator.core.errors import InputError
from tests.servers import QuietHandler, free_port, local_only, running

HEAD = "runtime: python\nenv: flex\nentrypoint: python main.py\nruntime_config:\n  operating_system: ubuntu22\n"

# app.yaml's tail → (line, the start of the message after "line: ")
BAD = {
    "readiness timeout over 300": (
        "readiness_check:\n  timeout_sec: 301\n",
        7,
        "readiness_check.timeout_sec: 301 is out of range; valid values: 1 to 300",
    ),
    "liveness threshold 0": (
        "liveness_check:\n  failure_threshold: 0\n",
        7,
        "liveness_check.failure_threshold: 0 is out of range; valid values: 1 to 10",
    ),
    "start timeout too long": (
        "readiness_check:\n  app_start_timeout_sec: 1801\n",
        7,
        "readiness_check.app_start_timeout_sec: 1801 is out of range; valid values: 1 to 1800",
    ),
    "interval as text": (
        "liveness_check:\n  check_interval_sec: 5s\n",
        7,
        "liveness_check.check_interval_sec: '5s' is not a whole number; valid values: 1 to 300",
    ),
    "interval a boolean": ("readiness_check:\n  check_interval_sec: yes\n", 7, "readiness_check.check_interval_sec: yes is not a whole number"),
    "interval a fraction": ("readiness_check:\n  check_interval_sec: 2.5\n", 7, "readiness_check.check_interval_sec: 2.5 is not a whole number"),
    "path without a slash": ("liveness_check:\n  path: health\n", 7, "liveness_check.path: 'health' is not a URL path; write one that starts with /"),
    "unknown key": (
        "readiness_check:\n  path: /r\n  initial_delay_sec: 3\n",
        8,
        "readiness_check.initial_delay_sec: is not a setting of readiness_check; valid choices: path, check_interval_sec, timeout_sec",
    ),
    "check not a mapping": ("liveness_check: /live\n", 6, "liveness_check: must be a mapping of settings (path, check_interval_sec"),
    "odd cpu": ("resources:\n  cpu: 3\n", 7, "resources.cpu: 3 is not offered; valid values: 1, or an even number from 2 to 80"),
    "memory above the per-core range": (
        "resources:\n  cpu: 1\n  memory_gb: 7\n",
        8,
        "resources.memory_gb: 7 is out of range for cpu 1; valid values: 0.5 to 6.1 (0.9 to 6.5 GB per core, less the 0.4 GB the platform keeps)",
    ),
    "memory as text": ("resources:\n  memory_gb: lots\n", 7, "resources.memory_gb: 'lots' is not a number"),
    "disk too small": ("resources:\n  disk_size_gb: 5\n", 7, "resources.disk_size_gb: 5 is out of range; valid values: 10 to 10240"),
    "resources a list": ("resources:\n  - cpu\n", 6, "resources: must be a mapping of settings (cpu, memory_gb, disk_size_gb, volumes)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_checks_and_resources_are_refused_with_file_line_and_key(cli, tmp_path: Path, case: str) -> None:
    tail, line, message = BAD[case]
    (tmp_path / "app.yaml").write_text(HEAD + tail)
    (tmp_path / "main.py").write_text("")
    result = cli("run", str(tmp_path), "--port", str(free_port()))
    assert result.exit_code == 2, result.stderr
    assert f"error: {tmp_path / 'app.yaml'}:{line}: {message}" in result.stderr
    assert "Traceback" not in result.stderr and "build |" not in result.stderr  # refused before any build


def test_defaults_are_the_platforms() -> None:
    settings = app_checks.read(yamlsrc.loads(HEAD, "app.yaml"))
    assert settings.readiness == app_checks.Check("readiness", None, 5, 4, 2, 2, 0, 300)
    assert settings.liveness == app_checks.Check("liveness", None, 30, 4, 4, 2, 300, 0)
    assert settings.resources == app_checks.Resources(1.0, 0.6, 10)
    assert settings.resources.memory_mb == 614


class Echo(QuietHandler):
    """Answers with what it received; /status/N answers N."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length).decode() if length else ""
        status = int(self.path.rsplit("/", 1)[1]) if self.path.startswith("/status/") else 200
        body = json.dumps({"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": received}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


def _proxied(upstream: str, https: bool = False):
    lines: list[str] = []
    proxy = app_proxy.Proxy(0, int(upstream.rsplit(":", 1)[1]), https, lines.append).start()
    return proxy, lines


def test_the_proxy_adds_the_load_balancers_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    local_only(monkeypatch)
    with running(Echo) as upstream:
        proxy, lines = _proxied(upstream, https=True)
        try:
            base = f"http://127.0.0.1:{proxy.port}"
            with urllib.request.urlopen(urllib.request.Request(f"{base}/a?b=1", headers={"X-Forwarded-For": "198.51.100.7"}), timeout=10) as r:
                seen = json.loads(r.read())
            assert seen["path"] == "/a?b=1"
            assert seen["headers"]["X-Forwarded-For"] == "198.51.100.7, 127.0.0.1"
            assert seen["headers"]["X-Forwarded-Proto"] == "https"
            assert re.fullmatch(r"[0-9a-f]{32}/\d+;o=1", seen["headers"]["X-Cloud-Trace-Context"])
            post = urllib.request.Request(f"{base}/form", data=b"x=1&y=2", headers={"X-Cloud-Trace-Context": "abc/1;o=1"})
            with urllib.request.urlopen(post, timeout=10) as r:
                seen = json.loads(r.read())
            assert (seen["method"], seen["body"], seen["headers"]["X-Cloud-Trace-Context"]) == ("POST", "x=1&y=2", "abc/1;o=1")
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"{base}/status/503", timeout=10)
            assert err.value.code == 503  # the app's status, passed through
        finally:
            proxy.close()
    assert any(re.fullmatch(r"127\.0\.0\.1 GET /a\?b=1 → 200 \(\d+ ms\)", line) for line in lines), lines


def test_the_proxy_relays_a_chunked_body_and_says_502_for_a_dead_app(monkeypatch: pytest.MonkeyPatch) -> None:
    local_only(monkeypatch)
    with running(Echo) as upstream:
        proxy, lines = _proxied(upstream)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            conn.request("POST", "/chunks", body=iter([b"hello ", b"world"]), encode_chunked=True)
            seen = json.loads(conn.getresponse().read())
            assert seen["body"] == "hello world" and seen["headers"]["X-Forwarded-Proto"] == "http"
        finally:
            proxy.close()
    dead, lines = _proxied(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{dead.port}/", timeout=10)
        assert err.value.code == 502
    finally:
        dead.close()
    assert any("GET / → 502: the app did not answer" in line for line in lines), lines


def test_a_port_in_use_is_refused_naming_it(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InputError) as err:
            app_run._proxy(app_run.Options(tmp_path, port=port), lambda source, line: None)
    assert str(err.value).startswith(f"--port {port}: 127.0.0.1:{port} cannot be listened on (Address already in use); choose another port")


def _check(path: str | None, **kw: int) -> app_checks.Check:
    values = {"check_interval_sec": 1, "timeout_sec": 1, "failure_threshold": 2, "success_threshold": 2, "app_start_timeout_sec": 3, **kw}
    return app_checks.Check("readiness", path, **values)  # type: ignore[arg-type]


def test_readiness_passes_after_success_threshold_and_fails_with_the_status(monkeypatch: pytest.MonkeyPatch) -> None:
    local_only(monkeypatch)
    with running(Echo) as upstream:
        port = int(upstream.rsplit(":", 1)[1])
        lines: list[str] = []
        start = time.monotonic()
        assert app_probes.wait_ready(_check("/ok"), port, lines.append, start, lambda: True)
        assert time.monotonic() - start >= 1  # two passes, one interval apart
        assert lines == [lines[0]] and "ready after" in lines[0] and "GET /ok passed 2 time(s) in a row (HTTP 200)" in lines[0]
        lines.clear()
        assert not app_probes.wait_ready(_check("/status/503"), port, lines.append, time.monotonic(), lambda: True)
    assert "not ready: readiness check GET /status/503: HTTP 503" in lines[0]
    assert lines[-1] == "never became ready within app_start_timeout_sec (3s): readiness check GET /status/503: HTTP 503"


def test_a_check_without_path_is_a_connection_and_names_a_refusal() -> None:
    lines: list[str] = []
    assert not app_probes.wait_ready(_check(None, app_start_timeout_sec=1), free_port(), lines.append, time.monotonic(), lambda: True)
    assert "readiness check (TCP: no path set): connection refused" in lines[0]


def test_thresholds_count_in_a_row() -> None:
    state = app_probes.State(_check("/x", failure_threshold=3, success_threshold=2))
    assert [state.record(p) for p in (True, False, True, True, False, False, True, False, False, False)] == [
        None, None, None, True, None, None, None, None, None, False,
    ]  # fmt: skip


def test_after_readiness_a_failing_liveness_check_is_reported_once_with_its_consequence(monkeypatch: pytest.MonkeyPatch) -> None:
    local_only(monkeypatch)
    with running(Echo) as upstream:
        port = int(upstream.rsplit(":", 1)[1])
        lines: list[str] = []
        ready = _check("/ok")
        live = app_checks.Check("liveness", "/status/500", 1, 1, 2, 2, initial_delay_sec=1)
        monitor = app_probes.Monitor(ready, live, port, lines.append, time.monotonic()).start()
        time.sleep(4.5)
        monitor.stop()
    assert not any("readiness" in line for line in lines), lines  # passing checks are silent
    assert lines[:2] == [
        "liveness check GET /status/500 failed: HTTP 500 (1 in a row; failure_threshold 2)",
        "liveness check GET /status/500 failed: HTTP 500 (2 in a row; failure_threshold 2)",
    ]
    assert lines.count("liveness: failing; App Engine would restart this instance") == 1, lines
