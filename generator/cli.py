"""Command line: `python -m generator COMMAND`. Thin: parse, call a module, print, pick an exit code.

Exit codes: 0 success; 1 `--check` found drift or a job failed; 2 bad input (schedule, app.yaml,
arguments). Errors are `GeneratorError`s (generator/errors.py), printed by `_Group` in one place.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypedDict

import click

from . import __version__, cli_app, cli_lock, cli_sbom, interrupted
from . import schedule as schedule_mod
from .cli_options import date_option, echo
from .errors import GeneratorError

if TYPE_CHECKING:  # imported where used, so `generate` stays fast
    pass


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


def load_schedule(path: Path | None) -> schedule_mod.Schedule:
    """The schedule joined with its lock (a problem in either exits 2 through `_Group`)."""
    return schedule_mod.load_given(path)


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


@main.command()
@click.argument("app_yaml", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (runtime_id, python_version, operating_system, image, status, …).")
@date_option
@click.pass_obj
def resolve(schedule_path: Path | None, app_yaml: Path, as_json: bool, on: dt.date) -> None:
    """Which runtime an app.yaml selects, by the flexible environment's rules."""
    from . import appyaml

    sched = load_schedule(schedule_path)
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


@main.command()
@click.option("--check", is_flag=True, help="Write nothing; exit 1 listing every stale, missing or extra generated file.")
@click.pass_obj
def generate(schedule_path: Path | None, check: bool) -> None:
    """Render every runtime's files from the schedule (deterministic, atomic)."""
    from . import fileset, render

    sched = load_schedule(schedule_path)
    root = sched.path.resolve().parent
    # One run per tree at a time; a run killed mid-swap is rolled back first (even by --check).
    with fileset.exclusive(root):
        _generate(sched, root, check, render)


def _generate(sched: schedule_mod.Schedule, root: Path, check: bool, render: ModuleType) -> None:
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


@main.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@date_option
@click.pass_obj
def list_(schedule_path: Path | None, as_json: bool, on: dt.date) -> None:
    """The schedule as a table: runtime, OS, Python, status, end of support."""
    sched = load_schedule(schedule_path)
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


# Further commands live below, one block each; keep each block's imports inside its function so
# `generate` stays fast.
# --- build ---
@main.command()
@click.argument("runtime_id")
@click.option("--engine", "engine_name", type=click.Choice(["podman", "docker"]), help="Container engine (default: podman, else docker).")
@click.option("--base-image", metavar="REF", help="Build on this base instead of the pinned one (tests, mirrors).")
@click.option(
    "--toolchain-base",
    metavar="REF",
    help="Compile the interpreter on this base instead of the toolchain lock's (default: --base-image if given).",
)
@click.option("--python-mirror", metavar="URL", help="Where Python-X.Y.Z.tar.xz/.tgz is fetched from (default: python.org); its sha256 is checked.")
@click.option(
    "--apt-mirror",
    "apt_mirrors",
    metavar="URL",
    multiple=True,
    help="Archive mirror for the locked .debs, after the snapshot service (repeatable; or FLEX_PYTHON_APT_MIRRORS; default: the lock's archive).",
)
@click.option("--tag", metavar="T", help="Image tag (default: localhost/RUNTIME_ID:VERSION).")
@click.option("--optimize/--no-optimize", default=True, show_default=True, help="PGO + LTO (slow); --no-optimize builds in minutes.")
@click.option("--no-cache", is_flag=True, help="Build every step of the runtime image again (its interpreter is still reused by its input hash).")
@click.option(
    "--rebuild-interpreter", is_flag=True, help="Compile the interpreter again, without the layer cache, even if one with its input hash is stored."
)
@click.option("-v", "--verbose", is_flag=True, help="Show the engine's whole output, not only its steps.")
@click.option(
    "--sbom-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the image's SBOMs are written (default: build/sbom/ beside the schedule).",
)
@click.option(
    "--build-image/--no-build-image",
    "with_build_image",
    default=True,
    show_default=True,
    help="Also build the runtime's build image (FROM it, compilers and -dev packages), tagged TAG-build.",
)
@click.pass_obj
def build(
    schedule_path: Path | None,
    runtime_id: str,
    engine_name: str | None,
    base_image: str | None,
    toolchain_base: str | None,
    python_mirror: str | None,
    apt_mirrors: tuple[str, ...],
    tag: str | None,
    optimize: bool,
    no_cache: bool,
    rebuild_interpreter: bool,
    verbose: bool,
    sbom_dir: Path | None,
    with_build_image: bool,
) -> None:
    """Build a runtime's image (and its build image) from the generated Dockerfiles; print IDs, digests and SBOMs.

    The interpreter first (images/<id>/interpreter/Dockerfile): reused by its input hash if stored, else compiled."""
    from .images import interpreter_build

    sched = load_schedule(schedule_path)
    r = cli_sbom.runtime_of(sched, runtime_id)  # unknown: exit 2 naming the choices
    i, res = interpreter_build.build_runtime(  # BuildError: exit 1 through _Group
        sched,
        r,
        engine_name=engine_name,
        base_image=base_image,
        toolchain_base=toolchain_base,
        python_mirror=python_mirror,
        apt_mirrors=apt_mirrors,
        optimize=optimize,
        rebuild_interpreter=rebuild_interpreter,
        verbose=verbose,
        tag=tag,
        no_cache=no_cache,
        sbom_dir=sbom_dir,
        with_build_image=with_build_image,
    )
    echo(f"interpreter {i.tag}: {'built in ' + format(i.seconds, '.0f') + 's' if i.built else 'reused'} ({i.image_id})")
    echo(f"built {res.tag} in {res.seconds:.0f}s")
    echo(f"image id: {res.image_id}")
    echo(f"digest:   {res.digest}")
    for path in res.sbom:
        echo(f"sbom:     {path} (its sha256 is a label of the image)")
    if res.build_image:
        b = res.build_image
        echo(f"built {b.tag} in {b.seconds:.0f}s (build image)")
        echo(f"build image id: {b.image_id}")
        echo(f"build digest:   {b.digest}")
    if base_image:
        echo(f"note: the SBOM names the pinned base {r.base_reference}; this image was built on {base_image}", err=True)


# --- lock, lock-app (generator/cli_lock.py) ---
main.add_command(cli_lock.lock)
main.add_command(cli_lock.lock_app)


# --- app (generator/cli_app.py) ---
main.add_command(cli_app.app)


# --- refresh ---
@main.command()
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
    from . import refresh as refresh_mod
    from . import upstream

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


# --- sbom, publish-sbom (generator/cli_sbom.py) ---
main.add_command(cli_sbom.sbom)
main.add_command(cli_sbom.publish_sbom)


@main.command()
@click.option("--changed-since", metavar="GIT_REF", help="Only runtimes whose input hash differs from this git ref's.")
@click.option("--json", "as_json", is_flag=True, help="Print the GitHub Actions matrix as one line of JSON.")
@click.pass_obj
def matrix(schedule_path: Path | None, changed_since: str | None, as_json: bool) -> None:
    """The runtimes to (re)build, as a GitHub Actions matrix ({"include": [...]})."""
    from . import matrix as matrix_mod

    sched = load_schedule(schedule_path)
    entries = matrix_mod.changed_with_kind(sched.path.resolve().parent, changed_since)
    value = matrix_mod.github_matrix(entries)
    if as_json:
        echo(json.dumps(value, sort_keys=True, separators=(",", ":")))
        return
    for job in value["include"]:
        echo(f"{job['runtime']:<20} Python {job['python']:<8} {job['os']:<9} {job['build']:<10} {job['input_hash']}")
    kinds = [job["build"] for job in value["include"]]
    counts = f"{kinds.count(matrix_mod.REBUILD)} to rebuild, {kinds.count(matrix_mod.REASSEMBLE)} to re-assemble"
    echo(f"{len(value['include'])} runtime(s) to build ({counts})" + (f", changed since {changed_since}" if changed_since else ""))
