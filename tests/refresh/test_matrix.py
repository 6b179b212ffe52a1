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


# --- rebuild (the interpreter's inputs moved) or re-assembly (only the image's) -------------------


def kinds(cli, repo: Path) -> dict[str, str]:
    """runtime → rebuild | reassemble, for every runtime `matrix --changed-since HEAD` lists."""
    assert cli("generate", schedule=repo / "schedule.yaml").exit_code == 0
    result = cli("matrix", "--changed-since", "HEAD", "--json", schedule=repo / "schedule.yaml")
    assert result.exit_code == 0, result.stderr
    return {job["runtime"]: job["build"] for job in json.loads(result.stdout)["include"]}


def _first_deb(key: str, os_id: str = "ubuntu22") -> Callable[[Path], None]:
    """Move the sha256 (and version) of the first .deb of os_id's closure `key`, as a -security update does."""

    def change(repo: Path) -> None:
        def move(d: dict[str, Any]) -> None:
            deb = d["os_packages"][os_id][key][0]
            deb.update(
                sha256="a" * 64, version=deb["version"] + "+sec1", filename=deb["filename"].replace("_", "+sec1_", 2).replace("+sec1_", "_", 1)
            )

        edit_lock(repo, move)

    return change


def _minor_release(repo: Path) -> None:
    v = schedule.load(repo / "schedule.yaml").pins.python_minors["3.12"]
    edit_lock(repo, lambda d: d["cpython"][v].update(sha256="f" * 64))


ON_22 = ["python310-ubuntu22", "python311-ubuntu22", "python312-ubuntu22", "python313-ubuntu22"]
KINDS = {
    # the image's inputs only: re-assembled around the interpreter already built
    "base digest": (lambda repo: edit_lock(repo, lambda d: d["base_images"]["ubuntu22"].update(digest="sha256:" + "3" * 64)), ON_22, "reassemble"),
    "runtime package": (_first_deb("runtime"), ON_22, "reassemble"),
    "build image package": (_first_deb("devel"), ON_22, "reassemble"),
    "base packages": (lambda repo: edit_lock(repo, lambda d: d["os_packages"]["ubuntu22"]["base"][0].update(version="9:9")), ON_22, "reassemble"),
    "tool lock": (lambda repo: edit(repo / "lockfiles" / "python311-ubuntu22.txt", "\n", "\n# moved\n"), ["python311-ubuntu22"], "reassemble"),
    "nix hash": (
        lambda repo: edit_lock(repo, lambda d: d["base_images"]["ubuntu22"]["platforms"]["amd64"].update(nix_sha256="sha256-" + "C" * 43 + "=")),
        ON_22,
        "reassemble",
    ),
    "image config": (lambda repo: edit(repo / "schedule.yaml", "2027-06-01", "2027-06-02"), None, "reassemble"),
    # the interpreter's inputs: rebuilt
    "CPython release": (_minor_release, ["python312-ubuntu22", "python312-ubuntu24"], "rebuild"),
    "toolchain package": (_first_deb("build"), ON_22, "rebuild"),
    "toolchain base": (
        lambda repo: edit_lock(
            repo, lambda d: d["os_packages"]["ubuntu22"].update(toolchain_base="docker.io/library/ubuntu:22.04@sha256:" + "4" * 64)
        ),
        ON_22,
        "rebuild",
    ),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_input_kind_is_a_rebuild_or_a_reassembly(cli, repo: Path, kind: str) -> None:
    change, expected, how = KINDS[kind]
    change(repo)
    got = kinds(cli, repo)
    assert got, kind
    if expected is not None:
        assert sorted(got) == expected
    assert set(got.values()) == {how}, got


def test_interpreter_template_change_rebuilds_everything(cli, repo: Path, monkeypatch) -> None:
    from generator.images import render

    env = render._env()
    source = env.loader.get_source(env, "interpreter.Dockerfile.j2")[0]
    original = render.template
    monkeypatch.setattr(
        render, "template", lambda name: env.from_string(source + "# changed\n") if name == "interpreter.Dockerfile.j2" else original(name)
    )
    got = kinds(cli, repo)
    assert len(got) == ALL and set(got.values()) == {"rebuild"}


def test_runtime_template_change_reassembles_everything(cli, repo: Path, monkeypatch) -> None:
    from generator.images import render

    env = render._env()
    source = env.loader.get_source(env, "Dockerfile.j2")[0]
    original = render.template
    monkeypatch.setattr(render, "template", lambda name: env.from_string(source + "# changed\n") if name == "Dockerfile.j2" else original(name))
    got = kinds(cli, repo)
    assert len(got) == ALL and set(got.values()) == {"reassemble"}


def test_matrix_text_says_rebuild_or_reassemble(cli, repo: Path) -> None:
    KINDS["base digest"][0](repo)
    _minor_release(repo)
    assert cli("generate", schedule=repo / "schedule.yaml").exit_code == 0
    out = cli("matrix", "--changed-since", "HEAD", schedule=repo / "schedule.yaml").stdout
    assert "python311-ubuntu22" in out and "reassemble" in out.split("python311-ubuntu22", 1)[1].splitlines()[0]
    assert "rebuild" in out.split("python312-ubuntu24", 1)[1].splitlines()[0]
    assert out.rstrip().endswith("5 runtime(s) to build (2 to rebuild, 3 to re-assemble), changed since HEAD"), out


def test_an_entry_from_before_interpreters_is_a_rebuild(cli, repo: Path) -> None:
    """runtimes.json at a revision from before the interpreter hash: every changed runtime is rebuilt (nothing to reuse)."""
    path = repo / "lockfiles" / "runtimes.json"
    data = json.loads(path.read_text())
    for entry in data["runtimes"].values():
        del entry["interpreter"]
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "old shape")
    KINDS["base digest"][0](repo)
    assert set(kinds(cli, repo).values()) == {"rebuild"}
