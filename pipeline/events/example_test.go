package events_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/events"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// A person is confirmed, walks into a zone, and is removed: new, update, end.
func Example() {
	m := events.New(events.Config{Rand: rand.NewChaCha8([32]byte{})})
	t0 := time.Date(2025, 11, 22, 17, 0, 0, 0, time.UTC)
	zones := map[uint64][]string{}
	person := func(at time.Duration, x float32, state frame.TrackState) frame.Tracks {
		tr := frame.Track{ID: 1, Label: "person", State: state, Matched: state == frame.Confirmed, Score: 0.9,
			TopScore: 0.9, Box: models.Box{X1: x, Y1: 100, X2: x + 40, Y2: 200}, FirstSeen: t0, LastSeen: t0.Add(at)}
		return frame.Tracks{Camera: "gate", CapturedAt: t0.Add(at), Width: 1280, Height: 720, Tracks: []frame.Track{tr}}
	}
	show := func(cs []events.Change) {
		for _, c := range cs {
			ev := wire.EncodeEvent(wire.Header{DeviceID: "edge-01", Seq: 1, MsgID: "edge-01-x-1"}, c)
			fmt.Printf("%s track %d zones %v snapshot %v\n", ev.Type, ev.After.TrackID, ev.After.Zones, ev.After.HasSnapshot)
		}
	}
	show(m.Update(person(0, 100, frame.Confirmed), func(id uint64) []string { return zones[id] }))
	fmt.Println("best frames:", len(m.BestFrames()))
	zones[1] = []string{"door"}
	show(m.Update(person(time.Second, 110, frame.Confirmed), func(id uint64) []string { return zones[id] }))
	show(m.Update(person(3*time.Second, 110, frame.Removed), nil))
	// Output:
	// new track 1 zones [] snapshot true
	// best frames: 1
	// update track 1 zones [door] snapshot true
	// end track 1 zones [door] snapshot true
}
