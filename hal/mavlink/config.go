package mavlink

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/bluenviron/gomavlib/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of [Config].
const (
	DefaultLinkTimeout    = 3 * time.Second
	DefaultMaxAge         = 1 * time.Second
	DefaultHistory        = 10 * time.Second
	DefaultMinFix         = Fix3D
	DefaultUERE           = 4.0 // metres
	DefaultOutSystemID    = 1
	DefaultOutComponentID = 191 // MAV_COMP_ID_ONBOARD_COMPUTER
	DefaultBaud           = 57600
)

// Config configures a [Client]. Zero fields take the defaults above.
type Config struct {
	// Endpoint says where the autopilot is:
	//   udp://[host]:port          listen for UDP (the autopilot sends to us), e.g. udp://0.0.0.0:14550
	//   udpclient://host:port      send to and receive from an autopilot's UDP port
	//   tcp://host:port            TCP client, e.g. tcp://127.0.0.1:5760 (SITL)
	//   serial:///dev/ttyUSB0?baud=57600
	Endpoint string
	// SystemID of the vehicle to follow; 0 follows the first system whose HEARTBEAT names an
	// autopilot. Messages of any other system are ignored and counted (Stats.Foreign).
	SystemID uint8
	// Key, when set, is the MAVLink 2 signing key shared with the autopilot: only frames signed
	// with it are read (unsigned, MAVLink 1 and wrongly signed ones are dropped and counted in
	// Stats.Unsigned), and the client's own frames are signed.
	Key *[32]byte
	// LinkTimeout: the link is down when no autopilot HEARTBEAT came for this long.
	LinkTimeout time.Duration
	// MaxAge: PoseAt(t) fails with ErrStale when t is more than MaxAge after the newest
	// position or attitude sample.
	MaxAge time.Duration
	// History is how much telemetry is kept for interpolation.
	History time.Duration
	// MinFix is the least GPS fix type that gives a pose; below it PoseAt fails with ErrNoFix.
	MinFix FixType
	// UERE is the GPS user-equivalent range error in metres, used to turn HDOP/VDOP into a
	// position sigma when the receiver does not report h_acc/v_acc.
	UERE float64
	// OutSystemID and OutComponentID identify this companion in its own HEARTBEATs.
	OutSystemID, OutComponentID uint8
	// StreamRequest asks ArduPilot autopilots to send their telemetry streams (at 10 Hz).
	StreamRequest bool
	// Logger, if nil, discards.
	Logger *slog.Logger
	// Registerer, if set, receives the client's vigil_mavlink_* collector.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.LinkTimeout == 0 {
		c.LinkTimeout = DefaultLinkTimeout
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.MinFix == 0 {
		c.MinFix = DefaultMinFix
	}
	if c.UERE == 0 {
		c.UERE = DefaultUERE
	}
	if c.OutSystemID == 0 {
		c.OutSystemID = DefaultOutSystemID
	}
	if c.OutComponentID == 0 {
		c.OutComponentID = DefaultOutComponentID
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the config without any I/O.
func (c Config) Validate() error {
	if _, err := ParseEndpoint(c.Endpoint); err != nil {
		return fmt.Errorf("'endpoint': %w", err)
	}
	switch {
	case c.LinkTimeout < 0:
		return fmt.Errorf("'link_timeout' must be > 0, got %v", c.LinkTimeout)
	case c.MaxAge < 0:
		return fmt.Errorf("'max_age' must be > 0, got %v", c.MaxAge)
	case c.History < 0 || (c.History > 0 && c.History < time.Second):
		return fmt.Errorf("'history' must be >= 1s, got %v", c.History)
	case c.MinFix < 0 || c.MinFix > FixPPP:
		return fmt.Errorf("'min_fix' must be 0..8, got %d", c.MinFix)
	case c.UERE < 0:
		return fmt.Errorf("'uere' must be >= 0, got %g", c.UERE)
	}
	return nil
}

// Endpoint is a parsed endpoint string (see Config.Endpoint).
type Endpoint struct {
	Kind    string // "udp", "udpclient", "tcp" or "serial"
	Address string // host:port for the network kinds
	Device  string // serial device path
	Baud    int    // serial speed
}

// String formats the endpoint back into its URL form.
func (e Endpoint) String() string {
	if e.Kind == "serial" {
		return fmt.Sprintf("serial://%s?baud=%d", e.Device, e.Baud)
	}
	return e.Kind + "://" + e.Address
}

// ParseEndpoint parses an endpoint string such as udp://0.0.0.0:14550, udpclient://host:port,
// tcp://host:port or serial:///dev/ttyUSB0?baud=57600.
func ParseEndpoint(s string) (Endpoint, error) {
	if s == "" {
		return Endpoint{}, fmt.Errorf("empty endpoint (want e.g. udp://0.0.0.0:14550)")
	}
	u, err := url.Parse(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("parse %q: %w", s, err)
	}
	switch u.Scheme {
	case "udp", "udpclient", "tcp":
		if u.Path != "" || u.RawQuery != "" || u.User != nil {
			return Endpoint{}, fmt.Errorf("%q: want %s://host:port and nothing else", s, u.Scheme)
		}
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil {
			return Endpoint{}, fmt.Errorf("%q: want %s://host:port: %w", s, u.Scheme, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return Endpoint{}, fmt.Errorf("%q: port %q must be 1..65535", s, port)
		}
		if host == "" && u.Scheme != "udp" {
			return Endpoint{}, fmt.Errorf("%q: %s needs a host to connect to", s, u.Scheme)
		}
		return Endpoint{Kind: u.Scheme, Address: net.JoinHostPort(host, port)}, nil
	case "serial":
		if u.Host != "" || u.Path == "" {
			return Endpoint{}, fmt.Errorf("%q: want serial:///dev/NAME?baud=N (three slashes)", s)
		}
		e := Endpoint{Kind: "serial", Device: u.Path, Baud: DefaultBaud}
		q := u.Query()
		for k := range q {
			if k != "baud" {
				return Endpoint{}, fmt.Errorf("%q: unknown option %q (only baud)", s, k)
			}
		}
		if b := q.Get("baud"); b != "" {
			n, err := strconv.Atoi(b)
			if err != nil || n < 1200 || n > 4000000 {
				return Endpoint{}, fmt.Errorf("%q: baud %q must be a number in 1200..4000000", s, b)
			}
			e.Baud = n
		}
		return e, nil
	case "":
		return Endpoint{}, fmt.Errorf("%q: missing scheme (udp, udpclient, tcp or serial)", s)
	default:
		return Endpoint{}, fmt.Errorf("%q: unknown scheme %q (udp, udpclient, tcp or serial)", s, u.Scheme)
	}
}

func (e Endpoint) gomavlib() gomavlib.EndpointConf {
	switch e.Kind {
	case "udp":
		return gomavlib.EndpointUDPServer{Address: e.Address}
	case "udpclient":
		return gomavlib.EndpointUDPClient{Address: e.Address}
	case "tcp":
		return gomavlib.EndpointTCPClient{Address: e.Address}
	default:
		return gomavlib.EndpointSerial{Device: e.Device, Baud: e.Baud}
	}
}
