"""The SBOM commands: `sbom` (an image's SBOM from the lock) and `publish-sbom` (beside the pushed image).

Registered on the main group by generator/cli/__init__.py; errors are GeneratorErrors, printed by its `_Group`.
"""

from __future__ import annotations

from pathlib import Path

import click

from generator.cli.options import echo, runtime_of
from generator.schedule import runtimes as schedule_mod


@click.command()
@click.argument("runtime_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["spdx-json", "cyclonedx-json"]),
    default="spdx-json",
    show_default=True,
    help="SPDX 2.3 or CycloneDX 1.6 JSON.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write it to this file (atomically; a FIFO or device is written into) instead of stdout.",
)
@click.option("--build-image", is_flag=True, help="The SBOM of the runtime's build image (its packages plus the compilers and -dev packages).")
@click.option("--app-image", metavar="IMAGE", help="The SBOM of an app image `app` made on this runtime (read with podman: what its build added).")
@click.option(
    "--app", "app_dir", type=click.Path(path_type=Path, file_okay=False), help="With --app-image: the app directory (its apt-packages.lock.json)."
)
@click.pass_obj
def sbom(
    schedule_path: Path | None, runtime_id: str, fmt: str, output: Path | None, build_image: bool, app_image: str | None, app_dir: Path | None
) -> None:
    """The SBOM of a runtime's image (or its build image), made from the lock: base image, OS packages, CPython, tools."""
    from generator.core import fileset
    from generator.images import sbom as sbom_mod

    sched = schedule_mod.load_given(schedule_path)
    r = runtime_of(sched, runtime_id)
    if app_image:
        from generator.app import sbom as app_sbom

        inv = app_sbom.inventory(sched, r, app_image, app_dir)
        text = sbom_mod.spdx_json(inv) if fmt == "spdx-json" else sbom_mod.cyclonedx_json(inv)
    else:
        text = sbom_mod.render_sbom(sched, r, fmt, build_image)
    if output is None:
        click.echo(text, nl=False)
        return
    fileset.write_output(output, text)
    echo(f"wrote {output} ({fmt}, sha256 {sbom_mod.sha256_of(text)})", err=True)


@click.command(name="publish-sbom")
@click.argument("runtime_id")
@click.argument("image")
@click.option(
    "--sbom-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where `build` wrote the runtime's SBOMs (default: build/sbom/ beside the schedule).",
)
@click.option("--tls-verify/--no-tls-verify", default=True, show_default=True, help="Check the registry's TLS certificate.")
@click.pass_obj
def publish_sbom(schedule_path: Path | None, runtime_id: str, image: str, sbom_dir: Path | None, tls_verify: bool) -> None:
    """Push a built image's SBOMs to its registry as an OCI artifact whose subject is the image (tag sha256-<hex>.sbom).

    IMAGE is the pushed image, NAME@sha256:… (or NAME:TAG). The files must be the ones the image
    carries: their sha256 must equal its SBOM labels."""
    from generator.images import sbom as sbom_mod
    from generator.images import sbom_publish

    sched = schedule_mod.load_given(schedule_path)
    r = runtime_of(sched, runtime_id)
    directory = sbom_dir or sbom_mod.default_dir(sched)
    res = sbom_publish.publish(r.id, image, directory, tls_verify=tls_verify)
    echo(f"published {res.reference} ({', '.join(res.files)}), subject {res.subject}")
    echo(f"artifact digest: {res.digest}")
