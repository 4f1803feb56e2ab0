package postgres_test

import (
	"fmt"
	"testing"

	"github.com/vigil-edge/vigil/fleet/postgres"
	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/fleet/registry/registrytest"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// The registry suite of the bbolt file, on PostgreSQL, with two connection pools as two fleet
// instances.
func TestRegistryStoreConformance(t *testing.T) {
	pg := testharness.StartPostgres(t)
	n := 0
	registrytest.Run(t, func(t *testing.T) (func() registry.Store, bool) {
		n++
		dsn := pg.CreateDB(fmt.Sprintf("reg%d", n))
		return func() registry.Store {
			s, err := postgres.OpenRegistryStore(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, true
	})
}
