package tile

import "math"

// Optics describes the camera, the model and the object to keep detectable, for
// GridForAltitude. Zero fields take the defaults named on each.
type Optics struct {
	// HFOVDeg is the camera's horizontal field of view in degrees; 0 means 80 (a typical
	// small drone's wide camera).
	HFOVDeg float64
	// ObjectM is the smallest extent of the object on the ground, in metres; 0 means 0.5
	// (a person's shoulders seen from straight above).
	ObjectM float64
	// MinPx is the smallest object extent, in model-input pixels, the model finds reliably;
	// 0 means 10 (YOLOX-nano's stride-8 head starts missing people below about that).
	MinPx float64
	// ModelW, ModelH are the model's input size; 0 means 416.
	ModelW, ModelH int
	// Overlap is the tile overlap fraction the grid is for; 0 means DefaultOverlap.
	Overlap float64
	// MaxCols, MaxRows cap the grid (each tile is one inference); 0 means 8.
	MaxCols, MaxRows int
}

func (o Optics) withDefaults() Optics {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	defi := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.HFOVDeg, 80)
	def(&o.ObjectM, 0.5)
	def(&o.MinPx, 10)
	def(&o.Overlap, DefaultOverlap)
	defi(&o.ModelW, 416)
	defi(&o.ModelH, 416)
	defi(&o.MaxCols, 8)
	defi(&o.MaxRows, 8)
	return o
}

// GridForAltitude chooses the coarsest tile grid for a camera altM metres above flat ground,
// looking straight down, that keeps an object of o.ObjectM metres at least o.MinPx pixels
// in the model's input.
//
// The rule: the frame covers G = 2·alt·tan(HFOV/2) metres of ground across its imgW pixels,
// so the object is p = ObjectM·imgW/G frame pixels. A tile of width t is scaled by ModelW/t
// into the model, so the object stays >= MinPx when t <= p·ModelW/MinPx. Tiles of that width
// (height in the model's aspect) with the overlap give cols x rows; a frame already fine as a
// whole (the whole frame scaled into the model keeps p >= MinPx) gives 1 x 1. The grid is
// capped at MaxCols x MaxRows: beyond that the object is too small for this model at this
// altitude and the caller should fly lower or accept the loss. An altitude <= 0 or an
// unusable size gives 1 x 1.
//
// Example: 4000x3000 frames, 80° HFOV, a 0.5 m person, 416 input, MinPx 10: at 20 m the
// ground is 33.6 m wide, the person 60 px, tiles up to 2479 px: 2x2. At 60 m: 20 px, tiles
// up to 830 px: 6x5.
func GridForAltitude(altM float64, imgW, imgH int, o Optics) (cols, rows int) {
	o = o.withDefaults()
	if !(altM > 0) || imgW <= 0 || imgH <= 0 || !(o.HFOVDeg > 0 && o.HFOVDeg < 180) {
		return 1, 1
	}
	ground := 2 * altM * math.Tan(o.HFOVDeg*math.Pi/360)
	p := o.ObjectM * float64(imgW) / ground
	whole := p * min(float64(o.ModelW)/float64(imgW), float64(o.ModelH)/float64(imgH))
	if whole >= o.MinPx {
		return 1, 1
	}
	tw := int(p * float64(o.ModelW) / o.MinPx)
	th := int(float64(tw) * float64(o.ModelH) / float64(o.ModelW))
	if tw < 1 || th < 1 {
		return o.MaxCols, o.MaxRows
	}
	return min(count(imgW, tw, o.Overlap), o.MaxCols), min(count(imgH, th, o.Overlap), o.MaxRows)
}
