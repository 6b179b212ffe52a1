"""OS package locks without building images: the committed lock, the Dockerfiles, the input hash,
the archive reader's hash chain and signature check, and the fetcher's mirror fallback."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from generator import apt, ospkgs
from generator.pins import Deb, OsPackages
from generator.pins import load as load_pins

from .conftest import ROOT
from .image_fixtures import free_port, serve

LOCK = load_pins(ROOT / "lockfiles" / "schedule.lock.json")
needs_tools = pytest.mark.skipif(not (shutil.which("apt-ftparchive") and shutil.which("gpg")), reason="apt-utils and gnupg (ci/dev.sh)")


def test_every_os_has_a_package_lock_with_a_sha256_for_every_deb() -> None:
    schedule = (ROOT / "schedule.yaml").read_text()
    for os_id in ("ubuntu16", "ubuntu18", "ubuntu22", "ubuntu24"):
        assert f"  {os_id}:" in schedule
        entry = LOCK.os_packages[os_id]
        assert entry.build and entry.runtime, os_id
        assert all(len(d.sha256) == 64 and d.size > 0 and d.filename.endswith(".deb") for d in entry.build + entry.runtime)
        assert entry.suites and entry.resolved_in


def test_generated_dockerfiles_fetch_nothing_and_install_the_lock() -> None:
    for path in sorted((ROOT / "images").glob("*/Dockerfile")):
        text = path.read_text()
        assert "apt-get update" not in text and "wget" not in text and "curl" not in text, path
        assert "-o Dir::Etc::SourceList=/dev/null" in text
    runtime = json.loads((ROOT / "lockfiles" / "runtimes.json").read_text())["runtimes"]
    for rid, entry in runtime.items():
        text = (ROOT / "images" / rid / "Dockerfile").read_text()
        for deb in LOCK.os_packages[entry["operating_system"]].runtime:
            assert f"        ./{Path(deb.filename).name} " in text, (rid, deb.name)


def test_input_hash_moves_for_exactly_the_runtimes_of_the_os_whose_packages_moved(tree: Path) -> None:
    lock_path = tree / "lockfiles" / "schedule.lock.json"
    data = json.loads(lock_path.read_text())
    before = json.loads((tree / "lockfiles" / "runtimes.json").read_text())["runtimes"]
    data["os_packages"]["ubuntu24"]["snapshot"] = "20990101T000000Z"  # the state moved, no package did
    lock_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    run_generate(tree)
    same = json.loads((tree / "lockfiles" / "runtimes.json").read_text())["runtimes"]
    assert all(same[r]["input_hash"] == before[r]["input_hash"] for r in before)
    deb = data["os_packages"]["ubuntu24"]["runtime"][-1]
    deb["version"] += "+1"
    deb["sha256"] = hashlib.sha256(b"another file").hexdigest()
    lock_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    run_generate(tree)
    after = json.loads((tree / "lockfiles" / "runtimes.json").read_text())["runtimes"]
    moved = sorted(r for r in before if before[r]["input_hash"] != after[r]["input_hash"])
    assert moved == sorted(r for r, e in before.items() if e["operating_system"] == "ubuntu24")


def run_generate(tree: Path) -> None:
    py = str(ROOT / ".venv" / "bin" / "python")
    subprocess.run([py, "-m", "generator", "--schedule", str(tree / "schedule.yaml"), "generate"], check=True, capture_output=True, cwd=ROOT)


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
    from . import ubuntu

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
