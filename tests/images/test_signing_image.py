"""Issue 24's acceptance on a real build: the session's python311-ubuntu22 image and its build image
(real Ubuntu 22.04 root, CPython from its tarball, `generator build`), pushed to a real docker-registry
on 127.0.0.1, signed and attested with a test key pair by `sign`, then checked by `verify` and by the
stock cosign, and pinned by `app` only once verified.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from generator.schedule import runtimes as schedule
from tests.image_fixtures import FACTS
from tests.images.test_signing import HTTP, RUNTIME, app_dir, cosign_bin, cosign_run, gen, keys, signed_tree  # noqa: F401 (fixtures)
from tests.refresh.test_refresh import registry_server  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.image, pytest.mark.usefixtures("need_podman")]


def push(tag: str, dest: str, digestfile: Path) -> str:
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--digestfile", str(digestfile), f"containers-storage:{tag}", f"docker://{dest}"],
        check=True,
        capture_output=True,
    )
    return f"{dest.rsplit(':', 1)[0]}@{digestfile.read_text().strip()}"


def test_built_images_are_signed_verified_and_pinned(cli, build_images, registry_server, keys, cosign_bin: str, tmp_path: Path) -> None:  # noqa: F811
    host = registry_server["host"]
    built = build_images(RUNTIME)
    tree = signed_tree(tmp_path / "tree", keys["ours"][1], None, src=built["runtime"]["tree"])  # the tree the images were built from
    version = schedule.load(tree / "schedule.yaml").runtimes[RUNTIME].version
    runtime_ref = push(built["runtime"]["tag"], f"{host}/flex/{RUNTIME}:{version}", tmp_path / "digest")
    build_ref = push(built["tag"], f"{host}/flex/{RUNTIME}:{version}-build", tmp_path / "build-digest")

    for ref, extra in ((runtime_ref, ()), (build_ref, ("--build-image",))):
        signed = gen(cli, tree, "sign", *extra, RUNTIME, ref, "--key", str(keys["ours"][0]))
        assert signed.exit_code == 0, signed.output
        res = gen(cli, tree, "verify", ref)
        assert res.exit_code == 0, res.output
        print(res.output)
        FACTS[f"verify {'build image' if extra else 'runtime image'}"] = res.output.splitlines()[1]
        pub = str(tree / "keys" / "cosign.pub")
        assert cosign_run(cosign_bin, "verify", *HTTP, "--key", pub, "--insecure-ignore-tlog=true", ref).returncode == 0
        att = cosign_run(cosign_bin, "verify-attestation", *HTTP, "--key", pub, "--insecure-ignore-tlog=true", "--type", "slsaprovenance1", ref)
        assert att.returncode == 0, att.stderr

    d = app_dir(tmp_path)
    (d / "requirements.txt").write_text("six==1.17.0\n")  # something to install: the build stage's image is pinned too
    res = gen(cli, tree, "app", str(d), "--runtime-image", f"{host}/flex/{RUNTIME}:{version}")  # its build image: the tag + -build
    assert res.exit_code == 0, res.output
    assert f"runtime image: verified: {runtime_ref} is {RUNTIME}" in res.output
    assert f"build image: verified: {build_ref} is {RUNTIME} build image" in res.output
    dockerfile = (d / "Dockerfile").read_text()
    assert f"FROM {runtime_ref}" in dockerfile and f"FROM {build_ref}" in dockerfile
