package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-edge/vigil/fleet/eventstore"
	"github.com/vigil-edge/vigil/fleet/eventstore/eventstoretest"
	"github.com/vigil-edge/vigil/fleet/postgres"
	"github.com/vigil-edge/vigil/internal/redact"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

var ctx = context.Background()

func TestEventsConformance(t *testing.T) {
	pg := testharness.StartPostgres(t)
	n := 0
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		n++
		s, err := postgres.OpenEvents(ctx, pg.CreateDB(fmt.Sprintf("conf%d", n)), postgres.EventsOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func record(device string, seq int, at time.Time) eventstore.Record {
	return eventstore.Record{Kind: eventstore.KindEvent, Device: device, Camera: "cam1", Labels: []string{"person"},
		MsgID: fmt.Sprintf("%s-ep-%d", device, seq), Seq: uint64(seq), CapturedAt: at.UnixMilli(), ReceivedAt: at,
		Payload: []byte(`{}`)}
}

// Two instances share one database; every message is delivered to both (as after a
// reconnect, or a redelivery to another member of a shared subscription): each is stored once.
func TestIdempotentAcrossInstances(t *testing.T) {
	pg := testharness.StartPostgres(t)
	a, err := postgres.OpenEvents(ctx, pg.DSN, postgres.EventsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.OpenEvents(ctx, pg.DSN, postgres.EventsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	now := time.Now()
	var wg sync.WaitGroup
	for _, s := range []*postgres.Events{a, b, a} {
		wg.Go(func() {
			for i := 1; i <= 200; i++ {
				if err := s.Put(ctx, record("d1", i, now)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := b.Query(ctx, eventstore.Filter{Oldest: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 {
		t.Fatalf("stored %d records, want 200 (each once)", len(got))
	}
	for i, r := range got {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
	}
}

// Retention drops whole day partitions: by age, then the oldest while over the size bound.
func TestRetentionDropsDays(t *testing.T) {
	pg := testharness.StartPostgres(t)
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s, err := postgres.OpenEvents(ctx, pg.DSN, postgres.EventsOptions{MaxAge: 48 * time.Hour, SweepEvery: time.Hour,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for d := 0; d < 5; d++ { // Nov 29 .. Dec 3
		at := now.Add(-time.Duration(d) * 24 * time.Hour)
		for i := range 10 {
			if err := s.Put(ctx, record(fmt.Sprintf("day%d", d), i+1, at)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dropped, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Kept: Dec 3, Dec 2, and Dec 1 (which ends within 48 h of now).
	if fmt.Sprint(dropped) != "[vigil_events_20261129 vigil_events_20261130]" {
		t.Errorf("dropped %v", dropped)
	}
	got, _ := s.Query(ctx, eventstore.Filter{})
	if len(got) != 30 {
		t.Errorf("%d records left, want 30", len(got))
	}
	// A message of a dropped day may be stored again (its msg_id was forgotten with it) — but
	// one of a kept day is still recognised.
	if err := s.Put(ctx, record("day0", 1, now)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Query(ctx, eventstore.Filter{Device: "day0"}); len(got) != 10 {
		t.Errorf("a repeat of a kept message was stored again: %d records", len(got))
	}
}

func TestSchemaNewerThanBinaryIsRefused(t *testing.T) {
	pg := testharness.StartPostgres(t)
	s, err := postgres.OpenEvents(ctx, pg.DSN, postgres.EventsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO vigil_schema_migrations (version, name) VALUES ($1, 'from_the_future')", postgres.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	_, err = postgres.OpenEvents(ctx, pg.DSN, postgres.EventsOptions{})
	if !errors.Is(err, postgres.ErrSchemaTooNew) || !strings.Contains(err.Error(), "--store") {
		t.Fatalf("open: %v, want ErrSchemaTooNew naming --store", err)
	}
}

func TestBadDatabaseSettingsAreNamed(t *testing.T) {
	pg := testharness.StartPostgres(t)
	for _, c := range []struct{ dsn, want string }{
		{"postgres://vigil:s3cret@127.0.0.1:1/vigil?connect_timeout=2", "cannot reach"},
		{strings.Replace(pg.DSN, "/vigil?", "/nosuchdb?", 1), "does not exist"},
		{"postgres://vigil:s3cret@%zz", "not a valid"},
	} {
		_, err := postgres.OpenEvents(ctx, c.dsn, postgres.EventsOptions{})
		if err == nil || !strings.Contains(err.Error(), "--store") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming --store and saying %q", postgres.Redact(c.dsn), err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the password is in the error: %v", err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h:5432/db?sslmode=disable": "postgres://u:" + redact.Placeholder + "@h:5432/db?sslmode=disable",
		"postgres://h/db?password=pw":               "postgres://h/db?password=" + redact.Placeholder,
		"host=h user=u password=pw dbname=db":       "host=h user=u password=" + redact.Placeholder + " dbname=db",
		"postgres://u@h/db":                         "postgres://u@h/db",
		"postgres://u:pw@%zz/db":                    "postgres://" + redact.Placeholder + "@%zz/db",
	} {
		if got := postgres.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSnapshotsBesideEvents(t *testing.T) {
	pg := testharness.StartPostgres(t)
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s, err := postgres.OpenEvents(ctx, pg.DSN, postgres.EventsOptions{MaxAge: 24 * time.Hour, SweepEvery: time.Hour,
		SnapshotWait: 200 * time.Millisecond, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutSnapshot(ctx, "01JEVENTUNKNOWN0000000000", []byte{0xff, 0xd8}); !errors.Is(err, eventstore.ErrUnknownEvent) {
		t.Fatalf("snapshot of an unknown event: %v", err)
	}
	old := record("d1", 1, now.Add(-72*time.Hour))
	old.EventID = "01JOLDEVENT00000000000000"
	fresh := record("d1", 2, now)
	fresh.EventID = "01JNEWEVENT00000000000000"
	for _, r := range []eventstore.Record{old, fresh} {
		if err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := s.PutSnapshot(ctx, r.EventID, []byte("jpeg of "+r.EventID)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutSnapshot(ctx, fresh.EventID, []byte("newer")); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Snapshot(ctx, fresh.EventID); err != nil || string(b) != "newer" {
		t.Fatalf("snapshot: %q %v, want the newest", b, err)
	}
	if _, err := s.Snapshot(ctx, "01JNOSNAP0000000000000000"); !errors.Is(err, eventstore.ErrNoSnapshot) {
		t.Fatalf("missing snapshot: %v", err)
	}
	// The old event's day is dropped: its picture goes with it, the fresh one stays.
	if dropped, err := s.Sweep(ctx); err != nil || len(dropped) != 1 {
		t.Fatalf("sweep: %v %v", dropped, err)
	}
	if _, err := s.Snapshot(ctx, old.EventID); !errors.Is(err, eventstore.ErrNoSnapshot) {
		t.Errorf("the dropped event's picture is still there: %v", err)
	}
	if b, err := s.Snapshot(ctx, fresh.EventID); err != nil || string(b) != "newer" {
		t.Errorf("the kept event's picture: %q %v", b, err)
	}
}

// A cluster with password authentication (scram-sha-256): a wrong password is a clear error
// naming --store and the login, never showing the password; the right one connects.
func TestWrongPasswordIsNamed(t *testing.T) {
	pg := testharness.StartPostgresWith(t, testharness.PostgresOptions{Password: "right-pw-7"})
	wrong := strings.Replace(pg.DSN, "right-pw-7", "wr0ng-pw-9", 1)
	_, err := postgres.OpenEvents(ctx, wrong, postgres.EventsOptions{})
	if err == nil || !strings.Contains(err.Error(), "--store") || !strings.Contains(err.Error(), "refused the login") ||
		!strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("wrong password: %v, want an error naming --store and the refused login", err)
	}
	t.Logf("wrong password: %v", err)
	if strings.Contains(err.Error(), "wr0ng-pw-9") || strings.Contains(err.Error(), "right-pw-7") {
		t.Fatalf("a password is in the error: %v", err)
	}
	noPW := strings.Replace(pg.DSN, ":right-pw-7@", "@", 1)
	t.Setenv("PGPASSWORD", "")
	t.Setenv("PGPASSFILE", "/nonexistent")
	if _, err := postgres.OpenEvents(ctx, noPW, postgres.EventsOptions{}); err == nil || !strings.Contains(err.Error(), "refused the login") {
		t.Fatalf("no password: %v, want the refused login", err)
	}
	s, err := postgres.OpenEvents(ctx, pg.DSN, postgres.EventsOptions{})
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	s.Close()
}
