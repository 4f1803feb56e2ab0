// Package rtsp is the ingest.Source of rtsp:// and rtsps:// cameras: one RTSP session
// (DESCRIBE, SETUP, PLAY) per Run with gortsplib, reading the first H.264 or H.265 video
// track and handing on whole access units in Annex-B.
//
//	camera ─RTP─▶ gortsplib client ─▶ rtph264/rtph265 decoder ─▶ access unit
//	       ─▶ parameter sets before key frames ─▶ frame.Packet ─▶ Run's goroutine ─▶ sink
//
// Packet.PTS is the presentation time from the RTP timestamp, 0 at the first key frame; with
// B-frames it is not increasing in arrival (decode) order. Run does not reconnect:
// ingest.Supervise does. Errors say what went wrong with sentinel
// kinds (ErrUnauthorized, ErrUnreachable, ...) and never contain the password.
package rtsp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"

	"github.com/vigil-edge/vigil/internal/redact"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/ingest"
)

// Kinds of failure; test with errors.Is. Every error of Run is an *Error whose Kind is one
// of these, or nil for anything else (a protocol error, an unsupported track).
var (
	// ErrUnauthorized: the server answered 401 or 403 (credentials missing or wrong).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnreachable: no RTSP conversation was possible (dial failed, refused, reset).
	ErrUnreachable = errors.New("unreachable")
	// ErrNotFound: the server has no stream at the URL's path (404).
	ErrNotFound = errors.New("stream not found")
	// ErrNoVideo: the stream has no H.264 or H.265 video track.
	ErrNoVideo = errors.New("no H.264 or H.265 video track")
	// ErrDisconnected: a playing session ended (server gone, connection lost, no packets
	// for ReadTimeout).
	ErrDisconnected = errors.New("session ended")
)

// Error is the error of a failed session.
type Error struct {
	URL  string // the camera's URL with the password redacted
	Op   string // "connect", "describe", "setup", "play" or "session"
	Kind error  // one of the Err* kinds above, or nil
	Msg  string // details, password removed
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.URL)
	b.WriteString(": ")
	b.WriteString(e.Op)
	if e.Kind != nil {
		b.WriteString(": ")
		b.WriteString(e.Kind.Error())
	}
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	return b.String()
}

// Unwrap returns the kind, for errors.Is.
func (e *Error) Unwrap() error { return e.Kind }

// Transports of Config.Transport.
const (
	TransportAuto = "auto" // UDP first; TCP when SETUP over UDP is refused or no UDP packet comes
	TransportUDP  = "udp"
	TransportTCP  = "tcp"
)

// DefaultReadTimeout is the read timeout when Config.ReadTimeout is 0.
const DefaultReadTimeout = 10 * time.Second

// DefaultSilence is Config.Silence when 0: a camera sends tens of packets a second.
const DefaultSilence = 2 * time.Second

// ErrSilent is the Kind of a session ended by Config.Silence.
var ErrSilent = errors.New("no RTP packets")

// Config describes one camera.
type Config struct {
	// URL is rtsp://[user:pass@]host[:port]/path or rtsps://...
	URL string
	// Transport is TransportAuto (default when empty), TransportUDP or TransportTCP.
	Transport string
	// ReadTimeout bounds the dial, each request, and the time without packets while playing;
	// DefaultReadTimeout when 0. In auto mode, UDP gives way to TCP after 3 s without packets.
	ReadTimeout time.Duration
	// Silence ends a session that has delivered RTP packets and then receives none for this
	// long (a camera that died without closing its connection, or whose UDP stream stopped):
	// DefaultSilence when 0; negative leaves it to ReadTimeout. It applies only after the first
	// packet, so the start (and auto mode's switch to TCP) keeps ReadTimeout.
	Silence time.Duration
	// Logger receives the source's logs; slog.Default() when nil.
	Logger *slog.Logger
}

// Source reads one camera over RTSP. It implements ingest.Source.
type Source struct {
	cfg       Config
	u         *base.URL
	redacted  string
	secrets   []string // password and its escaped forms, to scrub from messages
	transport *gortsplib.Transport
	log       *slog.Logger
}

var _ ingest.Source = (*Source)(nil)

// New validates cfg; it does no I/O.
func New(cfg Config) (*Source, error) {
	u, err := base.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("rtsp source: invalid URL: %s", scrubURLError(cfg.URL, err))
	}
	std := (*url.URL)(u)
	s := &Source{cfg: cfg, u: u, redacted: redact.URL(std.String()), secrets: redact.Secrets(std.String())}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return nil, fmt.Errorf("rtsp source %s: scheme must be rtsp or rtsps", s.redacted)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("rtsp source %s: no host", s.redacted)
	}
	switch cfg.Transport {
	case "", TransportAuto:
		s.cfg.Transport = TransportAuto
	case TransportUDP:
		v := gortsplib.TransportUDP
		s.transport = &v
	case TransportTCP:
		v := gortsplib.TransportTCP
		s.transport = &v
	default:
		return nil, fmt.Errorf("rtsp source %s: transport %q must be auto, udp or tcp", s.redacted, cfg.Transport)
	}
	if cfg.ReadTimeout < 0 {
		return nil, fmt.Errorf("rtsp source %s: read timeout must be >= 0", s.redacted)
	}
	if s.cfg.ReadTimeout == 0 {
		s.cfg.ReadTimeout = DefaultReadTimeout
	}
	if s.cfg.Silence == 0 {
		s.cfg.Silence = DefaultSilence
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s.log = log.With("component", "ingest-rtsp", "url", s.redacted)
	return s, nil
}

// Probe checks cheaply that the camera is reachable: a TCP connection to its RTSP port, closed
// at once (no RTSP request). It returns within ctx's deadline.
func (s *Source) Probe(ctx context.Context) error {
	host := s.u.Host
	if s.u.Port() == "" {
		port := "554"
		if s.u.Scheme == "rtsps" {
			port = "322"
		}
		host = net.JoinHostPort(s.u.Hostname(), port)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return fmt.Errorf("rtsp probe %s: %w", s.redacted, err)
	}
	return c.Close()
}

// scrubURLError keeps a URL parse error from repeating the URL (and its password).
func scrubURLError(raw string, err error) string {
	msg := err.Error()
	if ue, ok := err.(*url.Error); ok {
		msg = ue.Err.Error()
	}
	if i := strings.Index(raw, "@"); i >= 0 {
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			userinfo := raw[j+3 : i]
			if k := strings.Index(userinfo, ":"); k >= 0 && k+1 < len(userinfo) {
				msg = strings.ReplaceAll(msg, userinfo[k+1:], "xxxxx")
			}
		}
	}
	return msg
}

// URL returns the camera's URL with the password redacted.
func (s *Source) URL() string { return s.redacted }

// packetQueue is the hand-over from gortsplib's reading goroutines to Run's goroutine.
const packetQueue = 128

// Run plays the camera until ctx is cancelled (then it returns nil) or the session fails
// (then it returns an *Error). sink is called from Run's goroutine, in order; a packet that
// finds the hand-over queue full is dropped, and so is everything up to the next key frame.
func (s *Source) Run(ctx context.Context, sink func(frame.Packet)) error {
	if ctx.Err() != nil {
		return nil
	}
	sess := &session{src: s, packets: make(chan frame.Packet, packetQueue)}
	return sess.run(ctx, sink)
}

// session is one Run.
type session struct {
	src     *Source
	packets chan frame.Packet

	lastRTP atomic.Int64 // UnixNano of the last RTP packet received; 0 before the first

	mu      sync.Mutex // guards dep and the counters: RTP callbacks may come from several goroutines
	dep     *depacketizer
	counter errorCounter
}

func (ss *session) run(ctx context.Context, sink func(frame.Packet)) (err error) {
	s := ss.src
	u := *s.u // the client keeps the pointer; a copy per session
	c := &gortsplib.Client{
		Scheme:      u.Scheme,
		Host:        u.Host,
		ReadTimeout: s.cfg.ReadTimeout,
		Transport:   s.transport,
		OnTransportSwitch: func(err error) {
			s.log.Info("switching transport", "reason", s.scrub(err.Error()))
		},
		OnPacketsLost: func(lost uint64) {
			ss.mu.Lock()
			ss.counter.add(s.log, "rtp packets lost", int(lost))
			ss.mu.Unlock()
		},
		OnDecodeError: func(err error) {
			ss.mu.Lock()
			ss.counter.add(s.log, "rtp decode errors", 1)
			ss.mu.Unlock()
		},
	}
	if err := c.Start2(); err != nil {
		return s.fail("connect", nil, err)
	}
	clientDone := make(chan error, 1)
	go func() { clientDone <- c.Wait() }()
	closedByCtx := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closedByCtx)
		c.Close()
	})
	defer func() {
		c.Close()
		if !stop() {
			<-closedByCtx
		}
		<-clientDone // ends as soon as the client is closed; buffered, so also when received below
	}()
	cancelled := func(e error) error {
		if ctx.Err() != nil {
			return nil
		}
		return e
	}

	desc, _, err := c.Describe(&u)
	if err != nil {
		return cancelled(s.fail("describe", nil, err))
	}
	medi, forma := findVideo(desc)
	if medi == nil {
		return s.fail("describe", ErrNoVideo, fmt.Errorf("tracks: %s", describeTracks(desc)))
	}
	ss.dep, err = newDepacketizer(forma)
	if err != nil {
		return s.fail("setup", nil, fmt.Errorf("%s track: %w", forma.Codec(), err))
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return cancelled(s.fail("setup", nil, err))
	}
	c.OnPacketRTP(medi, forma, ss.onRTP)
	if _, err := c.Play(nil); err != nil {
		return cancelled(s.fail("play", nil, err))
	}
	s.log.Debug("playing", "codec", ss.dep.name)

	var silence <-chan time.Time
	if s.cfg.Silence > 0 {
		tk := time.NewTicker(min(s.cfg.Silence/4, 250*time.Millisecond))
		defer tk.Stop()
		silence = tk.C
	}
	for {
		select {
		case now := <-silence:
			if last := ss.lastRTP.Load(); last != 0 && now.Sub(time.Unix(0, last)) > s.cfg.Silence {
				return s.fail("session", ErrSilent, fmt.Errorf("none for %s", s.cfg.Silence))
			}
		case p := <-ss.packets:
			if ctx.Err() == nil { // after cancel, nothing more reaches the sink
				sink(p)
			}
		case err := <-clientDone:
			clientDone <- err // for the deferred wait
			if ctx.Err() != nil {
				return nil
			}
			return s.fail("session", ErrDisconnected, err)
		}
	}
}

// onRTP runs on gortsplib's reading goroutine: depacketize, then hand over without blocking.
func (ss *session) onRTP(pkt *rtp.Packet) {
	ss.lastRTP.Store(time.Now().UnixNano())
	ss.mu.Lock()
	defer ss.mu.Unlock()
	p, ok, err := ss.dep.push(pkt, time.Now())
	if err != nil {
		ss.counter.add(ss.src.log, "rtp decode errors", 1)
		return
	}
	if !ok {
		return
	}
	select {
	case ss.packets <- p:
	default:
		ss.dep.needKey = true
		ss.counter.add(ss.src.log, "packets dropped (sink too slow), waiting for a key frame", 1)
	}
}

// findVideo returns the first H.264 or H.265 track.
func findVideo(desc *description.Session) (*description.Media, format.Format) {
	for _, m := range desc.Medias {
		for _, f := range m.Formats {
			switch f.(type) {
			case *format.H264, *format.H265:
				return m, f
			}
		}
	}
	return nil, nil
}

func describeTracks(desc *description.Session) string {
	var parts []string
	for _, m := range desc.Medias {
		for _, f := range m.Formats {
			parts = append(parts, string(m.Type)+"/"+f.Codec())
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// fail builds the *Error of op: kind when given, else classified from err.
func (s *Source) fail(op string, kind error, err error) *Error {
	if kind == nil {
		kind = classify(op, err)
	}
	msg := ""
	if err != nil {
		msg = s.scrub(err.Error())
	}
	return &Error{URL: s.redacted, Op: op, Kind: kind, Msg: msg}
}

// classify maps a gortsplib or network error to a kind, or nil.
func classify(op string, err error) error {
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		switch bad.Code {
		case base.StatusUnauthorized, base.StatusForbidden:
			return ErrUnauthorized
		case base.StatusNotFound:
			return ErrNotFound
		}
		return nil
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr):
		return ErrUnreachable
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return ErrUnreachable
	}
	if op == "session" {
		return ErrDisconnected
	}
	// Before PLAY, a connection that breaks is a camera we cannot talk to.
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, net.ErrClosed) {
		return ErrUnreachable
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return ErrUnreachable
	}
	return nil
}

// scrub removes the password from msg.
func (s *Source) scrub(msg string) string {
	for _, p := range s.secrets {
		if p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// errorCounter summarises per-packet problems: at most one log line a second per kind.
type errorCounter struct {
	counts  map[string]int
	lastLog time.Time
}

func (e *errorCounter) add(log *slog.Logger, what string, n int) {
	if e.counts == nil {
		e.counts = map[string]int{}
	}
	e.counts[what] += n
	if now := time.Now(); now.Sub(e.lastLog) >= time.Second {
		for k, v := range e.counts {
			log.Warn(k, "count", v)
		}
		clear(e.counts)
		e.lastLog = now
	}
}
