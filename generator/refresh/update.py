"""`refresh`: every pin that moved upstream, as one reviewable change (the scheduled job's pull request).

Order matters. Every upstream is asked first (registries, python.org): nothing is written while any
answer is missing or untrusted. Then, in a scratch copy of the tree, the new lock is written, the
tool locks of runtimes whose Python moved are remade, every generated file is rendered again, the
snapshot tests that the move changes are updated, and (with `--only nix`) the flake inputs are
updated with nixpkgs held at nixpkgs-python's own pin. Only then is the changelog written and the
changed files swapped into the tree as one set (fileset.apply). A failure at any step leaves the
tree as it was, and the error shows the real cause (the registry's, python.org's or Nix's words).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from generator.core import fileset, paths, readfile
from generator.core.errors import GeneratorError, InputError
from generator.images import ospkgs, render, toolchain
from generator.refresh import flake_inputs, rebuild_matrix, upstream
from generator.schedule import lock as schedule_lock
from generator.schedule.decisions import OperatingSystem, ScheduleModel, load_policy, version_key, wanted_minors
from generator.schedule.lock import BaseImage, CPythonRelease, OsPackages, Platform, ScheduleLock
from generator.schedule.runtimes import load as load_schedule
from generator.schedule.runtimes import wanted_releases

PYTHON_ORG = "https://www.python.org/ftp/python"
# What a scratch copy leaves out: version control, environments, caches, build results.
_SKIP = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "result", "result-*", "*.egg-info")
# Where a refresh may change files: the lock, everything generated from it, the snapshots, Nix's lock.
_OWNED = (f"{paths.LOCKFILES}/", f"{paths.IMAGES}/", paths.README, "flake.lock")


def _owned(rel: str) -> bool:
    """May a refresh change this file? The generated ones, the lock's, and the snapshot tests' records."""
    return rel.startswith(_OWNED) or (rel.startswith(f"{paths.TESTS}/") and f"/{paths.SNAPSHOTS}/" in rel)


Relock = Callable[[Path, list[str]], None]


class RefreshError(GeneratorError):
    """A step of the refresh failed; the tree is unchanged (the message says so, and why)."""


@dataclass(frozen=True)
class Change:
    kind: Literal["base", "python", "cpython", "nix", "packages"]
    subject: str  # ubuntu22 | 3.12 | 2.7.12 | nixpkgs | ubuntu22 (its package lock)
    old: str | None
    new: str
    note: str = ""
    runtimes: tuple[str, ...] = ()


@dataclass
class UpstreamMoves:
    """What upstream says: the changes, and the lock that records them."""

    changes: list[Change]
    pins: ScheduleLock
    notes: list[str] = field(default_factory=list)


def _users(model: ScheduleModel, *, os_id: str | None = None, minor: str | None = None, version: str | None = None) -> tuple[str, ...]:
    out = [r.id for r in model.runtimes if (os_id and r.os == os_id) or (minor and r.python == minor)]
    out += [r.id for r in model.legacy_runtimes if (os_id and r.os == os_id) or (version and r.python == version)]
    return tuple(out)


def select(model: ScheduleModel, subjects: tuple[str, ...]) -> set[str]:
    """The OS ids and Python minors named on the command line (all of them when none is named)."""
    valid = set(model.operating_systems) | set(wanted_minors(model))
    unknown = [s for s in subjects if s not in valid]
    if unknown:
        raise InputError(f"unknown refresh subject {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(valid, key=str))}")
    return set(subjects) or valid


@dataclass(frozen=True)
class AptSettings:
    """Where the package step resolves: a base per OS (default: the pinned one), the archive, extra sources."""

    bases: dict[str, str] = field(default_factory=dict)
    archive: str | None = None
    extra_sources: tuple[str, ...] = ()
    keyrings: tuple[Path, ...] = ()
    engine: str = "podman"
    toolchain: bool = False  # move the toolchain locks too (refresh --toolchain); else only with a CPython release


def ask_packages(
    model: ScheduleModel,
    lock: ScheduleLock,
    subjects: set[str],
    apt: AptSettings,
    progress: Callable[[str], None],
    python_moved: set[str] | None = None,
) -> tuple[dict[str, OsPackages], list[Change]]:
    """Re-resolve each OS's package closures in its base at today's archive state; what moved. The
    toolchain lock (build closure and its base) stays unless it must move (images/toolchain.py)."""
    out, changes = dict(lock.os_packages), []
    for os_id, os_ in model.operating_systems.items():
        if os_id not in subjects:
            continue
        base = apt.bases.get(os_id) or f"{os_.image}@{lock.base_images[os_id].digest}"
        sets = {"build": os_.build_packages, "runtime": os_.runtime_packages, "devel": os_.devel_packages}
        try:
            new = ospkgs.resolve(
                base, ospkgs.sources_for(os_, apt.archive), sets, engine=apt.engine, extra_sources=apt.extra_sources, keyrings=apt.keyrings,
                progress=progress,
            )  # fmt: skip
        except ospkgs.OsPackagesError as exc:
            raise RefreshError(f"operating system {os_id}: {exc}") from exc
        old = lock.os_packages.get(os_id)
        why = toolchain.must_move(old, os_.build_packages, asked=apt.toolchain, python_moved=os_id in (python_moved or set()))
        new = toolchain.apply(old, new, f"{os_.image}@{lock.base_images[os_id].digest}", why)
        if why and old is not None and (old.build, old.toolchain_base) != (new.build, new.toolchain_base):
            changes.append(Change("packages", os_id, old.toolchain_base, str(new.toolchain_base), f"toolchain|{why}", _users(model, os_id=os_id)))
        if ospkgs.same_files(old, new) and (old is None or old.toolchain_base == new.toolchain_base):
            continue  # nothing moved: keep the archive state it was locked at
        out[os_id] = new
        if old is None:
            what = f"|{len(new.build)} build + {len(new.runtime)} runtime + {len(new.devel)} build-image .debs, locked for the first time"
            changes.append(Change("packages", os_id, None, f"archive state {new.snapshot}", what, _users(model, os_id=os_id)))
            continue
        for name, was, now, suite in ospkgs.moves(old, new):
            note = f"{suite}, security" if suite.endswith("-security") else suite
            changes.append(Change("packages", os_id, was, now or "removed", f"{name}|{note}", _users(model, os_id=os_id)))
        based = ospkgs.base_moves(old, new)
        if based:  # one line: a new base moves most of its packages at once
            shown = ", ".join(f"{n} {a or 'none'} → {b or 'removed'}" for n, a, b in based[:5]) + (", …" if len(based) > 5 else "")
            what = f"{len(new.base)} ({len(based)} changed: {shown})"
            changes.append(Change("packages", os_id, str(len(old.base)), what, "packages in the base|the base image", _users(model, os_id=os_id)))
    return out, changes


def ask_upstream(
    model: ScheduleModel,
    lock: ScheduleLock,
    *,
    only: set[str],
    subjects: set[str],
    python_source: str,
    apt: AptSettings | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> UpstreamMoves:
    """Ask every upstream what the schedule's tags and minors point at; build the new lock."""
    changes: list[Change] = []
    notes: list[str] = []
    bases = dict(lock.base_images)
    if "os" in only:
        for os_id, os_ in model.operating_systems.items():
            if os_id in subjects:
                bases[os_id] = _ask_base(model, lock, os_id, os_, changes, notes)
    minors = dict(lock.python_minors)
    releases = dict(lock.cpython)
    if "python" in only:
        changes += _ask_pythons(model, subjects, python_source, minors, releases)
    new = dataclasses.replace(lock, base_images=bases, python_minors=minors, cpython=releases)
    if "packages" in only:
        moved_minors = {m for m, v in minors.items() if lock.python_minors.get(m) != v}
        python_moved = {n.os for n in model.runtimes if n.python in moved_minors}
        packages, moved = ask_packages(model, new, subjects, apt or AptSettings(), progress, python_moved)
        new = dataclasses.replace(new, os_packages=packages)
        changes += moved
    return UpstreamMoves(changes, prune(model, new), notes)


def _ask_base(model: ScheduleModel, lock: ScheduleLock, os_id: str, os_: OperatingSystem, changes: list[Change], notes: list[str]) -> BaseImage:
    """The digest (and each platform's) an OS's image tag points at now; a change if it moved."""
    try:
        answer = upstream.base_image(os_.image)
    except upstream.UpstreamError as exc:
        raise RefreshError(f"operating system {os_id}: {exc}") from exc
    old = lock.base_images.get(os_id)
    same = old is not None and old.digest == answer.digest and old.image == os_.image
    platforms = {}
    for arch in sorted(set(answer.manifests) | ({"amd64"} if not answer.manifests else set())):
        kept = old.platforms.get(arch) if same and old else None
        pulled = answer.manifests.get(arch) or answer.digest  # what the flake's pullImage asks for
        nix = (kept.nix_sha256 if kept else None) or upstream.nix_prefetch(os_.image, pulled, arch)
        platforms[arch] = Platform(answer.manifests.get(arch) or (kept.manifest_digest if kept else None), nix)
        if nix is None and arch == "amd64" and not same:
            notes.append(f"`{os_id}`: Nix pullImage hash unknown for {answer.digest} (the Nix build refuses until it is filled)")
    evidence = f"{os_.image} pointed at this digest when `refresh` asked the registry"
    entry = BaseImage(image=os_.image, digest=answer.digest, platforms=platforms, evidence=evidence)
    if same and old:
        entry = dataclasses.replace(old, platforms={**old.platforms, **platforms})
    if not same:
        changes.append(Change("base", os_id, old.digest if old else None, answer.digest, os_.image, _users(model, os_id=os_id)))
    return entry


def _ask_pythons(
    model: ScheduleModel, subjects: set[str], python_source: str, minors: dict[str, str], releases: dict[str, CPythonRelease]
) -> list[Change]:
    """Move each chosen minor to its newest patch release and pin every release in use (updates both dicts)."""
    changes: list[Change] = []
    for minor in wanted_minors(model):
        if minor not in subjects:
            continue
        try:
            newest = upstream.newest_patch(python_source, minor)
        except upstream.UpstreamError as exc:
            raise RefreshError(str(exc)) from exc
        pinned = minors.get(minor)
        if pinned is None or version_key(newest) > version_key(pinned):
            rel, sha = _pin_release(python_source, newest)
            releases[newest] = rel
            minors[minor] = newest
            note = f"`Python-{newest}.tgz` sha256 `{sha}`, from {rel.evidence.split(': ', 1)[-1]}"
            changes.append(Change("python", minor, pinned, newest, note, _users(model, minor=minor)))
    for r in model.legacy_runtimes:
        if r.python not in releases:
            releases[r.python], sha = _pin_release(python_source, r.python)
            changes.append(Change("cpython", r.python, None, r.python, sha, _users(model, version=r.python)))
    return changes


def _pin_release(python_source: str, version: str) -> tuple[CPythonRelease, str]:
    """A CPython release's .tgz (and, if published, .tar.xz) digest from python.org; and the .tgz's sha256
    (a fresh pin always has one, where a release read from the lock may not)."""
    try:
        sha, evidence = upstream.release_sha256(python_source, version)
    except upstream.UpstreamError as exc:
        raise RefreshError(str(exc)) from exc
    try:
        xz: str | None = upstream.release_sha256(python_source, version, "tar.xz")[0]
    except upstream.UpstreamError:
        xz = None  # optional: the build fetches the .tgz
    url = f"{PYTHON_ORG}/{version}/Python-{version}.tgz"
    return CPythonRelease(url=url, sha256=sha, tar_xz_sha256=xz, evidence=evidence[:500]), sha


def prune(model: ScheduleModel, lock: ScheduleLock) -> ScheduleLock:
    """Drop pins nothing in the schedule uses any more (a retired OS, minor or patch release)."""
    minors = {m: v for m, v in lock.python_minors.items() if m in wanted_minors(model)}
    kept = dataclasses.replace(lock, python_minors=minors)
    used = set(wanted_releases(model, kept))
    return dataclasses.replace(
        kept,
        base_images={k: v for k, v in lock.base_images.items() if k in model.operating_systems},
        os_packages={k: v for k, v in lock.os_packages.items() if k in model.operating_systems},
        cpython={v: rel for v, rel in lock.cpython.items() if v in used},
    )


def changelog(plan: UpstreamMoves, rebuild: dict[str, list[str]] | None = None) -> str:
    """Markdown for the pull request body: each pin old → new, and each runtime to rebuild."""
    if not plan.changes:
        return "No pin moved upstream: nothing to change.\n"
    out = ["## Runtime pin refresh", ""]
    sections = {
        "base": "### Base images",
        "python": "### CPython",
        "cpython": "### CPython (legacy releases pinned for the first time)",
        "nix": "### Nix flake inputs",
        "packages": "### OS packages",
    }
    for kind, title in sections.items():
        items = [c for c in plan.changes if c.kind == kind]
        if not items:
            continue
        out += [title, ""]
        for c in items:
            if kind == "base":
                out.append(f"- `{c.subject}` (`{c.note}`): `{c.old or 'none'}` → `{c.new}`")
            elif kind == "python":
                out.append(f"- Python {c.subject}: {c.old or 'none'} → {c.new} ({c.note})")
            elif kind == "cpython":
                out.append(f"- CPython {c.subject}: sha256 `{c.note}`")
            elif kind == "packages":
                name, _, where = c.note.partition("|")
                mark = " **security**" if where.endswith("security") else ""
                out.append(f"- `{c.subject}`: {name or 'package lock'} {c.old or 'none'} → {c.new} ({where}){mark}")
            else:
                out.append(f"- `{c.subject}`: `{c.old or 'none'}` → `{c.new}`{': ' + c.note if c.note else ''}")
        out.append("")
    if plan.notes:
        out += ["### Notes", "", *[f"- {n}" for n in plan.notes], ""]
    if rebuild is None:
        rebuild = {}
        for c in plan.changes:
            for rid in c.runtimes:
                rebuild.setdefault(rid, []).append(_why(c))
    out += ["### Runtimes to rebuild", ""]
    out += [f"- `{rid}`: {', '.join(why)}" for rid, why in sorted(rebuild.items())] or ["- none"]
    return "\n".join(out) + "\n"


def _why(c: Change) -> str:
    if c.kind == "base":
        return f"{c.subject} {(c.old or 'none')[:19]}… → {c.new[:19]}…"
    if c.kind == "python":
        return f"Python {c.old} → {c.new}"
    if c.kind == "nix":
        return f"{c.subject} {str(c.old)[:12]} → {c.new[:12]}"
    if c.kind == "packages":
        return f"{c.subject} {c.note.split('|')[0] or 'packages'} {c.old or 'none'} → {c.new}"
    return f"CPython {c.subject} pinned"


@dataclass
class Result:
    plan: UpstreamMoves
    log: str
    written: list[str]
    rebuild: list[str] = field(default_factory=list)  # runtimes whose input hash moved

    @property
    def summary(self) -> str:
        return f"refresh: {len(self.plan.changes)} pin(s) moved, {len(self.rebuild)} runtime(s) to rebuild, {len(self.written)} file(s) written"


def refresh(
    schedule_path: Path,
    *,
    only: set[str],
    subjects: tuple[str, ...] = (),
    dry_run: bool = False,
    python_source: str = upstream.PYTHON_SOURCE,
    apt: AptSettings | None = None,
    relock: Relock | None = None,
    snapshots: bool = True,
    changelog_path: Path | None = None,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Result:
    """Find moved pins; unless dry_run, apply them with everything that follows from them — all or nothing."""
    root = schedule_path.resolve().parent
    model, _ = load_policy(schedule_path, paths.SCHEDULE)
    lock_path = schedule_lock.path_for(schedule_path)
    lock = schedule_lock.load(lock_path) if os.path.lexists(lock_path) else schedule_lock.empty()
    chosen = select(model, subjects)
    progress("asking upstream: " + ", ".join(sorted(only)))
    try:
        plan = ask_upstream(model, lock, only=only - {"nix"}, subjects=chosen, python_source=python_source, apt=apt, progress=progress)
    except GeneratorError as exc:
        raise RefreshError(f"{exc}\nthe work tree is unchanged") from exc
    if dry_run:
        log = changelog(plan)
        if changelog_path is not None:
            write_changelog(changelog_path, log)
        return Result(plan, log, [])
    with fileset.exclusive(root), tempfile.TemporaryDirectory(prefix="refresh-") as tmp:
        scratch = Path(tmp) / "tree"
        shutil.copytree(root, scratch, ignore=_SKIP, symlinks=True)
        if (root / ".venv").is_dir():
            (scratch / ".venv").symlink_to(root / ".venv")  # the tests' tools (hadolint), as in the tree
        try:
            _apply_in(scratch, plan, relock=relock, snapshots=snapshots, nix="nix" in only, progress=progress)
        except GeneratorError as exc:
            raise RefreshError(f"{exc}\nthe work tree is unchanged") from exc
        if not plan.changes and plan.pins.dumps().encode() == (_tree_file(root, lock_path) or b""):
            return Result(plan, changelog(plan), [])
        rebuild = _rebuilds(root, scratch, plan)
        log = changelog(plan, rebuild)
        changes = _differences(root, scratch)
        if changelog_path is not None:
            write_changelog(changelog_path, log)
        try:
            fileset.apply(root, changes)
        except GeneratorError as exc:
            raise RefreshError(f"{exc}\nthe work tree is unchanged (every file swapped in so far was put back)") from exc
    return Result(plan, log, sorted(f"{rel} (removed)" if data is None else rel for rel, data in changes.items()), sorted(rebuild))


def write_changelog(path: Path, log: str) -> None:
    """The pull request body (a path the user chose: fileset.write_output); before the swap, so a bad path changes nothing in the tree."""
    try:
        fileset.write_output(path, log)
    except GeneratorError as exc:
        raise RefreshError(f"changelog: {exc}\nthe work tree is unchanged") from exc


def _apply_in(scratch: Path, plan: UpstreamMoves, *, relock: Relock | None, snapshots: bool, nix: bool, progress: Callable[[str], None]) -> None:
    """Every step after asking upstream, in the scratch tree; raises on the first failure."""
    (scratch / paths.SCHEDULE_LOCK).parent.mkdir(parents=True, exist_ok=True)
    (scratch / paths.SCHEDULE_LOCK).write_text(plan.pins.dumps(), encoding="utf-8")
    if nix:
        progress("updating the flake inputs (nix flake update), nixpkgs held at nixpkgs-python's pin")
        plan.changes.extend(Change("nix", name, old, new, note) for name, old, new, note in flake_inputs.update(scratch))
    sched = load_schedule(scratch / paths.SCHEDULE)
    moved = sorted({rid for c in plan.changes if c.kind in ("python", "cpython") for rid in c.runtimes})
    if moved and relock is not None:
        progress(f"relocking the tools of {', '.join(moved)}")
        relock(scratch, moved)
        sched = load_schedule(scratch / paths.SCHEDULE)
    progress("regenerating")
    render.apply(render.plan(sched, scratch))
    if snapshots and plan.changes:
        update_snapshots(scratch, progress)


def _tree_file(root: Path, path: Path) -> bytes | None:
    """A file of the tree (None: missing), through readfile: inside the tree, a regular file, never a FIFO."""
    try:
        return readfile.read_bytes(path, within=root, what="a file of the tree", limit=readfile.MAX_DATA, name=path.name, where="the tree")
    except readfile.ReadError as exc:
        if exc.missing:
            return None
        raise


def update_snapshots(tree: Path, progress: Callable[[str], None]) -> None:
    """Re-record the snapshot tests of generated files, so the refresh's pull request passes as it stands."""
    found = (tree / paths.TESTS).rglob("test_*.py")
    tests = sorted(p.relative_to(tree).as_posix() for p in found if b"snapshot" in (_tree_file(tree, p) or b""))
    if not tests:
        return
    progress(f"updating snapshots ({', '.join(tests)})")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--snapshot-update", "--tb=short", "-m", "not image and not registry"]
    try:
        proc = subprocess.run([*cmd, *tests], cwd=tree, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RefreshError(f"updating snapshots: {exc}") from exc
    if proc.returncode not in (0, 5):
        tail = "\n  ".join((proc.stdout + proc.stderr).strip().splitlines()[-60:])
        raise RefreshError(f"the snapshot tests fail on the refreshed tree (pytest exit {proc.returncode}):\n  {tail}")


def _rebuilds(root: Path, scratch: Path, plan: UpstreamMoves) -> dict[str, list[str]]:
    """Runtime → how and why, for every runtime whose input hash moved (the build matrix of the pull
    request): a rebuild where its interpreter's inputs moved too, else a re-assembly."""
    before = rebuild_matrix.runtimes_at(root, None) if (root / paths.RUNTIMES_JSON).exists() else {}
    after = rebuild_matrix.runtimes_at(scratch, None)
    out = {}
    for rid, entry in after.items():
        if before.get(rid, {}).get("input_hash") != entry["input_hash"]:
            how = (
                "rebuild (the interpreter's inputs moved)"
                if rebuild_matrix.build_kind(before.get(rid), entry) == "rebuild"
                else "re-assembly (same interpreter)"
            )
            out[rid] = [how, *([_why(c) for c in plan.changes if rid in c.runtimes or c.kind == "nix"] or ["generated inputs changed"])]
    return out


def _differences(root: Path, scratch: Path) -> dict[str, bytes | None]:
    """Files under the refresh's own areas that differ between the tree and the scratch copy."""
    out: dict[str, bytes | None] = {}
    for path in sorted(p for p in scratch.rglob("*") if p.is_file() and not fileset.is_scratch(p)):
        rel = path.relative_to(scratch).as_posix()
        if not _owned(rel):
            continue
        data = path.read_bytes()
        target = root / rel
        if _tree_file(root, target) != data:
            out[rel] = data
    for area in (paths.IMAGES, paths.TESTS):
        for path in sorted((root / area).rglob("*")) if (root / area).is_dir() else []:
            rel = path.relative_to(root).as_posix()
            if _owned(rel) and path.is_file() and not (scratch / rel).exists() and not fileset.is_scratch(path):
                out[rel] = None
    return out


def tool_relock(tree: Path, runtime_ids: list[str]) -> None:
    """The relock step: remake the tool locks of runtimes whose Python moved (their target changed)."""
    from generator import locking

    locking.relock_runtimes(tree, runtime_ids)
