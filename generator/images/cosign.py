"""cosign, the stock Sigstore tool, from Debian trixie's signed archive: found, or installed once.

The images are signed and their SBOM and provenance attested with cosign itself, so any consumer
can check them with the same tool. Debian packages it (trixie: cosign 2.5.0, a static Go program
that runs on Debian 12); no other route is reachable from every machine of the project. The .deb is
trusted the way apt trusts it: trixie's InRelease verified by gpgv with Debian's archive keyring,
its Packages index by the sha256 that Release lists, the .deb by the sha256 that index lists. It is
unpacked with `dpkg-deb -x` into the cache, nothing of the system is touched.

    python -m generator.images.cosign install     (ci/dev.sh setup runs it; prints the binary's path)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from generator.core import http
from generator.core.cache import cache_root
from generator.core.errors import GeneratorError
from generator.images import apt

DEBIAN = "http://deb.debian.org/debian"
SUITE = "trixie"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
ENV = "FLEX_PYTHON_COSIGN"  # a cosign binary to use instead (a maintainer's own)


class CosignMissing(GeneratorError):
    """cosign is neither configured, on PATH, nor installed in the cache."""


def cached() -> Path:
    return cache_root() / "tools" / "cosign-trixie" / "usr" / "bin" / "cosign"


def find() -> str:
    """The cosign binary: $FLEX_PYTHON_COSIGN, else the one `install` unpacked, else cosign on PATH."""
    configured = os.environ.get(ENV)
    if configured:
        return configured
    if cached().is_file():
        return str(cached())
    found = shutil.which("cosign")
    if found:
        return found
    raise CosignMissing(f"cosign is not installed: run `python -m generator.images.cosign install` (Debian {SUITE}'s .deb, checked), or set {ENV}")


def install() -> Path:
    """Download trixie's cosign .deb, verified through the signed indices, and unpack it into the cache."""
    dest = cached()
    if dest.is_file():
        return dest
    print(f"cosign: reading {SUITE}'s signed Packages index", file=sys.stderr)
    try:
        rel = apt.release(DEBIAN, SUITE, DEBIAN_KEYRING)
        index = apt.packages_index(DEBIAN, rel, "main", "amd64")
    except apt.AptError as exc:
        raise GeneratorError(f"cannot read Debian {SUITE}'s signed index for cosign: {exc}") from exc
    found = sorted((v, s) for (name, v, _arch), s in index.packages.items() if name == "cosign")
    if not found:
        raise GeneratorError(f"Debian {SUITE}'s main/binary-amd64 index lists no cosign package")
    version, stanza = found[-1]
    root = dest.parents[2]
    with tempfile.TemporaryDirectory(prefix="cosign-") as tmp:
        deb = http.fetch_verified(f"{DEBIAN}/{stanza['Filename']}", stanza["SHA256"], Path(tmp) / "cosign.deb")
        print(f"cosign: {stanza['Filename']} (sha256 {stanza['SHA256']}, version {version})", file=sys.stderr)
        unpack = Path(tmp) / "root"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpack)], check=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.move(str(unpack), str(root))
    return dest


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        raise SystemExit("usage: python -m generator.images.cosign install")
    print(install())
