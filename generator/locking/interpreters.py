"""Finding and probing real CPython interpreters, and the clean environment every tool runs in.

pip-compile is only correct under a CPython of the target's minor version, so candidates are run
to learn what they really are (a pyenv shim may be anything), never trusted by name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

_KEEP_ENV = {"PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT", "UV_NATIVE_TLS", "UV_SYSTEM_CERTS", "UV_HTTP_TIMEOUT"}
_PROBE = "import platform, sys; print(platform.python_implementation()); print('.'.join(map(str, sys.version_info[:3]))); print(sys.executable)"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for pip, pip-compile and uv: no machine configuration may leak into a lock."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k in _KEEP_ENV or not (k.startswith(("PIP_", "UV_", "PYTHON")) or k in ("VIRTUAL_ENV", "CONDA_PREFIX", "__PYVENV_LAUNCHER__"))
    }
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PIP_NO_COLOR="1", NO_COLOR="1")
    env.update(extra)
    return env


def display_path(path: str | Path) -> str:
    """A path for messages, with the home directory as ~ (messages only: never written to a file)."""
    text, home = str(path), str(Path.home())
    return "~" + text[len(home) :] if home != "/" and text.startswith(home + "/") else text


@dataclass(frozen=True)
class Interpreter:
    path: str  # the real executable (sys.executable as it reports it)
    version: str  # X.Y.Z
    source: str  # how it was found

    @property
    def minor(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)

    def describe(self) -> str:
        """How a lock header names it: by version only, so a lock reads the same on every machine."""
        return f"CPython {self.version}"


_probe_cache: dict[str, Interpreter | None] = {}
_probe_lock = threading.Lock()


def probe(path: str, source: str) -> Interpreter | None:
    """Run a candidate interpreter to learn what it really is (None: not a CPython, or not runnable)."""
    with _probe_lock:
        if path in _probe_cache:
            return _probe_cache[path]
    try:
        out = subprocess.run([path, "-c", _PROBE], capture_output=True, text=True, timeout=30, env=clean_env(), check=True).stdout.split("\n")
        found = Interpreter(out[2].strip() or path, out[1].strip(), source) if out[0].strip() == "CPython" else None
    except (OSError, subprocess.SubprocessError, IndexError):
        found = None
    with _probe_lock:
        _probe_cache[path] = found
    return found


def find_interpreter(minor: tuple[int, int], given: dict[str, str] | None = None) -> tuple[Interpreter | None, list[str]]:
    """A real CPython of this minor version, and the places looked in (for the error message)."""
    text = f"{minor[0]}.{minor[1]}"
    candidates: list[tuple[str, str]] = []
    if given and text in given:
        candidates.append((given[text], "--interpreter"))
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if pyenv.is_dir():
        found = [p for p in pyenv.glob(f"{text}.*") if re.fullmatch(r"\d+\.\d+\.\d+", p.name)]
        for p in sorted(found, key=lambda p: [int(x) for x in p.name.split(".")], reverse=True):
            candidates.append((str(p / "bin" / f"python{text}"), "pyenv"))
    on_path = shutil.which(f"python{text}")
    if on_path:
        candidates.append((on_path, "PATH"))
    if sys.version_info[:2] == minor:
        candidates.append((getattr(sys, "_base_executable", None) or sys.executable, "host"))
    for d in ("/usr/local/bin", "/usr/bin"):
        candidates.append((f"{d}/python{text}", "system"))
    looked = []
    seen = set()
    for path, source in candidates:
        if path in seen:
            continue
        seen.add(path)
        looked.append(display_path(path))
        if not os.access(path, os.X_OK):
            continue
        interp = probe(path, source)
        if interp and interp.minor == minor:
            return interp, looked
    return None, looked
