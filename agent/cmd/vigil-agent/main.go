// Command vigil-agent is Vigil's edge agent: RTSP cameras in, detections out over MQTT.
package main

import (
	"os"

	"github.com/vigil-edge/vigil/agent"
)

func main() { os.Exit(agent.Main(os.Args[1:], os.Stdout, os.Stderr)) }
