package frame

import (
	"fmt"
	"time"
)

// Class is an outbound message's kind, which gives its priority when the outbox is full:
// DropOrder lists the classes dropped first. The values are stored in outbox files: a new
// class takes the next number.
type Class uint8

// Classes; by priority, lowest first: snapshot, detections, telemetry, event update, event,
// alert.
const (
	ClassDetections  Class = iota // per-frame detections: dropped first
	ClassTelemetry                // periodic telemetry
	ClassEventUpdate              // event "update" messages
	ClassEvent                    // event "new" and "end": dropped only past the hard cap
	ClassAlert                    // alerts: dropped only past the hard cap, after events
	ClassSnapshot                 // event snapshots (JPEG): dropped before anything else
	NumClasses
)

// DropOrder is the order in which the outbox drops the droppable classes at its soft cap.
var DropOrder = [...]Class{ClassSnapshot, ClassDetections, ClassTelemetry, ClassEventUpdate}

var classNames = [NumClasses]string{"detections", "telemetry", "event_update", "event", "alert", "snapshot"}

func (c Class) String() string {
	if c < NumClasses {
		return classNames[c]
	}
	return fmt.Sprintf("class%d", uint8(c))
}

// Droppable reports whether the class may be evicted at the outbox's soft cap.
func (c Class) Droppable() bool { return c <= ClassEventUpdate || c == ClassSnapshot }

// Outgoing is a message handed to the outbox. Build makes the payload once the message's
// sequence number is known (the payload carries it); it must be quick.
type Outgoing struct {
	Class      Class
	Topic      string
	CapturedAt time.Time
	Build      func(seq uint64) ([]byte, error)
}

// Stored is a message kept in the outbox, waiting for its broker acknowledgement.
type Stored struct {
	Seq        uint64
	Class      Class
	Topic      string
	Payload    []byte
	CapturedAt time.Time // when the data was captured (kept on replay)
	StoredAt   time.Time // when it was appended
}
