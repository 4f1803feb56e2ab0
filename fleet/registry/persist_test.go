package registry

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// fixedClock is a settable clock in UTC, without monotonic reading, so that times survive a
// round trip through the file unchanged.
type fixedClock struct{ t time.Time }

func (c *fixedClock) now() time.Time { return c.t }

func telemetry(dev string, seq uint64, capturedAt int64, tempC float64) msg {
	mem, disk := uint64(512<<20), uint64(3<<30)
	load := 0.75
	tm := wire.Telemetry{
		Header: wire.Header{Schema: wire.SchemaTelemetry, DeviceID: dev, Seq: seq, MsgID: msgID(dev, testEpoch, seq),
			CapturedAt: capturedAt},
		UptimeS: 42,
		Board:   &wire.BoardHealth{CPUTempC: &tempC, Load1: &load, MemAvailable: &mem, DiskFree: &disk},
		Outbox:  &wire.OutboxHealth{Messages: 12, Bytes: 3400, OldestAgeS: 1.5},
		Model:   &wire.Model{Name: "yolox-nano", Version: "2"},
		Cameras: []wire.CameraTelemetry{{ID: "cam1", State: "streaming", FPS: 15, DetectFPS: 5, DetectionsPerS: 1.5, InferenceErrors: 2}},
		Geo:     &wire.GeoFix{Lat: 48.1, Lon: 11.5, AltM: 520, Source: "static"},
	}
	return msg{wire.Topic(dev, wire.KindTelemetry, ""), mustJSON(tm)}
}

func feed(t *testing.T, r *Registry, ms ...msg) {
	t.Helper()
	for _, m := range ms {
		if err := r.HandleMessage(m.topic, m.payload); err != nil {
			t.Fatalf("%s: %v", m.topic, err)
		}
	}
}

func open(t *testing.T, path string, clk *fixedClock, opts Options) *Registry {
	t.Helper()
	opts.Now = clk.now
	if opts.FlushInterval == 0 {
		opts.FlushInterval = time.Hour // tests flush by hand unless they say otherwise
	}
	r, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// withoutRates zeroes the detections rates, which are not saved.
func withoutRates(ds []Device) []Device {
	for i := range ds {
		for j := range ds[i].Cameras {
			ds[i].Cameras[j].Rate = 0
		}
	}
	return ds
}

func TestTelemetryNewestKept(t *testing.T) {
	clk := &fixedClock{time.Unix(1700000100, 0).UTC()}
	r := New(Options{Now: clk.now})
	feed(t, r, telemetry("d1", 2, 1700000002000, 61.5), telemetry("d1", 1, 1700000001000, 70)) // the older one replayed late
	d, _ := r.Device("d1")
	tm := d.Telemetry
	if tm == nil || *tm.Board.CPUTempC != 61.5 || tm.CapturedAt != time.UnixMilli(1700000002000).UTC() || !tm.ReceivedAt.Equal(clk.t) {
		t.Fatalf("telemetry %+v: want the report captured at ...002000 with 61.5 °C", tm)
	}
	if tm.Outbox.Messages != 12 || tm.Model.Version != "2" || len(tm.Cameras) != 1 || tm.Cameras[0].FPS != 15 || tm.Position.Lat != 48.1 {
		t.Errorf("telemetry %+v", tm)
	}
	if d.Messages[wire.KindTelemetry] != 2 || d.Watermark != 2 {
		t.Errorf("messages %v watermark %d: want 2 telemetry, watermark 2", d.Messages, d.Watermark)
	}
	*tm.Board.CPUTempC = 0 // a snapshot shares nothing with the registry
	if d, _ := r.Device("d1"); *d.Telemetry.Board.CPUTempC != 61.5 {
		t.Errorf("changing a snapshot changed the registry")
	}
}

func TestPersistRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	clk := &fixedClock{time.Unix(1700000100, 0).UTC()}
	r := open(t, path, clk, Options{})
	feed(t, r,
		status("d1", wire.StateOnline, "d1-s1", "cam1", "cam9"),
		detections("d1", "cam1", 1, "person", "car"),
		detections("d1", "cam1", 2, "person"),
		// seq 3 missing
		detections("d1", "cam2", 4, "dog"),
		telemetry("d1", 5, 1700000005000, 61.5),
		other("d1", wire.KindEvents, "cam1", 6),
		detections("d1", "cam1", 2, "person"), // a duplicate
		status("d2", wire.StateOffline, "d2-s1"),
		detections("d2", "camA", 7, "person"),
	)
	clk.t = clk.t.Add(time.Second)
	before := withoutRates(r.Devices())
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r2 := open(t, path, clk, Options{})
	defer r2.Close()
	after := r2.Devices()
	// Decided: online is unknown after a restart until the next status; offline stays.
	if after[0].State != "" || after[0].Online || after[1].State != wire.StateOffline {
		t.Errorf("states after restart %q %v / %q: want \"\" false / offline", after[0].State, after[0].Online, after[1].State)
	}
	before[0].State, before[0].Online = "", false
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("after reopen:\n got %+v\nwant %+v", after, before)
	}
	if after[0].Missing != 1 || after[0].Watermark != 2 || after[0].Telemetry == nil || after[0].Telemetry.Outbox.Bytes != 3400 {
		t.Errorf("d1 missing %d watermark %d telemetry %+v: want 1, 2, kept", after[0].Missing, after[0].Watermark, after[0].Telemetry)
	}

	// The seq tracking survived: a repeat is a duplicate, the missing seq is welcome.
	feed(t, r2, detections("d1", "cam1", 2, "person"), detections("d1", "cam1", 3, "person"),
		status("d1", wire.StateOnline, "d1-s1", "cam1", "cam9"), // the retained status again: applied
		status("d2", wire.StateOffline, "d2-s1"))                // a repeat of the offline status: a duplicate
	d1, _ := r2.Device("d1")
	if d1.Duplicates != 2 || d1.Messages["detections"] != 4 || d1.Missing != 0 || d1.Watermark != 6 || d1.State != wire.StateOnline {
		t.Errorf("d1 after restart: duplicates %d detections %d missing %d watermark %d state %q; want 2 4 0 6 online",
			d1.Duplicates, d1.Messages["detections"], d1.Missing, d1.Watermark, d1.State)
	}
	if d2, _ := r2.Device("d2"); d2.Duplicates != 1 || d2.Messages["status"] != 1 {
		t.Errorf("d2: duplicates %d status %d; want 1 1", d2.Duplicates, d2.Messages["status"])
	}
}

// copyFile copies a registry file that is open elsewhere, as a crash would leave it.
func copyFile(t *testing.T, from string) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "crashed.db")
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

func TestCrashLosesOnlyUnflushed(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	clk := &fixedClock{time.Unix(1700000100, 0).UTC()}
	r := open(t, path, clk, Options{})
	defer r.Close()
	feed(t, r, detections("d1", "cam1", 1, "person"), detections("d1", "cam1", 2, "person"))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	feed(t, r, detections("d1", "cam1", 3, "person"), detections("d2", "cam1", 1, "car")) // never flushed

	crashed := open(t, copyFile(t, path), clk, Options{})
	defer crashed.Close()
	ds := crashed.Devices()
	if len(ds) != 1 || ds[0].ID != "d1" || ds[0].Messages["detections"] != 2 || ds[0].Watermark != 2 {
		t.Fatalf("after crash: %+v; want d1 with 2 detections, watermark 2", ds)
	}
	feed(t, crashed, detections("d1", "cam1", 2, "person"))
	if d, _ := crashed.Device("d1"); d.Duplicates != 1 {
		t.Errorf("a repeat of a flushed seq: duplicates %d, want 1", d.Duplicates)
	}
}

func TestBackgroundFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	clk := &fixedClock{time.Unix(1700000100, 0).UTC()}
	r := open(t, path, clk, Options{FlushInterval: 10 * time.Millisecond})
	defer r.Close()
	feed(t, r, telemetry("d1", 1, 1700000001000, 55))
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := open(t, copyFile(t, path), clk, Options{})
		d, ok := c.Device("d1")
		_ = c.Close()
		if ok && d.Telemetry != nil && *d.Telemetry.Board.CPUTempC == 55 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the background flush did not save d1 within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOpenMaxDevices(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	clk := &fixedClock{time.Unix(1700000100, 0).UTC()}
	r := open(t, path, clk, Options{})
	feed(t, r, detections("a", "cam1", 1), detections("b", "cam1", 1), detections("c", "cam1", 1))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = open(t, path, clk, Options{MaxDevices: 2})
	defer r.Close()
	if ds := r.Devices(); len(ds) != 2 || ds[0].ID != "a" || ds[1].ID != "b" {
		t.Fatalf("devices %+v: want a and b", ds)
	}
	var re *RejectError
	if err := r.HandleMessage(detections("c", "cam1", 2).topic, detections("c", "cam1", 2).payload); !errors.As(err, &re) || re.Reason != ReasonTooManyDevices {
		t.Errorf("a third device: %v, want %s", err, ReasonTooManyDevices)
	}
}

func TestOpenBadFile(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a bbolt file ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign.db")
	db, err := bolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("rollouts")); return err }); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	badDevice := filepath.Join(dir, "bad-device.db")
	r, err := Open(badDevice, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	db, err = bolt.Open(badDevice, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDevices).Put([]byte("d1"), []byte(`{"id":"d1","seq":{"watermark":5,"highest":9,"spans":[[4,9]]}}`))
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	for _, tc := range []struct{ path, want string }{
		{garbage, "invalid"},
		{foreign, "not a registry file"},
		{badDevice, `device "d1": seq: span 4-9`},
	} {
		r, err := Open(tc.path, Options{})
		if err == nil {
			_ = r.Close()
			t.Errorf("%s: opened", tc.path)
			continue
		}
		if !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q: want the path and %q", tc.path, err, tc.want)
		}
	}
}

// A registry file of one instance in a share group (no shared store): the instance's share of
// the seqs leaves no gap, before and after a restart.
func TestOpenSharedFileHasNoGaps(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	clk := &fixedClock{time.Unix(1700000100, 0).UTC()}
	r := open(t, path, clk, Options{Shared: true, GapTimeout: time.Second})
	for seq := uint64(1); seq <= 20; seq += 2 {
		feed(t, r, detections("d1", "cam1", seq))
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(time.Minute)
	r = open(t, path, clk, Options{Shared: true, GapTimeout: time.Second})
	defer r.Close()
	feed(t, r, detections("d1", "cam1", 23))
	clk.t = clk.t.Add(time.Minute)
	d, _ := r.Device("d1")
	if d.Missing != 0 || d.Lost != 0 || d.HighestSeq != 23 || d.Messages["detections"] != 11 {
		t.Errorf("shared file: %+v %v", d.Stream, d.Messages)
	}
}

// A saved record comes from a file or a database another process writes: whatever its bytes,
// loading it as a shared registry does (and merging a delta into it) either fails with an error
// or yields a device whose record loads again.
func FuzzSavedRecord(f *testing.F) {
	f.Add([]byte(`{"id":"d1","seq":{"epoch":"e1","watermark":5,"highest":9,"spans":[[7,9]],"hole_at":[1]},"messages":{"detections":3}}`))
	f.Add([]byte(`{"id":"d1","cameras":{"cam1":{"detections":2,"objects":{"person":2}}},"clock_skew_ms":-40}`))
	f.Add([]byte(`{"id":"d1","seq":{"watermark":18446744073709551615,"highest":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		now := time.Unix(1700000000, 0)
		r := New(Options{Shared: true, MaxGaps: 4, Now: func() time.Time { return now }})
		r.pending = map[string]*delta{}
		d, err := r.decodeRecord(Record{ID: "d1", Data: data}, now, false)
		if err != nil {
			return
		}
		var rec deviceRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			t.Fatalf("decoded a record json cannot: %v", err)
		}
		dl := &delta{messages: map[string]uint64{"detections": 1}, cameras: map[string]*cameraDelta{},
			epochs: []epochSeqs{{epoch: "e1", seqs: []uint64{3, 12, 11}}}}
		if err := r.merge(&rec, "d1", dl, now, true); err != nil {
			return
		}
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.decodeRecord(Record{ID: "d1", Data: b}, now, false); err != nil {
			t.Fatalf("a merged record does not load: %v\n%s", err, b)
		}
		_ = r.snapshot(d, now)
	})
}
