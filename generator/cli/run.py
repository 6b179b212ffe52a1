"""The `run` command: an app started on this machine as the flexible environment starts it (generator/app_run.py).

Registered on the main group by generator/cli/__init__.py; errors are GeneratorErrors, printed by its `_Group`. Every
line `run` writes names its source (build, run, proxy, health, app): the app's own output goes to
stdout, everything else to stderr, as progress does in every command.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from pathlib import Path

import click

from generator.cli.options import date_option, echo
from generator.schedule import runtimes as schedule_mod

_LOCK = threading.Lock()  # the pumps, the proxy and the checks write from their own threads: whole lines only


# the platform's own rules for the two names it gives an app (a project ID; a version ID)
_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_VERSION = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _named(pattern: re.Pattern[str], rule: str) -> Callable[[click.Context, click.Parameter, str], str]:
    def check(ctx: click.Context, param: click.Parameter, value: str) -> str:
        if not pattern.fullmatch(value):
            raise click.BadParameter(f"{value!r} is not valid: {rule}")
        return value

    return check


def _image(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from generator.app import runtime_image as app_image

    m = app_image.REFERENCE.fullmatch(value or "")
    if value is not None and (not m or m.group(3)):
        raise click.BadParameter(f"{value!r} is not an image name; valid form: NAME[:TAG] (lowercase, as podman names local images)")
    return value


def _log(source: str, line: str) -> None:
    with _LOCK:
        echo(f"{source:>6} | {line}", err=source != "app")


@click.command()
@click.argument("app_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False), help="app.yaml to read (default: $GAE_APPLICATION_YAML_PATH, else APP_DIR/app.yaml)."
)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="Serve the app on 127.0.0.1:PORT, through the proxy.")
@click.option(
    "--project",
    default="local-project",
    show_default=True,
    callback=_named(_PROJECT, "6 to 30 lowercase letters, digits or hyphens, starting with a letter, not ending with a hyphen"),
    help="GOOGLE_CLOUD_PROJECT inside the app.",
)
@click.option(
    "--version",
    "version_id",
    default="local",
    show_default=True,
    callback=_named(_VERSION, "at most 63 lowercase letters, digits or hyphens, not starting or ending with a hyphen"),
    help="GAE_VERSION inside the app.",
)
@click.option("--https", is_flag=True, help="The proxy sends X-Forwarded-Proto: https, as App Engine does for an https request.")
@click.option("--no-build", is_flag=True, help="Start the image already built (by an earlier run, or --image) instead of building it.")
@click.option(
    "--image",
    metavar="NAME[:TAG]",
    callback=_image,
    help="The image to build and start (default: localhost/flex-run/SERVICE-<hash of APP_DIR>:latest).",
)
@click.option("--detach", is_flag=True, help="Once ready, leave the container running on 127.0.0.1:PORT (no proxy, no further checks) and exit.")
@click.option("--runtime-image", metavar="REF", help="As for `app`: the runtime image to build on (default: the schedule's, by digest).")
@click.option("--build-image", metavar="REF", help="As for `app`: the image the build stage compiles in.")
@click.option("--index-url", metavar="URL", help="As for `app --hermetic`: where the locked files are looked up.")
@click.option(
    "--gunicorn-config", is_flag=True, help="As for `app`: the recommended gunicorn.conf.py (trusts X-Forwarded-Proto) when the app has none."
)
@date_option
@click.pass_context
def run(
    ctx: click.Context,
    app_dir: Path,
    config: Path | None,
    port: int,
    project: str,
    version_id: str,
    https: bool,
    no_build: bool,
    image: str | None,
    detach: bool,
    runtime_image: str | None,
    build_image: str | None,
    index_url: str | None,
    gunicorn_config: bool,
    on: dt.date,
) -> None:
    """Build an app (as `app --hermetic` + podman build) and run it as App Engine does: its variables, limits, health checks, a front proxy."""
    from generator.app import run as app_run

    opts = app_run.Options(
        app_dir,
        config=config,
        port=port,
        project=project,
        version=version_id,
        no_build=no_build,
        detach=detach,
        https=https,
        image=image,
        runtime_image=runtime_image,
        build_image=build_image,
        index_url=index_url,
        gunicorn_config=gunicorn_config,
        on=on,
    )
    sched = None if no_build else schedule_mod.load_given(ctx.obj)
    ctx.exit(app_run.run(opts, sched, _log))
