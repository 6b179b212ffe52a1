"""The flake's inputs: `nix flake update`, with nixpkgs held at nixpkgs-python's own pin.

nixpkgs-python's binary cache is built against the nixpkgs its own flake.lock pins; a flake that
follows any other nixpkgs gets cache misses and compiles every CPython from source. So after the
update, nixpkgs is set to exactly that revision (and the changelog says so when the branch has
moved past it). Errors carry Nix's own message.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from generator.core import readfile
from generator.core.errors import GeneratorError

FEATURES = ["--extra-experimental-features", "nix-command flakes"]


class NixError(GeneratorError):
    """Nix failed; the message ends with what Nix itself printed."""


def _nix(args: list[str], cwd: Path, timeout: float = 900) -> str:
    exe = shutil.which("nix")
    if not exe:
        raise NixError("updating the flake inputs needs Nix 2.18 or newer on PATH (Debian/Ubuntu: apt-get install nix-bin)")
    try:
        proc = subprocess.run([exe, *FEATURES, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise NixError(f"`nix {' '.join(args)}` did not finish within {timeout:.0f}s") from exc
    if proc.returncode != 0:
        said = "\n  ".join(line for line in proc.stderr.strip().splitlines()[-12:] if line.strip()) or f"exit code {proc.returncode}"
        raise NixError(f"`nix {' '.join(args)}` failed; Nix said:\n  {said}")
    return proc.stdout


def locked(tree: Path) -> dict[str, dict]:
    """Direct input name → its `locked` entry in flake.lock."""
    try:
        lock = readfile.load_json(tree / "flake.lock", within=tree, what="a flake lock", limit=readfile.MAX_DATA, name="flake.lock", where="the tree")
        nodes = lock["nodes"]
        return {name: nodes[key]["locked"] for name, key in nodes[lock["root"]]["inputs"].items() if isinstance(key, str)}
    except readfile.ReadError as exc:
        raise NixError(str(exc)) from exc
    except (KeyError, TypeError) as exc:
        raise NixError(f"flake.lock is unreadable: {exc}") from exc


def upstream_nixpkgs(source: dict) -> str:
    """The nixpkgs revision that nixpkgs-python's own flake.lock pins (what its cache is built against)."""
    ref = f"github:{source['owner']}/{source['repo']}/{source['rev']}"
    meta = json.loads(_nix(["flake", "metadata", "--json", ref], Path.cwd()))
    try:
        nodes = meta["locks"]["nodes"]
        return nodes[nodes[meta["locks"]["root"]]["inputs"]["nixpkgs"]]["locked"]["rev"]
    except (KeyError, TypeError) as exc:
        raise NixError(f"{ref} has no locked nixpkgs input in its flake.lock") from exc


def update(tree: Path) -> list[tuple[str, str | None, str, str]]:
    """Update the flake inputs in `tree`; return (input, old rev, new rev, note) for each that moved."""
    before = {name: entry.get("rev") for name, entry in locked(tree).items()}
    _nix(["flake", "update"], tree)
    after = locked(tree)
    pinned = upstream_nixpkgs(after["nixpkgs-python"])
    note = ""
    if after["nixpkgs"].get("rev") != pinned:
        branch_head = after["nixpkgs"].get("rev", "?")
        _nix(["flake", "lock", "--override-input", "nixpkgs", f"github:NixOS/nixpkgs/{pinned}"], tree)
        note = f"held at nixpkgs-python's own pin (its binary cache is built against it); the branch is at {branch_head[:12]}"
    final = {name: entry.get("rev") for name, entry in locked(tree).items()}
    return [
        (name, before.get(name), rev, note if name == "nixpkgs" else "") for name, rev in sorted(final.items()) if rev and before.get(name) != rev
    ]
