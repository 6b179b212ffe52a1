"""`refresh`: a real registry and python.org-shaped release metadata on 127.0.0.1.

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

from generator import registry

from .test_image import free_port, serve

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
    yield {"host": host, "proc": proc, "config": config, "exe": exe}
    proc.terminate()
    proc.wait(10)


def oci_layout(path: Path, content: bytes) -> str:
    """A one-layer OCI image whose bytes depend only on `content`; returns its manifest digest."""
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
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "config": {}}
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


@pytest.fixture
def local_tree(tree: Path, registry_server, images, cli) -> Path:
    """The schedule with every base image served by the local registry, at image "a", committed."""
    host = registry_server["host"]
    _, digest_a = images["a"]
    schedule = tree / "schedule.yaml"
    for os_id, tag in (("ubuntu16", "16.04"), ("ubuntu18", "18.04"), ("ubuntu22", "22.04"), ("ubuntu24", "24.04")):
        push(images["a"][0], host, f"library/ubuntu:{tag}")
        text = schedule.read_text()
        start = text.index(f"  {os_id}:\n")
        block_end = text.index("build_packages", start)
        block = text[start:block_end]
        old_digest = block.split("digest: ")[1].split()[0]
        new_block = block.replace(f"docker.io/library/ubuntu:{tag}", f"{host}/library/ubuntu:{tag}").replace(old_digest, digest_a)
        schedule.write_text(text[:start] + new_block + text[block_end:])
    assert cli("generate", schedule=schedule).exit_code == 0
    git(tree, "init", "-q", "-b", "main")
    commit(tree, "base")
    return tree


def status(tree: Path) -> list[str]:
    return sorted(line[3:] for line in git(tree, "status", "--porcelain").splitlines())


def test_registry_digest_is_the_manifest_digest(registry_server, images) -> None:
    host = registry_server["host"]
    push(images["b"][0], host, "flex/check:1")
    assert registry.current_digest(f"{host}/flex/check:1", tls_verify=False) == images["b"][1]
    manifest = registry.fetch_manifest(f"{host}/flex/check@{images['b'][1]}", tls_verify=False)
    assert not manifest.is_index and manifest.digest == images["b"][1]


def test_moved_tag_is_picked_up_and_nothing_else_changes(cli, local_tree: Path, registry_server, images, snapshot) -> None:
    host = registry_server["host"]
    push(images["b"][0], host, "library/ubuntu:22.04")  # upstream moved the tag
    result = cli("refresh", "--only", "os", schedule=local_tree / "schedule.yaml")
    assert result.exit_code == 0, result.stderr
    assert status(local_tree) == [
        "images/python310-ubuntu22/Dockerfile",
        "images/python311-ubuntu22/Dockerfile",
        "images/python312-ubuntu22/Dockerfile",
        "images/python313-ubuntu22/Dockerfile",
        "lockfiles/runtimes.json",
        "schedule.yaml",
    ]
    diff = git(local_tree, "diff", "-U0", "schedule.yaml")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == [
        f"-    digest: {images['a'][1]}",
        "-    nix_sha256: sha256-/hxCtWP5lLygO/5V+sJHFUohQ/+ATmvvZZ/YP553J7I=",
        f"+    digest: {images['b'][1]}",
        "+    nix_sha256: null  # unknown for this digest: fill with `nix-prefetch-docker` where a registry is reachable",
    ]
    assert cli("generate", "--check", schedule=local_tree / "schedule.yaml").exit_code == 0
    matrix = json.loads(cli("matrix", "--changed-since", "HEAD", "--json", schedule=local_tree / "schedule.yaml").stdout)
    assert [j["runtime"] for j in matrix["include"]] == ["python310-ubuntu22", "python311-ubuntu22", "python312-ubuntu22", "python313-ubuntu22"]
    assert result.stdout.replace(host, "REGISTRY") == snapshot


def test_dry_run_changes_nothing(cli, local_tree: Path, registry_server, images) -> None:
    push(images["b"][0], registry_server["host"], "library/ubuntu:24.04")
    result = cli("refresh", "--only", "os", "--dry-run", schedule=local_tree / "schedule.yaml")
    assert result.exit_code == 0
    assert "`ubuntu24`" in result.stdout and images["b"][1] in result.stdout
    assert status(local_tree) == []
    push(images["a"][0], registry_server["host"], "library/ubuntu:24.04")


def test_nothing_moved(cli, local_tree: Path) -> None:
    result = cli("refresh", "--only", "os", schedule=local_tree / "schedule.yaml")
    assert result.exit_code == 0
    assert result.stdout == "No pin moved upstream: nothing to change.\n"
    assert status(local_tree) == []


def test_registry_stopped_halfway_leaves_the_tree_unchanged(cli, local_tree: Path, registry_server, images, monkeypatch) -> None:
    push(images["b"][0], registry_server["host"], "library/ubuntu:16.04")  # a real move the refresh must not half-apply
    real = registry.current_digest
    calls = []

    def then_stop(ref: str, **kw) -> str:
        digest = real(ref, **kw)
        calls.append(ref)
        if len(calls) == 1:
            registry_server["proc"].terminate()
            registry_server["proc"].wait(10)
        return digest

    monkeypatch.setattr(registry, "current_digest", then_stop)
    try:
        result = cli("refresh", "--only", "os", schedule=local_tree / "schedule.yaml")
    finally:
        registry_server["proc"] = subprocess.Popen(
            [registry_server["exe"], "serve", str(registry_server["config"])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(1)
    assert result.exit_code == 1
    assert "nothing was changed" in result.stderr and "ubuntu18" in result.stderr
    assert status(local_tree) == []
    push(images["a"][0], registry_server["host"], "library/ubuntu:16.04")


# --- CPython releases ---------------------------------------------------------------------


CURRENT = ("3.8.20", "3.9.25", "3.10.20", "3.11.15", "3.12.13", "3.13.14", "3.14.6")  # the schedule's new-style pins


def release_dir(tmp_path: Path, releases: dict[str, bytes | None], *, sigstore: bool = True, spdx: bool = True, bad: str = "") -> Path:
    """A python.org-shaped /ftp/python/: listing + per-release .tgz.sigstore and .tgz.spdx.json."""
    root = tmp_path / "ftp"
    root.mkdir()
    releases = {**{v: None for v in CURRENT}, **releases}
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


def test_new_patch_release_is_pinned(cli, tree: Path, tmp_path: Path) -> None:
    tarball = b"pretend Python-3.12.15.tgz\n"
    root = release_dir(tmp_path, {"3.12.15": tarball, "3.12.16rc1": None, "3.11.9": None})
    with serve(root) as url:
        result = cli("refresh", "--only", "python", "--python-source", url + "/", schedule=tree / "schedule.yaml")
    assert result.exit_code == 0, result.stderr
    text = (tree / "schedule.yaml").read_text()
    sha = hashlib.sha256(tarball).hexdigest()
    assert f'  "3.12.15":\n    url: https://www.python.org/ftp/python/3.12.15/Python-3.12.15.tgz\n    sha256: {sha}\n' in text
    assert '"3.12.13"' not in text
    assert '{id: python312-ubuntu22, os: ubuntu22, python: "3.12.15"}' in text
    assert '{id: python312-ubuntu24, os: ubuntu24, python: "3.12.15"}' in text
    assert "Python 3.12: 3.12.13 → 3.12.15" in result.stdout and "sigstore" in result.stdout
    assert cli("generate", "--check", schedule=tree / "schedule.yaml").exit_code == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"sigstore": False, "spdx": False}, "no verifiable checksum published"),
        ({"bad": "sigstore", "spdx": False}, "no verifiable checksum published"),
        ({"bad": "spdx"}, "disagree"),
    ],
    ids=["checksum files missing", "malformed sigstore bundle", "sigstore and SBOM disagree"],
)
def test_unverifiable_release_is_refused(cli, tree: Path, tmp_path_factory, kwargs: dict, fragment: str) -> None:
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    root = release_dir(tmp_path_factory.mktemp("srv"), {"3.12.15": b"new tarball"}, **kwargs)
    with serve(root) as url:
        result = cli("refresh", "--only", "python", "--python-source", url + "/", schedule=tree / "schedule.yaml")
    assert result.exit_code == 1
    assert fragment in result.stderr and "3.12.15" in result.stderr and "nothing was changed" in result.stderr
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before


def test_metadata_server_down_is_an_error(cli, tree: Path) -> None:
    result = cli("refresh", "--only", "python", "--python-source", f"http://127.0.0.1:{free_port()}/", schedule=tree / "schedule.yaml")
    assert result.exit_code == 1 and "nothing was changed" in result.stderr
