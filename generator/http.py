"""The one HTTP client: TLS that trusts the system bundle (corporate proxies put their CA there)."""

from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path

from .errors import GeneratorError


class HttpError(GeneratorError):
    """A URL could not be fetched; the message names it and the server's or the network's answer."""


@cache
def ssl_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    for bundle in (os.environ.get("SSL_CERT_FILE"), os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt"):
        if bundle and Path(bundle).is_file():
            ctx.load_verify_locations(bundle)
            break
    return ctx


def get(url: str, timeout: float = 30) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ssl_context()) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        raise HttpError(f"{url}: HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise HttpError(f"{url}: {exc}") from None
