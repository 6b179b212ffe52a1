"""Benchmark `lock` over the whole matrix: whole process, median of N runs.

    .venv/bin/python benchmarks/bench_lock.py [--runs 3] [--noop-runs 7] [--cold]

--runs 0 (the tests' smoke run) times only the no-op relock and --check, over the committed locks:
no full relock, so no PyPI and no tool install.

Full relock: a scratch copy of the schedule and the committed lockfiles/*.in, whose .txt and
.wheels.json files are deleted before every run, locked against real PyPI (every runtime resolved
by the tool it gets on this machine; the output names them). No-op relock: the same copy, up to
date, locked again (every runtime skipped: no resolver runs, no network). The pinned lock tools
are installed once before timing (~/.cache/flex-python/lock-tools); the resolvers' HTTP caches are
warm unless --cold, which gives each full run an empty cache.
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


def timed(cmd: list[str], env: dict[str, str], before=None) -> tuple[float, str]:
    if before:
        before()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return elapsed, proc.stdout


def report(name: str, samples: list[float], runtimes: int) -> None:
    med = statistics.median(samples)
    print(
        f"{name:<36} median {med * 1000:9.1f} ms  (min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f}, n={len(samples)})"
        f"  {med / runtimes * 1000:.1f} ms/runtime"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="full relocks (each resolves the whole matrix against PyPI; 0: none)")
    ap.add_argument("--noop-runs", type=int, default=7)
    ap.add_argument("--cold", action="store_true", help="an empty resolver cache for every full relock")
    ap.add_argument("--jobs", type=int, help="passed to `lock --jobs` (default: the CPU count)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "tree"
        (work / paths.LOCKFILES).mkdir(parents=True)
        shutil.copy(ROOT / paths.SCHEDULE, work)
        shutil.copy(ROOT / paths.README, work)
        shutil.copy(ROOT / paths.SCHEDULE_LOCK, work / paths.LOCKFILES)  # an input of `lock`, like the .in files
        inputs = sorted((ROOT / paths.LOCKFILES).glob("*.in"))
        for p in inputs:
            shutil.copy(p, work / paths.LOCKFILES)
            if not args.runs:  # the committed locks, up to date: the no-op relock needs nothing else
                for ext in (".txt", ".wheels.json"):
                    shutil.copy(p.with_suffix(ext), work / paths.LOCKFILES)
        lock = [sys.executable, "-m", "generator", "--schedule", str(work / paths.SCHEDULE), "lock"]
        if args.jobs:
            lock += ["--jobs", str(args.jobs)]
        env = dict(os.environ)
        runtimes = len(inputs)

        def wipe() -> None:
            for p in (work / paths.LOCKFILES).iterdir():
                if p.name.endswith((".txt", ".wheels.json")):
                    p.unlink()
            if args.cold:
                cache = Path(tmp) / "cache"
                shutil.rmtree(cache, ignore_errors=True)
                env["FLEX_PYTHON_LOCK_CACHE"] = str(cache)

        print(f"{runtimes} runtimes, {os.cpu_count()} CPUs")
        if args.runs:
            wipe()
            _, out = timed(lock, env)  # warm-up: installs the pinned lock tools if this machine lacks them
            print("tools per runtime (warm-up run):")
            for line in out.splitlines():
                if " locked with " in line:
                    print("   ", line.split("] ", 1)[1].rsplit(" in ", 1)[0])
            full = []
            for _ in range(args.runs):
                elapsed, out = timed(lock, env, wipe)
                assert f"{runtimes} runtime(s): {runtimes} locked" in out, out
                full.append(elapsed)
            report("lock (full relock, PyPI" + (", cold)" if args.cold else ")"), full, runtimes)
        noop = []
        for _ in range(args.noop_runs):
            elapsed, out = timed(lock, env)
            assert f"{runtimes} runtime(s): {runtimes} up to date" in out, out
            noop.append(elapsed)
        report("lock (no-op: every runtime skipped)", noop, runtimes)
        report("lock --check", [timed([*lock, "--check"], env)[0] for _ in range(args.noop_runs)], runtimes)
        report("python -c pass (interpreter floor)", [timed([sys.executable, "-c", "pass"], env)[0] for _ in range(args.noop_runs)], runtimes)


if __name__ == "__main__":
    main()
