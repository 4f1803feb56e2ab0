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
AGENT_HTTP="${DEMO_AGENT_HTTP:-127.0.0.1:7090}"
SECONDS_TO_RUN="${DEMO_SECONDS:-0}"
WORK="$ROOT/.cache/demo"
mkdir -p "$WORK"

NAME=demo
# shellcheck source=build/demo-lib.sh
. "$ROOT/build/demo-lib.sh"

start_fleet "$MQTT_PORT" "$FLEET_HTTP"
start_camera "$RTSP_PORT" "$DATA/videos/pedestrians_pets09_s2l1_vtest.avi" "$DATA/videos/traffic_highway_fixed_1.mp4"

cat >"$WORK/agent.yaml" <<YAML
device_id: demo-edge-01
http:
  listen: $AGENT_HTTP
mqtt:
  url: tcp://127.0.0.1:$MQTT_PORT
outbox:
  path: $WORK/outbox.db
snapshots:
  dir: $WORK/snapshots
ota:
  fleet_key: $FLEET_PUB
  store_dir: $WORK/models
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
    privacy_masks:
      - id: building-windows
        mode: black
        points: [[0.0, 0.0], [0.3, 0.0], [0.3, 0.15], [0.0, 0.15]]
  - id: highway
    url: rtsp://127.0.0.1:$RTSP_PORT/traffic_highway_fixed_1
    detect_fps: 5
YAML
echo "demo: starting vigil-agent (metrics on http://$AGENT_HTTP/metrics)"
bin/vigil-agent run --config "$WORK/agent.yaml" >"$WORK/vigil-agent.log" 2>&1 &
pids+=($!)

echo "demo: live view from the fleet side (Ctrl-C to stop)"
bin/vigil-fleet watch --api "http://$FLEET_HTTP" --duration "${SECONDS_TO_RUN}s"
