"""The SBOM of an app image built by `app`: its runtime image's (from the lock), plus what the app's stage added.

Unlike a runtime image's, an app image's OS packages are only known once it is built: the build stage
maps what the compiled extensions link to onto packages, and the final stage lists them, with the
app's own OS packages, in /usr/share/flex-python/app-packages.txt. So this one reads the built image
(podman, network off): that list and dpkg's versions of it, and pip's list of /env. Each added .deb
gets the sha256 the locks pin for it (the build image's devel closure, the app's apt-packages.lock.json);
what is in neither lock is refused, never listed without its origin.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from generator.app import ospkgs as app_ospkgs
from generator.core.errors import GeneratorError
from generator.images import ospkgs, sbom
from generator.locking.requirements import canonical
from generator.schedule.lock import Deb
from generator.schedule.runtimes import Runtime, Schedule

LISTED = "/usr/share/flex-python/app-packages.txt"


class AppSbomError(GeneratorError):
    """The image cannot be read, or holds a package no lock names."""

    exit_code = 2


def _run(engine: str, image: str, *cmd: str) -> str:
    exe = shutil.which(engine)
    if exe is None:
        raise AppSbomError(f"{engine} is not installed; it reads the app image")
    proc = subprocess.run([exe, "run", "--rm", "--network=none", "--entrypoint", cmd[0], image, *cmd[1:]], capture_output=True, text=True)
    if proc.returncode != 0:
        raise AppSbomError(f"{image}: `{' '.join(cmd)}` failed: {proc.stderr.strip()[-300:] or 'no output'}")
    return proc.stdout


def inventory(schedule: Schedule, r: Runtime, image: str, app_dir: Path | None = None, engine: str = "podman") -> sbom.Inventory:
    """Runtime `r`'s inventory, plus the .debs and Python packages the app's build added to `image`."""
    base = sbom.inventory(schedule, r)
    names = _run(engine, image, "cat", LISTED).split()
    pinned: dict[tuple[str, str], Deb] = {(d.name, d.version): d for d in (r.packages.devel if r.packages else [])}
    if app_dir is not None and (app_dir / app_ospkgs.LOCK_FILE).is_file():
        pinned.update({(d.name, d.version): d for d in app_ospkgs.load(app_dir / app_ospkgs.LOCK_FILE).debs})
    items = list(base.items)
    distro = f"{r.base_name.rsplit('/', 1)[-1]}-{r.base_tag}"
    if names:
        fmt = "${Package}\t${Version}\t${Architecture}\n"
        for line in sorted(_run(engine, image, "dpkg-query", "-W", "-f", fmt, *names).splitlines()):
            name, version, arch = line.split("\t")
            deb = pinned.get((name, version))
            if deb is None:
                raise AppSbomError(f"{image}: {name} {version} is installed, but neither the build image's lock nor the app's pins it")
            where = f"{ospkgs.SNAPSHOT_SERVICE}/{r.packages.snapshot if r.packages else ''}/{deb.filename}"
            ref = sbom._ref("deb", name, arch)
            items = [i for i in items if i.ref != ref]
            deb_purl = sbom.purl("deb", name, version, "ubuntu", arch=arch, distro=distro)
            source = f"{deb.filename} ({deb.suite}), added by the app's build"
            items.append(sbom.Item(ref, "deb", name, version, deb_purl, deb.sha256, where, source=source))
    listed = json.loads(_run(engine, image, "/env/bin/python", "-m", "pip", "list", "--format=json", "--disable-pip-version-check"))
    have = {(canonical(i.name), i.version) for i in items if i.kind == "pypi"}
    for p in sorted(listed, key=lambda p: canonical(p["name"])):
        if (canonical(p["name"]), p["version"]) not in have:
            ref = sbom._ref("pypi", canonical(p["name"]))
            items = [i for i in items if i.ref != ref]  # a tool the app's requirements moved
            pypi_purl = sbom.purl("pypi", canonical(p["name"]), p["version"])
            items.append(sbom.Item(ref, "pypi", p["name"], p["version"], pypi_purl, source="in /env, installed by the app's build"))
    inspect = [shutil.which(engine) or engine, "image", "inspect", "--format", "{{.Id}}", image]
    image_id = subprocess.run(inspect, capture_output=True, text=True).stdout.strip()
    namespace = f"{schedule.model.publish.source.rstrip('/')}/spdx/app-{image_id or 'unknown'}"
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return sbom.Inventory(f"{r.id}-app", f"{repository}:{r.version}", r.version, base.input_hash, namespace, sorted(items, key=lambda i: i.ref))
