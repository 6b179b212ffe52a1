"""Look inside a container image tarball without a container engine.

    python -m generator.images.imagecheck IMAGE.tar --expect EXPECT.json [--allow-extra-label NAME]…
    python generator/images/imagecheck.py …          (the same; stdlib only, as the Nix checks run it)

IMAGE.tar is a docker-archive: what a Nix image's stream script writes (`./result > image.tar`)
or `podman save --format docker-archive` / `docker save`. EXPECT.json says what must be in it
(the Nix images carry it as passthru.expect):

    {"repo_tag": "NAME:TAG", "architecture": "amd64", "config": {Env, User, WorkingDir, Labels,
     Cmd, ExposedPorts…}, "paths": ["/opt/python3.12/bin/python", "/env/bin/python"],
     "bytecode": {"dir": "/env/lib/python3.12/site-packages", "mode": "unchecked-hash"} | null,
     "max_layers": 100}

Checked: manifest.json names one image with that tag, its config and its layers; the config's
architecture and Env (as a mapping), User, WorkingDir, Labels, Cmd and ExposedPorts equal the
expected ones; every layer is a tar whose sha256 (uncompressed) is its diff id, as many as the
config's diff ids and as its history's non-empty layers, at most max_layers; each of `paths`
exists in the filesystem the layers make (whiteouts applied) and resolves, through symlinks
absolute or relative, to an executable regular file; under bytecode.dir every .py has a
__pycache__ .pyc that is hash-based and unchecked (PEP 552 flags = 1) and records the source's
path in the image, not a build path. Exit status 0 when all holds, 1 with every problem on stderr,
2 on bad usage.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import posixpath
import sys
import tarfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


@dataclass
class Node:
    kind: str  # "file", "dir", "symlink", "other"
    mode: int = 0
    target: str = ""  # symlink target
    data: bytes | None = None  # kept only for bytecode files


class Problems(list):
    def add(self, message: str) -> None:
        self.append(message)


def normalize(name: str) -> str:
    """A tar member's name as an absolute path in the image ("./a/b/" -> "/a/b")."""
    return posixpath.normpath("/" + name.lstrip("/"))  # "." -> "/", "./.wh.x" -> "/.wh.x"


def apply_layer(fs: dict[str, Node], layer: tarfile.TarFile, keep_data: str | None) -> None:
    """Apply one layer to FS: OCI whiteouts first (.wh..wh..opq, .wh.NAME), then the entries."""
    members = layer.getmembers()
    for m in members:
        path = normalize(m.name)
        base = posixpath.basename(path)
        parent = posixpath.dirname(path)
        if base == ".wh..wh..opq":
            for p in [p for p in fs if p.startswith(parent.rstrip("/") + "/")]:
                del fs[p]
        elif base.startswith(".wh."):
            gone = posixpath.join(parent, base[4:])
            for p in [p for p in fs if p == gone or p.startswith(gone + "/")]:
                del fs[p]
    for m in members:
        path = normalize(m.name)
        if posixpath.basename(path).startswith(".wh."):
            continue
        if m.isdir():
            node = Node("dir", m.mode)
        elif m.issym():
            node = Node("symlink", m.mode, m.linkname)
        elif m.islnk():
            src = fs.get(normalize(m.linkname))
            node = Node("file", m.mode, data=src.data if src else None) if src else Node("file", m.mode)
        elif m.isreg():
            data = None
            if keep_data and path.startswith(keep_data + "/") and path.endswith(".pyc"):
                f = layer.extractfile(m)
                data = f.read() if f else b""
            node = Node("file", m.mode, data=data)
        else:
            node = Node("other", m.mode)
        if path in fs and fs[path].kind == "dir" and node.kind != "dir":
            for p in [p for p in fs if p.startswith(path + "/")]:
                del fs[p]
        fs[path] = node


def resolve(fs: dict[str, Node], path: str, limit: int = 40) -> tuple[str | None, str]:
    """Follow PATH's symlinks (in every component) inside FS: (final path, how) or (None, why)."""
    parts = [p for p in path.split("/") if p]
    current = "/"
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            current = posixpath.dirname(current) or "/"
            continue
        candidate = posixpath.join(current, part)
        node = fs.get(candidate)
        if node is None:
            return None, f"{candidate} does not exist"
        if node.kind == "symlink":
            hops += 1
            if hops > limit:
                return None, f"too many symlinks at {candidate}"
            target = node.target
            parts = [p for p in target.split("/") if p] + parts
            current = "/" if target.startswith("/") else current
            continue
        if parts and node.kind != "dir":
            return None, f"{candidate} is not a directory"
        current = candidate
    return current, "ok"


def env_map(env: list[str] | None, where: str, problems: Problems) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep:
            problems.add(f"{where}: Env entry {item!r} has no '='")
        elif key in out:
            problems.add(f"{where}: Env sets {key} twice")
        out[key] = value
    return out


def check_config(config: dict[str, Any], expect: dict[str, Any], extra_labels: Collection[str], problems: Problems) -> None:
    want = expect.get("config", {})
    got = config.get("config") or {}
    if expect.get("architecture") and config.get("architecture") != expect["architecture"]:
        problems.add(f"architecture is {config.get('architecture')!r}, expected {expect['architecture']!r}")
    if config.get("os") != "linux":
        problems.add(f"os is {config.get('os')!r}, expected 'linux'")
    if "Env" in want:
        g, w = env_map(got.get("Env"), "image", problems), env_map(want["Env"], "expected", problems)
        if g != w:
            diff = sorted(k for k in set(g) | set(w) if g.get(k) != w.get(k))
            problems.add("Env differs: " + "; ".join(f"{k}: image {g.get(k)!r}, expected {w.get(k)!r}" for k in diff))
    if "Labels" in want:
        g = {k: v for k, v in (got.get("Labels") or {}).items() if k not in extra_labels}
        if g != want["Labels"]:
            diff = sorted(k for k in set(g) | set(want["Labels"]) if g.get(k) != want["Labels"].get(k))
            problems.add("Labels differ: " + "; ".join(f"{k}: image {g.get(k)!r}, expected {want['Labels'].get(k)!r}" for k in diff))
    for key in ("User", "WorkingDir", "Cmd", "Entrypoint", "ExposedPorts"):
        if key in want and got.get(key) != want[key]:
            problems.add(f"{key} is {got.get(key)!r}, expected {want[key]!r}")


def sha256_of(f: IO[bytes]) -> str:
    """The digest of a layer's tar: a diff id is the uncompressed one, so a gzip layer is unpacked."""
    gzipped = f.read(2) == b"\x1f\x8b"
    f.seek(0)
    stream: IO[bytes] | gzip.GzipFile = gzip.GzipFile(fileobj=f) if gzipped else f
    h = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        h.update(chunk)
    return "sha256:" + h.hexdigest()


def check(image: Path, expect: dict[str, Any], extra_labels: Collection[str] = frozenset()) -> tuple[Problems, dict[str, Any]]:
    """Every problem found in IMAGE (empty when it is as EXPECTed), and a summary."""
    problems = Problems()
    summary: dict[str, Any] = {}
    try:
        outer = tarfile.open(image)  # noqa: SIM115 (closed by the `with` below)
    except (OSError, tarfile.TarError) as e:
        problems.add(f"{image}: not a readable tar archive ({e})")
        return problems, summary
    with outer:
        names = set(outer.getnames())
        entry = _manifest_entry(outer, names, expect, problems)
        if entry is None:
            return problems, summary
        config = json.load(outer.extractfile(entry["Config"]))  # type: ignore[arg-type]  # None for a member not a regular file: unhandled
        check_config(config, expect, extra_labels, problems)
        layers: list[str] = entry["Layers"]
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        summary["layers"] = len(layers)
        _check_layer_count(layers, diff_ids, config, expect, problems)
        bytecode = expect.get("bytecode")
        fs = _apply_layers(outer, names, layers, diff_ids, bytecode["dir"] if bytecode else None, problems)
    _check_paths(fs, expect, problems, summary)
    if bytecode:
        check_bytecode(fs, bytecode, problems, summary)
    return problems, summary


def _manifest_entry(outer: tarfile.TarFile, names: set[str], expect: dict[str, Any], problems: Problems) -> dict[str, Any] | None:
    """manifest.json's one image, or None when the archive cannot be checked further."""
    if "manifest.json" not in names:
        problems.add("no manifest.json (not a docker-archive)")
        return None
    manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
    if not isinstance(manifest, list) or len(manifest) != 1:
        problems.add(f"manifest.json must describe exactly one image, it has {len(manifest) if isinstance(manifest, list) else manifest!r}")
        return None
    entry = manifest[0]
    for key in ("Config", "RepoTags", "Layers"):
        if key not in entry:
            problems.add(f"manifest.json has no {key}")
    if problems:
        return None
    if expect.get("repo_tag") and entry["RepoTags"] != [expect["repo_tag"]]:
        problems.add(f"RepoTags is {entry['RepoTags']!r}, expected [{expect['repo_tag']!r}]")
    if entry["Config"] not in names:
        problems.add(f"manifest.json names config {entry['Config']}, which is not in the archive")
        return None
    return entry


def _check_layer_count(layers: list[str], diff_ids: list[str], config: dict[str, Any], expect: dict[str, Any], problems: Problems) -> None:
    """The manifest's layers, the config's diff ids and its non-empty history agree, within max_layers."""
    if len(layers) != len(diff_ids):
        problems.add(f"{len(layers)} layers in manifest.json, {len(diff_ids)} diff ids in the config")
    history = config.get("history")
    if history is not None:
        filled = [h for h in history if not h.get("empty_layer")]
        if len(filled) != len(layers):
            problems.add(f"{len(layers)} layers, but the config's history has {len(filled)} non-empty layers")
    max_layers = expect.get("max_layers")
    if not layers:
        problems.add("the image has no layers")
    elif max_layers is not None and len(layers) > max_layers:
        problems.add(f"{len(layers)} layers, more than max_layers {max_layers}")


def _apply_layers(
    outer: tarfile.TarFile, names: set[str], layers: list[str], diff_ids: list[str], keep: str | None, problems: Problems
) -> dict[str, Node]:
    """The image's file system: each layer checked against its diff id, then applied in order."""
    fs: dict[str, Node] = {"/": Node("dir", 0o755)}
    for i, name in enumerate(layers):
        if name not in names:
            problems.add(f"layer {name} is not in the archive")
            continue
        f = outer.extractfile(name)
        if f is None:
            problems.add(f"layer {name} is not a regular file")
            continue
        digest = sha256_of(f)
        if i < len(diff_ids) and digest != diff_ids[i]:
            problems.add(f"layer {i} ({name}) has sha256 {digest}, but its diff id is {diff_ids[i]}")
        f.seek(0)
        try:
            with tarfile.open(fileobj=f, mode="r:*") as layer:
                apply_layer(fs, layer, keep)
        except tarfile.TarError as e:
            problems.add(f"layer {i} ({name}) is not a tar archive: {e}")
    return fs


def _check_paths(fs: dict[str, Node], expect: dict[str, Any], problems: Problems, summary: dict[str, Any]) -> None:
    """Each expected path resolves, through the layers' symlinks, to an executable file."""
    for path in expect.get("paths", []):
        final, why = resolve(fs, path)
        if final is None:
            problems.add(f"{path} does not resolve in the layers: {why}")
        elif fs[final].kind != "file":
            problems.add(f"{path} resolves to {final}, a {fs[final].kind}, not a file")
        elif not fs[final].mode & 0o111:
            problems.add(f"{path} resolves to {final}, which is not executable")
        else:
            summary.setdefault("resolved", {})[path] = final


# marshal's string types (a .pyc's co_filename is one): short ASCII has a 1-byte length, the others
# a 4-byte little-endian one; the 0x80 bit of the type byte is marshal's reference flag
SHORT_STRINGS = {ord("z"), ord("Z")}
LONG_STRINGS = {ord("a"), ord("A"), ord("u"), ord("t")}


def records(data: bytes, path: str) -> bool:
    """Does marshalled bytecode DATA hold PATH as a whole string (not a piece of a longer one)?"""
    needle, start = path.encode(), 0
    n = len(needle)
    while (i := data.find(needle, start)) != -1:
        if i >= 2 and n < 256 and data[i - 1] == n and data[i - 2] & 0x7F in SHORT_STRINGS:
            return True
        if i >= 5 and data[i - 4 : i] == n.to_bytes(4, "little") and data[i - 5] & 0x7F in LONG_STRINGS:
            return True
        start = i + 1
    return False


def check_bytecode(fs: dict[str, Node], bytecode: dict[str, Any], problems: Problems, summary: dict[str, Any]) -> None:
    """Every .py under the directory has a hash-based, unchecked .pyc naming its path in the image."""
    root = bytecode["dir"].rstrip("/")
    if bytecode.get("mode") != "unchecked-hash":
        problems.add(f"bytecode mode {bytecode.get('mode')!r}: only 'unchecked-hash' is checked")
        return
    sources = sorted(p for p, n in fs.items() if p.startswith(root + "/") and p.endswith(".py") and n.kind == "file")
    if not sources:
        problems.add(f"no .py files under {root}")
    missing, wrong = [], []
    for src in sources:
        directory, base = posixpath.split(src)
        stem = base[: -len(".py")]
        cache = f"{directory}/__pycache__/{stem}."
        pycs = [p for p in fs if p.startswith(cache) and p.endswith(".pyc") and p[len(cache) :].count(".") == 1]  # stem.TAG.pyc
        if not pycs:
            missing.append(src)
            continue
        for pyc in pycs:
            data = fs[pyc].data or b""
            flags = int.from_bytes(data[4:8], "little") if len(data) >= 16 else None
            if flags != 1:
                wrong.append(f"{pyc}: flags {flags} (1 = unchecked hash)")
            elif not records(data, src):
                wrong.append(f"{pyc}: does not record the source path {src}")
            elif b"/nix/store/" in data:
                wrong.append(f"{pyc}: names a /nix/store path")
    if missing:
        problems.add(f"{len(missing)} of {len(sources)} .py files under {root} have no .pyc, e.g. {missing[0]}")
    if wrong:
        problems.add(f"{len(wrong)} .pyc files under {root} are not reproducible bytecode for the image, e.g. {wrong[0]}")
    summary["bytecode"] = {"sources": len(sources), "missing": len(missing), "wrong": len(wrong)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imagecheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path, help="a docker-archive tarball")
    parser.add_argument("--expect", type=Path, required=True, help="what must be in it (JSON)")
    parser.add_argument("--allow-extra-label", action="append", default=[], help="a label the image may have beyond the expected ones")
    args = parser.parse_args(argv)
    try:
        expect = json.loads(args.expect.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        parser.error(f"--expect {args.expect}: {e}")
    problems, summary = check(args.image, expect, set(args.allow_extra_label))
    if problems:
        print(f"imagecheck: {args.image}: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"imagecheck: {args.image}: ok {json.dumps(summary, sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
