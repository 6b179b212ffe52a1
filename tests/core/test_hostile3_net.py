"""Issue 21, class 5 (network trust) and 7 (credentials in a URL), against real servers on 127.0.0.1.

Loopback (plain HTTP, no TLS check) is decided by parsing the registry's host, never by a prefix;
every fetch has a wall-clock deadline and a byte cap (FLEX_HTTP_DEADLINE, FLEX_HTTP_MAX_BYTES); a
URL's `user:password@` is sent as HTTP Basic auth to that origin only and never printed; no
generated Dockerfile names a `# syntax=` frontend (BuildKit would pull it unpinned).
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from generator.app import runtime_image as app_image
from generator.core import http, paths, registry
from generator.core.errors import InputError
from generator.locking.index import Index
from generator.refresh import upstream
from tests import servers
from tests.conftest import ROOT

# --- loopback ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("LOCALHOST", True),  # host names are case-insensitive
        ("127.0.0.1", True),
        ("127.0.0.1:5000", True),
        ("127.1.2.3:5000", True),
        ("[::1]:5000", True),
        ("[::1]", True),
        ("localhost.evil.example", False),
        ("localhost.evil.example:5000", False),
        ("localhostevil:5000", False),
        ("127.0.0.1.nip.io", False),
        ("127.0.0.1.nip.io:5000", False),
        ("127.evil", False),
        ("127.evil:5000", False),
        ("localhost:5000:6", False),
        ("localhost:http", False),
        ("[::1]x:5000", False),
        ("[::2]:5000", False),
        ("::1", False),  # an IPv6 host of a reference is bracketed
        ("10.0.0.1:5000", False),
        ("", False),
    ],
)
def test_loopback_is_parsed_not_a_prefix(host: str, loopback: bool) -> None:
    assert registry.is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("image", "verify"),
    [
        ("localhost:5000/rt/python:3.11", False),
        ("127.0.0.1:5000/rt/python:3.11", False),
        ("[::1]:5000/rt/python:3.11", False),
        ("localhost/rt/python:3.11", False),
        ("localhost.evil.example/rt/python:3.11", None),
        ("localhost.evil.example:5000/python:3.11", None),
        ("127.0.0.1.nip.io/rt/python:3.11", None),
        ("127.evil/python:3.11", None),
        ("docker.io/library/python:3.11", None),
        ("localhostish/python:3.11", None),  # a Docker Hub user's repository, not a host
    ],
)
def test_refresh_skips_tls_only_for_this_machine(image: str, verify: bool | None) -> None:
    assert upstream.tls_verify(image) is verify


@pytest.mark.parametrize(
    ("ref", "verify"),
    [
        ("127.0.0.1:5000/rt/python311-ubuntu22:a", False),
        ("localhost:5000/rt/python311-ubuntu22:a", False),
        ("[::1]:5000/rt/python311-ubuntu22:a", False),
        ("127.evil/rt/python311-ubuntu22:a", True),
        ("127.0.0.1.nip.io:5000/rt/python311-ubuntu22:a", True),
        ("localhost.evil.example:5000/rt/python311-ubuntu22:a", True),
    ],
)
def test_runtime_image_skips_tls_only_for_this_machine(ref: str, verify: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bool | None] = []

    def current_digest(body: str, *, tls_verify: bool | None = True) -> str:
        asked.append(tls_verify)
        return "sha256:" + "0" * 64

    monkeypatch.setattr(registry, "current_digest", current_digest)
    app_image.pin(ref)
    assert asked == [verify]


# --- servers -------------------------------------------------------------------------------------


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 whose GET is `handle(handler)`; records each request's headers."""

    def __init__(self, handle: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        seen = self.seen

        class Handler(servers.QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                seen.append((self.path, dict(self.headers)))
                try:
                    handle(self)
                except OSError:  # the client hung up: that is what a deadline or a cap does
                    self.close_connection = True

        self.httpd = servers.start(Handler)
        self.url = servers.url(self.httpd)


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler], None]], Server]]:
    servers.local_only(monkeypatch)
    monkeypatch.setattr(http, "BACKOFF", 0.01)
    started: list[Server] = []

    def start(handle: Callable[[BaseHTTPRequestHandler], None]) -> Server:
        s = Server(handle)
        started.append(s)
        return s

    yield start
    for s in started:
        servers.stop(s.httpd)


def drip_body(h: BaseHTTPRequestHandler, n: int = 10) -> None:
    """Headers at once, then a byte a second: each read is quick, the whole never ends in time."""
    h.send_response(200)
    h.send_header("Content-Length", str(n))
    h.end_headers()
    for _ in range(n):
        h.wfile.write(b"x")
        h.wfile.flush()
        time.sleep(1)


def drip_headers(h: BaseHTTPRequestHandler) -> None:
    """The headers a byte a second (a socket timeout per read never fires)."""
    h.wfile.write(b"HTTP/1.1 200 OK\r\n")
    for byte in b"X-Slo":
        h.wfile.write(bytes([byte]))
        h.wfile.flush()
        time.sleep(1)
    h.close_connection = True


def timed(fn: Callable[[], object]) -> tuple[float, BaseException | None]:
    start = time.monotonic()
    try:
        fn()
    except Exception as exc:
        return time.monotonic() - start, exc
    return time.monotonic() - start, None


# --- a deadline for the whole fetch --------------------------------------------------------------


@pytest.mark.parametrize("handle", [drip_body, drip_headers], ids=["body", "headers"])
def test_a_dripping_server_meets_the_deadline(serve, handle, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(handle)
    monkeypatch.setenv("FLEX_HTTP_DEADLINE", "3")
    took, exc = timed(lambda: http.get(server.url + "/drip"))
    assert isinstance(exc, http.HttpError), f"no error after {took:.1f}s"
    assert 2.5 < took < 5, f"took {took:.1f}s"
    assert f"{server.url}/drip" in str(exc) and "3 s" in str(exc) and "FLEX_HTTP_DEADLINE" in str(exc)


def test_the_deadline_spans_retries(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each attempt is slow and fails with a 503: the retries share one budget."""

    def slow_503(h: BaseHTTPRequestHandler) -> None:
        time.sleep(1.5)
        h.send_response(503)
        h.send_header("Content-Length", "0")
        h.end_headers()

    server = serve(slow_503)
    monkeypatch.setattr(http, "BACKOFF", 1.0)
    monkeypatch.setenv("FLEX_HTTP_DEADLINE", "2")
    took, exc = timed(lambda: http.get(server.url + "/busy"))
    assert isinstance(exc, http.HttpError) and "FLEX_HTTP_DEADLINE" in str(exc)
    assert took < 3.5, f"took {took:.1f}s"


def test_a_dripping_download_meets_the_deadline_and_keeps_nothing(serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(drip_body)
    monkeypatch.setenv("FLEX_HTTP_DEADLINE", "2")
    cache = tmp_path / "cache"
    took, exc = timed(lambda: http.fetch_verified(server.url + "/f.whl", "0" * 64, tmp_path / "out" / "f.whl", cache=cache))
    assert isinstance(exc, http.HttpError) and "FLEX_HTTP_DEADLINE" in str(exc), exc
    assert took < 4, f"took {took:.1f}s"
    assert not [p for p in cache.rglob("*") if p.is_file()] and not (tmp_path / "out").exists()


def test_refresh_against_a_dripping_python_org_ends_in_time(serve) -> None:
    """The command the issue names: `refresh` used to hang for as long as the server dripped."""
    server = serve(lambda h: drip_body(h, 30))
    env = {**os.environ, "FLEX_HTTP_DEADLINE": "2", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    cmd = [sys.executable, "-m", "generator", "refresh", "--dry-run", "--only", "python", "--python-source", server.url + "/ftp/python/"]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert time.monotonic() - start < 10
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "FLEX_HTTP_DEADLINE" in proc.stderr and "error:" in proc.stderr


# --- a cap on the bytes read ---------------------------------------------------------------------


def big(declared: bool) -> Callable[[BaseHTTPRequestHandler], None]:
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        if declared:
            h.send_header("Content-Length", str(4 << 20))
        else:
            h.send_header("Connection", "close")  # the body ends when the connection does
            h.close_connection = True
        h.end_headers()
        for _ in range(64):
            h.wfile.write(b"z" * (64 << 10))

    return handle


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_an_answer_over_the_cap_is_refused(serve, declared: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(big(declared))
    monkeypatch.setenv("FLEX_HTTP_MAX_BYTES", "1000000")
    with pytest.raises(http.HttpError) as exc:
        http.get(server.url + "/big")
    assert f"{server.url}/big" in str(exc.value) and "1000000 bytes" in str(exc.value) and "FLEX_HTTP_MAX_BYTES" in str(exc.value)


def test_a_download_over_the_cap_is_refused_and_kept_nowhere(serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(big(False))
    monkeypatch.setenv("FLEX_HTTP_MAX_BYTES", "1000000")
    with pytest.raises(http.HttpError, match="FLEX_HTTP_MAX_BYTES"):
        http.fetch_verified(server.url + "/f.whl", "0" * 64, tmp_path / "out" / "f.whl", cache=tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_under_the_caps_and_deadline_a_fetch_is_whole(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(big(True))
    monkeypatch.setenv("FLEX_HTTP_MAX_BYTES", str(4 << 20))
    assert http.get(server.url + "/big") == b"z" * (4 << 20)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("FLEX_HTTP_DEADLINE", "soon"),
        ("FLEX_HTTP_DEADLINE", "0"),
        ("FLEX_HTTP_DEADLINE", "-1"),
        ("FLEX_HTTP_DEADLINE", "nan"),
        ("FLEX_HTTP_MAX_BYTES", "1.5"),
        ("FLEX_HTTP_MAX_BYTES", "0"),
    ],
)
def test_a_bad_limit_is_bad_input(serve, var: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(drip_body)
    monkeypatch.setenv(var, value)
    with pytest.raises(InputError, match=rf"{var}={value!r}|{var}: {value!r}"):
        http.get(server.url + "/x")
    assert not server.seen, "refused before any request"


# --- credentials in a URL ------------------------------------------------------------------------

USER, PASSWORD = "ci user", "p@ss:w/rd"
QUOTED = "ci%20user:p%40ss%3Aw%2Frd"


def basic(h: BaseHTTPRequestHandler) -> None:
    """Answers only with the right Basic credentials; the index page links a file on the same server."""
    want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    if h.headers.get("Authorization") != want:
        h.send_response(401)
        h.send_header("WWW-Authenticate", 'Basic realm="private"')
        h.send_header("Content-Length", "0")
        h.end_headers()
        return
    body = b'<a href="/files/demo-1.0-py3-none-any.whl#sha256=' + hashlib.sha256(b"wheel").hexdigest().encode() + b'">demo</a>'
    if h.path.startswith("/files/"):
        body = b"wheel"
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def test_userinfo_is_sent_as_basic_auth(serve, tmp_path: Path) -> None:
    server = serve(basic)
    host = server.url.removeprefix("http://")
    index = Index(f"http://{QUOTED}@{host}/simple")
    files = index.files("demo")
    assert [(f.filename, f.url) for f in files] == [("demo-1.0-py3-none-any.whl", f"{server.url}/files/demo-1.0-py3-none-any.whl")]
    # the file a lock names carries no password, and is still fetched with the index's credentials
    http.fetch_verified(files[0].url, hashlib.sha256(b"wheel").hexdigest(), tmp_path / "demo.whl", cache=tmp_path / "cache")
    assert (tmp_path / "demo.whl").read_bytes() == b"wheel"
    assert all(path.startswith(("/simple/", "/files/")) for path, _ in server.seen)


def test_a_wrong_password_is_named_without_it(serve) -> None:
    server = serve(basic)
    url = f"http://ci%20user:hunter2@{server.url.removeprefix('http://')}/simple/demo/"
    with pytest.raises(http.HttpError) as exc:
        http.get(url)
    assert str(exc.value) == f"{server.url}/simple/demo/: HTTP 401" and "hunter2" not in str(exc.value)


def test_credentials_stay_with_their_origin(serve) -> None:
    """A redirect to another origin (here another port) does not carry the Authorization header."""
    other = serve(lambda h: (h.send_response(200), h.send_header("Content-Length", "2"), h.end_headers(), h.wfile.write(b"ok")))

    def redirect(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", other.url + "/elsewhere")
        h.send_header("Content-Length", "0")
        h.end_headers()

    first = serve(redirect)
    assert http.get(f"http://tok:secret@{first.url.removeprefix('http://')}/go") == b"ok"
    assert first.seen[0][1].get("Authorization", "").startswith("Basic ")
    assert [h.get("Authorization") for _, h in other.seen] == [None]


def test_public_url_keeps_an_ipv6_host_and_a_bad_port() -> None:
    assert http.public_url("http://u:p@[::1]:5000/simple") == "http://[::1]:5000/simple"
    assert http.public_url("http://u:p@host:port/simple") == "http://host:port/simple"
    assert http.public_url("http://a@b:c@host/x") == "http://host/x"


# --- no unpinned frontend ------------------------------------------------------------------------


def test_no_generated_dockerfile_names_a_syntax_frontend() -> None:
    dockerfiles = sorted((ROOT / paths.IMAGES).rglob("Dockerfile"))
    assert len(dockerfiles) > 10
    for path in [*dockerfiles, *(ROOT / "generator" / "templates").glob("*Dockerfile*")]:
        head = path.read_text().splitlines()[:5]
        assert not [line for line in head if line.replace(" ", "").lower().startswith("#syntax=")], path
        assert "<<" not in path.read_text(), f"{path}: a heredoc needs the dockerfile:1.4 frontend"


def test_registry_questions_have_the_same_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """skopeo is the registry's client: its whole run ends at the deadline, which the same variable sets."""
    slow = tmp_path / "skopeo"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setattr(registry, "skopeo", lambda: str(slow))
    monkeypatch.setenv("FLEX_HTTP_DEADLINE", "1")
    took, exc = timed(lambda: registry.fetch_manifest("127.0.0.1:9/rt/python:3.11", tls_verify=False))
    assert isinstance(exc, registry.RegistryError) and "within 1 s" in str(exc) and "FLEX_HTTP_DEADLINE" in str(exc), exc
    assert took < 5, f"took {took:.1f}s"
