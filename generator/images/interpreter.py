"""The interpreter as an artifact of its own: CPython compiled once per set of inputs.

A runtime image used to compile CPython in a builder stage, so any move of that stage's inputs (a
`-security` update of a package in the build closure, a new base digest) recompiled every runtime
of the OS. Here the interpreter is its own image (images/<id>/interpreter/Dockerfile), a pure
function of the CPython tarball, the OS's toolchain lock (the base it is compiled on and the closure
`build` resolved there: lockfiles/schedule.lock.json, `toolchain_base` and `build`), the configure
options and the template, all of which the rendered Dockerfile names (the .debs' sha256 are added
to the hash). Its tag is derived from that hash; the runtime Dockerfile consumes it with
`COPY --from`, and `build` passes the image id, so the interpreter layer of the runtime image stays
byte-identical for as long as those inputs do.
"""

from __future__ import annotations

import hashlib
import json

from generator.schedule.runtimes import Runtime

TEMPLATE = "interpreter.Dockerfile.j2"  # rendered by render.interpreter_dockerfile (the one template environment)
TAG_PREFIX = "interpreter-"


def dockerfile_path(r: Runtime) -> str:
    """Where runtime `r`'s interpreter Dockerfile is generated (a build context of its own, under images/)."""
    return f"images/{r.id}/interpreter/Dockerfile"


def toolchain_base(r: Runtime) -> str:
    """The base the interpreter is compiled on: the toolchain lock's, else (a lock from before it) the pinned base."""
    return (r.packages.toolchain_base if r.packages else None) or r.base_reference


def input_hash(r: Runtime, text: str) -> str:
    """The hash of everything the interpreter's bytes depend on, and of nothing else: the Dockerfile
    (version, configure options, toolchain base, the closure's file names, the template), the
    tarball's sha256 and the closure's .debs by sha256. Runtime packages, tools, the runtime's base
    and the generator's version are left out: they re-assemble the runtime, they never recompile."""
    parts = {
        "cpython": {"sha256": r.interpreter.sha256, "tar_xz_sha256": r.interpreter.tar_xz_sha256, "version": r.version},
        "dockerfile": text,
        "toolchain": {
            "base": toolchain_base(r),
            "debs": [[d.name, d.version, d.architecture, d.filename, d.sha256] for d in (r.packages.build if r.packages else [])],
        },
    }
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def reference(r: Runtime, hash_: str) -> str:
    """The interpreter's published reference: the runtime's repository, tagged interpreter-<input hash>."""
    return f"{r.image.rsplit(':', 1)[0]}:{TAG_PREFIX}{hash_.removeprefix('sha256:')}"


def data(r: Runtime, text: str) -> dict[str, str]:
    """The interpreter's entry in runtimes.json: its input hash and the reference it is published under."""
    h = input_hash(r, text)
    return {"input_hash": h, "reference": reference(r, h)}
