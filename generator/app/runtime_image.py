"""`app --runtime-image`: a reference checked against the OCI grammar, pinned by digest.

Accepted: `NAME[:TAG][@sha256:HEX]` as the distribution reference grammar defines it (a digest is
used as given; a tag is asked of its registry with skopeo), or a local image: `containers-storage:REF`
(podman's storage, also any `localhost/…` name without a port) or `docker-daemon:REF`, whose digest
is read from the local engine. Nothing else reaches the Dockerfile, so a newline cannot add lines.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from generator.core.errors import InputError

# github.com/distribution/reference, regexp.go
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
REFERENCE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?")
LOCAL = ("containers-storage:", "docker-daemon:")
_GRAMMAR = "NAME[:TAG][@sha256:<64 hex>], containers-storage:NAME[:TAG] or docker-daemon:NAME[:TAG]"


class ImageRefError(InputError):
    """--runtime-image is not a reference this tool can pin."""


class PinError(InputError):
    """The digest could not be found (registry unreachable, image absent); nothing is written."""


def parse(ref: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of a reference, or ImageRefError naming the grammar."""
    m = REFERENCE.fullmatch(ref)
    if not m or len(m.group(1)) > 255:
        raise ImageRefError(f"--runtime-image {ref!r} is not an image reference; valid forms: {_GRAMMAR}")
    name, tag, digest = m.groups()
    if digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ImageRefError(f"--runtime-image {ref!r}: the digest must be sha256: and 64 lowercase hex digits")
    return name, tag, digest


def pin(ref: str) -> tuple[str, str]:
    """(the reference to write after FROM: NAME@sha256:…, the repository name) for --runtime-image."""
    transport = next((t for t in LOCAL if ref.startswith(t)), None)
    body = ref[len(transport) :] if transport else ref
    name, _tag, digest = parse(body)
    if digest:
        return f"{name}@{digest}", name
    if transport == "docker-daemon:":
        return _docker_daemon(body, name), name
    if transport or (name.startswith("localhost/") and "." not in name.split("/", 1)[0]):
        return _containers_storage(body, name)
    from generator.core import registry

    try:
        return f"{name}@{registry.current_digest(body, tls_verify=not registry.on_this_machine(name))}", name
    except registry.RegistryError as exc:
        raise PinError(
            f"cannot pin the runtime image by digest: {_reason(str(exc))}; pass --runtime-image NAME[:TAG]@sha256:…, "
            "or a local image as containers-storage:NAME:TAG (see docs/app-developers.md, 'From zero')"
        ) from exc


def build_image_of(runtime_ref: str) -> str:
    """The build image published beside a runtime image: the same name, its tag + `-build` (`build` tags it so)."""
    transport = next((t for t in LOCAL if runtime_ref.startswith(t)), "")
    name, tag, digest = parse(runtime_ref[len(transport) :])
    if digest and not tag:
        raise ImageRefError(
            f"--runtime-image {runtime_ref} is pinned by digest alone, so its build image cannot be named after it; "
            "pass --build-image NAME[:TAG][@sha256:…] (the runtime's build image, tag <version>-build)"
        )
    return f"{transport}{name}:{tag or 'latest'}-build"


def _reason(message: str) -> str:
    """skopeo's log line → its message, without the log framing."""
    m = re.search(r'msg="((?:[^"\\]|\\.)*)"', message)
    text = m.group(1).replace('\\"', '"') if m else message
    for needle, plain in (
        ("connection refused", "the registry refused the connection"),
        ("no such host", "the registry's host name does not resolve"),
        ("i/o timeout", "the registry did not answer"),
        ("manifest unknown", "the registry has no such tag"),
        ("unauthorized", "the registry wants credentials (skopeo login / podman login)"),
    ):
        if needle in text:
            ref = message.split(": ", 1)[0]
            return f"{ref}: {plain}"
    return text


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(cmd[0])
    if not exe:
        raise PinError(f"{cmd[0]} is not installed; it is needed to read the digest of a local image")
    return subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=120)


def _containers_storage(ref: str, name: str) -> tuple[str, str]:
    proc = _run(["podman", "image", "inspect", "--format", "{{json .}}", ref])
    if proc.returncode != 0:
        raise PinError(f"--runtime-image {ref}: no such image in podman's local storage (podman images lists them; build one first)")
    data = json.loads(proc.stdout)
    data = data[0] if isinstance(data, list) else data
    digest = data.get("Digest") or ""
    tags = [t for t in data.get("RepoTags") or [] if t.rsplit(":", 1)[0].endswith(name)]
    full = tags[0].rsplit(":", 1)[0] if tags else (name if "/" in name else f"localhost/{name}")
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise PinError(f"--runtime-image {ref}: podman reports no manifest digest for it")
    return f"{full}@{digest}", full


def _docker_daemon(ref: str, name: str) -> str:
    proc = _run(["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", ref])
    if proc.returncode != 0:
        raise PinError(f"--runtime-image docker-daemon:{ref}: no such image in the docker daemon")
    digests = [d for d in json.loads(proc.stdout or "null") or [] if d.split("@", 1)[0].endswith(name)]
    if not digests:
        raise PinError(
            f"--runtime-image docker-daemon:{ref}: docker knows no digest for it (only pushed or pulled images have one); "
            "push it to a registry, or build and use it with podman (containers-storage:)"
        )
    return sorted(digests)[0]
