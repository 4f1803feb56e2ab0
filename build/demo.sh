#!/usr/bin/env bash
# make demo: the fleet controller with its embedded broker, a test-video RTSP server streaming
# real clips, and the agent on two of them; prints the fleet's live view until Ctrl-C or
# DEMO_SECONDS, then stops everything it started.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DATA="${EDGE_DATA_DIR:-$ROOT/../shared/data}"
MQTT_PORT="${DEMO_MQTT_PORT:-1883}"
RTSP_PORT="${DEMO_RTSP_PORT:-8554}"
FLEET_HTTP="${DEMO_FLEET_HTTP:-127.0.0.1:8080}"
AGENT_HTTP="${DEMO_AGENT_HTTP:-127.0.0.1:9090}"
SECONDS_TO_RUN="${DEMO_SECONDS:-0}"
WORK="$ROOT/.cache/demo"
mkdir -p "$WORK"

pids=()
cleanup() {
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	echo "demo: stopped; logs in $WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # host:port name
	for _ in $(seq 1 150); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; then return 0; fi
		sleep 0.2
	done
	echo "demo: $2 did not start listening on $1; see $WORK/$2.log" >&2
	exit 1
}

echo "demo: starting vigil-fleet (embedded MQTT broker on 127.0.0.1:$MQTT_PORT, API on $FLEET_HTTP)"
bin/vigil-fleet serve --mqtt-listen "127.0.0.1:$MQTT_PORT" --http "$FLEET_HTTP" >"$WORK/vigil-fleet.log" 2>&1 &
pids+=($!)
wait_port "127.0.0.1:$MQTT_PORT" vigil-fleet

echo "demo: starting vigil-testvideos (RTSP on 127.0.0.1:$RTSP_PORT; the first run transcodes the PETS clip once)"
bin/vigil-testvideos serve --addr "127.0.0.1:$RTSP_PORT" \
	"$DATA/videos/pedestrians_pets09_s2l1_vtest.avi" "$DATA/videos/traffic_highway_fixed_1.mp4" \
	>"$WORK/vigil-testvideos.log" 2>&1 &
pids+=($!)
wait_port "127.0.0.1:$RTSP_PORT" vigil-testvideos

cat >"$WORK/agent.yaml" <<YAML
device_id: demo-edge-01
http:
  listen: $AGENT_HTTP
mqtt:
  url: tcp://127.0.0.1:$MQTT_PORT
outbox:
  path: $WORK/outbox.db
model:
  manifest: $ROOT/models/yolox_nano_coco_416.json
  dir: $DATA/models
cameras:
  - id: pedestrians
    url: rtsp://127.0.0.1:$RTSP_PORT/pedestrians_pets09_s2l1_vtest
    detect_fps: 5
    rules:
      - id: square-centre
        type: line
        a: [0.5, 0.2]
        b: [0.5, 0.98]
      - id: lower-square
        type: zone
        polygon: [[0.05, 0.6], [0.95, 0.6], [0.95, 0.98], [0.05, 0.98]]
        min_dwell: 2s
  - id: highway
    url: rtsp://127.0.0.1:$RTSP_PORT/traffic_highway_fixed_1
    detect_fps: 5
YAML
echo "demo: starting vigil-agent (metrics on http://$AGENT_HTTP/metrics)"
bin/vigil-agent run --config "$WORK/agent.yaml" >"$WORK/vigil-agent.log" 2>&1 &
pids+=($!)

echo "demo: live view from the fleet side (Ctrl-C to stop)"
bin/vigil-fleet watch --api "http://$FLEET_HTTP" --duration "${SECONDS_TO_RUN}s"
