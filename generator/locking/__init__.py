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
- ``orchestrate``: stale or not, locking in parallel, typed outcomes (an app's locks: generator/app/locks.py)
"""

from __future__ import annotations

from generator.locking import buildlock
from generator.locking.index import Index, IndexFile, canonical
from generator.locking.interpreters import Interpreter, find_interpreter, probe
from generator.locking.lockfile import (
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
from generator.locking.orchestrate import (
    Freshness,
    Outcome,
    RunResult,
    Status,
    check_runtimes,
    lock_runtimes,
    make_lock,
    relock_runtimes,
    state,
)
from generator.locking.resolvers import PipCompile, PipReport, Resolver, Uv, choose
from generator.locking.target import DEFAULT_INDEX, TOOLS, LockError, LockInputError, Target, inputs_hash, runtime_target
from generator.locking.toolenv import host_tools, pip_tools_env

__all__ = [
    "DEFAULT_INDEX",
    "LOCK_MARK",
    "SDIST_SUFFIXES",
    "TOOLS",
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
    "buildlock",
    "canonical",
    "check_runtimes",
    "choose",
    "cpython_abi",
    "file_rank",
    "find_interpreter",
    "format_control",
    "host_tools",
    "inputs_hash",
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
