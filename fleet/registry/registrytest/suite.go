// Package registrytest is the conformance suite every registry.Store backend passes (the bbolt
// file and PostgreSQL): loading with a cursor, atomic read-modify-write updates from
// concurrent writers, and two shared registries on one store showing one fleet view with gap
// detection across them. Only tests import it.
package registrytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Open makes a new, empty store for one subtest and returns a function that opens a handle on
// it (the suite closes each), and whether several handles may be open at once (PostgreSQL:
// as several fleet instances; a bbolt file admits one, so the suite then uses one handle where
// it would use two).
type Open func(t *testing.T) (connect func() registry.Store, several bool)

// two returns two handles on a new store: two connections, or one handle twice.
func two(t *testing.T, open Open) (a, b registry.Store) {
	connect, several := open(t)
	a = connect()
	b = a
	if several {
		b = connect()
	}
	return a, b
}

// Run runs the suite.
func Run(t *testing.T, open Open) {
	t.Run("LoadAndCursor", func(t *testing.T) { testLoadAndCursor(t, open) })
	t.Run("UpdateIsAtomic", func(t *testing.T) { testUpdateIsAtomic(t, open) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, open) })
	t.Run("SharedRegistries", func(t *testing.T) { testSharedRegistries(t, open) })
	t.Run("RestartKeepsDevices", func(t *testing.T) { testRestart(t, open) })
	t.Run("EpochChangeAcrossInstances", func(t *testing.T) { testEpochChange(t, open) })
}

var ctx = context.Background()

func closeBoth(t *testing.T, a, b registry.Store) {
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
		if b != a {
			if err := b.Close(); err != nil {
				t.Error(err)
			}
		}
	})
}

func put(t *testing.T, s registry.Store, vals map[string]string) {
	t.Helper()
	ids := slices.Sorted(func(yield func(string) bool) {
		for k := range vals {
			if !yield(k) {
				return
			}
		}
	})
	if err := s.Update(ctx, ids, func(id string, _ []byte) ([]byte, error) { return []byte(vals[id]), nil }); err != nil {
		t.Fatal(err)
	}
}

func ids(recs []registry.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func testLoadAndCursor(t *testing.T, open Open) {
	a, b := two(t, open)
	closeBoth(t, a, b)
	recs, cur, err := a.Load(ctx, 0)
	if err != nil || len(recs) != 0 {
		t.Fatalf("empty store: %v records, %v", ids(recs), err)
	}
	put(t, a, map[string]string{"d2": `{"id":"d2","n":1}`, "d1": `{"id":"d1","n":1}`, "d3": `{"id":"d3","n":1}`})
	recs, cur2, err := b.Load(ctx, 0)
	if err != nil || !slices.Equal(ids(recs), []string{"d1", "d2", "d3"}) {
		t.Fatalf("Load(0): %v, %v; want d1 d2 d3 in order", ids(recs), err)
	}
	var v map[string]any
	if err := json.Unmarshal(recs[1].Data, &v); err != nil || v["id"] != "d2" {
		t.Fatalf("d2's data %q: %v", recs[1].Data, err)
	}
	if recs, _, err = b.Load(ctx, cur); err != nil || len(recs) != 3 {
		t.Fatalf("Load(cursor before the update): %v, %v; want all three", ids(recs), err)
	}
	put(t, b, map[string]string{"d2": `{"id":"d2","n":2}`})
	recs, cur3, err := a.Load(ctx, cur2)
	if err != nil {
		t.Fatal(err)
	}
	// A store may re-read a little, but what changed must be there, and new data.
	if !slices.Contains(ids(recs), "d2") {
		t.Fatalf("Load(cursor) after d2 changed: %v, want d2", ids(recs))
	}
	for _, r := range recs {
		if r.ID == "d2" && string(r.Data) != `{"id":"d2","n":2}` && !jsonEqual(r.Data, `{"id":"d2","n":2}`) {
			t.Fatalf("d2 reloaded as %s", r.Data)
		}
	}
	// Nothing changed since: nothing (or only a re-read of d2) comes back.
	recs, _, err = a.Load(ctx, cur3)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids(recs) {
		if id != "d2" {
			t.Fatalf("Load(cursor) with nothing changed returned %v", ids(recs))
		}
	}
}

func jsonEqual(a []byte, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

func testUpdateIsAtomic(t *testing.T, open Open) {
	a, b := two(t, open)
	closeBoth(t, a, b)
	put(t, a, map[string]string{"d1": `{"n":1}`})
	boom := errors.New("boom")
	err := a.Update(ctx, []string{"d1", "d2"}, func(id string, old []byte) ([]byte, error) {
		if id == "d2" {
			return nil, boom
		}
		return []byte(`{"n":99}`), nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update with a failing fn: %v, want the fn's error", err)
	}
	// nil data saves nothing; old data is what was saved.
	err = b.Update(ctx, []string{"d1", "d3"}, func(id string, old []byte) ([]byte, error) {
		switch id {
		case "d1":
			if !jsonEqual(old, `{"n":1}`) {
				return nil, fmt.Errorf("d1's old data %q: the failed update left something", old)
			}
		case "d3":
			if old != nil {
				return nil, fmt.Errorf("d3's old data %q, want nil", old)
			}
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := a.Load(ctx, 0)
	if err != nil || !slices.Equal(ids(recs), []string{"d1"}) {
		t.Fatalf("after a failed update and one saving nothing: %v, %v; want d1 only", ids(recs), err)
	}
}

// Writers on both handles increment counters of the same devices: every increment survives
// (each Update reads and writes under the store's lock).
func testConcurrentWriters(t *testing.T, open Open) {
	a, b := two(t, open)
	closeBoth(t, a, b)
	const writers, rounds = 4, 25
	devs := []string{"d1", "d2", "d3"}
	var wg sync.WaitGroup
	for w := range writers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for range rounds {
				err := s.Update(ctx, devs, func(id string, old []byte) ([]byte, error) {
					n := 0
					if old != nil {
						var v struct{ N int }
						if err := json.Unmarshal(old, &v); err != nil {
							return nil, err
						}
						n = v.N
					}
					return []byte(`{"n":` + strconv.Itoa(n+1) + `}`), nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	recs, _, err := a.Load(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if !jsonEqual(r.Data, fmt.Sprintf(`{"n":%d}`, writers*rounds)) {
			t.Errorf("%s: %s, want n = %d", r.ID, r.Data, writers*rounds)
		}
	}
	if len(recs) != len(devs) {
		t.Errorf("%d devices, want %d", len(recs), len(devs))
	}
}

// clock is a settable clock shared by the test's registries.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

const epoch = "5c0ffee01234"

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func feed(t *testing.T, r *registry.Registry, topic string, payload []byte) {
	t.Helper()
	if err := r.HandleMessage(topic, payload); err != nil {
		t.Fatalf("%s: %v", topic, err)
	}
}

func statusMsg(dev, state string, at time.Time) (string, []byte) {
	return wire.Topic(dev, wire.KindStatus, ""), mustJSON(wire.Status{
		Header: wire.Header{Schema: wire.SchemaStatus, DeviceID: dev, MsgID: wire.StatusMessageID(dev, epoch, at), CapturedAt: at.UnixMilli()},
		State:  state, Version: "2.0.1", Cameras: []string{"cam1", "cam2"}})
}

func detectionsMsg(dev, cam string, seq uint64, at time.Time) (string, []byte) {
	return detectionsIn(dev, cam, epoch, seq, at)
}

func detectionsIn(dev, cam, epoch string, seq uint64, at time.Time) (string, []byte) {
	return wire.Topic(dev, wire.KindDetections, cam), mustJSON(wire.Detections{
		Header: wire.Header{Schema: wire.SchemaDetections, DeviceID: dev, Seq: seq,
			MsgID: wire.MessageID(dev, epoch, seq), CapturedAt: at.UnixMilli()},
		Camera: cam, FrameSeq: seq, FrameWidth: 640, FrameHeight: 480, Model: wire.Model{Name: "m", Version: "1"},
		Objects: []wire.Object{{Label: "person", Score: 0.9}, {Label: "car", Score: 0.8}}})
}

func telemetryMsg(dev string, seq uint64, at time.Time, tempC float64) (string, []byte) {
	return wire.Topic(dev, wire.KindTelemetry, ""), mustJSON(wire.Telemetry{
		Header: wire.Header{Schema: wire.SchemaTelemetry, DeviceID: dev, Seq: seq,
			MsgID: wire.MessageID(dev, epoch, seq), CapturedAt: at.UnixMilli()},
		UptimeS: 60, Board: &wire.BoardHealth{CPUTempC: &tempC}})
}

func openShared(t *testing.T, s registry.Store, clk *clock) *registry.Registry {
	t.Helper()
	r, err := registry.OpenStore(s, registry.Options{Shared: true, GapTimeout: time.Minute, Now: clk.now, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func flush(t *testing.T, rs ...*registry.Registry) {
	t.Helper()
	for _, r := range rs {
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}

// Two shared registries (two fleet instances) split every device's messages; one seq reaches
// neither. After both flushed, both show the same devices: all messages counted, the newest
// telemetry, the status, and exactly the one seq missing; after the gap timeout it is lost.
func testSharedRegistries(t *testing.T, open Open) {
	sa, sb := two(t, open)
	clk := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	a, b := openShared(t, sa, clk), openShared(t, sb, clk)
	defer func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
		if sb != sa {
			if err := b.Close(); err != nil {
				t.Error(err)
			}
		}
	}()

	at := clk.now()
	for _, r := range []*registry.Registry{a, b} { // status reaches every instance
		topic, payload := statusMsg("edge-1", wire.StateOnline, at)
		feed(t, r, topic, payload)
	}
	const last = 40
	for seq := uint64(1); seq <= last; seq++ {
		if seq == 17 {
			continue // lost on the way: no instance receives it
		}
		r := a
		if seq%2 == 0 {
			r = b
		}
		cam := "cam1"
		if seq%4 == 0 {
			cam = "cam2"
		}
		if seq == 30 {
			topic, payload := telemetryMsg("edge-1", seq, at.Add(30*time.Second), 55)
			feed(t, r, topic, payload)
			continue
		}
		topic, payload := detectionsMsg("edge-1", cam, seq, at.Add(time.Duration(seq)*time.Second))
		feed(t, r, topic, payload)
		if seq == 20 {
			flush(t, a, b) // a flush mid-stream: the tracking continues across flushes
		}
	}
	// Device edge-2 is only ever seen by b: a shows it after the flush too.
	topic, payload := detectionsMsg("edge-2", "cam1", 5, at)
	feed(t, b, topic, payload)
	clk.add(2 * time.Second)
	flush(t, a, b, a) // a's second flush reloads what b saved after a's first

	da, ok1 := a.Device("edge-1")
	db, ok2 := b.Device("edge-1")
	if !ok1 || !ok2 {
		t.Fatalf("edge-1 known to a: %v, to b: %v", ok1, ok2)
	}
	for name, d := range map[string]registry.Device{"a": da, "b": db} {
		if !d.Online || d.Version != "2.0.1" {
			t.Errorf("%s: online %v version %q", name, d.Online, d.Version)
		}
		if d.Messages[wire.KindDetections] != last-2 || d.Messages[wire.KindTelemetry] != 1 || d.Messages[wire.KindStatus] != 2 {
			t.Errorf("%s: messages %v, want %d detections, 1 telemetry, 2 status (one per instance)", name, d.Messages, last-2)
		}
		if d.HighestSeq != last || d.Watermark != 16 || d.Missing != 1 || d.Lost != 0 || d.Epoch != epoch {
			t.Errorf("%s: stream %+v, want highest %d, watermark 16, 1 missing (seq 17)", name, d.Stream, last)
		}
		if d.Telemetry == nil || d.Telemetry.Board.CPUTempC == nil || *d.Telemetry.Board.CPUTempC != 55 {
			t.Errorf("%s: telemetry %+v, want the report of seq 30", name, d.Telemetry)
		}
		var dets uint64
		for _, c := range d.Cameras {
			dets += c.Detections
			if c.Objects["person"] != c.Detections || c.Objects["car"] != c.Detections {
				t.Errorf("%s: camera %s: %d detections, objects %v", name, c.ID, c.Detections, c.Objects)
			}
		}
		if dets != last-2 || len(d.Cameras) != 2 {
			t.Errorf("%s: %d detections over %d cameras, want %d over 2", name, dets, len(d.Cameras), last-2)
		}
		if !d.SkewKnown {
			t.Errorf("%s: no clock estimate", name)
		}
	}
	if _, ok := a.Device("edge-2"); !ok {
		t.Error("a does not show edge-2, which only b received")
	}
	if got := a.Totals(); got.DevicesWithGaps != 1 || got.Missing != 1 || got.Devices[wire.StateOnline] != 1 {
		t.Errorf("a's totals: %+v", got)
	}

	// Seq 17 never comes: past the gap timeout it is lost, on both.
	clk.add(2 * time.Minute)
	flush(t, b, a, b)
	for name, r := range map[string]*registry.Registry{"a": a, "b": b} {
		d, _ := r.Device("edge-1")
		if d.Missing != 0 || d.Lost != 1 || d.Watermark != last {
			t.Errorf("%s after the gap timeout: %+v, want seq 17 lost and the watermark at %d", name, d.Stream, last)
		}
	}

	// The will: offline reaches both; a redelivered seq (to a after b had it) is a duplicate.
	topic, payload = statusMsg("edge-1", wire.StateOffline, clk.now())
	feed(t, a, topic, payload)
	feed(t, b, topic, payload)
	topic, payload = detectionsMsg("edge-1", "cam1", 40-1, at)
	feed(t, a, topic, payload)
	clk.add(time.Second)
	flush(t, a, b)
	d, _ := b.Device("edge-1")
	if d.Online || d.State != wire.StateOffline || d.Duplicates != 1 {
		t.Errorf("b after the will and a redelivery: state %q, duplicates %d", d.State, d.Duplicates)
	}
}

// A registry reopened on the store (a restarted instance) has every device, with its counts
// and seq tracking.
func testRestart(t *testing.T, open Open) {
	connect, _ := open(t)
	clk := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	r := openShared(t, connect(), clk)
	for seq := uint64(1); seq <= 10; seq++ {
		topic, payload := detectionsMsg("edge-9", "cam1", seq, clk.now())
		feed(t, r, topic, payload)
	}
	if err := r.Close(); err != nil { // flushes, closes its store
		t.Fatal(err)
	}
	r2, err := registry.OpenStore(connect(), registry.Options{Now: clk.now, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	d, ok := r2.Device("edge-9")
	if !ok || d.Messages[wire.KindDetections] != 10 || d.Watermark != 10 || len(d.Cameras) != 1 || d.Cameras[0].Detections != 10 {
		t.Fatalf("after a restart: %v %+v", ok, d)
	}
	topic, payload := detectionsMsg("edge-9", "cam1", 4, clk.now())
	if isNew, err := r2.Accept(mustDecode(t, topic, payload)); isNew || err != nil {
		t.Errorf("seq 4 again after the restart: new %v, %v; want a duplicate", isNew, err)
	}
}

// The device's outbox is recreated (a new epoch, seq from 1) while the instances split its
// messages: both show the new epoch, one change, nothing missing or lost of either epoch; a
// late message of the old epoch is refused as stale by the instance that had not seen the
// change itself.
func testEpochChange(t *testing.T, open Open) {
	sa, sb := two(t, open)
	clk := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	a, b := openShared(t, sa, clk), openShared(t, sb, clk)
	defer func() {
		_ = a.Close()
		if sb != sa {
			_ = b.Close()
		}
	}()
	const e2 = "0dd0dd0dd0dd"
	send := func(ep string, from, to uint64) {
		for seq := from; seq <= to; seq++ {
			r := a
			if seq%2 == 0 {
				r = b
			}
			topic, payload := detectionsIn("edge-5", "cam1", ep, seq, clk.now())
			feed(t, r, topic, payload)
		}
	}
	send(epoch, 1, 10)
	flush(t, a, b)
	send(e2, 1, 5)
	clk.add(time.Second)
	flush(t, a, b, a)
	for name, r := range map[string]*registry.Registry{"a": a, "b": b} {
		d, _ := r.Device("edge-5")
		if d.Epoch != e2 || d.EpochChanges != 1 || d.Watermark != 5 || d.HighestSeq != 5 || d.Missing != 0 || d.Lost != 0 ||
			d.Messages[wire.KindDetections] != 15 {
			t.Errorf("%s after the new epoch: %+v %v; want epoch %s, 1 change, seqs 1-5, nothing missing or lost, 15 messages",
				name, d.Stream, d.Messages, e2)
		}
	}
	topic, payload := detectionsIn("edge-5", "cam1", epoch, 11, clk.now())
	var re *registry.RejectError
	if err := b.HandleMessage(topic, payload); !errors.As(err, &re) || re.Reason != registry.ReasonStaleEpoch {
		t.Errorf("a message of the old epoch after the change: %v, want a stale-epoch rejection", err)
	}
}

func mustDecode(t *testing.T, topic string, payload []byte) *wire.Decoded {
	t.Helper()
	d, err := wire.Decode(topic, payload)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
