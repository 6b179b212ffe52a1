"""How fast is the interpreter this project compiles? Side by side, in one run, with the distribution's own.

    .venv/bin/python benchmarks/interpreter.py IMAGE [--previous IMAGE] [--distro debian:bookworm] [--fast]
        [--rounds N] [--benchmarks a,b,…] [--json-dir DIR]

IMAGE is a runtime image as `python -m generator build` makes it. The references are interpreters of
the same version, each in a container: the distribution's own build (`--distro`; by default the one
whose package carries the same CPython release as the image tests' runtimes: Debian bookworm's
python3.11 for 3.11, Ubuntu noble's python3.12 for 3.12; for 2.7, the python2 runtime's own base,
Ubuntu xenial, whose python2.7 is the 2.7.12 it pins), in a root that mmdebstrap makes from the
archive with that one package (cached as a tarball, imported into podman), and, with --previous, an
earlier build of this project (say, before a flag change).

The benchmarks are pyperformance's that need only the standard library and pyperf, run by pyperf.
Both come from PyPI as files pinned by sha256 below, fetched and checked on the host (`pip download
--require-hashes`) and bind-mounted read-only: every container runs with the network off, as uid 1000,
`python run_benchmark.py` and the worker processes pyperf spawns. Interleaved: each round runs every
benchmark on every interpreter, the interpreters' order rotating from one benchmark and one round to
the next, so load from other jobs on the machine falls on all of them alike.

A 2.7 image (the python2 runtime) runs the last releases that support 2.7, in a lib of their own:
pyperf 1.7.1 with six and the statistics backport it imports there, and pyperformance 0.9.1, whose
benchmarks are modules, each a script with pyperf's Runner (`python2.7 /bench/benchmarks/bm_X.py`);
the host still reads every JSON with the 3.x lib's pyperf 2.11:

    .venv/bin/python benchmarks/interpreter.py localhost/flex-test/python2:a [--distro ubuntu:xenial] --fast

Of the 20 benchmarks, 19 run on 2.7, each checked by one run on the python2 image that imported
nothing beyond the standard library, six, statistics and pyperf (and regex_compile its siblings
bm_regex_effbot and bm_regex_v8); left out: deepcopy, which pyperformance 0.9.1 does not have.
2.7's times are not comparable with 3.x's (other versions of the benchmarks' sources).

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
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.core import http  # noqa: E402
from generator.core.cache import cache_root  # noqa: E402

CACHE = cache_root() / "bench-interpreter"
# pyperf for the interpreters under test (3.11+), pyperformance for its benchmarks' sources: PyPI's files, by sha256.
WHEELS = {
    "pyperf": ("2.11.0", "11c0034bb29a79796417a6e5a7852ff4814a33cce24aeb6d268676c3a52dfda6"),
    "pyperformance": ("1.14.0", "94068ac2935b6952ccb5e8a302eb9cebc26e82454494bef6e53822738adf0049"),
}
# 2.7: the last releases that run on it. pyperformance 0.9.1's py2 wheel (its benchmarks are modules,
# pyperformance/benchmarks/bm_*.py, importing six); pyperf 1.7.1 imports six and, before 3.4, statistics.
WHEELS_27 = {
    "pyperf": ("1.7.1", "893ec2ebccb7b544e55fcf93e8efbc7d8ebbc7b59cf91139907cc0cdb3d68c1c"),
    "pyperformance": ("0.9.1", "06a9c7ab1321590c65b620beff1da30963d0dd600b470534e112e3d50be5fc92"),
    "six": ("1.17.0", "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"),
}
# The statistics backport (its 1.0.3.5, what pip picks on 2.7) has no wheel: its sdist, of which only the package
# (statistics/__init__.py, standard library only; the docutils it declares is never imported) is unpacked. Fetched
# by URL, not by pip download, which would run its setup.py for the metadata.
SDISTS_27 = {
    "statistics": (
        "1.0.3.5",
        "2dc379b80b07bf2ddd5488cad06b2b9531da4dd31edb04dc9ec0dc226486c138",
        "https://files.pythonhosted.org/packages/bb/3a/ae99a15e65636559d936dd2159d75af1619491e8cb770859fbc8aa62cef6/statistics-1.0.3.5.tar.gz",
    ),
}
# pyperformance's benchmarks that import nothing beyond the standard library and pyperf.
BENCHMARKS = [
    *("chaos", "deltablue", "deepcopy", "fannkuch", "float", "go", "hexiom", "json_dumps", "json_loads", "logging"),
    *("nbody", "nqueens", "pidigits", "raytrace", "regex_compile", "regex_effbot", "regex_v8", "richards", "spectral_norm", "unpack_sequence"),
]
BENCHMARKS_27 = [b for b in BENCHMARKS if b != "deepcopy"]  # pyperformance 0.9.1 has no deepcopy


@dataclass(frozen=True)
class Kit:
    """What runs the benchmarks in the containers for one line of Python: the files, the benchmarks, their scripts."""

    name: str  # the cache directory's prefix
    wheels: dict[str, tuple[str, str]]
    sdists: dict[str, tuple[str, str, str]]
    benchmarks: list[str]
    script: str  # a benchmark's script, under the lib
    python: str | None = None  # pip download's --python-version (which of pyperformance's wheels)

    @property
    def versions(self) -> str:
        return f"pyperf {self.wheels['pyperf'][0]}, pyperformance {self.wheels['pyperformance'][0]}"


PY3 = Kit("lib", WHEELS, {}, BENCHMARKS, "benchmarks/bm_{}/run_benchmark.py")
PY27 = Kit("lib27", WHEELS_27, SDISTS_27, BENCHMARKS_27, "benchmarks/bm_{}.py", python="2.7")
# minor → the distribution whose own package of it carries the release the image tests build.
# 2.7: the python2 runtime's own base (xenial's 2.7.12, schedule.yaml's release; the image tests may build 2.7.18).
DISTRO = {"3.11": "debian:bookworm", "3.12": "ubuntu:noble", "3.10": "ubuntu:jammy", "3.13": "debian:trixie", "2.7": "ubuntu:xenial"}
MIRRORS = {"debian": "http://deb.debian.org/debian", "ubuntu": "http://archive.ubuntu.com/ubuntu"}
FLAGS = (  # runs on 2.7 too
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


def fetch_tools(kit: Kit) -> Path:
    """CACHE/lib-…: pyperf and pyperformance's benchmarks (and, for 2.7, six and statistics), from the hash-checked files."""
    lib = CACHE / f"{kit.name}-{'-'.join(v for v, *_ in (*kit.wheels.values(), *kit.sdists.values()))}"
    if (lib / "pyperf" / "__init__.py").exists():
        return lib
    files = CACHE / kit.name.replace("lib", "wheels")
    files.mkdir(parents=True, exist_ok=True)
    req = files / "requirements.txt"
    req.write_text("".join(f"{name}=={v} --hash=sha256:{sha}\n" for name, (v, sha) in kit.wheels.items()))
    log(f"fetching {', '.join([*kit.wheels, *kit.sdists])} from PyPI (hash-checked)")
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--require-hashes"]
    pip += ["--python-version", kit.python] if kit.python else []
    subprocess.run([*pip, "-r", str(req), "-d", str(files)], check=True)
    partial = lib.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for name, (version, _sha) in kit.wheels.items():
        (wheel,) = files.glob(f"{name}-{version}-*.whl")
        with zipfile.ZipFile(wheel) as whl:
            for member in whl.namelist():
                target = lib_path(member, kit.benchmarks)
                if target:
                    (partial / target).parent.mkdir(parents=True, exist_ok=True)
                    (partial / target).write_bytes(whl.read(member))
    for name, (version, sha, url) in kit.sdists.items():
        sdist = http.fetch_verified(url, sha, files / url.rsplit("/", 1)[1])
        with tarfile.open(sdist) as tar:
            package = f"{name}-{version}/{name}/"
            for member in tar.getmembers():  # the package's own files only: nothing of its setup.py runs
                if member.isfile() and member.name.startswith(package) and member.name.endswith(".py"):
                    target = partial / name / member.name.removeprefix(package)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
    os.replace(partial, lib)
    return lib


def lib_path(member: str, benches: list[str]) -> str | None:
    """Where a wheel's file goes in the lib (None: left out): pyperf's package and six's module as they are, the
    listed benchmarks under benchmarks/ (pyperformance 1.14's directories bm_X/, 0.9.1's modules bm_X.py)."""
    if member.startswith("pyperf/") or member == "six.py":
        return member
    for prefix in ("pyperformance/data-files/benchmarks/", "pyperformance/benchmarks/"):
        rest = member.removeprefix(prefix)
        if rest != member and rest.startswith("bm_"):
            bench = rest.split("/")[0].removeprefix("bm_").removesuffix(".py")
            return f"benchmarks/{rest}" if bench in benches else None
    return None


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
        # The hook (mmdebstrap's own, a no-op where not needed) unpacks the essential packages first and configures them
        # in dpkg's order while init is Essential:yes (init-system-helpers < 1.34: xenial): else systemd's postinst,
        # configured before libpam-runtime wrote /etc/pam.d/common-*, fails (adduser → chfn: "PAM: Critical error").
        hook = "--hook-dir=/usr/share/mmdebstrap/hooks/maybe-jessie-or-older"
        cmd = ["mmdebstrap", "--variant=minbase", "--quiet", hook, f"--include={package}", *keyring, suite, str(partial), *sources]
        made = subprocess.run(cmd, capture_output=True, text=True)
        if made.returncode:
            raise SystemExit(f"mmdebstrap {suite} failed ({made.returncode}):\n{made.stderr[-3000:]}")
        os.replace(partial, tar)
    podman("import", str(tar), tag)
    return tag


def run_benchmark(image: str, python: str, lib: Path, out: Path, script: str, name: str, pyperf_args: list[str]) -> None:
    podman(
        "run", "--rm", "--network=none", "--hostname=pyperf", "--user", "1000:1000", "--entrypoint=", "-e", "PYTHONPATH=/bench", "-e", "HOME=/tmp",
        "-v", f"{lib}:/bench:ro", "-v", f"{out}:/out", image,
        python, f"/bench/{script}", "--inherit-environ=PYTHONPATH", "--quiet", *pyperf_args, "-o", f"/out/{name}",
    )  # fmt: skip


def load(lib: Path):
    """The host's pyperf (2.11, the 3.x lib's): it reads 1.7.1's JSON too (the same format, version 1.0)."""
    sys.path.insert(0, str(lib))
    import pyperf

    return pyperf


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("image")
    ap.add_argument("--previous", help="an earlier build of this project's runtime image, as a second reference")
    ap.add_argument("--distro", help="debian:SUITE or ubuntu:SUITE whose python3.X (python2.7) is the reference (default: by the image's minor)")
    ap.add_argument("--fast", action="store_true", help="3 rounds of pyperf with 3 processes × 3 values")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--processes", type=int)
    ap.add_argument("--values", type=int)
    ap.add_argument("--benchmarks", help=f"comma-separated (default: all that run on the image's Python): {','.join(BENCHMARKS)}")
    ap.add_argument("--json-dir", type=Path, default=Path("bench-interpreter"))
    ap.add_argument("--from-runs", action="store_true", help="run nothing: report again from --json-dir/runs of an earlier run")
    args = ap.parse_args()
    unknown = sorted(set((args.benchmarks or "").split(",")) - {"", *BENCHMARKS})
    if unknown:
        ap.error(f"--benchmarks: unknown {', '.join(unknown)}; valid: {', '.join(BENCHMARKS)}")
    fast = {"rounds": 3, "processes": 3, "values": 3} if args.fast else {"rounds": 6, "processes": 10, "values": 3}
    for key, value in fast.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main() -> None:
    args = parse_args()
    host_lib = fetch_tools(PY3)  # the host reads every interpreter's JSON with its pyperf
    minor = podman("run", "--rm", "--network=none", "--entrypoint=", args.image, "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])")
    minor_s = minor.stdout.strip()
    kit = PY27 if minor_s == "2.7" else PY3
    benches = args.benchmarks.split(",") if args.benchmarks else kit.benchmarks
    missing = [b for b in benches if b not in kit.benchmarks]
    if missing:
        raise SystemExit(f"--benchmarks: {', '.join(missing)}: not in {kit.versions} (Python {minor_s}); valid: {', '.join(kit.benchmarks)}")
    lib = fetch_tools(kit)
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
    print(f"{kit.versions}'s benchmarks; {args.rounds} interleaved rounds of")
    print(f"{args.processes} processes × {args.values} values, in containers with --network=none as uid 1000\n")
    for label, (image, python) in runs.items():
        flags = podman("run", "--rm", "--network=none", "--entrypoint=", image, python, "-c", FLAGS).stdout.strip().split("|")
        built = f"configure --enable-optimizations={flags[2]} --with-lto={flags[3]}"  # Debian's rules do PGO/LTO without them
        print(f"{label:>16}: {image}\n{'':>16}  Python {flags[0]}, libpython.so={flags[1]}, {built}, CFLAGS: {flags[4]}")
    pyperf_args = ["-p", str(args.processes), "-n", str(args.values), "-w", "1"]
    out = args.json_dir / "runs"  # every round's pyperf JSON, kept (pyperf merges runs of one host name: --hostname)
    if args.from_runs:
        return report(load(host_lib), out, labels, benches, args)
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
                run_benchmark(image, python, lib, out, kit.script.format(bench), f"{labels.index(label)}.{bench}.{rnd}.json", pyperf_args)
    report(load(host_lib), out, labels, benches, args)
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
