"""OS package locks without building images: the committed lock, the Dockerfiles, the input hash,
the archive reader's hash chain and signature check, and the fetcher's mirror fallback."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from generator.core import paths
from generator.images import apt, ospkgs
from generator.schedule import lock as schedule_lock
from generator.schedule.lock import BasePackage, Deb, OsPackages, ScheduleLockError
from generator.schedule.lock import load as load_pins
from tests.conftest import ROOT
from tests.servers import free_port, serve

LOCK = load_pins(ROOT / paths.SCHEDULE_LOCK)
needs_tools = pytest.mark.skipif(not (shutil.which("apt-ftparchive") and shutil.which("gpg")), reason="apt-utils and gnupg (ci/dev.sh)")


def test_every_os_has_a_package_lock_with_a_sha256_for_every_deb() -> None:
    schedule = (ROOT / paths.SCHEDULE).read_text()
    for os_id in ("ubuntu16", "ubuntu18", "ubuntu22", "ubuntu24"):
        assert f"  {os_id}:" in schedule
        entry = LOCK.os_packages[os_id]
        assert entry.build and entry.runtime and entry.devel, os_id
        assert all(len(d.sha256) == 64 and d.size > 0 and d.filename.endswith(".deb") for d in entry.build + entry.runtime + entry.devel)
        assert entry.suites and entry.resolved_in


def test_generated_dockerfiles_fetch_nothing_and_install_the_lock() -> None:
    for path in sorted((ROOT / paths.IMAGES).glob("*/Dockerfile")):
        text = path.read_text()
        assert "apt-get update" not in text and "wget" not in text and "curl" not in text, path
        assert "-o Dir::Etc::SourceList=/dev/null" in text
    runtime = json.loads((ROOT / paths.RUNTIMES_JSON).read_text())["runtimes"]
    for rid, entry in runtime.items():
        text = (ROOT / paths.IMAGES / rid / "Dockerfile").read_text()
        for deb in LOCK.os_packages[entry["operating_system"]].runtime:
            assert f"        ./{Path(deb.filename).name} " in text, (rid, deb.name)


def test_build_image_dockerfiles_install_the_devel_closure_offline() -> None:
    """Each runtime's build image: FROM its runtime image, the OS's whole devel closure from the context, no package lists."""
    runtime = json.loads((ROOT / paths.RUNTIMES_JSON).read_text())["runtimes"]
    for rid, entry in runtime.items():
        text = (ROOT / paths.IMAGES / rid / "build" / "Dockerfile").read_text()
        assert "apt-get update" not in text and " wget " not in text and " curl " not in text, rid  # (libcurl4's .debs are listed)
        assert "-o Dir::Etc::SourceList=/dev/null" in text and "\nFROM ${RUNTIME_IMAGE}\n" in text
        assert f"ARG RUNTIME_IMAGE={entry['image']}\n" in text
        devel = LOCK.os_packages[entry["operating_system"]].devel
        listed = [line.strip().removeprefix("./").rstrip(" \\") for line in text.splitlines() if line.strip().startswith("./")]
        assert sorted(listed) == sorted(Path(d.filename).name for d in devel), rid


def test_input_hash_moves_for_exactly_the_runtimes_of_the_os_whose_packages_moved(tree: Path) -> None:
    lock_path = tree / paths.SCHEDULE_LOCK
    data = json.loads(lock_path.read_text())
    before = json.loads((tree / paths.RUNTIMES_JSON).read_text())["runtimes"]
    data["os_packages"]["ubuntu24"]["snapshot"] = "20990101T000000Z"  # the state moved, no package did
    lock_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    run_generate(tree)
    same = json.loads((tree / paths.RUNTIMES_JSON).read_text())["runtimes"]
    assert all(same[r]["input_hash"] == before[r]["input_hash"] for r in before)
    deb = data["os_packages"]["ubuntu24"]["runtime"][-1]
    deb["version"] += "+1"
    deb["sha256"] = hashlib.sha256(b"another file").hexdigest()
    lock_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    run_generate(tree)
    after = json.loads((tree / paths.RUNTIMES_JSON).read_text())["runtimes"]
    moved = sorted(r for r in before if before[r]["input_hash"] != after[r]["input_hash"])
    assert moved == sorted(r for r, e in before.items() if e["operating_system"] == "ubuntu24")


def run_generate(tree: Path) -> None:
    py = str(ROOT / ".venv" / "bin" / "python")
    subprocess.run([py, "-m", "generator", "--schedule", str(tree / paths.SCHEDULE), "generate"], check=True, capture_output=True, cwd=ROOT)


def test_mirrors_snapshot_first_then_the_configured_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    lock = LOCK.os_packages["ubuntu22"]
    monkeypatch.delenv(ospkgs.MIRRORS_ENV, raising=False)
    monkeypatch.delenv(ospkgs.SNAPSHOT_ENV, raising=False)
    assert ospkgs.mirrors(lock) == [f"https://snapshot.ubuntu.com/ubuntu/{lock.snapshot}", lock.archive]
    monkeypatch.setenv(ospkgs.MIRRORS_ENV, "http://a.example/ubuntu/, http://b.example/ubuntu")
    assert ospkgs.mirrors(lock)[1:] == ["http://a.example/ubuntu", "http://b.example/ubuntu"]
    monkeypatch.setenv(ospkgs.SNAPSHOT_ENV, "")
    assert ospkgs.mirrors(lock, ["http://c.example"]) == ["http://c.example", "http://a.example/ubuntu", "http://b.example/ubuntu"]


def _deb(tmp: Path, name: str, body: bytes) -> Deb:
    path = tmp / "pool" / "main" / name[0] / name / f"{name}_1.0_all.deb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return Deb(name, "1.0", "all", path.relative_to(tmp).as_posix(), len(body), hashlib.sha256(body).hexdigest(), "jammy")


def test_fetch_falls_back_past_a_dead_snapshot_and_refuses_a_tampered_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    good = _deb(tmp_path / "archive", "alpha", b"the locked bytes")
    dead = f"http://127.0.0.1:{free_port()}/snapshot"
    with serve(tmp_path / "archive") as url:
        got = ospkgs.fetch([good], tmp_path / "out", [dead, url])
        assert got[0].read_bytes() == b"the locked bytes"
        (tmp_path / "archive" / good.filename).write_bytes(b"tampered bytes!!")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache2"))
        with pytest.raises(ospkgs.OsPackagesError) as err:
            ospkgs.fetch([good], tmp_path / "out2", [dead, url])
        assert f"expected {good.sha256}" in str(err.value) and hashlib.sha256(b"tampered bytes!!").hexdigest() in str(err.value)
        missing = Deb("beta", "2.0", "all", "pool/main/b/beta/beta_2.0_all.deb", 1, "0" * 64, "jammy")
        with pytest.raises(ospkgs.OsPackagesError, match=r"beta 2.0 .* is on none of the mirrors"):
            ospkgs.fetch([missing], tmp_path / "out3", [dead, url])


def test_an_altered_cache_entry_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    deb = _deb(tmp_path / "archive", "gamma", b"cached once")
    with serve(tmp_path / "archive") as url:
        ospkgs.fetch([deb], tmp_path / "out", [url])
        cached = next((tmp_path / "cache").rglob("gamma_1.0_all.deb"))
        cached.write_bytes(b"changed later")
        with pytest.raises(ospkgs.OsPackagesError, match="was altered: expected"):
            ospkgs.fetch([deb], tmp_path / "out2", [url])


@needs_tools
def test_index_hash_chain_and_signature(tmp_path: Path) -> None:
    from tests import ubuntu

    _deb(tmp_path / "repo", "delta", b"x")
    key = ubuntu.signed_suite(tmp_path / "repo", "jammy-security", tmp_path / "gnupg")
    with serve(tmp_path / "repo") as url:
        rel = apt.release(url, "jammy-security", key)
        assert "main/binary-amd64/Packages" in rel.sha256
        packages = tmp_path / "repo" / "dists" / "jammy-security" / "main" / "binary-amd64" / "Packages"
        packages.write_text(packages.read_text() + "\nPackage: smuggled\nVersion: 9\n")
        with pytest.raises(apt.AptError, match=r"is not the .* its signed Release file lists"):
            apt.packages_index(url, rel, "main", "amd64")
        other = tmp_path / "other.gpg"
        other.write_bytes(Path("/usr/share/keyrings/debian-archive-keyring.gpg").read_bytes())
        with pytest.raises(apt.AptError, match="no good signature"):
            apt.release(url, "jammy-security", other)


def test_lock_entries_are_typed() -> None:
    entry = LOCK.os_packages["ubuntu22"]
    assert isinstance(entry, OsPackages) and isinstance(entry.runtime[0], Deb)
    assert any(d.suite.endswith("-security") for d in entry.build + entry.runtime)


# --- the base's own packages ----------------------------------------------------------------------


def test_every_os_lock_lists_the_packages_of_its_base() -> None:
    for os_id, entry in LOCK.os_packages.items():
        names = [p.name for p in entry.base]
        assert entry.base and names == sorted(names), os_id
        assert all(isinstance(p, BasePackage) and p.source and p.source_version for p in entry.base), os_id
        assert {"base-files", "dpkg", "libc6"} <= set(names), os_id  # what every Ubuntu base holds


def test_image_packages_are_the_base_upgraded_by_the_runtime_closure_without_the_build_closure() -> None:
    for os_id, entry in LOCK.os_packages.items():
        got = {(p.name, p.version) for p in entry.image_packages()}
        runtime = {d.name: d.version for d in entry.runtime}
        base = {p.name: p.version for p in entry.base}
        assert got == {(n, v) for n, v in {**base, **runtime}.items()}, os_id
        only_build = {d.name for d in entry.build} - set(runtime) - set(base)
        assert only_build and not only_build & {n for n, _ in got}, os_id  # gcc and friends stay in the builder


def test_an_upgraded_base_package_is_listed_once_at_its_closure_version() -> None:
    base = [BasePackage("tzdata", "2024a-0ubuntu1", "all", "tzdata", "2024a-0ubuntu1"), BasePackage("zlib1g", "1:1.2", "amd64", "zlib", "1:1.2")]
    newer = Deb("tzdata", "2025b-0ubuntu1", "all", "pool/main/t/tzdata/tzdata_2025b-0ubuntu1_all.deb", 1, "a" * 64, "jammy-security")
    extra = Deb("netbase", "6.3", "all", "pool/main/n/netbase/netbase_6.3_all.deb", 1, "b" * 64, "jammy")
    entry = dataclasses.replace(LOCK.os_packages["ubuntu22"], base=base, build=[], runtime=[extra, newer])
    assert entry.image_packages() == [extra, newer, base[1]]


def test_dpkg_listing_keeps_installed_packages_with_their_source() -> None:
    listing = (
        "libssl3\t3.0.2-0ubuntu1.30\tamd64\topenssl\t3.0.2-0ubuntu1.30\tii \n"
        "bash\t5.1-6ubuntu1.1\tamd64\tbash\t5.1-6ubuntu1.1\tii \n"
        "oldpkg\t1.0\tamd64\toldpkg\t1.0\trc \n"
    )
    got = ospkgs._base_packages(listing)
    assert [(p.name, p.source) for p in got] == [("bash", "bash"), ("libssl3", "openssl")]
    with pytest.raises(ospkgs.OsPackagesError, match="unexpected line"):
        ospkgs._base_packages("bash 5.1\n")


def test_lock_refuses_an_unsorted_or_doubled_base_list(tree: Path) -> None:
    path = tree / paths.SCHEDULE_LOCK
    data = json.loads(path.read_text())
    base = data["os_packages"]["ubuntu22"]["base"]
    base.append(dict(base[0]))
    with pytest.raises(ScheduleLockError, match=r"os_packages\.ubuntu22\.base: not sorted .* or a package is listed twice"):
        schedule_lock.loads(json.dumps(data))
    del data["os_packages"]["ubuntu22"]["base"]
    with pytest.raises(ScheduleLockError, match=r"os_packages\.ubuntu22\.base: required key is missing"):
        schedule_lock.loads(json.dumps(data))


def test_refresh_notices_a_base_whose_packages_moved() -> None:
    old = LOCK.os_packages["ubuntu22"]
    moved = [dataclasses.replace(p, version=p.version + "+1") if p.name == "libc6" else p for p in old.base]
    new = dataclasses.replace(old, base=moved)
    assert not ospkgs.same_files(old, new) and ospkgs.same_files(old, dataclasses.replace(old, snapshot="20990101T000000Z"))
    libc = next(p for p in old.base if p.name == "libc6")
    assert ospkgs.base_moves(old, new) == [("libc6", libc.version, libc.version + "+1")]
    assert ospkgs.moves(old, new) == []  # no locked .deb changed


def test_input_hash_moves_for_exactly_the_runtimes_whose_base_packages_moved(tree: Path) -> None:
    lock_path = tree / paths.SCHEDULE_LOCK
    data = json.loads(lock_path.read_text())
    before = json.loads((tree / paths.RUNTIMES_JSON).read_text())["runtimes"]
    data["os_packages"]["ubuntu18"]["base"][0]["version"] += "+1"  # what the SBOM (and so the image's label) lists
    lock_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    run_generate(tree)
    after = json.loads((tree / paths.RUNTIMES_JSON).read_text())["runtimes"]
    moved = sorted(r for r in before if before[r]["input_hash"] != after[r]["input_hash"])
    assert moved == sorted(r for r, e in before.items() if e["operating_system"] == "ubuntu18")
