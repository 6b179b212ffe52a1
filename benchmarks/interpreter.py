"""How fast is the interpreter this project compiles? Side by side, in one run, with the distribution's own.

    .venv/bin/python benchmarks/interpreter.py IMAGE [--previous IMAGE] [--distro debian:bookworm] [--fast]
        [--rounds N] [--benchmarks a,b,…] [--json-dir DIR]

IMAGE is a runtime image as `python -m generator build` makes it. The references are interpreters of
the same version, each in a container: the distribution's own build (`--distro`; by default the one
whose package carries the same CPython release as the image tests' runtimes: Debian bookworm's
python3.11 for 3.11, Ubuntu noble's python3.12 for 3.12), in a root that mmdebstrap makes from the
archive with that one package (cached as a tarball, imported into podman), and, with --previous, an
earlier build of this project (say, before a flag change).

The benchmarks are pyperformance's that need only the standard library and pyperf, run by pyperf.
Both come from PyPI as wheels pinned by sha256 below, fetched and checked on the host (`pip download
--require-hashes`) and bind-mounted read-only: every container runs with the network off, as uid 1000,
`python run_benchmark.py` and the worker processes pyperf spawns. Interleaved: each round runs every
benchmark on every interpreter, the interpreters' order rotating from one benchmark and one round to
the next, so load from other jobs on the machine falls on all of them alike.

It prints each interpreter's version and build flags (`sysconfig`), a table of per-benchmark medians
(over every value of every round) with IMAGE's speed-up against each reference (reference's time /
IMAGE's time: above 1.00, IMAGE is faster), the geometric mean of those, and its spread over the
rounds (the noise: the geometric means computed round by round, min to max). pyperf's JSON of every
interpreter (all rounds merged) goes to --json-dir. Progress goes to stderr.

--fast: pyperf with 3 processes of 3 values each (instead of its 20 × 3) and 3 rounds: about
10 minutes for three interpreters on 2 cores; --processes/--values/--rounds set them directly.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.core.cache import cache_root  # noqa: E402

CACHE = cache_root() / "bench-interpreter"
# pyperf for the interpreters under test (3.11+), pyperformance for its benchmarks' sources: PyPI's files, by sha256.
WHEELS = {
    "pyperf": ("2.11.0", "11c0034bb29a79796417a6e5a7852ff4814a33cce24aeb6d268676c3a52dfda6"),
    "pyperformance": ("1.14.0", "94068ac2935b6952ccb5e8a302eb9cebc26e82454494bef6e53822738adf0049"),
}
# pyperformance's benchmarks that import nothing beyond the standard library and pyperf.
BENCHMARKS = [
    *("chaos", "deltablue", "deepcopy", "fannkuch", "float", "go", "hexiom", "json_dumps", "json_loads", "logging"),
    *("nbody", "nqueens", "pidigits", "raytrace", "regex_compile", "regex_effbot", "regex_v8", "richards", "spectral_norm", "unpack_sequence"),
]
# minor → the distribution whose own package of it carries the release the image tests build.
DISTRO = {"3.11": "debian:bookworm", "3.12": "ubuntu:noble", "3.10": "ubuntu:jammy", "3.13": "debian:trixie"}
MIRRORS = {"debian": "http://deb.debian.org/debian", "ubuntu": "http://archive.ubuntu.com/ubuntu"}
FLAGS = (
    "import sys, sysconfig\n"
    "v = sysconfig.get_config_var\n"
    "args = v('CONFIG_ARGS') or ''\n"
    "linked = 'libpython' in open('/proc/self/maps').read()\n"
    "print('%s|%s|%s|%s|%s' % (sys.version.split()[0], linked, '--enable-optimizations' in args,"
    " '--with-lto' in args, ' '.join(f for f in (v('CFLAGS') or '').split()"
    " if f.startswith(('-O', '-flto', '-fno-semantic', '-fno-omit', '-fprofile')))))\n"
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True)


def fetch_tools() -> Path:
    """CACHE/lib: pyperf and pyperformance's benchmark directories, from the hash-checked wheels."""
    lib = CACHE / f"lib-{'-'.join(v for v, _ in WHEELS.values())}"
    if (lib / "pyperf" / "__init__.py").exists():
        return lib
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    req = wheels / "requirements.txt"
    req.write_text("".join(f"{name}=={v} --hash=sha256:{sha}\n" for name, (v, sha) in WHEELS.items()))
    log("fetching pyperf and pyperformance from PyPI (hash-checked)")
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--require-hashes"]
    subprocess.run([*pip, "-r", str(req), "-d", str(wheels)], check=True)
    partial = lib.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for name, (version, _sha) in WHEELS.items():
        with zipfile.ZipFile(wheels / f"{name}-{version}-py3-none-any.whl") as whl:
            for member in whl.namelist():
                if name == "pyperf" and member.startswith("pyperf/"):
                    whl.extract(member, partial)
                elif member.startswith("pyperformance/data-files/benchmarks/bm_"):
                    bench = member.split("/")[3].removeprefix("bm_")
                    if bench in BENCHMARKS:
                        target = partial / "benchmarks" / member.split("/", 3)[3]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(whl.read(member))
    os.replace(partial, lib)
    return lib


def distro_image(spec: str, package: str) -> str:
    """localhost/flex-bench/SUITE-PACKAGE: a root made by mmdebstrap from the archive, with PACKAGE installed."""
    vendor, _, suite = spec.partition(":")
    if vendor not in MIRRORS or not suite:
        raise SystemExit(f"--distro {spec!r}: expected debian:SUITE or ubuntu:SUITE")
    tag = f"localhost/flex-bench/{suite}-{package}:latest"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    tar = CACHE / "roots" / f"{suite}-{package}.tar"
    if not tar.exists():
        tar.parent.mkdir(parents=True, exist_ok=True)
        mirror = MIRRORS[vendor]
        suites = [suite, f"{suite}-updates"] + ([f"{suite}-security"] if vendor == "ubuntu" else [])
        sources = [f"deb {mirror} {s} main" for s in suites]
        keyring = []
        if vendor == "ubuntu":  # Debian's keyring does not hold Ubuntu's keys: the image tests' chain of signed indices does
            from tests import ubuntu

            keys = Path(tempfile.mkdtemp())
            os.chmod(keys, 0o755)
            shutil.copyfile(ubuntu.keyring(), keys / "ubuntu-archive-keyring.gpg")
            os.chmod(keys / "ubuntu-archive-keyring.gpg", 0o644)
            keyring = [f"--keyring={keys}"]
        log(f"making {suite}'s root with {package} (mmdebstrap)")
        partial = tar.with_suffix(".partial.tar")
        cmd = ["mmdebstrap", "--variant=minbase", "--quiet", f"--include={package}", *keyring, suite, str(partial), *sources]
        subprocess.run(cmd, check=True, capture_output=True)
        os.replace(partial, tar)
    podman("import", str(tar), tag)
    return tag


def run_benchmark(image: str, python: str, lib: Path, out: Path, bench: str, name: str, pyperf_args: list[str]) -> None:
    podman(
        "run", "--rm", "--network=none", "--hostname=pyperf", "--user", "1000:1000", "--entrypoint=", "-e", "PYTHONPATH=/bench", "-e", "HOME=/tmp",
        "-v", f"{lib}:/bench:ro", "-v", f"{out}:/out", image,
        python, f"/bench/benchmarks/{bench}/run_benchmark.py", "--inherit-environ=PYTHONPATH", "--quiet", *pyperf_args, "-o", f"/out/{name}",
    )  # fmt: skip


def load(lib: Path):
    sys.path.insert(0, str(lib))
    import pyperf

    return pyperf


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("image")
    ap.add_argument("--previous", help="an earlier build of this project's runtime image, as a second reference")
    ap.add_argument("--distro", help="debian:SUITE or ubuntu:SUITE whose python3.X is the reference (default: by the image's minor)")
    ap.add_argument("--fast", action="store_true", help="3 rounds of pyperf with 3 processes × 3 values")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--processes", type=int)
    ap.add_argument("--values", type=int)
    ap.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    ap.add_argument("--json-dir", type=Path, default=Path("bench-interpreter"))
    ap.add_argument("--from-runs", action="store_true", help="run nothing: report again from --json-dir/runs of an earlier run")
    args = ap.parse_args()
    unknown = sorted(set(args.benchmarks.split(",")) - set(BENCHMARKS))
    if unknown:
        ap.error(f"--benchmarks: unknown {', '.join(unknown)}; valid: {', '.join(BENCHMARKS)}")
    fast = {"rounds": 3, "processes": 3, "values": 3} if args.fast else {"rounds": 6, "processes": 10, "values": 3}
    for key, value in fast.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main() -> None:
    args = parse_args()
    benches = args.benchmarks.split(",")
    lib = fetch_tools()
    minor = podman("run", "--rm", "--network=none", "--entrypoint=", args.image, "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])")
    minor_s = minor.stdout.strip()
    distro = args.distro or DISTRO.get(minor_s)
    if distro is None:
        raise SystemExit(f"no default --distro for Python {minor_s}; give one (debian:SUITE or ubuntu:SUITE)")
    runs = {"image": (args.image, "python"), distro: (distro_image(distro, f"python{minor_s}"), f"/usr/bin/python{minor_s}")}
    if args.previous:
        runs["previous"] = (args.previous, "python")
    labels = list(runs)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    print(f"{started}, {os.cpu_count()} CPUs ({cpu}), load average {os.getloadavg()[0]:.2f} at the start")
    print(f"pyperf {WHEELS['pyperf'][0]}, pyperformance {WHEELS['pyperformance'][0]}'s benchmarks; {args.rounds} interleaved rounds of")
    print(f"{args.processes} processes × {args.values} values, in containers with --network=none as uid 1000\n")
    for label, (image, python) in runs.items():
        flags = podman("run", "--rm", "--network=none", "--entrypoint=", image, python, "-c", FLAGS).stdout.strip().split("|")
        built = f"configure --enable-optimizations={flags[2]} --with-lto={flags[3]}"  # Debian's rules do PGO/LTO without them
        print(f"{label:>16}: {image}\n{'':>16}  Python {flags[0]}, libpython.so={flags[1]}, {built}, CFLAGS: {flags[4]}")
    pyperf_args = ["-p", str(args.processes), "-n", str(args.values), "-w", "1"]
    out = args.json_dir / "runs"  # every round's pyperf JSON, kept (pyperf merges runs of one host name: --hostname)
    if args.from_runs:
        return report(load(lib), out, labels, benches, args)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.chmod(out, 0o777)
    step, total = 0, args.rounds * len(benches) * len(labels)
    for rnd in range(args.rounds):
        for i, bench in enumerate(benches):
            order = labels[(rnd + i) % len(labels) :] + labels[: (rnd + i) % len(labels)]
            for label in order:
                step += 1
                log(f"[{step}/{total}] round {rnd + 1}: {bench} on {label}")
                image, python = runs[label]
                run_benchmark(image, python, lib, out, f"bm_{bench}", f"{labels.index(label)}.{bench}.{rnd}.json", pyperf_args)
    report(load(lib), out, labels, benches, args)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


def report(pyperf, out: Path, labels: list[str], benches: list[str], args: argparse.Namespace) -> None:
    """The table, the geometric means with their round-by-round spread, and the merged pyperf JSON."""
    medians: dict[tuple[str, str, int | None], float] = {}
    args.json_dir.mkdir(parents=True, exist_ok=True)
    names: list[str] = []  # pyperf's benchmark names: some scripts run several (logging_format, logging_silent, …)
    for n, label in enumerate(labels):
        merged: dict[str, object] = {}
        for bench in benches:
            for rnd in range(args.rounds):
                for b in pyperf.BenchmarkSuite.load(str(out / f"{n}.{bench}.{rnd}.json")).get_benchmarks():
                    name = b.get_name()
                    medians[label, name, rnd] = statistics.median(b.get_values())
                    if name in merged:
                        merged[name].add_runs(b)  # type: ignore[attr-defined]
                    else:
                        merged[name] = b
                        names += [name] if name not in names else []
        for name, b in merged.items():
            medians[label, name, None] = statistics.median(b.get_values())  # type: ignore[attr-defined]
        path = args.json_dir / f"{label.replace(':', '-')}.json"
        path.unlink(missing_ok=True)
        pyperf.BenchmarkSuite(list(merged.values())).dump(str(path))
    benches = names
    refs = labels[1:]
    head = f"{'benchmark':<22}" + "".join(f"{label[:16]:>18}" for label in labels) + "".join(f"{'vs ' + r[:12]:>17}" for r in refs)
    print("\nmedian time per benchmark (ms); speed-up = reference's time / the image's\n" + head)
    for bench in benches:
        times = "".join(f"{medians[label, bench, None] * 1e3:>18.4g}" for label in labels)
        ratios = "".join(f"{medians[r, bench, None] / medians['image', bench, None]:>16.3f}×" for r in refs)
        print(f"{bench:<22}{times}{ratios}")
    print()
    for r in refs:
        overall = geomean([medians[r, b, None] / medians["image", b, None] for b in benches])
        per_round = [geomean([medians[r, b, k] / medians["image", b, k] for b in benches]) for k in range(args.rounds)]
        verdict = "faster" if overall >= 1 else "slower"
        print(
            f"geometric mean, image vs {r}: {overall:.3f}× ({verdict}; {1 / overall:.3f}× the reference's time),"
            f" rounds {min(per_round):.3f}–{max(per_round):.3f}× (n={args.rounds}, {len(benches)} benchmarks)"
        )
    print(f"pyperf JSON: {args.json_dir}/")


if __name__ == "__main__":
    main()
