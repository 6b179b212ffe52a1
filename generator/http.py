"""The one HTTP client: TLS that trusts the system bundle, retries, and hash-checked downloads.

Every request of the tool (package indexes, python.org release metadata, the files a build
context holds) goes through here, so a TLS-intercepting proxy is configured once
(``SSL_CERT_FILE``/``PIP_CERT`` or the system bundle) and failures read the same everywhere.
"""

from __future__ import annotations

import hashlib
import os
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

from .cache import cache_root
from .errors import GeneratorError

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
    """A URL without credentials, for headers and messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        parts = parts._replace(netloc=(parts.hostname or "") + (f":{parts.port}" if parts.port else ""))
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


@contextmanager
def _open(url: str, timeout: float, headers: dict[str, str] | None) -> Iterator[Any]:
    """An open response; 5xx and connection errors are retried, 4xx are not (they will not change)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    last: Exception | None = None
    for attempt in range(RETRIES):
        if attempt:
            time.sleep(BACKOFF * attempt)
        try:
            resp = urllib.request.urlopen(request, timeout=timeout, context=ssl_context())
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise HttpError(f"{public_url(url)}: HTTP {exc.code}") from None
            last = exc
        except OSError as exc:  # URLError, timeouts, resets
            last = exc
        except ValueError as exc:  # not a URL at all: no retry
            raise HttpError(f"{public_url(url)}: {exc}") from None
        else:
            with resp:
                yield resp
            return
    reason = f"HTTP {last.code}" if isinstance(last, urllib.error.HTTPError) else str(getattr(last, "reason", None) or last)
    raise HttpError(f"{public_url(url)}: {reason}")


def request(url: str, *, timeout: float = 60, headers: dict[str, str] | None = None) -> Response:
    """The body of `url`, its content type and its final URL (relative links resolve against it)."""
    with _open(url, timeout, headers) as resp:
        try:
            body = resp.read()
        except OSError as exc:
            raise HttpError(f"{public_url(url)}: {exc}") from None
        return Response(body, resp.headers.get("Content-Type", ""), resp.geturl())


def get(url: str, timeout: float = 30) -> bytes:
    """The body of `url`."""
    return request(url, timeout=timeout).body


def fetch_verified(url: str, sha256: str, dest: Path, cache: Path | None = None) -> Path:
    """Download `url` once into a content-addressed cache, refusing any byte that fails its hash."""
    cache = cache or cache_root() / "files"
    cached = cache / sha256 / url.rsplit("/", 1)[-1]
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False) as tmp:
            try:
                with _open(url, 60, None) as resp:
                    while chunk := resp.read(1 << 16):
                        digest.update(chunk)
                        tmp.write(chunk)
            except (HttpError, OSError) as exc:
                os.unlink(tmp.name)
                why = str(exc) if isinstance(exc, HttpError) else f"{public_url(url)}: {exc}"
                raise HttpError(f"cannot download {why}") from None
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
