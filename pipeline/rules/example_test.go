package rules_test

import (
	"fmt"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/rules"
)

// A person walks down across a counting line drawn left to right: that is an a_to_b crossing.
func Example() {
	e, err := rules.New([]rules.Rule{{
		ID: "gate", Type: rules.TypeLine,
		A: &rules.Point{X: 0.2, Y: 0.5}, B: &rules.Point{X: 0.8, Y: 0.5},
	}})
	if err != nil {
		panic(err)
	}
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i, y := range []float32{300, 400, 600, 700} { // bottom of the box, in pixels of a 640x720 frame
		person := frame.Track{ID: 7, Label: "person", State: frame.Confirmed, Box: models.Box{X1: 300, Y1: y - 100, X2: 340, Y2: y}}
		for _, a := range e.Update(frame.Tracks{Camera: "lobby", CapturedAt: start.Add(time.Duration(i) * 100 * time.Millisecond),
			Width: 640, Height: 720, Tracks: []frame.Track{person}}) {
			fmt.Println(a.Camera, a.RuleID, a.Kind, a.TrackIDs, a.Label)
		}
	}
	fmt.Printf("%+v\n", e.Counts())
	// Output:
	// lobby gate a_to_b [7] person
	// [{RuleID:gate Direction:a_to_b Label:person Count:1}]
}
