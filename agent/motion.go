package agent

import (
	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/pipeline/motion"
)

// motionOf is a camera's motion-driven detection (its motion: section), nil when it is off.
// The gate (pipeline/motion.Gate, which the replay harness of testvideos/score runs too)
// decides, for each frame due at detect_fps, where the detector runs: nowhere when nothing
// moves and no track is active, on crops around motion and active tracks, or on the whole
// frame (periodically, or when crops would cover most of it). It plans on the decoder's Y
// plane on the ingest goroutine; the tracks come from the analysis goroutine.
func motionOf(cc config.Camera) *motion.GateConfig {
	m := cc.Motion
	if m == nil || !m.Enabled {
		return nil
	}
	return &motion.GateConfig{Detector: m.DetectorConfig(), FullFrameEvery: m.FullFrameInterval(), Coverage: m.Coverage, FullFrameCost: 1}
}
