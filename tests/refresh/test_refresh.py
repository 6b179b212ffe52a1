"""`refresh`: a real registry and python.org-shaped release metadata on 127.0.0.1.

Pins are read from the lock in every test (a real refresh that moves them turns nothing here red).

The registry is Debian's docker-registry (the CNCF distribution server); images are tiny OCI
layouts written here byte-for-byte (so their digests, and the changelog snapshot, are stable) and
pushed with skopeo. Release metadata is served by a local HTTP server from files shaped like
python.org's: a directory listing, `Python-X.Y.Z.tgz.sigstore` bundles and `.spdx.json` SBOMs.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from generator import locking
from generator.core import paths, registry
from generator.refresh import update as refresh_mod
from generator.schedule import lock as schedule_lock
from generator.schedule import runtimes as schedule
from tests.conftest import SCHEDULE
from tests.servers import free_port, serve

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory):
    exe = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not Path(exe).exists() or not shutil.which("skopeo"):
        if os.environ.get("CI"):
            pytest.fail("docker-registry and skopeo are needed; ci/dev.sh installs them")
        pytest.skip("docker-registry or skopeo not installed")
    work = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = work / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
        f"{work / 'data'}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen([exe, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)
    server = {"host": host, "proc": proc, "config": config, "exe": exe}
    yield server
    server["proc"].terminate()  # the one running now: a test may have stopped and restarted it
    server["proc"].wait(10)


def oci_layout(path: Path, content: bytes, labels: dict[str, str] | None = None) -> str:
    """A one-layer OCI image whose bytes depend only on `content` (and `labels`); returns its manifest digest."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}", len(data)

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("etc/release")
        info.size, info.mtime = len(content), 0
        tar.addfile(info, io.BytesIO(content))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "config": {"Labels": labels} if labels else {},
    }
    cfg_digest, cfg_size = blob(json.dumps(config, sort_keys=True).encode())
    layer_digest, layer_size = blob(layer)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}],
    }
    man_digest, man_size = blob(json.dumps(manifest, sort_keys=True).encode())
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {"schemaVersion": 2, "manifests": [{"mediaType": manifest["mediaType"], "digest": man_digest, "size": man_size}]}
    (path / "index.json").write_text(json.dumps(index))
    return man_digest


def push(layout: Path, host: str, ref: str) -> None:
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests", f"oci:{layout}", f"docker://{host}/{ref}"],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    root = tmp_path_factory.mktemp("oci")
    return {name: (root / name, oci_layout(root / name, f"release {name}\n".encode())) for name in ("a", "b")}


def git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(tree), *args], check=True, capture_output=True, text=True).stdout


def commit(tree: Path, message: str) -> None:
    git(tree, "add", "-A")
    git(tree, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", message)


def status(tree: Path) -> list[str]:
    return sorted(line[3:] for line in git(tree, "status", "--porcelain").splitlines())


def read_lock(tree: Path) -> dict:
    return json.loads((tree / paths.SCHEDULE_LOCK).read_text())


@pytest.fixture
def committed(tree: Path) -> Path:
    git(tree, "init", "-q", "-b", "main")
    commit(tree, "base")
    return tree


@pytest.fixture
def local_tree(tree: Path, registry_server, images, cli) -> Path:
    """Every base image tag served by the local registry at image "a", locked as refresh would, committed."""
    host = registry_server["host"]
    _, digest_a = images["a"]
    schedule_path = tree / paths.SCHEDULE
    data = read_lock(tree)
    for os_id, tag in (("ubuntu16", "16.04"), ("ubuntu18", "18.04"), ("ubuntu22", "22.04"), ("ubuntu24", "24.04")):
        push(images["a"][0], host, f"library/ubuntu:{tag}")
        schedule_path.write_text(schedule_path.read_text().replace(f"docker.io/library/ubuntu:{tag}", f"{host}/library/ubuntu:{tag}"))
        base = data["base_images"][os_id]
        base.update(image=f"{host}/library/ubuntu:{tag}", digest=digest_a)
        base["platforms"]["amd64"]["manifest_digest"] = digest_a
    (tree / paths.SCHEDULE_LOCK).write_text(schedule_lock.loads(json.dumps(data)).dumps())  # as refresh writes it
    assert cli("generate", schedule=schedule_path).exit_code == 0
    git(tree, "init", "-q", "-b", "main")
    commit(tree, "base")
    return tree


def test_registry_digest_is_the_manifest_digest(registry_server, images) -> None:
    host = registry_server["host"]
    push(images["b"][0], host, "flex/check:1")
    assert registry.current_digest(f"{host}/flex/check:1", tls_verify=False) == images["b"][1]
    manifest = registry.fetch_manifest(f"{host}/flex/check@{images['b'][1]}", tls_verify=False)
    assert not manifest.is_index and manifest.digest == images["b"][1]


def test_moved_tag_is_picked_up_and_nothing_else_changes(cli, local_tree: Path, registry_server, images, snapshot) -> None:
    host = registry_server["host"]
    before = read_lock(local_tree)
    push(images["b"][0], host, "library/ubuntu:22.04")  # upstream moved the tag
    result = cli("refresh", "--only", "os", schedule=local_tree / paths.SCHEDULE)
    assert result.exit_code == 0, result.stderr
    ubuntu22 = sorted(r.id for r in schedule.load(local_tree / paths.SCHEDULE).runtimes.values() if r.os_id == "ubuntu22")
    assert status(local_tree) == [*(f"images/{rid}/Dockerfile" for rid in ubuntu22), "lockfiles/runtimes.json", paths.SCHEDULE_LOCK]
    after = read_lock(local_tree)
    assert after["base_images"]["ubuntu22"]["digest"] == images["b"][1]
    assert after["base_images"]["ubuntu22"]["platforms"] == {"amd64": {"manifest_digest": images["b"][1], "nix_sha256": None}}
    after["base_images"]["ubuntu22"] = before["base_images"]["ubuntu22"]
    assert after == before  # nothing else in the lock moved
    assert cli("generate", "--check", schedule=local_tree / paths.SCHEDULE).exit_code == 0
    matrix = json.loads(cli("matrix", "--changed-since", "HEAD", "--json", schedule=local_tree / paths.SCHEDULE).stdout)
    assert [j["runtime"] for j in matrix["include"]] == ubuntu22
    assert {j["build"] for j in matrix["include"]} == {"reassemble"}  # a moved base: the interpreters stay (their toolchain lock did not move)
    assert result.stdout.replace(host, "REGISTRY") == snapshot


def test_dry_run_changes_nothing(cli, local_tree: Path, registry_server, images) -> None:
    push(images["b"][0], registry_server["host"], "library/ubuntu:24.04")
    result = cli("refresh", "--only", "os", "--dry-run", schedule=local_tree / paths.SCHEDULE)
    assert result.exit_code == 0
    assert "`ubuntu24`" in result.stdout and images["b"][1] in result.stdout
    assert status(local_tree) == []
    push(images["a"][0], registry_server["host"], "library/ubuntu:24.04")


def test_nothing_moved(cli, local_tree: Path) -> None:
    result = cli("refresh", "--only", "os", schedule=local_tree / paths.SCHEDULE)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "No pin moved upstream: nothing to change.\n"
    assert status(local_tree) == []


def test_one_subject_asks_only_that_registry(cli, local_tree: Path, registry_server, images) -> None:
    push(images["b"][0], registry_server["host"], "library/ubuntu:24.04")
    push(images["b"][0], registry_server["host"], "library/ubuntu:18.04")
    result = cli("refresh", "--only", "os", "ubuntu24", schedule=local_tree / paths.SCHEDULE)
    assert result.exit_code == 0, result.stderr
    lock_now = read_lock(local_tree)
    assert lock_now["base_images"]["ubuntu24"]["digest"] == images["b"][1]
    assert lock_now["base_images"]["ubuntu18"]["digest"] == images["a"][1]
    bad = cli("refresh", "ubuntu99", schedule=local_tree / paths.SCHEDULE)
    assert bad.exit_code == 2 and "unknown refresh subject 'ubuntu99'" in bad.stderr and "ubuntu22" in bad.stderr
    for tag in ("24.04", "18.04"):
        push(images["a"][0], registry_server["host"], f"library/ubuntu:{tag}")


# --- a failure at each stage leaves the tree clean and shows the real cause ----------------------------


def test_registry_stopped_halfway_leaves_the_tree_unchanged(cli, local_tree: Path, registry_server, images, monkeypatch) -> None:
    push(images["b"][0], registry_server["host"], "library/ubuntu:16.04")  # a real move the refresh must not half-apply
    real = registry.fetch_manifest
    calls = []

    def then_stop(ref: str, **kw):
        answer = real(ref, **kw)
        calls.append(ref)
        if len(calls) == 1:
            registry_server["proc"].terminate()
            registry_server["proc"].wait(10)
        return answer

    monkeypatch.setattr(registry, "fetch_manifest", then_stop)
    try:
        result = cli("refresh", "--only", "os", schedule=local_tree / paths.SCHEDULE)
    finally:
        registry_server["proc"] = subprocess.Popen(
            [registry_server["exe"], "serve", str(registry_server["config"])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(1)
    assert result.exit_code == 1
    assert "operating system ubuntu18" in result.stderr and "connection refused" in result.stderr.lower()  # the registry's own answer
    assert "the work tree is unchanged" in result.stderr and "Traceback" not in result.stderr
    assert status(local_tree) == []
    push(images["a"][0], registry_server["host"], "library/ubuntu:16.04")


def test_metadata_server_down_is_an_error(cli, committed: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    result = cli("refresh", "--only", "python", "--python-source", url, schedule=committed / paths.SCHEDULE)
    assert result.exit_code == 1
    assert url in result.stderr and "refused" in result.stderr.lower() and "the work tree is unchanged" in result.stderr
    assert status(committed) == []


def test_relock_failure_leaves_the_tree_unchanged(committed: Path, tmp_path_factory) -> None:
    """The real lock module, against an index on 127.0.0.1 that has nothing: its own error, nothing written."""
    new = bump("3.12", committed)
    tmp_path = tmp_path_factory.mktemp("upstream")
    empty = tmp_path / "index"
    empty.mkdir()
    root = release_dir(tmp_path, {new: b"a tarball"})
    with serve(root) as source, serve(empty) as index, pytest.raises(refresh_mod.RefreshError) as err:
        refresh_mod.refresh(
            committed / paths.SCHEDULE,
            only={"python"},
            python_source=source + "/",
            relock=lambda tree, ids: locking.relock_runtimes(tree, ids, index=index + "/"),
            progress=lambda line: None,
        )
    assert "relock failed: python312-ubuntu22" in str(err.value) and "the work tree is unchanged" in str(err.value)
    assert status(committed) == []


def test_nix_failure_shows_nix_and_leaves_the_tree_unchanged(cli, committed: Path) -> None:
    """`--only nix` where GitHub is out of reach: Nix's own words, and nothing written."""
    if not shutil.which("nix"):
        if os.environ.get("CI"):
            pytest.fail("nix is not installed; ci/dev.sh installs it")
        pytest.skip("nix is not installed")
    result = cli("refresh", "--only", "nix", schedule=committed / paths.SCHEDULE)
    assert result.exit_code == 1
    assert "`nix flake update` failed; Nix said:" in result.stderr and "the work tree is unchanged" in result.stderr
    assert "nothing was changed" not in result.stderr and "Traceback" not in result.stderr
    assert status(committed) == []


def test_unwritable_changelog_path_leaves_the_tree_unchanged(cli, committed: Path, tmp_path_factory) -> None:
    new = bump("3.11", committed)
    tmp_path = tmp_path_factory.mktemp("upstream")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    root = release_dir(tmp_path, {new: b"a tarball"})
    with serve(root) as url:
        args = ["refresh", "--only", "python", "--python-source", url + "/", "--no-snapshots", "--changelog", str(blocker / "changes.md")]
        result = cli(*args, schedule=committed / paths.SCHEDULE)
    assert result.exit_code == 1
    assert "changelog: cannot write" in result.stderr and "the work tree is unchanged" in result.stderr
    assert status(committed) == []


# --- CPython releases ---------------------------------------------------------------------


def bump(minor: str, tree: Path) -> str:
    """The next patch release of `minor` after the one the tree's lock pins (never a hard-coded version)."""
    current = schedule.load(tree / paths.SCHEDULE).pins.python_minors[minor]
    return f"{minor}.{int(current.split('.')[2]) + 2}"


def release_dir(tmp_path: Path, releases: dict[str, bytes | None], *, sigstore: bool = True, spdx: bool = True, bad: str = "") -> Path:
    """A python.org-shaped /ftp/python/: listing + per-release .tgz.sigstore and .tgz.spdx.json."""
    root = tmp_path / "ftp"
    root.mkdir()
    current = schedule.load(SCHEDULE).pins.python_minors.values()  # what the lock pins now: listed, unchanged
    releases = {**{v: None for v in current}, **releases}
    links = "".join(f'<a href="{v}/">{v}/</a>\n' for v in sorted(releases))
    (root / "index.html").write_text(f"<html><body><pre>\n{links}</pre></body></html>\n")
    for version, tarball in releases.items():
        d = root / version
        d.mkdir()
        if tarball is None:
            continue
        digest = hashlib.sha256(tarball).digest()
        if sigstore:
            value = "not base64!" if bad == "sigstore" else base64.b64encode(digest).decode()
            bundle = {
                "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "verificationMaterial": {"certificate": {"rawBytes": "MIIC"}},
                "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": value}, "signature": "MEUC"},
            }
            (d / f"Python-{version}.tgz.sigstore").write_text(json.dumps(bundle))
        if spdx:
            value = ("0" * 63 + "1") if bad == "spdx" else digest.hex()
            sbom = {
                "spdxVersion": "SPDX-2.3",
                "packages": [
                    {"SPDXID": "SPDXRef-PACKAGE-expat", "name": "expat", "versionInfo": "2.6.4", "checksums": []},
                    {"SPDXID": "SPDXRef-PACKAGE-cpython", "name": "CPython", "versionInfo": version,
                     "checksums": [{"algorithm": "SHA256", "checksumValue": value}]},
                ],
            }  # fmt: skip
            (d / f"Python-{version}.tgz.spdx.json").write_text(json.dumps(sbom))
    return root


def test_new_patch_release_is_pinned(cli, committed: Path, tmp_path_factory) -> None:
    tmp_path = tmp_path_factory.mktemp("upstream")
    old_lock = read_lock(committed)
    old = old_lock["python_minors"]["3.12"]
    new = bump("3.12", committed)
    tarball = f"pretend Python-{new}.tgz\n".encode()
    root = release_dir(tmp_path, {new: tarball, f"{new}rc1": None, "3.11.9": None})
    with serve(root) as url:
        result = cli("refresh", "--only", "python", "--python-source", url + "/", schedule=committed / paths.SCHEDULE)
    assert result.exit_code == 0, result.stderr
    lock_now = read_lock(committed)
    assert lock_now["python_minors"]["3.12"] == new
    assert lock_now["cpython"][new]["sha256"] == hashlib.sha256(tarball).hexdigest()
    assert lock_now["cpython"][new]["url"] == f"https://www.python.org/ftp/python/{new}/Python-{new}.tgz"
    assert old not in lock_now["cpython"]  # no runtime uses it any more
    assert {k: v for k, v in lock_now["python_minors"].items() if k != "3.12"} == {k: v for k, v in old_lock["python_minors"].items() if k != "3.12"}
    changed = status(committed)
    assert "schedule.yaml" not in changed and paths.SCHEDULE_LOCK in changed
    assert "images/python312-ubuntu22/Dockerfile" in changed and "images/python312-ubuntu24/Dockerfile" in changed
    assert not any(p.startswith("images/python313") for p in changed)
    assert f"Python 3.12: {old} → {new}" in result.stdout and "sigstore" in result.stdout
    assert cli("generate", "--check", schedule=committed / paths.SCHEDULE).exit_code == 0
    assert cli("lock", "--check", schedule=committed / paths.SCHEDULE).exit_code == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"sigstore": False, "spdx": False}, "no verifiable checksum published"),
        ({"bad": "sigstore", "spdx": False}, "no verifiable checksum published"),
        ({"bad": "spdx"}, "disagree"),
    ],
    ids=["checksum files missing", "malformed sigstore bundle", "sigstore and SBOM disagree"],
)
def test_unverifiable_release_is_refused(cli, committed: Path, tmp_path_factory, kwargs: dict, fragment: str) -> None:
    new = bump("3.12", committed)
    root = release_dir(tmp_path_factory.mktemp("srv"), {new: b"new tarball"}, **kwargs)
    with serve(root) as url:
        result = cli("refresh", "--only", "python", "--python-source", url + "/", schedule=committed / paths.SCHEDULE)
    assert result.exit_code == 1
    assert fragment in result.stderr and new in result.stderr and "the work tree is unchanged" in result.stderr
    assert status(committed) == []


def test_build_workflow_skips_inputs_already_published(registry_server, images, tmp_path: Path) -> None:
    """The build workflow's own step, run against a real registry: an input-hash tag present means skip."""
    import yaml

    from generator.refresh import rebuild_matrix

    workflow = yaml.safe_load((SCHEDULE.parent / ".github" / "workflows" / "build.yml").read_text())
    step = next(s for s in workflow["jobs"]["dockerfile"]["steps"] if s.get("id") == "published")
    host = registry_server["host"]
    home = tmp_path / "home"  # skopeo reads $HOME/.config/containers/registries.conf first: plain HTTP for 127.0.0.1
    (home / ".config" / "containers").mkdir(parents=True)
    (home / ".config" / "containers" / "registries.conf").write_text(f'[[registry]]\nprefix = "{host}"\nlocation = "{host}"\ninsecure = true\n')
    tag = rebuild_matrix.input_tag("sha256:" + hashlib.sha256(b"these inputs").hexdigest())

    def decide() -> str:
        out = tmp_path / "github_output"
        out.write_text("")
        env = {**os.environ, "IMAGE": f"{host}/flex/runtime:1.0", "INPUT_TAG": tag, "GITHUB_OUTPUT": str(out), "HOME": str(home)}
        subprocess.run(["bash", "-e", "-o", "pipefail", "-c", step["run"]], env=env, check=True, capture_output=True)
        return out.read_text()

    assert decide() == "skip=false\n"
    push(images["a"][0], host, f"flex/runtime:{tag}")
    assert decide() == "skip=true\n"
