"""The documentation: README by audience, docs/ pages made from the code kept current, mkdocs strict.

The CLI reference and schedule.yaml's JSON Schema are generated (generator/docs.py): stale ones fail
here as stale generated files fail `generate --check`. The schema is derived from the loader's own
model, so the schema and the loader must refuse (and accept) the same schedules.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from generator import docs
from generator.cli import main
from generator.core import paths
from generator.images import render
from generator.schedule import decisions

from .conftest import ROOT, SCHEDULE

README = ROOT / paths.README
SCHEMA_LINE = "# yaml-language-server: $schema=docs/reference/schedule.schema.json"
FIRST_SCREEN = 30  # lines a reader sees before scrolling


def _json(value: Any) -> Any:
    """YAML data as an editor's language server sees it: dates are their text."""
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value.isoformat() if isinstance(value, dt.date) else value


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(docs.schema.schedule_schema())


# --- generated pages ---------------------------------------------------------------------------


@pytest.mark.parametrize("rel", sorted(docs.pages()))
def test_generated_page_is_current(rel: str) -> None:
    assert (ROOT / rel).read_text() == docs.pages()[rel], f"{rel} is stale: run python -m generator.docs"


def test_docs_check_command_passes_on_the_tree() -> None:
    proc = subprocess.run([sys.executable, "-m", "generator.docs", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_stale_and_missing_pages_are_named_then_written(tmp_path: Path) -> None:
    assert docs.stale(tmp_path) == sorted(docs.pages())  # missing
    assert sorted(docs.write(tmp_path)) == sorted(docs.pages())
    assert docs.stale(tmp_path) == [] and docs.write(tmp_path) == []
    (tmp_path / paths.CLI_REFERENCE).write_text("# edited by hand\n")
    assert docs.stale(tmp_path) == [paths.CLI_REFERENCE]


def test_cli_reference_holds_every_command_and_option() -> None:
    page = docs.cli_reference()
    for name, command in main.commands.items():
        assert f"\n## `{name}`\n" in page
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("-"):
                    assert opt in page, f"{name} {opt}"


def test_cli_reference_does_not_depend_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    before = docs.cli_reference()
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("GENERATOR_SCHEDULE", "/elsewhere/schedule.yaml")
    assert docs.cli_reference() == before


# --- schedule.yaml's JSON Schema -----------------------------------------------------------------


def test_schedule_yaml_names_its_schema() -> None:
    assert SCHEDULE.read_text().splitlines()[0] == SCHEMA_LINE
    assert (SCHEDULE.parent / SCHEMA_LINE.split("$schema=", 1)[1]).is_file()


def test_schema_is_valid_and_the_schedule_validates() -> None:
    jsonschema.Draft202012Validator.check_schema(docs.schema.schedule_schema())
    errors = [e.message for e in _validator().iter_errors(_json(yaml.safe_load(SCHEDULE.read_text())))]
    assert errors == []


def _set(*path: Any, value: Any) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value

    return change


def _drop(*path: Any) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        for key in path[:-1]:
            data = data[key]
        del data[path[-1]]

    return change


def _nest_packages(data: dict) -> None:  # `[*common, extra]`: an aliased list nests, the loader flattens
    packages = data["operating_systems"]["ubuntu22"]["build_packages"]
    data["operating_systems"]["ubuntu22"]["build_packages"] = [packages[:2], [packages[2:3]], *packages[3:]]


CHANGES = {
    "as committed": (lambda data: None, True),
    "aliased lists nested": (_nest_packages, True),
    "optional key left out": (_drop("operating_systems", "ubuntu22", "devel_packages"), True),
    "unknown top-level key": (_set("shedule_version", value=2), False),
    "unknown OS key": (_set("operating_systems", "ubuntu22", "digest", value="sha256:" + "0" * 64), False),
    "required key missing": (_drop("operating_systems", "ubuntu22", "glibc"), False),
    "wrong schema_version": (_set("schema_version", value=3), False),
    "minor as a YAML number": (_set("runtimes", 0, "python", value=3.12), False),
    "malformed runtime id": (_set("runtimes", 0, "id", value="Python312-ubuntu22"), False),
    "newline in a display name": (_set("operating_systems", "ubuntu22", "name", value="Ubuntu\n22.04"), False),
    "value over 512 characters": (_set("operating_systems", "ubuntu22", "apt_archive", value="https://a.example/" + "x" * 600), False),
    "window out of range": (_set("policy", "deprecation_window_days", value=4000), False),
    "true for a number": (_set("policy", "deprecation_window_days", value=True), False),
    "a string for a list": (_set("legacy_runtimes", 0, "python_version", value="2"), False),
    "malformed OS id key": (lambda d: d["operating_systems"].update({"Ubuntu 26": d["operating_systems"]["ubuntu22"]}), False),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_schema_and_loader_agree(name: str, tmp_path: Path) -> None:
    """One declaration: a schedule the loader refuses for its shape, the schema refuses too (and the other way)."""
    change, valid = CHANGES[name]
    data = copy.deepcopy(yaml.safe_load(SCHEDULE.read_text()))
    change(data)
    path = tmp_path / paths.SCHEDULE
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        decisions.load_policy(path)
        loader_ok = True
    except decisions.ScheduleError:
        loader_ok = False
    schema_ok = _validator().is_valid(_json(data))
    assert (loader_ok, schema_ok) == (valid, valid)


# --- README and the site -------------------------------------------------------------------------


def test_readme_is_short_and_keeps_the_matrix() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    assert text.count(render.MATRIX_BEGIN) == 1 and text.count(render.MATRIX_END) == 1
    first_screen = "\n".join(text.splitlines()[:FIRST_SCREEN])
    assert "## I deploy an app" in first_screen and "python -m generator app " in first_screen
    for heading in ("## I maintain the runtimes", "bash ci/dev.sh generate", "bash ci/dev.sh test", "## Support matrix"):
        assert heading in text


def test_readme_links_resolve() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    assert len(links) > 10
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert missing == []


def _mkdocs() -> str:
    exe = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if not exe:
        if os.environ.get("CI"):
            pytest.fail("mkdocs is not installed; pip install -e .[test]")
        pytest.skip("mkdocs is not installed (pip install -e .[test])")
    return exe


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_mkdocs(), "build", "--strict", "--site-dir", str(site)], cwd=root, capture_output=True, text=True)


def test_site_builds_strict(tmp_path: Path) -> None:
    proc = _build(ROOT, tmp_path / "site")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "breakage",
    [
        ("docs/index.md", "[a page that is not there](nowhere.md)", "'nowhere.md'"),
        ("docs/index.md", "[a heading that is not there](explanation.md#nowhere)", "'#nowhere'"),
        ("docs/orphan.md", "# A page left out of the nav", "orphan.md"),
    ],
    ids=["missing page", "missing anchor", "page not in the nav"],
)
def test_strict_build_fails_on_a_broken_link(tmp_path: Path, breakage: tuple[str, str, str]) -> None:
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    rel, line, named = breakage
    with open(tmp_path / rel, "a") as f:
        f.write(f"\n{line}\n")
    proc = _build(tmp_path, tmp_path / "site")
    assert proc.returncode == 1 and named in proc.stderr, proc.stderr
