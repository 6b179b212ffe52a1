"""The `refresh` command: every pin that moved upstream, as one change (generator/refresh/update.py)."""

from __future__ import annotations

from pathlib import Path

import click

from generator.cli.options import echo
from generator.schedule import runtimes as schedule_mod


@click.command()
@click.argument("subjects", nargs=-1, metavar="[OS_ID|PYTHON_MINOR]...")
@click.option("--dry-run", is_flag=True, help="Only ask upstream and print the changelog; change nothing.")
@click.option(
    "--only",
    type=click.Choice(["os", "python", "packages", "nix"]),
    multiple=True,
    help="What to refresh (repeatable; default: os, python and packages). packages re-resolves the OS package locks"
    " in each base at today's archive state; nix updates the flake inputs (needs GitHub and Nix).",
)
@click.option("--os-base", "os_bases", metavar="OS=IMAGE", multiple=True, help="Resolve OS's packages in this image, not the pinned base.")
@click.option("--apt-archive", metavar="URL", help="The archive to read (default: each OS's apt_archive, or FLEX_PYTHON_APT_ARCHIVE).")
@click.option("--apt-source", "apt_sources", metavar="LINE", multiple=True, help="An extra `deb URL SUITE COMPONENT` line, signed by --apt-keyring.")
@click.option("--apt-keyring", "apt_keyrings", type=click.Path(path_type=Path, dir_okay=False, exists=True), multiple=True)
@click.option("--python-source", default=None, metavar="URL", help="CPython release directory (default: python.org's /ftp/python/).")
@click.option("--changelog", "changelog_path", type=click.Path(path_type=Path, dir_okay=False), help="Also write the Markdown changelog here.")
@click.option("--no-snapshots", is_flag=True, help="Do not re-record the snapshot tests (they need the test extras: pip install -e .[test]).")
@click.option(
    "--toolchain",
    is_flag=True,
    help="Move the toolchain locks too (the base interpreters compile on and its build closure): every interpreter of those OSes is rebuilt.",
)
@click.pass_obj
def refresh(
    schedule_path: Path | None,
    subjects: tuple[str, ...],
    dry_run: bool,
    only: tuple[str, ...],
    os_bases: tuple[str, ...],
    apt_archive: str | None,
    apt_sources: tuple[str, ...],
    apt_keyrings: tuple[Path, ...],
    python_source: str | None,
    changelog_path: Path | None,
    no_snapshots: bool,
    toolchain: bool,
) -> None:
    """Pin what moved upstream into the lock, relock, regenerate, update snapshots; print a changelog. All or nothing."""
    from generator.refresh import update as refresh_mod
    from generator.refresh import upstream

    path = schedule_path or schedule_mod.default_path()
    bases = dict(b.partition("=")[::2] for b in os_bases)
    if any(not k or not v for k, v in bases.items()) or len(bases) != len(os_bases):
        raise click.BadParameter("each --os-base is OS=IMAGE, once per OS", param_hint="--os-base")
    apt = refresh_mod.AptSettings(bases=bases, archive=apt_archive, extra_sources=apt_sources, keyrings=apt_keyrings, toolchain=toolchain)
    result = refresh_mod.refresh(
        path,
        only=set(only) or {"os", "python", "packages"},
        apt=apt,
        subjects=subjects,
        dry_run=dry_run,
        python_source=python_source or upstream.PYTHON_SOURCE,
        relock=refresh_mod.tool_relock,
        snapshots=not no_snapshots,
        changelog_path=changelog_path,
    )
    echo(result.log, nl=False)
    for rel in result.written:
        echo(f"wrote {rel}", err=True)
    if not dry_run:
        echo(result.summary, err=True)
