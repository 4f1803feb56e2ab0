package eventstore_test

import (
	"path/filepath"
	"testing"

	"github.com/vigil-edge/vigil/fleet/eventstore"
	"github.com/vigil-edge/vigil/fleet/eventstore/eventstoretest"
)

// TestBoltConformance runs the suite every Store backend passes (fleet/postgres runs it too).
func TestBoltConformance(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		s, err := eventstore.Open(filepath.Join(t.TempDir(), "events.db"), eventstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
