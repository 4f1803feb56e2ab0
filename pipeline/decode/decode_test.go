package decode_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/decode"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/ingest/file"
	"github.com/vigil-edge/vigil/testvideos/data"
)

var sharedVideos = []struct {
	rel           string
	codec         string // FFmpeg decoder name the file source gives
	width, height int
	frames        int // ffprobe -count_frames agrees
	checkFrame    int // a frame compared with ffmpeg's own decoding
}{
	{"videos/pedestrians_pets09_s2l1_vtest.avi", "msmpeg4", 768, 576, 795, 100},
	{"videos/mot15_tud_campus.mp4", "mpeg4", 640, 480, 71, 30},
	{"videos/traffic_highway_fixed_1.mp4", "h264", 1280, 720, 450, 200}, // with B-frames
	{"videos/parking_lot_cars_intel.mp4", "h264", 768, 432, 377, 50},
}

// decodeAll decodes pkts with a fresh decoder, calls fn for each frame in output order and
// releases it, and returns the number of frames.
func decodeAll(tb testing.TB, c *frame.Codec, pkts []frame.Packet, fn func(i int, f *frame.Frame)) int {
	tb.Helper()
	d, err := decode.New(c)
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	n := 0
	emit := func(fs []*frame.Frame) {
		for _, f := range fs {
			if fn != nil {
				fn(n, f)
			}
			n++
			f.Release()
		}
	}
	for _, p := range pkts {
		fs, err := d.Decode(p)
		if err != nil {
			tb.Fatalf("packet pts %v: %v", p.PTS, err)
		}
		emit(fs)
	}
	fs, err := d.Flush()
	if err != nil {
		tb.Fatal(err)
	}
	emit(fs)
	return n
}

func TestSharedVideos(t *testing.T) {
	for _, v := range sharedVideos {
		t.Run(v.rel, func(t *testing.T) {
			pkts := readPackets(t, data.MustPath(t, v.rel))
			c := pkts[0].Codec
			if c.Name != v.codec || c.Width != v.width || c.Height != v.height {
				t.Fatalf("codec %s %dx%d, want %s %dx%d", c.Name, c.Width, c.Height, v.codec, v.width, v.height)
			}
			capturedAt := map[time.Duration]time.Time{}
			for _, p := range pkts {
				if p.Codec != c {
					t.Fatal("codec pointer changed within a session")
				}
				capturedAt[p.PTS] = p.CapturedAt
			}
			last := time.Duration(-1)
			n := decodeAll(t, c, pkts, func(i int, f *frame.Frame) {
				if f.Image.Width != v.width || f.Image.Height != v.height || !f.Image.Valid() || f.Image.Format != models.I420 {
					t.Fatalf("frame %d: %s image %dx%d stride %d", i, f.Image.Format, f.Image.Width, f.Image.Height, f.Image.Stride)
				}
				if f.PTS <= last {
					t.Fatalf("frame %d: pts %v after %v", i, f.PTS, last)
				}
				last = f.PTS
				if at, ok := capturedAt[f.PTS]; !ok || !at.Equal(f.CapturedAt) {
					t.Fatalf("frame %d pts %v: captured at %v, its packet at %v (found %v)", i, f.PTS, f.CapturedAt, at, ok)
				}
				if f.Camera != "" || f.Seq != 0 {
					t.Fatalf("frame %d: camera %q seq %d, want them left to the caller", i, f.Camera, f.Seq)
				}
			})
			if n != v.frames {
				t.Fatalf("%d frames, want %d", n, v.frames)
			}
		})
	}
}

// TestPixelsMatchFFmpeg compares one decoded frame per shared video with the same frame
// decoded and converted by the ffmpeg CLI.
func TestPixelsMatchFFmpeg(t *testing.T) {
	needFFmpeg(t)
	for _, v := range sharedVideos {
		t.Run(v.rel, func(t *testing.T) {
			path := data.MustPath(t, v.rel)
			want := ffmpeg(t, "-i", path, "-vf", fmt.Sprintf("select=eq(n\\,%d)", v.checkFrame), "-frames:v", "1",
				"-f", "rawvideo", "-pix_fmt", "bgr24", "-")
			if len(want) != 3*v.width*v.height {
				t.Fatalf("ffmpeg gave %d bytes, want %d", len(want), 3*v.width*v.height)
			}
			var got []byte
			decodeAll(t, readPackets(t, path)[0].Codec, readPackets(t, path), func(i int, f *frame.Frame) {
				if i == v.checkFrame {
					got = toBGR(t, f.Image)
				}
			})
			mad, meanGot, meanWant := compare(got, want)
			t.Logf("frame %d: mean %.2f (ffmpeg %.2f), mean abs diff %.3f", v.checkFrame, meanGot, meanWant, mad)
			if mad > 2 || math.Abs(meanGot-meanWant) > 1 {
				t.Fatalf("frame %d differs from ffmpeg's: mean abs diff %.3f, means %.2f vs %.2f", v.checkFrame, mad, meanGot, meanWant)
			}
			if meanGot < 10 || meanGot > 245 {
				t.Fatalf("frame %d: mean %.2f, not a picture", v.checkFrame, meanGot)
			}
		})
	}
}

// compare returns the mean absolute difference of two equal-length images and their means.
func compare(a, b []byte) (mad, meanA, meanB float64) {
	var d, sa, sb int64
	for i := range a {
		x, y := int64(a[i]), int64(b[i])
		sa += x
		sb += y
		if x > y {
			d += x - y
		} else {
			d += y - x
		}
	}
	n := float64(len(a))
	return float64(d) / n, float64(sa) / n, float64(sb) / n
}

// annexB encodes a test pattern into an Annex-B elementary stream with one access unit
// delimiter per picture, and returns its access units.
func annexB(t *testing.T, codec, size string, frames int) ([][]byte, string) {
	t.Helper()
	dir := t.TempDir()
	var p string
	src := []string{"-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=25", "-frames:v", fmt.Sprint(frames), "-pix_fmt", "yuv420p"}
	switch codec {
	case "h264":
		p = makeClip(t, dir, "clip.h264", append(src, "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "12",
			"-x264-params", "aud=1", "-f", "h264")...)
	case "hevc":
		p = makeClip(t, dir, "clip.hevc", append(src, "-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
			"aud=1:bframes=2:keyint=12:log-level=error", "-f", "hevc")...)
	}
	raw, err := readFile(p)
	if err != nil {
		t.Fatal(err)
	}
	isAUD := isH264AUD
	if codec == "hevc" {
		isAUD = isHEVCAUD
	}
	aus := splitAUs(raw, isAUD)
	if len(aus) != frames {
		t.Fatalf("split %s into %d access units, want %d", p, len(aus), frames)
	}
	return aus, p
}

func TestAnnexB(t *testing.T) {
	for _, codec := range []string{"h264", "hevc"} {
		t.Run(codec, func(t *testing.T) {
			const frames = 40
			aus, path := annexB(t, codec, "320x240", frames)
			base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			var pkts []frame.Packet
			c := &frame.Codec{Name: codec} // no extradata, no size: all in-band
			for i, au := range aus {
				pkts = append(pkts, frame.Packet{Codec: c, Data: au, PTS: time.Duration(i) * 40 * time.Millisecond,
					CapturedAt: base.Add(time.Duration(i) * time.Second)})
			}
			want := ffmpeg(t, "-i", path, "-f", "rawvideo", "-pix_fmt", "bgr24", "-")
			const size = 320 * 240 * 3
			if len(want) != frames*size {
				t.Fatalf("ffmpeg decoded %d bytes, want %d", len(want), frames*size)
			}
			// Packets come in decode order; the PTS given here are in that order too, so frames
			// (in display order) carry them out of order: each keeps its own packet's times.
			atOf := map[time.Duration]time.Time{}
			for _, p := range pkts {
				atOf[p.PTS] = p.CapturedAt
			}
			n := decodeAll(t, c, pkts, func(i int, f *frame.Frame) {
				if f.Image.Width != 320 || f.Image.Height != 240 {
					t.Fatalf("frame %d is %dx%d", i, f.Image.Width, f.Image.Height)
				}
				at, ok := atOf[f.PTS]
				if !ok || !f.CapturedAt.Equal(at) {
					t.Fatalf("frame %d: pts %v captured %v, its packet's %v (found %v)", i, f.PTS, f.CapturedAt, at, ok)
				}
				delete(atOf, f.PTS)
				if mad, _, _ := compare(toBGR(t, f.Image), want[i*size:(i+1)*size]); mad > 2 {
					t.Fatalf("frame %d differs from ffmpeg's: mean abs diff %.3f", i, mad)
				}
			})
			if n != frames {
				t.Fatalf("%d frames, want %d", n, frames)
			}
		})
	}
}

// TestResolutionChange feeds one decoder a stream whose picture size changes twice.
func TestResolutionChange(t *testing.T) {
	big, _ := annexB(t, "h264", "320x240", 12)
	small, _ := annexB(t, "h264", "176x144", 12)
	c := &frame.Codec{Name: "h264", Width: 320, Height: 240}
	var pkts []frame.Packet
	for _, aus := range [][][]byte{big, small, big} {
		for _, au := range aus {
			pkts = append(pkts, frame.Packet{Codec: c, Data: au, PTS: time.Duration(len(pkts)) * time.Millisecond})
		}
	}
	var sizes []string
	n := decodeAll(t, c, pkts, func(i int, f *frame.Frame) {
		s := fmt.Sprintf("%dx%d", f.Image.Width, f.Image.Height)
		if len(sizes) == 0 || sizes[len(sizes)-1] != s {
			sizes = append(sizes, s)
		}
		if !f.Image.Valid() || f.Image.Stride < f.Image.Width || len(f.Image.Pix) < f.Image.Stride*f.Image.Height {
			t.Fatalf("frame %d: %s image, stride %d, with %d bytes", i, s, f.Image.Stride, len(f.Image.Pix))
		}
	})
	if n != 36 || strings.Join(sizes, ",") != "320x240,176x144,320x240" {
		t.Fatalf("%d frames, sizes %v; want 36 frames, 320x240,176x144,320x240", n, sizes)
	}
}

// TestCorruptPacket: a damaged packet is an error naming the codec, and the packets after
// it still decode: at once after a damaged non-key packet, from the next key frame after a
// damaged key frame.
func TestCorruptPacket(t *testing.T) {
	pkts := readPackets(t, data.MustPath(t, "videos/parking_lot_cars_intel.mp4")) // no B-frames
	var keys []int
	for i, p := range pkts {
		if p.Key {
			keys = append(keys, i)
		}
	}
	if len(keys) < 4 || keys[1] < 55 {
		t.Fatalf("key frames at %v; the test wants GOPs of 55+ packets", keys)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 4000)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	badKey := keys[2]
	bad := map[int][]byte{
		20:     pkts[20].Data[:len(pkts[20].Data)/2], // truncated
		35:     garbage,
		50:     {0xff, 0xff, 0xff, 0xff, 1, 2, 3}, // a NAL unit longer than the packet
		badKey: pkts[badKey].Data[:len(pkts[badKey].Data)/3],
	}
	d, err := decode.New(pkts[0].Codec)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out := make([]int, len(pkts)) // frames out per packet
	for i, p := range pkts {
		if b, ok := bad[i]; ok {
			p.Data = b
		}
		fs, err := d.Decode(p)
		if _, ok := bad[i]; ok {
			if err == nil {
				t.Errorf("packet %d: no error for a damaged packet", i)
			} else if !strings.Contains(err.Error(), "h264") {
				t.Errorf("packet %d: error %q does not name the codec", i, err)
			}
		} else if err != nil {
			t.Errorf("packet %d: %v", i, err)
		}
		out[i] = len(fs)
		for _, f := range fs {
			f.Release()
		}
	}
	// Until the next key frame after a damaged key frame the decoder may show what it can.
	for i := range pkts {
		_, isBad := bad[i]
		switch {
		case isBad && out[i] != 0:
			t.Errorf("packet %d (damaged): %d frames", i, out[i])
		case !isBad && (i < badKey || i >= keys[3]) && out[i] != 1:
			t.Errorf("packet %d: %d frames, want 1", i, out[i])
		}
	}
}

func TestUnknownCodec(t *testing.T) {
	for _, name := range []string{"nope264", "", "aac"} {
		_, err := decode.New(&frame.Codec{Name: name})
		if !errors.Is(err, decode.ErrUnsupportedCodec) || !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
			t.Errorf("New(%q) = %v, want ErrUnsupportedCodec naming it", name, err)
		}
	}
	if _, err := decode.New(nil); !errors.Is(err, decode.ErrUnsupportedCodec) {
		t.Errorf("New(nil) = %v", err)
	}
	for name, want := range map[string]string{"h265": "hevc", "H264": "h264", "msmpeg4v3": "msmpeg4", "hevc": "hevc", "mpeg4": "mpeg4"} {
		d, err := decode.New(&frame.Codec{Name: name, Width: 64, Height: 64})
		if err != nil {
			t.Fatalf("New(%q): %v", name, err)
		}
		if d.Name() != want {
			t.Errorf("New(%q) opened %q, want %q", name, d.Name(), want)
		}
		d.Close()
	}
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	d, err := decode.New(&frame.Codec{Name: "h264"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decode(frame.Packet{Data: []byte{0, 0, 0, 1, 9, 0x10}}); !errors.Is(err, decode.ErrClosed) {
		t.Fatalf("Decode after Close = %v", err)
	}
	if _, err := d.Flush(); !errors.Is(err, decode.ErrClosed) {
		t.Fatalf("Flush after Close = %v", err)
	}
}

// TestHeldFrames: a frame's picture is never handed out again while the frame is held; frames
// held across Close stay readable and can be released afterwards, from another goroutine.
func TestHeldFrames(t *testing.T) {
	pkts := readPackets(t, data.MustPath(t, "videos/mot15_tud_campus.mp4"))
	d, err := decode.New(pkts[0].Codec)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const held = 10
	var keep []*frame.Frame
	var sums []uint32
	seen := map[*byte]bool{}
	for i, p := range pkts {
		fs, err := d.Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if seen[&f.Image.Pix[0]] {
				t.Fatalf("frame %d got the picture of a frame still held", i)
			}
			if i < held {
				seen[&f.Image.Pix[0]] = true
				keep = append(keep, f)
				sums = append(sums, crc32.ChecksumIEEE(f.Image.Pix[:f.Image.Stride*f.Image.Height]))
				continue
			}
			f.Release()
		}
	}
	if st := d.Stats(); st.Frames != uint64(len(pkts)) || st.Converted != 0 || st.Transferred != 0 {
		t.Fatalf("stats %+v for %d packets", st, len(pkts))
	}
	d.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, f := range keep {
			if s := crc32.ChecksumIEEE(f.Image.Pix[:f.Image.Stride*f.Image.Height]); s != sums[i] {
				t.Errorf("held frame %d changed", i)
			}
			f.Release()
			f.Release()
		}
	}()
	<-done
}

// TestHWAccelFallback: asked for hardware decoding on a machine without it, the decoder opens
// in software, says why, and decodes the same frames.
func TestHWAccelFallback(t *testing.T) {
	pkts := readPackets(t, data.MustPath(t, "videos/parking_lot_cars_intel.mp4"))
	for _, hw := range []string{decode.HWAuto, decode.HWVAAPI, decode.HWV4L2M2M} {
		t.Run(hw, func(t *testing.T) {
			d, err := decode.New(pkts[0].Codec, decode.WithHWAccel(hw))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.HWAccel() != decode.HWNone {
				t.Skipf("this machine decodes with %s; the fallback is not exercised here", d.HWAccel())
			}
			fb := d.HWFallback()
			if !errors.Is(fb, decode.ErrNoHardware) || !strings.Contains(fb.Error(), hw) {
				t.Fatalf("HWFallback() = %v, want ErrNoHardware naming %s", fb, hw)
			}
			t.Logf("fallback: %v", fb)
			n := 0
			for _, p := range pkts[:30] {
				fs, err := d.Decode(p)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range fs {
					if f.Image.Width != 768 || f.Image.Height != 432 || !f.Image.Valid() {
						t.Fatalf("frame %dx%d", f.Image.Width, f.Image.Height)
					}
					f.Release()
					n++
				}
			}
			if n != 30 {
				t.Fatalf("%d frames from 30 packets", n)
			}
		})
	}
	d, err := decode.New(pkts[0].Codec, decode.WithHWAccel(decode.HWNone))
	if err != nil || d.HWFallback() != nil || d.HWAccel() != decode.HWNone {
		t.Fatalf("hwaccel none: %v, fallback %v", err, d.HWFallback())
	}
	d.Close()
	if _, err := decode.New(pkts[0].Codec, decode.WithHWAccel("cuda")); err == nil || !strings.Contains(err.Error(), "hwaccel \"cuda\"") {
		t.Fatalf("hwaccel cuda: %v, want an error naming it", err)
	}
}

// TestConvertedLayout: a 4:4:4 stream comes out as I420 frames, counted as converted, with
// the picture ffmpeg sees.
func TestConvertedLayout(t *testing.T) {
	dir := t.TempDir()
	p := makeClip(t, dir, "c444.h264", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-frames:v", "5",
		"-pix_fmt", "yuv444p", "-c:v", "libx264", "-preset", "ultrafast", "-f", "h264")
	raw, err := readFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := ffmpeg(t, "-i", p, "-f", "rawvideo", "-pix_fmt", "bgr24", "-")
	c := &frame.Codec{Name: "h264"}
	d, err := decode.New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var frames []*frame.Frame
	fs, err := d.Decode(frame.Packet{Codec: c, Data: raw})
	if err != nil {
		t.Fatal(err)
	}
	frames = append(frames, fs...)
	fs, _ = d.Flush()
	frames = append(frames, fs...)
	if len(frames) == 0 {
		t.Fatal("no frame")
	}
	const size = 160 * 120 * 3
	for i, f := range frames {
		if f.Image.Format != models.I420 || !f.Image.Valid() {
			t.Fatalf("frame %d: %s", i, f.Image.Format)
		}
		// 4:4:4 chroma halved and brought back: colours blur at edges, the picture stays.
		if mad, _, _ := compare(toBGR(t, f.Image), want[i*size:(i+1)*size]); mad > 8 {
			t.Fatalf("frame %d differs from ffmpeg's: mean abs diff %.3f", i, mad)
		}
		f.Release()
	}
	if st := d.Stats(); st.Converted != uint64(len(frames)) {
		t.Fatalf("stats %+v for %d frames", st, len(frames))
	}
}

// toBGR converts a decoded frame's picture to packed BGR rows without padding.
func toBGR(tb testing.TB, img models.Image) []byte {
	tb.Helper()
	out, _, err := decode.ToBGR(img, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.Clone(out.Pix)
}

// TestNoLeak decodes a clip many times with fresh decoders and checks that the process's
// resident memory stops growing.
func TestNoLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	pkts := readPackets(t, data.MustPath(t, "videos/mot15_tud_campus.mp4"))
	run := func() {
		for range 4 {
			decodeAll(t, pkts[0].Codec, pkts, nil)
		}
	}
	run()
	before, ok := rssBytes()
	if !ok {
		t.Skip("no /proc/self/status")
	}
	for range 10 {
		run()
	}
	after, _ := rssBytes()
	t.Logf("resident memory %d MiB -> %d MiB over 40 decoders x %d packets", before>>20, after>>20, len(pkts))
	// A leaked decoder holds several MiB of reference pictures, leaked packets ~13 KiB each:
	// either would show.
	if after-before > 24<<20 {
		t.Fatalf("resident memory grew by %d MiB", (after-before)>>20)
	}
}

// TestLoopedFile decodes a looping file source with B-frames over two wraps: the frames'
// timestamps keep increasing and none is lost.
func TestLoopedFile(t *testing.T) {
	const clip = 450
	src, err := file.New(file.Config{Path: data.MustPath(t, "videos/traffic_highway_fixed_1.mp4"), Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pkts []frame.Packet
	if err := src.Run(ctx, func(p frame.Packet) {
		if pkts = append(pkts, p); len(pkts) == 2*clip+60 {
			cancel()
		}
	}); err != nil {
		t.Fatal(err)
	}
	last := time.Duration(-1)
	n := decodeAll(t, pkts[0].Codec, pkts, func(i int, f *frame.Frame) {
		if f.PTS <= last {
			t.Fatalf("frame %d: pts %v after %v", i, f.PTS, last)
		}
		last = f.PTS
	})
	if n != len(pkts) {
		t.Fatalf("%d frames from %d packets", n, len(pkts))
	}
}

// benchDecode decodes a file's packets, read into memory first, over and over; it reports
// decoded frames per second (YUV, as the pipeline takes them; no BGR conversion).
func benchDecode(b *testing.B, rel string, threads int) {
	pkts := readPackets(b, data.MustPath(b, rel))
	d, err := decode.New(pkts[0].Codec, decode.WithThreads(threads))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	frames := 0
	emit := func(fs []*frame.Frame, err error) {
		if err != nil {
			b.Fatal(err)
		}
		frames += len(fs)
		for _, f := range fs {
			f.Release()
		}
	}
	b.ResetTimer()
	for b.Loop() {
		for _, p := range pkts {
			emit(d.Decode(p))
		}
		emit(d.Flush())
	}
	b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(frames)/1e6, "ms/frame")
}

// BenchmarkDecodeH264_720p: compare with `ffmpeg -threads 1 -i FILE -f null -` (which does
// not convert either).
func BenchmarkDecodeH264_720p(b *testing.B) {
	for _, th := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", th), func(b *testing.B) { benchDecode(b, "videos/traffic_highway_fixed_1.mp4", th) })
	}
}

// BenchmarkDecodePETS: MS-MPEG4v3, 768x576.
func BenchmarkDecodePETS(b *testing.B) {
	benchDecode(b, "videos/pedestrians_pets09_s2l1_vtest.avi", 1)
}

// TestFramesHeldElsewhere: a consumer goroutine holds a few frames at a time and releases
// them, as the pipeline's later stages do; a held frame's pixels never change under it.
func TestFramesHeldElsewhere(t *testing.T) {
	pkts := readPackets(t, data.MustPath(t, "videos/mot15_tud_campus.mp4"))
	d, err := decode.New(pkts[0].Codec)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	type held struct {
		f   *frame.Frame
		sum uint32
	}
	ch := make(chan *frame.Frame, 4)
	done := make(chan error, 1)
	go func() {
		var window []held
		var err error
		check := func(h held) {
			if s := crc32.ChecksumIEEE(h.f.Image.Pix[:h.f.Image.Stride*h.f.Image.Height]); s != h.sum && err == nil {
				err = fmt.Errorf("frame pts %v changed while held", h.f.PTS)
			}
			h.f.Release()
		}
		for f := range ch {
			window = append(window, held{f, crc32.ChecksumIEEE(f.Image.Pix[:f.Image.Stride*f.Image.Height])})
			if len(window) > 5 {
				check(window[0])
				window = window[1:]
			}
		}
		for _, h := range window {
			check(h)
		}
		done <- err
	}()
	for round := range 3 {
		for _, p := range pkts {
			p.PTS += time.Duration(round) * time.Hour
			fs, err := d.Decode(p)
			if err != nil {
				t.Error(err)
			}
			for _, f := range fs {
				ch <- f
			}
		}
		fs, _ := d.Flush()
		for _, f := range fs {
			ch <- f
		}
	}
	close(ch)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Frames != 3*uint64(len(pkts)) {
		t.Fatalf("stats %+v for %d frames", st, 3*len(pkts))
	}
}
