"""Benchmark `generate` and `generate --check` over the whole matrix: whole process, median of N runs.

    .venv/bin/python benchmarks/bench_generate.py [--runs 7] [--anchor PATH_TO_docker-library_python]

`generate` runs in a scratch copy whose generated files are deleted before every run, so each run
renders and writes every file; `--check` runs against an up-to-date copy. With --anchor, the same
machine times docker-library/python's `apply-templates.sh` (needs bash, jq, gawk) for comparison.
The anchor fetches bashbrew's `jq-template.awk` from GitHub unless `BASHBREW_SCRIPTS` names a
directory holding it (a checkout of docker-library/bashbrew's `scripts/`): without either it would
render empty Dockerfiles, so the script refuses.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from generator.core import paths

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], cwd: Path, before=None) -> float:
    if before:
        before()
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def report(name: str, samples: list[float], files: int) -> None:
    med = statistics.median(samples)
    print(
        f"{name:<34} median {med * 1000:7.1f} ms  (min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f}, n={len(samples)})"
        f"  {med / files * 1000:.2f} ms/file"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--anchor", type=Path, help="a checkout of docker-library/python to time apply-templates.sh in")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy(ROOT / paths.SCHEDULE, work)
        shutil.copy(ROOT / paths.README, work)
        # the schedule's lock and the tool locks are inputs of `generate` (lockfiles/), not outputs
        shutil.copytree(ROOT / paths.LOCKFILES, work / paths.LOCKFILES)
        gen = [sys.executable, "-m", "generator", "--schedule", str(work / paths.SCHEDULE), "generate"]

        def wipe() -> None:
            shutil.rmtree(work / paths.IMAGES, ignore_errors=True)
            (work / paths.RUNTIMES_JSON).unlink(missing_ok=True)

        subprocess.run(gen, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        files = len(list((work / paths.IMAGES).rglob("Dockerfile"))) + 2
        report("generate (all files written)", [timed(gen, ROOT, wipe) for _ in range(args.runs)], files)
        subprocess.run(gen, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        report("generate (nothing changed)", [timed(gen, ROOT) for _ in range(args.runs)], files)
        report("generate --check", [timed([*gen, "--check"], ROOT) for _ in range(args.runs)], files)
        report("python -c pass (interpreter floor)", [timed([sys.executable, "-c", "pass"], ROOT) for _ in range(args.runs)], files)
    if args.anchor:
        anchor = args.anchor.resolve()
        scripts = os.environ.get("BASHBREW_SCRIPTS")
        awk = Path(scripts) / "jq-template.awk" if scripts else anchor / ".jq-template.awk"
        if not awk.is_file() or awk.stat().st_size == 0:
            sys.exit(f"error: {awk} is missing or empty: set BASHBREW_SCRIPTS to docker-library/bashbrew's scripts/ directory")
        n = len(list(anchor.glob("*/*/Dockerfile")))
        samples = [timed(["bash", "apply-templates.sh"], anchor) for _ in range(args.runs)]
        report(f"anchor apply-templates.sh ({n} files)", samples, n)


if __name__ == "__main__":
    main()
