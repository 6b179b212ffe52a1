"""The runtime support schedule: schedule.yaml, validated into typed models.

Everything downstream (resolver, renderer, locks, Nix data) reads a `Schedule`; nothing reads
the YAML directly. Validation errors name the file, the line, the key and the fix, because the
people editing this file are maintainers in a hurry, not the authors of this code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError

from . import yamlsrc

SUPPORTED = "supported"
DEPRECATED = "deprecated"
END_OF_SUPPORT = "end_of_support"

_SHA256 = r"^[0-9a-f]{64}$"
_VERSION = r"^\d+\.\d+\.\d+$"
# Nix accepts base32 (52 chars), or an SRI "sha256-<base64>".
_NIX_SHA256 = r"^([0-9a-df-np-sv-z]{52}|sha256-[A-Za-z0-9+/]{43}=)$"


def _flatten(value: Any) -> Any:
    """Allow YAML aliases of lists inside lists (`[*common, extra]`)."""
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for item in value:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


Sha256 = Annotated[str, StringConstraints(pattern=_SHA256)]
_DIGEST = r"^sha256:[0-9a-f]{64}$"
Digest = Annotated[str, StringConstraints(pattern=_DIGEST)]
Version = Annotated[str, StringConstraints(pattern=_VERSION)]
NixSha256 = Annotated[str, StringConstraints(pattern=_NIX_SHA256)]
PackageList = Annotated[list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9+.-]+$")]], BeforeValidator(_flatten)]
ImageRef = Annotated[str, StringConstraints(pattern=r"^[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+:[A-Za-z0-9._-]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Publish(_Model):
    repository: Annotated[str, StringConstraints(pattern=r"^[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+$")]
    source: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]


class Policy(_Model):
    deprecation_window_days: Annotated[int, Field(ge=0, le=3650)]


class OperatingSystem(_Model):
    name: str
    image: ImageRef
    digest: Digest
    nix_sha256: NixSha256 | None
    end_of_support: dt.date
    build_packages: PackageList


class Interpreter(_Model):
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+/Python-\d+\.\d+\.\d+\.tgz$")]
    sha256: Sha256
    end_of_support: dt.date


class NewRuntime(_Model):
    id: Annotated[str, StringConstraints(pattern=r"^python\d+-[a-z0-9]+$")]
    os: str
    python: Version


class LegacyRuntime(_Model):
    id: Annotated[str, StringConstraints(pattern=r"^python\d+$")]
    os: str
    python: Version
    python_version: list[Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)?$")]]
    default: bool = False


class ScheduleModel(_Model):
    schema_version: Literal[1]
    publish: Publish
    policy: Policy
    anchors: dict[str, Any] = {}
    operating_systems: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]*$")], OperatingSystem]
    interpreters: dict[Version, Interpreter]
    runtimes: list[NewRuntime]
    legacy_runtimes: list[LegacyRuntime]


class ScheduleError(ValueError):
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

_FIXES = {
    "extra_forbidden": "unknown key; remove it or check its spelling",
    "missing": "required key is missing; add it",
    "string_pattern_mismatch": "malformed value",
    "string_type": "must be a quoted string",
    "date_type": "must be a date written YYYY-MM-DD",
    "int_type": "must be a whole number, unquoted",
    "bool_type": "must be true or false",
    "date_from_datetime_parsing": "must be a date written YYYY-MM-DD",
}
_PATTERN_HINTS = {
    _SHA256: "a sha256 is 64 lowercase hex digits",
    _DIGEST: "an image digest is 'sha256:' and 64 lowercase hex digits",
    _VERSION: 'write the full version as a quoted string, e.g. "3.12.13"',
    _NIX_SHA256: "a Nix hash is base32 (52 chars) or SRI 'sha256-…=' (or null when unknown)",
}


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
    try:
        model = ScheduleModel.model_validate(doc.data)
    except ValidationError as exc:
        raise ScheduleError([_describe(doc, err) for err in exc.errors()]) from None
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


def _describe(doc: yamlsrc.Document, err: dict[str, Any]) -> str:
    path = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    # pydantic reports dict-key errors with a trailing "[key]" marker
    path = tuple(p for p in path if p != "[key]")
    where = f"{doc.file}:{doc.line(path) or 1}"
    key = yamlsrc.dotted(path) or "(top level)"
    kind = err["type"]
    fix = _FIXES.get(kind, err["msg"])
    if kind == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        fix = f"malformed value {err['input']!r}: " + _PATTERN_HINTS.get(pattern, f"must match {pattern}")
    elif kind == "string_type" and isinstance(err.get("input"), (int, float)):
        fix = f"{err['input']!r} is a YAML number; quote it"
    elif kind == "literal_error":
        fix = f"{err['msg']} (got {err['input']!r})"
    elif kind not in _FIXES:
        fix = f"{err['msg']} (got {err.get('input')!r})"
    return f"{where}: {key}: {fix}"


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
