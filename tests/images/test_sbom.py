"""`sbom`: every runtime's SPDX and CycloneDX documents validate with their libraries' validators and
list exactly what the lock says the image holds; the same lock gives the same bytes; `publish-sbom`
pushes them beside an image in a real registry on 127.0.0.1, from which they are read back.

Expected values are read from the lock files as JSON here, never from today's versions.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from generator.core import paths
from generator.images import sbom
from generator.schedule import runtimes as schedule
from tests.conftest import ROOT, SCHEDULE
from tests.refresh.test_refresh import oci_layout, push, registry_server  # noqa: F401 (a fixture)

SCHED = schedule.load(SCHEDULE)
LOCK = json.loads((ROOT / paths.SCHEDULE_LOCK).read_text())
RUNTIMES = json.loads((ROOT / paths.RUNTIMES_JSON).read_text())["runtimes"]


def expected(runtime_id: str, root: Path = ROOT) -> dict[str, set]:
    """What the image holds, by kind, straight from the lock's JSON: (name, version, sha256 or None)."""
    entry = RUNTIMES[runtime_id]
    lock = json.loads((root / paths.SCHEDULE_LOCK).read_text())
    packages = lock["os_packages"][entry["operating_system"]]
    debs = {p["name"]: (p["name"], p["version"], None) for p in packages["base"]}
    debs.update({d["name"]: (d["name"], d["version"], d["sha256"]) for d in packages["runtime"]})  # apt upgrades them
    release = lock["cpython"][entry["python"]["version"]]
    wheels = json.loads((root / paths.LOCKFILES / f"{runtime_id}.wheels.json").read_text())
    return {
        "deb": set(debs.values()),
        "pypi": {(w["name"], w["version"], w["sha256"]) for w in wheels},
        "generic": {("cpython", entry["python"]["version"], release["tar_xz_sha256"] or release["sha256"])},
        "oci": {(entry["base"]["name"], entry["base"]["digest"], None)},
    }


def spdx_listed(doc: dict) -> dict[str, set]:
    out: dict[str, set] = {}
    for p in doc["packages"]:
        if p["SPDXID"] == "SPDXRef-image":
            continue
        (ref,) = [r["referenceLocator"] for r in p["externalRefs"] if r["referenceType"] == "purl"]
        sha = [c["checksumValue"] for c in p.get("checksums", []) if c["algorithm"] == "SHA256"]
        out.setdefault(ref.split(":", 1)[1].split("/", 1)[0], set()).add((p["name"], p["versionInfo"], sha[0] if sha else None))
    return out


def cyclonedx_listed(doc: dict) -> dict[str, set]:
    out: dict[str, set] = {}
    for c in doc["components"]:
        sha = [h["content"] for h in c.get("hashes", []) if h["alg"] == "SHA-256"]
        out.setdefault(c["purl"].split(":", 1)[1].split("/", 1)[0], set()).add((c["name"], c["version"], sha[0] if sha else None))
    return out


@pytest.mark.parametrize("runtime_id", list(RUNTIMES))
def test_every_runtime_validates_and_lists_exactly_the_lock(runtime_id: str, tmp_path: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    inv = sbom.inventory(SCHED, SCHED.runtimes[runtime_id])
    spdx, cdx = sbom.spdx_json(inv), sbom.cyclonedx_json(inv, validate=False)  # validated below, from the bytes
    (tmp_path / "x.spdx.json").write_text(spdx)
    assert validate_full_spdx_document(parse_file(str(tmp_path / "x.spdx.json")), "SPDX-2.3") == []
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx) is None

    want = expected(runtime_id)
    doc, bom = json.loads(spdx), json.loads(cdx)
    assert spdx_listed(doc) == want
    assert cyclonedx_listed(bom) == want
    # the image contains every package; the document describes the image
    ids = {p["SPDXID"] for p in doc["packages"]} - {"SPDXRef-image"}
    rel = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in doc["relationships"]}
    assert rel == {("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-image")} | {("SPDXRef-image", "CONTAINS", i) for i in ids}
    assert [d["dependsOn"] for d in bom["dependencies"] if d["ref"] == "image"] == [sorted(c["bom-ref"] for c in bom["components"])]
    # deterministic fields: the source date epoch, names made from the input hash
    hex_ = RUNTIMES[runtime_id]["input_hash"].removeprefix("sha256:")
    assert doc["creationInfo"]["created"] == "1970-01-01T00:00:01Z" and bom["metadata"]["timestamp"].startswith("1970-01-01T00:00:01")
    assert doc["documentNamespace"].endswith(f"/spdx/{runtime_id}-{hex_}")
    assert bom["serialNumber"] == f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, doc['documentNamespace'])}"


@pytest.mark.parametrize("runtime_id", ["python311-ubuntu22", "python2"])
def test_a_build_image_sbom_adds_exactly_the_devel_closure(cli, runtime_id: str) -> None:
    """`sbom --build-image`: the runtime image's contents, upgraded and extended by the OS's build-image closure in the lock."""
    result = cli("sbom", runtime_id, "--build-image", "--format", "cyclonedx-json")
    assert result.exit_code == 0, result.stderr
    bom = json.loads(result.stdout)
    want = expected(runtime_id)
    devel = LOCK["os_packages"][RUNTIMES[runtime_id]["operating_system"]]["devel"]
    assert devel, "the lock has a build-image closure"
    debs = {d[0]: d for d in want["deb"]} | {d["name"]: (d["name"], d["version"], d["sha256"]) for d in devel}
    assert cyclonedx_listed(bom) == {**want, "deb": set(debs.values())}
    assert bom["metadata"]["component"]["name"] == f"{runtime_id}-build"
    plain = json.loads(cli("sbom", runtime_id, "--format", "cyclonedx-json").stdout)
    assert bom["serialNumber"] != plain["serialNumber"]


def test_licenses_only_where_known() -> None:
    doc = json.loads(sbom.render_sbom(SCHED, SCHED.runtimes["python312-ubuntu24"], "spdx-json"))
    declared = {p["name"]: p.get("licenseDeclared") for p in doc["packages"] if p["SPDXID"] != "SPDXRef-image"}
    assert declared.pop("cpython") == "PSF-2.0"
    assert set(declared.values()) == {"NOASSERTION"}  # the lock records no license for .debs or tools


def test_purls() -> None:
    r = SCHED.runtimes["python311-ubuntu22"]
    purls = {i.kind: i.purl for i in sbom.inventory(SCHED, r).items}
    base = LOCK["base_images"]["ubuntu22"]["digest"]
    assert purls["oci"] == f"pkg:oci/ubuntu@{base}?repository_url=docker.io/library/ubuntu&tag=22.04"
    assert purls["cpython"] == f"pkg:generic/cpython@{r.version}?download_url=https://www.python.org/ftp/python/{r.version}/Python-{r.version}.tar.xz"
    libc6 = next(p for p in LOCK["os_packages"]["ubuntu22"]["base"] if p["name"] == "libc6")
    assert f"pkg:deb/ubuntu/libc6@{libc6['version']}?arch=amd64&distro=ubuntu-22.04&upstream=glibc" in {
        i.purl for i in sbom.inventory(SCHED, r).items
    }


# --- the command: stdout or a file, the same bytes each time; errors ------------------------------------


def test_stdout_and_file_are_the_same_bytes_every_time(cli, tmp_path: Path) -> None:
    first = cli("sbom", "python37")
    assert first.exit_code == 0, first.stderr
    assert cli("sbom", "python37").stdout == first.stdout
    out = tmp_path / "p37.spdx.json"
    res = cli("sbom", "python37", "-o", str(out))
    assert res.exit_code == 0 and res.stdout == "" and f"wrote {out}" in res.stderr
    assert out.read_text() == first.stdout and hashlib.sha256(out.read_bytes()).hexdigest() in res.stderr
    cdx = cli("sbom", "python37", "--format", "cyclonedx-json")
    assert cdx.exit_code == 0 and json.loads(cdx.stdout)["bomFormat"] == "CycloneDX"


def test_a_moved_pin_changes_the_documents(cli, tree: Path) -> None:
    before = json.loads(cli("sbom", "python311-ubuntu22", schedule=tree / paths.SCHEDULE).stdout)
    path = tree / paths.SCHEDULE_LOCK
    data = json.loads(path.read_text())
    base = data["os_packages"]["ubuntu22"]["base"]
    moved = next(p for p in base if p["name"] not in {d["name"] for d in data["os_packages"]["ubuntu22"]["runtime"]})
    moved["version"] += "+1"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    assert cli("generate", schedule=tree / paths.SCHEDULE).exit_code == 0
    after = json.loads(cli("sbom", "python311-ubuntu22", schedule=tree / paths.SCHEDULE).stdout)
    new_hash = json.loads((tree / paths.RUNTIMES_JSON).read_text())["runtimes"]["python311-ubuntu22"]["input_hash"]
    assert after["documentNamespace"] != before["documentNamespace"] and after["documentNamespace"].endswith(new_hash.removeprefix("sha256:"))
    assert (moved["name"], moved["version"], None) in spdx_listed(after)["deb"]
    other = cli("sbom", "python312-ubuntu24", schedule=tree / paths.SCHEDULE).stdout  # another OS: unchanged
    assert other == cli("sbom", "python312-ubuntu24").stdout


def test_unknown_runtime_names_the_choices(cli) -> None:
    res = cli("sbom", "python99")
    assert res.exit_code == 2 and "unknown runtime 'python99'; valid choices: " in res.stderr and "python311-ubuntu22" in res.stderr


def test_a_lock_without_the_base_packages_is_refused(cli, tree: Path) -> None:
    data = json.loads((tree / paths.SCHEDULE_LOCK).read_text())
    data["os_packages"]["ubuntu16"]["base"] = []  # as in a lock made before the base's packages were recorded
    (tree / paths.SCHEDULE_LOCK).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    res = cli("sbom", "python2", schedule=tree / paths.SCHEDULE)
    assert res.exit_code == 2 and res.stdout == ""
    assert "ubuntu16's package lock in lockfiles/schedule.lock.json lists no packages of its base" in res.stderr
    assert "refresh --only packages ubuntu16" in res.stderr
    if shutil.which("podman"):  # build makes the SBOM first: refused before anything is fetched or built
        res = cli("build", "python2", schedule=tree / paths.SCHEDULE)
        assert res.exit_code == 2 and "lists no packages of its base" in res.stderr and "step" not in res.stderr
    del data["os_packages"]["ubuntu16"]  # no package lock at all: the schedule says so first
    (tree / paths.SCHEDULE_LOCK).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    res = cli("sbom", "python2", schedule=tree / paths.SCHEDULE)
    assert res.exit_code == 2 and "has no package lock for it" in res.stderr


def test_a_runtime_without_its_tool_lock_is_refused(cli, tree: Path, tmp_path: Path) -> None:
    (tree / paths.LOCKFILES / "python36.wheels.json").unlink()
    out = tmp_path / "never.json"
    res = cli("sbom", "python36", "-o", str(out), schedule=tree / paths.SCHEDULE)
    assert res.exit_code == 2 and "python36 has no tool lock" in res.stderr and "generator lock python36" in res.stderr
    assert not out.exists()


def test_labels_carry_each_documents_sha256(tmp_path: Path) -> None:
    r = SCHED.runtimes["python35"]
    docs = sbom.documents(SCHED, r)
    paths = sbom.write(docs, r.id, tmp_path)
    assert [p.name for p in paths] == ["python35.cdx.json", "python35.spdx.json"]
    labels = sbom.labels(docs)
    assert labels == {
        "flex-python.sbom.cyclonedx-json.sha256": hashlib.sha256((tmp_path / "python35.cdx.json").read_bytes()).hexdigest(),
        "flex-python.sbom.spdx-json.sha256": hashlib.sha256((tmp_path / "python35.spdx.json").read_bytes()).hexdigest(),
    }


# --- publish-sbom: an OCI artifact beside the image, in a real registry ----------------------------------


def _get(url: str, accept: str = "") -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


@pytest.mark.registry
def test_publish_pushes_the_documents_the_image_carries_and_they_read_back(cli, registry_server, tmp_path: Path) -> None:  # noqa: F811
    host, rid = registry_server["host"], "python311-ubuntu22"
    docs = sbom.documents(SCHED, SCHED.runtimes[rid])
    sbom.write(docs, rid, tmp_path / "sbom")
    digest = oci_layout(tmp_path / "image", b"an image carrying its SBOM labels\n", labels=sbom.labels(docs))
    push(tmp_path / "image", host, f"flex/{rid}:1")
    res = cli("publish-sbom", rid, f"{host}/flex/{rid}@{digest}", "--sbom-dir", str(tmp_path / "sbom"), "--no-tls-verify")
    assert res.exit_code == 0, res.stderr
    tag = digest.replace(":", "-") + ".sbom"
    assert f"published {host}/flex/{rid}:{tag}" in res.stdout and f"subject {host}/flex/{rid}@{digest}" in res.stdout

    status, raw = _get(f"http://{host}/v2/flex/{rid}/manifests/{tag}", "application/vnd.oci.image.manifest.v1+json")
    assert status == 200 and f"artifact digest: sha256:{hashlib.sha256(raw).hexdigest()}" in res.stdout
    manifest = json.loads(raw)
    assert manifest["subject"]["digest"] == digest and manifest["artifactType"] == "application/spdx+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    got = {}
    for layer in manifest["layers"]:
        status, blob = _get(f"http://{host}/v2/flex/{rid}/blobs/{layer['digest']}")
        assert status == 200 and hashlib.sha256(blob).hexdigest() == layer["digest"].removeprefix("sha256:")
        got[(layer["mediaType"], layer["annotations"]["org.opencontainers.image.title"])] = blob.decode()
    assert got == {
        ("application/spdx+json", f"{rid}.spdx.json"): docs["spdx-json"],
        ("application/vnd.cyclonedx+json", f"{rid}.cdx.json"): docs["cyclonedx-json"],
    }


@pytest.mark.registry
def test_publish_refuses_files_the_image_does_not_carry(cli, registry_server, tmp_path: Path) -> None:  # noqa: F811
    host, rid = registry_server["host"], "python310-ubuntu22"
    docs = sbom.documents(SCHED, SCHED.runtimes[rid])
    sbom.write(docs, rid, tmp_path / "sbom")
    digest = oci_layout(tmp_path / "image", b"an image with other labels\n", labels={sbom.LABEL["spdx-json"]: "0" * 64})
    push(tmp_path / "image", host, f"flex/{rid}:1")
    res = cli("publish-sbom", rid, f"{host}/flex/{rid}:1", "--sbom-dir", str(tmp_path / "sbom"), "--no-tls-verify")
    assert res.exit_code == 2 and f"{rid}.spdx.json (sha256 {sbom.sha256_of(docs['spdx-json'])}) is not the SBOM" in res.stderr
    assert f"its label {sbom.LABEL['spdx-json']} is {'0' * 64}" in res.stderr
    assert _get(f"http://{host}/v2/flex/{rid}/manifests/{digest.replace(':', '-')}.sbom")[0] == 404  # nothing pushed
    res = cli("publish-sbom", rid, f"{host}/flex/{rid}:1", "--sbom-dir", str(tmp_path / "nowhere"), "--no-tls-verify")
    assert res.exit_code == 2 and "python310-ubuntu22.spdx.json is missing" in res.stderr
