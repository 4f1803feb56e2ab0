// Package tile runs a models.Detector over overlapping tiles of a large frame, as SAHI
// (slicing aided hyper inference) does, so that objects a few pixels tall in a downscaled
// whole frame are seen at full resolution.
//
//	frame ──▶ grid of tiles (overlap, last tile flush with the edge) ──▶ inner.Detect per tile
//	      └─▶ optional whole-frame pass                               ──▶ boxes shifted back
//	                                                ──▶ class-aware NMS ─▶ seam fusion ─▶ NMS
//
// Tiles are views into the frame (Pix offset, parent Stride): nothing is copied. A frame of
// W x H with tiles of w x h costs Inferences(W, H) inner inferences, so tiling trades time for
// recall; GridForAltitude picks the coarsest grid that keeps a target object large enough.
package tile

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"

	"github.com/vigil-edge/vigil/models"
)

// DefaultOverlap is the overlap used when Config.Overlap is 0: a fifth of a tile, as SAHI's
// default.
const DefaultOverlap = 0.2

// DefaultMergeIoS is the intersection-over-smaller above which a box cut at a tile edge is
// fused with another box of its class, used when Config.MergeIoS is 0.
const DefaultMergeIoS = 0.5

// edgeTol is how close (pixels) a box edge must be to a tile's inner edge to count as cut there.
const edgeTol = 2

// Config sets the tiling. The zero value tiles with the inner model's input size, 20 %
// overlap, no whole-frame pass and the inner model's NMS threshold.
type Config struct {
	// TileWidth, TileHeight are the tile size in frame pixels; 0 takes the inner model's
	// input size (Manifest().Input). A tile larger than the frame is clipped to it.
	TileWidth, TileHeight int
	// Cols, Rows, when both > 0, fix the grid instead (e.g. from GridForAltitude): the tile
	// size is then chosen so that Cols x Rows tiles with Overlap cover the frame.
	Cols, Rows int
	// Overlap is the fraction of a tile shared with its neighbour, in [0, 0.9); 0 means
	// DefaultOverlap. Adjacent tiles overlap by at least this much (the grid is spread
	// evenly, so usually a little more).
	Overlap float64
	// FullFrame adds one whole-frame pass, for objects larger than a tile.
	FullFrame bool
	// MergeIoU is the IoU above which class-aware NMS across tiles drops the weaker of two
	// boxes; 0 takes the inner model's Defaults.NMS.
	MergeIoU float32
	// MergeIoS is the intersection over the smaller box (or, for two pieces of one object
	// cut at a seam, the overlap along the seam) above which a box cut at a tile edge is
	// fused with another box of its class into their union; 0 means DefaultMergeIoS.
	MergeIoS float32
}

// Detector is a models.Detector that runs an inner detector on tiles of each frame and
// merges the results. Like any models.Detector it is used from one goroutine at a time.
type Detector struct {
	inner     models.Detector
	cfg       Config
	last      int // inferences of the last Detect
	total     uint64
	frames    uint64
	collected []tagged
}

var _ models.Detector = (*Detector)(nil)

// New wraps inner, taking ownership of it: Close closes it. cfg is validated without I/O.
func New(inner models.Detector, cfg Config) (*Detector, error) {
	if inner == nil {
		return nil, errors.New("tile: nil inner detector")
	}
	in := inner.Manifest().Input
	if cfg.TileWidth == 0 {
		cfg.TileWidth = in.Width
	}
	if cfg.TileHeight == 0 {
		cfg.TileHeight = in.Height
	}
	if cfg.Overlap == 0 {
		cfg.Overlap = DefaultOverlap
	}
	if cfg.MergeIoU == 0 {
		cfg.MergeIoU = inner.Manifest().Defaults.NMS
	}
	if cfg.MergeIoS == 0 {
		cfg.MergeIoS = DefaultMergeIoS
	}
	switch {
	case cfg.TileWidth <= 0 || cfg.TileHeight <= 0:
		return nil, fmt.Errorf("tile: 'tile_width/tile_height' must be > 0, got %dx%d", cfg.TileWidth, cfg.TileHeight)
	case cfg.Cols < 0 || cfg.Rows < 0 || (cfg.Cols > 0) != (cfg.Rows > 0):
		return nil, fmt.Errorf("tile: 'cols/rows' must both be > 0 or both 0, got %dx%d", cfg.Cols, cfg.Rows)
	case !(cfg.Overlap >= 0 && cfg.Overlap < 0.9):
		return nil, fmt.Errorf("tile: 'overlap' must be in [0, 0.9), got %v", cfg.Overlap)
	case !(cfg.MergeIoU > 0 && cfg.MergeIoU <= 1):
		return nil, fmt.Errorf("tile: 'merge_iou' must be in (0, 1], got %v", cfg.MergeIoU)
	case !(cfg.MergeIoS > 0 && cfg.MergeIoS <= 1):
		return nil, fmt.Errorf("tile: 'merge_ios' must be in (0, 1], got %v", cfg.MergeIoS)
	}
	return &Detector{inner: inner, cfg: cfg}, nil
}

// Config returns the configuration in use, defaults filled in.
func (d *Detector) Config() Config { return d.cfg }

// Manifest returns the inner model's manifest.
func (d *Detector) Manifest() models.Manifest { return d.inner.Manifest() }

// Close closes the inner detector.
func (d *Detector) Close() error { return d.inner.Close() }

// Grid returns the tiles of a w x h frame.
func (d *Detector) Grid(w, h int) []image.Rectangle {
	if d.cfg.Cols > 0 {
		return GridN(w, h, d.cfg.Cols, d.cfg.Rows, d.cfg.Overlap)
	}
	return Grid(w, h, d.cfg.TileWidth, d.cfg.TileHeight, d.cfg.Overlap)
}

// Inferences returns how many inner inferences one w x h frame costs: the tiles, plus one
// for the whole-frame pass when on. A grid of one tile covering the frame is not repeated
// by the whole-frame pass.
func (d *Detector) Inferences(w, h int) int {
	g := d.Grid(w, h)
	if d.cfg.FullFrame && !(len(g) == 1 && g[0] == image.Rect(0, 0, w, h)) {
		return len(g) + 1
	}
	return len(g)
}

// LastInferences returns the inner inferences the last Detect ran.
func (d *Detector) LastInferences() int { return d.last }

// Totals returns the frames detected and inner inferences run since New.
func (d *Detector) Totals() (frames, inferences uint64) { return d.frames, d.total }

// tagged is a detection with the sides where it touches an inner edge of its tile (left,
// top, right, bottom), i.e. where the object may continue outside the tile.
type tagged struct {
	models.Detection
	cut [4]bool
}

// Detect implements models.Detector: the inner detector runs on each tile and, when
// Config.FullFrame is set, on the whole frame; boxes come back in img's pixels, merged.
func (d *Detector) Detect(ctx context.Context, img models.Image) ([]models.Detection, error) {
	if !img.Valid() {
		return nil, fmt.Errorf("%w: %dx%d stride %d with %d bytes", models.ErrBadImage, img.Width, img.Height, img.Stride, len(img.Pix))
	}
	full := image.Rect(0, 0, img.Width, img.Height)
	grid := d.Grid(img.Width, img.Height)
	all := d.collected[:0]
	d.last = 0
	for i, r := range grid {
		sub, r := img.Crop(r)
		dets, err := d.inner.Detect(ctx, sub)
		d.last++
		if err != nil {
			return nil, fmt.Errorf("tile %d %v: %w", i, r, err)
		}
		for _, det := range dets {
			det.Box = shift(det.Box, r.Min)
			all = append(all, tagged{Detection: det, cut: cutSides(det.Box, r, full)})
		}
	}
	if d.cfg.FullFrame && !(len(grid) == 1 && grid[0] == full) {
		dets, err := d.inner.Detect(ctx, img)
		d.last++
		if err != nil {
			return nil, fmt.Errorf("whole frame: %w", err)
		}
		for _, det := range dets {
			all = append(all, tagged{Detection: det})
		}
	}
	d.frames++
	d.total += uint64(d.last)
	d.collected = all
	merged := merge(all, d.cfg.MergeIoU, d.cfg.MergeIoS)
	out := make([]models.Detection, len(merged))
	for i, t := range merged {
		out[i] = t.Detection
	}
	return out, nil
}

// SubImage returns the part r of img as a view sharing img's pixels and strides (see
// models.Image.Crop: a YUV image's view starts at even coordinates). r must lie inside img.
func SubImage(img models.Image, r image.Rectangle) models.Image {
	sub, _ := img.Crop(r)
	return sub
}

func shift(b models.Box, p image.Point) models.Box {
	x, y := float32(p.X), float32(p.Y)
	return models.Box{X1: b.X1 + x, Y1: b.Y1 + y, X2: b.X2 + x, Y2: b.Y2 + y}
}

// cutSides reports on which sides box b (frame pixels) touches an edge of tile r that is
// not an edge of the frame.
func cutSides(b models.Box, r, frame image.Rectangle) [4]bool {
	near := func(v float32, edge int) bool { return math.Abs(float64(v)-float64(edge)) <= edgeTol }
	return [4]bool{
		r.Min.X > frame.Min.X && near(b.X1, r.Min.X),
		r.Min.Y > frame.Min.Y && near(b.Y1, r.Min.Y),
		r.Max.X < frame.Max.X && near(b.X2, r.Max.X),
		r.Max.Y < frame.Max.Y && near(b.Y2, r.Max.Y),
	}
}

// Grid returns the tiles of a w x h frame for tiles of tw x th with the given overlap
// fraction: per axis, n = 1 + ceil((size - t) / (t * (1 - overlap))) tiles, spread evenly
// so that the first starts at 0 and the last ends flush with the frame's edge. An axis no
// larger than a tile gets one tile of the frame's size. Tiles are listed row by row.
func Grid(w, h, tw, th int, overlap float64) []image.Rectangle {
	if w <= 0 || h <= 0 || tw <= 0 || th <= 0 {
		return nil
	}
	xs := axis(w, min(tw, w), count(w, tw, overlap))
	ys := axis(h, min(th, h), count(h, th, overlap))
	return rects(xs, ys, min(tw, w), min(th, h))
}

// GridN returns a cols x rows grid over a w x h frame whose adjacent tiles overlap by at
// least the given fraction, tiles as small as that allows, the last flush with the edge.
func GridN(w, h, cols, rows int, overlap float64) []image.Rectangle {
	if w <= 0 || h <= 0 || cols <= 0 || rows <= 0 {
		return nil
	}
	tw, th := tileFor(w, cols, overlap), tileFor(h, rows, overlap)
	return rects(axis(w, tw, min(cols, w)), axis(h, th, min(rows, h)), tw, th)
}

// tileFor is the tile size at which n tiles with the overlap fraction cover size.
func tileFor(size, n int, overlap float64) int {
	if n <= 1 {
		return size
	}
	t := int(math.Ceil(float64(size) / (float64(n) - float64(n-1)*overlap)))
	return min(max(t, 1), size)
}

// count is the number of tiles of t along size for the overlap fraction.
func count(size, t int, overlap float64) int {
	if size <= t {
		return 1
	}
	step := float64(t) * (1 - overlap)
	return 1 + int(math.Ceil(float64(size-t)/step-1e-9))
}

// axis returns n tile starts along size for tiles of t, evenly spread, flush at both ends.
func axis(size, t, n int) []int {
	if n <= 1 {
		return []int{0}
	}
	pos := make([]int, n)
	for i := range pos {
		pos[i] = int(math.Round(float64(i) * float64(size-t) / float64(n-1)))
	}
	return pos
}

func rects(xs, ys []int, tw, th int) []image.Rectangle {
	out := make([]image.Rectangle, 0, len(xs)*len(ys))
	for _, y := range ys {
		for _, x := range xs {
			out = append(out, image.Rect(x, y, x+tw, y+th))
		}
	}
	return out
}

// Merge merges detections gathered from the tiles of one frame. tiles gives each detection's
// tile rectangle in frame pixels (an empty rectangle for a whole-frame detection), frame the
// frame. It is what Detect does after the inferences, exposed for callers that run the tiles
// themselves (e.g. on several detectors).
func Merge(dets []models.Detection, tiles []image.Rectangle, frame image.Rectangle, mergeIoU, mergeIoS float32) []models.Detection {
	all := make([]tagged, len(dets))
	for i, det := range dets {
		all[i] = tagged{Detection: det}
		if i < len(tiles) && !tiles[i].Empty() {
			all[i].cut = cutSides(det.Box, tiles[i], frame)
		}
	}
	merged := merge(all, mergeIoU, mergeIoS)
	out := make([]models.Detection, len(merged))
	for i, t := range merged {
		out[i] = t.Detection
	}
	return out
}
