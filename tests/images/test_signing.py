"""Signed images, provenance from the lock, verification before use: real cosign (Debian trixie's), a
real docker-registry on 127.0.0.1, test key pairs made by cosign itself.

Each image here is a one-layer OCI image whose labels are the ones `build` gives a runtime image (its
runtime id, the sha256 of the SBOMs the lock makes): signature, provenance and SBOM checks need
nothing else of it. test_image-style real builds are in test_signing_image.py. Expected values are
read from the lock and the documents the tree makes, never typed here.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from generator.images import cosign, provenance, sbom, signing
from generator.schedule import runtimes as schedule
from tests.conftest import ROOT, copy_tree, edit
from tests.refresh.test_refresh import commit, git, oci_layout, push, registry_server  # noqa: F401 (a fixture)

RUNTIME = "python311-ubuntu22"


@pytest.fixture(scope="module")
def cosign_bin() -> str:
    """trixie's cosign, fetched through Debian's signed indices (the route ci/dev.sh setup takes)."""
    return str(cosign.install())


def keypair(directory: Path, cosign_bin: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run([cosign_bin, "generate-key-pair"], cwd=directory, env={**os.environ, "COSIGN_PASSWORD": ""}, check=True, capture_output=True)
    return directory / "cosign.key", directory / "cosign.pub"


@pytest.fixture(scope="module")
def keys(tmp_path_factory, cosign_bin: str) -> dict[str, tuple[Path, Path]]:
    """Two key pairs: "ours" (the schedule's public key) and "other" (a stranger's)."""
    root = tmp_path_factory.mktemp("keys")
    return {name: keypair(root / name, cosign_bin) for name in ("ours", "other")}


def signed_tree(dest: Path, public_key: Path, host: str | None, src: Path = ROOT) -> Path:
    """A copy of `src`'s inputs, its policy the test key, a git commit; with `host`, its images published to
    that registry (publish.repository is in the image's SBOM: a tree whose images are built elsewhere keeps it)."""
    tree = copy_tree(dest, src)
    (tree / "keys").mkdir()
    shutil.copy(public_key, tree / "keys" / "cosign.pub")
    if host:
        edit(tree / "schedule.yaml", "  repository: ghcr.io/appengine-flex-python/runtimes\n", f"  repository: {host}/flex\n")
    edit(
        tree / "schedule.yaml",
        "  source: https://github.com/appengine-flex-python/runtimes\n",
        "  source: https://github.com/appengine-flex-python/runtimes\n  signing:\n    public_key: keys/cosign.pub\n",
    )
    git(tree, "init", "-q")
    commit(tree, "tree")
    return tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory, keys, registry_server) -> Path:  # noqa: F811
    return signed_tree(tmp_path_factory.mktemp("tree"), keys["ours"][1], registry_server["host"])


def image(tree: Path, host: str, tag: str, content: bytes, tmp: Path, labels: dict[str, str] | None = None) -> str:
    """A one-layer image labelled as RUNTIME's image is (or with `labels`), pushed; NAME@digest."""
    sched = schedule.load(tree / "schedule.yaml")
    if labels is None:
        labels = {**sbom.labels(sbom.documents(sched, sched.runtimes[RUNTIME])), "flex-python.runtime-id": RUNTIME}
    layout = tmp / tag
    digest = oci_layout(layout, content, labels)
    push(layout, host, f"flex/{RUNTIME}:{tag}")
    return f"{host}/flex/{RUNTIME}@{digest}"


def gen(cli, tree: Path, *args: str):
    return cli("--schedule", str(tree / "schedule.yaml"), *args)


def cosign_run(cosign_bin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([cosign_bin, *args], capture_output=True, text=True, env={**os.environ, "COSIGN_PASSWORD": ""})


HTTP = ("--allow-http-registry", "--allow-insecure-registry")


def test_sign_then_verify_and_stock_cosign_accepts_it(cli, tree: Path, keys, registry_server, cosign_bin: str, tmp_path: Path) -> None:  # noqa: F811
    ref = image(tree, registry_server["host"], "good", b"good\n", tmp_path)
    out = tmp_path / "provenance.json"
    signed = gen(cli, tree, "sign", RUNTIME, ref, "--key", str(keys["ours"][0]), "--provenance-out", str(out))
    assert signed.exit_code == 0, signed.output
    res = gen(cli, tree, "verify", ref)
    print(res.output)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert [line.split(":")[0:2] for line in lines[:3]] == [["signature", " ok"], ["provenance", " ok"], ["sbom", " ok"]]
    assert lines[-1] == f"verified: {ref} is {RUNTIME}"

    # the stock tool accepts the signature and the SLSA v1 attestation, with the public key in the tree
    pub = str(tree / "keys" / "cosign.pub")
    assert cosign_run(cosign_bin, "verify", *HTTP, "--key", pub, "--insecure-ignore-tlog=true", ref).returncode == 0
    att = cosign_run(cosign_bin, "verify-attestation", *HTTP, "--key", pub, "--insecure-ignore-tlog=true", "--type", "slsaprovenance1", ref)
    assert att.returncode == 0, att.stderr
    attested = json.loads(base64.b64decode(json.loads(att.stdout.splitlines()[0])["payload"]))
    written = json.loads(out.read_text())
    provenance.validate(written)  # the statement `sign` wrote: in-toto Statement v1, SLSA Provenance v1
    assert attested["predicate"] == written["predicate"]
    assert attested["subject"][0]["digest"] == written["subject"][0]["digest"] == {"sha256": ref.rsplit(":", 1)[1]}
    # every .deb of the lock's closures, the base, the tarball and each wheel is named, with the lock's digest
    lock = json.loads((tree / "lockfiles" / "schedule.lock.json").read_text())["os_packages"]["ubuntu22"]
    deps = {d["name"]: d["digest"] for d in written["predicate"]["buildDefinition"]["resolvedDependencies"]}
    for kind in ("build", "runtime"):
        for d in lock[kind]:
            assert deps[f"deb:{kind}:{d['name']}:{d['architecture']}"] == {"sha256": d["sha256"]}
    wheels = json.loads((tree / "lockfiles" / f"{RUNTIME}.wheels.json").read_text())
    assert {f"pypi:{w['filename']}": {"sha256": w["sha256"]} for w in wheels}.items() <= deps.items()
    commit_hash = git(tree, "rev-parse", "HEAD").strip()
    assert deps["source:https://github.com/appengine-flex-python/runtimes"] == {"gitCommit": commit_hash}


def test_an_unsigned_image_under_the_runtimes_name_fails(cli, tree: Path, registry_server, tmp_path: Path) -> None:  # noqa: F811
    ref = image(tree, registry_server["host"], "unsigned", b"unsigned\n", tmp_path)  # the right labels, no signature
    res = gen(cli, tree, "verify", ref)
    print(res.output)  # the verdict lines, in the log
    assert res.exit_code == 1, res.output
    assert "signature: FAIL: no signature by key" in res.output
    assert "provenance: FAIL: no SLSA v1 provenance signed by key" in res.output
    assert res.output.splitlines()[-2] == f"NOT VERIFIED: {ref}" or f"NOT VERIFIED: {ref}" in res.output


def test_an_image_signed_by_another_key_fails(cli, tree: Path, keys, registry_server, tmp_path: Path) -> None:  # noqa: F811
    ref = image(tree, registry_server["host"], "stranger", b"stranger\n", tmp_path)
    assert gen(cli, tree, "sign", RUNTIME, ref, "--key", str(keys["other"][0])).exit_code == 0
    res = gen(cli, tree, "verify", ref)
    print(res.output)  # the verdict lines, in the log
    assert res.exit_code == 1, res.output
    assert f"signature: FAIL: no signature by key {tree.resolve() / 'keys' / 'cosign.pub'}" in res.output
    assert "provenance: FAIL" in res.output and "sbom: FAIL" in res.output


def test_a_provenance_naming_another_deb_hash_fails(cli, tree: Path, keys, registry_server, tmp_path: Path) -> None:  # noqa: F811
    ref = image(tree, registry_server["host"], "otherdeb", b"otherdeb\n", tmp_path)
    sched = schedule.load(tree / "schedule.yaml")
    r = sched.runtimes[RUNTIME]
    pred = provenance.predicate(sched, r, git(tree, "rev-parse", "HEAD").strip())
    deps = pred["buildDefinition"]["resolvedDependencies"]
    victim = next(d for d in deps if d["name"].startswith("deb:runtime:"))
    locked = victim["digest"]["sha256"]
    victim["digest"] = {"sha256": "0" * 64}
    key = keys["ours"][0]
    signing.sign(ref, key)
    signing.attest(ref, provenance.dumps(pred), "slsaprovenance1", key)
    for fmt, text in sbom.documents(sched, r).items():
        signing.attest(ref, text, signing.SBOM_TYPE[fmt], key)
    res = gen(cli, tree, "verify", ref)
    print(res.output)  # the verdict lines, in the log
    assert res.exit_code == 1, res.output
    assert "signature: ok" in res.output and "sbom: ok" in res.output
    assert f"provenance: FAIL: {victim['name']}: the statement names sha256 {'0' * 64}, the lock pins sha256 {locked}" in res.output


def test_a_tampered_sbom_fails(cli, tree: Path, keys, registry_server, tmp_path: Path) -> None:  # noqa: F811
    ref = image(tree, registry_server["host"], "tampered", b"tampered\n", tmp_path)
    sched = schedule.load(tree / "schedule.yaml")
    r = sched.runtimes[RUNTIME]
    key = keys["ours"][0]
    signing.sign(ref, key)
    signing.attest(ref, provenance.dumps(provenance.predicate(sched, r, git(tree, "rev-parse", "HEAD").strip())), "slsaprovenance1", key)
    docs = sbom.documents(sched, r)
    spdx = json.loads(docs["spdx-json"])
    spdx["packages"] = [p for p in spdx["packages"] if not p["name"].startswith("libssl")]  # a package hidden from scanners
    signing.attest(ref, json.dumps(spdx), "spdxjson", key)
    signing.attest(ref, docs["cyclonedx-json"], "cyclonedx", key)
    res = gen(cli, tree, "verify", ref)
    print(res.output)  # the verdict lines, in the log
    assert res.exit_code == 1, res.output
    assert "signature: ok" in res.output and "provenance: ok" in res.output
    assert "sbom: FAIL: the signed spdx-json attestation is not the document the lock makes" in res.output


def test_sign_refuses_an_image_whose_sbom_labels_are_not_the_locks(cli, tree: Path, keys, registry_server, tmp_path: Path) -> None:  # noqa: F811
    labels = {sbom.LABEL["spdx-json"]: "0" * 64, sbom.LABEL["cyclonedx-json"]: "1" * 64, "flex-python.runtime-id": RUNTIME}
    ref = image(tree, registry_server["host"], "badlabels", b"badlabels\n", tmp_path, labels)
    res = gen(cli, tree, "sign", RUNTIME, ref, "--key", str(keys["ours"][0]))
    assert res.exit_code == 1
    assert "its SBOM labels are not the documents this checkout's lock makes; not signed" in res.output
    res = gen(cli, tree, "verify", ref)
    assert res.exit_code == 1 and f"label {sbom.LABEL['spdx-json']} is {'0' * 64}" in res.output


def test_verify_refuses_a_tag_and_needs_a_policy(cli, tree: Path, registry_server) -> None:  # noqa: F811
    res = gen(cli, tree, "verify", f"{registry_server['host']}/flex/{RUNTIME}:good")
    assert res.exit_code == 2 and "give the image by digest" in res.output
    res = cli("verify", f"{registry_server['host']}/flex/{RUNTIME}@sha256:{'0' * 64}")  # the repository's schedule: no policy yet
    assert res.exit_code == 2 and "publish.signing is not set, so there is no signer to check against" in res.output
    res = gen(cli, tree, "verify", f"{registry_server['host']}/flex/{RUNTIME}@sha256:{'0' * 64}")  # no such manifest
    assert res.exit_code == 1 and res.output.startswith("image: FAIL: ") and "NOT VERIFIED" in res.output, res.output


def test_a_policy_with_both_or_neither_form_is_refused(cli, tree: Path, tmp_path: Path) -> None:
    both = copy_tree(tmp_path / "both", tree)
    shutil.copytree(tree / "keys", both / "keys")
    edit(
        both / "schedule.yaml",
        "    public_key: keys/cosign.pub\n",
        "    public_key: keys/cosign.pub\n    keyless: {identity: x, issuer: 'https://issuer.example'}\n",
    )
    res = gen(cli, both, "verify", f"127.0.0.1:1/flex/{RUNTIME}@sha256:{'0' * 64}")
    assert res.exit_code == 2 and "publish.signing: give exactly one of keyless (identity, issuer) and public_key" in res.output
    edit(
        both / "schedule.yaml",
        "    public_key: keys/cosign.pub\n    keyless: {identity: x, issuer: 'https://issuer.example'}\n",
        "    public_key: ../outside.pub\n",
    )
    (tmp_path / "outside.pub").write_text((tree / "keys" / "cosign.pub").read_text())
    res = gen(cli, both, "verify", f"127.0.0.1:1/flex/{RUNTIME}@sha256:{'0' * 64}")
    assert res.exit_code == 2 and "publish.signing.public_key: ../outside.pub is not a file in the repository" in res.output, res.output


# --- app verifies before it pins -------------------------------------------------------------------


def app_dir(tmp_path: Path) -> Path:
    d = tmp_path / "app"
    d.mkdir()
    (d / "app.yaml").write_text(
        "runtime: python\nenv: flex\nentrypoint: python main.py\nruntime_config:\n  operating_system: ubuntu22\n  runtime_version: '3.11'\n"
    )
    (d / "main.py").write_text("print('hello')\n")
    return d


def test_app_refuses_an_unsigned_runtime_image_and_pins_a_verified_one(cli, tree: Path, keys, registry_server, tmp_path: Path) -> None:  # noqa: F811
    host = registry_server["host"]
    version = schedule.load(tree / "schedule.yaml").runtimes[RUNTIME].version
    unsigned = image(tree, host, version, b"unsigned-app\n", tmp_path)  # the schedule's tag: `app` pins it by default
    d = app_dir(tmp_path)
    res = gen(cli, tree, "app", str(d))
    assert res.exit_code == 1, res.output
    assert f"error: runtime image {unsigned}: signature: no signature by key" in res.output
    assert not (d / "Dockerfile").exists()
    skipped = gen(cli, tree, "app", str(d), "--no-verify")
    assert skipped.exit_code == 0, skipped.output
    assert "warning: --no-verify" in skipped.output and f"FROM {unsigned}" in (d / "Dockerfile").read_text()

    signed = image(tree, host, version, b"signed-app\n", tmp_path / "2")  # the tag moves to a signed image
    assert gen(cli, tree, "sign", RUNTIME, signed, "--key", str(keys["ours"][0])).exit_code == 0
    res = gen(cli, tree, "app", str(d))
    assert res.exit_code == 0, res.output
    assert f"runtime image: verified: {signed} is {RUNTIME}" in res.output
    assert f"FROM {signed}" in (d / "Dockerfile").read_text()


def test_the_build_workflow_signs_both_images_keyless() -> None:
    build = (ROOT / ".github" / "workflows" / "build.yml").read_text()
    assert "  id-token: write" in build  # the OIDC token cosign's keyless signing exchanges for a certificate
    assert '-m generator sign "$RUNTIME" "${IMAGE%:*}@$(cat "$RUNNER_TEMP/digest")"' in build
    assert '-m generator sign --build-image "$RUNTIME" "${IMAGE%:*}@$(cat "$RUNNER_TEMP/build-digest")"' in build
    assert build.index("podman push --digestfile") < build.index("-m generator sign")


# --- the statement itself: deterministic, valid, from the lock (no registry) ---------------------


@pytest.mark.parametrize("runtime_id", [RUNTIME, "python2"])
def test_provenance_is_deterministic_and_valid(runtime_id: str) -> None:
    from tests.conftest import SCHEDULE

    sched = schedule.load(SCHEDULE)
    r = sched.runtimes[runtime_id]
    commit_hash = "a" * 40
    first = provenance.dumps(provenance.statement(provenance.predicate(sched, r, commit_hash), "example.invalid/x", "sha256:" + "b" * 64))
    again = provenance.dumps(
        provenance.statement(provenance.predicate(schedule.load(SCHEDULE), r, commit_hash), "example.invalid/x", "sha256:" + "b" * 64)
    )
    assert first == again
    doc = json.loads(first)
    provenance.validate(doc)
    bad = copy.deepcopy(doc)
    bad["predicate"]["buildDefinition"]["surprise"] = 1
    with pytest.raises(provenance.ProvenanceError, match="no field named"):
        provenance.validate(bad)
    bad = copy.deepcopy(doc)
    del bad["predicate"]["runDetails"]["builder"]["id"]
    with pytest.raises(provenance.ProvenanceError, match=r"runDetails\.builder\.id is missing"):
        provenance.validate(bad)
