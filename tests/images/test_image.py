"""Real images on real Ubuntu 16.04, 22.04 and 24.04 roots, built with the network off from the lock.

The fixtures (image_fixtures.py) build the roots from Ubuntu's archive, lock their packages with the
real `refresh --only packages`, and build each runtime once per session with `generator build`.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from generator import locking
from generator.core import paths
from generator.core.http import fetch_verified
from generator.images import ospkgs, sbom
from generator.locking import parse_lock
from generator.schedule import runtimes as schedule
from generator.schedule.lock import load as load_pins
from tests import ubuntu
from tests.conftest import ROOT, edit
from tests.image_fixtures import (
    CACHE,
    FACTS,
    OSES,
    RUNTIME,
    TARBALL_SHA256,
    TIMES,
    build,
    container,
    copy_tree,
    gen,
    get,
    podman,
    run,
)
from tests.servers import free_port, serve

pytestmark = [pytest.mark.image, pytest.mark.usefixtures("need_podman")]

FLASK_APP_WHEELS = ["Flask==3.0.3", "gunicorn==23.0.0"]


def locked_versions(lock: Path) -> dict[str, str]:
    """name → version of a hash-locked file, read by the lock module's own parser."""
    return {name: version for name, (version, _) in parse_lock(lock.read_text()).items()}


def inside(image: dict, *cmd: str, env: tuple[str, ...] = ()) -> str:
    args = [a for e in env for a in ("-e", e)]
    return podman("run", "--rm", "--network=none", *args, image["tag"], *cmd).stdout


def tree_lock(tree: Path) -> dict:
    return json.loads((tree / paths.SCHEDULE_LOCK).read_text())


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
    for path in sorted((test_tree / paths.IMAGES).glob("*/Dockerfile")):
        text = path.read_text()
        assert "apt-get update" not in text and "wget" not in text and "curl" not in text, path


# --- a moved archive: a newer tzdata in jammy-security, on 127.0.0.1 --------------------------------


@pytest.fixture(scope="session")
def moved_archive(test_tree: Path, tmp_path_factory):
    """mirror/: every locked .deb of ubuntu22 plus a newer tzdata; sim/: a signed jammy-security suite with that tzdata."""
    root = tmp_path_factory.mktemp("archive")
    lock = load_pins(test_tree / paths.SCHEDULE_LOCK).os_packages["ubuntu22"]
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
    first = images(RUNTIME)
    dead = f"http://127.0.0.1:{free_port()}/snapshot"  # nothing listens: the fallback is real
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "FLEX_PYTHON_APT_SNAPSHOT": dead}
    tag = "localhost/flex-test/python311-ubuntu22:b"
    start = time.monotonic()
    mirror = moved_archive["url"] + "/mirror"
    proc = build(test_tree, RUNTIME, roots["ubuntu22"], python_mirror, tag, "--no-cache", "--rebuild-interpreter", "--apt-mirror", mirror, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the interpreter artifact, compiled again from clean: the same image (its id is a hash of its layer and config)
    interpreters = [re.search(r"^interpreter (\S+): (?:built in \d+s|reused) \((\S+)\)$", out, re.M) for out in (first["stdout"], proc.stdout)]
    assert all(interpreters) and "built in" in proc.stdout.split("\n", 1)[0], proc.stdout
    assert interpreters[0].group(2) == interpreters[1].group(2), (interpreters[0].group(0), interpreters[1].group(0))
    TIMES["second clean build"] = time.monotonic() - start
    # by the ids the two builds printed: the tags are shared with any other test session on this machine
    ids = [re.search(r"^image id: (\S+)$", out, re.M).group(1) for out in (first["stdout"], proc.stdout)]
    a, b = (json.loads(podman("image", "inspect", i).stdout)[0] for i in ids)
    assert a["RootFS"]["Layers"] == b["RootFS"]["Layers"]
    assert a["Id"] == b["Id"] and a["Digest"] == b["Digest"]
    FACTS["two clean builds of " + RUNTIME] = f"{a['Digest']} and {b['Digest']} (image id {a['Id'][:19]})"
    FACTS["its interpreter, compiled twice"] = f"{interpreters[0].group(2)[:19]} and {interpreters[1].group(2)[:19]}"


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
        proc = build(test_tree, RUNTIME, roots["ubuntu22"], python_mirror, tag, "--apt-mirror", url, env=env)
    assert proc.returncode == 1
    assert "checksum mismatch" in proc.stderr and f"expected {victim['sha256']}" in proc.stderr and "actual " in proc.stderr
    assert "step 1/" not in proc.stderr  # refused before the build started
    assert podman("image", "exists", tag, check=False).returncode != 0


def test_refresh_moves_the_archive_state(test_tree: Path, roots, moved_archive, tmp_path: Path) -> None:
    """`refresh --only packages` with the moved archive as an extra signed source: the changelog lists
    tzdata old → new from -security, and exactly ubuntu22's runtimes move their input hash."""
    tree = copy_tree(tmp_path / "tree", test_tree)
    before = json.loads((tree / paths.RUNTIMES_JSON).read_text())["runtimes"]
    source = f"deb {moved_archive['url']}/sim jammy-security main"
    proc = gen(
        tree, "refresh", "--only", "packages", "ubuntu22", "--os-base", f"ubuntu22={roots['ubuntu22']}", "--apt-source", source,
        "--apt-keyring", str(moved_archive["keyring"]), "--no-snapshots", "--changelog", str(tmp_path / "changes.md"), check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "changes.md").read_text()
    old, new = moved_archive["tzdata"]
    assert f"- `ubuntu22`: tzdata {old} → {new} (jammy-security, security) **security**" in log, log
    after = json.loads((tree / paths.RUNTIMES_JSON).read_text())["runtimes"]
    moved = sorted(rid for rid in after if before[rid]["input_hash"] != after[rid]["input_hash"])
    assert moved == sorted(rid for rid, r in after.items() if r["operating_system"] == "ubuntu22")
    section = log.split("### Runtimes to rebuild", 1)[1]
    assert sorted(line.split("`")[1] for line in section.splitlines() if line.startswith("- `")) == moved
    print("\n" + log)


# --- current runtimes on Ubuntu 22.04 and 24.04 -------------------------------------------------------


@pytest.mark.parametrize("os_id", ["ubuntu22", "ubuntu24"])
def test_current_runtime(images, current, os_id: str, test_tree: Path) -> None:
    runtime, (version, _tgz, _xz) = current[os_id]
    image = images(runtime)
    out = image["stdout"]
    assert "image id: " in out and "digest:   sha256:" in out
    assert "network off" in image["stderr"]
    assert inside(image, "python", "--version").strip() == f"Python {version}"
    facts = json.loads(inside(image, "/env/bin/python", "-c", "import sys, json; print(json.dumps([sys.executable, sys.prefix, sys.base_prefix]))"))
    assert facts == ["/env/bin/python", "/env", f"/opt/python{version.rsplit('.', 1)[0]}"]
    mods = "ssl, sqlite3, ctypes, zlib, bz2, lzma, readline, uuid, decimal, dbm.gnu, curses, venv"
    assert inside(image, "python", "-c", f"import {mods}; print(ssl.OPENSSL_VERSION)").startswith("OpenSSL ")
    release = inside(image, "sh", "-c", ". /etc/os-release; echo $VERSION_ID").strip()
    assert release == {"ubuntu22": "22.04", "ubuntu24": "24.04"}[os_id]
    locked = locked_versions(test_tree / paths.LOCKFILES / f"{runtime}.txt")
    assert dict(line.lower().split("==") for line in inside(image, "pip", "freeze", "--all").split()) == locked
    assert inside(image, "id", "-u").strip() == "1000"
    # every locked runtime package is installed at its locked version
    debs = tree_lock(test_tree)["os_packages"][os_id]["runtime"]
    query = inside(image, "dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *[d["name"] for d in debs])
    assert dict(line.split() for line in query.splitlines()) == {d["name"]: d["version"] for d in debs}
    FACTS[f"layers of {runtime} ({version})"] = "\n" + layers(image["tag"])


def test_build_reports_id_and_digest(image: dict) -> None:
    out = image["stdout"]
    assert f"built {image['tag']}" in out
    assert "image id: " in out and "digest:   sha256:" in out
    assert "step 1/" in image["stderr"]  # progress was shown
    print(f"\nbuild time of the test image: {image['seconds']:.0f}s")


def test_pip_is_the_locked_one_in_env(image: dict, test_tree: Path) -> None:
    locked = locked_versions(test_tree / paths.LOCKFILES / f"{RUNTIME}.txt")
    assert inside(image, "pip", "--version").startswith(f"pip {locked['pip']} from /env/")


def test_runs_as_non_root_with_port_8080(image: dict) -> None:
    assert inside(image, "id", "-u").strip() == "1000"
    assert inside(image, "sh", "-c", "echo $PORT").strip() == "8080"
    assert inside(image, "sh", "-c", "test -w /env && test -w /app && echo writable").strip() == "writable"


def test_no_apt_lists_caches_or_logs(image: dict) -> None:
    out = inside(image, "sh", "-c", "ls -A /var/lib/apt/lists /var/cache/apt /var/log/apt 2>/dev/null; ls /var/log")
    assert "Packages" not in out and ".bin" not in out and "dpkg.log" not in out and "history.log" not in out


def test_image_snapshot(image: dict, snapshot) -> None:
    """Config, interpreter facts, /env's packages, top-level paths: nothing volatile."""
    data = json.loads(podman("image", "inspect", image["tag"]).stdout)[0]
    cfg = data["Config"]
    labels = {k: v for k, v in cfg.get("Labels", {}).items() if not k.startswith("io.buildah")}
    facts = inside(
        image,
        "python",
        "-c",
        "import sys, sysconfig, ssl; print(sys.version_info[:3], sys.implementation.name, sysconfig.get_config_var('Py_ENABLE_SHARED'),"
        " sysconfig.get_config_var('prefix'))",
    )
    top = inside(image, "sh", "-c", "ls -1A / | sort")
    # pins a refresh moves are checked against the lock here, and kept out of the snapshot
    locked_base = schedule.load(image["tree"] / paths.SCHEDULE).runtimes[RUNTIME].base.digest
    assert labels.pop("org.opencontainers.image.base.digest") == locked_base
    for fmt, key in sbom.LABEL.items():  # the SBOMs' sha256, which move with the lock (test_sbom_image.py checks them)
        assert len(labels.pop(key)) == 64, fmt
    frozen = inside(image, "pip", "freeze", "--all").split()
    locked = locked_versions(image["tree"] / paths.LOCKFILES / f"{RUNTIME}.txt")
    assert {line.split("==")[0].lower(): line.split("==")[1] for line in frozen} == locked
    assert {
        "Cmd": cfg.get("Cmd"),
        "Env": sorted(cfg.get("Env", [])),
        "ExposedPorts": cfg.get("ExposedPorts"),
        "Labels": labels,
        "User": cfg.get("User"),
        "WorkingDir": cfg.get("WorkingDir"),
        "created": data.get("Created"),
        "interpreter": facts.strip(),
        "pip_freeze": sorted(line.split("==")[0].lower() for line in frozen),
        "top_level_paths": top.split(),
    } == snapshot


def test_config_matches_the_generated_data(image: dict, test_tree: Path) -> None:
    """Dockerfile path and Nix path share one config: the built image carries exactly it."""
    want = json.loads((test_tree / paths.RUNTIMES_JSON).read_text())["runtimes"][RUNTIME]["config"]
    cfg = json.loads(podman("image", "inspect", image["tag"]).stdout)[0]["Config"]
    assert sorted(cfg["Env"]) == want["Env"]
    assert cfg["Cmd"] == want["Cmd"] and cfg["User"] == want["User"] and cfg["WorkingDir"] == want["WorkingDir"]
    assert {k: v for k, v in cfg["Labels"].items() if k in want["Labels"]} == want["Labels"]
    assert set(cfg["ExposedPorts"]) == set(want["ExposedPorts"])


def test_wrong_sha256_fails_with_both_hashes(test_tree: Path, roots: dict[str, str], python_mirror: str, tmp_path: Path) -> None:
    """A tarball that is not the pinned one is refused on the host, before the build starts."""
    bad = tmp_path / "bad"
    shutil.copytree(test_tree, bad)
    wrong = "deadbeef" * 8
    edit(bad / paths.SCHEDULE_LOCK, f'"sha256": "{TARBALL_SHA256}"', f'"sha256": "{wrong}"')
    gen(bad, "generate")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = build(bad, RUNTIME, roots["ubuntu22"], python_mirror, "localhost/flex-test/python311:bad", env=env)
    assert proc.returncode == 1
    assert "checksum mismatch" in proc.stderr and "step 1/" not in proc.stderr
    assert f"expected {wrong}" in proc.stderr and f"actual {TARBALL_SHA256}" in proc.stderr
    assert podman("image", "exists", "localhost/flex-test/python311:bad", check=False).returncode != 0


def test_tampered_lock_fails_the_build(image: dict, test_tree: Path, roots: dict[str, str], python_mirror: str, tmp_path: Path) -> None:
    """A lock whose hash does not match the file pip is given stops the build (--require-hashes)."""
    bad = tmp_path / "tampered"
    shutil.copytree(test_tree, bad)
    wheels = json.loads((bad / paths.LOCKFILES / f"{RUNTIME}.wheels.json").read_text())
    wheel = next(w for w in wheels if w["name"] == "wheel")
    lock = bad / paths.LOCKFILES / f"{RUNTIME}.txt"
    edit(lock, wheel["sha256"], "f" * 64)
    gen(bad, "generate")
    proc = build(bad, RUNTIME, roots["ubuntu22"], python_mirror, "localhost/flex-test/python311:tampered")  # the interpreter's layers cached
    assert proc.returncode == 1
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in proc.stderr or "hash" in proc.stderr.lower()


@pytest.fixture(scope="session")
def app_wheels(current) -> Path:
    """Flask + gunicorn and their dependencies for each Python built, fetched once on the host (hash-recorded by pip)."""
    wheels = CACHE / "app-wheels"
    for minor in sorted({v.rsplit(".", 1)[0] for _runtime, (v, _tgz, _xz) in current.values()}):
        stamp = wheels / f".done-{minor}"
        if not stamp.exists():
            run(
                str(ROOT / ".venv" / "bin" / "python"), "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", minor,
                "-d", str(wheels), *FLASK_APP_WHEELS,
            )  # fmt: skip
            stamp.touch()
    return wheels


@pytest.fixture(scope="session")
def flask_images(images, build_images, current, app_wheels: Path, tmp_path_factory):
    """os id → the Flask sample built FROM that OS's python311 runtime image, in its build image (built once each)."""
    built: dict[str, str] = {}

    def get_image(os_id: str) -> str:
        if os_id not in built:
            runtime = current[os_id][0]
            app = tmp_path_factory.mktemp(f"flask-{os_id}")
            built[os_id] = flask_image(images(runtime), build_images(runtime), app_wheels, app, os_id)
        return built[os_id]

    return get_image


def flask_image(image: dict, build: dict, app_wheels: Path, app: Path, os_id: str) -> str:
    """The Flask sample, Dockerfile written by `generator app`, built FROM the runtime image (network off)."""
    shutil.copytree(ROOT / "tests" / "apps" / "flask", app, dirs_exist_ok=True)
    digest = json.loads(podman("image", "inspect", image["tag"]).stdout)[0]["Digest"]
    ref = f"{image['tag'].rsplit(':', 1)[0]}@{digest}"
    build_digest = json.loads(podman("image", "inspect", build["tag"]).stdout)[0]["Digest"]
    build_ref = f"{build['tag'].rsplit(':', 1)[0]}@{build_digest}"  # pinned by digest alone: named as given
    proc = run(
        str(ROOT / ".venv" / "bin" / "python"), "-m", "generator", "app", str(app), "--runtime-image", ref, "--build-image", build_ref,
        "--gunicorn-config", cwd=ROOT,
    )  # fmt: skip
    (app / "pip.conf").write_text("[global]\nno-index = true\nfind-links = /wheels\n")
    tag = f"localhost/flex-test/flask-{os_id}:latest"
    podman(
        "build", "--network=none", "-v", f"{app_wheels}:/wheels:ro,Z", "-v", f"{app / 'pip.conf'}:/etc/pip.conf:ro,Z", "-t", tag, str(app)
    )  # fmt: skip
    assert "FROM " + ref in (app / "Dockerfile").read_text(), proc.stdout
    return tag


@pytest.mark.parametrize("os_id", ["ubuntu22", "ubuntu24"])
def test_flask_app_serves_on_8080(flask_images, os_id: str) -> None:
    port = free_port()
    with container(flask_images(os_id), port):
        status, body = get(f"http://127.0.0.1:{port}/")
    assert status == 200
    assert body["port"] == "8080" and body["service"] == "web"
    assert body["greeting"] == "hello from $GAE_SERVICE"
    print(f"\n{os_id}: HTTP {status} on 8080: {body}")


def test_flask_app_serves_on_a_port_given_at_run_time(flask_images) -> None:
    port = free_port()
    with container(flask_images("ubuntu22"), port, "-e", f"PORT={port}"):
        status, body = get(f"http://127.0.0.1:{port}/")
        https = get(f"http://127.0.0.1:{port}/", headers={"X-Forwarded-Proto": "https"})
    assert status == 200 and body["port"] == str(port) and body["scheme"] == "http"
    assert https[0] == 200 and https[1]["scheme"] == "https"  # the recommended gunicorn config trusts the proxy
    print(f"\nHTTP {status} on {port}: {body}; with X-Forwarded-Proto: https -> {https[1]}")


def test_lock_inside_the_runtime_image(image: dict, app_wheels: Path) -> None:
    """pip-compile run by the runtime's own interpreter (3.11.2), offline, against the served wheels."""
    tools = CACHE / "pip-tools-wheels"
    if not list(tools.glob("pip_tools-*.whl")):
        run(str(ROOT / ".venv" / "bin" / "python"), "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", "3.11",
            "-d", str(tools), "pip-tools")  # fmt: skip
    script = (
        "set -e; python -m venv /tmp/pt && /tmp/pt/bin/pip install -q --no-index --find-links /tools pip-tools"
        " && printf 'gunicorn\\n' > /tmp/in.txt"
        " && /tmp/pt/bin/pip-compile -q --no-index --find-links /wheels --generate-hashes --no-header -o /tmp/out.txt /tmp/in.txt"
        " && cat /tmp/out.txt"
    )
    out = podman(
        "run", "--rm", "--network=none", "-v", f"{app_wheels}:/wheels:ro,Z", "-v", f"{tools}:/tools:ro,Z", image["tag"], "sh", "-c", script
    ).stdout  # fmt: skip
    assert "gunicorn==23.0.0" in out and "--hash=sha256:" in out


# --- the legacy python2 runtime on Ubuntu 16.04 ----------------------------------------------------

WSGI = (
    "import json, sys, os\n"
    "from wsgiref.simple_server import make_server\n"
    "def app(environ, start):\n"
    "    start('200 OK', [('Content-Type', 'application/json')])\n"
    "    return [json.dumps({'python': sys.version.split()[0], 'prefix': sys.prefix, 'port': os.environ['PORT']}).encode()]\n"
    "make_server('0.0.0.0', int(os.environ['PORT']), app).serve_forever()\n"
)


def test_legacy_python2_on_xenial(legacy_image: dict, test_tree: Path, legacy_python: tuple[str, str]) -> None:
    image = legacy_image
    assert inside(image, "sh", "-c", ". /etc/os-release; echo $VERSION_ID").strip() == "16.04"
    assert inside(image, "python", "-c", "import platform; print(platform.python_version())").strip() == legacy_python[0]
    facts = inside(image, "python", "-c", "import sys, virtualenv, setuptools, sqlite3, zlib, bz2, ctypes, ssl; print(sys.prefix)")
    assert facts.strip() == "/env"
    locked = locked_versions(test_tree / paths.LOCKFILES / "python2.txt")
    # scandir (an sdist) built in the builder, every other file a wheel
    assert dict(line.lower().split("==") for line in inside(image, "pip", "freeze", "--all").split()) == locked
    assert inside(image, "id", "-u").strip() == "1000"
    port = free_port()
    with container(image["tag"], port, cmd=("python", "-c", WSGI)):
        status, body = get(f"http://127.0.0.1:{port}/")
    assert status == 200 and body == {"python": legacy_python[0], "prefix": "/env", "port": "8080"}
    FACTS[f"layers of python2 ({legacy_python[0]})"] = "\n" + layers(image["tag"])


def test_legacy_python2_maxunicode_is_wide(legacy_image: dict) -> None:
    """A wide (UCS-4) build, as Ubuntu's python2.7: one code point beyond the BMP is one character."""
    out = inside(legacy_image, "python", "-c", "import sys; print(sys.maxunicode); print(len(u'\\U0001F600'))")
    assert out.split() == ["1114111", "1"]


CP27MU_WHEEL = ("MarkupSafe", "1.1.1", "MarkupSafe-1.1.1-cp27-cp27mu-manylinux1_x86_64.whl")


@pytest.fixture(scope="session")
def cp27mu_wheel(tmp_path_factory) -> tuple[Path, str]:
    """A cp27mu manylinux1 wheel with a C extension, fetched on the host with the sha256 PyPI's simple index lists."""
    name, _version, filename = CP27MU_WHEEL
    listed = {f.filename: f for f in locking.Index(locking.DEFAULT_INDEX).files(name)}[filename]
    assert listed.sha256, f"PyPI lists no sha256 for {filename}"
    wheels = tmp_path_factory.mktemp("cp27mu")
    fetch_verified(listed.url, listed.sha256, wheels / filename)
    wheels.chmod(0o755)  # read by the app user (1000) in the container
    (wheels / filename).chmod(0o644)
    return wheels, listed.sha256


def test_legacy_python2_installs_a_cp27mu_wheel_offline(legacy_image: dict, cp27mu_wheel: tuple[Path, str]) -> None:
    """pip in /env takes the cp27mu wheel (a narrow build finds no matching distribution), hash-locked and
    with the network off, and its C extension loads from its .so."""
    name, version, filename = CP27MU_WHEEL
    wheels, sha256 = cp27mu_wheel
    (wheels / "requirements.txt").write_text(f"{name}=={version} \\\n    --hash=sha256:{sha256}\n")
    (wheels / "requirements.txt").chmod(0o644)
    script = (
        "set -e; pip install --no-index --find-links /wheels --require-hashes --no-cache-dir --disable-pip-version-check"
        " -r /wheels/requirements.txt"
        " && python -c 'import markupsafe, markupsafe._speedups as s; print(s.__file__); print(type(markupsafe.escape).__name__)'"
    )
    proc = podman("run", "--rm", "--network=none", "-v", f"{wheels}:/wheels:ro,Z", legacy_image["tag"], "sh", "-c", script, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"/wheels/{filename}" in proc.stdout, proc.stdout  # pip's "Processing …": the wheel, not a build
    speedups, escape = proc.stdout.strip().splitlines()[-2:]
    assert speedups.startswith("/env/lib/python2.7/site-packages/markupsafe/_speedups") and speedups.endswith(".so"), speedups
    assert escape == "builtin_function_or_method"  # markupsafe.escape is the C one


# --- bytecode: compiled in the build, used (never rewritten) by the app user ---------------------

STARTUP_IMPORTS = "json, ssl, email.parser, http.server, decimal, asyncio, logging.handlers, urllib.request"

# Every .py under the trees given, by what its bytecode is (Python 2.7 and 3.x): "flags N" (the pyc's
# PEP 552 flags: 1 unchecked hash, 3 checked hash), "timestamp" (before 3.7), "not valid Python"
# (no pyc: the interpreter cannot compile it), or "MISSING path"; and "TEST path" for a pyc in a
# test directory.
PYC_CHECK = r"""
import os, struct, sys
try:
    from importlib.util import cache_from_source
except ImportError:
    cache_from_source = lambda path: path + "c"
TESTS = ("test", "tests", "idle_test")
seen = {}
for top in sys.argv[1:]:
    for d, dirs, files in os.walk(top):
        in_tests = any(part in TESTS for part in d.split(os.sep))
        for f in files:
            path = os.path.join(d, f)
            if in_tests and f.endswith(".pyc"):
                key = "TEST " + path
            elif in_tests or not f.endswith(".py"):
                continue
            elif os.path.exists(cache_from_source(path)):
                with open(cache_from_source(path), "rb") as fh:
                    flags = struct.unpack("<I", fh.read(8)[4:])[0]
                key = "flags %d" % flags if sys.version_info >= (3, 7) else "timestamp"
            else:
                try:
                    compile(open(path, "rb").read(), path, "exec")
                    key = "MISSING " + path
                except SyntaxError:
                    key = "not valid Python"
            seen[top, key] = seen.get((top, key), 0) + 1
for (top, key), n in sorted(seen.items()):
    print("%s|%s|%d" % (top, key, n))
"""


def pyc_check(image: dict, *trees: str) -> dict[tuple[str, str], int]:
    out = inside(image, "python", "-c", PYC_CHECK, *trees)
    return {(top, key): int(n) for top, key, n in (line.split("|") for line in out.splitlines())}


def test_bytecode_for_every_module_hash_based(image: dict) -> None:
    """Every source of the standard library and /env has its pyc: unchecked-hash in the read-only prefix,
    checked-hash in /env (which the app user can change); none for tests."""
    counts = pyc_check(image, "/opt/python3.11/lib/python3.11", "/env/lib")
    assert set(counts) == {("/opt/python3.11/lib/python3.11", "flags 1"), ("/env/lib", "flags 3")}, counts
    assert counts["/opt/python3.11/lib/python3.11", "flags 1"] > 500 and counts["/env/lib", "flags 3"] > 100
    print(f"\npycs: {counts}")


def test_app_user_imports_from_bytecode_and_writes_none(image: dict) -> None:
    """As uid 1000 in a fresh container, each module of the import set (and what site imports) comes
    from a pyc: no source compiled, nothing stale, no attempt to write."""
    proc = podman("run", "--rm", "--network=none", image["tag"], "python", "-v", "-c", f"import {STARTUP_IMPORTS}")
    loaded = [line.removeprefix("# code object from ").strip("'") for line in proc.stderr.splitlines() if line.startswith("# code object from ")]
    assert len(loaded) > 80 and all(path.endswith(".pyc") for path in loaded), [p for p in loaded if not p.endswith(".pyc")]
    assert "stale" not in proc.stderr and "could not create" not in proc.stderr and "# created" not in proc.stderr
    # and no pyc newer than the container (its /etc/hostname) after a run that would have written them
    script = f"python -c 'import {STARTUP_IMPORTS}' && find /opt /env -name '*.pyc' -newer /etc/hostname"
    assert podman("run", "--rm", "--network=none", image["tag"], "sh", "-c", script).stdout == ""


def test_legacy_python2_imports_from_its_timestamp_bytecode(legacy_image: dict) -> None:
    """2.7 has only timestamp pycs: the build gave every source SOURCE_DATE_EPOCH as its mtime, the mtime
    the image gives every file, so uid 1000 imports from them: none stale, none compiled or written."""
    modules = "json, email.parser, decimal, logging.handlers, urllib2, BaseHTTPServer"
    proc = podman("run", "--rm", "--network=none", legacy_image["tag"], "python", "-v", "-c", f"import {modules}")
    precompiled = [line for line in proc.stderr.splitlines() if line.startswith("import ") and " # precompiled from " in line]
    from_source = [line for line in proc.stderr.splitlines() if line.startswith("import ") and line.endswith(".py")]
    assert len(precompiled) > 50 and from_source == [], from_source
    assert "bad mtime" not in proc.stderr and "can't create" not in proc.stderr and "# wrote " not in proc.stderr
    counts = pyc_check(legacy_image, "/opt/python2.7/lib/python2.7", "/env/lib")  # the modules, not bin/'s scripts
    # every source has its pyc, but a package's Python 3 module (importlib_resources' _py3.py), as pip leaves it
    assert set(counts) == {("/opt/python2.7/lib/python2.7", "timestamp"), ("/env/lib", "timestamp"), ("/env/lib", "not valid Python")}, counts
    assert counts["/env/lib", "not valid Python"] < 5
