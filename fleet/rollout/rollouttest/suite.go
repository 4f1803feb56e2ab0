// Package rollouttest is the conformance suite every rollout.Store backend passes (the bbolt
// store and the PostgreSQL one): what Save stored is what Load returns, also after a reopen;
// Save replaces by id and writes all of its rollouts or none. Only tests import it.
package rollouttest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet/rollout"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Open opens the store called name for one subtest: opening a name again (after the suite
// closed the store opened before) gives the same stored rollouts; a new name gives an empty
// store. The suite closes every store it opens.
type Open func(t *testing.T, name string) rollout.Store

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// sample is a rollout of n devices in the middle of its first wave, with every kind of field
// set: times, maps, pointers, floats.
func sample(id string, n int, at time.Time) rollout.Rollout {
	spec := rollout.Spec{Model: "yolox_nano@2.0.0", Devices: "all", Canary: 1, Waves: []float64{50, 100},
		HealthWindow: rollout.Duration(2 * time.Minute), MinDetectionRatio: 0.5, ActiveTimeout: rollout.Duration(10 * time.Minute)}
	r := rollout.Rollout{ID: id, Spec: spec, State: rollout.StateWave, Step: 1, Phase: rollout.PhaseUpdating,
		Model:     wire.ModelRef{Name: "yolox_nano", Version: "2.0.0", SHA256: strings.Repeat("ab", 32), URL: "http://fleet/models/yolox_nano/2.0.0/model.onnx"},
		Bounds:    []int{1, (n + 1) / 2, n},
		CreatedAt: at, UpdatedAt: at.Add(90 * time.Second), StepStartedAt: at.Add(80 * time.Second)}
	for i := range n {
		d := rollout.DeviceProgress{ID: fmt.Sprintf("dev-%04d", i), Step: min(i, 1), State: rollout.DeviceWaiting}
		if i == 0 {
			d.State, d.CmdID, d.SentAt, d.ActiveAt, d.ActiveCapturedAt = rollout.DeviceActive, id+"-update-"+d.ID, at.Add(time.Second), at.Add(5*time.Second), at.Add(5*time.Second).UnixMilli()
			d.PrevModel = &wire.Model{Name: "yolox_nano", Version: "1.0.0"}
			d.Baseline, d.BaselineSamples, d.PostSum, d.PostSamples = 3.25, 10, 31.5, 9
			d.ErrorsBase = map[string]uint64{"cam1": 0, "cam2": 7}
		}
		if i == 1 {
			d.State, d.Percent, d.Reason = wire.CmdDownloading, 42.5, "retry after: busy"
		}
		r.Devices = append(r.Devices, d)
	}
	return r
}

// same compares rollouts by their JSON form (the API's and the stores' view of them), in id
// order.
func same(t *testing.T, what string, got, want []rollout.Rollout) {
	t.Helper()
	js := func(rs []rollout.Rollout) string {
		rs = slices.Clone(rs)
		slices.SortFunc(rs, func(a, b rollout.Rollout) int { return strings.Compare(a.ID, b.ID) })
		b, err := json.Marshal(rs)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if g, w := js(got), js(want); g != w {
		if len(g) > 600 {
			g, w = g[:600]+"…", w[:min(600, len(w))]+"…"
		}
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// Run runs the suite against the stores open makes.
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	use := func(t *testing.T, name string, fn func(s rollout.Store)) {
		t.Helper()
		s := open(t, name)
		defer func() {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}()
		fn(s)
	}
	load := func(t *testing.T, s rollout.Store) []rollout.Rollout {
		t.Helper()
		rs, err := s.Load(ctx)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		return rs
	}

	t.Run("EmptyLoadsNothing", func(t *testing.T) {
		use(t, "empty", func(s rollout.Store) {
			if rs := load(t, s); len(rs) != 0 {
				t.Fatalf("a new store holds %d rollouts", len(rs))
			}
			if err := s.Save(ctx, nil); err != nil {
				t.Fatalf("save of nothing: %v", err)
			}
		})
	})

	t.Run("SavedIsLoadedAfterReopen", func(t *testing.T) {
		want := []rollout.Rollout{sample("ro-a", 3, t0), sample("ro-b", 1, t0.Add(time.Minute))}
		use(t, "reopen", func(s rollout.Store) {
			load(t, s)
			if err := s.Save(ctx, want); err != nil {
				t.Fatal(err)
			}
			same(t, "loaded from the same store", load(t, s), want)
		})
		use(t, "reopen", func(s rollout.Store) {
			same(t, "loaded after a reopen", load(t, s), want)
		})
	})

	t.Run("SaveReplacesByID", func(t *testing.T) {
		use(t, "replace", func(s rollout.Store) {
			load(t, s)
			a, b := sample("ro-a", 4, t0), sample("ro-b", 2, t0.Add(time.Second))
			if err := s.Save(ctx, []rollout.Rollout{a, b}); err != nil {
				t.Fatal(err)
			}
			a.State, a.Phase, a.Reason, a.EndedAt = rollout.StateRolledBack, "", "device dev-0001 failed to update", t0.Add(time.Hour)
			a.Devices = a.Devices[:1] // whole rollouts are replaced, not merged
			if err := s.Save(ctx, []rollout.Rollout{a}); err != nil {
				t.Fatal(err)
			}
			same(t, "after replacing ro-a", load(t, s), []rollout.Rollout{a, b})
		})
	})

	t.Run("SaveIsAllOrNothing", func(t *testing.T) {
		use(t, "atomic", func(s rollout.Store) {
			load(t, s)
			a := sample("ro-a", 2, t0)
			if err := s.Save(ctx, []rollout.Rollout{a}); err != nil {
				t.Fatal(err)
			}
			changed, bad := a, sample("ro-bad", 2, t0)
			changed.State = rollout.StatePaused
			bad.Devices[0].Baseline = math.NaN() // cannot be written
			if err := s.Save(ctx, []rollout.Rollout{changed, bad}); err == nil {
				t.Fatal("a rollout that cannot be written was saved")
			}
			same(t, "after a failed save", load(t, s), []rollout.Rollout{a})
		})
	})

	t.Run("ManyDevicesAndRollouts", func(t *testing.T) {
		var want []rollout.Rollout
		for i := range 20 {
			want = append(want, sample(fmt.Sprintf("ro-%02d", i), 1+i*50, t0.Add(time.Duration(i)*time.Minute)))
		}
		use(t, "many", func(s rollout.Store) {
			load(t, s)
			for i := 0; i < len(want); i += 7 {
				if err := s.Save(ctx, want[i:min(i+7, len(want))]); err != nil {
					t.Fatal(err)
				}
			}
		})
		use(t, "many", func(s rollout.Store) { same(t, "20 rollouts of up to 951 devices", load(t, s), want) })
	})
}
