package config

import (
	"strings"
	"testing"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// An agent cannot be configured with a fleet client id as its device id (its MQTT client id):
// it could take over the fleet controller's session.
func TestDeviceIDRefusesFleetPrefix(t *testing.T) {
	for _, id := range []string{wire.FleetClientID("host"), wire.FleetClientID("host") + "-rollout"} {
		_, err := Load(write(t, "device_id: '"+id+"'\ncameras:\n  - id: c1\n    url: rtsp://127.0.0.1:8554/x\n"), nil)
		if err == nil || !strings.Contains(err.Error(), "'device_id'") {
			t.Errorf("device_id %q: %v", id, err)
		}
		if _, err := Load(write(t, minimal), []string{"VIGIL_DEVICE_ID=" + id}); err == nil || !strings.Contains(err.Error(), "'device_id'") {
			t.Errorf("VIGIL_DEVICE_ID=%q: %v", id, err)
		}
	}
}
