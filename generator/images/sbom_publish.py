"""An image's SBOMs published beside it in its registry: an OCI artifact whose subject is the image.

The artifact is an OCI image manifest (OCI 1.1's artifact form: `artifactType`
application/spdx+json, the empty config application/vnd.oci.empty.v1+json) with one layer per
document, application/spdx+json and application/vnd.cyclonedx+json, each titled with its file
name, and `subject` = the image's manifest. A registry with the OCI 1.1 referrers API lists it
among the image's referrers; on every registry it is also tagged `sha256-<hex of the image
digest>.sbom`, cosign's convention, so it is found from the image digest alone. It is pushed with
skopeo from an OCI layout written here (`--preserve-digests`: the registry stores these exact
bytes), with the credentials of `podman login`/`skopeo login`, as the rest of the tool reaches
registries (generator/core/registry.py).

Nothing is pushed unless the files are the ones the image carries: each one's sha256 must be the
value of its SBOM label in the image's config, which `build` set.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from generator.core import registry
from generator.core.errors import GeneratorError
from generator.images import sbom as sbom_mod

EMPTY_CONFIG = b"{}"  # the OCI empty descriptor's content (application/vnd.oci.empty.v1+json)
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
TITLE = "org.opencontainers.image.title"


class PublishError(GeneratorError):
    """The SBOM files are missing, or are not the ones the image carries (exit 2: fix the input)."""

    exit_code = 2


@dataclass(frozen=True)
class Published:
    reference: str  # NAME:sha256-<hex>.sbom
    digest: str  # the artifact manifest's
    subject: str  # NAME@<image digest>
    files: list[str]


def tag_for(digest: str) -> str:
    """cosign's tag for an image's SBOM: sha256:<hex> → sha256-<hex>.sbom."""
    return digest.replace(":", "-") + ".sbom"


def _descriptor(media_type: str, data: bytes, **annotations: str) -> dict:
    d = {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}
    return {**d, "annotations": annotations} if annotations else d


def artifact(subject: registry.Manifest, files: dict[str, bytes]) -> tuple[bytes, dict[str, bytes]]:
    """The artifact manifest's bytes and its blobs by digest; `files` is file name → bytes, in format order."""
    layers, blobs = [], {}
    for name, data in files.items():
        fmt = next(f for f in sbom_mod.FORMATS if name.endswith(sbom_mod.SUFFIX[f]))
        layers.append(_descriptor(sbom_mod.MEDIA_TYPE[fmt], data, **{TITLE: name}))
        blobs[layers[-1]["digest"]] = data
    config = _descriptor(EMPTY_MEDIA_TYPE, EMPTY_CONFIG)
    blobs[config["digest"]] = EMPTY_CONFIG
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": sbom_mod.MEDIA_TYPE["spdx-json"],
        "config": config,
        "layers": layers,
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": len(subject.raw)},
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("utf-8"), blobs


def write_layout(directory: Path, manifest: bytes, blobs: dict[str, bytes]) -> None:
    """An OCI image layout holding one manifest and its blobs."""
    store = directory / "blobs" / "sha256"
    store.mkdir(parents=True)
    for digest, data in {**blobs, "sha256:" + hashlib.sha256(manifest).hexdigest(): manifest}.items():
        (store / digest.removeprefix("sha256:")).write_bytes(data)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "manifests": [_descriptor(MANIFEST_MEDIA_TYPE, manifest)]}
    (directory / "index.json").write_text(json.dumps(index, sort_keys=True))


def publish(runtime_id: str, image: str, directory: Path, *, tls_verify: bool | None = True) -> Published:
    """Check the SBOM files in `directory` against `image`'s labels, then push the artifact beside it."""
    files = {}
    for fmt in sbom_mod.FORMATS:
        path = directory / sbom_mod.file_name(runtime_id, fmt)
        if not path.is_file():
            how = f"`python -m generator build {runtime_id}` writes it (or `sbom {runtime_id} --format {fmt} -o FILE`)"
            raise PublishError(f"{path} is missing: {how}")
        files[path.name] = path.read_bytes()
    subject = registry.fetch_manifest(image, tls_verify=tls_verify)
    if subject.is_index:
        raise PublishError(f"{image} is an image index; give the digest of the image itself (what `podman push --digestfile` writes)")
    labels = (registry.image_config(f"{_name(image)}@{subject.digest}", tls_verify=tls_verify).get("config") or {}).get("Labels") or {}
    for fmt in sbom_mod.FORMATS:
        name = sbom_mod.file_name(runtime_id, fmt)
        label, actual = sbom_mod.LABEL[fmt], hashlib.sha256(files[name]).hexdigest()
        if labels.get(label) != actual:
            carried = f"its label {label} is {labels[label]}" if label in labels else f"it has no {label} label"
            raise PublishError(f"{directory / name} (sha256 {actual}) is not the SBOM {image} carries: {carried}; publish the files its build wrote")
    manifest, blobs = artifact(subject, files)
    reference = f"{_name(image)}:{tag_for(subject.digest)}"
    with tempfile.TemporaryDirectory(prefix="sbom-artifact-") as tmp:
        write_layout(Path(tmp) / "layout", manifest, blobs)
        registry.push_layout(str(Path(tmp) / "layout"), reference, tls_verify=tls_verify)
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    return Published(reference, digest, f"{_name(image)}@{subject.digest}", list(files))


def _name(image: str) -> str:
    return registry.split_reference(image)[0]
