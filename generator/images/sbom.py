"""The SBOM of a runtime image, made from the lock alone: SPDX 2.3 and CycloneDX 1.6 JSON.

What an image holds is known before it is built: the base image (pinned by digest), the packages
installed in it (the lock's `base`, as dpkg in the base listed them, each one apt upgrades replaced
by its runtime closure entry, plus the rest of that closure; the build closure stays in the builder
stage), CPython (its source tarball and sha256) and the locked tools in /env (each file's sha256).
`inventory` lists them; `spdx_json` and `cyclonedx_json` serialize that list through spdx-tools
and cyclonedx-python-lib, each validated by its library before it is returned.

Deterministic: the same lock gives the same bytes. Everything is sorted; the one time is
SOURCE_DATE_EPOCH (1970-01-01T00:00:01Z, the images' own); the SPDX document namespace and the
CycloneDX serial number are made from the runtime's input hash (`render.input_hash`), so they move
exactly when the image's inputs do. Licenses: CPython's is PSF-2.0; the lock records none for the
.debs and the tools, so theirs are NOASSERTION (SPDX) or absent (CycloneDX), never guessed.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeGuard

from generator import __version__
from generator.core import fileset, paths
from generator.core.errors import GeneratorError
from generator.images import ospkgs, render
from generator.schedule.lock import BasePackage, Deb, OsPackages
from generator.schedule.runtimes import Runtime, Schedule

FORMATS = ("spdx-json", "cyclonedx-json")
SUFFIX = {"spdx-json": ".spdx.json", "cyclonedx-json": ".cdx.json"}
MEDIA_TYPE = {"spdx-json": "application/spdx+json", "cyclonedx-json": "application/vnd.cyclonedx+json"}
# The image label (set by `build`) that carries each file's sha256: the SBOM is attached to the image.
LABEL = {"spdx-json": "flex-python.sbom.spdx-json.sha256", "cyclonedx-json": "flex-python.sbom.cyclonedx-json.sha256"}
CPYTHON_LICENSE = "PSF-2.0"
TOOL = f"flex-python-generator-{__version__}"


class SbomError(GeneratorError):
    """An SBOM that cannot be made complete from the lock (exit 2: the lock lacks what it needs)."""

    exit_code = 2


@dataclass(frozen=True)
class Item:
    """One thing the image holds, in terms both formats share."""

    ref: str  # unique in the document: an SPDX id without its prefix, a CycloneDX bom-ref
    kind: Literal["oci", "deb", "cpython", "pypi"]
    name: str
    version: str
    purl: str
    sha256: str | None = None  # of the file it came from, where the lock pins one
    download: str | None = None
    license: str | None = None  # an SPDX license id, where known
    source: str | None = None  # where it came from, in words (SPDX sourceInfo)


@dataclass(frozen=True)
class Inventory:
    runtime_id: str
    image: str  # repository/id:version
    version: str
    input_hash: str
    namespace: str
    items: list[Item] = field(default_factory=list)

    @property
    def serial(self) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, self.namespace)


def _ref(kind: str, name: str, *qualifiers: str) -> str:
    """KIND-NAME[-QUALIFIER]…, an id of SPDX's alphabet ([A-Za-z0-9.-]) and one per package: two packages
    never share one (`a+b` and `aplusb` did), so no relationship points at the wrong one.

    Lowercase letters, digits and `.` stay (so do `-` in the name: libc-bin stays readable); `+` is PLUS;
    anything else, and `-` in a qualifier, is X and two hex digits per UTF-8 byte. Uppercase appears only
    in those escapes, and only the name may hold a `-`, so the id can be read back: it is injective.
    """
    return "-".join([kind, _ref_part(name, keep_dash=True), *(_ref_part(q, keep_dash=False) for q in qualifiers)])


def _ref_part(text: str, keep_dash: bool) -> str:
    out = []
    for c in text:
        if c == "+":
            out.append("PLUS")
        elif c in _REF_KEPT or (c == "-" and keep_dash):
            out.append(c)
        else:
            out.extend(f"X{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
    return "".join(out)


_REF_KEPT = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.")


def purl(kind: str, name: str, version: str | None = None, namespace: str | None = None, **qualifiers: str) -> str:
    """A package URL in its canonical form (packageurl-python's: encoded, qualifiers sorted)."""
    from packageurl import PackageURL

    return PackageURL(type=kind, namespace=namespace, name=name, version=version, qualifiers=qualifiers).to_string()


def inventory(schedule: Schedule, r: Runtime, build_image: bool = False) -> Inventory:
    """Everything runtime `r`'s image (or its build image) holds, from the lock; SbomError when the lock cannot say it all."""
    root = schedule.path.resolve().parent
    lock, tools = _locks(root, r)
    distro = f"{r.base_name.rsplit('/', 1)[-1]}-{r.base_tag}"  # ubuntu-22.04, as the purl spec's deb examples qualify it
    items = _image_items(r)
    for p in lock.build_image_packages() if build_image else lock.image_packages():
        ref, deb_purl = _ref("deb", p.name, p.architecture), deb_purl_of(p, distro)
        if isinstance(p, Deb):
            where = f"{ospkgs.SNAPSHOT_SERVICE}/{lock.snapshot}/{p.filename}"
            items.append(Item(ref, "deb", p.name, p.version, deb_purl, p.sha256, where, source=f"{p.filename} ({p.suite})"))
        else:
            items.append(Item(ref, "deb", p.name, p.version, deb_purl, source=_in_base(p)))
    for t in sorted(tools, key=lambda t: t["name"]):
        pypi_purl = purl("pypi", t["name"], t["version"])
        items.append(
            Item(_ref("pypi", t["name"]), "pypi", t["name"], t["version"], pypi_purl, t["sha256"], t["url"], source=f"{t['filename']} in /env")
        )
    input_hash = render.runtime_input_hash(schedule, root, r)
    name, image = (f"{r.id}-build", f"{r.image}-build") if build_image else (r.id, r.image)
    namespace = f"{schedule.model.publish.source.rstrip('/')}/spdx/{name}-{input_hash.removeprefix('sha256:')}"
    return Inventory(name, image, r.version, input_hash, namespace, items)


def deb_purl_of(p: Deb | BasePackage, distro: str) -> str:
    """pkg:deb/ubuntu/NAME@VERSION?arch=…&distro=…&upstream=SOURCE[@SOURCE_VERSION], as syft writes it: the
    source package is what a CVE is filed against (openssl, not libssl3), and its version is added only
    where it differs from the binary's (a binNMU, an epoch). SbomError for a lock that does not record it."""
    if p.source is None or p.source_version is None:
        raise SbomError(
            f"{p.name} {p.version}: {paths.SCHEDULE_LOCK} does not record its source package: run `python -m generator refresh --only packages`"
        )
    upstream = p.source if p.source_version == p.version else f"{p.source}@{p.source_version}"
    return purl("deb", p.name, p.version, "ubuntu", arch=p.architecture, distro=distro, upstream=upstream)


def _locks(root: Path, r: Runtime) -> tuple[OsPackages, list[dict[str, Any]]]:
    """The package lock and the tool lock of `r`; SbomError naming the command that makes one that is missing or incomplete."""
    lock = r.packages
    if lock is None:
        raise SbomError(
            f"{r.os_id} has no package lock in {paths.SCHEDULE_LOCK}, so {r.id}'s SBOM would be incomplete: "
            f"run `python -m generator refresh --only packages {r.os_id}`"
        )
    if not lock.base:
        raise SbomError(
            f"{r.os_id}'s package lock in {paths.SCHEDULE_LOCK} lists no packages of its base, so {r.id}'s SBOM would be incomplete: "
            f"run `python -m generator refresh --only packages {r.os_id}`"
        )
    _, tools = render.lock_inputs(root, r)
    if not tools:
        raise SbomError(
            f"{r.id} has no tool lock ({paths.tool_wheels(r.id)}), so its SBOM would be incomplete: run `python -m generator lock {r.id}`"
        )
    return lock, tools


def _image_items(r: Runtime) -> list[Item]:
    """The base image, by digest, and the CPython built on it."""
    digest = r.base.digest
    items = [
        Item(
            ref="base-image",
            kind="oci",
            name=r.base_name,
            version=digest,
            purl=purl("oci", r.base_name.rsplit("/", 1)[-1], digest, repository_url=r.base_name, tag=r.base_tag),
            source=f"the base image {r.base_reference}",
        )
    ]
    tarball, sha = r.tarballs[0]
    url = f"{r.interpreter.url.rsplit('/', 1)[0]}/{tarball}"
    others = ", ".join(f"{n} sha256 {s}" for n, s in r.tarballs[1:])
    items.append(
        Item(
            ref="cpython",
            kind="cpython",
            name="cpython",
            version=r.version,
            purl=purl("generic", "cpython", r.version, download_url=url),
            sha256=sha,
            download=url,
            license=CPYTHON_LICENSE,
            source=f"built from {tarball} into {r.prefix}" + (f" (where that file cannot be fetched, from {others})" if others else ""),
        )
    )
    return items


def _in_base(p: BasePackage) -> str:
    built = f"; source package {p.source} {p.source_version}" if (p.source, p.source_version) != (p.name, p.version) else ""
    return f"in the base image (pinned by digest){built}"


def created() -> dt.datetime:
    return dt.datetime.fromtimestamp(render.SOURCE_DATE_EPOCH, dt.UTC)


def spdx_json(inv: Inventory) -> str:
    """The SPDX 2.3 JSON document, validated by spdx-tools (a failure here is a bug: exit 1)."""
    import io

    from spdx_tools.spdx.model import Actor, ActorType, CreationInfo, Document
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    packages, relationships = _spdx_packages(inv)
    doc = Document(
        CreationInfo(
            spdx_version="SPDX-2.3",
            spdx_id="SPDXRef-DOCUMENT",
            name=inv.image,
            document_namespace=inv.namespace,
            creators=[Actor(ActorType.TOOL, TOOL)],
            created=created(),
            document_comment=(
                f"Made by `python -m generator sbom {inv.runtime_id}` from {paths.SCHEDULE_LOCK} and {paths.tool_wheels(inv.runtime_id)}, "
                "before the image is built: the same lock gives the same document."
            ),
        ),
        packages=packages,
        relationships=relationships,
    )
    problems = validate_full_spdx_document(doc, "SPDX-2.3")
    if problems:
        raise GeneratorError([f"the SPDX document of {inv.runtime_id} does not validate (a bug): {m.validation_message}" for m in problems[:20]])
    out = io.StringIO()
    write_document_to_stream(doc, out, validate=False)
    return out.getvalue() + "\n"


def _spdx_packages(inv: Inventory) -> tuple[list[Any], list[Any]]:
    """The image as an SPDX package that contains one package per item, and those relationships."""
    # spdx-tools marks only spdx_tools.spdx as typed (py.typed); spdx_tools.common has no marker
    from spdx_tools.common.spdx_licensing import spdx_licensing  # type: ignore[import-untyped]
    from spdx_tools.spdx.model import (
        Checksum,
        ChecksumAlgorithm,
        ExternalPackageRef,
        ExternalPackageRefCategory,
        Package,
        PackagePurpose,
        Relationship,
        RelationshipType,
        SpdxNoAssertion,
    )

    purpose = {"oci": PackagePurpose.CONTAINER, "deb": PackagePurpose.LIBRARY, "cpython": PackagePurpose.APPLICATION, "pypi": PackagePurpose.LIBRARY}
    image = Package(
        spdx_id="SPDXRef-image",
        name=inv.runtime_id,
        version=inv.version,
        download_location=SpdxNoAssertion(),
        files_analyzed=False,
        external_references=[ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", image_purl(inv))],
        primary_package_purpose=PackagePurpose.CONTAINER,
        comment=f"the runtime image {inv.image}; input hash {inv.input_hash}",
    )
    packages = [image]
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, "SPDXRef-image")]
    for item in inv.items:
        lic = spdx_licensing.parse(item.license) if item.license else SpdxNoAssertion()
        packages.append(
            Package(
                spdx_id=f"SPDXRef-{item.ref}",
                name=item.name,
                version=item.version,
                download_location=item.download if _spdx_url(item.download) else SpdxNoAssertion(),
                files_analyzed=False,
                checksums=[Checksum(ChecksumAlgorithm.SHA256, item.sha256)] if item.sha256 else [],
                source_info=item.source,
                license_concluded=lic,
                license_declared=lic,
                copyright_text=SpdxNoAssertion(),
                external_references=[ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", item.purl)],
                primary_package_purpose=purpose[item.kind],
            )
        )
        relationships.append(Relationship("SPDXRef-image", RelationshipType.CONTAINS, f"SPDXRef-{item.ref}"))
    return packages, relationships


def _spdx_url(url: str | None) -> TypeGuard[str]:
    """Can spdx-tools take this URL as a download location? Every URL a lock holds is valid (model.Url), but
    spdx-tools reads only a host name with a top-level domain: one on an address (a mirror on 127.0.0.1)
    is NOASSERTION there, and stays in the package's purl and in the CycloneDX document."""
    from spdx_tools.spdx.validation.uri_validators import validate_download_location

    if not url:
        return False
    return not validate_download_location(url)


def image_purl(inv: Inventory) -> str:
    """The image's own purl: no digest (the SBOM is made before the image exists, and is attached to it)."""
    repository, _, tag = inv.image.rpartition(":")
    return purl("oci", inv.runtime_id, repository_url=repository, tag=tag)


def cyclonedx_json(inv: Inventory, *, validate: bool = True) -> str:
    """The CycloneDX 1.6 JSON document, validated against its schema by cyclonedx-python-lib's
    validator (_cyclonedx_validator; tests that validate it themselves skip it)."""
    from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, XsUri
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.license import DisjunctiveLicense
    from cyclonedx.model.tool import ToolRepository
    from cyclonedx.output import make_outputter
    from cyclonedx.schema import OutputFormat, SchemaVersion
    from packageurl import PackageURL

    kind = {"oci": ComponentType.CONTAINER, "deb": ComponentType.LIBRARY, "cpython": ComponentType.APPLICATION, "pypi": ComponentType.LIBRARY}
    image = Component(
        name=inv.runtime_id, version=inv.version, type=ComponentType.CONTAINER, bom_ref="image", purl=PackageURL.from_string(image_purl(inv))
    )
    tool = Component(name="flex-python-generator", version=__version__, type=ComponentType.APPLICATION, bom_ref="tool")
    metadata = BomMetaData(component=image, timestamp=created(), tools=ToolRepository(components=[tool]))
    bom = Bom(serial_number=inv.serial, metadata=metadata)
    components = []
    for item in inv.items:
        c = Component(
            name=item.name,
            version=item.version,
            type=kind[item.kind],
            bom_ref=item.ref,
            purl=PackageURL.from_string(item.purl),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=item.sha256)] if item.sha256 else [],
            licenses=[DisjunctiveLicense(id=item.license)] if item.license else [],
            external_references=[ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(item.download))] if item.download else [],
            description=item.source,
        )
        bom.components.add(c)
        components.append(c)
    bom.register_dependency(image, components)
    text = make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6).output_as_string(indent=2) + "\n"
    error = next(_cyclonedx_validator().iter_errors(json.loads(text)), None) if validate else None
    if error is not None:
        raise GeneratorError(f"the CycloneDX document of {inv.runtime_id} does not validate (a bug): {error.message}")
    return text


@functools.cache
def _cyclonedx_validator() -> Any:
    """cyclonedx-python-lib's strict CycloneDX 1.6 schema validator, made once a process, with its
    `iri`/`iri-reference` format checks of an ASCII string done by rfc3986-validator (a regular
    expression: under a millisecond a URL) instead of rfc3987-syntax's Earley parser (about 1.3 s a
    document, the better part of a re-assembly's own time); IRIs and URIs are one grammar on ASCII,
    and every URL of a lock is ASCII (model.Url). Anything else goes to the stock check."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from jsonschema import FormatChecker  # type: ignore[import-untyped]
    from rfc3986_validator import validate_rfc3986  # type: ignore[import-untyped]

    stock = JsonStrictValidator(SchemaVersion.V1_6)._validator
    checker = FormatChecker(formats=())
    checker.checkers = dict(stock.format_checker.checkers)
    for name, rule in (("iri", "URI"), ("iri-reference", "URI_reference")):
        fallback = checker.checkers[name][0]

        def check(instance: object, rule: str = rule, fallback: Any = fallback) -> bool:
            if isinstance(instance, str) and instance.isascii():
                return validate_rfc3986(instance, rule=rule) is not None
            return bool(fallback(instance))

        checker.checks(name)(check)
    return stock.evolve(format_checker=checker)


def render_sbom(schedule: Schedule, r: Runtime, fmt: str, build_image: bool = False) -> str:
    inv = inventory(schedule, r, build_image)
    return spdx_json(inv) if fmt == "spdx-json" else cyclonedx_json(inv)


def documents(schedule: Schedule, r: Runtime, build_image: bool = False) -> dict[str, str]:
    """Both documents of runtime `r`'s image (or its build image), by format."""
    inv = inventory(schedule, r, build_image)
    return {"spdx-json": spdx_json(inv), "cyclonedx-json": cyclonedx_json(inv)}


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def labels(docs: dict[str, str]) -> dict[str, str]:
    """The image labels that attach these documents to it: each one's sha256."""
    return {LABEL[fmt]: sha256_of(text) for fmt, text in sorted(docs.items())}


def default_dir(schedule: Schedule) -> Path:
    """Where `build` writes a runtime's SBOMs, and `publish-sbom` reads them: build/sbom/ beside the schedule."""
    return schedule.path.resolve().parent / paths.SBOMS


def file_name(runtime_id: str, fmt: str) -> str:
    return f"{runtime_id}{SUFFIX[fmt]}"


def write(docs: dict[str, str], runtime_id: str, directory: Path, within: Path | None = None) -> list[Path]:
    """Each document as <runtime>.spdx.json / .cdx.json in `directory`, atomically: confined to the tree
    `within` (the default directory is in it), else where the user said (--sbom-dir: symlinks and FIFOs followed)."""
    out = []
    for fmt, text in sorted(docs.items()):
        path = directory / file_name(runtime_id, fmt)
        if within is not None:
            fileset.write_in(within, path, text)
        else:
            fileset.write_output(path, text)
        out.append(path)
    return out
