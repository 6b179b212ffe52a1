#!/usr/bin/env bash
# Make rootful podman work on these machines (see shared notes): crun refuses the hybrid cgroup
# layout and default rlimits cannot be set, so use runc, the cgroupfs manager and no default ulimits.
set -euo pipefail
conf=/etc/containers/containers.conf
want='[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"'
if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo mkdir -p /etc/containers
  printf '%s\n' "$want" | $sudo tee "$conf" >/dev/null
fi
