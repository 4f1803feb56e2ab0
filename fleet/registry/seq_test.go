package registry

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// op is one step of a seq scenario: a detections message (seq in epoch, replayed or live), or,
// when wait is set, the clock moving on.
type op struct {
	seq      uint64
	epoch    string
	replayed bool
	wait     time.Duration
}

// live, replay and wait build ops; seqs "a-b" expand to a..b.
func live(seqs ...uint64) []op {
	var out []op
	for _, s := range seqs {
		out = append(out, op{seq: s})
	}
	return out
}

func replay(seqs ...uint64) []op {
	out := live(seqs...)
	for i := range out {
		out[i].replayed = true
	}
	return out
}

func run(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func in(epoch string, ops []op) []op {
	for i := range ops {
		ops[i].epoch = epoch
	}
	return ops
}

func wait(d time.Duration) []op { return []op{{wait: d}} }

func ops(parts ...[]op) []op {
	var out []op
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestSeqTracking(t *testing.T) {
	const timeout = time.Minute
	tests := []struct {
		name    string
		maxGaps int
		ops     []op
		want    Stream
		applied uint64 // detections messages applied to the counts
		stale   uint64 // rejected as stale_epoch
	}{
		{
			name:    "in order",
			ops:     live(run(1, 5)...),
			want:    Stream{Epoch: "e1", HighestSeq: 5, Watermark: 5},
			applied: 5,
		},
		{
			name:    "repeats are duplicates",
			ops:     live(1, 2, 2, 1, 3, 3),
			want:    Stream{Epoch: "e1", HighestSeq: 3, Watermark: 3, Duplicates: 3},
			applied: 3,
		},
		{
			name:    "a hole is missing while it may still arrive",
			ops:     ops(live(1, 2, 6, 7), wait(timeout-time.Second)),
			want:    Stream{Epoch: "e1", HighestSeq: 7, Watermark: 2, Missing: 3},
			applied: 4,
		},
		{
			name:    "replay out of order fills the hole",
			ops:     ops(live(1, 2, 6, 7), replay(4, 3), live(8), replay(5, 3)),
			want:    Stream{Epoch: "e1", HighestSeq: 8, Watermark: 8, Replayed: 4, Duplicates: 1},
			applied: 8,
		},
		{
			name:    "a hole that times out is lost and the watermark moves past it",
			ops:     ops(live(1, 2, 4, 5), wait(timeout)),
			want:    Stream{Epoch: "e1", HighestSeq: 5, Watermark: 5, Lost: 1},
			applied: 4,
		},
		{
			name:    "a seq arriving after it was given up is a duplicate",
			ops:     ops(live(1, 2, 4), wait(timeout), replay(3)),
			want:    Stream{Epoch: "e1", HighestSeq: 4, Watermark: 4, Lost: 1, Duplicates: 1, Replayed: 1},
			applied: 3,
		},
		{
			// A long backlog: each replayed seq refreshes the hole's age, so it stays open.
			name: "a hole being filled by replay does not time out",
			ops: ops(live(1, 100), replay(2, 3), wait(timeout/2), replay(4), wait(timeout/2), replay(5),
				wait(timeout/2), replay(6)),
			want:    Stream{Epoch: "e1", HighestSeq: 100, Watermark: 6, Missing: 93, Replayed: 5},
			applied: 7,
		},
		{
			// Hole 2..9 keeps being filled; hole 11..19 above it sits untouched and is given up.
			name:    "an old hole above a fresh one is given up",
			ops:     ops(live(1, 10, 20), wait(timeout-time.Second), replay(2), wait(time.Second)),
			want:    Stream{Epoch: "e1", HighestSeq: 20, Watermark: 2, Missing: 7, Lost: 9, Replayed: 1},
			applied: 4,
		},
		{
			name:    "the gap bound gives up the lowest gap",
			maxGaps: 3,
			ops:     live(1, 3, 5, 7, 9, 11, 4),
			want:    Stream{Epoch: "e1", HighestSeq: 11, Watermark: 5, Missing: 3, Lost: 2, Duplicates: 1},
			applied: 6,
		},
		{
			name:    "an epoch change resets the tracking; the old epoch's holes are lost",
			ops:     ops(in("e1", live(1, 2, 3, 5)), in("e2", live(1, 2, 4))),
			want:    Stream{Epoch: "e2", EpochChanges: 1, HighestSeq: 4, Watermark: 2, Missing: 1, Lost: 1},
			applied: 7,
		},
		{
			name:    "the old epoch after the change is stale",
			ops:     ops(in("e1", live(1, 2)), in("e2", live(1)), in("e1", live(3, 2))),
			want:    Stream{Epoch: "e2", EpochChanges: 1, HighestSeq: 1, Watermark: 1},
			applied: 3,
			stale:   2,
		},
		{
			name:    "a third epoch is a change again",
			ops:     ops(in("e1", live(1)), in("e2", live(1)), in("e3", live(1, 2))),
			want:    Stream{Epoch: "e3", EpochChanges: 2, HighestSeq: 2, Watermark: 2},
			applied: 4,
		},
		{
			// First sight of a device mid-stream (e.g. after a controller restart): the seqs
			// before are history, neither missing nor lost, yet applied once when replayed.
			name:    "history from before the first message seen is not a gap",
			ops:     ops(live(1000, 1002), replay(998, 998), wait(timeout)),
			want:    Stream{Epoch: "e1", HighestSeq: 1002, Watermark: 1002, Lost: 1, Replayed: 2, Duplicates: 1},
			applied: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1700000000, 0)}
			r := New(Options{GapTimeout: timeout, MaxGaps: tt.maxGaps, Now: clk.now})
			var stale uint64
			for _, o := range tt.ops {
				if o.wait > 0 {
					clk.add(o.wait)
					continue
				}
				epoch := o.epoch
				if epoch == "" {
					epoch = "e1"
				}
				m := detectionsIn("d1", "cam1", epoch, o.seq, o.replayed, "person")
				err := r.HandleMessage(m.topic, m.payload)
				var re *RejectError
				switch {
				case errors.As(err, &re) && re.Reason == ReasonStaleEpoch:
					stale++
				case err != nil:
					t.Fatalf("seq %d: %v", o.seq, err)
				}
			}
			d, _ := r.Device("d1")
			if d.Stream != tt.want {
				t.Errorf("stream\n got %+v\nwant %+v", d.Stream, tt.want)
			}
			if got := d.Cameras[0].Detections; got != tt.applied || d.Messages["detections"] != tt.applied || d.Cameras[0].Objects["person"] != tt.applied {
				t.Errorf("applied %d (messages %v, objects %v), want %d", got, d.Messages, d.Cameras[0].Objects, tt.applied)
			}
			if stale != tt.stale || r.Rejected()[ReasonStaleEpoch] != tt.stale {
				t.Errorf("stale %d (rejected %v), want %d", stale, r.Rejected(), tt.stale)
			}
			tot := r.Totals()
			withGaps := 0
			if tt.want.Missing > 0 {
				withGaps = 1
			}
			if tot.Missing != tt.want.Missing || tot.Lost != tt.want.Lost || tot.Duplicates != tt.want.Duplicates ||
				tot.Replayed != tt.want.Replayed || tot.EpochChanges != tt.want.EpochChanges || tot.DevicesWithGaps != withGaps ||
				tot.Received["detections"] != tt.applied+tt.want.Duplicates {
				t.Errorf("totals %+v disagree with the device %+v", tot, d.Stream)
			}
		})
	}
}

func TestStatusOutsideTheSequence(t *testing.T) {
	r := New(Options{})
	feed := func(m msg) {
		t.Helper()
		if err := r.HandleMessage(m.topic, m.payload); err != nil {
			t.Fatal(err)
		}
	}
	feed(detections("d1", "cam1", 1))
	// Status carries the last seq assigned (here 1, and then 7 while seqs 2..7 are in flight):
	// neither a duplicate of detections 1 nor a jump of the sequence.
	feed(with(status("d1", "online", "d1-e-status-1"), func(o map[string]any) { o["seq"] = 1 }))
	feed(with(status("d1", "online", "d1-e-status-2"), func(o map[string]any) { o["seq"] = 7 }))
	feed(with(status("d1", "online", "d1-e-status-2"), func(o map[string]any) { o["seq"] = 7 })) // retained, again
	d, _ := r.Device("d1")
	want := Stream{Epoch: testEpoch, HighestSeq: 1, Watermark: 1, Duplicates: 1}
	if d.Stream != want || d.Messages["status"] != 2 {
		t.Errorf("stream %+v messages %v, want %+v and 2 status", d.Stream, d.Messages, want)
	}
}

// FuzzSeqTrack feeds a tracker arbitrary seqs and clock steps and checks its bookkeeping: every
// seq from the first seen to the highest is exactly one of received, missing or lost, and
// missing agrees with a count of the seqs not seen.
func FuzzSeqTrack(f *testing.F) {
	f.Add([]byte{0, 1, 2, 5, 9, 3, 255, 4, 8, 30, 10, 255, 255})
	f.Add([]byte{40, 1, 2, 3, 39, 41, 250, 38})
	f.Add([]byte{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 2, 250, 6})
	f.Fuzz(func(t *testing.T, steps []byte) {
		const timeout = time.Minute
		tr := seqTrack{gapTimeout: timeout, maxGaps: 4}
		now := time.Unix(1700000000, 0)
		received := map[uint64]bool{}
		var first uint64
		for _, b := range steps {
			if b >= 250 {
				now = now.Add(timeout / time.Duration(b-248))
				tr.expire(now)
			} else {
				s := uint64(b%64) + 1
				if first == 0 {
					first = s
					tr.start("e", s, true)
				}
				if !tr.seen(s) {
					if received[s] {
						t.Fatalf("seq %d received before, not seen", s)
					}
					received[s] = true
					tr.add(s, now)
				}
			}
			checkTrack(t, &tr, received, first)
		}
	})
}

func checkTrack(t *testing.T, tr *seqTrack, received map[uint64]bool, first uint64) {
	t.Helper()
	var held, heldLow uint64
	for i, sp := range tr.spans {
		if sp.lo > sp.hi || i == 0 && sp.lo <= tr.watermark+1 || i > 0 && sp.lo <= tr.spans[i-1].hi+1 {
			t.Fatalf("spans out of order: watermark %d spans %+v", tr.watermark, tr.spans)
		}
		held += sp.hi - sp.lo + 1
		if sp.lo <= tr.base {
			heldLow += min(sp.hi, tr.base) - sp.lo + 1
		}
	}
	if held != tr.held || heldLow != tr.heldLow {
		t.Fatalf("held %d/%d, spans hold %d/%d: %+v", tr.held, tr.heldLow, held, heldLow, tr.spans)
	}
	if first == 0 {
		return
	}
	var unseen, got uint64
	for s := max(tr.watermark, tr.base) + 1; s <= tr.highest; s++ {
		if !tr.seen(s) {
			unseen++
		}
	}
	for s := range received {
		if s > tr.base {
			got++
		}
	}
	if tr.missing() != unseen {
		t.Fatalf("missing %d, %d seqs not seen: %+v", tr.missing(), unseen, tr)
	}
	if got+tr.missing()+tr.lost != tr.highest-tr.base {
		t.Fatalf("received %d + missing %d + lost %d != %d seqs above base %d: %s", got, tr.missing(), tr.lost,
			tr.highest-tr.base, tr.base, fmt.Sprintf("%+v", tr))
	}
}

// A registry that sees a share of the stream (every other seq went to another instance)
// reports no gap and no loss, however long the others stay away, and applies each message.
func TestSharedStreamHasNoGaps(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	r := New(Options{Shared: true, GapTimeout: time.Second, Now: func() time.Time { return now }})
	for seq := uint64(1); seq <= 200; seq += 2 {
		m := detections("d1", "cam1", seq)
		if err := r.HandleMessage(m.topic, m.payload); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		now = now.Add(time.Second)
	}
	d, _ := r.Device("d1")
	if d.Missing != 0 || d.Lost != 0 || d.HighestSeq != 199 || d.Messages["detections"] != 100 {
		t.Errorf("shared stream: %+v, %v", d.Stream, d.Messages)
	}
}
