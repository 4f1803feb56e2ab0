// Package fleet is the fleet controller: its Core owns the long-lived components and wires
// them together.
//
//	agents ──MQTT──▶ broker (embedded mochi, or an external one)
//	                   │
//	                   ▼ QoS 1
//	                 ingest (paho subscriber) ──▶ registry ◀── api (HTTP) ◀── vigil-fleet watch
//	                       │                            ▲
//	                       ▼                            └──── metrics (GET /metrics) ◀── Prometheus
//	                  web hub ──▶ GET /api/v1/stream ──▶ dashboard (GET /)
//
// With credentials or client certificates the embedded broker authenticates every client and
// applies the topic ACL (fleet/auth); with API tokens every HTTP endpoint but /healthz, the
// dashboard's page and the model files needs a bearer token. Without tokens the API listens
// only on loopback, and in every case web pages cannot drive it (auth.Browser: Origin, Host,
// JSON writes).
//
// Components are created in that order (broker, registry, ingest, HTTP) and closed in reverse.
package fleet

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/auth"
	"github.com/vigil-edge/vigil/fleet/broker"
	"github.com/vigil-edge/vigil/fleet/catalog"
	"github.com/vigil-edge/vigil/fleet/eventstore"
	"github.com/vigil-edge/vigil/fleet/exporter"
	"github.com/vigil-edge/vigil/fleet/liveview"
	"github.com/vigil-edge/vigil/fleet/registry"
	"github.com/vigil-edge/vigil/fleet/subscriber"
	"github.com/vigil-edge/vigil/fleet/web"
	"github.com/vigil-edge/vigil/internal/redact"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// DefaultHTTPAddr is where the API listens by default.
const DefaultHTTPAddr = "127.0.0.1:8080"

// DefaultFleetUser is the MQTT identity of the Core's own clients when the embedded broker
// authenticates.
const DefaultFleetUser = "vigil-fleet"

// Config configures a Core.
type Config struct {
	// MQTTListen is the embedded broker's TCP address (broker.DefaultAddr when empty); unused
	// when Broker is set.
	MQTTListen string
	// Broker is an external broker's URL (tcp://host:port). When set, no broker is embedded.
	// User information in it (tcp://user:password@host) is taken out of the URL and used as
	// BrokerUsername and BrokerPassword; the URL is only ever shown without a password.
	Broker string
	// BrokerUsername and BrokerPassword authenticate the fleet's own MQTT clients to the
	// external broker (vigil-fleet serve --broker-username, --broker-password-file or
	// $VIGIL_FLEET_BROKER_PASSWORD). Giving a password both here and in Broker is an error.
	BrokerUsername, BrokerPassword string
	// HTTPListen is the API's address; DefaultHTTPAddr when empty. Port 0 picks a free one.
	HTTPListen string
	// ClientID names the fleet's MQTT client (one connection: the subscriber, which also sends
	// the rollout engine's and live views' commands); the client id is wire.FleetClientPrefix +
	// ClientID ($vigil-fleet/<hostname> when empty), a prefix no device id can have. Each
	// instance sharing a broker needs its own.
	ClientID string
	// ShareGroup makes several instances split the device traffic of an external broker through
	// the shared subscription $share/<ShareGroup>/… (status still reaches every instance); use
	// it with Events.Postgres so that they share what they store. Empty: one instance takes all.
	ShareGroup string
	// Ingest takes the device traffic from a nats-server cluster through NATS JetStream
	// instead of MQTT subscriptions (nats://host:port,…; see subscriber.Config.Ingest): for a
	// broker that is itself a cluster without MQTT shared subscriptions. Broker must name the
	// same cluster's MQTT listener(s), for status and commands. Several instances with the
	// same IngestGroup split the traffic. Exclusive with ShareGroup.
	Ingest      string
	IngestGroup string // "vigil-fleet" when empty
	// Registry tunes the device registry (gap timeout, limits, clock); zero fields take its
	// defaults.
	Registry registry.Options
	// RegistryFile saves the device registry to this bbolt file (vigil-fleet serve --data puts
	// it at DATA/registry.db), so a restart forgets no device; empty keeps it in memory.
	// With Events.Postgres the registry is kept in PostgreSQL instead (see store.go).
	RegistryFile string
	// MetricsPerDevice adds per-device series to /metrics; their number grows with the fleet.
	MetricsPerDevice bool
	Logger           *slog.Logger // slog.Default() when nil

	// MQTTTLS adds a TLS listener to the embedded broker; with a client CA, clients must
	// present certificates.
	MQTTTLS *broker.TLS
	// MQTTLimits bound what clients can make the embedded broker hold (packet size, time to
	// CONNECT, open connections, connect rate per address); zero fields take the defaults.
	MQTTLimits broker.Limits
	// MQTTHashIterations is the PBKDF2 strength that weaker password hashes of the credentials
	// file are re-hashed to at login, and what a login with an unknown user name costs
	// (auth.DefaultIterations when zero).
	MQTTHashIterations int
	// MQTTCredentials is the embedded broker's credentials file (see fleet/auth). With it, or
	// with a client CA in MQTTTLS, every client must authenticate and the topic ACL applies.
	MQTTCredentials string
	// FleetUser is the identity of the Core's own MQTT clients (DefaultFleetUser when empty);
	// their password is a random secret made at every start, known to no one else.
	FleetUser string
	// MapTiles is a map tile URL template ({z}/{x}/{y}) the dashboard draws drone detections
	// on; empty: a scaled plane.
	MapTiles string
	// APITokens guards the HTTP API (see fleet/auth); nil leaves it open.
	APITokens *auth.Tokens

	// OTA: model registry and rollouts (see ota.go); both are off when DataDir is empty.
	OTA OTAConfig
	// Events: the event store (see events.go).
	Events EventsConfig
}

// Core is a running fleet controller.
type Core struct {
	log      *slog.Logger
	broker   *broker.Broker // nil with an external broker
	registry *registry.Registry
	ingest   *subscriber.Subscriber
	hub      *web.Hub
	httpLn   net.Listener
	httpSrv  *http.Server
	httpDone chan struct{}
	failed   chan error // 1-buffered: a component stopped by itself

	mqttAuth *auth.MQTT // nil when the embedded broker allows everyone
	// mqttUser and mqttPassword authenticate the Core's own MQTT clients: to the embedded
	// broker when mqttAuth is set, to an external broker when it was given credentials. The
	// password is never logged.
	mqttUser, mqttPassword string

	models   *catalog.Registry // nil without OTA.DataDir
	rollouts rolloutService    // nil without OTA.DataDir (ota.go)

	events    eventstore.Store // bbolt (default) or PostgreSQL (Events.Postgres)
	recorder  *eventstore.Recorder
	live      *liveview.Views // current view of cameras (signed live_view commands)
	eventsTmp string          // the event store's temporary folder, without Events.DataDir
	closers   []func()        // run last by Close: connections of the PostgreSQL stores
}

// New starts a fleet controller: the embedded broker (unless cfg.Broker names an external one),
// the registry, the MQTT subscriber and the HTTP API. On error, what was started is closed.
func New(cfg Config) (_ *Core, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = DefaultHTTPAddr
	}
	if cfg.ClientID == "" {
		cfg.ClientID = defaultClientID()
	}
	cfg.ClientID = wire.FleetClientID(cfg.ClientID)
	if err := checkOpenAPI(cfg); err != nil {
		return nil, err
	}
	c := &Core{log: cfg.Logger, httpDone: make(chan struct{}), failed: make(chan error, 1)}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()

	brokerURL := cfg.Broker
	if cfg.Ingest != "" && brokerURL == "" {
		return nil, errors.New("--ingest needs --broker: the MQTT listener(s) of the same nats-server cluster, for status and commands")
	}
	if brokerURL != "" {
		if brokerURL, c.mqttUser, c.mqttPassword, err = brokerCredentials(cfg); err != nil {
			return nil, err
		}
	} else {
		bcfg := broker.Config{Addr: cfg.MQTTListen, Logger: cfg.Logger, TLS: cfg.MQTTTLS, Limits: cfg.MQTTLimits}
		if cfg.MQTTCredentials != "" || cfg.MQTTTLS != nil && cfg.MQTTTLS.ClientCAFile != "" {
			if err := c.newMQTTAuth(cfg); err != nil {
				return nil, err
			}
			bcfg.Auth = c.mqttAuth
		}
		b, err := broker.New(bcfg)
		if err != nil {
			return nil, err
		}
		if err := b.Start(); err != nil {
			return nil, err
		}
		c.broker = b
		brokerURL = b.URL()
	}

	// With a share group this instance sees a share of each device's seqs.
	cfg.Registry.Shared = cfg.Registry.Shared || cfg.ShareGroup != "" || cfg.Ingest != ""
	if c.registry, err = openRegistry(cfg); err != nil { // store.go
		return nil, err
	}

	recorder, err := c.startEvents(cfg)
	if err != nil {
		return nil, err
	}
	c.hub = web.NewHub(web.HubOptions{Logger: cfg.Logger})
	sub, err := subscriber.New(subscriber.Config{BrokerURL: brokerURL, ClientID: cfg.ClientID, Logger: cfg.Logger,
		Username: c.mqttUser, Password: c.mqttPassword, ShareGroup: cfg.ShareGroup, Unshared: otaKinds(cfg),
		Ingest: cfg.Ingest, IngestGroup: cfg.IngestGroup,
		OnFatal: func(err error) {
			select {
			case c.failed <- err:
			default:
			}
		}},
		c.hub.Wrap(c.newLive(cfg).Wrap(recorder)))
	if err != nil {
		return nil, err
	}
	c.ingest = sub

	prom := exporter.New(c.registry, c.ingest, exporter.Options{PerDevice: cfg.MetricsPerDevice})
	prom.MustRegister(newSnapshotCollector(c.recorder))
	ln, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return nil, fmt.Errorf("http: listen: %w", err)
	}
	c.httpLn = ln
	if err := c.startOTA(cfg, sub); err != nil { // before the subscriber: it feeds the engine
		_ = ln.Close()
		return nil, err
	}
	if err := sub.Start(); err != nil {
		_ = ln.Close()
		return nil, err
	}
	if c.rollouts != nil {
		prom.MustRegister(exporter.Rollouts(c.rolloutStates), exporter.RolloutLeader(c.rollouts.Leading))
	}
	c.httpSrv = &http.Server{
		Handler:           c.handler(cfg, api.Handler(c.registry, c.ingest, exporter.Handler(prom, cfg.Logger), cfg.Logger, c.apiOptions()...)),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.With("component", "http").Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(c.httpDone)
		if err := c.httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			c.failed <- fmt.Errorf("http: serve: %w", err)
		}
	}()
	c.log.Info("fleet controller started", "http", ln.Addr().String(), "broker", redact.URL(brokerURL), "embedded", c.broker != nil,
		"broker_user", c.mqttUser)
	return c, nil
}

// brokerCredentials splits an external broker's URL into the URL without user information and
// the fleet's user name and password, from the URL or from cfg.BrokerUsername/BrokerPassword.
// Errors never show the password.
//
// Broker may list several URLs, comma-separated (nodes of one cluster): each is treated so.
func brokerCredentials(cfg Config) (brokerURL, user, password string, err error) {
	if list := strings.Split(cfg.Broker, ","); len(list) > 1 {
		urls := make([]string, len(list))
		for i, b := range list {
			one := cfg
			one.Broker = strings.TrimSpace(b)
			var u, p string
			if urls[i], u, p, err = brokerCredentials(one); err != nil {
				return "", "", "", err
			}
			if i > 0 && (u != user || p != password) {
				return "", "", "", fmt.Errorf("broker url %q: the nodes of --broker have different credentials", redact.URL(one.Broker))
			}
			user, password = u, p
		}
		return strings.Join(urls, ","), user, password, nil
	}
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return "", "", "", fmt.Errorf("broker url %q: %w", redact.URL(cfg.Broker), errors.Unwrap(err))
	}
	user, password = cfg.BrokerUsername, cfg.BrokerPassword
	if u.User != nil {
		if p, has := u.User.Password(); has {
			if password != "" {
				return "", "", "", fmt.Errorf("broker url %q: the broker password is given twice (in the URL and as --broker-password-file or $VIGIL_FLEET_BROKER_PASSWORD)", redact.URL(cfg.Broker))
			}
			password = p
		}
		if name := u.User.Username(); name != "" {
			if user != "" && user != name {
				return "", "", "", fmt.Errorf("broker url %q: user %q differs from --broker-username %q", redact.URL(cfg.Broker), name, user)
			}
			user = name
		}
		u.User = nil
	}
	if password != "" && user == "" {
		return "", "", "", errors.New("broker: a password without a user name: give --broker-username")
	}
	return u.String(), user, password, nil
}

// newMQTTAuth makes the embedded broker's auth hook: the credentials file's identities plus
// the Core's own, with a fresh random secret.
func (c *Core) newMQTTAuth(cfg Config) error {
	creds := auth.NewCredentials()
	if cfg.MQTTCredentials != "" {
		var err error
		if creds, err = auth.LoadCredentials(cfg.MQTTCredentials); err != nil {
			return err
		}
	}
	if cfg.MQTTHashIterations != 0 {
		if err := creds.SetIterations(cfg.MQTTHashIterations); err != nil {
			return err
		}
	}
	var secret [32]byte
	_, _ = rand.Read(secret[:])
	c.mqttUser, c.mqttPassword = cmp.Or(cfg.FleetUser, DefaultFleetUser), hex.EncodeToString(secret[:])
	if err := creds.SetFleet(c.mqttUser, c.mqttPassword); err != nil {
		return err
	}
	c.mqttAuth = auth.NewMQTT(creds, cfg.Logger)
	return nil
}

func (c *Core) apiOptions() []api.Option {
	var opts []api.Option
	if c.mqttAuth != nil {
		opts = append(opts, api.WithMQTTAuth(c.mqttAuth.Stats))
	}
	if c.broker != nil {
		opts = append(opts, api.WithBrokerStats(c.broker.Stats))
	}
	if c.rollouts != nil {
		opts = append(opts, api.WithRollouts(c.rolloutsHealth))
	}
	return opts
}

// handler puts the dashboard and its stream beside the API and, with tokens, guards them
// all but /healthz, the dashboard's page (it holds no data) and the model files (agents fetch
// them and verify their signatures; they hold no API token).
func (c *Core) handler(cfg Config, apiHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	page := web.PageWith(web.PageOptions{TileURL: cfg.MapTiles})
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /static/", page)
	mux.Handle("GET /api/v1/stream", c.hub)
	mux.Handle("/", apiHandler)
	c.otaRoutes(mux, cfg)
	c.eventRoutes(mux, cfg)
	api.RegisterLive(mux, c.live, c.registry, cfg.Logger)
	// Web pages must not drive the API (CSRF, DNS rebinding): without tokens, a loopback API
	// also checks Host (New refuses any other address without tokens).
	guard := auth.Browser{CheckHost: cfg.APITokens == nil}
	if cfg.APITokens == nil {
		return guard.Middleware(mux)
	}
	public := func(r *http.Request) bool {
		return r.URL.Path == "/healthz" || web.IsPage(r) ||
			(r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, "/models/")
	}
	return guard.Middleware(cfg.APITokens.Middleware(mux, public))
}

// checkOpenAPI refuses an API without tokens on an address other machines can reach.
func checkOpenAPI(cfg Config) error {
	if cfg.APITokens != nil {
		return nil
	}
	host, _, err := net.SplitHostPort(cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("http: listen address %q: %w", cfg.HTTPListen, err)
	}
	if !isLoopback(host) {
		return fmt.Errorf("http: %s is not a loopback address and the API has no tokens: anyone who reaches it could "+
			"start rollouts; give tokens (--api-tokens, --admin-token or $VIGIL_FLEET_ADMIN_TOKEN) or listen on 127.0.0.1", cfg.HTTPListen)
	}
	return nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// HTTPAddr is the address the API listens on.
func (c *Core) HTTPAddr() string { return c.httpLn.Addr().String() }

// BrokerAddr is the embedded broker's address, or "" with an external broker.
func (c *Core) BrokerAddr() string {
	if c.broker == nil {
		return ""
	}
	return c.broker.Addr()
}

// BrokerTLSAddr is the embedded broker's TLS address, or "" without one.
func (c *Core) BrokerTLSAddr() string {
	if c.broker == nil {
		return ""
	}
	return c.broker.TLSAddr()
}

// MQTTAuthStats returns the embedded broker's access-control counters; ok is false when it
// allows everyone.
func (c *Core) MQTTAuthStats() (_ auth.MQTTStats, ok bool) {
	if c.mqttAuth == nil {
		return auth.MQTTStats{}, false
	}
	return c.mqttAuth.Stats(), true
}

// Registry is the core's device registry.
func (c *Core) Registry() *registry.Registry { return c.registry }

// Ingest is the fleet's MQTT subscriber (and NATS ingest).
func (c *Core) Ingest() *subscriber.Subscriber { return c.ingest }

// Failed delivers an error when a component stops by itself; the caller should then Close.
func (c *Core) Failed() <-chan error { return c.failed }

// Close stops the HTTP API, the subscriber, the registry (saving it) and the broker, in that
// order, and waits for them.
// Call it once.
func (c *Core) Close() error {
	var errs []error
	if c.hub != nil {
		c.hub.Close() // ends the dashboards' streams, which would hold Shutdown up
	}
	if c.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: shutdown: %w", err))
			_ = c.httpSrv.Close()
		}
		cancel()
		<-c.httpDone
	}
	if err := c.closeOTA(); err != nil {
		errs = append(errs, err)
	}
	if c.ingest != nil {
		if err := c.ingest.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.closeEvents(); err != nil { // after ingest: nothing feeds it any more
		errs = append(errs, err)
	}
	if c.registry != nil {
		if err := c.registry.Close(); err != nil { // after ingest: saves its last messages
			errs = append(errs, err)
		}
	}
	if c.broker != nil {
		if err := c.broker.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range c.closers {
		f()
	}
	c.log.Info("fleet controller stopped")
	return errors.Join(errs...)
}

// newLive makes the live view: commands signed with the OTA key, sent on the subscriber's
// connection (made after it).
func (c *Core) newLive(cfg Config) *liveview.Views {
	c.live = liveview.New(liveview.Config{Key: cfg.OTA.SigningKey, Publish: func(topic string, payload []byte) error {
		return c.ingest.Publish(topic, payload, 5*time.Second)
	}})
	return c.live
}
