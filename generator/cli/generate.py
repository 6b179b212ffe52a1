"""The `generate` command: every runtime's files from the schedule (generator/images/render.py), or `--check`."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import click

from generator.cli.options import echo
from generator.schedule.runtimes import Schedule, load_given


@click.command()
@click.option("--check", is_flag=True, help="Write nothing; exit 1 listing every stale, missing or extra generated file.")
@click.pass_obj
def generate(schedule_path: Path | None, check: bool) -> None:
    """Render every runtime's files from the schedule (deterministic, atomic)."""
    from generator.core import fileset
    from generator.images import render

    sched = load_given(schedule_path)  # a problem in the schedule or its lock exits 2
    root = sched.path.resolve().parent
    # One run per tree at a time; a run killed mid-swap is rolled back first (even by --check).
    with fileset.exclusive(root):
        _generate(sched, root, check, render)


def _generate(sched: Schedule, root: Path, check: bool, render: ModuleType) -> None:
    plan = render.plan(sched, root)
    if check:
        if plan.clean:
            echo(f"generated files are up to date ({len(plan.files)} files, {len(sched.runtimes)} runtimes)")
            return
        for label, items in (("stale", plan.changed), ("missing", plan.missing), ("extra", plan.extra)):
            for rel in items:
                echo(f"{label}: {rel}", err=True)
        echo("generated files are out of date: run `python -m generator generate`", err=True)
        sys.exit(1)
    touched = render.apply(plan)
    for rel in touched:
        echo(f"wrote {rel}")
    leftover = [rel for rel in plan.extra if (root / rel).exists()]
    for rel in leftover:
        echo(f"warning: {rel} is not generated from the schedule; remove it by hand", err=True)
    echo(f"{len(touched)} file(s) changed, {len(plan.files) - len(touched)} unchanged, {len(sched.runtimes)} runtimes")
