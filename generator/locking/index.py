"""A package index client (PEP 691 JSON or PEP 503 HTML): which files a project has, with their sha256.

wheels.json is written from it: every hash of a lock must be a file the index really lists.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from dataclasses import dataclass

from generator.core import http
from generator.locking.target import LockError

ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


def canonical(name: str) -> str:
    """PEP 503 name normalisation: the key of index pages and of parsed locks."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    sha256: str | None


def _anchors(text: str) -> list[dict[str, str | None]]:
    """The attributes of every <a> of a PEP 503 page."""
    import html.parser  # only for an HTML index: PyPI answers in JSON

    links: list[dict[str, str | None]] = []

    class Anchors(html.parser.HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                links.append(dict(attrs))

    parser = Anchors()
    parser.feed(text)
    parser.close()
    return links


class Index:
    """A simple index; each project page is fetched once per process (threads share the pages)."""

    _pages: dict[tuple[str, str], list[IndexFile]] = {}  # noqa: RUF012
    _lock = threading.Lock()

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def files(self, name: str) -> list[IndexFile]:
        key = (self.url, canonical(name))
        with self._lock:
            if key in self._pages:
                return self._pages[key]
        try:
            resp = http.request(f"{self.url}/{canonical(name)}/", timeout=60, headers={"Accept": ACCEPT})
        except http.HttpError as exc:
            raise LockError(str(exc)) from exc
        if "json" in resp.content_type:
            data = json.loads(resp.body)
            files = [IndexFile(f["filename"], urllib.parse.urljoin(resp.url, f["url"]), f.get("hashes", {}).get("sha256")) for f in data["files"]]
        else:
            files = []
            for a in _anchors(resp.body.decode("utf-8", "replace")):
                url, _, frag = urllib.parse.urljoin(resp.url, a.get("href") or "").partition("#")
                sha = frag[len("sha256=") :] if frag.startswith("sha256=") else None
                files.append(IndexFile(urllib.parse.unquote(url.rsplit("/", 1)[-1]), url, sha))
        with self._lock:
            self._pages[key] = files
        return files
