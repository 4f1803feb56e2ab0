package wire

import "testing"

// No device id can be a fleet client id: everything that checks device ids with ValidID (the
// agent's config, the broker's credentials and certificate names, the registry's topics)
// refuses the reserved prefix.
func TestFleetClientIDIsNoDeviceID(t *testing.T) {
	for _, name := range []string{"", "host", "vigil-fleet-host", "host-rollout", "edge-01", FleetClientPrefix + "x"} {
		id := FleetClientID(name)
		if !IsFleetClientID(id) || ValidID(id) {
			t.Errorf("FleetClientID(%q) = %q: reserved %v, valid device id %v", name, id, IsFleetClientID(id), ValidID(id))
		}
	}
	if FleetClientID(FleetClientPrefix+"a") != FleetClientPrefix+"a" {
		t.Error("an id with the prefix is prefixed again")
	}
	if IsFleetClientID("vigil-fleet-host") {
		t.Error("a device id is taken for a fleet id")
	}
}
