"""Making and checking locks: which targets are stale, resolving them in parallel, all or nothing per lock.

The staleness rule is the header's inputs hash (target.py), so an unchanged matrix is skipped
without running any resolver or touching the network. Outcomes are typed (Status, Freshness); the
CLI only prints them.
"""

from __future__ import annotations

import enum
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from generator.core import fileset, paths, readfile
from generator.core.http import public_url
from generator.locking import buildlock
from generator.locking import requirements as app_requirements
from generator.locking.index import Index
from generator.locking.lockfile import dump_wheels, header, parse_lock, read_header, requirement_lines, wheel_list, wheels_match
from generator.locking.resolvers import Resolver, choose
from generator.locking.target import DEFAULT_INDEX, LockError, LockInputError, Target, default_inputs, inputs_hash, runtime_target
from generator.schedule.runtimes import Runtime, Schedule


class Status(enum.Enum):
    """What happened to one lock in a run."""

    LOCKED = "locked"
    UP_TO_DATE = "up to date"
    WHEELS = "wheels"  # only its wheels.json was rewritten, from the lock as it is
    BUILD = "build lock"  # only an app's requirements-build.lock.json was remade, from the lock as it is
    FAILED = "failed"


class Freshness(enum.Enum):
    """A lock's state, from its header alone (fast, offline)."""

    OK = "ok"
    MISSING = "missing"
    STALE = "stale"
    STALE_WHEELS = "stale wheels"  # the lock is current; its wheels.json is missing or does not match it
    STALE_BUILD = "stale build lock"  # an app lock is current; its requirements-build.lock.json is missing or not made from it

    @property
    def label(self) -> str:
        return "stale" if self in (Freshness.STALE_WHEELS, Freshness.STALE_BUILD) else self.value


@dataclass
class Outcome:
    key: str
    status: Status
    detail: str = ""
    seconds: float = 0.0
    written: list[Path] = field(default_factory=list)


def write_in_tree(within: Path | Target, path: Path, text: str) -> None:
    """Atomically, inside the lock's tree (a `lockfiles` symlinked out of it, or to `.git/`, is refused)."""
    if isinstance(within, Target):
        within = within.tree or within.src.parent
    fileset.write_in(within, path, text)


def home(t: Target) -> tuple[Path, str]:
    """The directory a lock's files must stay in, symlinks resolved (readfile.py): the app's, or the tree of lockfiles/."""
    return (t.src.parent, "the app directory") if t.kind == "app" else (t.src.parent.parent, "the tree")


def shown(t: Target, path: Path) -> str:
    return path.name if t.kind == "app" else f"{paths.LOCKFILES}/{path.name}"


def read_input(t: Target, path: Path) -> str:
    """A lock input's text (what the inputs hash covers), newlines as Python's text mode reads them.

    A UTF-8 file reads exactly as before (a BOM kept), so no existing lock turns stale; anything else
    (UTF-16 from PowerShell) is decoded by app_requirements, as pip and the resolvers decode it.
    """
    within, where = home(t)
    try:
        data = readfile.read_bytes(
            path, within=within, what="a requirements file", limit=app_requirements.MAX_BYTES, name=shown(t, path), where=where
        )
        text = data.decode("utf-8")
    except readfile.ReadError as exc:
        raise LockInputError(str(exc)) from exc
    except UnicodeDecodeError:
        try:
            text = app_requirements.decode(path, path.name, within)
        except app_requirements.RequirementsError as exc:
            raise LockInputError(str(exc)) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_lock(t: Target, path: Path) -> str:
    """A lock or wheels.json this tool wrote: strict UTF-8, inside the lock's directory."""
    within, where = home(t)
    try:
        return readfile.read_text(path, within=within, what="a lock file", limit=readfile.MAX_DATA, name=shown(t, path), where=where)
    except readfile.ReadError as exc:
        raise LockInputError(str(exc)) from exc


def _check_input(src: Path, reader: app_requirements.Reader) -> app_requirements.Requirements:
    """Read a lock input and every file it names, as app_requirements does for `app`: nothing outside its directory is read or shown."""
    try:
        return app_requirements.read(src.parent, src.name, reader)
    except app_requirements.RequirementsError as exc:
        raise LockInputError(str(exc)) from exc


def state(t: Target, index: str) -> tuple[Freshness, str]:
    """(freshness, why) of a lock; for OK, why is the header's `made by`."""
    if not os.path.lexists(t.src):
        return Freshness.MISSING, f"no input {t.src.name}"
    in_text = read_input(t, t.src)  # a link out of its directory, a FIFO: refused here, before any resolver
    if not os.path.lexists(t.out):
        return Freshness.MISSING, "not locked yet"
    fields = read_header(t.out, *home(t))
    if not fields.get("inputs"):
        return Freshness.STALE, "no lock header (not made by `python -m generator lock`)"
    if fields["inputs"] != inputs_hash(t, in_text, index):
        if fields.get("index") and fields["index"] != public_url(index):
            return Freshness.STALE, f"locked against {fields['index']}, not {public_url(index)}"
        return Freshness.STALE, f"inputs changed since it was locked ({t.src.name}, Python {t.python}, or the resolver policy)"
    if t.wheels is not None:
        if not os.path.lexists(t.wheels):
            return Freshness.STALE_WHEELS, f"{t.wheels.name} is missing"
        if not wheels_match(_read_lock(t, t.out), _read_lock(t, t.wheels)):
            return Freshness.STALE_WHEELS, f"{t.wheels.name} does not match the lock"
    if t.kind == "app":
        build = buildlock.path_for(t.out)
        doc = buildlock.load(build)
        if doc is None:
            return Freshness.STALE_BUILD, f"{build.name} is missing" + (" or unreadable" if build.exists() else "")
        if doc.get("inputs") != buildlock.target_hash(t, _read_lock(t, t.out), index):
            return Freshness.STALE_BUILD, f"{build.name} was not made from this {t.out.name} (or for this runtime and index)"
    return Freshness.OK, fields.get("made by", "")


def make_lock(t: Target, index: str, *, upgrade: bool = False, tool: str = "auto", interpreters: dict[str, str] | None = None) -> Outcome:
    """Resolve and write one lock (and its wheels.json): all or nothing."""
    start = time.monotonic()
    # no resolver is given an input that has not passed the reader (nothing outside its directory is read or shown)
    _check_input(t.src, app_requirements.LOCK_DIR if t.kind == "runtime" else app_requirements.LOCK)
    in_text = read_input(t, t.src)
    digest = inputs_hash(t, in_text, index)
    resolver = choose(t, tool, interpreters)
    fileset.confine_path(t.tree or t.src.parent, t.out)  # before a slow resolve: the lock could not be written
    with tempfile.TemporaryDirectory(prefix="flex-python-lock-") as scratch:
        made = resolver.resolve(t, index, upgrade=upgrade, scratch=Path(scratch), in_text=in_text)
    body = made.body.lstrip("\n")
    if not parse_lock(body) and requirement_lines(in_text):
        raise LockError(f"{made.tool} wrote no pins:\n{body}")
    text = header(t, made, index, digest) + body
    wheels = dump_wheels(wheel_list(text, Index(index), t.python, t.glibc)) if t.wheels is not None else None
    build = _build_lock(t, text, index, resolver) if t.kind == "app" else None  # made before anything is written
    write_in_tree(t, t.out, text)
    written = [t.out]
    if wheels is not None and t.wheels is not None:
        write_in_tree(t, t.wheels, wheels)
        written.append(t.wheels)
    if build is not None:
        write_in_tree(t, buildlock.path_for(t.out), build)
        written.append(buildlock.path_for(t.out))
    return Outcome(t.key, Status.LOCKED, made.tool, time.monotonic() - start, written)


def _build_lock(t: Target, text: str, index: str, resolver: Resolver) -> str:
    """An app lock's requirements-build.lock.json: the build requirements of every pin whose file for the runtime is an sdist."""
    files = wheel_list(text, Index(index), t.python, t.glibc, strict=False)
    return buildlock.make(t, text, files, index, resolver)


def refresh_build(t: Target, index: str, *, tool: str = "auto", interpreters: dict[str, str] | None = None) -> Outcome:
    """Remake a current app lock's requirements-build.lock.json from the lock as it is."""
    start = time.monotonic()
    build = _build_lock(t, _read_lock(t, t.out), index, choose(t, tool, interpreters))
    path = buildlock.path_for(t.out)
    write_in_tree(t, path, build)
    return Outcome(t.key, Status.BUILD, f"wrote {path.name} from {t.out.name}", time.monotonic() - start, [path])


def refresh_wheels(t: Target, index: str) -> Outcome:
    """Rewrite a current lock's wheels.json from the lock (no resolver runs)."""
    start = time.monotonic()
    assert t.wheels is not None
    text = _read_lock(t, t.out)
    write_in_tree(t, t.wheels, dump_wheels(wheel_list(text, Index(index), t.python, t.glibc)))
    return Outcome(t.key, Status.WHEELS, f"rewrote {t.wheels.name} from the lock", time.monotonic() - start, [t.wheels])


def short_why(made_by: str) -> str:
    return made_by.split(" running ")[0].split(" (`")[0] if made_by else "?"


# --- runtime locks ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    outcomes: list[Outcome]
    created: list[Path] = field(default_factory=list)  # the runtimes' .in files written first (new runtimes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is Status.FAILED]

    @property
    def written(self) -> list[Path]:
        return [p for o in self.outcomes for p in o.written]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            counts[o.status.value] = counts.get(o.status.value, 0) + 1
        return f"{len(self.outcomes)} runtime(s): " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _select(schedule: Schedule, ids: Iterable[str]) -> list[Runtime]:
    ids = list(ids)
    unknown = [i for i in ids if i not in schedule.runtimes]
    if unknown:
        raise LockInputError(f"unknown runtime {', '.join(unknown)}; valid: {', '.join(schedule.runtimes)}")
    return [schedule.runtimes[i] for i in ids] if ids else list(schedule.runtimes.values())


def _progress_line(o: Outcome, prefix: str) -> str:
    if o.status is Status.UP_TO_DATE:
        return f"{prefix} skipped: up to date ({o.detail})"
    if o.status is Status.LOCKED:
        return f"{prefix} locked with {o.detail} in {o.seconds:.1f}s"
    if o.status is Status.WHEELS:
        return f"{prefix} {o.detail} in {o.seconds:.1f}s"
    return f"{prefix} FAILED: {o.detail}\n    (the previous lock, if any, is untouched)"


def lock_runtimes(
    schedule: Schedule,
    root: Path,
    ids: Iterable[str] = (),
    *,
    index: str = DEFAULT_INDEX,
    upgrade: bool = False,
    force: bool = False,
    jobs: int | None = None,
    tool: str = "auto",
    interpreters: dict[str, str] | None = None,
    echo: Callable[[str], None] = print,
) -> RunResult:
    """Lock every selected runtime whose inputs changed (all with --upgrade/--force), in parallel.

    One progress line per runtime as it finishes; a failure is reported and the others go on. The
    files that read the locks (runtimes.json, Dockerfiles) are the caller's to regenerate.
    """
    runtimes = _select(schedule, ids)
    created = _create_inputs(root, runtimes, echo)
    targets = [runtime_target(root, r) for r in runtimes]
    width = len(str(len(targets)))
    outcomes: list[Outcome] = []

    def report(o: Outcome) -> None:
        outcomes.append(o)
        echo(_progress_line(o, f"[{len(outcomes):>{width}}/{len(targets)}] {o.key:<20}"))

    todo: list[tuple[Target, Freshness]] = []
    for t in targets:
        fresh, why = state(t, index)
        if fresh is Freshness.OK and not (upgrade or force):
            report(Outcome(t.key, Status.UP_TO_DATE, short_why(why)))
        else:
            todo.append((t, fresh))

    def work(item: tuple[Target, Freshness]) -> Outcome:
        return _lock_one(*item, index, rewrite_only=not (upgrade or force), upgrade=upgrade, tool=tool, interpreters=interpreters)

    if todo:
        import concurrent.futures  # with logging behind it: not for a no-op run

        workers = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            for fut in concurrent.futures.as_completed([pool.submit(work, item) for item in todo]):
                report(fut.result())
    order = {t.key: i for i, t in enumerate(targets)}
    outcomes.sort(key=lambda o: order[o.key])
    return RunResult(outcomes, created)


def _create_inputs(root: Path, runtimes: list[Runtime], echo: Callable[[str], None]) -> list[Path]:
    """Write the default lockfiles/<id>.in of each runtime that has none; the files written."""
    created = []
    for r in runtimes:
        src = root / paths.LOCKFILES / f"{r.id}.in"
        if not src.exists():
            write_in_tree(root, src, default_inputs(r))
            created.append(src)
            echo(f"{r.id:<20} wrote {paths.LOCKFILES}/{src.name} (the default tool set for Python {r.minor}; commit it)")
    return created


def _lock_one(
    t: Target, fresh: Freshness, index: str, *, rewrite_only: bool, upgrade: bool, tool: str, interpreters: dict[str, str] | None
) -> Outcome:
    """One runtime's lock made (or only its wheels.json rewritten); any failure is its Outcome, so the others go on."""
    start = time.monotonic()
    try:
        if fresh is Freshness.STALE_WHEELS and rewrite_only:
            return refresh_wheels(t, index)
        return make_lock(t, index, upgrade=upgrade, tool=tool, interpreters=interpreters)
    except (LockError, fileset.WriteError) as exc:
        return Outcome(t.key, Status.FAILED, str(exc), time.monotonic() - start)
    except Exception as exc:  # a bug or an I/O error: report it for this runtime, keep the others going
        return Outcome(t.key, Status.FAILED, f"{type(exc).__name__}: {exc}", time.monotonic() - start)


def check_runtimes(schedule: Schedule, root: Path, ids: Iterable[str] = (), *, index: str = DEFAULT_INDEX) -> list[str]:
    """Every problem of the selected runtimes' locks, one line each (empty: all up to date)."""
    ids = list(ids)
    problems = []
    for r in _select(schedule, ids):
        t = runtime_target(root, r)
        fresh, why = state(t, index)
        if fresh is not Freshness.OK:
            path = t.src if not t.src.is_file() else t.out
            problems.append(f"{fresh.label}: {path.relative_to(root).as_posix()} ({why})")
    if not ids:
        known = set(schedule.runtimes)
        d = root / paths.LOCKFILES
        for p in sorted(d.glob("*")) if d.is_dir() else []:
            rid = p.name.split(".", 1)[0]
            if p.name.endswith((".in", ".txt", ".wheels.json")) and rid not in known:
                problems.append(f"extra: {p.relative_to(root).as_posix()} (no runtime {rid} in the schedule)")
    return problems


def relock_runtimes(root: Path, runtime_ids: list[str], *, index: str = DEFAULT_INDEX) -> None:
    """Lock these runtimes of the tree at `root` (progress on stderr), all or nothing: LockError names each failure."""
    from generator.schedule import runtimes as schedule_mod

    if not runtime_ids:
        return
    sched = schedule_mod.load(root / paths.SCHEDULE)
    ids = [i for i in runtime_ids if i in sched.runtimes]
    result = lock_runtimes(sched, root, ids, index=index, echo=lambda line: print(line, file=sys.stderr))
    if result.failed:
        raise LockError("relock failed: " + "; ".join(f"{o.key}: {o.detail}" for o in result.failed))
