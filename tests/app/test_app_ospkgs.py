"""An app's OS packages: dpkg's version order, apt-packages.txt refused line by line, the resolver on
small indices (alternatives, Provides, versions, conflicts), the lock and its loader, lock-app on a
signed archive served on 127.0.0.1, and one resolution against Ubuntu's real jammy archive."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from generator.app import ospkgs as app_ospkgs
from generator.app.ospkgs import AppOsError, Indices, Requested
from generator.app.ospkgs_solve import ResolveError, closure
from generator.core import http, paths
from generator.images import debian
from generator.schedule.lock import BasePackage
from generator.schedule.runtimes import load as load_schedule
from tests.conftest import SCHEDULE, edit
from tests.servers import serve

SCHED = load_schedule(SCHEDULE)
UBUNTU22 = next(r for r in SCHED.runtimes.values() if r.os_id == "ubuntu22" and r.default_for_os)
needs_tools = pytest.mark.skipif(
    not (shutil.which("apt-ftparchive") and shutil.which("gpg") and shutil.which("dpkg-deb")), reason="apt-utils, gnupg, dpkg (ci/dev.sh)"
)

# --- dpkg's version order ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.0~rc1", "1.0"),  # ~ sorts before the end of the string
        ("1.0~~", "1.0~"),
        ("1.0~", "1.0"),
        ("1.0", "1.0a"),  # a letter sorts after the end
        ("1.0", "1.0+b1"),
        ("1.0+b1", "1.0.1"),  # non-letters by their code, after all letters: . after +
        ("1.0-1", "1.0-1ubuntu0.1"),
        ("2.35-0ubuntu3.8", "2.35-0ubuntu3.10"),  # digits as numbers
        ("9", "10"),
        ("1.2.3-4~22.04", "1.2.3-4"),  # a backport sorts below its source
        ("2:0.1", "10:0.0"),  # epochs as numbers
        ("99.9", "1:0.1"),  # any epoch beats none
        ("5.1.1", "5.1.1alpha+20120614"),
        ("1:1.1.4", "1:1.2.11.dfsg-2ubuntu9.2"),
    ],
)
def test_version_order(older: str, newer: str) -> None:
    assert debian.compare(older, newer) < 0 < debian.compare(newer, older)
    assert debian.satisfies(newer, ">>", older) and debian.satisfies(older, "<<", newer) and not debian.satisfies(newer, "<=", older)
    if shutil.which("dpkg"):  # the reference implementation agrees
        assert subprocess.run(["dpkg", "--compare-versions", older, "lt", newer]).returncode == 0


@pytest.mark.parametrize(("a", "b"), [("1.0", "1.00"), ("0:1.0", "1.0"), ("1.0", "1.0-0"), ("1:2.0-1", "1:2.0-1")])
def test_equal_versions(a: str, b: str) -> None:
    assert debian.compare(a, b) == 0
    assert debian.satisfies(a, "=", b) and debian.satisfies(a, ">=", b) and debian.satisfies(a, "<=", b)


@pytest.mark.parametrize("bad", ["x:1.0", "1.0-", ":1.0", "1:-1"])
def test_malformed_versions_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        debian.compare(bad, "1.0")


def test_relations_parse_alternatives_qualifiers_and_old_operators() -> None:
    R = debian.Relation
    got = debian.relations("libc6 (>= 2.34), python3:any (>= 3.8~) | python3-minimal,\n debconf (< 0.5) | debconf-2.0, libx [amd64]")
    assert got == [
        [R("libc6", ">=", "2.34")],
        [R("python3", ">=", "3.8~"), R("python3-minimal")],
        [R("debconf", "<=", "0.5"), R("debconf-2.0")],
        [R("libx")],
    ]
    with pytest.raises(ValueError, match="not a package relation"):
        debian.relations("libc6 (>= 2.34")


# --- apt-packages.txt -----------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "apt-packages.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_read_keeps_names_and_lines_and_skips_comments(tmp_path: Path) -> None:
    path = _write(tmp_path, "# OS packages of this app\r\n\r\nlibmagic1   # python-magic loads it with ctypes\r\npoppler-utils\nlibstdc++6\n")
    assert app_ospkgs.read(path) == [Requested("libmagic1", 3), Requested("poppler-utils", 4), Requested("libstdc++6", 5)]
    assert app_ospkgs.read(_write(tmp_path, "# nothing yet\n\n")) == []


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("libmagic1\nLibMagic1\n", 2, "'LibMagic1' is not a package name; one Ubuntu package name per line"),
        ("x\n", 1, "'x' is not a package name"),
        ("-foo\n", 1, "'-foo' is not a package name"),
        ("libfoo_1\n", 1, "'libfoo_1' is not a package name"),
        ("\n\nlibmagic1=1:5.41-3\n", 3, "'libmagic1=1:5.41-3' has a version constraint; write only the name (libmagic1)"),
        ("libmagic1 (>= 5)\n", 1, "has a version constraint; write only the name (libmagic1)"),
        ("libmagic1:amd64\n", 1, "'libmagic1:amd64' has an architecture qualifier; write only the name (libmagic1)"),
        ("curl wget\n", 1, "'curl wget' is several words"),
        ("curl\n# again\ncurl\n", 3, "curl is already listed on line 1; list each package once"),
        ("ok\n" + "a" * 101 + "\n", 2, "characters) is not a package name"),
        (b"curl\n\xe9t\xe9\n", 2, "not UTF-8"),
    ],
)
def test_read_refuses_with_file_and_line(tmp_path: Path, text: str | bytes, line: int, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(AppOsError) as err:
        app_ospkgs.read(path)
    assert f"{path}:{line}: " in str(err.value) and message in str(err.value)


def test_read_reports_every_bad_line(tmp_path: Path) -> None:
    with pytest.raises(AppOsError) as err:
        app_ospkgs.read(_write(tmp_path, "BAD\ngood\nfoo=1\ngood\n"))
    assert [p.split(": ", 1)[0].rsplit(":", 1)[1] for p in err.value.problems] == ["1", "3", "4"]


def test_read_refuses_a_symlink_out_of_the_app_and_a_huge_file(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    outside = _write(tmp_path, "curl\n")
    (app / "apt-packages.txt").symlink_to(outside)
    with pytest.raises(AppOsError, match=r"a symlink to .*outside the app directory"):
        app_ospkgs.read(app / "apt-packages.txt")
    (app / "lists").mkdir()
    (app / "lists" / "os.txt").write_text("curl\n")
    (app / "apt-packages.txt").unlink()
    (app / "apt-packages.txt").symlink_to("lists/os.txt")  # inside the app: fine
    assert app_ospkgs.read(app / "apt-packages.txt") == [Requested("curl", 1)]
    (app / "apt-packages.txt").unlink()
    (app / "apt-packages.txt").write_text("curl\n" * 20000)
    with pytest.raises(AppOsError, match="larger than 64 KiB"):
        app_ospkgs.read(app / "apt-packages.txt")


# --- the resolver, on small indices -----------------------------------------------------------------


def stanza(name: str, version: str = "1.0", arch: str = "amd64", **fields: str) -> str:
    file_version = version.split(":", 1)[-1]
    lines = {
        "Package": name,
        "Version": version,
        "Architecture": arch,
        "Filename": f"pool/main/{name[0]}/{name}/{name}_{file_version}_{arch}.deb",
        "Size": str(1000 + len(name)),
        "SHA256": hashlib.sha256(f"{name} {version} {arch}".encode()).hexdigest(),
        **{k.replace("_", "-"): v for k, v in fields.items()},
    }
    return "".join(f"{k}: {v}\n" for k, v in lines.items()) + "\n"


def indices(release: list[str], updates: list[str] = (), security: list[str] = ()) -> Indices:
    return Indices.parse({"jammy": "".join(release), "jammy-updates": "".join(updates), "jammy-security": "".join(security)})


def image(*packages: str) -> list[BasePackage]:
    out = []
    for p in packages:
        name, version = p.split("=")
        out.append(BasePackage(name=name, version=version, architecture="amd64", source=name, source_version=version))
    return out


def names(debs) -> list[str]:
    return [f"{d.name}={d.version}" for d in debs]


def test_a_clause_satisfied_by_the_image_adds_nothing_and_the_first_available_alternative_is_taken() -> None:
    ix = indices(
        [
            stanza("app-tool", Depends="libc6 (>= 2.30), missing-lib | libalt1, libfoo (>= 1.2) | libbar, python3:any (>= 3.8)"),
            stanza("libalt1", Pre_Depends="libc6 (>= 2.34)"),
            stanza("libfoo", "1.5"),
            stanza("libbar"),
            stanza("libc6", "2.35-0ubuntu3.1"),
            stanza("python3", "3.10.6-1~22.04"),
        ]
    )
    debs = closure([Requested("app-tool", 1)], ix, image("libc6=2.35-0ubuntu3.8", "python3=3.10.6-1~22.04"))
    assert names(debs) == ["app-tool=1.0", "libalt1=1.0", "libfoo=1.5"]
    assert debs[0].filename == "pool/main/a/app-tool/app-tool_1.0_amd64.deb" and debs[0].suite == "jammy"
    assert closure([Requested("libc6", 1)], ix, image("libc6=2.0")) == [], "requested, and in the image: nothing to add"


def test_versioned_dependencies_the_image_does_not_meet_take_the_newest_version_from_the_preferred_pocket() -> None:
    ix = indices(
        [stanza("tool", Depends="libx (>= 2.0)"), stanza("libx", "1.0")],
        updates=[stanza("libx", "2.1-1"), stanza("libx", "2.1-1ubuntu0.1")],
        security=[stanza("libx", "2.1-1ubuntu0.1")],
    )
    debs = closure([Requested("tool", 4)], ix, image("libx=1.0"))
    assert names(debs) == ["libx=2.1-1ubuntu0.1", "tool=1.0"]
    assert debs[0].suite == "jammy-security", "the same file in -updates and -security: the -security pocket, as ospkgs records it"
    ix = indices([stanza("tool", Depends="libx (>= 3)"), stanza("libx", "1.0")], updates=[stanza("libx", "2.1")])
    with pytest.raises(ResolveError) as err:
        closure([Requested("other", 2), Requested("tool", 4)], ix, image("libx=1.0", "other=1"), source="app/apt-packages.txt")
    assert str(err.value) == (
        "app/apt-packages.txt:4: tool needs libx (>= 3) (through tool): libx (>= 3) is not satisfied by libx 2.1, the newest version there; "
        "the runtime image has 1.0; searched jammy, jammy-updates, jammy-security"
    )


def test_an_unknown_package_is_refused_with_the_line_that_pulled_it_in() -> None:
    ix = indices([stanza("a", Depends="b"), stanza("b", Depends="c | d")])
    with pytest.raises(ResolveError, match=r"^apt-packages.txt:7: nosuch is in none of the indices; searched jammy, jammy-updates"):
        closure([Requested("nosuch", 7)], ix, [])
    with pytest.raises(ResolveError) as err:
        closure([Requested("a", 3)], ix, [])
    assert str(err.value).startswith("apt-packages.txt:3: a needs c | d (through a → b): c is in none of the indices; d is in none of the indices;")


def test_virtual_packages_through_provides() -> None:
    ix = indices(
        [
            stanza("mailer", Depends="mail-transport-agent, awk, libapi (>= 2)"),
            stanza("postfix", Provides="mail-transport-agent", Priority="optional"),
            stanza("exim4-daemon-light", Provides="mail-transport-agent", Priority="optional"),
            stanza("dma", Provides="mail-transport-agent", Priority="extra"),
            stanza("mawk", "1.3.4", Provides="awk", Priority="required"),
            stanza("gawk", Provides="awk", Priority="optional"),
            stanza("libapi-impl", Provides="libapi (= 2.5)"),
            stanza("libapi-old", Provides="libapi"),
        ]
    )
    debs = closure([Requested("mailer", 1)], ix, image("mawk=1.3.4"))
    # awk: provided by mawk, in the image; the MTA: lowest Priority, then the name; libapi (>= 2): only a versioned Provides meets it
    assert names(debs) == ["exim4-daemon-light=1.0", "libapi-impl=1.0", "mailer=1.0"]
    again = closure([Requested("mailer", 1)], ix, image("mawk=1.3.4"))
    assert names(again) == names(debs), "deterministic"
    ix = indices([stanza("needs-new-api", Depends="libapi (>= 3)"), stanza("libapi-impl", Provides="libapi (= 2.5)")])
    with pytest.raises(ResolveError, match="libapi \\(>= 3\\): no package provides it at a version that satisfies it"):
        closure([Requested("needs-new-api", 1)], ix, [])


def test_conflicts_and_breaks_are_refused() -> None:
    ix = indices(
        [
            stanza("newmta", Conflicts="mail-transport-agent"),
            stanza("postfix", Provides="mail-transport-agent"),
            stanza("a", Depends="b"),
            stanza("b", Breaks="a (<< 2)"),
            stanza("c", Breaks="a (<< 0.5)"),
            stanza("old", "1.0", Breaks="shiny"),
            stanza("shiny"),
            stanza("i386-only", arch="i386"),
        ]
    )
    with pytest.raises(ResolveError) as err:
        closure([Requested("newmta", 2)], ix, image("postfix=1.0"))
    assert str(err.value) == (
        "apt-packages.txt:2: newmta 1.0 (for newmta) is to be installed, which Conflicts: mail-transport-agent; but the runtime image has postfix 1.0"
    )
    with pytest.raises(ResolveError, match=r"b 1.0 \(for a\) is to be installed, which Breaks: a \(<< 2\); but apt-packages.txt:1: a 1.0 \(for a\)"):
        closure([Requested("a", 1)], ix, [])
    assert names(closure([Requested("c", 1)], ix, image("a=1.0"))) == ["c=1.0"], "Breaks: a (<< 0.5) does not hit a 1.0"
    with pytest.raises(ResolveError, match=r"the runtime image has old 1\.0, which Breaks: shiny; but apt-packages\.txt:5: shiny 1\.0"):
        closure([Requested("shiny", 5)], ix, image("old=1.0"))
    with pytest.raises(ResolveError, match="i386-only is in none of the indices"):
        closure([Requested("i386-only", 1)], ix, [])


def test_a_dependency_cycle_ends() -> None:
    ix = indices([stanza("a", Depends="b"), stanza("b", Pre_Depends="a", Depends="c"), stanza("c", arch="all", Depends="a | b")])
    assert names(closure([Requested("a", 1)], ix, [])) == ["a=1.0", "b=1.0", "c=1.0"]


# --- the lock -------------------------------------------------------------------------------------


def _lock(**kw) -> app_ospkgs.AptPackagesLock:
    ix = indices([stanza("tool", Depends="libtool1"), stanza("libtool1", "1:2.0-1")], security=[stanza("libtool1", "1:2.0-1ubuntu1")])
    ix.dates.update({"jammy": "Release Date: Thu, 21 Apr 2022 17:16:08 UTC", "jammy-security": "Release Date: x", "jammy-updates": "Release Date: y"})
    args = {"archive": "http://archive.ubuntu.com/ubuntu/", "keyring": None, "runtime_id": UBUNTU22.id, "os_id": "ubuntu22", "indices": ix}
    return app_ospkgs.resolve([Requested("tool", 1)], UBUNTU22.os, image("libc6=2.35"), **{**args, **kw})


def test_the_lock_is_sorted_json_with_its_evidence_and_reads_back() -> None:
    lock = _lock()
    text = lock.dumps()
    assert text.endswith("}\n") and json.loads(text) == json.loads(json.dumps(json.loads(text), sort_keys=True))
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data["archive"] == "http://archive.ubuntu.com/ubuntu" and data["runtime_id"] == UBUNTU22.id and data["os_id"] == "ubuntu22"
    assert data["requested"] == ["tool"] and data["inputs"] == app_ospkgs.inputs_hash(["tool"])
    assert data["suites"]["jammy"] == "Release Date: Thu, 21 Apr 2022 17:16:08 UTC"
    got = [(d["name"], d["version"], d["suite"]) for d in data["debs"]]
    assert got == [("libtool1", "1:2.0-1ubuntu1", "jammy-security"), ("tool", "1.0", "jammy")]
    assert data["debs"][0]["filename"] == "pool/main/l/libtool1/libtool1_2.0-1ubuntu1_amd64.deb"
    assert app_ospkgs.loads(text) == lock


def _hostile(edit_data):
    data = json.loads(_lock().dumps())
    edit_data(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["debs"][0].update(sha256="0" * 63), "debs[0].sha256: malformed value"),
        (lambda d: d["debs"][0].update(filename="pool/main/l/../../../etc/libtool1_2.0_amd64.deb"), "debs[0].filename: "),
        (lambda d: d["debs"][1].update(filename="pool/main/l/libtool1/libtool1_2.0-1ubuntu1_amd64.deb"), "is not the pool path of tool"),
        (lambda d: d["debs"][0].update(suite="jammy-proposed"), "debs[0].suite: 'jammy-proposed' is not one of the suites read"),
        (lambda d: d["debs"][0].update(size=0), "debs[0].size: 0 is out of range"),
        (lambda d: d["debs"][0].update(size="12"), "debs[0].size: must be a whole number"),
        (lambda d: d["debs"].reverse(), "debs: not sorted by name"),
        (lambda d: d["debs"].append(dict(d["debs"][1])), "debs: not sorted by name, or a package is listed twice"),
        (lambda d: d["requested"].insert(0, "curl"), "inputs: not the hash of `requested`"),
        (lambda d: d["requested"].append("curl"), "requested: not sorted"),
        (lambda d: d.update(archive="file:///etc"), "archive: malformed value"),
        (lambda d: d.update(format=2), "format: must be 1"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (lambda d: d.pop("installed"), "installed: required key is missing"),
        (lambda d: d["debs"][0].update(name="Libtool1"), "debs[0].name: malformed value"),
    ],
)
def test_a_hand_edited_lock_is_refused_with_the_field(change, message: str) -> None:
    with pytest.raises(AppOsError) as err:
        app_ospkgs.loads(_hostile(change), "app/apt-packages.lock.json")
    assert str(err.value).startswith("app/apt-packages.lock.json: ") and message in str(err.value)
    assert "lock-app APP_DIR --force" in str(err.value)


def test_staleness() -> None:
    lock = _lock()
    assert app_ospkgs.why_stale(lock, ["tool"], UBUNTU22.id, lock.installed) is None
    assert app_ospkgs.why_stale(lock, ["curl", "tool"], UBUNTU22.id) == "apt-packages.txt changed since it was locked (added curl)"
    assert app_ospkgs.why_stale(lock, [], UBUNTU22.id) == "apt-packages.txt changed since it was locked (removed tool)"
    assert app_ospkgs.why_stale(lock, ["tool"], "python312-ubuntu24") == f"locked for runtime {UBUNTU22.id}; app.yaml now selects python312-ubuntu24"
    moved = app_ospkgs.installed_hash(image("libc6=2.35-0ubuntu3.9"))
    assert "the packages of runtime" in (app_ospkgs.why_stale(lock, ["tool"], UBUNTU22.id, moved) or "")


def test_a_missing_keyring_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(app_ospkgs.KEYRING_ENV, str(tmp_path / "none.gpg"))
    with pytest.raises(AppOsError) as err:
        app_ospkgs.keyring()
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'none.gpg'}: Ubuntu's archive keyring is missing")
    assert "Debian 12 has no package for it" in text and "apt-get install ubuntu-keyring" in text and "--keyring" in text
    given = _write(tmp_path, "not really a keyring, but a file")
    assert app_ospkgs.keyring(given) == given


# --- lock-app ---------------------------------------------------------------------------------------------


def _app(tmp_path: Path, apt_packages: str | None, requirements: str | None = None) -> Path:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "app.yaml").write_text("runtime: python\nenv: flex\nentrypoint: python main.py\nruntime_config:\n  operating_system: ubuntu22\n")
    if apt_packages is not None:
        (app / "apt-packages.txt").write_text(apt_packages)
    if requirements is not None:
        (app / "requirements.txt").write_text(requirements)
    return app


def test_lock_app_refuses_a_bad_list_with_exit_2_and_writes_nothing(tmp_path: Path, cli) -> None:
    app = _app(tmp_path, "libmagic1\nlibmagic1=5.41\n", requirements="six\n")
    before = sorted(p.name for p in app.iterdir())
    res = cli("lock-app", str(app))
    assert res.exit_code == 2
    assert f"error: {app / 'apt-packages.txt'}:2: 'libmagic1=5.41' has a version constraint" in res.stderr
    assert "Traceback" not in res.output and sorted(p.name for p in app.iterdir()) == before


def _build_deb(root: Path, name: str, version: str, depends: str = "") -> None:
    src = root.parent / "build" / f"{name}-{version}"
    (src / "DEBIAN").mkdir(parents=True)
    control = f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: flex-test <t@example.org>\nDescription: test package\n"
    (src / "DEBIAN" / "control").write_text(control + (f"Depends: {depends}\n" if depends else ""))
    (src / "usr" / "share" / name).mkdir(parents=True)
    (src / "usr" / "share" / name / "README").write_text(f"{name} {version}\n")
    out = root / "pool" / "main" / name[0] / name / f"{name}_{version}_all.deb"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(src), str(out)], check=True, capture_output=True)


@needs_tools
def test_lock_app_locks_from_a_signed_archive_and_check_follows_the_list(tmp_path: Path, tree: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real signed archive on 127.0.0.1 (apt-ftparchive, a throwaway gpg key), read through the same path as Ubuntu's."""
    from tests import ubuntu

    suites = "apt_suites: [jammy, jammy-updates, jammy-security]"
    edit(tree / paths.SCHEDULE, suites, f"{suites}\n    apt_components: [main]")  # the test archive has one component
    repo = tmp_path / "repo"
    _build_deb(repo, "libtoy1", "1.0-1", "libtoy-data (= 1.0-1), libc6 (>= 2.30)")
    _build_deb(repo, "libtoy-data", "1.0-1")
    _build_deb(repo, "toyctl", "2.0", "libtoy1 (>= 1.0)")
    key = None
    for suite in ("jammy", "jammy-updates", "jammy-security"):
        key = ubuntu.signed_suite(repo, suite, tmp_path / "gnupg")
    app = _app(tmp_path, "# the app runs toyctl\ntoyctl\n")
    with serve(repo) as url:
        monkeypatch.setenv(app_ospkgs.ARCHIVE_ENV, url)
        monkeypatch.setenv(app_ospkgs.KEYRING_ENV, str(key))
        assert cli("lock-app", str(app), "--check", schedule=tree / paths.SCHEDULE).exit_code == 1
        res = cli("lock-app", str(app), schedule=tree / paths.SCHEDULE)
        assert res.exit_code == 0, res.output
        assert res.stdout == (
            f"wrote {app / 'apt-packages.lock.json'} for runtime {UBUNTU22.id}: 1 package(s) requested, 3 .deb(s) in the closure beyond the image's\n"
        )
        lock = app_ospkgs.load(app / "apt-packages.lock.json")
        assert [(d.name, d.version, d.suite) for d in lock.debs] == [
            ("libtoy-data", "1.0-1", "jammy-security"),
            ("libtoy1", "1.0-1", "jammy-security"),
            ("toyctl", "2.0", "jammy-security"),
        ]
        for d in lock.debs:  # the lock's hash is the served file's
            assert hashlib.sha256((repo / d.filename).read_bytes()).hexdigest() == d.sha256 and (repo / d.filename).stat().st_size == d.size
        assert lock.archive == url and set(lock.suites) == {"jammy", "jammy-updates", "jammy-security"}
        res = cli("lock-app", str(app), "--check", schedule=tree / paths.SCHEDULE)
        assert res.exit_code == 0 and "is up to date for runtime" in res.stdout
        (app / "apt-packages.txt").write_text("toyctl\nlibtoy-data\n")
        res = cli("lock-app", str(app), "--check", schedule=tree / paths.SCHEDULE)
        assert res.exit_code == 1 and "apt-packages.txt changed since it was locked (added libtoy-data)" in res.stderr
        edit(app / "app.yaml", "operating_system: ubuntu22", "operating_system: ubuntu24")
        (app / "apt-packages.txt").write_text("toyctl\n")
        res = cli("lock-app", str(app), "--check", schedule=tree / paths.SCHEDULE)
        assert res.exit_code == 1 and f"locked for runtime {UBUNTU22.id}; app.yaml now selects python" in res.stderr
        edit(app / "app.yaml", "operating_system: ubuntu24", "operating_system: ubuntu22")
        (app / "apt-packages.txt").write_text("toyctl\nnosuch\n")
        res = cli("lock-app", str(app), schedule=tree / paths.SCHEDULE)
        assert res.exit_code == 2 and f"error: {app / 'apt-packages.txt'}:2: nosuch is in none of the indices; searched jammy" in res.stderr
        assert app_ospkgs.load(app / "apt-packages.lock.json") == lock, "a failed lock leaves the previous one"
        os.remove(app / "apt-packages.txt")
        res = cli("lock-app", str(app), "--check", schedule=tree / paths.SCHEDULE)
        assert res.exit_code == 2 and "stale: " in res.stderr and "there is no apt-packages.txt beside it" in res.stderr  # and nothing else to lock


# --- Ubuntu's real archive ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def jammy() -> Indices:
    """jammy, jammy-updates and jammy-security (main, universe), verified with Ubuntu's keyring (about 20 s)."""
    from tests import ubuntu

    return app_ospkgs.read_indices(UBUNTU22.os, UBUNTU22.os.apt_archive, ubuntu.keyring())


@pytest.mark.archive
def test_libmagic1_on_ubuntu22_from_the_real_archive(jammy: Indices, tmp_path: Path) -> None:
    assert UBUNTU22.packages is not None
    installed = UBUNTU22.packages.image_packages()
    lock = app_ospkgs.resolve(
        [Requested("libmagic1", 1)],
        UBUNTU22.os,
        installed,
        archive=UBUNTU22.os.apt_archive,
        keyring=None,
        runtime_id=UBUNTU22.id,
        os_id="ubuntu22",
        indices=jammy,
    )
    assert {d.name for d in lock.debs} >= {"libmagic1", "libmagic-mgc"}
    assert not {d.name for d in lock.debs} & {p.name for p in installed}, "nothing the image already has"
    assert set(lock.suites) == {"jammy", "jammy-updates", "jammy-security"} and all(v.startswith("Release Date: ") for v in lock.suites.values())
    mgc = next(d for d in lock.debs if d.name == "libmagic-mgc")
    magic = next(d for d in lock.debs if d.name == "libmagic1")
    assert mgc.version == magic.version, "libmagic1 Depends: libmagic-mgc (= its own version)"
    for d in lock.debs:
        entry = jammy.find(d.name, d.version)
        assert entry is not None and d.sha256 == entry.stanza["SHA256"] and d.filename == entry.stanza["Filename"]
        assert entry.version == jammy.candidate(d.name).version, "the newest version across the suites"
    path = http.fetch_verified(f"{lock.archive}/{magic.filename}", magic.sha256, tmp_path / "libmagic1.deb")  # the archive serves those bytes
    control = subprocess.run(["dpkg-deb", "--field", str(path), "Package", "Version"], capture_output=True, text=True, check=True).stdout
    assert control == f"Package: libmagic1\nVersion: {magic.version}\n"
    # the source package the lock records (the SBOM's upstream=) is the one the .deb's own control file names
    source = subprocess.run(["dpkg-deb", "--field", str(path), "Source"], capture_output=True, text=True, check=True).stdout.split()
    assert magic.source == source[0] and magic.source_version == (source[1].strip("()") if len(source) > 1 else magic.version)
    assert all(d.source and d.source_version for d in lock.debs)
    assert app_ospkgs.loads(lock.dumps()) == lock
