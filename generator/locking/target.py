"""What one lock is for (a Target) and what it depends on: the pinned tool versions and the inputs hash.

The inputs hash is the whole staleness rule: a lock is current when the hash in its header equals
the hash of its .in text, the target Python and OS, the index, and the resolver policy below.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from generator.core import paths
from generator.core.errors import GeneratorError, InputError
from generator.schedule.runtimes import Runtime

LOCK_FORMAT = 1
DEFAULT_INDEX = "https://pypi.org/simple"
TOOLS = ("pip-compile", "uv", "pip-report")

# pip-tools, and the pip it drives, per Python minor: the newest releases that still run on it.
PIP_TOOLS: dict[tuple[int, int], tuple[str, str]] = {
    (2, 7): ("5.5.0", "20.3.4"),
    (3, 6): ("6.4.0", "21.3.1"),
    (3, 7): ("6.14.0", "24.0"),
    (3, 8): ("7.5.2", "25.0.1"),
    (3, 9): ("7.6.2", "26.0.1"),
}
PIP_TOOLS_NEWEST = ("7.6.2", "26.3")  # Python 3.10 and newer
# Tools run by the host's Python: uv (targets 3.6+), pip (the 3.4/3.5 resolver), virtualenv (makes the
# Python 2.7 tool venv; 2.7 has no venv module).
UV_VERSION = "0.13.9"
HOST_PIP = "26.3"
HOST_VIRTUALENV = "20.21.1"

# What each runtime's image installs into /env, bounded by the last releases that support its Python;
# written to lockfiles/<id>.in when a runtime has none yet (the .in files are committed inputs).
DEFAULT_INPUTS: dict[tuple[int, int], list[str]] = {
    (2, 7): ["pip<21", "setuptools<45", "wheel<0.38", "virtualenv<20.16"],
    (3, 4): ["pip<19.2", "setuptools<44", "wheel<0.34"],
    (3, 5): ["pip<21", "setuptools<51", "wheel<0.38"],
    (3, 6): ["pip<22", "setuptools<59.7", "wheel<0.38"],
    (3, 7): ["pip<24.1", "setuptools<68.1", "wheel<0.43"],
    (3, 8): ["pip<25.1", "setuptools<75.4", "wheel<0.46"],
    (3, 9): ["pip<26.1", "setuptools<83", "wheel"],
}
DEFAULT_INPUTS_NEWEST = ["pip", "setuptools", "wheel"]


class LockError(GeneratorError):
    """A lock that could not be made; the message says why (and the previous lock is untouched)."""


class LockInputError(LockError, InputError):
    """A lock whose input is wrong or missing (an unknown runtime, no default tool set): exit 2."""


@dataclass(frozen=True)
class Target:
    """One lock to make: an input file → a hash-locked output, for one CPython version."""

    kind: str  # "runtime" | "app"
    key: str  # runtime id, or the app directory
    runtime_id: str
    python: str  # the full version the lock is for
    os_id: str
    glibc: tuple[int, int]  # the OS's C library: which manylinux wheels install there
    src: Path  # .in
    out: Path  # .txt
    wheels: Path | None  # .wheels.json (runtime locks only)
    relock: str  # the command that remakes it
    tree: Path | None = None  # what its files are written inside, never out of (the schedule's tree; an app's directory)

    @property
    def minor(self) -> tuple[int, int]:
        major, minor = self.python.split(".")[:2]
        return int(major), int(minor)

    @property
    def minor_text(self) -> str:
        return f"{self.minor[0]}.{self.minor[1]}"


def runtime_target(root: Path, r: Runtime) -> Target:
    d = root / paths.LOCKFILES
    return Target(
        kind="runtime",
        key=r.id,
        runtime_id=r.id,
        python=r.version,
        os_id=r.os_id,
        glibc=r.glibc,
        src=d / f"{r.id}.in",
        out=d / f"{r.id}.txt",
        wheels=d / f"{r.id}.wheels.json",
        relock=f"python -m generator lock {r.id}",
        tree=root,
    )


def default_inputs(r: Runtime) -> str:
    """The .in of a runtime new to the schedule: the tool set its Python supports."""
    major, minor = (int(p) for p in r.version.split(".")[:2])
    reqs = DEFAULT_INPUTS.get((major, minor), DEFAULT_INPUTS_NEWEST if (major, minor) >= (3, 10) else None)
    if reqs is None:
        raise LockInputError(f"no default tool set for Python {major}.{minor}; write {paths.LOCKFILES}/{r.id}.in by hand")
    why = "upper bounds: the last releases that support" if reqs != DEFAULT_INPUTS_NEWEST else "no upper bounds needed for"
    venv = " (virtualenv: Python 2 has no venv module)" if major == 2 else ""
    return (
        f"# Tools the {r.id} image installs into /env{venv}; {why} Python {major}.{minor}.\n"
        f"# Locked to {r.id}.txt by `python -m generator lock {r.id}` (hashes, for the runtime's Python).\n" + "".join(f"{x}\n" for x in reqs)
    )


def pip_tools_spec(minor: tuple[int, int]) -> tuple[str, str] | None:
    """(pip-tools, pip) that run on this Python minor, or None where no release does."""
    if minor in PIP_TOOLS:
        return PIP_TOOLS[minor]
    return PIP_TOOLS_NEWEST if minor >= (3, 10) else None


def policy(minor: tuple[int, int]) -> list[str]:
    """The resolver rules for a Python minor: part of every lock's inputs (change them → relock)."""
    out = []
    pt = pip_tools_spec(minor)
    if pt:
        out.append(f"pip-compile pip-tools=={pt[0]} pip=={pt[1]} under CPython {minor[0]}.{minor[1]}")
    if minor >= (3, 6):
        out.append(f"uv=={UV_VERSION} --python-version")
    elif minor[0] == 3:
        out.append(f"pip=={HOST_PIP} --dry-run --report --python-version --only-binary=:all:")
    return out


def inputs_hash(t: Target, in_text: str, index: str) -> str:
    """The hash a lock's header records; it does not depend on the machine or on the header's other lines."""
    parts = {
        "format": LOCK_FORMAT,
        "kind": t.kind,
        "runtime": t.runtime_id,
        "os": t.os_id,
        "python": t.python,
        "input": in_text,
        "index": index,
        "policy": policy(t.minor),
    }
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return "sha256:" + hashlib.sha256(blob).hexdigest()
