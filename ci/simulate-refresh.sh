#!/usr/bin/env bash
# The scheduled refresh, end to end, against real upstreams on 127.0.0.1, in a scratch clone:
#   - a real registry (Debian's docker-registry) serving a moved `ubuntu:24.04` tag, asked through
#     FLEX_PYTHON_REGISTRY_MIRRORS as a pull-through mirror of docker.io would be;
#   - a python.org-shaped release directory listing a new patch release of the newest pinned 3.12,
#     with its `.sigstore` bundle and `.spdx.json` SBOM (the checksum of the tarball served there).
# Then `refresh` (lock, relock against PyPI, regenerate, snapshot update), both `--check`s, and the
# whole non-image test suite on the result: the pull request the scheduled job would open must pass
# CI as it stands. Last line: `refresh simulation: N pins moved, M runtimes to rebuild; tests: X passed, 0 failed`.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="$repo/.venv/bin/python"
[ -x "$py" ] || { echo "error: $repo/.venv is missing: run bash ci/dev.sh setup" >&2; exit 2; }
work="$(mktemp -d)"
registry_pid=""
server_pid=""
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || :
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || :
  if [ -n "${KEEP_SIMULATION:-}" ]; then echo "kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
log() { printf '==> %s\n' "$*" >&2; }
free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "error: $1 did not come up" >&2; exit 1; }

log "scratch clone of $(git -C "$repo" rev-parse --short HEAD) in $work/tree"
git clone -q "$repo" "$work/tree"
ln -s "$repo/.venv" "$work/tree/.venv"  # the same tools the tests use (hadolint, actionlint)
cd "$work/tree"
git -c user.name=sim -c user.email=sim@example.invalid commit -q --allow-empty -m "before refresh"

log "a registry on 127.0.0.1 serving a moved ubuntu:24.04"
port="$(free_port)"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$work/registry" "$port" > "$work/registry.yml"
/usr/bin/docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
wait_http "http://127.0.0.1:$port/v2/"
"$py" - "$work/layout" <<'PY'
import sys
from pathlib import Path
from tests.refresh.test_refresh import oci_layout  # the tests' byte-exact OCI layout writer
oci_layout(Path(sys.argv[1]), b"ubuntu 24.04, as the tag points now\n")
PY
skopeo copy -q --dest-tls-verify=false "oci:$work/layout" "docker://127.0.0.1:$port/library/ubuntu:24.04"

log "a python.org-shaped release directory with a new 3.12 patch release"
"$py" - "$work/ftp" <<'PY'
import base64, hashlib, json, sys
from pathlib import Path
from generator.schedule import runtimes as schedule
pins = schedule.load("schedule.yaml").pins
root = Path(sys.argv[1])
current = dict(pins.python_minors)
major, minor, patch = current["3.12"].split(".")
new = f"{major}.{minor}.{int(patch) + 1}"
tarball = f"Python-{new}.tgz as served by this simulation\n".encode()
digest = hashlib.sha256(tarball).digest()
listing = "".join(f'<a href="{v}/">{v}/</a>\n' for v in sorted([*current.values(), new]))
root.mkdir(parents=True)
(root / "index.html").write_text(f"<html><body><pre>\n{listing}</pre></body></html>\n")
d = root / new
d.mkdir()
(d / f"Python-{new}.tgz").write_bytes(tarball)
bundle = {"messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": base64.b64encode(digest).decode()}}}
(d / f"Python-{new}.tgz.sigstore").write_text(json.dumps(bundle))
sbom = {"packages": [{"name": "CPython", "versionInfo": new, "checksums": [{"algorithm": "SHA256", "checksumValue": digest.hex()}]}]}
(d / f"Python-{new}.tgz.spdx.json").write_text(json.dumps(sbom))
for v in current.values():
    (root / v).mkdir()
print(f"simulated release: Python {new}", file=sys.stderr)
PY
http_port="$(free_port)"
"$py" -m http.server --bind 127.0.0.1 --directory "$work/ftp" "$http_port" >/dev/null 2>&1 &
server_pid=$!
wait_http "http://127.0.0.1:$http_port/"

log "refresh ubuntu24 3.12 (lock, relock, regenerate, snapshots); the OS package step is simulated in tests/images/test_image.py"
FLEX_PYTHON_REGISTRY_MIRRORS="docker.io=127.0.0.1:$port" "$py" -m generator refresh ubuntu24 3.12 --only os --only python \
  --python-source "http://127.0.0.1:$http_port/" --changelog "$work/changelog.md" 2>"$work/refresh.err" >/dev/null \
  || { cat "$work/refresh.err" >&2; exit 1; }
cat "$work/changelog.md" >&2
summary="$(grep '^refresh: ' "$work/refresh.err")"
pins_moved="$(sed -E 's/^refresh: ([0-9]+) pin.*/\1/' <<<"$summary")"

log "the refreshed tree: generate --check, lock --check, matrix"
"$py" -m generator generate --check >&2
"$py" -m generator lock --check >&2
git status --short >&2
rebuild="$("$py" -m generator matrix --changed-since HEAD --json | "$py" -c 'import json, sys; print(len(json.load(sys.stdin)["include"]))')"

log "the whole non-image test suite on the refreshed tree"
set +e
"$py" -m pytest -q -p no:cacheprovider -m "not image" >"$work/pytest.log" 2>&1
code=$?
set -e
tail -n 5 "$work/pytest.log" >&2
summary_line="$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' "$work/pytest.log" | tail -1 || :)"
passed="$(awk '{for (i = 2; i <= NF; i++) if ($i ~ /^passed/) n = $(i - 1)} END {print n + 0}' <<<"${summary_line//,/ }")"
failed="$(awk '{for (i = 2; i <= NF; i++) if ($i ~ /^(failed|error)/) n += $(i - 1)} END {print n + 0}' <<<"${summary_line//,/ }")"
echo "refresh simulation: ${pins_moved} pins moved, ${rebuild} runtimes to rebuild; tests: ${passed:-0} passed, ${failed} failed"
[ "$code" -eq 0 ] && [ "$failed" -eq 0 ] && [ "${pins_moved}" -ge 2 ]
