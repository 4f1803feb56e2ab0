package wire

import "strings"

// FleetClientPrefix starts the MQTT client id of every client of the fleet controller: its
// subscriber ($vigil-fleet/<host>) and its rollout engine ($vigil-fleet/<host>-rollout).
//
// An MQTT broker gives a client id's session, with its subscriptions and queued messages, to
// whoever connects with that id next. '$' and '/' are outside the device id alphabet
// ([ValidID]), so no device id, and no agent (whose client id is its device id), can ever take
// a fleet client's session; the fleet's embedded broker also refuses the prefix to every
// client that is not a fleet identity (fleet/auth). MQTT allows any UTF-8 client id, and
// mochi-mqtt and Mosquitto accept this one.
const FleetClientPrefix = "$vigil-fleet/"

// FleetClientID returns name as a fleet client id: prefixed with FleetClientPrefix unless it
// already is.
func FleetClientID(name string) string {
	if IsFleetClientID(name) {
		return name
	}
	return FleetClientPrefix + name
}

// IsFleetClientID reports whether id is reserved to the fleet controller's own clients.
func IsFleetClientID(id string) bool { return strings.HasPrefix(id, FleetClientPrefix) }
