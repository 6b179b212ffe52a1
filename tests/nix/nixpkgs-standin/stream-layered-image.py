"""Stand-in for nixpkgs' stream_layered_image.py (tests only; stdlib, run by the root's python3).

  layer DIR OWNERS              at build time: DIR as a layer tarball, owned by root except where
                               OWNERS (the recorded `chown -R -h UID:GID PATH…` calls) says
  conf CLOSURE CUSTOMISATION   at build time: the image's conf (env baseJson) plus its store layers,
                               read from CLOSURE (exportReferencesGraph of the customisation layer)
  script PYTHON SELF CONF      at build time: the stream script (what `nix build` gives)
  stream CONF                  at run time: writes the image as a docker-archive to stdout

The archive has nixpkgs' layout: the base image's layers (from fromImage, a docker-archive), one
layer per store path of the closure (the last one takes the rest when maxLayers would be
exceeded), then the customisation layer; `<diff id>/layer.tar` files, `<config sha256>.json`,
manifest.json. Every entry is owned by root and dated 1970-01-01T00:00:01Z, as in nixpkgs.
"""

import hashlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path

MTIME = 1


def read_closure(path):
    """exportReferencesGraph's format: path, deriver, count, references; repeated."""
    lines = Path(path).read_text().split("\n")
    paths, i = set(), 0
    while i < len(lines) and lines[i]:
        paths.add(lines[i])
        i += 3 + int(lines[i + 2])
    return paths


def layer(directory, owners_file):
    owners = {}  # relative path -> (uid, gid); later calls win, like chown
    for line in Path(owners_file).read_bytes().split(b"\n"):
        args = [a.decode() for a in line.split(b"\0") if a]
        if not args:
            continue
        flags = [a for a in args if a.startswith("-")]
        rest = [a for a in args if not a.startswith("-")]
        if set(flags) - {"-R", "-h"} or len(rest) < 2:
            sys.exit(f"stand-in chown: unsupported call {args}")
        uid, _, gid = rest[0].partition(":")
        ids = (int(uid), int(gid or uid))
        for target in rest[1:]:
            top = os.path.normpath(target)
            owners[top] = ids
            if "-R" in flags:
                for dirpath, dirnames, filenames in os.walk(os.path.join(directory, top)):
                    for n in dirnames + filenames:
                        owners[os.path.relpath(os.path.join(dirpath, n), directory)] = ids
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(rel):
            info = tar.gettarinfo(os.path.join(directory, rel), arcname=rel)
            info.uid, info.gid = owners.get(rel, (0, 0))
            info.uname = info.gname = ""
            info.mtime = MTIME
            if info.isreg():
                with open(os.path.join(directory, rel), "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if info.isdir():
                for child in sorted(os.listdir(os.path.join(directory, rel))):
                    add(os.path.normpath(os.path.join(rel, child)))

        for child in sorted(os.listdir(directory)):
            add(child)
    sys.stdout.buffer.write(out.getvalue())


def conf(closure, customisation):
    data = json.loads(os.environ["baseJson"])  # noqa: SIM112 (the derivation's attribute)
    data["storeLayers"] = sorted(p for p in read_closure(closure) if p != customisation)
    json.dump(data, sys.stdout, indent=2, sort_keys=True)


def script(python, this, conf_path):
    sys.stdout.write(
        f"#!{python}\n"
        f"import sys\nsys.argv = [sys.argv[0], 'stream', {conf_path!r}]\n"
        f"exec(compile(open({this!r}).read(), {this!r}, 'exec'))\n"  # the script it writes
    )


def store_layer(paths):
    """A tar of store PATHS (with nix/ and nix/store/), owned by root, fixed mtime."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name, full):
            info = tar.gettarinfo(full, arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = MTIME
            if info.isreg():
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if info.isdir():
                for child in sorted(os.listdir(full)):
                    add(f"{name}/{child}", os.path.join(full, child))

        for d in ("nix", "nix/store"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o555, MTIME
            tar.addfile(info)
        for p in paths:
            add(p.lstrip("/"), p)
    return buf.getvalue()


def stream(conf_path):
    c = json.loads(Path(conf_path).read_text())
    layers, history = [], []  # (bytes) and history entries
    config = dict(c["config"])
    if c["fromImage"]:
        with tarfile.open(c["fromImage"]) as base:
            manifest = json.load(base.extractfile("manifest.json"))[0]
            base_config = json.load(base.extractfile(manifest["Config"]))
            for name in manifest["Layers"]:
                layers.append(base.extractfile(name).read())
            history += [h for h in base_config.get("history", []) if not h.get("empty_layer")]
            # like nixpkgs' overlay_base_config: the base's Env first, the image's wins
            env = base_config.get("config", {}).get("Env", []) + config.get("Env", [])
            if env:
                config["Env"] = list({e.split("=", 1)[0]: e for e in env}.values())
    room = c["maxLayers"] - len(layers) - 1  # the customisation layer takes the last one
    store = c["storeLayers"]
    if room < 1:
        sys.exit(f"maxLayers {c['maxLayers']} leaves no room after {len(layers)} base layers")
    groups = [[p] for p in store[: room - 1]] + ([store[room - 1 :]] if len(store) >= room else [])
    for g in groups:
        layers.append(store_layer(g))
        history.append({"created": c["created"], "comment": "store paths: " + " ".join(g)})
    layers.append(Path(c["customisationLayer"]).read_bytes())
    history.append({"created": c["created"], "comment": "customisation layer"})
    while len(history) < len(layers):
        history.insert(0, {"created": c["created"], "comment": "base layer"})
    diff_ids = ["sha256:" + hashlib.sha256(b).hexdigest() for b in layers]
    config = {
        "created": c["created"],
        "architecture": c["architecture"],
        "os": c["os"],
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    names = [d.split(":")[1] + "/layer.tar" for d in diff_ids]
    manifest = [{"Config": config_name, "RepoTags": [c["repoTag"]], "Layers": names}]
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as out:

        def put(name, data):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), MTIME
            out.addfile(info, io.BytesIO(data))

        for name, data in zip(names, layers):
            put(name, data)
        put(config_name, config_bytes)
        put("manifest.json", json.dumps(manifest).encode())


if __name__ == "__main__":
    {"layer": layer, "conf": conf, "script": script, "stream": stream}[sys.argv[1]](*sys.argv[2:])
