"""Scanner-ready SBOMs: every deb purl names its source package (`upstream=`), as the archive does.

A CVE is filed against a source package (openssl), an image holds binary packages (libssl3): a
scanner matches them only through the purl's `upstream=` qualifier (syft's form: the source name,
and `@version` where the source version is not the binary's). The lock records each `.deb`'s source;
here it is compared with the archive's own signed Packages indices, field by field, parsed here,
not by the generator's parser.
"""

from __future__ import annotations

import json
import re
import urllib.parse

import pytest

from generator.core import paths
from generator.images import apt, sbom
from generator.schedule import lock as schedule_lock
from generator.schedule import runtimes as schedule
from tests.conftest import ROOT, SCHEDULE
from tests.ubuntu import UBUNTU, keyring

SCHED = schedule.load(SCHEDULE)
LOCK = json.loads((ROOT / "lockfiles" / "schedule.lock.json").read_text())


def _upstream(purl: str) -> str | None:
    query = purl.partition("?")[2]
    values = urllib.parse.parse_qs(query).get("upstream")
    return values[0] if values else None


@pytest.mark.parametrize("build_image", [False, True], ids=["runtime", "build"])
def test_every_deb_purl_of_every_sbom_names_its_source(build_image: bool) -> None:
    """All 14 runtimes (and their build images): each deb purl has upstream=, equal to the lock's source."""
    count = 0
    for r in SCHED.runtimes.values():
        packages = LOCK["os_packages"][r.os_id]
        source = {(p["name"], p["version"]): (p["source"], p["source_version"]) for key in ("base", "runtime", "devel") for p in packages[key]}
        for item in sbom.inventory(SCHED, r, build_image=build_image).items:
            if item.kind != "deb":
                continue
            name, version = source[(item.name, item.version)]
            assert _upstream(item.purl) == (name if version == item.version else f"{name}@{version}"), f"{r.id}: {item.purl}"
            count += 1
    assert count > 14 * 80  # every runtime's image holds its base's packages (81-99) and more
    print(f"deb purls with upstream= ({'build' if build_image else 'runtime'} images): {count}")


def test_a_lock_deb_without_its_source_is_refused() -> None:
    data = json.loads((ROOT / paths.SCHEDULE_LOCK).read_text())
    del data["os_packages"]["ubuntu22"]["runtime"][0]["source"]
    with pytest.raises(
        schedule_lock.ScheduleLockError,
        match=r"os_packages\.ubuntu22\.runtime: .* does not name its source package; remake it with `refresh --only packages ubuntu22`",
    ):
        schedule_lock.loads(json.dumps(data))


def test_source_field_forms() -> None:
    assert apt.source_of({"Package": "libssl3", "Version": "3.0.2-0ubuntu1.30", "Source": "openssl"}) == ("openssl", "3.0.2-0ubuntu1.30")
    assert apt.source_of({"Package": "bsdutils", "Version": "1:2.37.2-4ubuntu3", "Source": "util-linux (2.37.2-4ubuntu3)"}) == (
        "util-linux",
        "2.37.2-4ubuntu3",
    )
    assert apt.source_of({"Package": "bash", "Version": "5.1-6ubuntu1"}) == ("bash", "5.1-6ubuntu1")


_SOURCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9+.-]*)(?: \((?P<version>[^)]+)\))?$")


@pytest.mark.archive
@pytest.mark.parametrize("os_id", ["ubuntu22", "ubuntu24"])
def test_the_lock_sources_are_the_archives_source_fields(os_id: str) -> None:
    """Each `.deb` of the lock's closures, found in the archive's signed main index by pool path and
    sha256, and each base package found there by name, version and architecture: its `Source:` field
    (or its own name and version when there is none) is the lock's, and the SBOM's upstream= says it."""
    lock = LOCK["os_packages"][os_id]
    by_file: dict[tuple[str, str], dict[str, str]] = {}
    by_key: dict[tuple[str, str, str], dict[str, str]] = {}
    for suite in sorted(lock["suites"]):
        rel = apt.release(UBUNTU, suite, keyring())
        for stanza in apt.packages_index(UBUNTU, rel, "main", "amd64").packages.values():
            by_file[(stanza["Filename"], stanza["SHA256"])] = stanza
            by_key[(stanza["Package"], stanza["Version"], stanza["Architecture"])] = stanza
    compared, differ = 0, 0
    for key in ("base", "build", "runtime", "devel"):
        for p in lock[key]:
            stanza = by_file.get((p["filename"], p["sha256"])) if "filename" in p else by_key.get((p["name"], p["version"], p["architecture"]))
            if stanza is None:
                continue  # a universe package, or a base package whose version the pockets no longer list
            m = _SOURCE.match(stanza.get("Source", p["name"]))
            assert m, stanza.get("Source")
            want = (m["name"], m["version"] or stanza["Version"])
            assert (p["source"], p["source_version"]) == want, f"{os_id}.{key}: {p['name']} {p['version']}"
            compared += 1
            differ += want[0] != p["name"]
    total = sum(len(lock[k]) for k in ("base", "build", "runtime", "devel"))
    assert compared > total * 0.8, f"only {compared} of {total} packages found in the archive's main indices"
    assert differ > 20  # libssl3 → openssl, bsdutils → util-linux, …: the field is not just the name again
    print(f"{os_id}: {compared} of {total} locked packages compared with the archive's Source: fields; {differ} have another source name")
    libssl = next(
        i for i in sbom.inventory(SCHED, SCHED.runtimes[next(r for r in SCHED.runtimes if r.endswith(os_id))]).items if i.name.startswith("libssl")
    )
    assert _upstream(libssl.purl) == "openssl", libssl.purl


def test_the_one_off_filler_takes_each_source_from_its_stanza_and_names_a_deb_no_index_lists() -> None:
    import dataclasses

    from generator.core.errors import GeneratorError
    from generator.images import debsources

    lock = SCHED.pins.os_packages["ubuntu22"]
    bare = dataclasses.replace(
        lock, **{k: [dataclasses.replace(d, source=None, source_version=None) for d in getattr(lock, k)] for k in debsources.SETS}
    )
    stanzas = {
        (d.filename, d.sha256): {"Package": d.name, "Version": d.version, "Source": f"src-{d.name} (9:{d.version})"}
        for k in debsources.SETS
        for d in getattr(lock, k)
    }
    filled = debsources.filled(bare, stanzas, "ubuntu22")
    assert all(d.source == f"src-{d.name}" and d.source_version == f"9:{d.version}" for k in debsources.SETS for d in getattr(filled, k))
    victim = lock.runtime[0]
    del stanzas[(victim.filename, victim.sha256)]
    with pytest.raises(GeneratorError, match=rf"no verified Packages index of {lock.archive} lists ubuntu22\.runtime: {re.escape(victim.filename)}"):
        debsources.filled(bare, stanzas, "ubuntu22")
