#!/usr/bin/env bash
# Installs everything Vigil needs to build, test and demo on Debian 12, idempotently.
# Safe to run again: each step checks first and does nothing when its part is present.
#
#   apt packages   libavcodec/libavformat/libswscale-dev and libjpeg-dev (the agent),
#                  libopencv-dev (tests only: they check pictures with OpenCV),
#                  python3-onnx (tests only: a dynamic-batch copy of the model), ffmpeg,
#                  mosquitto, pkg-config, prometheus (for promtool), chromium and
#                  fonts-dejavu-core (headless dashboard test), postgresql-15 and nats-server
#                  (scale-out tests start their own, on loopback)
#   ONNX Runtime   libonnxruntime.so from the onnxruntime-node npm package (npm pack, never
#                  npm install) into .deps/onnxruntime/<arch>/
#   Go modules     go mod download
#   shared data    checked, with a message saying what is missing and how to get it
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEPS_DIR="$ROOT/.deps"
ORT_VERSION="${ORT_VERSION:-1.30.0}"
APT_PKGS=(pkg-config libavcodec-dev libavformat-dev libswscale-dev libjpeg-dev libopencv-dev python3-onnx ffmpeg mosquitto mosquitto-clients chromium fonts-dejavu-core postgresql-15 nats-server)

log() { printf 'deps: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	log "installing apt packages: ${missing[*]}"
	# PostgreSQL is for the tests' throw-away clusters (testvideos/testharness): no system cluster.
	if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
		$SUDO mkdir -p /etc/postgresql-common
		echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
	fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# nats-server is for the tests' own clusters (testvideos/testharness): not the system service
	# the package enables (it would listen on 0.0.0.0:4222).
	if [[ " ${missing[*]} " == *" nats-server "* ]] && [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now nats-server >/dev/null 2>&1 || true
	fi
fi

# promtool: Debian's prometheus package, unpacked (not installed: we do not want the service).
if [ ! -x "$DEPS_DIR/prometheus/usr/bin/promtool" ]; then
	log "fetching promtool (Debian prometheus package)"
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get download prometheus >/dev/null 2>&1 || { $SUDO apt-get update -qq && apt-get download prometheus >/dev/null; })
	mkdir -p "$DEPS_DIR/prometheus"
	dpkg-deb -x "$tmp"/prometheus_*.deb "$DEPS_DIR/prometheus"
	rm -rf "$tmp"
fi

# ONNX Runtime shared library for this machine's architecture.
case "$(uname -m)" in
x86_64) ORT_ARCH=x64 ;;
aarch64) ORT_ARCH=arm64 ;;
*) log "unsupported architecture $(uname -m)"; exit 1 ;;
esac
ORT_LIB="$DEPS_DIR/onnxruntime/$ORT_ARCH/libonnxruntime.so"
if [ ! -s "$ORT_LIB" ] || [ "$(cat "$DEPS_DIR/onnxruntime/VERSION" 2>/dev/null)" != "$ORT_VERSION" ]; then
	if ! command -v npm >/dev/null; then
		log "installing npm (to fetch ONNX Runtime)"
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
	fi
	log "fetching ONNX Runtime $ORT_VERSION (npm pack onnxruntime-node)"
	tmp=$(mktemp -d)
	(cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
	tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" package/bin/napi-v6/linux
	for a in x64 arm64; do
		mkdir -p "$DEPS_DIR/onnxruntime/$a"
		cp "$tmp/package/bin/napi-v6/linux/$a/libonnxruntime.so.1" "$DEPS_DIR/onnxruntime/$a/libonnxruntime.so"
	done
	echo "$ORT_VERSION" >"$DEPS_DIR/onnxruntime/VERSION"
	rm -rf "$tmp"
fi

(cd "$ROOT" && go mod download)

"$ROOT/build/check-data.sh"
log "ok"
