"""Tool venvs: the pinned pip-tools, uv and pip each lock is made with, installed once and reused.

They live under the cache (``lock-tools/``), not in this package's dependencies: pip-tools must run
under the target's own old CPython, and uv/pip are pinned so the resolver policy is part of a lock's
inputs. Concurrent runs wait on a file lock instead of racing to build the same venv.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from generator.core.cache import cache_root
from generator.core.http import public_url
from generator.locking.interpreters import Interpreter, clean_env, display_path
from generator.locking.target import DEFAULT_INDEX, HOST_PIP, HOST_VIRTUALENV, UV_VERSION, LockError, pip_tools_spec


def tools_dir() -> Path:
    return Path(os.environ.get("FLEX_PYTHON_LOCK_TOOLS") or cache_root() / "lock-tools")


def lock_cache_dir() -> Path:
    """The resolvers' HTTP caches (pip, pip-tools, uv)."""
    return Path(os.environ.get("FLEX_PYTHON_LOCK_CACHE") or cache_root() / "lock-cache")


def tools_index() -> str:
    return os.environ.get("FLEX_PYTHON_TOOLS_INDEX_URL") or DEFAULT_INDEX


def run(cmd: list[str], what: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a tool; only a tool that cannot start (or hangs) is an error here, its exit code is the caller's."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 900), **kw)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LockError(f"{what}: {exc}") from exc


def tail(text: str, lines: int = 14) -> str:
    """The part of a tool's output that says what went wrong: no tracebacks, no deprecation noise."""
    keep: list[str] = []
    in_traceback = False
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last):"):
            in_traceback = True
            continue
        if in_traceback:
            if line[:1].isspace() or not line.strip():
                continue
            in_traceback = False
        s = line.strip()
        if not s or "DEPRECATION" in s or "strip-extras" in s or s.startswith(("WARNING: --strip", "warning: The `--index-url`")):
            continue
        if s.startswith(("The above exception was", "During handling of the above", "pip._vendor.")):
            continue
        keep.append(line.rstrip().replace("pip._internal.exceptions.", "")[:400])
    return "\n".join(keep[-lines:]) or "(no output)"


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tool_env(name: str, base: str, packages: list[str], python2: bool = False) -> Path:
    """A venv under the tools dir with exactly these packages, made once (concurrent callers wait)."""
    root = tools_dir()
    d = root / name
    stamp = d / ".flex-python-ready"
    want = json.dumps({"base": base, "packages": packages})
    if stamp.is_file() and stamp.read_text() == want:
        return d
    with _exclusive(root / f".{name}.lock"):
        if stamp.is_file() and stamp.read_text() == want:
            return d
        shutil.rmtree(d, ignore_errors=True)
        if python2:
            host = host_tools()
            cmd = [str(host / "bin" / "python"), "-m", "virtualenv", "--no-download", "--no-periodic-update", "-p", base, str(d)]
        else:
            cmd = [base, "-m", "venv", str(d)]
        proc = run(cmd, f"making the tool venv {display_path(d)}", env=clean_env())
        if proc.returncode:
            raise LockError(f"could not make the tool venv {display_path(d)}: {tail(proc.stderr + proc.stdout)}")
        pip = [str(d / "bin" / "python"), "-m", "pip", "install", "--quiet", "--index-url", tools_index(), *packages]
        proc = run(pip, f"installing {' '.join(packages)}", env=clean_env())
        if proc.returncode:
            shutil.rmtree(d, ignore_errors=True)
            raise LockError(
                f"could not install {' '.join(packages)} into {display_path(d)} from {public_url(tools_index())} "
                f"(set FLEX_PYTHON_TOOLS_INDEX_URL for another index): {tail(proc.stderr + proc.stdout)}"
            )
        stamp.write_text(want)
    return d


def host_tools() -> Path:
    """uv, pip and virtualenv, pinned, in a venv of the host's Python."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    packages = [f"uv=={UV_VERSION}", f"pip=={HOST_PIP}", f"virtualenv=={HOST_VIRTUALENV}"]
    tag = hashlib.sha256(json.dumps([base, packages]).encode()).hexdigest()[:10]
    return tool_env(f"host-py{sys.version_info[0]}.{sys.version_info[1]}-{tag}", base, packages)


def pip_tools_env(interp: Interpreter) -> Path:
    """pip-tools and its pip, the releases that run on this interpreter, in a venv of it."""
    spec = pip_tools_spec(interp.minor)
    if spec is None:
        raise LockError(f"no pip-tools release is known to run on Python {interp.version}")
    packages = [f"pip-tools=={spec[0]}", f"pip=={spec[1]}"]
    tag = hashlib.sha256(interp.path.encode()).hexdigest()[:8]
    return tool_env(f"pip-tools-{spec[0]}-cpython-{interp.version}-{tag}", interp.path, packages, python2=interp.minor[0] == 2)
