package fleet

import (
	"cmp"
	"crypto/ed25519"
	"net/http"
	"os"
	"time"

	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/rollout"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// OTAConfig configures the model registry and the rollout engine of a Core.
//
//	vigil-fleet models add ──▶ DATA/catalog.db + artifacts ──▶ GET /models/{name}/{version}/…  ◀── agents
//	POST /api/v1/rollouts ──▶ rollout engine ──cmd/model_update (signed, QoS 1)──▶ agents
//	                                 ▲
//	                                 └── cmd_result/+ and telemetry ◀── agents
type OTAConfig struct {
	// DataDir holds catalog.db, the artifacts and rollouts.db; empty turns OTA off.
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
}

// startOTA opens the model registry and starts the rollout engine, after the HTTP listener is
// bound (the default public URL is its address).
func (c *Core) startOTA(cfg Config, brokerURL string) error {
	o := cfg.OTA
	if o.DataDir == "" {
		return nil
	}
	reg, err := catalog.Open(o.DataDir)
	if err != nil {
		return err
	}
	c.models = reg
	eng, err := rollout.New(rollout.Config{
		DataDir:   o.DataDir,
		BrokerURL: brokerURL,
		ClientID:  cmp.Or(cfg.ClientID, defaultClientID()) + "-rollout",
		Username:  c.mqttUser,
		Password:  c.mqttPassword,
		Key:       o.SigningKey,
		PublicURL: c.publicURL(cfg),
		Models:    reg,
		Devices:   c.registry,
		Tick:      o.Tick,
		Now:       o.Now,
		Logger:    cfg.Logger,
	})
	if err != nil {
		return err
	}
	if err := eng.Start(); err != nil {
		_ = eng.Close()
		return err
	}
	c.rollouts = eng
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

// closeOTA stops the rollout engine (the registry holds nothing open).
func (c *Core) closeOTA() error {
	if c.rollouts == nil {
		return nil
	}
	return c.rollouts.Close()
}

// Models is the core's model registry, or nil when OTA is off.
func (c *Core) Models() *catalog.Registry { return c.models }

// Rollouts is the core's rollout engine, or nil when OTA is off.
func (c *Core) Rollouts() *rollout.Engine { return c.rollouts }

// rolloutStates counts the rollouts in each state, for vigil_fleet_rollouts.
func (c *Core) rolloutStates() map[string]int {
	n := map[string]int{}
	for _, r := range c.rollouts.List() {
		n[r.State]++
	}
	return n
}
