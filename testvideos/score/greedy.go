package score

import (
	"cmp"
	"slices"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

// Greedy is the baseline tracker: frame to frame, it pairs each of the previous frame's
// tracks with a detection of the same label, highest IoU first (at least MinIoU), with no
// motion model and no memory beyond one frame; a detection left over starts a new id.
// Detections below MinScore are ignored. Every track is reported as soon as it exists.
//
// Call contract: as pipeline/track.Tracker, Update is called once per detected frame, in
// order, from one goroutine at a time.
type Greedy struct {
	MinScore float32 // default 0.5
	MinIoU   float32 // default 0.3
	prev     []frame.Track
	nextID   uint64
}

// NewGreedy returns a greedy tracker with the default thresholds.
func NewGreedy() *Greedy { return &Greedy{MinScore: 0.5, MinIoU: 0.3, nextID: 1} }

// Update pairs d's detections with the previous frame's tracks.
func (g *Greedy) Update(d frame.Detections) frame.Tracks {
	if g.nextID == 0 {
		g.nextID = 1
	}
	var dets []models.Detection
	for _, o := range d.Objects {
		if o.Score >= g.MinScore {
			dets = append(dets, o)
		}
	}
	type cand struct {
		iou  float32
		t, d int
	}
	var cands []cand
	for i, t := range g.prev {
		for j, o := range dets {
			if o.Label != t.Label || o.ClassID != t.ClassID {
				continue
			}
			if iou := t.Box.IoU(o.Box); iou >= g.MinIoU {
				cands = append(cands, cand{iou, i, j})
			}
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int { return cmp.Compare(b.iou, a.iou) })
	usedT := make([]bool, len(g.prev))
	ids := make([]uint64, len(dets))
	for _, c := range cands {
		if usedT[c.t] || ids[c.d] != 0 {
			continue
		}
		usedT[c.t], ids[c.d] = true, g.prev[c.t].ID
	}
	out := frame.Tracks{Camera: d.Camera, FrameSeq: d.FrameSeq, PTS: d.PTS, CapturedAt: d.CapturedAt, Width: d.Width, Height: d.Height}
	for j, o := range dets {
		if ids[j] == 0 {
			ids[j] = g.nextID
			g.nextID++
		}
		out.Tracks = append(out.Tracks, frame.Track{ID: ids[j], Label: o.Label, ClassID: o.ClassID, State: frame.Confirmed,
			Box: o.Box, Score: o.Score, TopScore: o.Score, Matched: true, Hits: 1, FirstSeen: d.CapturedAt, LastSeen: d.CapturedAt})
	}
	slices.SortFunc(out.Tracks, func(a, b frame.Track) int { return cmp.Compare(a.ID, b.ID) })
	g.prev = slices.Clone(out.Tracks)
	return out
}
