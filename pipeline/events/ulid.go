package events

import (
	"io"
	"time"
)

// crockford is the ULID alphabet (Crockford's base32: no I, L, O, U).
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ulids makes ULIDs (https://github.com/ulid/spec): 48 bits of Unix milliseconds then 80
// random bits, as 26 characters of Crockford base32, so ids sort by time. Within one
// millisecond (or when the clock steps back) the random part of the last id is incremented
// instead, so the ids one generator makes are unique and strictly increasing.
type ulids struct {
	rand   io.Reader
	lastMS uint64
	last   [10]byte // random part of the last id
	used   bool
}

// next returns a new ULID for time t.
func (g *ulids) next(t time.Time) string {
	ms := uint64(max(t.UnixMilli(), 0)) & (1<<48 - 1)
	if g.used && ms <= g.lastMS {
		ms = g.lastMS
		if !increment(&g.last) { // 2^80 ids in one millisecond: borrow the next one
			ms++
		}
	} else if _, err := io.ReadFull(g.rand, g.last[:]); err != nil {
		// A reader that fails (only a custom one can) still gives unique ids: count on.
		increment(&g.last)
	}
	g.lastMS, g.used = ms, true
	return encodeULID(ms, g.last)
}

// increment adds one to the big-endian number b, reporting false when it wrapped to zero.
func increment(b *[10]byte) bool {
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return true
		}
	}
	return false
}

// encodeULID writes 48 bits of ms and 80 bits of r as 26 base32 characters.
func encodeULID(ms uint64, r [10]byte) string {
	var out [26]byte
	// Time: 10 characters, 50 bits of which the top 2 are zero.
	for i := 9; i >= 0; i-- {
		out[i] = crockford[ms&31]
		ms >>= 5
	}
	// Randomness: 16 characters, 80 bits, taken 5 at a time from the top.
	var acc uint64
	bits := 0
	j := 10
	for _, b := range r {
		acc = acc<<8 | uint64(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[j] = crockford[(acc>>uint(bits))&31]
			j++
		}
	}
	return string(out[:])
}
