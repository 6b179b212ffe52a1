"""The `matrix` command: the runtimes to (re)build as a GitHub Actions matrix (generator/refresh/rebuild_matrix.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from generator.cli.options import echo
from generator.schedule.runtimes import load_given


@click.command()
@click.option("--changed-since", metavar="GIT_REF", help="Only runtimes whose input hash differs from this git ref's.")
@click.option("--json", "as_json", is_flag=True, help="Print the GitHub Actions matrix as one line of JSON.")
@click.pass_obj
def matrix(schedule_path: Path | None, changed_since: str | None, as_json: bool) -> None:
    """The runtimes to (re)build, as a GitHub Actions matrix ({"include": [...]})."""
    from generator.refresh import rebuild_matrix

    sched = load_given(schedule_path)  # a problem in the schedule or its lock exits 2
    entries = rebuild_matrix.changed_with_kind(sched.path.resolve().parent, changed_since)
    value = rebuild_matrix.github_matrix(entries)
    if as_json:
        echo(json.dumps(value, sort_keys=True, separators=(",", ":")))
        return
    for job in value["include"]:
        echo(f"{job['runtime']:<20} Python {job['python']:<8} {job['os']:<9} {job['build']:<10} {job['input_hash']}")
    kinds = [job["build"] for job in value["include"]]
    counts = f"{kinds.count(rebuild_matrix.REBUILD)} to rebuild, {kinds.count(rebuild_matrix.REASSEMBLE)} to re-assemble"
    echo(f"{len(value['include'])} runtime(s) to build ({counts})" + (f", changed since {changed_since}" if changed_since else ""))
