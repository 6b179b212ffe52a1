"""Fill in the source package of every `.deb` the schedule lock pins, from the archive's signed indices.

A one-off path for a lock written before `refresh` recorded `source`/`source_version` (refresh now
records them itself, from the same stanzas): for each OS package lock, read the Packages indices of
the suites the lock names (each InRelease checked by gpgv with the keyring given, each index by its
sha256 in that Release file), find each locked `.deb` by its pool path and sha256, and write the
stanza's `Source:` into the lock. Nothing is guessed: a `.deb` no verified index lists is an error,
named, and the lock is left as it was.

    python -m generator.images.debsources KEYRING [LOCK]
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from generator.core import fileset, paths
from generator.core.errors import GeneratorError
from generator.images import apt
from generator.schedule import lock as schedule_lock
from generator.schedule.lock import Deb, OsPackages

SETS = ("build", "runtime", "devel")


def stanzas(lock: OsPackages, components: list[str], keyring: Path) -> dict[tuple[str, str], dict[str, str]]:
    """(pool path, sha256) → stanza, over every suite of `lock` and every component, architecture amd64."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for suite in sorted(lock.suites):
        rel = apt.release(lock.archive, suite, keyring)
        for component in components:
            if not any(p.startswith(f"{component}/binary-amd64/Packages") for p in rel.sha256):
                continue
            print(f"debsources: {suite} {component}", file=sys.stderr)
            for stanza in apt.packages_index(lock.archive, rel, component, "amd64").packages.values():
                if "Filename" in stanza and "SHA256" in stanza:
                    out[(stanza["Filename"], stanza["SHA256"])] = stanza
    return out


def filled(lock: OsPackages, found: dict[tuple[str, str], dict[str, str]], os_id: str) -> OsPackages:
    """`lock` with the source of each `.deb` from its stanza; GeneratorError naming every one not found."""
    missing = [
        f"{os_id}.{kind}: {d.filename} (sha256 {d.sha256})" for kind in SETS for d in getattr(lock, kind) if (d.filename, d.sha256) not in found
    ]
    if missing:
        raise GeneratorError([f"no verified Packages index of {lock.archive} lists {m}" for m in missing])

    def one(d: Deb) -> Deb:
        source, version = apt.source_of(found[(d.filename, d.sha256)])
        return dataclasses.replace(d, source=source, source_version=version)

    return dataclasses.replace(lock, build=[one(d) for d in lock.build], runtime=[one(d) for d in lock.runtime], devel=[one(d) for d in lock.devel])


COMPONENTS = ["main", "restricted", "universe", "multiverse"]  # every component a suite's Release lists is read


def main(argv: list[str]) -> int:
    """Rewrite the lock (default lockfiles/schedule.lock.json) with every `.deb`'s source filled in."""
    import json

    from generator.core.validate import Problem, convert

    keyring = Path(argv[0])
    lock_path = Path(argv[1] if len(argv) > 1 else paths.SCHEDULE_LOCK).resolve()
    found: list[Problem] = []
    lock = convert(
        json.loads(lock_path.read_text()), schedule_lock.ScheduleLock, (), found
    )  # not schedule_lock.loads: it refuses a .deb without a source
    if found:
        raise GeneratorError([f"{lock_path}: {'.'.join(map(str, path))}: {message}" for path, message in found])
    new = {os_id: filled(p, stanzas(p, COMPONENTS, keyring), os_id) for os_id, p in lock.os_packages.items()}
    fileset.write_in(lock_path.parent.parent, lock_path, dataclasses.replace(lock, os_packages=new).dumps())
    schedule_lock.loads(lock_path.read_text())  # the result passes the lock's own checks
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
