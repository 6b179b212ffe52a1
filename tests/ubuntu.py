"""Real Ubuntu roots for the image tests, built from Ubuntu's archive (no registry needed).

The trust chain, end to end: Debian's keyring (installed on the host) verifies trixie's signed
InRelease; its Packages index gives the sha256 of trixie's `ubuntu-keyring` .deb, whose 2018 key
verifies jammy's InRelease; jammy's Packages index gives the sha256 of jammy's `ubuntu-keyring`,
whose keyring also holds the 2012 key that signs xenial. Every root is then built by
mmdebstrap/debootstrap, which verify the archive with that keyring.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from generator.core import http
from generator.core.cache import cache_root
from generator.images import apt

CACHE = cache_root() / "test"
UBUNTU = "http://archive.ubuntu.com/ubuntu"
DEBIAN = "http://deb.debian.org/debian"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
RECIPE = {"ubuntu24": "2"}  # bumped when a root's recipe changes (24.04: passwd added), so a cached one is not reused
SUITES = {"ubuntu16": "xenial", "ubuntu18": "bionic", "ubuntu22": "jammy", "ubuntu24": "noble"}


def _keyring_from(mirror: str, suite: str, keyring: Path, name: str, version: str | None, dest: Path) -> Path:
    rel = apt.release(mirror, suite, keyring)
    index = apt.packages_index(mirror, rel, "main", "amd64")
    found = sorted((v, p) for (n, v, _a), p in index.packages.items() if n == name and (version is None or v == version))
    if not found:
        raise AssertionError(f"{name} {version or ''} is not in {suite}'s Packages index")
    stanza = found[-1][1]
    with tempfile.TemporaryDirectory() as tmp:
        deb = http.fetch_verified(f"{mirror}/{stanza['Filename']}", stanza["SHA256"], Path(tmp) / "k.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        src = Path(tmp) / "usr/share/keyrings/ubuntu-archive-keyring.gpg"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest.with_suffix(".partial"))
        os.replace(dest.with_suffix(".partial"), dest)
    return dest


def keyring() -> Path:
    """Ubuntu's archive keyring with the 2012 and 2018 keys, reached from Debian's by signed indices."""
    dest = CACHE / "keyrings" / "ubuntu-archive-keyring.gpg"
    if not dest.exists():
        k2018 = _keyring_from(DEBIAN, "trixie", DEBIAN_KEYRING, "ubuntu-keyring", None, CACHE / "keyrings" / "ubuntu-2018.gpg")
        _keyring_from(UBUNTU, "jammy", k2018, "ubuntu-keyring", "2021.03.26", dest)
    return dest


def sources(os_id: str) -> list[str]:
    suite = SUITES[os_id]
    return [f"deb {UBUNTU} {s} main universe" for s in (suite, f"{suite}-updates", f"{suite}-security")]


def root_image(os_id: str, podman) -> str:
    """localhost/flex-test/<os>-root: a real Ubuntu root with apt, built once and cached as a tarball."""
    tag = f"localhost/flex-test/{os_id}-root:{RECIPE.get(os_id, 'latest')}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    tar = CACHE / "roots" / f"{os_id}-{RECIPE.get(os_id, 'latest')}.tar"
    if not tar.exists():
        build_root(os_id, tar)
    podman("import", "--change", "CMD=/bin/bash", str(tar), tag)
    return tag


def build_root(os_id: str, tar: Path) -> None:
    # apt reads keys as its unprivileged _apt user: hand it a copy outside /root
    with tempfile.TemporaryDirectory() as keys:
        os.chmod(keys, 0o755)
        ring = Path(keys) / "ubuntu-archive-keyring.gpg"
        shutil.copyfile(keyring(), ring)
        os.chmod(ring, 0o644)
        _build_root(os_id, tar, ring)


def _build_root(os_id: str, tar: Path, ring: Path) -> None:
    tar.parent.mkdir(parents=True, exist_ok=True)
    partial = tar.with_suffix(".partial.tar")
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1"}
    suite = SUITES[os_id]
    if os_id in ("ubuntu16", "ubuntu18"):
        # mmdebstrap fails in xenial's and bionic's chroots (chfn: PAM); debootstrap works. Then the updates.
        with tempfile.TemporaryDirectory(dir=tar.parent) as tmp:
            root = Path(tmp) / "root"
            subprocess.run(
                ["debootstrap", "--variant=minbase", f"--keyring={ring}", suite, str(root), UBUNTU], check=True, env=env, capture_output=True
            )
            (root / "etc/apt/sources.list").write_text("\n".join(sources(os_id)) + "\n")
            subprocess.run(
                [
                    "chroot",
                    str(root),
                    "sh",
                    "-c",
                    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -qq -y dist-upgrade"
                    " && apt-get clean && rm -rf /var/lib/apt/lists/*",
                ],
                check=True,
                capture_output=True,
            )
            for sub in ("proc", "sys", "dev/pts"):
                subprocess.run(["umount", "-l", str(root / sub)], capture_output=True)
            subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], check=True)
    else:
        excludes = [f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale")]
        excludes.append("--dpkgopt=path-include=/usr/share/doc/*/copyright")
        cmd = [
            "mmdebstrap",
            "--variant=apt",
            "--include=passwd",  # useradd, as in Docker Hub's ubuntu images (--variant=apt leaves it out on 24.04)
            "--quiet",
            f"--keyring={ring.parent}",
            "--components=main,universe",
            *excludes,
            suite,
            str(partial),
            *sources(os_id),
        ]
        subprocess.run(cmd, check=True, env=env, capture_output=True)
    os.utime(partial, (1, 1))
    os.replace(partial, tar)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- a local archive on 127.0.0.1: the locked files, plus a newer version of one package ----------


def python_tarball(version: str, sha: str, dest: Path, ext: str = "tgz") -> Path:
    """Python-VERSION.tgz (or .tar.xz) from a source package of Ubuntu (xenial's python2.7, noble's python3.12)
    or Debian (bookworm's python3.11, forky's python3.14) that ships python.org's tarball unchanged, found
    through the signed Sources index."""
    source, suites, mirror, ring = {
        "2.7.12": ("python2.7", ["xenial-updates", "xenial-security"], UBUNTU, keyring()),
        "2.7.18": ("python2.7", ["bullseye"], DEBIAN, DEBIAN_KEYRING),
        "3.11.2": ("python3.11", ["bookworm"], DEBIAN, DEBIAN_KEYRING),
        "3.12.3": ("python3.12", ["noble", "noble-updates"], UBUNTU, keyring()),
        "3.14.8": ("python3.14", ["forky", "sid"], DEBIAN, DEBIAN_KEYRING),
    }[version]
    orig = f"{source}_{version}.orig.{'tar.gz' if ext == 'tgz' else ext}"
    target = dest / version / f"Python-{version}.{ext}"
    if target.exists():
        return target
    for suite in suites:
        rel = apt.release(mirror, suite, ring)
        path = next(p for p in ("main/source/Sources.xz", "main/source/Sources.gz") if p in rel.sha256)
        body = http.get(f"{mirror}/dists/{suite}/{path}", timeout=300)
        assert hashlib.sha256(body).hexdigest() == rel.sha256[path][0], f"{suite} {path}: hash chain broken"
        for stanza in apt.paragraphs(apt._decompress(path, body).decode("utf-8", "replace")):
            if stanza.get("Package") != source:
                continue
            for line in filter(None, stanza.get("Checksums-Sha256", "").splitlines()):
                digest, _size, name = line.split()
                if name == orig:
                    assert digest == sha, f"{orig} in {suite} is not python.org's Python-{version}.tgz ({digest} != {sha})"
                    return http.fetch_verified(f"{mirror}/{stanza['Directory']}/{orig}", sha, target)
    raise AssertionError(f"no {orig} in {suites}")


def reversion_deb(deb: Path, new_version: str, out: Path) -> Path:
    """The same package, re-versioned (what a security update looks like to apt)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-R", str(deb), tmp], check=True)
        control = Path(tmp) / "DEBIAN" / "control"
        lines = [f"Version: {new_version}" if line.startswith("Version:") else line for line in control.read_text().splitlines()]
        control.write_text("\n".join(lines) + "\n")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "-b", tmp, str(out)], check=True, capture_output=True)
    return out


def signed_suite(root: Path, suite: str, gnupg: Path) -> Path:
    """dists/SUITE/{main/binary-amd64/Packages,Release,InRelease} for the .debs under root/pool, signed by a
    throwaway key; returns that key as a keyring file for apt's signed-by."""
    gnupg.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {**os.environ, "GNUPGHOME": str(gnupg)}
    if not (gnupg / "key.gpg").exists():
        subprocess.run(
            ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "flex-test archive", "rsa2048", "sign", "never"],
            check=True,
            env=env,
            capture_output=True,
        )
        (gnupg / "key.gpg").write_bytes(subprocess.run(["gpg", "--export"], check=True, env=env, capture_output=True).stdout)
    dist = root / "dists" / suite
    (dist / "main" / "binary-amd64").mkdir(parents=True, exist_ok=True)
    packages = subprocess.run(["apt-ftparchive", "packages", "pool"], cwd=root, check=True, capture_output=True, text=True).stdout
    (dist / "main" / "binary-amd64" / "Packages").write_text(packages)
    opts = [
        f"-oAPT::FTPArchive::Release::{k}={v}" for k, v in (("Suite", suite), ("Codename", suite), ("Components", "main"), ("Architectures", "amd64"))
    ]
    release = subprocess.run(["apt-ftparchive", *opts, "release", str(dist)], check=True, capture_output=True, text=True).stdout
    (dist / "Release").write_text(release)
    (dist / "InRelease").unlink(missing_ok=True)
    subprocess.run(
        ["gpg", "--batch", "--yes", "--clearsign", "-o", str(dist / "InRelease"), str(dist / "Release")], check=True, env=env, capture_output=True
    )
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)  # the agent gpg started would outlive the tests
    return gnupg / "key.gpg"
