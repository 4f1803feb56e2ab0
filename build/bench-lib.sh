# Shared by the benches that run the real agent on clips served over RTSP (bench-cameras.sh,
# bench-still.sh): source it, then call bench_setup NAME, bench_broker, bench_serve, then bench_agent per run.
# Everything binds 127.0.0.1; what they start is stopped and their files removed on exit.

# bench_setup NAME: a work folder (WORK) and the list of processes to stop (PIDS).
bench_setup() {
	WORK=$(mktemp -d "/tmp/vigil-$1.XXXXXX")
	PIDS=()
	trap bench_cleanup EXIT
}

bench_cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# cpu_ticks PID: the process's user+system CPU so far, in clock ticks.
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# bench_broker: a Mosquitto on a free loopback port (MQTT_PORT).
bench_broker() {
	MQTT_PORT=$(freeport)
	printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$MQTT_PORT" >"$WORK/mosquitto.conf"
	mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
	PIDS+=($!)
}

# bench_serve CLIP PREFIX COUNT...: vigil-testvideos serving as many copies of CLIP over RTSP
# as the largest COUNT, on a free loopback port (RTSP_PORT), as
# rtsp://127.0.0.1:$RTSP_PORT/PREFIX01 .. PREFIXnn.
bench_serve() {
	local clip=$1 prefix=$2 n=0 c i
	shift 2
	for c in "$@"; do [ "$c" -gt "$n" ] && n=$c; done
	mkdir -p "$WORK/clips"
	for i in $(seq 1 "$n"); do ln -s "$clip" "$WORK/clips/$prefix$(printf %02d "$i").mp4"; done
	RTSP_PORT=$(freeport)
	bin/vigil-testvideos serve --addr "127.0.0.1:$RTSP_PORT" "$WORK"/clips/*.mp4 >"$WORK/testvideos.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 120); do
		grep -q "serving" "$WORK/testvideos.log" && return 0
		sleep 1
	done
	echo "bench: vigil-testvideos did not start:" >&2
	cat "$WORK/testvideos.log" >&2
	exit 1
}

# bench_agent DIR: runs the real agent on DIR/agent.yaml (log in DIR/agent.log), waits WARMUP
# seconds and checks that it is still running; its pid is AGENT_PID.
bench_agent() {
	local dir=$1
	bin/vigil-agent run --config "$dir/agent.yaml" >"$dir/agent.log" 2>&1 &
	AGENT_PID=$!
	PIDS+=("$AGENT_PID")
	sleep "$WARMUP"
	if ! kill -0 "$AGENT_PID" 2>/dev/null; then echo "bench: the agent died:" >&2; cat "$dir/agent.log" >&2; exit 1; fi
}
