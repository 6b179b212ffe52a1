"""`app`: an app directory becomes a custom-runtime Dockerfile on the pinned runtime image."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT

APPS = Path(__file__).parent / "apps"
# What a user passes with --runtime-image: any well-formed digest; the generator copies it, never invents one.
DIGEST = "@sha256:" + "0123456789abcdef" * 4
PINNED = "ghcr.io/appengine-flex-python/runtimes/python311-ubuntu22:3.11.15" + DIGEST
RUNTIME = {  # sample app → the runtime its app.yaml selects
    "django": "python314-ubuntu24:3.14.6",
    "flask": "python311-ubuntu22:3.11.15",
    "hashed": "python314-ubuntu24:3.14.6",
    "legacy3": "python36:3.6.10",
    "localwheel": "python313-ubuntu22:3.13.14",
    "plain": "python313-ubuntu24:3.13.14",
    "uwsgi": "python312-ubuntu22:3.12.13",
}


def generate(cli, app_dir: Path, out: Path, *extra: str):
    image = f"ghcr.io/appengine-flex-python/runtimes/{RUNTIME.get(app_dir.name, RUNTIME['flask'])}{DIGEST}"
    return cli("app", str(app_dir), "--out", str(out), "--runtime-image", image, "--date", "2026-11-23", *extra)


@pytest.mark.parametrize("name", sorted(p.name for p in APPS.iterdir() if p.is_dir()))
def test_sample_app_snapshot(cli, tmp_path: Path, name: str, snapshot) -> None:
    result = generate(cli, APPS / name, tmp_path, "--gunicorn-config")
    assert result.exit_code == 0, result.stderr
    files = {p.name: p.read_text() for p in sorted(tmp_path.iterdir())}
    assert files == snapshot
    assert not (APPS / name / "Dockerfile").exists()  # --out leaves the app alone
    assert "is not named after runtime" not in result.stderr


def test_mismatched_runtime_image_warns(cli, tmp_path: Path) -> None:
    result = cli("app", str(APPS / "plain"), "--out", str(tmp_path), "--runtime-image", PINNED)
    assert result.exit_code == 0
    assert "is not named after runtime python313-ubuntu24" in result.stderr


def test_flask_dockerfile_parts(cli, tmp_path: Path) -> None:
    result = generate(cli, APPS / "flask", tmp_path, "--gunicorn-config")
    text = (tmp_path / "Dockerfile").read_text()
    assert f"FROM {PINNED}\n" in text
    assert "runtime python311-ubuntu22" in result.stdout
    # dependencies are installed before the app is copied (layer caching)
    assert text.index("COPY --chown=1000:1000 requirements.txt") < text.index("RUN pip install") < text.index("COPY --chown=1000:1000 . /app")
    assert "--require-hashes" not in text
    assert 'GAE_SERVICE="web"' in text and 'PORT="8080"' in text
    assert 'GREETING="hello from \\$GAE_SERVICE"' in text  # no build-time expansion of app values
    assert 'CMD ["/bin/sh", "-c", "exec gunicorn -c gunicorn.conf.py -b :$PORT main:app"]' in text
    conf = (tmp_path / "gunicorn.conf.py").read_text()
    assert "workers = multiprocessing.cpu_count() * 2 + 1" in conf
    assert 'forwarded_allow_ips = "*"' in conf and 'secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}' in conf


def test_local_paths_install_after_the_copy(cli, tmp_path: Path) -> None:
    """The original generator's bug #244: local wheels only exist once the app is copied."""
    assert generate(cli, APPS / "localwheel", tmp_path).exit_code == 0
    text = (tmp_path / "Dockerfile").read_text()
    assert text.index("COPY --chown=1000:1000 . /app") < text.index("RUN pip install")
    assert "COPY --chown=1000:1000 requirements.txt" not in text


@pytest.mark.parametrize("line", ["-e .", "-e ./lib", "file:///src/pkg", "pkg @ file:///src/pkg", "../shared/x.tar.gz", "--editable=./lib"])
def test_every_local_reference_is_detected(cli, tmp_path: Path, line: str) -> None:
    app = tmp_path / "app"
    shutil.copytree(APPS / "flask", app)
    (app / "requirements.txt").write_text(f"gunicorn==23.0.0\n{line}\n")
    assert generate(cli, app, tmp_path / "out").exit_code == 0
    text = (tmp_path / "out" / "Dockerfile").read_text()
    assert text.index("COPY --chown=1000:1000 . /app") < text.index("RUN pip install")


def test_hashed_requirements_are_required(cli, tmp_path: Path) -> None:
    assert generate(cli, APPS / "hashed", tmp_path).exit_code == 0
    assert "pip install --no-cache-dir --disable-pip-version-check --require-hashes -r /app/requirements.txt" in (tmp_path / "Dockerfile").read_text()


def test_no_requirements_no_pip(cli, tmp_path: Path) -> None:
    assert generate(cli, APPS / "plain", tmp_path).exit_code == 0
    text = (tmp_path / "Dockerfile").read_text()
    assert "pip install" not in text
    assert 'CMD ["/bin/sh", "-c", "exec python main.py"]' in text


def test_warns_when_server_not_declared(cli, tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(APPS / "flask", app)
    (app / "requirements.txt").write_text("Flask==3.0.3\n")
    result = generate(cli, app, tmp_path / "out")
    assert result.exit_code == 0
    assert "warning:" in result.stderr and "runs gunicorn but requirements.txt does not declare it" in result.stderr
    (app / "app.yaml").write_text((APPS / "uwsgi" / "app.yaml").read_text())
    result = generate(cli, app, tmp_path / "out")
    assert "runs uwsgi but requirements.txt does not declare it" in result.stderr
    declared = generate(cli, APPS / "flask", tmp_path / "out2")
    assert "warning" not in declared.stderr


def test_existing_gunicorn_conf_is_kept(cli, tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(APPS / "flask", app)
    (app / "gunicorn.conf.py").write_text("workers = 3\n")
    assert cli("app", str(app), "--runtime-image", PINNED, "--gunicorn-config").exit_code == 0
    assert (app / "gunicorn.conf.py").read_text() == "workers = 3\n"
    assert "exec gunicorn -c gunicorn.conf.py -b :$PORT main:app" in (app / "Dockerfile").read_text()


def test_config_option_and_env_var(cli, tmp_path: Path, monkeypatch) -> None:
    app = tmp_path / "app"
    shutil.copytree(APPS / "flask", app)
    (app / "app.yaml").rename(app / "prod.yaml")
    assert cli("app", str(app), "--runtime-image", PINNED).exit_code == 2  # no app.yaml
    assert cli("app", str(app), "--runtime-image", PINNED, "--config", str(app / "prod.yaml")).exit_code == 0
    (app / "Dockerfile").unlink()
    monkeypatch.setenv("GAE_APPLICATION_YAML_PATH", "prod.yaml")
    assert cli("app", str(app), "--runtime-image", PINNED).exit_code == 0
    assert (app / "Dockerfile").exists()


BAD = [
    ("no entrypoint", "runtime: python\nenv: flex\n", "entrypoint: is missing"),
    ("bad runtime_config", "runtime: python\nenv: flex\nentrypoint: python main.py\nruntime_config:\n  operating_system: ubuntu20\n", "ubuntu20"),
    ("not python", "runtime: go\nenv: flex\nentrypoint: ./server\n", "valid choices: python"),
    ("newline in entrypoint", 'runtime: python\nenv: flex\nentrypoint: "gunicorn main:app\\nUSER root"\n', "control character"),
    ("bad env name", "runtime: python\nenv: flex\nentrypoint: python main.py\nenv_variables:\n  BAD-NAME: x\n", "not a valid variable name"),
    ("env value newline", 'runtime: python\nenv: flex\nentrypoint: python main.py\nenv_variables:\n  A: "x\\ny"\n', "control character"),
    ("bad service", "runtime: python\nenv: flex\nentrypoint: python main.py\nservice: My_Service\n", "not a valid service name"),
    ("syntax error", "runtime: python\nenv: [flex\n", "YAML syntax error"),
]


@pytest.mark.parametrize(("name", "text", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_bad_app_yaml_writes_nothing(cli, tmp_path: Path, name: str, text: str, fragment: str) -> None:
    app = tmp_path / "app"
    shutil.copytree(APPS / "flask", app)
    assert cli("app", str(app), "--runtime-image", PINNED).exit_code == 0
    before = {p.name: p.read_bytes() for p in app.iterdir()}
    (app / "app.yaml").write_text(text)
    result = cli("app", str(app), "--runtime-image", PINNED, "--gunicorn-config")
    assert result.exit_code == 2
    assert fragment in result.stderr
    after = {p.name: p.read_bytes() for p in app.iterdir()}
    assert after == {**before, "app.yaml": text.encode()}  # the old Dockerfile is intact, nothing added


def test_foreign_dockerfile_needs_force(cli, tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(APPS / "flask", app)
    (app / "Dockerfile").write_text("FROM python:3.12\n")
    result = cli("app", str(app), "--runtime-image", PINNED)
    assert result.exit_code == 2 and "--force" in result.stderr
    assert (app / "Dockerfile").read_text() == "FROM python:3.12\n"
    assert cli("app", str(app), "--runtime-image", PINNED, "--force").exit_code == 0
    assert (app / "Dockerfile").read_text().startswith("# syntax=docker/dockerfile:1\n# Generated by `python -m generator app`")


def test_unpinned_image_without_registry_is_refused(cli, tmp_path: Path) -> None:
    """Never a FROM by tag alone: if the digest cannot be asked for, nothing is written."""
    app = tmp_path / "app"
    shutil.copytree(APPS / "flask", app)
    result = cli("app", str(app), "--runtime-image", "127.0.0.1:9/none/python:3.11")
    assert result.exit_code == 2
    assert "cannot pin the runtime image by digest" in result.stderr
    assert not (app / "Dockerfile").exists()


def test_generated_dockerfiles_are_hadolint_clean(cli, tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint") or str(ROOT / ".venv" / "bin" / "hadolint")
    for name in ("flask", "localwheel", "plain", "hashed"):
        assert generate(cli, APPS / name, tmp_path / name).exit_code == 0
        proc = subprocess.run([hadolint, "--no-color", str(tmp_path / name / "Dockerfile")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
