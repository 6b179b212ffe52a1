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
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, Union


@dataclass(frozen=True)
class Pattern:
    """A string constraint with the hint a person needs to fix a value that misses it."""

    regex: str
    hint: str

    def ok(self, value: str) -> bool:
        return re.fullmatch(self.regex, value, re.ASCII) is not None


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
Version = Annotated[str, Pattern(r"\d{1,2}\.\d{1,3}\.\d{1,3}", 'write the full version as a quoted string, e.g. "3.12.13"')]
# Nix accepts base32 (52 chars) or SRI "sha256-<base64>".
NixSha256 = Annotated[
    str, Pattern(r"[0-9a-df-np-sv-z]{52}|sha256-[A-Za-z0-9+/]{43}=", "a Nix hash is base32 (52 chars) or SRI 'sha256-…=' (or null when unknown)")
]
PackageName = Annotated[str, Pattern(r"[a-z0-9][a-z0-9+.-]+", "an apt package name")]
ImageRef = Annotated[str, Pattern(r"[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+:[A-Za-z0-9._-]+", "an image reference is host/path:tag")]
Repository = Annotated[str, Pattern(r"[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+", "a repository is host/path, lowercase")]
_URL_CHARS = r"[A-Za-z0-9._~:/?#@!&'()*+,;=%-]"
Url = Annotated[str, Pattern(rf"https?://{_URL_CHARS}{{1,500}}", "a URL: https:// or http:// and up to 500 URL characters")]
TarballUrl = Annotated[str, Pattern(rf"https?://{_URL_CHARS}{{1,400}}/Python-\d+\.\d+\.\d+\.tgz", "the URL of a Python-X.Y.Z.tgz")]
Minor = Annotated[str, Pattern(r"\d{1,2}\.\d{1,3}", 'a Python minor version, quoted, such as "3.12"')]


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
