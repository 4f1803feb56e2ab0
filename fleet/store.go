package fleet

import (
	"context"
	"fmt"

	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/postgres"
	"github.com/vigil-edge/vigil/fleet/registry"
)

// openRegistry opens the device registry: in PostgreSQL with Events.Postgres (table
// vigil_devices; with a share group every instance merges what it saw there and shows the
// fleet's view, see registry.OpenStore), else in cfg.RegistryFile, else in memory.
func openRegistry(cfg Config) (*registry.Registry, error) {
	if cfg.Registry.Logger == nil {
		cfg.Registry.Logger = cfg.Logger
	}
	if dsn := cfg.Events.Postgres; dsn != "" {
		st, err := postgres.OpenRegistryStore(context.Background(), dsn)
		if err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		r, err := registry.OpenStore(st, cfg.Registry)
		if err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("registry: --store %s: %w", postgres.Redact(dsn), err)
		}
		if cfg.RegistryFile != "" {
			cfg.Logger.Info("the device registry is kept in PostgreSQL (--store); the registry file is not used",
				"component", "registry", "file", cfg.RegistryFile)
		}
		return r, nil
	}
	if cfg.RegistryFile == "" {
		return registry.New(cfg.Registry), nil
	}
	return registry.Open(cfg.RegistryFile, cfg.Registry)
}

// openCatalog opens the model catalogue: in PostgreSQL with Events.Postgres (the files of
// OTA.DataDir are then a cache, see catalog.OpenShared), else in OTA.DataDir. The signing key
// is never in the database: every instance that adds models or starts rollouts needs the same
// key file.
func (c *Core) openCatalog(cfg Config) (*catalog.Registry, error) {
	dsn := cfg.Events.Postgres
	if dsn == "" {
		return catalog.Open(cfg.OTA.DataDir)
	}
	pc, err := postgres.OpenCatalog(context.Background(), dsn)
	if err != nil {
		return nil, fmt.Errorf("model registry: %w", err)
	}
	c.closers = append(c.closers, pc.Close)
	return catalog.OpenShared(cfg.OTA.DataDir, pc)
}
