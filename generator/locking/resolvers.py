"""The resolvers: one interface, three back-ends, and the rule that picks the correct one per target.

1. ``PipCompile``: pip-compile under a real CPython of the target's minor version (pyenv, ``pythonX.Y``
   on PATH, the host, or ``--interpreter X.Y=PATH``), from a tool venv with the pip-tools release
   that supports it.
2. else, for Python 3.6 and newer, ``Uv``: ``uv pip compile --python-version X.Y.Z`` evaluates
   markers and Requires-Python for the target version it is given.
3. Python 3.4 and 3.5 (no interpreter, and uv refuses them): ``PipReport``, pip's own resolver
   (``pip install --dry-run --report --python-version X.Y --only-binary=:all:``), refusing when any
   dependency marker would come out differently for the target than for the host.
4. Python 2.7 without a 2.7 interpreter: refused, with what to do.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from generator.core.http import public_url
from generator.locking import requirements as app_requirements
from generator.locking.index import canonical
from generator.locking.interpreters import Interpreter, clean_env, find_interpreter
from generator.locking.lockfile import Made, parse_lock, platform_tags, requirement_lines
from generator.locking.target import HOST_PIP, UV_VERSION, LockError, Target, pip_tools_spec
from generator.locking.toolenv import host_tools, lock_cache_dir, pip_tools_env, run, tail

_UV_MANYLINUX = (17, 28, *range(31, 41))
_NETWORK = re.compile(
    r"NewConnectionError|ProxyError|Failed to fetch|Connection refused|Max retries exceeded|Name or service not known|tunnel error|timed out"
)
_HOST = "CPython " + ".".join(map(str, sys.version_info[:3]))  # the host tools venv runs the host's own Python


class Resolver(Protocol):
    """Resolves a target's .in into pins with hashes; raises LockError saying why it could not."""

    tool: ClassVar[str]

    def resolve(self, t: Target, index: str, *, upgrade: bool, scratch: Path, in_text: str) -> Made: ...


def choose(t: Target, tool: str = "auto", given: dict[str, str] | None = None) -> Resolver:
    """The correct resolver for a target on this machine, or LockError saying what to do."""
    minor = t.minor
    mt = t.minor_text
    if tool in ("auto", "pip-compile") and pip_tools_spec(minor):
        interp, looked = find_interpreter(minor, given)
        if interp:
            return PipCompile(interp)
        if tool == "pip-compile":
            raise LockError(
                f"pip-compile needs a CPython {mt} interpreter and none was found (looked at {', '.join(looked)}); pass --interpreter {mt}=PATH"
            )
    elif tool == "pip-compile":
        raise LockError(f"no pip-tools release is known to run on Python {mt}; use --tool pip-report or --tool auto")
    if tool in ("auto", "uv"):
        if minor >= (3, 6):
            return Uv()
        if tool == "uv":
            raise LockError(f"uv resolves for Python 3.6 and newer only, not {mt}")
    if tool == "pip-report" or (tool == "auto" and minor[0] == 3):
        return PipReport()
    raise LockError(
        f"no correct way to lock for Python {mt} here: no CPython {mt} interpreter was found, uv cannot resolve for Python 2, and "
        f"pip's target mode would need wheels for the sdist-only dependencies; install CPython {mt} (e.g. `pyenv install {mt}`) "
        f"or pass --interpreter {mt}=PATH"
    )


# --- what the back-ends share ----------------------------------------------------------------------


def _mentioned(requirement: str, output: str) -> bool:
    """Is this requirement line named in the output (as itself, not inside a path or a longer spec)?"""
    return re.search(r"(?<![\w./\\-])" + re.escape(requirement) + r"(?![\w./<>=!~\[-])", output) is not None


def _failure(tool: str, output: str, in_text: str, index: str) -> LockError:
    """A failed resolver run as one message: the unreachable index or the unresolvable requirement first."""
    lines = output.splitlines()
    retries = [i for i, line in enumerate(lines) if "WARNING: Retrying" in line]
    text = tail("\n".join(line for i, line in enumerate(lines) if i not in retries[:-1]))
    if _NETWORK.search(output):
        lead = f"could not reach the index {public_url(index)}; "
    else:
        named = [line for line in requirement_lines(in_text) if _mentioned(line, text) or _mentioned(line.replace(" ", ""), text)]
        lead = f"unresolvable: {', '.join(named)}; " if named else ""
    return LockError(f"{lead}{tool} failed:\n" + "\n".join("    " + x for x in text.splitlines()))


def _seed(t: Target, scratch: Path, upgrade: bool) -> Path:
    """pip-compile and uv read the existing output as preferences: give them its pins, never the file.

    Only the pins: both tools would otherwise reuse the old lock's hashes, which may come from another
    index; every hash of a new lock comes from the index it was resolved against.
    """
    out = scratch / t.out.name
    if not upgrade and t.out.is_file():
        try:  # an app's unpinned requirements.txt, about to become the lock, may be UTF-16 (read as pip reads it)
            old = parse_lock(app_requirements.decode(t.out, t.out.name))
        except app_requirements.RequirementsError:
            return out  # preferences only: without them the tool resolves afresh
        out.write_text("".join(f"{name}=={version}\n" for name, (version, _) in sorted(old.items())), encoding="utf-8")
    return out


def _slug(t: Target) -> str:
    if t.kind == "runtime":
        return t.key
    return "app-" + hashlib.sha256(str(Path(t.key).resolve()).encode()).hexdigest()[:12]


def _uv_platform(glibc: tuple[int, int] | None) -> str:
    if not glibc:
        return "x86_64-unknown-linux-gnu"
    usable = [n for n in _UV_MANYLINUX if n <= glibc[1]]
    return f"x86_64-manylinux_2_{max(usable)}" if usable else "x86_64-unknown-linux-gnu"


def _host_environment() -> dict[str, str]:
    """PEP 508 marker values of this process's Python (a fresh dict each call)."""
    from packaging.markers import default_environment

    # every value is a string; packaging's TypedDict reads as object through .items()
    return {k: str(v) for k, v in default_environment().items()}


def target_environment(full: str) -> dict[str, str]:
    """PEP 508 marker values of the runtime's CPython on Linux x86_64."""
    env = _host_environment()
    major = full.split(".")[0]
    env.update(
        implementation_name="cpython",
        implementation_version=full,
        os_name="posix",
        platform_machine="x86_64",
        platform_python_implementation="CPython",
        platform_system="Linux",
        python_full_version=full,
        python_version=".".join(full.split(".")[:2]),
        sys_platform="linux2" if major == "2" else "linux",
    )
    return env


# --- the back-ends ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipCompile:
    """pip-compile under a real interpreter of the target's minor: markers are that interpreter's own."""

    interpreter: Interpreter
    tool: ClassVar[str] = "pip-compile"

    def resolve(self, t: Target, index: str, *, upgrade: bool, scratch: Path, in_text: str) -> Made:
        env_dir = pip_tools_env(self.interpreter)
        spec = pip_tools_spec(self.interpreter.minor)
        assert spec is not None  # pip_tools_env above refuses (LockError) a minor without one
        pt, pipv = spec
        out = _seed(t, scratch, upgrade)
        cache = lock_cache_dir()
        # --no-reuse-hashes: every hash comes from the index resolved against, never from the old lock
        flags = ["--generate-hashes", "--no-reuse-hashes", "--allow-unsafe", "--no-header", "--no-emit-index-url"]
        if t.kind == "runtime":
            flags.append("--no-emit-find-links")
        if upgrade:
            flags.append("--upgrade")
        cmd = [
            str(env_dir / "bin" / "pip-compile"),
            "-q",
            *flags,
            f"--index-url={index}",
            f"--cache-dir={cache / 'pip-tools' / _slug(t)}",
            f"--output-file={out}",
            t.src.name,
        ]
        proc = run(cmd, "pip-compile", cwd=t.src.parent, env=clean_env(PIP_CACHE_DIR=str(cache / "pip")))
        if proc.returncode or not out.is_file():
            raise _failure("pip-compile", proc.stderr + proc.stdout, in_text, index)
        same = self.interpreter.version == t.python
        note = "markers and Requires-Python evaluated by that interpreter: " + (
            "the runtime's own version" if same else f"Python {t.minor_text}, the minor version of the runtime's {t.python}"
        )
        return Made(
            out.read_text(encoding="utf-8"),
            f"pip-compile (pip-tools {pt}, pip {pipv}) running under {self.interpreter.describe()}",
            note + ", on Linux x86_64",
            " ".join(["pip-compile", *flags, f"--index-url={public_url(index)}", f"--output-file={t.out.name}", t.src.name]),
            f"pip-compile (pip-tools {pt}) under CPython {self.interpreter.version}",
        )


@dataclass(frozen=True)
class Uv:
    """uv pip compile for a target version and platform it is told (no interpreter of that version needed)."""

    tool: ClassVar[str] = "uv"

    def resolve(self, t: Target, index: str, *, upgrade: bool, scratch: Path, in_text: str) -> Made:
        env_dir = host_tools()
        out = _seed(t, scratch, upgrade)
        platform = _uv_platform(t.glibc)
        flags = ["--no-config", "--no-python-downloads", "--python-version", t.python, "--python-platform", platform]
        flags += ["--generate-hashes", "--no-header"]
        if t.kind == "app":
            flags.append("--emit-find-links")
        if upgrade:
            flags.append("--upgrade")
        cmd = [str(env_dir / "bin" / "uv"), "pip", "compile", "-q", *flags, "--python", str(env_dir / "bin" / "python"), "--default-index", index]
        cmd += ["--cache-dir", str(lock_cache_dir() / "uv"), "-o", str(out), t.src.name]
        proc = run(cmd, "uv pip compile", cwd=t.src.parent, env=clean_env())
        if proc.returncode or not out.is_file():
            raise _failure("uv pip compile", proc.stderr + proc.stdout, in_text, index)
        return Made(
            out.read_text(encoding="utf-8"),
            f"uv {UV_VERSION} (`uv pip compile`: not pip-compile, the same output format) running beside {_HOST}",
            f"markers and Requires-Python evaluated for --python-version {t.python} --python-platform {platform}, not for the host's Python",
            " ".join(["uv pip compile", *flags, "--python", "<host python3>", "--default-index", public_url(index), "-o", t.out.name, t.src.name]),
            f"uv {UV_VERSION} --python-version {t.python}",
        )


@dataclass(frozen=True)
class PipReport:
    """pip's resolver in target mode, for 3.4/3.5: it checks Requires-Python and tags for the target but
    evaluates dependency markers for the host, so any marker that would differ refuses the lock."""

    tool: ClassVar[str] = "pip-report"

    def resolve(self, t: Target, index: str, *, upgrade: bool, scratch: Path, in_text: str) -> Made:
        env_dir = host_tools()
        report = scratch / "report.json"
        short = t.minor_text
        flags = ["--dry-run", "--ignore-installed", "--python-version", short, "--implementation", "cp", "--only-binary=:all:"]
        plats = [f"--platform={p}" for p in platform_tags(t.glibc)]
        cmd = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", *flags, *plats, "--report", str(report)]
        cmd += ["--target", str(scratch / "target"), "--index-url", index, "-r", t.src.name]
        proc = run(cmd, "pip install --dry-run --report", cwd=t.src.parent, env=clean_env(PIP_CACHE_DIR=str(lock_cache_dir() / "pip")))
        if proc.returncode or not report.is_file():
            raise _failure(f"pip {HOST_PIP} (--dry-run --report --python-version {short})", proc.stderr + proc.stdout, in_text, index)
        items = _checked_items(t, in_text, json.loads(report.read_text(encoding="utf-8")))
        return Made(
            _pins(items),
            f"pip {HOST_PIP}'s resolver (`pip install --dry-run --report`, read by the generator: not pip-compile) running on {_HOST}",
            f"Requires-Python and wheel tags evaluated for --python-version {short}, wheels only; pip evaluates dependency markers for the host, "
            f"so every marker was checked to give the same result for CPython {t.python} on Linux x86_64",
            " ".join(["pip install", *flags, "--platform=<the OS's linux/manylinux tags>", "--report", "-r", t.src.name]),
            f"pip {HOST_PIP} --dry-run --report --python-version {short}",
        )


def _checked_items(t: Target, in_text: str, data: dict[str, Any]) -> dict[str, tuple[dict[str, Any], set[str]]]:
    """canonical name → (report item, what required it); LockError if a marker differs host vs target."""
    from packaging.requirements import InvalidRequirement, Requirement

    host_env = _host_environment()
    target_env = target_environment(t.python)

    def differs(marker: Any, extras: Iterable[str]) -> bool:
        return any(marker.evaluate({**host_env, "extra": e}) != marker.evaluate({**target_env, "extra": e}) for e in extras)

    bad = []
    for line in requirement_lines(in_text):
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and differs(req.marker, [""]):
            bad.append(f"{t.src.name}: {line}")
    items = {canonical(i["metadata"]["name"]): i for i in data.get("install", [])}
    via: dict[str, set[str]] = {name: set() for name in items}
    for name, item in items.items():
        extras = ["", *item.get("requested_extras", [])]
        if item.get("requested"):
            via[name].add(f"-r {t.src.name}")
        for rd in item["metadata"].get("requires_dist") or []:
            req = Requirement(rd)
            if req.marker is not None and differs(req.marker, extras):
                bad.append(f"{item['metadata']['name']} {item['metadata']['version']}: {rd}")
            dep = canonical(req.name)
            if dep in via and (req.marker is None or any(req.marker.evaluate({**target_env, "extra": e}) for e in extras)):
                via[dep].add(item["metadata"]["name"].lower())
    if bad:
        raise LockError(
            f"refusing: pip evaluates these markers for the host (CPython {sys.version.split()[0]}), and for CPython {t.python} they "
            "would select other packages, so the lock would be wrong:\n" + "\n".join("    " + b for b in bad)
        )
    return {name: (items[name], via[name]) for name in items}


def _pins(items: dict[str, tuple[dict[str, Any], set[str]]]) -> str:
    """pip-compile's output format, from pip's report."""
    lines = []
    for name in sorted(items):
        item, via = items[name]
        info = item["download_info"]
        archive = info.get("archive_info", {})
        sha = archive.get("hashes", {}).get("sha256") or archive.get("hash", "").partition("sha256=")[2]
        if not sha:
            raise LockError(f"pip reported no sha256 for {info.get('url')}")
        lines.append(f"{name}=={item['metadata']['version']} \\\n    --hash=sha256:{sha}\n")
        parents = sorted(via)
        if len(parents) == 1:
            lines.append(f"    # via {parents[0]}\n")
        elif parents:
            lines.append("    # via\n" + "".join(f"    #   {p}\n" for p in parents))
    return "".join(lines)
