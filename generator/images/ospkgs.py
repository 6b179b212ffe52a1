"""OS package locks: resolve each closure inside the base with apt, and fetch the locked .debs.

`resolve` runs apt inside a container of the base (the pinned one, or one given for tests):
`apt-get update` against the archive's suites (apt checks their signatures with the base's own
keyring), then `apt-get install --print-uris` for the builder's build packages and for the final
stage's runtime packages: one line per .deb not yet in the base, the full closure as apt chooses
it. On the host, each InRelease apt read is verified again with gpgv, each Packages index against
its Release file's sha256, and every .deb is looked up there for its version, size, sha256 and
pocket. Nothing is guessed: a file no verified index lists is an error. The packages the base
already holds are recorded too (dpkg-query in it: name, version, architecture, source package),
so an image's SBOM can list everything installed in it.

`fetch` downloads the locked .debs for a build: the snapshot service first (the archive state the
lock names stays fetchable there after the archive drops a version), then the configured mirrors;
every file is checked against its sha256, and a wrong byte is refused with both hashes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import subprocess
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from generator.core import http
from generator.core.errors import GeneratorError
from generator.images import apt
from generator.schedule.decisions import OperatingSystem
from generator.schedule.lock import BasePackage, Deb, OsPackages

SNAPSHOT_SERVICE = "https://snapshot.ubuntu.com/ubuntu"
SNAPSHOT_ENV = "FLEX_PYTHON_APT_SNAPSHOT"  # the snapshot service's base URL ("" to skip it)
MIRRORS_ENV = "FLEX_PYTHON_APT_MIRRORS"  # comma-separated archive mirrors tried after the snapshot
ARCHIVE_ENV = "FLEX_PYTHON_APT_ARCHIVE"  # the archive `resolve` reads (default: the schedule's)
_LIST = re.compile(r"_dists_(?P<suite>[^_]+)_(?P<component>[^_]+)_binary-(?P<arch>[^_]+)_Packages$")
SETS = ("build", "runtime", "devel")  # the builder stage's, the runtime image's, the build image's
_URI = re.compile(r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+) (?P<hash>\S*)$")


class OsPackagesError(GeneratorError):
    """A package closure that could not be resolved or verified, or a .deb that could not be fetched intact."""


def snapshot_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


# --- resolve: apt inside the base --------------------------------------------------------------

_SCRIPT = r"""
set -eu
APT="-o Dir::Etc::SourceList=/out/sources.list -o Dir::Etc::SourceParts=/out/none -o Dir::State::Lists=/out/lists
 -o Dir::Cache=/tmp/apt -o Acquire::GzipIndexes=false -o Acquire::Languages=none -o APT::Sandbox::User=root
 -o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
mkdir -p /out/lists/partial /out/none /tmp/apt/archives/partial /out/keys
apt-get $APT update -qq >/out/update.log 2>&1 || { cat /out/update.log >&2; exit 3; }
for set in build runtime devel; do
  [ -s /out/$set.in ] || { : >/out/$set.uris; continue; }
  apt-get $APT install --print-uris -qq -y --no-install-recommends $(cat /out/$set.in) >/out/$set.uris 2>/out/$set.err \
    || { echo "apt-get install ($set): $(cat /out/$set.err)" >&2; exit 4; }
done
dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\t${db:Status-Abbrev}\n' >/out/base.txt
i=0
for k in /usr/share/keyrings/ubuntu-archive-keyring.gpg /etc/apt/trusted.gpg /etc/apt/trusted.gpg.d/*.gpg; do
  [ -f "$k" ] && cp "$k" /out/keys/base-$i.gpg && i=$((i+1))
done
chmod -R a+rX /out
"""


def resolve(
    base: str,
    sources: list[str],
    sets: dict[str, list[str]],
    *,
    engine: str = "podman",
    extra_sources: Iterable[str] = (),
    keyrings: Iterable[Path] = (),
    progress: Callable[[str], None] = lambda line: None,
) -> OsPackages:
    """The closures of `sets` ("build", "runtime" → package names) in `base`, at the archive state of now.

    `sources` are apt lines (`deb URL SUITE COMPONENT…`) checked with the base's keyring;
    `extra_sources` (a mirror of one's own, a test archive) with `keyrings`."""
    stamp = snapshot_now()
    with tempfile.TemporaryDirectory(prefix="ospkgs-") as tmp:
        out = Path(tmp)
        os.chmod(out, 0o777)
        rings = list(keyrings)
        lines = list(sources)
        if rings:  # the extra sources are signed by the extra keyrings, given to apt as one file
            (out / "extra.gpg").write_bytes(b"".join(Path(k).read_bytes() for k in rings))
            lines += [line.replace("deb ", "deb [signed-by=/out/extra.gpg] ", 1) for line in extra_sources]
        (out / "sources.list").write_text("\n".join(lines) + "\n")
        for name in SETS:
            (out / f"{name}.in").write_text(" ".join(sorted(sets.get(name, []))) + ("\n" if sets.get(name) else ""))
        cmd = [engine, "run", "--rm", "--network=host", "-v", f"{out}:/out", base, "sh", "-c", _SCRIPT]
        progress(f"resolving in {base}: apt-get update, then --print-uris for {', '.join(sets)}")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise OsPackagesError(f"apt in {base} failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")
        image_id = subprocess.run([engine, "image", "inspect", base, "--format", "{{.Id}}"], capture_output=True, text=True).stdout.strip()
        indices, dates = _verified_indices(out / "lists", sorted((out / "keys").glob("*.gpg")) + sorted(out.glob("extra.gpg")))
        base_packages = _base_packages((out / "base.txt").read_text())
        installed = {p.name for p in base_packages}
        closures = {name: _closure(out / f"{name}.uris", indices) for name in SETS}
    archive = sources[0].split("]")[-1].split()[1] if "]" in sources[0] else sources[0].split()[1]
    for name, debs in closures.items():
        missing = set(sets.get(name, [])) - installed - {d.name for d in debs}
        if missing:
            raise OsPackagesError(f"{name} packages {sorted(missing)} are neither in {base} nor in the closure apt printed")
    return OsPackages(
        archive=archive.rstrip("/"),
        snapshot=stamp,
        suites=dates,
        resolved_in=f"{base} (image id {image_id[:64] or 'unknown'})"[:500],
        evidence=(
            "apt-get install --print-uris in the base; sha256 from the Packages indices, each checked against its "
            "InRelease, which gpgv verified with the base's keyring"
        ),
        base=base_packages,
        build=closures["build"],
        runtime=closures["runtime"],
        devel=closures["devel"],
    )


def _base_packages(listing: str) -> list[BasePackage]:
    """dpkg-query's lines (name, version, architecture, source, source version, status) → the installed packages, sorted."""
    out = []
    for line in listing.splitlines():
        fields = line.split("\t")
        if len(fields) != 6:
            raise OsPackagesError(f"dpkg-query in the base printed an unexpected line: {line[:200]!r}")
        name, version, arch, source, source_version, status = fields
        if status[1:2] != "i":  # only what is installed (not a package removed with its configuration kept)
            continue
        out.append(BasePackage(name=name, version=version, architecture=arch, source=source or name, source_version=source_version or version))
    return sorted(out, key=lambda p: (p.name, p.architecture))


def _verified_indices(lists: Path, keyrings: list[Path]) -> tuple[dict[str, list[tuple[str, dict[str, str]]]], dict[str, str]]:
    """Filename → [(suite, stanza)] over every Packages index apt read, each verified; and suite → Release date."""
    releases: dict[str, apt.Release] = {}  # by list-file prefix (host, path, suite): two sources may share a suite name
    for path in sorted(lists.glob("*_InRelease")):
        prefix = path.name[: -len("_InRelease")]
        suite = prefix.rsplit("_dists_", 1)[1]
        releases[prefix] = apt.parse_release(_verify(path, keyrings), suite)
    by_file: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for path in sorted(lists.glob("*_Packages")):
        m = _LIST.search(path.name)
        prefix = path.name[: m.start()] + f"_dists_{m['suite']}" if m else ""
        if not m or prefix not in releases:
            raise OsPackagesError(f"{path.name}: an index without a verified InRelease")
        rel = releases[prefix]
        key = f"{m['component']}/binary-{m['arch']}/Packages"
        data = path.read_bytes()
        if key not in rel.sha256 or rel.sha256[key][0] != hashlib.sha256(data).hexdigest():
            raise OsPackagesError(f"{path.name}: its sha256 is not the one {m['suite']}'s signed Release file lists for {key}")
        for stanza in apt.paragraphs(data.decode("utf-8", "replace")):
            if "Filename" in stanza:
                by_file.setdefault(stanza["Filename"], []).append((m["suite"], stanza))
    dates: dict[str, str] = {}
    for r in releases.values():
        dates[r.suite] = "; ".join(filter(None, [dates.get(r.suite), f"Release Date: {r.date}"]))
    return by_file, dict(sorted(dates.items()))


def _verify(path: Path, keyrings: list[Path]) -> str:
    try:
        return apt.verify_inrelease(path.read_bytes(), keyrings, path.name)
    except apt.AptError as exc:
        raise OsPackagesError(f"{exc} (the base's keyring)") from exc


def _closure(uris: Path, indices: dict[str, list[tuple[str, dict[str, str]]]]) -> list[Deb]:
    out = []
    for line in uris.read_text().splitlines():
        m = _URI.match(line.strip())
        if not m:
            continue
        url = m["url"]
        if "/pool/" not in url:
            raise OsPackagesError(f"{url}: not an archive pool path")
        filename = "pool/" + urllib.parse.unquote(url.split("/pool/", 1)[1])
        found = indices.get(filename)
        if not found:
            raise OsPackagesError(f"{filename}: apt chose it, but no verified Packages index lists it")
        suite, stanza = sorted(found, key=lambda f: (not f[0].endswith("-security"), not f[0].endswith("-updates"), f[0]))[0]
        if int(stanza["Size"]) != int(m["size"]):
            raise OsPackagesError(f"{filename}: apt printed size {m['size']}, the index says {stanza['Size']}")
        algo, _, value = m["hash"].partition(":")
        field = {"SHA256": "SHA256", "SHA512": "SHA512", "SHA1": "SHA1", "MD5Sum": "MD5sum"}.get(algo)
        if value and field and stanza.get(field, value) != value:
            raise OsPackagesError(f"{filename}: apt printed {algo} {value}, the index says {stanza.get(field)}")
        source, source_version = apt.source_of(stanza)
        out.append(
            Deb(
                name=stanza["Package"],
                version=stanza["Version"],
                architecture=stanza["Architecture"],
                filename=filename,
                size=int(stanza["Size"]),
                sha256=stanza["SHA256"],
                suite=suite,
                source=source,
                source_version=source_version,
            )
        )
    return sorted(out, key=lambda d: (d.name, d.architecture))


# --- fetch: the locked files for a build -------------------------------------------------------


def mirrors(lock: OsPackages, extra: Iterable[str] = ()) -> list[str]:
    """Where .debs are fetched from, in order: the snapshot of the lock's archive state, then the mirrors."""
    snap = os.environ.get(SNAPSHOT_ENV, SNAPSHOT_SERVICE).rstrip("/")
    configured = [m.strip().rstrip("/") for m in os.environ.get(MIRRORS_ENV, "").split(",") if m.strip()]
    out = [f"{snap}/{lock.snapshot}"] if snap else []
    for m in [*extra, *configured] or [lock.archive]:
        if m.rstrip("/") not in out:
            out.append(m.rstrip("/"))
    return out


def fetch(debs: list[Deb], dest: Path, sources: list[str], *, jobs: int = 4) -> list[Path]:
    """Every .deb into `dest`, hash-checked, from the first source that has it. A mismatch is refused."""
    dead: set[str] = set()

    def one(deb: Deb) -> Path:
        target = dest / Path(deb.filename).name
        tried = []
        for base in sources:
            if base in dead:
                continue
            try:
                return http.fetch_verified(f"{base}/{deb.filename}", deb.sha256, target)
            except http.HttpError as exc:
                if "checksum mismatch" in str(exc) or "was altered" in str(exc):
                    raise OsPackagesError(f"{deb.name} {deb.version}: {exc}") from exc
                tried.append(str(exc))
                if "HTTP 4" not in str(exc):
                    dead.add(base)  # unreachable: do not wait on it for every other file
        raise OsPackagesError(f"{deb.name} {deb.version} ({deb.filename}) is on none of the mirrors: {'; '.join(tried) or 'none reachable'}")

    dest.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, debs))


# --- refresh: the OS package step ---------------------------------------------------------------


def sources_for(os_: OperatingSystem, archive: str | None = None) -> list[str]:
    url = (archive or os.environ.get(ARCHIVE_ENV) or os_.apt_archive).rstrip("/")
    return [f"deb {url} {suite} {' '.join(os_.apt_components)}" for suite in os_.apt_suites]


def moves(old: OsPackages | None, new: OsPackages) -> list[tuple[str, str | None, str | None, str]]:
    """(package, old version, new version, suite) for every package whose locked file changed, by name."""

    def table(lock: OsPackages | None) -> dict[str, Deb]:
        return {} if lock is None else {d.name: d for kind in SETS for d in getattr(lock, kind)}

    before, after = table(old), table(new)
    out = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a is None or b is None or (a.version, a.sha256) != (b.version, b.sha256):
            out.append((name, a.version if a else None, b.version if b else None, d.suite if (d := b or a) else ""))
    return out


def base_moves(old: OsPackages | None, new: OsPackages) -> list[tuple[str, str | None, str | None]]:
    """(package, old version, new version) for every package of the base that changed, by name."""
    was = {} if old is None else {p.name: p.version for p in old.base}
    now = {p.name: p.version for p in new.base}
    return [(name, was.get(name), now.get(name)) for name in sorted(set(was) | set(now)) if was.get(name) != now.get(name)]


def same_files(a: OsPackages | None, b: OsPackages) -> bool:
    """Nothing an image holds moved: the same .debs, and the same packages in the base."""
    key = lambda lock: ([[(d.filename, d.sha256) for d in debs] for debs in (lock.build, lock.runtime, lock.devel)], lock.base)  # noqa: E731
    return a is not None and key(a) == key(b)
