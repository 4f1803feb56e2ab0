package postgres_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/eventstore"
	"github.com/vigil-edge/vigil/fleet/postgres"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// TestEventQueryLatency (make bench; skipped unless VIGIL_SCALE_LOAD=1) fills the PostgreSQL
// event store with VIGIL_SCALE_EVENTS records (10 million) over 7 days from 2,000 devices ×
// 2 cameras, then times the API's event queries (newest first, 100 per page, as
// /api/v1/events asks) with each filter, 200 times each, and prints p50 and p99.
func TestEventQueryLatency(t *testing.T) {
	if os.Getenv("VIGIL_SCALE_LOAD") != "1" {
		t.Skip("load test: set VIGIL_SCALE_LOAD=1 (make bench runs it)")
	}
	n := envInt(t, "VIGIL_SCALE_EVENTS", 10_000_000)
	pg := testharness.StartPostgres(t)
	ctx := context.Background()
	now := time.Now().UTC()
	s, err := postgres.OpenEvents(ctx, pg.DSN, postgres.EventsOptions{MaxAge: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const days = 7
	// One Put per day makes its partition; the bulk goes in with SQL.
	for d := range days {
		at := now.Add(-time.Duration(d) * 24 * time.Hour)
		if err := s.Put(ctx, eventstore.Record{Kind: eventstore.KindEvent, Device: "seed", Camera: "cam1", MsgID: fmt.Sprintf("seed-x-%d", d),
			Seq: uint64(d + 1), CapturedAt: at.UnixMilli(), ReceivedAt: at, Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	span := int64(days-1) * 24 * 3600 * 1000
	from := now.UnixMilli() - span
	pool := s.Pool()
	const chunk = 1_000_000
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		_, err := pool.Exec(ctx, `INSERT INTO vigil_events (received_ms, kind, device, camera, labels, rule_id, event_id, alert_id, msg_id, seq, captured_ms, payload)
			SELECT $1::bigint + (i::bigint * $2::bigint / $3::bigint),
				(ARRAY['event','alert','detections'])[1 + i % 3],
				'dev' || lpad((i % 2000)::text, 4, '0'),
				'cam' || (1 + (i / 2000) % 2),
				CASE WHEN i % 7 = 0 THEN ARRAY['car'] WHEN i % 11 = 0 THEN ARRAY['truck','car'] ELSE ARRAY['person'] END,
				CASE WHEN i % 3 = 1 THEN 'line' || (i % 5) ELSE '' END, '', '',
				'bulk-' || i, i, $1::bigint + (i::bigint * $2::bigint / $3::bigint) - 40, '{"bulk":true}'::bytea
			FROM generate_series($4::bigint, $5::bigint - 1) AS i`, from, span, n, lo, hi)
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, "ANALYZE vigil_events"); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("event queries: %d records over %d days loaded in %.0f s\n", n, days, time.Since(start).Seconds())
	mid := time.UnixMilli(from + span/2)
	for _, q := range []struct {
		name string
		f    eventstore.Filter
	}{
		{"newest", eventstore.Filter{}},
		{"device", eventstore.Filter{Device: "dev0042"}},
		{"device+camera", eventstore.Filter{Device: "dev0042", Camera: "cam2"}},
		{"kind=alert", eventstore.Filter{Kind: eventstore.KindAlert}},
		{"label=truck", eventstore.Filter{Label: "truck"}},
		{"rule=line3", eventstore.Filter{RuleID: "line3"}},
		{"device+kind+label", eventstore.Filter{Device: "dev0077", Kind: eventstore.KindEvent, Label: "car"}},
		{"1 h window", eventstore.Filter{Since: mid, Until: mid.Add(time.Hour)}},
		{"device, 1 day, oldest", eventstore.Filter{Device: "dev1999", Since: mid, Until: mid.Add(24 * time.Hour), Oldest: true}},
		{"absent device", eventstore.Filter{Device: "nobody"}},
	} {
		var took []time.Duration
		for i := range 200 {
			f := q.f
			f.Limit = 100
			if i%2 == 1 && q.f.Device != "" { // page 2
				first, _ := s.Query(ctx, f)
				if len(first) > 0 {
					p := first[len(first)-1].Position()
					f.After = &p
				}
			}
			t0 := time.Now()
			if _, err := s.Query(ctx, f); err != nil {
				t.Fatal(err)
			}
			took = append(took, time.Since(t0))
		}
		slices.Sort(took)
		fmt.Printf("  %-24s p50 %6.1f ms  p99 %6.1f ms\n", q.name, ms2(took[len(took)/2]), ms2(took[len(took)*99/100]))
	}
}

func ms2(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
