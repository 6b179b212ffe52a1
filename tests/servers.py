"""HTTP servers on 127.0.0.1 for the tests: one way to start one on a free port, name it, and stop it.

Each server runs in a daemon thread (a test that fails mid-way never hangs the session) and is shut
down and closed when its test is done, so no port stays bound between tests.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that keeps the test output clean (no access log on stderr)."""

    def log_message(self, *args: object) -> None:
        pass


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def free_port() -> int:
    """A port nothing listens on (a dead mirror's, or one a container maps)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(handler: type[BaseHTTPRequestHandler] | functools.partial) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


def url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@contextlib.contextmanager
def running(handler: type[BaseHTTPRequestHandler] | functools.partial) -> Iterator[str]:
    """A server of `handler` for the block; yields its base URL."""
    server = start(handler)
    try:
        yield url(server)
    finally:
        stop(server)


def serve(directory: Path) -> contextlib.AbstractContextManager[str]:
    """A plain file server for a directory (a python.org-, archive- or index-shaped mirror); yields its base URL."""
    return running(functools.partial(QuietFiles, directory=str(directory)))


def local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 go straight to the test's server, whatever proxy the environment sets."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
