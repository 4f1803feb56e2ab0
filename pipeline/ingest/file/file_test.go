package file_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/ingest"
	"github.com/vigil-edge/vigil/pipeline/ingest/file"
	"github.com/vigil-edge/vigil/testvideos/data"
)

var _ ingest.Source = (*file.Source)(nil)

func TestSharedVideos(t *testing.T) {
	for _, v := range []struct {
		rel           string
		codec         string
		width, height int
		packets       int
		extradata     bool
		frameTime     time.Duration
	}{
		{"videos/pedestrians_pets09_s2l1_vtest.avi", "msmpeg4", 768, 576, 795, false, 100 * time.Millisecond},
		{"videos/mot15_tud_campus.mp4", "mpeg4", 640, 480, 71, true, 40 * time.Millisecond},
		{"videos/traffic_highway_fixed_1.mp4", "h264", 1280, 720, 450, true, 33366 * time.Microsecond},
		{"videos/parking_lot_cars_intel.mp4", "h264", 768, 432, 377, true, 80 * time.Millisecond},
	} {
		t.Run(v.rel, func(t *testing.T) {
			src, err := file.New(file.Config{Path: data.MustPath(t, v.rel)})
			if err != nil {
				t.Fatal(err)
			}
			var pkts []frame.Packet
			before := time.Now().UTC()
			err = src.Run(context.Background(), func(p frame.Packet) { pkts = append(pkts, p) })
			if !errors.Is(err, io.EOF) {
				t.Fatalf("Run = %v, want io.EOF", err)
			}
			if len(pkts) != v.packets {
				t.Fatalf("%d packets, want %d", len(pkts), v.packets)
			}
			c := pkts[0].Codec
			if c.Name != v.codec || c.Width != v.width || c.Height != v.height || (len(c.Extradata) > 0) != v.extradata {
				t.Fatalf("codec %+v", *c)
			}
			if !pkts[0].Key || pkts[0].PTS != 0 {
				t.Fatalf("first packet: key %v pts %v, want a key frame at 0", pkts[0].Key, pkts[0].PTS)
			}
			var maxPTS time.Duration
			seen := map[time.Duration]bool{}
			for i, p := range pkts {
				if p.Codec != c || len(p.Data) == 0 || p.CapturedAt.Before(before) || p.CapturedAt.Location() != time.UTC {
					t.Fatalf("packet %d: codec %p (first %p), %d bytes, captured %v", i, p.Codec, c, len(p.Data), p.CapturedAt)
				}
				if seen[p.PTS] {
					t.Fatalf("packet %d: pts %v seen before", i, p.PTS)
				}
				seen[p.PTS] = true
				maxPTS = max(maxPTS, p.PTS)
			}
			// The timestamps span the clip at its frame rate.
			if want := time.Duration(v.packets-1) * v.frameTime; maxPTS < want-v.frameTime || maxPTS > want+v.frameTime {
				t.Fatalf("last pts %v, want about %v", maxPTS, want)
			}
		})
	}
}

func TestFileURL(t *testing.T) {
	p := data.MustPath(t, "videos/mot15_tud_campus.mp4")
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"file://" + abs, "file://localhost" + abs, p} {
		src, err := file.New(file.Config{Path: u})
		if err != nil {
			t.Fatalf("New(%q): %v", u, err)
		}
		if src.Path() != abs {
			t.Fatalf("New(%q).Path() = %q, want %q", u, src.Path(), abs)
		}
	}
	for _, u := range []string{"", "file://otherhost/x.mp4", "file://"} {
		if _, err := file.New(file.Config{Path: u}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
	// A path with URL-special characters is a plain path.
	dir := t.TempDir()
	odd := filepath.Join(dir, "a %20 b?#.mp4")
	link(t, p, odd)
	src, err := file.New(file.Config{Path: odd})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := src.Run(context.Background(), func(frame.Packet) { n++ }); !errors.Is(err, io.EOF) || n != 71 {
		t.Fatalf("Run on %q: %v after %d packets", odd, err, n)
	}
}

// link makes dst a copy of src (a symlink; shared data is never copied).
func link(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.Symlink(src, dst); err != nil {
		t.Fatal(err)
	}
}

func TestMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.mp4")
	_, err := file.New(file.Config{Path: p})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Fatalf("New(missing) = %v", err)
	}
	if _, err := file.New(file.Config{Path: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("New(dir) = %v", err)
	}
	// Removed between New and Run.
	p2 := filepath.Join(t.TempDir(), "gone.mp4")
	link(t, data.MustPath(t, "videos/mot15_tud_campus.mp4"), p2)
	src, err := file.New(file.Config{Path: p2})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(p2)
	if err := src.Run(context.Background(), func(frame.Packet) {}); err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), p2) {
		t.Fatalf("Run(removed) = %v", err)
	}
}

func TestNotVideo(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"notes.txt":   []byte("hello, this is not a video\nsecond line\n"),
		"config.json": []byte(`{"cameras": [{"url": "rtsp://x"}]}`),
		"empty.mp4":   nil,
		"random.mp4":  []byte(strings.Repeat("\x13\x37\xca\xfe garbage ", 500)),
	}
	if ffmpegOK() {
		files["tone.wav"] = nil // made below: an audio file
		cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i",
			"sine=frequency=440:duration=1", "-y", filepath.Join(dir, "tone.wav"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v: %s", err, out)
		}
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if content != nil || name == "empty.mp4" {
			if err := os.WriteFile(p, content, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		src, err := file.New(file.Config{Path: p})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = src.Run(context.Background(), func(frame.Packet) { n++ })
		if !errors.Is(err, file.ErrNotVideo) || !strings.Contains(err.Error(), p) || n != 0 {
			t.Errorf("%s: Run = %v after %d packets, want ErrNotVideo naming the file", name, err, n)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func ffmpegOK() bool {
	_, err := exec.LookPath("ffmpeg")
	return err == nil
}

// TestLoop: a looping source starts again at the end with timestamps that keep increasing.
func TestLoop(t *testing.T) {
	const clip = 71 // packets in the file, no B-frames
	src, err := file.New(file.Config{Path: data.MustPath(t, "videos/mot15_tud_campus.mp4"), Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pkts []frame.Packet
	err = src.Run(ctx, func(p frame.Packet) {
		pkts = append(pkts, p)
		if len(pkts) == 3*clip+5 {
			cancel()
		}
	})
	if err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	if len(pkts) != 3*clip+5 {
		t.Fatalf("%d packets after cancel, want %d", len(pkts), 3*clip+5)
	}
	for i := 1; i < len(pkts); i++ {
		if pkts[i].PTS <= pkts[i-1].PTS {
			t.Fatalf("packet %d: pts %v after %v", i, pkts[i].PTS, pkts[i-1].PTS)
		}
		if pkts[i].Codec != pkts[0].Codec {
			t.Fatalf("packet %d: codec pointer changed", i)
		}
	}
	for _, i := range []int{clip, 2 * clip} {
		if !pkts[i].Key || pkts[i].PTS != pkts[i-1].PTS+40*time.Millisecond || pkts[i].PTS != pkts[i-clip].PTS+clip*40*time.Millisecond {
			t.Fatalf("wrap at packet %d: key %v pts %v after %v", i, pkts[i].Key, pkts[i].PTS, pkts[i-1].PTS)
		}
	}
}

// TestRealtime: packets come no sooner than their timestamps say, and cancelling stops a
// source in the middle of a wait.
func TestRealtime(t *testing.T) {
	src, err := file.New(file.Config{Path: data.MustPath(t, "videos/mot15_tud_campus.mp4"), Realtime: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pkts []frame.Packet
	err = src.Run(ctx, func(p frame.Packet) {
		pkts = append(pkts, p)
		if len(pkts) == 6 {
			cancel()
		}
	})
	if err != nil || len(pkts) != 6 {
		t.Fatalf("Run = %v after %d packets, want nil after 6", err, len(pkts))
	}
	for i := 1; i < len(pkts); i++ {
		// A timer never fires early: wall-clock gaps are at least the timestamp gaps.
		if wall, media := pkts[i].CapturedAt.Sub(pkts[0].CapturedAt), pkts[i].PTS-pkts[0].PTS; wall < media-time.Millisecond {
			t.Fatalf("packet %d came %v after the first, its pts %v after", i, wall, media)
		}
	}

	// A clip of one picture a minute: Run is waiting for the second when cancelled.
	if !ffmpegOK() {
		t.Skip("ffmpeg CLI not installed")
	}
	slow := filepath.Join(t.TempDir(), "slow.mp4")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i",
		"testsrc2=size=64x64:rate=1/60", "-frames:v", "3", "-c:v", "libx264", "-preset", "ultrafast", "-y", slow)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	src, err = file.New(file.Config{Path: slow, Realtime: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	got := make(chan frame.Packet, 3)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(p frame.Packet) { got <- p }) }()
	first := <-got
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel while waiting a minute for the next picture")
	}
	if len(got) != 0 || first.PTS != 0 {
		t.Fatalf("pts %v, %d more packets", first.PTS, len(got))
	}
}

func TestCancelledBeforeRun(t *testing.T) {
	src, err := file.New(file.Config{Path: data.MustPath(t, "videos/mot15_tud_campus.mp4")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := src.Run(ctx, func(frame.Packet) { t.Fatal("packet after cancel") }); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// TestElementaryStream: a raw H.264 stream has no timestamps; the source counts frames.
func TestElementaryStream(t *testing.T) {
	if !ffmpegOK() {
		t.Skip("ffmpeg CLI not installed")
	}
	p := filepath.Join(t.TempDir(), "clip.h264")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i",
		"testsrc2=size=320x240:rate=25", "-frames:v", "40", "-pix_fmt", "yuv420p", "-c:v", "libx264",
		"-preset", "ultrafast", "-bf", "0", "-g", "10", "-f", "h264", "-y", p)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	src, err := file.New(file.Config{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	var pkts []frame.Packet
	if err := src.Run(context.Background(), func(p frame.Packet) { pkts = append(pkts, p) }); !errors.Is(err, io.EOF) {
		t.Fatalf("Run = %v", err)
	}
	if len(pkts) != 40 || pkts[0].Codec.Name != "h264" || pkts[0].Codec.Width != 320 {
		t.Fatalf("%d packets, codec %+v", len(pkts), pkts[0].Codec)
	}
	keys := 0
	for i, pk := range pkts {
		if pk.PTS != time.Duration(i)*40*time.Millisecond {
			t.Fatalf("packet %d: pts %v, want %v", i, pk.PTS, time.Duration(i)*40*time.Millisecond)
		}
		if pk.Key {
			keys++
		}
	}
	if keys != 4 {
		t.Fatalf("%d key frames, want 4", keys)
	}
}
