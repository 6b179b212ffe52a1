"""Typed models for the tool's inputs: strict conversion of parsed YAML/JSON into frozen dataclasses.

Both the schedule (what people decide) and its lock (what machines fetched) are validated the same
way: every problem is collected with its path, nothing is coerced (a YAML number is not a string),
and each constraint carries the hint a person needs to fix the value. Patterns use `re.ASCII` and
`fullmatch`, so a non-ASCII digit or a trailing newline never passes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, Union


@dataclass(frozen=True)
class Pattern:
    """A string constraint with the hint a person needs to fix a value that misses it."""

    regex: str
    hint: str
    max_len: int = 512  # no field of these files is longer; a pattern's `+` alone would allow megabytes

    def ok(self, value: str) -> bool:
        return len(value) <= self.max_len and re.fullmatch(self.regex, value, re.ASCII) is not None


@dataclass(frozen=True)
class Range:
    lo: int
    hi: int


@dataclass(frozen=True)
class Valid:
    """A check a pattern cannot make (a date that exists, a version that parses, a list that is not empty), with its hint."""

    check: Callable[[Any], bool]
    hint: str


# Support dates: far enough from date.min/max that date arithmetic (deprecation windows) cannot overflow.
EARLIEST, LATEST = dt.date(1990, 1, 1), dt.date(2199, 12, 31)

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
Version = Annotated[str, Pattern(r"\d{1,2}\.\d{1,3}\.\d{1,3}", 'write the full version as a quoted string, e.g. "3.12.13"')]
# Nix accepts base32 (52 chars) or SRI "sha256-<base64>".
NixSha256 = Annotated[
    str, Pattern(r"[0-9a-df-np-sv-z]{52}|sha256-[A-Za-z0-9+/]{43}=", "a Nix hash is base32 (52 chars) or SRI 'sha256-…=' (or null when unknown)")
]
PackageName = Annotated[str, Pattern(r"[a-z0-9][a-z0-9+.-]+", "an apt package name")]
ImageRef = Annotated[str, Pattern(r"[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+:[A-Za-z0-9._-]+", "an image reference is host/path:tag")]
Repository = Annotated[str, Pattern(r"[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+", "a repository is host/path, lowercase")]
# An http(s) URL as RFC 3986 spells one, so every reader parses it alike (an SBOM's validators, urllib,
# curl): a host name or address, a port up to 65535, a path and query of URL characters with each %
# starting a %XX escape; no user, no fragment, no `$` (a Dockerfile would expand it).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ORIGIN = rf"https?://{_LABEL}(?:\.{_LABEL})*(?::(?:6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{{3}}|[1-5]\d{{4}}|[1-9]\d{{0,3}}))?"
_PCHAR = r"(?:[A-Za-z0-9._~!&'()*+,;=:@-]|%[0-9A-Fa-f]{2})"
URL_PATTERN = rf"{_ORIGIN}(?:/{_PCHAR}*)*(?:\?(?:{_PCHAR}|[/?])*)?"
Url = Annotated[str, Pattern(URL_PATTERN, "a URL: https:// or http://, a host, an optional port, a path; % only as %XX; no user or #fragment")]
TarballUrl = Annotated[str, Pattern(rf"{_ORIGIN}(?:/{_PCHAR}*)*/Python-\d+\.\d+\.\d+\.tgz", "the URL of a Python-X.Y.Z.tgz")]
Minor = Annotated[str, Pattern(r"\d{1,2}\.\d{1,3}", 'a Python minor version, quoted, such as "3.12"')]
# A file an image installs from a tool lock: a bare file name (it becomes a path in the build context
# and a word of the Nix build script), a PEP 503 name, a version as an index lists it.
FileName = Annotated[
    str, Pattern(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\.(whl|tar\.gz|zip|tar\.bz2)", "a wheel or sdist file name: no path, no spaces, no quotes")
]
ProjectName = Annotated[str, Pattern(r"[a-z0-9]([a-z0-9-]{0,98}[a-z0-9])?", "a normalized (PEP 503) project name")]
PackageVersion = Annotated[
    str, Pattern(r"[A-Za-z0-9.+!_-]{1,64}", "a package version"), Valid(lambda v: _pep440(v), "not a version pip can parse (PEP 440)")
]


def _pep440(text: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def nonempty(what: str) -> Valid:
    """A list or mapping that must hold something: `what` says why, and how to remake it."""
    return Valid(lambda v: len(v) > 0, f"must not be empty: {what}")


@dataclass(frozen=True)
class WheelEntry:
    """One entry of lockfiles/<id>.wheels.json."""

    filename: FileName
    name: ProjectName
    sha256: Sha256
    url: Url
    version: PackageVersion


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
        return _annotated(value, hint, path, problems)
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
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):  # a dataclass hint is a class, never an instance
        return _dataclass(value, hint, path, problems)
    problem = _scalar_problem(value, hint)
    if problem:
        problems.append((path, problem))
    return value


def _annotated(value: Any, hint: Any, path: tuple[Any, ...], problems: list[Problem]) -> Any:
    """The base type first; then the constraints, only if it passed (the first one missed is reported)."""
    base, *meta = typing.get_args(hint)
    if FLATTEN in meta:
        value = _flatten(value)
    before = len(problems)
    out = convert(value, base, path, problems)
    if len(problems) == before:
        for m in meta:
            if isinstance(m, Pattern) and not m.ok(out):
                shown = repr(out) if len(out) <= 80 else f"{out[:60]!r}… ({len(out)} characters)"
                problems.append((path, f"malformed value {shown}: {m.hint}"))
            elif isinstance(m, Range) and not m.lo <= out <= m.hi:
                problems.append((path, f"{out} is out of range ({m.lo} to {m.hi})"))
            elif isinstance(m, Valid) and not m.check(out):
                shown = repr(out) if len(repr(out)) <= 80 else f"{repr(out)[:60]}…"
                problems.append((path, f"impossible value {shown}: {m.hint}"))
            else:
                continue
            break
    return out


def _dataclass(value: Any, hint: Any, path: tuple[Any, ...], problems: list[Problem]) -> Any:
    """A mapping of settings: unknown keys and missing required ones are problems."""
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


def _scalar_problem(value: Any, hint: Any) -> str | None:
    """What is wrong with a str, int, bool or date value (None: nothing)."""
    if hint is str:
        if not isinstance(value, str):
            return f"{value!r} is a YAML number; quote it" if _kind(value) == "a YAML number" else f"must be a quoted string, not {_kind(value)}"
        return None
    if hint is int:
        return f"must be a whole number, unquoted (got {value!r})" if not isinstance(value, int) or isinstance(value, bool) else None
    if hint is bool:
        return f"must be true or false (got {value!r})" if not isinstance(value, bool) else None
    if hint is dt.date:
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            return f"must be a date written YYYY-MM-DD (got {value!r})"
        if not EARLIEST <= value <= LATEST:
            return f"{value.isoformat()} is out of range ({EARLIEST.isoformat()} to {LATEST.isoformat()})"
        return None
    raise TypeError(f"no rule for {hint!r}")  # pragma: no cover - a programming error


def wheel_problems(data: Any, name: str) -> list[str]:
    """Every problem of a wheels.json list (empty: each entry is safe to use as a file name and a URL)."""
    found: list[Problem] = []
    convert(data, list[WheelEntry], (), found)
    return [f"{name}: {'.'.join(map(str, path)) or '(top level)'}: {message}" for path, message in found]
