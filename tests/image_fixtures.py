"""Session fixtures and helpers shared by the image tests (test_image.py, test_app_image.py).

No registry or python.org is reachable here, so each base is a genuine Ubuntu root built from
Ubuntu's archive (tests/ubuntu.py: noble and jammy with mmdebstrap, xenial with debootstrap), and
the CPython tarballs come from source packages that ship python.org's file unchanged. The test tree
is the repository with python311 pinned to 3.11.2 (whose tarball the archives carry) and a
python311-ubuntu24 runtime; its OS package locks are made by the real command (`refresh --only
packages --os-base OS=ROOT`) in those roots, so the lock and the base always match. Every build runs
`generator build`: .debs, tarball and wheels fetched and hash-checked on the host, `podman build
--network=none`. Each runtime image is built once per session (a CPython build takes minutes) and
shared by every module: conftest.py registers these fixtures.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from generator.core import paths
from generator.core.cache import cache_root

from . import ubuntu
from .conftest import ROOT, copy_tree, edit
from .servers import serve

CACHE = cache_root() / "test"
OSES = ("ubuntu16", "ubuntu22", "ubuntu24")
# python.org's published sha256 of each tarball (shared/pins/cpython-sources.tsv); each is checked
# against the archive's file before use.
PY311 = (
    "3.11.2",
    "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849",
    "29e4b8f5f1658542a8c13e2dd277358c9c48f2b2f7318652ef1675e402b9d2af",
)
TARBALL_SHA256 = PY311[1]
PY314 = ("3.14.8", None, "c2215904f02b175596dc49351585104f4bc20341e1c47378b26a2c274360ce73")  # only the .tar.xz's is known
PY2718 = ("2.7.18", "da3080e3b488f648a3d7a4560ddee895284c3380b11d6de75edb986526b9a814")
RUNTIME = "python311-ubuntu22"
TIMES: dict[str, float] = {}  # what the session's slow steps took (conftest prints them after the tests)
FACTS: dict[str, str] = {}  # digests and sizes worth reading in a CI log (printed with TIMES)


def run(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run("podman", *args, check=check)


@pytest.fixture(scope="session")
def need_podman():
    missing = [t for t in ("podman", "mmdebstrap", "debootstrap", "apt-ftparchive", "gpg") if shutil.which(t) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} not installed; ci/dev.sh installs them")
        pytest.skip(f"{', '.join(missing)} not installed (bash ci/dev.sh setup)")


@pytest.fixture(scope="session")
def roots(need_podman) -> dict[str, str]:
    """os id → a real Ubuntu root imported into podman (built once, cached as a tarball)."""
    start = time.monotonic()
    out = {os_id: ubuntu.root_image(os_id, podman) for os_id in OSES}
    TIMES["roots"] = time.monotonic() - start
    return out


@pytest.fixture(scope="session")
def legacy_python() -> tuple[str, str]:
    """python2's pinned 2.7.12 from xenial's source package when the archive serves it, else 2.7.18 (Debian bullseye's)."""
    lock = json.loads((ROOT / paths.SCHEDULE_LOCK).read_text())
    pinned = lock["cpython"]["2.7.12"]["sha256"]
    try:
        ubuntu.python_tarball("2.7.12", pinned, CACHE / "mirror")
        return "2.7.12", pinned
    except Exception as exc:  # the archive dropped the file (HTTP 404 here on 2026-11-24)
        FACTS["python2"] = f"Python-2.7.12.tgz unavailable ({exc}); built with 2.7.18 on the xenial root"
        ubuntu.python_tarball(*PY2718, CACHE / "mirror")
        return PY2718


@pytest.fixture(scope="session")
def current() -> dict[str, tuple[str, tuple[str, str | None, str]]]:
    """os id → (runtime, its CPython release) of the current runtimes built: python311-ubuntu22 with
    3.11.2's .tgz, and the schedule's python314-ubuntu24 with 3.14.8's .tar.xz (Debian forky's file)
    while Debian carries it, else a python311-ubuntu24 with 3.11.2."""
    ubuntu.python_tarball(PY311[0], PY311[1], CACHE / "mirror")
    try:
        ubuntu.python_tarball(PY314[0], PY314[2], CACHE / "mirror", ext="tar.xz")
        newest = ("python314-ubuntu24", PY314)
    except Exception as exc:  # Debian's testing moved on from 3.14.8
        FACTS["ubuntu24"] = f"Python-3.14.8.tar.xz unavailable ({exc}); tested with python311-ubuntu24 and 3.11.2"
        newest = ("python311-ubuntu24", PY311)
    return {"ubuntu22": (RUNTIME, PY311), "ubuntu24": newest}


@pytest.fixture(scope="session")
def python_mirror(legacy_python, current):
    """…/X.Y.Z/Python-X.Y.Z.{tgz,tar.xz} for the releases the session builds, each checked against its pinned sha256."""
    with serve(CACHE / "mirror") as url:
        yield url


def gen(tree: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    py = str(ROOT / ".venv" / "bin" / "python")
    return run(py, "-m", "generator", "--schedule", str(tree / paths.SCHEDULE), *args, check=check, cwd=ROOT, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def test_tree(tmp_path_factory, roots: dict[str, str], legacy_python: tuple[str, str], current) -> Path:
    """The repository with the session's CPython releases pinned, its package locks made in the roots by `refresh`."""
    tree = copy_tree(tmp_path_factory.mktemp("tree"))
    lock_path = tree / paths.SCHEDULE_LOCK
    lock = json.loads(lock_path.read_text())
    for _runtime, (v, sha, xz) in current.values():
        lock["python_minors"][v.rsplit(".", 1)[0]] = v
        evidence = "python.org's published sha256; the file is a Debian source package's orig tarball (tests)"
        url = f"https://www.python.org/ftp/python/{v}/Python-{v}.tgz"
        lock["cpython"][v] = {"url": url, "sha256": sha, "tar_xz_sha256": xz, "evidence": evidence}
    lv, lsha = legacy_python
    if lv != "2.7.12":
        edit(tree / paths.SCHEDULE, '{id: python2, os: ubuntu16, python: "2.7.12"', f'{{id: python2, os: ubuntu16, python: "{lv}"')
        evidence = "python.org's published sha256; the file is Debian bullseye's python2.7_2.7.18.orig.tar.gz (tests)"
        url = f"https://www.python.org/ftp/python/{lv}/Python-{lv}.tgz"
        lock["cpython"][lv] = {"url": url, "sha256": lsha, "tar_xz_sha256": None, "evidence": evidence}
    lock_path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    if current["ubuntu24"][0] == "python311-ubuntu24":
        edit(
            tree / paths.SCHEDULE,
            "  - {id: python312-ubuntu24,",
            '  - {id: python311-ubuntu24, os: ubuntu24, python: "3.11"}\n  - {id: python312-ubuntu24,',
        )
        for ext in (".in", ".txt", ".wheels.json"):  # same minor, same pure-Python tools
            shutil.copy(tree / paths.LOCKFILES / f"python311-ubuntu22{ext}", tree / paths.LOCKFILES / f"python311-ubuntu24{ext}")
    start = time.monotonic()
    bases = [a for os_id in OSES for a in ("--os-base", f"{os_id}={roots[os_id]}")]
    # --toolchain: the closures and the toolchain lock are made in these roots (the repository's were made in the pinned bases)
    proc = gen(
        tree, "refresh", "--only", "packages", *OSES, *bases, "--toolchain", "--no-snapshots", "--changelog", str(tree / "packages.md"), check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    TIMES["package locks"] = time.monotonic() - start
    return tree


def build(tree: Path, runtime: str, base: str, mirror: str, tag: str, *extra: str, env: dict | None = None, check: bool = False):
    """`generator build` of a runtime image alone (`build_images` adds the build image where a test needs it)."""
    if "--build-image" not in extra:
        extra = ("--no-build-image", *extra)
    args = ["build", runtime, "--base-image", base, "--python-mirror", mirror, "--no-optimize", "--tag", tag, *extra]
    return gen(tree, *args, check=check, env=env)


@pytest.fixture(scope="session")
def images(test_tree: Path, roots: dict[str, str], python_mirror: str):
    """runtime → its image, built once per session (on demand) and reused by every test. Tagged for
    this session alone (another session on the machine, from another tree, would move a shared tag
    under the tests that inspect it); the layer cache is shared all the same, and the tags go at the end."""
    built: dict[str, dict] = {}
    os_of = {rid: r["operating_system"] for rid, r in json.loads((test_tree / paths.RUNTIMES_JSON).read_text())["runtimes"].items()}

    def get(runtime: str) -> dict:
        if runtime not in built:
            tag = f"localhost/flex-test/{runtime}-{os.getpid()}:a"
            start = time.monotonic()
            proc = build(test_tree, runtime, roots[os_of[runtime]], python_mirror, tag)  # layer cache: reruns reuse it
            assert proc.returncode == 0, proc.stdout + proc.stderr[-5000:]
            seconds = time.monotonic() - start
            TIMES[f"build {runtime}"] = seconds
            built[runtime] = {"tag": tag, "stdout": proc.stdout, "stderr": proc.stderr, "seconds": seconds, "os": os_of[runtime], "tree": test_tree}
        return built[runtime]

    yield get
    for entry in built.values():
        for name in (entry["tag"], f"{entry['tag']}-build"):
            podman("untag", name, name, check=False)  # this name alone (with no NAME, untag drops every name of the image)


@pytest.fixture(scope="session")
def build_images(images, roots: dict[str, str], python_mirror: str):
    """runtime → its build image (FROM its runtime image, by id), built once per session on demand."""
    built: dict[str, dict] = {}

    def get(runtime: str) -> dict:
        if runtime not in built:
            base = images(runtime)
            start = time.monotonic()
            proc = build(base["tree"], runtime, roots[base["os"]], python_mirror, base["tag"], "--build-image")  # the runtime: cached
            assert proc.returncode == 0, proc.stdout + proc.stderr[-5000:]
            seconds = time.monotonic() - start
            TIMES[f"build image {runtime}"] = seconds
            m = re.search(r"^built (\S+) in \d+s \(build image\)$", proc.stdout, re.M)
            assert m, proc.stdout
            size = int(podman("image", "inspect", "--format", "{{.Size}}", m.group(1)).stdout.strip())
            FACTS[f"build image {runtime}"] = f"{size / 1e6:.1f} MB (podman's size, runtime image included), built in {seconds:.0f}s"
            built[runtime] = {"tag": m.group(1), "stdout": proc.stdout, "runtime": base, "bytes": size}
        return built[runtime]

    return get


@pytest.fixture(scope="session")
def image(images) -> dict:
    """python311-ubuntu22 on the real Ubuntu 22.04 root: its build output and timing."""
    return images(RUNTIME)


@pytest.fixture(scope="session")
def legacy_image(images) -> dict:
    """The legacy python2 runtime on the real Ubuntu 16.04 root."""
    return images("python2")


@contextlib.contextmanager
def container(tag: str, port: int, *args: str, cmd: tuple[str, ...] = ()):
    """A detached container of tag serving on 127.0.0.1:port; args are podman options (-e PORT=… maps port to itself)."""
    name = f"flex-test-{port}"
    podman("run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:{port if args else 8080}", *args, tag, *cmd)
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
