#!/usr/bin/env bash
# Sets up the arm64 cross build and emulation, idempotently (see ../shared/docs/DEPS.md,
# "arm64 agent"):
#   - dpkg multiarch arm64; gcc/g++-aarch64-linux-gnu; FFmpeg's -dev packages for arm64
#   - .deps/arm64-sysroot: libopencv-dev:arm64 and its dependencies, unpacked (they cannot be
#     installed beside the amd64 OpenCV), without libc6-dev/linux-libc-dev
#   - .deps/qemu: qemu-user 10 from bookworm-backports, unpacked (Debian's 7.2 crashes loading
#     ONNX Runtime); never run cgo binaries with qemu -L (hangs): build/run-arm64 sets
#     LD_LIBRARY_PATH instead
#   - ONNX Runtime arm64 comes with make deps (.deps/onnxruntime/arm64)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEPS=$ROOT/.deps
SR=$DEPS/arm64-sysroot
QEMU=$DEPS/qemu
log() { printf 'deps-arm64: %s\n' "$*" >&2; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
APT=($SUDO apt-get -q -o DPkg::Lock::Timeout=600)
export DEBIAN_FRONTEND=noninteractive

updated=""
update() { [ -n "$updated" ] || { "${APT[@]}" update -qq; updated=1; }; }

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	log "dpkg --add-architecture arm64"
	$SUDO dpkg --add-architecture arm64
	update
fi
PKGS=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libavcodec-dev:arm64 libavformat-dev:arm64 libswscale-dev:arm64)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	log "installing ${missing[*]}"
	update
	"${APT[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f "$SR/.complete" ]; then
	log "unpacking libopencv-dev:arm64 and its dependencies into $SR"
	update
	tmp=$(mktemp -d)
	# Every package apt would install for libopencv-dev:arm64 (apt refuses to install it beside
	# the amd64 one, but lists it), arm64 ones only.
	"${APT[@]}" install -s --no-install-recommends libopencv-dev:arm64 2>/dev/null |
		awk '/^Inst /{print $2}' | grep ':arm64$' | sort -u >"$tmp/list" || true
	if [ ! -s "$tmp/list" ]; then
		# apt may refuse the simulation outright; then take the dependency closure instead.
		apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
			libopencv-dev:arm64 2>/dev/null | grep -E '^[a-z0-9].*:arm64$' | sort -u >"$tmp/list"
	fi
	[ -s "$tmp/list" ] || { log "cannot list libopencv-dev:arm64's packages"; exit 1; }
	log "$(wc -l <"$tmp/list") packages"
	(cd "$tmp" && xargs -a list apt-get download -q >/dev/null)
	rm -rf "$SR"
	mkdir -p "$SR"
	for d in "$tmp"/*.deb; do dpkg-deb -x "$d" "$SR"; done
	# libc6-dev's libc.so linker script points outside the sysroot; the cross gcc has its own.
	for d in "$tmp"/libc6-dev_*.deb "$tmp"/linux-libc-dev_*.deb; do
		[ -e "$d" ] || continue
		dpkg-deb -c "$d" | awk '{print $6}' | grep -v '/$' | while read -r f; do rm -f "$SR/${f#./}"; done
	done
	rm -rf "$tmp"
	touch "$SR/.complete"
fi

if [ ! -x "$QEMU/usr/bin/qemu-aarch64" ]; then
	if ! apt-cache policy qemu-user 2>/dev/null | grep -q bookworm-backports; then
		log "adding bookworm-backports to apt sources (pinned low by Debian: nothing upgrades from it unasked)"
		echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/vigil-bookworm-backports.list >/dev/null
		updated=""
		update
	fi
	log "unpacking qemu-user from bookworm-backports into $QEMU"
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get download -q -t bookworm-backports qemu-user >/dev/null)
	rm -rf "$QEMU"
	mkdir -p "$QEMU"
	dpkg-deb -x "$tmp"/qemu-user_*.deb "$QEMU"
	rm -rf "$tmp"
fi
"$QEMU/usr/bin/qemu-aarch64" --version | head -1 | sed 's/^/deps-arm64: /' >&2
[ -s "$DEPS/onnxruntime/arm64/libonnxruntime.so" ] || "$ROOT/build/deps.sh"
log "ok"
