"""App locks: an app's requirements.in (or unpinned requirements.txt) → its hash-locked requirements.txt,
and its apt-packages.txt → apt-packages.lock.json, for the runtime its app.yaml selects.

The locking itself is generator/locking's, the same as the runtimes' tool locks; this module only
knows what an app directory holds and which runtime it runs on.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.app import appyaml
from generator.app import ospkgs as app_ospkgs
from generator.core.errors import InputError
from generator.locking import requirements as app_requirements
from generator.locking.lockfile import LOCK_MARK
from generator.locking.orchestrate import Freshness, Outcome, Status, make_lock, read_input, refresh_build, short_why, state, write_in_tree
from generator.locking.target import DEFAULT_INDEX, LockError, Target
from generator.schedule.runtimes import Schedule

# --- app locks -------------------------------------------------------------------------------------


class AppRequirementsError(InputError):
    """The app directory cannot be locked as it is (bad input: exit 2)."""


@dataclass
class AppRequirementsTarget:
    target: Target
    converted: bool  # requirements.in is to be made from an unpinned requirements.txt
    warnings: list[str]

    @property
    def where(self) -> str:
        return f"runtime {self.target.runtime_id} (CPython {self.target.python})"


def app_target(app_dir: Path, schedule: Schedule, on: Any, config: Path | None = None) -> AppRequirementsTarget:
    """The lock of an app: its runtime from app.yaml, its requirements.in (or an unpinned requirements.txt)."""
    if not app_dir.is_dir():
        raise AppRequirementsError(f"{app_dir}: not a directory")
    _, doc = appyaml.load_config(app_dir, config)  # --config, else $GAE_APPLICATION_YAML_PATH, else app.yaml: as `app` reads it
    res = appyaml.resolve(doc, schedule, on)
    r = res.runtime
    req_in, req_txt = app_dir / "requirements.in", app_dir / "requirements.txt"
    converted = not os.path.lexists(req_in)  # a dangling link or a FIFO is there: refused by the reader below
    if converted and not os.path.lexists(req_txt):
        raise AppRequirementsError(f"{app_dir}: no requirements.in or requirements.txt to lock")
    src = req_txt if converted else req_in
    # the reader `app` uses: nothing outside the app is read, or echoed in an error
    app_requirements.read(app_dir, src.name, app_requirements.LOCK)
    if converted:
        text = app_requirements.decode(req_txt, req_txt.name)
        if LOCK_MARK in text[:4096]:
            raise AppRequirementsError(
                f"{req_txt} was written by `python -m generator lock-app` but {req_in.name} is gone; "
                "restore it (it holds the app's top-level requirements)"
            )
        if "--hash=" in text:
            raise AppRequirementsError(f"{req_txt} is already hash-locked; put the app's top-level requirements in {req_in.name} and lock that")
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
    return AppRequirementsTarget(t, converted, list(res.warnings))


def check_app(plan: AppRequirementsTarget, index: str = DEFAULT_INDEX) -> tuple[Freshness, str]:
    """An app lock's freshness; an app still to be converted is stale."""
    if plan.converted:
        return Freshness.STALE, f"{plan.target.src.name} is not yet written from requirements.txt"
    return state(plan.target, index)


def lock_app(
    plan: AppRequirementsTarget,
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
        write_in_tree(t, t.src, read_input(t, t.out))  # as UTF-8, whatever pip-readable encoding requirements.txt had
    else:
        fresh, why = state(t, index)
        if fresh is Freshness.OK and not (upgrade or force):
            return Outcome(t.key, Status.UP_TO_DATE, short_why(why))
    start = time.monotonic()
    try:
        if fresh is Freshness.STALE_BUILD and not (upgrade or force):
            return refresh_build(t, index, tool=tool, interpreters=interpreters)
        return make_lock(t, index, upgrade=upgrade, tool=tool, interpreters=interpreters)
    except LockError as exc:
        if plan.converted:
            t.src.unlink(missing_ok=True)  # leave the app as it was
        return Outcome(t.key, Status.FAILED, str(exc), time.monotonic() - start)


# --- an app's OS packages: apt-packages.txt → apt-packages.lock.json (generator/app/ospkgs.py) -------


def app_os_target(app_dir: Path, schedule: Schedule, on: Any, config: Path | None = None) -> Any:
    """The app's apt-packages.txt (read and checked now: bad input exits 2 before anything is written), for the runtime its app.yaml selects."""
    if not app_dir.is_dir():
        raise AppRequirementsError(f"{app_dir}: not a directory")
    _, doc = appyaml.load_config(app_dir, config)  # the one rule: the runtime `app` builds for
    return app_ospkgs.plan(app_dir, appyaml.resolve(doc, schedule, on).runtime)


def has_requirements(app_dir: Path) -> bool:
    return os.path.lexists(app_dir / "requirements.in") or os.path.lexists(app_dir / "requirements.txt")
