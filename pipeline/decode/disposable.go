package decode

import (
	"strings"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// Disposable tells, before decoding, whether a packet's picture is one no other picture is
// predicted from, so that a caller that will not look at the picture may drop the packet
// undecoded without harming any later picture (FFmpeg's skip_frame=nonref, decided per
// packet). A 30 fps H.264 stream with B-frames analysed at 5 fps spends about a third of its
// decoding time on such pictures.
//
// It knows H.264 (every slice has nal_ref_idc 0) and H.265 (every slice is a sub-layer
// non-reference picture in the highest temporal sub-layer the stream declares, so that no
// higher sub-layer can refer to it either). Anything else, anything it cannot parse, and a
// packet without slices is not disposable: the caller decodes it. Data is Annex-B or, when
// the codec's extradata is an avcC/hvcC record, length-prefixed NAL units.
//
// A Disposable is for one goroutine; Reset it for a new stream session (Check does that
// itself when the codec pointer changes).
type Disposable struct {
	codec    *frame.Codec
	kind     int // 0 unknown, 264, 265
	lenSize  int // NAL length prefix size; 0: Annex-B
	maxTid   int // H.265: highest TemporalId the SPS declares; -1 unknown
	disabled bool
}

// Reset forgets the stream.
func (d *Disposable) Reset() { *d = Disposable{} }

// Check reports whether p's picture is disposable.
func (d *Disposable) Check(p frame.Packet) bool {
	if p.Codec != d.codec || d.codec == nil {
		d.setup(p.Codec)
	}
	if d.disabled || p.Key {
		if !d.disabled && d.kind == 265 {
			d.scanSPS(p.Data) // parameter sets travel in front of key frames
		}
		return false
	}
	if d.kind == 265 {
		d.scanSPS(p.Data)
	}
	slices := 0
	disposable := true
	d.each(p.Data, func(nal []byte) bool {
		switch d.kind {
		case 264:
			t := nal[0] & 0x1f
			if t >= 1 && t <= 5 {
				slices++
				if nal[0]&0x60 != 0 || t == 5 {
					disposable = false
				}
			}
		case 265:
			if len(nal) < 2 {
				return true
			}
			t := (nal[0] >> 1) & 0x3f
			if t <= 31 { // VCL
				slices++
				tid := int(nal[1]&7) - 1
				if t > 14 || t%2 != 0 || d.maxTid < 0 || tid != d.maxTid {
					disposable = false
				}
			}
		}
		return disposable
	})
	return disposable && slices > 0
}

func (d *Disposable) setup(c *frame.Codec) {
	*d = Disposable{codec: c, maxTid: -1}
	if c == nil {
		d.disabled = true
		return
	}
	switch strings.ToLower(c.Name) {
	case "h264", "avc":
		d.kind = 264
	case "hevc", "h265":
		d.kind = 265
	default:
		d.disabled = true
		return
	}
	x := c.Extradata
	switch {
	case d.kind == 264 && len(x) >= 7 && x[0] == 1: // avcC
		d.lenSize = int(x[4]&3) + 1
	case d.kind == 265 && len(x) >= 23 && x[0] == 1: // hvcC
		d.lenSize = int(x[21]&3) + 1
		if n := int(x[21]>>3) & 7; n > 0 { // numTemporalLayers
			d.maxTid = n - 1
		}
	case d.kind == 265:
		d.scanSPS(x)
	}
	if d.lenSize == 3 { // not allowed by the formats
		d.disabled = true
	}
}

// scanSPS takes sps_max_sub_layers_minus1 from an H.265 SPS among data's NAL units.
func (d *Disposable) scanSPS(data []byte) {
	d.each(data, func(nal []byte) bool {
		if len(nal) >= 3 && (nal[0]>>1)&0x3f == 33 {
			d.maxTid = int(nal[2]>>1) & 7
		}
		return true
	})
}

// each calls fn with every NAL unit of data (header first) until fn returns false.
func (d *Disposable) each(data []byte, fn func(nal []byte) bool) {
	if d.lenSize > 0 {
		for len(data) >= d.lenSize {
			n := 0
			for i := range d.lenSize {
				n = n<<8 | int(data[i])
			}
			data = data[d.lenSize:]
			if n <= 0 || n > len(data) {
				return
			}
			if !fn(data[:n]) {
				return
			}
			data = data[n:]
		}
		return
	}
	// Annex-B: NAL units between 00 00 01 start codes.
	start := -1
	for i := 0; i+2 < len(data); {
		if data[i+2] > 1 {
			i += 3
			continue
		}
		if data[i] == 0 && data[i+1] == 0 && data[i+2] == 1 {
			if start >= 0 && !emit(data[start:i], fn) {
				return
			}
			i += 3
			start = i
			continue
		}
		i++
	}
	if start >= 0 {
		emit(data[start:], fn)
	}
}

// emit hands fn one Annex-B NAL unit without the trailing zero bytes of the next start code.
func emit(nal []byte, fn func([]byte) bool) bool {
	for len(nal) > 0 && nal[len(nal)-1] == 0 {
		nal = nal[:len(nal)-1]
	}
	if len(nal) == 0 {
		return true
	}
	return fn(nal)
}
