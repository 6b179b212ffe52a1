"""Shared fixtures: the repository, a CLI runner, and throwaway copies of the schedule."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from generator.cli import main

ROOT = Path(__file__).resolve().parent.parent
SCHEDULE = ROOT / "schedule.yaml"


@pytest.fixture
def cli():
    """Run the CLI in-process; stdout and stderr stay separate."""

    def run(*args: str, schedule: Path | None = SCHEDULE) -> Result:
        argv = (["--schedule", str(schedule)] if schedule else []) + list(args)
        return CliRunner().invoke(main, argv, catch_exceptions=False)

    return run


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the repository's inputs and generated files, to break and regenerate freely."""
    for name in ("schedule.yaml", "README.md", "flake.nix", "flake.lock"):  # flake.*: part of every input_hash
        shutil.copy(ROOT / name, tmp_path / name)
    for sub in ("images", "lockfiles", "nix"):  # nix/: its text is part of every input_hash
        if (ROOT / sub).is_dir():
            shutil.copytree(ROOT / sub, tmp_path / sub)
    return tmp_path


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace text that must be there (a test that edits nothing would prove nothing)."""
    text = path.read_text()
    assert text.count(old) >= count, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


# The image tests' session fixtures (one runtime image build per session, shared by every module).
from .image_fixtures import (  # noqa: E402, F401
    current,
    image,
    images,
    legacy_image,
    legacy_python,
    need_podman,
    python_mirror,
    roots,
    test_tree,
)


def pytest_terminal_summary(terminalreporter) -> None:
    """The image tests' figures (build times, the two clean builds' digests, layer sizes) in every log."""
    from .image_fixtures import FACTS, TIMES

    if TIMES or FACTS:
        terminalreporter.write_sep("-", "image test figures")
        for name, seconds in TIMES.items():
            terminalreporter.write_line(f"{name}: {seconds:.0f}s")
        for name, text in FACTS.items():
            terminalreporter.write_line(f"{name}: {text.rstrip()}")
