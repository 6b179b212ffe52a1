"""Writing a set of files as one change: every file or none, even across a crash or a full disk.

`generate`, `lock` and `refresh` each change several files that only make sense together (the
Dockerfiles, runtimes.json and the README; a lock and the files rendered from it). Each new
content is first staged beside its target; then a journal names every target and its backup, the
targets are swapped in, and the journal and backups are removed. A failure rolls back what was
swapped; a run killed mid-swap is rolled back by the next run, which finds the journal. Runs on
one tree are serialized by an advisory lock on the tree's directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import GeneratorError

JOURNAL = ".generator-journal.json"
TMP_SUFFIX = ".generator-tmp"
BAK_SUFFIX = ".generator-bak"


class WriteError(GeneratorError):
    """A file could not be written; nothing of the set was changed."""


def is_scratch(path: Path) -> bool:
    """A staging or backup file of this module (ignored by `--check`, cleaned by the next run)."""
    return path.name.endswith((TMP_SUFFIX, BAK_SUFFIX)) or path.name == JOURNAL


@contextlib.contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """Hold the tree's lock: a second `generate`/`refresh` on the same tree waits for the first."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise WriteError(f"cannot open {root}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            recover(root)
        except OSError as exc:
            raise WriteError(f"cannot roll back the interrupted run found in {root}: {_describe(exc, Path(exc.filename or root))}") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _describe(exc: OSError, path: Path) -> str:
    reason = {errno.ENOSPC: "no space left on the device", errno.EROFS: "read-only file system", errno.EACCES: "permission denied"}
    return f"cannot write {path}: {reason.get(exc.errno, exc.strerror or str(exc))}"


def _inside(root: Path, rel: str) -> Path:
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()) or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise WriteError(f"refusing to write {rel!r}: it is not inside {root}")
    return root / rel


def _stage(target: Path, data: bytes) -> Path:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    except OSError as exc:
        exc.filename = exc.filename or str(target)
        raise
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            exc.filename = exc.filename or str(target)
        raise
    return Path(tmp)


def apply(root: Path, changes: dict[str, bytes | str | None]) -> list[str]:
    """Write (bytes/str) or delete (None) each relative path under `root`, all or nothing."""
    if not changes:
        return []
    targets = {rel: _inside(root, rel) for rel in sorted(changes)}
    staged: dict[str, Path] = {}
    try:
        for rel, target in targets.items():
            data = changes[rel]
            if data is not None:
                staged[rel] = _stage(target, data.encode("utf-8") if isinstance(data, str) else data)
        journal = []
        for rel, target in targets.items():
            backup = target.with_name(f".{target.name}{BAK_SUFFIX}")
            journal.append({"target": rel, "backup": backup.relative_to(root).as_posix() if target.exists() else None})
        _write_journal(root, journal)
    except BaseException as exc:
        _discard(staged.values())
        if isinstance(exc, OSError):
            raise WriteError(_describe(exc, Path(exc.filename or root))) from None
        raise
    try:
        for entry in journal:
            target = targets[entry["target"]]
            if entry["backup"]:
                os.link(target, root / entry["backup"])  # the old content stays reachable until the end
            if entry["target"] in staged:
                os.replace(staged[entry["target"]], target)
            elif target.exists():
                target.unlink()
    except BaseException as exc:
        recover(root)
        _discard(staged.values())
        if isinstance(exc, OSError):
            raise WriteError(_describe(exc, Path(exc.filename or root))) from None
        raise
    _finish(root, journal)
    for rel, target in targets.items():
        if changes[rel] is None:
            with contextlib.suppress(OSError):
                target.parent.rmdir()  # an emptied runtime directory goes too
    return list(targets)


def write_one(target: Path, content: bytes | str) -> None:
    """One file, atomically: staged beside it, then renamed over it. No journal: one rename is
    already all or nothing, and writers of different files in one directory (parallel `lock`
    jobs) must not share one journal there."""
    try:
        staged = _stage(target, content.encode("utf-8") if isinstance(content, str) else content)
    except OSError as exc:
        raise WriteError(_describe(exc, target)) from None
    try:
        os.replace(staged, target)
    except BaseException as exc:  # an interrupt too: no staged file is left behind
        _discard([staged])
        if isinstance(exc, OSError):
            raise WriteError(_describe(exc, target)) from None
        raise


def _discard(paths) -> None:
    for tmp in paths:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _write_journal(root: Path, journal: list[dict[str, str | None]]) -> None:
    path = root / JOURNAL
    tmp = _stage(path, json.dumps(journal, indent=1).encode())
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _finish(root: Path, journal: list[dict[str, str | None]]) -> None:
    (root / JOURNAL).unlink()
    for entry in journal:
        if entry["backup"]:
            with contextlib.suppress(FileNotFoundError):
                (root / entry["backup"]).unlink()


def recover(root: Path) -> None:
    """Undo a swap that did not finish (a crash, a kill -9, a full disk), then clear staged files."""
    path = root / JOURNAL
    if path.exists():
        try:
            journal = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            journal = []
        for entry in journal:
            target = root / entry["target"]
            if entry["backup"] and (root / entry["backup"]).exists():
                os.replace(root / entry["backup"], target)
            elif not entry["backup"]:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
        path.unlink()
    for pattern in (f"*{TMP_SUFFIX}", f"*{BAK_SUFFIX}"):
        for stale in [*root.glob(pattern), *root.glob(f"*/{pattern}"), *root.glob(f"*/*/{pattern}")]:
            with contextlib.suppress(OSError):
                stale.unlink()
