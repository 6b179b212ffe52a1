"""Writing a set of files as one change: every file or none, even across a crash or a full disk.

`generate`, `lock` and `refresh` each change several files that only make sense together (the
Dockerfiles, runtimes.json and the README; a lock and the files rendered from it). Each new
content is first staged beside its target; then a journal names every target and its backup, the
targets are swapped in, and the journal and backups are removed. A failure rolls back what was
swapped; a run killed mid-swap is rolled back by the next run, which finds the journal. Runs on
one tree are serialized by an advisory lock on the tree's directory.

The journal lives in the tool's cache, keyed by the tree's real path, never in the tree: a pull
request can add any file to a tree, so a journal found there proves nothing (one is refused), and
even our own is acted on entry by entry only where the files are the very ones the run linked or
staged (device, inode, size, mtime). Every write into a tree is `confine`d: no path that resolves
outside it or under `.git/`. A path the user chose (`-o`) is written by `write_output`, as tools do.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from generator.core.cache import cache_root
from generator.core.errors import GeneratorError, InputError

JOURNAL = ".generator-journal.json"  # where journals were once kept, in the tree: one found there is refused
TMP_SUFFIX = ".generator-tmp"
BAK_SUFFIX = ".generator-bak"


class WriteError(GeneratorError):
    """A file could not be written; nothing of the set was changed."""


class TreeError(WriteError, InputError):
    """The tree would lead a write out of itself or under `.git/` (a symlink, a journal it carries): bad input, exit 2."""


def is_scratch(path: Path) -> bool:
    """A staging or backup file of this module (ignored by `--check`, cleaned by the next run)."""
    return path.name.endswith((TMP_SUFFIX, BAK_SUFFIX)) or path.name == JOURNAL


@contextlib.contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """Hold the tree's lock: a second `generate`/`refresh` on the same tree waits for the first."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise WriteError(f"cannot open {root}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.path.lexists(root / JOURNAL):
            raise TreeError(
                f"{root / JOURNAL}: this tool keeps its journals in its cache, never in the tree, so this one was not"
                " written by it and is not acted on; delete it (`git rm` it if a change added it)"
            )
        try:
            recover(root)
        except OSError as exc:
            raise WriteError(f"cannot roll back the interrupted run found in {root}: {_describe(exc, Path(exc.filename or root))}") from exc
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _describe(exc: OSError, path: Path) -> str:
    reason: dict[int | None, str] = {
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
    }
    return f"cannot write {path}: {reason.get(exc.errno, exc.strerror or str(exc))}"


def confine(root: Path, rel: Path | str) -> Path:
    """`root / rel` if writing it stays in the tree and out of `.git/`; else TreeError.

    Resolved, so a symlink the tree carries (`images -> /tmp/x`, `lockfiles -> .git/hooks`) cannot
    lead a write elsewhere."""
    rel = Path(rel)
    where = root / rel
    if rel.is_absolute() or not rel.parts or ".." in rel.parts:
        raise TreeError(f"refusing to write {str(rel)!r}: it is not a path inside {root}")
    try:
        real_root = root.resolve()
        real = where.resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a symlink loop
        raise TreeError(f"refusing to write {str(where)!r}: it is not a path inside {root}") from exc
    if real == real_root or not real.is_relative_to(real_root):
        raise TreeError(f"refusing to write {where}: it resolves to {real}, outside the tree {real_root} (a symlink leads out; replace it)")
    if any(part.casefold() == ".git" for part in (*rel.parts, *real.relative_to(real_root).parts)):
        raise TreeError(f"refusing to write {where}: it resolves to {real}, under .git/ (a symlink leads there; replace it)")
    return root / rel


def confine_path(root: Path, path: Path) -> Path:
    """confine() for a path named from the working directory (`root/lockfiles/x.txt`), not from `root`."""
    return confine(root, os.path.relpath(os.path.abspath(path), os.path.abspath(root)))


def write_in(root: Path, target: Path, content: bytes | str) -> None:
    """One file inside the tree at `root`, atomically (write_one), never outside it or under `.git/`."""
    write_one(confine_path(root, target), content)


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


def apply(root: Path, changes: Mapping[str, bytes | str | None]) -> list[str]:
    """Write (bytes/str) or delete (None) each relative path under `root`, all or nothing."""
    if not changes:
        return []
    targets = {rel: confine(root, rel) for rel in sorted(changes)}
    staged: dict[str, Path] = {}
    try:
        for rel, target in targets.items():
            data = changes[rel]
            if data is not None:
                staged[rel] = _stage(target, data.encode("utf-8") if isinstance(data, str) else data)
        journal = _journal(root, targets, staged)
        _write_journal(root, journal)
    except BaseException as exc:
        _discard(staged.values())
        if isinstance(exc, OSError):
            raise WriteError(_describe(exc, Path(exc.filename or root))) from exc
        raise
    try:
        _swap(root, targets, staged, journal)
    except BaseException as exc:
        recover(root)
        _discard(staged.values())
        if isinstance(exc, OSError):
            raise WriteError(_describe(exc, Path(exc.filename or root))) from exc
        raise
    _finish(root, journal)
    for rel, target in targets.items():
        if changes[rel] is None:
            with contextlib.suppress(OSError):
                target.parent.rmdir()  # an emptied runtime directory goes too
    return list(targets)


def _journal(root: Path, targets: dict[str, Path], staged: dict[str, Path]) -> list[dict]:
    """One entry per target: its backup's name and the identities of the old and the new file (what recover may act on)."""
    journal: list[dict] = []
    for rel, target in targets.items():
        backup = _backup_of(target)
        if os.path.lexists(backup):
            backup.unlink()  # a stale (or planted) file of that name is never our backup: ours is made below
        old = _identity(target)
        journal.append(
            {
                "target": rel,
                "backup": backup.relative_to(root).as_posix() if old else None,
                "old": old,  # the backup must be this very file to be put back
                "new": _identity(staged[rel]) if rel in staged else None,  # a new target must be this file to be removed
            }
        )
    return journal


def _swap(root: Path, targets: dict[str, Path], staged: dict[str, Path], journal: list[dict]) -> None:
    """Each old file linked to its backup, then the staged file renamed over it (or the target removed)."""
    for entry in journal:
        target = targets[entry["target"]]
        if entry["backup"]:
            os.link(target, root / entry["backup"])  # the old content stays reachable until the end
        if entry["target"] in staged:
            os.replace(staged[entry["target"]], target)
        elif target.exists():
            target.unlink()


def write_one(target: Path, content: bytes | str) -> None:
    """One file, atomically: staged beside it, then renamed over it. No journal: one rename is
    already all or nothing, and writers of different files in one directory (parallel `lock`
    jobs) must not share one journal there."""
    try:
        staged = _stage(target, content.encode("utf-8") if isinstance(content, str) else content)
    except OSError as exc:
        raise WriteError(_describe(exc, target)) from exc
    try:
        os.replace(staged, target)
    except BaseException as exc:  # an interrupt too: no staged file is left behind
        _discard([staged])
        if isinstance(exc, OSError):
            raise WriteError(_describe(exc, target)) from exc
        raise


def write_output(path: Path, content: bytes | str) -> None:
    """A file the user named (`sbom -o`, `refresh --changelog`, `build --sbom-dir`), written as tools write one.

    A symlink is followed. A regular file or a new path is replaced atomically (write_one); a FIFO or
    a character device is opened and written into, like `tee` (renaming over /dev/null would replace
    the system's); a FIFO nobody reads fails at once instead of hanging. Anything else is refused."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    real = Path(os.path.realpath(path))
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise WriteError(_describe(exc, path)) from exc
    if mode is None or stat.S_ISREG(mode):
        write_one(real, data)
    elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        _write_into(path, real, data, fifo=stat.S_ISFIFO(mode))
    else:
        kind = (
            "a directory" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode) else "a block device" if stat.S_ISBLK(mode) else "not a file"
        )
        raise InputError(f"cannot write {path}: it is {kind}; name a file, a FIFO or a character device")


def _write_into(path: Path, real: Path, data: bytes, *, fifo: bool) -> None:
    try:
        fd = os.open(real, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC | (os.O_NONBLOCK if fifo else 0))
    except OSError as exc:
        if fifo and exc.errno == errno.ENXIO:
            raise WriteError(f"cannot write {path}: no process reads the FIFO (start its reader first)") from exc
        raise WriteError(_describe(exc, path)) from exc
    try:
        os.set_blocking(fd, True)  # a reader is there: wait for it as it drains the pipe
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        why = f"cannot write {path}: the process reading the FIFO went away" if exc.errno == errno.EPIPE else _describe(exc, path)
        raise WriteError(why) from exc
    finally:
        os.close(fd)


def _discard(paths: Iterable[Path]) -> None:
    for tmp in paths:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _backup_of(target: Path) -> Path:
    return target.with_name(f".{target.name}{BAK_SUFFIX}")


def _identity(path: Path) -> list[int] | None:
    """Which file this is (device, inode, size, mtime): what a journal checks before touching it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def journal_path(root: Path) -> Path:
    """The journal of the tree at `root`: in the cache, named by the sha256 of its real path."""
    try:
        base = cache_root()
    except RuntimeError as exc:  # no HOME
        raise WriteError("no cache directory for the journal: set XDG_CACHE_HOME") from exc
    return base / "journals" / f"{hashlib.sha256(os.fsencode(root.resolve())).hexdigest()}.json"


def _write_journal(root: Path, journal: list[dict]) -> None:
    path = journal_path(root)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = _stage(path, json.dumps({"tree": str(root.resolve()), "entries": journal}, indent=1).encode())
    except OSError as exc:
        raise WriteError(f"cannot write the journal {path}: {exc.strerror or exc} (set XDG_CACHE_HOME to a writable directory)") from exc
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _finish(root: Path, journal: list[dict]) -> None:
    journal_path(root).unlink(missing_ok=True)
    for entry in journal:
        if entry["backup"]:
            with contextlib.suppress(FileNotFoundError):
                (root / entry["backup"]).unlink()


def recover(root: Path) -> None:
    """Undo a swap that did not finish (a crash, a kill -9, a full disk), then clear staged files."""
    try:
        path = journal_path(root)
        text = path.read_bytes()
    except (WriteError, FileNotFoundError):
        text = None
    if text is not None:
        try:
            doc = json.loads(text)
        except ValueError:  # not UTF-8, not JSON: not a journal apply wrote
            doc = None
        ours = isinstance(doc, dict) and doc.get("tree") == str(root.resolve()) and isinstance(doc.get("entries"), list)
        for entry in doc["entries"] if ours else []:
            _undo(root, entry)
        path.unlink()
    _sweep(root)


def _undo(root: Path, entry: object) -> None:
    """Put one target back, only if the entry is well formed, confined, and its files are the ones apply made."""
    if not isinstance(entry, dict) or not isinstance(entry.get("target"), str):
        return
    try:
        target = confine(root, entry["target"])
    except WriteError:
        return
    backup = _backup_of(target)
    if entry.get("backup") is not None:
        if entry["backup"] == backup.relative_to(root).as_posix() and _is(backup, entry.get("old")):
            os.replace(backup, target)
    elif _is(target, entry.get("new")):
        target.unlink()


def _is(path: Path, identity: object) -> bool:
    return isinstance(identity, list) and len(identity) == 4 and _identity(path) == identity


def _sweep(root: Path) -> None:
    """Delete staged and backup files a killed run left, two directories deep: regular files only, no
    symlink followed, nothing under `.git/`."""
    top = len(root.parts)
    for here, dirs, files in os.walk(root, followlinks=False):
        depth = len(Path(here).parts) - top
        dirs[:] = [] if depth >= 2 else [d for d in dirs if d.casefold() != ".git"]
        for name in files:
            if name.endswith((TMP_SUFFIX, BAK_SUFFIX)):
                path = os.path.join(here, name)
                with contextlib.suppress(OSError):
                    if stat.S_ISREG(os.lstat(path).st_mode):
                        os.unlink(path)
