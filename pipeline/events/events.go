// Package events turns one camera's tracks into events: the life of each tracked object, told
// Frigate-style as "new" (its track was confirmed), "update" (something about it changed
// enough to say, or UpdateEvery passed) and "end" (its track was removed), each carrying the
// state last sent ("before") and the state now ("after").
//
// For each detected frame the caller
//
//  1. calls Update with the tracker's output and the zones each track is in;
//  2. saves a snapshot for every entry of BestFrames (the current frame is the best one yet of
//     that event), before publishing, since the changes may already say has_snapshot;
//  3. encodes each Change with Change.Event and each of the rules' alerts with
//     Manager.Alert (which finds the alert's events by track id), and publishes them.
//
// Every event gets a ULID, stable for its life; the ids one Manager makes carry the events'
// start times and increase in the order the events start. A Manager is
// deterministic: the same tracks, Config.Now and Config.Rand give the same changes and ids.
// Its memory is bounded by the live tracks: an ended event is forgotten after the next Update.
package events

import (
	"cmp"
	"crypto/rand"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Config tunes a Manager. Zero fields take the defaults of Default.
type Config struct {
	// UpdateEvery is the longest time (capture time) between two messages about a live event:
	// an event with nothing new is refreshed this often. Default 5 s.
	UpdateEvery time.Duration
	// MinMove: an update is sent when the box's centre has moved by more than this fraction of
	// the longer side of the box last sent. Default 0.5.
	MinMove float64
	// MinScoreGain: an update is sent when the top score has risen by more than this since the
	// last message. Default 0.1.
	MinScoreGain float32
	// StationaryAfter is how long an object's bottom centre must stay within StationaryRadius
	// (normalised by the frame's width and height) to be stationary. Defaults 10 s and 0.02.
	StationaryAfter  time.Duration
	StationaryRadius float64
	// SnapshotMinSide is the least width and height in pixels of a box worth a snapshot;
	// SnapshotEdge how far in pixels a box must stay from the frame's border not to count as
	// cut off; SnapshotGain by how much a new frame's score must beat the best one to replace
	// it; SnapshotEvery how often at most an event's best frame is replaced after its first
	// (each replacement is a JPEG encoded, stored and sent to the fleet). Defaults 16, 2, 0.05
	// and 2 s.
	SnapshotMinSide int
	SnapshotEdge    int
	SnapshotGain    float32
	SnapshotEvery   time.Duration
	// SpeedOf gives a track's speed and its unit (wire.UnitPxPerS or wire.UnitMPerS). Default:
	// the length of the track's velocity (VX, VY) in px/s. Plug in a ground-plane calibration
	// here to report m/s.
	SpeedOf func(frame.Track) (float64, string)
	// Now is the clock used for frames without a capture time. Default time.Now.
	Now func() time.Time
	// Rand is the source of the ids' random bits. Default crypto/rand.
	Rand interface{ Read([]byte) (int, error) }
}

// Default is the default configuration.
func Default() Config {
	return Config{
		UpdateEvery:      5 * time.Second,
		MinMove:          0.5,
		MinScoreGain:     0.1,
		StationaryAfter:  10 * time.Second,
		StationaryRadius: 0.02,
		SnapshotMinSide:  16,
		SnapshotEdge:     2,
		SnapshotGain:     0.05,
		SnapshotEvery:    2 * time.Second,
		SpeedOf:          pxSpeed,
		Now:              time.Now,
		Rand:             rand.Reader,
	}
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	d := Default()
	c.UpdateEvery = cmp.Or(c.UpdateEvery, d.UpdateEvery)
	c.MinMove = cmp.Or(c.MinMove, d.MinMove)
	c.MinScoreGain = cmp.Or(c.MinScoreGain, d.MinScoreGain)
	c.StationaryAfter = cmp.Or(c.StationaryAfter, d.StationaryAfter)
	c.StationaryRadius = cmp.Or(c.StationaryRadius, d.StationaryRadius)
	c.SnapshotMinSide = cmp.Or(c.SnapshotMinSide, d.SnapshotMinSide)
	c.SnapshotEdge = cmp.Or(c.SnapshotEdge, d.SnapshotEdge)
	c.SnapshotGain = cmp.Or(c.SnapshotGain, d.SnapshotGain)
	c.SnapshotEvery = cmp.Or(c.SnapshotEvery, d.SnapshotEvery)
	if c.SpeedOf == nil {
		c.SpeedOf = d.SpeedOf
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.Rand == nil {
		c.Rand = d.Rand
	}
	return c
}

// Validate checks c (after WithDefaults) and names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.UpdateEvery <= 0:
		return fmt.Errorf("events config: 'UpdateEvery' must be > 0, got %v", c.UpdateEvery)
	case !(c.MinMove > 0):
		return fmt.Errorf("events config: 'MinMove' must be > 0, got %g", c.MinMove)
	case !(c.MinScoreGain > 0 && c.MinScoreGain <= 1):
		return fmt.Errorf("events config: 'MinScoreGain' must be in (0, 1], got %g", c.MinScoreGain)
	case c.StationaryAfter <= 0:
		return fmt.Errorf("events config: 'StationaryAfter' must be > 0, got %v", c.StationaryAfter)
	case !(c.StationaryRadius > 0 && c.StationaryRadius <= 1):
		return fmt.Errorf("events config: 'StationaryRadius' must be in (0, 1], got %g", c.StationaryRadius)
	case c.SnapshotMinSide < 1:
		return fmt.Errorf("events config: 'SnapshotMinSide' must be >= 1, got %d", c.SnapshotMinSide)
	case c.SnapshotEdge < 0:
		return fmt.Errorf("events config: 'SnapshotEdge' must be >= 0, got %d", c.SnapshotEdge)
	case !(c.SnapshotGain > 0 && c.SnapshotGain <= 1):
		return fmt.Errorf("events config: 'SnapshotGain' must be in (0, 1], got %g", c.SnapshotGain)
	}
	return nil
}

func pxSpeed(t frame.Track) (float64, string) {
	return math.Hypot(float64(t.VX), float64(t.VY)), wire.UnitPxPerS
}

// State is an event as it stands after one frame.
type State = frame.EventState

// Change is one message's worth of an event's life; pipeline/wire encodes it (wire.NewEvent).
type Change = frame.EventChange

// BestFrame says that the current frame is the best one yet of an event: save a snapshot of
// it. Box is the object's box on this frame.
type BestFrame struct {
	EventID string
	TrackID uint64
	Box     models.Box
}

// Manager follows the events of one camera.
//
// Call contract: Update is called once per detected frame, in capture order, from one
// goroutine at a time; BestFrames, EventID, Alert, NoSnapshot and EndAll are called between
// Updates from the same goroutine. A Manager is not safe for concurrent use and holds no
// resources.
type Manager struct {
	cfg    Config
	ids    ulids
	live   map[uint64]*event // by track id
	ended  map[uint64]ended  // events ended by the last Update, for alerts on that frame
	best   []BestFrame
	gen    uint64
	camera string
}

type ended struct {
	id          string
	hasSnapshot bool
}

type event struct {
	st     State // now
	sent   State // as last sent
	sentAt time.Time
	gen    uint64

	anchorX, anchorY float64 // where the object stands still (normalised), since anchorAt
	anchorAt         time.Time
	anchored         bool

	bestScore float32
	bestClean bool      // the best frame's box is clear of the frame's border
	bestAt    time.Time // when the best frame was taken
}

// New returns a Manager for cfg with its zero fields defaulted. It panics when the result is
// invalid: check configuration from outside with cfg.WithDefaults().Validate() first.
func New(cfg Config) *Manager {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return &Manager{cfg: cfg, ids: ulids{rand: cfg.Rand}, live: map[uint64]*event{}, ended: map[uint64]ended{}}
}

// Len is the number of live events.
func (m *Manager) Len() int { return len(m.live) }

// Update feeds the tracks of the next detected frame; zonesOf, which may be nil, gives the ids
// of the zones a track is in on this frame. It returns the changes to publish, ordered by
// track id (events whose tracks vanished from t without being removed end last).
//
// A track's event starts ("new") on the first frame the track is confirmed; a lost track
// keeps its event; a removed track, or one no longer in t at all, ends it. An update is sent
// when the zones, entered zones, stationary flag or snapshot flag change, when the box moved
// more than MinMove or the top score rose more than MinScoreGain since the last message, and
// otherwise every UpdateEvery.
func (m *Manager) Update(t frame.Tracks, zonesOf func(trackID uint64) []string) []Change {
	clock := t.CapturedAt
	if clock.IsZero() {
		clock = m.cfg.Now()
	}
	m.gen++
	m.best = m.best[:0]
	clear(m.ended)
	if t.Camera != "" {
		m.camera = t.Camera
	}
	var out []Change
	for _, tr := range t.Tracks {
		ev := m.live[tr.ID]
		isNew := false
		if ev == nil {
			if tr.State != frame.Confirmed {
				continue // never confirmed while we watched: no event
			}
			start := tr.FirstSeen
			if start.IsZero() {
				start = clock
			}
			ev = &event{st: State{ID: m.ids.next(start), TrackID: tr.ID, Start: start}}
			m.live[tr.ID] = ev
			isNew = true
		} else if ev.gen == m.gen {
			continue // the same id twice in one frame: keep the first
		}
		ev.gen = m.gen
		if tr.State == frame.Removed {
			out = append(out, m.end(ev, clock))
			continue
		}
		m.observe(ev, tr, t, clock, zonesOf)
		switch {
		case isNew:
			out = append(out, m.send(ev, wire.EventNew, clock))
		case m.significant(ev, clock):
			out = append(out, m.send(ev, wire.EventUpdate, clock))
		}
	}
	var gone []*event
	for _, ev := range m.live {
		if ev.gen != m.gen {
			gone = append(gone, ev)
		}
	}
	slices.SortFunc(gone, func(a, b *event) int { return cmp.Compare(a.st.TrackID, b.st.TrackID) })
	for _, ev := range gone {
		out = append(out, m.end(ev, clock))
	}
	return out
}

// observe brings ev's state up to date with tr.
func (m *Manager) observe(ev *event, tr frame.Track, t frame.Tracks, clock time.Time, zonesOf func(uint64) []string) {
	s := &ev.st
	s.Label = tr.Label
	s.TopScore = max(s.TopScore, tr.TopScore, tr.Score)
	s.Score = 0
	if !tr.LastSeen.IsZero() {
		s.LastSeen = tr.LastSeen
	}
	if t.Width > 0 && t.Height > 0 {
		s.FrameWidth, s.FrameHeight = t.Width, t.Height
	}
	if zonesOf != nil {
		if z := zonesOf(tr.ID); !slices.Equal(z, s.Zones) {
			s.Zones = slices.Clone(z) // never changed in place: changes may share it
		}
		for _, z := range s.Zones {
			if !slices.Contains(s.EnteredZones, z) {
				s.EnteredZones = append(slices.Clip(s.EnteredZones), z)
			}
		}
	}
	if !tr.Matched || !finiteBox(tr.Box) {
		return // a lost or unmatched track's box is a prediction: keep what was seen
	}
	if s.LastSeen.IsZero() {
		s.LastSeen = clock
	}
	s.Score = tr.Score
	s.Box = tr.Box
	if v, unit := m.cfg.SpeedOf(tr); !math.IsNaN(v) && !math.IsInf(v, 0) {
		s.Speed, s.SpeedUnit = max(v, 0), unit
	}
	if s.SpeedUnit == "" {
		s.SpeedUnit = wire.UnitPxPerS
	}

	// Stationary: the bottom centre has stayed within the radius of an anchor long enough.
	if s.FrameWidth > 0 && s.FrameHeight > 0 {
		bx, by := tr.BottomCenter()
		x, y := float64(bx)/float64(s.FrameWidth), float64(by)/float64(s.FrameHeight)
		if !ev.anchored || math.Hypot(x-ev.anchorX, y-ev.anchorY) > m.cfg.StationaryRadius {
			ev.anchorX, ev.anchorY, ev.anchorAt, ev.anchored = x, y, clock, true
		}
		s.Stationary = clock.Sub(ev.anchorAt) >= m.cfg.StationaryAfter
	}

	// Best frame: big enough, preferably clear of the border, then the highest score.
	if tr.State != frame.Confirmed {
		return
	}
	side := float32(m.cfg.SnapshotMinSide)
	if tr.Box.X2-tr.Box.X1 < side || tr.Box.Y2-tr.Box.Y1 < side {
		return
	}
	clean := true
	if s.FrameWidth > 0 && s.FrameHeight > 0 {
		e := float32(m.cfg.SnapshotEdge)
		clean = tr.Box.X1 >= e && tr.Box.Y1 >= e &&
			tr.Box.X2 <= float32(s.FrameWidth)-e && tr.Box.Y2 <= float32(s.FrameHeight)-e
	}
	better := !s.HasSnapshot || clock.Sub(ev.bestAt) >= m.cfg.SnapshotEvery && (clean && !ev.bestClean ||
		clean == ev.bestClean && tr.Score > ev.bestScore+m.cfg.SnapshotGain)
	if better {
		s.HasSnapshot, ev.bestClean, ev.bestScore, ev.bestAt = true, clean, tr.Score, clock
		m.best = append(m.best, BestFrame{EventID: s.ID, TrackID: tr.ID, Box: tr.Box})
	}
}

// significant reports whether ev has changed enough since its last message to send an update.
func (m *Manager) significant(ev *event, clock time.Time) bool {
	s, p := &ev.st, &ev.sent
	if s.Label != p.Label || s.Stationary != p.Stationary || s.HasSnapshot != p.HasSnapshot ||
		!slices.Equal(s.Zones, p.Zones) || len(s.EnteredZones) != len(p.EnteredZones) {
		return true
	}
	if s.TopScore-p.TopScore > m.cfg.MinScoreGain {
		return true
	}
	if s.Box != p.Box {
		dx := float64(s.Box.X1+s.Box.X2-p.Box.X1-p.Box.X2) / 2
		dy := float64(s.Box.Y1+s.Box.Y2-p.Box.Y1-p.Box.Y2) / 2
		size := float64(max(p.Box.X2-p.Box.X1, p.Box.Y2-p.Box.Y1, 1))
		if math.Hypot(dx, dy) > m.cfg.MinMove*size {
			return true
		}
	}
	return clock.Sub(ev.sentAt) >= m.cfg.UpdateEvery
}

// send records ev's state as sent and returns the change.
func (m *Manager) send(ev *event, typ string, clock time.Time) Change {
	c := Change{Camera: m.camera, Type: typ, At: clock, After: clone(ev.st)}
	if typ != wire.EventNew {
		before := ev.sent
		c.Before = &before
	}
	ev.sent, ev.sentAt = c.After, clock
	return c
}

// end closes ev and forgets it (its id stays known to EventID until the next Update).
func (m *Manager) end(ev *event, clock time.Time) Change {
	ev.st.Score = 0
	ev.st.End = ev.st.LastSeen
	if ev.st.End.IsZero() {
		ev.st.End = clock
	}
	c := m.send(ev, wire.EventEnd, clock)
	delete(m.live, ev.st.TrackID)
	m.ended[ev.st.TrackID] = ended{id: ev.st.ID, hasSnapshot: ev.st.HasSnapshot}
	return c
}

// EndAll ends every live event at time at (a camera stops), in track id order.
func (m *Manager) EndAll(at time.Time) []Change {
	evs := make([]*event, 0, len(m.live))
	for _, ev := range m.live {
		evs = append(evs, ev)
	}
	slices.SortFunc(evs, func(a, b *event) int { return cmp.Compare(a.st.TrackID, b.st.TrackID) })
	out := make([]Change, 0, len(evs))
	for _, ev := range evs {
		out = append(out, m.end(ev, at))
	}
	return out
}

// BestFrames lists the events whose best frame so far is the one last given to Update, in
// track id order. The slice is valid until the next Update.
func (m *Manager) BestFrames() []BestFrame { return m.best }

// NoSnapshot tells the Manager that the snapshot of an event's best frame could not be saved:
// the event says has_snapshot false again, and the next good frame is reported in BestFrames.
func (m *Manager) NoSnapshot(eventID string) {
	for _, ev := range m.live {
		if ev.st.ID == eventID {
			ev.st.HasSnapshot, ev.bestClean, ev.bestScore = false, false, 0
			return
		}
	}
	for tid, e := range m.ended {
		if e.id == eventID {
			e.hasSnapshot = false
			m.ended[tid] = e
		}
	}
}

// EventID returns the id of the event of a track that is live, or that ended on the frame last
// given to Update.
func (m *Manager) EventID(trackID uint64) (string, bool) {
	if ev := m.live[trackID]; ev != nil {
		return ev.st.ID, true
	}
	if e, ok := m.ended[trackID]; ok {
		return e.id, true
	}
	return "", false
}

func (m *Manager) hasSnapshot(trackID uint64) bool {
	if ev := m.live[trackID]; ev != nil {
		return ev.st.HasSnapshot
	}
	return m.ended[trackID].hasSnapshot
}

// Identify gives a rule's alert its id (a new ULID) and the ids of its tracks' events (see
// EventID), and names the first of those events that has a snapshot; it fills in the camera and
// the time when they are empty. pipeline/wire encodes the result (wire.NewAlert).
func (m *Manager) Identify(a frame.Alert) frame.Alert {
	if a.At.IsZero() {
		a.At = m.cfg.Now()
	}
	if a.Camera == "" {
		a.Camera = m.camera
	}
	a.ID = m.ids.next(a.At)
	a.TrackIDs = slices.Clone(a.TrackIDs)
	a.EventIDs, a.SnapshotOf = []string{}, ""
	for _, tid := range a.TrackIDs {
		if id, ok := m.EventID(tid); ok {
			a.EventIDs = append(a.EventIDs, id)
			if a.SnapshotOf == "" && m.hasSnapshot(tid) {
				a.SnapshotOf = id
			}
		}
	}
	return a
}

// clone copies s so that it shares no slices with the Manager.
func clone(s State) State {
	s.Zones = slices.Clone(s.Zones)
	s.EnteredZones = slices.Clone(s.EnteredZones)
	return s
}

func finiteBox(b models.Box) bool {
	for _, v := range [4]float32{b.X1, b.Y1, b.X2, b.Y2} {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}
