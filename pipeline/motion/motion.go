// Package motion finds what moves in a camera's picture, cheaply, so that the detector runs
// only where (and when) something happens, as Frigate does.
//
//	luma plane ──▶ box-average down to ≤ AnalysisWidth ──▶ 3x3 blur ──▶ fit a tone curve from
//	the background (gain, offset, median correction per grey range) ──▶ |frame − fitted
//	background| > Threshold ──▶ masks ──▶ 3x3 dilate ──▶ connected components ≥ MinArea ──▶ Result{Boxes, Fraction}; background += Alpha·(frame − background)
//
// Brightness and contrast changes of the whole picture (clouds, lights, the camera's
// auto-exposure) are absorbed by the tone curve fit; a change over more than Relearn of the
// frame that the fit cannot explain makes the detector learn its background again instead of
// reporting motion everywhere. A change of resolution starts it afresh.
//
// Plan turns motion boxes and the boxes of active tracks into the crops the detector should
// run on (or one full-frame pass, or none), and MapBack merges the crops' detections into
// frame coordinates. The package is pure Go.
package motion

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Box is an axis-aligned box in normalised frame coordinates (0-1, x to the right, y down).
type Box struct {
	X1, Y1, X2, Y2 float64
}

// Area is the box's area, 0 for an empty or inverted box.
func (b Box) Area() float64 {
	if b.X2 <= b.X1 || b.Y2 <= b.Y1 {
		return 0
	}
	return (b.X2 - b.X1) * (b.Y2 - b.Y1)
}

// Result is what one Update found.
type Result struct {
	// Boxes bound the moving blobs, in normalised frame coordinates. A fast mover's box
	// includes a short fading trail behind it (where the background still shows it).
	Boxes []Box
	// Fraction is the share of the frame covered by the reported blobs (dilated), 0-1.
	Fraction float64
	// Learning is set on an update that (re)started the background from this frame (the first
	// frame, a resolution change, a relearn): nothing could be compared, nothing is reported.
	Learning bool
	// Relearned is set when a change over more than Config.Relearn of the frame was taken as
	// a global change, not motion (Learning is set too).
	Relearned bool
	// Err is set, and nothing else, when the plane is inconsistent with its sizes.
	Err error
}

// Detector finds motion in successive frames of one camera.
//
// Call contract: Update is called from one goroutine at a time, with the frames of one
// camera in order. Results' Boxes are valid until the next Update.
type Detector struct {
	cfg Config

	w, h    int // source frame size; 0 before the first frame
	k       int // downscale factor
	aw, ah  int // analysis size
	learned int // updates since the background was (re)started

	lanesLo, lanesHi []uint64  // downsample: column sums in 16-bit lanes
	col              []uint32  // downsample: column sums
	small            []uint8   // downsampled
	tmp              []uint16  // blur, horizontal pass
	cur              []float32 // downsampled and blurred
	bg               []float32 // background
	mask             []bool    // true where motion is ignored
	keep             []uint8   // 1 where it is not (mask's complement, for dilate)
	nfree            int       // unmasked analysis pixels
	moving           []uint8   // 1 where the thresholded difference is set
	hrow             []uint8   // dilate: horizontal pass
	dil              []uint8   // dilated
	label            []int32
	stack            []int32
	boxes            []Box
	tone             [256]float32          // fitted: background grey → expected grey now
	resid            [toneBins][256]uint32 // fit: residual histograms
}

// New returns a detector for cfg, which must pass Validate.
func New(cfg Config) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Detector{cfg: cfg.WithDefaults()}, nil
}

// Config returns the configuration in use, defaults filled in.
func (d *Detector) Config() Config { return d.cfg }

// AnalysisSize returns the analysis frame's size for the current resolution (0, 0 before the
// first frame).
func (d *Detector) AnalysisSize() (w, h int) { return d.aw, d.ah }

// Reset forgets the background: the next Update learns it afresh.
func (d *Detector) Reset() { d.w, d.h = 0, 0 }

// Update compares the luma plane y (8-bit, width x height, rows stride bytes apart) with the
// background, learns from it, and reports what moves.
func (d *Detector) Update(y []byte, width, height, stride int) Result {
	if width <= 0 || height <= 0 || stride < width || len(y) < (height-1)*stride+width {
		return Result{Err: fmt.Errorf("motion: inconsistent luma plane %dx%d, stride %d, %d bytes", width, height, stride, len(y))}
	}
	if width != d.w || height != d.h {
		d.resize(width, height)
	}
	d.downsample(y, stride)
	d.blur()
	if d.learned == 0 {
		copy(d.bg, d.cur)
		d.learned = 1
		return Result{Learning: true}
	}
	d.fit()
	changed, r0, r1 := d.compare()
	if changed == 0 {
		return Result{}
	}
	if d.dilate(r0, r1) > d.cfg.Relearn*float64(d.nfree) {
		copy(d.bg, d.cur)
		d.learned = 1
		return Result{Learning: true, Relearned: true}
	}
	return d.components(r0, r1)
}

// compare marks in moving the unmasked pixels that differ from the fitted background by more
// than the threshold, and moves the background towards the current frame (one pass). It
// returns how many pixels it marked and the first and last analysis rows holding one.
func (d *Detector) compare() (changed, r0, r1 int) {
	tone := &d.tone
	a := float32(d.cfg.Alpha)
	if d.learned < d.cfg.LearnFrames {
		a = max(a, 1/float32(d.learned+1))
	}
	d.learned++
	thr := float32(d.cfg.Threshold)
	aw := d.aw
	r0, r1 = d.ah, -1
	for yy := range d.ah {
		cur := d.cur[yy*aw : (yy+1)*aw]
		bg := d.bg[yy*aw : (yy+1)*aw]
		mask := d.mask[yy*aw : (yy+1)*aw]
		mov := d.moving[yy*aw : (yy+1)*aw]
		n := 0
		for x, c := range cur {
			b := bg[x]
			diff := c - tone[uint8(b)]
			bg[x] = b + a*(c-b)
			var m uint8
			if (diff > thr || diff < -thr) && !mask[x] {
				m = 1
				n++
			}
			mov[x] = m
		}
		if n > 0 {
			changed += n
			r0, r1 = min(r0, yy), yy
		}
	}
	return changed, r0, r1
}

// resize starts afresh for a new frame size.
func (d *Detector) resize(width, height int) {
	d.w, d.h = width, height
	d.k = max(1, (width+d.cfg.AnalysisWidth-1)/d.cfg.AnalysisWidth)
	d.aw, d.ah = max(1, width/d.k), max(1, height/d.k)
	if width < d.k || height < d.k { // a strip thinner than one block
		d.k = 1
		d.aw, d.ah = width, height
	}
	n := d.aw * d.ah
	d.lanesLo = make([]uint64, d.aw*d.k/8)
	d.lanesHi = make([]uint64, d.aw*d.k/8)
	d.col = make([]uint32, d.aw*d.k)
	d.small = make([]uint8, n)
	d.tmp = make([]uint16, n)
	d.cur = make([]float32, n)
	d.bg = make([]float32, n)
	d.mask = make([]bool, n)
	d.moving = make([]uint8, n)
	d.dil = make([]uint8, n)
	d.hrow = make([]uint8, n)
	d.hrow = make([]uint8, n)
	d.label = make([]int32, n)
	d.nfree = n
	d.keep = make([]uint8, n)
	for yy := range d.ah {
		for xx := range d.aw {
			fx, fy := (float64(xx)+0.5)/float64(d.aw), (float64(yy)+0.5)/float64(d.ah)
			for _, p := range d.cfg.Masks {
				if p.Contains(fx, fy) {
					d.mask[yy*d.aw+xx] = true
					d.nfree--
					break
				}
			}
		}
	}
	for i, m := range d.mask {
		if !m {
			d.keep[i] = 1
		}
	}
	d.learned = 0
}

// downsample box-averages k x k blocks of the plane into small. Rows are summed eight bytes
// at a time in 16-bit lanes (SWAR: even and odd columns apart), then each block's k columns.
func (d *Detector) downsample(y []byte, stride int) {
	k, aw := d.k, d.aw
	cols := aw * k
	n8 := cols / 8
	inv := uint32((1<<16 + k*k/2) / (k * k))
	const m = 0x00ff00ff00ff00ff
	lo, hi, col := d.lanesLo[:n8], d.lanesHi[:n8], d.col[:cols]
	if k == 4 && 8*n8 == cols { // the common case (1280 wide): four rows at once, no accumulators
		for oy := range d.ah {
			base := 4 * oy * stride
			r0, r1 := y[base:][:cols], y[base+stride:][:cols]
			r2, r3 := y[base+2*stride:][:cols], y[base+3*stride:][:cols]
			out := d.small[oy*aw : (oy+1)*aw][:2*n8]
			for i := range n8 {
				v0 := binary.LittleEndian.Uint64(r0[8*i:])
				v1 := binary.LittleEndian.Uint64(r1[8*i:])
				v2 := binary.LittleEndian.Uint64(r2[8*i:])
				v3 := binary.LittleEndian.Uint64(r3[8*i:])
				// lane j (16 bits): columns 2j and 2j+1 of these eight, over four rows
				s := v0&m + v1&m + v2&m + v3&m + (v0>>8)&m + (v1>>8)&m + (v2>>8)&m + (v3>>8)&m
				o := out[2*i : 2*i+2]
				o[0] = uint8((uint32(s&0xffff) + uint32(s>>16&0xffff) + 8) >> 4)
				o[1] = uint8((uint32(s>>32&0xffff) + uint32(s>>48) + 8) >> 4)
			}
		}
		return
	}
	for oy := range d.ah {
		clear(col[8*n8:])
		clear(col[:8*n8])
		r := 0
		for ; r+1 < k; r += 2 { // two rows at a time: half the accumulator traffic
			row0 := y[(oy*k+r)*stride:][:cols]
			row1 := y[(oy*k+r+1)*stride:][:cols]
			for i := range lo {
				v0 := binary.LittleEndian.Uint64(row0[8*i:])
				v1 := binary.LittleEndian.Uint64(row1[8*i:])
				lo[i] += v0&m + v1&m
				hi[i] += (v0>>8)&m + (v1>>8)&m
			}
			for c := 8 * n8; c < cols; c++ {
				col[c] += uint32(row0[c]) + uint32(row1[c])
			}
			if r%256 == 254 { // lanes hold up to 257 rows of 255: spill before they could overflow
				d.spill(lo, hi, col)
			}
		}
		if r < k {
			row := y[(oy*k+r)*stride:][:cols]
			for i := range lo {
				v := binary.LittleEndian.Uint64(row[8*i:])
				lo[i] += v & m
				hi[i] += (v >> 8) & m
			}
			for c := 8 * n8; c < cols; c++ {
				col[c] += uint32(row[c])
			}
		}
		out := d.small[oy*aw : (oy+1)*aw]
		d.spill(lo, hi, col)
		switch k {
		case 1:
			for x := range out {
				out[x] = uint8(col[x])
			}
		case 2:
			for x := range out {
				c := col[2*x : 2*x+2]
				out[x] = uint8(((c[0]+c[1])*inv + 1<<15) >> 16)
			}
		case 4:
			for x := range out {
				c := col[4*x : 4*x+4]
				out[x] = uint8(((c[0]+c[1]+c[2]+c[3])*inv + 1<<15) >> 16)
			}
		default:
			for x := range out {
				var s uint32
				for _, v := range col[x*k : x*k+k] {
					s += v
				}
				out[x] = uint8((s*inv + 1<<15) >> 16)
			}
		}
	}
}

// spill adds the lanes' column sums to col and clears the lanes.
func (d *Detector) spill(lo, hi []uint64, col []uint32) {
	for i := range lo {
		a, b := lo[i], hi[i]
		c := col[8*i : 8*i+8]
		c[0] += uint32(a & 0xffff)
		c[1] += uint32(b & 0xffff)
		c[2] += uint32(a >> 16 & 0xffff)
		c[3] += uint32(b >> 16 & 0xffff)
		c[4] += uint32(a >> 32 & 0xffff)
		c[5] += uint32(b >> 32 & 0xffff)
		c[6] += uint32(a >> 48)
		c[7] += uint32(b >> 48)
	}
	clear(lo)
	clear(hi)
}

// blur smooths small with a separable [1 2 1]/4 kernel (edges repeated) into cur.
func (d *Detector) blur() {
	aw, ah := d.aw, d.ah
	for yy := range ah {
		in := d.small[yy*aw : (yy+1)*aw]
		out := d.tmp[yy*aw : (yy+1)*aw]
		if aw == 1 {
			out[0] = 4 * uint16(in[0])
			continue
		}
		out[0] = 3*uint16(in[0]) + uint16(in[1])
		out[aw-1] = 3*uint16(in[aw-1]) + uint16(in[aw-2])
		for x := 1; x+1 < aw; x++ {
			out[x] = uint16(in[x-1]) + 2*uint16(in[x]) + uint16(in[x+1])
		}
	}
	for yy := range ah {
		up := d.tmp[max(yy-1, 0)*aw:][:aw]
		mid := d.tmp[yy*aw:][:aw]
		down := d.tmp[min(yy+1, ah-1)*aw:][:aw]
		out := d.cur[yy*aw:][:aw]
		for x := range out {
			out[x] = float32(uint32(up[x])+2*uint32(mid[x])+uint32(down[x])) * (1.0 / 16)
		}
	}
}

// sampleStep is the pixel and row step of the fit's samples for an analysis frame of n
// pixels: about 4000 samples or more (every 4th pixel of every 4th row at 320x180), plenty
// for a gain, an offset and sixteen medians.
func sampleStep(n int) int {
	switch {
	case n >= 48000:
		return 4
	case n >= 12000:
		return 2
	}
	return 1
}

// toneBins is how many ranges of background grey the tone curve is fitted in.
const toneBins = 16

// minToneSamples is the least number of pixels a range needs to get its own correction.
const minToneSamples = 24

// fit sets tone, the curve that best maps a background grey level onto the current frame's:
// a gain and offset (least squares over the unmasked pixels, then again over those the first
// fit explains within the threshold), corrected per range of background grey by the median
// of what is left, so that a global change of brightness or contrast — even a non-linear
// one, such as bright markings saturating when the camera's exposure changes — is not taken
// for motion. Medians ignore whatever moves over less than half of a range's pixels.
func (d *Detector) fit() {
	gain, off := lsq(d.bg, d.cur, d.mask, d.aw, 1, 0, -1)
	gain, off = lsq(d.bg, d.cur, d.mask, d.aw, gain, off, float32(d.cfg.Threshold))
	// per range: a histogram of the residuals (clipped to ±127), for their median
	hist := &d.resid
	clear(hist[:])
	var count [toneBins]int
	step := sampleStep(len(d.bg))
	w := d.aw
	for row := 0; row+w <= len(d.bg); row += step * w {
		for i := row; i < row+w; i += step {
			if d.mask[i] {
				continue
			}
			b := d.bg[i]
			r := int(d.cur[i]-(gain*b+off)) + 128
			r = min(max(r, 0), 255)
			bin := int(b) * toneBins / 256
			hist[bin][r]++
			count[bin]++
		}
	}
	var corr [toneBins]float32
	var have [toneBins]bool
	for bin := range toneBins {
		if count[bin] < minToneSamples {
			continue
		}
		half, acc := (count[bin]+1)/2, 0
		for r, n := range hist[bin] {
			if acc += int(n); acc >= half {
				corr[bin] = float32(r - 128)
				have[bin] = true
				break
			}
		}
	}
	// the curve: linear between range centres; ranges without enough pixels take the
	// nearest fitted neighbours' corrections (none: the plain gain and offset)
	const width = 256 / toneBins
	for v := range 256 {
		x := float32(v)/width - 0.5 // position in range units, centres at integers
		lo := int(x)
		if x < 0 {
			lo = -1
		}
		c := interp(corr[:], have[:], lo, x-float32(lo))
		d.tone[v] = gain*float32(v) + off + c
	}
}

// interp is the correction at lo+f (0 <= f < 1) between range centres lo and lo+1, skipping
// ranges without a fit (the nearest fitted range on each side stands in).
func interp(corr []float32, have []bool, lo int, f float32) float32 {
	left, right := -1, -1
	for i := min(lo, len(corr)-1); i >= 0; i-- {
		if have[i] {
			left = i
			break
		}
	}
	for i := max(lo+1, 0); i < len(corr); i++ {
		if have[i] {
			right = i
			break
		}
	}
	switch {
	case left < 0 && right < 0:
		return 0
	case left < 0:
		return corr[right]
	case right < 0:
		return corr[left]
	}
	t := (float32(lo) + f - float32(left)) / float32(right-left)
	return corr[left] + t*(corr[right]-corr[left])
}

// lsq fits c ≈ g·b + o over the unmasked pixels whose residual under (g0, o0) is within tol
// (all of them when tol < 0). The gain is kept within [1/4, 4]; with too few pixels or no
// spread in b, (g0, o0) or a pure offset comes back.
func lsq(b, c []float32, mask []bool, w int, g0, o0, tol float32) (float32, float32) {
	var n, sb, sc, sbb, sbc float64
	step := sampleStep(len(b))
	for row := 0; row+w <= len(b); row += step * w {
		for i := row; i < row+w; i += step {
			if mask[i] {
				continue
			}
			bv, cv := b[i], c[i]
			if tol >= 0 {
				if r := cv - (g0*bv + o0); r > tol || r < -tol {
					continue
				}
			}
			x, y := float64(bv), float64(cv)
			n++
			sb += x
			sc += y
			sbb += x * x
			sbc += x * y
		}
	}
	if n < 16 {
		return g0, o0
	}
	vb := sbb - sb*sb/n
	if vb < n { // background flat to within a grey level: only an offset can be fitted
		return 1, float32((sc - sb) / n)
	}
	g := (sbc - sb*sc/n) / vb
	g = math.Min(math.Max(g, 0.25), 4)
	return float32(g), float32((sc - g*sb) / n)
}

// dilate grows moving (set only in rows r0-r1) by one pixel in each direction (3x3) into
// dil, clearing masked pixels, and returns how many pixels of dil are set. The 0/1 bytes are
// handled eight at a time.
func (d *Detector) dilate(r0, r1 int) float64 {
	aw, ah := d.aw, d.ah
	clear(d.dil)
	for yy := r0; yy <= r1; yy++ { // horizontal: moving → hrow
		dilateRow(d.hrow[yy*aw:(yy+1)*aw], d.moving[yy*aw:(yy+1)*aw])
	}
	n := 0
	for yy := max(r0-1, 0); yy <= min(r1+1, ah-1); yy++ { // vertical: hrow → dil
		out := d.dil[yy*aw : (yy+1)*aw]
		for dy := -1; dy <= 1; dy++ {
			if src := yy + dy; src >= r0 && src <= r1 {
				orRow(out, d.hrow[src*aw:(src+1)*aw])
			}
		}
		n += andCount(out, d.keep[yy*aw:(yy+1)*aw]) // blobs stop at a mask's edge
	}
	return float64(n)
}

// dilateRow sets out[x] = in[x-1] | in[x] | in[x+1].
func dilateRow(out, in []uint8) {
	n := len(in)
	x := 0
	for ; x+8 <= n; x += 8 {
		w := binary.LittleEndian.Uint64(in[x:])
		v := w | w<<8 | w>>8
		if x > 0 {
			v |= uint64(in[x-1])
		}
		if x+8 < n {
			v |= uint64(in[x+8]) << 56
		}
		binary.LittleEndian.PutUint64(out[x:], v)
	}
	for ; x < n; x++ {
		v := in[x]
		if x > 0 {
			v |= in[x-1]
		}
		if x+1 < n {
			v |= in[x+1]
		}
		out[x] = v
	}
}

// orRow sets out[x] |= in[x].
func orRow(out, in []uint8) {
	x := 0
	for ; x+8 <= len(out); x += 8 {
		binary.LittleEndian.PutUint64(out[x:], binary.LittleEndian.Uint64(out[x:])|binary.LittleEndian.Uint64(in[x:]))
	}
	for ; x < len(out); x++ {
		out[x] |= in[x]
	}
}

// andCount sets out[x] &= keep[x] (both 0/1) and returns how many are set.
func andCount(out, keep []uint8) int {
	n, x := 0, 0
	for ; x+8 <= len(out); x += 8 {
		v := binary.LittleEndian.Uint64(out[x:]) & binary.LittleEndian.Uint64(keep[x:])
		binary.LittleEndian.PutUint64(out[x:], v)
		n += bits.OnesCount64(v)
	}
	for ; x < len(out); x++ {
		out[x] &= keep[x]
		n += int(out[x])
	}
	return n
}

// components labels the 8-connected blobs of dil and reports those of at least MinArea pixels.
func (d *Detector) components(r0, r1 int) Result {
	aw, ah := d.aw, d.ah
	lo, hi := max(r0-1, 0)*aw, min(r1+2, ah)*aw
	clear(d.label[lo:hi])
	d.boxes = d.boxes[:0]
	covered := 0
	var next int32
	for start := lo; start < hi; start++ {
		if d.dil[start] == 0 || d.label[start] != 0 {
			continue
		}
		next++
		d.label[start] = next
		stack := append(d.stack[:0], int32(start))
		area, x1, y1, x2, y2 := 0, aw, ah, -1, -1
		for len(stack) > 0 {
			p := int(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			area++
			px, py := p%aw, p/aw
			x1, y1, x2, y2 = min(x1, px), min(y1, py), max(x2, px), max(y2, py)
			for ny := max(py-1, 0); ny <= min(py+1, ah-1); ny++ {
				for nx := max(px-1, 0); nx <= min(px+1, aw-1); nx++ {
					q := ny*aw + nx
					if d.dil[q] != 0 && d.label[q] == 0 {
						d.label[q] = next
						stack = append(stack, int32(q))
					}
				}
			}
		}
		d.stack = stack
		if area < d.cfg.MinArea {
			continue
		}
		covered += area
		sx, sy := float64(d.k)/float64(d.w), float64(d.k)/float64(d.h)
		b := Box{X1: float64(x1) * sx, Y1: float64(y1) * sy, X2: float64(x2+1) * sx, Y2: float64(y2+1) * sy}
		if x2 == aw-1 { // the columns left over by the downscale belong to the last block
			b.X2 = 1
		}
		if y2 == ah-1 {
			b.Y2 = 1
		}
		d.boxes = append(d.boxes, Box{X1: b.X1, Y1: b.Y1, X2: math.Min(b.X2, 1), Y2: math.Min(b.Y2, 1)})
	}
	return Result{Boxes: d.boxes, Fraction: float64(covered) / float64(aw*ah)}
}
