package broker

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of [Limits].
const (
	// DefaultMaxPacketSize bounds every MQTT packet: room for the largest real message, an
	// event snapshot JPEG of a few hundred kB (base64 in JSON: 4/3 of it), with a margin.
	DefaultMaxPacketSize = 2 << 20
	// DefaultMaxConnectSize bounds the first packet, CONNECT, read before authentication.
	DefaultMaxConnectSize = 64 << 10
	// DefaultConnectTimeout is how long a new connection has to send its CONNECT (and finish
	// the TLS handshake).
	DefaultConnectTimeout = 10 * time.Second
	// DefaultMaxConnections bounds open connections, authenticated or not.
	DefaultMaxConnections = 20_000
	// DefaultConnectRate and DefaultConnectBurst bound new connections per remote address:
	// a burst of 50 (a site of cameras behind one NAT reconnecting), then 5 per second.
	DefaultConnectRate  = 5.0
	DefaultConnectBurst = 50
)

// maxTracked bounds the remote addresses the rate limit remembers.
const maxTracked = 100_000

// Limits bound what a client can make the broker hold before and after it authenticates.
// Zero fields take the defaults; a negative value turns a limit off.
type Limits struct {
	MaxPacketSize  int           // bytes of any packet (mochi's maximum packet size)
	MaxConnectSize int           // bytes of the first packet, which must be CONNECT
	ConnectTimeout time.Duration // from accept to a complete CONNECT (TLS handshake included)
	MaxConnections int           // open connections; further ones are closed at once
	ConnectRate    float64       // new connections per second per remote IP address
	ConnectBurst   int           // and their burst
	// RateLoopback applies the connect rate to loopback addresses too. By default they are
	// exempt: the fleet's own clients, local tools and simulators, and a local proxy (behind
	// which every client shares one address) connect from there.
	RateLoopback bool
}

func (l Limits) withDefaults() Limits {
	if l.MaxPacketSize == 0 {
		l.MaxPacketSize = DefaultMaxPacketSize
	}
	if l.MaxConnectSize == 0 {
		l.MaxConnectSize = DefaultMaxConnectSize
	}
	if l.ConnectTimeout == 0 {
		l.ConnectTimeout = DefaultConnectTimeout
	}
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.ConnectRate == 0 {
		l.ConnectRate = DefaultConnectRate
	}
	if l.ConnectBurst == 0 {
		l.ConnectBurst = DefaultConnectBurst
	}
	return l
}

// Reasons a connection is refused before mochi sees a CONNECT; keys of [Stats.Refused].
const (
	RefuseMaxConnections = "max_connections"   // Limits.MaxConnections reached
	RefuseRate           = "rate_limited"      // the address connected too often
	RefuseConnectSize    = "connect_too_large" // the first packet claims more than MaxConnectSize
	RefuseNotConnect     = "not_connect"       // the first packet is not a CONNECT
	RefuseTimeout        = "connect_timeout"   // no complete CONNECT within ConnectTimeout
)

// Stats counts the broker's refusals since it started.
type Stats struct {
	Open    int64             `json:"open"`    // open connections
	Refused map[string]uint64 `json:"refused"` // by reason
}

// guard applies Limits to the connections of the broker's listeners. Its methods may be called
// concurrently.
type guard struct {
	lim  Limits
	open atomic.Int64

	mu      sync.Mutex
	refused map[string]uint64
	buckets map[string]*bucket
	conns   map[*countedConn]struct{} // open connections, for closeAll
	now     func() time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newGuard(lim Limits) *guard {
	return &guard{lim: lim.withDefaults(), refused: map[string]uint64{}, buckets: map[string]*bucket{},
		conns: map[*countedConn]struct{}{}, now: time.Now}
}

func (g *guard) count(reason string) {
	g.mu.Lock()
	g.refused[reason]++
	g.mu.Unlock()
}

func (g *guard) stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := Stats{Open: g.open.Load(), Refused: make(map[string]uint64, len(g.refused))}
	for k, v := range g.refused {
		s.Refused[k] = v
	}
	return s
}

// allow takes a token of ip's bucket.
func (g *guard) allow(ip string) bool {
	if g.lim.ConnectRate < 0 || g.lim.ConnectBurst < 0 {
		return true
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.buckets[ip]
	if b == nil {
		if len(g.buckets) >= maxTracked {
			g.prune(now)
		}
		b = &bucket{tokens: float64(g.lim.ConnectBurst), last: now}
		g.buckets[ip] = b
	}
	b.tokens = min(float64(g.lim.ConnectBurst), b.tokens+now.Sub(b.last).Seconds()*g.lim.ConnectRate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// prune forgets the addresses whose bucket is full again (or all, if none is); g.mu is held.
func (g *guard) prune(now time.Time) {
	for ip, b := range g.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*g.lim.ConnectRate >= float64(g.lim.ConnectBurst) {
			delete(g.buckets, ip)
		}
	}
	if len(g.buckets) >= maxTracked {
		clear(g.buckets)
	}
}

// limitListener refuses connections over the cap or the rate, and gives the others the
// CONNECT deadline. It wraps the raw TCP listener (under TLS, if any).
type limitListener struct {
	net.Listener
	g *guard
}

func (l limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(ip); err == nil {
			ip = h
		}
		reason := ""
		switch {
		case l.g.lim.MaxConnections > 0 && l.g.open.Load() >= int64(l.g.lim.MaxConnections):
			reason = RefuseMaxConnections
		case (l.g.lim.RateLoopback || !isLoopback(ip)) && !l.g.allow(ip):
			reason = RefuseRate
		}
		if reason != "" {
			l.g.count(reason)
			_ = c.Close()
			continue
		}
		l.g.open.Add(1)
		if l.g.lim.ConnectTimeout > 0 {
			_ = c.SetDeadline(l.g.now().Add(l.g.lim.ConnectTimeout)) // mochi sets its keepalive deadline after CONNECT
		}
		cc := &countedConn{Conn: c, g: l.g}
		l.g.mu.Lock()
		l.g.conns[cc] = struct{}{}
		l.g.mu.Unlock()
		return cc, nil
	}
}

func isLoopback(ip string) bool {
	a := net.ParseIP(ip)
	return a != nil && a.IsLoopback()
}

// countedConn gives its slot back when closed.
type countedConn struct {
	net.Conn
	g    *guard
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.g.open.Add(-1)
		c.g.mu.Lock()
		delete(c.g.conns, c)
		c.g.mu.Unlock()
	})
	return c.Conn.Close()
}

// closeAll closes every open connection, including those mochi does not list yet (a client
// still authenticating): at shutdown, mochi waits for each connection's goroutine, and one
// that finished authenticating after the listeners closed would otherwise read forever.
func (g *guard) closeAll() {
	g.mu.Lock()
	conns := make([]*countedConn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// connectListener checks the first packet of each connection, in plain text (above TLS).
type connectListener struct {
	net.Listener
	g *guard
}

func (l connectListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &connectConn{Conn: c, g: l.g}
	if tc, ok := c.(*tls.Conn); ok {
		return tlsConnectConn{cc, tc}, nil
	}
	return cc, nil
}

var (
	errConnectSize = errors.New("broker: the first packet claims more than the maximum CONNECT size")
	errNotConnect  = errors.New("broker: the first packet is not a CONNECT")
)

// connectConn reads through the first packet's fixed header as mochi reads it and fails the
// read when the packet is not a CONNECT or claims more than MaxConnectSize: mochi would
// allocate the claimed size before reading it.
type connectConn struct {
	net.Conn
	g    *guard
	done bool // the fixed header was checked
	n    int  // header bytes seen
	size int  // remaining length decoded so far
	mult int
}

func (c *connectConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.done {
		return n, err
	}
	for _, b := range p[:n] {
		if c.n == 0 {
			if b>>4 != 1 { // packet type 1: CONNECT
				c.g.count(RefuseNotConnect)
				return 0, errNotConnect
			}
			c.n, c.mult = 1, 1
			continue
		}
		c.size += int(b&0x7f) * c.mult
		c.mult *= 128
		c.n++
		if c.g.lim.MaxConnectSize > 0 && c.size > c.g.lim.MaxConnectSize || c.n > 5 {
			c.g.count(RefuseConnectSize)
			return 0, errConnectSize
		}
		if b&0x80 == 0 {
			c.done = true
			break
		}
	}
	var ne net.Error
	if !c.done && errors.As(err, &ne) && ne.Timeout() {
		c.g.count(RefuseTimeout)
	}
	return n, err
}

// tlsConnectConn is a connectConn over TLS that still tells its TLS state (the auth hook
// reads client certificates from it).
type tlsConnectConn struct {
	*connectConn
	tc *tls.Conn
}

// ConnectionState is the TLS connection's state.
func (c tlsConnectConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }
