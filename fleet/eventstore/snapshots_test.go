package eventstore_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/eventstore"
)

func TestSnapshotsLiveWithTheirEvent(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: t0}
	path := filepath.Join(t.TempDir(), "events.db")
	s := open(t, path, eventstore.Options{MaxAge: time.Hour, Now: clk.Now})
	const ev1, ev2 = "01HZX5S3K8Q2W6V7Y8Z9A0B1C2", "01HZX5S3K8Q2W6V7Y8Z9A0B1C3"

	if err := s.PutSnapshot(ctx, ev1, []byte("jpeg")); !errors.Is(err, eventstore.ErrUnknownEvent) {
		t.Fatalf("snapshot of an unknown event: %v", err)
	}
	_, empty, _ := s.Usage()
	newRec := rec(eventstore.KindEvent, "d", "c", t0, "person")
	newRec.EventID = ev1
	endRec := newRec
	endRec.ReceivedAt = t0.Add(30 * time.Minute)
	other := newRec
	other.EventID, other.ReceivedAt = ev2, t0.Add(time.Minute)
	put(t, s, newRec, other, endRec)
	_, before, _ := s.Usage()

	big := bytes.Repeat([]byte{0xAB}, 10_000)
	if err := s.PutSnapshot(ctx, ev1, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSnapshot(ctx, ev1, big); err != nil { // a better frame replaces it
		t.Fatal(err)
	}
	if err := s.PutSnapshot(ctx, ev2, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Snapshot(ctx, ev1); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("snapshot: %d bytes, %v", len(got), err)
	}
	_, with, _ := s.Usage()
	if with-before != int64(len(ev1)+len(big)+len(ev2)+3) {
		t.Errorf("snapshots counted as %d bytes, want %d", with-before, len(ev1)+len(big)+len(ev2)+3)
	}

	// An hour and a bit later the event's first record and the other event have aged out; ev1's
	// last record has not: its snapshot stays.
	clk.Set(t0.Add(time.Hour + 2*time.Minute))
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshot(ctx, ev1); err != nil {
		t.Errorf("snapshot of an event with a record left: %v", err)
	}
	if _, err := s.Snapshot(ctx, ev2); !errors.Is(err, eventstore.ErrNoSnapshot) {
		t.Errorf("snapshot of a swept event: %v", err)
	}
	if err := s.PutSnapshot(ctx, ev2, []byte("late")); !errors.Is(err, eventstore.ErrUnknownEvent) {
		t.Errorf("snapshot for a swept event: %v", err)
	}
	clk.Set(t0.Add(2 * time.Hour))
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshot(ctx, ev1); !errors.Is(err, eventstore.ErrNoSnapshot) {
		t.Errorf("snapshot after its event's last record: %v", err)
	}
	if n, b, _ := s.Usage(); n != 0 || b != empty {
		t.Errorf("after the sweep: %d records, %d bytes (empty store: %d)", n, b, empty)
	}
}

// The byte limit counts snapshots: pictures make old events go sooner.
func TestSnapshotsCountTowardsMaxBytes(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "events.db"), eventstore.Options{MaxBytes: 50_000, MaxAge: -1})
	ids := []string{"01HZX5S3K8Q2W6V7Y8Z9A0B1D0", "01HZX5S3K8Q2W6V7Y8Z9A0B1D1", "01HZX5S3K8Q2W6V7Y8Z9A0B1D2"}
	for i, id := range ids {
		r := rec(eventstore.KindEvent, "d", "c", t0.Add(time.Duration(i)*time.Second), "car")
		r.EventID = id
		put(t, s, r)
		if err := s.PutSnapshot(ctx, id, bytes.Repeat([]byte{1}, 20_000)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshot(ctx, ids[0]); !errors.Is(err, eventstore.ErrNoSnapshot) {
		t.Errorf("oldest event's snapshot kept past the byte limit: %v", err)
	}
	if _, err := s.Snapshot(ctx, ids[2]); err != nil {
		t.Errorf("newest snapshot: %v", err)
	}
	if _, b, _ := s.Usage(); b > 50_000 {
		t.Errorf("%d bytes over the limit", b)
	}
}
