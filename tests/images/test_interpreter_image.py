"""The interpreter built once, the runtime re-assembled around it (issue 23), on the real 22.04 root.

A first build compiles python311-ubuntu22's interpreter from clean and assembles the runtime. Then
the image tests' signed local archive on 127.0.0.1 publishes a jammy-security update of a runtime
package (tzdata) and of a toolchain package (linux-libc-dev, in the build closure); `refresh`
applies the first and keeps the toolchain lock still, and the project's rebuild re-assembles the
runtime: no compiler runs, the interpreter layer keeps its digest, the new tzdata is installed, in
at most a tenth of the first build's time (both printed). A moved base (a second root) re-assembles
the same way; `refresh --toolchain` moves the toolchain and the interpreter hash (a rebuild).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from generator.images import ospkgs
from generator.schedule.lock import load as load_pins
from tests import ubuntu
from tests.conftest import copy_tree
from tests.image_fixtures import FACTS, RUNTIME, TIMES, build, gen, podman
from tests.servers import serve

pytestmark = [pytest.mark.image, pytest.mark.usefixtures("need_podman")]
TAG = "localhost/flex-test-interp/python311-ubuntu22"
_INTERP = re.compile(r"^interpreter (\S+): (built in \d+s|reused) \((\S+)\)$", re.M)


def _layers(tag: str) -> list[str]:
    return json.loads(podman("image", "inspect", tag).stdout)[0]["RootFS"]["Layers"]


def _deb(lock, name: str):
    return next(d for d in lock.build + lock.runtime if d.name == name)


@pytest.fixture(scope="module")
def security(test_tree: Path, tmp_path_factory):
    """sim/: a signed jammy-security with a newer tzdata (runtime closure) and linux-libc-dev (build closure), on 127.0.0.1."""
    root = tmp_path_factory.mktemp("security")
    lock = load_pins(test_tree / "lockfiles" / "schedule.lock.json").os_packages["ubuntu22"]
    moved = {}
    for name in ("tzdata", "linux-libc-dev"):
        deb = _deb(lock, name)
        got = ospkgs.fetch([deb], root / "orig", [lock.archive])[0]
        newer = deb.version + "+sim1"
        rel = str(Path(deb.filename).parent / f"{name}_{newer}_{deb.architecture}.deb")
        ubuntu.reversion_deb(got, newer, root / "sim" / rel)
        moved[name] = (deb.version, newer)
    keyring = ubuntu.signed_suite(root / "sim", "jammy-security", root / "gnupg")
    with serve(root / "sim") as url:
        yield {"url": url, "keyring": keyring, "moved": moved, "archive": lock.archive}


@pytest.fixture(scope="module")
def first(test_tree: Path, roots: dict[str, str], python_mirror: str, tmp_path_factory) -> dict:
    """The first build of the module's tree: the interpreter compiled from clean, the runtime assembled."""
    tree = copy_tree(tmp_path_factory.mktemp("interp-tree"), test_tree)
    start = time.monotonic()
    proc = build(tree, RUNTIME, roots["ubuntu22"], python_mirror, f"{TAG}:first", "--no-cache", "--rebuild-interpreter")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    seconds = time.monotonic() - start
    TIMES["interpreter: first build (compile + assembly)"] = seconds
    m = _INTERP.search(proc.stdout)
    assert m and m.group(2).startswith("built in"), proc.stdout
    base_layers = len(_layers(roots["ubuntu22"]))
    return {"tree": tree, "seconds": seconds, "interp": m.group(3), "layer": _layers(f"{TAG}:first")[base_layers], "base_layers": base_layers}


def _refresh(tree: Path, roots, security, tmp_path: Path, *extra: str) -> str:
    source = f"deb {security['url']} jammy-security main"
    proc = gen(
        tree, "refresh", "--only", "packages", "ubuntu22", "--os-base", f"ubuntu22={roots['ubuntu22']}", "--apt-source", source,
        "--apt-keyring", str(security["keyring"]), "--no-snapshots", "--changelog", str(tmp_path / "changes.md"), *extra, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (tmp_path / "changes.md").read_text()


def _runtimes(tree: Path) -> dict:
    return json.loads((tree / "lockfiles" / "runtimes.json").read_text())["runtimes"]


def test_security_update_reassembles_around_the_same_interpreter(first, roots, python_mirror, security, tmp_path) -> None:
    tree = first["tree"]
    before = _runtimes(tree)
    old_lock = load_pins(tree / "lockfiles" / "schedule.lock.json").os_packages["ubuntu22"]
    log = _refresh(tree, roots, security, tmp_path)
    lock = load_pins(tree / "lockfiles" / "schedule.lock.json").os_packages["ubuntu22"]
    (tz_old, tz_new), (libc_old, _libc_new) = security["moved"]["tzdata"], security["moved"]["linux-libc-dev"]
    assert _deb(lock, "tzdata").version == tz_new, log
    assert _deb(lock, "linux-libc-dev").version == libc_old and lock.build == old_lock.build  # the toolchain lock kept still
    assert lock.toolchain_base == old_lock.toolchain_base
    after = _runtimes(tree)
    assert after[RUNTIME]["input_hash"] != before[RUNTIME]["input_hash"]
    assert after[RUNTIME]["interpreter"] == before[RUNTIME]["interpreter"]
    assert f"- `{RUNTIME}`: re-assembly (same interpreter)" in log, log
    mirrors = ("--apt-mirror", security["url"], "--apt-mirror", security["archive"])
    start = time.monotonic()
    proc = build(tree, RUNTIME, roots["ubuntu22"], python_mirror, f"{TAG}:security", "--verbose", *mirrors)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    m = _INTERP.search(proc.stdout)
    assert m and m.group(2) == "reused" and m.group(3) == first["interp"], proc.stdout
    engine_output = proc.stderr.lower()
    for compiler in ("gcc", "./configure", "cc1", "make -j"):
        assert compiler not in engine_output, compiler  # the whole engine output (--verbose): nothing was compiled
    assert _layers(f"{TAG}:security")[first["base_layers"]] == first["layer"]  # the interpreter layer, byte for byte
    version = podman("run", "--rm", f"{TAG}:security", "dpkg-query", "-W", "-f", "${Version}", "tzdata").stdout
    assert version == tz_new and version != tz_old
    TIMES["interpreter: re-assembly after jammy-security"] = seconds
    FACTS["re-assembly vs first build"] = (
        f"{seconds:.1f}s vs {first['seconds']:.1f}s ({seconds / first['seconds']:.1%}); interpreter layer {first['layer'][:19]}…"
    )
    print(f"\nfirst build (compile + assembly): {first['seconds']:.1f}s; re-assembly after jammy-security: {seconds:.1f}s")
    assert seconds <= first["seconds"] / 10, (seconds, first["seconds"])


def test_two_clean_reassemblies_give_the_same_digest(first, roots, python_mirror, security) -> None:
    """--no-cache: the runtime's own stages from clean, around the stored interpreter; twice, one image."""
    mirrors = ("--apt-mirror", security["url"], "--apt-mirror", security["archive"])
    digests = []
    for n in (1, 2):
        proc = build(first["tree"], RUNTIME, roots["ubuntu22"], python_mirror, f"{TAG}:clean{n}", "--no-cache", *mirrors)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
        assert _INTERP.search(proc.stdout).group(2) == "reused"
        data = json.loads(podman("image", "inspect", f"{TAG}:clean{n}").stdout)[0]
        digests.append((data["Id"], data["Digest"]))
        assert data["RootFS"]["Layers"][first["base_layers"]] == first["layer"]
    assert digests[0] == digests[1]
    FACTS["two clean re-assemblies"] = f"{digests[0][1]} and {digests[1][1]}"


def test_a_moved_base_reassembles_around_the_same_interpreter(first, roots, python_mirror, security, tmp_path) -> None:
    """A second root (the first plus a layer: a new digest) as the runtime's base; the toolchain's stays."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {roots['ubuntu22']}\nRUN echo 'a moved base' > /etc/flex-test-moved-base\n")
    new_base = "localhost/flex-test-interp/ubuntu22-moved:latest"
    podman("build", "--network=none", "--pull=never", "-t", new_base, str(ctx))
    assert (
        json.loads(podman("image", "inspect", new_base).stdout)[0]["Id"] != json.loads(podman("image", "inspect", roots["ubuntu22"]).stdout)[0]["Id"]
    )
    mirrors = ("--apt-mirror", security["url"], "--apt-mirror", security["archive"])
    start = time.monotonic()
    proc = build(first["tree"], RUNTIME, new_base, python_mirror, f"{TAG}:moved-base", "--toolchain-base", roots["ubuntu22"], *mirrors)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    m = _INTERP.search(proc.stdout)
    assert m and m.group(2) == "reused" and m.group(3) == first["interp"], proc.stdout
    layers = _layers(f"{TAG}:moved-base")
    assert layers[: len(_layers(new_base))] == _layers(new_base)
    assert layers[len(_layers(new_base))] == first["layer"]
    assert podman("run", "--rm", f"{TAG}:moved-base", "cat", "/etc/flex-test-moved-base").stdout == "a moved base\n"
    TIMES["interpreter: re-assembly on a moved base"] = seconds


def test_refresh_toolchain_moves_the_interpreter(first, roots, security, tmp_path) -> None:
    """`refresh --toolchain`: the build closure takes the -security linux-libc-dev, the interpreter hash moves: a rebuild."""
    tree = copy_tree(tmp_path / "tree", first["tree"])
    before = _runtimes(tree)
    log = _refresh(tree, roots, security, tmp_path, "--toolchain")
    lock = load_pins(tree / "lockfiles" / "schedule.lock.json").os_packages["ubuntu22"]
    assert _deb(lock, "linux-libc-dev").version == security["moved"]["linux-libc-dev"][1], log
    after = _runtimes(tree)
    for rid, entry in after.items():
        moved = entry["interpreter"]["input_hash"] != before[rid]["interpreter"]["input_hash"]
        assert moved == (entry["operating_system"] == "ubuntu22"), rid
    assert f"- `{RUNTIME}`: rebuild (the interpreter's inputs moved)" in log, log
    shutil.rmtree(tree)
