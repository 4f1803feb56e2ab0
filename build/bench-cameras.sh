#!/usr/bin/env bash
# Many cameras on one box: N copies of the 720p traffic clip (1280x720 H.264, 30 fps) served
# over RTSP (TCP) by vigil-testvideos into the real vigil-agent (detect_fps 5, a Mosquitto on
# loopback as the broker). After a warm-up it measures, over MEASURE seconds:
#   per camera: detected frames/s, frames dropped/s before detection, decoded frames/s,
#   disposable pictures left undecoded/s (not due at detect_fps)
#   the agent: CPU in cores (utime+stime from /proc/PID/stat) and peak RSS (VmHWM)
# Usage: build/bench-cameras.sh [N...]   (default: 1 12 16); env WARMUP (s), MEASURE (s),
# DETECT_FPS, POOL_SIZE (detector sessions; default one per core), THREADS (per session),
# BATCH_SIZE with MANIFEST and MODEL_DIR (a model with a dynamic batch dimension),
# PAIR_FRAMES=true (two 16:9 frames a run).
# Needs bin/vigil-agent and bin/vigil-testvideos (make build) and mosquitto.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DATA="${EDGE_DATA_DIR:-$ROOT/../shared/data}"
CLIP="$DATA/videos/traffic_highway_fixed_1.mp4"
WARMUP="${WARMUP:-15}"
MEASURE="${MEASURE:-30}"
DETECT_FPS="${DETECT_FPS:-5}"
THREADS="${THREADS:-1}"
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1 12 16)
for b in bin/vigil-agent bin/vigil-testvideos; do
	[ -x "$b" ] || { echo "bench-cameras: $b missing (make build)" >&2; exit 1; }
done
command -v mosquitto >/dev/null || { echo "bench-cameras: mosquitto missing (make deps)" >&2; exit 1; }

. "$ROOT/build/bench-lib.sh"
bench_setup bench-cameras
bench_broker
bench_serve "$CLIP" cam "${COUNTS[@]}"

# metric NAME CAMERA FILE: the value of a per-camera counter in a scrape.
metric() { awk -v n="$1" -v c="camera=\"$2\"" '$1 ~ "^"n"\\{" && index($1, c) && !/stage="/ {v+=$2} END {printf "%.0f", v+0}' "$3"; }
dropped() { awk -v c="camera=\"$1\"" '$1 ~ /^vigil_frames_dropped_total\{/ && index($1, c) {v+=$2} END {printf "%.0f", v+0}' "$2"; }

run() {
	local n=$1 dir="$WORK/run$1" http
	mkdir -p "$dir"
	http=$(freeport)
	{
		echo "device_id: bench"
		echo "log_level: warn"
		echo "http: {listen: 127.0.0.1:$http${PPROF:+, pprof: true}}"
		echo "mqtt: {url: tcp://127.0.0.1:$MQTT_PORT}"
		echo "outbox: {path: $dir/outbox.db}"
		echo "snapshots: {dir: $dir/snapshots}"
		echo "model:"
		echo "  manifest: ${MANIFEST:-$ROOT/models/yolox_nano_coco_416.json}"
		echo "  dir: ${MODEL_DIR:-$DATA/models}"
		echo "  threads: $THREADS"
		[ -n "${POOL_SIZE:-}" ] && echo "  pool_size: $POOL_SIZE"
		[ -n "${BATCH_SIZE:-}" ] && echo "  batch_size: $BATCH_SIZE"
		[ -n "${PAIR_FRAMES:-}" ] && echo "  pair_frames: $PAIR_FRAMES"
		echo "cameras:"
		for i in $(seq 1 "$n"); do
			i=$(printf %02d "$i")
			echo "  - {id: cam$i, url: rtsp://127.0.0.1:$RTSP_PORT/cam$i, transport: tcp, detect_fps: $DETECT_FPS}"
		done
	} >"$dir/agent.yaml"
	bench_agent "$dir"
	local pid=$AGENT_PID
	curl -fsS "http://127.0.0.1:$http/metrics" >"$dir/m0"
	local t0 c0 t1 c1
	t0=$(date +%s.%N); c0=$(cpu_ticks "$pid")
	sleep "$MEASURE"
	curl -fsS "http://127.0.0.1:$http/metrics" >"$dir/m1"
	t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
	local hwm load
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	kill "$pid"; wait "$pid" 2>/dev/null || true
	local el tck min=999 sum=0
	el=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
	tck=$(getconf CLK_TCK)
	echo "### $n camera(s), detect_fps $DETECT_FPS, ${MEASURE}s measured after ${WARMUP}s, pool_size ${POOL_SIZE:-one per core ($(nproc)), at most one per camera}, threads $THREADS${BATCH_SIZE:+, batch_size $BATCH_SIZE}${PAIR_FRAMES:+, pair_frames $PAIR_FRAMES}"
	printf '%-6s %12s %12s %12s %12s\n' camera "detected/s" "dropped/s" "decoded/s" "undecoded/s"
	for i in $(seq 1 "$n"); do
		local c=cam$(printf %02d "$i") d0 d1 x0 x1 f0 f1 u0 u1 det drp dec und
		d0=$(metric vigil_frames_detected_total "$c" "$dir/m0"); d1=$(metric vigil_frames_detected_total "$c" "$dir/m1")
		x0=$(dropped "$c" "$dir/m0"); x1=$(dropped "$c" "$dir/m1")
		f0=$(metric vigil_frames_decoded_total "$c" "$dir/m0"); f1=$(metric vigil_frames_decoded_total "$c" "$dir/m1")
		u0=$(metric vigil_frames_undecoded_total "$c" "$dir/m0"); u1=$(metric vigil_frames_undecoded_total "$c" "$dir/m1")
		und=$(awk -v a="$u0" -v b="$u1" -v t="$el" 'BEGIN{printf "%.1f", (b-a)/t}')
		det=$(awk -v a="$d0" -v b="$d1" -v t="$el" 'BEGIN{printf "%.2f", (b-a)/t}')
		drp=$(awk -v a="$x0" -v b="$x1" -v t="$el" 'BEGIN{printf "%.2f", (b-a)/t}')
		dec=$(awk -v a="$f0" -v b="$f1" -v t="$el" 'BEGIN{printf "%.1f", (b-a)/t}')
		printf '%-6s %12s %12s %12s %12s\n' "$c" "$det" "$drp" "$dec" "$und"
		min=$(awk -v a="$min" -v b="$det" 'BEGIN{print (b<a)?b:a}')
		sum=$(awk -v a="$sum" -v b="$det" 'BEGIN{print a+b}')
	done
	awk '/^go_memstats_heap_inuse_bytes / {printf "memory at the end: Go heap in use %.0f MiB, ", $2/1048576} /^process_resident_memory_bytes / {printf "resident %.0f MiB\n", $2/1048576}' "$dir/m1"
	awk -v n="$n" -v min="$min" -v sum="$sum" -v c0="$c0" -v c1="$c1" -v t="$el" -v tck="$tck" -v hwm="$hwm" -v load="$load" 'BEGIN{
		printf "summary: %d cameras, detected %.1f frames/s in all, slowest camera %.2f/s; agent %.2f cores, peak RSS %.0f MiB; load average %s\n",
			n, sum, min, (c1-c0)/tck/t, hwm/1024, load }'
}

for n in "${COUNTS[@]}"; do run "$n"; done
