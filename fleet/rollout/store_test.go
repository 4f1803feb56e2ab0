package rollout_test

import (
	"path/filepath"
	"testing"

	"github.com/vigil-edge/vigil/fleet/rollout"
	"github.com/vigil-edge/vigil/fleet/rollout/rollouttest"
)

// TestBoltConformance runs the suite every rollout Store passes (fleet/postgres runs it too).
func TestBoltConformance(t *testing.T) {
	dir := t.TempDir()
	rollouttest.Run(t, func(t *testing.T, name string) rollout.Store {
		s, err := rollout.OpenBolt(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
