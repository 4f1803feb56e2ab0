// Package eventstoretest is the conformance suite every eventstore.Store backend passes (the
// embedded bbolt store and the PostgreSQL one): order, filters, paging, time ranges and
// concurrent writers. Only tests import it.
package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/eventstore"
)

// Open makes a new, empty store for one subtest; the suite closes it.
type Open func(t *testing.T) eventstore.Store

// t0 is an hour ago, so no store's default age limit removes the fixture during a test.
var t0 = time.Now().UTC().Add(-time.Hour).Truncate(time.Second)

func rec(i int, kind, device, camera, rule string, labels ...string) eventstore.Record {
	return eventstore.Record{Kind: kind, Device: device, Camera: camera, RuleID: rule, Labels: labels,
		MsgID: fmt.Sprintf("%s-e1-%d", device, i), Seq: uint64(i),
		// The device's clock runs backwards here: the store must order by receive time.
		CapturedAt: t0.Add(-time.Duration(i) * time.Minute).UnixMilli(),
		ReceivedAt: t0.Add(time.Duration(i) * time.Second), Payload: []byte(fmt.Sprintf(`{"i":%d}`, i))}
}

// fixture is 30 records received one second apart: kinds, devices, cameras, rules and labels
// vary with i.
func fixture() []eventstore.Record {
	var rs []eventstore.Record
	kinds := []string{eventstore.KindEvent, eventstore.KindAlert, eventstore.KindDetections}
	for i := 1; i <= 30; i++ {
		rule := ""
		if i%3 == 2 {
			rule = fmt.Sprintf("line%d", i%2)
		}
		labels := []string{"person"}
		if i%5 == 0 {
			labels = []string{"car", "truck"}
		}
		rs = append(rs, rec(i, kinds[i%3], fmt.Sprintf("dev%d", i%4), fmt.Sprintf("cam%d", i%2), rule, labels...))
	}
	return rs
}

func seqs(rs []eventstore.Record) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

// expect is the fixture filtered and ordered as f asks, by brute force.
func expect(all []eventstore.Record, f eventstore.Filter) []uint64 {
	var out []uint64
	for i := range all {
		r := all[i]
		if f.Oldest == false {
			r = all[len(all)-1-i]
		}
		at := r.ReceivedAt
		if !f.Since.IsZero() && at.Before(f.Since) || !f.Until.IsZero() && !at.Before(f.Until) || !f.Match(r) {
			continue
		}
		out = append(out, r.Seq)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out
}

// Run runs the suite against the stores open makes.
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	put := func(t *testing.T, s eventstore.Store, rs []eventstore.Record) {
		for _, r := range rs {
			if err := s.Put(ctx, r); err != nil {
				t.Fatalf("put %s: %v", r.MsgID, err)
			}
		}
	}
	t.Run("filters and order", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		all := fixture()
		put(t, s, all)
		for _, f := range []eventstore.Filter{
			{}, {Oldest: true}, {Limit: 5}, {Oldest: true, Limit: 7},
			{Kind: eventstore.KindAlert}, {Device: "dev1"}, {Device: "dev2", Camera: "cam0"}, {Camera: "cam1"},
			{Label: "car"}, {Label: "truck", Kind: eventstore.KindEvent}, {RuleID: "line1"}, {Label: "nobody"},
			{Since: t0.Add(10 * time.Second)}, {Until: t0.Add(10 * time.Second)},
			{Since: t0.Add(5 * time.Second), Until: t0.Add(20 * time.Second), Oldest: true, Kind: eventstore.KindEvent},
		} {
			got, err := s.Query(ctx, f)
			if err != nil {
				t.Fatalf("%+v: %v", f, err)
			}
			want := expect(all, f)
			if fmt.Sprint(seqs(got)) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
				t.Errorf("%+v: got %v, want %v", f, seqs(got), want)
			}
		}
		got, _ := s.Query(ctx, eventstore.Filter{Device: "dev3", Limit: 1})
		if len(got) != 1 || got[0].Seq != 27 || string(got[0].Payload) != `{"i":27}` || got[0].Camera != "cam1" ||
			got[0].CapturedAt != all[26].CapturedAt || !got[0].ReceivedAt.Equal(all[26].ReceivedAt) || got[0].ID == 0 {
			t.Errorf("record not kept as put: %+v", got)
		}
	})
	t.Run("paging", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		all := fixture()
		put(t, s, all)
		for _, oldest := range []bool{false, true} {
			var got []uint64
			f := eventstore.Filter{Oldest: oldest, Limit: 4, Kind: eventstore.KindDetections}
			for range 20 {
				page, err := s.Query(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) == 0 {
					break
				}
				got = append(got, seqs(page)...)
				p := page[len(page)-1].Position()
				f.After = &p
			}
			want := expect(all, eventstore.Filter{Oldest: oldest, Kind: eventstore.KindDetections})
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("oldest=%v: pages gave %v, want %v", oldest, got, want)
			}
		}
	})
	t.Run("concurrent writers", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 400)
		for w := range 20 {
			wg.Go(func() {
				for i := range 20 {
					r := rec(w*100+i+1, eventstore.KindEvent, fmt.Sprintf("w%d", w), "cam", "", "person")
					r.ReceivedAt = time.Now()
					if err := s.Put(ctx, r); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, err := s.Query(ctx, eventstore.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[uint64]bool{}
		for _, r := range got {
			ids[r.ID] = true
		}
		if len(got) != 400 || len(ids) != 400 {
			t.Errorf("stored %d records with %d distinct ids, want 400", len(got), len(ids))
		}
	})
	t.Run("closed", func(t *testing.T) {
		s := open(t)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, rec(1, eventstore.KindEvent, "d", "c", "")); !errors.Is(err, eventstore.ErrClosed) {
			t.Errorf("put after close: %v, want ErrClosed", err)
		}
	})
}
