"""Real images: CPython 3.11.2 built from its checksummed tarball on a real Debian 12 base, with podman.

No registry or python.org is reachable here, so the base is made with mmdebstrap and imported, and
the tarball comes from Debian's source package (byte-identical to python.org's) served on
127.0.0.1. The runtime is the schedule's python311-ubuntu22 with its interpreter pinned to 3.11.2
by its real sha256; everything else is the generated Dockerfile as users get it.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from generator import pins, schedule
from generator.locking import parse_lock

from .conftest import ROOT, edit
from .image_fixtures import (  # noqa: F401 (shared helpers; test_refresh imports free_port and serve from here)
    BASE,
    CACHE,
    RUNTIME,
    TARBALL_SHA256,
    build,
    container,
    free_port,
    gen,
    get,
    pin_release,
    podman,
    run,
    serve,
)

pytestmark = [pytest.mark.image, pytest.mark.usefixtures("need_podman")]

FLASK_APP_WHEELS = ["Flask==3.0.3", "gunicorn==23.0.0"]


def locked_versions(lock: Path) -> dict[str, str]:
    """name → version of a hash-locked file, read by the lock module's own parser."""
    return {name: version for name, (version, _) in parse_lock(lock.read_text()).items()}


def inside(image: dict, *cmd: str, env: tuple[str, ...] = ()) -> str:
    args = [a for e in env for a in ("-e", e)]
    return podman("run", "--rm", "--network=none", *args, image["tag"], *cmd).stdout


def test_build_reports_id_and_digest(image: dict) -> None:
    out = image["stdout"]
    assert "built localhost/flex-test/python311:a" in out
    assert "image id: " in out and "digest:   sha256:" in out
    assert "step 1/" in image["stderr"]  # progress was shown
    print(f"\nbuild time of the test image: {image['seconds']:.0f}s")


def test_interpreter_is_the_pinned_release(image: dict) -> None:
    assert inside(image, "python", "--version").strip() == "Python 3.11.2"
    facts = json.loads(inside(image, "/env/bin/python", "-c", "import sys, json; print(json.dumps([sys.executable, sys.prefix, sys.base_prefix]))"))
    assert facts == ["/env/bin/python", "/env", "/opt/python3.11"]


def test_stdlib_modules_import(image: dict) -> None:
    modules = "ssl, sqlite3, ctypes, zlib, bz2, lzma, readline, uuid, decimal, venv"
    out = inside(image, "python", "-c", f"import {modules}; print(ssl.OPENSSL_VERSION)")
    assert out.startswith("OpenSSL ")


def test_tools_are_the_locked_versions(image: dict, test_tree: Path) -> None:
    locked = locked_versions(test_tree / "lockfiles" / f"{RUNTIME}.txt")
    freeze = inside(image, "pip", "freeze", "--all")
    frozen = dict(line.lower().split("==") for line in freeze.split())
    assert frozen == locked
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
    paths = inside(image, "sh", "-c", "ls -1A / | sort")
    # pins a refresh moves are checked against the lock here, and kept out of the snapshot
    locked_base = schedule.load(image["tree"] / "schedule.yaml").runtimes[RUNTIME].base.digest
    assert labels.pop("org.opencontainers.image.base.digest") == locked_base
    frozen = inside(image, "pip", "freeze", "--all").split()
    locked = locked_versions(image["tree"] / "lockfiles" / f"{RUNTIME}.txt")
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
        "top_level_paths": paths.split(),
    } == snapshot


def test_config_matches_the_generated_data(image: dict, test_tree: Path) -> None:
    """Dockerfile path and Nix path share one config: the built image carries exactly it."""
    want = json.loads((test_tree / "lockfiles" / "runtimes.json").read_text())["runtimes"][RUNTIME]["config"]
    cfg = json.loads(podman("image", "inspect", image["tag"]).stdout)[0]["Config"]
    assert sorted(cfg["Env"]) == want["Env"]
    assert cfg["Cmd"] == want["Cmd"] and cfg["User"] == want["User"] and cfg["WorkingDir"] == want["WorkingDir"]
    assert {k: v for k, v in cfg["Labels"].items() if k in want["Labels"]} == want["Labels"]
    assert set(cfg["ExposedPorts"]) == set(want["ExposedPorts"])


def test_wrong_sha256_fails_with_both_hashes(test_tree: Path, debian_base: str, python_mirror: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(test_tree, bad)
    wrong = "deadbeef" * 8
    edit(bad / pins.LOCK, f'"sha256": "{TARBALL_SHA256}"', f'"sha256": "{wrong}"')
    gen(bad, "generate")
    proc = build(bad, debian_base, python_mirror, "localhost/flex-test/python311:bad", check=False)
    assert proc.returncode == 1
    assert "checksum mismatch" in proc.stderr
    assert f"expected: {wrong}" in proc.stderr and f"actual:   {TARBALL_SHA256}" in proc.stderr
    assert podman("image", "exists", "localhost/flex-test/python311:bad", check=False).returncode != 0


def test_tampered_lock_fails_the_build(test_tree: Path, debian_base: str, python_mirror: str, tmp_path: Path) -> None:
    """A lock whose hash does not match the file pip is given stops the build (--require-hashes)."""
    bad = tmp_path / "tampered"
    shutil.copytree(test_tree, bad)
    wheels = json.loads((bad / "lockfiles" / f"{RUNTIME}.wheels.json").read_text())
    wheel = next(w for w in wheels if w["name"] == "wheel")
    lock = bad / "lockfiles" / f"{RUNTIME}.txt"
    edit(lock, wheel["sha256"], "f" * 64)
    gen(bad, "generate")
    proc = build(bad, debian_base, python_mirror, "localhost/flex-test/python311:tampered", check=False)
    assert proc.returncode == 1
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in proc.stderr or "hash" in proc.stderr.lower()


def test_two_clean_builds_give_the_same_digest(image: dict, test_tree: Path, debian_base: str, python_mirror: str) -> None:
    second = build(test_tree, debian_base, python_mirror, "localhost/flex-test/python311:b", "--no-cache", check=False)
    assert second.returncode == 0, second.stderr
    a = json.loads(podman("image", "inspect", image["tag"]).stdout)[0]
    b = json.loads(podman("image", "inspect", "localhost/flex-test/python311:b").stdout)[0]
    layers_a, layers_b = a["RootFS"]["Layers"], b["RootFS"]["Layers"]
    differing = [i for i, (x, y) in enumerate(zip(layers_a, layers_b)) if x != y]
    assert differing == [], f"layers {differing} differ (diff ids {[layers_a[i] for i in differing]} vs {[layers_b[i] for i in differing]})"
    assert a["Id"] == b["Id"], "same layers but a different config"


@pytest.fixture(scope="session")
def app_wheels() -> Path:
    """Flask + gunicorn and their dependencies for Python 3.11, fetched once on the host (hash-recorded by pip)."""
    wheels = CACHE / "app-wheels"
    if not list(wheels.glob("gunicorn-*.whl")):
        run(
            str(ROOT / ".venv" / "bin" / "python"), "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", "3.11",
            "-d", str(wheels), *FLASK_APP_WHEELS,
        )  # fmt: skip
    return wheels


@pytest.fixture(scope="session")
def flask_image(image: dict, app_wheels: Path, tmp_path_factory) -> str:
    """The Flask sample, Dockerfile written by `generator app`, built FROM the runtime image."""
    app = tmp_path_factory.mktemp("flask")
    shutil.copytree(ROOT / "tests" / "apps" / "flask", app, dirs_exist_ok=True)
    digest = json.loads(podman("image", "inspect", image["tag"]).stdout)[0]["Digest"]
    ref = f"{image['tag'].rsplit(':', 1)[0]}@{digest}"
    proc = run(
        str(ROOT / ".venv" / "bin" / "python"), "-m", "generator", "app", str(app), "--runtime-image", ref, "--gunicorn-config", cwd=ROOT,
    )  # fmt: skip
    (app / "pip.conf").write_text("[global]\nno-index = true\nfind-links = /wheels\n")
    tag = "localhost/flex-test/flask-app:latest"
    podman(
        "build", "--network=none", "-v", f"{app_wheels}:/wheels:ro,Z", "-v", f"{app / 'pip.conf'}:/etc/pip.conf:ro,Z", "-t", tag, str(app)
    )  # fmt: skip
    assert "FROM " + ref in (app / "Dockerfile").read_text(), proc.stdout
    return tag


def test_flask_app_serves_on_8080(flask_image: str) -> None:
    port = free_port()
    with container(flask_image, port):
        status, body = get(f"http://127.0.0.1:{port}/")
    assert status == 200
    assert body["port"] == "8080" and body["service"] == "web"
    assert body["greeting"] == "hello from $GAE_SERVICE"
    print(f"\nHTTP {status} on 8080: {body}")


def test_flask_app_serves_on_a_port_given_at_run_time(flask_image: str) -> None:
    port = free_port()
    with container(flask_image, port, "-e", f"PORT={port}"):
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


# --- the legacy path: Python 2, virtualenv, an sdist in the lock ---------------------------------

PY27_SHA256 = "da3080e3b488f648a3d7a4560ddee895284c3380b11d6de75edb986526b9a814"  # Python-2.7.18.tgz
PY27_ORIG = "http://deb.debian.org/debian/pool/main/p/python2.7/python2.7_2.7.18.orig.tar.gz"


@pytest.fixture(scope="session")
def legacy_image(tmp_path_factory, debian_base: str) -> dict:
    """python2 built the way ubuntu16's legacy runtimes are, with 2.7.18 (Debian bullseye's source
    package ships python.org's tarball unchanged) in place of 2.7.12, which no reachable archive has."""
    mirror = CACHE / "mirror"
    tgz = mirror / "2.7.18" / "Python-2.7.18.tgz"
    if not tgz.exists():
        tgz.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(PY27_ORIG, timeout=120) as resp:
            tgz.with_suffix(".partial").write_bytes(resp.read())
        os.replace(tgz.with_suffix(".partial"), tgz)
    assert run("sha256sum", str(tgz)).stdout.split()[0] == PY27_SHA256
    tree = tmp_path_factory.mktemp("legacy")
    for name in ("schedule.yaml", "README.md", "flake.nix", "flake.lock"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "lockfiles", tree / "lockfiles")
    pin_release(tree, "2.7.18", PY27_SHA256, "Debian bullseye's python2.7_2.7.18.orig.tar.gz, python.org's 2.7.18", runtime="python2")
    gen(tree, "generate")
    tag = "localhost/flex-test/python2:a"
    with serve(mirror) as url:
        proc = gen(tree, "build", "python2", "--base-image", debian_base, "--python-mirror", url, "--no-optimize", "--tag", tag, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"tag": tag, "tree": tree}


def test_legacy_python2_image(legacy_image: dict) -> None:
    assert inside(legacy_image, "python", "-c", "import platform; print(platform.python_version())").strip() == "2.7.18"
    facts = inside(legacy_image, "python", "-c", "import sys, virtualenv, setuptools, sqlite3, zlib, bz2, ctypes; print(sys.prefix)")
    assert facts.strip() == "/env"
    locked = locked_versions(legacy_image["tree"] / "lockfiles" / "python2.txt")
    frozen = dict(line.lower().split("==") for line in inside(legacy_image, "pip", "freeze", "--all").split())
    assert frozen == locked  # scandir (an sdist) built in the builder, every other file a wheel
    assert inside(legacy_image, "id", "-u").strip() == "1000"


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
