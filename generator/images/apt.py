"""Reading an apt archive: signed Release files, Packages indices, .deb control data.

Read-only and host-side. Every value the package locks record comes through here: a Packages
index is only trusted when its sha256 is the one its suite's Release file lists, and a Release
file (InRelease) only when gpgv accepts its signature with the keyring given. Nothing here writes
a file outside the cache.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from generator.core import http
from generator.core.errors import GeneratorError


class AptError(GeneratorError):
    """An archive index that could not be read or verified; the message names the URL and why."""


def paragraphs(text: str) -> list[dict[str, str]]:
    """deb822 stanzas (Packages, Release, dpkg status) as dicts; continuation lines are kept joined by newlines."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                out.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key is not None:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            current[key] = value.strip()
    if current:
        out.append(current)
    return out


def source_of(stanza: Mapping[str, str]) -> tuple[str, str]:
    """(source package, source version) of a binary package's stanza: `Source: NAME [(VERSION)]`, where
    a missing name is the package's own and a missing version the package's own (dpkg's rule)."""
    name, _, rest = stanza.get("Source", "").strip().partition(" ")
    version = rest.strip().removeprefix("(").removesuffix(")").strip()
    return name or stanza["Package"], version or stanza["Version"]


def strip_signature(inrelease: str) -> str:
    """The signed text of a clearsigned InRelease (without the armor)."""
    m = re.search(r"-----BEGIN PGP SIGNED MESSAGE-----\n(?:Hash:[^\n]*\n)*\n(.*?)\n-----BEGIN PGP SIGNATURE-----", inrelease, re.S)
    if not m:
        raise AptError("InRelease is not a clearsigned message")
    return "\n".join(line[2:] if line.startswith("- ") else line for line in m.group(1).split("\n"))


def verify_inrelease(data: bytes, keyrings: Path | list[Path], url: str) -> str:
    """The Release text of `data` (an InRelease) once gpgv found a good signature by a key of `keyrings`
    and no bad one. As apt does, a second signature by a key not in the keyring (xenial's 1999 DSA
    key beside the 2012 one) is no failure."""
    rings = [keyrings] if isinstance(keyrings, Path) else keyrings
    with tempfile.NamedTemporaryFile(suffix=".InRelease") as tmp:
        tmp.write(data)
        tmp.flush()
        args = [a for ring in rings for a in ("--keyring", str(ring))]
        proc = subprocess.run(["gpgv", "--status-fd", "1", *args, tmp.name], capture_output=True, text=True)
    status = proc.stdout.split("\n")
    good = any(line.startswith("[GNUPG:] VALIDSIG ") for line in status)
    bad = any(line.startswith(("[GNUPG:] BADSIG ", "[GNUPG:] EXPSIG ", "[GNUPG:] REVKEYSIG ")) for line in status)
    if not good or bad:
        why = " ".join(proc.stderr.split())[-300:]
        raise AptError(f"{url}: no good signature by a key of {', '.join(map(str, rings))} ({why})")
    return strip_signature(data.decode("utf-8"))


@dataclass(frozen=True)
class Release:
    suite: str
    date: str  # the Release file's Date: field, as written
    sha256: dict[str, tuple[str, int]]  # path under dists/SUITE/ -> (sha256, size)


def parse_release(text: str, suite: str) -> Release:
    fields = paragraphs(text)[0]
    sums: dict[str, tuple[str, int]] = {}
    for line in fields.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            sums[parts[2]] = (parts[0], int(parts[1]))
    if not sums:
        raise AptError(f"the Release file of {suite} lists no SHA256 sums")
    return Release(suite, fields.get("Date", ""), sums)


def _decompress(name: str, data: bytes) -> bytes:
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".bz2"):
        return bz2.decompress(data)
    return data


@dataclass(frozen=True)
class Index:
    """One suite's Packages index (one component, one architecture), verified."""

    suite: str
    component: str
    release_date: str
    packages: dict[tuple[str, str, str], dict[str, str]]  # (name, version, arch) -> stanza


def release(mirror: str, suite: str, keyring: Path) -> Release:
    url = f"{mirror.rstrip('/')}/dists/{suite}/InRelease"
    try:
        body = http.get(url, timeout=120)
    except http.HttpError as exc:
        raise AptError(str(exc)) from exc
    return parse_release(verify_inrelease(body, keyring, url), suite)


def packages_index(mirror: str, rel: Release, component: str, arch: str) -> Index:
    """The Packages index of (suite, component, arch), its bytes checked against the Release file's sha256."""
    base = f"{mirror.rstrip('/')}/dists/{rel.suite}"
    for ext in (".xz", ".gz", ""):
        path = f"{component}/binary-{arch}/Packages{ext}"
        if path in rel.sha256:
            break
    else:
        raise AptError(f"{base}/Release lists no {component}/binary-{arch}/Packages index")
    want, _ = rel.sha256[path]
    try:
        body = http.get(f"{base}/{path}", timeout=300)
    except http.HttpError as exc:
        raise AptError(str(exc)) from exc
    got = hashlib.sha256(body).hexdigest()
    if got != want:
        raise AptError(f"{base}/{path}: sha256 {got} is not the {want} its signed Release file lists")
    stanzas = paragraphs(_decompress(path, body).decode("utf-8", "replace"))
    return Index(rel.suite, component, rel.date, {(p["Package"], p["Version"], p["Architecture"]): p for p in stanzas if "Package" in p})
