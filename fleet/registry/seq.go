package registry

import (
	"slices"
	"sort"
	"time"
)

// seqTrack follows one device's message seqs within one outbox epoch: which have arrived, which
// are missing and which were given up as lost.
//
//	1 … watermark │ hole │ span │ hole │ span … highest
//	  all accounted  missing  arrived  missing  arrived
//
// Every seq <= watermark has arrived or was given up. Above it, spans hold the runs of seqs
// accounted for (arrived, or given up inside a hole); between them are the holes. Memory is
// bounded by the number of holes, not by how many seqs arrived: live traffic above a replay gap
// is one span.
//
// A hole's age is the time of the last arrival that opened it, split it or shrank it: a backlog
// replay that keeps filling a hole keeps it open however long the backlog is; a seq that stays
// missing while the traffic around it has moved on for gapTimeout is given up as lost.
//
// Seqs at or below base are the device's history from before this registry first saw it in
// this epoch: they are tracked (a late replay of one is applied once, a repeat is a duplicate)
// but never reported as missing nor counted as lost.
type seqTrack struct {
	epoch      string
	gapTimeout time.Duration
	maxGaps    int
	// partial: this registry sees only a share of the device's seqs (Options.Shared), so a
	// seq it did not see is no gap: every seq up to the highest counts as accounted for,
	// nothing is missing or lost, and repeats are not recognised here (the store's msg_id
	// check does that across instances).
	partial bool

	base      uint64
	watermark uint64
	highest   uint64 // == max(watermark, last span's hi)
	spans     []span // sorted, disjoint, not adjacent; spans[0].lo > watermark+1
	held      uint64 // seqs in spans
	heldLow   uint64 // seqs in spans that are <= base
	nextCheck int64  // unix ns before which no hole can be old enough to give up; 0: none open
	lost      uint64 // over all epochs of the device
}

// span is a run of accounted seqs lo..hi; holeAt (unix ns) is the age of the hole just below it.
type span struct {
	lo, hi uint64
	holeAt int64
}

// start begins tracking an epoch whose first message seen has seq s. With fresh set the
// registry had no state for the device (first sight, or a controller restart), so seqs below s
// are unknown history; otherwise (an epoch change) seq starts again from 1 and a hole below s is
// a real gap. What was still missing of the previous epoch is counted as lost.
func (t *seqTrack) start(epoch string, s uint64, fresh bool) {
	*t = seqTrack{epoch: epoch, gapTimeout: t.gapTimeout, maxGaps: t.maxGaps, partial: t.partial, lost: t.lost + t.missing()}
	if fresh && s > 0 {
		t.base = s - 1
	}
}

// seen reports whether s arrived already or was given up.
func (t *seqTrack) seen(s uint64) bool {
	if s <= t.watermark {
		return true
	}
	i := sort.Search(len(t.spans), func(i int) bool { return t.spans[i].hi >= s })
	return i < len(t.spans) && t.spans[i].lo <= s
}

// add records the arrival of s, which must not be seen; then, while more than maxGaps holes are
// open, it gives up the lowest.
func (t *seqTrack) add(s uint64, now time.Time) {
	t.highest = max(t.highest, s)
	if t.partial {
		t.watermark = t.highest
		return
	}
	at := now.UnixNano()
	if s == t.watermark+1 {
		t.watermark = s
		if len(t.spans) > 0 {
			if t.spans[0].lo == s+1 {
				t.absorbFirst()
			} else {
				t.spans[0].holeAt = at
			}
		}
		return
	}
	t.held++
	if s <= t.base {
		t.heldLow++
	}
	i := sort.Search(len(t.spans), func(i int) bool { return t.spans[i].lo > s })
	joinPrev := i > 0 && t.spans[i-1].hi+1 == s
	joinNext := i < len(t.spans) && t.spans[i].lo == s+1
	switch {
	case joinPrev && joinNext:
		t.spans[i-1].hi = t.spans[i].hi
		t.spans = slices.Delete(t.spans, i, i+1)
	case joinPrev:
		t.spans[i-1].hi = s
		if i < len(t.spans) {
			t.spans[i].holeAt = at
		}
	case joinNext:
		t.spans[i].lo = s
		t.spans[i].holeAt = at
	default:
		if i < len(t.spans) {
			t.spans[i].holeAt = at // s splits a hole
		}
		t.spans = slices.Insert(t.spans, i, span{lo: s, hi: s, holeAt: at})
	}
	if t.nextCheck == 0 && len(t.spans) > 0 {
		t.nextCheck = at + int64(t.gapTimeout)
	}
	for len(t.spans) > t.maxGaps {
		t.giveUp(0)
	}
}

// expire gives up every hole that is gapTimeout old or older, and reports whether the track
// changed.
func (t *seqTrack) expire(now time.Time) bool {
	if t.nextCheck == 0 || now.UnixNano() < t.nextCheck {
		return false
	}
	changed := false
	limit := now.UnixNano() - int64(t.gapTimeout)
	oldest := int64(0)
	for i := 0; i < len(t.spans); {
		if t.spans[i].holeAt <= limit {
			t.giveUp(i) // merges span i into the one below (or the watermark): i is next
			changed = true
			continue
		}
		if oldest == 0 || t.spans[i].holeAt < oldest {
			oldest = t.spans[i].holeAt
		}
		i++
	}
	t.nextCheck = 0
	if len(t.spans) > 0 {
		t.nextCheck = oldest + int64(t.gapTimeout)
	}
	return changed
}

// giveUp counts the hole below span i as lost and merges the span with what lies below it.
func (t *seqTrack) giveUp(i int) {
	below := t.watermark
	if i > 0 {
		below = t.spans[i-1].hi
	}
	lo := t.spans[i].lo // the hole is below+1 .. lo-1
	t.held += lo - 1 - below
	if from := max(below, t.base); lo-1 > from {
		t.lost += lo - 1 - from
	}
	if below < t.base {
		t.heldLow += min(lo-1, t.base) - below
	}
	t.spans[i].lo = below + 1
	if i == 0 {
		t.absorbFirst()
		return
	}
	t.spans[i-1].hi = t.spans[i].hi
	t.spans = slices.Delete(t.spans, i, i+1)
}

// absorbFirst moves the watermark to the end of the first span, which starts right above it.
func (t *seqTrack) absorbFirst() {
	f := t.spans[0]
	t.held -= f.hi - f.lo + 1
	if f.lo <= t.base {
		t.heldLow -= min(f.hi, t.base) - f.lo + 1
	}
	t.watermark = f.hi
	t.spans = slices.Delete(t.spans, 0, 1)
	if len(t.spans) == 0 {
		t.nextCheck = 0
	}
}

// missing is how many seqs above base and up to highest neither arrived nor were given up.
func (t *seqTrack) missing() uint64 {
	n := t.highest - t.watermark - t.held
	if t.watermark < t.base {
		n -= (t.base - t.watermark) - t.heldLow // holes at or below base are not reported
	}
	return n
}
