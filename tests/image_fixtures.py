"""Session fixtures and helpers shared by the image tests (test_image.py, test_app_image.py).

The runtime image is built once per session (a CPython build takes minutes): the fixtures live
here and are registered by conftest.py, so every image test module shares one build.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from generator import pins, schedule
from generator.cache import cache_root

from .conftest import ROOT, edit

CACHE = cache_root() / "test"
BASE = "localhost/flex-test/debian12-base:latest"
TARBALL_SHA256 = "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849"
RUNTIME = "python311-ubuntu22"


def run(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run("podman", *args, check=check)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(directory: Path):
    """A plain http server on 127.0.0.1 for a directory (a python.org-shaped mirror)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def debian_base() -> str:
    """Debian 12 made with mmdebstrap (cached as a tarball between runs), imported into podman."""
    if podman("image", "exists", BASE, check=False).returncode == 0:
        return BASE
    tar = CACHE / "debian12-base.tar"
    if not tar.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SOURCE_DATE_EPOCH": "1"}
        partial = tar.with_suffix(".partial.tar")  # mmdebstrap picks the format from the extension
        # Like Ubuntu's (minimized) container images: no docs, man pages or translations.
        excludes = [f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale")]
        excludes.append("--dpkgopt=path-include=/usr/share/doc/*/copyright")
        # merged /usr from the start (usr-is-merged), not the usrmerge package, which drags in perl
        hooks = ["--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"]
        run("mmdebstrap", "--variant=apt", "--quiet", *excludes, *hooks, "bookworm", str(partial), "http://deb.debian.org/debian", env=env)
        os.utime(partial, (1, 1))  # podman import dates the image by the tarball's mtime
        os.replace(partial, tar)
    podman("import", "--change", "CMD=/bin/bash", str(tar), BASE)
    return BASE


@pytest.fixture(scope="session")
def python_mirror():
    """CPython 3.11.2's tarball from Debian's source package, at …/3.11.2/Python-3.11.2.tgz."""
    mirror = CACHE / "mirror"
    tgz = mirror / "3.11.2" / "Python-3.11.2.tgz"
    if not tgz.exists():
        work = CACHE / "apt-source"
        work.mkdir(parents=True, exist_ok=True)
        run("apt-get", "source", "--download-only", "python3.11", cwd=work)
        orig = work / "python3.11_3.11.2.orig.tar.gz"
        tgz.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(orig, tgz)
    assert run("sha256sum", str(tgz)).stdout.split()[0] == TARBALL_SHA256
    with serve(mirror) as url:
        yield url


@pytest.fixture(scope="session")
def test_tree(tmp_path_factory) -> Path:
    """The repository's inputs with python311-ubuntu22 pinned to 3.11.2 (its real sha256), regenerated."""
    tree = tmp_path_factory.mktemp("tree")
    for name in ("schedule.yaml", "README.md", "flake.nix", "flake.lock"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "lockfiles", tree / "lockfiles")
    pin_release(tree, "3.11.2", TARBALL_SHA256, "Debian bookworm's python3.11_3.11.2.orig.tar.gz, byte-identical to python.org's")
    gen(tree, "generate")
    return tree


def pin_release(tree: Path, version: str, sha256: str, evidence: str, *, runtime: str | None = None) -> None:
    """Pin a runtime to a CPython release the archives carry, in the tree's lock (as `refresh` would write it).

    New-style runtimes take their minor's release from `python_minors`; a legacy one (`runtime`) names
    its release in schedule.yaml.
    """
    path = tree / pins.LOCK
    data = json.loads(path.read_text())
    data["cpython"][version] = {
        "evidence": evidence,
        "sha256": sha256,
        "tar_xz_sha256": None,
        "url": f"https://www.python.org/ftp/python/{version}/Python-{version}.tgz",
    }
    if runtime is None:
        data["python_minors"][".".join(version.split(".")[:2])] = version
    else:
        sched = tree / "schedule.yaml"
        old = schedule.load(sched).runtimes[runtime].version
        edit(sched, f'{{id: {runtime}, os: ubuntu16, python: "{old}"', f'{{id: {runtime}, os: ubuntu16, python: "{version}"')
    path.write_text(pins.loads(json.dumps(data)).dumps())


def gen(tree: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(str(ROOT / ".venv" / "bin" / "python"), "-m", "generator", "--schedule", str(tree / "schedule.yaml"), *args, check=check, cwd=ROOT)


def build(tree: Path, base: str, mirror: str, tag: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return gen(tree, "build", RUNTIME, "--base-image", base, "--python-mirror", mirror, "--no-optimize", "--tag", tag, *extra, check=check)


@pytest.fixture(scope="session")
def image(test_tree: Path, debian_base: str, python_mirror: str) -> dict:
    """The python311 runtime image, built once from scratch; its build output and timing."""
    start = time.monotonic()
    proc = build(test_tree, debian_base, python_mirror, "localhost/flex-test/python311:a", "--no-cache", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {
        "tag": "localhost/flex-test/python311:a",
        "stdout": proc.stdout,
        "stderr": proc.stderr,
        "seconds": time.monotonic() - start,
        "tree": test_tree,
    }


@pytest.fixture(scope="session")
def need_podman():
    if shutil.which("podman") is None:
        if os.environ.get("CI"):
            pytest.fail("podman is not installed; ci/dev.sh installs it")
        pytest.skip("podman is not installed (bash ci/dev.sh setup)")


@contextlib.contextmanager
def container(tag: str, port: int, *args: str):
    name = f"flex-test-{port}"
    podman("run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:{port if args else 8080}", *args, tag)
    try:
        yield name
    finally:
        podman("rm", "-f", name, check=False)


def get(url: str, headers: dict | None = None, wait: float = 30) -> tuple[int, dict]:
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
