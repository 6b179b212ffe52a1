"""Issue 21 (hostile input, round 3): COPY sources, impossible lock values, long chains, a malformed
runtimes.json, Ctrl-C at start-up, control characters on the terminal, SPDX ids that collide.

Each test reproduces the defect on the code before the fix; the fix is one mechanism per class.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from generator.core import paths
from generator.images import sbom
from generator.locking import requirements as app_requirements

from .conftest import ROOT

DIGEST = "@sha256:" + "0123456789abcdef" * 4
IMAGES = (
    "--runtime-image",
    "ghcr.io/appengine-flex-python/runtimes/python311-ubuntu22:3.11.15" + DIGEST,
    "--build-image",
    "ghcr.io/appengine-flex-python/runtimes/python311-ubuntu22:3.11.15-build@sha256:" + "fedcba9876543210" * 4,
)
RID = "python312-ubuntu22"
LOCK = "lockfiles/schedule.lock.json"


def _app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    shutil.copytree(ROOT / "tests" / "apps" / "flask", app)
    return app


# --- 6: file names a COPY would expand ------------------------------------------------------------


@pytest.mark.parametrize("name", ["r$HOME.txt", "r${PATH}.txt", "r\\n.txt", "r*.txt", "r?.txt", "r[ab].txt", "base dir/r[1].txt"])
def test_a_requirement_file_name_a_copy_would_expand_is_refused(cli, tmp_path: Path, name: str) -> None:
    """COPY expands $VAR and globs in both of its forms (podman/buildah and Docker alike): such a name is refused, naming it."""
    app = _app(tmp_path)
    (app / name).parent.mkdir(parents=True, exist_ok=True)
    (app / name).write_text("gunicorn==23.0.0\n")
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    (app / "requirements.txt").write_text(f'Flask==3.0.3\n-r "{quoted}"\n')
    result = cli("app", str(app), "--out", str(tmp_path / "out"), *IMAGES)
    assert result.exit_code == 2, result.output
    assert repr(name) in result.stderr and "COPY" in result.stderr and "rename" in result.stderr
    assert not (tmp_path / "out").exists()


def test_safe_odd_names_still_copy_in_json_form(cli, tmp_path: Path) -> None:
    app = _app(tmp_path)
    (app / "req files").mkdir()
    (app / "req files" / "b'a\"se.txt").write_text("gunicorn==23.0.0\n")
    (app / "requirements.txt").write_text('Flask==3.0.3\n-r "req files/b\'a\\"se.txt"\n')
    result = cli("app", str(app), "--out", str(tmp_path / "out"), *IMAGES)
    assert result.exit_code == 0, result.output
    line = next(x for x in (tmp_path / "out" / "Dockerfile").read_text().splitlines() if "req files" in x)
    assert json.loads(line.removeprefix("COPY --chown=1000:1000 ")) == ["req files/b'a\"se.txt", "/app/req files/b'a\"se.txt"]


# --- 6: impossible values in the lock are refused at load, with their key ----------------------------


def _lock_tree(tmp_path: Path, change) -> Path:
    from .conftest import copy_tree

    tree = copy_tree(tmp_path / "tree")
    path = tree / LOCK
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return tree


def _py312(data) -> dict:
    return data["cpython"][data["python_minors"]["3.12"]]


def _deb(data, key: str = "runtime") -> dict:
    return data["os_packages"]["ubuntu22"][key][0]


IMPOSSIBLE = {
    "negative size": (lambda d: _deb(d).__setitem__("size", -1), "os_packages.ubuntu22.runtime[0].size"),
    "zero size": (lambda d: _deb(d).__setitem__("size", 0), "os_packages.ubuntu22.runtime[0].size"),
    "impossible snapshot": (lambda d: d["os_packages"]["ubuntu22"].__setitem__("snapshot", "20261399T256199Z"), "os_packages.ubuntu22.snapshot"),
    "url bad escape": (lambda d: _py312(d).__setitem__("url", "https://www.python.org/%zz/Python-{v}.tgz"), "cpython.{v}.url"),
    "url userinfo": (lambda d: _py312(d).__setitem__("url", "https://@@www.python.org/Python-{v}.tgz"), "cpython.{v}.url"),
    "url port": (lambda d: _py312(d).__setitem__("url", "https://www.python.org:99999/Python-{v}.tgz"), "cpython.{v}.url"),
    "url fragment": (lambda d: _py312(d).__setitem__("url", "https://www.python.org/#/Python-{v}.tgz"), "cpython.{v}.url"),
    "url not http": (
        lambda d: d["os_packages"]["ubuntu22"].__setitem__("archive", "ftp://archive.ubuntu.com/ubuntu"),
        "os_packages.ubuntu22.archive",
    ),
    "archive host": (lambda d: d["os_packages"]["ubuntu22"].__setitem__("archive", "http://-x-/ubuntu"), "os_packages.ubuntu22.archive"),
    "pool file name": (lambda d: _deb(d).__setitem__("filename", "pool/main/c/ca/%zz.deb"), "os_packages.ubuntu22.runtime[0].filename"),
    "no suites": (lambda d: d["os_packages"]["ubuntu22"].__setitem__("suites", {}), "os_packages.ubuntu22.suites"),
    "no platforms": (lambda d: d["base_images"]["ubuntu22"].__setitem__("platforms", {}), "base_images.ubuntu22.platforms"),
}


def _fill(text: str, data) -> str:
    return text.replace("{v}", data["python_minors"]["3.12"])


@pytest.mark.parametrize("case", sorted(IMPOSSIBLE))
def test_impossible_lock_values_are_refused_at_load(cli, tmp_path: Path, case: str) -> None:
    change, key = IMPOSSIBLE[case]
    original = json.loads((ROOT / LOCK).read_text())

    def apply(d):
        change(d)
        if "cpython" in key:
            _py312(d)["url"] = _fill(_py312(d)["url"], original)

    tree = _lock_tree(tmp_path, apply)
    for args in (("list",), ("sbom", RID), ("sbom", RID, "--format", "cyclonedx-json")):
        result = cli(*args, schedule=tree / paths.SCHEDULE)
        assert result.exit_code == 2, (args, result.output)
        assert f"{LOCK}: {_fill(key, original)}:" in result.stderr, (args, result.stderr)


def test_wheel_versions_that_do_not_parse_are_refused(cli, tmp_path: Path) -> None:
    from .conftest import copy_tree

    tree = copy_tree(tmp_path / "tree")
    path = tree / paths.LOCKFILES / f"{RID}.wheels.json"
    wheels = json.loads(path.read_text())
    wheels[0]["version"] = "1..2"
    path.write_text(json.dumps(wheels, indent=2) + "\n")
    result = cli("sbom", RID, schedule=tree / paths.SCHEDULE)
    assert result.exit_code == 2 and f"{RID}.wheels.json: 0.version:" in result.stderr, result.output


# --- 7: values the lock accepts make a valid SBOM ---------------------------------------------------


@pytest.mark.parametrize("fmt", ["spdx-json", "cyclonedx-json"])
def test_a_lock_url_on_an_address_still_makes_an_sbom(cli, tmp_path: Path, fmt: str) -> None:
    """A mirror on 127.0.0.1 is a valid lock (refresh --python-source writes one); its SBOM is made, not an internal error."""
    original = json.loads((ROOT / LOCK).read_text())
    v = original["python_minors"]["3.12"]
    tree = _lock_tree(tmp_path, lambda d: _py312(d).__setitem__("url", f"http://127.0.0.1:8000/ftp/python/{v}/Python-{v}.tgz"))
    result = cli("sbom", RID, "--format", fmt, schedule=tree / paths.SCHEDULE)
    assert result.exit_code == 0, result.output
    assert f"127.0.0.1:8000/ftp/python/{v}/Python-{v}" in result.stdout


# --- 7: SPDX ids are one per package ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("deb", "a+b", "amd64"), ("deb", "aplusb", "amd64")),
        (("deb", "a+b", "amd64"), ("deb", "a-b", "amd64")),
        (("pypi", "a_b"), ("pypi", "a-b")),
        (("deb", "a", "b-amd64"), ("deb", "a-b", "amd64")),
        (("deb", "aX2Bb", "amd64"), ("deb", "a+b", "amd64")),
    ],
)
def test_spdx_ids_are_distinct_for_distinct_packages(a: tuple[str, ...], b: tuple[str, ...]) -> None:
    assert sbom._ref(*a) != sbom._ref(*b)


def test_spdx_ids_stay_readable_and_in_the_alphabet() -> None:
    assert sbom._ref("deb", "libc6", "amd64") == "deb-libc6-amd64"
    assert sbom._ref("deb", "python3.10-minimal", "all") == "deb-python3.10-minimal-all"
    assert sbom._ref("pypi", "setuptools") == "pypi-setuptools"
    for parts in [("deb", "libstdc++6", "amd64"), ("pypi", "zope_interface"), ("deb", "x", "a-b"), ("pypi", "ü€")]:
        ref = sbom._ref(*parts)
        assert all(c.isascii() and (c.isalnum() or c in ".-") for c in ref), ref


# --- 7: long chains end as bad input naming the chain ------------------------------------------------


def test_a_long_requirements_chain_is_refused_naming_the_chain(cli, tmp_path: Path) -> None:
    app = _app(tmp_path)
    depth = 2000
    (app / "requirements.txt").write_text("-r r0.txt\n")
    for i in range(depth):
        (app / f"r{i}.txt").write_text(f"-r r{i + 1}.txt\n")
    (app / f"r{depth}.txt").write_text("six\n")
    result = cli("app", str(app), "--out", str(tmp_path / "out"), *IMAGES)
    assert result.exit_code == 2, result.output
    assert "requirements.txt -> r0.txt -> r1.txt" in result.stderr and "internal error" not in result.stderr
    with pytest.raises(app_requirements.RequirementsError, match="-r/-c"):
        app_requirements.read(app)


def test_a_long_includes_chain_is_refused_naming_the_chain(cli, tmp_path: Path) -> None:
    app = _app(tmp_path)
    depth = 2000
    (app / "app.yaml").write_text((app / "app.yaml").read_text() + "includes:\n- i0.yaml\n")
    for i in range(depth):
        (app / f"i{i}.yaml").write_text(f"includes:\n- i{i + 1}.yaml\n")
    (app / f"i{depth}.yaml").write_text("env_variables:\n  A: b\n")
    result = cli("app", str(app), "--out", str(tmp_path / "out"), *IMAGES)
    assert result.exit_code == 2, result.output
    assert "app.yaml -> i0.yaml -> i1.yaml" in result.stderr and "too deeply nested" not in result.stderr


def test_a_short_includes_chain_still_merges(cli, tmp_path: Path) -> None:
    app = _app(tmp_path)
    (app / "app.yaml").write_text((app / "app.yaml").read_text() + "includes:\n- i0.yaml\n")
    (app / "i0.yaml").write_text("includes:\n- i1.yaml\nenv_variables:\n  A: from-i0\n  B: from-i0\n")
    (app / "i1.yaml").write_text("env_variables:\n  B: from-i1\n")
    result = cli("app", str(app), "--out", str(tmp_path / "out"), *IMAGES)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "Dockerfile").read_text()
    assert 'ENV A="from-i0"' in text and 'ENV B="from-i1"' in text


# --- 7: runtimes.json of the wrong shape -------------------------------------------------------------

MALFORMED = {
    "runtimes a list": ({"runtimes": []}, "runtimes"),
    "entry a string": ({"runtimes": {"x": "y"}}, "runtimes.x"),
    "no id": ({"runtimes": {"x": {}}}, "runtimes.x.id"),
    "id a number": ({"runtimes": {"x": {"id": 1}}}, "runtimes.x.id"),
    "no python": ({"runtimes": {"x": {"id": "x", "input_hash": "sha256:00", "operating_system": "u", "image": "i", "base": {}}}}, "runtimes.x"),
    "base a list": (
        {"runtimes": {"x": {"id": "x", "input_hash": "h", "operating_system": "u", "image": "i", "python": {"version": "3.12.1"}, "base": [1]}}},
        "runtimes.x.base",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_runtimes_json_is_bad_input_naming_the_key(cli, tmp_path: Path, case: str) -> None:
    from .conftest import copy_tree

    data, key = MALFORMED[case]
    tree = copy_tree(tmp_path / "tree")
    (tree / paths.RUNTIMES_JSON).write_text(json.dumps(data))
    result = cli("matrix", schedule=tree / paths.SCHEDULE)
    assert result.exit_code == 2, result.output
    assert "lockfiles/runtimes.json" in result.stderr and key in result.stderr and "internal error" not in result.stderr


# --- 7: Ctrl-C at start-up ---------------------------------------------------------------------------


def _interrupted_start_up(delay: float) -> tuple[int, list[str]]:
    """Start `python -m generator --help`; once click is imported (our imports have begun: `-X importtime`
    says when), SIGINT it every 2 ms until it exits. Earlier, in the interpreter's own start-up, no package can help."""
    cmd = [sys.executable, "-X", "importtime", "-m", "generator", "--help"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.rstrip().split("|")[-1].strip() == "click":
            break
    time.sleep(delay)
    while proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.002)
    lines += proc.stderr.readlines()
    return proc.wait(), [x.rstrip("\n") for x in lines if not x.startswith("import time:")]


def test_ctrl_c_during_start_up_is_one_line_and_130() -> None:
    """Never a traceback: one line and exit 130, or it was done first."""
    codes = []
    # on a loaded machine the imports run slower: the longer delays still land inside them
    for delay in (0.0, 0.001, 0.003, 0.006, 0.01, 0.02, 0.04, 0.08, 0.16):
        code, err = _interrupted_start_up(delay)
        assert not any("Traceback" in x for x in err), (delay, err)
        # -SIGINT: a signal that came while the interpreter was exiting, after it put back the default action
        assert code in (0, 130, -signal.SIGINT), (delay, code, err)
        assert err == [] or (len(err) == 1 and err[0].startswith("error: interrupted")), (delay, code, err)
        codes.append(code)
    assert 130 in codes, codes


# --- 7: control characters never reach the terminal raw -------------------------------------------


def test_control_characters_in_an_error_are_shown_escaped(cli, tmp_path: Path) -> None:
    app = _app(tmp_path)
    evil = "x\x1b]0;owned\x07\x1b[2J\u202egnp.exe\r"
    (app / "requirements.txt").write_text(f"-r {evil}.txt\n")
    result = cli("app", str(app), "--out", str(tmp_path / "out"), *IMAGES)
    assert result.exit_code == 2
    for raw in ("\x1b", "\x07", "\u202e", "\r"):
        assert raw not in result.stderr, repr(result.stderr)
    assert "\\x1b" in result.stderr and "\\u202e" in result.stderr


def test_line_breaks_between_problems_stay(cli, tmp_path: Path) -> None:
    from .conftest import copy_tree

    tree = copy_tree(tmp_path / "tree")
    path = tree / LOCK
    data = json.loads(path.read_text())
    _deb(data)["size"] = "1"
    _deb(data, "build")["size"] = "2"
    path.write_text(json.dumps(data))
    result = cli("list", schedule=tree / paths.SCHEDULE)
    assert result.exit_code == 2
    assert len([line for line in result.stderr.splitlines() if line.startswith("error: ")]) >= 2, result.stderr


def test_control_characters_in_a_warning_are_shown_escaped(cli, tmp_path: Path) -> None:
    app = _app(tmp_path / "\x1b[31mred\u202e")
    (app / "requirements.txt").unlink()  # a warning naming app.yaml: gunicorn is not declared
    result = cli("app", str(app), "--out", str(tmp_path / "out"), *IMAGES)
    assert result.exit_code == 0, result.output
    assert "warning: " in result.stderr and "\x1b" not in result.stderr and "\u202e" not in result.stderr, repr(result.stderr)
    assert "\\x1b[31mred\\u202e" in result.stderr
