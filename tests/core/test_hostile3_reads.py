"""Issue 21, classes 2, 6 and 7 (reading): every file the tool is given is read through
generator/core/readfile.py, so a symlink out of the app or the tree, a FIFO, a device, a NUL, bytes
that are not UTF-8, JSON nested 100,000 deep or with a key written twice is refused (exit 2, the
file named, nothing of a file outside shown), never read, blocked on, fed to a resolver or baked
into an image.

HOSTILE_EXAMPLES (default 500) sizes the property test over symlink layouts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.app import dockerfile as app_mod
from generator.core import paths, readfile
from generator.core.errors import GeneratorError, InputError
from generator.locking import orchestrate
from generator.locking import requirements as app_requirements
from generator.schedule import runtimes as schedule_mod
from tests.conftest import ROOT, SCHEDULE

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "500"))
TOKEN = "hunter2-sentinel-token"
IMAGE = "ghcr.io/appengine-flex-python/runtimes/python312-ubuntu22:3.12.13@sha256:" + "0123456789abcdef" * 4
APP_YAML = "runtime: python\nenv: flex\nentrypoint: gunicorn -b :$PORT main:app\nruntime_config:\n  operating_system: ubuntu22\n"
DEAD_INDEX = "http://127.0.0.1:9/simple"


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "generator", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def make_app(base: Path, requirements: str | None = "flask\n") -> Path:
    app = base / "app"
    app.mkdir(parents=True)
    (app / "app.yaml").write_text(APP_YAML)
    if requirements is not None:
        (app / "requirements.txt").write_text(requirements)
    return app


def secret(base: Path, text: str = f"SECRET={TOKEN}\n") -> Path:
    path = base / "outside" / "secret.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def app_args(app: Path) -> tuple[str, ...]:
    return ("app", str(app), "--runtime-image", IMAGE, "--build-image", IMAGE)


@pytest.fixture
def no_resolver(monkeypatch) -> list[str]:
    """Fails the test's expectations if any resolver is chosen (it would read the input itself)."""
    started: list[str] = []
    monkeypatch.setattr(orchestrate, "choose", lambda t, *a, **k: started.append(t.key) or pytest.fail("a resolver was started"))
    return started


# --- 2. symlinks out of the app or the tree ---------------------------------------------------------


def test_requirements_txt_linked_to_the_environment(tmp_path: Path) -> None:
    app = make_app(tmp_path, None)
    (app / "requirements.txt").symlink_to("/proc/self/environ")
    proc = run(*app_args(app), env={**os.environ, "PROXY_PASSWORD": TOKEN})
    assert proc.returncode == 2 and "requirements.txt: is a symlink to a file outside the app directory" in proc.stderr, proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr and not (app / "Dockerfile").exists()


def test_lock_app_never_resolves_a_requirements_in_outside(cli, tmp_path: Path, no_resolver: list[str]) -> None:
    app = make_app(tmp_path)
    (app / "requirements.in").symlink_to(secret(tmp_path))
    result = cli("lock-app", str(app), "--index-url", DEAD_INDEX)
    assert result.exit_code == 2 and "requirements.in: is a symlink to a file outside the app directory" in result.stderr, result.output
    assert TOKEN not in result.output and no_resolver == []


def test_lock_never_resolves_a_runtime_input_outside_the_tree(cli, tree: Path, tmp_path_factory, no_resolver: list[str]) -> None:
    src = tree / paths.LOCKFILES / "python312-ubuntu22.in"
    src.unlink()
    src.symlink_to(secret(tmp_path_factory.mktemp("elsewhere")))
    result = cli("lock", "python312-ubuntu22", "--index-url", DEAD_INDEX, schedule=tree / paths.SCHEDULE)
    assert result.exit_code == 2, result.output
    assert "lockfiles/python312-ubuntu22.in: is a symlink to a file outside the tree" in result.stderr, result.output
    assert TOKEN not in result.output and no_resolver == []


def test_dockerignore_linked_outside_is_not_copied(cli, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    (app / ".dockerignore").symlink_to(secret(tmp_path))
    result = cli(*app_args(app))
    assert result.exit_code == 2 and ".dockerignore: is a symlink to a file outside the app directory" in result.stderr, result.output
    assert TOKEN not in result.output and not (app / "Dockerfile").exists()


@pytest.mark.parametrize("how", ["absolute", "relative", "link"])
def test_includes_outside_the_app_are_not_read(cli, tmp_path: Path, how: str) -> None:
    outside = secret(tmp_path, f"env_variables:\n  LEAK: {TOKEN}\n")
    app = make_app(tmp_path)
    name = {"absolute": str(outside), "relative": "../outside/secret.txt", "link": "inc.yaml"}[how]
    if how == "link":
        (app / "inc.yaml").symlink_to(outside)
    (app / "app.yaml").write_text(APP_YAML + f"includes:\n  - {name}\n")
    result = cli(*app_args(app))
    assert result.exit_code == 2 and "outside the app directory" in result.stderr and "includes" in result.stderr, result.output
    assert TOKEN not in result.output and not (app / "Dockerfile").exists()


# --- 6. reading files: FIFOs, devices, duplicate keys -------------------------------------------------


def test_a_fifo_as_app_yaml_is_refused_at_once(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    (app / "app.yaml").unlink()
    os.mkfifo(app / "app.yaml")
    start = time.monotonic()
    proc = run(*app_args(app), timeout=20)
    assert proc.returncode == 2 and "app.yaml: is a FIFO (named pipe), not a regular file" in proc.stderr, proc.stderr
    assert time.monotonic() - start < 15


def test_a_fifo_as_schedule_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / paths.SCHEDULE)
    proc = run("--schedule", str(tmp_path / paths.SCHEDULE), "list", timeout=20)
    assert proc.returncode == 2 and "schedule.yaml: is a FIFO (named pipe), not a regular file" in proc.stderr, proc.stderr


def test_duplicate_key_in_the_schedule_lock(cli, tree: Path) -> None:
    lock = tree / paths.SCHEDULE_LOCK
    lock.write_text(lock.read_text().replace("{\n", '{\n  "format": 1,\n', 1))
    result = cli("list", schedule=tree / paths.SCHEDULE)
    assert result.exit_code == 2, result.output
    assert "schedule.lock.json:" in result.stderr and "duplicate key 'format' (first on line 2)" in result.stderr, result.stderr


# --- 7. bytes no reader expects ---------------------------------------------------------------------------


def test_nul_in_requirements_txt(cli, tmp_path: Path) -> None:
    app = make_app(tmp_path, "flask\n-r base\x00.txt\n")
    result = cli(*app_args(app))
    assert result.exit_code == 2 and "requirements.txt:2: holds a NUL byte" in result.stderr, result.output


def test_non_utf8_lock_file(cli, tree: Path) -> None:
    lock = tree / paths.LOCKFILES / "python312-ubuntu22.txt"
    text = lock.read_bytes()
    lock.write_bytes(text + b"# \xff\xfe\n")  # the header intact: only the body is not UTF-8
    line = text.count(b"\n") + 1
    for args in (("generate",), ("lock", "--check")):
        result = cli(*args, schedule=tree / paths.SCHEDULE)
        assert result.exit_code == 2, (args, result.output)
        assert f"python312-ubuntu22.txt:{line}: byte 0xff is not UTF-8" in result.stderr, (args, result.output)


@pytest.mark.parametrize("name", ["python312-ubuntu22.wheels.json", "schedule.lock.json"])
def test_json_nested_100000_deep(cli, tree: Path, name: str) -> None:
    (tree / paths.LOCKFILES / name).write_text("[" * 100_000 + "]" * 100_000)
    result = cli("generate", schedule=tree / paths.SCHEDULE)
    assert result.exit_code == 2 and f"{name}:1:" in result.stderr and "nested more than" in result.stderr, result.output


# --- the gate itself ------------------------------------------------------------------------------------------


def test_read_bytes_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    cases = {tmp_path / "fifo": "a FIFO (named pipe)", tmp_path: "a directory", Path("/dev/zero"): "a character device"}
    for path, kind in cases.items():
        with pytest.raises(readfile.ReadError, match=re.escape(f"is {kind}, not a regular file")):
            readfile.read_bytes(path, within=None, what="a test file", limit=10)
    (tmp_path / "big").write_bytes(b"x" * 2049)
    with pytest.raises(readfile.ReadError, match="big: larger than 2 KiB; this is not a test file"):
        readfile.read_bytes(tmp_path / "big", within=tmp_path, what="a test file", limit=2048)
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(readfile.ReadError, match="loop: cannot be resolved"):
        readfile.read_bytes(tmp_path / "loop", within=tmp_path, what="a test file", limit=10)
    (tmp_path / "gone").symlink_to("nowhere")
    with pytest.raises(readfile.ReadError, match="gone: a symlink to nothing") as info:
        readfile.read_bytes(tmp_path / "gone", within=tmp_path, what="a test file", limit=10)
    assert info.value.missing and info.value.exit_code == 2


def test_parse_json_is_strict_and_says_where() -> None:
    with pytest.raises(readfile.ReadError, match=r"^f\.json:3:3: duplicate key 'a' \(first on line 2\)"):
        readfile.parse_json('{\n  "a": 1,\n  "a": 2\n}', source="f.json")
    with pytest.raises(readfile.ReadError, match=r"^f\.json:1:2: not valid JSON"):
        readfile.parse_json("{,}", source="f.json")
    with pytest.raises(readfile.ReadError, match="NaN is not a JSON number"):
        readfile.parse_json("[NaN]", source="f.json")
    assert readfile.parse_json('{"a": {"a": "{\\"a\\": [1, \\"a\\"]}"}, "b": [{"a": 1}, {"a": 2}]}', source="f") == {
        "a": {"a": '{"a": [1, "a"]}'},
        "b": [{"a": 1}, {"a": 2}],
    }
    with pytest.raises(readfile.ReadError, match=r"f:1:65: nested more than 64 levels deep"):
        readfile.parse_json("[" * 65 + "]" * 65, source="f")
    with pytest.raises(readfile.ReadError, match=r"f:2: holds a NUL byte"):
        readfile.decode(b"a\n\x00", "f", "a test file")


# --- the property: any symlink layout of an app ----------------------------------------------------------

FILES = ["requirements.txt", "base.txt", ".dockerignore", "app.yaml", "inc.yaml"]
CONTENT = {
    "requirements.txt": "flask\n-r base.txt\n",
    "base.txt": "gunicorn\n",
    ".dockerignore": "*.pyc\n",
    "app.yaml": APP_YAML + "includes:\n  - inc.yaml\n",
    "inc.yaml": "env_variables:\n  FROM_INC: 'yes'\n",
}
# valid as every one of the files: read anywhere, the token would reach a message or a generated file
SENTINEL = f"env_variables:\n  LEAK: {TOKEN}\nruntime: python\nenv: flex\nentrypoint: gunicorn -b :$PORT main:{TOKEN}\n"
SHAPES = ["file", "link inside", "link outside", "chain inside", "chain outside", "dangling", "absent"]


def lay_out(base: Path, shapes: dict[str, str]) -> Path:
    app, real = base / "app", base / "app" / "real"
    real.mkdir(parents=True)
    (base / "sentinel.txt").write_text(SENTINEL)
    for name, shape in shapes.items():
        path, inside = app / name, real / name
        inside.write_text(CONTENT[name])
        if shape == "file":
            path.write_text(CONTENT[name])
        elif shape == "link inside":
            path.symlink_to(Path("real") / name)
        elif shape == "link outside":
            path.symlink_to(base / "sentinel.txt")
        elif shape.startswith("chain"):
            (real / f"{name}.hop").symlink_to(f"../real/{name}" if shape == "chain inside" else "../../sentinel.txt")
            path.symlink_to(Path("real") / f"{name}.hop")
        elif shape == "dangling":
            path.symlink_to("real/nothing-here")
    return app


@pytest.fixture(scope="module")
def schedule() -> schedule_mod.Schedule:
    return schedule_mod.load(SCHEDULE)


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.fixed_dictionaries({name: st.sampled_from(SHAPES) for name in FILES}))
def test_any_symlink_layout_is_refused_or_stays_inside(schedule: schedule_mod.Schedule, shapes: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = lay_out(Path(tmp), shapes)
        said: list[str] = []
        for reader in (app_requirements.IMAGE, app_requirements.LOCK):
            try:
                said.append(repr(app_requirements.read(app, "requirements.txt", reader)))
            except InputError as exc:
                said.append(_named(exc))
        try:
            plan = app_mod.plan_app(app, schedule, runtime_image=IMAGE, build_image=IMAGE)
            said += [*plan.files.values(), *plan.warnings]
            read = {n for n in FILES if n != "base.txt" or shapes["requirements.txt"] in ("file", "link inside", "chain inside")}
            escaped = [n for n, s in shapes.items() if s in ("link outside", "chain outside") and n in read]
            assert not escaped, f"{escaped} left the app, yet `app` made its files"
        except InputError as exc:
            said.append(_named(exc))
        assert TOKEN not in "\n".join(said)


def _named(exc: GeneratorError) -> str:
    text = str(exc)
    assert any(name in text for name in FILES), f"names no file of the app: {text}"
    return text
