#!/usr/bin/env bash
# make demo-drone: the agent as a drone's companion computer. Starts the fleet controller with
# its embedded broker, a test-video RTSP server (the camera), vigil-dronesim (an autopilot flying
# a 100 m orbit with a nadir gimbal, sending MAVLink over UDP) and the agent in drone mode, which
# puts a ground position on every detection. Prints the fleet's live view and the agent's
# geo-tagging counts until Ctrl-C or DEMO_SECONDS, then stops everything it started.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DATA="${EDGE_DATA_DIR:-$ROOT/../shared/data}"
MQTT_PORT="${DEMO_MQTT_PORT:-1883}"
RTSP_PORT="${DEMO_RTSP_PORT:-8554}"
MAVLINK_PORT="${DEMO_MAVLINK_PORT:-14550}"
FLEET_HTTP="${DEMO_FLEET_HTTP:-127.0.0.1:8080}"
AGENT_HTTP="${DEMO_AGENT_HTTP:-127.0.0.1:7090}"
SECONDS_TO_RUN="${DEMO_SECONDS:-0}"
WORK="$ROOT/.cache/demo-drone"
mkdir -p "$WORK"
rm -f "$WORK/outbox.db"

NAME=demo-drone
# shellcheck source=build/demo-lib.sh
. "$ROOT/build/demo-lib.sh"

# metrics prints the agent's /metrics (bash's /dev/tcp: no curl needed).
metrics() {
	exec 3<>"/dev/tcp/${AGENT_HTTP%:*}/${AGENT_HTTP##*:}" || return 0
	printf 'GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n' "$AGENT_HTTP" >&3
	cat <&3
	exec 3<&-
}

start_fleet "$MQTT_PORT" "$FLEET_HTTP"
start_camera "$RTSP_PORT" "$DATA/videos/pedestrians_pets09_s2l1_vtest.avi"

echo "demo-drone: starting vigil-dronesim (orbit at 100 m, nadir gimbal, MAVLink to udp 127.0.0.1:$MAVLINK_PORT)"
bin/vigil-dronesim --target "127.0.0.1:$MAVLINK_PORT" --pattern orbit --alt 100 >"$WORK/vigil-dronesim.log" 2>&1 &
pids+=($!)

cat >"$WORK/agent.yaml" <<YAML
device_id: demo-drone-01
http:
  listen: $AGENT_HTTP
mqtt:
  url: tcp://127.0.0.1:$MQTT_PORT
outbox:
  path: $WORK/outbox.db
snapshots:
  dir: $WORK/snapshots
model:
  manifest: $ROOT/models/yolox_nano_coco_416.json
  dir: $DATA/models
drone:
  mavlink: udp://127.0.0.1:$MAVLINK_PORT
telemetry:
  interval: 5s
cameras:
  - id: gimbal
    url: rtsp://127.0.0.1:$RTSP_PORT/pedestrians_pets09_s2l1_vtest
    detect_fps: 5
    optics:
      hfov_deg: 60
      use_gimbal: true
YAML
echo "demo-drone: starting vigil-agent in drone mode (metrics on http://$AGENT_HTTP/metrics)"
bin/vigil-agent run --config "$WORK/agent.yaml" >"$WORK/vigil-agent.log" 2>&1 &
pids+=($!)
wait_port "$AGENT_HTTP" vigil-agent

echo "demo-drone: live view (Ctrl-C to stop)"
start=$SECONDS
while [ "$SECONDS_TO_RUN" -eq 0 ] || [ $((SECONDS - start)) -lt "$SECONDS_TO_RUN" ]; do
	bin/vigil-fleet watch --api "http://$FLEET_HTTP" --interval 1h --duration 500ms | sed '/^$/d' || true
	metrics | awk '
		/^vigil_geo_located_total/   { located += $NF }
		/^vigil_geo_unlocated_total/ { match($0, /reason="[a-z_]+"/); r = substr($0, RSTART + 8, RLENGTH - 9); miss[r] += $NF; missed += $NF }
		/^vigil_mavlink_link_up /    { link = $NF }
		END {
			s = ""; for (r in miss) s = s " " r "=" miss[r]
			printf "  geo: %d objects located, %d not%s%s | mavlink link %s\n\n", located, missed, (s == "" ? "" : " (" substr(s, 2) ")"), "", (link == 1 ? "up" : "down")
		}'
	sleep 2
done
