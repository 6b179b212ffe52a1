"""app.yaml's `liveness_check`, `readiness_check` and `resources`: the values `run` starts an app with.

Read with the platform's defaults and ranges (App Engine flexible environment, "Split health checks"
and "Resource settings"), so a value the deployment would refuse is refused here, before anything
is built, with the file, the line and the key, as every other app.yaml refusal (appyaml.py). Numbers
are whole seconds and counts as the platform takes them; a boolean or a text is not a number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from generator.app import appyaml
from generator.core import yamlsrc

# field → (default, minimum, maximum); the platform's tables
LIVENESS = {
    "check_interval_sec": (30, 1, 300),
    "timeout_sec": (4, 1, 300),
    "failure_threshold": (4, 1, 10),
    "success_threshold": (2, 1, 10),
    "initial_delay_sec": (300, 0, 3600),
}
READINESS = {
    "check_interval_sec": (5, 1, 300),
    "timeout_sec": (4, 1, 300),
    "failure_threshold": (2, 1, 10),
    "success_threshold": (2, 1, 10),
    "app_start_timeout_sec": (300, 1, 1800),
}
CPU_MAX = 80
MEMORY_PER_CPU = (0.9, 6.5)  # GB of the instance's total memory per core
OVERHEAD_GB = 0.4  # what the platform's own processes take beside memory_gb
DISK_GB = (10, 10240)
_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*")  # an absolute URL path, no query, no spaces


@dataclass(frozen=True)
class Check:
    """One health check as the platform runs it; path None: the platform checks its own proxy, not the app."""

    kind: str  # "liveness" or "readiness"
    path: str | None
    check_interval_sec: int
    timeout_sec: int
    failure_threshold: int
    success_threshold: int
    initial_delay_sec: int = 0
    app_start_timeout_sec: int = 0


@dataclass(frozen=True)
class Resources:
    cpu: float
    memory_gb: float
    disk_size_gb: int

    @property
    def memory_mb(self) -> int:
        """GAE_MEMORY_MB: the memory the app gets (memory_gb, without the platform's overhead)."""
        return round(self.memory_gb * 1024)


@dataclass(frozen=True)
class Settings:
    liveness: Check
    readiness: Check
    resources: Resources


def read(doc: yamlsrc.Document) -> Settings:
    """The three settings of a loaded app.yaml, defaults filled in; AppYamlError on any bad value."""
    return Settings(_check(doc, "liveness"), _check(doc, "readiness"), _resources(doc))


def _fail(doc: yamlsrc.Document, path: tuple[str, ...], message: str) -> appyaml.AppYamlError:
    return appyaml.AppYamlError(doc.file, f"{'.'.join(path)}: {message}", doc.line(path))


def _section(doc: yamlsrc.Document, key: str, fields: tuple[str, ...]) -> dict[str, Any]:
    raw = doc.data.get(key)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(doc, (key,), f"must be a mapping of settings ({', '.join(fields)})")
    for name in raw:
        if name not in fields:
            raise _fail(doc, (key, str(name)), f"is not a setting of {key}; valid choices: {', '.join(fields)}")
    return raw


def _check(doc: yamlsrc.Document, kind: str) -> Check:
    key = f"{kind}_check"
    table = LIVENESS if kind == "liveness" else READINESS
    raw = _section(doc, key, ("path", *table))
    path = raw.get("path")
    if path is not None and (not isinstance(path, str) or not _PATH.fullmatch(path)):
        raise _fail(doc, (key, "path"), f"{path!r} is not a URL path; write one that starts with /, e.g. /{kind}_check")
    values = {name: _whole(doc, (key, name), raw.get(name), *limits) for name, limits in table.items()}
    return Check(kind, path, **values)


def _whole(doc: yamlsrc.Document, path: tuple[str, ...], value: Any, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(doc, path, f"{_shown(doc, path, value)} is not a whole number; valid values: {low} to {high}")
    if not low <= value <= high:
        raise _fail(doc, path, f"{value} is out of range; valid values: {low} to {high}")
    return value


def _number(doc: yamlsrc.Document, path: tuple[str, ...], value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(doc, path, f"{_shown(doc, path, value)} is not a number")
    return float(value)


def _resources(doc: yamlsrc.Document) -> Resources:
    raw = _section(doc, "resources", ("cpu", "memory_gb", "disk_size_gb", "volumes"))
    cpu = _number(doc, ("resources", "cpu"), raw.get("cpu", 1))
    if not (cpu == 1 or (cpu.is_integer() and cpu % 2 == 0 and 2 <= cpu <= CPU_MAX)):
        shown = _shown(doc, ("resources", "cpu"), raw["cpu"])
        raise _fail(doc, ("resources", "cpu"), f"{shown} is not offered; valid values: 1, or an even number from 2 to {CPU_MAX}")
    memory = _number(doc, ("resources", "memory_gb"), raw.get("memory_gb", 0.6))
    low, high = (round(cpu * m - OVERHEAD_GB, 2) for m in MEMORY_PER_CPU)
    if not low <= memory <= high:
        why = (
            f"{memory:g} is out of range for cpu {cpu:g}; valid values: {low:g} to {high:g} "
            f"({MEMORY_PER_CPU[0]:g} to {MEMORY_PER_CPU[1]:g} GB per core, less the {OVERHEAD_GB:g} GB the platform keeps)"
        )
        raise _fail(doc, ("resources", "memory_gb"), why)
    disk = _whole(doc, ("resources", "disk_size_gb"), raw.get("disk_size_gb"), DISK_GB[0], *DISK_GB)
    return Resources(cpu, memory, disk)


def _shown(doc: yamlsrc.Document, path: tuple[str, ...], value: Any) -> str:
    """The value as written in the file (an unquoted 1.50 stays 1.50)."""
    written = doc.raw.get(path)
    return repr(written[1]) if written and isinstance(value, str) else (written[1] if written else repr(value))
