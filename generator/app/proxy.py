"""The front proxy `run` puts on 127.0.0.1:PORT: what App Engine's load balancer adds to each request.

On the platform a request reaches the app through Google's front end and the instance's nginx,
which add `X-Forwarded-For` (the client, after any value the client sent), `X-Forwarded-Proto` and
`X-Cloud-Trace-Context` (kept when the client sent one, else a new trace). The runtime
documentation's gunicorn advice (`forwarded_allow_ips`, `secure_scheme_headers`) only means
something with those headers present, so `run` adds them locally too. Standard library only, in
`run`'s own process: it ends with `run`, so it can never be left behind.

HTTP/1.1 requests and responses are relayed; an upgrade (websockets) is not.
"""

from __future__ import annotations

import http.client
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding", "upgrade"}
MAX_BODY = 32 * 1024 * 1024  # the platform's request limit
CHUNK = 64 * 1024


def trace_context() -> str:
    """A new `X-Cloud-Trace-Context`: TRACE_ID (32 hex)/SPAN_ID (decimal);o=1, the platform's form."""
    return f"{secrets.token_hex(16)}/{int.from_bytes(secrets.token_bytes(8), 'big') >> 1};o=1"


def forwarded_headers(incoming: dict[str, str], client: str, https: bool) -> dict[str, str]:
    """The headers the load balancer sets, given the request's own (names lowercase)."""
    earlier = incoming.get("x-forwarded-for")
    return {
        "X-Forwarded-For": f"{earlier}, {client}" if earlier else client,
        "X-Forwarded-Proto": "https" if https else "http",
        "X-Cloud-Trace-Context": incoming.get("x-cloud-trace-context") or trace_context(),
    }


class Proxy:
    """A threaded HTTP proxy from 127.0.0.1:port to 127.0.0.1:upstream; `log` gets one line per request."""

    def __init__(self, port: int, upstream: int, https: bool, log: Callable[[str], None]) -> None:
        self.upstream, self.https, self.log = upstream, https, log
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(proxy: Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass  # one line per request, by relay()

        def do_GET(self) -> None:
            relay(self, proxy)

        do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    return Handler


def _body(handler: BaseHTTPRequestHandler) -> bytes | None:
    """The request body, chunked or by Content-Length; None when it is too large or malformed."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return out
            out += handler.rfile.read(size)
            handler.rfile.readline()
            if len(out) > MAX_BODY:
                return None
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if 0 <= length <= MAX_BODY else None


def relay(handler: BaseHTTPRequestHandler, proxy: Proxy) -> None:
    """One request to the app and its answer back, streamed; a dead app is a 502, as the platform's."""
    start = time.monotonic()
    try:
        body = _body(handler)
    except ValueError:
        body = None
    if body is None:
        handler.send_error(413 if handler.headers.get("Content-Length", "0").isdigit() else 400)
        return
    incoming = {k.lower(): v for k, v in handler.headers.items()}
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"}
    headers.update(forwarded_headers(incoming, handler.client_address[0], proxy.https))
    if body or handler.command in ("POST", "PUT", "PATCH"):
        headers["Content-Length"] = str(len(body))
    conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream, timeout=600)
    try:
        conn.request(handler.command, handler.path, body=body or None, headers=headers)
        resp = conn.getresponse()
    except OSError as exc:
        conn.close()
        proxy.log(f"{handler.command} {handler.path} → 502: the app did not answer ({exc.strerror or exc})")
        handler.send_error(502, "the app did not answer")
        return
    try:
        _answer(handler, resp)
    finally:
        conn.close()
    proxy.log(f"{handler.client_address[0]} {handler.command} {handler.path} → {resp.status} ({(time.monotonic() - start) * 1000:.0f} ms)")


def _answer(handler: BaseHTTPRequestHandler, resp: http.client.HTTPResponse) -> None:
    handler.send_response_only(resp.status, resp.reason)
    length = resp.getheader("Content-Length")
    for name, value in resp.getheaders():
        if name.lower() not in HOP_BY_HOP:
            handler.send_header(name, value)
    if length is None:
        handler.send_header("Connection", "close")  # the end of the body is the end of the connection
        handler.close_connection = True
    handler.end_headers()
    if handler.command == "HEAD":
        return
    try:
        while chunk := resp.read(CHUNK):
            handler.wfile.write(chunk)
    except OSError:
        handler.close_connection = True  # the client went away
