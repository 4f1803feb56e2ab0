package motion

import (
	"image"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

// grey is a w x h luma-only image (the Y plane of an I420 frame is what the gate reads) of
// level v with the rectangles rs painted white.
func grey(w, h int, v byte, rs ...image.Rectangle) models.Image {
	pix := make([]byte, w*h+2*((w+1)/2)*((h+1)/2))
	for i := range w * h {
		pix[i] = v
	}
	for _, r := range rs {
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				pix[y*w+x] = 250
			}
		}
	}
	cw, ch := (w+1)/2, (h+1)/2
	return models.Image{Width: w, Height: h, Stride: w, Pix: pix, Format: models.I420,
		U: pix[w*h : w*h+cw*ch], UStride: cw, V: pix[w*h+cw*ch:], VStride: cw}
}

// TestGatePlans: learning frame → full pass; still → none; a mover → a crop around it; motion
// inside a confirmed track that has stood still for StationaryAfter → none (still_tracks), but
// not before; motion beside it and a moving track are looked at; the periodic pass.
func TestGatePlans(t *testing.T) {
	g, err := NewGate(GateConfig{FullFrameEvery: time.Minute, FullFrameCost: 1})
	if err != nil {
		t.Fatal(err)
	}
	const w, h = 1280, 720
	pts := time.Duration(0)
	next := func(img models.Image) Decision {
		d := g.Plan(img, pts, 416, 416)
		pts += 200 * time.Millisecond
		return d
	}
	if d := next(grey(w, h, 80)); d.Mode != FullFrame || d.Reason != ReasonLearning {
		t.Fatalf("first frame: %+v", d)
	}
	for i := range 12 { // learn the background
		if d := next(grey(w, h, 80)); d.Mode != None || d.Reason != ReasonNoMotion {
			t.Fatalf("still frame %d: %+v", i, d)
		}
	}
	car := image.Rect(900, 500, 980, 560)
	d := next(grey(w, h, 80, car))
	if d.Mode != Regions || d.Reason != ReasonMotion || len(d.Regions) != 1 || !car.In(d.Regions[0]) {
		t.Fatalf("mover: %+v", d)
	}

	// the car parks: a confirmed track standing still where it is
	stillCar := frame.Track{ID: 1, State: frame.Confirmed, Matched: true, Box: models.Box{X1: 890, Y1: 490, X2: 990, Y2: 570}}
	tracks := func(ts ...frame.Track) frame.Tracks {
		return frame.Tracks{Width: w, Height: h, PTS: pts - 200*time.Millisecond, Tracks: ts}
	}
	lights := image.Rect(900, 520, 930, 540)            // its lights flicker: inside its box
	withLights := func(img models.Image) models.Image { // dark lights on the white car
		for y := lights.Min.Y; y < lights.Max.Y; y++ {
			for x := lights.Min.X; x < lights.Max.X; x++ {
				img.Pix[y*w+x] = 20
			}
		}
		return img
	}
	flicker := func(i int) models.Image {
		if i%2 == 1 {
			return withLights(grey(w, h, 80, car))
		}
		return grey(w, h, 80, car)
	}
	g.SetTracks(tracks(stillCar))
	for i := range 8 { // the car fades into the background; the flicker is still looked at
		d = next(flicker(i))
		g.SetTracks(tracks(stillCar))
	}
	if d.Mode != Regions || !lights.In(d.Regions[0]) {
		t.Fatalf("lights of a car parked for 1.6 s: %+v (a pause is not stationary)", d)
	}
	for pts < 15*time.Second { // parked for more than StationaryAfter
		next(grey(w, h, 80, car))
		g.SetTracks(tracks(stillCar))
	}
	for i := range 4 {
		if d := next(flicker(i)); d.Mode != None || (i%2 == 1 && d.Reason != ReasonStill) {
			t.Fatalf("motion inside a stationary track, frame %d: %+v", i, d)
		}
		g.SetTracks(tracks(stillCar))
	}
	// a person walks past the car: motion outside its box is looked at
	person := image.Rect(600, 400, 630, 480)
	if d := next(withLights(grey(w, h, 80, car, person))); d.Mode != Regions || d.Reason != ReasonMotion || !person.In(d.Regions[0]) {
		t.Fatalf("person beside the stationary car: %+v", d)
	}
	// the car drives off: a moving track is looked at, and its stillness starts again
	moving := stillCar
	moving.VX = 100 // pixels per second; the box is 80 high
	g.SetTracks(tracks(moving))
	if d := next(grey(w, h, 80, car)); d.Mode != Regions || d.Reason != ReasonTracks && d.Reason != ReasonMotion {
		t.Fatalf("moving track: %+v", d)
	}
	g.SetTracks(tracks(stillCar))
	if d := next(withLights(grey(w, h, 80, car))); d.Mode != Regions {
		t.Fatalf("lights of a car that has just stopped again: %+v", d)
	}
	pts = 61 * time.Second // the last full pass was at 0
	if d := next(grey(w, h, 80, car)); d.Mode != FullFrame || d.Reason != ReasonPeriodic {
		t.Fatalf("periodic: %+v", d)
	}
	if d := next(models.Image{Width: w, Height: h}); d.Mode != FullFrame || d.Reason != ReasonLearning {
		t.Fatalf("an invalid frame gets the full pass (the detector says what is wrong): %+v", d)
	}
}

func TestUnexplained(t *testing.T) {
	still := []Box{{0.5, 0.5, 0.6, 0.7}}
	in := Box{0.49, 0.52, 0.55, 0.6}  // inside once padded by a fifth of the track's size
	out := Box{0.40, 0.52, 0.55, 0.6} // reaches well to the left
	far := Box{0.1, 0.1, 0.2, 0.2}    // elsewhere
	got := Unexplained([]Box{in, out, far}, still, 0)
	if len(got) != 2 || got[0] != out || got[1] != far {
		t.Errorf("Unexplained = %v, want the two boxes not inside the still track", got)
	}
	if got := Unexplained([]Box{in}, nil, 0); len(got) != 1 {
		t.Errorf("no still tracks: %v", got)
	}
}

func TestActiveTracksOfMany(t *testing.T) {
	ts := []frame.Track{
		{ID: 1, State: frame.Confirmed, Matched: true, Box: models.Box{X1: 0, Y1: 0, X2: 100, Y2: 100}},         // still
		{ID: 2, State: frame.Confirmed, Matched: true, Box: models.Box{X1: 0, Y1: 0, X2: 100, Y2: 100}, VX: 50}, // moving
		{ID: 4, State: frame.Lost, Box: models.Box{X1: 0, Y1: 0, X2: 100, Y2: 100}},
	}
	if got := ActiveTracks(ts, 200, 100); len(got) != 2 || got[0] != (Box{0, 0, 0.5, 1}) {
		t.Errorf("ActiveTracks = %v, want tracks 2 and 4", got)
	}
}
