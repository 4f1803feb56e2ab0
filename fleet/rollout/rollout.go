// Package rollout runs canary over-the-air model rollouts: it sends signed model_update
// commands to a growing share of the selected devices, watches their command results and
// telemetry, and rolls every updated device back when one fails.
//
//	pending ──▶ canary ──▶ wave 1 ──▶ … ──▶ wave n ──▶ complete
//	   │           │          │                 │
//	   └───────────┴── paused (resume goes back to the same step) ──┘
//	               └─────────┴─── rolled_back (a failed result, a timeout, a health gate)
//	                               aborted (by the operator; updated devices are rolled back too)
//
// Each step (the canary, then each wave) has two phases. Updating: every device of the step
// gets a model_update command (vigil/v1/<device>/cmd/model_update, QoS 1, signed with the
// fleet key, naming the rollout) and must report "active" within the active timeout.
// Observing: for the health window, each updated device's telemetry must show the new model,
// its cameras' inference_errors must not grow, and, at the window's end, its mean
// detections_per_s since the update must be at least MinDetectionRatio × its mean before the
// update (taken from the telemetry the engine saw before it sent the command; skipped when it
// saw none). A device of the step that sent no telemetry with the new model during the window
// fails the gate too.
//
// A failure sends model_rollback to every device of the rollout that reported "active" (and to
// any that reports "active" later), and the rollout ends as rolled_back with the reason.
// Rollouts are kept in bbolt and survive a restart of the controller; the telemetry seen before
// an update is kept per device in the rollout, so a restart does not lose a baseline.
package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Rollout states.
const (
	StatePending    = "pending"
	StateCanary     = "canary"
	StateWave       = "wave"
	StateComplete   = "complete"
	StatePaused     = "paused"
	StateRolledBack = "rolled_back"
	StateAborted    = "aborted"
)

// Phases of a step.
const (
	PhaseUpdating  = "updating"  // commands sent; waiting for every device of the step to be active
	PhaseObserving = "observing" // every device of the step is active; the health gate holds
)

// Device states in a rollout. Between sent and active a device shows the last progress state
// it reported (wire.CmdAccepted, wire.CmdDownloading, wire.CmdVerifying, wire.CmdLoading).
const (
	DeviceWaiting         = "waiting" // its step has not started (or the command could not be sent yet)
	DeviceSent            = "sent"
	DeviceActive          = wire.CmdActive
	DeviceFailed          = wire.CmdFailed
	DeviceRollbackPending = "rollback_pending" // must be sent a rollback (publishing failed so far)
	DeviceRollbackSent    = "rollback_sent"
	DeviceRolledBack      = wire.CmdRolledBack
	DeviceRollbackFailed  = "rollback_failed"
)

// Defaults of a Spec.
const (
	DefaultMinDetectionRatio = 0.5
	DefaultHealthWindow      = 2 * time.Minute
	DefaultActiveTimeout     = 10 * time.Minute
)

// Errors of the engine; the API maps them to status codes.
var (
	ErrInvalid  = errors.New("invalid rollout")            // a bad spec: 400
	ErrNotFound = errors.New("rollout not found")          // 404
	ErrState    = errors.New("not possible in this state") // e.g. resume a rollout that is not paused: 409
	// ErrUnavailable: no engine could take the call now (fleet instances sharing a database
	// while none leads the rollouts): 503, nothing was changed unless the error says so.
	ErrUnavailable = errors.New("rollouts unavailable")
)

// Duration is a time.Duration written in JSON as a Go duration string ("2m", "300ms").
type Duration time.Duration

// MarshalText writes d as "1m30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Spec is what an operator asks for.
type Spec struct {
	Model string `json:"model"` // NAME@VERSION in the model registry
	// Devices selects the devices: "all" (every device the registry knows when the rollout
	// is created) or a comma-separated list of device ids.
	Devices string `json:"devices"`
	Canary  int    `json:"canary"` // devices in the canary step, at least 1
	// Waves are cumulative percentages of the selected devices after the canary, increasing,
	// the last 100; [100] when empty.
	Waves        []float64 `json:"waves,omitempty"`
	HealthWindow Duration  `json:"health_window,omitempty"` // DefaultHealthWindow when zero
	// MinDetectionRatio is the lowest allowed ratio of a device's detections_per_s after the
	// update to before it, in [0, 1]; DefaultMinDetectionRatio when zero.
	MinDetectionRatio float64 `json:"min_detection_ratio,omitempty"`
	// ActiveTimeout bounds how long a device may take to report "active" after its command is
	// sent (and the command's expiry); DefaultActiveTimeout when zero.
	ActiveTimeout Duration `json:"active_timeout,omitempty"`
}

// Normalize fills the defaults and checks the spec without I/O; the error wraps ErrInvalid
// and names the field.
func (s *Spec) Normalize() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: '%s' %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	name, version, ok := strings.Cut(s.Model, "@")
	if !ok || !wire.ValidID(name) || !wire.ValidID(version) {
		return bad("model", "%q: want NAME@VERSION", s.Model)
	}
	if _, err := ParseSelector(s.Devices); err != nil {
		return err
	}
	if s.Canary < 1 {
		return bad("canary", "must be >= 1")
	}
	if len(s.Waves) == 0 {
		s.Waves = []float64{100}
	}
	prev := 0.0
	for i, w := range s.Waves {
		if math.IsNaN(w) || w <= prev || w > 100 {
			return bad(fmt.Sprintf("waves[%d]", i), "%v: want increasing percentages in (0, 100]", w)
		}
		prev = w
	}
	if prev != 100 {
		return bad("waves", "must end at 100%%")
	}
	if s.HealthWindow == 0 {
		s.HealthWindow = Duration(DefaultHealthWindow)
	}
	if s.HealthWindow < 0 {
		return bad("health_window", "must be > 0")
	}
	if s.MinDetectionRatio == 0 {
		s.MinDetectionRatio = DefaultMinDetectionRatio
	}
	if math.IsNaN(s.MinDetectionRatio) || s.MinDetectionRatio < 0 || s.MinDetectionRatio > 1 {
		return bad("min_detection_ratio", "must be in [0, 1]")
	}
	if s.ActiveTimeout == 0 {
		s.ActiveTimeout = Duration(DefaultActiveTimeout)
	}
	if s.ActiveTimeout < 0 {
		return bad("active_timeout", "must be > 0")
	}
	return nil
}

// ParseSelector reads a device selector: "all" gives nil, a comma list gives its ids (no
// repeats, each a valid device id).
func ParseSelector(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "all" {
		return nil, nil
	}
	var ids []string
	seen := map[string]bool{}
	for id := range strings.SplitSeq(s, ",") {
		id = strings.TrimSpace(id)
		if !wire.ValidID(id) {
			return nil, fmt.Errorf("%w: 'devices' %q: want \"all\" or a comma list of device ids", ErrInvalid, s)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// ParseWaves reads "25%,50%,100%" (the % signs are optional).
func ParseWaves(s string) ([]float64, error) {
	var out []float64
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSuffix(strings.TrimSpace(p), "%")
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%w: waves %q: want percentages like 25%%,50%%,100%%", ErrInvalid, s)
		}
		out = append(out, v)
	}
	return out, nil
}

// Rollout is one rollout and its progress.
type Rollout struct {
	ID    string        `json:"id"`
	Spec  Spec          `json:"spec"`
	Model wire.ModelRef `json:"model"` // what the devices are sent
	State string        `json:"state"`
	// Step is the current step: -1 before the canary, 0 the canary, i the i-th wave.
	Step   int    `json:"step"`
	Phase  string `json:"phase,omitempty"`  // PhaseUpdating or PhaseObserving while a step runs
	Reason string `json:"reason,omitempty"` // why it was rolled back or aborted
	// Bounds[i] is how many devices (from the start of Devices) are updated once step i is
	// done: Bounds[0] the canary, Bounds[i] wave i.
	Bounds        []int            `json:"bounds"`
	CreatedAt     time.Time        `json:"created_at"`
	UpdatedAt     time.Time        `json:"updated_at"`
	StepStartedAt time.Time        `json:"step_started_at,omitzero"`
	ObserveUntil  time.Time        `json:"observe_until,omitzero"` // end of the health window
	PausedAt      time.Time        `json:"paused_at,omitzero"`
	EndedAt       time.Time        `json:"ended_at,omitzero"`
	Devices       []DeviceProgress `json:"devices"`
}

// Done reports whether the rollout has ended (complete, rolled back or aborted).
func (r *Rollout) Done() bool {
	return r.State == StateComplete || r.State == StateRolledBack || r.State == StateAborted
}

// DeviceProgress is one device's part in a rollout.
type DeviceProgress struct {
	ID      string    `json:"id"`
	Step    int       `json:"step"` // the step that updates it
	State   string    `json:"state"`
	Percent float64   `json:"percent,omitempty"` // download progress
	Reason  string    `json:"reason,omitempty"`  // why it failed, or why a command could not be sent
	CmdID   string    `json:"cmd_id,omitempty"`
	SentAt  time.Time `json:"sent_at,omitzero"` // first sent; the active timeout runs from here
	// RetryAt is when an update the device was too busy for is sent again.
	RetryAt time.Time `json:"retry_at,omitzero"`
	// ActiveAt is when the fleet received "active"; ActiveCapturedAt the report's captured_at
	// (the device's clock), before which telemetry is from the old model.
	ActiveAt         time.Time `json:"active_at,omitzero"`
	ActiveCapturedAt int64     `json:"active_captured_at,omitempty"`
	// PrevModel is the model the device ran before, from its telemetry.
	PrevModel *wire.Model `json:"prev_model,omitempty"`
	// Baseline is the mean detections_per_s (all cameras) before the update, over
	// BaselineSamples telemetry reports; none when 0 samples.
	Baseline        float64 `json:"baseline_detections_per_s"`
	BaselineSamples int     `json:"baseline_samples"`
	// ErrorsBase is each camera's inference_errors when the update became active.
	ErrorsBase map[string]uint64 `json:"errors_base,omitempty"`
	// PostSum / PostSamples: detections_per_s since the update, from telemetry with the new model.
	PostSum       float64 `json:"post_detections_sum"`
	PostSamples   int     `json:"post_samples"`
	RollbackCmdID string  `json:"rollback_cmd_id,omitempty"`
}

// PostRate is the mean detections_per_s since the update, or 0 without samples.
func (d *DeviceProgress) PostRate() float64 {
	if d.PostSamples == 0 {
		return 0
	}
	return d.PostSum / float64(d.PostSamples)
}

// bounds computes the cumulative device counts of each step for n devices.
func bounds(n, canary int, waves []float64) []int {
	out := []int{min(canary, n)}
	for _, w := range waves {
		c := int(math.Ceil(w / 100 * float64(n)))
		out = append(out, min(n, max(c, out[len(out)-1])))
	}
	return out
}

// clone deep-copies r for a caller.
func (r *Rollout) clone() Rollout {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("rollout: marshal: %v", err)) // plain data: cannot fail
	}
	var c Rollout
	if err := json.Unmarshal(b, &c); err != nil {
		panic(fmt.Sprintf("rollout: unmarshal: %v", err))
	}
	return c
}
