"""The build requirements of the sdists an app lock installs: ``requirements-build.lock.json``.

pip builds an sdist in an isolated environment and installs its build requirements (PEP 517/518
``[build-system] requires``, or pip's default ``setuptools>=40.8.0`` + ``wheel`` without one) there,
with the same ``--no-index``/``--find-links`` options: a hermetic build needs their files beside the
app's. So lock-app resolves them for the runtime's Python with the resolver the app lock uses,
separately per sdist (pip builds each in its own environment, and two sdists may ask for conflicting
versions), transitively when a build requirement is itself only an sdist, and locks them with hashes.
The file's inputs hash ties it to the exact requirements.txt text, runtime and index it was made for.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.core import readfile
from generator.core.http import HttpError, fetch_verified, public_url
from generator.core.validate import wheel_problems
from generator.locking.index import Index, canonical
from generator.locking.lockfile import SDIST_SUFFIXES, FormatControl, format_control, parse_lock, wheel_list
from generator.locking.resolvers import Resolver
from generator.locking.target import LockError, Target, policy

BUILD_LOCK = "requirements-build.lock.json"
BUILD_FORMAT = 1
MAX_DEPTH = 4  # an sdist whose build requirement is an sdist whose build requirement is …: at most this deep
PIP_DEFAULT = ("setuptools>=40.8.0", "wheel")  # what pip installs for an sdist without [build-system]
SETUPTOOLS_BACKENDS = ("setuptools.build_meta", "setuptools.build_meta:__legacy__")
_PYPROJECT_MAX = 1 << 20


def path_for(requirements: Path) -> Path:
    """The build lock beside a requirements lock."""
    return requirements.parent / BUILD_LOCK


def inputs_hash(runtime_id: str, os_id: str, python: str, glibc: tuple[int, int], requirements_text: str, index: str) -> str:
    """What the build lock was made for: the requirements.txt text, the runtime, the index, the resolver policy."""
    major, minor = (int(p) for p in python.split(".")[:2])
    parts = {
        "format": BUILD_FORMAT,
        "runtime": runtime_id,
        "os": os_id,
        "python": python,
        "glibc": list(glibc),
        "requirements": requirements_text,
        "index": public_url(index),
        "policy": policy((major, minor)),
    }
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def target_hash(t: Target, requirements_text: str, index: str) -> str:
    return inputs_hash(t.runtime_id, t.os_id, t.python, t.glibc, requirements_text, index)


# --- what an sdist declares ----------------------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    requires: list[str]
    backend: str | None  # None: pip's legacy setuptools backend
    source: str  # where the requirements come from, for the lock and for messages


def _pyproject(archive: Path, filename: str) -> bytes | None:
    """The top-level pyproject.toml of an sdist (None: it has none)."""

    def top_level(name: str) -> bool:
        parts = name.strip("/").split("/")
        return len(parts) == 2 and parts[1] == "pyproject.toml"

    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                name = next((n for n in z.namelist() if top_level(n)), None)
                return z.read(name)[:_PYPROJECT_MAX] if name else None
        with tarfile.open(archive, "r:*") as tar:
            member = next((m for m in tar if m.isfile() and top_level(m.name)), None)
            fh = tar.extractfile(member) if member else None
            return fh.read(_PYPROJECT_MAX) if fh else None
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise LockError(f"{filename}: cannot read the sdist: {exc}") from exc


def declared(archive: Path, filename: str) -> Declared:
    """An sdist's build requirements as pip reads them, plus `wheel` for a setuptools backend
    (setuptools before 70.1 asks for it through get_requires_for_build_wheel)."""
    import tomllib

    raw = _pyproject(archive, filename)
    if raw is None:
        requires, backend, source = list(PIP_DEFAULT), None, "pip's default (the sdist has no pyproject.toml)"
    else:
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise LockError(f"{filename}: its pyproject.toml cannot be read ({exc}); pip cannot build it either") from exc
        system = data.get("build-system")
        if system is None:
            requires, backend, source = list(PIP_DEFAULT), None, "pip's default (pyproject.toml has no [build-system] table)"
        else:
            declared = system.get("requires") if isinstance(system, dict) else None
            if not isinstance(declared, list) or not all(isinstance(r, str) for r in declared):
                raise LockError(f"{filename}: pyproject.toml [build-system] requires is missing or not a list of strings; pip refuses to build it")
            requires = declared
            backend = system.get("build-backend")
            backend = backend if isinstance(backend, str) else None
            source = "pyproject.toml [build-system] requires"
    names = {_req_name(r) for r in requires}
    if (backend is None or backend in SETUPTOOLS_BACKENDS) and "wheel" not in names:
        requires = [*requires, "wheel"]
        source += ", and wheel for the setuptools backend"
    return Declared(requires, backend, source)


def _req_name(line: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return canonical(Requirement(line).name)
    except InvalidRequirement:
        return ""


# --- resolving -----------------------------------------------------------------------------------


def _key(entry: dict[str, str]) -> str:
    return f"{entry['name']}=={entry['version']}"


def make(
    t: Target,
    requirements_text: str,
    files: list[dict[str, str]],
    index: str,
    resolver: Resolver,
    echo: Callable[[str], None] | None = None,
) -> str:
    """The build lock (JSON text) of a requirements lock whose chosen files are `files` (wheel_list's)."""
    control = format_control(requirements_text)
    idx = Index(index)
    sdists: dict[str, dict[str, Any]] = {}

    def lock_one(entry: dict[str, str], path: list[str]) -> None:
        key = _key(entry)
        if key in path:
            raise LockError(f"the build requirements form a cycle: {' → '.join([*path[path.index(key) :], key])}; pip cannot build them offline")
        if key in sdists:
            return
        if len(path) > MAX_DEPTH:
            raise LockError(f"build requirements nest deeper than {MAX_DEPTH} sdists: {' → '.join([*path, key])}")
        with tempfile.TemporaryDirectory(prefix="flex-python-build-") as scratch:
            d = Path(scratch)
            try:
                archive = fetch_verified(entry["url"], entry["sha256"], d / entry["filename"])
            except HttpError as exc:
                raise LockError(f"{key}: {exc}") from exc
            decl = declared(archive, entry["filename"])
            if echo:
                echo(f"build requirements of {key}: {', '.join(decl.requires) or '(none)'}")
            locked, made_by = _lock_requires(t, key, decl, control, d, index, idx, resolver)
        sdists[key] = {
            "build_backend": decl.backend or "setuptools.build_meta:__legacy__ (pip's default)",
            "declared": decl.source,
            "files": locked,
            "made_by": made_by,
            "requires": decl.requires,
            "sdist": {k: entry[k] for k in ("filename", "sha256", "url")},
        }
        for dep in locked:
            if dep["filename"].endswith(SDIST_SUFFIXES):
                lock_one(dep, [*path, key])

    for entry in files:
        if entry["filename"].endswith(SDIST_SUFFIXES):
            lock_one(entry, [])
    return _document(t, requirements_text, index, sdists)


def _lock_requires(
    t: Target, key: str, decl: Declared, control: FormatControl, d: Path, index: str, idx: Index, resolver: Resolver
) -> tuple[list[dict[str, str]], str]:
    """The files (and the tool that chose them) of one sdist's build requirements, resolved in scratch dir `d`."""
    src = d / "build" / "requirements-build.in"
    src.parent.mkdir()
    lines = [*control.lines(), *decl.requires]
    in_text = "".join(f"{line}\n" for line in lines)
    src.write_text(in_text, encoding="utf-8")
    bt = Target("app", f"{t.key}#build-{key}", t.runtime_id, t.python, t.os_id, t.glibc, src, src.with_suffix(".txt"), None, t.relock)
    if not decl.requires:
        return [], ""
    try:
        made = resolver.resolve(bt, index, upgrade=False, scratch=d, in_text=in_text)
    except LockError as exc:
        raise LockError(f"the build requirements of {key} ({decl.source}: {', '.join(decl.requires)}): {exc}") from exc
    body = "".join(f"{line}\n" for line in control.lines()) + made.body
    if not parse_lock(body):
        raise LockError(f"the build requirements of {key}: {made.tool} wrote no pins")
    return wheel_list(body, idx, t.python, t.glibc), made.made_by


def _document(t: Target, requirements_text: str, index: str, sdists: dict[str, dict[str, Any]]) -> str:
    """The build lock's JSON text."""
    doc = {
        "about": (
            f"Build requirements of the sdists {t.out.name} installs on runtime {t.runtime_id} (CPython {t.python}, Linux x86_64): "
            "pip builds each sdist in an isolated environment and installs these there from the same --find-links. "
            f"Generated by `python -m generator lock-app` from {t.out.name}: do not edit."
        ),
        "format": BUILD_FORMAT,
        "index": public_url(index),
        "inputs": target_hash(t, requirements_text, index),
        "python": t.python,
        "runtime": t.runtime_id,
        "sdists": sdists,
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- reading -------------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any] | None:
    """A build lock's content (None: missing or not one of ours, to be remade).

    Read through readfile.py: a link out of the app, a FIFO or a device is refused (InputError), never read."""
    try:
        text = readfile.read_text(path, within=path.parent, what="a build lock", limit=readfile.MAX_DATA, where="the app directory")
    except readfile.ReadError as exc:
        if exc.missing or exc.line is not None:  # absent, or not UTF-8 text: remade
            return None
        raise
    try:
        doc = readfile.parse_json(text, source=path.name)
    except readfile.ReadError:  # not JSON this tool wrote: remade
        return None
    if not isinstance(doc, dict) or doc.get("format") != BUILD_FORMAT or not isinstance(doc.get("sdists"), dict):
        return None
    return doc


def is_current(doc: dict[str, Any] | None, runtime_id: str, os_id: str, python: str, glibc: tuple[int, int], requirements_text: str) -> bool:
    """Was this build lock made from exactly this requirements text, for this runtime (against the index it names)?"""
    if doc is None or not isinstance(doc.get("index"), str):
        return False
    return doc.get("inputs") == inputs_hash(runtime_id, os_id, python, glibc, requirements_text, doc["index"])


def files_for(doc: dict[str, Any], sdists: list[dict[str, str]], where: str) -> list[dict[str, str]]:
    """Every locked build file the builds of these sdists need (theirs, and those of build requirements
    that are sdists themselves); LockError when the lock does not cover one of them."""
    entries: dict[str, Any] = doc["sdists"]
    out: dict[str, dict[str, str]] = {}
    todo = list(sdists)
    seen: set[str] = set()
    while todo:
        sdist = todo.pop()
        key = _key(sdist)
        if key in seen:
            continue
        seen.add(key)
        entry = entries.get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("files"), list) or entry.get("sdist", {}).get("sha256") != sdist["sha256"]:
            raise LockError(f"{where} has no build requirements for {key} ({sdist['filename']})")
        problems = wheel_problems(entry["files"], f"{where}: sdists.{key}.files")
        if problems:
            raise LockError(problems)
        for f in entry["files"]:
            have = out.get(f["filename"])
            if have and have["sha256"] != f["sha256"]:
                raise LockError(f"{where}: {f['filename']} is locked with two different sha256s")
            out[f["filename"]] = f
            if f["filename"].endswith(SDIST_SUFFIXES):
                todo.append(f)
    return [out[k] for k in sorted(out)]


def sdist_text(files: list[dict[str, str]]) -> str:
    """A short list of sdists for messages."""
    return ", ".join(_key(f) for f in files if f["filename"].endswith(SDIST_SUFFIXES))
