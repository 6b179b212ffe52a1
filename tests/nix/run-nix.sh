#!/usr/bin/env bash
# Run a command (nix, nix-instantiate, nix-store, …) with a modern Nix on a machine whose own
# Nix is too old for nixpkgs (Debian 12's nix-bin is 2.8; the pinned nixpkgs needs >= 2.18).
#
#   bash tests/nix/run-nix.sh nix --version
#
# The Nix is Debian trixie's nix-bin (2.26), installed in a root of its own made with mmdebstrap
# by `bash ci/dev.sh setup` (function setup_nix_root): $FLEX_NIX_ROOT, by default
# ~/.cache/flex-python/test/nix-trixie. Nothing of the system is touched: the command runs in a
# private mount namespace, chrooted into that root, with /dev, /proc, /tmp and this repository
# bind-mounted at their own paths (so `path:` flakes under /tmp and files of the checkout have
# the same names inside and out), plus the directories listed in $FLEX_NIX_BINDS (colon-
# separated). The root keeps its own /nix/store. Needs root (mount namespaces, chroot).
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

binds="/tmp:$repo${FLEX_NIX_BINDS:+:$FLEX_NIX_BINDS}"
exec unshare --mount --propagation private -- bash -euo pipefail -c '
  root=$1 binds=$2 cwd=$3; shift 3
  mount --rbind /dev "$root/dev"
  mount -t proc proc "$root/proc"
  IFS=: read -r -a dirs <<<"$binds"
  for d in "${dirs[@]}"; do
    [ -n "$d" ] && [ -d "$d" ] || continue
    mkdir -p "$root$d"
    mount --rbind "$d" "$root$d"
  done
  exec chroot "$root" /bin/sh -c "cd \"\$0\" 2>/dev/null || cd /; exec \"\$@\"" "$cwd" "$@"
' run-nix "$root" "$binds" "$PWD" "$@"
