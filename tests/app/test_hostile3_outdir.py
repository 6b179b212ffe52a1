"""Issue 21, class 3: writing a build context (`app --out DIR`, and `app` into the app directory).

The context is built apart and swapped in whole: a run into a directory it did not write is
refused (exit 2, nothing changed); a link left in the destination is never written through; an
interrupt, a full disk or a kill -9 at any point leaves DIR the old context, the new one or absent,
and the next run clears what a killed one left. HOSTILE_EXAMPLES sizes the property test.
"""

from __future__ import annotations

import builtins
import errno
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from generator.app import dockerfile as app_mod
from generator.core.errors import GeneratorError, InputError
from generator.images import ospkgs
from tests.app.test_app import APPS, DAY, IMAGES
from tests.conftest import ROOT, SCHEDULE

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "500"))
OUTCOMES: Counter[str] = Counter()


def snap(path: Path) -> dict[str, tuple]:
    """Everything under `path`, links not followed: type, mode, bytes or link target."""
    found: dict[str, tuple] = {}

    def one(p: Path, rel: str) -> None:
        st_ = os.lstat(p)
        if stat.S_ISLNK(st_.st_mode):
            found[rel] = ("link", os.readlink(p))
        elif stat.S_ISDIR(st_.st_mode):
            found[rel] = ("dir", stat.S_IMODE(st_.st_mode))
            for child in sorted(os.listdir(p)):
                one(p / child, f"{rel}/{child}")
        else:
            found[rel] = ("file", stat.S_IMODE(st_.st_mode), p.read_bytes())

    if os.path.lexists(path):
        one(path, ".")
    return found


def scratch(parent: Path) -> list[str]:
    """Names a run left beside DIR (staging or old contexts)."""
    return sorted(n for n in os.listdir(parent) if n.startswith("."))


def make_app(root: Path, greeting: str = "hello") -> Path:
    """plain-311 with a package two levels deep, so a link at any depth of an old context matters."""
    app = root / "app"
    shutil.copytree(APPS / "plain-311", app)
    (app / "pkg" / "deeper").mkdir(parents=True)
    (app / "pkg" / "mod.py").write_text(f"GREETING = {greeting!r}\n")
    (app / "pkg" / "deeper" / "data.txt").write_text(greeting + "\n")
    with (app / "app.yaml").open("a") as fh:
        fh.write(f"env_variables:\n  GREETING: {greeting}\n")
    return app


def run(cli, app: Path, out: Path | None, *extra: str):
    where = ("--out", str(out)) if out is not None else ()
    return cli("app", str(app), *where, *IMAGES, "--date", DAY, *extra)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """An app, and the exact context a run into a fresh directory makes of it (the reference)."""
    from click.testing import CliRunner

    from generator.cli import main

    root = tmp_path_factory.mktemp("world")
    app = make_app(root)
    fresh = root / "fresh" / "ctx"
    result = CliRunner().invoke(main, ["--schedule", str(SCHEDULE), "app", str(app), "--out", str(fresh), *IMAGES, "--date", DAY])
    assert result.exit_code == 0, result.output
    return {"app": app, "fresh": fresh, "reference": snap(fresh)}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A sentinel directory a link may point to: it must never change."""
    d = tmp_path / "outside"
    (d / "sub").mkdir(parents=True)
    (d / "file").write_text("sentinel\n")
    (d / "sub" / "deep").write_text("deep sentinel\n")
    return d


# --- a directory this tool did not write ----------------------------------------------------------


@pytest.mark.parametrize("force", [(), ("--force",)], ids=["plain", "force"])
def test_user_files_in_out_survive_and_the_run_exits_2(cli, world, tmp_path: Path, force) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes\n")
    (out / "Dockerfile").write_text("FROM python:3.12\n")
    before = snap(out)
    result = run(cli, world["app"], out, *force)
    assert result.exit_code == 2, result.output
    assert str(out) in result.stderr and "empty it" in result.stderr and "Traceback" not in result.output
    assert snap(out) == before
    assert scratch(tmp_path) == []


@pytest.mark.parametrize("what", ["a file", "a link to a directory", "a link to our context", "a dangling link"])
def test_out_that_is_not_a_directory_is_refused(cli, world, tmp_path: Path, outside: Path, what: str) -> None:
    out = tmp_path / "ctx"
    if what == "a file":
        out.write_text("x\n")
    elif what == "a link to a directory":
        out.symlink_to(outside)
    elif what == "a link to our context":
        shutil.copytree(world["fresh"], tmp_path / "real", symlinks=True)
        out.symlink_to(tmp_path / "real")
    else:
        out.symlink_to(tmp_path / "nowhere")
    before, sentinel = snap(tmp_path), snap(outside)
    result = run(cli, world["app"], out)
    assert result.exit_code == 2, result.output
    assert str(out) in result.stderr
    assert snap(tmp_path) == before and snap(outside) == sentinel


def test_empty_dir_and_absent_dir_get_the_context(cli, world, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for name in ("empty", "absent/nested"):
        assert run(cli, world["app"], tmp_path / name).exit_code == 0
        assert snap(tmp_path / name) == world["reference"]
    assert scratch(tmp_path) == [] and scratch(tmp_path / "absent") == []


def test_app_inside_out_is_refused(cli, world, tmp_path: Path) -> None:
    shutil.copytree(world["fresh"], tmp_path / "ctx")
    app = make_app(tmp_path / "ctx")
    before = snap(tmp_path / "ctx")
    result = run(cli, app, tmp_path / "ctx")
    assert result.exit_code == 2 and "inside" in result.stderr
    assert snap(tmp_path / "ctx") == before


# --- links left in an old context ----------------------------------------------------------------


@pytest.mark.parametrize("link", ["Dockerfile", "main.py", "pkg", "pkg/deeper", "pkg/deeper/data.txt", ".dockerignore"])
def test_link_left_in_old_context_is_not_written_through(cli, world, tmp_path: Path, outside: Path, link: str) -> None:
    out = tmp_path / "ctx"
    assert run(cli, world["app"], out).exit_code == 0
    target = outside / "sub" if (out / link).is_dir() else outside / "file"
    if (out / link).is_dir():
        shutil.rmtree(out / link)
    else:
        (out / link).unlink()
    (out / link).symlink_to(target)
    sentinel = snap(outside)
    result = run(cli, world["app"], out)
    assert result.exit_code == 0, result.output
    assert snap(outside) == sentinel
    assert snap(out) == world["reference"]
    assert scratch(tmp_path) == []


def test_old_context_with_a_linked_marker_is_not_ours(cli, world, tmp_path: Path, outside: Path) -> None:
    """Only a real marker file with our text makes a directory ours: a link named like it does not."""
    out = tmp_path / "ctx"
    shutil.copytree(world["fresh"], out, symlinks=True)
    marker = next((n for n in os.listdir(out) if n.startswith(".flex-") and (out / n).is_file()), None)
    assert marker, "the context carries a marker file"
    (outside / "file").write_bytes((out / marker).read_bytes())
    (out / marker).unlink()
    (out / marker).symlink_to(outside / "file")
    before = snap(tmp_path)
    assert run(cli, world["app"], out).exit_code == 2
    assert snap(tmp_path) == before


# --- faults at every step ------------------------------------------------------------------------


class Fault:
    """Raise `exc` at the k-th step that changes the file system (a file opened for writing, a
    directory made, a rename), counting from 1; k=0 counts the steps of a clean run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, k: int, exc: BaseException) -> None:
        self.k, self.exc, self.n = k, exc, 0
        real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
        real_rename, real_replace = os.rename, os.replace

        def step() -> None:
            self.n += 1
            if self.n == self.k:
                raise self.exc

        def open_(file, mode="r", *a, **kw):
            if isinstance(mode, str) and any(c in mode for c in "wxa+"):
                step()
            return real_open(file, mode, *a, **kw)

        def os_open(path, flags, *a, **kw):
            if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
                step()
            return real_os_open(path, flags, *a, **kw)

        def wrap(real):
            def f(*a, **kw):
                step()
                return real(*a, **kw)

            return f

        monkeypatch.setattr(builtins, "open", open_)
        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(os, "mkdir", wrap(real_mkdir))
        monkeypatch.setattr(os, "rename", wrap(real_rename))
        monkeypatch.setattr(os, "replace", wrap(real_replace))


@pytest.mark.parametrize("start", ["old context", "absent"])
@pytest.mark.parametrize("exc", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device")], ids=["ctrl-c", "enospc"])
def test_a_fault_at_any_step_leaves_the_old_context_or_none(cli, world, tmp_path: Path, start: str, exc: BaseException) -> None:
    out = tmp_path / "ctx"
    if start == "old context":
        shutil.copytree(world["fresh"], out, symlinks=True)
    old = snap(out)
    changed = make_app(tmp_path / "v2", greeting="changed")  # a new context differs from the old in every file it regenerates
    with pytest.MonkeyPatch.context() as mp:
        counter = Fault(mp, 0, exc)
        assert run(cli, changed, tmp_path / "probe").exit_code == 0
        steps = counter.n
    new = snap(tmp_path / "probe")
    assert steps > 3
    for k in range(1, steps + 1):
        with pytest.MonkeyPatch.context() as mp:
            Fault(mp, k, exc)
            result = run(cli, changed, out)
        assert "Traceback" not in result.output
        now = snap(out)
        assert now in (old, new, {}), f"step {k}: DIR is partial: {sorted(set(now) ^ set(old))}"
        if result.exit_code == 0:
            assert now == new
        else:
            assert result.exit_code in (1, 130), f"step {k}: exit {result.exit_code}"  # new: the fault hit deleting the old one
        assert scratch(tmp_path) == [], f"step {k}: left {scratch(tmp_path)}"
        if now == new:  # the fault hit after the swap (removing the old one): start over
            shutil.rmtree(out)
            if start == "old context":
                shutil.copytree(world["fresh"], out, symlinks=True)


KILLER = """
import builtins, os, signal, sys
K = int(sys.argv[1]); n = [0]
def step():
    n[0] += 1
    if n[0] == K:
        os.kill(os.getpid(), signal.SIGKILL)
real_open, real_os_open, real_rename, real_replace = builtins.open, os.open, os.rename, os.replace
def open_(file, mode="r", *a, **kw):
    if isinstance(mode, str) and any(c in mode for c in "wxa+"):
        step()
    return real_open(file, mode, *a, **kw)
def os_open(path, flags, *a, **kw):
    if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
        step()
    return real_os_open(path, flags, *a, **kw)
def rename(*a, **kw):
    step(); return real_rename(*a, **kw)
def replace(*a, **kw):
    step(); return real_replace(*a, **kw)
builtins.open, os.open, os.rename, os.replace = open_, os_open, rename, replace
from generator.cli import main
sys.argv = ["generator", *sys.argv[2:]]
main()
"""


def test_kill_9_at_any_step_then_the_next_run_cleans_up(world, tmp_path: Path) -> None:
    """A real SIGKILL mid-run: DIR is the old context, the new one or absent; the next run succeeds and leaves nothing beside it."""
    out = tmp_path / "ctx"
    shutil.copytree(world["fresh"], out, symlinks=True)
    old = snap(out)
    changed = make_app(tmp_path / "v2", greeting="changed")
    argv = ["--schedule", str(SCHEDULE), "app", str(changed), "--out", str(out), *IMAGES, "--date", DAY]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    k, seen = 1, []
    while True:
        proc = subprocess.run([sys.executable, "-c", KILLER, str(k), *argv], cwd=ROOT, env=env, capture_output=True, text=True)
        now = snap(out)
        if proc.returncode == 0:
            break
        assert proc.returncode == -9, proc.stderr
        assert now == old or now == {} or now == snap_of_new(tmp_path, changed), f"kill at step {k}: DIR is partial"
        seen.append("old" if now == old else "absent" if not now else "new")
        if now != old:
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(world["fresh"], out, symlinks=True)
        k += 1
    assert k > 3 and "old" in seen
    assert scratch(tmp_path) == [], "the clean run swept what the killed ones left"
    assert now == snap_of_new(tmp_path, changed)


def snap_of_new(tmp_path: Path, app: Path) -> dict[str, tuple]:
    ref = tmp_path / "ref" / "ctx"
    if not ref.exists():
        from click.testing import CliRunner

        from generator.cli import main

        CliRunner().invoke(main, ["--schedule", str(SCHEDULE), "app", str(app), "--out", str(ref), *IMAGES, "--date", DAY])
    return snap(ref)


def test_leftovers_are_swept_only_when_they_are_ours(cli, world, tmp_path: Path, outside: Path) -> None:
    """A killed run's staging directory goes; a user's directory or link that merely ends like one stays."""
    sub = tmp_path / "p"
    sub.mkdir()
    out = sub / "ctx"
    assert run(cli, world["app"], out).exit_code == 0
    # what a run killed mid-build leaves: find the suffix by killing one for real
    k = 2
    argv = ["--schedule", str(SCHEDULE), "app", str(world["app"]), "--out", str(sub / "other"), *IMAGES, "--date", DAY]
    proc = subprocess.run([sys.executable, "-c", KILLER, str(k), *argv], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    assert proc.returncode == -9
    left = scratch(sub)
    assert left, "a killed run leaves its staging directory"
    suffix = left[0][left[0].rindex(".") :]
    (sub / f".mine{suffix}").mkdir()
    (sub / f".mine{suffix}" / "keep").write_text("mine\n")
    (sub / f".link{suffix}").symlink_to(outside)
    sentinel = snap(outside)
    assert run(cli, world["app"], out).exit_code == 0
    assert scratch(sub) == sorted([f".link{suffix}", f".mine{suffix}"])
    assert (sub / f".mine{suffix}" / "keep").read_text() == "mine\n" and snap(outside) == sentinel


def test_fallback_without_rename_exchange(cli, world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: Path) -> None:
    """Where the kernel cannot swap two directories in one step, two renames do it, rolled back on failure."""
    from generator.app import context

    monkeypatch.setattr(context, "_exchange", lambda a, b: False)
    out = tmp_path / "ctx"
    shutil.copytree(world["fresh"], out, symlinks=True)
    (out / "main.py").unlink()
    (out / "main.py").symlink_to(outside / "file")
    old = snap(out)
    real_rename = os.rename
    calls = []

    def second_fails(a, b):
        calls.append(b)
        if len(calls) == 3:  # rename(stage, DIR) refused (not empty), DIR moved aside, then the stage in: fails
            raise OSError(errno.EIO, "I/O error", str(b))
        return real_rename(a, b)

    monkeypatch.setattr(os, "rename", second_fails)
    result = run(cli, world["app"], out)
    assert result.exit_code == 1 and str(out) in result.stderr
    assert snap(out) == old and scratch(tmp_path) == []
    monkeypatch.setattr(os, "rename", real_rename)
    assert run(cli, world["app"], out).exit_code == 0
    assert snap(out) == world["reference"] and scratch(tmp_path) == [] and (outside / "file").read_text() == "sentinel\n"


# --- writing into the app directory (no --out) ---------------------------------------------------------


def test_linked_dockerfile_in_the_app_is_not_ours(cli, world, tmp_path: Path, outside: Path) -> None:
    """A Dockerfile that is a link is not one this tool wrote, whatever it points to: refused without
    --force; with --force the link itself is replaced, never the file it points to."""
    app = make_app(tmp_path)
    shutil.copy(world["fresh"] / "Dockerfile", outside / "file")  # a generated Dockerfile, outside the app
    sentinel = snap(outside)
    (app / "Dockerfile").symlink_to(outside / "file")
    result = run(cli, app, None)
    assert result.exit_code == 2 and "--force" in result.stderr
    assert os.readlink(app / "Dockerfile") == str(outside / "file")
    assert run(cli, app, None, "--force").exit_code == 0
    assert not (app / "Dockerfile").is_symlink() and snap(outside) == sentinel
    (app / ".dockerignore").unlink()
    (app / ".dockerignore").symlink_to(outside / "sub" / "deep")
    result = run(cli, app, None)  # the app's .dockerignore is read (its lines are kept): a link out is refused
    assert result.exit_code == 2 and ".dockerignore" in result.stderr, result.stderr
    assert (app / ".dockerignore").is_symlink() and snap(outside) == sentinel


def _fake_fetch(url: str, sha256: str, dest: Path, cache: Path | None = None) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w") as fh:
        fh.write(url)
    return dest


@pytest.mark.parametrize("name", [app_mod.WHEELS_DIR, app_mod.DEBS_DIR])
@pytest.mark.parametrize("into", ["app", "out"])
def test_fetched_dir_that_is_a_link_is_not_written_through(monkeypatch, tmp_path: Path, outside: Path, name: str, into: str) -> None:
    """.flex-wheels/.flex-debs are filled by this tool: a link there (to outside the app) is refused
    in the app directory, and in a context it is the app's own link, left out of the copy."""
    from generator.core import http

    monkeypatch.setattr(http, "fetch_verified", _fake_fetch)

    def fake_debs(debs, dest: Path, sources) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        return [_fake_fetch("x.deb", "", dest / "x.deb")]

    monkeypatch.setattr(ospkgs, "fetch", fake_debs)
    app = make_app(tmp_path)
    (app / name).symlink_to(outside / "sub")
    sentinel = snap(outside)
    wheels = [{"url": "https://files.example/w-1-py3-none-any.whl", "sha256": "0" * 64, "filename": "w-1-py3-none-any.whl"}]
    hermetic = name == app_mod.WHEELS_DIR
    plan = app_mod.AppContext(
        files={"Dockerfile": "# x\n", ".dockerignore": "x\n"},
        runtime_id="python311-ubuntu22",
        image="img",
        wheels=wheels if hermetic else [],
        hermetic=hermetic,
        debs=[] if hermetic else [object()],  # type: ignore[list-item]
    )
    out = app if into == "app" else tmp_path / "ctx"
    try:
        app_mod.write(plan, out, app)
    except GeneratorError as exc:
        assert into == "app" and isinstance(exc, InputError) and name in str(exc)
        assert (app / name).is_symlink()
    else:
        assert into == "out"
        assert (out / name).is_dir() and not (out / name).is_symlink() and os.listdir(out / name)
    assert snap(outside) == sentinel


# --- the property: any destination layout ------------------------------------------------------------

NAMES = [
    "Dockerfile",
    ".dockerignore",
    "main.py",
    "app.yaml",
    "pkg",
    "pkg/mod.py",
    "pkg/deeper",
    "pkg/deeper/data.txt",
    "notes",
    "sub/x",
    ".flex-wheels",
    ".flex-context",
]
ENTRIES = st.tuples(
    st.sampled_from(NAMES),
    st.sampled_from(["file", "dir", "link to outside file", "link to outside dir", "dangling link", "link to ..", "remove"]),
)
LAYOUT = st.tuples(
    st.sampled_from(["absent", "empty", "ours", "user", "a link to outside", "a link to ours", "a file"]), st.lists(ENTRIES, max_size=4)
)


def build(out: Path, outside: Path, fresh: Path, kind: str, entries: list[tuple[str, str]]) -> None:
    _make_out(out, outside, fresh, kind)
    if kind not in ("ours", "user"):
        return
    for rel, what in entries:
        p = out / rel
        if not p.parent.is_dir() or p.parent.is_symlink():
            continue
        if os.path.lexists(p):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        _make_entry(p, outside, rel, what)


def _make_out(out: Path, outside: Path, fresh: Path, kind: str) -> None:
    if kind == "empty":
        out.mkdir()
    elif kind == "ours":
        shutil.copytree(fresh, out, symlinks=True)
    elif kind == "user":
        out.mkdir()
        (out / "notes").write_text("mine\n")
    elif kind == "a link to outside":
        out.symlink_to(outside)
    elif kind == "a link to ours":
        shutil.copytree(fresh, out.parent / "elsewhere", symlinks=True)
        out.symlink_to(out.parent / "elsewhere")
    elif kind == "a file":
        out.write_text("x\n")


def _make_entry(p: Path, outside: Path, rel: str, what: str) -> None:
    if what == "file":
        p.write_text("user\n")
    elif what == "dir":
        p.mkdir()
        (p / "inner").write_text("user\n")
    elif what == "link to outside file":
        p.symlink_to(outside / "file")
    elif what == "link to outside dir":
        p.symlink_to(outside / "sub")
    elif what == "dangling link":
        p.symlink_to(outside / "missing")
    elif what == "link to ..":
        p.symlink_to("../" * (rel.count("/") + 2))


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    for outcome, n in sorted(OUTCOMES.items()):
        print(f"hostile outdir examples: {outcome:<40} {n}")


@settings(max_examples=max(20, EXAMPLES // 2), deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(layout=LAYOUT)
@example(layout=("ours", [("pkg", "link to outside dir")]))
@example(layout=("ours", [("main.py", "link to outside file")]))
@example(layout=("user", []))
@example(layout=("user", [("notes", "remove")]))
@example(layout=("a link to ours", []))
def test_any_destination_is_replaced_whole_or_left_byte_for_byte(cli, world, layout) -> None:
    kind, entries = layout
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        outside = root / "outside"
        (outside / "sub").mkdir(parents=True)
        (outside / "file").write_text("sentinel\n")
        (outside / "sub" / "deep").write_text("deep\n")
        parent = root / "p"
        parent.mkdir()
        out = parent / "ctx"
        build(out, outside, world["fresh"], kind, entries)
        if kind == "user" and out.is_dir() and not any(out.iterdir()):
            kind = "empty"  # the entries removed the user's only file: an empty directory is replaced
        sentinel, before = snap(outside), snap(parent)
        result = run(cli, world["app"], out)
        assert "Traceback" not in result.output
        assert snap(outside) == sentinel
        if result.exit_code == 0:
            assert snap(out) == world["reference"]
            assert kind in ("absent", "empty", "ours")
        else:
            assert result.exit_code == 2, result.output
            assert str(out) in result.stderr
            assert snap(parent) == before
        assert [n for n in os.listdir(parent) if n not in ("ctx", "elsewhere")] == []
        OUTCOMES[f"{kind}: {'replaced' if result.exit_code == 0 else 'refused'}"] += 1
