"""What several commands share: options, printing, and the runtime a command was given."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

import click

from generator.core.errors import InputError

if TYPE_CHECKING:  # annotations only: `--help` and click's parsing need no schedule
    from generator.schedule.runtimes import Runtime, Schedule


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date:
    if value is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date written YYYY-MM-DD") from exc


date_option = click.option("--date", "on", callback=_date, metavar="YYYY-MM-DD", help="Judge support status as of this day (default: today).")


# Control characters (C0 but the newline, DEL, C1), bidi and zero-width marks, line separators, lone
# surrogates: text read from a file can hold them, and raw on a terminal they move the cursor, recolour
# or reorder what follows, or forge a line. The CLI shows each as an escape; a newline stays a line break.
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")


def shown(text: str) -> str:
    """`text` as the terminal may print it: \\x1b, \\u202e, … instead of the characters themselves."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


def echo(text: str = "", err: bool = False, nl: bool = True) -> None:
    """click.echo for any line that may carry text from a file (every message the CLI writes for a person)."""
    click.echo(shown(text), err=err, nl=nl)


def runtime_of(sched: Schedule, runtime_id: str) -> Runtime:
    """A runtime of the schedule by ID; an unknown one exits 2 naming the choices."""
    if runtime_id not in sched.runtimes:
        raise InputError(f"unknown runtime {runtime_id!r}; valid choices: {', '.join(sched.runtimes)}")
    return sched.runtimes[runtime_id]
