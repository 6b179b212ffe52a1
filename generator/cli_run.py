"""The `run` command: an app started on this machine as the flexible environment starts it (generator/app_run.py).

Registered on the main group by cli.py; errors are GeneratorErrors, printed by its `_Group`. Every
line `run` writes names its source (build, run, proxy, health, app): the app's own output goes to
stdout, everything else to stderr, as progress does in every command.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import click

from . import schedule as schedule_mod
from .cli_options import date_option, echo

_LOCK = threading.Lock()  # the pumps, the proxy and the checks write from their own threads: whole lines only


def _log(source: str, line: str) -> None:
    with _LOCK:
        echo(f"{source:>6} | {line}", err=source != "app")


@click.command()
@click.argument("app_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--config", type=click.Path(path_type=Path, dir_okay=False), help="app.yaml to read (default: $GAE_APPLICATION_YAML_PATH, else APP_DIR/app.yaml)."
)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="Serve the app on 127.0.0.1:PORT, through the proxy.")
@click.option("--project", default="local-project", show_default=True, help="GOOGLE_CLOUD_PROJECT inside the app.")
@click.option("--version", "version_id", default="local", show_default=True, help="GAE_VERSION inside the app.")
@click.option("--https", is_flag=True, help="The proxy sends X-Forwarded-Proto: https, as App Engine does for an https request.")
@click.option("--no-build", is_flag=True, help="Start the image already built (by an earlier run, or --image) instead of building it.")
@click.option("--image", metavar="NAME[:TAG]", help="The image to build and start (default: localhost/flex-run/SERVICE-<hash of APP_DIR>:latest).")
@click.option("--detach", is_flag=True, help="Once ready, leave the container running on 127.0.0.1:PORT (no proxy, no further checks) and exit.")
@click.option("--runtime-image", metavar="REF", help="As for `app`: the runtime image to build on (default: the schedule's, by digest).")
@click.option("--build-image", metavar="REF", help="As for `app`: the image the build stage compiles in.")
@click.option("--index-url", metavar="URL", help="As for `app --hermetic`: where the locked files are looked up.")
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
    on: dt.date,
) -> None:
    """Build an app (as `app --hermetic` + podman build) and run it as App Engine does: its variables, limits, health checks, a front proxy."""
    from . import app_run

    opts = app_run.Options(app_dir, config, port, project, version_id, no_build, detach, https, image, runtime_image, build_image, index_url, on)
    sched = None if no_build else schedule_mod.load_given(ctx.obj)
    ctx.exit(app_run.run(opts, sched, _log))
