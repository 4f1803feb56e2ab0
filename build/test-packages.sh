#!/usr/bin/env bash
# make test-packages: builds the packages (ARCHES, default amd64 arm64), then
#   - installs the amd64 ones on this machine with apt-get (dependencies resolved by apt),
#     runs `vigil-agent check-config` and `vigil-agent detect` as installed, as the service
#     user, from /, and purges them, checking that nothing is left;
#   - verifies the systemd units offline (systemd-analyze verify; any output fails) and
#     reports `systemd-analyze security --offline=true` into dist/;
#   - with arm64: runs the arm64 agent's version and detect under qemu and compares its
#     detections with the amd64 agent's (build/test-arm64.sh).
# Runs as root (apt-get, runuser).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ARCHES=${ARCHES:-"amd64 arm64"}
export EDGE_DATA_DIR=${EDGE_DATA_DIR:-$ROOT/../shared/data}
log() { printf 'test-packages: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (apt-get install, runuser)"

if [[ " $ARCHES " == *" arm64 "* ]]; then ./build/deps-arm64.sh; fi
export DEB_VERSION=$(./build/deb-version.sh)
ARCHES="$ARCHES" ./build/package.sh
V=$DEB_VERSION
AGENT=dist/vigil-agent_${V}_amd64.deb
FLEET=dist/vigil-fleet_${V}_amd64.deb
APT=(apt-get -y -q -o DPkg::Lock::Timeout=600)

# --- install, run, purge (amd64, on this machine) ---
if dpkg-query -W -f='${Status}' vigil-agent vigil-fleet 2>/dev/null | grep -q installed; then
	log "removing a previous installation"
	"${APT[@]}" purge vigil-agent vigil-fleet >/dev/null
fi
log "apt-get install ./$AGENT ./$FLEET"
DEBIAN_FRONTEND=noninteractive "${APT[@]}" install "./$AGENT" "./$FLEET" >/dev/null
cleanup() { DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge vigil-agent vigil-fleet >/dev/null 2>&1 || true; }
trap cleanup EXIT

getent passwd vigil >/dev/null || fail "no vigil user after install"
getent passwd vigil-fleet >/dev/null || fail "no vigil-fleet user after install"
[ "$(stat -c %U:%a /var/lib/vigil)" = vigil:750 ] || fail "/var/lib/vigil is $(stat -c %U:%a /var/lib/vigil)"
[ "$(stat -c %G:%a /etc/vigil/agent.yaml)" = vigil:640 ] || fail "/etc/vigil/agent.yaml is $(stat -c %G:%a /etc/vigil/agent.yaml)"
if ldd /usr/bin/vigil-agent | grep -q "not found"; then fail "vigil-agent misses libraries: $(ldd /usr/bin/vigil-agent | grep 'not found')"; fi

as_vigil() { (cd / && runuser -u vigil -- env -i PATH=/usr/bin:/bin HOME=/var/lib/vigil "$@"); }
out=$(as_vigil /usr/bin/vigil-agent version) || fail "vigil-agent version"
log "installed: $out"
out=$(as_vigil /usr/bin/vigil-agent check-config --config /etc/vigil/agent.yaml) || fail "check-config on the packaged /etc/vigil/agent.yaml: $out"
log "check-config: $out"
img=$EDGE_DATA_DIR/images/darknet_person.jpg
tmpimg=$(mktemp -d)/person.jpg
install -m 0644 "$img" "$tmpimg"
chmod 0755 "$(dirname "$tmpimg")"
det=$(as_vigil /usr/bin/vigil-agent detect --model /usr/share/vigil/models/yolox_nano_coco_416.json "$tmpimg") ||
	fail "detect as installed: $det"
echo "$det" | python3 -c '
import json, sys
d = json.loads(sys.stdin.readline())
labels = [o["label"] for o in d["objects"]]
assert "person" in labels, f"no person detected: {labels}"
ms = d["inference_ms"]
print(f"detect as installed: {len(labels)} objects {sorted(set(labels))}, {ms:.1f} ms")
' >&2 || fail "detect output: $det"
out=$(cd / && /usr/bin/vigil-fleet 2>&1 || true)
echo "$out" | grep -q "serve" || fail "vigil-fleet does not run: $out"
[ -s /usr/share/vigil/monitoring/grafana/vigil-fleet.json ] || fail "dashboard missing"

log "apt-get purge"
trap - EXIT
DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge vigil-agent vigil-fleet >/dev/null
for p in /usr/bin/vigil-agent /usr/bin/vigil-fleet /usr/lib/vigil /usr/share/vigil /etc/vigil /etc/default/vigil-agent \
	/etc/default/vigil-fleet /var/lib/vigil /var/lib/vigil-fleet /lib/systemd/system/vigil-agent.service; do
	[ ! -e "$p" ] || fail "$p is left after purge"
done
! getent passwd vigil >/dev/null || fail "user vigil left after purge"
! getent passwd vigil-fleet >/dev/null || fail "user vigil-fleet left after purge"
log "installed, ran and purged cleanly"

# --- units, offline ---
R=$(mktemp -d)
dpkg-deb -x "$AGENT" "$R"
dpkg-deb -x "$FLEET" "$R"
mkdir -p "$R/lib/systemd/system" "$R/etc/systemd/system"
cp /lib/systemd/system/*.target /lib/systemd/system/*.slice "$R/lib/systemd/system/" 2>/dev/null
for u in vigil-agent.service vigil-fleet.service; do
	out=$(systemd-analyze verify --man=no --root="$R" "$R/lib/systemd/system/$u" 2>&1) || fail "systemd-analyze verify $u: $out"
	[ -z "$out" ] || fail "systemd-analyze verify $u: $out"
	systemd-analyze security --offline=true --root="$R" "$R/lib/systemd/system/$u" >"dist/security-$u.txt" 2>&1 || true
	log "systemd-analyze verify $u: clean; security: $(grep -o 'Overall exposure level.*' "dist/security-$u.txt" | head -1)"
done
rm -rf "$R"

# --- arm64 under qemu ---
if [[ " $ARCHES " == *" arm64 "* ]]; then ./build/test-arm64.sh; fi
log "ok"
