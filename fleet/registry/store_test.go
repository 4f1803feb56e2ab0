package registry_test

import (
	"path/filepath"
	"testing"

	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/fleet/registry/registrytest"
)

func TestFileStoreConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) (func() registry.Store, bool) {
		path := filepath.Join(t.TempDir(), registry.FileName)
		return func() registry.Store {
			s, err := registry.OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, false
	})
}
