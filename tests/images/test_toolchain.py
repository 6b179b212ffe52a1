"""The toolchain lock (images/toolchain.py): kept still through a refresh unless it must move.

Every case starts from the committed lock's ubuntu22 entry (read from it, never typed here) and a
"new" resolution that moved one runtime and one build package, as a -security update does.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from generator.core import paths
from generator.images import toolchain
from generator.schedule import lock as schedule_lock
from tests.conftest import ROOT

LOCK = schedule_lock.load(ROOT / paths.SCHEDULE_LOCK)
OLD = LOCK.os_packages["ubuntu22"]
NEW_BASE = "docker.io/library/ubuntu:22.04@sha256:" + "5" * 64


def _bump(deb: schedule_lock.Deb) -> schedule_lock.Deb:
    return dataclasses.replace(deb, version=deb.version + "+sec1", sha256="b" * 64)


NEW = dataclasses.replace(OLD, build=[_bump(OLD.build[0]), *OLD.build[1:]], runtime=[_bump(OLD.runtime[0]), *OLD.runtime[1:]], toolchain_base=None)
WANTED = sorted({d.name for d in OLD.build[:3]})


def test_kept_still_by_a_security_update() -> None:
    why = toolchain.must_move(OLD, WANTED, asked=False, python_moved=False)
    assert why is None
    got = toolchain.apply(OLD, NEW, NEW_BASE, why)
    assert got.build == OLD.build and got.toolchain_base == OLD.toolchain_base  # the toolchain: as it was
    assert got.runtime == NEW.runtime  # the runtime closure: moved


@pytest.mark.parametrize(
    ("old", "wanted", "asked", "python_moved", "because"),
    [
        (OLD, WANTED, True, False, "refresh --toolchain"),
        (OLD, WANTED, False, True, "a CPython release of this OS moved"),
        (None, WANTED, False, False, "no toolchain lock yet"),
        (OLD, [*WANTED, "libnew-dev"], False, False, "build_packages names libnew-dev, which the kept closure lacks"),
    ],
    ids=["asked", "CPython moved", "first lock", "a new build package"],
)
def test_moves_when_it_must(old, wanted, asked: bool, python_moved: bool, because: str) -> None:
    why = toolchain.must_move(old, wanted, asked=asked, python_moved=python_moved)
    assert why == because
    got = toolchain.apply(old, NEW, NEW_BASE, why)
    assert got.build == NEW.build and got.toolchain_base == NEW_BASE


def test_a_lock_from_before_toolchain_base_moves_once() -> None:
    """An old entry without toolchain_base: which base its closure was made in is not known, so it is made anew."""
    old = dataclasses.replace(OLD, toolchain_base=None)
    why = toolchain.must_move(old, WANTED, asked=False, python_moved=False)
    assert why == "no toolchain lock yet"
    got = toolchain.apply(old, NEW, NEW_BASE, why)
    assert got.build == NEW.build and got.toolchain_base == NEW_BASE


def test_the_committed_lock_has_a_toolchain_lock_per_os() -> None:
    """Each OS's toolchain base is its image pinned by digest; not necessarily today's base digest, which
    a refresh moves while the toolchain stays still (a re-assembly, not a rebuild)."""
    for os_id, entry in LOCK.os_packages.items():
        image = LOCK.base_images[os_id].image
        assert entry.toolchain_base and re.fullmatch(re.escape(image) + r"@sha256:[0-9a-f]{64}", entry.toolchain_base), os_id
        assert entry.build, os_id


@pytest.mark.parametrize(
    ("python_moved", "asked", "moves"), [(set(), False, False), ({"ubuntu22"}, False, True), (set(), True, True)], ids=["kept", "CPython", "asked"]
)
def test_refresh_wiring(monkeypatch, python_moved: set[str], asked: bool, moves: bool) -> None:
    """refresh.ask_packages with apt's answer replaced by NEW (what apt would print after the update): the toolchain stays or moves, and says why."""
    from generator.images import ospkgs
    from generator.refresh import update as refresh
    from generator.schedule import runtimes as schedule

    monkeypatch.setattr(ospkgs, "resolve", lambda *a, **kw: NEW)
    model = schedule.load(ROOT / "schedule.yaml").model
    out, changes = refresh.ask_packages(model, LOCK, {"ubuntu22"}, refresh.AptSettings(toolchain=asked), lambda line: None, python_moved)
    got = out["ubuntu22"]
    assert got.runtime == NEW.runtime
    assert (got.build == NEW.build) is moves and (got.build == OLD.build) is not moves
    toolchain_lines = [c for c in changes if c.note.startswith("toolchain|")]
    assert len(toolchain_lines) == (1 if moves else 0)
    assert any(c.note.startswith(f"{OLD.runtime[0].name}|") for c in changes)  # the runtime package's move is listed either way
