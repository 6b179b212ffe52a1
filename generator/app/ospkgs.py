"""An app's own OS packages: `apt-packages.txt` → `apt-packages.lock.json`, every .deb locked by sha256.

Some apps need an Ubuntu package that no wheel links to (`libmagic1`, which python-magic loads
through ctypes; a command-line tool the app runs). The runtime image cannot guess them, and an app
build must not run `apt-get install` against the live archive: it would take whatever is current
that day and need the network. So, as with requirements.in → requirements.txt, the app names the
packages and `lock-app` resolves their closure once, on the host, from the OS's suites' Packages
indices (each checked against its InRelease, which gpgv verifies with Ubuntu's keyring: apt.py),
minus what the runtime image already holds (the schedule lock's package list of that OS). The lock
records each .deb's pool path, size, sha256 and pocket, so a build fetches and checks them on the
host and installs them with the network off.

The resolver (app_ospkgs_solve.py) makes apt's choices for `apt-get install --no-install-recommends`
into that image; this module reads the app's file, finds the keyring, reads the indices and
models, writes and checks the lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from generator.app.ospkgs_solve import Indices, Installed, Requested, closure
from generator.core import readfile
from generator.core.errors import InputError
from generator.core.validate import Pattern, Problem, convert
from generator.core.yamlsrc import dotted
from generator.images import apt
from generator.schedule.decisions import OperatingSystem
from generator.schedule.lock import Deb, DebName, Evidence, OsId, Suite
from generator.schedule.runtimes import Runtime

__all__ = ["AppOsError", "AppOsRequest", "AptPackagesLock", "Indices", "Requested", "closure", "read", "resolve"]

APT_FILE = "apt-packages.txt"
LOCK_FILE = "apt-packages.lock.json"
FORMAT: Final = 1  # Final: its type is Literal[1], the only format the lock dataclass accepts
ABOUT = (
    "Written by `python -m generator lock-app` from apt-packages.txt: the .debs the app's image adds to its runtime image, "
    "each with its sha256 from the archive's signed Packages index. Do not edit by hand."
)
KEYRING_ENV = "FLEX_PYTHON_UBUNTU_KEYRING"
DEFAULT_KEYRING = Path("/usr/share/keyrings/ubuntu-archive-keyring.gpg")
ARCHIVE_ENV = "FLEX_PYTHON_APT_ARCHIVE"  # as for the runtimes' package locks (ospkgs.ARCHIVE_ENV)
MAX_BYTES = 64 * 1024  # a list of package names; anything larger is not one
_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+", re.ASCII)
_VALID = "one Ubuntu package name per line, as Debian spells them: lowercase letters, digits, + . -, starting with a letter or digit (e.g. libmagic1)"


class AppOsError(InputError):
    """apt-packages.txt, its lock, or a package it names cannot be used as it is (bad input: exit 2)."""


# --- apt-packages.txt -------------------------------------------------------------------------------


def read(path: Path) -> list[Requested]:
    """The packages an app's apt-packages.txt names, in file order; `#` comments and blank lines skipped.

    Refused, each problem with `file:line`: a name Debian would not accept, a version (`foo=1.2`,
    `foo (>= 1)`: the lock pins versions), an architecture (`foo:amd64`), a name listed twice; and
    the whole file when it is a symlink leaving the app directory, larger than 64 KiB, or not UTF-8."""
    shown = str(path)
    try:
        text = readfile.read_text(path, within=path.parent, what="a list of package names", limit=MAX_BYTES, where="the app directory", bom=True)
    except readfile.ReadError as exc:
        raise AppOsError(str(exc)) from exc
    out: list[Requested] = []
    seen: dict[str, int] = {}
    problems = []
    for number, raw in enumerate(text.splitlines(), 1):
        word = raw.split("#", 1)[0].strip()
        if not word:
            continue
        problem = _problem(word)
        if problem is None and word in seen:
            problem = f"{word} is already listed on line {seen[word]}; list each package once"
        if problem:
            problems.append(f"{shown}:{number}: {problem}")
            continue
        seen[word] = number
        out.append(Requested(word, number))
    if problems:
        raise AppOsError(problems)
    return out


def _problem(word: str) -> str | None:
    if re.search(r"[=<>()]", word):
        name = re.split(r"[\s=<>(:]", word, maxsplit=1)[0]
        return f"{word!r} has a version constraint; write only the name ({name}): the lock pins each package's version"
    if ":" in word:
        return f"{word!r} has an architecture qualifier; write only the name ({word.split(':', 1)[0]}): packages are for amd64 (or `all`)"
    if len(word.split()) > 1:
        return f"{word!r} is several words; {_VALID}"
    if len(word) > 100 or not _NAME.fullmatch(word):
        shown = repr(word) if len(word) <= 60 else f"{word[:40]!r}… ({len(word)} characters)"
        return f"{shown} is not a package name; {_VALID}"
    return None


# --- the keyring and the indices -------------------------------------------------------------------


def keyring(given: Path | None = None) -> Path:
    """Ubuntu's archive keyring: `given` (--keyring), else $FLEX_PYTHON_UBUNTU_KEYRING, else the system's."""
    path = given or Path(os.environ.get(KEYRING_ENV) or DEFAULT_KEYRING)
    if path.is_file():
        return path
    raise AppOsError(
        f"{path}: Ubuntu's archive keyring is missing; it verifies the signed indices the packages are locked from. "
        "On Ubuntu: `apt-get install ubuntu-keyring`. Debian 12 has no package for it (`apt-cache policy ubuntu-keyring "
        "ubuntu-archive-keyring` shows no candidate); Debian 13 (trixie) has `ubuntu-keyring`: there `apt-get install ubuntu-keyring`, "
        "elsewhere take trixie's .deb (pool/main/u/ubuntu-keyring/, its sha256 in trixie's signed Packages index), unpack it with "
        f"`dpkg-deb -x ubuntu-keyring_*.deb DIR`, and pass --keyring DIR{DEFAULT_KEYRING} (or set {KEYRING_ENV})"
    )


def read_indices(os_: OperatingSystem, archive: str, keyring_path: Path) -> Indices:
    """Every Packages index (amd64, with the `all` packages in it) of the OS's suites and components, each verified."""
    entries: list[tuple[str, dict[str, str]]] = []
    dates = {}
    for suite in os_.apt_suites:
        rel = apt.release(archive, suite, keyring_path)  # AptError (exit 1) on a bad signature or an unreachable archive
        dates[suite] = f"Release Date: {rel.date}"
        for component in os_.apt_components:
            entries += [(suite, stanza) for stanza in apt.packages_index(archive, rel, component, "amd64").packages.values()]
    searched = f"{', '.join(os_.apt_suites)} ({', '.join(os_.apt_components)}; amd64 and all) of {archive}"
    return Indices(entries, os_.apt_suites, dates, searched)


# --- the lock -------------------------------------------------------------------------------------

Digest = Annotated[str, Pattern(r"sha256:[0-9a-f]{64}", "'sha256:' and 64 lowercase hex digits")]
RuntimeId = Annotated[str, Pattern(r"python\d{1,3}(-[a-z][a-z0-9]{0,31})?", "a runtime ID such as python312-ubuntu22")]
ArchiveUrl = Annotated[str, Pattern(r"https?://[A-Za-z0-9._~:/%-]{1,300}", "the archive URL the indices were read from")]


@dataclass(frozen=True)
class AptPackagesLock:
    """apt-packages.lock.json: the closure of an app's OS packages for one runtime image, with its evidence."""

    about: Evidence
    format: Literal[1]
    runtime_id: RuntimeId  # the runtime (and so the image) it was resolved for
    os_id: OsId
    archive: ArchiveUrl
    suites: dict[Suite, Evidence]  # each suite read → its signed Release file's Date
    requested: list[DebName]  # the names apt-packages.txt lists, sorted
    inputs: Digest  # inputs_hash(requested): a changed apt-packages.txt makes the lock stale
    installed: Digest  # installed_hash of the runtime image's packages it was resolved against
    debs: list[Deb]  # what the image adds, sorted by name

    def dumps(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def inputs_hash(names: Iterable[str]) -> str:
    return "sha256:" + hashlib.sha256("".join(f"{n}\n" for n in sorted(set(names))).encode()).hexdigest()


def installed_hash(installed: Iterable[Installed]) -> str:
    lines = sorted(f"{p.name} {p.version} {p.architecture}\n" for p in installed)
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def resolve(
    requested: Sequence[Requested],
    os_: OperatingSystem,
    installed: Iterable[Installed],
    *,
    archive: str,
    keyring: Path | None,
    runtime_id: str,
    os_id: str,
    source: str = APT_FILE,
    indices: Indices | None = None,
) -> AptPackagesLock:
    """The lock of `requested` for an image holding `installed`: the indices are read (and verified with
    `keyring`) unless given; nothing is read when nothing is requested."""
    installed = list(installed)
    if indices is None and requested:
        if keyring is None:
            raise AppOsError("no keyring given to verify the archive with")
        indices = read_indices(os_, archive, keyring)
    debs = closure(requested, indices, installed, source=source) if indices is not None else []
    names = sorted(r.name for r in requested)
    lock = AptPackagesLock(
        about=ABOUT,
        format=FORMAT,
        runtime_id=runtime_id,
        os_id=os_id,
        archive=archive.rstrip("/"),
        suites=dict(sorted(indices.dates.items())) if indices is not None else {},
        requested=names,
        inputs=inputs_hash(names),
        installed=installed_hash(installed),
        debs=debs,
    )
    return loads(lock.dumps(), LOCK_FILE)  # the lock is checked as any reader will check it, before it is written


def loads(text: str, name: str = LOCK_FILE) -> AptPackagesLock:
    """A lock's text, validated: a hand-edited or hostile lock is refused, naming the file and the field."""
    fix = "remake it with `python -m generator lock-app APP_DIR --force`"
    try:
        data = readfile.parse_json(text, source=name)
    except readfile.ReadError as exc:
        raise AppOsError(f"{exc}; {fix}") from exc
    if not isinstance(data, dict):
        raise AppOsError(f"{name}: must be a JSON object; {fix}")
    found: list[Problem] = []
    lock = convert(data, AptPackagesLock, (), found)
    if found:
        raise AppOsError([f"{name}: {dotted(path) or '(top level)'}: {message}; {fix}" for path, message in found])
    problems = []
    if lock.requested != sorted(set(lock.requested)):
        problems.append("requested: not sorted, or a name is listed twice")
    elif lock.inputs != inputs_hash(lock.requested):
        problems.append("inputs: not the hash of `requested`")
    keys = [(d.name, d.architecture) for d in lock.debs]
    if keys != sorted(set(keys)) or len({d.name for d in lock.debs}) != len(keys):
        problems.append("debs: not sorted by name, or a package is listed twice")
    for i, d in enumerate(lock.debs):
        parts = d.filename.split("/")
        if "." in parts or ".." in parts or not parts[-1].startswith(f"{d.name}_") or not parts[-1].endswith(f"_{d.architecture}.deb"):
            problems.append(f"debs[{i}].filename: {d.filename!r} is not the pool path of {d.name} ({d.architecture})")
        if d.suite not in lock.suites:
            problems.append(f"debs[{i}].suite: {d.suite!r} is not one of the suites read ({', '.join(lock.suites) or 'none'})")
        if d.size <= 0:
            problems.append(f"debs[{i}].size: must be a positive number of bytes")
    if problems:
        raise AppOsError([f"{name}: {p}; {fix}" for p in problems])
    return lock


def load(path: Path) -> AptPackagesLock:
    """The app's lock, read only if it resolves inside the app directory (readfile.py)."""
    try:
        text = readfile.read_text(path, within=path.parent, what="a lock this tool wrote", limit=readfile.MAX_DATA, where="the app directory")
    except readfile.ReadError as exc:
        raise AppOsError(str(exc)) from exc
    return loads(text, str(path))


def why_stale(lock: AptPackagesLock, names: Iterable[str], runtime_id: str, installed: str | None = None) -> str | None:
    """Why `lock` is not the lock of `names` for `runtime_id` (and, given, the installed_hash of its image); None: it is."""
    names = set(names)
    if lock.runtime_id != runtime_id:
        return f"locked for runtime {lock.runtime_id}; app.yaml now selects {runtime_id}"
    if lock.inputs != inputs_hash(names):
        added, removed = sorted(names - set(lock.requested)), sorted(set(lock.requested) - names)
        what = "; ".join(filter(None, [f"added {', '.join(added)}" if added else "", f"removed {', '.join(removed)}" if removed else ""]))
        return f"{APT_FILE} changed since it was locked ({what})"
    if installed is not None and lock.installed != installed:
        return f"the packages of runtime {runtime_id}'s image changed since it was locked (the schedule lock's os_packages.{lock.os_id})"
    return None


# --- lock-app ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppOsRequest:
    """An app's OS packages as `lock-app` sees them: its file (None: it has none), the lock beside it, the runtime."""

    src: Path
    out: Path
    requested: list[Requested] | None
    runtime: Runtime

    def installed(self) -> list[Any]:
        if self.runtime.packages is None:
            raise AppOsError(
                f"the schedule lock has no package list for {self.runtime.os_id} (runtime {self.runtime.id}'s image): "
                f"run `python -m generator refresh --only packages {self.runtime.os_id}`"
            )
        return list(self.runtime.packages.image_packages())


def plan(app_dir: Path, runtime: Runtime) -> AppOsRequest:
    """Read (and check) app_dir/apt-packages.txt for `runtime`: bad input is refused here, before anything is written."""
    src = app_dir / APT_FILE
    requested = read(src) if src.exists() or src.is_symlink() else None
    return AppOsRequest(src, app_dir / LOCK_FILE, requested, runtime)


def state(p: AppOsRequest) -> tuple[str, str]:
    """("ok" | "missing" | "stale" | "extra" | "none", why), offline."""
    if p.requested is None:
        return ("extra", f"there is no {APT_FILE} beside it: delete it, or restore {APT_FILE}") if p.out.exists() else ("none", "")
    if not p.out.exists():
        return "missing", "not locked yet"
    try:
        current = load(p.out)
    except AppOsError as exc:  # reported by --check; lock-app replaces it
        return "stale", f"not a valid lock: {exc.problems[0]}"
    why = why_stale(current, [r.name for r in p.requested], p.runtime.id, installed_hash(p.installed()))
    return ("stale", why) if why else ("ok", f"runtime {p.runtime.id}")


def lock(p: AppOsRequest, *, keyring_path: Path | None = None, force: bool = False) -> AptPackagesLock | None:
    """Resolve and write the lock (atomically) unless it is current; None: it was current."""
    from generator.images.render import write_atomic  # jinja2 is only loaded when something is written

    assert p.requested is not None
    if not force and state(p)[0] == "ok":
        return None
    archive = os.environ.get(ARCHIVE_ENV) or p.runtime.os.apt_archive
    made = resolve(
        p.requested,
        p.runtime.os,
        p.installed(),
        archive=archive,
        keyring=keyring(keyring_path) if p.requested else None,
        runtime_id=p.runtime.id,
        os_id=p.runtime.os_id,
        source=str(p.src),
    )
    write_atomic(p.out, made.dumps())
    return made
