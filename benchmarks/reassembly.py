"""A security update, two ways, side by side in one run: the full rebuild it used to cost and the re-assembly it costs now.

    .venv/bin/python benchmarks/reassembly.py --tree TREE --base-image REF --python-mirror URL [--runtime ID] [--optimize]

TREE is a project tree whose OS package lock was made in the base REF (the image tests' tree is one:
a repository copy whose locks `refresh --only packages --os-base` made in a real Ubuntu root; the
repository's own tree needs the pinned base, which only a registry serves). The script copies TREE
and publishes a `-security` update the way Ubuntu does: the runtime closure's tzdata and the toolchain
closure's linux-libc-dev, each re-versioned (`dpkg-deb`), served from 127.0.0.1 and written into
the copy's lock as `refresh` writes them (the runtime closure takes the new tzdata; the toolchain
lock stays still, as `refresh` keeps it). It builds the runtime (`python -m generator build`) once
before the update (untimed: the state a scheduled rebuild starts from, its interpreter reused if
stored), then, after it, twice, timing each:

- re-assembly: a plain `build`, the interpreter reused by its input hash and the runtime's
  unchanged stages from the layer cache; the runtime packages' step runs again with the new tzdata
  (what the scheduled rebuild now does);
- full rebuild: `--rebuild-interpreter --no-cache`, every step from clean, CPython compiled (what
  every move of the builder stage cost before the interpreter was an artifact of its own).

Both use the same context and the same engine; --no-optimize unless --optimize (PGO + LTO, the
release build: about 12 minutes of compile on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.core import paths  # noqa: E402
from generator.images import ospkgs  # noqa: E402
from generator.schedule import lock as schedule_lock  # noqa: E402
from tests import servers, ubuntu  # noqa: E402  (the image tests' re-versioned .debs and file server)

COPY = ("schedule.yaml", "README.md", "flake.nix", "flake.lock", "images", "lockfiles", "nix")


def security_update(tree: Path, os_id: str, archive_dir: Path) -> tuple[str, str]:
    """tzdata moves in the runtime closure of TREE's lock (its .deb under archive_dir); linux-libc-dev's
    new version is published too but the toolchain lock keeps its own. (old, new) tzdata versions."""
    path = tree / paths.SCHEDULE_LOCK
    lock = schedule_lock.load(path)
    osp = lock.os_packages[os_id]
    moved = {}
    for deb in (d for d in osp.runtime + osp.build if d.name in ("tzdata", "linux-libc-dev")):
        got = ospkgs.fetch([deb], archive_dir / "orig", [osp.archive])[0]
        new_version = deb.version + "+bench1"
        rel = f"{Path(deb.filename).parent}/{deb.name}_{new_version}_{deb.architecture}.deb"
        data = ubuntu.reversion_deb(got, new_version, archive_dir / rel).read_bytes()
        moved[deb.name] = dataclasses.replace(
            deb,
            version=new_version,
            filename=rel,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            suite=deb.suite.split("-")[0] + "-security",
        )
    runtime = [moved.get(d.name, d) if d.name == "tzdata" else d for d in osp.runtime]  # the toolchain (build) stays: refresh keeps it
    path.write_text(dataclasses.replace(lock, os_packages={**lock.os_packages, os_id: dataclasses.replace(osp, runtime=runtime)}).dumps())
    old = next(d.version for d in osp.runtime if d.name == "tzdata")
    return old, moved["tzdata"].version


def build(tree: Path, runtime: str, args: argparse.Namespace, tag: str, mirror: str, archive: str, *extra: str) -> float:
    cmd = [sys.executable, "-m", "generator", "--schedule", str(tree / "schedule.yaml"), "build", runtime, "--no-build-image", "--tag", tag]
    cmd += ["--base-image", args.base_image, "--python-mirror", args.python_mirror, "--apt-mirror", mirror, "--apt-mirror", archive]
    cmd += [] if args.optimize else ["--no-optimize"]
    start = time.monotonic()
    proc = subprocess.run([*cmd, *extra], cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    print(f"  {proc.stdout.splitlines()[0]}", file=sys.stderr)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, required=True)
    ap.add_argument("--runtime", default="python311-ubuntu22")
    ap.add_argument("--base-image", required=True)
    ap.add_argument("--python-mirror", required=True)
    ap.add_argument("--optimize", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reassembly-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        for name in COPY:
            (shutil.copytree if (args.tree / name).is_dir() else shutil.copy)(args.tree / name, tree / name)
        sys.path.insert(0, str(ROOT))
        from generator.schedule import runtimes as schedule

        r = schedule.load(tree / "schedule.yaml").runtimes[args.runtime]
        archive = r.packages.archive if r.packages else sys.exit(f"{r.os_id} has no package lock")
        with servers.serve(Path(tmp) / "archive") as mirror:
            tag = f"localhost/flex-bench/{args.runtime}"
            print("before the update:", file=sys.stderr)
            build(tree, args.runtime, args, f"{tag}:before", mirror, archive)
            old, new = security_update(tree, r.os_id, Path(tmp) / "archive")
            generate = [sys.executable, "-m", "generator", "--schedule", str(tree / "schedule.yaml"), "generate"]
            subprocess.run(generate, cwd=ROOT, check=True, capture_output=True)
            print(
                f"security update of {r.os_id}: tzdata {old} → {new} (runtime closure); linux-libc-dev published, toolchain lock kept",
                file=sys.stderr,
            )
            again = build(tree, args.runtime, args, f"{tag}:reassembled", mirror, archive)
            full = build(tree, args.runtime, args, f"{tag}:full", mirror, archive, "--rebuild-interpreter", "--no-cache")
    opt = "PGO+LTO" if args.optimize else "--no-optimize"
    print(f"{args.runtime} ({opt}), after a -security update, one run on this machine:")
    print(f"  full rebuild (interpreter compiled, no layer cache): {full:8.1f} s")
    print(f"  re-assembly (interpreter reused by its input hash):  {again:8.1f} s  ({again / full:.1%} of the full rebuild)")


if __name__ == "__main__":
    main()
