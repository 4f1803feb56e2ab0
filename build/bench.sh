#!/usr/bin/env bash
# make bench: the pipeline beside its limits, measured in one run on this machine.
#   1. raw ONNX Runtime inference (1 thread) vs the whole pipeline on a file, detection on every frame
#   2. our libavcodec decode (1 thread, YUV out) vs `ffmpeg -threads 1 -f null` on the same file
#   3. many cameras: N copies of a 720p camera into the real agent (build/bench-cameras.sh;
#      BENCH_CAMERAS="1 12 16" by default)
#   4. a still scene with motion-driven detection: CPU per camera, decode vs the rest
#      (build/bench-still.sh; BENCH_STILL="1 4" by default)
# Results go to stdout and .cache/bench/latest.txt; copy the figures into docs/BENCHMARKS.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DATA="${EDGE_DATA_DIR:-$ROOT/../shared/data}"
OUT="$ROOT/.cache/bench"
mkdir -p "$OUT"
BENCHTIME="${BENCHTIME:-200x}"
{
	echo "# make bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(go version | cut -d' ' -f3)"
	echo "## detection: raw inference vs pipeline (PETS09 768x576, YOLOX-nano 416, 1 thread)"
	go test -run '^$' -bench 'BenchmarkInferenceOnly$|BenchmarkDetect$' -benchtime "$BENCHTIME" ./models/onnx/ | grep -E '^Benchmark'
	go test -run '^$' -bench 'BenchmarkPipelineFile$' -benchtime "$BENCHTIME" ./agent/ | grep -E '^Benchmark'
	echo "## decode: ours vs ffmpeg -threads 1"
	go test -run '^$' -bench 'BenchmarkDecode' -benchtime 3s ./pipeline/decode/ | grep -E '^Benchmark'
	for f in traffic_highway_fixed_1.mp4 pedestrians_pets09_s2l1_vtest.avi; do
		for pix in "" "-pix_fmt bgr24"; do
			line=$(ffmpeg -hide_banner -nostats -benchmark -threads 1 -i "$DATA/videos/$f" -an $pix -f null - 2>&1 | grep -E 'bench: utime' || true)
			frames=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$DATA/videos/$f")
			rt=$(echo "$line" | sed -E 's/.*rtime=([0-9.]+)s.*/\1/')
			printf 'ffmpeg -threads 1 %-16s %-36s %5s frames in %ss = %.0f frames/s\n' "${pix:-(decode only)}" "$f" "$frames" "$rt" "$(awk -v f="$frames" -v t="$rt" 'BEGIN{print f/t}')"
		done
	done
} | tee "$OUT/latest.txt"
{
	echo "## outbox: group-commit appends, replay vs raw paho (same Mosquitto, same 64-message window)"
	go test -run '^$' -bench 'AppendGroupCommit|AppendSingleProducer' -benchtime 2s ./pipeline/outbox/ | grep -E '^Benchmark'
	go test -run '^$' -bench 'Replay' -benchtime 20000x -count 3 ./pipeline/publish/ | grep -E '^Benchmark'
	echo "## tiling on the aerial image (inferences per frame and time)"
	go test -run '^$' -bench 'Aerial' -benchtime 5x ./models/tile/ | grep -E '^Benchmark'
	echo "## motion detection: Update on a 1280x720 luma plane (ns/op wall, cpu-ns/op CPU time per frame)"
	go test -run '^$' -bench 'Update720p' -benchtime 2000x -cpu 1 ./pipeline/motion/ | grep -E '^Benchmark'
	echo "## motion-driven detection vs detection on every frame at detect_fps 5: inferences, events, line crossings"
	VIGIL_MOTION_EVAL=1 VIGIL_MOTION_EVAL_CLIP=detect_fps go test -count=1 -timeout 30m -run 'TestMotionEvaluation$' -v ./testvideos/score/ |
		grep '^motion-eval'
} | tee -a "$OUT/latest.txt"
{
	echo "## city scale: simulated devices → Mosquitto (shared subscription) → 2 fleet instances → PostgreSQL"
	echo "## (fleet/postgres TestScaleLoad and TestEventQueryLatency; SCALE_RATES, SCALE_SECONDS, SCALE_EVENTS to change)"
	VIGIL_SCALE_LOAD=1 VIGIL_SCALE_RATES="${SCALE_RATES:-5000,7500,10000}" VIGIL_SCALE_SECONDS="${SCALE_SECONDS:-60}" \
		VIGIL_SCALE_EVENTS="${SCALE_EVENTS:-10000000}" \
		go test -count=1 -timeout 60m -run 'TestScaleLoad$|TestEventQueryLatency$' -v ./fleet/postgres/ |
		grep -vE '^(=== RUN|--- PASS|PASS$|ok )|level='
} | tee -a "$OUT/latest.txt"
{
	echo "## many cameras: N x 720p@30 H.264 over RTSP (TCP) into the real agent, detect_fps 5 (build/bench-cameras.sh)"
	make -s build >/dev/null
	./build/bench-cameras.sh ${BENCH_CAMERAS:-1 12 16}
} | tee -a "$OUT/latest.txt"
{
	echo "## still scene: 60 s 720p@30 of one picture into the real agent with motion-driven detection (build/bench-still.sh)"
	make -s build >/dev/null
	./build/bench-still.sh ${BENCH_STILL:-1 4}
} | tee -a "$OUT/latest.txt"
