"""Which runtimes to (re)build: a comparison of two generated files, no guessing.

Each runtime's `input_hash` in lockfiles/runtimes.json covers everything its image depends on
(render.input_hash), so "what must be rebuilt since REF" is "whose input hash differs from REF's".
The build workflow publishes each image with a tag named after its input hash as well, so a
runtime whose input hash is already in the registry is skipped without comparing digests.

Each runtime also has its interpreter's input hash (`interpreter.input_hash`, images/interpreter.py):
a changed runtime whose interpreter hash is the same is only *re-assembled* around the interpreter
already built (a base digest, a runtime package or a tool moved: seconds, no compiler); one whose
interpreter hash moved (a CPython release, the toolchain lock, configure options) is *rebuilt*.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from generator.core import paths, readfile
from generator.core.errors import GeneratorError, InputError

# A git revision as people write one (sha, branch, tag, HEAD~2, main@{1}); never an option.
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./~^@{}-]{0,199}", re.ASCII)


class MatrixError(GeneratorError):
    """git could not read the generated runtime data at a revision."""


def input_tag(input_hash: str) -> str:
    """The registry tag that marks an image built from exactly these inputs."""
    return "inputs-" + input_hash.removeprefix("sha256:")


def runtimes_at(root: Path, ref: str | None) -> dict[str, Any]:
    """The `runtimes` of lockfiles/runtimes.json in the work tree (ref None) or at a git revision."""
    if ref is None:
        try:
            text = readfile.read_text(
                root / paths.RUNTIMES_JSON, within=root, what="runtime data", limit=readfile.MAX_DATA, name=paths.RUNTIMES_JSON, where="the tree"
            )
        except readfile.ReadError as exc:
            raise InputError(f"{exc}; run `python -m generator generate`") from exc
    else:
        if not _REF.fullmatch(ref) or ".." in ref:
            raise InputError(f"--changed-since: {ref!r} is not a git revision (a commit, branch or tag name such as HEAD~1 or main)")
        try:
            proc = subprocess.run(
                ["git", "-C", str(root), "show", "--end-of-options", f"{ref}:{paths.RUNTIMES_JSON}"], capture_output=True, text=True
            )
        except OSError as exc:
            raise MatrixError(f"--changed-since needs git, which cannot run here: {exc.strerror or exc}") from exc
        if proc.returncode != 0:
            if "exists on disk, but not in" in proc.stderr or "does not exist in" in proc.stderr:
                return {}  # the file is new since that revision: every runtime counts as changed
            raise MatrixError(f"git cannot read {paths.RUNTIMES_JSON} at {ref!r}: {proc.stderr.strip()}")
        text = proc.stdout
    try:
        data = readfile.parse_json(text, source=f"{paths.RUNTIMES_JSON} at {ref or 'the work tree'}", limit=readfile.MAX_DATA)
    except readfile.ReadError as exc:
        raise InputError(str(exc)) from exc
    except ValueError as exc:
        raise MatrixError(f"{paths.RUNTIMES_JSON} at {ref or 'the work tree'} is not the generator's runtime data") from exc
    return checked(data, paths.RUNTIMES_JSON + (f" at {ref}" if ref else ""))


# What the matrix reads of each runtime's entry; a file of another shape is refused naming the key,
# never a KeyError ending as an internal error.
_ENTRY: dict[str, Any] = {
    "id": str,
    "input_hash": str,
    "operating_system": str,
    "image": str,
    "python": {"version": str},
    "base": {"platforms": dict},
}


def checked(data: Any, where: str) -> dict[str, Any]:
    """The `runtimes` of a parsed runtimes.json, each entry of the shape the matrix reads (InputError: exit 2)."""
    fix = "; run `python -m generator generate` to remake it"
    if not isinstance(data, dict) or not isinstance(data.get("runtimes"), dict):
        raise InputError(f"{where}: runtimes: must be a mapping of runtime id to its data{fix}")
    problems: list[str] = []
    for rid, entry in data["runtimes"].items():
        _shape(entry, _ENTRY, f"runtimes.{rid}", problems)
    if problems:
        raise InputError([f"{where}: {p}{fix}" for p in problems[:20]])
    return data["runtimes"]


def _shape(value: Any, spec: Any, key: str, problems: list[str]) -> None:
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            problems.append(f"{key}: must be a mapping")
            return
        for name, sub in spec.items():
            if name not in value:
                problems.append(f"{key}.{name}: missing")
            else:
                _shape(value[name], sub, f"{key}.{name}", problems)
    elif not isinstance(value, spec):
        wanted = {str: "string", dict: "mapping"}.get(spec, "string or null")
        problems.append(f"{key}: must be a {wanted}, not {type(value).__name__}")


REBUILD, REASSEMBLE = "rebuild", "reassemble"


def interpreter_hash(entry: dict[str, Any] | None) -> str | None:
    """A runtime entry's interpreter input hash (None: an entry from before interpreters had one)."""
    interp = (entry or {}).get("interpreter")
    value = interp.get("input_hash") if isinstance(interp, dict) else None
    return value if isinstance(value, str) else None


def build_kind(before: dict[str, Any] | None, now: dict[str, Any]) -> str:
    """rebuild (compile the interpreter) or reassemble (reuse it): the interpreter hashes before and now decide."""
    old, new = interpreter_hash(before), interpreter_hash(now)
    return REASSEMBLE if old is not None and old == new else REBUILD


def changed_with_kind(root: Path, since: str | None) -> list[dict[str, Any]]:
    """Runtime entries whose input hash differs from `since`, each with `build`: rebuild or reassemble."""
    now = runtimes_at(root, None)
    before = runtimes_at(root, since) if since else {}
    return [
        {**entry, "build": build_kind(before.get(rid), entry)}
        for rid, entry in now.items()
        if since is None or before.get(rid, {}).get("input_hash") != entry["input_hash"]
    ]


def github_matrix(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A GitHub Actions `strategy.matrix` value: one job per runtime to (re)build."""
    return {
        "include": [
            {
                "runtime": e["id"],
                "python": e["python"]["version"],
                "os": e["operating_system"],
                "image": e["image"],
                "nix": (e["base"]["platforms"].get("amd64") or {}).get("nix_sha256") is not None,
                "input_hash": e["input_hash"],
                "input_tag": input_tag(e["input_hash"]),
                "build": e.get("build", REBUILD),
                "interpreter_hash": interpreter_hash(e) or "",
                "interpreter": (e.get("interpreter") or {}).get("reference", ""),
            }
            for e in sorted(entries, key=lambda e: e["id"])
        ]
    }
