"""`matrix`: moving one pin marks exactly the runtimes that depend on it, and no other."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import edit


def git(tree: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(tree), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tree: Path) -> Path:
    git(tree, "init", "-q", "-b", "main")
    git(tree, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", "-A")
    git(tree, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "base")
    return tree


def changed(cli, repo: Path) -> list[str]:
    assert cli("generate", schedule=repo / "schedule.yaml").exit_code == 0
    result = cli("matrix", "--changed-since", "HEAD", "--json", schedule=repo / "schedule.yaml")
    assert result.exit_code == 0, result.stderr
    return [job["runtime"] for job in json.loads(result.stdout)["include"]]


def test_nothing_moved_nothing_to_build(cli, repo: Path) -> None:
    assert changed(cli, repo) == []


def test_base_digest_moves_only_that_os(cli, repo: Path) -> None:
    edit(repo / "schedule.yaml", "sha256:008173c23f95b170204355c12626cb5a965d779a7e1283b09e9cffbb1bf33ca3", "sha256:" + "1" * 64)
    assert changed(cli, repo) == ["python312-ubuntu24", "python313-ubuntu24", "python314-ubuntu24"]


def test_interpreter_pin_moves_every_runtime_using_it(cli, repo: Path) -> None:
    edit(repo / "schedule.yaml", "0816c4761c97ecdb3f50a3924de0a93fd78cb63ee8e6c04201ddfaedca500b0b", "f" * 64)
    assert changed(cli, repo) == ["python312-ubuntu22", "python312-ubuntu24"]


def test_legacy_base_moves_only_legacy(cli, repo: Path) -> None:
    edit(repo / "schedule.yaml", "sha256:1f1a2d56de1d604801a9671f301190704c25d604a416f59e03c04f5c6ffee0d6", "sha256:" + "2" * 64)
    assert changed(cli, repo) == ["python2", "python34", "python35", "python36", "python37"]


def test_template_change_moves_everything(cli, repo: Path, monkeypatch) -> None:
    from generator import render

    env = render._env()
    source = env.loader.get_source(env, "Dockerfile.j2")[0]
    original = render.template
    monkeypatch.setattr(render, "template", lambda name: env.from_string(source + "# changed\n") if name == "Dockerfile.j2" else original(name))
    assert len(changed(cli, repo)) == 14


def test_generator_version_moves_everything(cli, repo: Path, monkeypatch) -> None:
    from generator import render

    monkeypatch.setattr(render, "__version__", "999.0")
    assert len(changed(cli, repo)) == 14


def test_matrix_json_shape(cli, repo: Path) -> None:
    result = cli("matrix", "--json", schedule=repo / "schedule.yaml")
    jobs = json.loads(result.stdout)["include"]
    assert len(jobs) == 14
    first = {j["runtime"]: j for j in jobs}["python2"]
    assert first["nix"] is False and first["python"] == "2.7.12" and first["os"] == "ubuntu16"
    assert first["input_hash"].startswith("sha256:")


def test_bad_ref_is_an_error(cli, repo: Path) -> None:
    result = cli("matrix", "--changed-since", "no-such-ref", schedule=repo / "schedule.yaml")
    assert result.exit_code == 2 and "no-such-ref" in result.stderr
