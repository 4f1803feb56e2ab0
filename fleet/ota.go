package fleet

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/postgres"
	"github.com/vigil-edge/vigil/fleet/rollout"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// OTAConfig configures the model registry and the rollout engine of a Core.
//
//	vigil-fleet models add ──▶ DATA/catalog.db + artifacts ──▶ GET /models/{name}/{version}/…  ◀── agents
//	POST /api/v1/rollouts ──▶ rollout engine ──cmd/model_update (signed, QoS 1, on the subscriber's connection)──▶ agents
//	                                 ▲
//	                                 └── Feed: new cmd_result and telemetry ◀── registry ◀── subscriber ◀── agents
type OTAConfig struct {
	// DataDir holds catalog.db, the artifacts and rollouts.db; empty turns OTA off. With
	// Events.Postgres the rollouts (and the catalogue) are kept in PostgreSQL instead and one
	// instance at a time runs the rollout engine (see Rollouts).
	DataDir string
	// SigningKey signs the commands (see vigil-fleet keygen); without it rollouts cannot be
	// created, but models are still served.
	SigningKey ed25519.PrivateKey
	// PublicURL is the base of the model URLs sent to agents; http://<HTTP address> when empty.
	PublicURL string
	// Tick is how often the rollout engine checks timeouts and health windows (1 s when zero).
	Tick time.Duration
	// Now is the rollout engine's clock; time.Now when nil.
	Now func() time.Time
	// LeaderRetry is how often an instance sharing PostgreSQL (Events.Postgres) tries to take
	// the rollouts' leader lock, and the leader checks its session (1 s when zero).
	LeaderRetry time.Duration
}

// Rollouts is the rollout API of a Core: its own engine (DATA/rollouts.db), or with
// Events.Postgres the rollouts every instance shares, run by the instance holding the leader
// lock (see postgres.Rollouts). Its methods may be called concurrently.
type Rollouts interface {
	api.Rollouts
	// Connected reports whether the commands' MQTT connection is up.
	Connected() bool
	// Leading reports whether this instance runs the rollout engine (always, on its own).
	Leading() bool
}

// rolloutService is what the Core drives: the API, the feed from ingest, and Close.
type rolloutService interface {
	Rollouts
	Feed(*wire.Decoded)
	Close() error
}

// localRollouts is a fleet on its own: it always leads.
type localRollouts struct{ *rollout.Engine }

func (localRollouts) Leading() bool { return true }

// sharedRollouts are the rollouts in PostgreSQL, with the pool they own.
type sharedRollouts struct {
	*postgres.Rollouts
	pool *pgxpool.Pool
}

func (s sharedRollouts) Close() error {
	err := s.Rollouts.Close()
	s.pool.Close()
	return err
}

// startOTA opens the model registry and starts the rollout engine (with Events.Postgres: the
// competition for the leader lock, see postgres.Rollouts), after the HTTP listener is
// bound (the default public URL is its address) and before the subscriber starts: the engine
// sends its commands through the subscriber's connection and is fed by its handler chain
// (ingestFeed).
func (c *Core) startOTA(cfg Config, pub rollout.Publisher) error {
	o := cfg.OTA
	if o.DataDir == "" {
		return nil
	}
	reg, err := c.openCatalog(cfg) // store.go
	if err != nil {
		return err
	}
	c.models = reg
	ecfg := rollout.Config{
		DataDir:   o.DataDir,
		Publisher: pub,
		Key:       o.SigningKey,
		PublicURL: c.publicURL(cfg),
		Models:    reg,
		Devices:   c.registry,
		Tick:      o.Tick,
		Now:       o.Now,
		Logger:    cfg.Logger,
	}
	if dsn := cfg.Events.Postgres; dsn != "" {
		pool, err := postgres.Connect(context.Background(), dsn)
		if err != nil {
			return fmt.Errorf("rollouts: %w", err)
		}
		svc, err := postgres.StartRollouts(postgres.RolloutsConfig{Pool: pool, Engine: ecfg, Retry: o.LeaderRetry, Logger: cfg.Logger})
		if err != nil {
			pool.Close()
			return err
		}
		c.rollouts = sharedRollouts{Rollouts: svc, pool: pool}
		return nil
	}
	eng, err := rollout.New(ecfg)
	if err != nil {
		return err
	}
	if err := eng.Start(); err != nil {
		_ = eng.Close()
		return err
	}
	c.rollouts = localRollouts{eng}
	return nil
}

// defaultClientID is the ingest subscriber's default MQTT client id, $vigil-fleet/<hostname>
// (see wire.FleetClientPrefix).
func defaultClientID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return wire.FleetClientID(host)
}

func (c *Core) publicURL(cfg Config) string {
	return cmp.Or(cfg.OTA.PublicURL, "http://"+c.httpLn.Addr().String())
}

// otaRoutes adds the model and rollout endpoints to mux when OTA is on.
func (c *Core) otaRoutes(mux *http.ServeMux, cfg Config) {
	if c.models == nil {
		return
	}
	api.RegisterModels(mux, c.models, c.publicURL(cfg), cfg.Logger)
	api.RegisterRollouts(mux, c.rollouts, cfg.Logger)
}

// closeOTA stops the rollout engine, or gives up the leader lock (the registry holds
// nothing open).
func (c *Core) closeOTA() error {
	if c.rollouts == nil {
		return nil
	}
	return c.rollouts.Close()
}

// Models is the core's model registry, or nil when OTA is off.
func (c *Core) Models() *catalog.Registry { return c.models }

// otaKinds are the kinds the rollout engine reads: with a share group they are not shared, so
// that the instance running rollouts sees every device's results and telemetry.
func otaKinds(cfg Config) []string {
	if cfg.OTA.DataDir == "" {
		return nil
	}
	return []string{wire.KindCmdResult, wire.KindTelemetry}
}

// ingestFeed is the start of the subscriber's handler chain: the registry decides what is new,
// and new command results and telemetry go on to the rollout engine (when OTA is on).
type ingestFeed struct{ c *Core }

func (f ingestFeed) Accept(m *wire.Decoded) (bool, error) {
	isNew, err := f.c.registry.Accept(m)
	if isNew && f.c.rollouts != nil {
		f.c.rollouts.Feed(m)
	}
	return isNew, err
}

// Rollouts is the core's rollout API, or nil when OTA is off.
func (c *Core) Rollouts() Rollouts {
	if c.rollouts == nil {
		return nil
	}
	return c.rollouts
}

// rolloutsHealth is the rollout part of /healthz.
func (c *Core) rolloutsHealth() api.RolloutsHealth {
	h := api.RolloutsHealth{Leader: c.rollouts.Leading(), Store: "bbolt"}
	if _, ok := c.rollouts.(sharedRollouts); ok {
		h.Store = "postgres"
	}
	return h
}

// rolloutStates counts the rollouts in each state, for vigil_fleet_rollouts.
func (c *Core) rolloutStates() map[string]int {
	n := map[string]int{}
	for _, r := range c.rollouts.List() {
		n[r.State]++
	}
	return n
}
