"""Build one runtime's generated Dockerfile with podman (or docker), reproducibly and offline.

The build context is prepared on the host: the Dockerfile, the CPython tarball, the OS package
lock's .debs (builder and final stage), the runtime's tool lock and the locked files, each
downloaded once into a content-addressed cache and checked against its sha256 (a tampered or
missing file stops here, before the build, with both hashes). The build itself runs with the
network off. The image's timestamps come from SOURCE_DATE_EPOCH, so two clean builds give the
same digest. The image's SBOMs (generator/images/sbom.py, made from the lock) are written beside it, and
their sha256 are labels of the image, added by a last build step of their own (a pure function of
the lock and the built image's id, so the digest stays stable).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from generator.core import paths, readfile
from generator.core.cache import cache_root
from generator.core.errors import GeneratorError
from generator.core.http import HttpError, fetch_verified
from generator.images import ospkgs, render
from generator.images import sbom as sbom_mod
from generator.schedule.runtimes import Runtime, Schedule

IN_CONTAINER = Path(__file__).resolve().parents[1] / "incontainer"  # scripts copied into every build image (stdlib only, Python 2.7+)
_STEP = re.compile(r"^\[?(?:\d+/\d+\] )?STEP (\d+)/(\d+): (.*)$")
_MISMATCH = re.compile(r"^ERROR: sha256 mismatch for (\S+)")  # the RUN's output, not its echoed command


class BuildError(GeneratorError):
    """The build could not start or failed; the message says at which step and why."""


@dataclass
class BuiltImage:
    image_id: str
    digest: str
    tag: str
    seconds: float
    log: Path


@dataclass
class BuildResult(BuiltImage):
    sbom: list[Path]  # the image's SBOMs, whose sha256 its labels carry
    build_image: BuiltImage | None = None  # FROM this one, with compilers and -dev packages (apps' build stage)


def engine(name: str | None) -> str:
    """podman, else docker (or the one asked for), as a path."""
    for candidate in [name] if name else ["podman", "docker"]:
        path = shutil.which(candidate)
        if path:
            return path
    raise BuildError(f"no container engine found ({name or 'podman or docker'}); install podman (apt-get install podman runc)")


PYTHON_ORG = "https://www.python.org/ftp/python"


def fetch_cpython(r: Runtime, dest: Path, mirror: str | None) -> Path:
    """Python-X.Y.Z.tar.xz (if its sha256 is pinned), else .tgz, from `mirror`/X.Y.Z/, hash-checked."""
    base = (mirror or PYTHON_ORG).rstrip("/")
    tried = []
    for name, sha in r.tarballs:
        try:
            return fetch_verified(f"{base}/{r.version}/{name}", sha, dest / name)
        except HttpError as exc:
            if "checksum mismatch" in str(exc):
                raise BuildError(f"CPython {r.version}: {exc}") from exc
            tried.append(str(exc))
    raise BuildError(f"CPython {r.version}: no tarball could be fetched ({'; '.join(tried)})")


def prepare_context(schedule: Schedule, r: Runtime, dest: Path, *, python_mirror: str | None = None, apt_mirrors: tuple[str, ...] = ()) -> Path:
    """Dockerfile, debs/, tools-requirements.txt and wheels/ for runtime `r`, every file hash-checked (the
    interpreter, built or reused before, comes by image id: images/interpreter_build.py)."""
    root = schedule.path.resolve().parent
    files = render.render_all(schedule, root)
    rel = f"{paths.runtime_dir(r.id)}/Dockerfile"
    on_disk = root / rel
    if _current(on_disk, root, rel) != files[rel]:
        raise BuildError(f"{rel} is missing or out of date with schedule.yaml: run `python -m generator generate` first")
    lock_text, tools = render.lock_inputs(root, r)
    if lock_text is None or not tools:
        raise BuildError(f"runtime {r.id} has no tool lock ({paths.tool_lock(r.id)} and .wheels.json): run `python -m generator lock {r.id}`")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(on_disk, dest / "Dockerfile")
    (dest / "tools-requirements.txt").write_text(lock_text, encoding="utf-8")
    if r.packages is None:
        raise BuildError(f"{r.os_id} has no package lock: run `python -m generator refresh --only packages {r.os_id}`")
    for tool in tools:
        fetch_verified(tool["url"], tool["sha256"], dest / "wheels" / tool["filename"])
    sources = ospkgs.mirrors(r.packages, apt_mirrors)
    try:  # the toolchain only where a tool is an sdist (python2's scandir); the interpreter has its own context
        for name in ("build", "runtime") if r.version.startswith("2.") else ("runtime",):
            (dest / "debs" / name).mkdir(parents=True, exist_ok=True)
            ospkgs.fetch(getattr(r.packages, name), dest / "debs" / name, sources)
    except ospkgs.OsPackagesError as exc:
        raise BuildError(f"{r.os_id}'s package lock: {exc}") from exc
    return dest


def _attach_sbom(exe: str, never: str, same: list[str], image_id: str, tag: str, labels: dict[str, str], ctx: Path, log_path: Path) -> int:
    """`tag` = the built image plus one LABEL step carrying the SBOMs' sha256.

    A build of its own, FROM the image just built (by id): with `--label` on the main build,
    buildah writes the labels into every stage's intermediate images when it builds them, but not
    into intermediates it takes from its layer cache, so a clean build and a cached one would
    differ. This way the main image is what it was without SBOMs, and the label step is a
    function of its id and the lock."""
    ctx.mkdir()
    lines = [f"FROM {image_id.removeprefix('sha256:')}", *(f'LABEL {key}="{value}"' for key, value in labels.items())]
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    cmd = [exe, "build", "--network=none", never, *same, "-f", str(ctx / "Dockerfile"), "-t", tag, str(ctx)]
    with log_path.open("a", encoding="utf-8") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode


def build_tag(tag: str) -> str:
    """The build image's tag beside a runtime image's: `NAME:TAG` → `NAME:TAG-build` (the workflow publishes it so)."""
    name, sep, t = tag.rpartition(":")
    if sep and "/" not in t:
        return f"{name}:{t}-build"
    return f"{tag}:build"


def _current(path: Path, root: Path, rel: str) -> str | None:
    """A generated file of the tree as it is (None: missing), read through readfile (inside the tree, a regular file)."""
    try:
        return readfile.read_text(path, within=root, what="a generated Dockerfile", limit=readfile.MAX_DATA, name=rel, where="the tree")
    except readfile.ReadError as exc:
        if exc.missing:
            return None
        raise


def prepare_build_image_context(schedule: Schedule, r: Runtime, dest: Path, *, apt_mirrors: tuple[str, ...] = ()) -> Path:
    """build/Dockerfile, flex-python/ (the in-container scripts) and debs/devel/ (the OS's build-image closure) for runtime `r`'s build image."""
    root = schedule.path.resolve().parent
    rel = render.build_dockerfile_path(r)
    on_disk = root / rel
    if _current(on_disk, root, rel) != render.render_all(schedule, root)[rel]:
        raise BuildError(f"{rel} is missing or out of date with schedule.yaml: run `python -m generator generate` first")
    if r.packages is None:
        raise BuildError(f"{r.os_id} has no package lock: run `python -m generator refresh --only packages {r.os_id}`")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(on_disk, dest / "Dockerfile")
    (dest / "flex-python").mkdir()
    for script in sorted(IN_CONTAINER.glob("*.py")):
        shutil.copyfile(script, dest / "flex-python" / script.name)
    (dest / "debs" / "devel").mkdir(parents=True, exist_ok=True)
    try:
        ospkgs.fetch(r.packages.devel, dest / "debs" / "devel", ospkgs.mirrors(r.packages, apt_mirrors))
    except ospkgs.OsPackagesError as exc:
        raise BuildError(f"{r.os_id}'s package lock (build image): {exc}") from exc
    return dest


def _run_engine(
    cmd: list[str], log_path: Path, mode: str, progress: Callable[[str], None], verbose: bool, start: float
) -> tuple[int, str, list[str]]:
    """Run one engine build, logging everything and reporting its steps; (exit code, the last step, checksum lines)."""
    step = "(before the first step)"
    mismatch: list[str] = []
    with log_path.open(mode, encoding="utf-8") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            line = line.rstrip("\n")
            m = _STEP.match(line)
            if m:
                step = f"step {m.group(1)}/{m.group(2)}: {m.group(3)[:120]}"
                progress(f"[{time.monotonic() - start:6.1f}s] {step}")
            elif verbose:
                progress(line)
            if _MISMATCH.search(line) or (mismatch and line.lstrip().startswith(("expected:", "actual:"))):
                mismatch.append(line.strip())
        return proc.wait(), step, mismatch


def _failure(what_image: str, code: int, step: str, mismatch: list[str], log_path: Path) -> BuildError:
    tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
    detail = "\n  ".join(mismatch) if mismatch else "\n  ".join(tail)
    what = "checksum mismatch" if mismatch else f"exit code {code}"
    return BuildError(f"build of {what_image} failed at {step} ({what}):\n  {detail}\nfull log: {log_path}")


def build_log(tag: str) -> Path:
    """The engine's whole output for one tag (one per tag: parallel builds of a runtime never share one)."""
    path = cache_root() / "logs" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', tag)}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def offline_flags(exe: str) -> tuple[str, list[str]]:
    """What every build of the project passes: never pull, and (buildah) every timestamp in the image
    (config, history, files of new layers) the epoch. (the pull flag, the timestamp flags)"""
    podman = Path(exe).name == "podman"
    same = ["--timestamp", str(render.SOURCE_DATE_EPOCH), "--identity-label=false"] if podman else []
    return ("--pull=never" if podman else "--pull=false"), same


def _inspect(exe: str, tag: str) -> dict:
    info = subprocess.run([exe, "image", "inspect", tag, "--format", "{{json .}}"], capture_output=True, text=True, check=True)
    data = json.loads(info.stdout)
    return data[0] if isinstance(data, list) else data


def _build_args(base_image: str | None, no_cache: bool, interpreter_image: str) -> list[str]:
    """The runtime build's --build-arg and cache options; the interpreter by image id."""
    args = ["--build-arg", f"SOURCE_DATE_EPOCH={render.SOURCE_DATE_EPOCH}"]
    args += ["--build-arg", f"INTERPRETER_IMAGE={interpreter_image.removeprefix('sha256:')}"]
    if base_image:
        args += ["--build-arg", f"BASE_IMAGE={base_image}"]
    if no_cache:
        args.append("--no-cache")
    return args


def build(
    schedule: Schedule,
    r: Runtime,
    *,
    engine_name: str | None = None,
    base_image: str | None = None,
    python_mirror: str | None = None,
    apt_mirrors: tuple[str, ...] = (),
    tag: str | None = None,
    no_cache: bool = False,
    extra_args: tuple[str, ...] = (),
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    verbose: bool = False,
    sbom_dir: Path | None = None,
    with_build_image: bool = True,
    interpreter_image: str,
    docs: dict[str, str],
) -> BuildResult:
    """Assemble runtime R around `interpreter_image` (an image id: images/interpreter_build.py) offline, and its build image; SBOMs beside."""
    exe = engine(engine_name)
    # `docs`: the SBOM, a function of the lock, made by the caller before anything is fetched or compiled
    # (a lock it cannot describe stops there); the image carries each document's sha256 as a label, and the files go beside it.
    tag = tag or f"localhost/{r.id}:{r.version}"
    log_path = build_log(tag)
    never, same = offline_flags(exe)
    with tempfile.TemporaryDirectory(prefix=f"build-{r.id}-") as tmp, tempfile.TemporaryDirectory(prefix="build-meta-") as meta:
        began = time.monotonic()
        ctx = prepare_context(schedule, r, Path(tmp), python_mirror=python_mirror, apt_mirrors=apt_mirrors)
        count = sum(1 for p in ctx.rglob("*") if p.is_file()) - 2
        ready = f"build context ready in {time.monotonic() - began:.1f}s: {count} hash-checked files (.debs, wheels)"
        progress(f"{ready}; assembling around {interpreter_image[:19]}, network off")
        iid = Path(meta) / "image-id"  # outside the context, which the engine reads
        cmd = [exe, "build", "--network=none", never, "-f", str(ctx / "Dockerfile"), "--iidfile", str(iid), *same]
        cmd += [*_build_args(base_image, no_cache, interpreter_image), *extra_args, str(ctx)]
        start = time.monotonic()
        code, step, mismatch = _run_engine(cmd, log_path, "w", progress, verbose, start)
        if code == 0:
            code = _attach_sbom(exe, never, same, iid.read_text().strip(), tag, sbom_mod.labels(docs), Path(meta) / "sbom-label", log_path)
            step = "(the SBOM label step)" if code else step
        seconds = time.monotonic() - start
    if code != 0:
        raise _failure(r.id, code, step, mismatch, log_path)
    data = _inspect(exe, tag)
    written = sbom_mod.write(docs, r.id, sbom_dir or sbom_mod.default_dir(schedule), None if sbom_dir else schedule.path.resolve().parent)
    result = BuildResult(image_id=data.get("Id", ""), digest=data.get("Digest") or "", tag=tag, seconds=seconds, log=log_path, sbom=written)
    if with_build_image:
        result.build_image = build_image(
            schedule,
            r,
            exe,
            result.image_id,
            build_tag(tag),
            apt_mirrors=apt_mirrors,
            no_cache=no_cache,
            progress=progress,
            verbose=verbose,
            sbom_dir=sbom_dir,
        )
    return result


def build_image(
    schedule: Schedule,
    r: Runtime,
    exe: str,
    runtime_image_id: str,
    tag: str,
    *,
    apt_mirrors: tuple[str, ...] = (),
    no_cache: bool = False,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    verbose: bool = False,
    sbom_dir: Path | None = None,
) -> BuiltImage:
    """The build image of runtime `r`, FROM the runtime image just built (by id), offline; its SBOMs
    (`<id>-build.spdx.json`, `.cdx.json`, from the lock) are written beside the runtime image's."""
    log_path = build_log(tag)
    never, same = offline_flags(exe)
    docs = sbom_mod.documents(schedule, r, build_image=True)  # its own SBOM labels replace the runtime image's it inherits
    with tempfile.TemporaryDirectory(prefix=f"build-image-{r.id}-") as tmp, tempfile.TemporaryDirectory(prefix="build-meta-") as meta:
        ctx = prepare_build_image_context(schedule, r, Path(tmp), apt_mirrors=apt_mirrors)
        progress(f"build image context ready: {len(r.packages.devel) if r.packages else 0} hash-checked .debs; building {tag} with the network off")
        iid = Path(meta) / "image-id"
        cmd = [exe, "build", "--network=none", never, "-f", str(ctx / "Dockerfile"), *same, "--iidfile", str(iid)]
        cmd += ["--build-arg", f"RUNTIME_IMAGE={runtime_image_id.removeprefix('sha256:')}"]
        if no_cache:
            cmd.append("--no-cache")
        start = time.monotonic()
        code, step, mismatch = _run_engine([*cmd, str(ctx)], log_path, "w", progress, verbose, start)
        if code == 0:
            code = _attach_sbom(exe, never, same, iid.read_text().strip(), tag, sbom_mod.labels(docs), Path(meta) / "sbom-label", log_path)
            step = "(the SBOM label step)" if code else step
        seconds = time.monotonic() - start
    if code != 0:
        raise _failure(f"{r.id}'s build image", code, step, mismatch, log_path)
    data = _inspect(exe, tag)
    tree = None if sbom_dir else schedule.path.resolve().parent  # the default directory is in the tree: confined to it
    sbom_mod.write(docs, f"{r.id}-build", sbom_dir or sbom_mod.default_dir(schedule), tree)
    return BuiltImage(image_id=data.get("Id", ""), digest=data.get("Digest") or "", tag=tag, seconds=seconds, log=log_path)
