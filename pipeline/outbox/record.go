package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// Class is frame.Class: a message's kind and priority.
type Class = frame.Class

// The classes (see frame.Class; frame.DropOrder gives their priority).
const (
	ClassDetections  = frame.ClassDetections
	ClassTelemetry   = frame.ClassTelemetry
	ClassEventUpdate = frame.ClassEventUpdate
	ClassEvent       = frame.ClassEvent
	ClassAlert       = frame.ClassAlert
	ClassSnapshot    = frame.ClassSnapshot
	NumClasses       = frame.NumClasses
)

// Record is one stored message.
type Record struct {
	Class      Class
	CapturedAt time.Time // when the data was captured (kept on replay)
	StoredAt   time.Time // when it was appended
	Topic      string
	Payload    []byte
}

// Record encoding, version 1 (big-endian):
//
//	0      version (1)
//	1      class
//	2:10   captured_at, Unix ms
//	10:18  stored_at, Unix ms
//	18:20  topic length T
//	20:20+T topic
//	+4     payload length P
//	+P     payload
//	+4     CRC-32C of everything before it
const recordVersion = 1

const fixedLen = 1 + 1 + 8 + 8 + 2 + 4 + 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors from DecodeRecord.
var (
	ErrShortRecord = errors.New("outbox record is truncated")
	ErrBadVersion  = errors.New("outbox record has an unknown version")
	ErrChecksum    = errors.New("outbox record checksum mismatch")
	ErrBadRecord   = errors.New("outbox record is malformed")
)

// EncodedLen is the size of r once encoded.
func (r Record) EncodedLen() int { return fixedLen + len(r.Topic) + len(r.Payload) }

// Encode appends r's encoding to dst.
func (r Record) Encode(dst []byte) ([]byte, error) {
	if len(r.Topic) > 0xffff {
		return dst, fmt.Errorf("%w: topic of %d bytes", ErrBadRecord, len(r.Topic))
	}
	if uint64(len(r.Payload)) > 0xffffffff {
		return dst, fmt.Errorf("%w: payload of %d bytes", ErrBadRecord, len(r.Payload))
	}
	start := len(dst)
	dst = append(dst, recordVersion, byte(r.Class))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.CapturedAt.UnixMilli()))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.StoredAt.UnixMilli()))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.Topic)))
	dst = append(dst, r.Topic...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(r.Payload)))
	dst = append(dst, r.Payload...)
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
	return dst, nil
}

// DecodeRecord parses an encoded record. The returned Topic and Payload are copies: b may be
// reused (bbolt's values are only valid inside their transaction).
func DecodeRecord(b []byte) (Record, error) {
	var r Record
	if len(b) < fixedLen {
		return r, fmt.Errorf("%w: %d bytes", ErrShortRecord, len(b))
	}
	if b[0] != recordVersion {
		return r, fmt.Errorf("%w: %d", ErrBadVersion, b[0])
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return r, ErrChecksum
	}
	r.Class = Class(b[1])
	if r.Class >= NumClasses {
		return r, fmt.Errorf("%w: class %d", ErrBadRecord, b[1])
	}
	r.CapturedAt = time.UnixMilli(int64(binary.BigEndian.Uint64(b[2:10]))).UTC()
	r.StoredAt = time.UnixMilli(int64(binary.BigEndian.Uint64(b[10:18]))).UTC()
	tl := int(binary.BigEndian.Uint16(b[18:20]))
	rest := body[20:]
	if len(rest) < tl+4 {
		return r, fmt.Errorf("%w: topic length %d", ErrBadRecord, tl)
	}
	r.Topic = string(rest[:tl])
	rest = rest[tl:]
	pl := int(binary.BigEndian.Uint32(rest[:4]))
	rest = rest[4:]
	if len(rest) != pl {
		return r, fmt.Errorf("%w: payload length %d, %d bytes left", ErrBadRecord, pl, len(rest))
	}
	r.Payload = append([]byte(nil), rest...)
	return r, nil
}
