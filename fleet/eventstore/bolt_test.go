package eventstore_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/eventstore"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

var t0 = time.Date(2025, 11, 22, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func open(t *testing.T, path string, opts eventstore.Options) *eventstore.Bolt {
	t.Helper()
	if opts.SweepEvery == 0 {
		opts.SweepEvery = time.Hour // tests sweep by hand
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 } // the first sweep runs at once
	}
	s, err := eventstore.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func rec(kind, device, camera string, at time.Time, labels ...string) eventstore.Record {
	return eventstore.Record{Kind: kind, Device: device, Camera: camera, Labels: labels, CapturedAt: at.UnixMilli(),
		ReceivedAt: at, MsgID: device + "-e-1", Payload: []byte(`{"x":1}`)}
}

func put(t *testing.T, s eventstore.Store, rs ...eventstore.Record) {
	t.Helper()
	for _, r := range rs {
		if err := s.Put(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func ats(rs []eventstore.Record) []int64 {
	out := []int64{}
	for _, r := range rs {
		out = append(out, (r.CapturedAt-t0.UnixMilli())/1000)
	}
	return out
}

func query(t *testing.T, s eventstore.Store, f eventstore.Filter) []eventstore.Record {
	t.Helper()
	rs, err := s.Query(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestQueryFiltersAndOrder(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "events.db"), eventstore.Options{})
	// Put out of time order: the store orders by received_at (here equal to captured_at).
	put(t, s,
		rec(eventstore.KindEvent, "d1", "gate", t0.Add(3*time.Second), "person"),
		rec(eventstore.KindEvent, "d1", "gate", t0.Add(1*time.Second), "car"),
		rec(eventstore.KindDetections, "d1", "yard", t0.Add(2*time.Second), "person", "dog"),
		rec(eventstore.KindEvent, "d2", "gate", t0.Add(4*time.Second), "person"),
	)
	a := rec(eventstore.KindAlert, "d2", "gate", t0.Add(5*time.Second), "person")
	a.RuleID = "loiter"
	put(t, s, a)

	cases := []struct {
		name string
		f    eventstore.Filter
		want []int64 // seconds after t0
	}{
		{"all newest first", eventstore.Filter{}, []int64{5, 4, 3, 2, 1}},
		{"oldest first", eventstore.Filter{Oldest: true}, []int64{1, 2, 3, 4, 5}},
		{"limit", eventstore.Filter{Limit: 2}, []int64{5, 4}},
		{"device", eventstore.Filter{Device: "d1"}, []int64{3, 2, 1}},
		{"camera", eventstore.Filter{Camera: "yard"}, []int64{2}},
		{"label any of", eventstore.Filter{Label: "dog"}, []int64{2}},
		{"label person", eventstore.Filter{Label: "person"}, []int64{5, 4, 3, 2}},
		{"kind", eventstore.Filter{Kind: eventstore.KindEvent}, []int64{4, 3, 1}},
		{"rule", eventstore.Filter{RuleID: "loiter"}, []int64{5}},
		{"since inclusive", eventstore.Filter{Since: t0.Add(3 * time.Second)}, []int64{5, 4, 3}},
		{"until exclusive", eventstore.Filter{Until: t0.Add(3 * time.Second)}, []int64{2, 1}},
		{"range oldest", eventstore.Filter{Since: t0.Add(2 * time.Second), Until: t0.Add(5 * time.Second), Oldest: true}, []int64{2, 3, 4}},
		{"range and device and limit", eventstore.Filter{Since: t0, Until: t0.Add(time.Hour), Device: "d2", Limit: 1}, []int64{5}},
		{"nothing", eventstore.Filter{Device: "d3"}, []int64{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ats(query(t, s, tc.f)); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	got := query(t, s, eventstore.Filter{RuleID: "loiter"})[0]
	if got.Kind != eventstore.KindAlert || got.Device != "d2" || got.ID == 0 || string(got.Payload) != `{"x":1}` ||
		!got.ReceivedAt.Equal(t0.Add(5*time.Second)) {
		t.Errorf("record round trip: %+v", got)
	}
}

func TestQueryPaging(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "events.db"), eventstore.Options{})
	for i := range 7 {
		// Two records per second: paging must not lose records that share a received_at.
		put(t, s, rec(eventstore.KindEvent, "d", "c", t0.Add(time.Duration(i/2)*time.Second)))
	}
	for _, oldest := range []bool{true, false} {
		f := eventstore.Filter{Limit: 3, Oldest: oldest}
		var ids []uint64
		for {
			page := query(t, s, f)
			for _, r := range page {
				ids = append(ids, r.ID)
			}
			if len(page) < f.Limit {
				break
			}
			p := page[len(page)-1].Position()
			f.After = &p
		}
		want := []uint64{1, 2, 3, 4, 5, 6, 7}
		if !oldest {
			slices.Reverse(want)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("oldest=%v: paged ids %v, want %v", oldest, ids, want)
		}
	}
}

func TestRetention(t *testing.T) {
	clk := &clock{now: t0}
	s := open(t, filepath.Join(t.TempDir(), "events.db"), eventstore.Options{MaxAge: time.Hour, MaxRecords: 5, Now: clk.Now})
	for i := range 8 {
		put(t, s, rec(eventstore.KindEvent, "d", "c", t0.Add(time.Duration(i)*10*time.Minute)))
	}
	ctx := context.Background()
	// At t0+70m: older than t0+10m goes by age (0), then 2 more for MaxRecords.
	clk.Set(t0.Add(70 * time.Minute))
	n, err := s.Sweep(ctx)
	if err != nil || n != 3 {
		t.Fatalf("sweep: %d, %v; want 3", n, err)
	}
	if got := ats(query(t, s, eventstore.Filter{Oldest: true})); !slices.Equal(got, []int64{1800, 2400, 3000, 3600, 4200}) {
		t.Errorf("left %v", got)
	}
	records, size, err := s.Usage()
	if err != nil || records != 5 || size <= 0 {
		t.Errorf("usage %d records, %d bytes, %v", records, size, err)
	}
	// Everything ages out.
	clk.Set(t0.Add(10 * time.Hour))
	if n, err := s.Sweep(ctx); err != nil || n != 5 {
		t.Fatalf("sweep: %d, %v; want 5", n, err)
	}
	if records, size, _ := s.Usage(); records != 0 || size != 0 {
		t.Errorf("usage after all expired: %d records, %d bytes", records, size)
	}
}

func TestRetentionBytes(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "events.db"), eventstore.Options{MaxAge: -1, MaxBytes: 2000})
	for i := range 50 {
		put(t, s, rec(eventstore.KindEvent, "d", "c", t0.Add(time.Duration(i)*time.Second)))
	}
	if _, err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	records, size, _ := s.Usage()
	if size > 2000 || records == 0 || records >= 50 {
		t.Fatalf("after sweep: %d records, %d bytes", records, size)
	}
	left := query(t, s, eventstore.Filter{Oldest: true})
	if int64(len(left)) != records || left[len(left)-1].CapturedAt != t0.Add(49*time.Second).UnixMilli() {
		t.Errorf("kept %d records (usage says %d), newest %d", len(left), records, left[len(left)-1].CapturedAt)
	}
}

func TestSweeperRunsAndCloseWaits(t *testing.T) {
	clk := &clock{now: t0}
	s := open(t, filepath.Join(t.TempDir(), "events.db"),
		eventstore.Options{MaxAge: time.Minute, SweepEvery: 5 * time.Millisecond, Now: clk.Now})
	put(t, s, rec(eventstore.KindEvent, "d", "c", t0))
	clk.Set(t0.Add(time.Hour))
	deadline := time.Now().Add(5 * time.Second)
	for len(query(t, s, eventstore.Filter{})) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the sweeper did not delete the expired record")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), rec(eventstore.KindEvent, "d", "c", t0)); err != eventstore.ErrClosed {
		t.Errorf("put after close: %v, want ErrClosed", err)
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := eventstore.Open(path, eventstore.Options{MaxAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, rec(eventstore.KindEvent, "d", "c", t0), rec(eventstore.KindEvent, "d", "c", t0.Add(time.Second)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, eventstore.Options{MaxAge: -1})
	put(t, s, rec(eventstore.KindEvent, "d", "c", t0.Add(2*time.Second)))
	got := query(t, s, eventstore.Filter{Oldest: true})
	if len(got) != 3 || got[2].ID != 3 {
		t.Fatalf("after reopen: %+v", got)
	}
	if n, _, _ := s.Usage(); n != 3 {
		t.Errorf("usage: %d records", n)
	}
}

func TestDecode(t *testing.T) {
	at := time.UnixMilli(1763832005123).UTC()
	ev := wire.Event{Header: wire.Header{Schema: wire.SchemaEvent, DeviceID: "d1", Seq: 7, MsgID: "d1-e-7", CapturedAt: at.UnixMilli()},
		Camera: "gate", Type: wire.EventNew, After: wire.EventState{ID: "01KAP98VKVZ8M1C4A9R6H3T5QE", Label: "person"}}
	al := wire.Alert{Header: wire.Header{Schema: wire.SchemaAlert, DeviceID: "d1", Seq: 8, MsgID: "d1-e-8", CapturedAt: at.UnixMilli()},
		Camera: "gate", AlertID: "01KAP98VKVZ8M1C4A9R6H3T5QF", RuleID: "door", EventIDs: []string{"01KAP98VKVZ8M1C4A9R6H3T5QE"}, Label: "person"}
	de := wire.Detections{Header: wire.Header{Schema: wire.SchemaDetections, DeviceID: "d1", Seq: 9, MsgID: "d1-e-9", CapturedAt: at.UnixMilli()},
		Camera: "yard", Objects: []wire.Object{{Label: "car"}, {Label: "person"}, {Label: "car"}}}
	evB, _ := json.MarshalIndent(ev, "", "  ") // indented: the store keeps it on one line
	alB, _ := json.Marshal(al)
	deB, _ := json.Marshal(de)

	// As wire.Decode hands them on (these test messages are not complete: Decode reads what it stores).
	decoded := func(kind, level string, payload []byte, h wire.Header, msg any) *wire.Decoded {
		spec, _ := wire.Lookup(kind)
		return &wire.Decoded{Topic: wire.Topic("d1", kind, level), Payload: payload, Spec: spec, Device: "d1", Level: level,
			Header: h, Msg: msg}
	}
	r, ok, err := eventstore.Decode(decoded(wire.KindEvents, "gate", evB, ev.Header, &ev), at)
	if err != nil || !ok || r.Kind != eventstore.KindEvent || r.EventID != ev.After.ID || !slices.Equal(r.Labels, []string{"person"}) ||
		r.Seq != 7 || r.MsgID != "d1-e-7" || r.CapturedAt != at.UnixMilli() || r.Camera != "gate" || slices.Contains(r.Payload, '\n') {
		t.Errorf("event: %+v %v %v", r, ok, err)
	}
	r, ok, err = eventstore.Decode(decoded(wire.KindAlerts, "gate", alB, al.Header, &al), at)
	if err != nil || !ok || r.Kind != eventstore.KindAlert || r.RuleID != "door" || r.AlertID != al.AlertID || r.EventID != al.EventIDs[0] {
		t.Errorf("alert: %+v %v %v", r, ok, err)
	}
	r, ok, err = eventstore.Decode(decoded(wire.KindDetections, "yard", deB, de.Header, &de), at)
	if err != nil || !ok || r.Kind != eventstore.KindDetections || !slices.Equal(r.Labels, []string{"car", "person"}) {
		t.Errorf("detections: %+v %v %v", r, ok, err)
	}
	if _, ok, err := eventstore.Decode(decoded(wire.KindStatus, "", []byte(`{}`), wire.Header{}, &wire.Status{}), at); ok || err != nil {
		t.Errorf("status: stored %v, %v", ok, err)
	}
	if _, _, err := eventstore.Decode(decoded(wire.KindEvents, "gate", []byte(`{`), ev.Header, &ev), at); err == nil {
		t.Error("bad JSON: no error")
	}
}

func TestSampler(t *testing.T) {
	s := eventstore.NewSampler(3)
	var kept []int
	for i := range 7 {
		if s.Keep("d", "a") {
			kept = append(kept, i)
		}
	}
	if !slices.Equal(kept, []int{0, 3, 6}) {
		t.Errorf("kept %v", kept)
	}
	if !s.Keep("d", "b") || !s.Keep("e", "a") {
		t.Error("the first message of another camera was not kept")
	}
}
