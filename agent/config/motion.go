package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/vigil-edge/vigil/pipeline/motion"
)

// Motion gates a camera's detector with motion detection (pipeline/motion): the detector runs
// on crops around motion and active tracks, a full-frame pass at least every FullFrameEvery,
// and not at all when nothing moves.
type Motion struct {
	Enabled       bool `yaml:"enabled"`
	AnalysisWidth int  `yaml:"analysis_width"` // width of the downscaled grey frame; 0: 320
	Threshold     int  `yaml:"threshold"`      // grey-level change that counts as motion, 1-254; 0: 30
	MinArea       int  `yaml:"min_area"`       // least blob size in analysis pixels; 0: 20
	// Masks are areas where motion is ignored (trees, an on-screen clock): polygons of
	// normalised (0-1) points.
	Masks []motion.Polygon `yaml:"masks"`
	// FullFrameEvery is the longest time between full-frame passes, which re-confirm
	// stationary objects; 0: DefaultFullFrameEvery.
	FullFrameEvery time.Duration `yaml:"full_frame_every"`
	// Coverage is the share of the frame at or above which crops give way to one full-frame
	// pass; 0: 0.6.
	Coverage float64 `yaml:"coverage"`
}

// DefaultFullFrameEvery is motion.full_frame_every's default.
const DefaultFullFrameEvery = 10 * time.Second

// DetectorConfig is the motion detector's configuration.
func (m Motion) DetectorConfig() motion.Config {
	return motion.Config{AnalysisWidth: m.AnalysisWidth, Threshold: m.Threshold, MinArea: m.MinArea, Masks: m.Masks}
}

// FullFrameInterval is FullFrameEvery with its default.
func (m Motion) FullFrameInterval() time.Duration {
	if m.FullFrameEvery == 0 {
		return DefaultFullFrameEvery
	}
	return m.FullFrameEvery
}

// MotionErrors checks each camera's motion section without I/O; every error names its key.
// They are not part of Validate: a bad motion section (a mask outside the frame, say) fails
// its camera only, and the other cameras go on (the agent marks it failed with the error);
// check-config and doctor report them.
func (c Config) MotionErrors() []error {
	var errs []error
	for i := range c.Cameras {
		errs = append(errs, c.CameraMotionErrors(i)...)
	}
	return errs
}

// CameraMotionErrors checks the motion section of camera i (none: nil).
func (c Config) CameraMotionErrors(i int) []error {
	m := c.Cameras[i].Motion
	if m == nil {
		return nil
	}
	var errs []error
	k := fmt.Sprintf("cameras[%d].motion", i)
	if err := m.DetectorConfig().Validate(); err != nil {
		var se *motion.SettingError
		if errors.As(err, &se) { // motion.x → cameras[i].motion.x
			errs = append(errs, fmt.Errorf("'%s%s' %s", k, se.Key[len("motion"):], se.Problem))
		} else {
			errs = append(errs, fmt.Errorf("'%s' %v", k, err))
		}
	}
	if m.FullFrameEvery < 0 || m.FullFrameEvery != 0 && m.FullFrameEvery < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("'%s.full_frame_every' must be >= 100ms (0 = %v)", k, DefaultFullFrameEvery))
	}
	if !(m.Coverage >= 0 && m.Coverage <= 1) {
		errs = append(errs, fmt.Errorf("'%s.coverage' must be in [0,1] (0 = 0.6)", k))
	}
	return errs
}
