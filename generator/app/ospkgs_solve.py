"""The closure of an app's OS packages over Packages indices: apt's choices, made on the host.

Why not apt itself: apt needs a container of the runtime image, and an app developer's machine
may have neither the image nor a container engine. The choices are few and fixed, those of
`apt-get install --no-install-recommends` into the runtime image, so they are made here over the
parsed indices (tests hand it small synthetic ones):

- a clause (`a (>= 1) | b`) already satisfied by a package the image holds, or one already
  chosen, adds nothing (versions compared as dpkg does: debian.py);
- else its first alternative that the indices can satisfy is chosen: a real package at its
  candidate version (the highest across the suites; as apt, an older one is never taken instead),
  or, for a virtual package, a provider's candidate (versioned `Provides` for a versioned
  clause), the one of lowest Priority and then name when several;
- `Pre-Depends` and `Depends` of each chosen package, recursively; `Recommends` never;
- a `Conflicts` or `Breaks` between a chosen package and one the image holds or another chosen
  one is refused, not solved around.
Every refusal names the line of apt-packages.txt whose package pulled the clause in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from generator.core.errors import InputError
from generator.images import debian
from generator.images.apt import AptError, source_of
from generator.schedule.lock import Deb

ARCHS = ("amd64", "all")
_PRIORITY = {"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}


class ResolveError(InputError):
    """A requested package cannot be installed into the runtime image as asked (bad input: exit 2)."""


@dataclass(frozen=True)
class Requested:
    """One package named by apt-packages.txt, with its line (every error about its closure names it)."""

    name: str
    line: int


class Installed(Protocol):
    """A package the runtime image holds (pins.BasePackage or pins.Deb)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def architecture(self) -> str: ...


@dataclass(frozen=True, eq=False)
class Candidate:
    """One version of a package in the indices, from the pocket preferred for it."""

    name: str
    version: str
    arch: str
    suite: str
    stanza: Mapping[str, str] = field(repr=False)

    def rels(self, key: str) -> list[list[debian.Relation]]:
        try:
            return debian.relations(self.stanza.get(key))
        except ValueError as exc:
            raise AptError(f"{self.name} {self.version} ({self.suite}): its {key} field cannot be read: {exc}") from exc

    def provides(self) -> list[debian.Relation]:
        return [alt for clause in self.rels("Provides") for alt in clause]


def _pocket(suite: str) -> tuple[bool, bool, str]:
    """The order ospkgs uses for a file several pockets list: -security, then -updates, then the release."""
    return (not suite.endswith("-security"), not suite.endswith("-updates"), suite)


class Indices:
    """Packages indices of the OS's suites, by package name; what each virtual package is provided by."""

    def __init__(
        self, entries: Iterable[tuple[str, Mapping[str, str]]], suites: Sequence[str], dates: Mapping[str, str] | None = None, searched: str = ""
    ) -> None:
        self.suites = list(suites)
        self.dates = dict(dates or {})
        self.searched = searched or ", ".join(self.suites)
        found: dict[str, dict[tuple[str, str], Candidate]] = {}
        for suite, stanza in entries:
            name, version, arch = stanza.get("Package"), stanza.get("Version"), stanza.get("Architecture")
            if not name or not version or arch not in ARCHS:
                continue
            versions = found.setdefault(name, {})
            old = versions.get((version, arch))
            if old is None or _pocket(suite) < _pocket(old.suite):
                versions[(version, arch)] = Candidate(name, version, arch, suite, stanza)
        self._by_name = {n: sorted(v.values(), key=lambda c: debian.VersionKey(c.version), reverse=True) for n, v in found.items()}
        self._providers: dict[str, set[str]] | None = None

    @classmethod
    def parse(cls, texts: Mapping[str, str]) -> Indices:
        """From Packages texts by suite (tests, and any index already read)."""
        from generator.images.apt import paragraphs

        return cls([(suite, s) for suite, text in texts.items() for s in paragraphs(text)], list(texts))

    def candidate(self, name: str) -> Candidate | None:
        """The version apt would install: the highest across the suites."""
        found = self._by_name.get(name)
        return found[0] if found else None

    def find(self, name: str, version: str) -> Candidate | None:
        return next((c for c in self._by_name.get(name, []) if c.version == version), None)

    def providers(self, virtual: str) -> list[tuple[Candidate, debian.Relation]]:
        """The candidates that provide `virtual`, each with the Provides entry that says so."""
        if self._providers is None:
            self._providers = {}
            for name, versions in self._by_name.items():
                for c in versions:
                    for p in c.provides():
                        self._providers.setdefault(p.name, set()).add(name)
        out = []
        for name in sorted(self._providers.get(virtual, ())):
            c = self._by_name[name][0]
            out += [(c, p) for p in c.provides() if p.name == virtual][:1]
        return out


def _provides_for(rel: debian.Relation, provided: debian.Relation) -> bool:
    """Whether a Provides entry satisfies `rel`: any does for an unversioned one; only `(= v)` with v matching for a versioned one."""
    if rel.op is None:
        return True
    return provided.op == "=" and provided.version is not None and debian.satisfies(provided.version, rel.op, rel.version)


@dataclass
class _Present:
    """A package in the image once the closure is installed: what it is, where it came from."""

    name: str
    version: str
    provides: list[debian.Relation]
    candidate: Candidate | None  # None: the image's own, with no stanza known
    origin: Requested | None  # None: the image's own


class _Solver:
    def __init__(self, indices: Indices, installed: Iterable[Installed], source: str) -> None:
        self.ix, self.source = indices, source
        self.image: dict[str, _Present] = {}
        for p in installed:
            if p.architecture in ARCHS:
                known = indices.find(p.name, p.version) or indices.candidate(p.name)  # its Provides, Conflicts and Breaks
                self.image[p.name] = _Present(p.name, p.version, known.provides() if known else [], indices.find(p.name, p.version), None)
        self.chosen: dict[str, _Present] = {}

    def present(self) -> list[_Present]:
        return [*self.chosen.values(), *(p for n, p in self.image.items() if n not in self.chosen)]

    def satisfied(self, rel: debian.Relation) -> bool:
        real = self.chosen.get(rel.name) or self.image.get(rel.name)
        if real is not None and debian.satisfies(real.version, rel.op, rel.version):
            return True
        return any(p.name == rel.name and _provides_for(rel, p) for have in self.present() for p in have.provides)

    def choose(self, rel: debian.Relation) -> tuple[Candidate | None, str]:
        """The candidate for `rel`, or why there is none."""
        c = self.ix.candidate(rel.name)
        if c is not None and debian.satisfies(c.version, rel.op, rel.version):
            return c, ""
        providers = [(pc, p) for pc, p in self.ix.providers(rel.name) if _provides_for(rel, p)]
        if providers:
            best = min(providers, key=lambda cp: (_PRIORITY.get(cp[0].stanza.get("Priority", ""), 5), cp[0].name))
            return best[0], ""
        if c is not None:
            have = self.image.get(rel.name)
            held = f"; the runtime image has {have.version}" if have else ""
            return None, f"{rel} is not satisfied by {rel.name} {c.version}, the newest version there{held}"
        if self.ix.providers(rel.name):
            return None, f"{rel}: no package provides it at a version that satisfies it"
        return None, f"{rel.name} is in none of the indices"

    def run(self, requested: Sequence[Requested]) -> list[Deb]:
        queue: deque[tuple[list[debian.Relation], Requested, tuple[str, ...]]] = deque(([debian.Relation(r.name)], r, ()) for r in requested)
        while queue:
            clause, origin, chain = queue.popleft()
            if any(self.satisfied(rel) for rel in clause):
                continue
            reasons = []
            for rel in clause:
                pick, why = self.choose(rel)
                if pick is not None:
                    break
                reasons.append(why)
            else:
                needs = f"{origin.name} needs {' | '.join(map(str, clause))} (through {' → '.join(chain)}): " if chain else ""
                raise ResolveError(f"{self.source}:{origin.line}: {needs}{'; '.join(reasons)}; searched {self.ix.searched}")
            self.chosen[pick.name] = _Present(pick.name, pick.version, pick.provides(), pick, origin)
            for key in ("Pre-Depends", "Depends"):
                queue.extend((c, origin, (*chain, pick.name)) for c in pick.rels(key))
        self.check_conflicts()
        return sorted((self.deb(p.candidate) for p in self.chosen.values() if p.candidate), key=lambda d: (d.name, d.architecture))

    def check_conflicts(self) -> None:
        problems = []
        present = self.present()
        for have in present:
            if have.candidate is None:
                continue
            for key in ("Conflicts", "Breaks"):
                for rel in (alt for clause in have.candidate.rels(key) for alt in clause):
                    for other in present:
                        if other is have or (have.origin is None and other.origin is None):
                            continue  # the image's own packages were installed together already
                        hit = other.name == rel.name and debian.satisfies(other.version, rel.op, rel.version)
                        if hit or any(p.name == rel.name and _provides_for(rel, p) for p in other.provides):
                            problems.append(f"{self._describe(have)}, which {key}: {rel}; but {self._describe(other)}")
        if problems:
            raise ResolveError(sorted(set(problems)))

    def _describe(self, p: _Present) -> str:
        if p.origin is None:
            return f"the runtime image has {p.name} {p.version}"
        return f"{self.source}:{p.origin.line}: {p.name} {p.version} (for {p.origin.name}) is to be installed"

    def deb(self, c: Candidate) -> Deb:
        s = c.stanza
        try:
            source, source_version = source_of(s)
            return Deb(
                name=c.name,
                version=c.version,
                architecture=c.arch,
                filename=s["Filename"],
                size=int(s["Size"]),
                sha256=s["SHA256"],
                suite=c.suite,
                source=source,
                source_version=source_version,
            )
        except (KeyError, ValueError) as exc:
            raise AptError(f"{c.name} {c.version} ({c.suite}): its Packages entry lacks a valid {exc}") from exc


def closure(requested: Sequence[Requested], indices: Indices, installed: Iterable[Installed], *, source: str = "apt-packages.txt") -> list[Deb]:
    """The .debs to add to an image holding `installed` so that every requested package is installed, sorted."""
    return _Solver(indices, installed, source).run(requested)
