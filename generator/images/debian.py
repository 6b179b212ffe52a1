"""Debian's version order and package relationships, as dpkg defines them.

An app's OS packages are resolved on the host from the archive's Packages indices (app_ospkgs),
not by apt in a container, so the two rules apt would apply must be exact here: which of two
versions is newer (epoch, then upstream version, then Debian revision, each compared by dpkg's
`verrevcmp`, where `~` sorts before everything, even the end of the string), and what a
`Depends`/`Conflicts` field means (clauses separated by `,`, alternatives by `|`, an optional
`(op version)`, an optional `:any` architecture qualifier).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_DIGITS = "0123456789"


def _order(c: str) -> int:
    """dpkg's weight of one non-digit character: `~` lowest, then the end of the string, letters, the rest."""
    if c == "~":
        return -1
    if not c or c in _DIGITS:
        return 0
    if c.isascii() and c.isalpha():
        return ord(c)
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    """dpkg's comparison of an upstream version or a revision: alternating non-digit and digit runs."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and a[i] not in _DIGITS) or (j < len(b) and b[j] not in _DIGITS):
            ac = _order(a[i] if i < len(a) else "")
            bc = _order(b[j] if j < len(b) else "")
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        first_diff = 0
        while i < len(a) and a[i] in _DIGITS and j < len(b) and b[j] in _DIGITS:
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and a[i] in _DIGITS:
            return 1
        if j < len(b) and b[j] in _DIGITS:
            return -1
        if first_diff:
            return first_diff
    return 0


def split(version: str) -> tuple[int, str, str]:
    """(epoch, upstream, revision): the epoch before the first `:`, the revision after the last `-`."""
    epoch, sep, rest = version.partition(":")
    if not sep:
        epoch, rest = "0", version
    if not epoch.isdigit():
        raise ValueError(f"{version!r}: the epoch must be a number")
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    elif not revision:
        raise ValueError(f"{version!r}: the revision after the last '-' is empty")
    if not upstream:
        raise ValueError(f"{version!r}: the upstream version is empty")
    return int(epoch), upstream, revision


@functools.lru_cache(maxsize=65536)
def compare(a: str, b: str) -> int:
    """Negative, zero or positive as version `a` is older than, the same as, or newer than `b` (dpkg --compare-versions)."""
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


VersionKey = functools.cmp_to_key(compare)

OPS = ("<<", "<=", "=", ">=", ">>")


def satisfies(version: str, op: str | None, wanted: str | None) -> bool:
    """Whether `version` meets the constraint `(op wanted)` (none: any version does)."""
    if op is None or wanted is None:
        return True
    c = compare(version, wanted)
    return {"<<": c < 0, "<=": c <= 0, "=": c == 0, ">=": c >= 0, ">>": c > 0}[op]


@dataclass(frozen=True)
class Relation:
    """One alternative of a relationship field: a package name, maybe with a version constraint."""

    name: str
    op: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.op} {self.version})" if self.op else self.name


_RELATION = re.compile(
    r"(?P<name>[a-z0-9][a-z0-9+.-]*)(?::[a-z0-9-]+)?\s*(?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[A-Za-z0-9.+~:-]+)\s*\))?\s*(?:\[[^\]]*\])?",
    re.ASCII,
)


def relations(field: str | None) -> list[list[Relation]]:
    """A Depends-like field as clauses (all needed), each a list of alternatives (one is enough).

    An architecture qualifier (`python3:any`, `:native`) is dropped: everything here is one
    architecture (amd64, and `all`). The obsolete `<` and `>` mean `<=` and `>=`, as dpkg reads them."""
    out: list[list[Relation]] = []
    for clause in (field or "").replace("\n", " ").split(","):
        if not clause.strip():
            continue
        alternatives = []
        for alt in clause.split("|"):
            m = _RELATION.fullmatch(alt.strip())
            if not m:
                raise ValueError(f"{alt.strip()!r} is not a package relation")
            op = {"<": "<=", ">": ">="}.get(m["op"], m["op"])
            alternatives.append(Relation(m["name"], op, m["version"]))
        out.append(alternatives)
    return out
