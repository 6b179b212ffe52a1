"""`app`: an app directory becomes a custom-runtime Dockerfile on the pinned runtime image."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

APPS = Path(__file__).resolve().parents[1] / "apps"
# An app with OS packages needs its apt-packages.lock.json, made for the runtime image's packages of the day
# (lock-app): none is committed, so a refresh that moves them cannot make one stale. The image tests lock it.
SAMPLES = sorted(p.name for p in APPS.iterdir() if p.is_dir() and not (p / "apt-packages.txt").exists())
# What a user passes with --runtime-image: any well-formed digest; the generator copies it, never invents one.
DIGEST = "@sha256:" + "0123456789abcdef" * 4
PINNED = "ghcr.io/appengine-flex-python/runtimes/python311-ubuntu22:3.11.15" + DIGEST
BUILD_PINNED = "ghcr.io/appengine-flex-python/runtimes/python311-ubuntu22:3.11.15-build@sha256:" + "fedcba9876543210" * 4
IMAGES = ("--runtime-image", PINNED, "--build-image", BUILD_PINNED)  # the final stage's FROM and the build stage's
DAY = "2026-11-23"


def runtime_of(cli, app_dir: Path) -> str:
    result = cli("resolve", str(app_dir / "app.yaml"), "--json", "--date", DAY)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["runtime_id"]


def generate(cli, app_dir: Path, out: Path, *extra: str):
    image = f"ghcr.io/appengine-flex-python/runtimes/{runtime_of(cli, app_dir)}:1{DIGEST}"
    build = f"ghcr.io/appengine-flex-python/runtimes/{runtime_of(cli, app_dir)}:1-build{BUILD_PINNED[-72:]}"
    return cli("app", str(app_dir), "--out", str(out), "--runtime-image", image, "--build-image", build, "--date", DAY, *extra)


def copy_app(tmp_path: Path, name: str = "flask") -> Path:
    app = tmp_path / "app"
    shutil.copytree(APPS / name, app)
    return app


def dockerfile(out: Path) -> str:
    return (out / "Dockerfile").read_text()


# --- the corpus: every sample through resolve and app, snapshotted ----------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_app_snapshot(cli, tmp_path: Path, name: str, snapshot) -> None:
    resolved = cli("resolve", str(APPS / name / "app.yaml"), "--json", "--date", DAY)
    assert resolved.exit_code == 0, resolved.stderr
    result = generate(cli, APPS / name, tmp_path, "--gunicorn-config")
    assert result.exit_code == 0, result.stderr
    generated = {"Dockerfile", ".dockerignore", "gunicorn.conf.py"}
    files = {p.name: p.read_text() for p in sorted(tmp_path.iterdir()) if p.name in generated}
    warnings = [line.replace(str(APPS), "<apps>") for line in result.stderr.splitlines()]
    assert {"resolve": json.loads(resolved.stdout), "files": files, "warnings": warnings} == snapshot
    assert not (APPS / name / "Dockerfile").exists()  # --out leaves the app alone
    assert "exec exec" not in files["Dockerfile"] and "Traceback" not in result.stderr


def test_os_packages_without_their_lock_are_refused(cli, tmp_path: Path) -> None:
    """apt-packages.txt names packages, but no lock says which .debs: `app` refuses, naming the file and the fix."""
    result = generate(cli, APPS / "native-libraries", tmp_path)
    assert result.exit_code == 2, result.stderr
    assert "apt-packages.lock.json: not locked yet" in result.stderr and "lock-app" in result.stderr
    assert not (tmp_path / "Dockerfile").exists()


def test_corpus_is_large_enough() -> None:
    assert len(SAMPLES) >= 30


# --- entrypoint --------------------------------------------------------------------------------


def test_exec_entrypoint_is_not_doubled(cli, tmp_path: Path) -> None:
    """gcloud and gen_dockerfile.py add `exec ` only when the entrypoint does not start with it."""
    assert generate(cli, APPS / "exec-entrypoint", tmp_path).exit_code == 0
    assert 'CMD ["/bin/sh", "-c", "exec gunicorn -b :$PORT main:app"]' in dockerfile(tmp_path)
    assert generate(cli, APPS / "flask", tmp_path / "f").exit_code == 0
    assert 'CMD ["/bin/sh", "-c", "exec gunicorn -b :$PORT main:app"]' in dockerfile(tmp_path / "f")


def test_exec_entrypoint_with_gunicorn_config(cli, tmp_path: Path) -> None:
    assert generate(cli, APPS / "exec-entrypoint", tmp_path, "--gunicorn-config").exit_code == 0
    assert '"exec gunicorn -c gunicorn.conf.py -b :$PORT main:app"' in dockerfile(tmp_path)


def test_folded_entrypoint_is_accepted(cli, tmp_path: Path) -> None:
    assert cli("resolve", str(APPS / "folded-entrypoint" / "app.yaml")).exit_code == 0
    assert generate(cli, APPS / "folded-entrypoint", tmp_path).exit_code == 0
    assert '"exec gunicorn -b :$PORT --workers 2 main:app"]' in dockerfile(tmp_path)


def test_literal_multiline_entrypoint_is_refused(cli, tmp_path: Path) -> None:
    app = copy_app(tmp_path)
    (app / "app.yaml").write_text("runtime: python\nenv: flex\nentrypoint: |\n  gunicorn main:app\n  USER root\n")
    result = cli("app", str(app), *IMAGES)
    assert result.exit_code == 2 and "app.yaml:3: entrypoint: holds the control character '\\n'" in result.stderr


# --- app.yaml settings gcloud accepts -----------------------------------------------------------


def test_env_2_means_flexible(cli, tmp_path: Path) -> None:
    assert cli("resolve", str(APPS / "env-two" / "app.yaml")).exit_code == 0
    assert generate(cli, APPS / "env-two", tmp_path).exit_code == 0
    app = copy_app(tmp_path)
    (app / "app.yaml").write_text("runtime: python\nenv: 3\nentrypoint: python main.py\n")
    result = cli("resolve", str(app / "app.yaml"))
    assert result.exit_code == 2 and "valid choices: flex, flexible, 2" in result.stderr
    (app / "app.yaml").write_text('runtime: python\nenv: "2"\nentrypoint: python main.py\n')
    assert cli("resolve", str(app / "app.yaml")).exit_code == 0


def test_module_is_the_old_name_of_service(cli, tmp_path: Path) -> None:
    assert generate(cli, APPS / "module-name", tmp_path).exit_code == 0
    assert 'ENV GAE_SERVICE="backend"' in dockerfile(tmp_path)
    app = copy_app(tmp_path)
    (app / "app.yaml").write_text((app / "app.yaml").read_text() + "module: other\n")
    result = cli("app", str(app), *IMAGES)
    assert result.exit_code == 2 and "module: and service: are the same setting" in result.stderr


def test_includes_bring_their_env_variables(cli, tmp_path: Path) -> None:
    assert generate(cli, APPS / "includes", tmp_path).exit_code == 0
    text = dockerfile(tmp_path)
    # gcloud's appinfo_includes: depth first, a later value wins, and included values win over app.yaml's
    for line in ('ENV LEVEL="nested"', 'ENV FROM_INCLUDE="yes"', 'ENV SHARED="1"', 'ENV NESTED="true"'):
        assert line in text


def test_missing_include_names_the_line(cli, tmp_path: Path) -> None:
    app = copy_app(tmp_path, "includes")
    (app / "env.yaml").unlink()
    result = cli("app", str(app), *IMAGES)
    assert result.exit_code == 2 and "app.yaml:8: includes[0]: 'env.yaml': no such file beside app.yaml or in the app directory" in result.stderr


def test_env_variables_keep_their_written_text(cli, tmp_path: Path) -> None:
    result = generate(cli, APPS / "env-types", tmp_path)
    assert result.exit_code == 0, result.stderr
    text = dockerfile(tmp_path)
    for line in ('DEBUG="false"', 'WORKERS="4"', 'PY="3.10"', 'MODE="010"', 'RATIO="1e3"', 'EMPTY=""', 'DOLLAR="\\$HOME"'):
        assert f"ENV {line}\n" in text
    assert "ENV HOSTS=\"['a.example.com', 'b.example.com']\"" in text
    assert "env_variables.HOSTS is a list" in result.stderr


@pytest.mark.parametrize(("value", "fragment"), [("{a: 1}", "a dict cannot be"), ("", "has no value"), ("[[1]]", "a list cannot be")])
def test_env_values_that_cannot_be_text(cli, tmp_path: Path, value: str, fragment: str) -> None:
    app = copy_app(tmp_path)
    (app / "app.yaml").write_text(f"runtime: python\nenv: flex\nentrypoint: python main.py\nenv_variables:\n  X: {value}\n")
    result = cli("app", str(app), *IMAGES)
    assert result.exit_code == 2 and f"app.yaml:5: env_variables.X: {fragment}" in result.stderr


# --- requirements files ---------------------------------------------------------------------------


def test_nested_requirements_and_local_packages_are_copied_first(cli, tmp_path: Path) -> None:
    assert generate(cli, APPS / "nested-local", tmp_path).exit_code == 0
    text = dockerfile(tmp_path)
    copies = [line.split()[2] for line in text.splitlines() if line.startswith("COPY") and " . /app" not in line and "--from=" not in line]
    assert copies == ["requirements.txt", "wheels", "constraints.txt", "requirements/base.txt", "requirements/web.txt", "libs/greeting"]
    last_dependency = text.index("COPY --chown=1000:1000 libs/greeting /app/libs/greeting")
    assert last_dependency < text.index("rc=0; pip install") < text.index("COPY --chown=1000:1000 . /app")


@pytest.mark.parametrize(
    ("line", "copied"),
    [
        ("-r requirements/prod.txt", "requirements/prod.txt"),
        ("--requirement=requirements/prod.txt", "requirements/prod.txt"),
        ("-rrequirements/prod.txt", "requirements/prod.txt"),
        ("-c requirements/prod.txt", "requirements/prod.txt"),
        ("--find-links ./wheels", "wheels"),
        ("-f wheels", "wheels"),
        ("libs/mypkg", "libs/mypkg"),
        ("./libs/mypkg[extra] ; python_version >= '3'", "libs/mypkg"),
        ("-e libs/mypkg", "libs/mypkg"),
        ("--editable=./libs/mypkg", "libs/mypkg"),
        ("file:///app/libs/mypkg", "libs/mypkg"),
        ("mypkg @ file:///app/libs/mypkg", "libs/mypkg"),
        ("./wheels/x-1.0-py3-none-any.whl", "wheels/x-1.0-py3-none-any.whl"),
    ],
)
def test_every_reference_is_copied_before_the_install(cli, tmp_path: Path, line: str, copied: str) -> None:
    app = copy_app(tmp_path)
    (app / "requirements").mkdir()
    (app / "requirements" / "prod.txt").write_text("gunicorn==23.0.0\n")
    (app / "libs" / "mypkg").mkdir(parents=True)
    (app / "wheels").mkdir()
    (app / "wheels" / "x-1.0-py3-none-any.whl").write_bytes(b"")
    (app / "requirements.txt").write_text(f"Flask==3.0.3\ngunicorn==23.0.0\n{line}\n")
    result = generate(cli, app, tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    text = dockerfile(tmp_path / "out")
    copy = text.index(f"COPY --chown=1000:1000 {copied} /app/{copied}\n")
    assert copy < text.index("rc=0; pip install") < text.index("COPY --chown=1000:1000 . /app")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("-r ../shared.txt", "requirements.txt:2: -r ../shared.txt points outside the app directory"),
        ("-c /etc/constraints.txt", "requirements.txt:2: -c /etc/constraints.txt points outside the app directory"),
        ("../shared/x.tar.gz", "requirements.txt:2: ../shared/x.tar.gz points outside the app directory"),
        ("-e ../lib", "requirements.txt:2: -e ../lib points outside the app directory"),
        ("file:///src/pkg", "requirements.txt:2: file:///src/pkg is an absolute path outside the app"),
        ("-r requirements/none.txt", "requirements.txt:2: -r requirements/none.txt: no such file in the app"),
        ("libs/none", "requirements.txt:2: libs/none: no such file or directory in the app"),
    ],
)
def test_references_outside_or_missing_are_refused(cli, tmp_path: Path, line: str, fragment: str) -> None:
    app = copy_app(tmp_path)
    (app / "requirements.txt").write_text(f"gunicorn==23.0.0\n{line}\n")
    result = cli("app", str(app), *IMAGES)
    assert result.exit_code == 2, result.stderr
    assert fragment in result.stderr
    assert not (app / "Dockerfile").exists()


def test_install_of_the_app_itself_follows_the_copy(cli, tmp_path: Path) -> None:
    assert generate(cli, APPS / "editable-dot", tmp_path).exit_code == 0
    text = dockerfile(tmp_path)
    build_stage = text.split("\nFROM ")[1]
    assert build_stage.index("COPY --chown=1000:1000 . /app") < build_stage.index("rc=0; pip install")
    assert build_stage.count("COPY") == 1


def test_utf16_requirements_from_powershell(cli, tmp_path: Path) -> None:
    result = generate(cli, APPS / "windows-utf16", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr  # gunicorn was read, so no false "not declared"


def test_utf8_bom_does_not_hide_the_first_requirement(cli, tmp_path: Path) -> None:
    result = generate(cli, APPS / "windows-bom-crlf", tmp_path)
    assert result.exit_code == 0 and "not declare" not in result.stderr


def test_latin1_with_coding_line_is_read(cli, tmp_path: Path) -> None:
    result = generate(cli, APPS / "latin1-coding", tmp_path)
    assert result.exit_code == 0 and "warning" not in result.stderr


def test_latin1_without_coding_line_is_a_clear_error(cli, tmp_path: Path) -> None:
    app = copy_app(tmp_path)
    (app / "requirements.txt").write_bytes("Flask==3.0.3\n# équipe\ngunicorn==23.0.0\n".encode("latin-1"))
    result = cli("app", str(app), *IMAGES)
    assert result.exit_code == 2
    assert "requirements.txt:2: byte 0xe9 is not utf-8" in result.stderr and "coding: latin-1" in result.stderr


def test_hashed_requirements_are_required(cli, tmp_path: Path) -> None:
    assert generate(cli, APPS / "hashed", tmp_path).exit_code == 0
    assert "pip install --no-cache-dir --disable-pip-version-check --require-hashes -r /app/requirements.txt" in dockerfile(tmp_path)


def test_hermetic_refuses_unhashed_requirements(cli, tmp_path: Path) -> None:
    result = cli("app", str(APPS / "nested-local"), "--out", str(tmp_path), *IMAGES, "--hermetic")
    assert result.exit_code == 2
    assert "--hermetic needs every requirement pinned with == and --hash" in result.stderr
    assert "requirements/base.txt:2: flask==3.0.3 has no --hash" in result.stderr
    assert "requirements.txt:6: libs/greeting is a local package" in result.stderr
    assert not (tmp_path / "Dockerfile").exists()


def test_no_requirements_no_pip(cli, tmp_path: Path) -> None:
    assert generate(cli, APPS / "plain", tmp_path).exit_code == 0
    text = dockerfile(tmp_path)
    assert "pip install" not in text
    assert 'CMD ["/bin/sh", "-c", "exec python main.py"]' in text


def test_warns_when_server_not_declared(cli, tmp_path: Path) -> None:
    app = copy_app(tmp_path)
    (app / "requirements.txt").write_text("Flask==3.0.3\n")
    result = generate(cli, app, tmp_path / "out")
    assert result.exit_code == 0
    assert "warning:" in result.stderr and "runs gunicorn but requirements.txt does not declare it" in result.stderr
    declared = generate(cli, APPS / "flask", tmp_path / "out2")
    assert "warning" not in declared.stderr


# --- what is written where -------------------------------------------------------------------------


def test_flask_dockerfile_parts(cli, tmp_path: Path) -> None:
    result = cli("app", str(APPS / "flask"), "--out", str(tmp_path), *IMAGES, "--gunicorn-config")
    text = dockerfile(tmp_path)
    assert text.startswith("# Generated by `python -m generator app`")  # no `# syntax=` line: BuildKit pulls nothing
    assert "syntax=" not in text
    assert f"FROM {PINNED.replace(':3.11.15@', '@')}\n" in text
    assert "runtime python311-ubuntu22" in result.stdout
    assert text.index("COPY --chown=1000:1000 requirements.txt") < text.index("rc=0; pip install") < text.index("COPY --chown=1000:1000 . /app")
    assert 'GAE_SERVICE="web"' in text and 'PORT="8080"' in text
    assert 'GREETING="hello from \\$GAE_SERVICE"' in text  # no build-time expansion of app values
    assert 'CMD ["/bin/sh", "-c", "exec gunicorn -c gunicorn.conf.py -b :$PORT main:app"]' in text
    conf = (tmp_path / "gunicorn.conf.py").read_text()
    assert "workers = multiprocessing.cpu_count() * 2 + 1" in conf


def test_out_is_a_whole_build_context(cli, tmp_path: Path) -> None:
    """--out with --gunicorn-config: the config the CMD names is inside the context, beside the app."""
    out = tmp_path / "ctx"
    assert cli("app", str(APPS / "flask"), "--out", str(out), *IMAGES, "--gunicorn-config").exit_code == 0
    assert {p.name for p in out.iterdir()} >= {"Dockerfile", ".dockerignore", "gunicorn.conf.py", "main.py", "requirements.txt", "app.yaml"}
    assert "gunicorn.conf.py" not in {p.name for p in (APPS / "flask").iterdir()}
    assert "!gunicorn.conf.py" in (out / ".dockerignore").read_text()


def test_out_inside_the_app_is_not_copied_into_itself(cli, tmp_path: Path) -> None:
    app = copy_app(tmp_path)
    assert cli("app", str(app), "--out", str(app / "build"), *IMAGES).exit_code == 0
    assert (app / "build" / "main.py").exists() and not (app / "build" / "build").exists()


def test_existing_dockerignore_is_kept(cli, tmp_path: Path) -> None:
    app = copy_app(tmp_path, "dockerignore-existing")
    own = (app / ".dockerignore").read_text()
    assert cli("app", str(app), *IMAGES).exit_code == 0
    merged = (app / ".dockerignore").read_text()
    assert merged.startswith(own)  # the app's own lines, first and unchanged
    assert "secrets/" in merged and "**/__pycache__" in merged
    assert merged.count(".git\n") == 1  # already there: not added twice
    assert cli("app", str(app), *IMAGES).exit_code == 0
    assert (app / ".dockerignore").read_text() == merged  # re-running changes nothing


def test_existing_gunicorn_conf_is_kept(cli, tmp_path: Path) -> None:
    app = copy_app(tmp_path)
    (app / "gunicorn.conf.py").write_text("workers = 3\n")
    assert cli("app", str(app), *IMAGES, "--gunicorn-config").exit_code == 0
    assert (app / "gunicorn.conf.py").read_text() == "workers = 3\n"
    assert "exec gunicorn -c gunicorn.conf.py -b :$PORT main:app" in dockerfile(app)


def test_config_option_and_env_var(cli, tmp_path: Path, monkeypatch) -> None:
    app = copy_app(tmp_path)
    (app / "app.yaml").rename(app / "prod.yaml")
    assert cli("app", str(app), *IMAGES).exit_code == 2  # no app.yaml
    assert cli("app", str(app), *IMAGES, "--config", str(app / "prod.yaml")).exit_code == 0
    (app / "Dockerfile").unlink()
    monkeypatch.setenv("GAE_APPLICATION_YAML_PATH", "prod.yaml")
    assert cli("app", str(app), *IMAGES).exit_code == 0
    assert (app / "Dockerfile").exists()


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("default", "app.yaml: file not found (the default: neither --config nor $GAE_APPLICATION_YAML_PATH names another file)"),
        ("env", "prod.yaml: file not found (named by $GAE_APPLICATION_YAML_PATH, relative to the app directory)"),
        ("env absolute", "prod.yaml: file not found (named by $GAE_APPLICATION_YAML_PATH)"),
        ("option", "prod.yaml: file not found (named by --config)"),
    ],
)
def test_app_and_lock_app_find_app_yaml_alike_and_say_how(cli, tmp_path: Path, monkeypatch, how: str, says: str) -> None:
    """--config, else $GAE_APPLICATION_YAML_PATH, else APP_DIR/app.yaml, for both commands; the error says which one chose the file."""
    app = copy_app(tmp_path)
    extra: list[str] = []
    if how == "default":
        (app / "app.yaml").unlink()
    elif how == "env":
        monkeypatch.setenv("GAE_APPLICATION_YAML_PATH", "prod.yaml")  # wins over app.yaml, which is there
    elif how == "env absolute":
        monkeypatch.setenv("GAE_APPLICATION_YAML_PATH", str(tmp_path / "prod.yaml"))
    else:
        monkeypatch.setenv("GAE_APPLICATION_YAML_PATH", "app.yaml")  # --config wins over it
        extra = ["--config", str(app / "prod.yaml")]
    for args in (("app", str(app), "--runtime-image", PINNED, *extra), ("lock-app", str(app), "--check", *extra)):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert says in result.stderr, (args, result.stderr)
    assert not (app / "Dockerfile").exists() and not (app / "requirements.in").exists()


BAD = [
    ("no entrypoint", "runtime: python\nenv: flex\n", "entrypoint: is missing"),
    ("exec alone", "runtime: python\nenv: flex\nentrypoint: exec\n", "`exec` alone runs nothing"),
    ("bad runtime_config", "runtime: python\nenv: flex\nentrypoint: python main.py\nruntime_config:\n  operating_system: ubuntu20\n", "ubuntu20"),
    ("not python", "runtime: go\nenv: flex\nentrypoint: ./server\n", "valid choices: python"),
    ("newline in entrypoint", 'runtime: python\nenv: flex\nentrypoint: "gunicorn main:app\\nUSER root"\n', "control character"),
    ("bad env name", "runtime: python\nenv: flex\nentrypoint: python main.py\nenv_variables:\n  BAD-NAME: x\n", "not a valid variable name"),
    ("env value newline", 'runtime: python\nenv: flex\nentrypoint: python main.py\nenv_variables:\n  A: "x\\ny"\n', "control character"),
    ("bad service", "runtime: python\nenv: flex\nentrypoint: python main.py\nservice: My_Service\n", "not a valid service name"),
    ("includes not a list", "runtime: python\nenv: flex\nentrypoint: python main.py\nincludes: env.yaml\n", "includes: must be a list"),
    ("syntax error", "runtime: python\nenv: [flex\n", "YAML syntax error"),
]


@pytest.mark.parametrize(("name", "text", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_bad_app_yaml_writes_nothing(cli, tmp_path: Path, name: str, text: str, fragment: str) -> None:
    app = copy_app(tmp_path)
    assert cli("app", str(app), *IMAGES).exit_code == 0
    before = {p.name: p.read_bytes() for p in app.iterdir()}
    (app / "app.yaml").write_text(text)
    result = cli("app", str(app), *IMAGES, "--gunicorn-config")
    assert result.exit_code == 2
    assert fragment in result.stderr
    after = {p.name: p.read_bytes() for p in app.iterdir()}
    assert after == {**before, "app.yaml": text.encode()}  # the old Dockerfile is intact, nothing added


def test_foreign_dockerfile_needs_force(cli, tmp_path: Path) -> None:
    app = copy_app(tmp_path)
    (app / "Dockerfile").write_text("FROM python:3.12\n")
    result = cli("app", str(app), *IMAGES)
    assert result.exit_code == 2 and "--force" in result.stderr
    assert (app / "Dockerfile").read_text() == "FROM python:3.12\n"
    assert cli("app", str(app), *IMAGES, "--force").exit_code == 0
    assert dockerfile(app).startswith("# Generated by `python -m generator app`")


# --- --runtime-image ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "ghcr.io/x/python311-ubuntu22:3.11\nRUN rm -rf /",
        "ghcr.io/x/python311-ubuntu22@sha256:",
        "@sha256:" + "0" * 64,
        "ghcr.io/x/python311-ubuntu22@sha256:" + "0" * 63,
        "ghcr.io/X/Upper:1" + DIGEST,
        "ghcr.io/x/python311 ubuntu22" + DIGEST,
        "ghcr.io/x/p:" + "t" * 129 + DIGEST,
        "",
    ],
)
def test_runtime_image_must_follow_the_reference_grammar(cli, tmp_path: Path, ref: str) -> None:
    app = copy_app(tmp_path)
    result = cli("app", str(app), "--runtime-image", ref)
    assert result.exit_code == 2, result.stdout
    assert "is not an image reference" in result.stderr or "the digest must be sha256:" in result.stderr
    assert not (app / "Dockerfile").exists()


@pytest.mark.parametrize(
    ("ref", "from_"),
    [
        (PINNED, PINNED.replace(":3.11.15@", "@")),
        ("python311-ubuntu22" + DIGEST, "python311-ubuntu22" + DIGEST),
        ("127.0.0.1:5000/rt/python311-ubuntu22:a" + DIGEST, "127.0.0.1:5000/rt/python311-ubuntu22" + DIGEST),
        ("[::1]:5000/python311-ubuntu22" + DIGEST, "[::1]:5000/python311-ubuntu22" + DIGEST),
    ],
)
def test_pinned_references_are_written_as_given(cli, tmp_path: Path, ref: str, from_: str) -> None:
    app = copy_app(tmp_path)
    result = cli("app", str(app), "--runtime-image", ref, "--build-image", ref)  # the build stage's reference, pinned the same way
    assert result.exit_code == 0, result.stderr
    assert f"\nFROM {from_}\n" in dockerfile(app)
    assert f"\nFROM {from_} AS build\n" in dockerfile(app)


def test_a_build_image_is_named_after_the_runtime_image(cli, tmp_path: Path) -> None:
    """Default: the runtime image's name, its tag + -build (as `build` tags it); one pinned by digest alone cannot be named."""
    app = copy_app(tmp_path)
    result = cli("app", str(app), "--runtime-image", "python311-ubuntu22" + DIGEST)
    assert result.exit_code == 2
    assert "pinned by digest alone" in result.stderr and "--build-image" in result.stderr
    assert not (app / "Dockerfile").exists()
    result = cli("app", str(app), "--runtime-image", "127.0.0.1:9/rt/python311-ubuntu22:a" + DIGEST)
    assert result.exit_code == 2
    assert "127.0.0.1:9/rt/python311-ubuntu22:a-build" in result.stderr  # asked of the registry, which is not there
    assert "Traceback" not in result.stderr


def test_unpinned_image_without_registry_is_refused(cli, tmp_path: Path) -> None:
    """Never a FROM by tag alone: if the digest cannot be asked for, nothing is written; the reason is one sentence."""
    app = copy_app(tmp_path)
    result = cli("app", str(app), "--runtime-image", "127.0.0.1:9/none/python:3.11")
    assert result.exit_code == 2
    assert "cannot pin the runtime image by digest" in result.stderr
    if shutil.which("skopeo"):
        assert "the registry refused the connection" in result.stderr
    assert "level=fatal" not in result.stderr and 'msg="' not in result.stderr
    assert not (app / "Dockerfile").exists()


@pytest.mark.image  # runs podman
@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
@pytest.mark.parametrize("ref", ["containers-storage:localhost/flex-test/absent:1", "localhost/flex-test/absent:1"])
def test_absent_local_image_is_a_clear_error(cli, tmp_path: Path, ref: str) -> None:
    """A local image's digest is read from podman's storage, never asked of a registry at localhost:443."""
    app = copy_app(tmp_path)
    result = cli("app", str(app), "--runtime-image", ref)
    assert result.exit_code == 2
    assert "no such image in podman's local storage" in result.stderr


def test_generated_dockerfiles_are_hadolint_clean(cli, tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint") or str(ROOT / ".venv" / "bin" / "hadolint")
    for name in ("flask", "localwheel", "plain", "hashed", "nested-local", "editable-dot", "monorepo"):
        assert generate(cli, APPS / name, tmp_path / name).exit_code == 0
        proc = subprocess.run([hadolint, "--no-color", str(tmp_path / name / "Dockerfile")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


# --- no input makes app, resolve or lock-app print a traceback ------------------------------------

APP_YAMLS = {
    "binary": b"\x00\x01\x02\xff\xfe",
    "utf-16 app.yaml": "runtime: python\nenv: flex\nentrypoint: python main.py\n".encode("utf-16"),
    "a list": b"- runtime: python\n",
    "python tag": b"runtime: !!python/object:os.system x\n",
    "entrypoint list": b"runtime: python\nenv: flex\nentrypoint: [gunicorn, main:app]\n",
    "runtime_config list": b"runtime: python\nenv: flex\nentrypoint: x\nruntime_config: [1]\n",
    "int keys": b"runtime: python\nenv: flex\nentrypoint: x\nenv_variables:\n  1: x\n",
    "service int": b"runtime: python\nenv: flex\nentrypoint: x\nservice: 5\n",
    "module list": b"runtime: python\nenv: flex\nentrypoint: x\nmodule: [a]\n",
    "include self": b"runtime: python\nenv: flex\nentrypoint: x\nincludes: [app.yaml]\n",
    "include dir": b"runtime: python\nenv: flex\nentrypoint: x\nincludes: [sub]\n",
    "include binary": b"runtime: python\nenv: flex\nentrypoint: x\nincludes: [main.py]\n",
    "include list of maps": b"runtime: python\nenv: flex\nentrypoint: x\nincludes: [{a: 1}]\n",
    "unbalanced quote": b"runtime: python\nenv: flex\nentrypoint: gunicorn 'main:app\n",
    "huge version": b"runtime: python\nenv: flex\nentrypoint: x\nruntime_config:\n  operating_system: ubuntu22\n  runtime_version: 1e999\n",
}
REQUIREMENTS = {
    "binary": b"\x00\xff\xfe\x00garbage",
    "utf-16 without bom": "Flask\n".encode("utf-16-le"),
    "bad bom": b"\xff\xfe\x00\xd8",
    "unknown coding": b"# coding: klingon\nFlask\n",
    "-r a directory": b"-r sub\n",
    "-r itself": b"-r requirements.txt\nFlask\n",
    "-r nothing": b"-r\n",
    "hash alone": b"--hash=sha256:00\n",
    "quote": b"Flask 'x\n",
    "nul": b"Fl\x00ask\n",
    "url": b"https://example.com/x.whl\n-e git+https://example.com/x.git#egg=x\n",
    "odd name": b"[extra]\n",
}


def _no_traceback(result) -> None:
    """The CLI runs in-process with catch_exceptions=False: an uncaught exception fails the test before this."""
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert "rror: " in result.stderr, result.stderr  # ours (error: …) or click's usage error (Error: …)


@pytest.mark.parametrize("key", sorted(APP_YAMLS))
def test_no_app_yaml_makes_a_traceback(cli, tmp_path: Path, key: str) -> None:
    app = copy_app(tmp_path)
    (app / "sub").mkdir()
    (app / "main.py").write_bytes(b"\xff\xfe\x00")
    (app / "app.yaml").write_bytes(APP_YAMLS[key])
    for args in (("resolve", str(app / "app.yaml")), ("app", str(app), *IMAGES), ("lock-app", str(app), "--check")):
        _no_traceback(cli(*args))


@pytest.mark.parametrize("key", sorted(REQUIREMENTS))
def test_no_requirements_file_makes_a_traceback(cli, tmp_path: Path, key: str) -> None:
    app = copy_app(tmp_path)
    (app / "sub").mkdir()
    (app / "requirements.txt").write_bytes(REQUIREMENTS[key])
    for args in (("app", str(app), *IMAGES), ("app", str(app), *IMAGES, "--hermetic")):
        _no_traceback(cli(*args))
    (app / "requirements.in").write_bytes(REQUIREMENTS[key])
    _no_traceback(cli("lock-app", str(app), "--check"))


LAYOUTS = ["app dir is a file", "app dir missing", "requirements.txt is a directory", "out is a file", "app.yaml is a directory"]


@pytest.mark.parametrize("case", LAYOUTS)
def test_no_layout_makes_a_traceback(cli, tmp_path: Path, case: str) -> None:
    app = copy_app(tmp_path)
    out = tmp_path / "out"
    if case == "app dir is a file":
        app = app / "main.py"
    elif case == "app dir missing":
        app = tmp_path / "none"
    elif case == "requirements.txt is a directory":
        (app / "requirements.txt").unlink()
        (app / "requirements.txt").mkdir()
    elif case == "out is a file":
        out.write_text("")
        out = out / "sub"
    else:
        (app / "app.yaml").unlink()
        (app / "app.yaml").mkdir()
    _no_traceback(cli("app", str(app), "--out", str(out), *IMAGES))
    _no_traceback(cli("resolve", str(app / "app.yaml")))
    _no_traceback(cli("lock-app", str(app), "--check"))


# --- --hermetic against a real index ------------------------------------------------------------


def test_hermetic_fetches_exactly_the_locked_files(cli, tmp_path: Path) -> None:
    """A PEP 503 index on 127.0.0.1 serving PyPI's files (taken once, hash-checked): each pin's file lands in the context."""
    import hashlib

    from generator import locking as lock
    from generator.core.http import fetch_verified
    from tests.servers import serve

    index = tmp_path / "index"
    pins = []
    pypi = lock.Index(lock.DEFAULT_INDEX)
    for name, filename in (("gunicorn", "gunicorn-23.0.0-py3-none-any.whl"), ("packaging", "packaging-26.3-py3-none-any.whl")):
        listed = {f.filename: f for f in pypi.files(name)}[filename]
        fetch_verified(listed.url, listed.sha256, index / "files" / filename)
        (index / "simple" / name).mkdir(parents=True)
        (index / "simple" / name / "index.html").write_text(f'<a href="../../files/{filename}#sha256={listed.sha256}">{filename}</a>\n')
        pins.append(f"{name}=={filename.split('-')[1]} \\\n    --hash=sha256:{listed.sha256}")
    app = copy_app(tmp_path, "hashed")
    (app / "requirements.txt").write_text("\n".join(pins) + "\n")
    out = tmp_path / "ctx"
    with serve(index) as url:
        result = cli("app", str(app), "--out", str(out), *IMAGES, "--hermetic", "--index-url", f"{url}/simple")
        assert result.exit_code == 0, result.stderr
        fetched = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / ".flex-wheels").iterdir()}
        assert fetched == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (index / "files").iterdir()}
        assert "--no-index --find-links=/tmp/.flex-wheels --require-hashes" in dockerfile(out)
        assert "!.flex-wheels" in (out / ".dockerignore").read_text()
        hadolint = shutil.which("hadolint") or str(ROOT / ".venv" / "bin" / "hadolint")
        lint = subprocess.run([hadolint, "--no-color", str(out / "Dockerfile")], capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout
        # a pin whose hash the index does not list: refused, nothing written
        (app / "requirements.txt").write_text(pins[0].rsplit("sha256:", 1)[0] + "sha256:" + "0" * 64 + "\n")
        refused = cli("app", str(app), "--out", str(tmp_path / "ctx2"), *IMAGES, "--hermetic", "--index-url", f"{url}/simple")
    assert refused.exit_code == 2 and "lists no file with sha256 " + "0" * 64 in refused.stderr
    assert not (tmp_path / "ctx2").exists()


def test_a_path_with_a_space_is_copied_in_json_form(cli, tmp_path: Path) -> None:
    app = copy_app(tmp_path)
    (app / "req files").mkdir()
    (app / "req files" / "base.txt").write_text("Flask==3.0.3\n")
    (app / "requirements.txt").write_text('-r "req files/base.txt"\ngunicorn==23.0.0\n')
    assert generate(cli, app, tmp_path / "out").exit_code == 0
    assert 'COPY --chown=1000:1000 ["req files/base.txt", "/app/req files/base.txt"]\n' in dockerfile(tmp_path / "out")
