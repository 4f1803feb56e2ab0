package rtsp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"

	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/server"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// campus is a short MPEG-4 part 2 clip: the test server transcodes it to H.264 with a key
// frame every second.
const campus = "videos/mot15_tud_campus.mp4"

var cacheDir string // shared by the tests: each source is transcoded once per run

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "vigil-rtsp-test-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir = d
	code := m.Run()
	_ = os.RemoveAll(d)
	os.Exit(code)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func startServer(t *testing.T, cfg server.Config) *server.Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	}
	cfg.CacheDir = cacheDir
	cfg.Logger = testLogger(t)
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func newSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	cfg.Logger = testLogger(t)
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 5 * time.Second
	}
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// collect runs src until n packets arrived (then cancels it) or Run returns by itself, and
// returns the packets and Run's result. It fails the test when Run takes more than 30 s.
func collect(t *testing.T, src *Source, n int, onPacket func(i int)) ([]frame.Packet, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pkts []frame.Packet
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, func(p frame.Packet) {
			pkts = append(pkts, p)
			if onPacket != nil {
				onPacket(len(pkts))
			}
			if len(pkts) == n {
				cancel()
			}
		})
	}()
	select {
	case err := <-done:
		return pkts, err
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatalf("Run did not return within 30 s (%d packets)", len(pkts))
		return nil, nil
	}
}

func naluTypes(t *testing.T, annexB []byte, hevc bool) []int {
	t.Helper()
	if !bytes.HasPrefix(annexB, []byte{0, 0, 0, 1}) {
		t.Fatalf("data does not start with a start code: % x", annexB[:min(8, len(annexB))])
	}
	var types []int
	for _, n := range bytes.Split(annexB[4:], []byte{0, 0, 0, 1}) {
		if hevc {
			types = append(types, int(n[0]>>1&0x3f))
		} else {
			types = append(types, int(n[0]&0x1f))
		}
	}
	return types
}

// checkStream asserts what every session must deliver: a key frame first with its parameter
// sets, one Codec, increasing PTS (the clips here have no B-frames), UTC capture times.
func checkStream(t *testing.T, pkts []frame.Packet, codec string, w, h int) {
	t.Helper()
	if len(pkts) == 0 {
		t.Fatal("no packets")
	}
	c := pkts[0].Codec
	if c == nil || c.Name != codec || c.Width != w || c.Height != h {
		t.Fatalf("codec %+v, want %s %dx%d", c, codec, w, h)
	}
	hevc := codec == "hevc"
	keys := 0
	for i, p := range pkts {
		if p.Codec != c {
			t.Fatalf("packet %d: another Codec pointer", i)
		}
		if i == 0 && !p.Key {
			t.Fatal("first packet is not a key frame")
		}
		if i > 0 && p.PTS <= pkts[i-1].PTS {
			t.Fatalf("packet %d: PTS %v not after %v", i, p.PTS, pkts[i-1].PTS)
		}
		if p.CapturedAt.IsZero() || p.CapturedAt.Location() != time.UTC {
			t.Fatalf("packet %d: CapturedAt %v", i, p.CapturedAt)
		}
		types := naluTypes(t, p.Data, hevc)
		if p.Key {
			keys++
			want := []int{7, 8}
			if hevc {
				want = []int{32, 33, 34}
			}
			for _, wt := range want {
				found := false
				for _, ty := range types {
					found = found || ty == wt
				}
				if !found {
					t.Fatalf("key packet %d lacks parameter set type %d: types %v", i, wt, types)
				}
			}
		}
	}
	if pkts[0].PTS != 0 {
		t.Errorf("first PTS %v, want 0", pkts[0].PTS)
	}
	t.Logf("%d packets, %d key, last PTS %v", len(pkts), keys, pkts[len(pkts)-1].PTS)
}

func TestPlayTransports(t *testing.T) {
	s := startServer(t, server.Config{Files: []string{data.MustPath(t, campus)}})
	for _, tr := range []string{TransportUDP, TransportTCP, TransportAuto} {
		t.Run(tr, func(t *testing.T) {
			src := newSource(t, Config{URL: s.URL("mot15_tud_campus"), Transport: tr})
			pkts, err := collect(t, src, 30, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(pkts) != 30 {
				t.Fatalf("got %d packets, want 30", len(pkts))
			}
			checkStream(t, pkts, "h264", 640, 480)
			// 25 fps: 40 ms between pictures.
			if d := pkts[1].PTS - pkts[0].PTS; d != 40*time.Millisecond {
				t.Errorf("PTS step %v, want 40ms", d)
			}
		})
	}
}

// TestAutoFallsBackToTCP: a server that refuses UDP (461) still plays in auto mode.
func TestAutoFallsBackToTCP(t *testing.T) {
	s := startServer(t, server.Config{Files: []string{data.MustPath(t, campus)}, DisableUDP: true})
	src := newSource(t, Config{URL: s.URL("mot15_tud_campus")})
	pkts, err := collect(t, src, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkStream(t, pkts, "h264", 640, 480)

	udp := newSource(t, Config{URL: s.URL("mot15_tud_campus"), Transport: TransportUDP})
	if _, err := collect(t, udp, 1, nil); err == nil {
		t.Fatal("UDP only against a TCP-only server succeeded")
	}
}

func TestAuth(t *testing.T) {
	const pass = "pa55-w0rd"
	s := startServer(t, server.Config{Files: []string{data.MustPath(t, campus)}, User: "cam", Pass: pass})
	host := strings.TrimPrefix(s.URL("mot15_tud_campus"), "rtsp://")

	src := newSource(t, Config{URL: "rtsp://cam:" + pass + "@" + host, Transport: TransportTCP})
	pkts, err := collect(t, src, 3, nil)
	if err != nil {
		t.Fatalf("right credentials: %v", err)
	}
	checkStream(t, pkts, "h264", 640, 480)

	for _, userinfo := range []string{"", "cam:wrong-" + pass + "@", "other:" + pass + "@"} {
		src := newSource(t, Config{URL: "rtsp://" + userinfo + host})
		_, err := collect(t, src, 1, nil)
		if !errors.Is(err, ErrUnauthorized) {
			t.Errorf("credentials %q: err %v, want ErrUnauthorized", userinfo, err)
			continue
		}
		if strings.Contains(err.Error(), pass) {
			t.Errorf("error reveals the password: %v", err)
		}
		if !strings.Contains(err.Error(), host) {
			t.Errorf("error %q does not name the camera", err)
		}
		t.Logf("credentials %q: %v", userinfo, err)
	}
}

func TestUnreachable(t *testing.T) {
	port := testharness.FreePort(t) // nothing listens there
	src := newSource(t, Config{URL: fmt.Sprintf("rtsp://u:secret@127.0.0.1:%d/cam", port)})
	_, err := collect(t, src, 1, nil)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err %v, want ErrUnreachable", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error reveals the password: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Op != "describe" {
		t.Errorf("err %#v, want *Error of describe", err)
	}
}

func TestNotFound(t *testing.T) {
	s := startServer(t, server.Config{Files: []string{data.MustPath(t, campus)}})
	src := newSource(t, Config{URL: s.URL("no_such_stream")})
	if _, err := collect(t, src, 1, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err %v, want ErrNotFound", err)
	}
}

// TestServerGone closes the server while a session plays: Run returns ErrDisconnected.
// A server started again on the same address then serves a new session.
func TestServerGone(t *testing.T) {
	for _, tr := range []string{TransportTCP, TransportUDP} {
		t.Run(tr, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
			cfg := server.Config{Addr: addr, Files: []string{data.MustPath(t, campus)}}
			s := startServer(t, cfg)
			src := newSource(t, Config{URL: s.URL("mot15_tud_campus"), Transport: tr})
			var once sync.Once
			pkts, err := collect(t, src, 1000, func(i int) {
				if i == 3 {
					once.Do(func() { go s.Close() })
				}
			})
			if !errors.Is(err, ErrDisconnected) {
				t.Fatalf("after server close: err %v (%d packets), want ErrDisconnected", err, len(pkts))
			}
			t.Logf("server gone: %v", err)
			s.Close()

			startServer(t, cfg)
			pkts, err = collect(t, src, 3, nil)
			if err != nil {
				t.Fatalf("after restart: %v", err)
			}
			checkStream(t, pkts, "h264", 640, 480)
		})
	}
}

// TestH265 transcodes 2 s of a clip to H.265 in an MP4 and plays it.
func TestH265(t *testing.T) {
	if testing.Short() {
		t.Skip("transcodes with libx265")
	}
	mp4 := filepath.Join(t.TempDir(), "campus_hevc.mp4")
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", data.MustPath(t, campus), "-t", "2",
		"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "keyint=25:bframes=0:log-level=error",
		"-pix_fmt", "yuv420p", "-an", mp4)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg libx265: %v\n%s", err, out)
	}
	s := startServer(t, server.Config{Files: []string{mp4}})
	for _, tr := range []string{TransportUDP, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			src := newSource(t, Config{URL: s.URL("campus_hevc"), Transport: tr})
			pkts, err := collect(t, src, 10, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkStream(t, pkts, "hevc", 640, 480)
		})
	}
}

// TestNoVideo plays from a real RTSP server that offers only audio.
func TestNoVideo(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	h := &audioOnly{}
	srv := &gortsplib.Server{Handler: h, RTSPAddress: addr}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	h.stream = &gortsplib.ServerStream{Server: srv, Desc: &description.Session{Medias: []*description.Media{{
		Type: description.MediaTypeAudio, Formats: []format.Format{&format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}},
	}}}}
	if err := h.stream.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer h.stream.Close()

	src := newSource(t, Config{URL: "rtsp://" + addr + "/mic"})
	_, err := collect(t, src, 1, nil)
	if !errors.Is(err, ErrNoVideo) || !strings.Contains(err.Error(), "audio") {
		t.Fatalf("err %v, want ErrNoVideo naming the audio track", err)
	}
}

type audioOnly struct{ stream *gortsplib.ServerStream }

func (h *audioOnly) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, h.stream, nil
}

// TestCancel: Run with a cancelled context returns nil.
func TestCancel(t *testing.T) {
	s := startServer(t, server.Config{Files: []string{data.MustPath(t, campus)}})
	src := newSource(t, Config{URL: s.URL("mot15_tud_campus")})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := src.Run(ctx, func(frame.Packet) {}); err != nil {
		t.Fatalf("Run with a cancelled context: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "http://cam/x"}, "scheme"},
		{Config{URL: "rtsp:///x"}, "no host"},
		{Config{URL: "rtsp://u:topsecret@cam/x", Transport: "quic"}, `"quic"`},
		{Config{URL: "rtsp://u:topsecret@cam/x", ReadTimeout: -1}, "timeout"},
		{Config{URL: "rtsp://u:topsecret@cam:port/x"}, "invalid"},
	} {
		_, err := New(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v): %v, want an error about %s", tt.cfg, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error reveals the password: %v", err)
		}
	}
	src, err := New(Config{URL: "rtsps://u:topsecret@cam:322/x"})
	if err != nil {
		t.Fatal(err)
	}
	if got := src.URL(); got != "rtsps://u:REDACTED@cam:322/x" {
		t.Errorf("URL() = %q", got)
	}
}
