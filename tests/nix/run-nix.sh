#!/usr/bin/env bash
# Run a command (nix, nix-instantiate, nix-store, …) with a modern Nix on a machine whose own
# Nix is too old for nixpkgs (Debian 12's nix-bin is 2.8; the pinned nixpkgs needs >= 2.18).
#
#   bash tests/nix/run-nix.sh nix --version
#
# The Nix is Debian trixie's nix-bin (2.26), installed in a root of its own made with mmdebstrap
# by `bash ci/dev.sh setup` (function setup_nix_root): $FLEX_NIX_ROOT, by default
# ~/.cache/flex-python/test/nix-trixie. Nothing of the system is touched: bubblewrap runs the
# command with that root as / (pivot_root, not chroot: in a chroot the kernel refuses the
# namespaces Nix's build sandbox needs), with /dev, /proc, /tmp and this repository at their own
# paths (so `path:` flakes under /tmp and files of the checkout have the same names inside and
# out), plus the directories listed in $FLEX_NIX_BINDS (colon-separated). The root keeps its own
# /nix/store and /etc/nix/nix.conf. Needs root.
set -euo pipefail

root="${FLEX_NIX_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/flex-python/test/nix-trixie}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ ! -x "$root/usr/bin/nix" ]; then
  echo "run-nix.sh: no Nix root at $root (make it with: bash ci/dev.sh setup)" >&2
  exit 127
fi
if [ "$#" -eq 0 ]; then
  echo "usage: bash tests/nix/run-nix.sh COMMAND [ARG…]" >&2
  exit 2
fi

# /proc is the host's, not a fresh one: under bubblewrap's own (parts of it read-only), the kernel
# refuses the proc mount of the build sandbox's PID namespace.
args=(--bind "$root" / --dev-bind /dev /dev --bind /proc /proc)
IFS=: read -r -a dirs <<<"/tmp:$repo${FLEX_NIX_BINDS:+:$FLEX_NIX_BINDS}"
cwd=/  # the current directory, where it is bound inside
for d in "${dirs[@]}"; do
  if [ -n "$d" ] && [ -d "$d" ]; then
    args+=(--bind "$d" "$d")
    case "$PWD/" in "${d%/}/"*) cwd="$PWD" ;; esac
  fi
done
args+=(--chdir "$cwd")
exec bwrap "${args[@]}" -- "$@"
