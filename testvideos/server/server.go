// Package server is a real RTSP server of video files, for tests and demos: each file plays in
// a loop at real-time pace at rtsp://ADDR/<name>, where name is the file's base name without
// its extension, like a live camera that never stops.
//
// Files that already hold H.264 or H.265 are remuxed (no transcode); anything else is
// transcoded once to H.264 (1 s GOP, no B-frames) into a cache folder. Readers may use UDP or
// TCP, and may be required to authenticate.
//
//	ffprobe/ffmpeg ─▶ Annex-B ─▶ access units ─▶ RTP (90 kHz, paced) ─▶ gortsplib.ServerStream ─▶ readers
package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"
)

// DefaultAddr is the address served when Config.Addr is empty.
const DefaultAddr = "127.0.0.1:8554"

// Config says what to serve and how.
type Config struct {
	// Addr is the RTSP (TCP) listen address; DefaultAddr when empty. Port 0 picks a free
	// port: Server.Addr tells which after Start.
	Addr string
	// Files are the videos to serve; their names (base name without extension) must differ.
	Files []string
	// User and Pass, when either is set, are required of every reader; others get 401.
	User, Pass string
	// CacheDir holds transcoded files; by default <user cache dir>/vigil/testvideos
	// ($XDG_CACHE_HOME or ~/.cache on Linux).
	CacheDir string
	// UDPPort is the even RTP port of the UDP transport (RTCP uses UDPPort+1); 0 picks a free
	// pair at Start.
	UDPPort int
	// DisableUDP offers readers the TCP transport only (SETUP over UDP gets 461).
	DisableUDP bool
	// Logger receives the server's logs; slog.Default() when nil.
	Logger *slog.Logger
}

// Server serves video files over RTSP.
//
// Call contract: New, then Start once, then Close (any number of times, from any goroutine).
// URL, Names and Addr may be called at any time, concurrently.
type Server struct {
	cfg   Config
	log   *slog.Logger
	clips []*clip

	closeOnce sync.Once

	mu      sync.RWMutex
	started bool
	closed  bool
	addr    string // the listening address, once started
	rtsp    *gortsplib.Server
	streams map[string]*liveStream
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// liveStream is one clip being played to its readers.
type liveStream struct {
	clip   *clip
	stream *gortsplib.ServerStream
	media  *description.Media
	enc    rtpEncoder
}

// rtpEncoder is what rtph264.Encoder and rtph265.Encoder have in common.
type rtpEncoder interface {
	// Encode packetizes one access unit; the caller sets the packets' timestamps.
	Encode(au [][]byte) ([]*rtp.Packet, error)
}

// New validates cfg and prepares every file (probe, then remux or cached transcode). It
// returns an error naming the file that is missing or is not a video.
func New(cfg Config) (*Server, error) {
	return NewContext(context.Background(), cfg)
}

// NewContext is New with a context that cancels the preparation (ffprobe, ffmpeg).
func NewContext(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("testvideos server: bad address %q: %w", cfg.Addr, err)
	}
	if cfg.UDPPort < 0 || cfg.UDPPort%2 != 0 || cfg.UDPPort > 65534 {
		return nil, fmt.Errorf("testvideos server: UDP port %d must be even and in 0..65534", cfg.UDPPort)
	}
	if len(cfg.Files) == 0 {
		return nil, errors.New("testvideos server: no video files given")
	}
	if cfg.CacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("testvideos server: no cache folder given and none found: %w", err)
		}
		cfg.CacheDir = filepath.Join(d, "vigil", "testvideos")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, log: log.With("component", "testvideos-server")}
	seen := map[string]string{}
	for _, f := range cfg.Files {
		c, err := prepareClip(ctx, f, cfg.CacheDir, s.log)
		if err != nil {
			return nil, fmt.Errorf("testvideos server: %w", err)
		}
		if prev, dup := seen[c.name]; dup {
			return nil, fmt.Errorf("testvideos server: %s and %s would both be served as %q", prev, f, c.name)
		}
		seen[c.name] = f
		s.clips = append(s.clips, c)
		s.log.Debug("prepared", "file", f, "name", c.name, "codec", c.codec, "pictures", len(c.aus),
			"loop", time.Duration(c.period)*time.Second/clockRate)
	}
	return s, nil
}

// Names returns the stream names, in the order of Config.Files.
func (s *Server) Names() []string {
	names := make([]string, len(s.clips))
	for i, c := range s.clips {
		names[i] = c.name
	}
	return names
}

// Addr returns the RTSP listening address: the real one after Start, Config.Addr before.
func (s *Server) Addr() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.addr != "" {
		return s.addr
	}
	return s.cfg.Addr
}

// URL returns the address of the named stream, without credentials.
func (s *Server) URL(name string) string {
	return "rtsp://" + s.Addr() + "/" + name
}

// Start listens and starts playing every file. It may be called once.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("testvideos server: Start called twice or after Close")
	}
	s.started = true

	srv := &gortsplib.Server{
		Handler:     &handler{s: s},
		RTSPAddress: s.cfg.Addr,
		Listen: func(network, address string) (net.Listener, error) {
			l, err := net.Listen(network, address)
			if err == nil {
				s.addr = l.Addr().String() // under s.mu: Start holds it
			}
			return l, err
		},
	}
	var udp []*net.UDPConn
	if !s.cfg.DisableUDP {
		host, _, _ := net.SplitHostPort(s.cfg.Addr)
		var err error
		udp, err = listenUDPPair(host, s.cfg.UDPPort)
		if err != nil {
			return fmt.Errorf("testvideos server: %w", err)
		}
		srv.UDPRTPAddress = udp[0].LocalAddr().String()
		srv.UDPRTCPAddress = udp[1].LocalAddr().String()
		srv.ListenPacket = func(_, address string) (net.PacketConn, error) {
			for _, c := range udp {
				if c.LocalAddr().String() == address {
					return c, nil
				}
			}
			return nil, fmt.Errorf("unexpected UDP listen on %s", address)
		}
	}
	if err := srv.Start(); err != nil {
		for _, c := range udp {
			_ = c.Close()
		}
		return fmt.Errorf("testvideos server: listen on %s: %w", s.cfg.Addr, err)
	}
	streams := make(map[string]*liveStream, len(s.clips))
	for _, c := range s.clips {
		ls, err := newLiveStream(srv, c)
		if err != nil {
			s.mu.Unlock() // the handler may be waiting for it while srv drains
			teardown(nil, nil, streams, srv)
			s.mu.Lock()
			return fmt.Errorf("testvideos server: %s: %w", c.path, err)
		}
		streams[c.name] = ls
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.rtsp, s.streams, s.cancel = srv, streams, cancel
	for _, ls := range streams {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.play(ctx, ls)
		}()
	}
	s.log.Info("serving", "addr", s.addr, "streams", len(streams), "udp", !s.cfg.DisableUDP,
		"auth", s.cfg.User != "" || s.cfg.Pass != "")
	return nil
}

// Close stops playing, disconnects every reader, stops listening and waits for all of it.
// The address can be listened on again once Close returns. Concurrent calls all wait.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		cancel, streams, srv := s.cancel, s.streams, s.rtsp
		s.mu.Unlock()
		teardown(cancel, &s.wg, streams, srv)
	})
}

// teardown stops the players (cancel, then wait on wg), then the streams, then the RTSP
// server. Any argument may be nil. It must run without s.mu: the handler takes it.
func teardown(cancel context.CancelFunc, wg *sync.WaitGroup, streams map[string]*liveStream, srv *gortsplib.Server) {
	if cancel != nil {
		cancel()
	}
	if wg != nil {
		wg.Wait()
	}
	for _, ls := range streams {
		ls.stream.Close()
	}
	if srv != nil {
		srv.Close()
	}
}

// newLiveStream announces c's codec and parameter sets and makes its RTP encoder.
func newLiveStream(srv *gortsplib.Server, c *clip) (*liveStream, error) {
	var (
		forma format.Format
		enc   rtpEncoder
	)
	switch c.codec {
	case CodecH264:
		f := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: c.params[0], PPS: c.params[1]}
		e, err := f.CreateEncoder()
		if err != nil {
			return nil, fmt.Errorf("h264 rtp encoder: %w", err)
		}
		forma, enc = f, e
	case CodecH265:
		f := &format.H265{PayloadTyp: 96, VPS: c.params[0], SPS: c.params[1], PPS: c.params[2]}
		e, err := f.CreateEncoder()
		if err != nil {
			return nil, fmt.Errorf("h265 rtp encoder: %w", err)
		}
		forma, enc = f, e
	default:
		return nil, fmt.Errorf("unsupported codec %q", c.codec)
	}
	media := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}
	st := &gortsplib.ServerStream{Server: srv, Desc: &description.Session{Medias: []*description.Media{media}}}
	if err := st.Initialize(); err != nil {
		return nil, fmt.Errorf("rtsp stream: %w", err)
	}
	return &liveStream{clip: c, stream: st, media: media, enc: enc}, nil
}

// play sends c's access units in a loop at real-time pace until ctx ends. RTP timestamps
// (90 kHz) start at a random value and keep increasing across loops.
func (s *Server) play(ctx context.Context, ls *liveStream) {
	c := ls.clip
	var b [4]byte
	_, _ = rand.Read(b[:])
	tsBase := binary.BigEndian.Uint32(b[:])
	ticks := func(v int64) time.Duration { return time.Duration(v) * time.Second / clockRate }

	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for loop := int64(0); ; loop++ {
		off := loop * c.period
		for i, au := range c.aus {
			if wait := time.Until(start.Add(ticks(off + c.dts[i]))); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			} else if ctx.Err() != nil {
				return
			}
			pkts, err := ls.enc.Encode(au)
			if err != nil {
				s.log.Warn("rtp encode", "stream", c.name, "err", err)
				continue
			}
			ts := tsBase + uint32(off+c.pts[i])
			ntp := start.Add(ticks(off + c.pts[i]))
			for _, p := range pkts {
				p.Timestamp = ts
				if err := ls.stream.WritePacketRTPWithNTP(ls.media, p, ntp); err != nil {
					if errors.As(err, &liberrors.ErrServerStreamClosed{}) {
						return
					}
					s.log.Debug("rtp write", "stream", c.name, "err", err)
				}
			}
		}
	}
}

// listenUDPPair opens the RTP and RTCP UDP sockets on host: port and port+1, or a free even
// pair when port is 0.
func listenUDPPair(host string, port int) ([]*net.UDPConn, error) {
	open := func(p int) (*net.UDPConn, error) {
		a, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			return nil, err
		}
		return net.ListenUDP("udp", a)
	}
	if port != 0 {
		rtpc, err := open(port)
		if err != nil {
			return nil, fmt.Errorf("listen RTP on UDP port %d: %w", port, err)
		}
		rtcpc, err := open(port + 1)
		if err != nil {
			_ = rtpc.Close()
			return nil, fmt.Errorf("listen RTCP on UDP port %d: %w", port+1, err)
		}
		return []*net.UDPConn{rtpc, rtcpc}, nil
	}
	var lastErr error
	for range 50 {
		first, err := open(0)
		if err != nil {
			return nil, fmt.Errorf("listen on UDP: %w", err)
		}
		p := first.LocalAddr().(*net.UDPAddr).Port
		other := p + 1
		if p%2 == 1 {
			other = p - 1
		}
		second, err := open(other)
		if err != nil {
			_ = first.Close()
			lastErr = err
			continue
		}
		if p%2 == 1 {
			first, second = second, first
		}
		return []*net.UDPConn{first, second}, nil
	}
	return nil, fmt.Errorf("find a free even/odd UDP port pair: %w", lastErr)
}

// handler answers readers' requests.
type handler struct{ s *Server }

func (h *handler) lookup(path string) *liveStream {
	h.s.mu.RLock()
	defer h.s.mu.RUnlock()
	return h.s.streams[strings.Trim(path, "/")]
}

// authorize returns a 401 response when credentials are required and req lacks the right
// ones, or nil.
func (h *handler) authorize(conn *gortsplib.ServerConn, req *base.Request) (*base.Response, error) {
	if h.s.cfg.User == "" && h.s.cfg.Pass == "" {
		return nil, nil
	}
	if conn.VerifyCredentials(req, h.s.cfg.User, h.s.cfg.Pass) {
		return nil, nil
	}
	return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, err := h.authorize(ctx.Conn, ctx.Request); res != nil {
		return res, nil, err
	}
	ls := h.lookup(ctx.Path)
	if ls == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, ls.stream, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, err := h.authorize(ctx.Conn, ctx.Request); res != nil {
		return res, nil, err
	}
	if h.s.cfg.DisableUDP && ctx.Transport != gortsplib.TransportTCP {
		return &base.Response{StatusCode: base.StatusUnsupportedTransport}, nil, nil
	}
	ls := h.lookup(ctx.Path)
	if ls == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, ls.stream, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	if res, err := h.authorize(ctx.Conn, ctx.Request); res != nil {
		return res, err
	}
	h.s.log.Debug("reader playing", "path", ctx.Path, "remote", ctx.Conn.NetConn().RemoteAddr())
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnConnClose implements gortsplib.ServerHandlerOnConnClose.
func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.s.log.Debug("connection closed", "remote", ctx.Conn.NetConn().RemoteAddr(), "err", ctx.Error)
}

// Serve runs a server of cfg until ctx is cancelled: it prints each stream's URL to out,
// one "name<TAB>url" line each, and closes the server before returning. It returns nil when
// ctx is cancelled, even during the preparation.
func Serve(ctx context.Context, cfg Config, out io.Writer) error {
	s, err := NewContext(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	defer s.Close()
	for _, n := range s.Names() {
		if _, err := fmt.Fprintf(out, "%s\t%s\n", n, s.URL(n)); err != nil {
			return fmt.Errorf("print stream URLs: %w", err)
		}
	}
	<-ctx.Done()
	return nil
}
