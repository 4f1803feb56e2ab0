package track

import (
	"image"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// obj is a synthetic object moving at constant velocity (px/s) from box (x, y, w, h).
type obj struct {
	x, y, w, h float32
	vx, vy     float32
	label      string
	// score gives the detection score on detected frame i; 0 means not detected.
	score func(i int) float32
}

func (o obj) box(at float32) models.Box {
	x, y := o.x+o.vx*at, o.y+o.vy*at
	return models.Box{X1: x, Y1: y, X2: x + o.w, Y2: y + o.h}
}

func always(s float32) func(int) float32 { return func(int) float32 { return s } }

// sequence makes n detected frames dt apart.
func sequence(n int, dt time.Duration, objs ...obj) []frame.Detections {
	out := make([]frame.Detections, n)
	for i := range out {
		at := time.Duration(i) * dt
		d := frame.Detections{Camera: "cam", FrameSeq: uint64(i + 1), PTS: at, CapturedAt: t0.Add(at), Width: 1280, Height: 720}
		for _, o := range objs {
			s := o.score(i)
			if s == 0 {
				continue
			}
			label := o.label
			if label == "" {
				label = "person"
			}
			cls := 0
			if label == "car" {
				cls = 2
			}
			d.Objects = append(d.Objects, models.Detection{ClassID: cls, Label: label, Score: s, Box: o.box(float32(at.Seconds()))})
		}
		out[i] = d
	}
	return out
}

func run(cfg Config, seq []frame.Detections) []frame.Tracks {
	tr := New(cfg)
	out := make([]frame.Tracks, len(seq))
	for i, d := range seq {
		out[i] = tr.Update(d)
	}
	return out
}

// idsOf returns, for each frame, the id of the reported track that best covers object o's
// true box (IoU >= 0.5), or 0.
func idsOf(o obj, seq []frame.Detections, outs []frame.Tracks) []uint64 {
	ids := make([]uint64, len(outs))
	for i, ts := range outs {
		truth := o.box(float32(seq[i].PTS.Seconds()))
		best := float32(0.5)
		for _, tk := range ts.Tracks {
			if tk.State == frame.Removed {
				continue
			}
			if iou := tk.Box.IoU(truth); iou >= best {
				best, ids[i] = iou, tk.ID
			}
		}
	}
	return ids
}

// oneID checks that object o is followed by a single id from frame from on (0: its first
// confirmed frame) to frame to (exclusive; 0: the end), and returns it.
func oneID(t *testing.T, name string, o obj, seq []frame.Detections, outs []frame.Tracks, from, to int) uint64 {
	t.Helper()
	if to == 0 {
		to = len(outs)
	}
	ids := idsOf(o, seq, outs)
	var id uint64
	for i := from; i < to; i++ {
		switch {
		case ids[i] == 0 && id == 0 && from == 0:
			continue // not confirmed yet
		case ids[i] == 0:
			t.Fatalf("%s: frame %d: no track on the object (ids %v)", name, i, ids)
		case id == 0:
			id = ids[i]
		case ids[i] != id:
			t.Fatalf("%s: frame %d: id %d, was %d (ids %v)", name, i, ids[i], id, ids)
		}
	}
	if id == 0 {
		t.Fatalf("%s: never tracked", name)
	}
	return id
}

func trackByID(ts frame.Tracks, id uint64) (frame.Track, bool) {
	for _, tk := range ts.Tracks {
		if tk.ID == id {
			return tk, true
		}
	}
	return frame.Track{}, false
}

func TestScenarios(t *testing.T) {
	const fast = 40 * time.Millisecond
	gap := func(from, to int, s float32) func(int) float32 {
		return func(i int) float32 {
			if i >= from && i < to {
				return 0
			}
			return s
		}
	}
	cases := []struct {
		name   string
		n      int
		dt     time.Duration
		cfg    Config
		objs   []obj
		checks func(t *testing.T, seq []frame.Detections, outs []frame.Tracks, objs []obj)
	}{
		{
			name: "occlusion gap shorter than MaxLost keeps the id",
			n:    80, dt: fast,
			objs: []obj{{x: 100, y: 200, w: 40, h: 100, vx: 100, score: gap(20, 45, 0.9)}}, // 1 s gap
			checks: func(t *testing.T, seq []frame.Detections, outs []frame.Tracks, objs []obj) {
				id := oneID(t, "walker", objs[0], seq, outs, 0, 0)
				for i := 20; i < 45; i++ {
					tk, ok := trackByID(outs[i], id)
					if !ok || tk.State != frame.Lost || tk.Matched {
						t.Fatalf("frame %d: want the track lost and reported, got %+v (found %v)", i, tk, ok)
					}
				}
				tk, _ := trackByID(outs[60], id)
				if tk.State != frame.Confirmed || !tk.Matched || math.Abs(float64(tk.VX)-100) > 15 || math.Abs(float64(tk.VY)) > 15 {
					t.Fatalf("after the gap: %+v, want confirmed, matched, VX≈100 px/s", tk)
				}
				if !tk.FirstSeen.Equal(t0) || !tk.LastSeen.Equal(seq[60].CapturedAt) {
					t.Fatalf("first/last seen %v %v", tk.FirstSeen, tk.LastSeen)
				}
			},
		},
		{
			name: "crossing paths keep their ids",
			n:    60, dt: fast,
			objs: []obj{
				{x: 100, y: 200, w: 40, h: 100, vx: 150, score: always(0.9)},
				{x: 400, y: 210, w: 40, h: 100, vx: -150, score: always(0.8)},
			},
			checks: func(t *testing.T, seq []frame.Detections, outs []frame.Tracks, objs []obj) {
				a := oneID(t, "left-to-right", objs[0], seq, outs, 0, 0)
				b := oneID(t, "right-to-left", objs[1], seq, outs, 0, 0)
				if a == b {
					t.Fatalf("both objects have id %d", a)
				}
			},
		},
		{
			name: "crossing with the hidden one's score dropping keeps the ids",
			n:    60, dt: fast,
			objs: []obj{
				{x: 100, y: 200, w: 40, h: 100, vx: 150, score: always(0.9)},
				{x: 400, y: 205, w: 40, h: 100, vx: -150, score: func(i int) float32 {
					if i >= 20 && i < 30 { // behind the other: weak detections only
						return 0.3
					}
					return 0.8
				}},
			},
			checks: func(t *testing.T, seq []frame.Detections, outs []frame.Tracks, objs []obj) {
				a := oneID(t, "front", objs[0], seq, outs, 0, 0)
				b := oneID(t, "behind", objs[1], seq, outs, 0, 0)
				if a == b {
					t.Fatalf("both objects have id %d", a)
				}
			},
		},
		{
			name: "missed detections every third frame",
			n:    60, dt: fast,
			objs: []obj{{x: 100, y: 100, w: 50, h: 120, vx: 80, vy: 30, score: func(i int) float32 {
				if i > 3 && i%3 == 0 {
					return 0
				}
				return 0.7
			}}},
			checks: func(t *testing.T, seq []frame.Detections, outs []frame.Tracks, objs []obj) {
				id := oneID(t, "flicker", objs[0], seq, outs, 0, 0)
				if id != 1 {
					t.Fatalf("id %d, want 1", id)
				}
				for i, ts := range outs {
					for _, tk := range ts.Tracks {
						if tk.State == frame.Removed {
							t.Fatalf("frame %d: removed", i)
						}
					}
				}
			},
		},
		{
			name: "low-score detections continue the track through the second stage",
			n:    50, dt: fast,
			objs: []obj{{x: 300, y: 100, w: 50, h: 120, vx: -60, score: func(i int) float32 {
				if i >= 15 && i < 35 {
					return 0.2
				}
				return 0.8
			}}},
			checks: func(t *testing.T, seq []frame.Detections, outs []frame.Tracks, objs []obj) {
				id := oneID(t, "fading", objs[0], seq, outs, 0, 0)
				for i := 15; i < 35; i++ {
					tk, _ := trackByID(outs[i], id)
					if !tk.Matched || tk.State != frame.Confirmed || tk.Score != 0.2 || tk.TopScore != 0.8 {
						t.Fatalf("frame %d: %+v, want matched to the 0.2 detection", i, tk)
					}
				}
			},
		},
		{
			name: "without the second stage the same track goes lost",
			n:    50, dt: fast,
			cfg: Config{LowScore: 0.5},
			objs: []obj{{x: 300, y: 100, w: 50, h: 120, vx: -60, score: func(i int) float32 {
				if i >= 15 && i < 35 {
					return 0.2
				}
				return 0.8
			}}},
			checks: func(t *testing.T, seq []frame.Detections, outs []frame.Tracks, objs []obj) {
				tk, _ := trackByID(outs[20], 1)
				if tk.Matched || tk.State != frame.Lost {
					t.Fatalf("%+v, want lost", tk)
				}
			},
		},
		{
			name: "detection rate below the stream rate (dt 0.2 s) with a gap",
			n:    30, dt: 200 * time.Millisecond,
			objs: []obj{{x: 100, y: 300, w: 60, h: 140, vx: 150, vy: -20, score: gap(12, 16, 0.9)}}, // 0.8 s gap: 120 px
			checks: func(t *testing.T, seq []frame.Detections, outs []frame.Tracks, objs []obj) {
				id := oneID(t, "slow rate", objs[0], seq, outs, 0, 0)
				tk, _ := trackByID(outs[11], id)
				if math.Abs(float64(tk.VX)-150) > 15 || math.Abs(float64(tk.VY)+20) > 15 {
					t.Fatalf("velocity (%v, %v), want (150, -20) px/s", tk.VX, tk.VY)
				}
				if tk, _ := trackByID(outs[16], id); !tk.Matched {
					t.Fatalf("after the gap: %+v, want matched", tk)
				}
			},
		},
		{
			name: "same motion at stream rate gives the same velocity in px/s",
			n:    80, dt: fast,
			objs: []obj{{x: 100, y: 300, w: 60, h: 140, vx: 150, vy: -20, score: always(0.9)}},
			checks: func(t *testing.T, seq []frame.Detections, outs []frame.Tracks, objs []obj) {
				id := oneID(t, "fast rate", objs[0], seq, outs, 0, 0)
				tk, _ := trackByID(outs[60], id)
				if math.Abs(float64(tk.VX)-150) > 15 || math.Abs(float64(tk.VY)+20) > 15 {
					t.Fatalf("velocity (%v, %v), want (150, -20) px/s", tk.VX, tk.VY)
				}
			},
		},
		{
			name: "removed after MaxLost, reported once",
			n:    80, dt: fast,
			objs: []obj{{x: 100, y: 200, w: 40, h: 100, vx: 20, score: func(i int) float32 {
				if i < 20 {
					return 0.9
				}
				return 0
			}}},
			checks: func(t *testing.T, seq []frame.Detections, outs []frame.Tracks, objs []obj) {
				// Last seen at frame 19 (0.76 s); lost while the gap is <= 1.5 s, i.e. up to
				// frame 56 (2.24 s); removed at frame 57 (2.28 s); gone after.
				for i := 20; i < 80; i++ {
					tk, ok := trackByID(outs[i], 1)
					switch {
					case i <= 56 && (!ok || tk.State != frame.Lost):
						t.Fatalf("frame %d: %+v %v, want lost", i, tk, ok)
					case i == 57 && (!ok || tk.State != frame.Removed):
						t.Fatalf("frame %d: %+v %v, want removed", i, tk, ok)
					case i > 57 && ok:
						t.Fatalf("frame %d: %+v still reported", i, tk)
					}
				}
			},
		},
		{
			name: "tentative tracks and weak new detections are never reported",
			n:    20, dt: fast,
			objs: []obj{
				{x: 100, y: 100, w: 40, h: 100, score: func(i int) float32 { // two frames only
					if i == 3 || i == 4 {
						return 0.95
					}
					return 0
				}},
				{x: 500, y: 100, w: 40, h: 100, score: always(0.55)}, // below NewTrackScore
			},
			checks: func(t *testing.T, seq []frame.Detections, outs []frame.Tracks, objs []obj) {
				for i, ts := range outs {
					if len(ts.Tracks) != 0 {
						t.Fatalf("frame %d: %+v", i, ts.Tracks)
					}
				}
			},
		},
		{
			name: "a car and a person in one place are tracked apart",
			n:    20, dt: fast,
			objs: []obj{
				{x: 100, y: 100, w: 80, h: 80, vx: 30, label: "car", score: always(0.9)},
				{x: 105, y: 100, w: 80, h: 80, vx: 30, label: "person", score: always(0.9)},
			},
			checks: func(t *testing.T, seq []frame.Detections, outs []frame.Tracks, objs []obj) {
				last := outs[len(outs)-1]
				if len(last.Tracks) != 2 || last.Tracks[0].Label == last.Tracks[1].Label {
					t.Fatalf("%+v", last.Tracks)
				}
				for _, tk := range last.Tracks {
					if tk.ID != 1 && tk.ID != 2 || !tk.Matched || tk.Hits != 20 {
						t.Fatalf("%+v", tk)
					}
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seq := sequence(c.n, c.dt, c.objs...)
			outs := run(c.cfg, seq)
			c.checks(t, seq, outs, c.objs)
			if again := run(c.cfg, seq); !reflect.DeepEqual(outs, again) {
				t.Fatal("a second run over the same input differs")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	if got := (Config{}).WithDefaults(); got != Default() {
		t.Fatalf("zero config with defaults = %+v", got)
	}
	bad := []struct {
		cfg  Config
		want string
	}{
		{Config{HighScore: 1.5}, "'HighScore'"},
		{Config{LowScore: 0.7}, "'LowScore' (0.7) must not exceed 'HighScore' (0.5)"},
		{Config{NewTrackScore: 0.3}, "'NewTrackScore'"},
		{Config{MatchIoU: -0.1}, "'MatchIoU'"},
		{Config{SecondMatchIoU: 2}, "'SecondMatchIoU'"},
		{Config{ConfirmHits: -1}, "'ConfirmHits'"},
		{Config{MaxLost: -time.Second}, "'MaxLost'"},
		{Config{FrameInterval: -1}, "'FrameInterval'"},
	}
	for _, b := range bad {
		err := b.cfg.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: got %v, want an error with %q", b.cfg, err, b.want)
		}
	}
}

// checkInvariants feeds seq and checks what must hold for any input: ids from 1, assigned in
// order without gaps, unique per frame, never reused after removal; no tentative track
// reported; removed tracks reported once; the same output on a second run.
func checkInvariants(t *testing.T, seq []frame.Detections) {
	t.Helper()
	outs := run(Config{}, seq)
	var maxID uint64
	removed := map[uint64]bool{}
	for i, ts := range outs {
		seen := map[uint64]bool{}
		for _, tk := range ts.Tracks {
			switch {
			case tk.ID == 0 || tk.State == frame.Tentative:
				t.Fatalf("frame %d: tentative track reported: %+v", i, tk)
			case seen[tk.ID]:
				t.Fatalf("frame %d: id %d twice", i, tk.ID)
			case removed[tk.ID]:
				t.Fatalf("frame %d: id %d reported after its removal", i, tk.ID)
			case tk.ID > maxID+1:
				t.Fatalf("frame %d: id %d after %d: a gap", i, tk.ID, maxID)
			case tk.Matched != (tk.State == frame.Confirmed):
				t.Fatalf("frame %d: %+v: matched and state disagree", i, tk)
			}
			seen[tk.ID] = true
			maxID = max(maxID, tk.ID)
			if tk.State == frame.Removed {
				removed[tk.ID] = true
			}
		}
	}
	if again := run(Config{}, seq); !reflect.DeepEqual(outs, again) {
		t.Fatal("a second run over the same input differs")
	}
}

// decodeFuzz turns bytes into frames: 0xFF ends a frame, otherwise 5 bytes make a detection
// in a small area (so that boxes overlap and compete).
func decodeFuzz(b []byte) []frame.Detections {
	var seq []frame.Detections
	cur := frame.Detections{CapturedAt: t0}
	at := t0
	for len(b) > 0 {
		if b[0] == 0xFF {
			seq = append(seq, cur)
			at = at.Add(time.Duration(1+int(len(seq)%3)*40) * time.Millisecond)
			cur = frame.Detections{FrameSeq: uint64(len(seq) + 1), CapturedAt: at}
			b = b[1:]
			continue
		}
		if len(b) < 5 {
			break
		}
		x, y := float32(b[0]%64)*2, float32(b[1]%64)*2
		w, h := 8+float32(b[2]%32), 8+float32(b[3]%64)
		cls := int(b[4] >> 7)
		label := []string{"person", "car"}[cls]
		cur.Objects = append(cur.Objects, models.Detection{ClassID: cls * 2, Label: label,
			Score: float32(b[4]&0x7F) / 127, Box: models.Box{X1: x, Y1: y, X2: x + w, Y2: y + h}})
		b = b[5:]
	}
	return append(seq, cur)
}

func FuzzTrackerInvariants(f *testing.F) {
	still := []byte{10, 10, 10, 20, 120, 0xFF}
	var seed []byte
	for range 8 {
		seed = append(seed, still...)
	}
	f.Add(seed)
	f.Add(append(append([]byte{}, seed...), 0xFF, 0xFF, 0xFF, 11, 10, 10, 20, 30, 0xFF))
	f.Add([]byte{1, 2, 3, 4, 200, 1, 2, 3, 4, 90, 0xFF, 1, 3, 3, 4, 200, 0xFF, 2, 3, 3, 4, 127, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 4000 {
			return
		}
		checkInvariants(t, decodeFuzz(b))
	})
}

func TestRandomSequencesInvariants(t *testing.T) {
	// A deterministic pseudo-random walk of many objects that appear, vanish and cross.
	var b []byte
	s := uint32(12345)
	next := func() byte { s = s*1664525 + 1013904223; return byte(s >> 24) }
	for range 300 {
		for range int(next() % 8) {
			b = append(b, next(), next(), next(), next(), next())
		}
		b = append(b, 0xFF)
	}
	checkInvariants(t, decodeFuzz(b))
}

func BenchmarkUpdate20(b *testing.B) {
	var objs []obj
	for i := range 20 {
		objs = append(objs, obj{x: float32(i%5) * 200, y: float32(i/5) * 150, w: 40, h: 100,
			vx: float32(i%3-1) * 50, vy: float32(i%2) * 20, score: always(0.5 + float32(i%5)/10)})
	}
	seq := sequence(200, 40*time.Millisecond, objs...)
	tr := New(Config{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d := seq[i%len(seq)]
		d.CapturedAt = t0.Add(time.Duration(i) * 40 * time.Millisecond)
		tr.Update(d)
		i++
	}
}

// TestUpdateSeenHoldsTracksNotLookedAt: with motion-driven detection a parked car outside the
// crops is not missed (it keeps its id for far longer than MaxLost), while a person inside a
// crop who is not detected is lost and removed as usual; a full-frame pass that misses the
// car then ages it normally.
func TestUpdateSeenHoldsTracksNotLookedAt(t *testing.T) {
	car := obj{x: 100, y: 500, w: 120, h: 60, label: "car", score: always(0.9)}
	person := obj{x: 900, y: 300, w: 40, h: 100, vx: 20, score: always(0.9)}
	tr := New(Default())
	dt := 200 * time.Millisecond
	seq := sequence(80, dt, car, person)
	var out frame.Tracks
	for i := range 5 { // full frames: both confirmed
		out = tr.Update(seq[i])
	}
	if len(out.Tracks) != 2 {
		t.Fatalf("after 5 full frames: %+v", out.Tracks)
	}
	crop := []image.Rectangle{image.Rect(700, 100, 1200, 600)} // around the person only
	// 7 s of crops: the car is not looked at, the person vanishes at frame 20
	for i := 5; i < 40; i++ {
		d := seq[i]
		d.Objects = slices.DeleteFunc(slices.Clone(d.Objects), func(o models.Detection) bool {
			return o.Label == "car" || i >= 20
		})
		out = tr.UpdateSeen(d, crop)
	}
	var carTrack *frame.Track
	for i := range out.Tracks {
		switch out.Tracks[i].Label {
		case "car":
			carTrack = &out.Tracks[i]
		case "person":
			t.Errorf("the person, not detected inside the crop for 4 s, is still %v", out.Tracks[i].State)
		}
	}
	if carTrack == nil || carTrack.State != frame.Confirmed || carTrack.ID != 1 || carTrack.Matched {
		t.Fatalf("the car outside the crops: %+v", carTrack)
	}
	out = tr.UpdateSeen(seq[40], nil) // no inference at all: the car is held too
	if len(out.Tracks) != 1 || out.Tracks[0].State != frame.Confirmed {
		t.Fatalf("no inference: %+v", out.Tracks)
	}
	for i := 41; i < 51; i++ { // 2 s of full frames without the car: lost, then removed
		d := seq[i]
		d.Objects = nil
		out = tr.Update(d)
	}
	if len(out.Tracks) != 0 {
		t.Errorf("the car, missed by full-frame passes for 2 s, is still %+v", out.Tracks)
	}
}

// TestUpdateSeenLooksAtTheEdgeForTracksLeaving: a car driving out of the frame has a
// predicted centre outside it; the crop at the frame's edge counts as looking for it, so it
// is lost and removed, not held for ever.
func TestUpdateSeenLooksAtTheEdgeForTracksLeaving(t *testing.T) {
	car := obj{x: 1100, y: 300, w: 150, h: 80, vx: 300, label: "car", score: func(i int) float32 {
		if i < 5 {
			return 0.9
		}
		return 0
	}}
	tr := New(Default())
	seq := sequence(30, 200*time.Millisecond, car)
	for i := range 5 {
		tr.Update(seq[i])
	}
	edge := []image.Rectangle{image.Rect(864, 0, 1280, 416)}
	var out frame.Tracks
	for i := 5; i < 30; i++ {
		out = tr.UpdateSeen(seq[i], edge)
	}
	if len(out.Tracks) != 0 {
		t.Errorf("the car that left is still %+v", out.Tracks)
	}
}

// TestConfirmMedian: with Frigate's rule a track detected at 0.65 (above NewTrackScore) is
// never confirmed at a median threshold of 0.7, one whose score climbs to 0.8 is confirmed
// once the median of its scores (padded with zeros to three) reaches 0.7, and the rule off
// confirms both at ConfirmHits.
func TestConfirmMedian(t *testing.T) {
	weak := obj{x: 100, y: 100, w: 40, h: 100, vx: 20, score: always(0.65)}
	climbing := obj{x: 600, y: 100, w: 40, h: 100, vx: -20, score: func(i int) float32 {
		return []float32{0.62, 0.62, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8}[min(i, 7)]
	}}
	seq := sequence(8, 200*time.Millisecond, weak, climbing)
	firstConfirmed := func(cfg Config, o obj) int {
		outs := run(cfg, seq)
		for i, id := range idsOf(o, seq, outs) {
			if id != 0 {
				return i
			}
		}
		return -1
	}
	off := Default()
	if a, b := firstConfirmed(off, weak), firstConfirmed(off, climbing); a != 2 || b != 2 {
		t.Fatalf("rule off: confirmed on frames %d and %d, want 2 (ConfirmHits 3)", a, b)
	}
	on := Default()
	on.ConfirmMedian = 0.7
	if a := firstConfirmed(on, weak); a != -1 {
		t.Errorf("median 0.65 < 0.7: confirmed on frame %d", a)
	}
	// scores 0.62 0.62 0.8 → median 0.62; 0.62 0.62 0.8 0.8 → 0.71: frame 3
	if b := firstConfirmed(on, climbing); b != 3 {
		t.Errorf("climbing to 0.8: confirmed on frame %d, want 3", b)
	}
	bad := Default()
	bad.ConfirmMedian = 1.5
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "'ConfirmMedian'") {
		t.Errorf("ConfirmMedian 1.5: %v", err)
	}
}
