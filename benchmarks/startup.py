"""Cold start in a built runtime image, with and without its bytecode: medians of N fresh containers.

    .venv/bin/python benchmarks/startup.py IMAGE [--runs 9]

IMAGE is a runtime image as `python -m generator build` makes it (with bytecode). "Without" is the
same image with every .pyc of the interpreter prefix and /env deleted (a derived image: what the
runtime shipped before it compiled its bytecode; the files are gone, only their whiteouts remain).
Each run is a new container (`podman run --rm --network=none --user 1000:1000`), so nothing cached
by an earlier run survives; the two variants alternate run by run, after one untimed run each. The
time is taken inside the container with `date +%s%N` around the command, so podman's own start is
not in it:

- `python -c pass`;
- `python -c "import json, ssl, email.parser, http.server, decimal, asyncio, logging.handlers,
  urllib.request"` (the import set of issue 15);
- a Flask app under gunicorn (one sync worker): from launching gunicorn to the first HTTP 200 on
  127.0.0.1:8080, polled from bash every 5 ms. Flask and gunicorn are installed into /env of each
  variant from wheels fetched once on the host (pip compiles their bytecode at install, as in any
  app image), so the two differ only in the runtime's own bytecode.

The size cost is the bytecode's share of the image's interpreter + /env layer: that layer from
`podman save`, re-tarred with and without its .pyc files and __pycache__ directories, uncompressed
and compressed with gzip -6 (what a registry push of the layer stores).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flex-python" / "startup-wheels"
IMPORTS = "json, ssl, email.parser, http.server, decimal, asyncio, logging.handlers, urllib.request"
APP_WHEELS = ["Flask==3.0.3", "gunicorn==23.0.0"]
APP = 'from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.route("/")\ndef index():\n    return "ok"\n'
PYC_DIRS = "/opt /env"

# Wall time of "$@" in microseconds, inside the container.
TIME_COMMAND = 's=$(date +%s%N); "$@" || exit 1; e=$(date +%s%N); echo $(((e - s) / 1000))'
# Launch gunicorn, then poll until the first response is an HTTP 200: microseconds in between.
TIME_FIRST_RESPONSE = r"""
cd /app
s=$(date +%s%N)
gunicorn --bind 127.0.0.1:8080 --workers 1 main:app 2>/dev/null &
line=
until { printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3; IFS= read -r line <&3; } 2>/dev/null 3<>/dev/tcp/127.0.0.1/8080 \
    && [ "${line#HTTP/1.? 200}" != "$line" ]; do
    sleep 0.005
done
e=$(date +%s%N)
kill %1
echo $(((e - s) / 1000))
"""


def podman(*args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(["podman", *args], check=True, capture_output=True, input=input).stdout


def derive(tag: str, containerfile: str, *volumes: str, files: dict[str, str] | None = None) -> str:
    """Build a small image from a Containerfile (no network; volumes are bind mounts for the build)."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp)
        (ctx / "Containerfile").write_text(containerfile)
        for name, text in (files or {}).items():
            (ctx / name).write_text(text)
        podman("build", "--network=none", "-q", *(a for v in volumes for a in ("-v", v)), "-t", tag, "-f", str(ctx / "Containerfile"), str(ctx))
    return tag


def without_bytecode(image: str, user: str, tag: str) -> str:
    return derive(
        tag,
        f"FROM {image}\nUSER root\nRUN find {PYC_DIRS} -depth \\( -name __pycache__ -o -name '*.pyc' \\) -exec rm -rf '{{}}' +\nUSER {user}\n",
    )


def with_flask(image: str, minor: str, tag: str) -> str:
    wheels = CACHE / minor
    if not list(wheels.glob("gunicorn-*.whl")):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", minor,
             "-d", str(wheels), *APP_WHEELS],
            check=True,
        )  # fmt: skip
    return derive(
        tag,
        f"FROM {image}\nCOPY main.py /app/main.py\nRUN pip install --no-index --find-links /wheels --no-cache-dir {' '.join(APP_WHEELS)}\n",
        f"{wheels}:/wheels:ro,Z",
        files={"main.py": APP},
    )


def timed(image: str, script: str, *args: str) -> float:
    """Milliseconds, as measured inside a fresh container."""
    out = podman("run", "--rm", "--network=none", "--user", "1000:1000", image, "bash", "-c", script, "_", *args)
    return int(out.split()[-1]) / 1000


def is_bytecode(name: str) -> bool:
    return name.endswith(".pyc") or "__pycache__" in name.split("/")


def layer_cost(image: str) -> dict[str, tuple[int, int]]:
    """The interpreter + /env layer of IMAGE, uncompressed and gzip -6 compressed, with and without its
    bytecode: both re-tarred the same way, one without the .pyc files and __pycache__ directories."""

    def path(m: tarfile.TarInfo) -> str:
        return m.name.removeprefix("./")

    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "image.tar"
        podman("save", "--format", "docker-archive", "-o", str(archive), image)
        with tarfile.open(archive) as saved:
            manifest = json.load(saved.extractfile("manifest.json"))[0]
            layers = [saved.extractfile(name).read() for name in manifest["Layers"]]
    out = {}
    for data in layers:
        with tarfile.open(fileobj=io.BytesIO(data)) as layer:
            members = layer.getmembers()
            if not any(path(m).startswith("env/") for m in members):
                continue
            dropped = {"with": (), "prefix only": ("env/",), "without": ("env/", "opt/")}  # whose bytecode is left out
            for variant, tops in dropped.items():
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    for m in members:
                        if not (is_bytecode(path(m)) and path(m).startswith(tops)):
                            tar.addfile(m, layer.extractfile(m) if m.isfile() else None)
                out[variant] = (len(buf.getvalue()), len(gzip.compress(buf.getvalue(), 6, mtime=0)))
        pycs = [path(m) for m in members if path(m).endswith(".pyc")]
        out["files"] = (sum(p.startswith("opt/") for p in pycs), sum(p.startswith("env/") for p in pycs))
        return out
    raise SystemExit(f"{image}: no layer holds /env")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    info = json.loads(podman("image", "inspect", args.image))[0]
    user = info["Config"].get("User") or "root"
    version = podman("run", "--rm", "--network=none", args.image, "python", "-c", "import platform; print(platform.python_version())")
    version = version.decode().strip()
    minor = ".".join(version.split(".")[:2])

    name = args.image.split("@")[0].rsplit(":", 1)[0]  # the derived images' name: IMAGE's, + "-startup"
    images = {"with": args.image, "without": without_bytecode(args.image, user, f"{name}-startup:no-bytecode")}
    flask = {k: with_flask(v, minor, f"{name}-startup:flask-{k}") for k, v in images.items()}
    cases = [
        ("python -c pass", images, TIME_COMMAND, ("python", "-c", "pass")),
        ("import set (8 modules)", images, TIME_COMMAND, ("python", "-c", f"import {IMPORTS}")),
        ("Flask/gunicorn: first HTTP 200", flask, TIME_FIRST_RESPONSE, ()),
    ]
    print(f"{args.image}: CPython {version}; a fresh container per run, uid 1000, median of {args.runs} (min-max)")
    print(f"load average at the start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    print(f"{'':<32} {'with bytecode':>24} {'without':>24} {'change':>8}")
    for name, variants, script, cmd in cases:
        samples: dict[str, list[float]] = {"with": [], "without": []}
        for variant in samples:
            timed(variants[variant], script, *cmd)  # untimed: page cache, podman's own first start
        for _ in range(args.runs):
            for variant in samples:
                samples[variant].append(timed(variants[variant], script, *cmd))
        med = {k: statistics.median(v) for k, v in samples.items()}
        cells = [f"{med[k]:7.1f} ms ({min(v):.0f}-{max(v):.0f})" for k, v in samples.items()]
        print(f"{name:<32} {cells[0]:>24} {cells[1]:>24} {(med['with'] / med['without'] - 1) * 100:+7.0f}%")

    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    cost = layer_cost(args.image)
    n_prefix, n_env = cost["files"]
    rows = [
        ("without bytecode", "without"),
        (f"with the prefix's ({n_prefix} .pyc)", "prefix only"),
        (f"with the prefix's and /env's ({n_prefix + n_env} .pyc)", "with"),
    ]
    print(f"\n{'interpreter + /env layer':<44} {'uncompressed':>22} {'compressed (gzip -6)':>22}")
    raw0, gz0 = cost["without"]
    for label, key in rows:
        raw, gz = cost[key]
        print(f"{label:<44} {f'{raw / 1e6:.1f} MB (+{(raw - raw0) / 1e6:.1f})':>22} {f'{gz / 1e6:.1f} MB (+{(gz - gz0) / 1e6:.1f})':>22}")


if __name__ == "__main__":
    main()
