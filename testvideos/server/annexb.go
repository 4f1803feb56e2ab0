package server

// Splitting an Annex-B elementary stream (the output of `ffmpeg -f h264|hevc`) into NAL units
// and access units. Input is whatever a file holds, so every function here accepts any bytes
// without panicking (see FuzzSplitAccessUnits).

// Codec names, as FFmpeg spells them.
const (
	CodecH264 = "h264"
	CodecH265 = "hevc"
)

// SplitNALUs returns the NAL units of an Annex-B byte stream, without start codes. Bytes
// before the first start code are ignored, as are trailing zero bytes of each unit (they are
// the leading zero of the next 4-byte start code, or trailing_zero_8bits). The returned
// slices alias b.
func SplitNALUs(b []byte) [][]byte {
	var nalus [][]byte
	start := -1 // start of the current NALU's payload, -1 before the first start code
	i := 0
	for i+2 < len(b) {
		if b[i] != 0 || b[i+1] != 0 || b[i+2] != 1 {
			// Skip ahead fast: a start code needs two zero bytes.
			if b[i+2] > 1 {
				i += 3
			} else {
				i++
			}
			continue
		}
		if start >= 0 {
			if n := trimTrailingZeros(b[start:i]); len(n) > 0 {
				nalus = append(nalus, n)
			}
		}
		i += 3
		start = i
	}
	if start >= 0 && start < len(b) {
		if n := trimTrailingZeros(b[start:]); len(n) > 0 {
			nalus = append(nalus, n)
		}
	}
	return nalus
}

func trimTrailingZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// AccessUnit is one coded picture: its NAL units in stream order, without start codes.
type AccessUnit [][]byte

// SplitAccessUnits groups NAL units of codec (CodecH264 or CodecH265) into access units by
// the rules of H.264 7.4.1.2.3 and H.265 7.4.2.4.4: an access unit delimiter, a parameter
// set, a prefix SEI or reserved prefix type after a picture's slice, or a slice that starts a
// new picture (first_mb_in_slice == 0, first_slice_segment_in_pic_flag == 1) opens a new
// unit. Units without a slice (e.g. parameter sets at the end of the stream) are dropped, so
// every returned unit holds at least one slice. Arbitrary slice order is not supported.
// An unknown codec yields nil.
func SplitAccessUnits(codec string, nalus [][]byte) []AccessUnit {
	var classify func(n []byte) (vcl, firstSlice, opensAU bool)
	switch codec {
	case CodecH264:
		classify = classifyH264
	case CodecH265:
		classify = classifyH265
	default:
		return nil
	}
	var (
		aus    []AccessUnit
		cur    AccessUnit
		hasVCL bool
	)
	flush := func() {
		if hasVCL {
			aus = append(aus, cur)
		}
		cur, hasVCL = nil, false
	}
	for _, n := range nalus {
		vcl, first, opens := classify(n)
		switch {
		case vcl && first && hasVCL:
			flush()
		case opens && hasVCL:
			flush()
		}
		cur = append(cur, n)
		if vcl {
			hasVCL = true
		}
	}
	flush()
	return aus
}

// classifyH264 tells whether n is a slice, whether it is the first slice of a picture, and
// whether it is a non-VCL unit that may only come before a picture's first slice.
func classifyH264(n []byte) (vcl, firstSlice, opensAU bool) {
	if len(n) == 0 {
		return false, false, false
	}
	switch typ := n[0] & 0x1f; typ {
	case 1, 2, 5: // non-IDR slice, data partition A (holds the slice header), IDR slice
		// first_mb_in_slice is ue(v): its code is the single bit "1" exactly when it is 0.
		return true, len(n) > 1 && n[1]&0x80 != 0, false
	case 3, 4: // data partitions B and C: part of the picture, never its start
		return true, false, false
	case 6, 7, 8, 9, 14, 15, 16, 17, 18: // SEI, SPS, PPS, AUD, prefix, subset SPS, reserved
		return false, false, true
	default:
		return false, false, false
	}
}

// classifyH265 is classifyH264 for H.265.
func classifyH265(n []byte) (vcl, firstSlice, opensAU bool) {
	if len(n) < 2 {
		return false, false, false
	}
	typ := (n[0] >> 1) & 0x3f
	switch {
	case typ < 32: // VCL; first_slice_segment_in_pic_flag is the first bit after the header
		return true, len(n) > 2 && n[2]&0x80 != 0, false
	case typ >= 32 && typ <= 35, typ == 39, typ >= 41 && typ <= 44, typ >= 48 && typ <= 55:
		// VPS, SPS, PPS, AUD, prefix SEI, reserved and unspecified prefix types
		return false, false, true
	default: // EOS, EOB, filler, suffix SEI and other trailing types stay with the picture
		return false, false, false
	}
}

// naluType returns the NAL unit type of n in codec's numbering, or -1 when n is too short.
func naluType(codec string, n []byte) int {
	switch {
	case codec == CodecH264 && len(n) >= 1:
		return int(n[0] & 0x1f)
	case codec == CodecH265 && len(n) >= 2:
		return int((n[0] >> 1) & 0x3f)
	}
	return -1
}

// IsKey reports whether au is a random-access point: an IDR picture in H.264, an IRAP
// picture (BLA, IDR, CRA) in H.265.
func IsKey(codec string, au AccessUnit) bool {
	for _, n := range au {
		t := naluType(codec, n)
		switch codec {
		case CodecH264:
			if t == 5 {
				return true
			}
		case CodecH265:
			if t >= 16 && t <= 21 {
				return true
			}
		}
	}
	return false
}

// paramSetTypes lists the parameter-set NALU types of codec in the order they must precede
// a key picture.
func paramSetTypes(codec string) []int {
	if codec == CodecH265 {
		return []int{32, 33, 34} // VPS, SPS, PPS
	}
	return []int{7, 8} // SPS, PPS
}
