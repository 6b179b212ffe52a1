"""The `resolve` command: which runtime an app.yaml selects (generator/app/appyaml.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from generator.cli.options import date_option, echo
from generator.schedule.runtimes import load_given


@click.command()
@click.argument("app_yaml", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (runtime_id, python_version, operating_system, image, status, …).")
@date_option
@click.pass_obj
def resolve(schedule_path: Path | None, app_yaml: Path, as_json: bool, on: dt.date) -> None:
    """Which runtime an app.yaml selects, by the flexible environment's rules."""
    from generator.app import appyaml

    sched = load_given(schedule_path)  # a problem in the schedule or its lock exits 2
    res = appyaml.resolve(appyaml.load(app_yaml, str(app_yaml)), sched, on)  # AppYamlError: exit 2 through _Group
    for warning in res.warnings:
        echo(f"warning: {warning}", err=True)
    if as_json:
        echo(json.dumps(res.as_json(), indent=2, sort_keys=True))
        return
    r = res.runtime
    echo(f"{r.id}: Python {r.version} on {r.os_id} ({res.status}, end of support {r.end_of_support.isoformat()})")
    echo(f"  image:       {r.image}")
    echo(f"  selected by: {res.selected_by}")
