package motion

import (
	"image"
	"math"
	"slices"
	"time"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/tile"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

// Plan defaults, used where a PlanInput field is zero.
const (
	// DefaultCoverage: regions covering 60 % of the frame or more give way to one full pass.
	DefaultCoverage = 0.6
	// DefaultMargin: each box is padded by a fifth of its size on every side (a track's
	// object moves between detections; a motion blob may be only the moving part).
	DefaultMargin = 0.2
	// minPad is the least padding, in frame pixels, around a box.
	minPad = 8
)

// Reasons a Plan gives, for metrics.
const (
	ReasonNoMotion = "no_motion" // nothing moves, no active track, no full pass due: no inference
	ReasonMotion   = "motion"    // regions around motion (and active tracks)
	ReasonTracks   = "tracks"    // regions around active tracks only
	ReasonPeriodic = "periodic"  // the periodic full-frame pass is due
	ReasonCoverage = "coverage"  // regions would cover most of the frame: one full pass instead
)

// Mode is what a Plan runs.
type Mode int

// Modes.
const (
	None      Mode = iota // no inference on this frame
	FullFrame             // one full-frame pass (FullFrameCost inferences)
	Regions               // one inference per region
)

func (m Mode) String() string {
	switch m {
	case None:
		return "none"
	case FullFrame:
		return "full_frame"
	case Regions:
		return "regions"
	}
	return "unknown"
}

// PlanInput is what Plan decides from.
type PlanInput struct {
	// Width, Height are the frame's size in pixels.
	Width, Height int
	// ModelWidth, ModelHeight are the model's input size (e.g. 416x416); a region is at least
	// this large where the frame allows, so that it is seen at native resolution. Zero
	// takes the frame's size.
	ModelWidth, ModelHeight int
	// Motion are this frame's motion boxes (Result.Boxes), Tracks the boxes of the active
	// tracks (those that moved lately or are not yet confirmed; stationary objects are
	// re-confirmed by the periodic pass), all normalised.
	Motion, Tracks []Box
	// SinceFull is the time since the last full-frame pass; pass a value ≥ FullFrameEvery
	// when there has been none yet.
	SinceFull time.Duration
	// FullFrameEvery is the longest time between full-frame passes (the setting
	// full_frame_every); 0 means no periodic pass.
	FullFrameEvery time.Duration
	// FullFrameCost is the inferences one full-frame pass costs: 1 for a plain detector, the
	// tile count for a tiled one. Plan never returns more regions than this. <1 means 1.
	FullFrameCost int
	// Coverage is the share of the frame at or above which the regions are replaced by one
	// full-frame pass (the setting coverage); 0 means DefaultCoverage.
	Coverage float64
	// Margin pads each box by this fraction of its size on every side; 0 means DefaultMargin.
	Margin float64
}

// Decision says where the detector runs on one frame (what Plan returns; a type cannot share
// the function's name). Each region costs one inference of the
// plain model (the crop is letterboxed to its input like any image).
type Decision struct {
	Mode    Mode
	Regions []image.Rectangle // in frame pixels, inside the frame, when Mode is Regions
	Reason  string            // one of the Reason constants
}

// Inferences returns what the decision costs for a full-frame pass of fullCost inferences.
func (p Decision) Inferences(fullCost int) int {
	switch p.Mode {
	case FullFrame:
		return max(fullCost, 1)
	case Regions:
		return len(p.Regions)
	}
	return 0
}

// Plan decides where the detector runs on one frame:
//
//   - the periodic full-frame pass when it is due (ReasonPeriodic);
//   - else nothing when there is neither motion nor an active track (ReasonNoMotion);
//   - else regions: each box padded by Margin; boxes whose union fits in the model's input
//     are grouped (one crop, no resolution lost); while there are more groups than
//     FullFrameCost, the two whose union is smallest are merged; each group becomes a crop of
//     at least the model's input size and its aspect ratio, centred on the group and moved
//     inside the frame (ReasonMotion, or ReasonTracks when only tracks asked for it);
//   - but one full-frame pass when those crops cover Coverage of the frame or more
//     (ReasonCoverage).
//
// An input without a frame size gets a full-frame pass (the caller's detector then decides).
func Plan(in PlanInput) Decision {
	cost := max(in.FullFrameCost, 1)
	if in.FullFrameEvery > 0 && in.SinceFull >= in.FullFrameEvery {
		return Decision{Mode: FullFrame, Reason: ReasonPeriodic}
	}
	if len(in.Motion) == 0 && len(in.Tracks) == 0 {
		return Decision{Mode: None, Reason: ReasonNoMotion}
	}
	if in.Width <= 0 || in.Height <= 0 {
		return Decision{Mode: FullFrame, Reason: ReasonCoverage}
	}
	mw, mh := in.ModelWidth, in.ModelHeight
	if mw <= 0 || mh <= 0 {
		mw, mh = in.Width, in.Height
	}
	margin := in.Margin
	if margin <= 0 {
		margin = DefaultMargin
	}
	coverage := in.Coverage
	if coverage <= 0 {
		coverage = DefaultCoverage
	}
	frame := image.Rect(0, 0, in.Width, in.Height)
	var groups []image.Rectangle
	for _, b := range slices.Concat(in.Motion, in.Tracks) {
		if r := pad(b, margin, in.Width, in.Height).Intersect(frame); !r.Empty() {
			groups = append(groups, r)
		}
	}
	if len(groups) == 0 { // boxes all outside the frame
		return Decision{Mode: None, Reason: ReasonNoMotion}
	}
	groups = group(groups, mw, mh, cost)
	regions := make([]image.Rectangle, len(groups))
	for i, g := range groups {
		regions[i] = grow(g, mw, mh, frame)
	}
	if unionArea(regions) >= coverage*float64(in.Width*in.Height) {
		return Decision{Mode: FullFrame, Reason: ReasonCoverage}
	}
	reason := ReasonTracks
	if len(in.Motion) > 0 {
		reason = ReasonMotion
	}
	return Decision{Mode: Regions, Regions: regions, Reason: reason}
}

// pad turns a normalised box into frame pixels, padded by margin of its size (at least
// minPad pixels) on each side.
func pad(b Box, margin float64, w, h int) image.Rectangle {
	x1, y1, x2, y2 := b.X1*float64(w), b.Y1*float64(h), b.X2*float64(w), b.Y2*float64(h)
	px, py := math.Max(margin*(x2-x1), minPad), math.Max(margin*(y2-y1), minPad)
	return image.Rect(int(math.Floor(x1-px)), int(math.Floor(y1-py)), int(math.Ceil(x2+px)), int(math.Ceil(y2+py)))
}

// group merges rectangles whose union fits in mw x mh, then merges the pair with the smallest
// union until at most budget remain.
func group(rs []image.Rectangle, mw, mh, budget int) []image.Rectangle {
	for merged := true; merged && len(rs) > 1; {
		merged = false
		for i := 0; i < len(rs) && !merged; i++ {
			for j := i + 1; j < len(rs); j++ {
				if u := rs[i].Union(rs[j]); u.Dx() <= mw && u.Dy() <= mh || rs[i].In(rs[j]) || rs[j].In(rs[i]) {
					rs[i] = u
					rs = slices.Delete(rs, j, j+1)
					merged = true
					break
				}
			}
		}
	}
	for len(rs) > budget {
		bi, bj, best := 0, 1, math.MaxInt
		for i := range rs {
			for j := i + 1; j < len(rs); j++ {
				u := rs[i].Union(rs[j])
				if a := u.Dx() * u.Dy(); a < best {
					bi, bj, best = i, j, a
				}
			}
		}
		rs[bi] = rs[bi].Union(rs[bj])
		rs = slices.Delete(rs, bj, bj+1)
	}
	return rs
}

// grow widens r to at least mw x mh and to the model's aspect ratio, centred on r, then
// moves it inside frame (clipping it where the frame is smaller).
func grow(r image.Rectangle, mw, mh int, frame image.Rectangle) image.Rectangle {
	w, h := max(r.Dx(), mw), max(r.Dy(), mh)
	// the model's aspect ratio: the crop is letterboxed, so extra context costs nothing
	if w*mh > h*mw {
		h = (w*mh + mw - 1) / mw
	} else {
		w = (h*mw + mh - 1) / mh
	}
	w, h = min(w, frame.Dx()), min(h, frame.Dy())
	cx, cy := (r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2
	x0 := min(max(cx-w/2, frame.Min.X), frame.Max.X-w)
	y0 := min(max(cy-h/2, frame.Min.Y), frame.Max.Y-h)
	return image.Rect(x0, y0, x0+w, y0+h)
}

// unionArea is the area covered by rs (coordinate compression; rs is short).
func unionArea(rs []image.Rectangle) float64 {
	var xs, ys []int
	for _, r := range rs {
		xs = append(xs, r.Min.X, r.Max.X)
		ys = append(ys, r.Min.Y, r.Max.Y)
	}
	slices.Sort(xs)
	slices.Sort(ys)
	xs, ys = slices.Compact(xs), slices.Compact(ys)
	var a float64
	for i := 0; i+1 < len(xs); i++ {
		for j := 0; j+1 < len(ys); j++ {
			cell := image.Rect(xs[i], ys[j], xs[i+1], ys[j+1])
			for _, r := range rs {
				if cell.In(r) {
					a += float64(cell.Dx() * cell.Dy())
					break
				}
			}
		}
	}
	return a
}

// edgeTol is how close, in pixels, a box must come to a crop's edge to count as cut by it.
const edgeTol = 2

// MapBack maps detections made on crops of one width x height frame (dets[i] in the pixels
// of regions[i], as a detector returns them for the crop) into frame pixels and merges them
// as models/tile merges tiles: class-aware NMS at iou drops an object seen by two
// overlapping crops, and pieces of one object cut at a crop's inner edge are fused. A box cut
// at an inner edge of its crop that reaches into no other crop is dropped: it is the part of
// an object the crop was not made for (one that neither moves nor is tracked as moving),
// which the tracker holds instead (track.Tracker.UpdateSeen). The result is sorted by
// descending score.
func MapBack(width, height int, regions []image.Rectangle, dets [][]models.Detection, iou float32) []models.Detection {
	var all []models.Detection
	var from []image.Rectangle
	frame := image.Rect(0, 0, width, height)
	for i, r := range regions {
		if i >= len(dets) {
			break
		}
		x, y := float32(r.Min.X), float32(r.Min.Y)
		for _, d := range dets[i] {
			d.Box = models.Box{X1: d.Box.X1 + x, Y1: d.Box.Y1 + y, X2: d.Box.X2 + x, Y2: d.Box.Y2 + y}
			if cutInside(d.Box, r, frame) && !reachesOther(d.Box, regions, i) {
				continue
			}
			all = append(all, d)
			from = append(from, r)
		}
	}
	if len(all) == 0 {
		return nil
	}
	if len(regions) == 1 {
		return models.NMS(all, iou) // one crop: nothing to fuse
	}
	return tile.Merge(all, from, frame, iou, tile.DefaultMergeIoS)
}

// cutInside reports whether b touches an edge of crop r that is not an edge of the frame.
func cutInside(b models.Box, r, frame image.Rectangle) bool {
	near := func(v float32, e int) bool { return v <= float32(e)+edgeTol && v >= float32(e)-edgeTol }
	return r.Min.X > frame.Min.X && near(b.X1, r.Min.X) || r.Min.Y > frame.Min.Y && near(b.Y1, r.Min.Y) ||
		r.Max.X < frame.Max.X && near(b.X2, r.Max.X) || r.Max.Y < frame.Max.Y && near(b.Y2, r.Max.Y)
}

// reachesOther reports whether b overlaps a crop other than regions[i] by more than edgeTol.
func reachesOther(b models.Box, regions []image.Rectangle, i int) bool {
	for j, r := range regions {
		if j != i && b.X1 < float32(r.Max.X)-edgeTol && b.X2 > float32(r.Min.X)+edgeTol &&
			b.Y1 < float32(r.Max.Y)-edgeTol && b.Y2 > float32(r.Min.Y)+edgeTol {
			return true
		}
	}
	return false
}

// MinActiveSpeed is the least speed, in box heights per second, at which a confirmed track
// counts as active (a walking person moves about one height a second).
const MinActiveSpeed = 0.25

// ActiveTracks returns the normalised boxes of the tracks that Plan should look at on the
// next frame: lost tracks (to find them again) and confirmed tracks that move at
// MinActiveSpeed or more. Stationary objects are left to the periodic full-frame pass, and the
// tracker holds them meanwhile (track.Tracker.UpdateSeen). width and height are the frame's.
func ActiveTracks(ts []frame.Track, width, height int) []Box {
	if width <= 0 || height <= 0 {
		return nil
	}
	var out []Box
	for _, t := range ts {
		if t.State == frame.Lost || t.State == frame.Confirmed && moving(t) {
			out = append(out, normalise(t.Box, width, height))
		}
	}
	return out
}

// moving reports whether t moves at MinActiveSpeed or more.
func moving(t frame.Track) bool {
	h := float64(t.Box.Y2 - t.Box.Y1)
	return math.Hypot(float64(t.VX), float64(t.VY)) >= MinActiveSpeed*h
}

// normalise turns a box in the pixels of a width x height frame into a normalised Box.
func normalise(b models.Box, width, height int) Box {
	w, h := float64(width), float64(height)
	return Box{float64(b.X1) / w, float64(b.Y1) / h, float64(b.X2) / w, float64(b.Y2) / h}
}
