"""`matrix` and `input_hash`: moving one input marks exactly the runtimes that depend on it, and no other.

Every test reads the pin it moves from the lock (a refresh that moves today's pins changes nothing here).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from generator.core import paths
from generator.schedule import runtimes as schedule
from tests.conftest import edit

ALL = 14


def git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(tree), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tree: Path) -> Path:
    git(tree, "init", "-q", "-b", "main")
    git(tree, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", "-A")
    git(tree, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "base")
    return tree


def edit_lock(repo: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = repo / paths.SCHEDULE_LOCK
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def changed(cli, repo: Path) -> list[str]:
    result = cli("generate", schedule=repo / paths.SCHEDULE)
    assert result.exit_code == 0, result.stderr
    result = cli("matrix", "--changed-since", "HEAD", "--json", schedule=repo / paths.SCHEDULE)
    assert result.exit_code == 0, result.stderr
    return [job["runtime"] for job in json.loads(result.stdout)["include"]]


def users(repo: Path, pred: Callable[[schedule.Runtime], bool]) -> list[str]:
    return sorted(r.id for r in schedule.load(repo / paths.SCHEDULE).runtimes.values() if pred(r))


def with_nix_hash(repo: Path) -> list[str]:
    runtimes = json.loads((repo / paths.RUNTIMES_JSON).read_text())["runtimes"]
    return sorted(rid for rid, e in runtimes.items() if (e["base"]["platforms"].get("amd64") or {}).get("nix_sha256"))


def test_nothing_moved_nothing_to_build(cli, repo: Path) -> None:
    assert changed(cli, repo) == []


def test_base_digest_moves_only_that_os(cli, repo: Path) -> None:
    edit_lock(repo, lambda d: d["base_images"]["ubuntu24"].update(digest="sha256:" + "1" * 64))
    assert changed(cli, repo) == users(repo, lambda r: r.os_id == "ubuntu24") == ["python312-ubuntu24", "python313-ubuntu24", "python314-ubuntu24"]


def test_legacy_base_moves_only_legacy(cli, repo: Path) -> None:
    edit_lock(repo, lambda d: d["base_images"]["ubuntu16"].update(digest="sha256:" + "2" * 64))
    assert changed(cli, repo) == ["python2", "python34", "python35", "python36", "python37"]


def test_nix_hash_moves_only_that_os(cli, repo: Path) -> None:
    edit_lock(repo, lambda d: d["base_images"]["ubuntu18"]["platforms"]["amd64"].update(nix_sha256="sha256-" + "A" * 43 + "="))
    assert changed(cli, repo) == ["python38-ubuntu18", "python39-ubuntu18"]


def test_interpreter_pin_moves_every_runtime_using_it(cli, repo: Path) -> None:
    minor_312 = schedule.load(repo / paths.SCHEDULE).pins.python_minors["3.12"]
    edit_lock(repo, lambda d: d["cpython"][minor_312].update(sha256="f" * 64))
    assert changed(cli, repo) == ["python312-ubuntu22", "python312-ubuntu24"]


def test_a_new_patch_release_moves_that_minor(cli, repo: Path) -> None:
    sched = schedule.load(repo / paths.SCHEDULE)
    old = sched.pins.python_minors["3.13"]
    new = f"3.13.{int(old.split('.')[2]) + 1}"

    def move(d: dict[str, Any]) -> None:
        d["python_minors"]["3.13"] = new
        d["cpython"][new] = {**d["cpython"].pop(old), "url": f"https://www.python.org/ftp/python/{new}/Python-{new}.tgz", "sha256": "e" * 64}

    edit_lock(repo, move)
    assert changed(cli, repo) == ["python313-ubuntu22", "python313-ubuntu24"]


@pytest.mark.parametrize("name", ["flake.lock", "flake.nix", "nix/runtime-image.nix"])
def test_nix_inputs_move_every_nix_built_runtime(cli, repo: Path, name: str) -> None:
    """A nixpkgs bump (flake.lock), the flake or the Nix function: every runtime the flake builds, and no other."""
    edit_lock(repo, lambda d: d["base_images"]["ubuntu18"]["platforms"]["amd64"].update(nix_sha256="sha256-" + "B" * 43 + "="))
    assert cli("generate", schedule=repo / paths.SCHEDULE).exit_code == 0
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "ubuntu18 has a pullImage hash")
    path = repo / name
    path.write_text(path.read_text() + ("\n" if name.endswith("lock") else "# touched\n"))
    got = changed(cli, repo)
    assert got == with_nix_hash(repo) and "python38-ubuntu18" in got and "python2" not in got


def test_tool_lock_moves_only_its_runtime(cli, repo: Path) -> None:
    path = repo / paths.LOCKFILES / "python311-ubuntu22.txt"
    path.write_text(path.read_text() + "# a comment changes the lock's bytes\n")
    assert changed(cli, repo) == ["python311-ubuntu22"]


def test_template_change_moves_everything(cli, repo: Path, monkeypatch) -> None:
    from generator.images import render

    env = render._env()
    source = env.loader.get_source(env, "Dockerfile.j2")[0]
    original = render.template
    monkeypatch.setattr(render, "template", lambda name: env.from_string(source + "# changed\n") if name == "Dockerfile.j2" else original(name))
    assert len(changed(cli, repo)) == ALL


def test_generator_version_moves_everything(cli, repo: Path, monkeypatch) -> None:
    from generator.images import render

    monkeypatch.setattr(render, "__version__", "999.0")
    assert len(changed(cli, repo)) == ALL


@pytest.mark.parametrize(
    "change",
    [
        lambda repo: edit_lock(repo, lambda d: d["base_images"]["ubuntu22"].update(evidence="re-verified by hand")),
        lambda repo: edit_lock(repo, lambda d: d["base_images"]["ubuntu22"]["platforms"].update(arm64={"manifest_digest": None, "nix_sha256": None})),
        lambda repo: edit(repo / paths.README, "## I deploy an app", "## I deploy an app, still"),
        lambda repo: edit(repo / paths.SCHEDULE, "# Statuses (supported", "# The statuses (supported"),
        lambda repo: edit(repo / paths.LOCKFILES / "python311-ubuntu22.in", "\n", "\n# a comment in the input only\n"),
    ],
    ids=["evidence text", "an architecture with nothing known yet", "README prose", "schedule comment", "tool input comment"],
)
def test_nothing_else_moves_an_input_hash(cli, repo: Path, change) -> None:
    change(repo)
    assert changed(cli, repo) == []


def test_matrix_json_shape(cli, repo: Path) -> None:
    result = cli("matrix", "--json", schedule=repo / paths.SCHEDULE)
    jobs = json.loads(result.stdout)["include"]
    assert len(jobs) == ALL
    first = {j["runtime"]: j for j in jobs}["python2"]
    assert first["nix"] is False and first["python"] == "2.7.12" and first["os"] == "ubuntu16"
    assert first["input_hash"].startswith("sha256:")
    assert first["input_tag"] == "inputs-" + first["input_hash"].removeprefix("sha256:")


@pytest.mark.parametrize("ref", ["no-such-ref", "--output=written-by-git", "HEAD..main", "３"])
def test_bad_ref_is_an_error(cli, repo: Path, ref: str) -> None:
    result = cli("matrix", "--changed-since", ref, schedule=repo / paths.SCHEDULE)
    assert result.exit_code in (1, 2) and ref in result.stderr and result.stderr.startswith("error: ")
    assert not (repo / "written-by-git").exists()
