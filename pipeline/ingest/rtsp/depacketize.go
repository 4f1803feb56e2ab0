package rtsp

import (
	"errors"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// depacketizer turns the RTP packets of one H.264 or H.265 track into frame.Packets: whole
// access units in Annex-B, parameter sets in front of every key frame, nothing before the
// first key frame. It is not safe for concurrent use.
type depacketizer struct {
	name      string                              // "h264" or "hevc"
	decode    func(*rtp.Packet) ([][]byte, error) // the format's RTP decoder
	paramType []int                               // parameter-set NALU types, in stream order
	params    [][]byte                            // latest of each paramType; nil when unseen
	clock     int64

	codec   *frame.Codec // made at the first key frame, then the same for the session
	started bool         // the first key frame went out
	needKey bool         // drop until the next key frame (after a loss downstream)
	baseTS  uint32       // RTP timestamp of the first key frame
	lastTS  uint32       // RTP timestamp of the previous emitted AU
	pts     int64        // unwrapped clock ticks of the previous emitted AU, from baseTS

	havePrev   bool
	prevTS     uint32
	prevMarker bool
}

// newDepacketizer makes a depacketizer for an H.264 or H.265 format, seeded with the
// parameter sets the SDP announced.
func newDepacketizer(f format.Format) (*depacketizer, error) {
	switch f := f.(type) {
	case *format.H264:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		sps, pps := f.SafeParams()
		return &depacketizer{
			name: "h264", decode: dec.Decode, paramType: []int{7, 8},
			params: [][]byte{clone(sps), clone(pps)}, clock: int64(f.ClockRate()),
		}, nil
	case *format.H265:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		vps, sps, pps := f.SafeParams()
		return &depacketizer{
			name: "hevc", decode: dec.Decode, paramType: []int{32, 33, 34},
			params: [][]byte{clone(vps), clone(sps), clone(pps)}, clock: int64(f.ClockRate()),
		}, nil
	}
	return nil, errors.New("not an H.264 or H.265 format")
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// isIncomplete tells the decoder errors that only mean "wait for more packets".
func isIncomplete(err error) bool {
	return errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrMorePacketsNeeded) ||
		errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) ||
		errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious)
}

// push feeds one RTP packet. It returns a packet and true when an access unit completed and
// is to be emitted, and an error for a packet the decoder rejected (not fatal: the stream
// goes on; the AU it belonged to is lost).
func (d *depacketizer) push(pkt *rtp.Packet, now time.Time) (frame.Packet, bool, error) {
	// The decoder returns the previous AU when a packet of a new timestamp arrives after one
	// without the marker bit: that AU carries the previous packet's timestamp.
	ts := pkt.Timestamp
	if d.havePrev && !d.prevMarker && d.prevTS != pkt.Timestamp {
		ts = d.prevTS
	}
	d.havePrev, d.prevTS, d.prevMarker = true, pkt.Timestamp, pkt.Marker

	au, err := d.decode(pkt)
	if err != nil {
		if isIncomplete(err) {
			return frame.Packet{}, false, nil
		}
		return frame.Packet{}, false, err
	}
	return d.accessUnit(au, ts, now)
}

func (d *depacketizer) naluType(n []byte) int {
	if d.name == "hevc" {
		if len(n) < 2 {
			return -1
		}
		return int((n[0] >> 1) & 0x3f)
	}
	if len(n) < 1 {
		return -1
	}
	return int(n[0] & 0x1f)
}

func (d *depacketizer) isKeyType(t int) bool {
	if d.name == "hevc" {
		return t >= 16 && t <= 21 // BLA, IDR, CRA
	}
	return t == 5
}

func (d *depacketizer) paramIndex(t int) int {
	for i, pt := range d.paramType {
		if pt == t {
			return i
		}
	}
	return -1
}

// accessUnit handles one whole access unit with RTP timestamp ts.
func (d *depacketizer) accessUnit(au [][]byte, ts uint32, now time.Time) (frame.Packet, bool, error) {
	key := false
	inBand := 0 // bit i: paramType[i] is in this AU
	for _, n := range au {
		t := d.naluType(n)
		if i := d.paramIndex(t); i >= 0 {
			d.params[i] = clone(n)
			inBand |= 1 << i
		}
		if d.isKeyType(t) {
			key = true
		}
	}
	if !d.started || d.needKey {
		if !key {
			return frame.Packet{}, false, nil
		}
		if !d.started {
			d.started = true
			d.baseTS, d.lastTS, d.pts = ts, ts, 0
			d.codec = d.newCodec()
		}
		d.needKey = false
	}
	d.pts += int64(int32(ts - d.lastTS))
	d.lastTS = ts

	if key && inBand != 1<<len(d.paramType)-1 && d.haveParams() {
		au = d.withParams(au)
	}
	data, err := h264.AnnexB(au).Marshal() // start codes are the same in H.265
	if err != nil {
		return frame.Packet{}, false, err
	}
	return frame.Packet{
		Codec:      d.codec,
		Data:       data,
		PTS:        ticksToDuration(d.pts, d.clock),
		Key:        key,
		CapturedAt: now.UTC(),
	}, true, nil
}

func (d *depacketizer) haveParams() bool {
	for _, p := range d.params {
		if p == nil {
			return false
		}
	}
	return true
}

// withParams returns au with the current parameter sets in front of its first non-AUD
// unit, and its own (partial) parameter sets removed.
func (d *depacketizer) withParams(au [][]byte) [][]byte {
	out := make([][]byte, 0, len(au)+len(d.params))
	i := 0
	aud := 9
	if d.name == "hevc" {
		aud = 35
	}
	if len(au) > 0 && d.naluType(au[0]) == aud {
		out = append(out, au[0])
		i = 1
	}
	out = append(out, d.params...)
	for _, n := range au[i:] {
		if d.paramIndex(d.naluType(n)) < 0 {
			out = append(out, n)
		}
	}
	return out
}

// newCodec describes the stream from the parameter sets known now.
func (d *depacketizer) newCodec() *frame.Codec {
	c := &frame.Codec{Name: d.name}
	if d.haveParams() {
		c.Extradata, _ = h264.AnnexB(d.params).Marshal()
	}
	switch d.name {
	case "h264":
		var sps h264.SPS
		if p := d.params[0]; p != nil && sps.Unmarshal(p) == nil {
			c.Width, c.Height = sps.Width(), sps.Height()
		}
	case "hevc":
		var sps h265.SPS
		if p := d.params[1]; p != nil && sps.Unmarshal(p) == nil {
			c.Width, c.Height = sps.Width(), sps.Height()
		}
	}
	return c
}

// ticksToDuration converts clock ticks to a duration without overflowing for long sessions.
func ticksToDuration(v, clock int64) time.Duration {
	if clock <= 0 {
		return 0
	}
	return time.Duration(v/clock)*time.Second + time.Duration(v%clock)*time.Second/time.Duration(clock)
}
