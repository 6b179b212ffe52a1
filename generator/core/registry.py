"""Registry access through skopeo: the current digest of a tag, as the registry serves it; an image's
config; pushing an OCI layout (an image's SBOM artifact, generator/images/sbom_publish.py).

skopeo speaks the OCI distribution API with every auth flow (Docker Hub's anonymous bearer
tokens included) and the right Accept headers; we take the raw top-level manifest (an index for
multi-arch tags, else a single manifest) and hash its bytes ourselves, which is exactly the
digest a `FROM name@sha256:…` pins.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import shutil
import subprocess
from dataclasses import dataclass

from generator.core.errors import GeneratorError

MEDIA_INDEX = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
MEDIA_MANIFEST = {"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"}


class RegistryError(GeneratorError):
    """The registry could not be asked, or answered something we cannot trust."""


@dataclass(frozen=True)
class Manifest:
    reference: str
    digest: str
    media_type: str
    raw: bytes

    @property
    def is_index(self) -> bool:
        return self.media_type in MEDIA_INDEX


def skopeo() -> str:
    path = shutil.which("skopeo")
    if not path:
        raise RegistryError("skopeo is not installed (apt-get install skopeo); it is how this tool talks to registries")
    return path


def split_reference(ref: str) -> tuple[str, str | None, str | None]:
    """`name[:tag][@digest]` → (name, tag, digest); a port in the host is not a tag."""
    name, _, digest = ref.partition("@")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest or None


def registry_host(ref: str) -> str | None:
    """The registry host[:port] a reference names, or None (Docker Hub): as the distribution grammar
    reads it, the first component is a host only if it has a `.` or `:` or is `localhost`."""
    first, sep, _ = ref.partition("/")
    return first if sep and ("." in first or ":" in first or first.lower() == "localhost") else None


def is_loopback(host: str) -> bool:
    """Whether host[:port] is this machine: exactly `localhost`, or a loopback IP (`[::1]` bracketed).
    Parsed, never a prefix: `localhost.evil.example` and `127.0.0.1.nip.io` are other machines."""
    if host.startswith("["):
        addr, sep, rest = host[1:].partition("]")
        if not sep:
            return False
    else:
        addr, _, rest = host.partition(":")
        rest = ":" + rest if rest else ""
    if rest and not (rest[0] == ":" and rest[1:].isascii() and rest[1:].isdigit()):
        return False
    if addr.lower() == "localhost" and not host.startswith("["):
        return True
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return ip.is_loopback and (ip.version == 6) == host.startswith("[")


def on_this_machine(ref: str) -> bool:
    """Whether the registry of `ref` is on this machine (the only place plain HTTP is used)."""
    host = registry_host(ref)
    return host is not None and is_loopback(host)


def fetch_manifest(ref: str, *, tls_verify: bool | None = True, timeout: float = 60) -> Manifest:
    """The raw top-level manifest of `ref` (a tag or a digest reference) and its digest.

    tls_verify None leaves it to registries.conf (its mirrors and their `insecure` setting)."""
    raw = _skopeo(ref, ["inspect", "--raw", "--retry-times", "2", *_tls("--tls-verify", tls_verify), f"docker://{ref}"], timeout)
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise RegistryError(f"{ref}: the registry's manifest is not JSON") from exc
    media = doc.get("mediaType") or ("application/vnd.oci.image.index.v1+json" if "manifests" in doc else "")
    if media not in MEDIA_INDEX | MEDIA_MANIFEST:
        raise RegistryError(f"{ref}: unexpected manifest media type {media!r}")
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    _, _, pinned = split_reference(ref)
    if pinned and pinned != digest:
        raise RegistryError(f"{ref}: the registry served a manifest whose digest is {digest}, not the one asked for")
    return Manifest(ref, digest, media, raw)


def current_digest(ref: str, *, tls_verify: bool | None = True) -> str:
    return fetch_manifest(ref, tls_verify=tls_verify).digest


def image_config(ref: str, *, tls_verify: bool | None = True, timeout: float = 60) -> dict:
    """The image config (the JSON blob its manifest names: Labels under "config") of `ref`."""
    raw = _skopeo(ref, ["inspect", "--config", "--raw", "--retry-times", "2", *_tls("--tls-verify", tls_verify), f"docker://{ref}"], timeout)
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise RegistryError(f"{ref}: the image config is not JSON") from exc
    return doc if isinstance(doc, dict) else {}


def push_layout(layout: str, ref: str, *, tls_verify: bool | None = True, timeout: float = 300) -> None:
    """Copy the one image of an OCI layout directory to `ref`, byte for byte (its digests preserved)."""
    args = ["copy", "--quiet", "--preserve-digests", "--retry-times", "2", *_tls("--dest-tls-verify", tls_verify), f"oci:{layout}", f"docker://{ref}"]
    _skopeo(ref, args, timeout)


def _tls(flag: str, verify: bool | None) -> list[str]:
    """skopeo's TLS flag; None leaves it to registries.conf (its mirrors and their `insecure` setting)."""
    return [] if verify is None else [f"{flag}={str(verify).lower()}"]


def _skopeo(ref: str, args: list[str], timeout: float) -> bytes:
    """skopeo's stdout; its last line of stderr (the registry's answer) as a RegistryError.

    `timeout` is the wall clock for the whole of it, as for every fetch of generator/core/http.py (and
    FLEX_HTTP_DEADLINE replaces it the same way); skopeo caps a manifest or config at 4 MiB itself."""
    from generator.core.http import DEADLINE_ENV, Limits, limits

    deadline = limits(Limits(timeout, 1)).deadline
    try:
        proc = subprocess.run([skopeo(), *args], capture_output=True, timeout=deadline)
    except subprocess.TimeoutExpired as exc:
        raise RegistryError(f"{ref}: the registry did not answer within {deadline:g} s; set {DEADLINE_ENV}=SECONDS to allow longer") from exc
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RegistryError(f"{ref}: {msg[-1] if msg else 'skopeo failed'}")
    return proc.stdout
