package eventstore_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vigil-edge/vigil/fleet/eventstore"
)

// skewed is a record of device sent with captured_at off by skew from its arrival at recv.
func skewed(device string, recv time.Time, skew time.Duration) eventstore.Record {
	r := rec(eventstore.KindEvent, device, "c", recv)
	r.CapturedAt = recv.Add(skew).UnixMilli()
	return r
}

func devices(rs []eventstore.Record) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Device)
	}
	return out
}

// A device whose clock runs ten years ahead must not keep its records forever nor get an
// honest device's newer records evicted first when the store is over its size.
func TestFutureClockCannotEvictOthers(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "events.db"), eventstore.Options{MaxAge: -1, MaxBytes: 1 << 30})
	for i := range 10 { // received first, dated ten years ahead
		put(t, s, skewed("future", t0.Add(time.Duration(i)*time.Second), 10*365*24*time.Hour))
	}
	for i := range 10 { // received later, honest clock
		put(t, s, skewed("honest", t0.Add(time.Duration(100+i)*time.Second), 0))
	}
	_, size, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	// Reopen with room for half of the records: the ten received first must go.
	path := filepath.Join(t.TempDir(), "half.db")
	s2 := open(t, path, eventstore.Options{MaxAge: -1, MaxBytes: size/2 + 50}) // a record is over 100 bytes
	for _, r := range query(t, s, eventstore.Filter{Oldest: true}) {
		r.ID = 0
		put(t, s2, r)
	}
	if _, err := s2.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	left := devices(query(t, s2, eventstore.Filter{Oldest: true}))
	if len(left) != 10 || slices.Contains(left, "future") {
		t.Errorf("after the size sweep: %v; want the 10 honest records received last", left)
	}
	// Newest first is by arrival: the honest records, though dated ten years earlier.
	if got := query(t, s, eventstore.Filter{Limit: 1})[0]; got.Device != "honest" || got.CapturedAt != t0.Add(109*time.Second).UnixMilli() {
		t.Errorf("newest record: %s captured %d; want honest's, captured_at kept as sent", got.Device, got.CapturedAt)
	}
}

// Records are aged by arrival: a box whose clock is five years behind keeps its fresh
// records, and records dated in the future still expire.
func TestAgeByReceivedTime(t *testing.T) {
	clk := &clock{now: t0}
	s := open(t, filepath.Join(t.TempDir(), "events.db"), eventstore.Options{MaxAge: time.Hour, Now: clk.Now})
	put(t, s, skewed("behind", t0, -5*365*24*time.Hour), skewed("ahead", t0, 10*365*24*time.Hour))
	clk.Set(t0.Add(time.Minute))
	if n, err := s.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("sweep a minute after arrival: deleted %d, %v; want 0", n, err)
	}
	clk.Set(t0.Add(2 * time.Hour))
	if n, err := s.Sweep(context.Background()); err != nil || n != 2 {
		t.Fatalf("sweep two hours after arrival: deleted %d, %v; want 2", n, err)
	}
	// Since and until bound the arrival time.
	put(t, s, skewed("behind", t0.Add(3*time.Hour), -5*365*24*time.Hour))
	if got := query(t, s, eventstore.Filter{Since: t0.Add(3 * time.Hour)}); len(got) != 1 {
		t.Errorf("since the arrival: %d records, want 1", len(got))
	}
}

// A file written before records were keyed by received_at is migrated at Open.
func TestMigrateCapturedAtKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	var size uint64
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("records"))
		if err != nil {
			return err
		}
		meta, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		// Captured in the reverse order of arrival.
		for i := range 3 {
			r := skewed("d", t0.Add(time.Duration(i)*time.Minute), -time.Duration(2*i)*time.Hour)
			r.ID = uint64(i + 1)
			v, _ := json.Marshal(r)
			k := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(r.CapturedAt)), r.ID)
			if err := b.Put(k, v); err != nil {
				return err
			}
			size += uint64(len(k) + len(v))
		}
		if err := b.SetSequence(3); err != nil { // as the old Put's NextSequence left it
			return err
		}
		_ = meta.Put([]byte("count"), binary.BigEndian.AppendUint64(nil, 3))
		return meta.Put([]byte("bytes"), binary.BigEndian.AppendUint64(nil, size))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := open(t, path, eventstore.Options{MaxAge: -1})
	var ids []uint64
	for _, r := range query(t, s, eventstore.Filter{Oldest: true}) {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []uint64{1, 2, 3}) {
		t.Errorf("after migration, oldest first by arrival: ids %v, want [1 2 3]", ids)
	}
	if n, b, _ := s.Usage(); n != 3 || uint64(b) != size {
		t.Errorf("usage after migration: %d records, %d bytes; want 3, %d", n, b, size)
	}
	put(t, s, skewed("d", t0.Add(time.Hour), 0))
	if got := query(t, s, eventstore.Filter{Limit: 1})[0]; got.ID <= 3 {
		t.Errorf("a record put after migration got id %d, want > 3", got.ID)
	}
}
