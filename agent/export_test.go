package agent

// SetCamerasStartingHook makes Run call f just before it opens the cameras' detectors (nil:
// no hook). Tests only; not safe while an agent runs.
func SetCamerasStartingHook(f func()) { testHookCamerasStarting = f }
