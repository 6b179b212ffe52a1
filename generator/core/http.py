"""The one HTTP client: TLS that trusts the system bundle, retries, and hash-checked downloads.

Every request of the tool (package indexes, python.org release metadata, the files a build
context holds) goes through here, so a TLS-intercepting proxy is configured once
(``SSL_CERT_FILE``/``PIP_CERT`` or the system bundle) and failures read the same everywhere.

No server can hold a command or fill the disk: every fetch has a wall-clock deadline and a byte
cap (PAGE for what is held in memory, FILE for downloads; FLEX_HTTP_DEADLINE and FLEX_HTTP_MAX_BYTES
replace both), and a URL's `user:password@` is sent as Basic auth, never printed (http_conn.py).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.core.cache import cache_root
from generator.core.errors import GeneratorError, InputError

if TYPE_CHECKING:
    import ssl

# ssl and urllib.request (~70 ms) are imported where a request is made: `lock --check` and a no-op
# `lock` need public_url only.

USER_AGENT = "flex-python-generator"
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
RETRIES = 3
BACKOFF = 0.5  # seconds before the second attempt; then twice that


class HttpError(GeneratorError):
    """A URL that could not be fetched (after retries), or bytes that failed their hash."""


@dataclass(frozen=True)
class Response:
    body: bytes
    content_type: str
    url: str  # after redirects: relative links resolve against it


def public_url(url: str) -> str:
    """A URL without credentials, for headers and messages (an IPv6 host and a bad port kept as written)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # not a URL (an unclosed `[`): drop whatever could be userinfo
        return re.sub(r"//[^/?#]*@", "//", url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    return urllib.parse.urlunsplit(parts)


def ssl_context() -> ssl.SSLContext:
    """TLS that trusts the system bundle too (corporate proxies put their CA there)."""
    return _context(os.environ.get("SSL_CERT_FILE"), os.environ.get("PIP_CERT"))


@cache
def _context(*bundles: str | None) -> ssl.SSLContext:
    """One context per bundle setting: loading a bundle costs more than the request it serves."""
    import ssl

    ctx = ssl.create_default_context()
    for bundle in (*bundles, SYSTEM_BUNDLE):
        if bundle and Path(bundle).is_file():
            ctx.load_verify_locations(bundle)
            break
    return ctx


@dataclass(frozen=True)
class Limits:
    """The budget of one fetch: wall-clock seconds for all of it (connect, TLS, headers, body, retries), and bytes."""

    deadline: float
    max_bytes: int


PAGE = Limits(300, 128 << 20)  # an index page, release metadata, an apt index: held in memory
FILE = Limits(3600, 4 << 30)  # a file of a build context (a CPython tarball, a .deb, a wheel): streamed to disk
DEADLINE_ENV = "FLEX_HTTP_DEADLINE"  # seconds; replaces both defaults
MAX_BYTES_ENV = "FLEX_HTTP_MAX_BYTES"  # bytes; replaces both defaults


def limits(default: Limits) -> Limits:
    """`default`, or what FLEX_HTTP_DEADLINE / FLEX_HTTP_MAX_BYTES say (a bad value is bad input)."""
    deadline, max_bytes = default.deadline, default.max_bytes
    if value := os.environ.get(DEADLINE_ENV):
        try:
            deadline = float(value)
        except ValueError:
            deadline = math.nan
        if not (math.isfinite(deadline) and deadline > 0):
            raise InputError(f"{DEADLINE_ENV}={value!r}: not a positive number of seconds (the wall-clock deadline of one HTTP fetch)")
    if value := os.environ.get(MAX_BYTES_ENV):
        if not (value.isascii() and value.isdigit() and int(value) > 0):
            raise InputError(f"{MAX_BYTES_ENV}={value!r}: not a positive whole number of bytes (the most one HTTP fetch may read)")
        max_bytes = int(value)
    return Limits(deadline, max_bytes)


class _Body:
    """The body of an open response, read in chunks within the fetch's deadline and byte cap."""

    def __init__(self, resp: Any, url: str, budget: Limits, watchdog: Any) -> None:
        self.resp, self.url, self.budget, self.watchdog = resp, url, budget, watchdog

    def chunks(self, size: int = 1 << 16) -> Iterator[bytes]:
        import http.client

        declared = self.resp.headers.get("Content-Length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.budget.max_bytes:
            raise _too_big(self.url, self.budget)
        total = 0
        while True:
            try:
                chunk = self.resp.read(min(size, self.budget.max_bytes - total + 1))
            except (OSError, http.client.HTTPException) as exc:
                raise (
                    _late(self.url, self.budget) if self.watchdog.expired else HttpError(f"{public_url(self.url)}: {exc or type(exc).__name__}")
                ) from exc
            if self.watchdog.expired:  # the cut ends a read early, and quietly where the length was not declared
                raise _late(self.url, self.budget)
            if not chunk:
                return
            total += len(chunk)
            if total > self.budget.max_bytes:
                raise _too_big(self.url, self.budget)
            yield chunk


def _late(url: str, budget: Limits) -> HttpError:
    return HttpError(
        f"{public_url(url)}: no whole answer within {budget.deadline:g} s (the deadline of one fetch, retries included); "
        f"set {DEADLINE_ENV}=SECONDS to allow longer"
    )


def _too_big(url: str, budget: Limits) -> HttpError:
    return HttpError(
        f"{public_url(url)}: the answer is larger than {budget.max_bytes} bytes (the cap of one fetch); set {MAX_BYTES_ENV}=BYTES to allow more"
    )


@contextmanager
def _open(url: str, timeout: float, headers: dict[str, str] | None, default: Limits) -> Iterator[_Body]:
    """An open response; 5xx and connection errors are retried, 4xx are not (they will not change).
    Everything, retries included, ends within the deadline (generator/core/http_conn.py cuts the connections)."""
    import http.client
    import urllib.error
    import urllib.request

    from generator.core import http_conn

    budget = limits(default)
    try:
        bare = http_conn.without_credentials(url)
    except ValueError as exc:  # not a URL at all (a port that is no number): no request
        raise HttpError(f"{public_url(url)}: {exc}") from exc
    request = urllib.request.Request(bare, headers={"User-Agent": USER_AGENT, **(headers or {})})
    last: Exception | None = None
    with http_conn.Watchdog(budget.deadline) as watchdog:
        opener = http_conn.opener(watchdog, ssl_context())
        for attempt in range(RETRIES):
            if attempt:
                time.sleep(min(BACKOFF * attempt, max(watchdog.left(), 0)))
            if watchdog.left() <= 0:
                raise _late(url, budget)
            try:
                resp = opener.open(request, timeout=max(min(timeout, watchdog.left()), 0.01))
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    raise HttpError(f"{public_url(url)}: HTTP {exc.code}") from exc
                last = exc
            except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, a garbled answer
                if watchdog.expired:
                    raise _late(url, budget) from exc
                if isinstance(exc, http.client.InvalidURL):
                    raise HttpError(f"{public_url(url)}: {exc}") from exc
                last = exc
            except ValueError as exc:  # not a URL at all: no retry
                raise HttpError(f"{public_url(url)}: {exc}") from exc
            else:
                with resp:
                    yield _Body(resp, url, budget, watchdog)
                return
    reason = f"HTTP {last.code}" if isinstance(last, urllib.error.HTTPError) else str(getattr(last, "reason", None) or last)
    raise HttpError(f"{public_url(url)}: {reason}")


def request(url: str, *, timeout: float = 60, headers: dict[str, str] | None = None) -> Response:
    """The body of `url`, its content type and its final URL (relative links resolve against it).

    The whole fetch has PAGE's deadline and cap (FLEX_HTTP_DEADLINE, FLEX_HTTP_MAX_BYTES replace them);
    `timeout` bounds each wait for the server."""
    with _open(url, timeout, headers, PAGE) as body:
        data = b"".join(body.chunks())
        return Response(data, body.resp.headers.get("Content-Type", ""), body.resp.geturl())


def get(url: str, timeout: float = 30) -> bytes:
    """The body of `url`."""
    return request(url, timeout=timeout).body


def fetch_verified(url: str, sha256: str, dest: Path, cache: Path | None = None) -> Path:
    """Download `url` once into a content-addressed cache, refusing any byte that fails its hash.
    The download has FILE's deadline and cap (FLEX_HTTP_DEADLINE, FLEX_HTTP_MAX_BYTES replace them)."""
    cache = cache or cache_root() / "files"
    cached = cache / sha256 / url.rsplit("/", 1)[-1]
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False) as tmp:
            try:
                with _open(url, 60, None, FILE) as body:
                    for chunk in body.chunks():
                        digest.update(chunk)
                        tmp.write(chunk)
            except (HttpError, OSError) as exc:
                os.unlink(tmp.name)
                why = str(exc) if isinstance(exc, HttpError) else f"{public_url(url)}: {exc}"
                raise HttpError(f"cannot download {why}") from exc
        if digest.hexdigest() != sha256:
            os.unlink(tmp.name)
            raise HttpError(f"checksum mismatch for {public_url(url)}: expected {sha256}, actual {digest.hexdigest()}")
        os.replace(tmp.name, cached)
    else:
        actual = _sha256_of(cached)
        if actual != sha256:  # the cache is content-addressed: a file that no longer hashes right was altered
            what = f"the cached copy {cached} was altered"
            raise HttpError(f"checksum mismatch for {public_url(url)}: {what}: expected {sha256}, actual {actual}; delete it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, dest)
    return dest


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
