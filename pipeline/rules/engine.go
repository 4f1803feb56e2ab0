package rules

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// Engine evaluates one camera's rules on its stream of tracks.
//
// Call contract: Update is called from one goroutine at a time, once per detected frame, in
// capture order, with the tracker's output for one camera; Counts may be called between
// Updates from the same goroutine (the Engine has no lock). Every crossing a line rule counts
// is also returned by Update as an Alert with RuleType "line" and Kind its direction: that is
// how the agent observes crossings (e.g. vigil_line_crossings_total{camera,rule,direction,label});
// Counts gives the running totals.
//
// Memory is bounded by the live tracks: a track's state is dropped when it is removed, or
// when it no longer appears in Tracks at all (treated as removed).
type Engine struct {
	rules  []evaluator
	last   map[uint64]*lastSeen // every live track's last known position
	gen    uint64               // Update counter, marks the tracks seen in this frame
	counts map[countKey]int
	obs    []obs // reused between Updates
}

// LineCount is the number of crossings of one line rule in one direction by one label.
type LineCount struct {
	RuleID    string
	Direction string // a_to_b or b_to_a
	Label     string
	Count     int
}

type countKey struct {
	rule      int
	direction string
	label     string
}

type lastSeen struct {
	pos    Point   // normalised bottom centre
	px, py float64 // the same in source pixels
	gen    uint64
}

// obs is one track as the rules see it on one frame.
type obs struct {
	id      uint64
	label   string
	pos     Point   // normalised bottom centre
	px, py  float64 // source pixels
	moved   bool    // pos is this frame's (a matched or predicted confirmed track), not a lost track's last
	removed bool    // the track ends on this frame
}

// frameCtx carries one Update's input and output to the rules.
type frameCtx struct {
	camera string
	now    time.Time
	obs    []obs
	alerts []frame.Alert
	counts map[countKey]int
}

type evaluator interface {
	step(c *frameCtx)
	base() *ruleBase
}

// New compiles rules (with their defaults) into an Engine. It checks everything Validate
// checks except label names, and returns the same errors.
func New(rules []Rule) (*Engine, error) {
	if err := Validate(rules, nil); err != nil {
		return nil, err
	}
	e := &Engine{last: map[uint64]*lastSeen{}, counts: map[countKey]int{}}
	for i, r := range rules {
		ev, err := compile(i, r)
		if err != nil {
			return nil, &RuleError{Index: i, ID: r.ID, Problem: err.Error()}
		}
		e.rules = append(e.rules, ev)
	}
	return e, nil
}

func compile(i int, r Rule) (evaluator, error) {
	b := ruleBase{idx: i, r: r, labels: r.Labels, poly: r.Polygon}
	switch r.Type {
	case TypeZone:
		return &zoneRule{ruleBase: b, min: r.MinDwell, st: map[uint64]*dwell{}}, nil
	case TypeLoitering:
		return &zoneRule{ruleBase: b, loiter: true, min: r.MinDuration, st: map[uint64]*dwell{}}, nil
	case TypeLine:
		l := &lineRule{ruleBase: b, a: *r.A, b: *r.B, dir: cmp.Or(r.Direction, Both),
			hyst: r.Hysteresis, minFrames: cmp.Or(r.MinFrames, DefaultMinFrames), st: map[uint64]*lineState{}}
		if l.hyst == 0 {
			l.hyst = DefaultHysteresis
		}
		l.length = dist(l.a, l.b)
		return l, nil
	case TypeCrowding:
		return &crowdRule{ruleBase: b, n: r.MinCount, start: r.MinDuration, end: cmp.Or(r.EndAfter, r.MinDuration)}, nil
	case TypeWrongWay:
		rad := *r.DirectionDeg * math.Pi / 180
		return &wrongWayRule{ruleBase: b, hx: math.Cos(rad), hy: math.Sin(rad), tol: r.ToleranceDeg,
			minDist: r.MinDistance, st: map[uint64]*wrongWayState{}}, nil
	case TypeSpeed:
		s := &speedRule{ruleBase: b, max: r.MaxSpeed, window: cmp.Or(r.Window, DefaultSpeedWindow), unit: "px/s",
			st: map[uint64]*speedState{}}
		if len(r.GroundPoints) == 4 {
			var src, dst [4]Point
			for k, g := range r.GroundPoints {
				src[k], dst[k] = g.Image, g.Ground
			}
			h, err := NewHomography(src, dst)
			if err != nil {
				return nil, err
			}
			s.h, s.unit = &h, "m/s"
		}
		return s, nil
	case TypeStopped:
		radius := r.Radius
		if radius == 0 {
			radius = DefaultStillRadius
		}
		return &stoppedRule{ruleBase: b, min: r.MinDuration, radius: radius, st: map[uint64]*stillState{}}, nil
	}
	return nil, errors.New("unknown type") // Validate rejects it first
}

// Update evaluates every rule on one frame's tracks and returns the alerts they raise, in a
// deterministic order: rules in configuration order, then tracks by id. Tentative tracks are
// ignored; lost tracks stay where they were last seen; removed tracks (and tracks that no
// longer appear) leave every zone and their state is dropped.
func (e *Engine) Update(t frame.Tracks) []frame.Alert {
	e.gen++
	sized := t.Width > 0 && t.Height > 0
	e.obs = e.obs[:0]
	for _, tr := range t.Tracks {
		if tr.State == frame.Tentative {
			continue
		}
		l := e.last[tr.ID]
		if l != nil && l.gen == e.gen {
			continue // the same id twice in one frame: keep the first
		}
		x, y := tr.BottomCenter()
		fx, fy := float64(x), float64(y)
		fresh := sized && !math.IsNaN(fx) && !math.IsInf(fx, 0) && !math.IsNaN(fy) && !math.IsInf(fy, 0)
		if l == nil || (fresh && tr.State == frame.Confirmed) {
			if !fresh {
				continue // nowhere to put it yet
			}
			if l == nil {
				l = &lastSeen{}
				e.last[tr.ID] = l
			}
			l.pos, l.px, l.py = Point{fx / float64(t.Width), fy / float64(t.Height)}, fx, fy
		}
		l.gen = e.gen
		o := obs{id: tr.ID, label: tr.Label, pos: l.pos, px: l.px, py: l.py,
			moved: fresh && tr.State == frame.Confirmed, removed: tr.State == frame.Removed}
		if o.removed {
			o.moved = false
		}
		e.obs = append(e.obs, o)
	}
	for id, l := range e.last {
		if l.gen != e.gen { // vanished without being removed: treat it as removed now
			e.obs = append(e.obs, obs{id: id, pos: l.pos, px: l.px, py: l.py, removed: true})
		}
	}
	for _, o := range e.obs {
		if o.removed {
			delete(e.last, o.id)
		}
	}
	slices.SortFunc(e.obs, func(a, b obs) int { return cmp.Compare(a.id, b.id) })

	c := frameCtx{camera: t.Camera, now: t.CapturedAt, obs: e.obs, counts: e.counts}
	for _, r := range e.rules {
		r.step(&c)
	}
	return c.alerts
}

// Counts returns the line crossings counted so far, by rule (in configuration order),
// direction and label.
func (e *Engine) Counts() []LineCount {
	keys := make([]countKey, 0, len(e.counts))
	for k := range e.counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b countKey) int {
		return cmp.Or(cmp.Compare(a.rule, b.rule), cmp.Compare(a.direction, b.direction), cmp.Compare(a.label, b.label))
	})
	out := make([]LineCount, 0, len(keys))
	for _, k := range keys {
		out = append(out, LineCount{RuleID: e.rules[k.rule].base().r.ID, Direction: k.direction, Label: k.label, Count: e.counts[k]})
	}
	return out
}

// ruleBase is what every rule shares: its configuration, label filter and area.
type ruleBase struct {
	idx    int
	r      Rule
	labels []string
	poly   []Point // empty: the whole frame
}

func (b *ruleBase) base() *ruleBase { return b }

func (b *ruleBase) matches(label string) bool {
	return len(b.labels) == 0 || hasLabel(b.labels, label)
}

func (b *ruleBase) inside(p Point) bool {
	return len(b.poly) == 0 || contains(b.poly, p)
}

func (b *ruleBase) alert(c *frameCtx, kind string, o obs, value float64, unit string) {
	c.alerts = append(c.alerts, frame.Alert{Camera: c.camera, RuleID: b.r.ID, RuleType: b.r.Type, Kind: kind,
		TrackIDs: []uint64{o.id}, Label: o.label, At: c.now, Value: value, Unit: unit})
}

func seconds(d time.Duration) float64 { return d.Seconds() }

// zoneRule is a zone (entered/left) or a loitering rule (one alert per visit).
type zoneRule struct {
	ruleBase
	loiter bool
	min    time.Duration
	st     map[uint64]*dwell
}

type dwell struct {
	since time.Time
	label string
	fired bool
}

func (z *zoneRule) step(c *frameCtx) {
	for _, o := range c.obs {
		s := z.st[o.id]
		if s == nil && (o.removed || !z.matches(o.label)) {
			continue // a visit starts only for a matching label, and lasts until the track leaves or ends
		}
		if o.removed || !contains(z.poly, o.pos) {
			if s == nil {
				continue
			}
			if s.fired && !z.loiter {
				o.label = s.label
				z.alert(c, "left", o, seconds(c.now.Sub(s.since)), "s")
			}
			delete(z.st, o.id)
			continue
		}
		if s == nil {
			s = &dwell{since: c.now, label: o.label}
			z.st[o.id] = s
		}
		if !s.fired && c.now.Sub(s.since) >= z.min {
			s.fired = true
			kind := "entered"
			if z.loiter {
				kind = ""
			}
			z.alert(c, kind, o, seconds(c.now.Sub(s.since)), "s")
		}
	}
}

// lineRule counts crossings of the segment a-b.
type lineRule struct {
	ruleBase
	a, b      Point
	length    float64
	dir       string
	hyst      float64
	minFrames int
	st        map[uint64]*lineState
}

type lineState struct {
	side  int   // -1 left of a→b, +1 right, 0 not yet known
	last  Point // last position seen on side
	pend  int   // consecutive frames seen on the other side
	first Point // first of those positions
}

func (l *lineRule) step(c *frameCtx) {
	for _, o := range c.obs {
		if o.removed {
			delete(l.st, o.id)
			continue
		}
		if !o.moved || !l.matches(o.label) {
			continue
		}
		d := cross(l.a, l.b, o.pos) / l.length
		side := 0
		if d > l.hyst {
			side = 1
		} else if d < -l.hyst {
			side = -1
		}
		s := l.st[o.id]
		if s == nil {
			s = &lineState{}
			l.st[o.id] = s
		}
		switch {
		case side == 0:
			s.pend = 0
		case s.side == 0 || side == s.side:
			s.side, s.last, s.pend = side, o.pos, 0
		default:
			if s.pend == 0 {
				s.first = o.pos
			}
			s.pend++
			if s.pend < l.minFrames {
				continue
			}
			from, to := s.last, s.first
			s.side, s.last, s.pend = side, o.pos, 0
			if !l.throughSegment(from, to) {
				continue
			}
			dir := AToB
			if side < 0 {
				dir = BToA
			}
			if l.dir != Both && l.dir != dir {
				continue
			}
			c.counts[countKey{rule: l.idx, direction: dir, label: o.label}]++
			l.alert(c, dir, o, 0, "")
		}
	}
}

// throughSegment reports whether the path from→to, whose ends lie on opposite sides of the
// line through a and b, crosses it between a and b.
func (l *lineRule) throughSegment(from, to Point) bool {
	df, dt := cross(l.a, l.b, from), cross(l.a, l.b, to)
	if df == dt {
		return false
	}
	k := df / (df - dt)
	x := Point{from.X + k*(to.X-from.X), from.Y + k*(to.Y-from.Y)}
	bx, by := l.b.X-l.a.X, l.b.Y-l.a.Y
	u := ((x.X-l.a.X)*bx + (x.Y-l.a.Y)*by) / (bx*bx + by*by)
	return u >= 0 && u <= 1
}

// crowdRule watches how many matching objects are inside its polygon.
type crowdRule struct {
	ruleBase
	n          int
	start, end time.Duration
	active     bool      // a crowd has started and not ended
	pending    bool      // the count has been on the other side of n since `since`
	since      time.Time // when pending began
	ids        []uint64
}

func (r *crowdRule) step(c *frameCtx) {
	r.ids = r.ids[:0]
	label := ""
	for _, o := range c.obs {
		if !o.removed && r.matches(o.label) && contains(r.poly, o.pos) {
			if len(r.ids) == 0 {
				label = o.label
			}
			r.ids = append(r.ids, o.id)
		}
	}
	if (len(r.ids) >= r.n) == r.active {
		r.pending = false
		return
	}
	if !r.pending {
		r.pending, r.since = true, c.now
	}
	hold, kind := r.start, "started"
	if r.active {
		hold, kind = r.end, "ended"
	}
	if c.now.Sub(r.since) < hold {
		return
	}
	r.active, r.pending = !r.active, false
	c.alerts = append(c.alerts, frame.Alert{Camera: c.camera, RuleID: r.r.ID, RuleType: r.r.Type, Kind: kind,
		TrackIDs: slices.Clone(r.ids), Label: label, At: c.now, Value: float64(len(r.ids)), Unit: "objects"})
}

// wrongWayRule alerts on tracks moving against the allowed direction (hx, hy).
type wrongWayRule struct {
	ruleBase
	hx, hy  float64
	tol     float64
	minDist float64
	st      map[uint64]*wrongWayState
}

type wrongWayState struct {
	anchor   Point
	ax, ay   float64 // anchor in pixels
	anchored bool
	fired    bool
}

func (w *wrongWayRule) step(c *frameCtx) {
	for _, o := range c.obs {
		if o.removed {
			delete(w.st, o.id)
			continue
		}
		if !o.moved || !w.matches(o.label) {
			continue
		}
		s := w.st[o.id]
		if !w.inside(o.pos) {
			if s != nil {
				s.anchored = false
			}
			continue
		}
		if s == nil {
			s = &wrongWayState{}
			w.st[o.id] = s
		}
		if s.fired {
			continue
		}
		if !s.anchored {
			s.anchor, s.ax, s.ay, s.anchored = o.pos, o.px, o.py, true
			continue
		}
		if dist(s.anchor, o.pos) < w.minDist {
			continue
		}
		off := angleDeg(o.px-s.ax, o.py-s.ay, w.hx, w.hy)
		s.anchor, s.ax, s.ay = o.pos, o.px, o.py
		if off > 180-w.tol {
			s.fired = true
			w.alert(c, "", o, off, "deg")
		}
	}
}

// maxSpeedSamples bounds a track's speed history (a 10 s window at 100 fps).
const maxSpeedSamples = 1024

// speedRule alerts on tracks faster than max.
type speedRule struct {
	ruleBase
	max    float64
	window time.Duration
	h      *Homography // image (normalised) → ground (m); nil: pixels
	unit   string
	st     map[uint64]*speedState
}

type sample struct {
	at time.Time
	p  Point
}

type speedState struct {
	samples []sample
	episode bool
}

func (r *speedRule) step(c *frameCtx) {
	for _, o := range c.obs {
		if o.removed {
			delete(r.st, o.id)
			continue
		}
		if !o.moved || !r.matches(o.label) {
			continue
		}
		if !r.inside(o.pos) {
			delete(r.st, o.id) // leaving the area ends the episode
			continue
		}
		p, ok := Point{o.px, o.py}, true
		if r.h != nil {
			p, ok = r.h.Map(o.pos)
		}
		if !ok {
			continue
		}
		s := r.st[o.id]
		if s == nil {
			s = &speedState{}
			r.st[o.id] = s
		}
		if len(s.samples) == maxSpeedSamples {
			s.samples = slices.Delete(s.samples, 0, 1)
		}
		s.samples = append(s.samples, sample{at: c.now, p: p})
		k := -1 // the newest sample at least window old
		for i, sm := range s.samples {
			if c.now.Sub(sm.at) < r.window {
				break
			}
			k = i
		}
		if k < 0 {
			continue
		}
		s.samples = slices.Delete(s.samples, 0, k)
		dt := seconds(c.now.Sub(s.samples[0].at))
		if dt <= 0 {
			continue
		}
		v := dist(s.samples[0].p, p) / dt
		switch {
		case v > r.max && !s.episode:
			s.episode = true
			r.alert(c, "", o, v, r.unit)
		case v <= speedEpisodeEndFrac*r.max:
			s.episode = false
		}
	}
}

// stoppedRule alerts on tracks standing still.
type stoppedRule struct {
	ruleBase
	min    time.Duration
	radius float64
	st     map[uint64]*stillState
}

type stillState struct {
	anchor Point
	since  time.Time
	fired  bool
}

func (r *stoppedRule) step(c *frameCtx) {
	for _, o := range c.obs {
		if o.removed {
			delete(r.st, o.id)
			continue
		}
		if !r.matches(o.label) {
			continue
		}
		if !r.inside(o.pos) {
			delete(r.st, o.id)
			continue
		}
		s := r.st[o.id]
		switch {
		case s == nil:
			r.st[o.id] = &stillState{anchor: o.pos, since: c.now}
		case dist(s.anchor, o.pos) > r.radius:
			*s = stillState{anchor: o.pos, since: c.now}
		case !s.fired && c.now.Sub(s.since) >= r.min:
			s.fired = true
			r.alert(c, "", o, seconds(c.now.Sub(s.since)), "s")
		}
	}
}

// Zones returns the ids of the zone rules (type zone) whose polygon holds the track, as of the
// last Update, in rule order; nil when none.
func (e *Engine) Zones(trackID uint64) []string {
	var out []string
	for _, r := range e.rules {
		if z, ok := r.(*zoneRule); ok && !z.loiter {
			if _, in := z.st[trackID]; in {
				out = append(out, z.r.ID)
			}
		}
	}
	return out
}
