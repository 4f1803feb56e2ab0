#!/usr/bin/env bash
# make build-arm64: every binary (vigil-agent with cgo: FFmpeg, libjpeg, ONNX Runtime at run
# time) cross-built for linux/arm64 into bin/arm64/. Needs build/deps-arm64.sh (make deps-arm64).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SR=$ROOT/.deps/arm64-sysroot
PC=$ROOT/.deps/arm64-pkgconfig
LDFLAGS=${LDFLAGS:-}
log() { printf 'build-arm64: %s\n' "$*" >&2; }
command -v aarch64-linux-gnu-gcc >/dev/null && [ -f "$SR/.complete" ] ||
	{ log "the arm64 cross toolchain is not set up: run make deps-arm64"; exit 1; }

# opencv4.pc for the sysroot: its libraries, its headers (the host's are the same version).
mkdir -p "$PC"
inc=/usr/include/opencv4
[ -d "$SR/usr/include/opencv4" ] && inc=$SR/usr/include/opencv4
archinc=""
[ -d "$SR/usr/include/aarch64-linux-gnu/opencv4" ] && archinc="-I$SR/usr/include/aarch64-linux-gnu/opencv4"
libs=$(pkg-config --libs-only-l opencv4)
cat >"$PC/opencv4.pc" <<PCFILE
Name: OpenCV
Description: OpenCV 4.6 from the arm64 sysroot
Version: $(pkg-config --modversion opencv4)
Libs: -L$SR/usr/lib/aarch64-linux-gnu $libs
Cflags: $archinc -I$inc
PCFILE

# libjpeg.pc (the agent's snapshots) for the sysroot: jconfig.h is per architecture.
cat >"$PC/libjpeg.pc" <<PCFILE
Name: libjpeg
Description: libjpeg-turbo from the arm64 sysroot
Version: 2.1.5
Libs: -L$SR/usr/lib/aarch64-linux-gnu -ljpeg
Cflags: -I$SR/usr/include/aarch64-linux-gnu -I$SR/usr/include
PCFILE

# Every folder of the sysroot holding shared libraries, for the linker's -rpath-link.
rpl=$(find "$SR" -name '*.so*' -printf '%h\n' | sort -u | sed 's/^/-Wl,-rpath-link,/' | tr '\n' ' ')

export CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++
export PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR=$PC:/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
export CGO_LDFLAGS="-L$SR/usr/lib/aarch64-linux-gnu $rpl"
mkdir -p bin/arm64
for pkg in $(go list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./... | grep '/cmd/'); do
	name=$(basename "$pkg")
	cgo=1
	# Pure Go binaries stay static (no libc dependency on the box).
	if [ -z "$(go list -deps -f '{{if .CgoFiles}}{{.ImportPath}}{{end}}' "$pkg" | grep -v '^runtime/cgo$\|^net$\|^os/user$')" ]; then cgo=0; fi
	log "$name (cgo $cgo)"
	CGO_ENABLED=$cgo go build -ldflags "$LDFLAGS" -o "bin/arm64/$name" "$pkg"
done
