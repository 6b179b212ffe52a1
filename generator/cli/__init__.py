"""Command line: `python -m generator COMMAND`. Thin: parse, call a module, print, pick an exit code.

Exit codes: 0 success; 1 `--check` found drift or a job failed; 2 bad input (schedule, app.yaml,
arguments). Errors are `GeneratorError`s (generator/core/errors.py), printed by `_Group` in one place.
"""

from __future__ import annotations

import os
import subprocess
import traceback
from pathlib import Path
from typing import Any

import click

from generator import __version__, interrupted
from generator.cli import app, build, generate, lock, matrix, refresh, resolve, run, sbom, verify
from generator.cli import list as list_cmd
from generator.cli.options import echo
from generator.core.errors import GeneratorError


class _Group(click.Group):
    """The one place a failure becomes `error: …` lines and an exit code, never a traceback.

    A GeneratorError carries its own message and code. What should have been one and was not (an
    OSError from a full disk or a read-only tree, a tool that could not run) still ends as one line
    and exit 1. GENERATOR_DEBUG=1 shows the traceback a bug report needs, with the chain of causes:
    before a GeneratorError's lines (same exit code), or by re-raising anything else. Every line
    goes through cli_options.echo: a control character read from a file is shown as an escape.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:  # parsing the arguments, printing --help: click's own "Aborted!" would be exit 1
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:
            interrupted()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GeneratorError as exc:
            if os.environ.get("GENERATOR_DEBUG"):
                echo("".join(traceback.format_exception(exc)), err=True, nl=False)
            for line in exc.lines():
                echo(f"error: {line}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            interrupted(" (files written as a set are rolled back by the next run)")
        except BrokenPipeError:
            ctx.exit(1)  # the reader went away (`list | head`): nothing left to say to it
        except Exception as exc:
            if os.environ.get("GENERATOR_DEBUG"):
                raise
            echo(f"error: {last_resort(exc)}", err=True)
            ctx.exit(1)


def last_resort(exc: BaseException) -> str:
    """One line for a failure that did not arrive as a GeneratorError."""
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, subprocess.SubprocessError):
        return f"a tool failed: {exc}"
    if isinstance(exc, (RecursionError, MemoryError)):
        return f"the input is too large or too deeply nested to process ({type(exc).__name__})"
    return f"internal error, a bug: {type(exc).__name__}: {exc} (GENERATOR_DEBUG=1 shows the traceback)"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="generator")
@click.option(
    "--schedule",
    "schedule_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="GENERATOR_SCHEDULE",
    help="The schedule to read (default: ./schedule.yaml, else this checkout's). Generated files go beside it.",
)
@click.pass_context
def main(ctx: click.Context, schedule_path: Path | None) -> None:
    """Reproducible image definitions for the App Engine flexible environment's Python runtime."""
    ctx.obj = schedule_path


# One module per command (generator/cli/<command>.py), registered here in `--help`'s order.
for _command in (
    resolve.resolve,
    generate.generate,
    list_cmd.list_,
    build.build,
    lock.lock,
    lock.lock_app,
    app.app,
    run.run,
    refresh.refresh,
    sbom.sbom,
    sbom.publish_sbom,
    verify.sign,
    verify.verify,
    matrix.matrix,
):
    main.add_command(_command)
