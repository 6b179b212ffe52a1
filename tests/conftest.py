"""Shared fixtures: the repository, a CLI runner, and throwaway copies of the schedule."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from generator.cli import main
from generator.core import paths

ROOT = Path(__file__).resolve().parent.parent
SCHEDULE = ROOT / paths.SCHEDULE


@pytest.fixture
def cli():
    """Run the CLI in-process; stdout and stderr stay separate."""

    def run(*args: str, schedule: Path | None = SCHEDULE) -> Result:
        argv = (["--schedule", str(schedule)] if schedule else []) + list(args)
        return CliRunner().invoke(main, argv, catch_exceptions=False)

    return run


def copy_tree(dest: Path, src: Path = ROOT) -> Path:
    """A copy of a tree's inputs and generated files (the repository's by default), to break and regenerate freely."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("schedule.yaml", "README.md", "flake.nix", "flake.lock"):  # flake.*: part of every input_hash
        shutil.copy(src / name, dest / name)
    for sub in (paths.IMAGES, paths.LOCKFILES, paths.NIX_DIR):  # nix/: its text is part of every input_hash
        shutil.copytree(src / sub, dest / sub, dirs_exist_ok=True)
    return dest


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return copy_tree(tmp_path)


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace text that must be there (a test that edits nothing would prove nothing)."""
    text = path.read_text()
    assert text.count(old) >= count, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


# The image tests' session fixtures (one runtime image build per session, shared by every module).
from .image_fixtures import (  # noqa: E402, F401
    build_images,
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

# The fixtures that do a marker's slow work (pyproject.toml lists the markers), by the module that
# defines them (test_refresh.py has an `images` of its own): a test that asks for one carries its
# marker, so `-m "not image"` (bash ci/dev.sh unit) never starts one by accident.
IMAGE_FIXTURES = ("need_podman", "roots", "images", "image", "build_images", "legacy_image", "test_tree", "python_mirror")
SLOW_FIXTURES = {
    **{("tests.image_fixtures", name): "image" for name in IMAGE_FIXTURES},
    # CPython tarballs from Ubuntu's and Debian's archives, for the image builds
    **{("tests.image_fixtures", name): "image" for name in ("legacy_python", "current")},
    ("tests.refresh.test_refresh", "registry_server"): "registry",
    ("tests.app.test_app_ospkgs", "jammy"): "archive",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        for name, defs in info.name2fixturedefs.items() if info else ():
            marker = SLOW_FIXTURES.get((getattr(defs[-1].func, "__module__", ""), name))
            if marker:
                item.add_marker(marker)


def pytest_terminal_summary(terminalreporter) -> None:
    """The image tests' figures (build times, the two clean builds' digests, layer sizes) in every log."""
    from .image_fixtures import FACTS, TIMES

    if TIMES or FACTS:
        terminalreporter.write_sep("-", "image test figures")
        for name, seconds in TIMES.items():
            terminalreporter.write_line(f"{name}: {seconds:.0f}s")
        for name, text in FACTS.items():
            terminalreporter.write_line(f"{name}: {text.rstrip()}")
