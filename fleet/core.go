// Package fleet is the fleet controller: its Core owns the long-lived components and wires
// them together.
//
//	agents ──MQTT──▶ broker (embedded mochi, or an external one)
//	                   │
//	                   ▼ QoS 1
//	                 ingest (paho subscriber) ──▶ registry ◀── api (HTTP) ◀── vigil-fleet watch
//	                                                    ▲
//	                                                    └──── metrics (GET /metrics) ◀── Prometheus
//
// Components are created in that order (broker, registry, ingest, HTTP) and closed in reverse.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/broker"
	"github.com/vigil-edge/vigil/fleet/ingest"
	"github.com/vigil-edge/vigil/fleet/metrics"
	"github.com/vigil-edge/vigil/fleet/registry"
)

// DefaultHTTPAddr is where the API listens by default.
const DefaultHTTPAddr = "127.0.0.1:8080"

// Config configures a Core.
type Config struct {
	// MQTTListen is the embedded broker's TCP address (broker.DefaultAddr when empty); unused
	// when Broker is set.
	MQTTListen string
	// Broker is an external broker's URL (tcp://host:port). When set, no broker is embedded.
	Broker string
	// HTTPListen is the API's address; DefaultHTTPAddr when empty. Port 0 picks a free one.
	HTTPListen string
	// ClientID is the subscriber's MQTT client id; vigil-fleet-<hostname> when empty.
	ClientID string
	// Registry tunes the device registry (gap timeout, limits, clock); zero fields take its
	// defaults.
	Registry registry.Options
	// MetricsPerDevice adds per-device series to /metrics; their number grows with the fleet.
	MetricsPerDevice bool
	Logger           *slog.Logger // slog.Default() when nil
}

// Core is a running fleet controller.
type Core struct {
	log      *slog.Logger
	broker   *broker.Broker // nil with an external broker
	registry *registry.Registry
	ingest   *ingest.Subscriber
	httpLn   net.Listener
	httpSrv  *http.Server
	httpDone chan struct{}
	failed   chan error // 1-buffered: a component stopped by itself
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
	c := &Core{log: cfg.Logger, httpDone: make(chan struct{}), failed: make(chan error, 1)}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()

	brokerURL := cfg.Broker
	if brokerURL == "" {
		b, err := broker.New(broker.Config{Addr: cfg.MQTTListen, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		if err := b.Start(); err != nil {
			return nil, err
		}
		c.broker = b
		brokerURL = b.URL()
	}

	c.registry = registry.New(cfg.Registry)

	sub, err := ingest.New(ingest.Config{BrokerURL: brokerURL, ClientID: cfg.ClientID, Logger: cfg.Logger}, c.registry)
	if err != nil {
		return nil, err
	}
	if err := sub.Start(); err != nil {
		return nil, err
	}
	c.ingest = sub

	prom := metrics.New(c.registry, c.ingest, metrics.Options{PerDevice: cfg.MetricsPerDevice})
	ln, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return nil, fmt.Errorf("http: listen: %w", err)
	}
	c.httpLn = ln
	c.httpSrv = &http.Server{
		Handler:           api.Handler(c.registry, c.ingest, metrics.Handler(prom, cfg.Logger), cfg.Logger),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.With("component", "http").Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(c.httpDone)
		if err := c.httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			c.failed <- fmt.Errorf("http: serve: %w", err)
		}
	}()
	c.log.Info("fleet controller started", "http", ln.Addr().String(), "broker", brokerURL, "embedded", c.broker != nil)
	return c, nil
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

// Registry is the core's device registry.
func (c *Core) Registry() *registry.Registry { return c.registry }

// Failed delivers an error when a component stops by itself; the caller should then Close.
func (c *Core) Failed() <-chan error { return c.failed }

// Close stops the HTTP API, the subscriber and the broker, in that order, and waits for them.
// Call it once.
func (c *Core) Close() error {
	var errs []error
	if c.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: shutdown: %w", err))
			_ = c.httpSrv.Close()
		}
		cancel()
		<-c.httpDone
	}
	if c.ingest != nil {
		if err := c.ingest.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.broker != nil {
		if err := c.broker.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	c.log.Info("fleet controller stopped")
	return errors.Join(errs...)
}
