package motion

import (
	"errors"
	"fmt"
	"math"
)

// Defaults used where a Config field is zero.
const (
	DefaultAnalysisWidth = 320
	DefaultThreshold     = 30
	DefaultMinArea       = 20
	DefaultAlpha         = 0.2
	DefaultLearnFrames   = 10
	DefaultRelearn       = 0.5
)

// MaxMaskPoints is the most points one mask polygon may have.
const MaxMaskPoints = 100

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid motion setting")

// SettingError is a setting that fails validation; it wraps ErrInvalid.
type SettingError struct {
	Key     string // e.g. "motion.masks[1]"
	Problem string // e.g. "point 2 (1.2, 0.5) is outside the frame (0-1)"
}

func (e *SettingError) Error() string { return e.Key + ": " + e.Problem }

// Unwrap returns ErrInvalid.
func (e *SettingError) Unwrap() error { return ErrInvalid }

func invalid(key, format string, args ...any) error {
	return &SettingError{Key: key, Problem: fmt.Sprintf(format, args...)}
}

// Polygon is a simple polygon in normalised frame coordinates (x to the right, y down, both
// 0-1); the last point joins the first. Insideness follows the even-odd rule.
type Polygon [][2]float64

// Config sets the motion detector. The zero value takes the defaults above and no masks.
type Config struct {
	// AnalysisWidth is the most columns of the downscaled grey frame motion is found on; the
	// frame is box-averaged by the smallest whole factor k that brings its width to at most
	// this (1280 → k=4 → 320x180). 0 means DefaultAnalysisWidth.
	AnalysisWidth int
	// Threshold is the grey-level difference (0-255, after contrast normalisation) from the
	// background above which a pixel counts as moving. 0 means DefaultThreshold.
	Threshold int
	// MinArea is the least size, in analysis pixels after a 3x3 dilation, of a moving blob
	// that is reported (a lone noisy pixel dilates to 9). 0 means DefaultMinArea.
	MinArea int
	// Alpha is the background's learning rate per Update (the weight of the new frame):
	// something that stops moving fades into the background in about 1/Alpha updates (the
	// default: about 1 s at detect_fps 5). Fast enough to follow light that drifts over
	// seconds (clouds, auto-exposure with vignetting, which a global fit cannot explain);
	// objects that stop are then left to the tracker (motion.ActiveTracks) and the periodic
	// full-frame pass. 0 means DefaultAlpha.
	Alpha float64
	// LearnFrames is how many updates after a start, a resolution change or a relearn the
	// background is learnt as the running mean of the frames seen (faster than Alpha), so
	// that an object present when learning starts leaves no lasting ghost. 0 means
	// DefaultLearnFrames; use a negative value for none.
	LearnFrames int
	// Relearn is the share of the (unmasked) frame which, when it differs from the
	// background all at once, is taken as a global change (lights, auto-exposure, the
	// camera moved) rather than motion: the background is learnt again from that frame and
	// nothing is reported. 0 means DefaultRelearn.
	Relearn float64
	// Masks are areas where motion is ignored (trees, an on-screen clock).
	Masks []Polygon
}

// WithDefaults returns c with the zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.AnalysisWidth == 0 {
		c.AnalysisWidth = DefaultAnalysisWidth
	}
	if c.Threshold == 0 {
		c.Threshold = DefaultThreshold
	}
	if c.MinArea == 0 {
		c.MinArea = DefaultMinArea
	}
	if c.Alpha == 0 {
		c.Alpha = DefaultAlpha
	}
	if c.LearnFrames == 0 {
		c.LearnFrames = DefaultLearnFrames
	}
	if c.Relearn == 0 {
		c.Relearn = DefaultRelearn
	}
	return c
}

// Validate checks c without I/O (zero fields stand for their defaults); the error names the
// setting, e.g. "motion.masks[1]: point 2 (1.2, 0.5) is outside the frame".
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.AnalysisWidth < 16 || c.AnalysisWidth > 4096:
		return invalid("motion.analysis_width", "must be in 16-4096, got %d", c.AnalysisWidth)
	case c.Threshold < 1 || c.Threshold > 254:
		return invalid("motion.threshold", "must be in 1-254, got %d", c.Threshold)
	case c.MinArea < 1:
		return invalid("motion.min_area", "must be >= 1, got %d", c.MinArea)
	case !(c.Alpha > 0 && c.Alpha <= 1):
		return invalid("motion.alpha", "must be in (0, 1], got %v", c.Alpha)
	case c.LearnFrames > 100000:
		return invalid("motion.learn_frames", "must be at most 100000, got %d", c.LearnFrames)
	case !(c.Relearn > 0 && c.Relearn <= 1):
		return invalid("motion.relearn", "must be in (0, 1], got %v", c.Relearn)
	}
	for i, p := range c.Masks {
		if err := p.Validate(); err != nil {
			return invalid(fmt.Sprintf("motion.masks[%d]", i), "%v", err)
		}
	}
	return nil
}

// Validate checks that p has 3 to MaxMaskPoints points, all within the frame (0-1), and
// encloses some area. Its errors do not name the setting; Config.Validate adds it.
func (p Polygon) Validate() error {
	if len(p) < 3 {
		return fmt.Errorf("a mask needs at least 3 points, got %d", len(p))
	}
	if len(p) > MaxMaskPoints {
		return fmt.Errorf("a mask may have at most %d points, got %d", MaxMaskPoints, len(p))
	}
	for i, pt := range p {
		if !(pt[0] >= 0 && pt[0] <= 1 && pt[1] >= 0 && pt[1] <= 1) { // false for NaN too
			return fmt.Errorf("point %d (%g, %g) is outside the frame (0-1)", i, pt[0], pt[1])
		}
	}
	var a float64 // shoelace
	for i := range p {
		q, r := p[i], p[(i+1)%len(p)]
		a += q[0]*r[1] - r[0]*q[1]
	}
	if math.Abs(a) < 1e-9 {
		return errors.New("the mask encloses no area")
	}
	return nil
}

// Contains reports whether (x, y) lies inside p (even-odd rule).
func (p Polygon) Contains(x, y float64) bool {
	in := false
	for i, j := 0, len(p)-1; i < len(p); j, i = i, i+1 {
		xi, yi, xj, yj := p[i][0], p[i][1], p[j][0], p[j][1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}
