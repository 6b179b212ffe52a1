"""The runtime support schedule: schedule.yaml (what people decide) joined with its lock (what
machines fetched, generator/pins.py) into typed runtimes.

Everything downstream (resolver, renderer, tool locks, Nix data) reads a `Schedule`; nothing reads
the YAML or the lock directly. Validation errors name the file, the line, the key and the fix,
because the people editing this file are maintainers in a hurry, not the authors of this code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from . import pins as pins_mod
from . import yamlsrc
from .errors import InputError
from .model import FLATTEN, ImageRef, Minor, PackageName, Pattern, Problem, Range, Repository, Url, Version, convert
from .pins import BaseImage, CPythonRelease, OsPackages, Pins

SUPPORTED = "supported"
DEPRECATED = "deprecated"
END_OF_SUPPORT = "end_of_support"


# ./configure options by Python major version, each with why (the Dockerfile says it). 2.x is built
# wide, as Ubuntu's python2.7 and the images the python2 runtime replaces were: the manylinux wheels
# most 2.7 packages publish are cp27mu (UCS-4), and a narrow build (2.x's default) installs none.
CONFIGURE_OPTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "2": (
        (
            "--enable-unicode=ucs4",
            "wide unicode (sys.maxunicode 1114111), as Ubuntu's python2.7: the cp27mu ABI of 2.7's manylinux wheels",
        ),
    ),
    # 3.3+ stores str as PEP 393 says and has no such option
}


# --- the schedule's model: only decisions, no fetched value ----------------------------------------

OsName = Annotated[str, Pattern(r"[A-Za-z0-9][A-Za-z0-9 .()_-]{0,79}", "a display name: letters, digits, spaces and . ( ) _ -, at most 80")]


@dataclass(frozen=True)
class Keyless:
    """Who signs, with no key to keep: the workflow's OIDC identity (its certificate's SAN) and the issuer that vouched for it."""

    identity: Annotated[
        str, Pattern(r"[\x21-\x7e]{1,500}", "the signer's identity as its certificate names it, e.g. the workflow URL @refs/heads/main")
    ]
    issuer: Url


@dataclass(frozen=True)
class Signing:
    """How the published images are signed, so `verify` and `app` can check them (generator/images/signing.py)."""

    keyless: Keyless | None = None
    # a cosign public key (PEM) in the repository, relative to schedule.yaml: for a maintainer's key pair
    public_key: Annotated[str, Pattern(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+){0,10}", "a path in the repository such as keys/cosign.pub")] | None = None


@dataclass(frozen=True)
class Publish:
    repository: Repository
    source: Url
    signing: Signing | None = None  # absent: images are not verified before use (`verify` has nothing to check against)


@dataclass(frozen=True)
class Policy:
    deprecation_window_days: Annotated[int, Range(0, 3650)]


@dataclass(frozen=True)
class OperatingSystem:
    name: OsName
    image: ImageRef  # a tag: the lock pins the digest it points at
    end_of_support: dt.date
    glibc: Annotated[str, Pattern(r"2\.\d{1,3}", 'the glibc version of the OS, quoted, e.g. "2.35"')]
    build_packages: Annotated[list[PackageName], FLATTEN]  # the builder stage's (CPython's build dependencies)
    runtime_packages: Annotated[list[PackageName], FLATTEN]  # the final stage's: all the interpreter may link to
    apt_suites: list[Annotated[str, Pattern(r"[a-z]{2,20}(-[a-z]{2,20})?", "an archive suite such as jammy-security")]]
    apt_archive: Url = "http://archive.ubuntu.com/ubuntu"
    # the build image's (FROM the runtime image): compilers and the -dev packages of native extensions
    devel_packages: Annotated[list[PackageName], FLATTEN] = dataclasses.field(default_factory=list)
    apt_components: list[Annotated[str, Pattern(r"[a-z-]{1,20}", "an archive component such as main")]] = dataclasses.field(
        default_factory=lambda: ["main", "universe"]
    )


@dataclass(frozen=True)
class PythonRelease:
    end_of_support: dt.date  # upstream's (the PEP of that minor)


@dataclass(frozen=True)
class NewRuntime:
    id: Annotated[str, Pattern(r"python\d{2,3}-[a-z][a-z0-9]{0,31}", "a runtime ID is python<MAJOR><MINOR>-<os>")]
    os: str
    python: Minor  # the lock pins its current patch release


@dataclass(frozen=True)
class LegacyRuntime:
    id: Annotated[str, Pattern(r"python\d{1,3}", "a legacy runtime ID is python<MAJOR><MINOR> (python2 for 2.7)")]
    os: str
    python: Version  # a fixed interpreter: legacy runtimes never move
    python_version: list[Annotated[str, Pattern(r"\d(\.\d{1,2})?", 'a python_version setting such as "3" or "3.6"')]]
    default: bool = False


@dataclass(frozen=True)
class ScheduleModel:
    schema_version: Literal[2]
    publish: Publish
    policy: Policy
    operating_systems: dict[Annotated[str, Pattern(r"[a-z][a-z0-9]{0,31}", "an OS id such as ubuntu22")], OperatingSystem]
    python_releases: dict[Minor, PythonRelease]
    runtimes: list[NewRuntime]
    legacy_runtimes: list[LegacyRuntime]
    anchors: dict[str, Any] = dataclasses.field(default_factory=dict)


class ScheduleError(InputError):
    """One or more problems in the schedule, each already phrased for a person."""


@dataclass(frozen=True)
class Runtime:
    """One runtime of the schedule, joined with its OS and interpreter."""

    id: str
    style: Literal["new", "legacy"]
    os_id: str
    os: OperatingSystem
    base: BaseImage  # from the lock
    version: str  # the full release: the lock's current patch of the minor, or the legacy fixed one
    interpreter: CPythonRelease  # from the lock
    packages: OsPackages | None  # the OS's package lock (the closures of build_, runtime_ and devel_packages)
    python_end_of_support: dt.date
    python_version_settings: tuple[str, ...]
    legacy_default: bool
    default_for_os: bool
    image: str

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def glibc(self) -> tuple[int, int]:
        """The OS's glibc as (major, minor): which manylinux wheels its images can install."""
        major, minor = self.os.glibc.split(".")
        return int(major), int(minor)

    @property
    def configure_options(self) -> tuple[tuple[str, str], ...]:
        """(option, why) of CPython's ./configure for this runtime's major version, beyond the template's own."""
        return CONFIGURE_OPTIONS.get(self.version.split(".")[0], ())

    @property
    def prefix(self) -> str:
        return f"/opt/python{self.minor}"

    @property
    def end_of_support(self) -> dt.date:
        return min(self.os.end_of_support, self.python_end_of_support)

    def deprecated_from(self, window_days: int) -> dt.date:
        return self.end_of_support - dt.timedelta(days=window_days)

    @property
    def base_name(self) -> str:
        return self.os.image.rsplit(":", 1)[0]

    @property
    def base_tag(self) -> str:
        return self.os.image.rsplit(":", 1)[1]

    @property
    def base_reference(self) -> str:
        return f"{self.os.image}@{self.base.digest}"

    @property
    def tarballs(self) -> list[tuple[str, str]]:
        """(file name, sha256) of the CPython source tarballs a build takes, preferred first: the
        .tar.xz where its sha256 is pinned, then the .tgz where its is (both beside the lock's url; the
        lock refuses a release with neither)."""
        pinned = [("tar.xz", self.interpreter.tar_xz_sha256), ("tgz", self.interpreter.sha256)]
        return [(f"Python-{self.version}.{ext}", sha) for ext, sha in pinned if sha]


@dataclass(frozen=True)
class Schedule:
    path: Path
    model: ScheduleModel
    pins: Pins

    @cached_property
    def runtimes(self) -> dict[str, Runtime]:
        """All runtimes by ID, new style first, each group in schedule order."""
        m, lock = self.model, self.pins
        newest: dict[str, str] = {}
        for n in m.runtimes:
            if n.os not in newest or _vkey(n.python) > _vkey(newest[n.os]):
                newest[n.os] = n.python
        out: dict[str, Runtime] = {}
        listed: list[NewRuntime | LegacyRuntime] = [*m.runtimes, *m.legacy_runtimes]
        for r in listed:
            legacy = isinstance(r, LegacyRuntime)
            if isinstance(r, LegacyRuntime):  # a legacy runtime pins its own patch version and settings
                version, settings, legacy_default = r.python, tuple(r.python_version), r.default
            else:
                version, settings, legacy_default = lock.python_minors[r.python], (), False
            minor = ".".join(version.split(".")[:2])
            out[r.id] = Runtime(
                id=r.id,
                style="legacy" if legacy else "new",
                os_id=r.os,
                os=m.operating_systems[r.os],
                base=lock.base_images[r.os],
                version=version,
                interpreter=lock.cpython[version],
                packages=lock.os_packages.get(r.os),
                python_end_of_support=m.python_releases[minor].end_of_support,
                python_version_settings=settings,
                legacy_default=legacy_default,
                default_for_os=not legacy and newest[r.os] == r.python,
                image=f"{m.publish.repository}/{r.id}:{version}",
            )
        return out

    def status(self, runtime: Runtime, on: dt.date) -> str:
        """Derived, never typed: past the end → end_of_support; inside the window → deprecated."""
        if on >= runtime.end_of_support:
            return END_OF_SUPPORT
        if on >= runtime.deprecated_from(self.model.policy.deprecation_window_days):
            return DEPRECATED
        return SUPPORTED

    def new_style_os(self) -> dict[str, list[Runtime]]:
        """OS id → its new-style runtimes, oldest Python first."""
        out: dict[str, list[Runtime]] = {}
        for r in self.runtimes.values():
            if r.style == "new":
                out.setdefault(r.os_id, []).append(r)
        return {k: sorted(v, key=lambda r: _vkey(r.version)) for k, v in sorted(out.items())}

    def legacy(self) -> list[Runtime]:
        return [r for r in self.runtimes.values() if r.style == "legacy"]

    def newest(self) -> Runtime:
        """The flake's default package: newest Python, on the OS supported longest.

        Deliberately independent of today's date, so generated files never drift by themselves.
        """
        return max(self.runtimes.values(), key=lambda r: (_vkey(r.version), r.os.end_of_support))


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


version_key = _vkey


def load(path: Path | str, display: str | None = None, pins: Pins | None = None) -> Schedule:
    """Load and validate a schedule and its lock (or the `pins` given); raise ScheduleError/PinsError."""
    path = Path(path)
    model, doc = load_policy(path, display)
    lock = pins if pins is not None else pins_mod.load(pins_mod.path_for(path))
    problems = missing_pins(doc, model, lock)
    if problems:
        raise ScheduleError(problems)
    return Schedule(path=path, model=model, pins=lock)


def load_policy(path: Path | str, display: str | None = None) -> tuple[ScheduleModel, yamlsrc.Document]:
    """schedule.yaml alone, validated (refresh reads it to know what to ask upstream)."""
    path = Path(path)
    name = display or path.name
    try:
        doc = yamlsrc.load(path, name)
    except yamlsrc.YamlError as exc:
        raise ScheduleError([str(exc)]) from exc
    if not isinstance(doc.data, dict):
        raise ScheduleError([f"{name}: the schedule must be a YAML mapping (see the comments in schedule.yaml)"])
    problems = _numbers_written_as_versions(doc)
    if problems:
        raise ScheduleError(problems)
    found: list[Problem] = []
    model = convert(doc.data, ScheduleModel, (), found)
    if found:
        raise ScheduleError([_describe(doc, path, message) for path, message in found])
    problems = _cross_check(doc, model)
    if problems:
        raise ScheduleError(problems)
    return model, doc


def wanted_minors(model: ScheduleModel) -> list[str]:
    """The Python minors whose current patch release the lock must pin, oldest first."""
    return sorted({r.python for r in model.runtimes}, key=_vkey)


def wanted_releases(model: ScheduleModel, lock: Pins) -> list[str]:
    """Every CPython release a runtime builds: the legacy fixed ones and each minor's current patch."""
    found = {r.python for r in model.legacy_runtimes} | {lock.python_minors[m] for m in wanted_minors(model) if m in lock.python_minors}
    return sorted(found, key=_vkey)


def missing_pins(doc: yamlsrc.Document, model: ScheduleModel, lock: Pins) -> list[str]:
    """What the schedule needs that its lock does not pin: refresh fetches it; nothing is guessed."""
    out = []
    fix = "run `python -m generator refresh` where the registry and python.org are reachable"
    for os_id, os_ in model.operating_systems.items():
        base = lock.base_images.get(os_id)
        line = doc.line(("operating_systems", os_id, "image")) or 1
        if base is None:
            out.append(f"{doc.file}:{line}: operating_systems.{os_id}: {pins_mod.LOCK} pins no digest for {os_.image}; {fix}")
        elif base.image != os_.image:
            out.append(f"{doc.file}:{line}: operating_systems.{os_id}.image: {os_.image} is new; {pins_mod.LOCK} pins {base.image}; {fix}")
        if os_id not in lock.os_packages:
            out.append(
                f"{doc.file}:{line}: operating_systems.{os_id}: {pins_mod.LOCK} has no package lock for it; "
                f"run `python -m generator refresh --only packages {os_id}` (with --os-base {os_id}=IMAGE where the pinned base cannot be pulled)"
            )
    for minor in wanted_minors(model):
        if minor not in lock.python_minors:
            line = doc.line(("python_releases", minor)) or 1
            out.append(f"{doc.file}:{line}: Python {minor}: {pins_mod.LOCK} pins no patch release of it; {fix}")
    for version in wanted_releases(model, lock):
        if version not in lock.cpython:
            out.append(f"{doc.file}: CPython {version}: {pins_mod.LOCK} has no tarball sha256 for it; {fix}")
    return out


def _numbers_written_as_versions(doc: yamlsrc.Document) -> list[str]:
    """3.10 unquoted is the float 3.1: catch it before it silently becomes another version."""
    out = []
    for path, (tag, text) in sorted(doc.raw.items(), key=lambda kv: doc.line(kv[0]) or 0):
        if tag != "tag:yaml.org,2002:float" or "." not in text:
            continue
        key = [p for p in path if isinstance(p, str)]
        versionish = {"python", "python_version", "python_releases"} & set(key) or path[-1] == "<key>"
        if versionish:
            out.append(
                f"{doc.file}:{doc.line(path)}: {yamlsrc.dotted(path).replace('.<key>', '')}: "
                f'version {text} is written as a YAML number (read as {_as_float(text)}); quote it: "{text}"'
            )
    return out


def _as_float(text: str) -> str:
    """What YAML made of a number ("3.10" → 3.1; forms Python cannot parse, such as 1:30.5, as written)."""
    try:
        return repr(float(text))
    except ValueError:
        return "a number"


def _describe(doc: yamlsrc.Document, path: tuple[Any, ...], message: str) -> str:
    return f"{doc.file}:{doc.line(path) or 1}: {yamlsrc.dotted(path) or '(top level)'}: {message}"


def _cross_check(doc: yamlsrc.Document, m: ScheduleModel) -> list[str]:
    out: list[str] = []

    def err(path: tuple[Any, ...], message: str) -> None:
        out.append(f"{doc.file}:{doc.line(path) or 1}: {yamlsrc.dotted(path)}: {message}")

    seen: dict[str, tuple[Any, ...]] = {}
    settings: dict[str, str] = {}
    for group in ("runtimes", "legacy_runtimes"):
        for i, r in enumerate(getattr(m, group)):
            here = (group, i)
            if r.id in seen:
                err(here + ("id",), f"duplicate runtime ID {r.id!r} (also at {yamlsrc.dotted(seen[r.id])}); IDs must be unique")
            seen.setdefault(r.id, here)
            if r.os not in m.operating_systems:
                err(here + ("os",), f"unknown operating system {r.os!r}; valid: {', '.join(m.operating_systems)}")
            major, minor = r.python.split(".")[:2]
            if f"{major}.{minor}" not in m.python_releases:
                err(
                    here + ("python",),
                    f"Python {major}.{minor} has no end of support under python_releases; add it (valid: {', '.join(m.python_releases)})",
                )
            want = f"python{major}{minor}-{r.os}" if group == "runtimes" else f"python{major}{minor}"
            if group == "legacy_runtimes" and major == "2":
                want = "python2"
            if r.id != want:
                err(here + ("id",), f"runtime ID {r.id!r} does not match its Python and OS; it must be {want!r}")
            for j, s in enumerate(getattr(r, "python_version", [])):
                if s in settings:
                    err(here + ("python_version", j), f"python_version {s!r} already selects {settings[s]}")
                settings.setdefault(s, r.id)
    defaults = [r.id for r in m.legacy_runtimes if r.default]
    if len(defaults) != 1:
        err(("legacy_runtimes",), f"exactly one legacy runtime must have default: true (found {defaults or 'none'})")
    per_os: dict[tuple[str, str], str] = {}
    for i, r in enumerate(m.runtimes):
        minor = ".".join(r.python.split(".")[:2])
        if (r.os, minor) in per_os:
            err(("runtimes", i, "python"), f"Python {minor} is offered twice on {r.os} ({per_os[(r.os, minor)]} and {r.id})")
        per_os.setdefault((r.os, minor), r.id)
    return out


def load_given(path: Path | None) -> Schedule:
    """The schedule a command was given (--schedule), else the default one, joined with its lock."""
    path = path or default_path()
    return load(path, display=str(path))


def default_path() -> Path:
    """schedule.yaml in the working directory, else the one of this checkout."""
    here = Path("schedule.yaml")
    return here if here.is_file() else Path(__file__).resolve().parent.parent / "schedule.yaml"
