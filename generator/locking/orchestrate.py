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
from typing import Any

from .. import app_requirements, fileset, readfile
from ..errors import InputError
from ..http import public_url
from ..schedule import Runtime, Schedule
from . import buildlock
from .index import Index
from .lockfile import LOCK_MARK, dump_wheels, header, parse_lock, read_header, requirement_lines, wheel_list, wheels_match
from .resolvers import Resolver, choose
from .target import DEFAULT_INDEX, LOCKFILES, LockError, LockInputError, Target, default_inputs, inputs_hash, runtime_target


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


def _write(within: Path | Target, path: Path, text: str) -> None:
    """Atomically, inside the lock's tree (a `lockfiles` symlinked out of it, or to `.git/`, is refused)."""
    if isinstance(within, Target):
        within = within.tree or within.src.parent
    fileset.write_in(within, path, text)


def home(t: Target) -> tuple[Path, str]:
    """The directory a lock's files must stay in, symlinks resolved (readfile.py): the app's, or the tree of lockfiles/."""
    return (t.src.parent, "the app directory") if t.kind == "app" else (t.src.parent.parent, "the tree")


def shown(t: Target, path: Path) -> str:
    return path.name if t.kind == "app" else f"{LOCKFILES}/{path.name}"


def _read_text(t: Target, path: Path) -> str:
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
    in_text = _read_text(t, t.src)  # a link out of its directory, a FIFO: refused here, before any resolver
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
    in_text = _read_text(t, t.src)
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
    _write(t, t.out, text)
    written = [t.out]
    if wheels is not None and t.wheels is not None:
        _write(t, t.wheels, wheels)
        written.append(t.wheels)
    if build is not None:
        _write(t, buildlock.path_for(t.out), build)
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
    _write(t, path, build)
    return Outcome(t.key, Status.BUILD, f"wrote {path.name} from {t.out.name}", time.monotonic() - start, [path])


def refresh_wheels(t: Target, index: str) -> Outcome:
    """Rewrite a current lock's wheels.json from the lock (no resolver runs)."""
    start = time.monotonic()
    assert t.wheels is not None
    text = _read_lock(t, t.out)
    _write(t, t.wheels, dump_wheels(wheel_list(text, Index(index), t.python, t.glibc)))
    return Outcome(t.key, Status.WHEELS, f"rewrote {t.wheels.name} from the lock", time.monotonic() - start, [t.wheels])


def _short(made_by: str) -> str:
    return made_by.split(" running ")[0].split(" (`")[0] if made_by else "?"


# --- runtime locks ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    outcomes: list[Outcome]
    regenerated: list[str] = field(default_factory=list)  # files that read the locks, rewritten after them

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
    regenerate: bool = True,
) -> RunResult:
    """Lock every selected runtime whose inputs changed (all with --upgrade/--force), in parallel.

    One progress line per runtime as it finishes; a failure is reported and the others go on. With
    `regenerate`, the files that read the locks (runtimes.json, Dockerfiles) follow whatever was written.
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
            report(Outcome(t.key, Status.UP_TO_DATE, _short(why)))
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
    result = RunResult(outcomes)
    if regenerate and (result.written or created):
        from .. import render

        result.regenerated = render.apply(render.plan(schedule, root))
    return result


def _create_inputs(root: Path, runtimes: list[Runtime], echo: Callable[[str], None]) -> list[Path]:
    """Write the default lockfiles/<id>.in of each runtime that has none; the files written."""
    created = []
    for r in runtimes:
        src = root / LOCKFILES / f"{r.id}.in"
        if not src.exists():
            _write(root, src, default_inputs(r))
            created.append(src)
            echo(f"{r.id:<20} wrote {LOCKFILES}/{src.name} (the default tool set for Python {r.minor}; commit it)")
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
        d = root / LOCKFILES
        for p in sorted(d.glob("*")) if d.is_dir() else []:
            rid = p.name.split(".", 1)[0]
            if p.name.endswith((".in", ".txt", ".wheels.json")) and rid not in known:
                problems.append(f"extra: {p.relative_to(root).as_posix()} (no runtime {rid} in the schedule)")
    return problems


def relock_runtimes(root: Path, runtime_ids: list[str], *, index: str = DEFAULT_INDEX) -> None:
    """Lock these runtimes of the tree at `root` (progress on stderr), all or nothing: LockError names each failure."""
    from .. import schedule as schedule_mod

    if not runtime_ids:
        return
    sched = schedule_mod.load(root / "schedule.yaml")
    ids = [i for i in runtime_ids if i in sched.runtimes]
    result = lock_runtimes(sched, root, ids, index=index, echo=lambda line: print(line, file=sys.stderr), regenerate=False)
    if result.failed:
        raise LockError("relock failed: " + "; ".join(f"{o.key}: {o.detail}" for o in result.failed))


# --- app locks -------------------------------------------------------------------------------------


class AppLockError(InputError):
    """The app directory cannot be locked as it is (bad input: exit 2)."""


@dataclass
class AppLock:
    target: Target
    converted: bool  # requirements.in is to be made from an unpinned requirements.txt
    warnings: list[str]

    @property
    def where(self) -> str:
        return f"runtime {self.target.runtime_id} (CPython {self.target.python})"


def app_target(app_dir: Path, schedule: Schedule, on: Any, config: Path | None = None) -> AppLock:
    """The lock of an app: its runtime from app.yaml, its requirements.in (or an unpinned requirements.txt)."""
    from .. import appyaml

    if not app_dir.is_dir():
        raise AppLockError(f"{app_dir}: not a directory")
    _, doc = appyaml.load_config(app_dir, config)  # --config, else $GAE_APPLICATION_YAML_PATH, else app.yaml: as `app` reads it
    res = appyaml.resolve(doc, schedule, on)
    r = res.runtime
    req_in, req_txt = app_dir / "requirements.in", app_dir / "requirements.txt"
    converted = not os.path.lexists(req_in)  # a dangling link or a FIFO is there: refused by the reader below
    if converted and not os.path.lexists(req_txt):
        raise AppLockError(f"{app_dir}: no requirements.in or requirements.txt to lock")
    src = req_txt if converted else req_in
    # the reader `app` uses: nothing outside the app is read, or echoed in an error
    app_requirements.read(app_dir, src.name, app_requirements.LOCK)
    if converted:
        text = app_requirements.decode(req_txt, req_txt.name)
        if LOCK_MARK in text[:4096]:
            raise AppLockError(
                f"{req_txt} was written by `python -m generator lock-app` but {req_in.name} is gone; "
                "restore it (it holds the app's top-level requirements)"
            )
        if "--hash=" in text:
            raise AppLockError(f"{req_txt} is already hash-locked; put the app's top-level requirements in {req_in.name} and lock that")
    t = Target(
        kind="app",
        key=str(app_dir),
        runtime_id=r.id,
        python=r.version,
        os_id=r.os_id,
        glibc=r.glibc,
        src=req_in,
        out=req_txt,
        wheels=None,
        relock="python -m generator lock-app <this directory>",
        tree=app_dir,
    )
    return AppLock(t, converted, list(res.warnings))


def check_app(plan: AppLock, index: str = DEFAULT_INDEX) -> tuple[Freshness, str]:
    """An app lock's freshness; an app still to be converted is stale."""
    if plan.converted:
        return Freshness.STALE, f"{plan.target.src.name} is not yet written from requirements.txt"
    return state(plan.target, index)


def lock_app(
    plan: AppLock,
    *,
    index: str = DEFAULT_INDEX,
    upgrade: bool = False,
    force: bool = False,
    tool: str = "auto",
    interpreters: dict[str, str] | None = None,
) -> Outcome:
    """Lock an app's requirements.in (made from an unpinned requirements.txt first, if need be)."""
    t = plan.target
    fresh = Freshness.MISSING
    if plan.converted:
        _write(t, t.src, _read_text(t, t.out))  # as UTF-8, whatever pip-readable encoding requirements.txt had
    else:
        fresh, why = state(t, index)
        if fresh is Freshness.OK and not (upgrade or force):
            return Outcome(t.key, Status.UP_TO_DATE, _short(why))
    start = time.monotonic()
    try:
        if fresh is Freshness.STALE_BUILD and not (upgrade or force):
            return refresh_build(t, index, tool=tool, interpreters=interpreters)
        return make_lock(t, index, upgrade=upgrade, tool=tool, interpreters=interpreters)
    except LockError as exc:
        if plan.converted:
            t.src.unlink(missing_ok=True)  # leave the app as it was
        return Outcome(t.key, Status.FAILED, str(exc), time.monotonic() - start)


# --- an app's OS packages: apt-packages.txt → apt-packages.lock.json (generator/app_ospkgs.py) -------


def app_os_target(app_dir: Path, schedule: Schedule, on: Any, config: Path | None = None) -> Any:
    """The app's apt-packages.txt (read and checked now: bad input exits 2 before anything is written), for the runtime its app.yaml selects."""
    from .. import app_ospkgs, appyaml

    if not app_dir.is_dir():
        raise AppLockError(f"{app_dir}: not a directory")
    _, doc = appyaml.load_config(app_dir, config)  # the one rule: the runtime `app` builds for
    return app_ospkgs.plan(app_dir, appyaml.resolve(doc, schedule, on).runtime)


def has_requirements(app_dir: Path) -> bool:
    return os.path.lexists(app_dir / "requirements.in") or os.path.lexists(app_dir / "requirements.txt")
