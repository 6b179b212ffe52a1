"""What the scheduled jobs need: which runtimes changed (the build matrix), and fresh upstream pins.

Each runtime's `input_hash` in lockfiles/runtimes.json covers everything its image depends on
(base digest, interpreter pin, tool lock, rendered Dockerfile, the Nix function, the generator
version), so "which images must be rebuilt" is a comparison of two generated files, no guessing.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import http, registry, render, yamlsrc
from .errors import GeneratorError
from .render import RUNTIMES_JSON
from .schedule import Schedule, ScheduleError, version_key
from .schedule import load as load_schedule


class RefreshError(GeneratorError):
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


# ---------------------------------------------------------------------------------------------
# Upstream pins: base image digests and CPython patch releases.

PYTHON_SOURCE = "https://www.python.org/ftp/python/"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass
class Change:
    kind: str  # "os" | "python"
    subject: str  # ubuntu22 | 3.12
    old: str
    new: str
    note: str = ""
    runtimes: tuple[str, ...] = ()


def _http_get(url: str, timeout: float = 30) -> bytes:
    try:
        return http.get(url, timeout)
    except http.HttpError as exc:
        raise RefreshError(str(exc)) from None


def release_sha256(source: str, version: str) -> tuple[str, str]:
    """sha256 of Python-X.Y.Z.tgz from the metadata published beside it: the Sigstore bundle's
    message digest, else the SPDX SBOM's checksum (as docker-library does). Never computed from a
    guess; a missing, malformed or disagreeing answer is an error."""
    base = f"{source.rstrip('/')}/{version}/Python-{version}.tgz"
    found: dict[str, str] = {}
    errors = []
    try:
        bundle = json.loads(_http_get(base + ".sigstore"))
        digest = bundle["messageSignature"]["messageDigest"]
        if digest.get("algorithm") != "SHA2_256":
            raise ValueError(f"digest algorithm {digest.get('algorithm')!r}")
        found["sigstore"] = base64.b64decode(digest["digest"], validate=True).hex()
    except (RefreshError, ValueError, KeyError, TypeError) as exc:
        errors.append(f".sigstore: {exc}")
    try:
        sbom = json.loads(_http_get(base + ".spdx.json"))
        for pkg in sbom.get("packages", []):
            if pkg.get("name") == "CPython" and pkg.get("versionInfo") == version:
                sums = [c["checksumValue"].lower() for c in pkg.get("checksums", []) if c.get("algorithm") == "SHA256"]
                if sums:
                    found["spdx"] = sums[0]
        if "spdx" not in found:
            raise ValueError(f"no SHA256 checksum for CPython {version}")
    except (RefreshError, ValueError, KeyError, TypeError) as exc:
        errors.append(f".spdx.json: {exc}")
    for where, value in found.items():
        if not _HEX64.match(value):
            raise RefreshError(f"Python {version}: the {where} checksum {value!r} is not a sha256")
    if len(set(found.values())) > 1:
        raise RefreshError(f"Python {version}: the release metadata disagree ({found}); not pinning it")
    if not found:
        raise RefreshError(f"Python {version}: no verifiable checksum published ({'; '.join(errors)}); not pinning it")
    where, value = next(iter(found.items()))
    return value, where


def newest_patch(source: str, minor: str) -> str:
    """The newest X.Y.Z directory of `minor` in the release listing (final releases only)."""
    listing = _http_get(source).decode("utf-8", "replace")
    found = set(re.findall(rf'href="({re.escape(minor)}\.\d+)/?"', listing))
    if not found:
        raise RefreshError(f"{source}: no release of Python {minor} listed")
    return max(found, key=version_key)


def find_changes(schedule: Schedule, only: set[str], python_source: str) -> list[Change]:
    """Ask upstream what moved. Raises RefreshError on any unreadable or untrustworthy answer."""
    changes: list[Change] = []
    runtimes = list(schedule.runtimes.values())
    if "os" in only:
        for os_id, os_ in schedule.model.operating_systems.items():
            try:
                digest = registry.current_digest(os_.image, tls_verify=not os_.image.startswith(("127.", "localhost")))
            except registry.RegistryError as exc:
                raise RefreshError(f"operating system {os_id}: {exc}") from None
            if digest != os_.digest:
                users = tuple(r.id for r in runtimes if r.os_id == os_id)
                changes.append(Change("os", os_id, os_.digest, digest, os_.image, users))
    if "python" in only:
        minors = sorted({r.minor: r for r in runtimes if r.style == "new"}.items(), key=lambda kv: version_key(kv[0]))
        for minor, _ in minors:
            pinned = max((r.version for r in runtimes if r.style == "new" and r.minor == minor), key=version_key)
            newest = newest_patch(python_source, minor)
            if version_key(newest) > version_key(pinned):
                sha, where = release_sha256(python_source, newest)
                users = tuple(r.id for r in runtimes if r.style == "new" and r.minor == minor)
                changes.append(Change("python", minor, pinned, newest, f"{sha}|{where}", users))
    return changes


def nix_prefetch(image: str, digest: str) -> str | None:
    """The pullImage hash for a moved digest, where nix-prefetch-docker and a registry are at hand."""
    exe = shutil.which("nix-prefetch-docker")
    if not exe:
        return None
    name, tag, _ = registry.split_reference(image)
    short = re.sub(r"^(docker\.io/)?(library/)?", "", name)
    cmd = [exe, "--quiet", "--image-name", name, "--image-digest", digest, "--final-image-name", short, "--final-image-tag", tag or "latest"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    m = re.search(r'(?:sha256|hash) = "([^"]+)"', proc.stdout)  # older versions print sha256, newer hash
    return m.group(1) if proc.returncode == 0 and m else None


def edit_schedule(text: str, doc: yamlsrc.Document, schedule: Schedule, changes: list[Change], nix_hashes: dict[str, str | None]) -> str:
    """Apply the changes to schedule.yaml's text, line by line, keeping its comments and layout."""
    lines = text.splitlines(keepends=True)

    def replace(path: tuple, old: str, new: str) -> None:
        n = doc.lines[path] - 1
        if old not in lines[n]:
            raise RefreshError(f"schedule.yaml:{n + 1}: expected {old!r} there; edit by hand")
        lines[n] = lines[n].replace(old, new, 1)

    inserts: list[tuple[int, str]] = []
    for c in changes:
        if c.kind == "os":
            replace(("operating_systems", c.subject, "digest"), c.old, c.new)
            old_nix = schedule.model.operating_systems[c.subject].nix_sha256
            new_nix = nix_hashes.get(c.subject)
            n = doc.lines[("operating_systems", c.subject, "nix_sha256")] - 1
            indent = lines[n][: len(lines[n]) - len(lines[n].lstrip())]
            value = new_nix or "null  # unknown for this digest: fill with `nix-prefetch-docker` where a registry is reachable"
            if old_nix != new_nix or new_nix is None:
                lines[n] = f"{indent}nix_sha256: {value}\n"
        else:
            sha, _ = c.note.split("|")
            for i, r in enumerate(schedule.model.runtimes):
                if r.id in c.runtimes:
                    replace(("runtimes", i, "python"), f'"{c.old}"', f'"{c.new}"')
            still_used = any(r.python == c.old for r in schedule.model.legacy_runtimes)
            old_interp = schedule.model.interpreters[c.old]
            url = old_interp.url.replace(c.old, c.new)
            if still_used:
                start = doc.lines[("interpreters", c.old)] - 1
                indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
                block = (
                    f'{indent}"{c.new}":\n{indent}  url: {url}\n{indent}  sha256: {sha}\n'
                    f"{indent}  end_of_support: {old_interp.end_of_support.isoformat()}\n"
                )
                inserts.append((start, block))
            else:
                replace(("interpreters", c.old), c.old, c.new)
                replace(("interpreters", c.old, "url"), old_interp.url, url)
                replace(("interpreters", c.old, "sha256"), old_interp.sha256, sha)
    for at, block in sorted(inserts, reverse=True):
        lines.insert(at, block)
    return "".join(lines)


def changelog(changes: list[Change], nix_hashes: dict[str, str | None]) -> str:
    """Markdown for the pull request body: each pin old → new, and each runtime to rebuild."""
    if not changes:
        return "No pin moved upstream: nothing to change.\n"
    out = ["## Runtime pin refresh", ""]
    oses = [c for c in changes if c.kind == "os"]
    pythons = [c for c in changes if c.kind == "python"]
    if oses:
        out += ["### Base images", ""]
        for c in oses:
            nix = nix_hashes.get(c.subject)
            out.append(f"- `{c.subject}` (`{c.note}`): `{c.old}` → `{c.new}`")
            out.append(
                f"  - Nix pullImage hash: {'`' + nix + '`' if nix else 'unknown for the new digest (the Nix build refuses until it is filled)'}"
            )
        out.append("")
    if pythons:
        out += ["### CPython", ""]
        for c in pythons:
            sha, where = c.note.split("|")
            out.append(f"- Python {c.subject}: {c.old} → {c.new} (`Python-{c.new}.tgz` sha256 `{sha}`, from its {where} metadata)")
        out.append("")
    rebuilt = sorted({r for c in changes for r in c.runtimes})
    out += ["### Runtimes to rebuild", ""]
    for rid in rebuilt:
        why = ", ".join(
            f"{c.subject} {c.old[:19]}… → {c.new[:19]}…" if c.kind == "os" else f"Python {c.old} → {c.new}" for c in changes if rid in c.runtimes
        )
        out.append(f"- `{rid}`: {why}")
    return "\n".join(out) + "\n"


def refresh(
    schedule: Schedule,
    *,
    only: set[str],
    dry_run: bool,
    python_source: str = PYTHON_SOURCE,
    relock: Callable[[Path, list[str]], None] | None = None,
) -> tuple[list[Change], str, list[str]]:
    """Find moved pins; unless dry_run, apply them, relock and regenerate — all or nothing.

    Everything upstream is asked first. The edits, relock and regeneration then run in a scratch
    copy of the tree; only when all of them succeed are the changed files copied back (each
    atomically), so a failure at any point leaves the work tree exactly as it was.
    """
    changes = find_changes(schedule, only, python_source)
    nix_hashes = {c.subject: nix_prefetch(c.note, c.new) for c in changes if c.kind == "os"}
    log = changelog(changes, nix_hashes)
    if dry_run or not changes:
        return changes, log, []
    root = schedule.path.resolve().parent
    doc = yamlsrc.load(schedule.path, "schedule.yaml")
    new_text = edit_schedule(schedule.path.read_text(encoding="utf-8"), doc, schedule, changes, nix_hashes)
    with tempfile.TemporaryDirectory(prefix="refresh-") as tmp:
        scratch = Path(tmp)
        for name in ("README.md", "lockfiles", "images", "nix"):
            src = root / name
            if src.is_dir():
                shutil.copytree(src, scratch / name)
            elif src.exists():
                shutil.copy2(src, scratch / name)
        (scratch / "schedule.yaml").write_text(new_text, encoding="utf-8")
        try:
            new_schedule = load_schedule(scratch / "schedule.yaml")
        except ScheduleError as exc:
            raise RefreshError(f"the refreshed schedule does not validate: {exc}") from None
        if relock is not None:
            relock(scratch, sorted({r for c in changes for r in c.runtimes}))
        render.apply(render.plan(new_schedule, scratch))
        written = []
        for path in sorted(p for p in scratch.rglob("*") if p.is_file()):
            rel = path.relative_to(scratch)
            target = root / rel
            data = path.read_bytes()
            if not target.exists() or target.read_bytes() != data:
                render.write_atomic(target, data)
                written.append(rel.as_posix())
        for gone in sorted((root / render.IMAGES_DIR).rglob("Dockerfile")):
            if not (scratch / gone.relative_to(root)).exists():
                gone.unlink()
                written.append(f"{gone.relative_to(root).as_posix()} (removed)")
    return changes, log, written


def default_relock() -> Callable[[Path, list[str]], None] | None:
    """Relock changed runtimes (a patch release moves the lock's target); a LockError becomes a RefreshError."""
    from . import locking

    def relock(root: Path, runtime_ids: list[str]) -> None:
        try:
            locking.relock_runtimes(root, runtime_ids)
        except locking.LockError as exc:
            raise RefreshError(str(exc)) from None

    return relock


def update_flake_inputs(root: Path) -> list[str]:
    """`nix flake update` (github inputs only), where Nix reaches GitHub."""
    nix = shutil.which("nix")
    if not nix:
        raise RefreshError("--only nix needs Nix (apt-get install nix-bin)")
    before = (root / "flake.lock").read_bytes()
    proc = subprocess.run(
        [nix, "--extra-experimental-features", "nix-command flakes", "flake", "update"], cwd=root, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        (root / "flake.lock").write_bytes(before)
        raise RefreshError(f"nix flake update failed: {proc.stderr.strip().splitlines()[-1:]}")
    return ["flake.lock"] if (root / "flake.lock").read_bytes() != before else []
