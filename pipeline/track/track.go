// Package track follows detected objects from frame to frame of one camera: a ByteTrack-style
// multi-object tracker (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every
// Detection Box", ECCV 2022).
//
// For each detected frame, Update
//
//  1. predicts every live track's box to the frame's capture time with a constant-velocity
//     Kalman filter (centre, aspect ratio, height; dt from CapturedAt, so a detector that runs
//     slower than the stream, or skips frames, still predicts the right distance);
//  2. splits the detections into high-score (>= HighScore) and low-score (LowScore..HighScore);
//  3. matches confirmed and lost tracks to high-score detections (optimal assignment on
//     1 - IoU, pairs below MatchIoU never made);
//  4. matches the confirmed tracks still unmatched to low-score detections (SecondMatchIoU):
//     the step that keeps an occluded person, whose score drops, on its track;
//  5. matches tentative tracks to the high-score detections left (TentativeMatchIoU);
//  6. starts a tentative track for each high-score detection left with score >= NewTrackScore.
//
// A tentative track becomes confirmed after ConfirmHits matched frames in a row (and, with
// ConfirmMedian, once the median of its recent scores reaches it) and only then gets its id
// (ids count from 1 and are never reused); a tentative track that misses a frame is dropped
// unseen. A confirmed track that misses becomes lost, keeps its id while lost for at
// most MaxLost of capture time, and is then removed.
//
// Class handling: a detection is only matched to a track of the same class (ClassID and
// Label); a person is never continued as a car. Grouping classes (car/truck/bus as "vehicle")
// is left to the detector's label mapping.
//
// The Tracker is deterministic: the same detections give the same tracks.
package track

import (
	"cmp"
	"fmt"
	"image"
	"slices"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/track/lap"
)

// Config tunes a Tracker. Zero fields take the defaults of Default.
type Config struct {
	// HighScore splits detections: at or above it they take part in the first match and may
	// start tracks; below it (down to LowScore) only in the second match. Default 0.5.
	HighScore float32
	// LowScore: detections below it are ignored. Default 0.1.
	LowScore float32
	// NewTrackScore is the least score of an unmatched detection that starts a track. Default 0.6.
	NewTrackScore float32
	// MatchIoU is the least IoU of a track's predicted box and a high-score detection for the
	// first match. Default 0.2.
	MatchIoU float32
	// SecondMatchIoU is the least IoU for matching a low-score detection. Default 0.5.
	SecondMatchIoU float32
	// TentativeMatchIoU is the least IoU for matching a tentative track. Default 0.3.
	TentativeMatchIoU float32
	// ConfirmHits is how many matched frames in a row confirm a track. Default 3.
	ConfirmHits int
	// ConfirmMedian, when set, is Frigate's confirmation rule on top of ConfirmHits: a
	// tentative track is confirmed only once the median of its last ScoreHistory detection
	// scores (padded with zeros to three) reaches it; until then it stays tentative while it
	// is matched. 0 (the default): off.
	ConfirmMedian float32
	// MaxLost is how long (capture time) a confirmed track may go unmatched before it is
	// removed. Default 1.5 s.
	MaxLost time.Duration
	// FrameInterval is the time step assumed when CapturedAt does not advance between two
	// calls (unset or repeated timestamps). Default 40 ms.
	FrameInterval time.Duration
}

// Default is the default configuration.
func Default() Config {
	return Config{
		HighScore:         0.5,
		LowScore:          0.1,
		NewTrackScore:     0.6,
		MatchIoU:          0.2,
		SecondMatchIoU:    0.5,
		TentativeMatchIoU: 0.3,
		ConfirmHits:       3,
		MaxLost:           1500 * time.Millisecond,
		FrameInterval:     40 * time.Millisecond,
	}
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	d := Default()
	c.HighScore = cmp.Or(c.HighScore, d.HighScore)
	c.LowScore = cmp.Or(c.LowScore, d.LowScore)
	c.NewTrackScore = cmp.Or(c.NewTrackScore, d.NewTrackScore)
	c.MatchIoU = cmp.Or(c.MatchIoU, d.MatchIoU)
	c.SecondMatchIoU = cmp.Or(c.SecondMatchIoU, d.SecondMatchIoU)
	c.TentativeMatchIoU = cmp.Or(c.TentativeMatchIoU, d.TentativeMatchIoU)
	c.ConfirmHits = cmp.Or(c.ConfirmHits, d.ConfirmHits)
	c.MaxLost = cmp.Or(c.MaxLost, d.MaxLost)
	c.FrameInterval = cmp.Or(c.FrameInterval, d.FrameInterval)
	return c
}

// Validate checks c (after WithDefaults) and names the first bad field.
func (c Config) Validate() error {
	in01 := func(name string, v float32) error {
		if !(v > 0 && v <= 1) {
			return fmt.Errorf("track config: '%s' must be in (0, 1], got %g", name, v)
		}
		return nil
	}
	for _, f := range []struct {
		name string
		v    float32
	}{
		{"HighScore", c.HighScore}, {"LowScore", c.LowScore}, {"NewTrackScore", c.NewTrackScore},
		{"MatchIoU", c.MatchIoU}, {"SecondMatchIoU", c.SecondMatchIoU}, {"TentativeMatchIoU", c.TentativeMatchIoU},
	} {
		if err := in01(f.name, f.v); err != nil {
			return err
		}
	}
	switch {
	case c.LowScore > c.HighScore:
		return fmt.Errorf("track config: 'LowScore' (%g) must not exceed 'HighScore' (%g)", c.LowScore, c.HighScore)
	case c.NewTrackScore < c.HighScore:
		return fmt.Errorf("track config: 'NewTrackScore' (%g) must not be below 'HighScore' (%g)", c.NewTrackScore, c.HighScore)
	case !(c.ConfirmMedian >= 0 && c.ConfirmMedian <= 1):
		return fmt.Errorf("track config: 'ConfirmMedian' must be in [0, 1] (0: off), got %g", c.ConfirmMedian)
	case c.ConfirmHits < 1:
		return fmt.Errorf("track config: 'ConfirmHits' must be >= 1, got %d", c.ConfirmHits)
	case c.MaxLost <= 0:
		return fmt.Errorf("track config: 'MaxLost' must be > 0, got %v", c.MaxLost)
	case c.FrameInterval <= 0:
		return fmt.Errorf("track config: 'FrameInterval' must be > 0, got %v", c.FrameInterval)
	}
	return nil
}

// Tracker tracks the objects of one camera.
//
// Call contract: Update is called once per detected frame, in capture order, from one
// goroutine at a time; a Tracker is not safe for concurrent use. It holds no resources.
type Tracker struct {
	cfg    Config
	tracks []*track // live tracks (tentative, confirmed, lost) in creation order
	nextID uint64
	clock  time.Duration // capture time since the first Update, advanced by each frame's dt
	lastAt time.Time
	frames int

	// scratch reused between calls
	cost [][]float64
}

type track struct {
	id        uint64 // 0 while tentative
	classID   int
	label     string
	state     frame.TrackState
	kf        kalman
	score     float32
	topScore  float32
	matched   bool
	hits      int
	history   [ScoreHistory]float32 // the last detection scores, a ring (hits counts them all)
	firstSeen time.Time
	lastSeen  time.Time
	lastClock time.Duration // clock of the last match
}

// New returns a tracker for cfg with its zero fields defaulted. It panics when the result
// is invalid: check configuration from outside with cfg.WithDefaults().Validate() first.
func New(cfg Config) *Tracker {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return &Tracker{cfg: cfg, nextID: 1}
}

// Config is the tracker's configuration, defaults applied.
func (t *Tracker) Config() Config { return t.cfg }

// Update feeds the detections of the next detected frame and returns the tracks on it:
// confirmed and lost tracks, and tracks removed on this frame (once, with State Removed),
// sorted by id. Tentative tracks are never returned. The result does not alias the
// tracker's memory.
func (t *Tracker) Update(d frame.Detections) frame.Tracks {
	return t.update(d, false, nil)
}

// UpdateSeen is Update for a frame on which the detector looked only at the rectangles seen
// (source-frame pixels; none: it did not run), as with motion-driven detection: a track whose
// predicted box was not looked for (see Looked: not wholly inside one of them) is held as it was
// (not lost, not aged, not dropped while tentative) instead of counting as missed. Held
// tracks are returned unmatched, in their state.
func (t *Tracker) UpdateSeen(d frame.Detections, seen []image.Rectangle) frame.Tracks {
	return t.update(d, true, seen)
}

func (t *Tracker) update(d frame.Detections, partial bool, seen []image.Rectangle) frame.Tracks {
	dt := t.advance(d.CapturedAt)
	for _, tr := range t.tracks {
		if tr.state != frame.Confirmed {
			tr.kf.h.v = 0 // as ByteTrack: an unmatched box does not keep growing or shrinking
		}
		tr.kf.predict(dt)
		tr.matched = false
		tr.score = 0
	}

	var high, low []int // indices into d.Objects
	for i, o := range d.Objects {
		switch {
		case o.Score >= t.cfg.HighScore:
			high = append(high, i)
		case o.Score >= t.cfg.LowScore:
			low = append(low, i)
		}
	}

	var active, tentative []*track
	for _, tr := range t.tracks {
		if tr.state == frame.Tentative {
			tentative = append(tentative, tr)
		} else {
			active = append(active, tr)
		}
	}

	// 1. confirmed and lost tracks against high-score detections.
	restTracks, restHigh := t.match(active, d, high, t.cfg.MatchIoU)
	// 2. confirmed tracks still unmatched against low-score detections.
	var stillTracked []*track
	for _, tr := range restTracks {
		if tr.state == frame.Confirmed {
			stillTracked = append(stillTracked, tr)
		}
	}
	t.match(stillTracked, d, low, t.cfg.SecondMatchIoU)
	// 3. tentative tracks against the high-score detections left.
	_, restHigh = t.match(tentative, d, restHigh, t.cfg.TentativeMatchIoU)

	out := frame.Tracks{
		Camera: d.Camera, FrameSeq: d.FrameSeq, PTS: d.PTS, CapturedAt: d.CapturedAt,
		Width: d.Width, Height: d.Height,
	}
	live := t.tracks[:0]
	for _, tr := range t.tracks {
		switch {
		case tr.matched:
			if tr.state == frame.Tentative && tr.hits >= t.cfg.ConfirmHits && t.confident(tr) {
				tr.state, tr.id = frame.Confirmed, t.nextID
				t.nextID++
			} else if tr.state == frame.Lost {
				tr.state = frame.Confirmed
			}
		case partial && !Looked(tr.kf.box(), seen, d.Width, d.Height):
			tr.lastClock = t.clock // held: not looked for, so not missed
		case tr.state == frame.Tentative:
			continue // dropped unseen
		case t.clock-tr.lastClock > t.cfg.MaxLost:
			tr.state = frame.Removed
		default:
			tr.state = frame.Lost
		}
		if tr.state != frame.Tentative {
			out.Tracks = append(out.Tracks, tr.export())
		}
		if tr.state != frame.Removed {
			live = append(live, tr)
		}
	}
	clear(t.tracks[len(live):])
	t.tracks = live

	// 4. new tracks from confident detections nobody took.
	for _, i := range restHigh {
		o := d.Objects[i]
		if o.Score < t.cfg.NewTrackScore {
			continue
		}
		tr := &track{classID: o.ClassID, label: o.Label, state: frame.Tentative, kf: newKalman(o.Box),
			firstSeen: d.CapturedAt}
		t.hit(tr, o, d.CapturedAt)
		if t.cfg.ConfirmHits <= 1 && t.confident(tr) {
			tr.state, tr.id = frame.Confirmed, t.nextID
			t.nextID++
			out.Tracks = append(out.Tracks, tr.export())
		}
		t.tracks = append(t.tracks, tr)
	}
	slices.SortFunc(out.Tracks, func(a, b frame.Track) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Looked reports whether a detector that looked at the rectangles seen of a w x h frame
// (w, h 0: unknown) looked for an object at box b: b, clipped to the frame (an object
// leaving it is looked for at its edge), lies inside one of them, give or take 2 pixels. An
// object cut by a crop's edge is not looked for: the crop shows only part of it.
func Looked(b models.Box, seen []image.Rectangle, w, h int) bool {
	if w > 0 && h > 0 {
		b = models.Box{X1: max(b.X1, 0), Y1: max(b.Y1, 0), X2: min(b.X2, float32(w)), Y2: min(b.Y2, float32(h))}
		if b.X1 >= b.X2 || b.Y1 >= b.Y2 { // wholly outside: look for it at the nearest edge
			cx, cy := min(max(b.X1, 0), float32(w)-1), min(max(b.Y1, 0), float32(h)-1)
			b = models.Box{X1: cx, Y1: cy, X2: cx + 1, Y2: cy + 1}
		}
	}
	const tol = 2
	for _, r := range seen {
		if b.X1 >= float32(r.Min.X)-tol && b.Y1 >= float32(r.Min.Y)-tol && b.X2 <= float32(r.Max.X)+tol && b.Y2 <= float32(r.Max.Y)+tol {
			return true
		}
	}
	return false
}

// advance moves the tracker's clock to at and returns the step in seconds.
func (t *Tracker) advance(at time.Time) float64 {
	var step time.Duration
	switch {
	case t.frames == 0:
		t.lastAt = at
	case at.After(t.lastAt):
		step = at.Sub(t.lastAt)
		t.lastAt = at
	default:
		step = t.cfg.FrameInterval
	}
	t.frames++
	t.clock += step
	return step.Seconds()
}

// match optimally pairs tracks with the detections dets (indices into d.Objects) of the same
// class at IoU >= minIoU, updates the matched tracks, and returns what is left of both.
func (t *Tracker) match(tracks []*track, d frame.Detections, dets []int, minIoU float32) ([]*track, []int) {
	if len(tracks) == 0 || len(dets) == 0 {
		return tracks, dets
	}
	t.cost = slices.Grow(t.cost[:0], len(tracks))[:len(tracks)]
	boxes := make([]models.Box, len(tracks))
	for i, tr := range tracks {
		boxes[i] = tr.kf.box()
		t.cost[i] = slices.Grow(t.cost[i][:0], len(dets))[:len(dets)]
		for j, k := range dets {
			o := d.Objects[k]
			c := 2.0 // never paired
			if o.ClassID == tr.classID && o.Label == tr.label {
				if iou := boxes[i].IoU(o.Box); iou >= minIoU {
					c = 1 - float64(iou)
				}
			}
			t.cost[i][j] = c
		}
	}
	pairs := lap.Assign(t.cost, 1-float64(minIoU))
	usedT := make([]bool, len(tracks))
	usedD := make([]bool, len(dets))
	for _, p := range pairs {
		usedT[p.Row], usedD[p.Col] = true, true
		tr, o := tracks[p.Row], d.Objects[dets[p.Col]]
		tr.kf.update(o.Box)
		t.hit(tr, o, d.CapturedAt)
	}
	var restT []*track
	for i, tr := range tracks {
		if !usedT[i] {
			restT = append(restT, tr)
		}
	}
	var restD []int
	for j, k := range dets {
		if !usedD[j] {
			restD = append(restD, k)
		}
	}
	return restT, restD
}

// hit records a matched detection on tr.
func (t *Tracker) hit(tr *track, o models.Detection, at time.Time) {
	tr.matched = true
	tr.hits++
	tr.score = o.Score
	tr.history[(tr.hits-1)%ScoreHistory] = o.Score
	tr.topScore = max(tr.topScore, o.Score)
	tr.lastSeen = at
	tr.lastClock = t.clock
}

// ScoreHistory is how many of a track's last detection scores ConfirmMedian looks at (Frigate's).
const ScoreHistory = 10

// confident reports whether tr passes ConfirmMedian (always, when it is off).
func (t *Tracker) confident(tr *track) bool {
	if t.cfg.ConfirmMedian <= 0 {
		return true
	}
	n := min(tr.hits, ScoreHistory)
	s := make([]float32, max(n, 3)) // padded with zeros to three, as Frigate does
	copy(s, tr.history[:n])
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + m) / 2
	}
	return m >= t.cfg.ConfirmMedian
}

func (tr *track) export() frame.Track {
	return frame.Track{
		ID: tr.id, Label: tr.label, ClassID: tr.classID, State: tr.state,
		Box: tr.kf.box(), Score: tr.score, TopScore: tr.topScore, Matched: tr.matched, Hits: tr.hits,
		FirstSeen: tr.firstSeen, LastSeen: tr.lastSeen,
		VX: float32(tr.kf.cx.v), VY: float32(tr.kf.cy.v),
	}
}
