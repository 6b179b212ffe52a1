"""Real images on real Ubuntu roots, built with the network off from the OS package lock.

No registry or python.org is reachable here, so each base is a genuine Ubuntu root built from
Ubuntu's archive (tests/ubuntu.py: noble, jammy with mmdebstrap, xenial with debootstrap), and the
CPython tarballs come from source packages that ship python.org's file unchanged. The test tree
is the repository with python311 pinned to 3.11.2 (whose tarball the archives carry) and a
python311-ubuntu24 runtime; its OS package locks are made by the real command
(`refresh --only packages --os-base OS=ROOT`) in those roots, so the lock and the base always
match. Every build then runs `generator build`: .debs, tarball and wheels fetched and hash-checked
on the host, `podman build --network=none`.
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

from generator import ospkgs
from generator.cache import cache_root
from generator.locking import parse_lock
from generator.pins import load as load_pins

from . import ubuntu
from .conftest import ROOT, edit

pytestmark = pytest.mark.image

CACHE = cache_root() / "test"
OSES = ("ubuntu16", "ubuntu22", "ubuntu24")
# python.org's published sha256 of each tarball (shared/pins/cpython-sources.tsv); each is checked
# against the archive's file before use.
PY311 = (
    "3.11.2",
    "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849",
    "29e4b8f5f1658542a8c13e2dd277358c9c48f2b2f7318652ef1675e402b9d2af",
)
PY2718 = ("2.7.18", "da3080e3b488f648a3d7a4560ddee895284c3380b11d6de75edb986526b9a814")
CURRENT = {"ubuntu22": "python311-ubuntu22", "ubuntu24": "python311-ubuntu24"}
FLASK_APP_WHEELS = ["Flask==3.0.3", "gunicorn==23.0.0"]
TIMES: dict[str, float] = {}


def run(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run("podman", *args, check=check)


@pytest.fixture(scope="session", autouse=True)
def _need_tools():
    missing = [t for t in ("podman", "mmdebstrap", "debootstrap", "apt-ftparchive", "gpg") if shutil.which(t) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} not installed; ci/dev.sh installs them")
        pytest.skip(f"{', '.join(missing)} not installed (bash ci/dev.sh setup)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(directory: Path):
    """A plain http server on 127.0.0.1 for a directory."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def roots() -> dict[str, str]:
    start = time.monotonic()
    out = {os_id: ubuntu.root_image(os_id, podman) for os_id in OSES}
    TIMES["roots"] = time.monotonic() - start
    return out


@pytest.fixture(scope="session")
def legacy_python() -> tuple[str, str]:
    """python2's pinned 2.7.12 from xenial's source package when the archive serves it, else 2.7.18 (Debian bullseye's)."""
    lock = json.loads((ROOT / "lockfiles" / "schedule.lock.json").read_text())
    pinned = lock["cpython"]["2.7.12"]["sha256"]
    try:
        ubuntu.python_tarball("2.7.12", pinned, CACHE / "mirror")
        return "2.7.12", pinned
    except Exception as exc:  # the archive dropped the file (HTTP 404 here on 2026-11-24)
        print(f"\nPython-2.7.12.tgz unavailable ({exc}); python2 is built with 2.7.18 on the xenial root")
        ubuntu.python_tarball(*PY2718, CACHE / "mirror")
        return PY2718


@pytest.fixture(scope="session")
def python_mirror(legacy_python):
    """…/X.Y.Z/Python-X.Y.Z.tgz for 3.11.2 and the legacy interpreter, each checked against its pinned sha256."""
    ubuntu.python_tarball(PY311[0], PY311[1], CACHE / "mirror")
    with serve(CACHE / "mirror") as url:
        yield url


def gen(tree: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    py = str(ROOT / ".venv" / "bin" / "python")
    return run(py, "-m", "generator", "--schedule", str(tree / "schedule.yaml"), *args, check=check, cwd=ROOT, env={**os.environ, **(env or {})})


def copy_tree(dest: Path, src: Path = ROOT) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("schedule.yaml", "README.md", "flake.nix", "flake.lock"):
        shutil.copy(src / name, dest / name)
    for sub in ("images", "lockfiles", "nix"):
        shutil.copytree(src / sub, dest / sub, dirs_exist_ok=True)
    return dest


@pytest.fixture(scope="session")
def test_tree(tmp_path_factory, roots: dict[str, str], legacy_python: tuple[str, str]) -> Path:
    """The repository with 3.11.2 and python311-ubuntu24, its package locks made in the roots by `refresh`."""
    tree = copy_tree(tmp_path_factory.mktemp("tree"))
    lock_path = tree / "lockfiles" / "schedule.lock.json"
    lock = json.loads(lock_path.read_text())
    v, sha, xz = PY311
    lock["python_minors"]["3.11"] = v
    evidence = "python.org's published sha256; the file is Debian's python3.11_3.11.2.orig.tar.gz (tests)"
    lock["cpython"][v] = {"url": f"https://www.python.org/ftp/python/{v}/Python-{v}.tgz", "sha256": sha, "tar_xz_sha256": xz, "evidence": evidence}
    lv, lsha = legacy_python
    if lv != "2.7.12":
        edit(tree / "schedule.yaml", '{id: python2, os: ubuntu16, python: "2.7.12"', f'{{id: python2, os: ubuntu16, python: "{lv}"')
        evidence = "python.org's published sha256; the file is Debian bullseye's python2.7_2.7.18.orig.tar.gz (tests)"
        lock["cpython"][lv] = {
            "url": f"https://www.python.org/ftp/python/{lv}/Python-{lv}.tgz",
            "sha256": lsha,
            "tar_xz_sha256": None,
            "evidence": evidence,
        }
    lock_path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    edit(
        tree / "schedule.yaml",
        "  - {id: python312-ubuntu24,",
        '  - {id: python311-ubuntu24, os: ubuntu24, python: "3.11"}\n  - {id: python312-ubuntu24,',
    )
    for ext in (".in", ".txt", ".wheels.json"):  # same minor, same pure-Python tools
        shutil.copy(tree / "lockfiles" / f"python311-ubuntu22{ext}", tree / "lockfiles" / f"python311-ubuntu24{ext}")
    start = time.monotonic()
    bases = [a for os_id in OSES for a in ("--os-base", f"{os_id}={roots[os_id]}")]
    proc = gen(tree, "refresh", "--only", "packages", *OSES, *bases, "--no-snapshots", "--changelog", str(tree / "packages.md"), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    TIMES["lock"] = time.monotonic() - start
    return tree


def tree_lock(tree: Path) -> dict:
    return json.loads((tree / "lockfiles" / "schedule.lock.json").read_text())


def build(tree: Path, runtime: str, base: str, mirror: str, tag: str, *extra: str, env: dict | None = None, check: bool = False):
    args = ["build", runtime, "--base-image", base, "--python-mirror", mirror, "--no-optimize", "--tag", tag, *extra]
    return gen(tree, *args, check=check, env=env)


@pytest.fixture(scope="session")
def images(test_tree: Path, roots: dict[str, str], python_mirror: str):
    """Each runtime's image, built once per session (on demand) and reused by every test."""
    built: dict[str, dict] = {}

    def get(runtime: str, os_id: str) -> dict:
        if runtime not in built:
            tag = f"localhost/flex-test/{runtime}:a"
            start = time.monotonic()
            proc = build(test_tree, runtime, roots[os_id], python_mirror, tag)  # layer cache: reruns reuse it
            assert proc.returncode == 0, proc.stdout + proc.stderr[-5000:]
            seconds = time.monotonic() - start
            TIMES[f"build {runtime}"] = seconds
            built[runtime] = {"tag": tag, "stdout": proc.stdout, "stderr": proc.stderr, "seconds": seconds, "os": os_id}
        return built[runtime]

    return get


def inside(image: dict, *cmd: str) -> str:
    return podman("run", "--rm", "--network=none", image["tag"], *cmd).stdout


def layers(tag: str) -> str:
    """Each layer's size, uncompressed and gzipped (what a registry stores), by benchmarks/image_size.py."""
    return run(str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "benchmarks" / "image_size.py"), tag).stdout


# --- the lock and the Dockerfiles -------------------------------------------------------------------


def test_package_locks_made_in_the_roots(test_tree: Path, roots: dict[str, str]) -> None:
    lock = tree_lock(test_tree)
    for os_id in OSES:
        entry = lock["os_packages"][os_id]
        # resolved in a root of this OS (refresh keeps an entry whose files did not change, and its provenance)
        assert entry["resolved_in"].startswith(roots[os_id].rsplit(":", 1)[0] + ":")
        debs = entry["build"] + entry["runtime"]
        assert debs and all(len(d["sha256"]) == 64 and d["filename"].startswith("pool/") for d in debs)
        print(f"\n{os_id}: archive state {entry['snapshot']}, {len(entry['build'])} build + {len(entry['runtime'])} runtime .debs")
    print((test_tree / "packages.md").read_text())


def test_dockerfiles_fetch_nothing(test_tree: Path) -> None:
    for path in sorted((test_tree / "images").glob("*/Dockerfile")):
        text = path.read_text()
        assert "apt-get update" not in text and "wget" not in text and "curl" not in text, path


# --- a moved archive: a newer tzdata in jammy-security, on 127.0.0.1 --------------------------------


@pytest.fixture(scope="session")
def moved_archive(test_tree: Path, tmp_path_factory):
    """mirror/: every locked .deb of ubuntu22 plus a newer tzdata; sim/: a signed jammy-security suite with that tzdata."""
    root = tmp_path_factory.mktemp("archive")
    lock = load_pins(test_tree / "lockfiles" / "schedule.lock.json").os_packages["ubuntu22"]
    entry = tree_lock(test_tree)["os_packages"]["ubuntu22"]
    for deb in lock.build + lock.runtime:  # the locked files, fetched and hash-checked as `build` does
        ospkgs.fetch([deb], (root / "mirror" / deb.filename).parent, [lock.archive])
    tz = next(d for d in entry["runtime"] if d["name"] == "tzdata")
    newer = tz["version"] + "+sim1"
    new_file = f"pool/main/t/tzdata/tzdata_{newer}_all.deb"
    ubuntu.reversion_deb(root / "mirror" / tz["filename"], newer, root / "sim" / new_file)
    shutil.copyfile(root / "sim" / new_file, root / "mirror" / new_file)
    keyring = ubuntu.signed_suite(root / "sim", "jammy-security", root / "gnupg")
    with serve(root) as url:
        yield {"url": url, "keyring": keyring, "tzdata": (tz["version"], newer), "root": root}


def test_rebuild_after_the_archive_moved_gives_the_same_digest(images, test_tree, roots, python_mirror, moved_archive, tmp_path) -> None:
    """A second clean build (no layer cache, an empty download cache) from the same lock, fetching
    from the moved mirror after the snapshot service fails: the same image."""
    first = images(CURRENT["ubuntu22"], "ubuntu22")
    dead = f"http://127.0.0.1:{free_port()}/snapshot"  # nothing listens: the fallback is real
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "FLEX_PYTHON_APT_SNAPSHOT": dead}
    tag = "localhost/flex-test/python311-ubuntu22:b"
    start = time.monotonic()
    proc = build(
        test_tree, CURRENT["ubuntu22"], roots["ubuntu22"], python_mirror, tag, "--no-cache", "--apt-mirror", moved_archive["url"] + "/mirror", env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    TIMES["second clean build"] = time.monotonic() - start
    a = json.loads(podman("image", "inspect", first["tag"]).stdout)[0]
    b = json.loads(podman("image", "inspect", tag).stdout)[0]
    assert a["RootFS"]["Layers"] == b["RootFS"]["Layers"]
    assert a["Id"] == b["Id"] and a["Digest"] == b["Digest"]
    print(f"\ndigests: {a['Digest']} and {b['Digest']} (image id {a['Id'][:19]}); second build {TIMES['second clean build']:.0f}s")


def test_tampered_deb_is_refused_before_the_build(test_tree, roots, python_mirror, moved_archive, tmp_path) -> None:
    entry = tree_lock(test_tree)["os_packages"]["ubuntu22"]
    victim = entry["runtime"][0]
    bad = tmp_path / "tampered"
    shutil.copytree(moved_archive["root"] / "mirror", bad)
    data = bytearray((bad / victim["filename"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / victim["filename"]).write_bytes(bytes(data))
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "FLEX_PYTHON_APT_SNAPSHOT": ""}
    tag = "localhost/flex-test/python311-ubuntu22:tampered"
    with serve(bad) as url:
        proc = build(test_tree, CURRENT["ubuntu22"], roots["ubuntu22"], python_mirror, tag, "--apt-mirror", url, env=env)
    assert proc.returncode == 1
    assert "checksum mismatch" in proc.stderr and f"expected {victim['sha256']}" in proc.stderr and "actual " in proc.stderr
    assert "step 1/" not in proc.stderr  # refused before the build started
    assert podman("image", "exists", tag, check=False).returncode != 0


def test_refresh_moves_the_archive_state(test_tree: Path, roots, moved_archive, tmp_path: Path) -> None:
    """`refresh --only packages` with the moved archive as an extra signed source: the changelog lists
    tzdata old → new from -security, and exactly ubuntu22's runtimes move their input hash."""
    tree = copy_tree(tmp_path / "tree", test_tree)
    before = json.loads((tree / "lockfiles" / "runtimes.json").read_text())["runtimes"]
    source = f"deb {moved_archive['url']}/sim jammy-security main"
    proc = gen(
        tree, "refresh", "--only", "packages", "ubuntu22", "--os-base", f"ubuntu22={roots['ubuntu22']}", "--apt-source", source,
        "--apt-keyring", str(moved_archive["keyring"]), "--no-snapshots", "--changelog", str(tmp_path / "changes.md"), check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "changes.md").read_text()
    old, new = moved_archive["tzdata"]
    assert f"- `ubuntu22`: tzdata {old} → {new} (jammy-security, security) **security**" in log, log
    after = json.loads((tree / "lockfiles" / "runtimes.json").read_text())["runtimes"]
    moved = sorted(rid for rid in after if before[rid]["input_hash"] != after[rid]["input_hash"])
    assert moved == sorted(rid for rid, r in after.items() if r["operating_system"] == "ubuntu22")
    section = log.split("### Runtimes to rebuild", 1)[1]
    assert sorted(line.split("`")[1] for line in section.splitlines() if line.startswith("- `")) == moved
    print("\n" + log)


# --- current runtimes on Ubuntu 22.04 and 24.04 -------------------------------------------------------


@pytest.mark.parametrize("os_id", ["ubuntu22", "ubuntu24"])
def test_current_runtime(images, os_id: str, test_tree: Path) -> None:
    image = images(CURRENT[os_id], os_id)
    out = image["stdout"]
    assert "image id: " in out and "digest:   sha256:" in out
    assert "network off" in image["stderr"]
    assert inside(image, "python", "--version").strip() == f"Python {PY311[0]}"
    facts = json.loads(inside(image, "/env/bin/python", "-c", "import sys, json; print(json.dumps([sys.executable, sys.prefix, sys.base_prefix]))"))
    assert facts == ["/env/bin/python", "/env", "/opt/python3.11"]
    mods = "ssl, sqlite3, ctypes, zlib, bz2, lzma, readline, uuid, decimal, dbm.gnu, curses, venv"
    assert inside(image, "python", "-c", f"import {mods}; print(ssl.OPENSSL_VERSION)").startswith("OpenSSL ")
    release = inside(image, "sh", "-c", ". /etc/os-release; echo $VERSION_ID").strip()
    assert release == {"ubuntu22": "22.04", "ubuntu24": "24.04"}[os_id]
    locked = {n: v for n, (v, _) in parse_lock((test_tree / "lockfiles" / f"{CURRENT[os_id]}.txt").read_text()).items()}
    assert dict(line.lower().split("==") for line in inside(image, "pip", "freeze", "--all").split()) == locked
    assert inside(image, "id", "-u").strip() == "1000"
    # every locked runtime package is installed at its locked version
    runtime = tree_lock(test_tree)["os_packages"][os_id]["runtime"]
    query = inside(image, "dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *[d["name"] for d in runtime])
    assert dict(line.split() for line in query.splitlines()) == {d["name"]: d["version"] for d in runtime}
    print(f"\n{CURRENT[os_id]} built in {image['seconds']:.0f}s\n{layers(image['tag'])}")


def test_no_apt_lists_caches_or_logs(images) -> None:
    image = images(CURRENT["ubuntu22"], "ubuntu22")
    out = inside(image, "sh", "-c", "ls -A /var/lib/apt/lists /var/cache/apt /var/log/apt 2>/dev/null; ls /var/log")
    assert "Packages" not in out and ".bin" not in out and "dpkg.log" not in out and "history.log" not in out


@pytest.fixture(scope="session")
def app_wheels() -> Path:
    wheels = CACHE / "app-wheels"
    if not list(wheels.glob("gunicorn-*.whl")):
        run(
            str(ROOT / ".venv" / "bin" / "python"), "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", "3.11",
            "-d", str(wheels), *FLASK_APP_WHEELS,
        )  # fmt: skip
    return wheels


def flask_image(image: dict, app_wheels: Path, work: Path) -> str:
    """The Flask sample, Dockerfile written by `generator app`, built FROM the runtime image (network off)."""
    app = work / "flask"
    shutil.copytree(ROOT / "tests" / "apps" / "flask", app, dirs_exist_ok=True)
    digest = json.loads(podman("image", "inspect", image["tag"]).stdout)[0]["Digest"]
    ref = f"{image['tag'].rsplit(':', 1)[0]}@{digest}"
    run(str(ROOT / ".venv" / "bin" / "python"), "-m", "generator", "app", str(app), "--runtime-image", ref, "--gunicorn-config", cwd=ROOT)
    (app / "pip.conf").write_text("[global]\nno-index = true\nfind-links = /wheels\n")
    tag = f"localhost/flex-test/flask-{image['os']}:latest"
    podman("build", "--network=none", "-v", f"{app_wheels}:/wheels:ro,Z", "-v", f"{app / 'pip.conf'}:/etc/pip.conf:ro,Z", "-t", tag, str(app))
    return tag


@contextlib.contextmanager
def container(tag: str, port: int, *args: str):
    name = f"flex-test-{port}"
    podman("run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8080", tag, *args)
    try:
        yield name
    finally:
        podman("rm", "-f", name, check=False)


def get(url: str, wait: float = 30) -> tuple[int, dict]:
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.parametrize("os_id", ["ubuntu22", "ubuntu24"])
def test_flask_app_serves_on_8080(images, app_wheels: Path, tmp_path: Path, os_id: str) -> None:
    tag = flask_image(images(CURRENT[os_id], os_id), app_wheels, tmp_path)
    port = free_port()
    with container(tag, port):
        status, body = get(f"http://127.0.0.1:{port}/")
    assert status == 200 and body["port"] == "8080" and body["service"] == "web"
    print(f"\n{os_id}: HTTP {status} on 8080: {body}")


# --- the legacy python2 runtime on Ubuntu 16.04 ----------------------------------------------------

WSGI = (
    "import json, sys, os\n"
    "from wsgiref.simple_server import make_server\n"
    "def app(environ, start):\n"
    "    start('200 OK', [('Content-Type', 'application/json')])\n"
    "    return [json.dumps({'python': sys.version.split()[0], 'prefix': sys.prefix, 'port': os.environ['PORT']}).encode()]\n"
    "make_server('0.0.0.0', int(os.environ['PORT']), app).serve_forever()\n"
)


def test_legacy_python2_on_xenial(images, test_tree: Path, legacy_python: tuple[str, str]) -> None:
    image = images("python2", "ubuntu16")
    assert inside(image, "sh", "-c", ". /etc/os-release; echo $VERSION_ID").strip() == "16.04"
    assert inside(image, "python", "-c", "import platform; print(platform.python_version())").strip() == legacy_python[0]
    facts = inside(image, "python", "-c", "import sys, virtualenv, setuptools, sqlite3, zlib, bz2, ctypes, ssl; print(sys.prefix)")
    assert facts.strip() == "/env"
    locked = {n: v for n, (v, _) in parse_lock((test_tree / "lockfiles" / "python2.txt").read_text()).items()}
    assert dict(line.lower().split("==") for line in inside(image, "pip", "freeze", "--all").split()) == locked
    port = free_port()
    with container(image["tag"], port, "python", "-c", WSGI):
        status, body = get(f"http://127.0.0.1:{port}/")
    assert status == 200 and body == {"python": legacy_python[0], "prefix": "/env", "port": "8080"}
    print(f"\npython2 ({legacy_python[0]}) on xenial built in {image['seconds']:.0f}s; the app answered {body}\n{layers(image['tag'])}")


def test_report_times() -> None:
    print("\n" + "\n".join(f"{k}: {v:.0f}s" for k, v in TIMES.items()))
