"""The connections of one fetch (generator/core/http.py): cut at its deadline, and given a URL's credentials.

A socket timeout bounds one read only: a server that drips a byte a second (in the TLS handshake,
the headers or the body) never trips it. So each connection's socket is watched, and a timer shuts
it down when the fetch's wall-clock budget runs out; whatever read was blocked then ends at once.

`user:password@` in a URL is taken out of it (urllib would look the whole of it up as a host name)
and sent as HTTP Basic auth to that origin (scheme, host, port) only, as pip does: a redirect to
another origin does not carry it, and no message, lock or file ever holds it.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any


class Watchdog:
    """Shuts down every connection of one fetch once `seconds` of wall clock have passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._socks: list[socket.socket] = []  # our own duplicates: never a descriptor someone else reuses
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            for s in self._socks:
                s.close()
            self._socks.clear()

    def left(self) -> float:
        return self.end - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock.dup())
            if self.expired:
                _shutdown(sock)

    def _cut(self) -> None:
        with self._lock:
            self.expired = True
            for s in self._socks:
                _shutdown(s)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by its connection
        sock.shutdown(socket.SHUT_RDWR)


class _HTTP(http.client.HTTPConnection):
    """A connection whose sockets `watchdog` watches (and so can cut)."""

    # Set by http.client's __init__ (socket.create_connection); typeshed leaves it out as private.
    _create_connection: Callable[..., socket.socket]

    def __init__(self, *args: Any, watchdog: Watchdog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        create = self._create_connection

        def create_watched(*a: Any, **k: Any) -> socket.socket:
            sock = create(*a, **k)
            watchdog.watch(sock)
            return sock

        self._create_connection = create_watched


class _HTTPS(_HTTP, http.client.HTTPSConnection):
    """The same for https: `_HTTP.__init__` hands its arguments on to HTTPSConnection's."""


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watchdog: Watchdog) -> None:
        super().__init__()
        self.watchdog = watchdog

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_HTTP, watchdog=self.watchdog), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: Watchdog, context: Any) -> None:
        super().__init__(context=context)
        self.watchdog = watchdog

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_HTTPS, watchdog=self.watchdog), req, context=self._context)  # type: ignore[attr-defined]


# Credentials by origin, for the whole process: the files an index lists (URLs without a password)
# are fetched with the credentials its URL carried, as pip does within a run.
_PASSWORDS = urllib.request.HTTPPasswordMgrWithPriorAuth()


def without_credentials(url: str) -> str:
    """`url` without `user:password@`; the credentials are kept for its origin (Basic auth)."""
    parts = urllib.parse.urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url
    user, _, password = userinfo.partition(":")
    bare = parts._replace(netloc=hostport)
    origin = urllib.parse.urlunsplit(bare._replace(path="/", query="", fragment=""))
    _PASSWORDS.add_password(None, origin, urllib.parse.unquote(user), urllib.parse.unquote(password), is_authenticated=True)
    return urllib.parse.urlunsplit(bare)


def opener(watchdog: Watchdog, context: Any) -> urllib.request.OpenerDirector:
    """urllib's opener (proxies, redirects) whose connections `watchdog` cuts, with the origins' credentials."""
    return urllib.request.build_opener(_HTTPHandler(watchdog), _HTTPSHandler(watchdog, context), urllib.request.HTTPBasicAuthHandler(_PASSWORDS))
