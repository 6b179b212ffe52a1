"""The `list` command: the schedule as a table or JSON, with each runtime's status on a date."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TypedDict

import click

from generator.cli.options import date_option, echo
from generator.schedule.runtimes import load_given


class _Row(TypedDict):
    """One runtime as `list --json` prints it (keys sorted on output)."""

    default: bool
    end_of_support: str
    image: str
    operating_system: str
    python_version: str
    runtime_id: str
    status: str
    style: str


@click.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@date_option
@click.pass_obj
def list_(schedule_path: Path | None, as_json: bool, on: dt.date) -> None:
    """The schedule as a table: runtime, OS, Python, status, end of support."""
    sched = load_given(schedule_path)  # a problem in the schedule or its lock exits 2
    rows: list[_Row] = [
        {
            "default": r.default_for_os or r.legacy_default,
            "end_of_support": r.end_of_support.isoformat(),
            "image": r.image,
            "operating_system": r.os_id,
            "python_version": r.version,
            "runtime_id": r.id,
            "status": sched.status(r, on),
            "style": r.style,
        }
        for r in sched.runtimes.values()
    ]
    if as_json:
        echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    headers = ["RUNTIME", "OS", "PYTHON", "STATUS", "END OF SUPPORT"]
    table = [
        [r["runtime_id"] + (" *" if r["default"] else ""), r["operating_system"], r["python_version"], r["status"], r["end_of_support"]] for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *table)]
    for line in [headers, *table]:
        echo("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip())
    echo(f"(* default; status as of {on.isoformat()})")
