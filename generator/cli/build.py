"""The `build` command: a runtime's image and its build image from the generated Dockerfiles (generator/images/build.py)."""

from __future__ import annotations

from pathlib import Path

import click

from generator.cli.options import echo, load_schedule, runtime_of


@click.command()
@click.argument("runtime_id")
@click.option("--engine", "engine_name", type=click.Choice(["podman", "docker"]), help="Container engine (default: podman, else docker).")
@click.option("--base-image", metavar="REF", help="Build on this base instead of the pinned one (tests, mirrors).")
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
@click.option("--no-cache", is_flag=True, help="Build every step again.")
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
    python_mirror: str | None,
    apt_mirrors: tuple[str, ...],
    tag: str | None,
    optimize: bool,
    no_cache: bool,
    verbose: bool,
    sbom_dir: Path | None,
    with_build_image: bool,
) -> None:
    """Build a runtime's image (and its build image) from the generated Dockerfiles; print IDs, digests and SBOMs."""
    from generator.images import build as build_mod

    sched = load_schedule(schedule_path)
    r = runtime_of(sched, runtime_id)  # unknown: exit 2 naming the choices
    res = build_mod.build(  # BuildError: exit 1 through _Group
        sched,
        r,
        engine_name=engine_name,
        base_image=base_image,
        python_mirror=python_mirror,
        apt_mirrors=apt_mirrors,
        tag=tag,
        optimize=optimize,
        no_cache=no_cache,
        verbose=verbose,
        sbom_dir=sbom_dir,
        with_build_image=with_build_image,
    )
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
