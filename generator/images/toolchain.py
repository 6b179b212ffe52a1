"""The toolchain lock: the base an OS's interpreters are compiled on, and the build closure resolved there.

`refresh --only packages` re-resolves every closure at today's archive state; the runtime closure
and the build image's follow the archive (security updates reach the images daily), but the build
closure and its base are kept as they were unless the toolchain must move: a maintainer asks
(`refresh --toolchain`), a CPython release of that OS moved (its interpreter is recompiled anyway),
the OS has no toolchain lock yet, or the schedule's build_packages name a package the kept closure
lacks. Ubuntu keeps a release's ABI stable, so an interpreter compiled against the kept closure
runs on the updated libraries of the runtime image, as the distribution's own programs do.
"""

from __future__ import annotations

import dataclasses

from generator.schedule.lock import OsPackages


def must_move(old: OsPackages | None, wanted: list[str], *, asked: bool, python_moved: bool) -> str | None:
    """Why the toolchain lock moves in this refresh (None: it is kept)."""
    if asked:
        return "refresh --toolchain"
    if python_moved:
        return "a CPython release of this OS moved"
    if old is None or not old.build or old.toolchain_base is None:  # a lock from before toolchain_base: its base is not known
        return "no toolchain lock yet"
    have = {d.name for d in old.build} | {p.name for p in old.base}
    missing = sorted(set(wanted) - have)
    if missing:
        return f"build_packages names {', '.join(missing)}, which the kept closure lacks"
    return None


def apply(old: OsPackages | None, new: OsPackages, base_ref: str, why: str | None) -> OsPackages:
    """`new` with the toolchain lock it gets: its own closure on `base_ref` when it moves (why), else old's."""
    if why is not None or old is None:
        return dataclasses.replace(new, toolchain_base=base_ref)
    return dataclasses.replace(new, build=old.build, toolchain_base=old.toolchain_base)
