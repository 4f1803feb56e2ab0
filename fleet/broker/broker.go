// Package broker is the fleet controller's embedded MQTT broker (mochi-mqtt): agents connect to
// it, publish their status and detections, and the fleet's own subscriber reads them back.
//
// Access control is a seam: [Config.Auth] takes any mochi hook that answers
// OnConnectAuthenticate and OnACLCheck (fleet/auth has Vigil's: per-device credentials,
// client certificates and the topic ACL); without one everyone is allowed. [Config.TLS] adds a
// TLS listener beside the plain TCP one, requiring client certificates when it names a CA.
package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultAddr is the TCP address the broker listens on by default.
const DefaultAddr = "127.0.0.1:1883"

// DefaultTLSAddr is the TLS listener's address by default.
const DefaultTLSAddr = "127.0.0.1:8883"

// TLS configures the broker's TLS listener.
type TLS struct {
	Addr     string // listen address; DefaultTLSAddr when empty; port 0 picks a free one
	CertFile string // the server's certificate chain (PEM); required
	KeyFile  string // its private key (PEM); required
	// ClientCAFile (PEM), when set, makes client certificates required: a client must present
	// one signed by these CAs, or the handshake fails. The auth hook may then take the
	// client's identity from the certificate.
	ClientCAFile string
}

// Config configures a Broker.
type Config struct {
	Addr   string       // TCP listen address; DefaultAddr when empty; port 0 picks a free one
	Logger *slog.Logger // slog.Default() when nil; mochi's own logs go here at warn and above
	// Auth authenticates clients and checks topic access: a mochi hook providing
	// OnConnectAuthenticate and OnACLCheck. Nil allows everything.
	Auth mqtt.Hook
	// TLS, when set, adds a TLS listener.
	TLS *TLS
	// Limits bound packet sizes, the time to CONNECT, open connections and the connect rate
	// per address, so that clients cannot exhaust the broker before they authenticate.
	Limits Limits
}

// Broker is a running embedded MQTT broker. Start it once; Close it once.
type Broker struct {
	cfg    Config
	srv    *mqtt.Server
	tcp    *listeners.Net
	tls    *listeners.Net // nil without Config.TLS
	guard  *guard
	closed sync.Once
}

// New validates cfg and prepares a broker; it does no I/O.
func New(cfg Config) (*Broker, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Auth == nil {
		cfg.Auth = new(auth.AllowHook)
	}
	if cfg.TLS != nil {
		t := *cfg.TLS
		if t.Addr == "" {
			t.Addr = DefaultTLSAddr
		}
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, errors.New("broker: tls: a certificate and a key file are required")
		}
		cfg.TLS = &t
	}
	return &Broker{cfg: cfg}, nil
}

// Start listens on the configured address and serves clients in the background. It returns
// once the listener is bound; the address is then in [Broker.Addr].
func (b *Broker) Start() error {
	if b.srv != nil {
		return errors.New("broker already started")
	}
	log := slog.New(warnOnly{b.cfg.Logger.With("component", "broker").Handler()})
	g := newGuard(b.cfg.Limits)
	caps := mqtt.NewDefaultServerCapabilities()
	if g.lim.MaxPacketSize > 0 {
		caps.MaximumPacketSize = uint32(g.lim.MaxPacketSize)
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: log, Capabilities: caps})
	if err := srv.AddHook(b.cfg.Auth, nil); err != nil {
		_ = srv.Close()
		return fmt.Errorf("broker: add auth hook: %w", err)
	}
	raw, err := net.Listen("tcp", b.cfg.Addr)
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("broker: listen on %s: %w", b.cfg.Addr, err)
	}
	tcp := listeners.NewNet("tcp", connectListener{limitListener{raw, g}, g})
	if err := srv.AddListener(tcp); err != nil {
		_ = raw.Close()
		_ = srv.Close()
		return fmt.Errorf("broker: listen on %s: %w", b.cfg.Addr, err)
	}
	var tl *listeners.Net
	if t := b.cfg.TLS; t != nil {
		conf, err := serverTLS(t)
		if err != nil {
			_ = srv.Close()
			return err
		}
		rawTLS, err := net.Listen("tcp", t.Addr)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("broker: tls: listen on %s: %w", t.Addr, err)
		}
		tl = listeners.NewNet("tls", connectListener{tls.NewListener(limitListener{rawTLS, g}, conf), g})
		if err := srv.AddListener(tl); err != nil {
			_ = rawTLS.Close()
			_ = srv.Close()
			return fmt.Errorf("broker: tls: listen on %s: %w", t.Addr, err)
		}
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.srv, b.tcp, b.tls, b.guard = srv, tcp, tl, g
	b.cfg.Logger.Info("mqtt broker listening", "component", "broker", "addr", tcp.Address())
	if tl != nil {
		b.cfg.Logger.Info("mqtt broker listening with tls", "component", "broker", "addr", tl.Address(),
			"client_certificates", b.cfg.TLS.ClientCAFile != "")
	}
	return nil
}

// serverTLS loads the TLS listener's certificate and, when given, the client CAs.
func serverTLS(t *TLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("broker: tls: load certificate: %w", err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("broker: tls: client ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("broker: tls: client ca %s: no PEM certificate in it", t.ClientCAFile)
		}
		conf.ClientCAs, conf.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// Addr is the address the broker listens on (host:port), valid after Start.
func (b *Broker) Addr() string {
	if b.tcp == nil {
		return b.cfg.Addr
	}
	return b.tcp.Address()
}

// URL is the broker's address as a client URL (tcp://host:port), valid after Start.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// TLSAddr is the TLS listener's address (host:port), valid after Start; "" without one.
func (b *Broker) TLSAddr() string {
	switch {
	case b.tls != nil:
		return b.tls.Address()
	case b.cfg.TLS != nil:
		return b.cfg.TLS.Addr
	}
	return ""
}

// Stats returns the connections the broker refused before their CONNECT was read, by reason,
// and how many are open; zero before Start.
func (b *Broker) Stats() Stats {
	if b.guard == nil {
		return Stats{Refused: map[string]uint64{}}
	}
	return b.guard.stats()
}

// Close disconnects every client, stops listening and waits for the client goroutines to end.
// Safe to call more than once and before Start.
func (b *Broker) Close() error {
	var err error
	b.closed.Do(func() {
		if b.srv != nil {
			// mochi's own client closer (Clients.GetByListener) takes a read lock twice, and
			// deadlocks when a client going away asks for the write lock between the two:
			// close the listeners and their clients first with a closer that locks once; the
			// server's Close then finds them closed.
			srv := b.srv
			srv.Listeners.CloseAll(func(listener string) {
				for _, cl := range srv.Clients.GetAll() {
					if cl.Net.Listener == listener && !cl.Closed() {
						_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
					}
				}
				b.guard.closeAll() // and those not listed yet: still connecting or authenticating
			})
			err = srv.Close()
		}
	})
	if err != nil {
		return fmt.Errorf("broker: close: %w", err)
	}
	return nil
}

// warnOnly passes records at warn level and above to the wrapped handler: mochi logs every
// connect and disconnect at info. Mochi also warns, with an empty message, about every client
// connection that ends with an error; an end of stream or a connection closed at shutdown is
// normal and dropped, the rest get a message.
type warnOnly struct{ slog.Handler }

func (w warnOnly) Handle(ctx context.Context, r slog.Record) error {
	if r.Message != "" {
		return w.Handler.Handle(ctx, r)
	}
	normal := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Key == "error" {
			normal = errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
		}
		return true
	})
	if normal {
		return nil
	}
	// Mochi's key for errors is "error"; ours is "err".
	out := slog.NewRecord(r.Time, r.Level, "client connection ended", r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" {
			a.Key = "err"
		}
		out.AddAttrs(a)
		return true
	})
	return w.Handler.Handle(ctx, out)
}

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}

func (w warnOnly) WithAttrs(a []slog.Attr) slog.Handler { return warnOnly{w.Handler.WithAttrs(a)} }

func (w warnOnly) WithGroup(n string) slog.Handler { return warnOnly{w.Handler.WithGroup(n)} }
