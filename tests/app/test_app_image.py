"""Sample apps built by `generator app` on the session's runtime image, started, asked over HTTP.

The runtime image is the one the session's fixtures build for test_image.py (CPython 3.11.2 on
Debian 12); every app is generated with `--runtime-image containers-storage:…` (its digest read
from podman's storage) and built with the network off:
pip in a container cannot pass the TLS-intercepting proxy here, so the wheels come from the host,
either fetched by `--hermetic` (hash-checked) or vendored in the app (`--find-links ./wheels`) or
from a mounted wheel directory (pip.conf), the three ways an app builds behind such a proxy.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.image_fixtures import CACHE, RUNTIME, container, get, podman, run
from tests.servers import free_port

pytestmark = [pytest.mark.image, pytest.mark.usefixtures("need_podman")]

APPS = ROOT / "tests" / "apps"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
RESULTS = CACHE / "app-image-results.json"


def host_wheels(name: str, *specs: str) -> Path:
    """Wheels for CPython 3.11 on Linux x86_64, downloaded once on the host (where the proxy's CA is trusted)."""
    dest = CACHE / "app-image-wheels" / name
    stamp = dest / ".complete"
    if not stamp.exists():
        run(PYTHON, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", "3.11",
            "--platform", "manylinux2014_x86_64", "-d", str(dest), *specs)  # fmt: skip
        stamp.write_text(" ".join(specs))
    return dest


def generate(app: str, ctx: Path, runtime: str, *extra: str) -> str:
    proc = run(PYTHON, "-m", "generator", "app", str(APPS / app), "--out", str(ctx), "--runtime-image", runtime, *extra, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return (ctx / "Dockerfile").read_text()


def build_and_record(app: str, ctx: Path, *volumes: str) -> str:
    tag = f"localhost/flex-test/app-{app}:latest"
    start = time.monotonic()
    proc = podman("build", "--network=none", "--no-cache", *volumes, "-t", tag, str(ctx), check=False)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[app] = {"build_seconds": round(seconds, 1), "image_bytes": size}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True))
    print(f"\n{app}: built in {seconds:.1f}s (network off), image {size / 1e6:.1f} MB")
    return tag


def serves(tag: str, app: str, path: str = "/") -> dict:
    """Run with the platform's variables on a port chosen at run time; the app must answer on $PORT."""
    port = free_port()
    env = ["-e", f"PORT={port}", "-e", "GAE_VERSION=test", "-e", "GAE_INSTANCE=test-1", "-e", "GOOGLE_CLOUD_PROJECT=flex-test"]
    with container(tag, port, *env) as name:
        try:
            status, body = get(f"http://127.0.0.1:{port}{path}", wait=60)
        except OSError:
            print(podman("logs", name, check=False).stdout)
            raise
    assert status == 200
    assert body["app"] == app and body["port"] == str(port)
    print(f"HTTP {status} on $PORT={port}: {body}")
    return body


@pytest.fixture(scope="module")
def runtime(image: dict, build_images):
    """The session's runtime image and its build image under a name of this process (a shared tag can be
    moved by another build on the same machine), as a local reference (`app` finds the build image as
    NAME:TAG-build), and the FROM that reference must give."""
    image_id = re.search(r"^image id: (\S+)$", image["stdout"], re.M).group(1)
    build_id = re.search(r"^build image id: (\S+)$", build_images(RUNTIME)["stdout"], re.M).group(1)
    name = f"localhost/flex-test/app-runtime-{os.getpid()}"
    podman("tag", image_id, f"{name}:session")
    podman("tag", build_id, f"{name}:session-build")
    digest = json.loads(podman("image", "inspect", f"{name}:session").stdout)[0]["Digest"]
    yield {"ref": f"containers-storage:{name}:session", "from": f"FROM {name}@{digest}\n"}
    podman("untag", image_id, f"{name}:session", check=False)
    podman("untag", build_id, f"{name}:session-build", check=False)


def test_flask_via_gunicorn(runtime: dict, tmp_path: Path) -> None:
    """`entrypoint: exec gunicorn …` with --out and --gunicorn-config; wheels from a mounted mirror directory."""
    ctx = tmp_path / "ctx"
    text = generate("exec-entrypoint", ctx, runtime["ref"], "--gunicorn-config")
    assert runtime["from"] in text and "exec exec" not in text
    wheels = host_wheels("flask", "Flask==3.0.3", "gunicorn==23.0.0")
    (tmp_path / "pip.conf").write_text("[global]\nno-index = true\nfind-links = /wheels\n")
    tag = build_and_record("exec-entrypoint", ctx, "-v", f"{wheels}:/wheels:ro,Z", "-v", f"{tmp_path / 'pip.conf'}:/etc/pip.conf:ro,Z")
    body = serves(tag, "exec-entrypoint")
    assert body["service"] == "default"


def test_django_hermetic(runtime: dict, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    text = generate("django-hashed", ctx, runtime["ref"], "--hermetic")
    assert "--no-index --find-links=/tmp/.flex-wheels --require-hashes" in text
    tag = build_and_record("django-hashed", ctx)
    assert serves(tag, "django-hashed")["service"] == "admin"


def test_plain_python_main(runtime: dict, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    text = generate("plain-311", ctx, runtime["ref"])
    assert "pip install" not in text
    tag = build_and_record("plain-311", ctx)
    serves(tag, "plain-311")


def test_nested_requirements_and_local_package(runtime: dict, tmp_path: Path) -> None:
    """-r requirements/base.txt → -r web.txt, -c constraints.txt, --find-links ./wheels, libs/greeting (a local package)."""
    ctx = tmp_path / "ctx"
    generate("nested-local", ctx, runtime["ref"], "--gunicorn-config")
    wheels = host_wheels("nested", "Flask==3.0.3", "gunicorn==23.0.0", "setuptools>=61")
    for wheel in wheels.glob("*.whl"):
        os.link(wheel, ctx / "wheels" / wheel.name)
    tag = build_and_record("nested-local", ctx)
    assert serves(tag, "nested-local")["greeting"] == "hello from a local package"


def test_fastapi_uvicorn_workers_hermetic(runtime: dict, tmp_path: Path) -> None:
    """Hash-locked by lock-app, fetched by --hermetic on the host, installed with the network off."""
    ctx = tmp_path / "ctx"
    text = generate("fastapi-uvicorn", ctx, runtime["ref"], "--hermetic")
    assert "RUN --mount=type=bind,source=.flex-wheels" in text
    fetched = sorted(p.name for p in (ctx / ".flex-wheels").iterdir())
    assert any(n.startswith("pydantic_core-") and "cp311" in n and "manylinux" in n for n in fetched), fetched
    tag = build_and_record("fastapi-uvicorn", ctx)
    serves(tag, "fastapi-uvicorn")
