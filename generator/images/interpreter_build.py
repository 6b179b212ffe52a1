"""Build the interpreter artifact of a runtime, or reuse it by its input hash.

`build` asks for the interpreter before it assembles the runtime image: an image already in the
local store under the interpreter's tag (derived from its input hash, see interpreter.py) is reused
as it is, so a re-assembly after a security update of the base or of a runtime package compiles
nothing. Otherwise the interpreter's own context (its Dockerfile, the CPython tarball, the toolchain
closure's .debs, each hash-checked on the host) is built with the network off, with the same
timestamps as every image of the project, so two clean builds give the same digest.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.images import build as build_mod
from generator.images import interpreter, ospkgs, render
from generator.images import sbom as sbom_mod
from generator.schedule.runtimes import Runtime, Schedule


@dataclass
class Interpreter:
    """The interpreter image a runtime is assembled around: its tag and id, and whether it was built now."""

    tag: str
    image_id: str
    input_hash: str
    built: bool
    seconds: float


def local_tag(r: Runtime, input_hash: str, *, toolchain_base: str | None, optimize: bool) -> str:
    """The tag the interpreter is stored under: its published reference for a release build on the
    locked toolchain base; for another base or --no-optimize (tests), a local tag hashed from those
    too, so such an interpreter is never taken for the release one."""
    if toolchain_base is None and optimize:
        return interpreter.reference(r, input_hash)
    variant = f"{input_hash}\0{toolchain_base or ''}\0{'optimize' if optimize else 'no-optimize'}"
    return f"localhost/flex-python-interpreter/{r.id}:{hashlib.sha256(variant.encode()).hexdigest()[:40]}"


def prepare_context(schedule: Schedule, r: Runtime, dest: Path, *, python_mirror: str | None, apt_mirrors: tuple[str, ...]) -> Path:
    """Dockerfile, cpython/ and debs/build/ (the toolchain closure) for runtime `r`'s interpreter, every file hash-checked."""
    root = schedule.path.resolve().parent
    rel = interpreter.dockerfile_path(r)
    if build_mod._current(root / rel, root, rel) != render.interpreter_dockerfile(r):
        raise build_mod.BuildError(f"{rel} is missing or out of date with schedule.yaml: run `python -m generator generate` first")
    if r.packages is None:
        raise build_mod.BuildError(f"{r.os_id} has no package lock: run `python -m generator refresh --only packages {r.os_id}`")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / rel, dest / "Dockerfile")
    build_mod.fetch_cpython(r, dest / "cpython", python_mirror)
    (dest / "debs" / "build").mkdir(parents=True, exist_ok=True)
    try:
        ospkgs.fetch(r.packages.build, dest / "debs" / "build", ospkgs.mirrors(r.packages, apt_mirrors))
    except ospkgs.OsPackagesError as exc:
        raise build_mod.BuildError(f"{r.os_id}'s toolchain lock: {exc}") from exc
    return dest


def _image_id(exe: str, tag: str) -> str | None:
    proc = subprocess.run([exe, "image", "inspect", tag, "--format", "{{.Id}}"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def ensure(
    schedule: Schedule,
    r: Runtime,
    exe: str,
    *,
    toolchain_base: str | None = None,
    python_mirror: str | None = None,
    apt_mirrors: tuple[str, ...] = (),
    optimize: bool = True,
    no_cache: bool = False,
    progress: Callable[[str], None],
    verbose: bool = False,
) -> Interpreter:
    """Runtime `r`'s interpreter image: the one stored under its tag, or built now (always with no_cache)."""
    h = interpreter.input_hash(r, render.interpreter_dockerfile(r))
    tag = local_tag(r, h, toolchain_base=toolchain_base, optimize=optimize)
    found = None if no_cache else _image_id(exe, tag)
    if found:
        progress(f"interpreter {tag}: reused ({found[:19]}), its inputs unchanged: nothing to compile")
        return Interpreter(tag=tag, image_id=found, input_hash=h, built=False, seconds=0.0)
    log_path = build_mod.build_log(tag)
    never, same = build_mod.offline_flags(exe)
    with tempfile.TemporaryDirectory(prefix=f"interpreter-{r.id}-") as tmp:
        ctx = prepare_context(schedule, r, Path(tmp), python_mirror=python_mirror, apt_mirrors=apt_mirrors)
        progress(f"interpreter context ready (CPython {r.version}, {len(r.packages.build) if r.packages else 0} toolchain .debs); compiling {tag}")
        cmd = [exe, "build", "--network=none", never, "-f", str(ctx / "Dockerfile"), *same, "-t", tag]
        cmd += ["--build-arg", f"SOURCE_DATE_EPOCH={render.SOURCE_DATE_EPOCH}"]
        cmd += ["--build-arg", f"TOOLCHAIN_BASE={toolchain_base}"] if toolchain_base else []
        cmd += [] if optimize else ["--build-arg", "PYTHON_OPTIMIZATIONS="]
        cmd += ["--no-cache"] if no_cache else []
        start = time.monotonic()
        code, step, mismatch = build_mod._run_engine([*cmd, str(ctx)], log_path, "w", progress, verbose, start)
        seconds = time.monotonic() - start
    if code != 0:
        raise build_mod._failure(f"{r.id}'s interpreter", code, step, mismatch, log_path)
    image_id = _image_id(exe, tag) or ""
    progress(f"interpreter {tag}: built in {seconds:.0f}s ({image_id[:19]})")
    return Interpreter(tag=tag, image_id=image_id, input_hash=h, built=True, seconds=seconds)


def build_runtime(
    schedule: Schedule,
    r: Runtime,
    *,
    engine_name: str | None = None,
    base_image: str | None = None,
    toolchain_base: str | None = None,
    python_mirror: str | None = None,
    apt_mirrors: tuple[str, ...] = (),
    optimize: bool = True,
    rebuild_interpreter: bool = False,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    verbose: bool = False,
    **assemble: Any,
) -> tuple[Interpreter, build_mod.BuildResult]:
    """`build`: runtime `r`'s interpreter (reused by its input hash, or compiled: always with
    rebuild_interpreter; on `toolchain_base`, default `base_image`, else the toolchain lock's base),
    then the runtime assembled around it by build.build (`assemble`: its other options; its no_cache
    cleans only the runtime's own stages, as it never re-pulls a base)."""
    exe = build_mod.engine(engine_name)
    docs = sbom_mod.documents(schedule, r)  # a lock the SBOM cannot describe stops here, before anything is fetched or compiled
    interp = ensure(
        schedule, r, exe, toolchain_base=toolchain_base or base_image, python_mirror=python_mirror, apt_mirrors=apt_mirrors,
        optimize=optimize, no_cache=rebuild_interpreter, progress=progress, verbose=verbose,
    )  # fmt: skip
    result = build_mod.build(
        schedule, r, engine_name=exe, base_image=base_image, python_mirror=python_mirror, apt_mirrors=apt_mirrors,
        progress=progress, verbose=verbose, interpreter_image=interp.image_id, docs=docs, **assemble,
    )  # fmt: skip
    return interp, result
