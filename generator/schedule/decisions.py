"""schedule.yaml's decisions: the typed model of what maintainers write, validated with file, line and key.

Only decisions live here, no fetched value: the lock (generator/schedule/lock.py) holds those, and
generator/schedule/runtimes.py joins the two. Errors name the file, the line, the key and the fix,
because the people editing this file are maintainers in a hurry, not the authors of this code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from generator.core import yamlsrc
from generator.core.errors import InputError
from generator.core.validate import FLATTEN, ImageRef, Minor, PackageName, Pattern, Problem, Range, Repository, Url, Version, convert

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


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


version_key = _vkey


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
