package registry

import (
	"fmt"
	"slices"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Reasons the registry refuses a message that wire.Decode accepted; each is a key of
// [Registry.Rejected], beside wire's reasons (wire.DecodeReasons) for the messages handed to
// [Registry.HandleMessage] undecoded.
const (
	ReasonTooManyDevices = "too_many_devices" // the registry is full
	ReasonTooManyCameras = "too_many_cameras" // the device has too many cameras
	ReasonStaleEpoch     = "stale_epoch"      // from the device's previous outbox epoch, after the change
)

// Reasons lists every reason a message can be refused for on its way into the registry:
// wire.Decode's, then the registry's own.
func Reasons() []string {
	return append(wire.DecodeReasons(), ReasonTooManyDevices, ReasonTooManyCameras, ReasonStaleEpoch)
}

// Kinds lists the message kinds the registry accepts: every kind a device sends (they all
// share the device's seq, see docs/mqtt.md).
func Kinds() []string { return wire.DeviceKinds() }

// RejectError says why the registry refused a message.
type RejectError struct {
	Reason string // one of the Reason constants
	Err    error
}

func (e *RejectError) Error() string { return e.Reason + ": " + e.Err.Error() }

func (e *RejectError) Unwrap() error { return e.Err }

func reject(reason, format string, args ...any) error {
	return &RejectError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// known reports whether kind is one the registry counts.
func known(kind string) bool { return slices.Contains(Kinds(), kind) }

// message is the part of a decoded message the registry reads: status and detections in
// full, telemetry for the device's latest report, every other kind to its header.
type message struct {
	device     string
	kind       string
	camera     string // the topic's camera, "" when it has none
	header     wire.Header
	epoch      string // from msg_id; "" for status, which is outside the seq sequence
	status     *wire.Status
	detections *wire.Detections
	telemetry  *wire.Telemetry
}

func fromDecoded(d *wire.Decoded) message {
	m := message{device: d.Device, kind: d.Kind(), camera: d.Camera(), header: d.Header, epoch: d.Epoch}
	switch v := d.Msg.(type) {
	case *wire.Status:
		m.status = v
	case *wire.Detections:
		m.detections = v
	case *wire.Telemetry:
		m.telemetry = v
	}
	return m
}
