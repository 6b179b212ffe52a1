"""The lock of the schedule: every fact a machine fetched, with its evidence.

`schedule.yaml` says what people decide (which Ubuntu tags, which Python minors); this file,
`lockfiles/schedule.lock.json`, says what those resolved to: the base image digests (the index
digest a `FROM` pins, per architecture the manifest digest and the Nix pullImage hash where known),
the current patch release of each Python minor, each CPython tarball's sha256, and the OS package
locks (the closures apt adds, and the packages each base already holds). Like Cargo.lock or apko's
lock: `refresh` writes it whole as sorted JSON, nothing else writes it, and rendering reads it
without ever fetching.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Final, Literal

from generator.core import paths, readfile
from generator.core.errors import InputError
from generator.core.validate import (
    _LABEL,
    EARLIEST,
    LATEST,
    Digest,
    ImageRef,
    Minor,
    NixSha256,
    Pattern,
    Problem,
    Range,
    Sha256,
    TarballUrl,
    Valid,
    Version,
    convert,
    nonempty,
)
from generator.core.yamlsrc import dotted

FORMAT: Final = 1  # Final: its type is Literal[1], the only format the lock dataclass accepts
ABOUT = "Written by `python -m generator refresh`: every fetched pin of schedule.yaml, with its evidence. Do not edit by hand."

Arch = Annotated[str, Pattern(r"amd64|arm64", "an architecture: amd64 or arm64")]
OsId = Annotated[str, Pattern(r"[a-z][a-z0-9]{0,31}", "an OS id such as ubuntu22")]
Evidence = Annotated[str, Pattern(r"[\x20-\x7e]{1,500}", "one line of printable ASCII saying where the value was read")]


_ARCHIVE = rf"https?://{_LABEL}(?:\.{_LABEL})*(?::\d{{1,5}})?(?:/(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{{2}})*){{0,30}}"
_REMAKE = nonempty("a package lock reads at least one suite; run `refresh --only packages`")
_PINNED = r"[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+(:[A-Za-z0-9._-]+)?@sha256:[0-9a-f]{64}"
PinnedRef = Annotated[str, Pattern(_PINNED, "an image reference pinned by digest: host/path:tag@sha256:…")]


def _moment(text: str) -> bool:
    try:
        return EARLIEST.year <= dt.datetime.strptime(text, "%Y%m%dT%H%M%SZ").year <= LATEST.year
    except ValueError:
        return False


class ScheduleLockError(InputError):
    """The lock file is missing, unreadable or malformed; the message says how to remake it."""


@dataclass(frozen=True)
class Platform:
    """One architecture of a base image: its own manifest, and the hash Nix's pullImage checks."""

    manifest_digest: Digest | None
    nix_sha256: NixSha256 | None


@dataclass(frozen=True)
class BaseImage:
    image: ImageRef  # the tag this digest was read from: it must still be the schedule's
    digest: Digest  # the index digest (or the single manifest's): what `FROM name@digest` pins
    platforms: Annotated[dict[Arch, Platform], nonempty("a base image has at least one architecture; run `refresh --only os`")]
    evidence: Evidence


@dataclass(frozen=True)
class CPythonRelease:
    url: TarballUrl
    sha256: Sha256 | None  # of the .tgz at url (None: only the .tar.xz's is known, and builds use that)
    tar_xz_sha256: Sha256 | None
    evidence: Evidence


DebVersion = Annotated[str, Pattern(r"([0-9]{1,9}:)?[0-9][A-Za-z0-9.+~-]{0,126}(?<!-)", "a Debian package version (a revision after - is not empty)")]
_POOL = r"pool/[a-z0-9-]{1,40}/[a-z0-9+.-]{1,60}/[A-Za-z0-9+.-]{1,100}/[A-Za-z0-9](?:[A-Za-z0-9+.~_-]|%[0-9A-Fa-f]{2}){0,199}\.deb"
PoolPath = Annotated[str, Pattern(_POOL, "an archive path pool/COMPONENT/…/NAME.deb")]
Suite = Annotated[str, Pattern(r"[a-z]{2,20}(-[a-z]{2,20})?", "an archive suite such as jammy-security")]
Snapshot = Annotated[str, Pattern(r"\d{8}T\d{6}Z", "a snapshot timestamp YYYYMMDDTHHMMSSZ"), Valid(lambda v: _moment(v), "no such date and time")]
DebSize = Annotated[int, Range(1, 2**40)]  # bytes: a .deb is never empty, nor a terabyte


DebName = Annotated[str, Pattern(r"[a-z0-9][a-z0-9+.-]{0,100}", "an apt package name")]
DebArch = Annotated[str, Pattern(r"amd64|arm64|all", "a Debian architecture")]


@dataclass(frozen=True)
class Deb:
    """One .deb of a closure: what apt chose, where the archive keeps it, and its hash from the signed index."""

    name: DebName
    version: DebVersion
    architecture: DebArch
    filename: PoolPath
    size: DebSize
    sha256: Sha256
    suite: Suite  # the pocket it was read from (the -security one when it is there)
    # The source package it was built from, as its Packages stanza's `Source:` names it (the package's
    # own name and version when it names none): what a CVE is filed against (openssl, not libssl3),
    # so scanners match the SBOM's `upstream=`. None only in an app lock written before it was recorded.
    source: DebName | None = None
    source_version: DebVersion | None = None


@dataclass(frozen=True)
class BasePackage:
    """One package installed in the base image, as dpkg in it listed it when the closures were resolved.

    No pool path, size or sha256: it is not fetched, it comes inside the base, and the base is pinned
    by digest (`base_images`). The source package is dpkg's `source:Package`/`source:Version` (the
    package's own name and version when it names no other)."""

    name: DebName
    version: DebVersion
    architecture: DebArch
    source: DebName
    source_version: DebVersion


@dataclass(frozen=True)
class OsPackages:
    """An operating system's package lock: the closures apt resolved inside a base, at one archive state."""

    archive: Annotated[str, Pattern(_ARCHIVE, "the archive URL the indices were read from: http(s)://HOST[:PORT]/PATH, % only as %XX")]
    snapshot: Snapshot  # when the indices were read, as the snapshot service names that state
    suites: Annotated[dict[Suite, Evidence], _REMAKE]  # each suite read → its signed Release file's Date
    resolved_in: Evidence  # the base image the closure was resolved in (reference and image id)
    evidence: Evidence
    base: list[BasePackage]  # installed in the base image before anything is added (what an image's SBOM lists besides the closure)
    build: list[Deb]  # the builder stage's closure of build_packages
    runtime: list[Deb]  # the final stage's closure of runtime_packages
    devel: list[Deb] = field(default_factory=list)  # the build image's closure of devel_packages (compilers, -dev packages)
    # The toolchain lock: the base the interpreter is compiled on, with `build` (its closure, resolved
    # in that base). `refresh` keeps both still while the base and runtime closure move (a new
    # interpreter only for a new CPython release or `refresh --toolchain`); None: the pinned base.
    toolchain_base: PinnedRef | None = None

    def image_packages(self) -> list[Deb | BasePackage]:
        """Every package installed in a runtime image: the base's, each one apt upgrades replaced by its
        runtime closure entry, and the rest of that closure. The build closure is not there (builder stage only)."""
        upgraded = {d.name for d in self.runtime}
        kept: list[Deb | BasePackage] = [p for p in self.base if p.name not in upgraded]
        return sorted([*kept, *self.runtime], key=lambda p: (p.name, p.architecture))

    def build_image_packages(self) -> list[Deb | BasePackage]:
        """Every package installed in a runtime's build image: the runtime image's, each one its devel
        closure upgrades replaced, and the rest of that closure."""
        upgraded = {d.name for d in self.devel}
        kept = [p for p in self.image_packages() if p.name not in upgraded]
        return sorted([*kept, *self.devel], key=lambda p: (p.name, p.architecture))


@dataclass(frozen=True)
class ScheduleLock:
    about: str
    format: Literal[1]
    base_images: dict[OsId, BaseImage]
    python_minors: dict[Minor, Version]  # the current patch release of every minor the schedule offers
    cpython: dict[Version, CPythonRelease]
    os_packages: dict[OsId, OsPackages] = field(default_factory=dict)

    def dumps(self) -> str:
        """The file's bytes: sorted keys, two-space indent, one newline at the end."""
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def empty() -> ScheduleLock:
    return ScheduleLock(about=ABOUT, format=FORMAT, base_images={}, python_minors={}, cpython={})


def path_for(schedule_path: Path) -> Path:
    return schedule_path.resolve().parent / paths.SCHEDULE_LOCK


def loads(text: str, name: str = paths.SCHEDULE_LOCK) -> ScheduleLock:
    try:
        data = readfile.parse_json(text, source=name, limit=readfile.MAX_DATA)  # strict: a key written twice is refused, not "the last wins"
    except readfile.ReadError as exc:
        raise ScheduleLockError([f"{exc}; restore it with `git checkout -- {paths.SCHEDULE_LOCK}`"]) from exc
    if not isinstance(data, dict):
        raise ScheduleLockError([f"{name}: must be a JSON object; restore it with `git checkout -- {paths.SCHEDULE_LOCK}`"])
    found: list[Problem] = []
    pins = convert(data, ScheduleLock, (), found)
    if found:
        raise ScheduleLockError([f"{name}: {dotted(path) or '(top level)'}: {message}" for path, message in found])
    problems = [
        f"{name}: cpython.{v}.url: {rel.url!r} is not the tarball of {v}; it must end in /Python-{v}.tgz"
        for v, rel in pins.cpython.items()
        if not rel.url.endswith(f"/Python-{v}.tgz")
    ]
    problems += [
        f"{name}: cpython.{v}: neither sha256 (.tgz) nor tar_xz_sha256 (.tar.xz) is known: nothing could be checked"
        for v, rel in pins.cpython.items()
        if rel.sha256 is None and rel.tar_xz_sha256 is None
    ]
    problems += [
        f"{name}: os_packages.{os_id}.{key}: not sorted by name and architecture, or a package is listed twice; "
        f"remake it with `refresh --only packages {os_id}`"
        for os_id, lock in pins.os_packages.items()
        for key in ("base", "build", "runtime")
        if not _sorted_unique([(p.name, p.architecture) for p in getattr(lock, key)])
    ]
    problems += [
        f"{name}: os_packages.{os_id}.{key}: {d.name} {d.version} does not name its source package; remake it with `refresh --only packages {os_id}`"
        for os_id, lock in pins.os_packages.items()
        for key in ("build", "runtime", "devel")
        for d in getattr(lock, key)
        if d.source is None or d.source_version is None
    ]
    problems += [
        f"{name}: python_minors.{minor}: {v!r} is not a release of Python {minor}"
        for minor, v in pins.python_minors.items()
        if not v.startswith(minor + ".")
    ]
    if problems:
        raise ScheduleLockError(problems)
    return pins


def _sorted_unique(keys: list[tuple[str, str]]) -> bool:
    return all(a < b for a, b in itertools.pairwise(keys))


def load(path: Path, name: str = paths.SCHEDULE_LOCK) -> ScheduleLock:
    """The lock at `path` (TREE/lockfiles/schedule.lock.json), read only if it resolves inside TREE."""
    try:
        text = readfile.read_text(path, within=path.parent.parent, what="a lock file", limit=readfile.MAX_DATA, name=name, where="the tree")
    except readfile.ReadError as exc:
        if exc.missing:
            raise ScheduleLockError([f"{name} is missing: run `python -m generator refresh` (it asks the registries and python.org)"]) from exc
        raise ScheduleLockError([f"{exc}; restore it with `git checkout -- {paths.SCHEDULE_LOCK}`"]) from exc
    return loads(text, name)
