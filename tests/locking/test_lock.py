"""`lock` and `lock-app`: real pip-compile, uv and pip runs against a package index on 127.0.0.1.

One-time setup (the only network use): pinned files are downloaded from PyPI into a wheelhouse
(~/.cache/flex-python/test-wheelhouse, sha256-checked against PyPI's listing, so results never drift)
and the pinned lock tools are installed into their tool venvs. Every test then runs with HTTP(S)
proxies pointing at a closed port on 127.0.0.1 and only 127.0.0.1 exempted, so a tool that tried to
reach anything but the local index would fail the test.

pip-compile runs under the host's CPython (the runtime of the host's minor version); uv and pip's
report mode run for targets no interpreter here has; a pyenv interpreter is used where it exists.
"""

from __future__ import annotations

import base64
import codecs
import datetime
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from generator import locking
from generator.app import locks as app_locks
from generator.cli import main
from generator.core import paths
from generator.core.cache import cache_root
from generator.core.http import fetch_verified
from generator.locking import resolvers
from generator.schedule import runtimes as schedule
from tests.conftest import ROOT, SCHEDULE, edit
from tests.servers import serve

SCHED = schedule.load(SCHEDULE)

# name, file: every file the local index serves (all pinned: the index never changes).
WHEELHOUSE = [
    ("pip", "pip-19.1.1-py2.py3-none-any.whl"),  # the last pip for Python 3.4
    ("pip", "pip-25.0.1-py3-none-any.whl"),  # the last for 3.8
    ("pip", "pip-26.0.1-py3-none-any.whl"),  # the last for 3.9
    ("pip", "pip-26.3-py3-none-any.whl"),  # Requires-Python >=3.10
    ("setuptools", "setuptools-84.2.1-py3-none-any.whl"),
    ("wheel", "wheel-0.48.0-py3-none-any.whl"),
    ("packaging", "packaging-26.3-py3-none-any.whl"),
    ("six", "six-1.17.0-py2.py3-none-any.whl"),
    ("six", "six-1.17.0.tar.gz"),
    ("gunicorn", "gunicorn-23.0.0-py3-none-any.whl"),
]
# Built here: a dependency whose marker differs between old Pythons and the host.
MARKERPKG = "markerpkg-1.0-py2.py3-none-any.whl"
MARKER = 'six; python_version < "3.7"'

HOST = f"{sys.version_info[0]}.{sys.version_info[1]}"
HOST_RUNTIME = next((r.id for r in SCHED.runtimes.values() if r.minor == HOST), None)
needs_host_runtime = pytest.mark.skipif(HOST_RUNTIME is None, reason=f"no runtime in the schedule has the host's Python {HOST}")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- one-time setup: wheelhouse, tools --------------------------------------------------------


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    d = Path(os.environ.get("FLEX_PYTHON_TEST_WHEELHOUSE") or cache_root() / "test-wheelhouse")
    d.mkdir(parents=True, exist_ok=True)
    sums_path = d / "SHA256SUMS.json"
    sums = json.loads(sums_path.read_text()) if sums_path.is_file() else {}
    pypi = locking.Index(locking.DEFAULT_INDEX)
    for name, filename in WHEELHOUSE:
        path = d / filename
        if path.is_file() and sums.get(filename) == sha256(path):
            continue
        listed = {f.filename: f for f in pypi.files(name)}[filename]
        assert listed.sha256, f"{filename}: PyPI lists no sha256"
        fetch_verified(listed.url, listed.sha256, path)  # refused unless it matches PyPI's listing
        sums[filename] = listed.sha256
        sums_path.write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")
    return d


@pytest.fixture(scope="session")
def host_interpreter() -> locking.Interpreter:
    interp = locking.probe(getattr(sys, "_base_executable", None) or sys.executable, "host")
    assert interp is not None and interp.minor == sys.version_info[:2]
    return interp


@pytest.fixture(scope="session")
def tools(host_interpreter: locking.Interpreter) -> dict[str, locking.Interpreter | None]:
    """Install the pinned lock tools once (from PyPI), for every interpreter the tests will use."""
    locking.host_tools()
    locking.pip_tools_env(host_interpreter)
    found = {}
    for minor in ((3, 8),):
        interp, _ = locking.find_interpreter(minor)
        if interp:
            locking.pip_tools_env(interp)
        found[f"{minor[0]}.{minor[1]}"] = interp
    return found


def _wheel(dest: Path) -> Path:
    """A tiny, byte-for-byte reproducible wheel with one marker-guarded dependency."""
    name, version = "markerpkg", "1.0"
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Dist: {MARKER}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py2-none-any\nTag: py3-none-any\n",
    }
    record = "".join(f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}\n" for p, b in files.items())
    files[f"{dist}/RECORD"] = (record + f"{dist}/RECORD,,\n").encode()
    path = dest / MARKERPKG
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, b in files.items():
            z.writestr(zipfile.ZipInfo(p, date_time=(1980, 1, 1, 0, 0, 0)), b)
    return path


@dataclass
class Served:
    url: str  # .../simple
    files: dict[str, str]  # filename → sha256 of the bytes served

    def sha(self, prefix: str) -> set[str]:
        return {s for f, s in self.files.items() if f.startswith(prefix)}


@pytest.fixture(scope="session")
def index(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory):
    """A static PEP 503 index (sha256 fragments, data-requires-python) on 127.0.0.1, a free port."""
    from email.parser import Parser

    root = tmp_path_factory.mktemp("index")
    files_dir = root / "files"
    files_dir.mkdir()
    for _, filename in WHEELHOUSE:
        shutil.copy(wheelhouse / filename, files_dir / filename)
    _wheel(files_dir)
    projects: dict[str, list[tuple[str, str, str | None]]] = {}
    for path in sorted(files_dir.iterdir()):
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as z:
                meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        else:
            import tarfile

            with tarfile.open(path) as t:
                member = next(m for m in t.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))
                meta = t.extractfile(member).read().decode()  # type: ignore[union-attr]
        md = Parser().parsestr(meta)
        projects.setdefault(locking.canonical(md["Name"]), []).append((path.name, sha256(path), md.get("Requires-Python")))
    simple = root / "simple"
    for name, entries in projects.items():
        (simple / name).mkdir(parents=True)
        links = []
        for fn, sha, rp in entries:
            attr = f' data-requires-python="{html.escape(rp)}"' if rp else ""
            links.append(f'<a href="../../files/{fn}#sha256={sha}"{attr}>{fn}</a><br/>')
        (simple / name / "index.html").write_text("<!DOCTYPE html>\n<html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    (simple / "index.html").write_text("".join(f'<a href="{n}/">{n}</a>\n' for n in sorted(projects)))
    with serve(root) as url:
        yield Served(f"{url}/simple", {p.name: sha256(p) for p in files_dir.iterdir()})


def _offline_env(cache: Path) -> dict[str, str]:
    dead = "http://127.0.0.1:9"
    env = {k: dead for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env.update(FLEX_PYTHON_TOOLS_INDEX_URL=f"{dead}/no-tool-installs-in-tests/", FLEX_PYTHON_LOCK_CACHE=str(cache))
    return env


@pytest.fixture(scope="session")
def lock_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lock-cache")


@pytest.fixture
def offline(index: Served, tools, lock_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Served:
    """Only 127.0.0.1 is reachable from here on (for this process and the tools it starts)."""
    for k, v in _offline_env(lock_cache).items():
        monkeypatch.setenv(k, v)
    return index


def invoke(tree: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--schedule", str(tree / paths.SCHEDULE), *args], catch_exceptions=False)


def invoke_app(*args: str) -> Result:
    return CliRunner().invoke(main, ["--schedule", str(SCHEDULE), *args], catch_exceptions=False)


def make_tree(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(SCHEDULE, dest / paths.SCHEDULE)
    shutil.copy(ROOT / paths.README, dest / paths.README)
    for sub in (paths.IMAGES, paths.LOCKFILES):
        if (ROOT / sub).is_dir():
            shutil.copytree(ROOT / sub, dest / sub)
    return dest


def set_input(tree: Path, runtime_id: str, text: str) -> None:
    (tree / paths.LOCKFILES / f"{runtime_id}.in").write_text(text)


def pins(path: Path) -> dict[str, tuple[str, set[str]]]:
    return locking.parse_lock(path.read_text())


def header(path: Path) -> dict[str, str]:
    return locking.read_header(path)


# A tree with three runtimes locked against the local index, once per module, in parallel, with the
# three resolvers: pip-compile under the host's CPython, uv (--tool uv), pip's report mode (3.4).
TRIO_INPUTS = {
    "python34": "pip\nsix\n",
    "python38-ubuntu18": "pip\nmarkerpkg\n",
}


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, index: Served, tools, lock_cache: Path, host_interpreter: locking.Interpreter):
    if HOST_RUNTIME is None:
        pytest.skip(f"no runtime in the schedule has the host's Python {HOST}")
    tree = make_tree(tmp_path_factory.mktemp("locked") / "tree")
    set_input(tree, HOST_RUNTIME, "pip\nsetuptools\nwheel\nmarkerpkg\n")
    for rid, text in TRIO_INPUTS.items():
        set_input(tree, rid, text)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _offline_env(lock_cache).items():
            mp.setenv(k, v)
        host = ["--interpreter", f"{HOST}={host_interpreter.path}"]
        res = invoke(tree, "lock", HOST_RUNTIME, "python34", "--index-url", index.url, "--jobs", "3", *host)
        assert res.exit_code == 0, res.output
        res_uv = invoke(tree, "lock", "python38-ubuntu18", "--index-url", index.url, "--tool", "uv")
        assert res_uv.exit_code == 0, res_uv.output
    return tree, res.output + res_uv.output


def copy_tree(locked_tree: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "tree"
    shutil.copytree(locked_tree, dest)
    return dest


# --- the locks themselves ---------------------------------------------------------------------


@needs_host_runtime
def test_parallel_lock_reports_each_runtime_with_its_tool(locked) -> None:
    _, output = locked
    assert f"{HOST_RUNTIME:<20} locked with pip-compile (pip-tools 7.6.2) under CPython {HOST}." in output
    assert "python34             locked with pip 26.3 --dry-run --report --python-version 3.4" in output
    assert "python38-ubuntu18    locked with uv 0.13.9 --python-version 3.8.20" in output
    assert "2 runtime(s): 2 locked" in output


@needs_host_runtime
def test_pip_compile_lock_has_pins_hashes_of_the_served_files_and_an_honest_header(locked, index: Served, host_interpreter) -> None:
    tree, _ = locked
    path = tree / paths.LOCKFILES / f"{HOST_RUNTIME}.txt"
    got = pins(path)
    assert {n: v for n, (v, _) in got.items()} == {"markerpkg": "1.0", "packaging": "26.3", "pip": "26.3", "setuptools": "84.2.1", "wheel": "0.48.0"}
    # six is only needed below Python 3.7: the host's marker evaluation is right for the host's runtime
    for name, (version, hashes) in got.items():
        assert hashes == index.sha(f"{name}-{version}-") | index.sha(f"{name}-{version}.tar"), name
    text = path.read_text()
    h = header(path)
    assert h["made by"] == f"pip-compile (pip-tools 7.6.2, pip 26.3) running under {host_interpreter.describe()}"
    assert h["index"] == index.url
    rt = SCHED.runtimes[HOST_RUNTIME]
    assert text.startswith(f"# lockfiles/{HOST_RUNTIME}.txt: hash-locked tools of runtime {HOST_RUNTIME} (CPython {rt.version}, Linux x86_64).\n")
    flags = "--generate-hashes --no-reuse-hashes --allow-unsafe --no-header --no-emit-index-url --no-emit-find-links"
    assert f"# command: pip-compile {flags} --index-url={index.url}" in text
    t = locking.runtime_target(tree, rt)
    assert h["inputs"] == locking.inputs_hash(t, t.src.read_text(), index.url)
    assert "--index-url" not in text.split("\n\n", 1)[1] and "--find-links" not in text and "127.0.0.1" not in text.split("\n\n", 1)[1]
    assert f"# via -r {HOST_RUNTIME}.in" in text and "/tmp" not in text
    assert host_interpreter.path not in text and "/bin/python" not in text and "~/" not in text, "no host path in a lock"


@needs_host_runtime
def test_wheels_json_names_one_served_file_per_pin_and_feeds_runtimes_json(locked, index: Served) -> None:
    tree, _ = locked
    for rid in (HOST_RUNTIME, "python34", "python38-ubuntu18"):
        wheels = json.loads((tree / paths.LOCKFILES / f"{rid}.wheels.json").read_text())
        assert [w["name"] for w in wheels] == sorted(pins(tree / paths.LOCKFILES / f"{rid}.txt"))
        for w in wheels:
            assert set(w) == {"name", "version", "filename", "url", "sha256"}
            assert w["url"].startswith(index.url.rsplit("/", 1)[0] + "/files/")
            with urllib.request.urlopen(w["url"]) as resp:  # the URL serves exactly the locked bytes
                assert hashlib.sha256(resp.read()).hexdigest() == w["sha256"] == index.files[w["filename"]]
            assert w["filename"].endswith(".whl"), "a wheel is preferred to the sdist"
        data = json.loads((tree / paths.RUNTIMES_JSON).read_text())
        assert data["runtimes"][rid]["tools"] == wheels, "lock regenerates runtimes.json"
    res = invoke(tree, "generate", "--check")
    assert res.exit_code == 0, res.output


@needs_host_runtime
def test_each_resolver_evaluates_markers_and_requires_python_for_the_target(locked) -> None:
    tree, _ = locked
    d = tree / paths.LOCKFILES
    # Python 3.4 (pip's report mode): the last pip with Requires-Python that admits 3.4
    assert {n: v for n, (v, _) in pins(d / "python34.txt").items()} == {"pip": "19.1.1", "six": "1.17.0"}
    assert "not pip-compile" in header(d / "python34.txt")["made by"]
    # Python 3.8 (uv --python-version 3.8.20): pip 25.0.1; no six (markerpkg needs it below 3.7 only)
    assert {n: v for n, (v, _) in pins(d / "python38-ubuntu18.txt").items()} == {"markerpkg": "1.0", "pip": "25.0.1"}
    assert header(d / "python38-ubuntu18.txt")["made by"].startswith("uv 0.13.9 (`uv pip compile`: not pip-compile")


@pytest.mark.parametrize(
    ("runtime_id", "tool", "text", "expected"),
    [
        ("python36", "uv", "markerpkg\n", {"markerpkg": "1.0", "six": "1.17.0"}),  # marker true for 3.6 (false on the host)
        ("python39-ubuntu18", "uv", "pip\n", {"pip": "26.0.1"}),
        ("python38-ubuntu18", "auto", "pip\n", {"pip": "25.0.1"}),  # pip-compile under a real 3.8 if there is one, else uv
        ("python35", "auto", "pip\n", {"pip": "19.1.1"}),
    ],
)
def test_lock_for_an_older_python_picks_the_release_its_requires_python_allows(
    offline: Served, tmp_path, tools, runtime_id, tool, text, expected
) -> None:
    tree = make_tree(tmp_path / "tree")
    set_input(tree, runtime_id, text)
    res = invoke(tree, "lock", runtime_id, "--index-url", offline.url, "--tool", tool)
    assert res.exit_code == 0, res.output
    path = tree / paths.LOCKFILES / f"{runtime_id}.txt"
    assert {n: v for n, (v, _) in pins(path).items()} == expected
    made_by = header(path)["made by"]
    if runtime_id == "python38-ubuntu18":
        interp = tools["3.8"]
        assert made_by.startswith(f"pip-compile (pip-tools 7.5.2, pip 25.0.1) running under CPython {interp.version}" if interp else "uv 0.13.9")


def test_pip_report_refuses_when_a_marker_would_be_evaluated_for_the_host(offline: Served, tmp_path) -> None:
    tree = make_tree(tmp_path / "tree")
    before = (tree / paths.LOCKFILES / "python34.txt").read_bytes()
    set_input(tree, "python34", "markerpkg\n")
    res = invoke(tree, "lock", "python34", "--index-url", offline.url)
    assert res.exit_code == 1
    assert "refusing: pip evaluates these markers for the host" in res.output
    assert f"markerpkg 1.0: {MARKER}" in res.output
    assert (tree / paths.LOCKFILES / "python34.txt").read_bytes() == before


# --- no-op, --check, failures -----------------------------------------------------------------


@needs_host_runtime
def test_noop_relock_skips_without_touching_anything(locked, tmp_path, offline: Served) -> None:
    tree = copy_tree(locked[0], tmp_path)
    files = sorted((tree / paths.LOCKFILES).iterdir())
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    start = time.perf_counter()
    res = invoke(tree, "lock", HOST_RUNTIME, "python34", "python38-ubuntu18", "--index-url", offline.url)
    elapsed = time.perf_counter() - start
    assert res.exit_code == 0, res.output
    assert res.output.count("skipped: up to date") == 3 and "3 runtime(s): 3 up to date" in res.output
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == before
    assert elapsed < 1.0, f"no-op relock of 3 runtimes took {elapsed:.2f}s"
    assert invoke(tree, "lock", "--check", HOST_RUNTIME, "python34", "python38-ubuntu18", "--index-url", offline.url).exit_code == 0


def test_noop_relock_of_the_committed_matrix_is_fast_and_offline(tmp_path, index, lock_cache) -> None:
    """The committed locks are current: the whole matrix is skipped without any network, in well under a second."""
    tree = make_tree(tmp_path / "tree")
    cmd = [sys.executable, "-m", "generator", "--schedule", str(tree / paths.SCHEDULE), "lock"]
    env = {**os.environ, **_offline_env(lock_cache)}
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        samples.append(time.perf_counter() - start)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    n = len(SCHED.runtimes)
    assert f"{n} runtime(s): {n} up to date" in proc.stdout
    assert sorted(samples)[1] < 1.5, f"whole-process no-op relock took {samples}"


@needs_host_runtime
def test_check_lists_stale_and_missing_locks(locked, tmp_path, offline: Served) -> None:
    tree = copy_tree(locked[0], tmp_path)
    d = tree / paths.LOCKFILES
    args = ["lock", "--check", HOST_RUNTIME, "python34", "python38-ubuntu18", "--index-url", offline.url]
    assert invoke(tree, *args).exit_code == 0
    edit(d / f"{HOST_RUNTIME}.in", "wheel\n", "wheel\nsix\n")
    (d / "python34.txt").unlink()
    (d / "python38-ubuntu18.wheels.json").unlink()
    res = invoke(tree, *args)
    assert res.exit_code == 1
    assert f"stale: lockfiles/{HOST_RUNTIME}.txt" in res.stderr
    assert "missing: lockfiles/python34.txt" in res.stderr
    assert "stale: lockfiles/python38-ubuntu18.txt (python38-ubuntu18.wheels.json is missing)" in res.stderr
    # the same locks checked against another index are stale too: the index is one of the inputs
    res = invoke(tree, "lock", "--check", "python38-ubuntu18")
    assert res.exit_code == 1 and f"locked against {offline.url}" in res.stderr
    # a missing wheels.json is remade from the lock, without resolving again
    res = invoke(tree, "lock", "python38-ubuntu18", "--index-url", offline.url)
    assert res.exit_code == 0 and "rewrote python38-ubuntu18.wheels.json from the lock" in res.output


@needs_host_runtime
@pytest.mark.parametrize(("runtime_id", "tool"), [("HOST", "auto"), ("python34", "auto"), ("python38-ubuntu18", "uv")])
def test_failed_lock_keeps_the_previous_files_and_names_the_pin(locked, tmp_path, offline: Served, host_interpreter, runtime_id, tool) -> None:
    rid = HOST_RUNTIME if runtime_id == "HOST" else runtime_id
    tree = copy_tree(locked[0], tmp_path)
    d = tree / paths.LOCKFILES
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with (d / f"{rid}.in").open("a") as fh:
        fh.write("six==999\n")
    res = invoke(tree, "lock", rid, "--index-url", offline.url, "--tool", tool, "--interpreter", f"{HOST}={host_interpreter.path}")
    assert res.exit_code == 1
    assert re.search(rf"{rid} +FAILED: unresolvable: ([^;]*, )?six==999;", res.output), res.output
    assert "(the previous lock, if any, is untouched)" in res.output
    after = {p.name: p.read_bytes() for p in d.iterdir() if not p.name.endswith(".in")}
    assert after == {k: v for k, v in before.items() if not k.endswith(".in")}
    assert not [p for p in d.iterdir() if p.name.startswith(".")], "no temporary files left behind"


def test_refresh_relocks_through_the_locking_package(tmp_path, offline: Served) -> None:
    """Locking raises its own LockError; refresh, which depends on locking (never the reverse), wraps it."""
    from generator.refresh import update as refresh

    tree = make_tree(tmp_path / "tree")
    set_input(tree, "python35", "pip\n")
    locking.relock_runtimes(tree, ["python35"], index=offline.url)
    assert {n: v for n, (v, _) in pins(tree / paths.LOCKFILES / "python35.txt").items()} == {"pip": "19.1.1"}
    set_input(tree, "python35", "pip==999\n")
    with pytest.raises(locking.LockError, match=r"relock failed: python35: unresolvable: pip==999"):
        locking.relock_runtimes(tree, ["python35"], index=offline.url)
    set_input(tree, "python35", "pip @@ not a requirement\n")  # refused by pip before it asks any index
    with pytest.raises(locking.LockError, match=r"relock failed: python35: .*pip 26\.3 \(--dry-run --report"):
        refresh.tool_relock(tree, ["python35"])


def test_unknown_runtime_is_bad_input(tmp_path) -> None:
    tree = make_tree(tmp_path / "tree")
    res = invoke(tree, "lock", "python99")
    assert res.exit_code == 2 and "unknown runtime python99" in res.stderr


def test_a_new_runtime_gets_the_default_input(tmp_path, offline: Served) -> None:
    tree = make_tree(tmp_path / "tree")
    (tree / paths.LOCKFILES / "python35.in").unlink()
    res = invoke(tree, "lock", "--check", "python35")
    assert res.exit_code == 1 and "missing: lockfiles/python35.in" in res.stderr
    invoke(tree, "lock", "python35", "--index-url", offline.url)  # resolves against the small index: may fail, the .in is written first
    text = (tree / paths.LOCKFILES / "python35.in").read_text()
    assert locking.requirement_lines(text) == ["pip<21", "setuptools<51", "wheel<0.38"]


# --- tool choice ------------------------------------------------------------------------------


def _target(version: str) -> locking.Target:
    p = Path("/nonexistent")
    return locking.Target("runtime", "x", "x", version, "ubuntu16", (2, 23), p, p, None, "relock")


def test_tool_choice_without_interpreters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolvers, "find_interpreter", lambda minor, given=None: (None, ["(nowhere)"]))
    assert locking.choose(_target("3.12.1")).tool == "uv"
    assert locking.choose(_target("3.6.10")).tool == "uv"
    assert locking.choose(_target("3.5.9")).tool == "pip-report"
    assert locking.choose(_target("3.4.8")).tool == "pip-report"
    with pytest.raises(locking.LockError, match=r"no correct way to lock for Python 2\.7.*pyenv install 2\.7"):
        locking.choose(_target("2.7.12"))
    with pytest.raises(locking.LockError, match=r"uv resolves for Python 3\.6 and newer only"):
        locking.choose(_target("3.4.8"), "uv")
    with pytest.raises(locking.LockError, match=r"needs a CPython 3\.8 interpreter.*--interpreter 3\.8=PATH"):
        locking.choose(_target("3.8.20"), "pip-compile")


def test_tool_choice_prefers_a_real_interpreter(host_interpreter) -> None:
    m = locking.choose(_target(f"{HOST}.99"), "auto", {HOST: host_interpreter.path})
    assert m.tool == "pip-compile" and m.interpreter == host_interpreter


def test_file_choice_for_wheels_json() -> None:
    rank = locking.file_rank
    assert rank("scandir-1.10.0-cp27-cp27m-win32.whl", "2.7.12", (2, 23)) is None
    assert rank("scandir-1.10.0.tar.gz", "2.7.12", (2, 23)) == 2
    assert rank("typing-3.10.0.0-py2-none-any.whl", "2.7.12", (2, 23)) == 0
    assert rank("typing-3.10.0.0-py2-none-any.whl", "3.6.10", (2, 23)) is None
    assert rank("six-1.17.0-py2.py3-none-any.whl", "3.14.6", (2, 39)) == 0
    wheel = "markupsafe-3.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    assert rank(wheel, "3.11.15", (2, 35)) == 1 and rank(wheel, "3.12.13", (2, 35)) is None
    assert rank("x-1-cp311-cp311-manylinux_2_28_x86_64.whl", "3.11.15", (2, 23)) is None
    assert rank("x-1-cp37-abi3-manylinux2014_x86_64.whl", "3.12.13", (2, 39)) == 1
    assert rank("x-1-cp311-cp311-macosx_11_0_arm64.whl", "3.11.15", (2, 35)) is None


# --- the committed locks ----------------------------------------------------------------------


def test_every_runtime_has_a_current_lock_made_by_the_right_kind_of_tool(cli) -> None:
    res = cli("lock", "--check")
    assert res.exit_code == 0, res.stderr
    for r in SCHED.runtimes.values():
        path = ROOT / paths.LOCKFILES / f"{r.id}.txt"
        made_by = header(path)["made by"]
        head = path.read_text().split("\n\n", 1)[0]
        assert "/bin/python" not in head and "~/" not in head and str(Path.home()) not in head, f"{path.name}: a host path in the header"
        if r.minor in ("3.4", "3.5"):
            assert made_by.startswith("pip 26.3's resolver") and "not pip-compile" in made_by
        elif r.minor == "2.7":
            assert made_by.startswith("pip-compile (pip-tools 5.5.0, pip 20.3.4) running under CPython 2.7.")
        else:
            assert made_by.startswith(("pip-compile (pip-tools ", "uv 0.13.9 (`uv pip compile`: not pip-compile")), made_by
        if made_by.startswith("pip-compile"):
            assert f"running under CPython {r.minor}." in made_by
        names = {w["name"] for w in json.loads((ROOT / paths.LOCKFILES / f"{r.id}.wheels.json").read_text())}
        assert {"pip", "setuptools", "wheel"} <= names
        assert ("virtualenv" in names) == (r.minor == "2.7")
    python2 = {w["name"]: w["filename"] for w in json.loads((ROOT / paths.LOCKFILES / "python2.wheels.json").read_text())}
    assert python2["scandir"].endswith(".tar.gz"), "scandir has no Linux wheel: its sdist"
    assert python2["typing"] == "typing-3.10.0.0-py2-none-any.whl"


# --- lock-app ---------------------------------------------------------------------------------


def _app(tmp_path: Path, config: str, **files: str) -> Path:
    app = tmp_path / "app"
    app.mkdir(parents=True)
    (app / "app.yaml").write_text(f"runtime: python\nenv: flex\nentrypoint: gunicorn -b :$PORT main:app\nruntime_config:\n{config}")
    for name, text in files.items():
        (app / name.replace("_", ".")).write_text(text)
    return app


@needs_host_runtime
def test_lock_app_turns_an_unpinned_requirements_txt_into_a_lock(tmp_path, offline: Served, host_interpreter) -> None:
    rt = SCHED.runtimes[HOST_RUNTIME]
    app = _app(tmp_path, f'  operating_system: {rt.os_id}\n  runtime_version: "{rt.minor}"\n', requirements_txt="six\n")
    args = ["lock-app", str(app), "--index-url", offline.url, "--interpreter", f"{HOST}={host_interpreter.path}"]
    res = invoke_app(*args)
    assert res.exit_code == 0, res.output
    assert "requirements.txt is not hash-locked: keeping it as requirements.in" in res.output
    assert f"for runtime {rt.id} (CPython {rt.version}) with pip-compile (pip-tools 7.6.2) under CPython {HOST}." in res.output
    assert (app / "requirements.in").read_text() == "six\n"
    got = pins(app / "requirements.txt")
    assert got == {"six": ("1.17.0", offline.sha("six-1.17.0"))} and len(got["six"][1]) == 2  # the wheel and the sdist
    text = (app / "requirements.txt").read_text()
    assert text.startswith(f"# requirements.txt: hash-locked requirements of this app for runtime {rt.id} (CPython {rt.version}, Linux x86_64).\n")
    assert header(app / "requirements.txt")["made by"] == f"pip-compile (pip-tools 7.6.2, pip 26.3) running under {host_interpreter.describe()}"
    build = json.loads((app / locking.buildlock.BUILD_LOCK).read_text())
    assert build["sdists"] == {}, "six's wheel installs on the runtime: its locked sdist is never picked, so nothing is built"
    assert build["inputs"] == locking.buildlock.target_hash(app_locks.app_target(app, SCHED, datetime.date.today()).target, text, offline.url)
    again = invoke_app(*args)
    assert again.exit_code == 0 and "is up to date" in again.output
    assert (app / "requirements.txt").read_text() == text
    assert invoke_app("lock-app", str(app), "--check", "--index-url", offline.url).exit_code == 0
    edit(app / "requirements.in", "six\n", "six\ngunicorn\n")
    res = invoke_app("lock-app", str(app), "--check", "--index-url", offline.url)
    assert res.exit_code == 1 and "stale:" in res.stderr


def test_lock_app_on_a_sample_app(tmp_path, offline: Served) -> None:
    """tests/apps/hashed: an already-locked requirements.txt is refused; with a requirements.in it is relocked."""
    app = tmp_path / "hashed"
    shutil.copytree(ROOT / "tests" / "apps" / "hashed", app)
    res = invoke_app("lock-app", str(app), "--index-url", offline.url)
    assert res.exit_code == 2 and "is already hash-locked; put the app's top-level requirements in requirements.in" in res.stderr
    (app / "requirements.in").write_text("gunicorn==23.0.0\n")
    res = invoke_app("lock-app", str(app), "--index-url", offline.url)
    assert res.exit_code == 0, res.output
    rt = next(r for r in SCHED.runtimes.values() if r.os_id == "ubuntu24" and r.default_for_os)  # the app names ubuntu24 only
    assert f"for runtime {rt.id} (CPython {rt.version})" in res.output
    got = pins(app / "requirements.txt")
    assert {n: v for n, (v, _) in got.items()} == {"gunicorn": "23.0.0", "packaging": "26.3"}
    assert got["gunicorn"][1] == offline.sha("gunicorn-23.0.0")


def test_lock_app_for_a_legacy_runtime_and_a_failing_one(tmp_path, offline: Served) -> None:
    app = _app(tmp_path, '  python_version: "3.4"\n', requirements_in="pip\nsix\n")
    res = invoke_app("lock-app", str(app), "--index-url", offline.url)
    assert res.exit_code == 0, res.output
    assert "for runtime python34 (CPython 3.4.8) with pip 26.3 --dry-run --report --python-version 3.4" in res.output
    assert {n: v for n, (v, _) in pins(app / "requirements.txt").items()} == {"pip": "19.1.1", "six": "1.17.0"}
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(app / "app.yaml", bad / "app.yaml")
    (bad / "requirements.txt").write_text("six==999\n")
    res = invoke_app("lock-app", str(bad), "--index-url", offline.url)
    assert res.exit_code == 1 and "unresolvable: six==999" in res.stderr
    assert (bad / "requirements.txt").read_text() == "six==999\n" and not (bad / "requirements.in").exists()


def test_lock_app_without_requirements_is_bad_input(tmp_path) -> None:
    app = tmp_path / "plain"
    shutil.copytree(ROOT / "tests" / "apps" / "plain", app)
    res = invoke_app("lock-app", str(app))
    assert res.exit_code == 2 and "no requirements.in or requirements.txt to lock" in res.stderr


# --- lock-app and app read an app the same way -------------------------------------------------

PINNED = "ghcr.io/appengine-flex-python/runtimes/python311-ubuntu22:3.11.15@sha256:" + "0123456789abcdef" * 4


def test_lock_app_and_app_refuse_find_links_outside_the_app_alike(tmp_path, offline: Served) -> None:
    """The build context holds only the app directory, so `--find-links ../wheels` is refused by both, naming file and line."""
    (tmp_path / "wheels").mkdir()
    app = _app(tmp_path, "  operating_system: ubuntu22\n", requirements_txt="six\n--find-links ../wheels\n")
    before = sorted(p.name for p in app.iterdir())
    built = invoke_app("app", str(app), "--runtime-image", PINNED, "--build-image", PINNED)
    assert built.exit_code == 2, built.output
    errors = {"app": built.stderr}
    for extra in ([], ["--check"]):
        locked = invoke_app("lock-app", str(app), "--index-url", offline.url, *extra)
        assert locked.exit_code == 2, locked.output
        errors[" ".join(["lock-app", *extra])] = locked.stderr
    for command, stderr in errors.items():
        assert "requirements.txt:2: --find-links ../wheels" in stderr and "outside the app directory" in stderr, command
    assert len(set(errors.values())) == 1, errors  # one reader: one verdict, one message
    assert sorted(p.name for p in app.iterdir()) == before  # nothing written


@needs_host_runtime
def test_lock_app_locks_for_the_runtime_app_builds_for(tmp_path, offline: Served, host_interpreter, monkeypatch) -> None:
    """$GAE_APPLICATION_YAML_PATH names the app.yaml for both commands: the lock is for the Python the image has."""
    rt = SCHED.runtimes[HOST_RUNTIME]
    app = _app(tmp_path, '  python_version: "3.4"\n', requirements_in="six\n")  # app.yaml alone would mean python34
    prod = (app / "app.yaml").read_text().split("runtime_config:")[0]
    (app / "prod.yaml").write_text(f'{prod}runtime_config:\n  operating_system: {rt.os_id}\n  runtime_version: "{rt.minor}"\n')
    monkeypatch.setenv("GAE_APPLICATION_YAML_PATH", "prod.yaml")
    assert app_locks.app_target(app, SCHED, datetime.date(2026, 11, 23)).target.runtime_id == rt.id
    res = invoke_app("lock-app", str(app), "--index-url", offline.url, "--interpreter", f"{HOST}={host_interpreter.path}")
    assert res.exit_code == 0, res.output
    assert f"for runtime {rt.id} (CPython {rt.version})" in res.output
    first = (app / "requirements.txt").read_text().splitlines()[0]
    assert first == f"# requirements.txt: hash-locked requirements of this app for runtime {rt.id} (CPython {rt.version}, Linux x86_64)."
    built = invoke_app("app", str(app), "--runtime-image", PINNED, "--build-image", PINNED)
    assert built.exit_code == 0, built.output
    assert f"runtime {rt.id}: FROM " in built.stdout


@needs_host_runtime
def test_lock_app_reads_encodings_as_app_does(tmp_path, offline: Served, host_interpreter) -> None:
    """UTF-16 with a byte-order mark (PowerShell's `pip freeze >`) is locked by pip-compile and uv alike; a file
    pip reads but uv does not (UTF-32, a coding comment) is refused with the fix, as a latin-1 file is by both commands."""
    rt = SCHED.runtimes[HOST_RUNTIME]
    config = f'  operating_system: {rt.os_id}\n  runtime_version: "{rt.minor}"\n'
    host = ["--interpreter", f"{HOST}={host_interpreter.path}"]
    windows = _app(tmp_path / "windows", config)
    (windows / "requirements.txt").write_bytes("six\n".encode("utf-16"))
    res = invoke_app("lock-app", str(windows), "--index-url", offline.url, *host)
    assert res.exit_code == 0, res.output
    assert (windows / "requirements.in").read_bytes() == b"six\n"  # the input, kept as UTF-8
    assert {n: v for n, (v, _) in pins(windows / "requirements.txt").items()} == {"six": "1.17.0"}
    nested = _app(tmp_path / "nested", config)
    (nested / "requirements.in").write_bytes("-r base.in\n".encode("utf-16"))
    (nested / "base.in").write_bytes(codecs.BOM_UTF16_BE + "six\n".encode("utf-16-be"))
    res = invoke_app("lock-app", str(nested), "--index-url", offline.url, "--tool", "uv")
    assert res.exit_code == 0, res.output
    assert {n: v for n, (v, _) in pins(nested / "requirements.txt").items()} == {"six": "1.17.0"}
    assert invoke_app("lock-app", str(nested), "--check", "--index-url", offline.url).exit_code == 0  # the inputs hash reads it alike

    latin1 = _app(tmp_path / "latin1", config)
    (latin1 / "requirements.txt").write_bytes("six\n# équipe\n".encode("latin-1"))
    for args in (["app", str(latin1), "--runtime-image", PINNED, "--build-image", PINNED], ["lock-app", str(latin1), "--index-url", offline.url]):
        res = invoke_app(*args)
        assert res.exit_code == 2 and "requirements.txt:2: byte 0xe9 is not utf-8" in res.stderr, (args, res.output)
    for name, data in (
        ("utf32", "six\n".encode("utf-32")),
        ("coding", "# -*- coding: latin-1 -*-\n# équipe\nsix\n".encode("latin-1")),
    ):
        app = _app(tmp_path / name, config)
        (app / "requirements.txt").write_bytes(data)
        assert invoke_app("app", str(app), "--runtime-image", PINNED, "--build-image", PINNED).exit_code == 0  # pip in the image reads it
        res = invoke_app("lock-app", str(app), "--index-url", offline.url)
        assert res.exit_code == 2, res.output
        assert "requirements.txt: is " in res.stderr and "uv, one of lock's resolvers, reads only UTF-8 and UTF-16" in res.stderr
        assert "save it as UTF-8" in res.stderr and not (app / "requirements.in").exists()
