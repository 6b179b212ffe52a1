"""The runtime support schedule: schedule.yaml's decisions (generator/schedule/decisions.py) joined
with its lock (what machines fetched, generator/schedule/lock.py) into typed runtimes.

Everything downstream (resolver, renderer, tool locks, Nix data) reads a `Schedule`; nothing reads
the YAML or the lock directly.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from generator.core import paths, yamlsrc
from generator.schedule import lock as schedule_lock
from generator.schedule.decisions import LegacyRuntime, NewRuntime, OperatingSystem, ScheduleError, ScheduleModel, _vkey, load_policy, wanted_minors
from generator.schedule.lock import BaseImage, CPythonRelease, OsPackages, ScheduleLock

SUPPORTED = "supported"
DEPRECATED = "deprecated"
END_OF_SUPPORT = "end_of_support"


# ./configure options by Python major version, each with why (the Dockerfile says it). 2.x is built
# wide, as Ubuntu's python2.7 and the images the python2 runtime replaces were: the manylinux wheels
# most 2.7 packages publish are cp27mu (UCS-4), and a narrow build (2.x's default) installs none.
CONFIGURE_OPTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "2": (
        (
            "--enable-unicode=ucs4",
            "wide unicode (sys.maxunicode 1114111), as Ubuntu's python2.7: the cp27mu ABI of 2.7's manylinux wheels",
        ),
    ),
    # 3.3+ stores str as PEP 393 says and has no such option
}
# Minors whose release build runs BOLT (llvm-bolt, after PGO + LTO) where the OS's toolchain lock has
# a `bolt-N` package: each kept only on a measurement (benchmarks/interpreter.py; 3.12.3 against
# noble's python3.12 in docs/benchmarks.md). CPython 3.12 is the first to BOLT libpython as well.
BOLT_MINORS = frozenset({"3.12"})
_BOLT_PACKAGE = re.compile(r"bolt-(\d+)")
# The PGO profile task (make's PROFILE_TASK) of minors whose own runs the whole regression suite: 2.7's
# hung in a single-threaded lock wait (docs/benchmarks.md). These are the tests CPython 3.8+ itself
# profiles with (Lib/test/libregrtest/pgo.py), those that 2.7.18 has: the interpreter's hot paths,
# not the suite's sockets, subprocesses and threads.
PGO_TESTS: dict[str, tuple[str, ...]] = {
    "2.7": (
        "test_array",
        "test_base64",
        "test_binascii",
        "test_binop",
        "test_bisect",
        "test_bytes",
        "test_bz2",
        "test_cmath",
        "test_codecs",
        "test_collections",
        "test_complex",
        "test_datetime",
        "test_decimal",
        "test_difflib",
        "test_float",
        "test_functools",
        "test_generators",
        "test_hashlib",
        "test_heapq",
        "test_int",
        "test_itertools",
        "test_json",
        "test_long",
        "test_math",
        "test_memoryview",
        "test_operator",
        "test_ordered_dict",
        "test_pickle",
        "test_pprint",
        "test_re",
        "test_set",
        "test_sqlite",
        "test_struct",
        "test_time",
        "test_unicode",
        "test_xml_etree",
        "test_xml_etree_c",
    ),
}
# Minors built --disable-shared, as Ubuntu links their python: with a libpython.so, 2.7's distutils
# links every extension module to it (build_ext.get_libraries), so the interpreter cannot be linked
# from its objects beside one. Embedders (uWSGI) link the static libpython, which is kept.
STATIC_ONLY_MINORS = frozenset({"2.7"})
# Minors whose python3.X is linked from libpython's objects, as Debian and Ubuntu link theirs, while
# libpython3.X.so is still built (from the same PGO + LTO objects) and installed for embedders (uWSGI,
# mod_wsgi); with Debian's -fstack-protector for the same minors. Measured on 3.12.3 (docs/benchmarks.md):
# the interpreter on libpython.so was 8 % slower than a static one. Only minors whose extension
# modules do not link libpython (3.8+), or the process would hold two interpreters.
STATIC_INTERPRETER_MINORS = frozenset({"3.12"})


@dataclass(frozen=True)
class Runtime:
    """One runtime of the schedule, joined with its OS and interpreter."""

    id: str
    style: Literal["new", "legacy"]
    os_id: str
    os: OperatingSystem
    base: BaseImage  # from the lock
    version: str  # the full release: the lock's current patch of the minor, or the legacy fixed one
    interpreter: CPythonRelease  # from the lock
    packages: OsPackages | None  # the OS's package lock (the closures of build_, runtime_ and devel_packages)
    python_end_of_support: dt.date
    python_version_settings: tuple[str, ...]
    legacy_default: bool
    default_for_os: bool
    image: str

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def glibc(self) -> tuple[int, int]:
        """The OS's glibc as (major, minor): which manylinux wheels its images can install."""
        major, minor = self.os.glibc.split(".")
        return int(major), int(minor)

    @property
    def configure_options(self) -> tuple[tuple[str, str], ...]:
        """(option, why) of CPython's ./configure for this runtime's major version, beyond the template's own."""
        return CONFIGURE_OPTIONS.get(self.version.split(".")[0], ())

    @property
    def bolt(self) -> str | None:
        """The directory of llvm-bolt and merge-fdata for a release build's --enable-bolt, or None:
        a minor of BOLT_MINORS on an OS whose toolchain lock installs LLVM's `bolt-N` (its /usr/lib/llvm-N/bin)."""
        if self.minor not in BOLT_MINORS or self.packages is None:
            return None
        found = sorted(int(m.group(1)) for d in self.packages.build if (m := _BOLT_PACKAGE.fullmatch(d.name)))
        return f"/usr/lib/llvm-{found[-1]}/bin" if found else None

    @property
    def pgo_tests(self) -> tuple[str, ...]:
        """The regression tests of this minor's PGO profile task, or () for CPython's own task."""
        return PGO_TESTS.get(self.minor, ())

    @property
    def static_only(self) -> bool:
        """Whether the interpreter is built without libpython.so (libpython.a kept for embedders)."""
        return self.minor in STATIC_ONLY_MINORS

    @property
    def static_interpreter(self) -> bool:
        """Whether python3.X is linked from libpython's objects rather than against libpython.so."""
        return self.minor in STATIC_INTERPRETER_MINORS

    @property
    def prefix(self) -> str:
        return f"/opt/python{self.minor}"

    @property
    def end_of_support(self) -> dt.date:
        return min(self.os.end_of_support, self.python_end_of_support)

    def deprecated_from(self, window_days: int) -> dt.date:
        return self.end_of_support - dt.timedelta(days=window_days)

    @property
    def base_name(self) -> str:
        return self.os.image.rsplit(":", 1)[0]

    @property
    def base_tag(self) -> str:
        return self.os.image.rsplit(":", 1)[1]

    @property
    def base_reference(self) -> str:
        return f"{self.os.image}@{self.base.digest}"

    @property
    def tarballs(self) -> list[tuple[str, str]]:
        """(file name, sha256) of the CPython source tarballs a build takes, preferred first: the
        .tar.xz where its sha256 is pinned, then the .tgz where its is (both beside the lock's url; the
        lock refuses a release with neither)."""
        pinned = [("tar.xz", self.interpreter.tar_xz_sha256), ("tgz", self.interpreter.sha256)]
        return [(f"Python-{self.version}.{ext}", sha) for ext, sha in pinned if sha]


@dataclass(frozen=True)
class Schedule:
    path: Path
    model: ScheduleModel
    pins: ScheduleLock

    @cached_property
    def runtimes(self) -> dict[str, Runtime]:
        """All runtimes by ID, new style first, each group in schedule order."""
        m, lock = self.model, self.pins
        newest: dict[str, str] = {}
        for n in m.runtimes:
            if n.os not in newest or _vkey(n.python) > _vkey(newest[n.os]):
                newest[n.os] = n.python
        out: dict[str, Runtime] = {}
        listed: list[NewRuntime | LegacyRuntime] = [*m.runtimes, *m.legacy_runtimes]
        for r in listed:
            legacy = isinstance(r, LegacyRuntime)
            if isinstance(r, LegacyRuntime):  # a legacy runtime pins its own patch version and settings
                version, settings, legacy_default = r.python, tuple(r.python_version), r.default
            else:
                version, settings, legacy_default = lock.python_minors[r.python], (), False
            minor = ".".join(version.split(".")[:2])
            out[r.id] = Runtime(
                id=r.id,
                style="legacy" if legacy else "new",
                os_id=r.os,
                os=m.operating_systems[r.os],
                base=lock.base_images[r.os],
                version=version,
                interpreter=lock.cpython[version],
                packages=lock.os_packages.get(r.os),
                python_end_of_support=m.python_releases[minor].end_of_support,
                python_version_settings=settings,
                legacy_default=legacy_default,
                default_for_os=not legacy and newest[r.os] == r.python,
                image=f"{m.publish.repository}/{r.id}:{version}",
            )
        return out

    def status(self, runtime: Runtime, on: dt.date) -> str:
        """Derived, never typed: past the end → end_of_support; inside the window → deprecated."""
        if on >= runtime.end_of_support:
            return END_OF_SUPPORT
        if on >= runtime.deprecated_from(self.model.policy.deprecation_window_days):
            return DEPRECATED
        return SUPPORTED

    def new_style_os(self) -> dict[str, list[Runtime]]:
        """OS id → its new-style runtimes, oldest Python first."""
        out: dict[str, list[Runtime]] = {}
        for r in self.runtimes.values():
            if r.style == "new":
                out.setdefault(r.os_id, []).append(r)
        return {k: sorted(v, key=lambda r: _vkey(r.version)) for k, v in sorted(out.items())}

    def legacy(self) -> list[Runtime]:
        return [r for r in self.runtimes.values() if r.style == "legacy"]

    def newest(self) -> Runtime:
        """The flake's default package: newest Python, on the OS supported longest.

        Deliberately independent of today's date, so generated files never drift by themselves.
        """
        return max(self.runtimes.values(), key=lambda r: (_vkey(r.version), r.os.end_of_support))


def load(path: Path | str, display: str | None = None, pins: ScheduleLock | None = None) -> Schedule:
    """Load and validate a schedule and its lock (or the `pins` given); raise ScheduleError/ScheduleLockError."""
    path = Path(path)
    model, doc = load_policy(path, display)
    lock = pins if pins is not None else schedule_lock.load(schedule_lock.path_for(path))
    problems = missing_pins(doc, model, lock)
    if problems:
        raise ScheduleError(problems)
    return Schedule(path=path, model=model, pins=lock)


def wanted_releases(model: ScheduleModel, lock: ScheduleLock) -> list[str]:
    """Every CPython release a runtime builds: the legacy fixed ones and each minor's current patch."""
    found = {r.python for r in model.legacy_runtimes} | {lock.python_minors[m] for m in wanted_minors(model) if m in lock.python_minors}
    return sorted(found, key=_vkey)


def missing_pins(doc: yamlsrc.Document, model: ScheduleModel, lock: ScheduleLock) -> list[str]:
    """What the schedule needs that its lock does not pin: refresh fetches it; nothing is guessed."""
    out = []
    fix = "run `python -m generator refresh` where the registry and python.org are reachable"
    for os_id, os_ in model.operating_systems.items():
        base = lock.base_images.get(os_id)
        line = doc.line(("operating_systems", os_id, "image")) or 1
        if base is None:
            out.append(f"{doc.file}:{line}: operating_systems.{os_id}: {paths.SCHEDULE_LOCK} pins no digest for {os_.image}; {fix}")
        elif base.image != os_.image:
            out.append(f"{doc.file}:{line}: operating_systems.{os_id}.image: {os_.image} is new; {paths.SCHEDULE_LOCK} pins {base.image}; {fix}")
        if os_id not in lock.os_packages:
            out.append(
                f"{doc.file}:{line}: operating_systems.{os_id}: {paths.SCHEDULE_LOCK} has no package lock for it; "
                f"run `python -m generator refresh --only packages {os_id}` (with --os-base {os_id}=IMAGE where the pinned base cannot be pulled)"
            )
    for minor in wanted_minors(model):
        if minor not in lock.python_minors:
            line = doc.line(("python_releases", minor)) or 1
            out.append(f"{doc.file}:{line}: Python {minor}: {paths.SCHEDULE_LOCK} pins no patch release of it; {fix}")
    for version in wanted_releases(model, lock):
        if version not in lock.cpython:
            out.append(f"{doc.file}: CPython {version}: {paths.SCHEDULE_LOCK} has no tarball sha256 for it; {fix}")
    return out


def load_given(path: Path | None) -> Schedule:
    """The schedule a command was given (--schedule), else the default one, joined with its lock."""
    path = path or default_path()
    return load(path, display=str(path))


def default_path() -> Path:
    """schedule.yaml in the working directory, else the one of this checkout."""
    here = Path(paths.SCHEDULE)
    return here if here.is_file() else Path(__file__).resolve().parents[2] / paths.SCHEDULE
