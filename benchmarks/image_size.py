"""Layer-by-layer size of a built runtime image, uncompressed and gzip-compressed, against the anchor.

    .venv/bin/python benchmarks/image_size.py IMAGE [--base BASE_IMAGE]

Each layer is read from `podman save` (docker-archive), its uncompressed size is the layer tar's,
its compressed size is what `gzip -6` makes of it (what a registry push of that layer stores).
Anchor: docker-library's python:3.12-slim, 43.2 MB compressed, of which its Python layer 12.1 MB.
Goals: our Python layer no larger than theirs; the image no larger than base + Python layer + 5 MB.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

ANCHOR_TOTAL_MB = 43.2
ANCHOR_PYTHON_MB = 12.1


def layers(image: str) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "image.tar"
        subprocess.run(["podman", "save", "--format", "docker-archive", "-o", str(archive), image], check=True, capture_output=True)
        with tarfile.open(archive) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))[0]
            config = json.load(tar.extractfile(manifest["Config"]))
            history = [h for h in config.get("history", []) if not h.get("empty_layer")]
            out = []
            for i, name in enumerate(manifest["Layers"]):
                data = tar.extractfile(name).read()
                created_by = history[i].get("created_by", "") if i < len(history) else ""
                out.append({"raw": len(data), "gz": len(gzip.compress(data, 6, mtime=0)), "what": " ".join(created_by.split())[:70]})
    return out


def mb(n: int) -> str:
    return f"{n / 1e6:7.1f} MB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--base", help="the base image, to tell its layers from ours")
    args = ap.parse_args()
    ours = layers(args.image)
    n_base = len(layers(args.base)) if args.base else 1
    print(f"{'layer':<6} {'uncompressed':>13} {'compressed':>12}  created by")
    for i, layer in enumerate(ours):
        tag = "base" if i < n_base else f"#{i}"
        print(f"{tag:<6} {mb(layer['raw']):>13} {mb(layer['gz']):>12}  {layer['what']}")
    base_gz = sum(layer["gz"] for layer in ours[:n_base])
    added = ours[n_base:]
    python_layer = max(added, key=lambda layer: layer["gz"]) if added else {"gz": 0, "raw": 0}
    total_gz = sum(layer["gz"] for layer in ours)
    print(f"total  {mb(sum(layer['raw'] for layer in ours)):>13} {mb(total_gz):>12}")
    print()
    print(f"anchor python:3.12-slim: {ANCHOR_TOTAL_MB} MB compressed, Python layer {ANCHOR_PYTHON_MB} MB")
    print(f"ours: {total_gz / 1e6:.1f} MB compressed; largest added (Python) layer {python_layer['gz'] / 1e6:.1f} MB")
    rest = total_gz - base_gz - python_layer["gz"]
    print(f"goal 1, Python layer <= {ANCHOR_PYTHON_MB} MB: {'met' if python_layer['gz'] / 1e6 <= ANCHOR_PYTHON_MB else 'NOT met'}")
    print(f"goal 2, image <= base + Python layer + 5 MB: other layers add {rest / 1e6:.1f} MB: {'met' if rest <= 5e6 else 'NOT met'}")


if __name__ == "__main__":
    main()
