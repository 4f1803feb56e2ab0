package server

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
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"

	"github.com/vigil-edge/vigil/testvideos/data"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// cacheDir is shared by the tests of this package, so each source is transcoded once per run.
var cacheDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "vigil-testvideos-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir = d
	code := m.Run()
	_ = os.RemoveAll(d)
	os.Exit(code)
}

func ffmpegOutput(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("ffmpeg", append([]string{"-nostdin", "-v", "error"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v: %s", args, err, stderr.String())
	}
	return out
}

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = cacheDir
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte("not a video\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.mp4")
	campus := data.MustPath(t, "videos/mot15_tud_campus.mp4")
	tests := []struct {
		name  string
		cfg   Config
		wants []string
	}{
		{"missing file", Config{Files: []string{missing}}, []string{missing, "no such file"}},
		{"not a video", Config{Files: []string{text}}, []string{text}},
		{"folder", Config{Files: []string{dir}}, []string{dir, "folder"}},
		{"no files", Config{}, []string{"no video files"}},
		{"bad address", Config{Addr: "nowhere", Files: []string{campus}}, []string{`"nowhere"`}},
		{"odd UDP port", Config{UDPPort: 8001, Files: []string{campus}}, []string{"8001", "even"}},
		{"same name twice", Config{Files: []string{campus, campus}}, []string{"mot15_tud_campus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.CacheDir = cacheDir
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestTranscodeCache runs two preparations of the same source at once in an empty cache:
// both succeed, one cache file remains, no temporary file is left, and a third run reuses it.
func TestTranscodeCache(t *testing.T) {
	dir := t.TempDir()
	src := data.MustPath(t, "videos/mot15_tud_campus.mp4")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = New(Config{Files: []string{src}, CacheDir: dir})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ".h264") {
		t.Fatalf("cache holds %v, want one .h264 file", entries)
	}
	cached := filepath.Join(dir, entries[0].Name())
	before, _ := os.Stat(cached)
	s, err := New(Config{Files: []string{src}, CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(cached)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("the cached transcode was rewritten")
	}
	c := s.clips[0]
	if c.codec != CodecH264 || len(c.aus) != 71 || c.width != 640 || c.height != 480 {
		t.Errorf("clip: codec %s, %d pictures, %dx%d; want h264, 71, 640x480", c.codec, len(c.aus), c.width, c.height)
	}
	// 25 fps, GOP of 1 s: a key frame every 25 pictures, each with its parameter sets.
	for i, au := range c.aus {
		if want := i%25 == 0; IsKey(c.codec, au) != want {
			t.Errorf("picture %d: key = %v, want %v", i, !want, want)
		}
	}
	if c.period != 71*3600 {
		t.Errorf("loop period %d ticks, want %d", c.period, 71*3600)
	}
}

// TestRemuxKeepsReordering checks that a remuxed H.264 stream with B-frames keeps the
// container's presentation times (pts != dts for some pictures, never pts < dts).
func TestRemuxKeepsReordering(t *testing.T) {
	src := data.MustPath(t, "videos/traffic_highway_fixed_1.mp4")
	c, err := prepareClip(context.Background(), src, t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.codec != CodecH264 || len(c.aus) != 450 {
		t.Fatalf("codec %s, %d pictures; want h264, 450", c.codec, len(c.aus))
	}
	reordered := 0
	for i := range c.aus {
		if c.pts[i] < c.dts[i] {
			t.Fatalf("picture %d: pts %d < dts %d", i, c.pts[i], c.dts[i])
		}
		if i > 0 && c.dts[i] <= c.dts[i-1] {
			t.Fatalf("picture %d: dts %d not after %d", i, c.dts[i], c.dts[i-1])
		}
		if i > 0 && c.pts[i] < c.pts[i-1] {
			reordered++
		}
	}
	if reordered == 0 {
		t.Error("no reordered pictures: B-frame timing lost")
	}
	if !IsKey(c.codec, c.aus[0]) {
		t.Error("first picture is not a key frame")
	}
}

// readRTP plays name from s with a gortsplib client for d and returns the RTP timestamps of
// the packets that end an access unit, plus the announced format.
func readRTP(t *testing.T, s *Server, name string, tr gortsplib.Transport, d time.Duration) ([]uint32, *format.H264) {
	t.Helper()
	u, err := base.ParseURL(s.URL(name))
	if err != nil {
		t.Fatal(err)
	}
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tr}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	var forma *format.H264
	medi := desc.FindFormat(&forma)
	if medi == nil {
		t.Fatal("no H.264 track announced")
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var stamps []uint32
	c.OnPacketRTP(medi, forma, func(p *rtp.Packet) {
		if p.Marker {
			mu.Lock()
			stamps = append(stamps, p.Timestamp)
			mu.Unlock()
		}
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	return stamps, forma
}

// TestServeRTP plays the 2.84 s campus clip for longer than one loop over UDP and TCP: the
// SDP carries SPS and PPS, and RTP timestamps grow by one frame (3600 ticks at 25 fps) at
// every picture, across the loop boundary too.
func TestServeRTP(t *testing.T) {
	s := startServer(t, Config{Files: []string{data.MustPath(t, "videos/mot15_tud_campus.mp4")}})
	for _, tr := range []gortsplib.Transport{gortsplib.TransportUDP, gortsplib.TransportTCP} {
		t.Run(tr.String(), func(t *testing.T) {
			stamps, forma := readRTP(t, s, "mot15_tud_campus", tr, 3500*time.Millisecond)
			if len(forma.SPS) == 0 || len(forma.PPS) == 0 {
				t.Error("SDP lacks SPS/PPS")
			}
			if len(stamps) < 72 {
				t.Fatalf("got %d pictures in 3.5 s, want more than one loop (71)", len(stamps))
			}
			for i := 1; i < len(stamps); i++ {
				if d := stamps[i] - stamps[i-1]; d != 3600 {
					t.Fatalf("picture %d: timestamp step %d, want 3600", i, d)
				}
			}
		})
	}
}

// TestDecodableByFFmpeg has ffmpeg, an independent client, decode 30 pictures.
func TestDecodableByFFmpeg(t *testing.T) {
	s := startServer(t, Config{Files: []string{data.MustPath(t, "videos/mot15_tud_campus.mp4")}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp",
		"-i", s.URL("mot15_tud_campus"), "-frames:v", "30", "-f", "framemd5", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	frames := 0
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			frames++
		}
	}
	if frames != 30 {
		t.Fatalf("ffmpeg decoded %d frames, want 30:\n%s", frames, out)
	}
}

// TestAuthAndRestart requires credentials, then closes the server and starts another on the
// same address, as agent reconnect tests do.
func TestAuthAndRestart(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))
	cfg := Config{Addr: addr, Files: []string{data.MustPath(t, "videos/mot15_tud_campus.mp4")},
		User: "cam", Pass: "s3cret", CacheDir: cacheDir}
	describe := func(userinfo string) error {
		u, err := base.ParseURL("rtsp://" + userinfo + addr + "/mot15_tud_campus")
		if err != nil {
			t.Fatal(err)
		}
		c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
		if err := c.Start2(); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _, err = c.Describe(u)
		return err
	}
	for round := range 2 {
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := describe("cam:s3cret@"); err != nil {
			t.Errorf("round %d, right credentials: %v", round, err)
		}
		for _, bad := range []string{"", "cam:wrong@"} {
			err := describe(bad)
			var sc liberrors.ErrClientBadStatusCode
			if !errors.As(err, &sc) || sc.Code != base.StatusUnauthorized {
				t.Errorf("round %d, credentials %q: err %v, want 401", round, bad, err)
			}
		}
		s.Close()
		s.Close() // a second Close is harmless
	}
}

func TestDisableUDP(t *testing.T) {
	s := startServer(t, Config{Files: []string{data.MustPath(t, "videos/mot15_tud_campus.mp4")}, DisableUDP: true})
	u, _ := base.ParseURL(s.URL("mot15_tud_campus"))
	tr := gortsplib.TransportUDP
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tr}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Setup(desc.BaseURL, desc.Medias[0], 0, 0)
	var sc liberrors.ErrClientBadStatusCode
	if !errors.As(err, &sc) || sc.Code != base.StatusUnsupportedTransport {
		t.Fatalf("SETUP over UDP: %v, want 461", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
