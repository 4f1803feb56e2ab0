package score

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/rules"
	"github.com/vigil-edge/vigil/pipeline/track"
)

// LineCounts are the crossings of one line rule, by direction.
type LineCounts struct {
	AToB, BToA int
}

// Total is all crossings.
func (c LineCounts) Total() int { return c.AToB + c.BToA }

// CountCrossings runs one line rule of the real rules engine over a stream of tracks and
// counts its crossings by direction.
func CountCrossings(line rules.Rule, stream []frame.Tracks) (LineCounts, error) {
	eng, err := rules.New([]rules.Rule{line})
	if err != nil {
		return LineCounts{}, err
	}
	var c LineCounts
	for _, t := range stream {
		for _, a := range eng.Update(t) {
			switch a.Kind {
			case rules.AToB:
				c.AToB++
			case rules.BToA:
				c.BToA++
			}
		}
	}
	return c, nil
}

// GTTracks turns a ground-truth sequence into the stream of frame.Tracks the rules engine
// reads, as if a perfect tracker had followed every counted person: each box is a confirmed,
// matched track; a person's track is removed on the frame after its last box. Frame n is at
// (n-1)/fps of video time.
func GTTracks(seq Sequence, fps float64, width, height int) []frame.Tracks {
	if fps <= 0 {
		fps = seq.FrameRate
	}
	if fps <= 0 {
		fps = 25
	}
	var frames []int
	last := map[uint64]int{}
	for f, objs := range seq.Frames {
		frames = append(frames, f)
		for _, o := range objs {
			last[o.ID] = max(last[o.ID], f)
		}
	}
	sort.Ints(frames)
	if len(frames) == 0 {
		return nil
	}
	var out []frame.Tracks
	for f := frames[0]; f <= frames[len(frames)-1]+1; f++ {
		at := epoch.Add(time.Duration(float64(f-1) / fps * float64(time.Second)))
		t := frame.Tracks{Camera: "gt", FrameSeq: uint64(f), CapturedAt: at, Width: width, Height: height}
		for _, o := range seq.Frames[f] {
			t.Tracks = append(t.Tracks, frame.Track{ID: o.ID, Label: "person", State: frame.Confirmed, Box: o.Box,
				Matched: true, Score: 1, TopScore: 1, LastSeen: at})
		}
		for id, lf := range last {
			if lf == f-1 {
				t.Tracks = append(t.Tracks, frame.Track{ID: id, Label: "person", State: frame.Removed})
			}
		}
		sort.Slice(t.Tracks, func(i, j int) bool { return t.Tracks[i].ID < t.Tracks[j].ID })
		out = append(out, t)
	}
	return out
}

// LineComparison is a line rule's crossings counted on the ground truth and by the agent's
// pipeline (detector, ByteTrack-style tracker, rules engine) on the same clip.
type LineComparison struct {
	Rule          rules.Rule
	GT, Agent     LineCounts
	DetectedFrame int
}

// CompareLine counts the crossings of line on cfg's clip: on the ground truth, and through
// the real detections (cached like Run's) and tracker.
func CompareLine(ctx context.Context, cfg Config, line rules.Rule) (LineComparison, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return LineComparison{}, err
	}
	seq, err := LoadGT(cfg.GTDir)
	if err != nil {
		return LineComparison{}, fmt.Errorf("score: %w", err)
	}
	dets, err := Detections(ctx, cfg)
	if err != nil {
		return LineComparison{}, err
	}
	if len(dets) == 0 {
		return LineComparison{}, fmt.Errorf("score: no frame decoded from %s", cfg.Clip)
	}
	tr := track.New(cfg.Track)
	stream := make([]frame.Tracks, 0, len(dets))
	for _, d := range dets {
		stream = append(stream, tr.Update(d))
	}
	agent, err := CountCrossings(line, stream)
	if err != nil {
		return LineComparison{}, err
	}
	fps := seq.FrameRate
	gt, err := CountCrossings(line, GTTracks(seq, fps, dets[0].Width, dets[0].Height))
	if err != nil {
		return LineComparison{}, err
	}
	return LineComparison{Rule: line, GT: gt, Agent: agent, DetectedFrame: len(dets)}, nil
}
