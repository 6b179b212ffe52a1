"""schedule.yaml: the real file loads as specified, and every kind of mistake is named with its fix."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from generator import schedule

from .conftest import SCHEDULE, edit

EXPECTED = {
    "python38-ubuntu18": ("3.8.20", "ubuntu18", False),
    "python39-ubuntu18": ("3.9.25", "ubuntu18", True),
    "python310-ubuntu22": ("3.10.20", "ubuntu22", False),
    "python311-ubuntu22": ("3.11.15", "ubuntu22", False),
    "python312-ubuntu22": ("3.12.13", "ubuntu22", False),
    "python313-ubuntu22": ("3.13.14", "ubuntu22", True),
    "python312-ubuntu24": ("3.12.13", "ubuntu24", False),
    "python313-ubuntu24": ("3.13.14", "ubuntu24", False),
    "python314-ubuntu24": ("3.14.6", "ubuntu24", True),
    "python2": ("2.7.12", "ubuntu16", False),
    "python34": ("3.4.8", "ubuntu16", False),
    "python35": ("3.5.9", "ubuntu16", False),
    "python36": ("3.6.10", "ubuntu16", False),
    "python37": ("3.7.9", "ubuntu16", False),
}


def test_real_schedule_has_every_runtime_of_the_issue() -> None:
    s = schedule.load(SCHEDULE)
    got = {r.id: (r.version, r.os_id, r.default_for_os) for r in s.runtimes.values()}
    assert got == EXPECTED
    assert [r.id for r in s.legacy() if r.legacy_default] == ["python2"]
    assert s.newest().id == "python314-ubuntu24"


def test_pins_match_shared_evidence() -> None:
    """The schedule's pins are the researched values in shared/pins, not retyped by hand."""
    pins = SCHEDULE.parent.parent / "shared" / "pins"
    if not pins.is_dir():
        pytest.skip("shared/pins is not beside this checkout")
    s = schedule.load(SCHEDULE)
    rows = [line.split("\t") for line in (pins / "cpython-sources.tsv").read_text().splitlines()[1:]]
    tgz = {r[0]: (r[1], r[2]) for r in rows}
    for version, interp in s.model.interpreters.items():
        assert (interp.url, interp.sha256) == tgz[version]
    bases = {r[0]: r for r in (line.split("\t") for line in (pins / "base-images.tsv").read_text().splitlines()[1:])}
    for os_id, os_ in s.model.operating_systems.items():
        _, image, digest, nix, _ = bases[os_id]
        assert os_.image == f"docker.io/library/{image}"
        assert os_.digest == digest
        assert os_.nix_sha256 == (None if nix == "-" else nix)
    dates = dict(line.split("\t")[:2] for line in (pins / "support-dates.tsv").read_text().splitlines()[1:])
    for version, interp in s.model.interpreters.items():
        minor = ".".join(version.split(".")[:2])
        assert interp.end_of_support.isoformat() == dates[f"python {minor}"]


@pytest.mark.parametrize(
    ("on", "runtime_id", "status"),
    [
        ("2026-11-23", "python312-ubuntu22", "supported"),
        ("2026-12-03", "python312-ubuntu22", "deprecated"),  # 180 days before ubuntu22's 2027-06-01
        ("2027-06-01", "python312-ubuntu22", "end_of_support"),
        ("2026-11-23", "python310-ubuntu22", "end_of_support"),  # Python 3.10 ended 2026-10-31
        ("2026-05-03", "python310-ubuntu22", "supported"),
        ("2026-05-04", "python310-ubuntu22", "deprecated"),
        ("2026-11-23", "python2", "end_of_support"),
        ("2019-01-01", "python2", "supported"),
        ("2028-06-01", "python312-ubuntu24", "deprecated"),  # Python 3.12 ends before ubuntu24 does
    ],
)
def test_status_is_derived_from_dates(on: str, runtime_id: str, status: str) -> None:
    s = schedule.load(SCHEDULE)
    assert s.status(s.runtimes[runtime_id], dt.date.fromisoformat(on)) == status


def test_list_table_and_json(cli) -> None:
    table = cli("list", "--date", "2026-11-23")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["RUNTIME", "OS", "PYTHON", "STATUS", "END", "OF", "SUPPORT"]
    assert lines[1].split() == ["python38-ubuntu18", "ubuntu18", "3.8.20", "end_of_support", "2023-05-31"]
    assert "python314-ubuntu24 *  ubuntu24  3.14.6   supported" in table.stdout
    rows = json.loads(cli("list", "--json", "--date", "2026-11-23").stdout)
    assert len(rows) == 14
    assert {r["runtime_id"]: r["status"] for r in rows}["python311-ubuntu22"] == "supported"
    assert set(rows[0]) == {"default", "end_of_support", "image", "operating_system", "python_version", "runtime_id", "status", "style"}


# (name, (old, new) edit of schedule.yaml, fragments of the error)
BROKEN = [
    ("unknown top-level key", ("schema_version: 1", "schema_version: 1\ncolour: blue"), ["schedule.yaml:9", "colour", "unknown key"]),
    (
        "unknown key in an OS",
        ("    end_of_support: 2023-05-31", "    end_of_suport: 2023-05-31"),
        ["operating_systems.ubuntu18.end_of_suport", "unknown key", "operating_systems.ubuntu18.end_of_support", "missing"],
    ),
    (
        "missing field",
        ("    sha256: 0816c4761c97ecdb3f50a3924de0a93fd78cb63ee8e6c04201ddfaedca500b0b\n", ""),
        ["interpreters.3.12.13.sha256", "required key is missing"],
    ),
    (
        "duplicate runtime ID",
        ('{id: python37, os: ubuntu16, python: "3.7.9"', '{id: python36, os: ubuntu16, python: "3.7.9"'),
        ["legacy_runtimes[4].id", "duplicate runtime ID 'python36'"],
    ),
    (
        "runtime naming an unknown OS",
        ("{id: python38-ubuntu18, os: ubuntu18", "{id: python38-ubuntu20, os: ubuntu20"),
        ["runtimes[0].os", "unknown operating system 'ubuntu20'", "ubuntu16, ubuntu18, ubuntu22, ubuntu24"],
    ),
    (
        "runtime naming an unknown interpreter",
        ('python: "3.8.20"}', 'python: "3.8.21"}'),
        ["runtimes[0].python", "unknown interpreter '3.8.21'"],
    ),
    (
        "malformed sha256",
        ("sha256: 0816c4761c97ecdb3f50", "sha256: 0816c4761c97ecdb3f5Z"),
        ["interpreters.3.12.13.sha256", "64 lowercase hex digits"],
    ),
    (
        "malformed digest",
        ("digest: sha256:b8b6ee6aa931", "digest: sha256:b8b6"),
        ["operating_systems.ubuntu22.digest", "'sha256:' and 64 lowercase hex digits"],
    ),
    (
        "malformed Nix hash",
        ("nix_sha256: sha256-JH369uSSA9smCqIXhMXn3A8jwYeJ4EOqQ3WfpHqwMMg=", "nix_sha256: sha256-short="),
        ["operating_systems.ubuntu24.nix_sha256", "Nix hash"],
    ),
    (
        "version written as a YAML number",
        ('{id: python310-ubuntu22, os: ubuntu22, python: "3.10.20"}', "{id: python310-ubuntu22, os: ubuntu22, python: 3.10}"),
        ["runtimes[2].python", "3.10 is written as a YAML number (read as 3.1)", 'quote it: "3.10"'],
    ),
    (
        "legacy python_version written as a number",
        ('python_version: ["3.4"]', "python_version: [3.4]"),
        ["legacy_runtimes[1].python_version[0]", "YAML number", 'quote it: "3.4"'],
    ),
    (
        "python_version setting taken twice",
        ('python_version: ["3.5"]', 'python_version: ["3.4"]'),
        ["legacy_runtimes[2].python_version[0]", "'3.4' already selects python34"],
    ),
    ("ID not matching Python and OS", ("{id: python311-ubuntu22", "{id: python311-ubuntu24"), ["runtimes[3].id", "must be 'python311-ubuntu22'"]),
    (
        "two legacy defaults",
        ('python: "3.4.8", python_version: ["3.4"]}', 'python: "3.4.8", python_version: ["3.4"], default: true}'),
        ["exactly one"],
    ),
    (
        "tarball URL of another version",
        ("ftp/python/3.9.25/Python-3.9.25.tgz", "ftp/python/3.9.24/Python-3.9.24.tgz"),
        ["interpreters.3.9.25.url", "must end in /Python-3.9.25.tgz"],
    ),
    ("date not a date", ("end_of_support: 2030-10-31", "end_of_support: soon"), ["interpreters.3.14.6.end_of_support", "YYYY-MM-DD"]),
    ("duplicate YAML key", ("  ubuntu24:\n", "  ubuntu22:\n"), ["duplicate key 'operating_systems.ubuntu22'", "first defined on line"]),
    ("YAML syntax error", ("schema_version: 1", "schema_version: [1"), ["schedule.yaml:", "YAML syntax error"]),
    ("wrong schema version", ("schema_version: 1", "schema_version: 2"), ["schema_version", "1"]),
    ("string where a number belongs", ("deprecation_window_days: 180", "deprecation_window_days: '180'"), ["policy.deprecation_window_days"]),
]


@pytest.mark.parametrize(("name", "change", "fragments"), BROKEN, ids=[b[0] for b in BROKEN])
def test_schema_errors(cli, tree: Path, name: str, change: tuple[str, str], fragments: list[str]) -> None:
    edit(tree / "schedule.yaml", *change)
    with pytest.raises(schedule.ScheduleError) as err:
        schedule.load(tree / "schedule.yaml")
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    for problem in err.value.problems:
        assert problem.startswith("schedule.yaml:"), problem  # every problem names file and line
    result = cli("list", schedule=tree / "schedule.yaml")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "schedule.yaml:" in result.stderr


def test_empty_schedule(tree: Path) -> None:
    (tree / "schedule.yaml").write_text("")
    with pytest.raises(schedule.ScheduleError, match="must be a YAML mapping"):
        schedule.load(tree / "schedule.yaml")
