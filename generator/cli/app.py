"""The `app` command: an app directory → the Dockerfile of a custom runtime (generator/app/dockerfile.py).

Registered on the main group by generator/cli/__init__.py; errors are GeneratorErrors, printed by its `_Group`.
"""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import click

from generator.cli.options import date_option, echo
from generator.schedule import runtimes as schedule_mod


@click.command()
@click.argument("app_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False), help="app.yaml to read (default: $GAE_APPLICATION_YAML_PATH, else APP_DIR/app.yaml)."
)
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), help="Write a whole build context here (the app + generated files), not into APP_DIR."
)
@click.option(
    "--runtime-image",
    metavar="REF",
    help="The runtime image to build on: NAME[:TAG][@sha256:…], containers-storage:NAME:TAG or docker-daemon:NAME:TAG "
    "(default: the schedule's, pinned to its current digest).",
)
@click.option(
    "--build-image",
    metavar="REF",
    help="The image the build stage compiles in (same forms as --runtime-image; default: the runtime image's name, tag + -build).",
)
@click.option("--gunicorn-config", is_flag=True, help="Write the recommended gunicorn.conf.py (if absent) and use it in the entrypoint.")
@click.option("--hermetic", is_flag=True, help="Fetch the hash-locked requirements on the host into the build context: the build needs no network.")
@click.option("--index-url", metavar="URL", help="Where --hermetic looks the locked files up (default: the requirements' --index-url, else PyPI).")
@click.option(
    "--no-verify", is_flag=True, help="Pin the runtime and build images without verifying them against the schedule's publish.signing (warns)."
)
@click.option("--force", is_flag=True, help="Replace a Dockerfile in APP_DIR that this tool did not write (never a directory given to --out).")
@date_option
@click.pass_obj
def app(
    schedule_path: Path | None,
    app_dir: Path,
    config: Path | None,
    out: Path | None,
    runtime_image: str | None,
    build_image: str | None,
    gunicorn_config: bool,
    hermetic: bool,
    index_url: str | None,
    no_verify: bool,
    force: bool,
    on: dt.date,
) -> None:
    """Write the Dockerfile of a custom runtime for an app directory (app.yaml, code, requirements.txt)."""
    from generator.app import dockerfile as app_mod

    sched = schedule_mod.load_given(schedule_path)
    target = out or app_dir
    if target.resolve() != app_dir.resolve():
        app_mod.check_out(app_dir, target)  # refused before any work; --force never replaces a directory of the user's
    elif not force and not _ours(app_dir / "Dockerfile", app_mod.GENERATED):
        raise app_mod.AppError(f"{app_dir / 'Dockerfile'} exists and was not written by this tool; pass --force to replace it")
    plan = app_mod.plan_app(
        app_dir,
        sched,
        config=config,
        runtime_image=runtime_image,
        build_image=build_image,
        gunicorn_config=gunicorn_config,
        hermetic=hermetic,
        index_url=index_url,
        on=on,
    )
    from generator.app import pinning

    to_check = [("runtime image", plan.image), *([("build image", plan.build_image)] if plan.build_image else [])]
    verdicts, unverified = pinning.check(sched, plan.runtime_id, to_check, skip=no_verify)  # before any digest is written
    for line in verdicts:
        echo(line, err=True)
    for warning in [*plan.warnings, *unverified]:
        echo(f"warning: {warning}", err=True)
    for rel in app_mod.write(plan, target, app_dir):
        echo(f"wrote {target / rel}")
    echo(f"runtime {plan.runtime_id}: FROM {plan.image}")
    if plan.build_image:
        echo(f"build stage: FROM {plan.build_image}")


def _ours(dockerfile: Path, generated: str) -> bool:
    """Absent, or a regular file this tool wrote; never a link (what it names is not the app's Dockerfile to judge)."""
    try:
        mode = dockerfile.lstat().st_mode
    except FileNotFoundError:
        return True
    if not stat.S_ISREG(mode):
        return False
    with dockerfile.open("rb") as fh:
        return generated.encode() in fh.read(4096)
