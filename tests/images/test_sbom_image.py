"""The SBOM against a real image: every .deb dpkg knows in the image and every distribution in /env is
in the SBOM made from the lock, and nothing else; the image's labels carry the SBOM's sha256.

The image is the session's python311-ubuntu22 on a real Ubuntu 22.04 root (image_fixtures.py); its
SBOM is made from the same test tree with `python -m generator sbom`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from generator.images import sbom
from tests.image_fixtures import RUNTIME, gen, podman

pytestmark = [pytest.mark.image, pytest.mark.usefixtures("need_podman")]


def inside(image: dict, *cmd: str) -> str:
    return podman("run", "--rm", "--network=none", image["tag"], *cmd).stdout


def listed(doc: dict, kind: str) -> set[tuple[str, ...]]:
    """(name, version[, arch]) of the SPDX document's packages whose purl is of this type."""
    out = set()
    for p in doc["packages"]:
        purl = next(r["referenceLocator"] for r in p["externalRefs"] if r["referenceType"] == "purl")
        if purl.startswith(f"pkg:{kind}/"):
            arch = [q.split("=", 1)[1] for q in purl.split("?", 1)[1].split("&") if q.startswith("arch=")] if kind == "deb" else []
            out.add((p["name"], p["versionInfo"], *arch))
    return out


def test_the_sbom_lists_exactly_the_debs_and_distributions_in_the_image(image: dict, test_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / f"{RUNTIME}.spdx.json"
    gen(test_tree, "sbom", RUNTIME, "-o", str(out))
    doc = json.loads(out.read_text())
    bom = json.loads(gen(test_tree, "sbom", RUNTIME, "--format", "cyclonedx-json").stdout)

    query = inside(image, "dpkg-query", "-W", "-f", "${Package}\\t${Version}\\t${Architecture}\\t${db:Status-Abbrev}\\n")
    rows = [line.split("\t") for line in query.splitlines()]
    assert rows and all(status.strip() == "ii" for *_, status in rows), "every package dpkg knows in the image is installed"
    debs = {(name, version, arch) for name, version, arch, _ in rows}
    assert listed(doc, "deb") == debs

    dists = json.loads(inside(image, "/env/bin/python", "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"))
    in_env = {(canonicalize_name(d["name"]), d["version"]) for d in dists}
    assert listed(doc, "pypi") == in_env

    # CycloneDX says the same
    cdx = {(c["purl"].split("/", 1)[0], c["name"], c["version"]) for c in bom["components"]}
    assert {(n, v) for kind, n, v in cdx if kind == "pkg:deb"} == {(n, v) for n, v, _ in debs}
    assert {(n, v) for kind, n, v in cdx if kind == "pkg:pypi"} == in_env
    # and the interpreter is the one it names
    (cpython,) = listed(doc, "generic")
    assert inside(image, "python", "--version").strip() == f"Python {cpython[1]}"
    print(f"\n{RUNTIME}: {len(debs)} .debs (dpkg-query) and {len(in_env)} distributions in /env (pip list) are exactly the SBOM's")


def test_the_image_carries_the_sboms_sha256_and_build_wrote_them_beside_it(image: dict, test_tree: Path) -> None:
    labels = json.loads(podman("image", "inspect", image["tag"]).stdout)[0]["Config"]["Labels"]
    for fmt in sbom.FORMATS:
        made = gen(test_tree, "sbom", RUNTIME, "--format", fmt).stdout
        written = test_tree / "build" / "sbom" / sbom.file_name(RUNTIME, fmt)
        assert written.read_text() == made and f"sbom:     {written}" in image["stdout"]
        assert labels[sbom.LABEL[fmt]] == hashlib.sha256(made.encode()).hexdigest()
