"""The runtime support schedule: schedule.yaml, validated into typed models.

Everything downstream (resolver, renderer, locks, Nix data) reads a `Schedule`; nothing reads
the YAML directly. Validation errors name the file, the line, the key and the fix, because the
people editing this file are maintainers in a hurry, not the authors of this code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import types
import typing
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from . import yamlsrc
from .errors import InputError

SUPPORTED = "supported"
DEPRECATED = "deprecated"
END_OF_SUPPORT = "end_of_support"


@dataclass(frozen=True)
class Pattern:
    """A string constraint with the hint a person needs to fix a value that misses it."""

    regex: str
    hint: str

    def ok(self, value: str) -> bool:
        return re.fullmatch(self.regex, value) is not None


@dataclass(frozen=True)
class Range:
    lo: int
    hi: int


FLATTEN = "flatten"  # marker: a list may hold aliased lists (`[*common, extra]`), flattened


def _flatten(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for item in value:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


Sha256 = Annotated[str, Pattern(r"[0-9a-f]{64}", "a sha256 is 64 lowercase hex digits")]
Digest = Annotated[str, Pattern(r"sha256:[0-9a-f]{64}", "an image digest is 'sha256:' and 64 lowercase hex digits")]
Version = Annotated[str, Pattern(r"\d+\.\d+\.\d+", 'write the full version as a quoted string, e.g. "3.12.13"')]
# Nix accepts base32 (52 chars) or SRI "sha256-<base64>".
NixSha256 = Annotated[
    str, Pattern(r"[0-9a-df-np-sv-z]{52}|sha256-[A-Za-z0-9+/]{43}=", "a Nix hash is base32 (52 chars) or SRI 'sha256-…=' (or null when unknown)")
]
PackageName = Annotated[str, Pattern(r"[a-z0-9][a-z0-9+.-]+", "an apt package name")]
ImageRef = Annotated[str, Pattern(r"[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+:[A-Za-z0-9._-]+", "an image reference is host/path:tag")]
Repository = Annotated[str, Pattern(r"[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+", "a repository is host/path, lowercase")]
Url = Annotated[str, Pattern(r"https?://\S+", "a URL starts with https:// or http://")]
TarballUrl = Annotated[str, Pattern(r"https?://\S+/Python-\d+\.\d+\.\d+\.tgz", "the URL of a Python-X.Y.Z.tgz")]


@dataclass(frozen=True)
class Publish:
    repository: Repository
    source: Url


@dataclass(frozen=True)
class Policy:
    deprecation_window_days: Annotated[int, Range(0, 3650)]


@dataclass(frozen=True)
class OperatingSystem:
    name: str
    image: ImageRef
    digest: Digest
    nix_sha256: NixSha256 | None
    end_of_support: dt.date
    glibc: Annotated[str, Pattern(r"2\.\d{1,3}", 'the glibc version of the OS, quoted, e.g. "2.35"')]
    build_packages: Annotated[list[PackageName], FLATTEN]


@dataclass(frozen=True)
class Interpreter:
    url: TarballUrl
    sha256: Sha256
    end_of_support: dt.date


@dataclass(frozen=True)
class NewRuntime:
    id: Annotated[str, Pattern(r"python\d+-[a-z0-9]+", "a runtime ID is python<MAJOR><MINOR>-<os>")]
    os: str
    python: Version


@dataclass(frozen=True)
class LegacyRuntime:
    id: Annotated[str, Pattern(r"python\d+", "a legacy runtime ID is python<MAJOR><MINOR> (python2 for 2.7)")]
    os: str
    python: Version
    python_version: list[Annotated[str, Pattern(r"\d+(\.\d+)?", 'a python_version setting such as "3" or "3.6"')]]
    default: bool = False


@dataclass(frozen=True)
class ScheduleModel:
    schema_version: Literal[1]
    publish: Publish
    policy: Policy
    operating_systems: dict[Annotated[str, Pattern(r"[a-z][a-z0-9]*", "an OS id such as ubuntu22")], OperatingSystem]
    interpreters: dict[Version, Interpreter]
    runtimes: list[NewRuntime]
    legacy_runtimes: list[LegacyRuntime]
    anchors: dict[str, Any] = dataclasses.field(default_factory=dict)


# --- validation: YAML data → the dataclasses above, every problem collected with its path ---

Problem = tuple[tuple[Any, ...], str]


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a YAML number"
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "empty"}.get(type(value), type(value).__name__)


def convert(value: Any, hint: Any, path: tuple[Any, ...], problems: list[Problem]) -> Any:
    """Check `value` against the type `hint` (strictly: no coercion), recording each problem."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *meta = typing.get_args(hint)
        if FLATTEN in meta:
            value = _flatten(value)
        before = len(problems)
        out = convert(value, base, path, problems)
        if len(problems) == before:
            for m in meta:
                if isinstance(m, Pattern) and not m.ok(out):
                    problems.append((path, f"malformed value {out!r}: {m.hint}"))
                elif isinstance(m, Range) and not m.lo <= out <= m.hi:
                    problems.append((path, f"{out} is out of range ({m.lo} to {m.hi})"))
        return out
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(hint)):
            return None
        return convert(value, args[0], path, problems)
    if origin is Literal:
        if value not in typing.get_args(hint) or isinstance(value, bool):
            problems.append((path, f"must be {' or '.join(map(repr, typing.get_args(hint)))} (got {value!r})"))
        return value
    if origin is list:
        if not isinstance(value, list):
            problems.append((path, f"must be a list, not {_kind(value)}"))
            return []
        (item,) = typing.get_args(hint)
        return [convert(v, item, (*path, i), problems) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            problems.append((path, f"must be a mapping, not {_kind(value)}"))
            return {}
        key_hint, value_hint = typing.get_args(hint)
        return {convert(k, key_hint, (*path, k), problems): convert(v, value_hint, (*path, k), problems) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            problems.append((path, f"must be a mapping of settings, not {_kind(value)}"))
            return None
        hints = _hints(hint)
        fields = {f.name: f for f in dataclasses.fields(hint)}
        for key in value:
            if key not in fields:
                problems.append(((*path, key), "unknown key; remove it or check its spelling"))
        kwargs = {}
        for name, f in fields.items():
            if name in value:
                kwargs[name] = convert(value[name], hints[name], (*path, name), problems)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(((*path, name), "required key is missing; add it"))
        try:
            return hint(**kwargs)
        except TypeError:  # a required field was missing: already reported
            return None
    if hint is str:
        if not isinstance(value, str):
            fix = f"{value!r} is a YAML number; quote it" if _kind(value) == "a YAML number" else f"must be a quoted string, not {_kind(value)}"
            problems.append((path, fix))
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append((path, f"must be a whole number, unquoted (got {value!r})"))
        return value
    if hint is bool:
        if not isinstance(value, bool):
            problems.append((path, f"must be true or false (got {value!r})"))
        return value
    if hint is dt.date:
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            problems.append((path, f"must be a date written YYYY-MM-DD (got {value!r})"))
        return value
    raise TypeError(f"no rule for {hint!r}")  # pragma: no cover - a programming error


class ScheduleError(InputError):
    """One or more problems in the schedule, each already phrased for a person."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Runtime:
    """One runtime of the schedule, joined with its OS and interpreter."""

    id: str
    style: Literal["new", "legacy"]
    os_id: str
    os: OperatingSystem
    version: str
    interpreter: Interpreter
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
    def prefix(self) -> str:
        return f"/opt/python{self.minor}"

    @property
    def end_of_support(self) -> dt.date:
        return min(self.os.end_of_support, self.interpreter.end_of_support)

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
        return f"{self.os.image}@{self.os.digest}"


@dataclass(frozen=True)
class Schedule:
    path: Path
    model: ScheduleModel

    @cached_property
    def runtimes(self) -> dict[str, Runtime]:
        """All runtimes by ID, new style first, each group in schedule order."""
        m = self.model
        newest = {}
        for r in m.runtimes:
            if r.os not in newest or _vkey(r.python) > _vkey(newest[r.os]):
                newest[r.os] = r.python
        out: dict[str, Runtime] = {}
        for r in [*m.runtimes, *m.legacy_runtimes]:
            legacy = isinstance(r, LegacyRuntime)
            out[r.id] = Runtime(
                id=r.id,
                style="legacy" if legacy else "new",
                os_id=r.os,
                os=m.operating_systems[r.os],
                version=r.python,
                interpreter=m.interpreters[r.python],
                python_version_settings=tuple(r.python_version) if legacy else (),
                legacy_default=legacy and r.default,
                default_for_os=not legacy and newest[r.os] == r.python,
                image=f"{m.publish.repository}/{r.id}:{r.python}",
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


def load(path: Path | str, display: str | None = None) -> Schedule:
    """Load and validate a schedule file; raise ScheduleError with every problem found."""
    path = Path(path)
    name = display or path.name
    try:
        doc = yamlsrc.load(path, name)
    except yamlsrc.YamlError as exc:
        raise ScheduleError([str(exc)]) from None
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
    return Schedule(path=path, model=model)


def _numbers_written_as_versions(doc: yamlsrc.Document) -> list[str]:
    """3.10 unquoted is the float 3.1: catch it before it silently becomes another version."""
    out = []
    for path, (tag, text) in sorted(doc.raw.items(), key=lambda kv: doc.line(kv[0]) or 0):
        if tag != "tag:yaml.org,2002:float" or "." not in text:
            continue
        key = [p for p in path if isinstance(p, str)]
        versionish = {"python", "python_version", "interpreters"} & set(key) or path[-1] == "<key>"
        if versionish:
            out.append(
                f"{doc.file}:{doc.line(path)}: {yamlsrc.dotted(path).replace('.<key>', '')}: "
                f'version {text} is written as a YAML number (read as {float(text)!r}); quote it: "{text}"'
            )
    return out


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
            if r.python not in m.interpreters:
                err(here + ("python",), f"unknown interpreter {r.python!r}; add it under interpreters or use one of: {', '.join(m.interpreters)}")
            major, minor, _ = r.python.split(".")
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
    for version, interp in m.interpreters.items():
        if not interp.url.endswith(f"/Python-{version}.tgz"):
            err(("interpreters", version, "url"), f"URL {interp.url!r} is not the tarball of {version}; it must end in /Python-{version}.tgz")
    return out


def default_path() -> Path:
    """schedule.yaml in the working directory, else the one of this checkout."""
    here = Path("schedule.yaml")
    return here if here.is_file() else Path(__file__).resolve().parent.parent / "schedule.yaml"
