"""The `build` command: a runtime's image and its build image from the generated Dockerfiles (generator/images/build.py)."""

from __future__ import annotations

from pathlib import Path

import click

from generator.cli.options import echo, runtime_of
from generator.schedule.runtimes import load_given


@click.command()
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
    from generator.images import interpreter_build

    sched = load_given(schedule_path)  # a problem in the schedule or its lock exits 2
    r = runtime_of(sched, runtime_id)  # unknown: exit 2 naming the choices
    i, res = interpreter_build.build_runtime(  # BuildError: exit 1 through _Group
        sched,
        r,
        engine_name=engine_name,
        base_image=base_image,
        toolchain_base=toolchain_base,
        python_mirror=python_mirror,
        apt_mirrors=apt_mirrors,
        tag=tag,
        optimize=optimize,
        no_cache=no_cache,
        rebuild_interpreter=rebuild_interpreter,
        verbose=verbose,
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
