package events

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/track"
	"github.com/vigil-edge/vigil/pipeline/wire"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

var t0 = time.Date(2025, 11, 22, 17, 0, 0, 0, time.UTC)

// seeded returns a config with a deterministic id source.
func seeded(seed uint64) Config {
	var key [32]byte
	key[0] = byte(seed)
	return Config{Rand: rand.NewChaCha8(key), Now: func() time.Time { return t0 }}
}

// TestSnapshotEvery: after an event's first snapshot, a better frame replaces it at most
// every SnapshotEvery (default 2 s).
func TestSnapshotEvery(t *testing.T) {
	m := New(seeded(5))
	for i, c := range []struct {
		at    time.Duration
		score float32
		best  bool
	}{
		{0, 0.5, true},                       // the first
		{500 * time.Millisecond, 0.9, false}, // much better, but 0.5 s later
		{1900 * time.Millisecond, 0.95, false},
		{2 * time.Second, 0.96, true}, // 2 s after the first
		{2500 * time.Millisecond, 0.99, false},
	} {
		tr := person(1, 100, 100, c.score, c.at)
		tr.LastSeen = t0.Add(c.at)
		m.Update(tracks(c.at, tr), nil)
		if got := len(m.BestFrames()) == 1; got != c.best {
			t.Fatalf("step %d (%v, score %v): best frame %v, want %v", i, c.at, c.score, got, c.best)
		}
	}
}

// tracks builds one frame's tracker output at t0+at on a 1280x720 frame.
func tracks(at time.Duration, ts ...frame.Track) frame.Tracks {
	return frame.Tracks{Camera: "gate", CapturedAt: t0.Add(at), Width: 1280, Height: 720, Tracks: ts}
}

// person is a confirmed, matched track with box (x, y) 40x100.
func person(id uint64, x, y float32, score float32, at time.Duration) frame.Track {
	return frame.Track{ID: id, Label: "person", State: frame.Confirmed, Matched: true, Score: score, TopScore: score,
		Box: models.Box{X1: x, Y1: y, X2: x + 40, Y2: y + 100}, FirstSeen: t0, LastSeen: t0.Add(at), Hits: 3}
}

func types(cs []Change) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Type)
	}
	return strings.Join(s, ",")
}

func TestLifecycle(t *testing.T) {
	m := New(seeded(1))
	sec := time.Second
	// Frame 0: confirmed -> new.
	cs := m.Update(tracks(0, person(1, 100, 100, 0.8, 0)), nil)
	if types(cs) != "new" || cs[0].Before != nil || cs[0].After.TrackID != 1 || cs[0].Camera != "gate" {
		t.Fatalf("first frame: %+v", cs)
	}
	id := cs[0].After.ID
	if !wire.ValidULID(id) {
		t.Fatalf("event id %q is not a ULID", id)
	}
	if got, ok := m.EventID(1); !ok || got != id {
		t.Fatalf("EventID(1) = %q, %v", got, ok)
	}
	// Small moves and steady scores for 4 s: nothing to say.
	for i := 1; i <= 40; i++ {
		at := time.Duration(i) * 100 * time.Millisecond
		tr := person(1, 100+float32(i)*0.2, 100, 0.8, at)
		if cs := m.Update(tracks(at, tr), nil); len(cs) != 0 {
			t.Fatalf("at %v: unexpected %s", at, types(cs))
		}
	}
	// UpdateEvery (5 s) after the last message: a periodic update.
	cs = m.Update(tracks(5*sec, person(1, 108, 100, 0.8, 5*sec)), nil)
	if types(cs) != "update" || cs[0].Before == nil || cs[0].After.ID != id || cs[0].Before.ID != id {
		t.Fatalf("periodic update: %+v", cs)
	}
	// Lost: no message, the event lives on; the box is the last seen one.
	lost := person(1, 300, 300, 0, 5*sec)
	lost.State, lost.Matched, lost.TopScore = frame.Lost, false, 0.8
	if cs := m.Update(tracks(5*sec+100*time.Millisecond, lost), nil); len(cs) != 0 {
		t.Fatalf("lost: %s", types(cs))
	}
	// Removed: end, with the last sighting as end time.
	rm := lost
	rm.State = frame.Removed
	cs = m.Update(tracks(7*sec, rm), nil)
	if types(cs) != "end" {
		t.Fatalf("removed: %s", types(cs))
	}
	end := cs[0].After
	if !end.End.Equal(t0.Add(5*sec)) || end.Box.X1 != 108 || end.Score != 0 || end.TopScore != 0.8 {
		t.Errorf("end state: %+v", end)
	}
	if m.Len() != 0 {
		t.Errorf("%d live events after the end", m.Len())
	}
	if got, ok := m.EventID(1); !ok || got != id {
		t.Errorf("EventID on the end frame = %q, %v: alerts of that frame need it", got, ok)
	}
	m.Update(tracks(8*sec), nil)
	if _, ok := m.EventID(1); ok {
		t.Errorf("ended event still known a frame later: memory must be bounded")
	}
}

func TestUpdatesOnSignificantChange(t *testing.T) {
	m := New(seeded(2))
	zones := map[uint64][]string{}
	zonesOf := func(id uint64) []string { return zones[id] }
	ms := 100 * time.Millisecond
	step := func(i int, tr frame.Track) []Change {
		return m.Update(tracks(time.Duration(i)*ms, tr), zonesOf)
	}
	if cs := step(0, person(1, 100, 100, 0.7, 0)); types(cs) != "new" {
		t.Fatal(types(cs))
	}
	// Moved by more than half the box's longer side (100 px): update.
	if cs := step(1, person(1, 100, 160, 0.7, ms)); types(cs) != "update" || cs[0].After.Box.Y1 != 160 || cs[0].Before.Box.Y1 != 100 {
		t.Fatalf("big move: %+v", cs)
	}
	// Score up by 0.05: not enough; by 0.15: update with the new top score.
	if cs := step(2, person(1, 100, 160, 0.75, 2*ms)); len(cs) != 0 {
		t.Fatalf("small score gain: %s", types(cs))
	}
	if cs := step(3, person(1, 100, 160, 0.85, 3*ms)); types(cs) != "update" || cs[0].After.TopScore != 0.85 {
		t.Fatalf("score gain: %+v", cs)
	}
	// Into a zone, then a second one, then out of the first.
	zones[1] = []string{"yard"}
	cs := step(4, person(1, 100, 160, 0.85, 4*ms))
	if types(cs) != "update" || !slices.Equal(cs[0].After.Zones, []string{"yard"}) || len(cs[0].Before.Zones) != 0 {
		t.Fatalf("entering a zone: %+v", cs)
	}
	zones[1] = []string{"yard", "door"}
	step(5, person(1, 100, 160, 0.85, 5*ms))
	zones[1] = []string{"door"}
	cs = step(6, person(1, 100, 160, 0.85, 6*ms))
	if types(cs) != "update" || !slices.Equal(cs[0].After.EnteredZones, []string{"yard", "door"}) ||
		!slices.Equal(cs[0].After.Zones, []string{"door"}) {
		t.Fatalf("zones: %+v", cs)
	}
	// The change's slices are its own: the Manager's later appends do not show through.
	kept := cs[0].After.EnteredZones
	zones[1] = []string{"gate"}
	step(7, person(1, 100, 160, 0.85, 7*ms))
	if len(kept) != 2 || !slices.Equal(cs[0].After.EnteredZones, []string{"yard", "door"}) {
		t.Errorf("a returned change was changed later: %v", cs[0].After.EnteredZones)
	}
}

func TestStationaryAndSpeed(t *testing.T) {
	m := New(seeded(3))
	var last []Change
	for i := 0; i <= 130; i++ {
		at := time.Duration(i) * 100 * time.Millisecond
		tr := person(1, 600+float32(i%3), 300, 0.9, at) // jitters by 2 px: standing still
		tr.VX, tr.VY = 3, 4
		if cs := m.Update(tracks(at, tr), nil); len(cs) > 0 {
			last = append(last, cs...)
		}
	}
	var becameAt time.Time
	for _, c := range last {
		if c.After.Stationary && (c.Before == nil || !c.Before.Stationary) {
			becameAt = c.At
		}
	}
	if want := t0.Add(10 * time.Second); !becameAt.Equal(want) {
		t.Errorf("became stationary at %v, want %v", becameAt, want)
	}
	if s := last[len(last)-1].After; s.Speed != 5 || s.SpeedUnit != wire.UnitPxPerS {
		t.Errorf("speed %v %s, want 5 px/s", s.Speed, s.SpeedUnit)
	}
	// Walking off: no longer stationary, at once.
	at := 13200 * time.Millisecond
	cs := m.Update(tracks(at, person(1, 700, 300, 0.9, at)), nil)
	if len(cs) != 1 || cs[0].After.Stationary {
		t.Errorf("walking off: %+v", cs)
	}
}

func TestBestFrames(t *testing.T) {
	cfg := seeded(4)
	cfg.SnapshotEvery = time.Nanosecond // every better frame replaces the best one here
	m := New(cfg)
	ms := 100 * time.Millisecond
	type step struct {
		tr   frame.Track
		best bool
	}
	edge := person(1, 0, 100, 0.9, 0) // touches the left border
	tiny := person(1, 100, 100, 0.99, 0)
	tiny.Box.X2, tiny.Box.Y2 = 110, 110
	for i, s := range []step{
		{edge, true},                         // nothing better yet, even cut off
		{person(1, 0, 100, 0.95, ms), false}, // still cut off, gain too small
		{person(1, 100, 100, 0.6, ms), true}, // clear of the border beats any cut-off frame
		{person(1, 100, 100, 0.62, ms), false},
		{tiny, false},                           // too small, whatever its score
		{person(1, 100, 100, 0.7, ms), true},    // beats 0.6 by more than 0.05
		{person(1, 1240, 100, 0.99, ms), false}, // cut off at the right border
	} {
		at := time.Duration(i) * ms
		s.tr.LastSeen = t0.Add(at)
		cs := m.Update(tracks(at, s.tr), nil)
		bf := m.BestFrames()
		if got := len(bf) == 1; got != s.best {
			t.Fatalf("step %d: best frame %v, want %v", i, got, s.best)
		}
		if s.best && (bf[0].Box != s.tr.Box || bf[0].TrackID != 1) {
			t.Fatalf("step %d: %+v", i, bf[0])
		}
		if i == 0 && (len(cs) != 1 || !cs[0].After.HasSnapshot) {
			t.Fatalf("the new event must say it has a snapshot: %+v", cs)
		}
	}
	// A failed save: the flag goes back (an update says so), and the next good frame is best again.
	id, _ := m.EventID(1)
	m.NoSnapshot(id)
	tiny.LastSeen = t0.Add(time.Second)
	cs := m.Update(tracks(time.Second, tiny), nil)
	if len(cs) != 1 || cs[0].After.HasSnapshot || !cs[0].Before.HasSnapshot || len(m.BestFrames()) != 0 {
		t.Fatalf("after NoSnapshot: %+v, best %v", cs, m.BestFrames())
	}
	cs = m.Update(tracks(1100*time.Millisecond, person(1, 100, 100, 0.5, 1100*time.Millisecond)), nil)
	if len(m.BestFrames()) != 1 || len(cs) != 1 || !cs[0].After.HasSnapshot {
		t.Fatalf("after NoSnapshot, a good frame: %+v, best %v", cs, m.BestFrames())
	}
}

func TestVanishedTracksEndAndEndAll(t *testing.T) {
	m := New(seeded(5))
	m.Update(tracks(0, person(3, 10, 10, 0.9, 0), person(1, 500, 10, 0.9, 0), person(2, 900, 10, 0.9, 0)), nil)
	// Track 1 is missing from the next frame: its event ends (last, after the others).
	cs := m.Update(tracks(time.Second, person(2, 900, 10, 0.9, time.Second), person(3, 10, 10, 0.9, time.Second)), nil)
	if types(cs) != "end" || cs[0].After.TrackID != 1 {
		t.Fatalf("vanished: %+v", cs)
	}
	cs = m.EndAll(t0.Add(2 * time.Second))
	if types(cs) != "end,end" || cs[0].After.TrackID != 2 || cs[1].After.TrackID != 3 || m.Len() != 0 {
		t.Fatalf("EndAll: %+v", cs)
	}
	// A lost track that was never confirmed while watched starts nothing.
	lost := person(9, 10, 10, 0, 0)
	lost.State = frame.Lost
	if cs := m.Update(tracks(3*time.Second, lost), nil); len(cs) != 0 || m.Len() != 0 {
		t.Fatalf("lost without an event: %+v", cs)
	}
}

func TestMessagesMatchSchemas(t *testing.T) {
	m := New(seeded(6))
	zonesOf := func(uint64) []string { return []string{"door"} }
	var all []Change
	all = append(all, m.Update(tracks(0, person(1, 100, 100, 0.9, 0)), zonesOf)...)
	rm := person(1, 100, 100, 0, 0)
	rm.State, rm.Matched = frame.Removed, false
	all = append(all, m.Update(tracks(time.Second, rm), zonesOf)...)
	if types(all) != "new,end" {
		t.Fatal(types(all))
	}
	for i, c := range all {
		h := wire.Header{DeviceID: "edge-01", Seq: uint64(i + 1), MsgID: "edge-01-x-1"}
		ev := wire.EncodeEvent(h, c)
		if ev.Schema != wire.SchemaEvent || ev.CapturedAt != c.At.UnixMilli() {
			t.Errorf("header not filled: %+v", ev.Header)
		}
		if ev.After.BoxNorm != [4]float64{0.0781, 0.1389, 0.1094, 0.2778} || ev.After.BoxPx != [4]int{100, 100, 140, 200} {
			t.Errorf("boxes: %v %v", ev.After.BoxPx, ev.After.BoxNorm)
		}
		if ev.After.Snapshot != wire.SnapshotPath(c.After.ID) {
			t.Errorf("snapshot path %q", ev.After.Snapshot)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		testharness.MustValidateJSON(t, "event", b)
	}
	// An alert raised on the frame where the track was removed still names its event.
	a := wire.EncodeAlert(wire.Header{DeviceID: "edge-01", Seq: 9, MsgID: "edge-01-x-9"}, m.Identify(frame.Alert{Camera: "gate",
		RuleID: "door", RuleType: "zone", Kind: "left", TrackIDs: []uint64{1, 42}, Label: "person",
		At: t0.Add(time.Second), Value: 1, Unit: "s"}))
	if !slices.Equal(a.EventIDs, []string{all[0].After.ID}) || a.Snapshot != wire.SnapshotPath(all[0].After.ID) ||
		!wire.ValidULID(a.AlertID) || a.AlertID == all[0].After.ID || a.Time != t0.Add(time.Second).UnixMilli() {
		t.Fatalf("alert: %+v", a)
	}
	b, _ := json.Marshal(a)
	testharness.MustValidateJSON(t, "alert", b)
}

// TestDeterministic runs the real tracker over two crossing people and checks that two
// Managers with the same seed say exactly the same, and that the ids are unique.
func TestDeterministic(t *testing.T) {
	var seq []frame.Tracks
	tr := track.New(track.Config{})
	for i := range 150 {
		at := time.Duration(i) * 100 * time.Millisecond
		d := frame.Detections{Camera: "gate", FrameSeq: uint64(i + 1), CapturedAt: t0.Add(at), Width: 1280, Height: 720}
		x := float32(i) * 6
		if i < 120 {
			d.Objects = append(d.Objects, models.Detection{Label: "person", Score: 0.8 + float32(i%5)/50,
				Box: models.Box{X1: 100 + x, Y1: 300, X2: 150 + x, Y2: 420}})
		}
		if i >= 20 {
			d.Objects = append(d.Objects, models.Detection{ClassID: 2, Label: "car", Score: 0.9,
				Box: models.Box{X1: 1100 - x, Y1: 500, X2: 1250 - x, Y2: 600}})
		}
		seq = append(seq, tr.Update(d))
	}
	run := func() ([]Change, [][]BestFrame) {
		m := New(seeded(7))
		var cs []Change
		var bf [][]BestFrame
		for _, ts := range seq {
			cs = append(cs, m.Update(ts, nil)...)
			bf = append(bf, slices.Clone(m.BestFrames()))
		}
		return append(cs, m.EndAll(t0.Add(time.Hour))...), bf
	}
	a, abf := run()
	b, bbf := run()
	if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(abf, bbf) {
		t.Fatal("two runs with the same seed differ")
	}
	ids := map[string]uint64{}
	news, ends := 0, 0
	for _, c := range a {
		if prev, ok := ids[c.After.ID]; ok && prev != c.After.TrackID {
			t.Fatalf("id %s used for tracks %d and %d", c.After.ID, prev, c.After.TrackID)
		}
		ids[c.After.ID] = c.After.TrackID
		switch c.Type {
		case wire.EventNew:
			news++
		case wire.EventEnd:
			ends++
			if c.After.End.IsZero() || c.After.End.Before(c.After.Start) {
				t.Errorf("end %v before start %v", c.After.End, c.After.Start)
			}
		}
	}
	if news != 2 || ends != 2 || len(ids) != 2 {
		t.Errorf("%d new, %d end, %d ids; want two events", news, ends, len(ids))
	}
	// The person walks 60 px/s.
	for _, c := range a {
		if c.After.Label == "person" && c.Type == wire.EventUpdate && (c.After.Speed < 50 || c.After.Speed > 70) {
			t.Errorf("person speed %.1f px/s, want about 60", c.After.Speed)
		}
	}
}

func TestULIDs(t *testing.T) {
	g := ulids{rand: rand.NewChaCha8([32]byte{1})}
	at := time.UnixMilli(1_763_832_000_123)
	prev := ""
	for i := range 1000 {
		id := g.next(at.Add(time.Duration(i/10) * time.Millisecond))
		if !wire.ValidULID(id) || id <= prev {
			t.Fatalf("id %d %q after %q: not a ULID or not increasing", i, id, prev)
		}
		prev = id
	}
	// The time prefix: 1763832000123 ms in Crockford base32.
	if id := (&ulids{rand: rand.NewChaCha8([32]byte{})}).next(at); id[:10] != "01KAP98VKV" {
		t.Errorf("time prefix %q", id[:10])
	}
	// Known encoding: all-ones randomness.
	if got := encodeULID(0, [10]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}); got != "0000000000ZZZZZZZZZZZZZZZZ" {
		t.Errorf("encode = %s", got)
	}
	// A clock stepping back keeps the ids increasing.
	id := g.next(at.Add(-time.Hour))
	if id <= prev {
		t.Errorf("clock step back gave %s after %s", id, prev)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{MinScoreGain: 2}.WithDefaults()
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "'MinScoreGain'") {
		t.Errorf("err = %v", err)
	}
}
