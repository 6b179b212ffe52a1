"""What the scheduled jobs need: which runtimes changed (the build matrix), and fresh upstream pins.

Each runtime's `input_hash` in lockfiles/runtimes.json covers everything its image depends on
(base digest, interpreter pin, tool lock, rendered Dockerfile, the Nix function, the generator
version), so "which images must be rebuilt" is a comparison of two generated files, no guessing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .render import RUNTIMES_JSON


class RefreshError(RuntimeError):
    """Something upstream or in git could not be read; nothing was changed."""


def runtimes_at(root: Path, ref: str | None) -> dict[str, Any]:
    """The `runtimes` of lockfiles/runtimes.json in the work tree (ref None) or at a git ref."""
    if ref is None:
        text = (root / RUNTIMES_JSON).read_text(encoding="utf-8")
    else:
        proc = subprocess.run(["git", "-C", str(root), "show", f"{ref}:{RUNTIMES_JSON}"], capture_output=True, text=True)
        if proc.returncode != 0:
            if "exists on disk, but not in" in proc.stderr or "does not exist in" in proc.stderr:
                return {}  # the file is new since that ref: every runtime counts as changed
            raise RefreshError(f"git cannot read {RUNTIMES_JSON} at {ref!r}: {proc.stderr.strip()}")
        text = proc.stdout
    return json.loads(text)["runtimes"]


def changed_runtimes(root: Path, since: str | None) -> list[dict[str, Any]]:
    """Runtime entries whose input hash differs from `since` (all of them when since is None)."""
    now = runtimes_at(root, None)
    before = runtimes_at(root, since) if since else {}
    return [entry for rid, entry in now.items() if since is None or before.get(rid, {}).get("input_hash") != entry["input_hash"]]


def github_matrix(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A GitHub Actions `strategy.matrix` value: one job per runtime to (re)build."""
    return {
        "include": [
            {
                "runtime": e["id"],
                "python": e["python"]["version"],
                "os": e["operating_system"],
                "image": e["image"],
                "nix": e["base"]["nix_sha256"] is not None,
                "input_hash": e["input_hash"],
            }
            for e in sorted(entries, key=lambda e: e["id"])
        ]
    }
