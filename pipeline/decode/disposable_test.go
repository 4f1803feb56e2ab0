package decode_test

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/pipeline/decode"
	"github.com/vigil-edge/vigil/pipeline/detect"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/testvideos/data"
)

// checkDisposable decodes pkts twice: whole, then without the packets Disposable marks. Every
// picture of the second run must be bit-identical to the same picture (by PTS) of the first,
// and the second run must give exactly the pictures not dropped. It returns how many packets
// were dropped.
func checkDisposable(t *testing.T, pkts []frame.Packet) int {
	t.Helper()
	full := map[time.Duration][32]byte{}
	decodeAll(t, pkts[0].Codec, pkts, func(i int, f *frame.Frame) {
		full[f.PTS] = sha256.Sum256(toBGR(t, f.Image))
	})
	if len(full) != len(pkts) {
		t.Fatalf("full decode: %d distinct PTS for %d packets", len(full), len(pkts))
	}
	var d decode.Disposable
	var kept []frame.Packet
	dropped := map[time.Duration]bool{}
	for _, p := range pkts {
		if d.Check(p) {
			if p.Key {
				t.Fatalf("key frame at %v marked disposable", p.PTS)
			}
			dropped[p.PTS] = true
			continue
		}
		kept = append(kept, p)
	}
	n := decodeAll(t, pkts[0].Codec, kept, func(i int, f *frame.Frame) {
		want, ok := full[f.PTS]
		if !ok || dropped[f.PTS] {
			t.Fatalf("frame at %v: not a kept packet's", f.PTS)
		}
		if sha256.Sum256(toBGR(t, f.Image)) != want {
			t.Fatalf("frame at %v differs from the full decode after dropping %d disposable packets", f.PTS, len(dropped))
		}
	})
	if n != len(kept) {
		t.Fatalf("decoded %d frames from %d kept packets", n, len(kept))
	}
	return len(dropped)
}

// TestDisposable: dropping the packets Disposable marks leaves every other picture exactly as
// a full decode makes it, for H.264 and H.265 with B-frames, Annex-B and length-prefixed
// (avcC from an MP4), and it finds such packets where there are some.
func TestDisposable(t *testing.T) {
	for _, codec := range []string{"h264", "hevc"} {
		t.Run(codec+"/annexb", func(t *testing.T) {
			aus, _ := annexB(t, codec, "320x240", 48)
			c := &frame.Codec{Name: codec}
			var pkts []frame.Packet
			for i, au := range aus {
				pkts = append(pkts, frame.Packet{Codec: c, Data: au, PTS: time.Duration(i) * 40 * time.Millisecond, Key: i%12 == 0})
			}
			if n := checkDisposable(t, pkts); n == 0 {
				t.Fatalf("no disposable packet among %d with B-frames", len(pkts))
			} else {
				t.Logf("%d of %d packets disposable", n, len(pkts))
			}
		})
	}
	t.Run("h264/avcc-720p", func(t *testing.T) {
		pkts := readPackets(t, data.MustPath(t, "videos/traffic_highway_fixed_1.mp4"))[:120]
		n := checkDisposable(t, pkts)
		if n == 0 {
			t.Fatal("no disposable packet in a stream with B-frames")
		}
		t.Logf("%d of %d packets disposable", n, len(pkts))
	})
	t.Run("no-bframes", func(t *testing.T) {
		pkts := readPackets(t, data.MustPath(t, "videos/parking_lot_cars_intel.mp4"))[:60]
		if n := checkDisposable(t, pkts); n != 0 {
			t.Logf("%d disposable packets in a stream without B-frames", n)
		}
	})
}

// TestDisposableOtherCodecs: codecs it does not know are never disposable.
func TestDisposableOtherCodecs(t *testing.T) {
	var d decode.Disposable
	for _, name := range []string{"mpeg4", "msmpeg4v3", "mjpeg", ""} {
		p := frame.Packet{Codec: &frame.Codec{Name: name}, Data: []byte{0, 0, 1, 0x01, 0x9e}}
		if d.Check(p) {
			t.Errorf("%q packet marked disposable", name)
		}
	}
	if d.Check(frame.Packet{Data: []byte{0, 0, 1, 0x01}}) {
		t.Error("packet without a codec marked disposable")
	}
}

// FuzzDisposable: any bytes, with either framing, never panic.
func FuzzDisposable(f *testing.F) {
	f.Add(false, []byte{0, 0, 0, 1, 0x01, 0x9e, 0, 0, 1, 0x01})
	f.Add(true, []byte{0, 0, 0, 2, 0x02, 0x01, 0, 0, 0, 9})
	avcc := &frame.Codec{Name: "h264", Extradata: []byte{1, 0x64, 0, 0x1f, 0xff, 0xe1, 0}}
	hvcc := &frame.Codec{Name: "hevc", Extradata: append([]byte{1}, make([]byte, 22)...)}
	hvcc.Extradata[21] = 0x0b
	f.Fuzz(func(t *testing.T, hevc bool, b []byte) {
		var d decode.Disposable
		for _, c := range []*frame.Codec{{Name: "h264"}, {Name: "hevc"}, avcc, hvcc} {
			if hevc != (c.Name == "hevc") {
				continue
			}
			d.Check(frame.Packet{Codec: c, Data: b})
			d.Check(frame.Packet{Codec: c, Data: b, Key: true})
		}
	})
}

// BenchmarkDecodeDetectFPS decodes the 720p clip (30 fps, B-frames) as a camera analysed at
// 5 fps does: every packet ("all"), or leaving undecoded the disposable pictures not due
// ("skip-disposable"). Compare ns/packet of the two sub-benchmarks of one run.
func BenchmarkDecodeDetectFPS(b *testing.B) {
	pkts := readPackets(b, data.MustPath(b, "videos/traffic_highway_fixed_1.mp4"))
	for _, skip := range []bool{false, true} {
		name := "all"
		if skip {
			name = "skip-disposable"
		}
		b.Run(name, func(b *testing.B) {
			dec, err := decode.New(pkts[0].Codec)
			if err != nil {
				b.Fatal(err)
			}
			defer dec.Close()
			decoded, skipped := 0, 0
			for b.Loop() {
				rl := detect.RateLimiter{FPS: 5}
				var disp decode.Disposable
				out := func(fs []*frame.Frame, err error) {
					if err != nil {
						b.Fatal(err)
					}
					for _, f := range fs {
						rl.Allow(f.PTS)
						f.Release()
					}
				}
				for _, p := range pkts {
					if skip && disp.Check(p) && !rl.Due(p.PTS) {
						skipped++
						continue
					}
					decoded++
					out(dec.Decode(p))
				}
				out(dec.Flush())
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts))/1e6, "ms/packet")
			b.ReportMetric(float64(skipped)/float64(skipped+decoded), "undecoded-share")
		})
	}
}
