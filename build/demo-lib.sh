# Shared by the demo scripts (sourced, not run): NAME and WORK must be set first.
# start_fleet and start_camera launch the fleet controller and the test-video RTSP server;
# every process started is recorded in pids and stopped, newest first, when the script exits.

pids=()
cleanup() {
	trap - EXIT INT TERM
	# In reverse order of starting: the agent first, so it can say "offline" to a live broker.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[$i]}" 2>/dev/null || true
		wait "${pids[$i]}" 2>/dev/null || true
	done
	echo "$NAME: stopped; logs in $WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # host:port name
	for _ in $(seq 1 150); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; then return 0; fi
		sleep 0.2
	done
	echo "$NAME: $2 did not start listening on $1; see $WORK/$2.log" >&2
	exit 1
}

start_fleet() { # mqtt_port http_addr; sets FLEET_PUB (the signing key agents pin)
	# A signing key for the demo (made once): the fleet signs live-view commands with it.
	if [ ! -f "$WORK/fleet-key/keygen.txt" ]; then
		rm -rf "$WORK/fleet-key"
		bin/vigil-fleet keygen --out "$WORK/fleet-key" >"$WORK/fleet-key.txt"
		mv "$WORK/fleet-key.txt" "$WORK/fleet-key/keygen.txt"
	fi
	FLEET_PUB=$(sed -n "s/^public key (base64, for the agents' configuration): //p" "$WORK/fleet-key/keygen.txt")
	echo "$NAME: starting vigil-fleet (embedded MQTT broker on 127.0.0.1:$1, API on $2)"
	bin/vigil-fleet serve --mqtt-listen "127.0.0.1:$1" --http "$2" --key "$WORK/fleet-key/fleet.key" >"$WORK/vigil-fleet.log" 2>&1 &
	pids+=($!)
	wait_port "127.0.0.1:$1" vigil-fleet
	wait_port "$2" vigil-fleet
	echo "$NAME: dashboard: http://$2/ (no token needed: this fleet's API is open, on loopback only)"
}

start_camera() { # rtsp_port file...
	local port=$1
	shift
	echo "$NAME: starting vigil-testvideos (RTSP on 127.0.0.1:$port; the first run transcodes non-H.264 clips once)"
	bin/vigil-testvideos serve --addr "127.0.0.1:$port" "$@" >"$WORK/vigil-testvideos.log" 2>&1 &
	pids+=($!)
	wait_port "127.0.0.1:$port" vigil-testvideos
}
