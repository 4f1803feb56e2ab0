package rtsp

import (
	"bytes"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/pion/rtp"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// A real 64x64 baseline SPS and its PPS (from libx264).
var (
	testSPS  = []byte{0x67, 0x42, 0xc0, 0x0a, 0xda, 0x10, 0x9b, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x01, 0x40, 0xf1, 0x22, 0x6a}
	testPPS  = []byte{0x68, 0xce, 0x0f, 0xc8}
	testIDR  = []byte{0x65, 0x88, 0x84, 0x00, 0x33}
	testP    = []byte{0x41, 0x9a, 0x02, 0x04}
	newerSPS = append(append([]byte{}, testSPS[:len(testSPS)-1]...), 0x93)
)

// rtpSource packetizes access units as a camera would.
type rtpSource struct {
	enc *rtph264.Encoder
}

func newRTPSource(t testing.TB) *rtpSource {
	enc := &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1, PayloadMaxSize: 1200}
	if err := enc.Init(); err != nil {
		t.Fatal(err)
	}
	return &rtpSource{enc: enc}
}

func (s *rtpSource) packets(ts uint32, au ...[]byte) []*rtp.Packet {
	pkts, err := s.enc.Encode(au)
	if err != nil {
		panic(err) // only for AUs the tests build
	}
	for _, p := range pkts {
		p.Timestamp = ts
	}
	return pkts
}

func newTestDepacketizer(t *testing.T, sps, pps []byte) *depacketizer {
	d, err := newDepacketizer(&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: sps, PPS: pps})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func feed(t *testing.T, d *depacketizer, pkts []*rtp.Packet) []frame.Packet {
	t.Helper()
	var out []frame.Packet
	for _, p := range pkts {
		fp, ok, err := d.push(p, time.Now())
		if err != nil {
			t.Fatalf("push: %v", err)
		}
		if ok {
			out = append(out, fp)
		}
	}
	return out
}

func annexB(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = append(b, 0, 0, 0, 1)
		b = append(b, n...)
	}
	return b
}

func TestDepacketizer(t *testing.T) {
	src := newRTPSource(t)
	d := newTestDepacketizer(t, testSPS, testPPS)
	big := append([]byte{0x65}, bytes.Repeat([]byte{0xab}, 5000)...) // fragmented (FU-A)
	var start uint32 = 0xffffffff - 3000                             // wraps after the key frame
	var pkts []*rtp.Packet
	pkts = append(pkts, src.packets(start-3000, testP)...) // before any key frame: dropped
	pkts = append(pkts, src.packets(start, big)...)
	pkts = append(pkts, src.packets(start+3000, testP)...)
	pkts = append(pkts, src.packets(start+6000, newerSPS, testPPS, testIDR)...)
	pkts = append(pkts, src.packets(start+9000, testIDR)...)
	got := feed(t, d, pkts)

	want := []struct {
		data []byte
		pts  time.Duration
		key  bool
	}{
		{annexB(testSPS, testPPS, big), 0, true}, // parameter sets from the SDP prepended
		{annexB(testP), 33333333, false},
		{annexB(newerSPS, testPPS, testIDR), 66666666, true},               // in-band, complete: as is
		{annexB(newerSPS, testPPS, testIDR), 100 * time.Millisecond, true}, // in-band ones remembered
	}
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if !bytes.Equal(g.Data, w.data) {
			t.Errorf("packet %d: data % x..., want % x...", i, g.Data[:min(24, len(g.Data))], w.data[:min(24, len(w.data))])
		}
		if g.PTS != w.pts || g.Key != w.key {
			t.Errorf("packet %d: pts %v key %v, want %v %v", i, g.PTS, g.Key, w.pts, w.key)
		}
		if g.Codec != got[0].Codec {
			t.Errorf("packet %d: codec pointer changed", i)
		}
		if g.CapturedAt.Location() != time.UTC {
			t.Errorf("packet %d: CapturedAt not UTC", i)
		}
	}
	c := got[0].Codec
	if c.Name != "h264" || c.Width != 64 || c.Height != 64 {
		t.Errorf("codec %+v, want h264 64x64", c)
	}
	if !bytes.Equal(c.Extradata, annexB(testSPS, testPPS)) {
		t.Errorf("extradata % x", c.Extradata)
	}
}

// TestDepacketizerNoSDPParams: without parameter sets in the SDP, the first key frame's own
// ones describe the stream.
func TestDepacketizerNoSDPParams(t *testing.T) {
	src := newRTPSource(t)
	d := newTestDepacketizer(t, nil, nil)
	got := feed(t, d, append(src.packets(1000, testSPS, testPPS, testIDR), src.packets(4000, testIDR)...))
	if len(got) != 2 {
		t.Fatalf("got %d packets", len(got))
	}
	if got[0].Codec.Width != 64 || !bytes.Equal(got[1].Data, annexB(testSPS, testPPS, testIDR)) {
		t.Errorf("codec %+v, second key frame % x", got[0].Codec, got[1].Data)
	}
}

// TestDepacketizerNoMarker: a camera without marker bits: AUs split on timestamp change,
// each with its own timestamp.
func TestDepacketizerNoMarker(t *testing.T) {
	src := newRTPSource(t)
	d := newTestDepacketizer(t, testSPS, testPPS)
	var pkts []*rtp.Packet
	for i, au := range [][]byte{testIDR, testP, testP} {
		for _, p := range src.packets(uint32(i*3000), au) {
			p.Marker = false
			pkts = append(pkts, p)
		}
	}
	got := feed(t, d, pkts)
	if len(got) != 2 || got[0].PTS != 0 || got[1].PTS != 33333333 || !got[0].Key {
		t.Fatalf("got %d packets: %+v", len(got), got)
	}
}

func TestDepacketizerNeedKey(t *testing.T) {
	src := newRTPSource(t)
	d := newTestDepacketizer(t, testSPS, testPPS)
	feed(t, d, src.packets(0, testIDR))
	d.needKey = true // as after a hand-over drop
	got := feed(t, d, append(src.packets(3000, testP), src.packets(6000, testIDR)...))
	if len(got) != 1 || !got[0].Key || got[0].PTS != 66666666 {
		t.Fatalf("got %+v, want only the key frame at 66.67 ms", got)
	}
}

func TestTicksToDuration(t *testing.T) {
	for _, tt := range []struct {
		v    int64
		want time.Duration
	}{
		{0, 0}, {90000, time.Second}, {-3000, -33333333}, {90000 * 3600 * 24 * 365, 365 * 24 * time.Hour},
	} {
		if got := ticksToDuration(tt.v, 90000); got != tt.want {
			t.Errorf("ticksToDuration(%d) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// FuzzDepacketizer feeds arbitrary RTP payloads, as a hostile camera could: no panic, and
// every emitted packet is Annex-B with a codec.
func FuzzDepacketizer(f *testing.F) {
	src := newRTPSource(f)
	for _, p := range append(src.packets(0, testSPS, testPPS, testIDR), src.packets(3000, bytes.Repeat([]byte{0x41}, 3000))...) {
		b, _ := p.Marshal()
		f.Add(b, true)
	}
	f.Add([]byte{0x80, 0xe0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 28, 0x85, 1}, false)
	f.Fuzz(func(t *testing.T, raw []byte, hevc bool) {
		var fm format.Format = &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: testSPS, PPS: testPPS}
		if hevc {
			fm = &format.H265{PayloadTyp: 96}
		}
		d, err := newDepacketizer(fm)
		if err != nil {
			t.Fatal(err)
		}
		// The same bytes as three packets of successive timestamps.
		for i := range 3 {
			var p rtp.Packet
			if p.Unmarshal(raw) != nil {
				return
			}
			p.Timestamp += uint32(i * 3000)
			fp, ok, err := d.push(&p, time.Now())
			if err != nil || !ok {
				continue
			}
			if fp.Codec == nil || !bytes.HasPrefix(fp.Data, []byte{0, 0, 0, 1}) {
				t.Fatalf("bad packet %+v", fp)
			}
		}
	})
}
