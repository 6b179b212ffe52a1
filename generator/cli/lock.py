"""The `lock` and `lock-app` commands: hash-locked tool and app requirements (generator/locking)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from generator.cli.options import date_option, echo
from generator.schedule import runtimes as schedule_mod

if TYPE_CHECKING:  # imported where used, so `lock --check` stays fast
    from generator.app.ospkgs import AppOsRequest


def _lock_options(f):
    """Options shared by `lock` and `lock-app`."""
    f = click.option(
        "--interpreter",
        "interpreters",
        multiple=True,
        metavar="X.Y=PATH",
        help="Use this CPython for Python X.Y (repeatable; default: found in pyenv, on PATH, or the host).",
    )(f)
    f = click.option(
        "--tool",
        type=click.Choice(["auto", "pip-compile", "uv", "pip-report"]),
        default="auto",
        show_default=True,
        help="Force a resolver (only where it is correct: pip-compile still needs an interpreter of the target's minor).",
    )(f)
    f = click.option(
        "--index-url", default="https://pypi.org/simple", show_default=True, metavar="URL", help="The package index to resolve against."
    )(f)
    f = click.option("--force", is_flag=True, help="Relock even if the inputs did not change (existing pins are kept where they still fit).")(f)
    f = click.option("--upgrade", is_flag=True, help="Re-resolve to the newest allowed versions, ignoring the existing pins.")(f)
    return click.option("--check", is_flag=True, help="Write nothing; exit 1 listing every stale or missing lock.")(f)


def _interpreter_map(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        minor, sep, path = v.partition("=")
        if not sep or not path or not minor.replace(".", "").isdigit() or minor.count(".") != 1:
            raise click.BadParameter(f"{v!r} is not X.Y=PATH", param_hint="--interpreter")
        out[minor] = path
    return out


@click.command()
@click.argument("runtime_ids", nargs=-1, metavar="[RUNTIME_ID]...")
@_lock_options
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Runtimes locked at once (default: the CPU count).")
@click.pass_obj
def lock(
    schedule_path: Path | None,
    runtime_ids: tuple[str, ...],
    check: bool,
    upgrade: bool,
    force: bool,
    index_url: str,
    tool: str,
    interpreters: tuple[str, ...],
    jobs: int | None,
) -> None:
    """Lock each runtime's tools (lockfiles/<id>.in → .txt + .wheels.json) for its Python; skip unchanged ones."""
    from generator import locking

    sched = schedule_mod.load_given(schedule_path)  # a problem in the schedule or its lock exits 2
    root = sched.path.resolve().parent
    given = _interpreter_map(interpreters)
    if check:
        problems = locking.check_runtimes(sched, root, runtime_ids, index=index_url)
        if not problems:
            echo(f"locks are up to date ({len(runtime_ids or sched.runtimes)} runtimes)")
            return
        for p in problems:
            echo(p, err=True)
        echo("locks are out of date: run `python -m generator lock`", err=True)
        sys.exit(1)
    from generator.core import fileset

    with fileset.exclusive(root):  # one run per tree: a concurrent generate or lock waits
        result = locking.lock_runtimes(
            sched, root, runtime_ids, index=index_url, upgrade=upgrade, force=force, jobs=jobs, tool=tool, interpreters=given, echo=echo
        )
        regenerated: list[str] = []
        if result.written or result.created:  # the files that read the locks follow them
            from generator.images import render

            regenerated = render.apply(render.plan(sched, root))
    for rel in regenerated:
        echo(f"wrote {rel}")
    echo(result.summary())
    if result.failed:
        echo(f"error: {len(result.failed)} lock(s) failed: {', '.join(o.key for o in result.failed)}", err=True)
        sys.exit(1)


@click.command(name="lock-app")
@click.argument("app_dir", type=click.Path(path_type=Path, file_okay=False))
@_lock_options
@click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False), help="app.yaml to read (default: $GAE_APPLICATION_YAML_PATH, else APP_DIR/app.yaml)."
)
@click.option(
    "--keyring",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="FLEX_PYTHON_UBUNTU_KEYRING",
    help="Ubuntu's archive keyring, to verify the indices apt-packages.txt is resolved from "
    "(default: /usr/share/keyrings/ubuntu-archive-keyring.gpg).",
)
@date_option
@click.pass_obj
def lock_app(
    schedule_path: Path | None,
    app_dir: Path,
    check: bool,
    upgrade: bool,
    force: bool,
    index_url: str,
    tool: str,
    interpreters: tuple[str, ...],
    config: Path | None,
    keyring: Path | None,
    on: dt.date,
) -> None:
    """Lock an app's requirements.in (or unpinned requirements.txt) into a hash-locked requirements.txt for its runtime,
    and its apt-packages.txt, if any, into apt-packages.lock.json."""
    from generator import locking
    from generator.app import locks as app_locks

    sched = schedule_mod.load_given(schedule_path)  # a problem in the schedule or its lock exits 2
    given = _interpreter_map(interpreters)
    os_plan = app_locks.app_os_target(app_dir, sched, on, config)  # apt-packages.txt: bad input exits 2 before anything is written
    has_apt = os_plan.requested is not None
    os_stale = not has_apt and _lock_app_os(os_plan, check, False, keyring)  # only says so when a lock outlived its apt-packages.txt
    plan = app_locks.app_target(app_dir, sched, on, config) if app_locks.has_requirements(app_dir) or not has_apt else None  # bad input: exit 2

    if has_apt:  # before the requirements: a package apt cannot install stops lock-app before any lock is written
        os_stale = _lock_app_os(os_plan, check, upgrade or force, keyring)

    if plan is None:  # OS packages only
        sys.exit(1 if os_stale else 0)
    for warning in plan.warnings:
        echo(f"warning: {warning}", err=True)
    t = plan.target
    if check:
        fresh, why = app_locks.check_app(plan, index_url)
        if fresh is locking.Freshness.OK:
            echo(f"{t.out} is up to date for {plan.where}")
            sys.exit(1 if os_stale else 0)
        stale = locking.buildlock.path_for(t.out) if fresh is locking.Freshness.STALE_BUILD else t.out
        echo(f"{fresh.label}: {stale} ({why})", err=True)
        sys.exit(1)
    if plan.converted:
        echo(f"{t.out.name} is not hash-locked: keeping it as {t.src.name}, the input of the lock")
    outcome = app_locks.lock_app(plan, index=index_url, upgrade=upgrade, force=force, tool=tool, interpreters=given)
    if outcome.status is locking.Status.UP_TO_DATE:
        echo(f"{t.out} is up to date for {plan.where} ({outcome.detail})")
    elif outcome.status is locking.Status.LOCKED:
        echo(f"wrote {t.out} for {plan.where} with {outcome.detail} in {outcome.seconds:.1f}s")
        echo(f"wrote {locking.buildlock.path_for(t.out)} (the build requirements of its sdists)")
    elif outcome.status is locking.Status.BUILD:
        echo(f"{t.out} is up to date for {plan.where}; {outcome.detail} in {outcome.seconds:.1f}s")
    else:
        echo(f"error: locking {t.src} for {plan.where} failed: {outcome.detail}", err=True)
        echo(f"{t.out} is untouched", err=True)
        sys.exit(1)


def _lock_app_os(plan: AppOsRequest, check: bool, force: bool, keyring: Path | None) -> bool:
    """lock-app's step for apt-packages.txt (generator/app/ospkgs.py): one line; True when --check finds the lock stale."""
    from generator.app import ospkgs as app_ospkgs

    status, why = app_ospkgs.state(plan)
    if status == "none":
        return False
    if status == "extra":
        echo(f"stale: {plan.out} ({why})" if check else f"warning: {plan.out} is stale ({why})", err=True)
        return check
    if check:
        if status == "ok":
            echo(f"{plan.out} is up to date for {why}")
            return False
        echo(f"{status}: {plan.out} ({why})", err=True)
        return True
    assert plan.requested is not None  # without apt-packages.txt the status is "none" or "extra", handled above
    made = app_ospkgs.lock(plan, keyring_path=keyring, force=force)
    n = len(plan.requested)
    if made is None:
        echo(f"{plan.out} is up to date for runtime {plan.runtime.id} ({n} package(s) requested)")
    else:
        debs = len(made.debs)
        echo(f"wrote {plan.out} for runtime {plan.runtime.id}: {n} package(s) requested, {debs} .deb(s) in the closure beyond the image's")
    return False
