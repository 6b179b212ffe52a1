"""Asking upstream what the schedule's tags and minors point at today: registries and python.org.

Read-only: nothing here writes a file. Every answer is checked before it is trusted (a digest is
the hash of the bytes served; a CPython checksum comes from the release's own Sigstore bundle or
SBOM, and both must agree), and any unreadable or untrustworthy answer is an `UpstreamError` that
names the source and its own words.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from generator.core import http, registry
from generator.core.errors import GeneratorError
from generator.schedule.decisions import version_key

PYTHON_SOURCE = "https://www.python.org/ftp/python/"
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
ARCHES = {"amd64": ("linux", "amd64", None), "arm64": ("linux", "arm64", "v8")}


class UpstreamError(GeneratorError):
    """A registry or python.org could not be read, or answered something that cannot be trusted."""


# --- base images --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseAnswer:
    image: str
    digest: str  # what the tag points at: the index digest (or the single manifest's)
    manifests: dict[str, str] = field(default_factory=dict)  # arch → its manifest digest


def tls_verify(image: str) -> bool | None:
    """Plain HTTP only for a registry on this machine; elsewhere registries.conf decides."""
    return False if registry.on_this_machine(image) else None


MIRRORS_ENV = "FLEX_PYTHON_REGISTRY_MIRRORS"


def mirrored(image: str) -> str:
    """Where to ask for `image`: FLEX_PYTHON_REGISTRY_MIRRORS="docker.io=mirror.example:5000,…" sends
    a registry's questions to a pull-through mirror of it (which serves the same digests)."""
    for item in filter(None, (x.strip() for x in os.environ.get(MIRRORS_ENV, "").split(","))):
        source, sep, mirror = item.partition("=")
        if not sep or not re.fullmatch(r"[a-z0-9.-]+(:\d{1,5})?", source, re.ASCII) or not re.fullmatch(r"[a-z0-9.-]+(:\d{1,5})?", mirror, re.ASCII):
            raise UpstreamError(f"{MIRRORS_ENV}: {item!r} is not REGISTRY=MIRROR (host[:port]=host[:port])")
        if image.startswith(source + "/"):
            return mirror + image[len(source) :]
    return image


def base_image(image: str) -> BaseAnswer:
    """The digest `image` (a tag) points at now, and each architecture's manifest digest."""
    asked = mirrored(image)
    try:
        manifest = registry.fetch_manifest(asked, tls_verify=tls_verify(asked))
    except registry.RegistryError as exc:
        raise UpstreamError(str(exc) if asked == image else f"{image} (asked of the mirror {asked}): {exc}") from exc
    manifests: dict[str, str] = {}
    if manifest.is_index:
        for entry in json.loads(manifest.raw).get("manifests", []):
            plat = entry.get("platform") or {}
            for arch, (os_, cpu, variant) in ARCHES.items():
                if plat.get("os") == os_ and plat.get("architecture") == cpu and plat.get("variant", variant) in (variant, None):
                    manifests.setdefault(arch, entry.get("digest", ""))
    else:
        manifests["amd64"] = manifest.digest  # a single-architecture tag (the project's images are amd64)
    bad = {a: d for a, d in manifests.items() if not re.fullmatch(r"sha256:[0-9a-f]{64}", d, re.ASCII)}
    if bad:
        raise UpstreamError(f"{image}: the index lists malformed manifest digests {bad}")
    return BaseAnswer(image, manifest.digest, manifests)


def nix_prefetch(image: str, digest: str, arch: str) -> str | None:
    """The pullImage hash for a digest and architecture, where nix-prefetch-docker and the registry are at hand."""
    exe = shutil.which("nix-prefetch-docker")
    if not exe:
        return None
    name, tag, _ = registry.split_reference(image)
    short = re.sub(r"^(docker\.io/)?(library/)?", "", name)
    cmd = [exe, "--quiet", "--image-name", name, "--image-digest", digest, "--final-image-name", short]
    cmd += ["--final-image-tag", tag or "latest", "--os", "linux", "--arch", arch]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'(?:sha256|hash) = "([^"]+)"', proc.stdout)  # older versions print sha256, newer hash
    return m.group(1) if proc.returncode == 0 and m else None


# --- CPython releases ---------------------------------------------------------------------------


def _get(url: str) -> bytes:
    try:
        return http.get(url)
    except http.HttpError as exc:
        raise UpstreamError(str(exc)) from exc


def release_sha256(source: str, version: str, ext: str = "tgz") -> tuple[str, str]:
    """sha256 of Python-X.Y.Z.<ext> from the metadata published beside it: the Sigstore bundle's
    message digest, else the SPDX SBOM's checksum (as docker-library does). Never computed from a
    guess; a missing, malformed or disagreeing answer is an error. Returns (sha256, evidence)."""
    base = f"{source.rstrip('/')}/{version}/Python-{version}.{ext}"
    found: dict[str, str] = {}
    errors = []
    try:
        bundle = json.loads(_get(base + ".sigstore"))
        digest = bundle["messageSignature"]["messageDigest"]
        if digest.get("algorithm") != "SHA2_256":
            raise ValueError(f"digest algorithm {digest.get('algorithm')!r}")
        found["sigstore"] = base64.b64decode(digest["digest"], validate=True).hex()
    except (UpstreamError, ValueError, KeyError, TypeError) as exc:
        errors.append(f".sigstore: {exc}")
    try:
        sbom = json.loads(_get(base + ".spdx.json"))
        for pkg in sbom.get("packages", []):
            if pkg.get("name") == "CPython" and pkg.get("versionInfo") == version:
                sums = [c["checksumValue"].lower() for c in pkg.get("checksums", []) if c.get("algorithm") == "SHA256"]
                if sums:
                    found["spdx"] = sums[0]
        if "spdx" not in found:
            raise ValueError(f"no SHA256 checksum for CPython {version}")
    except (UpstreamError, ValueError, KeyError, TypeError, AttributeError) as exc:
        errors.append(f".spdx.json: {exc}")
    for where, value in found.items():
        if not _HEX64.fullmatch(value):
            raise UpstreamError(f"Python {version}: the {where} checksum {value[:80]!r} is not a sha256")
    if len(set(found.values())) > 1:
        raise UpstreamError(f"Python {version}: the release metadata disagree ({found}); not pinning it")
    if not found:
        raise UpstreamError(f"Python {version}: no verifiable checksum published for Python-{version}.{ext} ({'; '.join(errors)}); not pinning it")
    where = " and ".join(sorted(found))
    return next(iter(found.values())), f"{base}: the {where} metadata published beside it"


def newest_patch(source: str, minor: str) -> str:
    """The newest X.Y.Z directory of `minor` in the release listing (final releases only)."""
    listing = _get(source).decode("utf-8", "replace")
    found = set(re.findall(rf'href="({re.escape(minor)}\.\d{{1,3}})/?"', listing, re.ASCII))
    if not found:
        raise UpstreamError(f"{source}: no release of Python {minor} listed")
    return max(found, key=version_key)
