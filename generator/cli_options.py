"""Options shared by several commands (cli.py and the command modules it registers)."""

from __future__ import annotations

import datetime as dt

import click


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date:
    if value is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date written YYYY-MM-DD") from None


date_option = click.option("--date", "on", callback=_date, metavar="YYYY-MM-DD", help="Judge support status as of this day (default: today).")
