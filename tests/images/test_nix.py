"""The Nix flake, checked by a real Nix >= 2.18 (Debian trixie's nix-bin, 2.26) with no network.

The pinned nixpkgs refuses Nix older than 2.18, and Debian 12's nix-bin is 2.8, so the tests run
trixie's Nix in a root of its own (tests/nix/run-nix.sh; `bash ci/dev.sh setup` makes it).
nixpkgs and the Nix cache are out of reach here, so every evaluation overrides both inputs with
the small stand-ins under tests/nix/, which implement only the functions the flake calls, with
nixpkgs' argument sets (an unknown argument or a pullImage without a hash is an error, as in
nixpkgs), and build for real with what the root has: the checks (checks.<system>.<id>) stream a
stand-in image into a tarball and look inside it with generator/images/imagecheck.py, here as they do
with nixpkgs. The flake's files are copied to a temporary directory and used as a `path:` flake:
in a git checkout `.` would see only tracked files, and `path:` of the checkout would copy .venv
and .git into the store. The committed flake.lock is checked without overrides, never rewritten.

Without that Nix these tests skip, except under CI (CI=true), where they fail.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import py_compile
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from generator.core import paths
from generator.images import imagecheck, sbom
from tests.conftest import ROOT

pytestmark = pytest.mark.nix

SYSTEM = "x86_64-linux"
ARM = "aarch64-linux"
NIX_CONFIG = "experimental-features = nix-command flakes\nsubstituters =\nconnect-timeout = 5"
CACHE = "https://nixpkgs-python.cachix.org"
CACHE_KEY = "nixpkgs-python.cachix.org-1:hxjI7pFxTyuTHn2NkvWCrAUcNZLNS3ZAvfYNuYifcEU="
CACHE_CHECK = "nixpkgs-is-nixpkgs-pythons"
FLAKE_FILES = ("flake.nix", "flake.lock", "nix", "generator/images/imagecheck.py", "lockfiles/runtimes.json", "tests/nix")
DATA = json.loads((ROOT / paths.RUNTIMES_JSON).read_text(encoding="utf-8"))
RUNTIMES: dict[str, dict[str, Any]] = DATA["runtimes"]
IDS = sorted(RUNTIMES)
MISSING_HASH = sorted(i for i, e in RUNTIMES.items() if (e["base"]["platforms"].get("amd64") or {}).get("nix_sha256") is None)
# The CPython releases the nixpkgs-python stand-in provides (those of the pinned revision). A refresh
# can pin a newer patch release before nixpkgs-python has it: that runtime then refuses when built.
_STANDIN = (ROOT / "tests" / "nix" / "nixpkgs-python-standin" / "flake.nix").read_text(encoding="utf-8")
STANDIN_RELEASES = set(re.findall(r'"(\d+\.\d+\.\d+)"', _STANDIN.split("versions = [", 1)[1].split("];", 1)[0]))
NOT_PROVIDED = sorted(i for i, e in RUNTIMES.items() if e["python"]["version"] not in STANDIN_RELEASES)
UNBUILDABLE = sorted(set(MISSING_HASH) | set(NOT_PROVIDED))
BUILDABLE = sorted(set(IDS) - set(UNBUILDABLE))
# Runtimes these tests build or change on purpose, chosen from what the data makes buildable (a
# refresh may move today's choice out): a Python 3 one, and the default one where it can build.
PY3_RUNTIME = max(
    (r for r in BUILDABLE if RUNTIMES[r]["python"]["minor"].startswith("3.")),
    key=lambda r: tuple(map(int, RUNTIMES[r]["python"]["version"].split("."))),
)
ARM_RUNTIME = DATA["default_runtime"] if DATA["default_runtime"] in BUILDABLE else PY3_RUNTIME
ARM_PACKAGES = sorted([ARM_RUNTIME, *(["default"] if DATA["default_runtime"] == ARM_RUNTIME else [])])
STORE_PATH = re.compile(r"/nix/store/[0-9a-z]{32}-")

# The pins of flake.lock (github type, lock version 7: what Nix 2.8 and newer accept).
PINS = {
    "nixpkgs": {
        "owner": "NixOS",
        "repo": "nixpkgs",
        "rev": "812b3986fd1568f7a858f97fcf425ad996ba7d25",
        "narHash": "sha256-NV/J+tTER0P5iJhUDL/8HO5MDjDceLQPRUYgdmy5wXw=",
        "lastModified": 1773964973,
    },
    "nixpkgs-python": {
        "owner": "cachix",
        "repo": "nixpkgs-python",
        "rev": "2731df9c2ce7a05e079416f3580bacf1a2bade09",
        "narHash": "sha256-e6yzmOYb7N64k5g4bvIvA21TIzhUHjGKaWbKQxBt8bg=",
        "lastModified": 1782825674,
    },
    "flake-compat": {
        "owner": "edolstra",
        "repo": "flake-compat",
        "rev": "5edf11c44bc78a0d334f6334cdaf7d60d732daab",
        "narHash": "sha256-vNpUSpF5Nuw8xvDLj2KCwwksIbjua2LZCqhV1LNRDns=",
        "lastModified": 1767039857,
    },
}

# Applied to packages.x86_64-linux in ONE `nix eval --json`: every runtime's image arguments as
# the stand-ins received them. A runtime whose base has no pullImage hash evaluates to
# fromImage = null here (tryEval); its error message is checked on its own below.
# Applied to packages.<system> in ONE `nix eval --json`: every runtime's image arguments as the
# stand-ins received them. A runtime that cannot be built is a derivation that fails when built;
# the image it would be is its passthru.image, whose base is then a refusing derivation too.
APPLY = """
packages: builtins.mapAttrs (id: p:
  if !(p.providesRelease or true)
  then { package = p.name; drvPath = p.drvPath; unbuildable = p.unbuildable; notProvided = true; config = p.image.imageArgs.config; }
  else let
    img = p.image or p;
    a = img.imageArgs;
    pulled = a.fromImage ? callerArgs;
  in {
    inherit (a) name tag created config contents extraCommands fakeRootCommands architecture maxLayers;
    passthru = { inherit (a.passthru) runtimeId pythonVersion baseReference envLayout expect; };
    fromImage = if pulled then { inherit (a.fromImage) callerArgs pullImageArgs name; } else null;
    refusedBase = if pulled then null else a.fromImage.name;
    interpreter = { inherit (p.interpreter) name version pythonVersion nixpkgsSeen; path = p.interpreter.outPath; };
    env = { inherit (p.pythonEnv) name layout bytecode; inherit (p.pythonEnv.runCommandArgs) buildCommand stdenv; path = p.pythonEnv.outPath; };
    unbuildable = p.unbuildable or null;
    package = p.name;
    drvPath = p.drvPath;
  }) packages
"""


# ---- running Nix -------------------------------------------------------------------------------


RUN_NIX = ROOT / "tests" / "nix" / "run-nix.sh"
MIN_NIX = (2, 18)  # lib/minver.nix of the pinned nixpkgs


def nix_version() -> tuple[int, ...] | None:
    """The version of the Nix the tests run (trixie's nix-bin in its own root), None if absent."""
    proc = subprocess.run(["bash", str(RUN_NIX), "nix", "--version"], capture_output=True, text=True, timeout=120)
    m = re.search(r"\(Nix\) (\d+)\.(\d+)", proc.stdout)
    return tuple(map(int, m.groups())) if proc.returncode == 0 and m else None


@pytest.fixture(scope="module", autouse=True)
def nix_installed() -> None:
    version = nix_version()
    if version is None:
        message = f"no Nix root for {RUN_NIX.relative_to(ROOT)} (`bash ci/dev.sh setup` makes it)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"CI: {message}")
        pytest.skip(message)
    assert version >= MIN_NIX, f"Nix {version} is older than {MIN_NIX}, the minimum of the pinned nixpkgs"


# A build of a whole image with the stand-ins (interpreter, layers, stream, check) from a cold store:
# minutes on a loaded machine. Every test that builds one gets this deadline, whichever runs first.
IMAGE_BUILD_TIMEOUT = 1800


def nix(*args: str, check: bool = True, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """ARGS (nix, nix-instantiate, …) run by the tests' Nix (tests/nix/run-nix.sh)."""
    env = {**os.environ, "NIX_CONFIG": NIX_CONFIG}
    try:
        proc = subprocess.run(["bash", str(RUN_NIX), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{shlex.join(args)} still ran after {timeout}s (the deadline, not a result)")
    if check and proc.returncode != 0:
        pytest.fail(f"{shlex.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


def overrides(flake: Path) -> list[str]:
    return [
        "--override-input",
        "nixpkgs",
        f"path:{flake}/tests/nix/nixpkgs-standin",
        "--override-input",
        "nixpkgs-python",
        f"path:{flake}/tests/nix/nixpkgs-python-standin",
    ]


def copy_flake(dest: Path, runtimes: dict[str, Any] | None = None) -> Path:
    """The flake's files (only those) in DEST; optionally with other runtimes.json data."""
    for rel in FLAKE_FILES:
        src = ROOT / rel
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / rel)
    if runtimes is not None:
        (dest / paths.RUNTIMES_JSON).write_text(json.dumps(runtimes, indent=2, sort_keys=True) + "\n")
    return dest


def eval_packages(flake: Path, system: str = SYSTEM) -> dict[str, Any]:
    proc = nix("nix", "eval", "--json", f"path:{flake}#packages.{system}", *overrides(flake), "--apply", APPLY)
    return json.loads(proc.stdout)  # exit code checked first: a failing eval may print partial JSON


@pytest.fixture(scope="module")
def flake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_flake(tmp_path_factory.mktemp("flake"))


@pytest.fixture(scope="module")
def show(flake: Path) -> dict[str, Any]:
    return flake_show(flake)


def flake_show(flake: Path) -> dict[str, Any]:
    return json.loads(nix("nix", "flake", "show", "--json", "--all-systems", f"path:{flake}", *overrides(flake)).stdout)


@pytest.fixture(scope="module")
def evaluated(flake: Path) -> dict[str, Any]:
    return eval_packages(flake)


def normalized(value: Any) -> Any:
    """Store paths without their hashes: what the snapshot may hold."""
    return json.loads(STORE_PATH.sub("/nix/store/<hash>-", json.dumps(value)))


# ---- the Nix, parsing, outputs, lock -----------------------------------------------------------


def test_the_tests_nix_is_new_enough_for_nixpkgs() -> None:
    """The pinned nixpkgs needs Nix >= 2.18 (lib/minver.nix); the version is printed for the CI log."""
    proc = nix("nix", "--version")
    print(proc.stdout.strip())
    version = nix_version()
    assert version is not None and version >= MIN_NIX, proc.stdout


def test_every_nix_file_parses(tmp_path: Path) -> None:
    files = sorted(p for p in ROOT.rglob("*.nix") if not ({".git", ".venv", "node_modules"} & set(p.relative_to(ROOT).parts)))
    rel = {str(p.relative_to(ROOT)) for p in files}
    assert {"flake.nix", "nix/runtime-image.nix", "tests/nix/nixpkgs-standin/flake.nix", "tests/nix/nixpkgs-python-standin/flake.nix"} <= rel
    nix("nix-instantiate", "--parse", *map(str, files))
    bad = tmp_path / "bad.nix"  # and the check can fail
    bad.write_text("{ a = ; }\n")
    proc = nix("nix-instantiate", "--parse", str(bad), check=False)
    assert proc.returncode != 0 and "syntax error" in proc.stderr


def test_flake_show_lists_every_runtime(show: dict[str, Any]) -> None:
    packages = show["packages"][SYSTEM]
    assert sorted(packages) == sorted([*IDS, "default"])  # the unbuildable ones too
    for rid, pkg in packages.items():
        assert pkg["type"] == "derivation"
        assert pkg["name"] == f"stream-{DATA['default_runtime'] if rid == 'default' else rid}"
    assert sorted(show["checks"][SYSTEM]) == sorted([*BUILDABLE, CACHE_CHECK])
    for rid in BUILDABLE:
        assert show["checks"][SYSTEM][rid]["name"] == f"check-{rid}"
    assert sorted(show["hydraJobs"]) == BUILDABLE
    for rid, job in show["hydraJobs"].items():
        assert list(job) == [SYSTEM] and (job[SYSTEM]["type"], job[SYSTEM]["name"]) == ("derivation", f"stream-{rid}")
    # aarch64-linux: only runtimes whose base the lock knows for arm64 (none in today's data)
    arm = sorted(i for i, e in RUNTIMES.items() if "arm64" in e["base"].get("platforms", {}))
    assert sorted(show["packages"].get(ARM, {})) == arm + (["default"] if DATA["default_runtime"] in arm else [])
    assert "lib" in show


def test_flake_check_passes(flake: Path) -> None:
    """`nix flake check --no-build` evaluates every output of every system: unbuildable runtimes too."""
    proc = nix("nix", "flake", "check", "--no-build", "--all-systems", f"path:{flake}", *overrides(flake))
    for rid in MISSING_HASH:
        assert f"stream-{rid}.drv" in proc.stderr  # evaluated, not skipped


def test_lib_names_what_cannot_be_built(flake: Path) -> None:
    lib = json.loads(nix("nix", "eval", "--json", f"path:{flake}#lib", *overrides(flake), "--apply", "l: removeAttrs l [ ]").stdout)
    assert lib["runtimeIds"] == IDS and lib["defaultRuntime"] == DATA["default_runtime"]
    assert lib["runtimesMissingPullImageHash"] == MISSING_HASH
    assert sorted(lib["unbuildable"][SYSTEM]) == UNBUILDABLE and lib["unbuildable"][ARM] == {}
    for rid in UNBUILDABLE:  # one reason per cause, each naming the runtime
        reasons = lib["unbuildable"][SYSTEM][rid]
        assert [r.split(":")[0] for r in reasons] == [f"runtime {rid}"] * ((rid in MISSING_HASH) + (rid in NOT_PROVIDED))


def test_flake_declares_the_binary_cache(flake: Path) -> None:
    """nixpkgs-python's cache and key in nixConfig; Nix reads them (and, untrusted, asks first)."""
    config = json.loads(nix("nix", "eval", "--json", "--impure", "--expr", f"(import {flake}/flake.nix).nixConfig").stdout)
    assert config == {"extra-substituters": [CACHE], "extra-trusted-public-keys": [CACHE_KEY]}
    proc = nix("nix", "eval", "--raw", f"path:{flake}#lib.defaultRuntime", *overrides(flake))
    assert "ignoring untrusted flake configuration setting 'extra-substituters'" in proc.stderr
    assert "ignoring untrusted flake configuration setting 'extra-trusted-public-keys'" in proc.stderr


def test_committed_lock_holds_the_pins() -> None:
    lock = json.loads((ROOT / "flake.lock").read_text())
    assert lock["version"] == 7 and lock["root"] == "root"
    assert lock["nodes"]["root"] == {"inputs": {"nixpkgs": "nixpkgs", "nixpkgs-python": "nixpkgs-python"}}
    assert lock["nodes"]["nixpkgs-python"]["inputs"] == {"flake-compat": "flake-compat", "nixpkgs": ["nixpkgs"]}
    assert set(lock["nodes"]) == {"root", *PINS}
    for name, pin in PINS.items():
        assert lock["nodes"][name]["locked"] == {"type": "github", **pin}, name
    assert lock["nodes"]["nixpkgs"]["original"] == {"type": "github", "owner": "NixOS", "repo": "nixpkgs", "ref": "nixos-25.11"}


def test_nix_accepts_the_committed_lock_offline(flake: Path) -> None:
    """No overrides: Nix reads the lock as committed, needs no network, and does not rewrite it."""
    before = (flake / "flake.lock").read_bytes()
    meta = json.loads(nix("nix", "flake", "metadata", "--json", "--no-update-lock-file", f"path:{flake}").stdout)
    nodes = meta["locks"]["nodes"]
    for name, pin in PINS.items():
        assert nodes[name]["locked"]["rev"] == pin["rev"]
        assert nodes[name]["locked"]["narHash"] == pin["narHash"]
    human = re.sub(r"\x1b\[[0-9;]*m", "", nix("nix", "flake", "metadata", "--no-update-lock-file", f"path:{flake}").stdout)
    for pin in PINS.values():
        assert f"github:{pin['owner']}/{pin['repo']}/{pin['rev']}" in human
    assert (flake / "flake.lock").read_bytes() == before == (ROOT / "flake.lock").read_bytes()


def test_evaluations_with_overrides_leave_the_lock_alone(flake: Path, show: dict[str, Any], evaluated: dict[str, Any]) -> None:
    assert (flake / "flake.lock").read_bytes() == (ROOT / "flake.lock").read_bytes()


# ---- every runtime's image ---------------------------------------------------------------------


@pytest.mark.parametrize("rid", IDS)
def test_image_arguments(evaluated: dict[str, Any], rid: str) -> None:
    entry, got = RUNTIMES[rid], evaluated[rid]
    base, py = entry["base"], entry["python"]
    if rid in NOT_PROVIDED:  # a release nixpkgs-python does not have yet: refuses when built, saying why
        assert got["notProvided"] and got["drvPath"].endswith(f"-stream-{rid}.drv")
        assert any(f"CPython {py['version']} is not provided by the pinned nixpkgs-python" in m for m in got["unbuildable"])
        return
    assert f"{got['name']}:{got['tag']}" == entry["image"] == f"ghcr.io/appengine-flex-python/runtimes/{rid}:{py['version']}"
    assert got["created"] == "1970-01-01T00:00:01Z"
    assert (got["architecture"], got["maxLayers"]) == ("amd64", 100)
    assert got["config"] == entry["config"]
    assert got["contents"] == []
    assert got["fakeRootCommands"] == "chown -R -h 1000:1000 env app"
    # the exact interpreter, from nixpkgs-python (whose nixpkgs follows the flake's)
    interp = got["interpreter"]
    assert interp["version"] == py["version"] and interp["pythonVersion"] == py["minor"]
    assert interp["nixpkgsSeen"] == "nixpkgs-standin"
    assert f"ln -s {interp['path']} {py['prefix'].lstrip('/')}\n" in got["extraCommands"]
    expect = {
        "repo_tag": entry["image"],
        "architecture": "amd64",
        "config": entry["config"],
        "paths": [f"{py['prefix']}/bin/python", "/env/bin/python"],
        "bytecode": {"dir": f"/env/lib/python{py['minor']}/site-packages", "mode": "unchecked-hash"} if got["env"]["bytecode"] else None,
        "max_layers": 100,
    }
    assert got["passthru"] == {
        "runtimeId": rid,
        "pythonVersion": py["version"],
        "baseReference": base["reference"],
        "envLayout": got["env"]["layout"],
        "expect": expect,
    }
    # reproducible bytecode in /env from 3.7 (hash-based .pyc); none for 2.7 and 3.4-3.6
    minor = tuple(map(int, py["minor"].split(".")))
    assert got["env"]["bytecode"] == ("unchecked-hash" if minor >= (3, 7) else None)
    compile_line = [line.strip() for line in got["env"]["buildCommand"].splitlines() if "-m compileall" in line]
    site = f"lib/python{py['minor']}/site-packages"
    compileall = '"$envdir/bin/python" -m compileall -q --invalidation-mode unchecked-hash'
    if minor >= (3, 9):
        assert compile_line == [f'{compileall} -s "$envdir" -p /env "$envdir/{site}"']
    elif minor >= (3, 7):
        assert compile_line == [f'{compileall} -d /env/{site} "$envdir/{site}"']
    else:
        assert compile_line == []
    # /env: a venv for Python 3; for 2.7 (no venv, no pyvenv.cfg) a prefix of its own
    env = got["env"]
    assert env["layout"] == ("prefix" if py["minor"] == "2.7" else "venv")
    assert f"cp -r {env['path']}/env env\n" in got["extraCommands"] and env["name"] == f"{rid}-env"
    if env["layout"] == "venv":
        assert f"writeCfg '{py['prefix']}/bin'" in env["buildCommand"] and "pyvenv.cfg" in env["buildCommand"]
    else:
        assert f"cp '{interp['path']}/bin/python2.7' \"$envdir/bin/python2.7\"" in env["buildCommand"]
        assert "pyvenv.cfg" not in env["buildCommand"]
    # the base image, pinned by digest and by the hash of the pulled archive
    assert got["package"] == f"stream-{rid}" and got["drvPath"].endswith(f"-stream-{rid}.drv")
    if rid in MISSING_HASH:  # a package that fails when built (not at evaluation), saying why
        assert got["fromImage"] is None and got["refusedBase"] == f"docker-image-ubuntu-{base['tag']}-amd64-unknown-hash.tar"
        assert len(got["unbuildable"]) == 1 and "the dockerTools.pullImage hash is unknown" in got["unbuildable"][0]
        return
    assert got["unbuildable"] is None and got["refusedBase"] is None
    pull_hash = base["platforms"]["amd64"]["nix_sha256"]
    sri = pull_hash.startswith("sha256-")
    assert got["fromImage"]["callerArgs"] == {
        "imageName": base["name"],
        "imageDigest": base["digest"],
        ("hash" if sri else "sha256"): pull_hash,
        "finalImageName": "ubuntu",
        "finalImageTag": base["tag"],
        "os": "linux",
        "arch": "amd64",
    }
    assert base["reference"] == f"{base['name']}:{base['tag']}@{base['digest']}"
    assert got["fromImage"]["pullImageArgs"]["outputHash"] == pull_hash
    assert got["fromImage"]["name"] == f"docker-image-ubuntu-{base['tag']}.tar"


@pytest.mark.parametrize("rid", IDS)
def test_image_arguments_snapshot(evaluated: dict[str, Any], rid: str, snapshot) -> None:
    got = {k: v for k, v in evaluated[rid].items() if k != "drvPath"}
    assert normalized(got) == snapshot


def dockerfile_config(text: str) -> dict[str, Any]:
    """ENV, LABEL, USER, WORKDIR, EXPOSE and CMD of a Dockerfile's final stage, as an image config."""
    logical = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in logical.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    final = lines[max(i for i, line in enumerate(lines) if line.upper().startswith("FROM ")) :]
    config: dict[str, Any] = {"Env": {}, "Labels": {}, "ExposedPorts": {}}
    for line in final:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word in ("ENV", "LABEL"):
            pairs = dict(item.split("=", 1) for item in shlex.split(rest))
            config["Env" if word == "ENV" else "Labels"].update(pairs)
        elif word == "USER":
            config["User"] = rest.strip()
        elif word == "WORKDIR":
            config["WorkingDir"] = rest.strip()
        elif word == "EXPOSE":
            config["ExposedPorts"].update({p: {} for p in rest.split()})
        elif word == "CMD":
            config["Cmd"] = json.loads(rest)
    return config


@pytest.mark.parametrize("rid", IDS)
def test_config_is_the_dockerfiles(evaluated: dict[str, Any], rid: str) -> None:
    """Same Env, Labels, User, WorkingDir, ports and Cmd as the Dockerfile path."""
    config = evaluated[rid]["config"]
    want = {**config, "Env": dict(e.split("=", 1) for e in config["Env"])}
    assert dockerfile_config((ROOT / paths.IMAGES / rid / "Dockerfile").read_text()) == want


def test_default_package_is_the_newest_runtime(evaluated: dict[str, Any]) -> None:
    assert evaluated["default"] == evaluated[DATA["default_runtime"]]


def build_fails(flake: Path, installable: str, over: list[str] | None = None, timeout: int = 300) -> str:
    """Evaluating INSTALLABLE works; building it fails: its build log, whitespace collapsed."""
    over = overrides(flake) if over is None else over
    nix("nix", "eval", "--raw", f"path:{flake}#{installable}.drvPath", *over)
    proc = nix("nix", "build", "--no-link", "-L", f"path:{flake}#{installable}", *over, check=False, timeout=timeout)
    assert proc.returncode != 0, proc.stdout
    log = [re.sub(r"^[\w.+-]+> ", "", line) for line in proc.stderr.splitlines()]  # `name> ` of -L
    return " ".join(" ".join(log).split())


def assert_missing_hash_message(flake: Path, rid: str, entry: dict[str, Any], arch: str = "amd64") -> None:
    base = entry["base"]
    digest = (base.get("platforms", {}).get(arch) or {}).get("manifest_digest") or base["digest"]
    system = {"amd64": SYSTEM, "arm64": ARM}[arch]
    message = build_fails(flake, f"packages.{system}.{rid}")
    assert f"runtime {rid}: the dockerTools.pullImage hash is unknown for base image {base['reference']} ({arch}: {digest})" in message
    assert "No hash is guessed" in message
    assert f"nix-prefetch-docker --image-name {base['name']} --image-digest {digest}" in message
    assert f"--final-image-name ubuntu --final-image-tag {base['tag']} --os linux --arch {arch}" in message
    assert f"lockfiles/schedule.lock.json (base_images.{entry['operating_system']}.platforms.{arch}.nix_sha256)" in message
    assert f"python -m generator refresh {entry['operating_system']}" in message
    assert "python -m generator generate" in message


@pytest.mark.parametrize("rid", MISSING_HASH)
def test_unknown_pullimage_hash_fails_with_instructions(flake: Path, rid: str) -> None:
    """Today: the ubuntu16 runtimes (python2, python34 … python37), whose base hash is unknown.

    Their packages evaluate (so `nix flake check` and `nix flake show` pass) and fail when built.
    """
    assert_missing_hash_message(flake, rid, RUNTIMES[rid])


def set_amd64_hash(base: dict[str, Any], value: str | None) -> None:
    """The amd64 pullImage hash, where the generator writes it: base.platforms.amd64."""
    base["platforms"].setdefault("amd64", {"manifest_digest": None})["nix_sha256"] = value


def test_a_null_hash_makes_any_runtime_refuse(tmp_path: Path) -> None:
    """Whatever the data says today: a buildable runtime whose hash becomes null refuses to build."""
    data = json.loads(json.dumps(DATA))
    rid = DATA["default_runtime"]
    set_amd64_hash(data["runtimes"][rid]["base"], None)
    flake = copy_flake(tmp_path / "flake", data)
    show = flake_show(flake)
    assert show["packages"][SYSTEM][rid]["type"] == "derivation"  # listed; fails only when built
    assert rid not in show["hydraJobs"] and rid not in show["checks"][SYSTEM]
    assert_missing_hash_message(flake, rid, data["runtimes"][rid])


# ---- the stand-ins reject what nixpkgs rejects (so the checks above can fail) -------------------

DIGEST = "sha256:" + "0" * 64
SRI = "sha256-/hxCtWP5lLygO/5V+sJHFUohQ/+ATmvvZZ/YP553J7I="
BASE32 = "03slilh35al9jf9pr8mr7v31d0g7qiv92cn783lr776vxb0qc927"
PULL = f'imageName = "docker.io/library/ubuntu"; imageDigest = "{DIGEST}";'


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (f'd.streamLayeredImage {{ name = "x"; tag = "1"; fromImage = d.pullImage {{ {PULL} hash = "{SRI}"; }}; }}', None),
        (f'd.pullImage {{ {PULL} sha256 = "{BASE32}"; finalImageName = "ubuntu"; finalImageTag = "22.04"; }}', None),
        ('d.streamLayeredImage { name = "x"; enableFakeChroot = true; }', "called with unexpected argument 'enableFakeChroot'"),
        (f"d.pullImage {{ {PULL} }}", "fetcher called without `hash`"),
        (f'd.pullImage {{ {PULL} hash = "{SRI}"; sha256 = "{BASE32}"; }}', "mutually-incompatible arguments: hash, sha256"),
        (f'd.pullImage {{ imageName = "ubuntu"; hash = "{SRI}"; }}', "called without required argument 'imageDigest'"),
        (f'd.pullImage {{ {PULL} imageTag = "22.04"; hash = "{SRI}"; }}', "called with unexpected argument 'imageTag'"),
        ('s.fetchurl { url = "https://example.org/a.whl"; }', "fetchurl requires a hash"),
    ],
    ids=[
        "valid-image",
        "valid-pull",
        "unknown-image-arg",
        "pull-no-hash",
        "pull-two-hashes",
        "pull-no-digest",
        "pull-unknown-arg",
        "fetchurl-no-hash",
    ],
)
def test_standins_check_arguments_like_nixpkgs(flake: Path, call: str, error: str | None) -> None:
    expr = f'let s = (builtins.getFlake "path:{flake}/tests/nix/nixpkgs-standin").legacyPackages.{SYSTEM}; d = s.dockerTools; in ({call}).drvPath'
    proc = nix("nix", "eval", "--impure", "--raw", "--expr", expr, check=False)
    if error is None:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("/nix/store/") and proc.stdout.endswith(".drv")
    else:
        assert proc.returncode != 0, proc.stdout
        assert error in proc.stderr


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("  contents = [ ];\n", "  contents = [ ];\n  enableFakeChroot = true;\n", "called with unexpected argument 'enableFakeChroot'"),
        ("    } // hashArg nixSha256);\n", "    });\n", "fetcher called without `hash`"),
        ("    inherit envLayout expect;\n", '    inherit envLayout expect;\n    runtimeNote = "a harmless edit";\n', None),
    ],
    ids=["misspelt-image-arg", "pull-without-hash", "control"],
)
def test_a_wrong_call_in_the_flake_fails_evaluation(tmp_path: Path, old: str, new: str, error: str | None) -> None:
    """The same evaluation as above, of a copy of the flake with one mistake in nix/runtime-image.nix."""
    flake = copy_flake(tmp_path / "flake")
    fn = flake / "nix" / "runtime-image.nix"
    text = fn.read_text()
    assert text.count(old) == 1, old
    fn.write_text(text.replace(old, new))
    proc = nix("nix", "eval", "--raw", f"path:{flake}#packages.{SYSTEM}.{PY3_RUNTIME}.drvPath", *overrides(flake), check=False)
    if error is None:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode != 0 and error in proc.stderr, proc.stderr


# ---- /env, made by the image's build script, run here with a real interpreter ------------------


def assert_bytecode(site: Path, minor: str) -> None:
    """From 3.7: every .py has a hash-based unchecked .pyc recording its path under /env; else none."""
    pycs = sorted(site.rglob("*.pyc"))
    if minor in ("2.7", "3.4", "3.5", "3.6"):
        assert not pycs
        return
    sources = sorted(site.rglob("*.py"))
    assert sources and len(pycs) == len(sources)
    for src in sources:
        tag = sys.implementation.cache_tag
        data = (src.parent / "__pycache__" / f"{src.stem}.{tag}.pyc").read_bytes()
        assert int.from_bytes(data[4:8], "little") == 1  # PEP 552: hash-based, unchecked
        assert f"/env/lib/python{minor}/site-packages/{src.relative_to(site)}".encode() in data
        assert str(site).encode() not in data


def bundled_wheels(prefix: Path, minor: str) -> list[Path]:
    """pip (and setuptools) wheels shipped with an interpreter, or Debian's python3-pip-whl."""
    for where in (prefix / "lib" / f"python{minor}" / "ensurepip" / "_bundled", Path("/usr/share/python-wheels")):
        wheels = sorted(where.glob("*.whl")) if where.is_dir() else []
        if any(w.name.startswith("pip-") for w in wheels) and (where.name == "_bundled" or minor.startswith("3")):
            return [w for w in wheels if w.name.split("-")[0] in ("pip", "setuptools")]
    return []


def python27() -> Path | None:
    """A CPython 2.7 prefix with its pip wheel: $FLEX_PYTHON27, python2.7 on PATH, or pyenv's."""
    candidates = [os.environ.get("FLEX_PYTHON27", ""), shutil.which("python2.7") or ""]
    candidates += sorted(str(p) for p in (Path.home() / ".pyenv" / "versions").glob("2.7*/bin/python2.7"))
    for exe in filter(None, candidates):
        try:
            out = subprocess.run(
                [exe, "-c", "import sys; print(sys.prefix); print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, timeout=30
            )
        except OSError:
            continue
        lines = out.stdout.split()
        if out.returncode == 0 and lines[-1:] == ["2.7"]:
            prefix = Path(lines[0])
            if (prefix / "bin" / "python2.7").is_file() and bundled_wheels(prefix, "2.7"):
                return prefix
    return None


def host_interpreter(which: str) -> tuple[str, Path] | None:
    if which == "python2.7":
        prefix = python27()
        return ("2.7", prefix) if prefix else None
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    return minor, Path(sys.base_prefix)


def tool_entry(path: Path, name: str = "", version: str = "") -> dict[str, str]:
    """A `tools` entry of runtimes.json for a local file (name and version from a wheel's name)."""
    if not name:
        name, version = path.name.split("-")[:2]
    return {"name": name, "version": version, "filename": path.name, "url": path.as_uri(), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def make_sdist(dest: Path) -> Path:
    """A pure-Python sdist whose setup.py needs setuptools, like python2's scandir in the lock."""
    files = {
        "flexdemo-1.0/PKG-INFO": "Metadata-Version: 1.1\nName: flexdemo\nVersion: 1.0\n",
        "flexdemo-1.0/setup.py": "from setuptools import setup\nsetup(name='flexdemo', version='1.0', py_modules=['flexdemo'])\n",
        "flexdemo-1.0/flexdemo.py": "ANSWER = 42\n",
    }
    path = dest / "flexdemo-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


@pytest.mark.parametrize("which", ["python3", "python2.7"])
def test_env_build_script_makes_a_working_env(tmp_path: Path, which: str) -> None:
    """The /env build script of a runtime, with tools, run outside Nix on this machine's interpreter.

    Nix cannot build here (no nixpkgs), so the script the flake evaluates to is run with bash, its
    store paths replaced by this machine's interpreter and wheels: it must give an env whose
    sys.prefix is the env (for 2.7 too), with the tools installed there and scripts for /env.
    """
    found = host_interpreter(which)
    if found is None:
        pytest.skip("no CPython 2.7 with a bundled pip wheel here (set FLEX_PYTHON27 to one's python2.7)")
    minor, prefix = found
    rid = next((i for i in IDS if RUNTIMES[i]["python"]["minor"] == minor), None)
    if rid is None:
        pytest.skip(f"no runtime with Python {minor}, this machine's")
    wheels = bundled_wheels(prefix, minor)
    assert wheels, f"no pip wheel for {prefix}"
    # pip alone for Python 3 (the test stays fast); for 2.7 setuptools too, which the sdist needs
    tools = [tool_entry(w) for w in wheels if minor == "2.7" or w.name.startswith("pip-")]
    # an sdist too, where the wheels at hand can build a setup.py project (2.7's legacy install;
    # Python 3's pip would also want the `wheel` package, which the real locks hold)
    sdist = minor == "2.7" and any(w.name.startswith("setuptools-") for w in wheels)
    if sdist:
        tools.append(tool_entry(make_sdist(tmp_path), "flexdemo", "1.0"))
    data = json.loads(json.dumps(DATA))
    data["runtimes"][rid]["tools"] = tools
    flake = copy_flake(tmp_path / "flake", data)
    got = eval_packages(flake)[rid]
    script = got["env"]["buildCommand"]
    image_prefix = RUNTIMES[rid]["python"]["prefix"]
    assert f"{image_prefix}/" in script
    script = script.replace(got["interpreter"]["path"], str(prefix)).replace(image_prefix, str(prefix))
    assert got["env"]["stdenv"] == ("stdenv" if sdist else "stdenvNoCC")  # a C compiler for sdists
    for t in tools:
        script = re.sub(STORE_PATH.pattern + re.escape(t["filename"]), t["url"].removeprefix("file://"), script)
    assert "/nix/store" not in script
    out, build = tmp_path / "out", tmp_path / "build"
    build.mkdir()
    env = {"PATH": os.environ["PATH"], "out": str(out), "TMPDIR": str(build), "LC_ALL": "C.UTF-8"}
    proc = subprocess.run(["bash", "-c", script], cwd=build, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    envdir = out / "env"
    site = envdir / "lib" / f"python{minor}" / "site-packages"
    assert (site / "pip").is_dir()
    assert_bytecode(site, minor)
    if minor not in ("2.7", "3.4", "3.5", "3.6"):  # and the image check accepts that /env
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as tar:
            tar.add(envdir, arcname="env")
        archive = docker_archive(tmp_path / "env.tar", [layer.getvalue()], {}, "env:1")
        bytecode = {"dir": f"/env/lib/python{minor}/site-packages", "mode": "unchecked-hash"}
        problems, summary = imagecheck.check(archive, {"bytecode": bytecode})
        assert list(problems) == [] and summary["bytecode"]["sources"] > 100
    probe = "\n".join(
        [
            "import sys, json, os, pip",
            "try:\n    from distutils.sysconfig import get_python_lib as purelib",  # where pip installs, 2.7 to 3.11
            "except ImportError:\n    import sysconfig\n    purelib = lambda: sysconfig.get_paths()['purelib']",
            "print(json.dumps([sys.prefix, sys.exec_prefix, os.path.dirname(pip.__file__), purelib(), sys.path]))",
        ]
    )
    run = subprocess.run(
        [str(envdir / "bin" / "python"), "-B", "-W", "ignore", "-c", probe], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60
    )
    assert run.returncode == 0, run.stderr
    sys_prefix, exec_prefix, pip_dir, purelib, path = json.loads(run.stdout)
    assert sys_prefix == str(envdir)
    assert pip_dir == str(site / "pip")  # the env's pip, not the interpreter's own
    assert purelib == str(site)  # so `pip install` in the image installs into /env
    assert str(site) in path and not any(p.startswith(str(prefix)) and p.endswith("site-packages") for p in path)
    if minor == "2.7":
        assert exec_prefix == str(envdir) and not (envdir / "pyvenv.cfg").exists()
        assert not (envdir / "bin" / "python2.7").is_symlink()
        assert os.readlink(envdir / "lib" / "python2.7" / "os.py") == f"{prefix}/lib/python2.7/os.py"
    else:
        assert (envdir / "pyvenv.cfg").read_text().startswith(f"home = {prefix}/bin\ninclude-system-site-packages = false\n")
        assert os.readlink(envdir / "bin" / "python") == f"{prefix}/bin/python{minor}"
    assert (envdir / "bin" / "pip").read_text().splitlines()[0] == "#!/env/bin/python"
    assert not list(site.glob("*.dist-info/direct_url.json"))  # no build path recorded
    if sdist:
        assert (site / "flexdemo.py").is_file()


# ---- aarch64-linux: where the lock knows an arm64 base -----------------------------------------

ARM_MANIFEST = "sha256:" + hashlib.sha256(b"arm64 manifest of a test copy").hexdigest()


def with_platforms(data: dict[str, Any], rid: str, arm64: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of DATA in the shape the lock will have: base.platforms, amd64 as today, ARM64 added."""
    data = json.loads(json.dumps(data))
    for entry in data["runtimes"].values():
        entry["base"]["platforms"] = {"amd64": dict(entry["base"]["platforms"]["amd64"])}
    if arm64 is not None:
        data["runtimes"][rid]["base"]["platforms"]["arm64"] = arm64
    return data


def test_platforms_for_amd64_give_the_same_images(tmp_path: Path, evaluated: dict[str, Any]) -> None:
    """base.platforms.amd64 (the lead's lock) and base.nix_sha256 (before it) give the same derivations."""
    flake = copy_flake(tmp_path / "flake", with_platforms(DATA, DATA["default_runtime"], None))
    got = eval_packages(flake)
    assert {rid: got[rid]["drvPath"] for rid in IDS} == {rid: evaluated[rid]["drvPath"] for rid in IDS}


def test_aarch64_packages_where_the_lock_has_an_arm64_base(tmp_path: Path) -> None:
    rid = ARM_RUNTIME
    archive = base_archive(tmp_path / "base", "arm64")  # a real file's hash, not a made-up one
    data = with_platforms(DATA, rid, {"manifest_digest": ARM_MANIFEST, "nix_sha256": sri_of(archive)})
    flake = copy_flake(tmp_path / "flake", data)
    show = flake_show(flake)
    assert sorted(show["packages"][ARM]) == ARM_PACKAGES
    assert show["packages"][ARM][rid]["name"] == f"stream-{rid}"
    assert sorted(show["hydraJobs"][rid]) == [ARM, SYSTEM]
    assert sorted(show["checks"][ARM]) == sorted([rid, CACHE_CHECK])
    assert sorted(show["packages"][SYSTEM]) == sorted([*IDS, "default"])  # amd64 unchanged
    got = eval_packages(flake, ARM)
    assert sorted(got) == ARM_PACKAGES
    arm = got[rid]
    base = data["runtimes"][rid]["base"]
    assert arm["architecture"] == "arm64" and arm["passthru"]["expect"]["architecture"] == "arm64"
    assert arm["fromImage"]["callerArgs"] == {
        "imageName": base["name"],
        "imageDigest": ARM_MANIFEST,  # the per-architecture manifest, where the lock knows it
        "hash": sri_of(archive),
        "finalImageName": "ubuntu",
        "finalImageTag": base["tag"],
        "os": "linux",
        "arch": "arm64",
    }
    drv = json.loads(nix("nix", "derivation", "show", arm["drvPath"]).stdout)
    assert next(iter(drv.values()))["system"] == ARM
    amd = eval_packages(flake)[rid]
    assert amd["drvPath"] != arm["drvPath"] and amd["interpreter"]["path"] != arm["interpreter"]["path"]
    print(f"{SYSTEM}: {amd['drvPath']}\n{ARM}: {arm['drvPath']}")


def test_an_arm64_base_without_a_hash_refuses_like_amd64(tmp_path: Path) -> None:
    rid = ARM_RUNTIME
    data = with_platforms(DATA, rid, {"manifest_digest": ARM_MANIFEST, "nix_sha256": None})
    flake = copy_flake(tmp_path / "flake", data)
    show = flake_show(flake)
    assert sorted(show["packages"][ARM]) == ARM_PACKAGES
    assert ARM not in show["hydraJobs"].get(rid, {}) and rid not in show["checks"][ARM]
    # the arm64 package only evaluates here (this machine cannot run an aarch64 builder): the message
    reasons = json.loads(nix("nix", "eval", "--json", f"path:{flake}#packages.{ARM}.{rid}.unbuildable", *overrides(flake)).stdout)
    message = " ".join(" ".join(reasons).split())
    assert f"({'arm64'}: {ARM_MANIFEST})" in message and "--os linux --arch arm64" in message


# ---- the python2 guard: a nixpkgs without what nixpkgs-python builds CPython from ---------------


def git_flake(src: Path) -> str:
    """SRC as a git repository with one commit: a flake input that has a revision."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "stand-in"]):
        subprocess.run(["git", *args], cwd=src, check=True, env=env, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, check=True, capture_output=True, text=True).stdout.strip()


def test_a_nixpkgs_without_cpython_27_makes_python2_refuse_by_name(tmp_path: Path) -> None:
    """As nixpkgs master since 2026-05-03: no cpython/2.7. The package says so, naming the revision."""
    data = json.loads(json.dumps(DATA))
    flake = copy_flake(tmp_path / "flake", data)
    standin = flake / "tests" / "nix" / "nixpkgs-standin"
    shutil.rmtree(standin / "pkgs" / "development" / "interpreters" / "python" / "cpython" / "2.7")
    rev = git_flake(standin)
    over = ["--override-input", "nixpkgs", f"git+file://{standin}"]
    over += ["--override-input", "nixpkgs-python", f"path:{flake}/tests/nix/nixpkgs-python-standin"]
    # without the guard, the interpreter itself stops evaluation at a missing path
    proc = nix("nix", "eval", "--raw", f"path:{flake}#packages.{SYSTEM}.python2.interpreter.drvPath", *over, check=False)
    assert proc.returncode != 0 and "cpython/2.7/default.nix" in proc.stderr and "does not exist" in proc.stderr
    # the package: evaluates, is kept out of hydraJobs/checks, fails when built, by name
    out = json.loads(nix("nix", "eval", "--json", f"path:{flake}#packages.{SYSTEM}.python2.unbuildable", *over).stdout)
    message = " ".join(" ".join(out).split())
    assert f"runtime python2: CPython 2.7.12 cannot be built with the pinned nixpkgs (rev {rev})" in message
    assert "pkgs/development/interpreters/python/cpython/2.7/default.nix" in message
    assert "nixpkgs master dropped CPython 2.7 on 2026-05-03" in message
    assert f"CPython 2.7.12 cannot be built with the pinned nixpkgs (rev {rev})" in build_fails(flake, f"packages.{SYSTEM}.python2", over)
    # Python 3 is unaffected
    reasons = "ps: builtins.mapAttrs (_: p: p.unbuildable or null) ps"
    py3 = json.loads(nix("nix", "eval", "--json", f"path:{flake}#packages.{SYSTEM}", *over, "--apply", reasons).stdout)
    assert all(py3[rid] is None for rid in BUILDABLE)


# ---- the binary cache's nixpkgs ----------------------------------------------------------------


def test_the_cache_check_compares_nixpkgs_with_nixpkgs_pythons_pin(tmp_path: Path) -> None:
    """checks.<system>.nixpkgs-is-nixpkgs-pythons: builds only when the flake's nixpkgs is the cache's."""
    flake = copy_flake(tmp_path / "flake")
    pins = json.loads(nix("nix", "eval", "--json", f"path:{flake}#lib.nixpkgs", *overrides(flake)).stdout)
    assert pins == {"rev": "unknown (not a git revision)", "nixpkgsPythonPins": PINS["nixpkgs"]["rev"]}
    standin = flake / "tests" / "nix" / "nixpkgs-standin"
    rev = git_flake(standin)
    python_standin = flake / "tests" / "nix" / "nixpkgs-python-standin"
    over = ["--override-input", "nixpkgs", f"git+file://{standin}", "--override-input", "nixpkgs-python", f"path:{python_standin}"]
    message = build_fails(flake, f"checks.{SYSTEM}.{CACHE_CHECK}", over)
    assert f"flake.lock: nixpkgs is {rev}, but nixpkgs-python's binary cache is built against {PINS['nixpkgs']['rev']}" in message
    assert f"--override-input nixpkgs github:NixOS/nixpkgs/{PINS['nixpkgs']['rev']}" in message
    lock = python_standin / "flake.lock"
    lock.write_text(lock.read_text().replace(PINS["nixpkgs"]["rev"], rev))
    nix("nix", "build", "--no-link", f"path:{flake}#checks.{SYSTEM}.{CACHE_CHECK}", *over)


# ---- the image checker (generator/images/imagecheck.py) -----------------------------------------------


def tar_bytes(entries: list[tuple[str, Any]]) -> bytes:
    """A tar of ENTRIES: (name, bytes) files, (name, None) directories, (name, "->target") symlinks,
    (name, (bytes, mode)) files with a mode."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, value in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1
            if value is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(value, str):
                info.type, info.linkname = tarfile.SYMTYPE, value.removeprefix("->")
                tar.addfile(info)
            else:
                data, info.mode = value if isinstance(value, tuple) else (value, 0o644)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def docker_archive(path: Path, layers: list[bytes], config: dict[str, Any], repo_tag: str, arch: str = "amd64", history: bool = True) -> Path:
    diff_ids = ["sha256:" + hashlib.sha256(b).hexdigest() for b in layers]
    archive = {"architecture": arch, "os": "linux", "config": config, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    if history:
        archive["history"] = [{"created": "1970-01-01T00:00:01Z"} for _ in layers]
    config_bytes = json.dumps(archive, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    names = [d[7:] + "/layer.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [repo_tag], "Layers": names}]).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tar_bytes([*zip(names, layers), (config_name, config_bytes), ("manifest.json", manifest)]))
    return path


def base_archive(directory: Path, arch: str = "amd64", tag: str = "22.04") -> Path:
    """A small real base image (docker-archive, as pullImage gives), named as pullImage names it."""
    layer = tar_bytes([("etc", None), ("etc/os-release", b"NAME=flex-test-base\n")])
    return docker_archive(directory / f"docker-image-ubuntu-{tag}.tar", [layer], {"Env": ["PATH=/usr/bin:/bin"]}, f"ubuntu:{tag}", arch)


def sri_of(path: Path) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def pyc(source_path: str, flags: int = 1) -> bytes:
    """A .pyc header (magic, PEP 552 flags, source hash) and a body recording SOURCE_PATH as marshal
    does: a short ASCII string (type 'z' with the reference flag, 1-byte length)."""
    path = source_path.encode()
    return b"\x00\x00\r\n" + flags.to_bytes(4, "little") + b"\x01" * 8 + b"\xe3" + b"\xfa" + bytes([len(path)]) + path


EXPECT = {
    "repo_tag": "localhost/flex-test/tiny:1",
    "architecture": "amd64",
    "config": {
        "Env": ["LANG=C.UTF-8", "PATH=/env/bin:/opt/python3.11/bin:/usr/bin:/bin", "VIRTUAL_ENV=/env"],
        "User": "1000:1000",
        "WorkingDir": "/app",
        "Labels": {"flex-python.runtime-id": "tiny"},
        "Cmd": ["python"],
        "ExposedPorts": {"8080/tcp": {}},
    },
    "paths": ["/opt/python3.11/bin/python", "/env/bin/python"],
    "bytecode": {"dir": "/env/lib/python3.11/site-packages", "mode": "unchecked-hash"},
    "max_layers": 5,
}
SITE = "/env/lib/python3.11/site-packages"


def tiny_layers(**change: Any) -> list[bytes]:
    """Three layers: a base, an interpreter reached through symlinks, and /env with bytecode."""
    interp = [
        ("nix", None),
        ("nix/store", None),
        ("nix/store/abc-python3", None),
        ("nix/store/abc-python3/bin", None),
        ("nix/store/abc-python3/bin/python3.11", change.get("interpreter", (b"\x7fELF", 0o755))),
        ("nix/store/abc-python3/bin/python", "->python3.11"),
    ]
    env = [
        ("opt", None),
        ("opt/python3.11", "->/nix/store/abc-python3"),
        ("env", None),
        ("env/bin", None),
        ("env/bin/python", change.get("env_python", "->/opt/python3.11/bin/python3.11")),
        ("env/lib/python3.11/site-packages/pkg", None),
        ("env/lib/python3.11/site-packages/pkg/__init__.py", b""),
        ("env/lib/python3.11/site-packages/pkg/__pycache__", None),
        ("env/lib/python3.11/site-packages/pkg/__pycache__/__init__.cpython-311.pyc", change.get("pyc", pyc(f"{SITE}/pkg/__init__.py"))),
    ]
    layers = [tar_bytes([("etc", None), ("etc/os-release", b"NAME=t\n")]), tar_bytes(interp), tar_bytes(env + change.get("extra", []))]
    return layers + ([tar_bytes(change["later"])] if "later" in change else [])  # a whiteout acts on lower layers


def problems_of(path: Path, expect: dict[str, Any] = EXPECT, extra_labels: frozenset[str] = frozenset()) -> list[str]:
    problems, _ = imagecheck.check(path, expect, set(extra_labels))
    return list(problems)


def test_imagecheck_accepts_a_good_image(tmp_path: Path) -> None:
    archive = docker_archive(tmp_path / "i.tar", tiny_layers(), EXPECT["config"], EXPECT["repo_tag"])
    problems, summary = imagecheck.check(archive, EXPECT)
    assert list(problems) == []
    interpreter = "/nix/store/abc-python3/bin/python3.11"
    assert summary["resolved"] == {"/opt/python3.11/bin/python": interpreter, "/env/bin/python": interpreter}
    assert summary["layers"] == 3 and summary["bytecode"] == {"sources": 1, "missing": 0, "wrong": 0}
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps(EXPECT))
    assert imagecheck.main([str(archive), "--expect", str(expect)]) == 0


@pytest.mark.parametrize(
    ("change", "config", "error"),
    [
        (
            {"env_python": "->/opt/python3.11/bin/python3.12"},
            {},
            "/env/bin/python does not resolve in the layers: /nix/store/abc-python3/bin/python3.12",
        ),
        ({"interpreter": (b"\x7fELF", 0o644)}, {}, "which is not executable"),
        (
            {"later": [("opt", None), ("opt/.wh.python3.11", b"")]},
            {},
            "/opt/python3.11/bin/python does not resolve in the layers: /opt/python3.11 does not",
        ),
        ({"pyc": pyc(f"{SITE}/pkg/__init__.py", flags=0)}, {}, "flags 0 (1 = unchecked hash)"),
        ({"pyc": pyc("/nix/store/xyz-env/env/lib/python3.11/site-packages/pkg/__init__.py")}, {}, "does not record the source path"),
        ({"extra": [("env/lib/python3.11/site-packages/pkg/more.py", b"")]}, {}, f"1 of 2 .py files under {SITE} have no .pyc"),
        ({}, {"User": "0"}, "User is '0', expected '1000:1000'"),
        ({}, {"Env": ["LANG=C.UTF-8", "PATH=/usr/bin:/bin", "VIRTUAL_ENV=/env"]}, "Env differs: PATH: image '/usr/bin:/bin'"),
        ({}, {"Labels": {"flex-python.runtime-id": "other"}}, "Labels differ: flex-python.runtime-id: image 'other', expected 'tiny'"),
        ({}, {"Cmd": ["bash"]}, "Cmd is ['bash'], expected ['python']"),
    ],
    ids=["broken-symlink", "not-executable", "whiteout", "checked-pyc", "build-path-pyc", "missing-pyc", "user", "env", "labels", "cmd"],
)
def test_imagecheck_finds_what_is_wrong(tmp_path: Path, change: dict[str, Any], config: dict[str, Any], error: str) -> None:
    archive = docker_archive(tmp_path / "i.tar", tiny_layers(**change), {**EXPECT["config"], **config}, EXPECT["repo_tag"])
    problems = problems_of(archive)
    assert any(error in p for p in problems), problems
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps(EXPECT))
    assert imagecheck.main([str(archive), "--expect", str(expect)]) == 1


def test_imagecheck_checks_the_layers_against_the_config(tmp_path: Path) -> None:
    layers = tiny_layers()
    archive = docker_archive(tmp_path / "i.tar", layers, EXPECT["config"], EXPECT["repo_tag"])
    # a layer whose bytes are not its diff id: rewrite one layer's content in place
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    name = next(n for n in members if n.endswith("/layer.tar") and members[n] == layers[0])
    members[name] = tar_bytes([("etc", None), ("etc/os-release", b"NAME=tampered\n")])
    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes(tar_bytes(list(members.items())))
    assert any("but its diff id is" in p for p in problems_of(tampered))
    # more layers than allowed; a wrong tag; the wrong architecture
    many = docker_archive(tmp_path / "many.tar", layers, EXPECT["config"], EXPECT["repo_tag"])
    assert any("more than max_layers 2" in p for p in problems_of(many, {**EXPECT, "max_layers": 2}))
    assert any("RepoTags is" in p for p in problems_of(many, {**EXPECT, "repo_tag": "other:1"}))
    assert any("architecture is 'amd64', expected 'arm64'" in p for p in problems_of(many, {**EXPECT, "architecture": "arm64"}))
    # a label the image may carry beyond the expected (e.g. buildah's), only when allowed
    labels = {**EXPECT["config"]["Labels"], "io.buildah.version": "1.28"}
    labelled = docker_archive(tmp_path / "l.tar", layers, {**EXPECT["config"], "Labels": labels}, EXPECT["repo_tag"])
    assert any("io.buildah.version" in p for p in problems_of(labelled))
    assert problems_of(labelled, extra_labels=frozenset({"io.buildah.version"})) == []
    not_tar = tmp_path / "x.tar"
    not_tar.write_bytes(b"not a tar")
    assert any("not a readable tar archive" in p for p in problems_of(not_tar))


# ---- checks.<system>.<id>: the image streamed and looked into, by Nix, with the stand-ins ---------


def check_flake(tmp_path: Path, rid: str) -> tuple[Path, dict[str, Any]]:
    """A copy of the flake whose runtime RID has a base this machine has (its real hash, in the
    store as a prefetch leaves it) and no tools (the stand-in interpreter cannot run pip)."""
    archive = base_archive(tmp_path / "base", tag=RUNTIMES[rid]["base"]["tag"])
    nix("nix-store", "--add-fixed", "sha256", str(archive))
    data = json.loads(json.dumps(DATA))
    set_amd64_hash(data["runtimes"][rid]["base"], sri_of(archive))
    data["runtimes"][rid]["tools"] = []
    return copy_flake(tmp_path / "flake", data), data


def test_the_image_check_builds_streams_and_looks_inside(tmp_path: Path) -> None:
    rid = PY3_RUNTIME
    flake, _ = check_flake(tmp_path, rid)
    nix("nix", "build", "--no-link", f"path:{flake}#checks.{SYSTEM}.{rid}", *overrides(flake), timeout=IMAGE_BUILD_TIMEOUT)
    log = nix("nix", "log", f"path:{flake}#checks.{SYSTEM}.{rid}", *overrides(flake)).stdout  # built now or before
    assert "imagecheck: image.tar: ok" in log
    assert f'"/opt/python{RUNTIMES[rid]["python"]["minor"]}/bin/python": "/nix/store/' in log
    # the package itself: its stream script writes the image the check looked at
    out = nix("nix", "build", "--no-link", "--print-out-paths", f"path:{flake}#packages.{SYSTEM}.{rid}", *overrides(flake)).stdout.strip()
    archive = tmp_path / "image.tar"
    with archive.open("wb") as f:
        subprocess.run(["bash", str(RUN_NIX), out], stdout=f, check=True, timeout=300)
    expect = json.loads(nix("nix", "eval", "--json", f"path:{flake}#packages.{SYSTEM}.{rid}.expect", *overrides(flake)).stdout)
    problems, summary = imagecheck.check(archive, expect)
    assert list(problems) == [] and summary["layers"] >= 3


def test_the_image_check_fails_on_a_wrong_image(tmp_path: Path) -> None:
    """The same check over an image whose config is not runtimes.json's: the build fails, saying why."""
    rid = PY3_RUNTIME
    flake, _ = check_flake(tmp_path, rid)
    fn = flake / "nix" / "runtime-image.nix"
    text = fn.read_text()
    old = "    config = entry.config;\n    inherit created passthru;\n"
    assert text.count(old) == 1
    fn.write_text(text.replace(old, '    config = entry.config // { User = "0"; };\n    inherit created passthru;\n'))
    # the whole image is built before its check fails (from a cold store when this test runs first)
    message = build_fails(flake, f"checks.{SYSTEM}.{rid}", timeout=IMAGE_BUILD_TIMEOUT)
    assert "imagecheck: image.tar: 1 problem(s): - User is '0', expected '1000:1000'" in message


# ---- the checker over images podman made (no Nix involved; the same verification) --------------


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"podman {shlex.join(args)}: {proc.stderr[-2000:]}"
    return proc


needs_podman = pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (bash ci/dev.sh setup)")


@pytest.mark.image
@needs_podman
def test_imagecheck_over_a_podman_saved_image(tmp_path: Path) -> None:
    """A small root imported into podman and saved as a docker-archive: what `podman save` writes."""
    tag = "localhost/flex-test/imagecheck-tiny:1"
    rootfs = tmp_path / "rootfs.tar"
    entries: list[tuple[str, Any]] = []
    for layer in tiny_layers():
        with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
            for m in tar.getmembers():
                f = tar.extractfile(m) if m.isreg() else None
                entries.append((m.name, None if m.isdir() else "->" + m.linkname if m.issym() else (f.read() if f else b"", m.mode)))
    rootfs.write_bytes(tar_bytes(entries))
    cfg = EXPECT["config"]
    changes = [f"ENV {e}" for e in cfg["Env"]] + [
        f"USER {cfg['User']}",
        f"WORKDIR {cfg['WorkingDir']}",
        "LABEL " + " ".join(f"{k}={v}" for k, v in cfg["Labels"].items()),
        f"CMD {json.dumps(cfg['Cmd'])}",
        "EXPOSE 8080/tcp",
    ]
    podman("import", *[a for c in changes for a in ("--change", c)], str(rootfs), tag)
    try:
        saved = tmp_path / "saved.tar"
        podman("save", "--format", "docker-archive", "-o", str(saved), tag)
        expect = {**EXPECT, "repo_tag": tag}
        problems, summary = imagecheck.check(saved, expect)
        assert list(problems) == [] and summary["layers"] == 1
        assert problems_of(saved, {**expect, "config": {**cfg, "User": "0"}}) == ["User is '1000:1000', expected '0'"]
    finally:
        subprocess.run(["podman", "rmi", "-f", tag], capture_output=True)


@pytest.mark.image
@pytest.mark.usefixtures("need_podman")
def test_imagecheck_over_the_dockerfile_path_image(tmp_path: Path, image: dict) -> None:
    """The real Dockerfile-path image (python311-ubuntu22 on the real Ubuntu 22.04 root, the image
    tests' session image): saved with podman, then checked like the Nix images, against its entry
    in the runtimes.json it was built from."""
    tag = image["tag"]
    inspect = json.loads(podman("image", "inspect", tag).stdout)[0]
    rid = inspect["Config"]["Labels"]["flex-python.runtime-id"]
    entry = json.loads((image["tree"] / paths.RUNTIMES_JSON).read_text())["runtimes"][rid]
    py = entry["python"]
    saved = tmp_path / "saved.tar"
    podman("save", "--format", "docker-archive", "-o", str(saved), tag)
    expect = {
        "repo_tag": tag,
        "architecture": "amd64",
        "config": entry["config"],
        "paths": [f"{py['prefix']}/bin/python", "/env/bin/python"],
        "bytecode": None,
        "max_layers": 127,
    }
    # the SBOM labels `build` adds in its own last step are not part of the generated config (test_sbom_image checks them)
    problems, summary = imagecheck.check(saved, expect, {"io.buildah.version", *sbom.LABEL.values()})
    assert list(problems) == [], problems
    assert summary["resolved"]["/env/bin/python"].startswith(f"{py['prefix']}/bin/python")
    # and it sees what is wrong in the same image
    assert any(
        "WorkingDir is '/app', expected '/srv'" in p for p in problems_of(saved, {**expect, "config": {**expect["config"], "WorkingDir": "/srv"}})
    )


def test_imagecheck_reads_gzip_layers_by_their_diff_id(tmp_path: Path) -> None:
    """A diff id is the digest of the uncompressed layer; an archive may hold the layer gzipped."""
    layers = tiny_layers()
    archive = docker_archive(tmp_path / "i.tar", layers, EXPECT["config"], EXPECT["repo_tag"])
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    members = {n: gzip.compress(d, mtime=0) if n.endswith("/layer.tar") else d for n, d in members.items()}
    gzipped = tmp_path / "gzipped.tar"
    gzipped.write_bytes(tar_bytes(list(members.items())))
    assert problems_of(gzipped) == []


@pytest.mark.parametrize("length", [40, 300], ids=["short-string", "long-string"])
def test_imagecheck_reads_the_source_path_of_real_bytecode(tmp_path: Path, length: int) -> None:
    """py_compile's own .pyc (hash-based, unchecked, recorded as dfile): marshal writes the path as a
    short or a long string by its length; the check finds it, and only as a whole string."""
    src = tmp_path / "m.py"
    src.write_text("X = 1\n")
    dfile = "/env/" + "d" * (length - len("/env/") - len("/m.py")) + "/m.py"
    out = tmp_path / "m.pyc"
    py_compile.compile(str(src), cfile=str(out), dfile=dfile, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    data = out.read_bytes()
    assert int.from_bytes(data[4:8], "little") == 1
    assert imagecheck.records(data, dfile)
    assert not imagecheck.records(data, dfile[1:])  # a tail of the recorded path is not it


def test_a_release_nixpkgs_python_lacks_refuses_when_built(tmp_path: Path) -> None:
    """A refresh pins a patch release nixpkgs-python does not have yet: flake check still passes, the
    runtime is left out of hydraJobs and checks, and building it says why and what to do."""
    data = json.loads(json.dumps(DATA))
    rid = BUILDABLE[0]
    minor = RUNTIMES[rid]["python"]["minor"]
    newest = max((v for v in STANDIN_RELEASES if v.startswith(minor + ".")), key=lambda v: int(v.split(".")[2]), default=f"{minor}.0")
    data["runtimes"][rid]["python"]["version"] = f"{minor}.{int(newest.split('.')[2]) + 1}"
    flake = copy_flake(tmp_path / "flake", data)
    show = flake_show(flake)
    assert show["packages"][SYSTEM][rid]["type"] == "derivation"
    assert rid not in show["hydraJobs"] and rid not in show["checks"][SYSTEM]
    nix("nix", "flake", "check", "--no-build", "--all-systems", f"path:{flake}", *overrides(flake))
    message = build_fails(flake, f"packages.{SYSTEM}.{rid}")
    assert f"CPython {data['runtimes'][rid]['python']['version']} is not provided by the pinned nixpkgs-python" in message
    assert "python -m generator refresh --only nix" in message


def test_a_tool_file_name_that_is_not_a_plain_file_name_fails_evaluation(tmp_path: Path) -> None:
    """The wheels list reaches a shell script and the store: a path in a file name stops evaluation."""
    data = json.loads(json.dumps(DATA))
    tools = data["runtimes"][PY3_RUNTIME]["tools"]
    tools[0]["filename"] = "../outside.whl"
    flake = copy_flake(tmp_path / "flake", data)
    proc = nix("nix", "eval", "--raw", f"path:{flake}#packages.{SYSTEM}.{PY3_RUNTIME}.drvPath", *overrides(flake), check=False)
    assert proc.returncode != 0 and "tool file name '../outside.whl' is not a plain wheel or sdist file name" in proc.stderr
