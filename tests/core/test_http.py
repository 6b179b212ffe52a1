"""The one HTTP client, against a real server on 127.0.0.1: retries, refusals, and hash-checked downloads."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from generator.core import http
from tests import servers

BODY = b"the locked bytes\n"


class Server:
    """Serves /ok, /flaky (503 until the third request), /gone (404), /down (always 502); counts requests."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        hits = self.hits

        class Handler(servers.QuietHandler):
            def do_GET(self) -> None:
                n = hits[self.path] = hits.get(self.path, 0) + 1
                status = {"/ok": 200, "/gone": 404, "/down": 502, "/flaky": 200 if n >= 3 else 503}.get(self.path, 404)
                body = BODY if status == 200 else b"no"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = servers.start(Handler)
        self.url = servers.url(self.httpd)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    servers.local_only(monkeypatch)
    monkeypatch.setattr(http, "BACKOFF", 0.01)  # the same retries, without the waits
    s = Server()
    yield s
    servers.stop(s.httpd)


def test_get_retries_server_errors_and_not_client_errors(server: Server) -> None:
    assert http.get(server.url + "/flaky") == BODY
    assert server.hits["/flaky"] == 3
    with pytest.raises(http.HttpError, match=r"/gone: HTTP 404$"):
        http.get(server.url + "/gone")
    assert server.hits["/gone"] == 1, "a 404 will not change: asked once"
    with pytest.raises(http.HttpError, match=r"/down: HTTP 502$"):
        http.get(server.url + "/down")
    assert server.hits["/down"] == http.RETRIES


def test_request_reports_type_and_final_url(server: Server) -> None:
    resp = http.request(server.url + "/ok", headers={"Accept": "text/plain"})
    assert resp == http.Response(BODY, "text/plain", server.url + "/ok")


def test_connection_refused_is_an_http_error(server: Server) -> None:
    url = server.url
    server.httpd.server_close()  # nothing listens on the port any more
    with pytest.raises(http.HttpError, match=r"127\.0\.0\.1:\d+/ok: .*refused"):
        http.get(url + "/ok", timeout=5)


def test_fetch_verified_caches_by_hash_and_refuses_other_bytes(server: Server, tmp_path: Path) -> None:
    good = hashlib.sha256(BODY).hexdigest()
    cache = tmp_path / "cache"
    out = http.fetch_verified(server.url + "/ok", good, tmp_path / "a" / "ok.txt", cache=cache)
    assert out.read_bytes() == BODY and (cache / good / "ok").read_bytes() == BODY
    http.fetch_verified(server.url + "/ok", good, tmp_path / "b" / "ok.txt", cache=cache)
    assert server.hits["/ok"] == 1, "the second copy comes from the cache"
    bad = "0" * 64
    with pytest.raises(http.HttpError, match=rf"checksum mismatch for .*/ok: expected {bad}, actual {good}"):
        http.fetch_verified(server.url + "/ok", bad, tmp_path / "c" / "ok.txt", cache=cache)
    assert not (cache / bad).exists() or not any((cache / bad).iterdir()), "no refused byte is kept"
    assert not (tmp_path / "c").exists()


def test_cache_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from generator.core.cache import cache_root

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "flex-python"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert cache_root() == Path.home() / ".cache" / "flex-python"


def test_public_url_drops_credentials() -> None:
    assert http.public_url("https://user:secret@example.org:8443/simple") == "https://example.org:8443/simple"
    assert http.public_url("https://example.org/simple") == "https://example.org/simple"
