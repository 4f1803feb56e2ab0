package server

import (
	"bytes"
	"fmt"
	"testing"
)

func sc4(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = append(b, 0, 0, 0, 1)
		b = append(b, n...)
	}
	return b
}

// H.264 units: header byte, then a payload whose first bit is first_mb_in_slice == 0 (0x80)
// or not (0x40).
var (
	h264AUD      = []byte{0x09, 0xf0}
	h264SPS      = []byte{0x67, 0x42, 0x00, 0x1e}
	h264PPS      = []byte{0x68, 0xce, 0x3c, 0x80}
	h264SEI      = []byte{0x06, 0x05, 0x01, 0x80}
	h264IDR      = []byte{0x65, 0x88, 0x84}
	h264IDR2nd   = []byte{0x65, 0x40, 0x84} // second slice of the same IDR picture
	h264P        = []byte{0x41, 0x9a, 0x01}
	h264P2nd     = []byte{0x41, 0x40, 0x01}
	h265VPS      = []byte{0x40, 0x01, 0x0c}
	h265SPS      = []byte{0x42, 0x01, 0x01}
	h265PPS      = []byte{0x44, 0x01, 0xc1}
	h265AUD      = []byte{0x46, 0x01, 0x50}
	h265IDR      = []byte{0x26, 0x01, 0xaf} // IDR_W_RADL, first slice segment
	h265CRA      = []byte{0x2a, 0x01, 0xaf} // CRA, first slice segment
	h265Trail    = []byte{0x02, 0x01, 0xd0} // TRAIL_R, first slice segment
	h265Trail2nd = []byte{0x02, 0x01, 0x50} // TRAIL_R, not the first segment
	h265Suffix   = []byte{0x50, 0x01, 0x05} // suffix SEI
)

func TestSplitNALUs(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want [][]byte
	}{
		{"empty", nil, nil},
		{"no start code", []byte{1, 2, 3, 4}, nil},
		{"4-byte codes", sc4(h264SPS, h264PPS), [][]byte{h264SPS, h264PPS}},
		{"3-byte codes", []byte{0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce}, [][]byte{{0x67, 0x42}, {0x68, 0xce}}},
		{"garbage before first code", append([]byte{7, 7, 7}, sc4(h264IDR)...), [][]byte{h264IDR}},
		{"trailing zeros dropped", append(sc4(h264IDR), 0, 0), [][]byte{h264IDR}},
		{"empty units skipped", []byte{0, 0, 1, 0, 0, 1, 0x65, 0x88}, [][]byte{{0x65, 0x88}}},
		{"start code at end", []byte{0, 0, 1, 0x65, 0x88, 0, 0, 1}, [][]byte{{0x65, 0x88}}},
		{"emulation prevention kept", sc4([]byte{0x65, 0, 0, 3, 1, 0x80}), [][]byte{{0x65, 0, 0, 3, 1, 0x80}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitNALUs(tt.in)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("SplitNALUs(% x) = %x, want %x", tt.in, got, tt.want)
			}
		})
	}
}

func TestSplitAccessUnits(t *testing.T) {
	tests := []struct {
		name  string
		codec string
		in    [][]byte
		want  []AccessUnit
		keys  []bool
	}{
		{
			name: "h264 params, IDR, two P", codec: CodecH264,
			in:   [][]byte{h264SPS, h264PPS, h264IDR, h264P, h264P},
			want: []AccessUnit{{h264SPS, h264PPS, h264IDR}, {h264P}, {h264P}},
			keys: []bool{true, false, false},
		},
		{
			name: "h264 multi-slice pictures", codec: CodecH264,
			in:   [][]byte{h264IDR, h264IDR2nd, h264P, h264P2nd, h264P2nd, h264P},
			want: []AccessUnit{{h264IDR, h264IDR2nd}, {h264P, h264P2nd, h264P2nd}, {h264P}},
			keys: []bool{true, false, false},
		},
		{
			name: "h264 AUD and SEI open a unit", codec: CodecH264,
			in:   [][]byte{h264AUD, h264SPS, h264PPS, h264SEI, h264IDR, h264AUD, h264P, h264SEI, h264P},
			want: []AccessUnit{{h264AUD, h264SPS, h264PPS, h264SEI, h264IDR}, {h264AUD, h264P}, {h264SEI, h264P}},
			keys: []bool{true, false, false},
		},
		{
			name: "h264 trailing params without picture dropped", codec: CodecH264,
			in:   [][]byte{h264IDR, h264SPS, h264PPS},
			want: []AccessUnit{{h264IDR}},
			keys: []bool{true},
		},
		{
			name: "h264 second slice without first", codec: CodecH264,
			in:   [][]byte{h264P2nd, h264P2nd},
			want: []AccessUnit{{h264P2nd, h264P2nd}},
			keys: []bool{false},
		},
		{
			name: "h265 VPS SPS PPS IDR, trail with segments, CRA", codec: CodecH265,
			in: [][]byte{h265VPS, h265SPS, h265PPS, h265IDR, h265Suffix, h265Trail, h265Trail2nd,
				h265AUD, h265CRA, h265Trail},
			want: []AccessUnit{{h265VPS, h265SPS, h265PPS, h265IDR, h265Suffix}, {h265Trail, h265Trail2nd},
				{h265AUD, h265CRA}, {h265Trail}},
			keys: []bool{true, false, true, false},
		},
		{name: "unknown codec", codec: "mpeg4", in: [][]byte{h264IDR}, want: nil},
		{name: "nothing", codec: CodecH265, in: nil, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitAccessUnits(tt.codec, tt.in)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got  %x\nwant %x", got, tt.want)
			}
			for i, au := range got {
				if k := IsKey(tt.codec, au); k != tt.keys[i] {
					t.Errorf("AU %d: IsKey = %v, want %v", i, k, tt.keys[i])
				}
			}
		})
	}
}

// TestSplitRealStream splits a real libx264 stream made by ffmpeg: one AU per frame.
func TestSplitRealStream(t *testing.T) {
	es := ffmpegOutput(t, "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-frames:v", "25",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-bf", "0", "-x264-params", "slices=2",
		"-f", "h264", "pipe:1")
	aus := SplitAccessUnits(CodecH264, SplitNALUs(es))
	if len(aus) != 25 {
		t.Fatalf("got %d access units, want 25", len(aus))
	}
	for i, au := range aus {
		slices := 0
		for _, n := range au {
			if t := n[0] & 0x1f; t == 1 || t == 5 {
				slices++
			}
		}
		if slices != 2 {
			t.Errorf("AU %d has %d slices, want 2", i, slices)
		}
		if want := i%10 == 0; IsKey(CodecH264, au) != want {
			t.Errorf("AU %d: IsKey = %v, want %v", i, !want, want)
		}
	}
}

func FuzzSplitAccessUnits(f *testing.F) {
	f.Add(sc4(h264SPS, h264PPS, h264IDR, h264P, h264P2nd), false)
	f.Add(sc4(h264AUD, h264SEI, h264IDR, h264IDR2nd, h264AUD, h264P), false)
	f.Add(sc4(h265VPS, h265SPS, h265PPS, h265IDR, h265Suffix, h265Trail, h265Trail2nd), true)
	f.Add([]byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 1}, true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, b []byte, hevc bool) {
		codec := CodecH264
		if hevc {
			codec = CodecH265
		}
		nalus := SplitNALUs(b)
		for _, n := range nalus {
			if len(n) == 0 || n[len(n)-1] == 0 {
				t.Fatalf("NALU % x is empty or ends in zero", n)
			}
			if bytes.Contains(n, []byte{0, 0, 1}) {
				t.Fatalf("NALU % x contains a start code", n)
			}
		}
		aus := SplitAccessUnits(codec, nalus)
		// The AUs hold the NALUs in order, dropping only picture-less groups.
		j := 0
		for _, au := range aus {
			vcl := false
			for _, n := range au {
				for j < len(nalus) && &nalus[j][0] != &n[0] {
					j++
				}
				if j == len(nalus) {
					t.Fatalf("AU NALU % x is not in the input in order", n)
				}
				j++
				if v, _, _ := classify(codec, n); v {
					vcl = true
				}
			}
			if !vcl {
				t.Fatalf("AU %x has no slice", au)
			}
			_ = IsKey(codec, au)
		}
	})
}

func classify(codec string, n []byte) (bool, bool, bool) {
	if codec == CodecH265 {
		return classifyH265(n)
	}
	return classifyH264(n)
}
