#!/usr/bin/env bash
# A still scene with motion-driven detection: what a camera that watches nothing happening costs.
# Makes (once, in ~/.cache/vigil/clips, never in the repository) a 60 s 1280x720@30 H.264 clip
# of one picture with ffmpeg, serves N copies of it over RTSP (TCP) with vigil-testvideos (in
# a loop), runs the real vigil-agent on them (detect_fps 5, cameras[].motion enabled, a
# Mosquitto on loopback as the broker) and, after a warm-up, measures over MEASURE seconds:
#   the agent's CPU (utime+stime from /proc/PID/stat) in % of a core per camera;
#   the decode share of it, from a CPU profile of the agent over the same seconds (Go's
#   profiler samples the C decoder under decode.(*Decoder).Decode: CPU time, not wall time)
#   and, for comparison, `ffmpeg -threads 1` decoding every picture of the same clip (the
#   agent leaves disposable pictures undecoded when they are not due at detect_fps);
#   decoded and undecoded pictures/s, inferences/s and frames without inference per camera.
# Then the same with motion off (every frame due at detect_fps is detected), for the ratio.
# Usage: build/bench-still.sh [N...] (default: 1 4); env WARMUP (s), MEASURE (s), DETECT_FPS,
# IMAGE (a picture under the shared data's images/; default darknet_dog.jpg).
# Needs bin/vigil-agent and bin/vigil-testvideos (make build), ffmpeg and mosquitto.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DATA="${EDGE_DATA_DIR:-$ROOT/../shared/data}"
WARMUP="${WARMUP:-10}"
MEASURE="${MEASURE:-30}"
DETECT_FPS="${DETECT_FPS:-5}"
IMAGE="${IMAGE:-darknet_dog.jpg}"
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1 4)
for b in bin/vigil-agent bin/vigil-testvideos; do
	[ -x "$b" ] || { echo "bench-still: $b missing (make build)" >&2; exit 1; }
done
for c in ffmpeg mosquitto curl go; do
	command -v "$c" >/dev/null || { echo "bench-still: $c missing (make deps)" >&2; exit 1; }
done

# The clip: the same recipe as testvideos/score's still-scene test (one GOP every 2 s).
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/vigil/clips"
mkdir -p "$CACHE"
CLIP="$CACHE/still_720p30_60s_${IMAGE%.*}.mp4"
if [ ! -s "$CLIP" ]; then
	ffmpeg -v error -y -loop 1 -i "$DATA/images/$IMAGE" -t 60 -r 30 -vf scale=1280:720,format=yuv420p \
		-c:v libx264 -preset veryfast -g 60 "$CLIP.tmp.mp4"
	mv "$CLIP.tmp.mp4" "$CLIP"
fi

. "$ROOT/build/bench-lib.sh"
bench_setup bench-still
bench_broker
bench_serve "$CLIP" still "${COUNTS[@]}"

# sum NAME-REGEX FILE [FILTER]: the sum of the series of a metric (optionally only the lines
# containing FILTER) in a scrape.
sum() { awk -v n="$1" -v f="${3:-}" '$1 ~ "^"n && (f == "" || index($1, f)) {v+=$2} END {printf "%.6f", v+0}' "$2"; }

echo "### still scene: $(basename "$CLIP") (60 s, 1280x720@30, H.264), detect_fps $DETECT_FPS, ${MEASURE}s measured after ${WARMUP}s"
# ffmpeg's own decode of the clip, single-threaded, every picture: CPU seconds per second of video.
FF=$(ffmpeg -hide_banner -nostats -benchmark -threads 1 -i "$CLIP" -an -f null - 2>&1 | grep -E 'bench: utime' || true)
FFU=$(echo "$FF" | sed -E 's/.*utime=([0-9.]+)s.*stime=([0-9.]+)s.*/\1 \2/')
awk -v u="$FFU" 'BEGIN{split(u, a, " ");
	printf "ffmpeg -threads 1 decoding the clip (every picture): %.2f%% of a core at real time (%.2f s CPU for 60 s)\n", 100*(a[1]+a[2])/60, a[1]+a[2]}'

run() {
	local n=$1 motion=$2 dir="$WORK/run$1-$2" http
	mkdir -p "$dir"
	http=$(freeport)
	{
		echo "device_id: bench-still"
		echo "log_level: warn"
		echo "http: {listen: 127.0.0.1:$http, pprof: true}"
		echo "mqtt: {url: tcp://127.0.0.1:$MQTT_PORT}"
		echo "outbox: {path: $dir/outbox.db}"
		echo "snapshots: {dir: $dir/snapshots}"
		echo "model:"
		echo "  manifest: $ROOT/models/yolox_nano_coco_416.json"
		echo "  dir: $DATA/models"
		echo "  threads: 1"
		echo "cameras:"
		for i in $(seq 1 "$n"); do
			i=$(printf %02d "$i")
			echo "  - id: still$i"
			echo "    url: rtsp://127.0.0.1:$RTSP_PORT/still$i"
			echo "    transport: tcp"
			echo "    detect_fps: $DETECT_FPS"
			[ "$motion" = on ] && echo "    motion: {enabled: true}"
		done
	} >"$dir/agent.yaml"
	bench_agent "$dir"
	local pid=$AGENT_PID
	curl -fsS "http://127.0.0.1:$http/metrics" >"$dir/m0"
	local t0 c0 t1 c1
	t0=$(date +%s.%N); c0=$(cpu_ticks "$pid")
	curl -fsS -o "$dir/cpu.pprof" "http://127.0.0.1:$http/debug/pprof/profile?seconds=$MEASURE"
	curl -fsS "http://127.0.0.1:$http/metrics" >"$dir/m1"
	t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
	local load
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	kill "$pid"; wait "$pid" 2>/dev/null || true
	local el tck dec inf0 inf1 fr0 fr1 un0 un1 none0 none1 prof
	el=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
	tck=$(getconf CLK_TCK)
	# the profile: total CPU seconds sampled, and those under the decoder's Decode/Flush
	prof=$(go tool pprof -top -cum "$ROOT/bin/vigil-agent" "$dir/cpu.pprof" 2>/dev/null)
	dec=$(echo "$prof" | awk '
		function sec(v) { if (v ~ /ms$/) return substr(v, 1, length(v)-2)/1000; if (v ~ /us$/) return substr(v, 1, length(v)-2)/1e6; return substr(v, 1, length(v)-1)+0 }
		/^Showing nodes accounting for/ { for (i = 1; i <= NF; i++) if ($i == "total") total = sec($(i-1)) }
		/decode\.\(\*Decoder\)\.(Decode|Flush)$/ { d += sec($4) }
		END { printf "%.6f %.6f", d, total }')
	un0=$(sum 'vigil_frames_undecoded_total\{' "$dir/m0"); un1=$(sum 'vigil_frames_undecoded_total\{' "$dir/m1")
	inf0=$(sum 'vigil_inferences_total\{' "$dir/m0"); inf1=$(sum 'vigil_inferences_total\{' "$dir/m1")
	fr0=$(sum 'vigil_frames_decoded_total\{' "$dir/m0"); fr1=$(sum 'vigil_frames_decoded_total\{' "$dir/m1")
	none0=$(sum 'vigil_motion_plans_total\{' "$dir/m0" 'plan="none"'); none1=$(sum 'vigil_motion_plans_total\{' "$dir/m1" 'plan="none"')
	awk -v n="$n" -v m="$motion" -v c0="$c0" -v c1="$c1" -v t="$el" -v tck="$tck" -v dec="$dec" -v u0="$un0" -v u1="$un1" \
		-v i0="$inf0" -v i1="$inf1" -v f0="$fr0" -v f1="$fr1" -v z0="$none0" -v z1="$none1" -v load="$load" 'BEGIN{
		cpu = 100*(c1-c0)/tck/t/n; split(dec, p, " "); share = (p[2] > 0) ? p[1]/p[2] : 0
		printf "still: %d camera(s), motion %-3s: agent %.2f%% of a core per camera (decode %.2f%%, the rest %.2f%%: %.0f%% of the profile'"'"'s %.1f s under the decoder); per camera %.1f decoded + %.1f undecoded pictures/s, %.2f inferences/s, %.2f frames/s without inference; load average %s\n",
			n, m, cpu, cpu*share, cpu*(1-share), 100*share, p[2], (f1-f0)/t/n, (u1-u0)/t/n, (i1-i0)/t/n, (z1-z0)/t/n, load }'
}

for n in "${COUNTS[@]}"; do run "$n" on; done
run "${COUNTS[0]}" off
