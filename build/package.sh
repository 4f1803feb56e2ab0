#!/usr/bin/env bash
# Builds the Debian packages into dist/:
#   vigil-agent_<version>_<arch>.deb  the agent, ONNX Runtime, the default model, /etc/vigil/agent.yaml,
#                                     a hardened Type=notify systemd unit, its own user
#   vigil-fleet_<version>_<arch>.deb  the fleet controller, its unit and user, the Grafana dashboard
#                                     and Prometheus alert rules (/usr/share/vigil/monitoring)
# for each arch of ARCHES (default "amd64 arm64"). arm64 binaries come from `make build-arm64`
# (make deps-arm64 sets up the cross toolchain). The model is taken from $EDGE_DATA_DIR/models
# at package time. Uses dpkg-deb and dpkg-shlibdeps; nothing is downloaded.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ARCHES=${ARCHES:-"amd64 arm64"}
EDGE_DATA_DIR=${EDGE_DATA_DIR:-$ROOT/../shared/data}
VERSION=${DEB_VERSION:-$("$ROOT/build/deb-version.sh")}
DIST=$ROOT/dist
MODEL=yolox_nano_coco_416
log() { printf 'package: %s\n' "$*" >&2; }

[ -s "$EDGE_DATA_DIR/models/$MODEL.onnx" ] || { log "missing $EDGE_DATA_DIR/models/$MODEL.onnx (shared data): see build/check-data.sh"; exit 1; }
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("sha256",""))' "models/$MODEL.json")
have=$(sha256sum "$EDGE_DATA_DIR/models/$MODEL.onnx" | cut -d' ' -f1)
if [ -n "$want" ] && [ "$want" != "$have" ]; then
	log "$EDGE_DATA_DIR/models/$MODEL.onnx has sha256 $have, models/$MODEL.json expects $want"; exit 1
fi

mkdir -p "$DIST"
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT

for arch in $ARCHES; do
	case $arch in
	amd64) make -s build VERSION="$VERSION" >&2; bindir=bin; ort=x64 ;;
	arm64) make -s build-arm64 VERSION="$VERSION" >&2; bindir=bin/arm64; ort=arm64 ;;
	*) log "unknown arch $arch (amd64, arm64)"; exit 1 ;;
	esac
	for b in vigil-agent vigil-fleet; do
		[ -x "$bindir/$b" ] || { log "$bindir/$b was not built"; exit 1; }
	done
	file "$bindir/vigil-agent" | grep -q "$( [ "$arch" = arm64 ] && echo aarch64 || echo x86-64)" ||
		{ log "$bindir/vigil-agent is not an $arch binary"; exit 1; }
done

# The agent's shared-library dependencies, from the amd64 binary (the arm64 one links the same
# Debian 12 libraries: same package names).
[ -x bin/vigil-agent ] || make -s build VERSION="$VERSION" >&2
mkdir -p "$STAGE/shlibs/debian"
printf 'Source: vigil\n\nPackage: vigil-agent\nArchitecture: any\n' >"$STAGE/shlibs/debian/control"
SHLIBS=$(cd "$STAGE/shlibs" && dpkg-shlibdeps -O -e "$ROOT/bin/vigil-agent" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS" ] || { log "dpkg-shlibdeps found no dependencies"; exit 1; }

render() { # template pkg user conffiles extra
	sed -e "s|@PKG@|$2|g" -e "s|@USER@|$3|g" -e "s|@CONFFILES@|$4|g" "$1" |
		awk -v extra="$5" '{ if ($0 == "@EXTRA@") { if (extra != "") print extra } else print }'
}

build_deb() { # pkg arch root depends description...
	local pkg=$1 arch=$2 root=$3 depends=$4 desc=$5 long=$6 user=$7 extra=$8
	local conffiles
	conffiles=$(cd "$root" && find etc -type f 2>/dev/null | sed 's|^|/|' | sort)
	mkdir -p "$root/DEBIAN"
	printf '%s\n' $conffiles >"$root/DEBIAN/conffiles"
	[ -s "$root/DEBIAN/conffiles" ] || rm "$root/DEBIAN/conffiles"
	cat >"$root/DEBIAN/control" <<CONTROL
Package: $pkg
Version: $VERSION
Architecture: $arch
Maintainer: Vigil maintainers <vigil@example.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Section: video
Priority: optional
Homepage: https://github.com/vigil-edge/vigil
Description: $desc
$long
CONTROL
	for s in postinst prerm postrm; do
		render "build/package/$s.in" "$pkg" "$user" "$(echo $conffiles)" "$extra" >"$root/DEBIAN/$s"
		chmod 0755 "$root/DEBIAN/$s"
	done
	dpkg-deb --root-owner-group -Zgzip -z6 --build "$root" "$DIST/${pkg}_${VERSION}_${arch}.deb" >/dev/null
	log "wrote dist/${pkg}_${VERSION}_${arch}.deb"
}

for arch in $ARCHES; do
	case $arch in amd64) bindir=bin ort=x64 ;; arm64) bindir=bin/arm64 ort=arm64 ;; esac

	r=$STAGE/vigil-agent-$arch
	install -D -m 0755 "$bindir/vigil-agent" "$r/usr/bin/vigil-agent"
	install -D -m 0644 ".deps/onnxruntime/$ort/libonnxruntime.so" "$r/usr/lib/vigil/libonnxruntime.so"
	install -D -m 0644 "models/$MODEL.json" "$r/usr/share/vigil/models/$MODEL.json"
	install -D -m 0644 "$EDGE_DATA_DIR/models/$MODEL.onnx" "$r/usr/share/vigil/models/$MODEL.onnx"
	install -d "$r/etc/vigil" "$r/etc/default"
	sed "s|^  manifest: models/$MODEL.json|  manifest: /usr/share/vigil/models/$MODEL.json|" agent/agent.example.yaml >"$r/etc/vigil/agent.yaml"
	grep -q "manifest: /usr/share/vigil/models/$MODEL.json" "$r/etc/vigil/agent.yaml" ||
		{ log "agent.example.yaml: could not point model.manifest at the packaged model"; exit 1; }
	install -m 0644 build/package/vigil-agent.default "$r/etc/default/vigil-agent"
	install -D -m 0644 build/package/vigil-agent.service "$r/lib/systemd/system/vigil-agent.service"
	install -D -m 0644 README.md "$r/usr/share/doc/vigil-agent/README.md"
	build_deb vigil-agent "$arch" "$r" "adduser, $SHLIBS" "Vigil edge video analytics agent" \
		" RTSP cameras in, ONNX Runtime object detection, tracking and rules, events out
 over MQTT through a crash-safe outbox. Ships ONNX Runtime and the YOLOX-nano model.
 Edit /etc/vigil/agent.yaml, run vigil-agent doctor, then systemctl enable --now vigil-agent." \
		vigil '	usermod -a -G video vigil 2>/dev/null || true'

	r=$STAGE/vigil-fleet-$arch
	install -D -m 0755 "$bindir/vigil-fleet" "$r/usr/bin/vigil-fleet"
	install -D -m 0644 build/package/vigil-fleet.default "$r/etc/default/vigil-fleet"
	install -D -m 0644 build/package/vigil-fleet.service "$r/lib/systemd/system/vigil-fleet.service"
	for f in README.md vigil-alerts.yml vigil-alerts.test.yml grafana/vigil-fleet.json; do
		install -D -m 0644 "build/monitoring/$f" "$r/usr/share/vigil/monitoring/$f"
	done
	install -D -m 0644 README.md "$r/usr/share/doc/vigil-fleet/README.md"
	build_deb vigil-fleet "$arch" "$r" "adduser" "Vigil fleet controller" \
		" Embedded MQTT broker, device registry, event store, signed model rollouts and the
 REST API and dashboard for Vigil agents. Ships the Grafana dashboard and Prometheus
 alert rules in /usr/share/vigil/monitoring." \
		vigil-fleet ''
done
