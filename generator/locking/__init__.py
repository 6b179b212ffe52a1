"""Hash-locked requirements, resolved for the runtime's Python, not the host's.

Runtime locks: ``lockfiles/<id>.in`` (the tools an image installs into /env) → ``lockfiles/<id>.txt``
(pip-compile's format, ``--generate-hashes --allow-unsafe``) and ``lockfiles/<id>.wheels.json`` (for
each locked package the one file an image installs, with its URL and sha256). App locks: an app's
``requirements.in`` → ``requirements.txt`` for the runtime its app.yaml resolves to.

Modules, bottom up (as pip-tools splits resolver, writer and CLI):

- ``target``: what a lock is for, the pinned tool versions, the inputs hash (the staleness rule)
- ``interpreters``: finding and probing real CPythons; the clean environment tools run in
- ``toolenv``: the pinned tool venvs (pip-tools per Python, uv and pip for the host)
- ``index``: the package index client (PEP 691/503)
- ``lockfile``: the header, the pin format, wheels.json
- ``resolvers``: one Resolver interface, three back-ends (pip-compile, uv, pip-report), and ``choose``
- ``buildlock``: the build requirements of an app lock's sdists (``requirements-build.lock.json``)
- ``orchestrate``: stale or not, locking in parallel, app locks, typed outcomes
"""

from __future__ import annotations

from . import buildlock
from .index import Index, IndexFile, canonical
from .interpreters import Interpreter, find_interpreter, probe
from .lockfile import (
    LOCK_MARK,
    SDIST_SUFFIXES,
    FormatControl,
    Made,
    cpython_abi,
    file_rank,
    format_control,
    parse_lock,
    read_header,
    requirement_lines,
    wheel_list,
    wheels_match,
)
from .orchestrate import (
    AppLock,
    AppLockError,
    Freshness,
    Outcome,
    RunResult,
    Status,
    app_os_target,
    app_target,
    check_app,
    check_runtimes,
    has_requirements,
    lock_app,
    lock_runtimes,
    make_lock,
    relock_runtimes,
    state,
)
from .resolvers import PipCompile, PipReport, Resolver, Uv, choose
from .target import DEFAULT_INDEX, LOCKFILES, TOOLS, LockError, LockInputError, Target, inputs_hash, runtime_target
from .toolenv import host_tools, pip_tools_env

__all__ = [
    "DEFAULT_INDEX",
    "LOCKFILES",
    "LOCK_MARK",
    "SDIST_SUFFIXES",
    "TOOLS",
    "AppLock",
    "AppLockError",
    "FormatControl",
    "Freshness",
    "Index",
    "IndexFile",
    "Interpreter",
    "LockError",
    "LockInputError",
    "Made",
    "Outcome",
    "PipCompile",
    "PipReport",
    "Resolver",
    "RunResult",
    "Status",
    "Target",
    "Uv",
    "app_os_target",
    "app_target",
    "buildlock",
    "canonical",
    "check_app",
    "check_runtimes",
    "choose",
    "cpython_abi",
    "file_rank",
    "find_interpreter",
    "format_control",
    "has_requirements",
    "host_tools",
    "inputs_hash",
    "lock_app",
    "lock_runtimes",
    "make_lock",
    "parse_lock",
    "pip_tools_env",
    "probe",
    "read_header",
    "relock_runtimes",
    "requirement_lines",
    "runtime_target",
    "state",
    "wheel_list",
    "wheels_match",
]
