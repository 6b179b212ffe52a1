"""Apps with native dependencies, built as App Engine users build them: a build stage in the runtime's
build image (compilers, -dev packages), a final stage on the runtime image with only the libraries the
compiled extensions link to. Every build is hermetic (`lock-app`, then `app --hermetic`) and runs with
the network off, on the runtime images the session builds on real Ubuntu roots.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from generator.core import paths
from generator.locking import Index
from tests import ubuntu
from tests.conftest import ROOT
from tests.image_fixtures import FACTS, container, get, podman, run
from tests.servers import free_port

pytestmark = [pytest.mark.image, pytest.mark.usefixtures("need_podman")]

APPS = ROOT / "tests" / "apps"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
PYPI = "https://pypi.org/simple"


def gen(*args: str, check: bool = True):
    proc = run(PYTHON, "-m", "generator", *args, check=False, cwd=ROOT)
    assert "Traceback" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def local_pair(runtime: dict, build: dict, name: str) -> str:
    """The session's runtime and build images under one name of this process, as `app` finds them
    (NAME:TAG and NAME:TAG-build in podman's storage); returns --runtime-image's value."""
    ref = f"localhost/flex-test/{name}-{os.getpid()}:session"
    podman("tag", runtime["tag"], ref)
    podman("tag", build["tag"], f"{ref}-build")
    return f"containers-storage:{ref}"


def app_copy(src: str, dest: Path, app_yaml_edits: dict[str, str] | None = None) -> Path:
    shutil.copytree(APPS / src, dest)
    for old, new in (app_yaml_edits or {}).items():
        text = (dest / "app.yaml").read_text()
        assert old in text
        (dest / "app.yaml").write_text(text.replace(old, new))
    return dest


def build_app(ctx: Path, tag: str) -> tuple[float, int, str]:
    """Build with no layer cache: the log must show the compile and the time must be a real build's, even on a
    machine whose storage holds an earlier run's layers."""
    import time

    start = time.monotonic()
    proc = podman("build", "--no-cache", "--network=none", "-t", tag, str(ctx), check=False)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    return seconds, size, proc.stdout + proc.stderr


def packages(tag: str) -> set[str]:
    out = podman("run", "--rm", "--network=none", "--entrypoint", "dpkg-query", tag, "-W", "-f", "${Package}\\n").stdout
    return set(out.split())


def no_compiler(tag: str) -> None:
    proc = podman("run", "--rm", "--network=none", tag, "sh", "-c", "command -v gcc cc make", check=False)
    assert proc.returncode != 0 and not proc.stdout.strip(), proc.stdout
    print(f"{tag}: `command -v gcc cc make` finds nothing (exit {proc.returncode})")


def serves_uwsgi(tag: str) -> dict:
    port = free_port()
    env = ["-e", f"PORT={port}", "-e", "GAE_VERSION=test", "-e", "GAE_INSTANCE=test-1"]
    with container(tag, port, *env) as name:
        try:
            status, body = get(f"http://127.0.0.1:{port}/", wait=90)
        except OSError:
            print(podman("logs", name, check=False).stdout)
            raise
    assert status == 200 and body["app"] == "uwsgi" and body["port"] == str(port), body
    print(f"HTTP {status} through uwsgi on $PORT={port}: {body}")
    return body


def test_uwsgi_example_on_22_04(image: dict, build_images, tmp_path: Path) -> None:
    """The runtime documentation's uWSGI entrypoint, uwsgi from its sdist, compiled in the build stage."""
    b = build_images("python311-ubuntu22")
    app = app_copy("uwsgi", tmp_path / "app", {"runtime_version: 3.12": 'runtime_version: "3.11"'})
    gen("lock-app", str(app))
    pins = (app / "requirements.txt").read_text()
    assert re.search(r"^uwsgi==2\.0\.28 \\$", pins, re.M) and "--hash=sha256:" in pins
    ref = local_pair(image, b, "uwsgi")
    ctx = tmp_path / "ctx"
    gen("app", str(app), "--out", str(ctx), "--hermetic", "--runtime-image", ref)
    fetched = sorted(p.name for p in (ctx / ".flex-wheels").iterdir())
    assert "uwsgi-2.0.28.tar.gz" in fetched, fetched  # no wheel on PyPI: built from source
    text = (ctx / "Dockerfile").read_text()
    assert " AS build\n" in text and text.count("\nFROM ") + text.startswith("FROM ") == 2
    seconds, size, log = build_app(ctx, "localhost/flex-test/app-uwsgi:latest")
    assert "Building wheel for uwsgi" in log or "Running setup.py install for uwsgi" in log, log[-3000:]
    runtime_size = int(podman("image", "inspect", "--format", "{{.Size}}", image["tag"]).stdout.strip())
    FACTS["app uwsgi (22.04)"] = f"built in {seconds:.0f}s, {size / 1e6:.1f} MB (runtime image {runtime_size / 1e6:.1f} MB)"
    no_compiler("localhost/flex-test/app-uwsgi:latest")
    serves_uwsgi("localhost/flex-test/app-uwsgi:latest")


def test_uwsgi_example_on_python2(legacy_image: dict, build_images, tmp_path: Path) -> None:
    """The same example on the legacy python2 runtime (Ubuntu 16.04): Flask 1.1 and uwsgi built from source with
    xenial's compiler. The pins are written with their hashes read from PyPI (no Python 2.7 here to run pip-compile)."""
    b = build_images("python2")
    app = tmp_path / "app"
    shutil.copytree(APPS / "uwsgi", app)
    (app / "app.yaml").write_text(
        "runtime: python\nenv: flex\nentrypoint: uwsgi --http :$PORT --wsgi-file main.py --callable app\nruntime_config:\n  python_version: 2\n"
    )
    pins = {
        "click": "7.1.2",
        "flask": "1.1.4",
        "itsdangerous": "1.1.0",
        "jinja2": "2.11.3",
        "markupsafe": "1.1.1",
        "uwsgi": "2.0.28",
        "werkzeug": "1.0.1",
    }
    index = Index(PYPI)
    lines = []
    for name, version in sorted(pins.items()):
        files = [f for f in index.files(name) if re.search(rf"-{re.escape(version)}(?:[-.](?:tar\.gz|zip)$|-)", f.filename)]
        assert files and all(f.sha256 for f in files), (name, version)
        lines.append(f"{name}=={version} \\\n" + " \\\n".join(f"    --hash=sha256:{f.sha256}" for f in files))
    (app / "requirements.txt").write_text("\n".join(lines) + "\n")
    ref = local_pair(legacy_image, b, "python2")
    ctx = tmp_path / "ctx"
    gen("app", str(app), "--out", str(ctx), "--hermetic", "--runtime-image", ref)
    fetched = sorted(p.name for p in (ctx / ".flex-wheels").iterdir())
    assert "uwsgi-2.0.28.tar.gz" in fetched, fetched
    assert any("cp27mu-manylinux1_x86_64" in n for n in fetched if n.startswith("MarkupSafe")), fetched  # the wide build's wheels
    seconds, size, _ = build_app(ctx, "localhost/flex-test/app-uwsgi-py2:latest")
    FACTS["app uwsgi (python2, 16.04)"] = f"built in {seconds:.0f}s, {size / 1e6:.1f} MB"
    no_compiler("localhost/flex-test/app-uwsgi-py2:latest")
    serves_uwsgi("localhost/flex-test/app-uwsgi-py2:latest")


def test_native_libraries_build_and_import(image: dict, build_images, tmp_path: Path) -> None:
    """uwsgi, psycopg2, mysqlclient, pylibmc, python-ldap, lxml (from source), crcmod, netifaces, pyodbc and
    python-magic (libmagic1 as a per-app OS package): each imports in the final image with its C extension, and
    the final image holds exactly the OS packages they need, no more."""
    b = build_images("python311-ubuntu22")
    app = app_copy("native-libraries", tmp_path / "app")
    gen("lock-app", str(app), "--keyring", str(ubuntu.keyring()))  # Ubuntu's archive keyring, reached from Debian's (tests/ubuntu.py)
    ref = local_pair(image, b, "native")
    ctx = tmp_path / "ctx"
    gen("app", str(app), "--out", str(ctx), "--hermetic", "--runtime-image", ref)
    fetched = sorted(p.name for p in (ctx / ".flex-wheels").iterdir())
    assert any(n.startswith("lxml-") and n.endswith(".tar.gz") for n in fetched), fetched  # --no-binary lxml
    tag = "localhost/flex-test/app-native:latest"
    seconds, size, _ = build_app(ctx, tag)
    no_compiler(tag)
    proc = podman("run", "--rm", "--network=none", tag, "python", "main.py", check=False)
    print(proc.stdout[-4000:])
    summary = re.search(r"^native libraries: (\d+) of (\d+) build and import$", proc.stdout, re.M)
    assert summary, proc.stdout + proc.stderr
    report = json.loads(proc.stdout[: summary.start()])
    assert proc.returncode == 0, {k: v for k, v in report["results"].items() if not v["ok"]}

    # exactly what the compiled files link to, and what apt-packages.txt asks for
    added = packages(tag) - packages(image["tag"])
    lock = json.loads((app / "apt-packages.lock.json").read_text())
    app_debs = {d["name"] for d in lock["debs"]}
    listed = podman("run", "--rm", "--network=none", tag, "cat", "/usr/share/flex-python/app-packages.txt").stdout.split()
    assert app_debs <= set(listed), (listed, app_debs)
    assert added == set(listed), (sorted(added), listed)  # exactly what the build listed, nothing else
    assert {"libpq5", "libmysqlclient21", "libodbc2", "libxslt1.1", "libmagic1"} <= added, sorted(added)  # what ldd and the app asked for
    # the app's SBOM: the runtime's, plus each added .deb with the sha256 a lock pins for it, plus what pip installed
    tree = image["tree"]
    out = gen(
        "--schedule", str(tree / paths.SCHEDULE), "sbom", "python311-ubuntu22", "--app-image", tag, "--app", str(app), "--format", "cyclonedx-json"
    )
    components = {c["name"]: c for c in json.loads(out.stdout)["components"]}
    pinned = {d["name"]: d["sha256"] for d in json.loads((tree / paths.SCHEDULE_LOCK).read_text())["os_packages"]["ubuntu22"]["devel"]}
    pinned.update({d["name"]: d["sha256"] for d in lock["debs"]})
    for name in added:
        assert [h["content"] for h in components[name]["hashes"]] == [pinned[name]], name
    assert {"psycopg2", "lxml", "mysqlclient", "uWSGI", "pyodbc", "python-ldap"} <= set(components), sorted(components)
    runtime_size = int(podman("image", "inspect", "--format", "{{.Size}}", image["tag"]).stdout.strip())
    print(f"native libraries: {summary.group(1)} of {summary.group(2)} build and import")
    print(f"app image {size / 1e6:.1f} MB, runtime image {runtime_size / 1e6:.1f} MB, build image {b['bytes'] / 1e6:.1f} MB; built in {seconds:.0f}s")
    print(f"OS packages added to the runtime image ({len(added)}): {' '.join(sorted(added))}")
    FACTS["native libraries"] = (
        f"{summary.group(1)} of {summary.group(2)} build and import; app image {size / 1e6:.1f} MB vs runtime image "
        f"{runtime_size / 1e6:.1f} MB; {len(added)} OS packages added: {' '.join(sorted(added))}; built in {seconds:.0f}s"
    )
